//! Conditions and status writing shared by every controller.
//!
//! Each reconcile ends in one [`Phase`]; [`conditions`] turns it into the Ready / Reconciling /
//! Stalled triple (kstatus-compatible, each carrying `observedGeneration`), keeping the
//! `lastTransitionTime` of conditions whose status did not change. [`apply_status`] writes the
//! status subresource with server-side apply under one field manager.

use crate::crd::{Condition, ConditionStatus, ConditionType};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "contiguity-operator";

/// Where a resource stands after a reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The declared state is in effect: Ready=True.
    Ready { reason: &'static str, message: String },
    /// The operator is working on it (or retrying a transient failure): Reconciling=True.
    Progressing { reason: &'static str, message: String },
    /// Not ready, nothing to do until something changes outside (e.g. an observed number that
    /// is not leased): Ready=False without Reconciling or Stalled.
    Waiting { reason: &'static str, message: String },
    /// Needs a human: Stalled=True.
    Stalled { reason: &'static str, message: String },
}

impl Phase {
    /// The reason of the phase.
    pub fn reason(&self) -> &'static str {
        match self {
            Phase::Ready { reason, .. }
            | Phase::Progressing { reason, .. }
            | Phase::Waiting { reason, .. }
            | Phase::Stalled { reason, .. } => reason,
        }
    }

    /// The message of the phase.
    pub fn message(&self) -> &str {
        match self {
            Phase::Ready { message, .. }
            | Phase::Progressing { message, .. }
            | Phase::Waiting { message, .. }
            | Phase::Stalled { message, .. } => message,
        }
    }
}

/// Builds the three conditions for `phase`, reusing transition times from `previous`.
pub fn conditions(previous: &[Condition], generation: Option<i64>, phase: &Phase, now: &str) -> Vec<Condition> {
    use ConditionStatus::{False, True};
    let (ready, reconciling, stalled) = match phase {
        Phase::Ready { .. } => (True, False, False),
        Phase::Progressing { .. } => (False, True, False),
        Phase::Waiting { .. } => (False, False, False),
        Phase::Stalled { .. } => (False, False, True),
    };
    let reason = phase.reason();
    let message = phase.message();
    [
        (ConditionType::Ready, ready),
        (ConditionType::Reconciling, reconciling),
        (ConditionType::Stalled, stalled),
    ]
    .into_iter()
    .map(|(kind, status)| {
        // Conditions that do not hold still say why, so `kubectl describe` reads well.
        let (reason, message) = match (kind, status) {
            (ConditionType::Ready, _) => (reason.to_string(), message.to_string()),
            (_, True) => (reason.to_string(), message.to_string()),
            (ConditionType::Reconciling, _) => ("Idle".to_string(), "No change in progress".to_string()),
            (ConditionType::Stalled, _) => ("Progressing".to_string(), "Nothing needs a human".to_string()),
        };
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == kind.as_str() && c.status == status.as_str())
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: kind.as_str().to_string(),
            status: status.as_str().to_string(),
            observed_generation: generation,
            last_transition_time,
            reason,
            message,
        }
    })
    .collect()
}

/// True when `conditions` has `type` with status True.
pub fn is_true(conditions: &[Condition], kind: ConditionType) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == kind.as_str() && c.status == ConditionStatus::True.as_str())
}

/// The reason of condition `kind`, if present.
pub fn reason_of(conditions: &[Condition], kind: ConditionType) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == kind.as_str())
        .map(|c| c.reason.as_str())
}

/// Writes `status` to the status subresource of `obj` by server-side apply.
/// Returns the resourceVersion of the object after the write.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<Option<String>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(written.meta().resource_version.clone())
}

/// Remembers the resourceVersion of each object's last status write by this process, so a
/// reconcile triggered by an older watch event (the cache has not caught up with our own
/// write yet) can wait for the newer event instead of acting on stale status.
#[derive(Default)]
pub struct WriteMemo {
    written: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl WriteMemo {
    /// Records a write to the object with `uid`.
    pub fn wrote(&self, uid: Option<String>, resource_version: Option<String>) {
        let (Some(uid), Some(rv)) = (uid, resource_version.and_then(|v| v.parse::<u64>().ok())) else {
            return;
        };
        if let Ok(mut m) = self.written.lock() {
            m.insert(uid, rv);
        }
    }

    /// True when `obj` is older than this process's last status write to it. resourceVersions
    /// are opaque in general; they are etcd revisions here, and when one does not parse as a
    /// number the object is taken as current.
    pub fn is_stale<K: Resource>(&self, obj: &K) -> bool {
        let Some(uid) = obj.meta().uid.as_ref() else {
            return false;
        };
        let Some(seen) = obj.meta().resource_version.as_ref().and_then(|v| v.parse::<u64>().ok()) else {
            return false;
        };
        self.written
            .lock()
            .ok()
            .and_then(|m| m.get(uid).copied())
            .is_some_and(|w| seen < w)
    }

    /// Forgets an object (it is being deleted).
    pub fn forget(&self, uid: Option<&str>) {
        if let (Some(uid), Ok(mut m)) = (uid, self.written.lock()) {
            m.remove(uid);
        }
    }
}

/// The current time as RFC 3339 with second precision, truncated (never rounded up: a
/// timestamp up to half a second in the future made a just-written `lastSyncTime` look
/// not fresh, which cost a drift check per reconcile in that window).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    let second = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    now.round(second).unwrap_or(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_never_in_the_future() {
        for _ in 0..50 {
            let written: jiff::Timestamp = now_rfc3339().parse().expect("RFC 3339");
            assert!(written <= jiff::Timestamp::now());
        }
    }

    #[test]
    fn ready_phase_sets_kstatus_triple() {
        let phase = Phase::Ready {
            reason: "Leased",
            message: "lease active".into(),
        };
        let c = conditions(&[], Some(3), &phase, "2026-01-01T00:00:00Z");
        assert_eq!(c.len(), 3);
        assert!(is_true(&c, ConditionType::Ready));
        assert!(!is_true(&c, ConditionType::Reconciling));
        assert!(!is_true(&c, ConditionType::Stalled));
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
        assert_eq!(reason_of(&c, ConditionType::Ready), Some("Leased"));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let stalled = Phase::Stalled {
            reason: "NumberClaimed",
            message: "x".into(),
        };
        let first = conditions(&[], Some(1), &stalled, "2026-01-01T00:00:00Z");
        let again = conditions(&first, Some(2), &stalled, "2026-02-01T00:00:00Z");
        let t = |c: &[Condition], k: ConditionType| {
            c.iter()
                .find(|c| c.type_ == k.as_str())
                .map(|c| c.last_transition_time.clone())
        };
        assert_eq!(
            t(&again, ConditionType::Stalled).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let ready = Phase::Ready {
            reason: "Leased",
            message: "ok".into(),
        };
        let after = conditions(&again, Some(2), &ready, "2026-03-01T00:00:00Z");
        assert_eq!(
            t(&after, ConditionType::Stalled).as_deref(),
            Some("2026-03-01T00:00:00Z")
        );
        assert_eq!(t(&after, ConditionType::Ready).as_deref(), Some("2026-03-01T00:00:00Z"));
        assert!(is_true(&after, ConditionType::Ready));
    }
}
