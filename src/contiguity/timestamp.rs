//! Lenient timestamps.
//!
//! Contiguity documents `created_at`, `terminated_at` and `billing.period.*` as epoch seconds, the
//! JS SDK fixtures and docs use ISO-8601 strings, and the envelope `timestamp` is epoch
//! milliseconds. [`Timestamp`] accepts all of them and always serializes as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Integers whose magnitude is above this are read as epoch milliseconds, below as epoch seconds.
///
/// 1e11 seconds is in the year 5138 while 1e11 milliseconds is in March 1973, so the two ranges
/// cannot be confused for any realistic date.
const MILLIS_THRESHOLD: f64 = 1e11;

/// A point in time decoded leniently from the wire (epoch seconds, epoch milliseconds or an
/// ISO-8601 / RFC 3339 string). Serializes as an RFC 3339 string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

/// Why a wire value could not be read as a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}")]
pub struct TimestampError(String);

impl Timestamp {
    /// Wraps a `jiff::Timestamp`.
    pub fn from_jiff(ts: jiff::Timestamp) -> Self {
        Self(ts)
    }

    /// The current time.
    pub fn now() -> Self {
        Self(jiff::Timestamp::now())
    }

    /// The underlying `jiff::Timestamp`.
    pub fn as_jiff(&self) -> jiff::Timestamp {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn as_epoch_seconds(&self) -> i64 {
        self.0.as_second()
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_epoch_millis(&self) -> i64 {
        self.0.as_millisecond()
    }

    /// Reads an epoch number: seconds, or milliseconds when its magnitude is above 1e11.
    pub fn from_epoch_number(value: f64) -> Result<Self, TimestampError> {
        if !value.is_finite() {
            return Err(TimestampError(value.to_string()));
        }
        let millis = if value.abs() > MILLIS_THRESHOLD {
            value
        } else {
            value * 1000.0
        };
        // Float to int casts saturate; out-of-range values are rejected by jiff below.
        let ms = millis.round() as i64;
        jiff::Timestamp::from_millisecond(ms)
            .map(Self)
            .map_err(|_| TimestampError(value.to_string()))
    }

    /// Parses a string leniently: a decimal epoch number, an RFC 3339 timestamp, an ISO-8601
    /// date-time without offset (read as UTC) or a bare date (midnight UTC).
    pub fn parse_lenient(input: &str) -> Result<Self, TimestampError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(TimestampError(input.to_owned()));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && s.bytes().any(|b| b.is_ascii_digit())
            && let Ok(n) = s.parse::<f64>()
        {
            // A bare date like 2026-07-29 also matches the byte set but fails f64 parsing.
            return Self::from_epoch_number(n);
        }
        if let Ok(ts) = jiff::Timestamp::from_str(s) {
            return Ok(Self(ts));
        }
        if let Ok(dt) = jiff::civil::DateTime::from_str(s)
            && let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC)
        {
            return Ok(Self(z.timestamp()));
        }
        if let Ok(d) = jiff::civil::Date::from_str(s)
            && let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC)
        {
            return Ok(Self(z.timestamp()));
        }
        Err(TimestampError(input.to_owned()))
    }
}

impl From<jiff::Timestamp> for Timestamp {
    fn from(ts: jiff::Timestamp) -> Self {
        Self(ts)
    }
}

impl From<Timestamp> for jiff::Timestamp {
    fn from(ts: Timestamp) -> Self {
        ts.0
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_lenient(s)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("epoch seconds, epoch milliseconds or an ISO-8601 string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Timestamp::from_epoch_number(v as f64).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        Timestamp::from_epoch_number(v as f64).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        Timestamp::from_epoch_number(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse_lenient(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Serde helper for `Option<Timestamp>` fields: `null`, a missing field, an empty string or an
/// unreadable value all become `None` rather than failing the whole payload.
pub(crate) fn lenient_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Number(n) => n.as_f64().and_then(|f| Timestamp::from_epoch_number(f).ok()),
        serde_json::Value::String(s) => Timestamp::parse_lenient(&s).ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de(json: &str) -> Timestamp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn epoch_seconds_millis_and_iso_agree() {
        let s = de("1718851200");
        let ms = de("1718851200000");
        let iso = de("\"2024-06-20T02:40:00Z\"");
        let iso_ms = de("\"2024-06-20T02:40:00.000Z\"");
        assert_eq!(s.as_epoch_seconds(), 1_718_851_200);
        assert_eq!(s, ms);
        assert_eq!(s, iso);
        assert_eq!(s, iso_ms);
    }

    #[test]
    fn millisecond_precision_is_kept() {
        let t = de("1785698220563");
        assert_eq!(t.as_epoch_millis(), 1_785_698_220_563);
    }

    #[test]
    fn odd_but_valid_forms() {
        assert_eq!(de("\"1718851200\"").as_epoch_seconds(), 1_718_851_200);
        assert_eq!(de("1718851200.0").as_epoch_seconds(), 1_718_851_200);
        assert_eq!(de("\"2026-07-29T12:00:00\"").to_string(), "2026-07-29T12:00:00Z");
        assert_eq!(de("\"2026-07-29T14:00:00+02:00\"").to_string(), "2026-07-29T12:00:00Z");
        assert_eq!(de("\"2026-07-29\"").to_string(), "2026-07-29T00:00:00Z");
    }

    #[test]
    fn serializes_as_rfc3339() {
        let t = de("1718851200");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2024-06-20T02:40:00Z\"");
    }

    #[test]
    fn garbage_is_an_error_but_lenient_opt_is_none() {
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("true").is_err());

        #[derive(Deserialize)]
        struct W {
            #[serde(default, deserialize_with = "lenient_opt")]
            t: Option<Timestamp>,
        }
        let w: W = serde_json::from_str(r#"{"t":"yesterday"}"#).unwrap();
        assert!(w.t.is_none());
        let w: W = serde_json::from_str(r#"{"t":null}"#).unwrap();
        assert!(w.t.is_none());
        let w: W = serde_json::from_str(r#"{}"#).unwrap();
        assert!(w.t.is_none());
        let w: W = serde_json::from_str(r#"{"t":""}"#).unwrap();
        assert!(w.t.is_none());
        let w: W = serde_json::from_str(r#"{"t":1718851200}"#).unwrap();
        assert_eq!(w.t.unwrap().as_epoch_seconds(), 1_718_851_200);
    }
}
