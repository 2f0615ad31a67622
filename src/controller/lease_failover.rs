//! The LeaseFailover reconciler: configures a leased number as a failover target
//! (`POST /numbers/{n}/configure`) when the applied configuration differs from the spec,
//! re-applies drift found at resync, and disables failover on delete.

use super::backoff::jitter;
use super::context::Context;
use super::error::Error;
use super::reconcile::{self, Managed, write};
use crate::contiguity::{self, ContiguityClient, FailoverConfig};
use crate::crd::{
    AppliedFailover, ConditionType, FailoverMode, LeaseFailover, LeaseFailoverStatus, NumberLease, SecretKeyRef,
};
use crate::status::{Phase, is_true, now_rfc3339, reason_of};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;

/// Finalizer that resets the failover configuration on delete.
pub const FINALIZER: &str = "contiguity.com/reset-failover";
/// Kind label in metrics.
pub const KIND: &str = "LeaseFailover";

/// Condition reasons written by this reconciler.
pub mod reason {
    /// Ready: Contiguity has the declared configuration.
    pub const CONFIGURED: &str = "FailoverConfigured";
    /// Progressing: the referenced NumberLease is missing or not Ready.
    pub const LEASE_NOT_READY: &str = "LeaseNotReady";
    pub use super::super::reconcile::{CONTIGUITY_UNAVAILABLE, RATE_LIMITED};
    /// Stalled: an older LeaseFailover configures the same number.
    pub const FAILOVER_CLAIMED: &str = "FailoverClaimed";
    /// Stalled: the spec cannot be applied (e.g. the target is in its own list).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Stalled: the account does not lease the target number.
    pub const NUMBER_NOT_LEASED: &str = "NumberNotLeased";
    /// Stalled: the target number belongs to a NumberLease in another namespace.
    pub const NUMBER_OWNED_ELSEWHERE: &str = "NumberOwnedElsewhere";
    /// Stalled: Contiguity rejected the token.
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    /// Stalled: Contiguity refused the configuration.
    pub const REQUEST_REFUSED: &str = "RequestRefused";
}

impl Managed for LeaseFailover {
    type Status = LeaseFailoverStatus;
    const KIND: &'static str = KIND;
    const FINALIZER: &'static str = FINALIZER;
    const KEY_PREFIX: &'static str = "lf";

    fn status_of(&self) -> Option<&LeaseFailoverStatus> {
        self.status.as_ref()
    }

    fn apply(
        obj: &Self,
        api: &Api<Self>,
        ctx: &Context,
    ) -> impl std::future::Future<Output = Result<Action, Error>> + Send {
        apply(obj, api, ctx)
    }

    fn cleanup(
        obj: &Self,
        _api: &Api<Self>,
        ctx: &Context,
    ) -> impl std::future::Future<Output = Result<Action, Error>> + Send {
        cleanup(obj, ctx)
    }
}

/// Where a LeaseFailover points.
enum Target {
    /// A number and the credentials to configure it with.
    Number {
        number: String,
        secret: Option<SecretKeyRef>,
    },
    /// The referenced NumberLease is missing or not Ready.
    NotReady(String),
}

fn referenced_lease(lf: &LeaseFailover, ctx: &Context) -> Option<Arc<NumberLease>> {
    let name = &lf.spec.lease_ref.as_ref()?.name;
    ctx.lease(lf.metadata.namespace.as_deref()?, name)
}

fn resolve_target(lf: &LeaseFailover, ctx: &Context) -> Target {
    if let Some(number) = &lf.spec.number {
        let ns = lf.metadata.namespace.as_deref();
        let secret = ctx
            .leases_declaring(number)
            .into_iter()
            .find(|nl| nl.metadata.namespace.as_deref() == ns)
            .and_then(|nl| nl.spec.credentials_secret_ref.clone());
        return Target::Number {
            number: number.clone(),
            secret,
        };
    }
    let name = lf.spec.lease_ref.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let Some(nl) = referenced_lease(lf, ctx) else {
        return Target::NotReady(format!("NumberLease {name} does not exist yet"));
    };
    let st = nl.status.clone().unwrap_or_default();
    let ready = is_true(&st.conditions, ConditionType::Ready) && st.observed_generation == nl.metadata.generation;
    match (ready, st.number) {
        (true, Some(number)) if nl.metadata.deletion_timestamp.is_none() => Target::Number {
            number,
            secret: nl.spec.credentials_secret_ref.clone(),
        },
        _ => Target::NotReady(format!(
            "NumberLease {name} is not Ready ({})",
            reason_of(&st.conditions, ConditionType::Ready).unwrap_or("no status yet")
        )),
    }
}

/// The older LeaseFailover (any watched namespace) that targets the same number, if any.
fn older_claimant(lf: &LeaseFailover, number: &str, ctx: &Context) -> Option<Arc<LeaseFailover>> {
    let mine = claim_rank(lf, number);
    ctx.failovers_where(|o| o.metadata.uid != lf.metadata.uid)
        .into_iter()
        .filter(|o| match resolve_target(o, ctx) {
            Target::Number { number: n, .. } => n == number,
            Target::NotReady(_) => false,
        })
        .filter(|o| claim_rank(o, number) < mine)
        .min_by_key(|o| claim_rank(o, number))
}

/// Orders the claimants of one number: the one that has applied a configuration to it first,
/// then the oldest, then by uid (creation timestamps have one-second precision).
fn claim_rank(
    lf: &LeaseFailover,
    number: &str,
) -> (
    bool,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    Option<String>,
) {
    let applied = lf
        .status
        .as_ref()
        .is_some_and(|s| s.applied.is_some() && s.number.as_deref() == Some(number));
    (!applied, lf.metadata.creation_timestamp.clone(), lf.uid())
}

async fn apply(lf: &LeaseFailover, api: &Api<LeaseFailover>, ctx: &Context) -> Result<Action, Error> {
    let ns = lf.namespace().unwrap_or_default();
    let old = lf.status.clone().unwrap_or_default();
    let (number, secret) = match resolve_target(lf, ctx) {
        Target::Number { number, secret } => (number, secret),
        Target::NotReady(message) => {
            let phase = Phase::Progressing {
                reason: reason::LEASE_NOT_READY,
                message,
            };
            write(ctx, lf, api, base_status(&old), &phase).await?;
            // The NumberLease watch re-triggers this resource when the lease changes; its event
            // can precede the cache update, so re-check the cache too (no external call).
            return Ok(Action::requeue(reconcile::RECHECK));
        }
    };
    let mut st = base_status(&old);
    st.number = Some(number.clone());
    // Tenancy: a namespace may only configure numbers that no other namespace's
    // NumberLease declares.
    if let Some(owner) = ctx
        .leases_declaring(&number)
        .into_iter()
        .filter(|nl| nl.metadata.namespace.as_deref() != Some(ns.as_str()))
        .min_by_key(|nl| (nl.metadata.creation_timestamp.clone(), nl.uid()))
    {
        let message = format!(
            "number {number} is declared by NumberLease {}/{} in another namespace; a LeaseFailover may only configure numbers of its own namespace",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        );
        return stall(lf, api, ctx, st, reason::NUMBER_OWNED_ELSEWHERE, message).await;
    }
    if let Some(owner) = older_claimant(lf, &number, ctx) {
        let message = format!(
            "failover of {number} is already configured by the older LeaseFailover {}/{}",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        );
        return stall(lf, api, ctx, st, reason::FAILOVER_CLAIMED, message).await;
    }
    let desired = lf.spec.desired();
    if desired.numbers.iter().any(|n| n == &number) {
        let message = format!("numbers must not contain the target {number} itself");
        return stall(lf, api, ctx, st, reason::INVALID_SPEC, message).await;
    }
    let client = match ctx.contiguity(&ns, secret.as_ref()).await {
        Ok(c) => c,
        Err(Error::Credentials { reason, message }) => return stall(lf, api, ctx, st, reason, message).await,
        Err(e) => return Err(e),
    };
    let key = reconcile::object_key(lf);
    let secret_version = ctx.credentials.secret_version(&ns, secret.as_ref());
    if ctx
        .stalls
        .unchanged(&key, lf.metadata.generation, secret_version.as_deref())
    {
        return Ok(Action::await_change());
    }
    let result = converge(lf, api, ctx, &client, st, &number, desired).await;
    match result {
        Ok(a) => Ok(a),
        Err(Error::Contiguity(e)) if !e.is_transient() => {
            let (reason, message) = classify_permanent(&e, &number);
            let mut st = base_status(&old);
            st.number = Some(number.clone());
            stall(lf, api, ctx, st, reason, message).await
        }
        Err(e) => {
            reconcile::note_transient(ctx, lf, api, &e).await;
            Err(e)
        }
    }
}

async fn converge(
    lf: &LeaseFailover,
    api: &Api<LeaseFailover>,
    ctx: &Context,
    client: &ContiguityClient,
    mut st: LeaseFailoverStatus,
    number: &str,
    desired: AppliedFailover,
) -> Result<Action, Error> {
    let resync = jitter(ctx.settings.resync_interval, 0.1);
    let applied_matches =
        st.applied.as_ref() == Some(&desired) && lf.status.as_ref().and_then(|s| s.number.as_deref()) == Some(number);
    let generation_seen = st.observed_generation == lf.metadata.generation;
    let mut drift = false;
    if applied_matches {
        if generation_seen && is_fresh(&st, ctx.settings.resync_interval) {
            return Ok(Action::requeue(remaining(&st, resync)));
        }
        // Compare with what Contiguity reports, when it reports failover at all.
        let snap = ctx.snapshots.get(client, ctx.settings.resync_interval, None).await?;
        match snap.numbers.get(number).and_then(|r| r.failover.clone()) {
            Some(actual) if canonical(&actual) != desired => drift = true,
            _ => {
                st.last_sync_time = Some(now_rfc3339());
                let phase = ready_phase(number, &desired);
                write(ctx, lf, api, st, &phase).await?;
                return Ok(Action::requeue(resync));
            }
        }
    }
    let body = FailoverConfig {
        enabled: desired.enabled,
        mode: Some(match lf.spec.mode {
            FailoverMode::All => contiguity::FailoverMode::All,
            FailoverMode::Selective => contiguity::FailoverMode::Selective,
        }),
        numbers: desired.numbers.clone(),
    };
    // A crash right after the configure must still leave the resource guarded, so that
    // deleting it disables failover.
    let lf = &reconcile::ensure_finalizer(ctx, lf, api, &[]).await?;
    client.configure(number, &body).await?;
    ctx.snapshots.invalidate(client);
    let note = if drift {
        format!(
            "failover of {number} had drifted at Contiguity; re-applied {}",
            describe(&desired)
        )
    } else {
        format!("configured failover of {number}: {}", describe(&desired))
    };
    let reason = if drift {
        "FailoverDriftCorrected"
    } else {
        "FailoverConfigured"
    };
    ctx.event(lf, EventType::Normal, reason, "Configure", note).await;
    st.applied = Some(desired.clone());
    st.last_sync_time = Some(now_rfc3339());
    let phase = ready_phase(number, &desired);
    write(ctx, lf, api, st, &phase).await?;
    Ok(Action::requeue(resync))
}

async fn cleanup(lf: &LeaseFailover, ctx: &Context) -> Result<Action, Error> {
    let release = |ctx: &Context| {
        for other in ctx.failovers_where(|o| o.metadata.uid != lf.metadata.uid) {
            ctx.requeue_failover(ObjectRef::from_obj(&*other));
        }
    };
    if !may_have_enabled(lf) {
        release(ctx);
        return Ok(Action::await_change());
    }
    // Even when the NumberLease is gone the lease may live on (deletionPolicy Retain):
    // Contiguity answers 404 below when the lease is really gone.
    let status = lf.status.clone().unwrap_or_default();
    let number = status
        .number
        .or_else(|| lf.spec.number.clone())
        .or_else(|| referenced_lease(lf, ctx).and_then(|nl| nl.status.clone().and_then(|s| s.number)));
    let Some(number) = number else {
        // The target never resolved, so nothing was configured.
        release(ctx);
        return Ok(Action::await_change());
    };
    let secret = match resolve_target(lf, ctx) {
        Target::Number { secret, .. } => secret,
        Target::NotReady(_) => referenced_lease(lf, ctx).and_then(|nl| nl.spec.credentials_secret_ref.clone()),
    };
    let ns = lf.namespace().unwrap_or_default();
    let client = ctx.contiguity(&ns, secret.as_ref()).await?;
    let off = FailoverConfig {
        enabled: false,
        mode: None,
        numbers: Vec::new(),
    };
    match client.configure(&number, &off).await {
        Ok(_) => {
            ctx.event(
                lf,
                EventType::Normal,
                "FailoverDisabled",
                "Configure",
                format!("disabled failover of {number}"),
            )
            .await;
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    ctx.snapshots.invalidate(&client);
    release(ctx);
    Ok(Action::await_change())
}

/// Whether this LeaseFailover may have enabled failover at Contiguity. A configure whose
/// outcome was never recorded (a crash, a lost reply) counts as possibly applied, so deleting
/// the resource disables failover rather than leaving it on.
pub fn may_have_enabled(lf: &LeaseFailover) -> bool {
    let status = lf.status.clone().unwrap_or_default();
    let never_owner = is_true(&status.conditions, ConditionType::Stalled)
        && matches!(
            reason_of(&status.conditions, ConditionType::Stalled),
            Some(reason::FAILOVER_CLAIMED) | Some(reason::NUMBER_OWNED_ELSEWHERE)
        )
        && status.applied.is_none();
    if never_owner {
        return false;
    }
    status.applied.as_ref().is_some_and(|a| a.enabled) || lf.spec.enabled
}

fn ready_phase(number: &str, desired: &AppliedFailover) -> Phase {
    Phase::Ready {
        reason: reason::CONFIGURED,
        message: format!("failover of {number}: {}", describe(desired)),
    }
}

fn describe(a: &AppliedFailover) -> String {
    match (a.enabled, a.mode.as_deref()) {
        (false, _) => "disabled".to_string(),
        (true, Some("selective")) => format!("enabled for {}", a.numbers.join(", ")),
        (true, _) => "enabled for all numbers".to_string(),
    }
}

fn canonical(c: &FailoverConfig) -> AppliedFailover {
    let mut numbers = c.numbers.clone();
    numbers.sort();
    numbers.dedup();
    let mode = c.mode.as_ref().map(|m| m.as_str().to_string());
    if mode.as_deref() != Some("selective") {
        numbers.clear();
    }
    AppliedFailover {
        enabled: c.enabled,
        mode,
        numbers,
    }
}

/// Reports a permanent failure (see [`reconcile::stall`]). Claims and foreign ownership are
/// lifted by other objects' changes, so they are re-checked rather than remembered.
async fn stall(
    lf: &LeaseFailover,
    api: &Api<LeaseFailover>,
    ctx: &Context,
    st: LeaseFailoverStatus,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let memo = (reason != reason::FAILOVER_CLAIMED && reason != reason::NUMBER_OWNED_ELSEWHERE).then(|| {
        let ns = lf.namespace().unwrap_or_default();
        let secret = match resolve_target(lf, ctx) {
            Target::Number { secret, .. } => secret,
            Target::NotReady(_) => None,
        };
        ctx.credentials.secret_version(&ns, secret.as_ref())
    });
    reconcile::stall(ctx, lf, api, st, reason, message, memo).await
}

fn classify_permanent(e: &contiguity::Error, number: &str) -> (&'static str, String) {
    if e.is_not_found() {
        return (
            reason::NUMBER_NOT_LEASED,
            format!("the account does not lease {number}: {e}"),
        );
    }
    if e.is_unauthorized() {
        return (reason::CREDENTIALS_REJECTED, format!("{e}; check the API token"));
    }
    (reason::REQUEST_REFUSED, e.to_string())
}

fn base_status(old: &LeaseFailoverStatus) -> LeaseFailoverStatus {
    LeaseFailoverStatus {
        conditions: Vec::new(),
        ..old.clone()
    }
}

fn age(st: &LeaseFailoverStatus) -> Option<Duration> {
    let last: jiff::Timestamp = st.last_sync_time.as_deref()?.parse().ok()?;
    Duration::try_from(jiff::Timestamp::now().duration_since(last)).ok()
}

fn is_fresh(st: &LeaseFailoverStatus, interval: Duration) -> bool {
    age(st).is_some_and(|a| a < interval)
}

fn remaining(st: &LeaseFailoverStatus, interval: Duration) -> Duration {
    interval
        .saturating_sub(age(st).unwrap_or_default())
        .max(Duration::from_secs(1))
}
