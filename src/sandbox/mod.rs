//! A stateful Contiguity emulator speaking the same wire protocol as the real API (paths,
//! `Authorization: Token`, envelope, error shapes), with fault injection and an admin API under
//! `/_sandbox/` (see [`admin`]). Used in-process by tests ([`Sandbox::start`]) and as the
//! `contiguity-sandbox` binary.
//!
//! Behaviour:
//! - Inventory numbers are deterministic for a seed (default: `+15550100000`, `+15550100001`, …;
//!   see [`SandboxState::inventory_numbers`]).
//! - One account per token; an unknown, missing or non-`Token` `Authorization` gets 401.
//! - Lease state machine: available → leased (`active`) → `terminated` (the number is available
//!   again; a new lease gets a new id). Admin can `expire` (the lease stays current with
//!   `lease_status: expired` until terminated), `pause`/`resume`, and terminate out of band.
//! - A number leased by one account shows to others as `status: leased` without lease fields.
//! - Leasing a number that has a current lease (anyone's) → 400 with `data.error`
//!   [`ERR_ALREADY_LEASED`] = `"Number is already leased"`.
//! - Terminating / configuring a number you do not lease → 404 [`ERR_NOT_LEASED`]; unknown
//!   number → 404 [`ERR_NUMBER_NOT_FOUND`]; a path number that is not E.164, invalid JSON, a bad
//!   `billing_method` or bad `failover` → 400.
//! - `GET /numbers/{n}` (and `GET /numbers/leased`) also carry a `failover` object for the holder
//!   when one is configured: a sandbox extension, not in Contiguity's published schema.
//! - Faults ([`Faults`], [`OneShotFault`]): error rate per operation, latency, 429 with
//!   `Retry-After` above a per-token request rate, lost replies (applied, then the TCP
//!   connection is closed without an answer), one-shot statuses / lost replies / delays.

pub mod admin;
mod faults;
mod inventory;
mod routes;
mod state;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::contiguity::fingerprint_of;

pub use faults::{FaultAction, Faults, IN_FLIGHT_GRACE, OneShotFault};
pub use inventory::{InventoryNumber, InventorySpec, PriceSpec, RegionSpec};
pub use state::{
    AccountSpec, AccountView, CallRecord, ERR_ALREADY_LEASED, ERR_INJECTED, ERR_INVALID_NUMBER, ERR_NOT_AVAILABLE,
    ERR_NOT_LEASED, ERR_NUMBER_NOT_FOUND, ERR_RATE_LIMITED, ERR_UNAUTHORIZED, LeaseRecord, NumberView, SandboxState,
    SentMessageRecord,
};

/// API version reported in every envelope.
pub const API_VERSION: &str = "v2026.8.2";

/// Errors of the sandbox's own (admin / set-up) operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SandboxError {
    /// The number is not in the inventory.
    #[error("number {0} is not in the inventory")]
    NotFound(String),
    /// The number has no current lease.
    #[error("number {0} has no current lease")]
    NotLeased(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// How timestamps (`created_at`, `billing.period.*`, `terminated_at`) are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampFormat {
    /// Epoch seconds, as the OpenAPI spec says (default).
    #[default]
    EpochSeconds,
    /// Epoch milliseconds.
    EpochMillis,
    /// RFC 3339 strings, as the JS SDK fixtures use.
    Rfc3339,
}

/// Everything the sandbox starts with.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The inventory.
    pub inventory: InventorySpec,
    /// API tokens, one account each (all entitlements, service contract allowed).
    pub accounts: Vec<String>,
    /// Initial faults.
    pub faults: Faults,
    /// Seed of every random choice (inventory attributes, ids, faults).
    pub seed: u64,
    /// Wire timestamp format.
    pub timestamp_format: TimestampFormat,
    /// `api_version` of the envelope.
    pub api_version: String,
    /// Maximum call-log (and message-log) entries kept; counters are not bounded by it.
    pub call_log_capacity: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            inventory: InventorySpec::default(),
            accounts: Vec::new(),
            faults: Faults::default(),
            seed: 0,
            timestamp_format: TimestampFormat::default(),
            api_version: API_VERSION.to_owned(),
            call_log_capacity: 1_000_000,
        }
    }
}

impl SandboxConfig {
    /// The default inventory and one account per token.
    pub fn with_tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            accounts: tokens.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accounts: Vec<String> = self.accounts.iter().map(|t| fingerprint_of(t)).collect();
        f.debug_struct("SandboxConfig")
            .field("inventory_count", &self.inventory.count)
            .field("inventory_explicit", &self.inventory.numbers.len())
            .field("accounts", &accounts)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("timestamp_format", &self.timestamp_format)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Starts sandboxes.
pub struct Sandbox;

impl Sandbox {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in a background task.
    pub async fn start(cfg: SandboxConfig, addr: SocketAddr) -> io::Result<SandboxHandle> {
        let state = SandboxState::new(&cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let router = routes::router(state.clone());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router, rx));
        Ok(SandboxHandle {
            addr,
            state,
            shutdown: tx,
            task,
        })
    }
}

/// A running sandbox. Dropping it stops the server too.
pub struct SandboxHandle {
    addr: SocketAddr,
    state: SandboxState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxHandle").field("addr", &self.addr).finish()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`: the `base_url` for a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state.
    pub fn state(&self) -> SandboxState {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight calls finish (at most 5 s), and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, router: axum::Router, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(6), drain).await;
}

/// Serves one HTTP/1.1 connection. A handler that loses its reply notifies `kill`; the
/// connection future is then dropped, which closes the socket without an answer.
async fn serve_connection(stream: TcpStream, router: axum::Router, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let k = kill.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(routes::ConnKill(k.clone()));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = kill.notified() => return,
        _ = shutdown.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill.notified() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}
