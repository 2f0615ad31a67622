//! The NumberLease reconciler: leases the declared number at Contiguity, records the lease in
//! status, checks it for drift, and terminates it on delete as the deletion policy says.
//!
//! Invariants:
//! - the number is looked up before any create, and a create is only sent for a number that is
//!   available; the create-requested-at annotation is written (with the finalizer, in one
//!   write) *before* the create so that, after a crash or a lost reply, the lease found at
//!   Contiguity is recognised as ours (no second create, no leak, no false "already leased");
//! - one owner per number: the oldest NumberLease declaring a number owns it; the others are
//!   Stalled (`NumberClaimed`) and never call a mutating operation;
//! - a lease that ended outside the cluster is reported (`LeaseLost`), never leased again
//!   automatically.

use super::backoff::jitter;
use super::context::Context;
use super::error::Error;
use super::reconcile::{self, Managed, write};
use crate::contiguity::{self, ContiguityClient, FailoverConfig, LeaseStatus, NumberRecord, NumberStatus};
use crate::crd::{
    BillingStatus, CREATE_REQUESTED_AT, CapabilitiesStatus, ConditionType, DeletionPolicy, LeaseOrigin,
    ManagementPolicy, NumberLease, NumberLeaseStatus,
};
use crate::metrics::LeaseContribution;
use crate::status::{Phase, now_rfc3339, reason_of};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;

/// Finalizer that guards the lease.
pub const FINALIZER: &str = "contiguity.com/terminate-lease";
/// Kind label in metrics.
pub const KIND: &str = "NumberLease";

/// Condition reasons written by this reconciler.
pub mod reason {
    /// Ready: this resource leased the number.
    pub const LEASED: &str = "Leased";
    /// Ready: the lease was adopted.
    pub const ADOPTED: &str = "Adopted";
    /// Ready: the lease is mirrored read-only.
    pub const OBSERVED: &str = "Observed";
    /// Progressing: a lease request is in flight or its outcome is being confirmed.
    pub const LEASING: &str = "Leasing";
    pub use super::super::reconcile::{CONTIGUITY_UNAVAILABLE, RATE_LIMITED};
    /// Waiting: Observe mode and the account does not lease the number.
    pub const NOT_LEASED: &str = "NotLeased";
    /// Waiting: the lease is paused at Contiguity.
    pub const LEASE_PAUSED: &str = "LeasePaused";
    /// Stalled: an older NumberLease declares the same number.
    pub const NUMBER_CLAIMED: &str = "NumberClaimed";
    /// Stalled: the account leases the number outside this resource and adoption is Never.
    pub const ALREADY_LEASED: &str = "AlreadyLeased";
    /// Stalled: the number is leased by someone else or not offered.
    pub const NUMBER_UNAVAILABLE: &str = "NumberUnavailable";
    /// Stalled: Contiguity does not know the number.
    pub const NUMBER_NOT_FOUND: &str = "NumberNotFound";
    /// Stalled: Contiguity rejected the token.
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    /// Stalled: the lease needs an entitlement or an agreement.
    pub const ENTITLEMENT_REQUIRED: &str = "EntitlementRequired";
    /// Stalled: Contiguity refused the request.
    pub const REQUEST_REFUSED: &str = "RequestRefused";
    /// Stalled: the recorded lease ended outside the cluster.
    pub const LEASE_LOST: &str = "LeaseLost";
}

impl Managed for NumberLease {
    type Status = NumberLeaseStatus;
    const KIND: &'static str = KIND;
    const FINALIZER: &'static str = FINALIZER;
    const KEY_PREFIX: &'static str = "nl";

    fn status_of(&self) -> Option<&NumberLeaseStatus> {
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
        api: &Api<Self>,
        ctx: &Context,
    ) -> impl std::future::Future<Output = Result<Action, Error>> + Send {
        cleanup(obj, api, ctx)
    }
}

/// The older NumberLease (any watched namespace) that declares the same number, if any.
fn older_claimant(nl: &NumberLease, ctx: &Context) -> Option<Arc<NumberLease>> {
    let mine = claim_rank(nl);
    ctx.leases_declaring(&nl.spec.number)
        .into_iter()
        .filter(|o| o.metadata.uid != nl.metadata.uid)
        .filter(|o| claim_rank(o) < mine)
        .min_by_key(|o| claim_rank(o))
}

/// Orders the claimants of one number: a resource that already holds (or is creating) the
/// lease first, then the oldest, then by uid. Creation timestamps have one-second precision,
/// so without the first key two resources made in the same second could swap ownership
/// after one of them had leased the number.
fn claim_rank(
    nl: &NumberLease,
) -> (
    bool,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    Option<String>,
) {
    let busy = holds_lease(nl) || nl.create_requested_at().is_some();
    (!busy, nl.metadata.creation_timestamp.clone(), nl.uid())
}

/// True when the status records a lease of the declared number held through this resource.
fn holds_lease(nl: &NumberLease) -> bool {
    nl.status.as_ref().is_some_and(|s| {
        s.lease_id.is_some()
            && s.number.as_deref() == Some(nl.spec.number.as_str())
            && matches!(s.origin, Some(LeaseOrigin::Created) | Some(LeaseOrigin::Adopted))
    })
}

async fn apply(nl: &NumberLease, api: &Api<NumberLease>, ctx: &Context) -> Result<Action, Error> {
    let ns = nl.namespace().unwrap_or_default();
    let old = nl.status.clone().unwrap_or_default();
    let resync = jitter(ctx.settings.resync_interval, 0.1);

    if let Some(owner) = older_claimant(nl, ctx) {
        let message = format!(
            "number {} is claimed by the older NumberLease {}/{}; this resource will not lease, adopt or terminate it",
            nl.spec.number,
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        );
        let mut st = base_status(&old);
        st.number = Some(nl.spec.number.clone());
        return stall(nl, api, ctx, st, reason::NUMBER_CLAIMED, message).await;
    }

    let client = match ctx.contiguity(&ns, nl.spec.credentials_secret_ref.as_ref()).await {
        Ok(c) => c,
        Err(Error::Credentials { reason, message }) => {
            return stall(nl, api, ctx, base_status(&old), reason, message).await;
        }
        Err(e) => return Err(e),
    };

    let key = reconcile::object_key(nl);
    let secret_version = ctx
        .credentials
        .secret_version(&ns, nl.spec.credentials_secret_ref.as_ref());
    if ctx
        .stalls
        .unchanged(&key, nl.metadata.generation, secret_version.as_deref())
    {
        // Stalled on this very spec and Secret: no retry until one of them changes.
        return Ok(Action::await_change());
    }
    let generation_seen = old.observed_generation == nl.metadata.generation;
    // A lease the account no longer holds stays lost until someone acts: never re-leased.
    if generation_seen && reason_of(&old.conditions, ConditionType::Ready) == Some(reason::LEASE_LOST) {
        return Ok(Action::await_change());
    }

    let result =
        if holds_lease(nl) || (nl.spec.management_policy == ManagementPolicy::Observe && old.lease_id.is_some()) {
            if generation_seen && is_fresh(&old, ctx.settings.resync_interval) {
                let wait = remaining(&old, resync);
                return Ok(Action::requeue(wait));
            }
            verify_known_lease(nl, api, ctx, &client, old).await
        } else {
            converge_unknown_lease(nl, api, ctx, &client, old).await
        };
    match result {
        Ok(action) => Ok(action),
        Err(Error::Contiguity(e)) if !e.is_transient() => {
            let (reason, message) = classify_permanent(&e);
            let st = base_status(&nl.status.clone().unwrap_or_default());
            stall(nl, api, ctx, st, reason, message).await
        }
        Err(e) => {
            reconcile::note_transient(ctx, nl, api, &e).await;
            Err(e)
        }
    }
}

/// Checks a lease recorded in status against Contiguity: the shared `leased` listing when the
/// spec did not change, a direct lookup otherwise (or to confirm a suspected loss).
async fn verify_known_lease(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    client: &ContiguityClient,
    old: NumberLeaseStatus,
) -> Result<Action, Error> {
    let number = nl.spec.number.as_str();
    let generation_seen = old.observed_generation == nl.metadata.generation;
    let mut record = None;
    if generation_seen {
        let snap = ctx.snapshots.get(client, ctx.settings.resync_interval, None).await?;
        record = snap.numbers.get(number).cloned();
    }
    if record.as_ref().is_none_or(|r| r.lease_id != old.lease_id) {
        // Not (or differently) in the listing: ask about this number before concluding.
        let rec = match client.get(number).await {
            Ok(r) => Some(r),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        record = rec.filter(|r| r.is_leased_by_us());
    }
    let origin = old.origin.unwrap_or(LeaseOrigin::Created);
    match record {
        Some(rec)
            if (rec.lease_id == old.lease_id || origin == LeaseOrigin::Observed)
                && lease_is_live(rec.lease_status.as_ref()) =>
        {
            record_lease(nl, api, ctx, old, &rec, origin).await
        }
        _ => lease_lost(nl, api, ctx, old).await,
    }
}

/// No lease recorded yet: look the number up, then adopt, observe, create or stall.
async fn converge_unknown_lease(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    client: &ContiguityClient,
    old: NumberLeaseStatus,
) -> Result<Action, Error> {
    let number = nl.spec.number.as_str();
    let rec = match client.get(number).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => {
            let message =
                format!("Contiguity does not know the number {number}: check it against the available numbers");
            return stall(nl, api, ctx, base_status(&old), reason::NUMBER_NOT_FOUND, message).await;
        }
        Err(e) => return Err(e.into()),
    };
    let live = rec.is_leased_by_us() && lease_is_live(rec.lease_status.as_ref());
    let observe = nl.spec.management_policy == ManagementPolicy::Observe;
    if live {
        if observe {
            return record_lease(nl, api, ctx, old, &rec, LeaseOrigin::Observed).await;
        }
        if nl.create_requested_at().is_some() || fresh_read_has_pending_create(nl, api).await? {
            return record_lease(nl, api, ctx, old, &rec, LeaseOrigin::Created).await;
        }
        if nl.spec.adoption == crate::crd::Adoption::IfLeased {
            let note = format!(
                "adopted the existing lease {} of {number}",
                rec.lease_id.clone().unwrap_or_default()
            );
            ctx.event(nl, EventType::Normal, "Adopted", "Adopt", note).await;
            return record_lease(nl, api, ctx, old, &rec, LeaseOrigin::Adopted).await;
        }
        let message = format!(
            "the account already leases {number} outside this resource; set spec.adoption: IfLeased to take the lease over"
        );
        return stall(nl, api, ctx, base_status(&old), reason::ALREADY_LEASED, message).await;
    }
    if observe {
        let mut st = base_status(&old);
        st.number = Some(number.to_string());
        st.last_sync_time = Some(now_rfc3339());
        let phase = Phase::Waiting {
            reason: reason::NOT_LEASED,
            message: format!("managementPolicy is Observe and the account does not lease {number}; nothing is changed"),
        };
        write(ctx, nl, api, st, &phase).await?;
        ctx.metrics
            .set_lease(&nl.uid().unwrap_or_default(), Some(contribution("not_leased", None)));
        return Ok(Action::requeue(jitter(ctx.settings.resync_interval, 0.1)));
    }
    if !matches!(rec.status, NumberStatus::Available | NumberStatus::GAvailable) {
        let message = format!(
            "number {number} is not available to this account (Contiguity reports status {:?}); it may be leased by someone else",
            rec.status.as_str()
        );
        return stall(nl, api, ctx, base_status(&old), reason::NUMBER_UNAVAILABLE, message).await;
    }
    create_lease(nl, api, ctx, client, old).await
}

/// Marks the create as requested, sends it once, and records the outcome.
async fn create_lease(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    client: &ContiguityClient,
    old: NumberLeaseStatus,
) -> Result<Action, Error> {
    let number = nl.spec.number.as_str();
    // Must reach the API server before the create is sent: it is how a later reconcile knows
    // that a lease found at Contiguity is this resource's own. One write carries the marker
    // and the finalizer, conditional on the resourceVersion this decision was made on.
    let marker = nl.create_requested_at().map_or_else(now_rfc3339, str::to_string);
    let nl = &reconcile::ensure_finalizer(ctx, nl, api, &[(CREATE_REQUESTED_AT, Some(marker))]).await?;
    let billing = match nl.spec.billing_method {
        crate::crd::BillingMethod::Monthly => contiguity::BillingMethod::Monthly,
        crate::crd::BillingMethod::ServiceContract => contiguity::BillingMethod::ServiceContract,
    };
    let created = match client.create(number, billing).await {
        Ok(created) => created,
        Err(e) if !e.is_transient() => {
            // Refused outright: no lease exists, so the marker must not make a lease the
            // account takes later look like this resource's own.
            let nl = &reconcile::ensure_finalizer(ctx, nl, api, &[(CREATE_REQUESTED_AT, None)]).await?;
            let (reason, message) = classify_permanent(&e);
            return stall(nl, api, ctx, base_status(&old), reason, message).await;
        }
        // Ambiguous or transient: the next reconcile looks the number up and recognises the
        // lease by the marker if it was made.
        Err(e) => return Err(e.into()),
    };
    ctx.snapshots.invalidate(client);
    let note = format!("leased {number} as lease {}", created.lease_id);
    ctx.event(nl, EventType::Normal, "Leased", "Lease", note).await;
    let mut st = base_status(&old);
    st.number = Some(number.to_string());
    st.lease_id = Some(created.lease_id.clone());
    st.lease_status = Some(created.status.as_str().to_string());
    st.origin = Some(LeaseOrigin::Created);
    st.terminated_at = None;
    let price = created.billing.price.clone();
    st.billing = Some(BillingStatus {
        method: Some(created.billing.method.as_str().to_string()),
        currency: price.as_ref().map(|p| p.currency.as_str().to_string()),
        monthly_rate: price.as_ref().map(|p| money(p.monthly_rate)),
        upfront_fee: price.as_ref().map(|p| money(p.upfront_fee)),
        period_start: created.billing.period.as_ref().and_then(|p| p.start.as_ref()).map(ts),
        period_end: created.billing.period.as_ref().and_then(|p| p.end.as_ref()).map(ts),
    });
    st.last_sync_time = Some(now_rfc3339());
    let live = lease_is_live(Some(&created.status));
    let phase = if live {
        Phase::Ready {
            reason: reason::LEASED,
            message: format!("{number} is leased ({})", created.lease_id),
        }
    } else {
        Phase::Progressing {
            reason: reason::LEASING,
            message: format!("lease {} reported status {}", created.lease_id, created.status.as_str()),
        }
    };
    write(ctx, nl, api, st, &phase).await?;
    let spend = price.map(|p| (p.currency.as_str().to_string(), p.monthly_rate));
    ctx.metrics.set_lease(
        &nl.uid().unwrap_or_default(),
        Some(contribution(created.status.as_str(), spend)),
    );
    Ok(Action::requeue(jitter(ctx.settings.resync_interval, 0.1)))
}

/// Writes a status that records `rec` as the lease of this resource.
async fn record_lease(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    old: NumberLeaseStatus,
    rec: &NumberRecord,
    origin: LeaseOrigin,
) -> Result<Action, Error> {
    let number = nl.spec.number.as_str();
    let mut st = base_status(&old);
    st.number = Some(number.to_string());
    st.lease_id = rec.lease_id.clone();
    st.lease_status = rec.lease_status.as_ref().map(|s| s.as_str().to_string());
    st.origin = Some(origin);
    st.terminated_at = None;
    let price = rec
        .billing
        .as_ref()
        .and_then(|b| b.price.clone())
        .or_else(|| rec.pricing.clone());
    let prev_billing = old.billing.clone().unwrap_or_default();
    st.billing = Some(BillingStatus {
        method: rec
            .billing
            .as_ref()
            .map(|b| b.method.as_str().to_string())
            .or(prev_billing.method),
        currency: price
            .as_ref()
            .map(|p| p.currency.as_str().to_string())
            .or(prev_billing.currency),
        monthly_rate: price
            .as_ref()
            .map(|p| money(p.monthly_rate))
            .or(prev_billing.monthly_rate),
        upfront_fee: price
            .as_ref()
            .map(|p| money(p.upfront_fee))
            .or(prev_billing.upfront_fee),
        period_start: rec
            .billing
            .as_ref()
            .and_then(|b| b.period.as_ref())
            .and_then(|p| p.start.as_ref())
            .map(ts)
            .or(prev_billing.period_start),
        period_end: rec
            .billing
            .as_ref()
            .and_then(|b| b.period.as_ref())
            .and_then(|p| p.end.as_ref())
            .map(ts),
    });
    st.capabilities = Some(CapabilitiesStatus {
        channels: rec
            .capabilities
            .channels
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        intl_sms: Some(rec.capabilities.intl_sms),
    });
    st.last_sync_time = Some(now_rfc3339());
    let lease_id = rec.lease_id.clone().unwrap_or_default();
    let phase = match rec.lease_status.as_ref() {
        Some(LeaseStatus::Paused) => Phase::Waiting {
            reason: reason::LEASE_PAUSED,
            message: format!("lease {lease_id} of {number} is paused at Contiguity"),
        },
        _ => {
            let (reason, verb) = match origin {
                LeaseOrigin::Created => (reason::LEASED, "leased"),
                LeaseOrigin::Adopted => (reason::ADOPTED, "leased (adopted)"),
                LeaseOrigin::Observed => (reason::OBSERVED, "leased (observed, read-only)"),
            };
            Phase::Ready {
                reason,
                message: format!("{number} is {verb} as lease {lease_id}"),
            }
        }
    };
    write(ctx, nl, api, st.clone(), &phase).await?;
    let spend = st
        .billing
        .as_ref()
        .and_then(|b| Some((b.currency.clone()?, b.monthly_rate.as_ref()?.parse::<f64>().ok()?)));
    let state = st.lease_status.clone().unwrap_or_else(|| "active".into());
    ctx.metrics
        .set_lease(&nl.uid().unwrap_or_default(), Some(contribution(&state, spend)));
    Ok(Action::requeue(jitter(ctx.settings.resync_interval, 0.1)))
}

/// The recorded lease is gone at Contiguity: report it, never lease again automatically.
async fn lease_lost(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    old: NumberLeaseStatus,
) -> Result<Action, Error> {
    let number = nl.spec.number.as_str();
    let lease_id = old.lease_id.clone().unwrap_or_default();
    let mut st = base_status(&old);
    st.lease_status = Some("terminated".into());
    st.terminated_at = st.terminated_at.or_else(|| Some(now_rfc3339()));
    st.last_sync_time = Some(now_rfc3339());
    let message = format!(
        "lease {lease_id} of {number} ended outside the cluster; it is not leased again automatically \
         (leases cost money): delete and re-create this NumberLease to lease the number again"
    );
    ctx.event(nl, EventType::Warning, reason::LEASE_LOST, "Verify", message.clone())
        .await;
    let phase = Phase::Stalled {
        reason: reason::LEASE_LOST,
        message,
    };
    write(ctx, nl, api, st, &phase).await?;
    ctx.metrics
        .set_lease(&nl.uid().unwrap_or_default(), Some(contribution("lost", None)));
    Ok(Action::await_change())
}

/// Deletion: terminate the lease if the policy says so and this resource holds it.
async fn cleanup(nl: &NumberLease, api: &Api<NumberLease>, ctx: &Context) -> Result<Action, Error> {
    let action = terminate_if_held(nl, api, ctx).await?;
    // Another resource declaring the same number may own it now.
    for other in ctx
        .leases_declaring(&nl.spec.number)
        .into_iter()
        .filter(|o| o.metadata.uid != nl.metadata.uid)
    {
        ctx.requeue_lease(ObjectRef::from_obj(&*other));
    }
    for lf in ctx.failovers_where(|lf| lf.spec.number.as_deref() == Some(nl.spec.number.as_str())) {
        ctx.requeue_failover(ObjectRef::from_obj(&*lf));
    }
    Ok(action)
}

async fn terminate_if_held(nl: &NumberLease, _api: &Api<NumberLease>, ctx: &Context) -> Result<Action, Error> {
    let uid = nl.uid().unwrap_or_default();
    let number = nl.spec.number.as_str();
    let status = nl.status.clone().unwrap_or_default();
    let policy = nl.effective_deletion_policy();
    let holds = holds_lease(nl);
    let pending = nl.create_requested_at().is_some();
    let lost = reason_of(&status.conditions, ConditionType::Ready) == Some(reason::LEASE_LOST);
    if nl.spec.management_policy == ManagementPolicy::Observe || policy == DeletionPolicy::Retain {
        if holds {
            let note = format!(
                "deletionPolicy Retain: lease {} of {number} is kept",
                status.lease_id.unwrap_or_default()
            );
            ctx.event(nl, EventType::Normal, "Retained", "Delete", note).await;
        }
        ctx.metrics.set_lease(&uid, None);
        return Ok(Action::await_change());
    }
    if (!holds && !pending) || lost {
        // Nothing of ours exists at Contiguity (never leased, claimed by another resource,
        // stalled before leasing, or already gone).
        ctx.metrics.set_lease(&uid, None);
        return Ok(Action::await_change());
    }
    let ns = nl.namespace().unwrap_or_default();
    let client = ctx.contiguity(&ns, nl.spec.credentials_secret_ref.as_ref()).await?;
    if !holds {
        // A create may have happened without its outcome being recorded.
        match client.get(number).await {
            Ok(rec) if rec.is_leased_by_us() => {}
            Ok(_) => {
                ctx.metrics.set_lease(&uid, None);
                return Ok(Action::await_change());
            }
            Err(e) if e.is_not_found() => {
                ctx.metrics.set_lease(&uid, None);
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e.into()),
        }
    }
    disable_failovers_on(nl, ctx, &client).await?;
    match client.terminate(number).await {
        Ok(t) => {
            let note = format!("terminated lease {} of {number}", t.lease_id);
            ctx.event(nl, EventType::Normal, "Terminated", "Terminate", note).await;
        }
        Err(e) if e.is_not_found() => {
            tracing::info!(number, "lease already terminated at Contiguity");
        }
        Err(e) => return Err(e.into()),
    }
    ctx.snapshots.invalidate(&client);
    ctx.metrics.set_lease(&uid, None);
    Ok(Action::await_change())
}

/// Before terminating, disables failover that a LeaseFailover enabled on this number.
async fn disable_failovers_on(nl: &NumberLease, ctx: &Context, client: &ContiguityClient) -> Result<(), Error> {
    let ns = nl.namespace().unwrap_or_default();
    let name = nl.name_any();
    let number = nl.spec.number.as_str();
    let enabled = !ctx
        .failovers_where(|lf| {
            let targets = lf.metadata.namespace.as_deref() == Some(ns.as_str())
                && (lf.spec.lease_ref.as_ref().is_some_and(|r| r.name == name)
                    || lf.spec.number.as_deref() == Some(number));
            targets
                && lf
                    .status
                    .as_ref()
                    .and_then(|s| s.applied.as_ref())
                    .is_some_and(|a| a.enabled)
        })
        .is_empty();
    if !enabled {
        return Ok(());
    }
    let off = FailoverConfig {
        enabled: false,
        mode: None,
        numbers: Vec::new(),
    };
    match client.configure(number, &off).await {
        Ok(_) => {
            let note = format!("disabled failover on {number} before terminating its lease");
            ctx.event(nl, EventType::Normal, "FailoverDisabled", "Configure", note)
                .await;
            Ok(())
        }
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reports a permanent failure (see [`reconcile::stall`]). A claim is lifted by other
/// objects' changes, so it is re-checked rather than remembered.
async fn stall(
    nl: &NumberLease,
    api: &Api<NumberLease>,
    ctx: &Context,
    st: NumberLeaseStatus,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let memo = (reason != reason::NUMBER_CLAIMED).then(|| {
        let ns = nl.namespace().unwrap_or_default();
        ctx.credentials
            .secret_version(&ns, nl.spec.credentials_secret_ref.as_ref())
    });
    let action = reconcile::stall(ctx, nl, api, st, reason, message, memo).await?;
    ctx.metrics
        .set_lease(&nl.uid().unwrap_or_default(), Some(contribution("stalled", None)));
    Ok(action)
}

/// Maps a permanent Contiguity error to a condition reason and message.
fn classify_permanent(e: &contiguity::Error) -> (&'static str, String) {
    if e.agreement_url().is_some() {
        let url = e.agreement_url().unwrap_or_default();
        return (
            reason::ENTITLEMENT_REQUIRED,
            format!("{e}; accept the agreement at {url}"),
        );
    }
    if e.is_unauthorized() {
        return (
            reason::CREDENTIALS_REJECTED,
            format!("{e}; check the API token (credentialsSecretRef or the operator's default token)"),
        );
    }
    if e.is_already_leased() {
        return (reason::NUMBER_UNAVAILABLE, e.to_string());
    }
    (reason::REQUEST_REFUSED, e.to_string())
}

/// The previous status without its conditions (rebuilt by [`write`]).
fn base_status(old: &NumberLeaseStatus) -> NumberLeaseStatus {
    NumberLeaseStatus {
        conditions: Vec::new(),
        ..old.clone()
    }
}

/// Whether a fresh read of the object from the API server shows a create in flight. Guards
/// against a stale cache right after this operator marked a create as requested.
async fn fresh_read_has_pending_create(nl: &NumberLease, api: &Api<NumberLease>) -> Result<bool, Error> {
    let fresh = api.get_opt(&nl.name_any()).await?;
    Ok(fresh
        .filter(|f| f.uid() == nl.uid())
        .is_some_and(|f| f.create_requested_at().is_some()))
}

fn lease_is_live(status: Option<&LeaseStatus>) -> bool {
    !matches!(status, Some(LeaseStatus::Expired) | Some(LeaseStatus::Terminated))
}

fn is_fresh(st: &NumberLeaseStatus, interval: Duration) -> bool {
    age(st).is_some_and(|a| a < interval)
}

fn age(st: &NumberLeaseStatus) -> Option<Duration> {
    let last: jiff::Timestamp = st.last_sync_time.as_deref()?.parse().ok()?;
    let d = jiff::Timestamp::now().duration_since(last);
    Duration::try_from(d).ok()
}

fn remaining(st: &NumberLeaseStatus, interval: Duration) -> Duration {
    let elapsed = age(st).unwrap_or_default();
    interval.saturating_sub(elapsed).max(Duration::from_secs(1))
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

fn ts(t: &contiguity::Timestamp) -> String {
    t.as_jiff().to_string()
}

fn contribution(state: &str, spend: Option<(String, f64)>) -> LeaseContribution {
    let state = match state {
        "active" | "paused" | "expired" | "terminated" | "lost" | "stalled" | "not_leased" | "pending" => state,
        _ => "other",
    };
    let spend = if state == "active" { spend } else { None };
    LeaseContribution {
        state: state.to_string(),
        spend,
    }
}
