//! Benchmark peer: the widget example's work as a kube-rs `Controller`.
//!
//!     kubers-operator KUBECONFIG NAMESPACE
//!
//! For every Widget (example.com/v1) in NAMESPACE, the same writes as
//! `examples/widget_operator.py`, written the way kube-rs's own examples write them:
//!
//! - the finalizer `example.com/cleanup` (`kube::runtime::finalizer`, which adds it in
//!   one reconcile and runs `Apply` on the next);
//! - the ConfigMap `<name>-config` (`data.message = spec.message`, a controller
//!   ownerReference), by server-side apply (field manager `widget-operator`, force);
//! - `status.observedGeneration` and a `Ready` condition by server-side apply on the
//!   status subresource, only when `observedGeneration` differs from the generation;
//! - a `Normal` `Reconciled` Event (events.k8s.io/v1, `kube::runtime::events::Recorder`)
//!   when the status was written; a `Cleanup` Event on deletion.
//!
//! The controller owns ConfigMaps (`.owns`), so a ConfigMap change reconciles its Widget.
//! Every reconcile prints `Reconciled Widget <namespace>/<name>` to stdout. SIGTERM or
//! SIGINT stops it (graceful shutdown of the controller) and it exits 0.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Config, CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const FIELD_MANAGER: &str = "widget-operator";
const FINALIZER: &str = "example.com/cleanup";

#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(group = "example.com", version = "v1", kind = "Widget", namespaced)]
#[kube(status = "WidgetStatus")]
pub struct WidgetSpec {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    replicas: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default)]
    observed_generation: Option<i64>,
    #[serde(default)]
    conditions: Option<Vec<serde_json::Value>>,
}

struct Ctx {
    client: Client,
    recorder: Recorder,
}

type Error = kube::runtime::finalizer::Error<kube::Error>;

async fn apply(widget: Arc<Widget>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let ns = widget.namespace().unwrap_or_default();
    let name = widget.name_any();
    let cm_name = format!("{name}-config");
    let message = widget.spec.message.clone().unwrap_or_default();
    let owner = widget
        .controller_owner_ref(&())
        .expect("a Widget has a name and uid");
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm_name, "namespace": ns, "ownerReferences": [owner]},
        "data": {"message": message},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    cms.patch(&cm_name, &pp, &Patch::Apply(&cm)).await?;

    let generation = widget.metadata.generation.unwrap_or(0);
    let observed = widget.status.as_ref().and_then(|s| s.observed_generation);
    if observed != Some(generation) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "status": {
                "observedGeneration": generation,
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "ConfigMapReady",
                    "message": format!("ConfigMap {cm_name} holds spec.message"),
                    "lastTransitionTime": now,
                    "observedGeneration": generation,
                }],
            },
        });
        let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
        widgets
            .patch_status(&name, &pp, &Patch::Apply(&status))
            .await?;
        let ev = KubeEvent {
            type_: EventType::Normal,
            reason: "Reconciled".into(),
            note: Some(format!(
                "applied ConfigMap {cm_name}; status: observedGeneration {generation}, Ready=True"
            )),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.recorder.publish(&ev, &widget.object_ref(&())).await?;
    }
    Ok(Action::await_change())
}

async fn cleanup(widget: Arc<Widget>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let ev = KubeEvent {
        type_: EventType::Normal,
        reason: "Cleanup".into(),
        note: Some(format!("Widget {} deleted", widget.name_any())),
        action: "Cleanup".into(),
        secondary: None,
    };
    ctx.recorder.publish(&ev, &widget.object_ref(&())).await?;
    Ok(Action::await_change())
}

async fn reconcile(widget: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = widget.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", widget.name_any());
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&widgets, FINALIZER, widget, |event| async {
        match event {
            Finalizer::Apply(w) => apply(w, &ctx).await,
            Finalizer::Cleanup(w) => cleanup(w, &ctx).await,
        }
    })
    .await;
    println!("Reconciled Widget {key}");
    result
}

fn error_policy(_: Arc<Widget>, err: &Error, _: Arc<Ctx>) -> Action {
    eprintln!("reconcile failed: {err}");
    Action::requeue(Duration::from_millis(100))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: kubers-operator KUBECONFIG NAMESPACE");
    let ns = args
        .next()
        .expect("usage: kubers-operator KUBECONFIG NAMESPACE");
    let kc = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let reporter = Reporter {
        controller: "example.com/widget-operator".into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder,
    });
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    Controller::new(widgets, watcher::Config::default())
        .owns(cms, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}
