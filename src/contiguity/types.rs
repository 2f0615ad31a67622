//! Wire types of Contiguity's lease and send API.
//!
//! Decoding is tolerant: every enum keeps values it does not know (`Unknown(String)`), optional
//! and `data.*` fields default when missing, timestamps are read leniently (see
//! [`Timestamp`](super::Timestamp)).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::timestamp::{Timestamp, lenient_opt};

/// Declares a string enum that keeps unknown wire values.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(s) => s.as_str(),
                }
            }

            /// Reads a wire string; exact match first, then ASCII case-insensitive, else `Unknown`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $wire => Self::$variant, )+
                    other => {
                        $( if other.eq_ignore_ascii_case($wire) { return Self::$variant; } )+
                        Self::Unknown(other.to_owned())
                    }
                }
            }

            /// Whether this is one of the documented values.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Unknown(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse(s)
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::parse(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " string"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::parse(v))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$name, E> {
                        Ok($name::default())
                    }
                    fn visit_none<E: de::Error>(self) -> Result<$name, E> {
                        Ok($name::default())
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

wire_enum! {
    /// `status` of a number record.
    NumberStatus {
        /// Leasable.
        Available => "available",
        /// Undocumented variant of available (perhaps goodwill availability).
        GAvailable => "g-available",
        /// Leased (by anyone).
        Leased => "leased",
        /// Not leasable.
        Unavailable => "unavailable",
    }
}

wire_enum! {
    /// `lease_status` / `status` of a lease.
    LeaseStatus {
        /// The lease is in force.
        Active => "active",
        /// Paused (only seen in `GET /numbers/leased`).
        Paused => "paused",
        /// Expired.
        Expired => "expired",
        /// Terminated.
        Terminated => "terminated",
    }
}

wire_enum! {
    /// `billing_method` / `billing.method`.
    BillingMethod {
        /// Month to month (the API default).
        Monthly => "monthly",
        /// Needs an active service contract.
        ServiceContract => "service_contract",
        /// Granted by Contiguity; cannot be requested.
        Goodwill => "goodwill",
    }
}

wire_enum! {
    /// `carrier` of a number.
    Carrier {
        /// T-Mobile.
        TMobile => "T-Mobile",
        /// AT&T.
        Att => "AT&T",
        /// Verizon.
        Verizon => "Verizon",
        /// Twilio.
        Twilio => "Twilio",
        /// Contiguity itself.
        Contiguity => "Contiguity",
        /// A non-US partner.
        InternationalPartner => "International Partner",
    }
}

wire_enum! {
    /// An item of `capabilities.channels`.
    Channel {
        /// SMS.
        Sms => "sms",
        /// MMS.
        Mms => "mms",
        /// RCS.
        Rcs => "rcs",
        /// iMessage.
        Imessage => "imessage",
        /// WhatsApp.
        Whatsapp => "whatsapp",
    }
}

wire_enum! {
    /// `pricing.currency`.
    Currency {
        /// US dollar.
        Usd => "USD",
        /// Euro.
        Eur => "EUR",
        /// Pound sterling.
        Gbp => "GBP",
        /// Canadian dollar.
        Cad => "CAD",
        /// Australian dollar.
        Aud => "AUD",
    }
}

wire_enum! {
    /// An item of `data.requirements`.
    Requirement {
        /// The account needs the iMessage entitlement.
        ImessageEntitlementRequired => "imessage_entitlement_required",
        /// The account needs the WhatsApp entitlement.
        WhatsappEntitlementRequired => "whatsapp_entitlement_required",
        /// The account needs an enterprise plan.
        EnterprisePlanRequired => "enterprise_plan_required",
    }
}

wire_enum! {
    /// `failover.mode`.
    FailoverMode {
        /// Any of the account's numbers may fail over to this one.
        All => "all",
        /// Only the numbers listed in `failover.numbers`.
        Selective => "selective",
    }
}

wire_enum! {
    /// An item of an iMessage `fallback.when`.
    FallbackWhen {
        /// The recipient does not support iMessage.
        ImessageUnsupported => "imessage_unsupported",
        /// The iMessage send failed.
        ImessageFails => "imessage_fails",
    }
}

/// `number` object of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberInfo {
    /// E.164 form.
    pub e164: String,
    /// Display form, e.g. `+1 (305) 947-8667`.
    pub formatted: String,
}

/// `location` of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    /// Two-letter country code.
    pub country: String,
    /// State or region.
    pub region: String,
    /// City.
    pub city: String,
}

/// `capabilities` of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Whether international SMS works.
    pub intl_sms: bool,
    /// Supported channels.
    pub channels: Vec<Channel>,
}

/// `health` of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// 0..1; above 0.8 is fine for any use.
    pub reputation: f64,
    /// Number of earlier lessees.
    pub previous_owners: u64,
}

/// `data` of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberData {
    /// Entitlements or plans needed to lease the number.
    pub requirements: Vec<Requirement>,
    /// Whether the number can reach E911.
    pub e911_capable: bool,
}

/// Prices in major currency units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pricing {
    /// Currency.
    pub currency: Currency,
    /// One-time fee.
    pub upfront_fee: f64,
    /// Monthly price.
    pub monthly_rate: f64,
}

/// `billing.period` of a lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BillingPeriod {
    /// Start of the period.
    #[serde(deserialize_with = "lenient_opt")]
    pub start: Option<Timestamp>,
    /// End of the period; `None` (null on the wire) for month-to-month leases.
    #[serde(deserialize_with = "lenient_opt")]
    pub end: Option<Timestamp>,
}

/// `billing` of a lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseBilling {
    /// Billing method.
    pub method: BillingMethod,
    /// Billing period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<BillingPeriod>,
    /// Price (present in the create response, absent from `GET /numbers/leased`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Pricing>,
}

/// Contiguity's shared number object, with the lease extension fields when the caller holds the
/// lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumberRecord {
    /// The E.164 number.
    pub id: String,
    /// Availability.
    pub status: NumberStatus,
    /// E.164 and display forms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<NumberInfo>,
    /// Location.
    pub location: Location,
    /// Carrier.
    pub carrier: Carrier,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Reputation.
    pub health: Health,
    /// Requirements and E911.
    pub data: NumberData,
    /// When the number was provisioned.
    #[serde(deserialize_with = "lenient_opt", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Lease id, present only when the caller holds the lease. Do not parse its prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// Lease status, present only when the caller holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_status: Option<LeaseStatus>,
    /// Lease billing, present only when the caller holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<LeaseBilling>,
    /// Failover settings of the number. Not in Contiguity's published schema: the sandbox sends it
    /// to the lease holder; the real API may never send it, so `None` means "unknown".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverConfig>,
}

impl NumberRecord {
    /// Whether the caller holds the lease on this number (the lease fields are only sent to the
    /// holder).
    pub fn is_leased_by_us(&self) -> bool {
        self.lease_id.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The E.164 number: `number.e164` when present, else `id`.
    pub fn e164(&self) -> &str {
        match &self.number {
            Some(n) if !n.e164.is_empty() => &n.e164,
            _ => &self.id,
        }
    }
}

/// A list of numbers: `GET /numbers/leases` (`available` count) or `GET /numbers/leased`
/// (`leased` count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumberList {
    /// The count sent by the server (`available` / `leased`); the list length when it is missing
    /// or not a number.
    pub count: u64,
    /// The numbers.
    pub numbers: Vec<NumberRecord>,
}

impl<'de> Deserialize<'de> for NumberList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            available: Option<serde_json::Value>,
            #[serde(default)]
            leased: Option<serde_json::Value>,
            #[serde(default)]
            numbers: Option<Vec<NumberRecord>>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let numbers = raw.numbers.unwrap_or_default();
        let count = [raw.available, raw.leased]
            .into_iter()
            .flatten()
            .find_map(|v| v.as_u64())
            .unwrap_or(numbers.len() as u64);
        Ok(Self { count, numbers })
    }
}

/// `data` of `POST /numbers/lease/{n}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreatedLease {
    /// The new lease id.
    pub lease_id: String,
    /// The E.164 number (a string here, not an object).
    pub number: String,
    /// Lease status (expect `active`).
    pub status: LeaseStatus,
    /// Billing, with `price`.
    pub billing: LeaseBilling,
}

/// `data` of `DELETE /numbers/leased/{n}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TerminatedLease {
    /// The ended lease.
    pub lease_id: String,
    /// The E.164 number (named `number_id` on the wire).
    pub number_id: String,
    /// Lease status (expect `terminated`).
    pub status: LeaseStatus,
    /// When the lease ended.
    #[serde(deserialize_with = "lenient_opt", skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<Timestamp>,
}

/// Failover settings of a number (it becomes a failover *target*).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverConfig {
    /// Whether failover to this number is on.
    pub enabled: bool,
    /// `all` or `selective`; omitted on the wire when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<FailoverMode>,
    /// Source numbers for `selective` mode; omitted on the wire when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
}

/// `data` of `POST /numbers/{n}/configure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigureResult {
    /// The configured number.
    pub number: String,
    /// The failover settings now in force, when the server echoes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverConfig>,
}

/// Body of `POST /send/text`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextMessage {
    /// Recipient, E.164 (the API converts some other formats).
    pub to: String,
    /// Text; required unless `attachments` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One of our leased numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Up to 3 HTTPS URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Skip the recommended rate limiting (leased numbers with the Fast Track entitlement only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_track: Option<bool>,
}

/// `fallback` of an iMessage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImessageFallback {
    /// When to fall back.
    pub when: Vec<FallbackWhen>,
    /// Leased SMS/RCS number to fall back from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Body of `POST /send/imessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IMessage {
    /// Recipient, E.164.
    pub to: String,
    /// Text; required unless `attachments` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Our leased iMessage number; random one of ours when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// SMS/RCS fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<ImessageFallback>,
    /// Up to 10 HTTPS URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Skip the recommended rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_track: Option<bool>,
}

/// `data` of both send calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SentMessage {
    /// Server message id (`text_…`, `imsg_…`).
    pub message_id: String,
}

/// The envelope around every response.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    /// The payload; `id`, `timestamp`, `api_version` and `object` are not needed on success.
    pub data: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_kept() {
        let s: LeaseStatus = serde_json::from_str("\"suspended\"").unwrap();
        assert_eq!(s, LeaseStatus::Unknown("suspended".into()));
        assert_eq!(s.as_str(), "suspended");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"suspended\"");
        let c: Carrier = serde_json::from_str("\"AT&T\"").unwrap();
        assert_eq!(c, Carrier::Att);
        let c: Carrier = serde_json::from_str("\"t-mobile\"").unwrap();
        assert_eq!(c, Carrier::TMobile);
        let n: NumberStatus = serde_json::from_str("\"g-available\"").unwrap();
        assert_eq!(n, NumberStatus::GAvailable);
        let n: NumberStatus = serde_json::from_str("null").unwrap();
        assert_eq!(n, NumberStatus::Unknown(String::new()));
    }

    #[test]
    fn failover_omits_empty_fields() {
        let f = FailoverConfig {
            enabled: false,
            mode: None,
            numbers: vec![],
        };
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"enabled":false}"#);
        let f = FailoverConfig {
            enabled: true,
            mode: Some(FailoverMode::Selective),
            numbers: vec!["+15550100001".into()],
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"enabled":true,"mode":"selective","numbers":["+15550100001"]}"#
        );
    }

    #[test]
    fn number_list_counts() {
        let l: NumberList = serde_json::from_str(r#"{"available":7,"numbers":[{"id":"+15550100000"}]}"#).unwrap();
        assert_eq!(l.count, 7);
        assert_eq!(l.numbers.len(), 1);
        let l: NumberList = serde_json::from_str(r#"{"leased":true,"numbers":[{"id":"+15550100000"}]}"#).unwrap();
        assert_eq!(l.count, 1);
        let l: NumberList = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(l.count, 0);
    }
}
