//! Per-object exponential backoff with full jitter for transient failures.
//!
//! kube's controller runtime has no per-object backoff: the error policy is not told about
//! successes. The reconcilers call [`Backoff::reset`] after a success and the error policy calls
//! [`Backoff::next_delay`] after a failure.

use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts per object key.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Delays start at `base`, double per consecutive failure and are capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the failures of `key` (call after a successful reconcile).
    pub fn reset(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// Records a failure of `key` and returns how long to wait: a random delay in
    /// `[cap/2, cap]` where cap doubles per consecutive failure, never below `not_before`
    /// (a server's Retry-After).
    pub fn next_delay(&self, key: &str, not_before: Option<Duration>) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let exp = self.base.saturating_mul(1u32 << (n - 1).min(20));
        let cap = exp.min(self.max);
        let low = cap / 2;
        let jittered = low + rand::rng().random_range(Duration::ZERO..=cap - low);
        match not_before {
            // A little jitter past Retry-After so retries of many objects do not align.
            Some(ra) => jittered.max(ra + Duration::from_millis(rand::rng().random_range(50..500))),
            None => jittered,
        }
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().ok().and_then(|f| f.get(key).copied()).unwrap_or(0)
    }
}

/// `d` plus or minus up to `fraction` of it, at random.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = 1.0 + rand::rng().random_range(-fraction..=fraction);
    d.mul_f64(f.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_reset() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d1 = b.next_delay("a", None);
        assert!(
            d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1),
            "{d1:?}"
        );
        b.next_delay("a", None);
        b.next_delay("a", None);
        let d4 = b.next_delay("a", None);
        assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8), "{d4:?}");
        for _ in 0..10 {
            assert!(b.next_delay("a", None) <= Duration::from_secs(8));
        }
        assert_eq!(b.failures("b"), 0);
        b.reset("a");
        assert_eq!(b.failures("a"), 0);
    }

    #[test]
    fn never_sooner_than_retry_after() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        let d = b.next_delay("a", Some(Duration::from_secs(3)));
        assert!(d >= Duration::from_secs(3), "{d:?}");
    }
}
