//! Benchmark peer: kube-rs's `Controller` with a no-op reconcile.
//!
//!     kubers-controller KUBECONFIG N [--owns]
//!
//! Watches ConfigMaps in `default` labelled `role=primary` (and, with `--owns`, the
//! Secrets there, mapped to their owner ConfigMap by ownerReference). The reconcile
//! counts calls and distinct keys and returns `Action::await_change()`. When N distinct
//! primaries have been reconciled it prints one line to stdout and exits:
//!
//!     done calls=<calls> distinct=<N> elapsed_s=<since process start> cpu_s=<user+sys>
//!
//! CPU is the process's getrusage(RUSAGE_SELF) via /proc/self/stat.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Config, ResourceExt};

struct Ctx {
    calls: AtomicU64,
    seen: Mutex<HashSet<String>>,
    want: usize,
    t0: Instant,
}

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl std::error::Error for Never {}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0 // CLK_TCK is 100 on Linux
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let calls = ctx.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let distinct = {
        let mut seen = ctx.seen.lock().unwrap();
        seen.insert(cm.name_any());
        seen.len()
    };
    if distinct == ctx.want {
        let elapsed = ctx.t0.elapsed().as_secs_f64();
        println!(
            "done calls={} distinct={} elapsed_s={:.4} cpu_s={:.3}",
            calls,
            distinct,
            elapsed,
            cpu_seconds()
        );
        std::process::exit(0);
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &Never, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(5))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: kubers-controller KUBECONFIG N [--owns]");
    let want: usize = args.next().expect("N").parse()?;
    let owns = args.any(|a| a == "--owns");
    let kc = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(Ctx { calls: AtomicU64::new(0), seen: Mutex::new(HashSet::new()), want, t0 });
    let mut controller =
        Controller::new(cms, watcher::Config::default().labels("role=primary"));
    if owns {
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        controller = controller.owns(secrets, watcher::Config::default());
    }
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}
