//! Follows the NumberLeases of one namespace with a watch and publishes how many exist and how
//! many are Ready for their current generation.

use contiguity_operator::crd::NumberLease;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Objects seen and objects Ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub ready: usize,
    /// Whether the initial list completed (counts are meaningful).
    pub synced: bool,
}

/// A watch on one namespace; stops when dropped.
pub struct Tracker {
    rx: watch::Receiver<Counts>,
    first_ready: Arc<Mutex<HashMap<String, Instant>>>,
    task: JoinHandle<()>,
}

/// Ready=True for the current generation, as the brief defines it.
pub fn is_ready(nl: &NumberLease) -> bool {
    nl.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == nl.metadata.generation
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

impl Tracker {
    pub fn start(api: Api<NumberLease>) -> Tracker {
        let (tx, rx) = watch::channel(Counts::default());
        let first_ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let seen = first_ready.clone();
        let task = tokio::spawn(async move {
            let mut objs: HashMap<String, bool> = HashMap::new();
            let mut init: HashMap<String, bool> = HashMap::new();
            let mut synced = false;
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                match ev {
                    watcher::Event::Init => init.clear(),
                    watcher::Event::InitApply(o) => {
                        init.insert(key(&o), is_ready(&o));
                    }
                    watcher::Event::InitDone => {
                        objs = std::mem::take(&mut init);
                        synced = true;
                    }
                    watcher::Event::Apply(o) => {
                        let ready = is_ready(&o);
                        if ready && let Ok(mut m) = seen.lock() {
                            m.entry(key(&o)).or_insert_with(Instant::now);
                        }
                        objs.insert(key(&o), ready);
                    }
                    watcher::Event::Delete(o) => {
                        objs.remove(&key(&o));
                    }
                }
                let counts = Counts {
                    total: objs.len(),
                    ready: objs.values().filter(|r| **r).count(),
                    synced,
                };
                tx.send_if_modified(|c| {
                    let changed = *c != counts;
                    *c = counts;
                    changed
                });
            }
        });
        Tracker { rx, first_ready, task }
    }

    /// The latest counts.
    pub fn counts(&self) -> Counts {
        *self.rx.borrow()
    }

    /// When each object was first seen Ready (by name).
    pub fn first_ready(&self) -> HashMap<String, Instant> {
        self.first_ready.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds; returns the instant it was seen, or `None` after `timeout`.
    pub async fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Counts) -> bool) -> Option<Instant> {
        let res = tokio::time::timeout(timeout, self.rx.wait_for(|c| c.synced && pred(c))).await;
        match res {
            Ok(Ok(_)) => Some(Instant::now()),
            _ => None,
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(nl: &NumberLease) -> String {
    nl.metadata.name.clone().unwrap_or_default()
}
