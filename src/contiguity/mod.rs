//! Typed async client for Contiguity's number-lease and send API.
//!
//! Wire protocol: `shared/contiguity-api.md`. One [`ContiguityClient`] per API token; get them
//! from a [`ClientPool`] so that every client of a token shares its [`TokenLimiter`] (token
//! bucket and `Retry-After` gate) and all share one connection pool.
//!
//! - Reads (`available`, `get`, `leased`, `details`) retry transient failures up to
//!   [`ClientConfig::read_retries`] times with exponential backoff and full jitter, never sooner
//!   than `Retry-After`.
//! - Mutations (`create`, `configure`, `terminate`, sends) are attempted once. A
//!   [`Error::Timeout`] or [`Error::Transport`] leaves their outcome unknown: reconcile with
//!   `get`/`leased`.
//! - A 429 with `Retry-After` closes the token's gate: until it passes, calls fail fast with
//!   [`Error::LocalRateLimited`] (reads wait for it inside their retry budget).
//! - The token never appears in `Debug`/`Display` output, logs or errors.

mod client;
mod error;
mod operation;
mod ratelimit;
mod timestamp;
mod types;

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use client::{CallObserver, ClientConfig, ClientPool, ContiguityClient, DEFAULT_BASE_URL};
pub use error::Error;
pub use operation::{Operation, UnknownOperation};
pub use ratelimit::TokenLimiter;
pub use timestamp::{Timestamp, TimestampError};
pub use types::{
    BillingMethod, BillingPeriod, Capabilities, Carrier, Channel, ConfigureResult, CreatedLease, Currency,
    FailoverConfig, FailoverMode, FallbackWhen, Health, IMessage, ImessageFallback, LeaseBilling, LeaseStatus,
    Location, NumberData, NumberInfo, NumberList, NumberRecord, NumberStatus, Pricing, Requirement, SentMessage,
    TerminatedLease, TextMessage,
};

/// Installs rustls' `ring` crypto provider as the process default, which the HTTP client needs.
/// Call once at start-up (binaries, tests); a provider that is already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Contiguity API key. Its `Debug` and `Display` print `ApiToken(***)`.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    /// Wraps a key; surrounding whitespace (e.g. a trailing newline from a Secret) is removed.
    pub fn new(token: String) -> Self {
        let trimmed = token.trim();
        if trimmed.len() == token.len() {
            Self(Arc::from(token))
        } else {
            Self(Arc::from(trimmed))
        }
    }

    /// The key itself. Only for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 16 hex digits of the key's SHA-256: identifies the token in logs, metrics and maps
    /// without revealing it.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.0)
    }

    /// Whether the key has the documented `contiguity_sk_` marker (informational only).
    pub fn looks_like_secret_key(&self) -> bool {
        self.0.contains("contiguity_sk_")
    }
}

/// The fingerprint of a raw token string (same as [`ApiToken::fingerprint`]).
pub fn fingerprint_of(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hex::encode(&digest[..8])
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// Whether `s` is E.164 as `^\+[1-9][0-9]{1,14}$`.
pub fn is_e164(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=16).contains(&b.len())
        && b[0] == b'+'
        && (b'1'..=b'9').contains(&b[1])
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// Returns `number` if it is E.164, else [`Error::InvalidNumber`].
pub fn validate_e164(number: &str) -> Result<&str, Error> {
    if is_e164(number) {
        Ok(number)
    } else {
        Err(Error::InvalidNumber {
            number: number.chars().take(32).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted() {
        let t = ApiToken::new("contiguity_sk_supersecret\n".to_owned());
        assert_eq!(format!("{t:?}"), "ApiToken(***)");
        assert_eq!(format!("{t}"), "ApiToken(***)");
        assert_eq!(t.expose(), "contiguity_sk_supersecret");
        assert_eq!(t.fingerprint().len(), 16);
        assert!(!t.fingerprint().contains("supersecret"));
        assert_eq!(
            t.fingerprint(),
            ApiToken::new("contiguity_sk_supersecret".into()).fingerprint()
        );
        assert!(t.looks_like_secret_key());
    }

    #[test]
    fn e164() {
        for ok in ["+13059478667", "+12", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "13059478667",
            "+03059478667",
            "+1",
            "+1234567890123456",
            "+1305947866a",
            "",
            "+",
            "+1 305",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert!(matches!(validate_e164("12"), Err(Error::InvalidNumber { .. })));
    }
}
