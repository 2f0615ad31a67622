//! Client-side rate limiting, shared by every client of one API token.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A per-token token bucket plus a "closed until" gate set from `Retry-After`.
///
/// The bucket never fails a caller: [`acquire`](TokenLimiter::acquire) reserves the next token
/// and sleeps until it is due (reservations are first come, first served). The gate is checked
/// by the client before each request; while it is closed no request is sent for the token.
pub struct TokenLimiter {
    rate_per_sec: f64,
    burst: f64,
    state: Mutex<State>,
}

struct State {
    /// Tokens available at `last`; negative when callers have reserved future tokens.
    tokens: f64,
    last: Instant,
    closed_until: Option<Instant>,
}

impl TokenLimiter {
    /// A bucket refilled at `rate_per_sec` holding at most `burst` tokens (at least 1). A rate
    /// that is not a positive finite number disables the bucket (the gate still works).
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate_per_sec,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                last: Instant::now(),
                closed_until: None,
            }),
        }
    }

    /// A limiter without a bucket (only the `Retry-After` gate).
    pub fn unlimited() -> Self {
        Self::new(f64::INFINITY, 1)
    }

    fn bucket_enabled(&self) -> bool {
        self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one token, waiting until one is available.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves one token and returns how long to wait before using it.
    fn reserve(&self) -> Duration {
        if !self.bucket_enabled() {
            return Duration::ZERO;
        }
        let mut st = self.lock();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(st.last).as_secs_f64();
        st.tokens = (st.tokens + elapsed * self.rate_per_sec).min(self.burst);
        st.last = now;
        st.tokens -= 1.0;
        if st.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-st.tokens / self.rate_per_sec)
        }
    }

    /// Closes the gate until `until` (never shortens a longer closure).
    pub fn close_until(&self, until: Instant) {
        let mut st = self.lock();
        if st.closed_until.is_none_or(|cur| cur < until) {
            st.closed_until = Some(until);
        }
    }

    /// Closes the gate for `d` from now.
    pub fn close_for(&self, d: Duration) {
        self.close_until(Instant::now() + d);
    }

    /// Time until the gate opens, or `None` when it is open.
    pub fn gate_remaining(&self) -> Option<Duration> {
        let st = self.lock();
        let until = st.closed_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Configured rate (tokens per second).
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }
}

impl fmt::Debug for TokenLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLimiter")
            .field("rate_per_sec", &self.rate_per_sec)
            .field("burst", &self.burst)
            .field("gate_remaining", &self.gate_remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces() {
        let l = TokenLimiter::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(Instant::now(), start);
        l.acquire().await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(99) && waited <= Duration::from_millis(101),
            "{waited:?}"
        );
        l.acquire().await;
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_millis(199), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn gate_closes_and_opens() {
        let l = TokenLimiter::new(10.0, 1);
        assert_eq!(l.gate_remaining(), None);
        l.close_for(Duration::from_secs(2));
        l.close_for(Duration::from_secs(1));
        let r = l.gate_remaining().unwrap();
        assert!(r > Duration::from_millis(1900));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(l.gate_remaining(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let l = TokenLimiter::unlimited();
        let start = Instant::now();
        for _ in 0..1000 {
            l.acquire().await;
        }
        assert_eq!(Instant::now(), start);
    }
}
