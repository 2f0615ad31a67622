//! The operator's HTTP endpoints: `/metrics` (Prometheus text format), `/livez` and `/readyz`.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared with the handlers.
#[derive(Clone)]
pub struct HealthState {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// True once the CRDs were found and the controllers run.
    pub ready: Arc<AtomicBool>,
    /// True while this replica waits for the leader-election Lease (healthy, not reconciling).
    pub standby: Arc<AtomicBool>,
}

/// The router of the endpoints.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the endpoints on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: HealthState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /livez and /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else if state.standby.load(Ordering::SeqCst) {
        // A standby replica is ready to take over: reporting it unready would stall rollouts.
        (StatusCode::OK, "standby: waiting for the leader-election lease")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "controllers not running")
    }
}
