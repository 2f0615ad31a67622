//! The `LeaseFailover` resource: a leased number configured as a failover target.

// Each `printcolumn(...)` repeats keys such as `type_`; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

use super::condition::{Condition, conditions_schema};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Configures a leased number as a failover target at Contiguity.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "contiguity.com",
    version = "v1alpha1",
    kind = "LeaseFailover",
    namespaced,
    status = "LeaseFailoverStatus",
    shortname = "lf",
    category = "contiguity",
    doc = "LeaseFailover makes a leased number a failover target at Contiguity: with mode all, any of the account's numbers may fail over to it; with mode selective, only the listed numbers. Deleting it disables the failover.",
    printcolumn(
        name = "Number",
        type_ = "string",
        json_path = ".status.number",
        description = "The failover target number"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "all or selective"
    ),
    printcolumn(
        name = "Enabled",
        type_ = "boolean",
        json_path = ".spec.enabled",
        description = "Whether failover is enabled"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether Contiguity has the declared configuration"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1",
        description = "Reason of the Ready condition"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.leaseRef) != has(self.number)").message("exactly one of leaseRef or number must be set").reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.mode == 'selective' ? (has(self.numbers) && size(self.numbers) > 0) : !has(self.numbers)").message("numbers is required and must not be empty when mode is selective, and must be omitted when mode is all").reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.number) || !has(self.numbers) || !(self.number in self.numbers)").message("numbers must not contain the target number itself").reason(Reason::FieldValueInvalid),
    validation = Rule::new("(has(self.number) ? self.number : '') == (has(oldSelf.number) ? oldSelf.number : '') && (has(self.leaseRef) ? self.leaseRef.name : '') == (has(oldSelf.leaseRef) ? oldSelf.leaseRef.name : '')").message("the failover target (leaseRef or number) is immutable: create a new LeaseFailover for another number").reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct LeaseFailoverSpec {
    /// The NumberLease (in this namespace) whose number is the failover target. The
    /// operator waits until that lease is Ready. Set exactly one of `leaseRef` and `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ref: Option<LeaseRef>,

    /// The failover target as an E.164 number, for a lease not managed by a NumberLease.
    /// Set exactly one of `leaseRef` and `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{1,14}$"), length(max = 16))]
    pub number: Option<String>,

    /// Whether failover to the target is enabled.
    pub enabled: bool,

    /// `all` (default): any of the account's numbers may fail over to the target.
    /// `selective`: only the numbers listed in `numbers`.
    #[serde(default)]
    pub mode: FailoverMode,

    /// With `mode: selective`, the E.164 numbers that may fail over to the target: required,
    /// non-empty, without duplicates and without the target itself. Must be omitted with
    /// `mode: all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "set"), inner(regex(pattern = r"^\+[1-9][0-9]{1,14}$"), length(max = 16)))]
    pub numbers: Option<Vec<String>>,
}

/// A NumberLease in the same namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
pub struct LeaseRef {
    /// Name of the NumberLease.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Which numbers may fail over to the target.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailoverMode {
    /// Any of the account's numbers.
    #[default]
    All,
    /// Only the listed numbers.
    Selective,
}

impl FailoverMode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverMode::All => "all",
            FailoverMode::Selective => "selective",
        }
    }
}

/// Observed state of a LeaseFailover, written only by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseFailoverStatus {
    /// The target number the configuration applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The configuration last applied at Contiguity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedFailover>,
    /// The metadata.generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the operator last compared this resource with Contiguity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Ready, Reconciling and Stalled conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A failover configuration as applied at Contiguity.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedFailover {
    /// Whether failover is enabled.
    pub enabled: bool,
    /// all or selective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The numbers allowed to fail over (selective mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
}

impl LeaseFailoverSpec {
    /// The configuration this spec asks for, in a canonical form (sorted numbers).
    pub fn desired(&self) -> AppliedFailover {
        let mut numbers = match self.mode {
            FailoverMode::Selective => self.numbers.clone().unwrap_or_default(),
            FailoverMode::All => Vec::new(),
        };
        numbers.sort();
        numbers.dedup();
        AppliedFailover {
            enabled: self.enabled,
            mode: Some(self.mode.as_str().to_string()),
            numbers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_names_and_rules() {
        let crd = LeaseFailover::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("leasefailovers.contiguity.com"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["lf".to_string()]));
        let schema = serde_json::to_string(&crd.spec.versions[0].schema).expect("schema");
        assert!(schema.contains("exactly one of leaseRef or number must be set"));
        assert!(schema.contains(r#""x-kubernetes-list-type":"set""#));
    }

    #[test]
    fn desired_is_canonical() {
        let spec = LeaseFailoverSpec {
            lease_ref: None,
            number: Some("+15550100001".into()),
            enabled: true,
            mode: FailoverMode::Selective,
            numbers: Some(vec!["+15550100003".into(), "+15550100002".into()]),
        };
        let d = spec.desired();
        assert_eq!(d.numbers, vec!["+15550100002", "+15550100003"]);
        assert_eq!(d.mode.as_deref(), Some("selective"));
    }
}

super::condition::conditioned_status!(LeaseFailoverStatus);
