//! contiguity-operator: manages Contiguity phone-number leases from Kubernetes.
//!
//! Module map (one responsibility each):
//! - [`crd`]: the `NumberLease` and `LeaseFailover` custom resource types (no I/O).
//! - [`contiguity`]: the typed HTTP client for Contiguity's lease and send API.
//! - [`sandbox`]: a local server speaking Contiguity's wire protocol, with fault injection.
//! - [`controller`]: one reconciler per kind plus the shared wiring.
//! - [`status`]: condition builders and the status writer.
//! - [`config`], [`telemetry`], [`metrics`], [`server`], [`leader`]: the operator process.

pub mod config;
pub mod contiguity;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod sandbox;
pub mod server;
pub mod status;
pub mod telemetry;
