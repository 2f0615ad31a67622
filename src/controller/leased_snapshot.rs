//! One `GET /numbers/leased` listing per token, shared by every resource that uses the token.
//!
//! Steady-state drift checks read the shared listing instead of asking Contiguity about each
//! lease, so calls at steady state do not grow with the number of leases.

use crate::contiguity::{ContiguityClient, Error, NumberRecord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// A listing of the account's leases at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// When the listing was fetched.
    pub fetched_at: Instant,
    /// Leased numbers by E.164.
    pub numbers: HashMap<String, NumberRecord>,
}

/// Shared listings, one per token fingerprint.
#[derive(Default)]
pub struct LeasedSnapshots {
    slots: Mutex<HashMap<String, Slot>>,
}

/// The latest listing of one token, behind a lock that makes concurrent callers share a fetch.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Snapshot>>>>;

impl LeasedSnapshots {
    /// A listing for `client`'s token no older than `max_age` and fetched after `not_before`
    /// (when given). Concurrent callers share one fetch.
    pub async fn get(
        &self,
        client: &ContiguityClient,
        max_age: Duration,
        not_before: Option<Instant>,
    ) -> Result<Arc<Snapshot>, Error> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(client.token_fingerprint()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(snap) = guard.as_ref()
            && snap.fetched_at.elapsed() <= max_age
            && not_before.is_none_or(|t| snap.fetched_at >= t)
        {
            return Ok(snap.clone());
        }
        let list = client.leased().await?;
        let numbers = list.numbers.into_iter().map(|r| (r.e164().to_string(), r)).collect();
        let snap = Arc::new(Snapshot {
            fetched_at: Instant::now(),
            numbers,
        });
        *guard = Some(snap.clone());
        Ok(snap)
    }

    /// Drops every cached listing (e.g. after a mutation whose effect must be seen).
    pub fn invalidate(&self, client: &ContiguityClient) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(&client.token_fingerprint())
            && let Ok(mut guard) = slot.try_lock()
        {
            *guard = None;
        }
    }
}
