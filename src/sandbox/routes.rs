//! The wire routes: Contiguity's paths, `Authorization: Token` auth, the envelope, faults.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::contiguity::Operation;

use super::faults::Decision;
use super::state::{ApiError, CallRecord, ERR_INJECTED, ERR_RATE_LIMITED, SandboxState};

/// Inserted by the sandbox's connection loop into every request: notifying it drops the
/// connection without a reply.
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<Notify>);

const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

/// The whole router: wire routes plus `/_sandbox/` admin routes.
pub(crate) fn router(state: SandboxState) -> Router {
    Router::new()
        .route("/numbers/leases", get(available))
        .route("/numbers/leased", get(leased))
        .route("/numbers/leased/{number}", get(details).delete(terminate))
        .route("/numbers/lease/{number}", post(create))
        .route("/numbers/{number}", get(get_number))
        .route("/numbers/{number}/configure", post(configure))
        .route("/send/text", post(send_text))
        .route("/send/imessage", post(send_imessage))
        .nest("/_sandbox", super::admin::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What every wire handler extracts.
struct Call {
    state: SandboxState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Option<ConnKill>,
}

fn envelope(state: &SandboxState, result: &Result<Value, ApiError>) -> (String, Value) {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    match result {
        Ok(data) => {
            let id = state.next_id("req");
            let body = json!({
                "id": id,
                "timestamp": now_ms,
                "api_version": state.api_version(),
                "object": "response",
                "data": data,
            });
            (id, body)
        }
        Err(e) => {
            let id = state.next_id("err");
            let mut data = json!({ "error": e.message, "status": e.status });
            if let (Some(url), Value::Object(m)) = (&e.agreement_url, &mut data) {
                m.insert("agreement_url".into(), json!(url));
            }
            let body = json!({
                "id": id,
                "timestamp": now_ms,
                "api_version": state.api_version(),
                "object": "error",
                "data": data,
            });
            (id, body)
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A response whose body fails: hyper aborts the connection. Used only when the request did not
/// come through the sandbox's own connection loop.
fn broken_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("reply lost (sandbox fault)"))
    });
    Response::new(Body::from_stream(stream))
}

/// Records the call when it finishes, or as `"cancelled"` if the handler is dropped first (the
/// client went away, e.g. after its timeout, while the call was delayed).
struct CallGuard {
    state: SandboxState,
    started: Instant,
    record: Option<CallRecord>,
}

impl CallGuard {
    fn set(&mut self, account: String, decision: &Decision) {
        if let Some(r) = self.record.as_mut() {
            r.account = Some(account);
            r.before_retry_after = decision.before_retry_after;
            r.in_retry_after_window = decision.in_window;
        }
    }

    fn finish(&mut self, outcome: String, request_id: Option<String>) {
        if let Some(mut r) = self.record.take() {
            r.outcome = outcome;
            r.request_id = request_id;
            r.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            self.state.record_call(r);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish("cancelled".to_owned(), None);
    }
}

impl Call {
    /// Runs one wire call: latency, auth, faults, the operation, the call log, lost replies.
    async fn run<F>(self, op: Option<Operation>, exec: F) -> Response
    where
        F: FnOnce(&SandboxState, usize) -> Result<Value, ApiError>,
    {
        let arrived = tokio::time::Instant::now();
        let st = &self.state;
        let mut guard = CallGuard {
            state: st.clone(),
            started: Instant::now(),
            record: Some(CallRecord {
                seq: st.next_seq(),
                op,
                method: self.method.as_str().to_owned(),
                path: self.uri.path().to_owned(),
                account: None,
                outcome: String::new(),
                started_at_ms: jiff::Timestamp::now().as_millisecond(),
                duration_ms: 0.0,
                before_retry_after: false,
                in_retry_after_window: false,
                request_id: None,
            }),
        };

        let latency = st.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }

        let mut lost = false;
        let mut retry_after = None;
        let mut html = false;

        let result: Result<Value, ApiError> = 'call: {
            let Some(op) = op else {
                break 'call Err(ApiError::new(404, "Not Found"));
            };
            let auth = self.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
            let (account, fp) = match st.authenticate(auth) {
                Ok(a) => a,
                Err(e) => break 'call Err(e),
            };
            let decision = st.decide(op, account, arrived);
            guard.set(fp, &decision);
            if let Some(secs) = decision.rate_limited {
                retry_after = Some(secs);
                break 'call Err(ApiError::new(429, ERR_RATE_LIMITED));
            }
            if !decision.delay.is_zero() {
                tokio::time::sleep(decision.delay).await;
            }
            if let Some((status, as_html)) = decision.error {
                html = as_html;
                break 'call Err(ApiError::new(status, ERR_INJECTED));
            }
            lost = decision.lost_reply;
            exec(st, account)
        };

        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status,
        };
        let (request_id, body) = envelope(st, &result);
        let outcome = if lost { "dropped".to_owned() } else { status.to_string() };
        guard.finish(outcome, (!html && !lost).then_some(request_id));

        if lost {
            return match self.kill {
                Some(ConnKill(kill)) => {
                    kill.notify_one();
                    // The connection task drops this future together with the connection.
                    std::future::pending::<Response>().await
                }
                None => broken_response(),
            };
        }
        if html {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                BAD_GATEWAY_HTML,
            )
                .into_response();
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
            return resp;
        }
        let mut resp = json_response(status, &body);
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
        resp
    }
}

type Kill = Option<Extension<ConnKill>>;

fn call(state: SandboxState, method: Method, uri: Uri, headers: HeaderMap, kill: Kill) -> Call {
    Call {
        state,
        method,
        uri,
        headers,
        kill: kill.map(|Extension(k)| k),
    }
}

async fn available(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Available), |s, a| s.op_available(a))
        .await
}

async fn leased(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Leased), |s, a| s.op_leased(a))
        .await
}

async fn get_number(
    State(state): State<SandboxState>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Get), |s, a| s.op_get(a, &number))
        .await
}

async fn details(
    State(state): State<SandboxState>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Details), |s, a| s.op_details(a, &number))
        .await
}

async fn terminate(
    State(state): State<SandboxState>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Terminate), |s, a| s.op_terminate(a, &number))
        .await
}

async fn create(
    State(state): State<SandboxState>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
    body: Bytes,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Create), |s, a| s.op_create(a, &number, &body))
        .await
}

async fn configure(
    State(state): State<SandboxState>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
    body: Bytes,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::Configure), |s, a| s.op_configure(a, &number, &body))
        .await
}

async fn send_text(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
    body: Bytes,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::SendText), |s, a| {
            s.op_send(Operation::SendText, a, &body)
        })
        .await
}

async fn send_imessage(
    State(state): State<SandboxState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kill: Kill,
    body: Bytes,
) -> Response {
    call(state, method, uri, headers, kill)
        .run(Some(Operation::SendImessage), |s, a| {
            s.op_send(Operation::SendImessage, a, &body)
        })
        .await
}

async fn unknown_route(State(state): State<SandboxState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    call(state, method, uri, headers, None)
        .run(None, |_, _| Err(ApiError::new(404, "Not Found")))
        .await
}

async fn method_not_allowed(State(state): State<SandboxState>) -> Response {
    let result = Err(ApiError::new(405, "Method Not Allowed"));
    let (_, body) = envelope(&state, &result);
    json_response(405, &body)
}
