//! Conditions as Kubernetes API conventions and kstatus read them.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The condition types the operator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// True only when the current generation is applied and the lease (or failover) is in effect.
    Ready,
    /// True while the operator is working towards the declared state.
    Reconciling,
    /// True when progress needs a human (bad token, number not leasable, claimed elsewhere...).
    Stalled,
}

impl ConditionType {
    /// The `type` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// The `status` of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl ConditionStatus {
    /// The `status` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One observation of the resource's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition: `Ready`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
}

impl JsonSchema for Condition {
    fn schema_name() -> Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "One observation of the resource's state, as Kubernetes API conventions define conditions.",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "description": "Kind of condition: Ready, Reconciling or Stalled."},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "True, False or Unknown."},
                "observedGeneration": {"type": "integer", "format": "int64", "description": "The metadata.generation this condition was computed from."},
                "lastTransitionTime": {"type": "string", "format": "date-time", "description": "When the status last changed."},
                "reason": {"type": "string", "description": "Machine-readable CamelCase reason; see the README's table of reasons."},
                "message": {"type": "string", "description": "Human-readable explanation of the reason."}
            }
        })
    }
}

/// Schema of a `conditions` list: a list-map keyed on `type`, so server-side apply merges per type.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = Condition::json_schema(generator);
    json_schema!({
        "type": "array",
        "description": "Current conditions: Ready, Reconciling and Stalled, each with observedGeneration, a CamelCase reason and a message.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item
    })
}

/// A status with conditions and an observed generation (both kinds' statuses).
pub trait ConditionedStatus {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions.
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    /// The generation the status reflects.
    fn observed_generation(&self) -> Option<i64>;
    /// Sets the generation the status reflects.
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// Implements [`ConditionedStatus`] for a status struct with `conditions` and
/// `observed_generation` fields.
macro_rules! conditioned_status {
    ($t:ty) => {
        impl $crate::crd::condition::ConditionedStatus for $t {
            fn conditions(&self) -> &[$crate::crd::condition::Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<$crate::crd::condition::Condition>) {
                self.conditions = conditions;
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    };
}
pub(crate) use conditioned_status;
