//! The admin API under `/_sandbox/` (no auth, never faulted, never in the call log).
//!
//! | Method + path | Body | Answer |
//! |---|---|---|
//! | `GET /_sandbox/health` | | `{"ok":true}` |
//! | `GET /_sandbox/leases` | | `[LeaseRecord]` (all leases, ended ones included) |
//! | `GET /_sandbox/calls` | | `{"total", "counts": {op: {outcome: n}}, "calls": [CallRecord]}` |
//! | `POST /_sandbox/calls/reset` | | `{"ok":true}` |
//! | `GET /_sandbox/faults` | | `{"faults": Faults, "one_shots": [OneShotFault]}` |
//! | `PUT /_sandbox/faults` | `Faults` (missing fields default) | the new `Faults` |
//! | `POST /_sandbox/faults/next` | `OneShotFault` e.g. `{"op":"create","count":1,"action":{"kind":"lost_reply"}}` | queued list |
//! | `DELETE /_sandbox/faults/next` | | `{"ok":true}` |
//! | `GET /_sandbox/numbers` | | `[NumberView]` |
//! | `POST /_sandbox/numbers` | `InventoryNumber` or an array of them | `{"added": n}` |
//! | `POST /_sandbox/numbers/{n}/terminate` \| `/expire` \| `/pause` \| `/resume` | | `LeaseRecord` |
//! | `POST /_sandbox/numbers/{n}/failover` | `FailoverConfig` or `null` | `LeaseRecord` |
//! | `GET /_sandbox/accounts` | | `[AccountView]` |
//! | `POST /_sandbox/accounts` | `{"token", "entitlements"?, "service_contract"?}` | `{"fingerprint"}` |
//! | `GET /_sandbox/messages` | | `[SentMessageRecord]` |
//!
//! Errors: `{"error": "..."}` with 400 (bad input) or 404 (unknown number / no current lease).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::contiguity::FailoverConfig;

use super::SandboxError;
use super::faults::{Faults, OneShotFault};
use super::inventory::InventoryNumber;
use super::state::{AccountSpec, LeaseRecord, SandboxState};

pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/leases", get(leases))
        .route("/calls", get(calls))
        .route("/calls/reset", post(reset_calls))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/faults/next", post(push_one_shot).delete(clear_one_shots))
        .route("/numbers", get(numbers).post(add_numbers))
        .route("/numbers/{number}/terminate", post(terminate))
        .route("/numbers/{number}/expire", post(expire))
        .route("/numbers/{number}/pause", post(pause))
        .route("/numbers/{number}/resume", post(resume))
        .route("/numbers/{number}/failover", post(failover))
        .route("/accounts", get(accounts).post(add_account))
        .route("/messages", get(messages))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn sandbox_error(e: SandboxError) -> Response {
    let status = match e {
        SandboxError::NotFound(_) | SandboxError::NotLeased(_) => StatusCode::NOT_FOUND,
        SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

/// Parses a JSON body; the error is the ready 400 answer.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("invalid body: {e}"))))
}

fn lease_answer(r: Result<LeaseRecord, SandboxError>) -> Response {
    match r {
        Ok(l) => Json(l).into_response(),
        Err(e) => sandbox_error(e),
    }
}

async fn leases(State(s): State<SandboxState>) -> Response {
    Json(s.leases()).into_response()
}

async fn calls(State(s): State<SandboxState>) -> Response {
    Json(json!({
        "total": s.total_calls(),
        "counts": s.call_counts(),
        "calls": s.calls(),
    }))
    .into_response()
}

async fn reset_calls(State(s): State<SandboxState>) -> Response {
    s.reset_calls();
    Json(json!({ "ok": true })).into_response()
}

async fn get_faults(State(s): State<SandboxState>) -> Response {
    Json(json!({ "faults": s.faults(), "one_shots": s.one_shots() })).into_response()
}

async fn put_faults(State(s): State<SandboxState>, body: Bytes) -> Response {
    match parse::<Faults>(&body) {
        Ok(f) => {
            s.set_faults(f);
            Json(s.faults()).into_response()
        }
        Err(r) => *r,
    }
}

async fn push_one_shot(State(s): State<SandboxState>, body: Bytes) -> Response {
    match parse::<OneShotFault>(&body) {
        Ok(f) => {
            s.push_one_shot(f);
            Json(s.one_shots()).into_response()
        }
        Err(r) => *r,
    }
}

async fn clear_one_shots(State(s): State<SandboxState>) -> Response {
    s.clear_one_shots();
    Json(json!({ "ok": true })).into_response()
}

async fn numbers(State(s): State<SandboxState>) -> Response {
    Json(s.numbers()).into_response()
}

async fn add_numbers(State(s): State<SandboxState>, body: Bytes) -> Response {
    let numbers = match parse::<Value>(&body) {
        Ok(v @ Value::Array(_)) => serde_json::from_value::<Vec<InventoryNumber>>(v),
        Ok(v) => serde_json::from_value::<InventoryNumber>(v).map(|n| vec![n]),
        Err(r) => return *r,
    };
    match numbers {
        Ok(ns) => {
            let added = ns.len();
            match s.add_numbers(ns) {
                Ok(()) => Json(json!({ "added": added })).into_response(),
                Err(e) => sandbox_error(e),
            }
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    }
}

async fn terminate(State(s): State<SandboxState>, Path(n): Path<String>) -> Response {
    lease_answer(s.terminate_out_of_band(&n))
}

async fn expire(State(s): State<SandboxState>, Path(n): Path<String>) -> Response {
    lease_answer(s.expire(&n))
}

async fn pause(State(s): State<SandboxState>, Path(n): Path<String>) -> Response {
    lease_answer(s.pause(&n))
}

async fn resume(State(s): State<SandboxState>, Path(n): Path<String>) -> Response {
    lease_answer(s.resume(&n))
}

async fn failover(State(s): State<SandboxState>, Path(n): Path<String>, body: Bytes) -> Response {
    match parse::<Option<FailoverConfig>>(&body) {
        Ok(f) => lease_answer(s.set_failover_out_of_band(&n, f)),
        Err(r) => *r,
    }
}

async fn accounts(State(s): State<SandboxState>) -> Response {
    Json(s.accounts()).into_response()
}

async fn add_account(State(s): State<SandboxState>, body: Bytes) -> Response {
    match parse::<AccountSpec>(&body) {
        Ok(spec) => match s.add_account_with(spec) {
            Ok(fp) => Json(json!({ "fingerprint": fp })).into_response(),
            Err(e) => sandbox_error(e),
        },
        Err(r) => *r,
    }
}

async fn messages(State(s): State<SandboxState>) -> Response {
    Json(s.messages()).into_response()
}
