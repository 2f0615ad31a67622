//! The sandbox's inventory of numbers: generated deterministically from a seed, and/or listed
//! explicitly (e.g. loaded from a JSON file).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::contiguity::{Timestamp, is_e164};

use super::SandboxError;

/// One number of the inventory, with everything the wire record shows. Also the JSON format of
/// inventory files and of `POST /_sandbox/numbers`; every field but `number` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryNumber {
    /// E.164 number.
    pub number: String,
    /// Base status when not leased: `available`, `g-available` or `unavailable` (any string is
    /// passed through to the wire, to exercise clients).
    pub status: String,
    /// Two-letter country code.
    pub country: String,
    /// Region.
    pub region: String,
    /// City.
    pub city: String,
    /// Carrier wire string.
    pub carrier: String,
    /// International SMS.
    pub intl_sms: bool,
    /// Channel wire strings.
    pub channels: Vec<String>,
    /// 0..1.
    pub reputation: f64,
    /// Earlier lessees.
    pub previous_owners: u64,
    /// Requirement wire strings; leasing needs the matching account entitlement.
    pub requirements: Vec<String>,
    /// E911.
    pub e911_capable: bool,
    /// Provisioning time; defaults to 2024-06-20T02:40:00Z.
    pub created_at: Option<Timestamp>,
    /// Currency wire string.
    pub currency: String,
    /// One-time fee.
    pub upfront_fee: f64,
    /// Monthly price.
    pub monthly_rate: f64,
}

impl Default for InventoryNumber {
    fn default() -> Self {
        Self {
            number: String::new(),
            status: "available".to_owned(),
            country: "US".to_owned(),
            region: "CA".to_owned(),
            city: "San Francisco".to_owned(),
            carrier: "T-Mobile".to_owned(),
            intl_sms: true,
            channels: vec!["sms".to_owned(), "mms".to_owned()],
            reputation: 0.9,
            previous_owners: 0,
            requirements: Vec::new(),
            e911_capable: true,
            created_at: None,
            currency: "USD".to_owned(),
            upfront_fee: 2.99,
            monthly_rate: 19.99,
        }
    }
}

impl InventoryNumber {
    /// A default number record for `number`.
    pub fn new(number: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            ..Self::default()
        }
    }

    /// Display form: `+1 (555) 010-0000` for NANP numbers, else the E.164 form.
    pub fn formatted(&self) -> String {
        let n = &self.number;
        if n.len() == 12 && n.starts_with("+1") {
            format!("+1 ({}) {}-{}", &n[2..5], &n[5..8], &n[8..12])
        } else {
            n.clone()
        }
    }
}

/// A location numbers are generated in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    /// Two-letter country code.
    pub country: String,
    /// Region.
    pub region: String,
    /// City.
    pub city: String,
}

/// A price point numbers are generated with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceSpec {
    /// One-time fee.
    pub upfront_fee: f64,
    /// Monthly price.
    pub monthly_rate: f64,
}

/// How to build the inventory: `count` generated numbers (`prefix` followed by a zero-padded
/// sequence: with the defaults `+15550100000`, `+15550100001`, …) whose attributes are drawn
/// from the lists below with a seeded RNG, then the explicit `numbers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySpec {
    /// How many numbers to generate.
    pub count: usize,
    /// E.164 prefix of generated numbers (`+` and at least one digit).
    pub prefix: String,
    /// Locations to draw from.
    pub regions: Vec<RegionSpec>,
    /// Carriers to draw from.
    pub carriers: Vec<String>,
    /// Channel sets to draw from.
    pub channel_sets: Vec<Vec<String>>,
    /// Currency of generated numbers.
    pub currency: String,
    /// Price points to draw from.
    pub prices: Vec<PriceSpec>,
    /// Reputation is drawn uniformly from `[reputation_min, reputation_max]`.
    pub reputation_min: f64,
    /// Upper bound of the reputation.
    pub reputation_max: f64,
    /// Attach `imessage_entitlement_required` / `whatsapp_entitlement_required` to generated
    /// numbers with those channels.
    pub channel_requirements: bool,
    /// Explicit numbers, added after the generated ones.
    pub numbers: Vec<InventoryNumber>,
}

impl Default for InventorySpec {
    fn default() -> Self {
        let region = |country: &str, region: &str, city: &str| RegionSpec {
            country: country.to_owned(),
            region: region.to_owned(),
            city: city.to_owned(),
        };
        let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Self {
            count: 50,
            prefix: "+1555010".to_owned(),
            regions: vec![
                region("US", "CA", "San Francisco"),
                region("US", "NY", "New York"),
                region("US", "FL", "Miami"),
                region("US", "TX", "Austin"),
            ],
            carriers: set(&["T-Mobile", "AT&T", "Verizon", "Contiguity"]),
            channel_sets: vec![
                set(&["sms", "mms"]),
                set(&["sms", "mms", "rcs"]),
                set(&["sms", "mms", "rcs", "imessage"]),
            ],
            currency: "USD".to_owned(),
            prices: vec![
                PriceSpec {
                    upfront_fee: 2.99,
                    monthly_rate: 19.99,
                },
                PriceSpec {
                    upfront_fee: 0.0,
                    monthly_rate: 9.99,
                },
                PriceSpec {
                    upfront_fee: 4.99,
                    monthly_rate: 29.99,
                },
            ],
            reputation_min: 0.65,
            reputation_max: 0.99,
            channel_requirements: false,
            numbers: Vec::new(),
        }
    }
}

/// 2024-06-20T02:40:00Z, the OpenAPI example `created_at`.
const BASE_CREATED_AT: i64 = 1_718_851_200;

impl InventorySpec {
    /// `count` default numbers and nothing else.
    pub fn with_count(count: usize) -> Self {
        Self {
            count,
            ..Self::default()
        }
    }

    /// Reads a JSON file holding either an `InventorySpec` object or an array of
    /// [`InventoryNumber`] (then nothing is generated).
    pub fn from_json_file(path: &Path) -> Result<Self, SandboxError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| SandboxError::Invalid(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| SandboxError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses the JSON accepted by [`from_json_file`](Self::from_json_file).
    pub fn from_json(text: &str) -> Result<Self, SandboxError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SandboxError::Invalid(e.to_string()))?;
        if value.is_array() {
            let numbers: Vec<InventoryNumber> =
                serde_json::from_value(value).map_err(|e| SandboxError::Invalid(e.to_string()))?;
            Ok(Self {
                count: 0,
                numbers,
                ..Self::default()
            })
        } else {
            serde_json::from_value(value).map_err(|e| SandboxError::Invalid(e.to_string()))
        }
    }

    /// Builds the numbers: deterministic for a given spec and seed.
    pub fn generate(&self, seed: u64) -> Result<Vec<InventoryNumber>, SandboxError> {
        let prefix_digits = self.prefix.strip_prefix('+').unwrap_or("");
        if self.count > 0 && (prefix_digits.is_empty() || !prefix_digits.bytes().all(|b| b.is_ascii_digit())) {
            return Err(SandboxError::Invalid(format!(
                "inventory prefix {:?} must be '+' followed by digits",
                self.prefix
            )));
        }
        // NANP-length numbers by default; widen the suffix when `count` needs it.
        let mut width = 11usize.saturating_sub(prefix_digits.len()).max(1);
        while (width as u32) < 19 && 10u64.pow(width as u32) < self.count as u64 {
            width += 1;
        }
        if self.count > 0 && prefix_digits.len() + width > 15 {
            return Err(SandboxError::Invalid(format!(
                "{} numbers do not fit behind prefix {:?} (E.164 allows 15 digits)",
                self.count, self.prefix
            )));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(self.count + self.numbers.len());
        for i in 0..self.count {
            let number = format!("{}{:0width$}", self.prefix, i, width = width);
            let region = pick(&mut rng, &self.regions);
            let carrier = pick(&mut rng, &self.carriers)
                .cloned()
                .unwrap_or_else(|| "T-Mobile".to_owned());
            let channels = pick(&mut rng, &self.channel_sets)
                .cloned()
                .unwrap_or_else(|| vec!["sms".to_owned()]);
            let price = pick(&mut rng, &self.prices);
            let (lo, hi) = if self.reputation_min <= self.reputation_max {
                (self.reputation_min, self.reputation_max)
            } else {
                (self.reputation_max, self.reputation_min)
            };
            let reputation = (lo + (hi - lo) * rng.random::<f64>()) * 100.0;
            let previous_owners = rng.random_range(0..4u64);
            let age_days = rng.random_range(0..900i64);
            let mut requirements = Vec::new();
            if self.channel_requirements {
                if channels.iter().any(|c| c == "imessage") {
                    requirements.push("imessage_entitlement_required".to_owned());
                }
                if channels.iter().any(|c| c == "whatsapp") {
                    requirements.push("whatsapp_entitlement_required".to_owned());
                }
            }
            out.push(InventoryNumber {
                number,
                status: "available".to_owned(),
                country: region.map(|r| r.country.clone()).unwrap_or_default(),
                region: region.map(|r| r.region.clone()).unwrap_or_default(),
                city: region.map(|r| r.city.clone()).unwrap_or_default(),
                intl_sms: carrier == "T-Mobile",
                carrier,
                channels,
                reputation: reputation.round() / 100.0,
                previous_owners,
                requirements,
                e911_capable: rng.random_bool(0.8),
                created_at: Timestamp::from_epoch_number((BASE_CREATED_AT - age_days * 86_400) as f64).ok(),
                currency: self.currency.clone(),
                upfront_fee: price.map(|p| p.upfront_fee).unwrap_or(0.0),
                monthly_rate: price.map(|p| p.monthly_rate).unwrap_or(0.0),
            });
        }
        out.extend(self.numbers.iter().cloned());
        for n in &out {
            if !is_e164(&n.number) {
                return Err(SandboxError::Invalid(format!(
                    "inventory number {:?} is not E.164",
                    n.number
                )));
            }
        }
        Ok(out)
    }
}

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> Option<&'a T> {
    if xs.is_empty() {
        None
    } else {
        xs.get(rng.random_range(0..xs.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let spec = InventorySpec::with_count(20);
        let a = spec.generate(7).unwrap();
        let b = spec.generate(7).unwrap();
        let c = spec.generate(8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[0].number, "+15550100000");
        assert_eq!(a[19].number, "+15550100019");
        assert_eq!(a[0].formatted(), "+1 (555) 010-0000");
        assert_eq!(
            a.iter().map(|n| &n.number).collect::<Vec<_>>(),
            c.iter().map(|n| &n.number).collect::<Vec<_>>()
        );
    }

    #[test]
    fn wide_counts_widen_the_suffix() {
        let spec = InventorySpec {
            count: 20_000,
            ..InventorySpec::default()
        };
        let v = spec.generate(1).unwrap();
        assert_eq!(v[0].number, "+155501000000");
        assert_eq!(v.len(), 20_000);
    }

    #[test]
    fn file_formats() {
        let s = InventorySpec::from_json(
            r#"[{"number":"+447700900123","carrier":"International Partner","currency":"GBP"}]"#,
        )
        .unwrap();
        let v = s.generate(0).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].carrier, "International Partner");
        assert_eq!(v[0].status, "available");
        let s = InventorySpec::from_json(r#"{"count":2,"numbers":[{"number":"+447700900123"}]}"#).unwrap();
        assert_eq!(s.generate(0).unwrap().len(), 3);
        assert!(
            InventorySpec::from_json(r#"[{"number":"12"}]"#)
                .unwrap()
                .generate(0)
                .is_err()
        );
    }
}
