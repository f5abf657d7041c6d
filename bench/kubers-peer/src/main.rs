//! Benchmark peer: kube-rs's watcher + reflector store + a de-duplicating work queue,
//! printing one line per processed key like client-go's workqueue example.
//!
//!     kubers-peer KUBECONFIG
//!
//! Lists pods in `default` in pages of 500 (the watcher's ListWatch strategy), then
//! watches from the list's resourceVersion. Every event's key goes into a queue that
//! holds each key at most once while it waits (client-go's dirty set); one worker pops
//! keys after the cache is synced and prints `Sync/Add/Update for Pod <name>` if the
//! store has the pod, else `Pod <ns>/<name> does not exist anymore`, flushed per line.
//! `Caches are synced` goes to stderr once the initial list is in the store.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config, ResourceExt};
use tokio::sync::Notify;

#[derive(Default)]
struct Queue {
    inner: Mutex<(VecDeque<ObjectRef<Pod>>, HashSet<ObjectRef<Pod>>)>,
    ready: Notify,
}

impl Queue {
    fn add(&self, key: ObjectRef<Pod>) {
        let mut q = self.inner.lock().unwrap();
        if q.1.insert(key.clone()) {
            q.0.push_back(key);
            drop(q);
            self.ready.notify_one();
        }
    }

    async fn get(&self) -> ObjectRef<Pod> {
        loop {
            {
                let mut q = self.inner.lock().unwrap();
                if let Some(key) = q.0.pop_front() {
                    q.1.remove(&key);
                    return key;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).expect("usage: kubers-peer KUBECONFIG");
    let kc = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let api: Api<Pod> = Api::namespaced(client, "default");

    let (reader, writer) = reflector::store::<Pod>();
    let queue = Arc::new(Queue::default());
    let synced = Arc::new(Notify::new());

    let worker = {
        let (queue, reader, synced) = (queue.clone(), reader.clone(), synced.clone());
        tokio::spawn(async move {
            synced.notified().await;
            let stdout = std::io::stdout();
            loop {
                let key = queue.get().await;
                let mut out = stdout.lock();
                let _ = match reader.get(&key) {
                    Some(pod) => writeln!(out, "Sync/Add/Update for Pod {}", pod.name_any()),
                    None => writeln!(
                        out,
                        "Pod {}/{} does not exist anymore",
                        key.namespace.as_deref().unwrap_or(""),
                        key.name
                    ),
                };
                let _ = out.flush();
            }
        })
    };

    let cfg = watcher::Config::default().page_size(500);
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg));
    futures::pin_mut!(stream);
    while let Some(event) = stream.try_next().await? {
        match event {
            Event::Apply(pod) | Event::Delete(pod) | Event::InitApply(pod) => {
                queue.add(ObjectRef::from_obj(&pod));
            }
            Event::InitDone => {
                eprintln!("Caches are synced");
                synced.notify_one();
            }
            Event::Init => {}
        }
    }
    let _ = stream.next().await;
    worker.abort();
    Ok(())
}
