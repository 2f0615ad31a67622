//! The controllers: one reconciler per kind ([`number_lease`], [`lease_failover`]) and the
//! wiring that runs them over one or more watched namespaces.
//!
//! Each watched scope (one namespace, or the whole cluster) gets a NumberLease controller and a
//! LeaseFailover controller, sharing one NumberLease watch. Caches drop `managedFields` to
//! save memory. Secrets are watched metadata-only (their values are read on demand and cached
//! by resourceVersion) so that a changed Secret re-triggers the resources that reference it.

pub mod backoff;
pub mod context;
pub mod credentials;
pub mod error;
pub mod events;
pub mod lease_failover;
pub mod leased_snapshot;
pub mod number_index;
pub mod number_lease;
pub mod reconcile;

use crate::contiguity::{ApiToken, ClientConfig, ClientPool};
use crate::crd::{LeaseFailover, NumberLease};
use crate::metrics::Metrics;
use backoff::Backoff;
use context::{Context, Settings, StallMemo};
use credentials::Credentials;
use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector::reflector, watcher};
use kube::{Resource, ResourceExt};
use leased_snapshot::LeasedSnapshots;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Name of the operator as Events and field managers show it.
pub const CONTROLLER_NAME: &str = "contiguity-operator";

/// What the controllers need to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Namespaces to watch; empty means every namespace.
    pub namespaces: Vec<String>,
    /// Only resources matching this label selector are managed.
    pub label_selector: Option<String>,
    /// Reconciles running at once, per kind and watched scope.
    pub concurrency: u16,
    /// Reconciler tunables.
    pub settings: Settings,
    /// Contiguity client settings.
    pub client: ClientConfig,
    /// Token used when a resource has no credentialsSecretRef.
    pub default_token: Option<ApiToken>,
    /// Instance name in Events (the pod name).
    pub instance: Option<String>,
}

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CRDs are not installed (or not readable) after waiting.
    #[error("the contiguity.com CRDs are not available: {0}. Install them with `kubectl apply -f crds/`")]
    CrdsMissing(String),
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Runs both controllers until `shutdown` resolves. `ready` turns true once the CRDs were
/// found and the controllers started.
pub async fn run(
    client: kube::Client,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    wait_for_crds(&client, &scopes).await?;

    let shutdown = shutdown.shared();
    let mut lease_txs = Vec::new();
    let mut failover_txs = Vec::new();
    let mut lease_stores = Vec::new();
    let mut number_indexes = Vec::new();
    let mut failover_stores = Vec::new();
    let mut secret_stores = Vec::new();
    let mut pending = Vec::new();

    for scope in &scopes {
        let wc = {
            let wc = watcher::Config::default().any_semantic();
            match &opts.label_selector {
                Some(sel) => wc.labels(sel),
                None => wc,
            }
        };
        let nl_api: Api<NumberLease> = scoped(&client, scope);
        let lf_api: Api<LeaseFailover> = scoped(&client, scope);
        let secret_api: Api<PartialObjectMeta<Secret>> = scoped_meta(&client, scope);

        // One NumberLease watch feeds both controllers: its cache and the NumberLease
        // controller directly, and the LeaseFailover controller through a subscription.
        let (nl_reader, nl_writer) = reflector::store_shared(SHARED_BUFFER);
        #[allow(clippy::expect_used)] // start-up: a shared store always hands out subscriptions
        let nl_changes = nl_writer.subscribe().expect("a shared store can be subscribed to");
        // Only spec (generation; deletion bumps it too) and finalizer changes trigger a
        // reconcile: the operator's own status writes would otherwise re-run the reconcile on
        // a cache that may not show the last write yet (a second lookup and status write).
        // The cache itself still sees every change; resyncs and retries are requeues.
        let nl_index = Arc::new(number_index::NumberIndex::default());
        let indexer = nl_index.clone();
        let nl_stream = watcher(nl_api.clone(), wc.clone())
            .default_backoff()
            .modify(strip)
            .map(move |event| {
                if let Ok(e) = &event {
                    indexer.observe(e);
                }
                event
            })
            .reflect_shared(nl_writer)
            .applied_objects()
            .predicate_filter(
                predicates::generation.combine(predicates::finalizers),
                PredicateConfig::default(),
            );
        let (lf_reader, lf_writer) = reflector::store();
        let lf_stream =
            reflector(lf_writer, watcher(lf_api, wc.clone()).default_backoff().modify(strip)).applied_objects();
        let (secret_reader, secret_writer) = reflector::store();
        let secret_stream = reflector(
            secret_writer,
            watcher(secret_api, watcher::Config::default().any_semantic()).default_backoff(),
        )
        .touched_objects();

        let (lease_tx, lease_rx) = mpsc::unbounded();
        let (failover_tx, failover_rx) = mpsc::unbounded();
        lease_txs.push((scope.clone(), lease_tx));
        failover_txs.push((scope.clone(), failover_tx));

        // A Secret change re-triggers the NumberLeases that reference it.
        let leases_for_secret = nl_reader.clone();
        let nl_controller = Controller::for_stream(nl_stream, nl_reader.clone())
            .watches_stream(secret_stream, move |secret| {
                let ns = secret.namespace();
                let name = secret.name_any();
                leases_for_secret
                    .state()
                    .into_iter()
                    .filter(|nl| {
                        nl.metadata.namespace == ns
                            && nl.spec.credentials_secret_ref.as_ref().is_some_and(|r| r.name == name)
                    })
                    .map(|nl| ObjectRef::from_obj(&*nl))
                    .collect::<Vec<_>>()
            })
            .reconcile_on(lease_rx)
            .with_config(ControllerConfig::default().concurrency(opts.concurrency));

        // A NumberLease change re-triggers the LeaseFailovers that reference it.
        let failovers_for_lease = lf_reader.clone();
        let lf_controller = Controller::for_stream(lf_stream, lf_reader.clone())
            .watches_shared_stream(nl_changes, move |nl| {
                let ns = nl.namespace();
                let name = nl.name_any();
                failovers_for_lease
                    .state()
                    .into_iter()
                    .filter(|lf| {
                        lf.metadata.namespace == ns && lf.spec.lease_ref.as_ref().is_some_and(|r| r.name == name)
                    })
                    .map(|lf| ObjectRef::from_obj(&*lf))
                    .collect::<Vec<_>>()
            })
            .reconcile_on(failover_rx)
            .with_config(ControllerConfig::default().concurrency(opts.concurrency));

        lease_stores.push(nl_reader);
        number_indexes.push(nl_index);
        failover_stores.push(lf_reader);
        secret_stores.push(secret_reader);
        pending.push((nl_controller, lf_controller));
    }

    let observer: Arc<dyn crate::contiguity::CallObserver> = metrics.clone();
    let ctx = Arc::new(Context {
        kube: client.clone(),
        settings: opts.settings.clone(),
        pool: ClientPool::new(opts.client.clone(), Some(observer)),
        credentials: Credentials::new(client.clone(), opts.default_token.clone(), secret_stores),
        snapshots: LeasedSnapshots::default(),
        events: events::Events::new(client.clone(), CONTROLLER_NAME, opts.instance.clone()),
        metrics: metrics.clone(),
        leases: lease_stores,
        numbers: number_indexes,
        failovers: failover_stores,
        backoff: Backoff::new(opts.settings.backoff_base, opts.settings.backoff_max),
        stalls: StallMemo::default(),
        writes: crate::status::WriteMemo::default(),
        lease_requeue: Requeue::new(lease_txs),
        failover_requeue: Requeue::new(failover_txs),
    });

    let mut runs: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    for (nl_controller, lf_controller) in pending {
        let s1: Shutdown = Box::pin(shutdown.clone());
        let s2: Shutdown = Box::pin(shutdown.clone());
        runs.push(Box::pin(drain(nl_controller.graceful_shutdown_on(s1).run(
            reconcile::reconcile::<NumberLease>,
            reconcile::error_policy::<NumberLease>,
            ctx.clone(),
        ))));
        runs.push(Box::pin(drain(lf_controller.graceful_shutdown_on(s2).run(
            reconcile::reconcile::<LeaseFailover>,
            reconcile::error_policy::<LeaseFailover>,
            ctx.clone(),
        ))));
    }
    ready.store(true, Ordering::SeqCst);
    tracing::info!(scopes = ?scopes, concurrency = opts.concurrency, "controllers started");
    futures::future::join_all(runs).await;
    ready.store(false, Ordering::SeqCst);
    tracing::info!("controllers stopped");
    Ok(())
}

/// NumberLease changes buffered for the LeaseFailover controller before the shared watch
/// waits for it to catch up.
const SHARED_BUFFER: usize = 1024;

/// Routes reconcile requests to the controller of the object's scope.
pub struct Requeue<K: Resource> {
    senders: Vec<(Option<String>, mpsc::UnboundedSender<ObjectRef<K>>)>,
}

impl<K: Resource<DynamicType = ()>> Requeue<K> {
    fn new(senders: Vec<(Option<String>, mpsc::UnboundedSender<ObjectRef<K>>)>) -> Self {
        Self { senders }
    }

    /// Queues `r` for reconcile (dropped if no controller watches its namespace).
    pub fn send(&self, r: ObjectRef<K>) {
        if let Some((_, tx)) = self
            .senders
            .iter()
            .find(|(scope, _)| scope.is_none() || *scope == r.namespace)
        {
            let _ = tx.unbounded_send(r);
        }
    }
}

fn scoped<K>(client: &kube::Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn scoped_meta<K>(client: &kube::Client, scope: &Option<String>) -> Api<PartialObjectMeta<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Drops managedFields before objects enter a cache: they are large and never read here.
fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

async fn drain<S, T, E>(stream: S)
where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Waits (up to about a minute, logging) until the CRDs answer a list in every scope.
async fn wait_for_crds(client: &kube::Client, scopes: &[Option<String>]) -> Result<(), RunError> {
    let mut last = String::new();
    for attempt in 0..30u32 {
        let mut ok = true;
        for scope in scopes {
            let nl: Api<NumberLease> = scoped(client, scope);
            let lf: Api<LeaseFailover> = scoped(client, scope);
            let lp = ListParams::default().limit(1);
            if let Err(e) = nl.list_metadata(&lp).await {
                ok = false;
                last = e.to_string();
            } else if let Err(e) = lf.list_metadata(&lp).await {
                ok = false;
                last = e.to_string();
            }
        }
        if ok {
            return Ok(());
        }
        tracing::warn!(attempt, error = %last, "CRDs not available yet; install them with `kubectl apply -f crds/`");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(RunError::CrdsMissing(last))
}
