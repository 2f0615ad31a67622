//! The `NumberLease` resource: one phone number leased from Contiguity.

// Each `printcolumn(...)` repeats keys such as `type_`; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

use super::condition::{Condition, conditions_schema};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A phone number leased from Contiguity as a dedicated SMS / iMessage sender.
///
/// The operator leases the number when the resource is created, records the lease in
/// `.status`, re-checks it periodically, and terminates the lease when the resource is
/// deleted (unless `deletionPolicy: Retain`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "contiguity.com",
    version = "v1alpha1",
    kind = "NumberLease",
    namespaced,
    status = "NumberLeaseStatus",
    shortname = "nl",
    category = "contiguity",
    doc = "NumberLease declares a phone number leased from Contiguity (a dedicated SMS / iMessage sender). The operator leases it, reports the lease in .status and terminates it when the resource is deleted, as deletionPolicy says.",
    printcolumn(
        name = "Number",
        type_ = "string",
        json_path = ".spec.number",
        description = "The leased phone number (E.164)"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.leaseStatus",
        description = "Lease status at Contiguity"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the lease is active and up to date"
    ),
    printcolumn(
        name = "Lease-ID",
        type_ = "string",
        json_path = ".status.leaseId",
        priority = "1",
        description = "Contiguity lease id"
    ),
    printcolumn(
        name = "Origin",
        type_ = "string",
        json_path = ".status.origin",
        priority = "1",
        description = "Created, Adopted or Observed"
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
#[serde(rename_all = "camelCase")]
pub struct NumberLeaseSpec {
    /// The phone number to lease, in E.164 form (for example +13055550123). It must be one
    /// that Contiguity offers to your account (see its "available numbers" listing).
    /// Immutable: to lease another number, create another NumberLease.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{1,14}$"), length(max = 16))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("number is immutable: create a new NumberLease to lease another number").reason(Reason::FieldValueForbidden))]
    pub number: String,

    /// How the lease is billed: `monthly` (month to month, the default) or `service_contract`
    /// (needs an active service contract with Contiguity). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("billingMethod is immutable once set").reason(Reason::FieldValueForbidden))]
    pub billing_method: BillingMethod,

    /// What deleting this resource does to the lease (see the type's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// `Manage` (default) leases, reconfigures and terminates the number as declared.
    /// `Observe` never changes anything at Contiguity: it only mirrors an existing lease into
    /// `.status`, for importing a lease before managing it.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// Whether a number that your account already leases outside this resource may be taken
    /// over: `Never` (default) reports it as `Stalled` with reason `AlreadyLeased`;
    /// `IfLeased` adopts the existing lease (and retains it on delete unless
    /// `deletionPolicy: Terminate` is set explicitly).
    #[serde(default)]
    pub adoption: Adoption,

    /// Optional Secret in this namespace holding the Contiguity API token to use for this
    /// lease. Without it the operator's default token is used. Changing the Secret's content
    /// makes the operator retry resources that were stalled on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

/// How a lease is billed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingMethod {
    /// Billed month to month.
    #[default]
    Monthly,
    /// Billed under an existing service contract.
    ServiceContract,
}

impl BillingMethod {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            BillingMethod::Monthly => "monthly",
            BillingMethod::ServiceContract => "service_contract",
        }
    }
}

/// What deleting this resource does to the lease: `Terminate` ends the lease at Contiguity
/// (the number may then be gone for good), `Retain` keeps the lease and only removes the
/// resource. When unset: `Terminate` for leases this resource created, `Retain` for adopted or
/// observed leases.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// End the lease at Contiguity.
    Terminate,
    /// Keep the lease; only the Kubernetes resource goes away.
    Retain,
}

/// Whether the operator may change anything at Contiguity.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum ManagementPolicy {
    /// Lease, configure and terminate as declared.
    #[default]
    Manage,
    /// Read only: mirror an existing lease into status, never change it.
    Observe,
}

/// Whether an existing lease of the account may be taken over.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum Adoption {
    /// Refuse numbers the account already leases outside this resource.
    #[default]
    Never,
    /// Take over a lease the account already holds.
    IfLeased,
}

/// A key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (in the same namespace as this resource).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret whose value is the API token. Defaults to `token`.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_secret_key() -> String {
    "token".to_string()
}

/// Where the lease recorded in status came from.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum LeaseOrigin {
    /// This resource leased the number.
    Created,
    /// The account already leased it and this resource took it over (`adoption: IfLeased`).
    Adopted,
    /// Mirrored read-only (`managementPolicy: Observe`).
    Observed,
}

/// Observed state of a NumberLease, written only by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberLeaseStatus {
    /// The number this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Contiguity's id of the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// Lease status at Contiguity: active, paused, expired, terminated, or a newer value
    /// kept as Contiguity sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_status: Option<String>,
    /// Where the lease came from: Created, Adopted or Observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<LeaseOrigin>,
    /// Billing terms of the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingStatus>,
    /// What the number can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesStatus>,
    /// When the lease ended (RFC 3339), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<String>,
    /// When the operator last compared this resource with Contiguity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// The metadata.generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Billing terms of a lease, as Contiguity reports them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingStatus {
    /// monthly, service_contract, goodwill, or a newer value as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Currency of the amounts (USD, EUR, GBP, CAD, AUD...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Monthly price, in major units, as a decimal string (for example "19.99").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_rate: Option<String>,
    /// One-time fee, in major units, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upfront_fee: Option<String>,
    /// Start of the current billing period (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    /// End of the current billing period (RFC 3339); absent for month to month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
}

/// Capabilities of a number.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesStatus {
    /// Channels the number can send on: sms, mms, rcs, imessage, whatsapp...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Whether the number can send international SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intl_sms: Option<bool>,
}

/// Annotation marking that this resource asked Contiguity for a lease; what it means to users
/// is in [`ANNOTATIONS`].
pub const CREATE_REQUESTED_AT: &str = "contiguity.com/create-requested-at";

/// The annotations the operator writes on a NumberLease and what they tell users (rendered
/// into the CRD reference).
pub const ANNOTATIONS: &[(&str, &str)] = &[(
    CREATE_REQUESTED_AT,
    "When the operator asked Contiguity to lease the number (RFC 3339). Written together with the finalizer, \
     before the request is sent, so that after a crash or a lost reply the lease found at Contiguity is \
     recognised as this resource's own (no second lease, none forgotten). It stays after the lease is recorded \
     and is removed when Contiguity refuses the request. Do not set it by hand: a resource carrying it takes a \
     lease the account already holds for its number as its own.",
)];

impl NumberLease {
    /// When this resource asked Contiguity for a lease of its number, if it did (see
    /// [`CREATE_REQUESTED_AT`]).
    pub fn create_requested_at(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATE_REQUESTED_AT))
            .map(String::as_str)
    }

    /// The deletion policy in effect, taking the origin of the lease into account.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        if let Some(policy) = self.spec.deletion_policy {
            return policy;
        }
        match self.status.as_ref().and_then(|s| s.origin) {
            Some(LeaseOrigin::Adopted) | Some(LeaseOrigin::Observed) => DeletionPolicy::Retain,
            _ if self.spec.management_policy == ManagementPolicy::Observe => DeletionPolicy::Retain,
            _ => DeletionPolicy::Terminate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn lease(spec: serde_json::Value, status: Option<serde_json::Value>) -> NumberLease {
        let mut obj = serde_json::json!({
            "apiVersion": "contiguity.com/v1alpha1",
            "kind": "NumberLease",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": spec,
        });
        if let Some(s) = status {
            obj["status"] = s;
        }
        serde_json::from_value(obj).expect("valid NumberLease")
    }

    #[test]
    fn defaults_apply_when_fields_are_omitted() {
        let nl = lease(serde_json::json!({"number": "+15550100001"}), None);
        assert_eq!(nl.spec.billing_method, BillingMethod::Monthly);
        assert_eq!(nl.spec.management_policy, ManagementPolicy::Manage);
        assert_eq!(nl.spec.adoption, Adoption::Never);
        assert_eq!(nl.spec.deletion_policy, None);
        assert_eq!(nl.effective_deletion_policy(), DeletionPolicy::Terminate);
    }

    #[test]
    fn adopted_leases_are_retained_unless_terminate_is_explicit() {
        let adopted = serde_json::json!({"origin": "Adopted"});
        let nl = lease(serde_json::json!({"number": "+15550100001"}), Some(adopted.clone()));
        assert_eq!(nl.effective_deletion_policy(), DeletionPolicy::Retain);
        let nl = lease(
            serde_json::json!({"number": "+15550100001", "deletionPolicy": "Terminate"}),
            Some(adopted),
        );
        assert_eq!(nl.effective_deletion_policy(), DeletionPolicy::Terminate);
        let nl = lease(
            serde_json::json!({"number": "+15550100001", "managementPolicy": "Observe"}),
            None,
        );
        assert_eq!(nl.effective_deletion_policy(), DeletionPolicy::Retain);
    }

    #[test]
    fn crd_has_names_columns_subresource_and_rules() {
        let crd = NumberLease::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("numberleases.contiguity.com"));
        assert_eq!(crd.spec.names.short_names, Some(vec!["nl".to_string()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["contiguity".to_string()]));
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        let columns: Vec<(String, i32)> = version
            .additional_printer_columns
            .as_ref()
            .expect("printer columns")
            .iter()
            .map(|c| (c.name.clone(), c.priority.unwrap_or(0)))
            .collect();
        let expected = [
            ("Number", 0),
            ("Status", 0),
            ("Ready", 0),
            ("Lease-ID", 1),
            ("Origin", 1),
            ("Reason", 1),
            ("Age", 0),
        ];
        let expected: Vec<(String, i32)> = expected.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(columns, expected);
        let schema = serde_json::to_string(&version.schema).expect("schema serialises");
        assert!(schema.contains(r#""rule":"self == oldSelf""#));
        assert!(schema.contains(r#""pattern":"^\\+[1-9][0-9]{1,14}$""#));
        assert!(schema.contains(r#""x-kubernetes-list-map-keys":["type"]"#));
    }
}

super::condition::conditioned_status!(NumberLeaseStatus);
