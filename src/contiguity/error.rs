//! The error type of the Contiguity client.

use std::time::Duration;

use super::Operation;

/// Everything that can go wrong talking to Contiguity. Never contains the API token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Contiguity answered with a non-2xx status.
    #[error(
        "contiguity {op}: HTTP {status}: {message} (request id {})",
        .request_id.as_deref().unwrap_or("-")
    )]
    Api {
        /// The operation.
        op: Operation,
        /// HTTP status.
        status: u16,
        /// The server's request id (`id` of the envelope, `err_…`), when the body had one.
        request_id: Option<String>,
        /// `data.error`, or top-level `message`, or a description of a non-JSON body.
        message: String,
        /// Parsed `Retry-After` header.
        retry_after: Option<Duration>,
        /// `data.agreement_url`: an entitlement or terms acceptance is needed.
        agreement_url: Option<String>,
    },
    /// No complete response within the per-call timeout. For a mutation the outcome is unknown.
    #[error("contiguity {op}: no response within {after:?}")]
    Timeout {
        /// The operation.
        op: Operation,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The connection failed, was reset or closed before a complete response. For a mutation the
    /// outcome is unknown.
    #[error("contiguity {op}: transport error: {message}")]
    Transport {
        /// The operation.
        op: Operation,
        /// What happened.
        message: String,
    },
    /// A 2xx response whose body could not be decoded.
    #[error(
        "contiguity {op}: cannot decode the HTTP {status} response: {message} (request id {})",
        .request_id.as_deref().unwrap_or("-")
    )]
    Decode {
        /// The operation.
        op: Operation,
        /// HTTP status.
        status: u16,
        /// The server's request id, when it could be read.
        request_id: Option<String>,
        /// The decoder's message.
        message: String,
    },
    /// The token's `Retry-After` gate is closed: nothing was sent.
    #[error("contiguity {op}: rate limited, retry after {retry_after:?} (not sent)")]
    LocalRateLimited {
        /// The operation.
        op: Operation,
        /// Time until the gate opens.
        retry_after: Duration,
    },
    /// The number is not E.164 (`^\+[1-9][0-9]{1,14}$`); nothing was sent.
    #[error("invalid phone number {number:?}: expected E.164 like +13059478667")]
    InvalidNumber {
        /// The rejected input.
        number: String,
    },
    /// The client could not be built.
    #[error("contiguity client configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether retrying later may succeed: timeouts, transport failures, 5xx, 429 and the local
    /// rate-limit gate.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status >= 500 || *status == 429,
            Error::Timeout { .. } | Error::Transport { .. } | Error::LocalRateLimited { .. } => true,
            Error::Decode { status, .. } => *status >= 500,
            Error::InvalidNumber { .. } | Error::Config(_) => false,
        }
    }

    /// Whether a mutation may or may not have been applied (no complete answer arrived).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::Transport { .. })
    }

    /// How long to wait before trying again, when the server or the local gate said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            Error::LocalRateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The operation that failed, when one was attempted.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Error::Api { op, .. }
            | Error::Timeout { op, .. }
            | Error::Transport { op, .. }
            | Error::Decode { op, .. }
            | Error::LocalRateLimited { op, .. } => Some(*op),
            Error::InvalidNumber { .. } | Error::Config(_) => None,
        }
    }

    /// The server's request id (`req_…`/`err_…`), when known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } | Error::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// `data.agreement_url` of an API error.
    pub fn agreement_url(&self) -> Option<&str> {
        match self {
            Error::Api { agreement_url, .. } => agreement_url.as_deref(),
            _ => None,
        }
    }

    /// The server's message of an API error.
    pub fn api_message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// HTTP 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) && matches!(self, Error::Api { .. })
    }

    /// HTTP 401 or 403 (bad, suspended or missing token; missing entitlement).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Api { status: 401 | 403, .. })
    }

    /// HTTP 429, or the local gate.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Error::Api { status: 429, .. } | Error::LocalRateLimited { .. })
    }

    /// A 4xx whose message says the number is already leased (the sandbox sends HTTP 400 with
    /// `data.error` = `"Number is already leased"`; the real API's wording is undocumented).
    pub fn is_already_leased(&self) -> bool {
        match self {
            Error::Api { status, message, .. } if (400..500).contains(status) => {
                message.to_ascii_lowercase().contains("already leased")
            }
            _ => false,
        }
    }

    /// A stable, bounded label for metrics and conditions.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api { status, .. } => match *status {
                401 | 403 => "unauthorized",
                404 => "not_found",
                429 => "rate_limited",
                400..=499 => "client_error",
                500..=599 => "server_error",
                _ => "unexpected_status",
            },
            Error::Timeout { .. } => "timeout",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::LocalRateLimited { .. } => "local_rate_limited",
            Error::InvalidNumber { .. } => "invalid_number",
            Error::Config(_) => "config",
        }
    }
}

/// Parses a `Retry-After` value: delay seconds (integer or decimal) or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(v).ok()?;
    let delta = at.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(u64::try_from(delta).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2015-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn classification() {
        let api = |status| Error::Api {
            op: Operation::Get,
            status,
            request_id: Some("err_1".into()),
            message: "x".into(),
            retry_after: None,
            agreement_url: None,
        };
        assert!(api(503).is_transient());
        assert!(api(429).is_transient());
        assert!(!api(400).is_transient());
        assert!(api(401).is_unauthorized());
        assert!(api(403).is_unauthorized());
        assert!(api(404).is_not_found());
        assert_eq!(api(404).category(), "not_found");
        assert_eq!(api(502).category(), "server_error");
        assert_eq!(api(409).category(), "client_error");
        assert_eq!(api(500).request_id(), Some("err_1"));
        assert_eq!(api(500).to_string(), "contiguity get: HTTP 500: x (request id err_1)");
        let t = Error::Timeout {
            op: Operation::Create,
            after: Duration::from_secs(1),
        };
        assert!(t.is_transient() && t.is_ambiguous());
        assert_eq!(t.category(), "timeout");
        assert!(!Error::InvalidNumber { number: "1".into() }.is_transient());
    }
}
