//! Fault injection: random (seeded) faults, deterministic one-shot faults, and the per-token
//! request-rate limit answered with 429 + `Retry-After`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::contiguity::Operation;

/// Faults applied to wire calls (never to `/_sandbox/`). Settable at start and at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability (0..1) that a call of any operation fails with `error_status`.
    pub error_rate: f64,
    /// Per-operation probabilities, overriding `error_rate`.
    pub error_rates: BTreeMap<Operation, f64>,
    /// Status of injected errors (default 503).
    pub error_status: u16,
    /// Added latency before every call is handled. If the client hangs up meanwhile (e.g. its
    /// timeout), the call is not applied and is logged as `"cancelled"`.
    pub latency_ms: u64,
    /// Extra latency drawn uniformly from `[0, latency_jitter_ms]`.
    pub latency_jitter_ms: u64,
    /// Requests per second allowed per token; above it the call gets 429 + `Retry-After`.
    pub rate_limit_per_sec: Option<f64>,
    /// Bucket size of the rate limit (default: the rate, at least 1).
    pub rate_limit_burst: Option<u32>,
    /// `Retry-After` seconds sent with 429s (default 1). While it runs, every call of that
    /// token gets 429 again.
    pub retry_after_secs: u64,
    /// Probability that `create`, `terminate` or `configure` is applied but its reply is lost
    /// (the connection is dropped).
    pub lost_reply_rate: f64,
    /// Answer the list calls (`available`, `leased`) with 404 instead of an empty list.
    pub empty_lists_404: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_rates: BTreeMap::new(),
            error_status: 503,
            latency_ms: 0,
            latency_jitter_ms: 0,
            rate_limit_per_sec: None,
            rate_limit_burst: None,
            retry_after_secs: 1,
            lost_reply_rate: 0.0,
            empty_lists_404: false,
        }
    }
}

/// What a one-shot fault does to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status instead of handling the call (nothing is applied). 429 carries
    /// `Retry-After`; `html` sends an HTML body like a gateway would instead of the envelope.
    Status {
        /// HTTP status.
        status: u16,
        /// Send a non-JSON (HTML) body.
        #[serde(default)]
        html: bool,
    },
    /// Apply the call, then drop the connection without a reply.
    LostReply,
    /// Wait this long before handling the call (then handle it normally).
    Delay {
        /// Milliseconds.
        ms: u64,
    },
}

/// "The next `count` calls of `op` get `action`." Queued one-shots for an operation are used in
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneShotFault {
    /// Operation it applies to.
    pub op: Operation,
    /// Calls left.
    pub count: u32,
    /// What happens.
    pub action: FaultAction,
}

/// Calls that arrive within this long after a 429 was answered are treated as already in flight
/// when the client got the 429: they count as [`in_retry_after_window`] but not as
/// [`before_retry_after`].
///
/// [`in_retry_after_window`]: super::CallRecord::in_retry_after_window
/// [`before_retry_after`]: super::CallRecord::before_retry_after
pub const IN_FLIGHT_GRACE: Duration = Duration::from_millis(100);

/// What the fault layer decided for one authenticated call.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// The call arrived while a 429's `Retry-After` for its token was running.
    pub in_window: bool,
    /// ... and later than [`IN_FLIGHT_GRACE`] after that 429.
    pub before_retry_after: bool,
    /// Answer 429 with this `Retry-After` (seconds).
    pub rate_limited: Option<u64>,
    /// Answer with this status (and HTML body?).
    pub error: Option<(u16, bool)>,
    /// Apply, then drop the connection.
    pub lost_reply: bool,
    /// Extra wait before handling.
    pub delay: Duration,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Mutable fault state, behind one mutex.
pub(crate) struct FaultState {
    pub faults: Faults,
    pub one_shots: Vec<OneShotFault>,
    rng: StdRng,
    buckets: HashMap<usize, Bucket>,
    /// Per account: when the last 429 was answered and until when its `Retry-After` runs.
    windows: HashMap<usize, (Instant, Instant)>,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults,
            one_shots: Vec::new(),
            // Separate stream from the inventory's.
            rng: StdRng::seed_from_u64(seed ^ 0x5EED_FA17_0000_0001),
            buckets: HashMap::new(),
            windows: HashMap::new(),
        }
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.buckets.clear();
    }

    /// The added latency for the next call.
    pub fn latency(&mut self) -> Duration {
        let f = &self.faults;
        let jitter = if f.latency_jitter_ms > 0 {
            self.rng.random_range(0..=f.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(f.latency_ms.saturating_add(jitter))
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.rng.random::<f64>() < p)
    }

    fn open_window(&mut self, account: usize, now: Instant, secs: u64) {
        let until = now + Duration::from_secs(secs);
        let w = self.windows.entry(account).or_insert((now, until));
        if w.1 < until {
            *w = (now, until);
        }
    }

    /// Applies rate limit, one-shots and random faults to one call of `op` by `account` that
    /// arrived at `arrived` (before any injected latency).
    pub fn decide(&mut self, op: Operation, account: usize, arrived: Instant, now: Instant) -> Decision {
        let mut d = Decision::default();
        let retry_after = self.faults.retry_after_secs.max(1);

        // A 429's Retry-After still running: record it and refuse again.
        if let Some((opened, until)) = self.windows.get(&account).copied() {
            if now < until {
                if arrived >= opened {
                    d.in_window = true;
                    d.before_retry_after = arrived >= opened + IN_FLIGHT_GRACE;
                }
                let remaining = (until - now).as_secs_f64().ceil() as u64;
                d.rate_limited = Some(remaining.max(1));
                return d;
            }
            self.windows.remove(&account);
        }

        if let Some(rate) = self.faults.rate_limit_per_sec.filter(|r| *r > 0.0) {
            let burst = f64::from(
                self.faults
                    .rate_limit_burst
                    .unwrap_or_else(|| rate.ceil() as u32)
                    .max(1),
            );
            let b = self.buckets.entry(account).or_insert(Bucket {
                tokens: burst,
                last: now,
            });
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
            } else {
                self.open_window(account, now, retry_after);
                d.rate_limited = Some(retry_after);
                return d;
            }
        }

        if let Some(pos) = self.one_shots.iter().position(|f| f.op == op && f.count > 0) {
            let action = self.one_shots[pos].action.clone();
            self.one_shots[pos].count -= 1;
            if self.one_shots[pos].count == 0 {
                self.one_shots.remove(pos);
            }
            match action {
                FaultAction::Status { status: 429, .. } => {
                    self.open_window(account, now, retry_after);
                    d.rate_limited = Some(retry_after);
                    return d;
                }
                FaultAction::Status { status, html } => {
                    d.error = Some((status, html));
                    return d;
                }
                FaultAction::LostReply => d.lost_reply = true,
                FaultAction::Delay { ms } => d.delay = Duration::from_millis(ms),
            }
        }

        let p = self
            .faults
            .error_rates
            .get(&op)
            .copied()
            .unwrap_or(self.faults.error_rate);
        if self.chance(p) {
            d.error = Some((self.faults.error_status, false));
            return d;
        }
        if matches!(op, Operation::Create | Operation::Terminate | Operation::Configure)
            && self.chance(self.faults.lost_reply_rate)
        {
            d.lost_reply = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shots_are_consumed_in_order() {
        let mut s = FaultState::new(Faults::default(), 1);
        s.one_shots.push(OneShotFault {
            op: Operation::Create,
            count: 2,
            action: FaultAction::Status {
                status: 500,
                html: false,
            },
        });
        s.one_shots.push(OneShotFault {
            op: Operation::Create,
            count: 1,
            action: FaultAction::LostReply,
        });
        let now = Instant::now();
        assert_eq!(s.decide(Operation::Get, 0, now, now).error, None);
        assert_eq!(s.decide(Operation::Create, 0, now, now).error, Some((500, false)));
        assert_eq!(s.decide(Operation::Create, 0, now, now).error, Some((500, false)));
        let d = s.decide(Operation::Create, 0, now, now);
        assert!(d.lost_reply && d.error.is_none());
        let d = s.decide(Operation::Create, 0, now, now);
        assert!(!d.lost_reply && d.error.is_none());
        assert!(s.one_shots.is_empty());
    }

    #[test]
    fn rate_limit_opens_a_window_per_account() {
        let mut s = FaultState::new(
            Faults {
                rate_limit_per_sec: Some(1.0),
                rate_limit_burst: Some(2),
                retry_after_secs: 2,
                ..Faults::default()
            },
            1,
        );
        let t0 = Instant::now();
        assert!(s.decide(Operation::Get, 0, t0, t0).rate_limited.is_none());
        assert!(s.decide(Operation::Get, 0, t0, t0).rate_limited.is_none());
        let d = s.decide(Operation::Get, 0, t0, t0);
        assert_eq!(d.rate_limited, Some(2));
        assert!(!d.before_retry_after);
        // Another account is unaffected.
        assert!(s.decide(Operation::Get, 1, t0, t0).rate_limited.is_none());
        // In flight when the 429 went out: in the window, but not "before Retry-After".
        let t = t0 + Duration::from_millis(20);
        let d = s.decide(Operation::Get, 0, t, t);
        assert!(d.in_window && !d.before_retry_after);
        assert_eq!(d.rate_limited, Some(2));
        let t = t0 + Duration::from_millis(1500);
        let d = s.decide(Operation::Get, 0, t, t);
        assert!(d.in_window && d.before_retry_after);
        assert_eq!(d.rate_limited, Some(1));
        let t = t0 + Duration::from_millis(2100);
        let d = s.decide(Operation::Get, 0, t, t);
        assert!(!d.before_retry_after);
        assert!(d.rate_limited.is_none());
    }

    #[test]
    fn error_rate_is_seeded() {
        let run = |seed| {
            let mut s = FaultState::new(
                Faults {
                    error_rate: 0.5,
                    ..Faults::default()
                },
                seed,
            );
            let now = Instant::now();
            (0..64)
                .map(|_| s.decide(Operation::Get, 0, now, now).error.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        let hits = run(3).iter().filter(|b| **b).count();
        assert!((16..=48).contains(&hits), "{hits}");
    }
}
