//! What every reconcile shares: clients, caches, stores of both kinds, Events and metrics.

use super::backoff::Backoff;
use super::credentials::Credentials;
use super::error::Error;
use super::events::Events;
use super::leased_snapshot::LeasedSnapshots;
use super::number_index::NumberIndex;
use crate::contiguity::{ClientPool, ContiguityClient};
use crate::crd::{LeaseFailover, NumberLease, SecretKeyRef};
use crate::metrics::Metrics;
use kube::Resource;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tunables of the reconcilers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a converged resource is compared with Contiguity (jittered by ±10 %).
    pub resync_interval: Duration,
    /// First delay of the per-object backoff after a transient failure.
    pub backoff_base: Duration,
    /// Longest delay of the per-object backoff.
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(600),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub kube: kube::Client,
    /// Tunables.
    pub settings: Settings,
    /// Contiguity clients, one rate limiter per token.
    pub pool: ClientPool,
    /// Token resolution.
    pub credentials: Credentials,
    /// Shared `leased` listings per token.
    pub snapshots: LeasedSnapshots,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// NumberLease caches of every watched namespace.
    pub leases: Vec<Store<NumberLease>>,
    /// Per watched namespace (as `leases`), which NumberLeases declare each number.
    pub numbers: Vec<Arc<NumberIndex>>,
    /// LeaseFailover caches of every watched namespace.
    pub failovers: Vec<Store<LeaseFailover>>,
    /// Per-object backoff.
    pub backoff: Backoff,
    /// Resources stalled on a permanent error, with what they were stalled on.
    pub stalls: StallMemo,
    /// This process's last status write per object.
    pub writes: crate::status::WriteMemo,
    /// Asks the NumberLease controllers to reconcile an object (e.g. when a claim is released).
    pub lease_requeue: super::Requeue<NumberLease>,
    /// Asks the LeaseFailover controllers to reconcile an object.
    pub failover_requeue: super::Requeue<LeaseFailover>,
}

/// Remembers which generation and Secret version a resource was stalled on, so a permanent
/// error is not retried until the spec or the Secret changes.
#[derive(Default)]
pub struct StallMemo {
    entries: Mutex<HashMap<String, StalledOn>>,
}

/// The generation and Secret resourceVersion a resource stalled on.
type StalledOn = (Option<i64>, Option<String>);

impl StallMemo {
    /// Records that `key` stalled at `generation` with the Secret at `secret_version`.
    pub fn remember(&self, key: &str, generation: Option<i64>, secret_version: Option<String>) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(key.to_string(), (generation, secret_version));
        }
    }

    /// True when `key` stalled on exactly this generation and Secret version.
    pub fn unchanged(&self, key: &str, generation: Option<i64>, secret_version: Option<&str>) -> bool {
        self.entries
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .is_some_and(|(g, v)| g == generation && v.as_deref() == secret_version)
    }

    /// Forgets `key` (it made progress or is gone).
    pub fn forget(&self, key: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(key);
        }
    }
}

impl Context {
    /// A Contiguity client for a resource in `namespace`.
    pub async fn contiguity(&self, namespace: &str, secret: Option<&SecretKeyRef>) -> Result<ContiguityClient, Error> {
        let token = self.credentials.token(namespace, secret).await?;
        Ok(self.pool.client(token)?)
    }

    /// True once every NumberLease and LeaseFailover cache has its initial list. Ownership
    /// checks ("is there an older claimant?", "does the referenced lease exist?") are only
    /// sound on complete caches, and right after a start the watches are still listing. This
    /// never blocks: the caches are fed by the controllers' own streams, which a reconcile
    /// waiting here would hold up.
    pub fn caches_ready(&self) -> bool {
        use futures::FutureExt;
        self.leases
            .iter()
            .all(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
            && self
                .failovers
                .iter()
                .all(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
    }

    /// Queues a NumberLease for reconcile.
    pub fn requeue_lease(&self, r: ObjectRef<NumberLease>) {
        self.lease_requeue.send(r);
    }

    /// Queues a LeaseFailover for reconcile.
    pub fn requeue_failover(&self, r: ObjectRef<LeaseFailover>) {
        self.failover_requeue.send(r);
    }

    /// The cached NumberLeases (every watched namespace) that declare `number`, found through
    /// the number index rather than a scan of the caches.
    pub fn leases_declaring(&self, number: &str) -> Vec<Arc<NumberLease>> {
        self.leases
            .iter()
            .zip(&self.numbers)
            .flat_map(|(store, index)| index.declaring(number).into_iter().filter_map(|key| store.get(&key)))
            .filter(|nl| nl.spec.number == number)
            .collect()
    }

    /// The cached NumberLease `ns/name`, if any.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Arc<NumberLease>> {
        let key = ObjectRef::new(name).within(ns);
        self.leases.iter().find_map(|s| s.get(&key))
    }

    /// The cached LeaseFailovers (every watched namespace) for which `pred` holds. The caches'
    /// read locks are held only to copy out their handles, and `pred` runs after: evaluating
    /// it under the lock (kube's `state_filter`) holds up the watch that feeds the cache.
    pub fn failovers_where(&self, pred: impl Fn(&LeaseFailover) -> bool) -> Vec<Arc<LeaseFailover>> {
        self.failovers
            .iter()
            .flat_map(|s| s.state())
            .filter(|lf| pred(lf))
            .collect()
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Err(e) = self.events.publish(obj, type_, reason, action, &note).await {
            tracing::warn!(error = %e, reason, "publishing an Event failed");
        }
    }
}
