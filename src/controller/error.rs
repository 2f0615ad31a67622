//! The error type of the controller layer.

use crate::contiguity;
use std::time::Duration;

/// Why a reconcile failed. Permanent failures are reported in status (Stalled) by the
/// reconcilers themselves; what reaches the error policy is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// Contiguity failed.
    #[error("{0}")]
    Contiguity(#[source] contiguity::Error),
    /// The API token could not be resolved (Secret missing, key missing, none configured).
    #[error("{message}")]
    Credentials {
        /// Stable CamelCase reason, used in conditions and Events.
        reason: &'static str,
        /// Human explanation (never contains the token).
        message: String,
    },
    /// The object misses something the schema cannot require (e.g. no namespace).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl From<contiguity::Error> for Error {
    fn from(e: contiguity::Error) -> Self {
        Error::Contiguity(e)
    }
}

impl Error {
    /// Whether retrying later may help without any change by a human.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(e) => kube_is_transient(e),
            Error::Contiguity(e) => e.is_transient(),
            Error::Credentials { .. } | Error::InvalidObject(_) => false,
            Error::Finalizer(_) => true,
        }
    }

    /// The earliest moment a retry may happen, when the server said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Contiguity(e) => e.retry_after(),
            _ => None,
        }
    }

    /// A stable, bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Contiguity(e) => e.category(),
            Error::Credentials { .. } => "credentials",
            Error::InvalidObject(_) => "invalid_object",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// Conflicts, throttling, server errors and transport failures are worth retrying.
pub fn kube_is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 409 || s.code == 429 || s.code >= 500,
        kube::Error::SerdeError(_) => false,
        _ => true,
    }
}
