//! What both reconcilers share: the finalizer-wrapped reconcile with metrics and backoff,
//! the error policy, status writing, and how permanent and transient failures are reported.
//! Each kind supplies its apply and cleanup through [`Managed`].

use super::context::Context;
use super::error::Error;
use crate::crd::{ConditionType, ConditionedStatus};
use crate::status::{Phase, apply_status, conditions, is_true, now_rfc3339, reason_of};
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reason of a transient Contiguity failure (Reconciling=True).
pub const CONTIGUITY_UNAVAILABLE: &str = "ContiguityUnavailable";
/// Reason while waiting for Contiguity's Retry-After (Reconciling=True).
pub const RATE_LIMITED: &str = "RateLimited";

/// A kind the operator manages.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: ConditionedStatus + Clone + Default + PartialEq + Serialize + Send + Sync;
    /// Kind label in metrics and logs.
    const KIND: &'static str;
    /// The finalizer guarding the external state.
    const FINALIZER: &'static str;
    /// Prefix of backoff and memo keys.
    const KEY_PREFIX: &'static str;

    /// The current status, if any.
    fn status_of(&self) -> Option<&Self::Status>;

    /// Converges the external state on the spec. The finalizer may not be in place yet:
    /// [`write`] adds it before the first status write, and an implementation calls
    /// [`ensure_finalizer`] itself before it changes anything outside the cluster.
    fn apply(obj: &Self, api: &Api<Self>, ctx: &Context) -> impl Future<Output = Result<Action, Error>> + Send;

    /// Undoes the external state on delete; the finalizer is removed when this succeeds.
    fn cleanup(obj: &Self, api: &Api<Self>, ctx: &Context) -> impl Future<Output = Result<Action, Error>> + Send;
}

/// Reconciles one object of kind `K`.
pub async fn reconcile<K: Managed>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    if !ctx.caches_ready() {
        return Ok(Action::requeue(Duration::from_millis(250)));
    }
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::InvalidObject(format!("{} without namespace", K::KIND)))?;
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &ns);
    let key = object_key(&*obj);
    let result = if obj.meta().deletion_timestamp.is_some() {
        if has_finalizer(&*obj) {
            match K::cleanup(&obj, &api, &ctx).await {
                Ok(action) => {
                    remove_finalizer(&api, &*obj).await?;
                    ctx.stalls.forget(&key);
                    ctx.writes.forget(obj.meta().uid.as_deref());
                    Ok(action)
                }
                Err(e) => Err(e),
            }
        } else {
            // Nothing of ours guards it: the API server removes it once other finalizers go.
            Ok(Action::await_change())
        }
    } else if ctx.writes.is_stale(&*obj) {
        // Triggered by a watch event older than our own last write: that write's event is on
        // its way; acting now would redo finished work on stale status.
        Ok(Action::requeue(Duration::from_secs(5)))
    } else if !has_finalizer(&*obj) && obj.status_of().is_some() {
        // The operator has written status, so the finalizer was there and somebody removed
        // it: put it back now rather than at the next status write, or a delete in between
        // would skip the cleanup. The restore's own watch event runs the reconcile again.
        ensure_finalizer(&ctx, &*obj, &api, &[])
            .await
            .map(|_| Action::await_change())
    } else {
        K::apply(&obj, &api, &ctx).await
    };
    let label = match &result {
        Ok(_) => {
            ctx.backoff.reset(&key);
            "ok"
        }
        Err(e) => e.category(),
    };
    ctx.metrics.reconciled(K::KIND, label, started.elapsed());
    result
}

/// After a failed reconcile: per-object exponential backoff with jitter, never sooner than a
/// server's Retry-After.
pub fn error_policy<K: Managed>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next_delay(&object_key(&*obj), err.retry_after());
    tracing::warn!(
        kind = K::KIND,
        name = %obj.name_any(),
        namespace = obj.namespace().as_deref().unwrap_or(""),
        error = %err,
        category = err.category(),
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Key of an object in the backoff and stall memos.
pub fn object_key<K: Managed>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::KEY_PREFIX,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The status without its conditions, as a base for the next write.
pub fn base_status<K: Managed>(obj: &K) -> K::Status {
    let mut st = obj.status_of().cloned().unwrap_or_default();
    st.set_conditions(Vec::new());
    st
}

/// Writes `st` with the conditions of `phase` (and observedGeneration), unless nothing
/// changed. Remembers the write so stale watch events are recognised.
pub async fn write<K: Managed>(
    ctx: &Context,
    obj: &K,
    api: &Api<K>,
    mut st: K::Status,
    phase: &Phase,
) -> Result<(), Error> {
    let old = obj.status_of().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    st.set_observed_generation(generation);
    st.set_conditions(conditions(old.conditions(), generation, phase, &now_rfc3339()));
    if st == old {
        return Ok(());
    }
    let guarded;
    let obj = if has_finalizer(obj) || obj.meta().deletion_timestamp.is_some() {
        obj
    } else {
        // The first write about an object brings the finalizer: whatever status says from now
        // on, deleting the object passes through cleanup.
        guarded = ensure_finalizer(ctx, obj, api, &[]).await?;
        &guarded
    };
    let rv = apply_status(api, obj, &st).await?;
    ctx.writes.wrote(obj.meta().uid.clone(), rv);
    Ok(())
}

/// Whether `obj` carries the finalizer of its kind.
pub fn has_finalizer<K: Managed>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == K::FINALIZER)
}

/// Adds the finalizer of the kind and sets `annotations` (a `None` value removes one) in a
/// single write, unless all are in place already. Returns the object as written.
///
/// The write is conditional on the resourceVersion `obj` was read at: a reconcile working
/// from a stale cache gets a conflict (retried) instead of acting on what it believed.
/// Call it before changing anything outside the cluster, so that a crash right after still
/// leaves the object guarded (and marked).
pub async fn ensure_finalizer<K: Managed>(
    ctx: &Context,
    obj: &K,
    api: &Api<K>,
    annotations: &[(&str, Option<String>)],
) -> Result<K, Error> {
    let current = obj.annotations();
    let annotations_set = annotations
        .iter()
        .all(|(k, v)| current.get(*k).map(String::as_str) == v.as_deref());
    if has_finalizer(obj) && annotations_set {
        return Ok(obj.clone());
    }
    let mut finalizers = obj.finalizers().to_vec();
    if !has_finalizer(obj) {
        finalizers.push(K::FINALIZER.to_string());
    }
    let mut meta = serde_json::json!({
        "resourceVersion": obj.resource_version(),
        "finalizers": finalizers,
    });
    if !annotations.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.clone().map_or(serde_json::Value::Null, serde_json::Value::String),
                )
            })
            .collect();
        meta["annotations"] = serde_json::Value::Object(map);
    }
    let body = serde_json::json!({ "metadata": meta });
    let written = api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| Error::Finalizer(format!("writing the finalizer and annotations failed: {e}")))?;
    ctx.writes
        .wrote(written.meta().uid.clone(), written.meta().resource_version.clone());
    Ok(written)
}

/// Removes the finalizer of the kind, on the condition that it is still where `obj` has it.
async fn remove_finalizer<K: Managed>(api: &Api<K>, obj: &K) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == K::FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = serde_json::json!([
        { "op": "test", "path": path, "value": K::FINALIZER },
        { "op": "remove", "path": path },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| Error::Finalizer(format!("building the finalizer removal failed: {e}")))?;
    match api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(()),
        // Already gone (another replica finished first, or the object was removed).
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Finalizer(format!("removing the finalizer failed: {e}"))),
    }
}

/// Reports a permanent failure: Stalled, a Warning Event (once per reason and generation),
/// no retry until the spec or the Secret changes. `memo` is the Secret version to remember,
/// or `None` for stalls that other objects' changes lift (claims), which must be re-checked.
pub async fn stall<K: Managed>(
    ctx: &Context,
    obj: &K,
    api: &Api<K>,
    st: K::Status,
    reason: &'static str,
    message: String,
    memo: Option<Option<String>>,
) -> Result<Action, Error> {
    let old = obj.status_of().cloned().unwrap_or_default();
    let already = is_true(old.conditions(), ConditionType::Stalled)
        && reason_of(old.conditions(), ConditionType::Stalled) == Some(reason)
        && old.observed_generation() == obj.meta().generation;
    if !already {
        ctx.event(obj, EventType::Warning, reason, "Reconcile", message.clone())
            .await;
    }
    write(ctx, obj, api, st, &Phase::Stalled { reason, message }).await?;
    match memo {
        Some(version) => {
            ctx.stalls.remember(&object_key(obj), obj.meta().generation, version);
            Ok(Action::await_change())
        }
        // Lifted by another object's change, which may reach the caches after the event that
        // would re-trigger this one: re-check the caches (no external calls) periodically.
        None => Ok(Action::requeue(RECHECK)),
    }
}

/// How often a resource waiting on another object (a claim, a referenced lease) re-checks the
/// caches. Such a check makes no external call.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Reflects a transient failure in the conditions. A resource that is Ready for its current
/// generation stays Ready: a failed drift check does not make a working lease unready.
pub async fn note_transient<K: Managed>(ctx: &Context, obj: &K, api: &Api<K>, err: &Error) {
    let old = obj.status_of().cloned().unwrap_or_default();
    if is_true(old.conditions(), ConditionType::Ready) && old.observed_generation() == obj.meta().generation {
        return;
    }
    let reason = match err {
        Error::Contiguity(e) if e.is_rate_limited() => RATE_LIMITED,
        Error::Contiguity(_) => CONTIGUITY_UNAVAILABLE,
        _ => return,
    };
    let phase = Phase::Progressing {
        reason,
        message: format!("{err}; retrying with backoff"),
    };
    // Build on a fresh read: this reconcile may have written status (createRequestedAt) that
    // the cached object does not show yet, and dropping it would forget an in-flight create.
    let fresh = match api.get_opt(&obj.name_any()).await {
        Ok(Some(f)) if f.meta().uid == obj.meta().uid => f,
        Ok(_) => return,
        Err(e) => {
            tracing::debug!(error = %e, "could not re-read the object to record a transient failure");
            return;
        }
    };
    let base = base_status(&fresh);
    if let Err(e) = write(ctx, &fresh, api, base, &phase).await {
        tracing::debug!(error = %e, "could not record a transient failure in status");
    }
}
