//! The HTTP client.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;

use super::error::parse_retry_after;
use super::types::Envelope;
use super::{
    ApiToken, BillingMethod, ConfigureResult, CreatedLease, Error, FailoverConfig, IMessage, NumberList, NumberRecord,
    Operation, SentMessage, TerminatedLease, TextMessage, TokenLimiter, validate_e164,
};

/// Default public API host.
pub const DEFAULT_BASE_URL: &str = "https://api.contiguity.com";

/// Longest server message kept in an [`Error::Api`].
const MAX_MESSAGE_CHARS: usize = 512;

/// Settings of a [`ContiguityClient`] / [`ClientPool`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Scheme and host (and optional path prefix) without a trailing slash; default
    /// `https://api.contiguity.com`. Paths such as `/numbers/leases` are appended.
    pub base_url: String,
    /// Per-call timeout, covering connect, send and reading the whole response (default 15 s).
    pub timeout: Duration,
    /// Token-bucket refill rate per API token (default 10/s). Not positive or not finite: no bucket.
    pub rate_limit_per_sec: f64,
    /// Token-bucket size (default 20).
    pub burst: u32,
    /// Extra attempts for reads on transient failures (default 3). Mutations are never retried.
    pub read_retries: u32,
    /// First backoff step of read retries (default 200 ms); doubles per attempt, full jitter.
    pub retry_base_delay: Duration,
    /// A read retry that would have to wait longer than this (backoff or `Retry-After`) is not
    /// attempted; the error is returned instead (default 10 s).
    pub max_retry_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(15),
            rate_limit_per_sec: 10.0,
            burst: 20,
            read_retries: 3,
            retry_base_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(10),
        }
    }
}

/// Receives one report per HTTP attempt (and per request refused by the local gate), e.g. to
/// feed metrics.
pub trait CallObserver: Send + Sync {
    /// `outcome` is the HTTP status (`"200"`, `"503"`; also for bodies that fail to decode) or
    /// one of `"timeout"`, `"transport"`, `"local_rate_limited"` (nothing sent) and `"config"`
    /// (the request could not be built).
    fn observe(&self, op: Operation, outcome: &str, elapsed: Duration);
}

/// A client for one API token. Cheap to clone.
#[derive(Clone)]
pub struct ContiguityClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    token: ApiToken,
    auth: HeaderValue,
    limiter: Arc<TokenLimiter>,
    observer: Option<Arc<dyn CallObserver>>,
    timeout: Duration,
    read_retries: u32,
    retry_base_delay: Duration,
    max_retry_delay: Duration,
}

impl fmt::Debug for ContiguityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContiguityClient")
            .field("base_url", &self.inner.base_url)
            .field("token", &self.inner.token)
            .field("token_fingerprint", &self.inner.token.fingerprint())
            .field("timeout", &self.inner.timeout)
            .field("read_retries", &self.inner.read_retries)
            .finish()
    }
}

fn build_http(cfg: &ClientConfig) -> Result<reqwest::Client, Error> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(Error::Config(
            "no rustls crypto provider installed: call contiguity::install_crypto_provider() at start-up".to_owned(),
        ));
    }
    reqwest::Client::builder()
        .connect_timeout(cfg.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

fn normalize_base_url(base: &str) -> Result<String, Error> {
    let base = base.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
        return Err(Error::Config(format!(
            "base URL {base:?} must start with http:// or https://"
        )));
    }
    Ok(base.to_owned())
}

fn encode_number(number: &str) -> String {
    utf8_percent_encode(number, NON_ALPHANUMERIC).to_string()
}

impl ContiguityClient {
    /// Builds a client with its own connection pool. Fails with [`Error::Config`] on a bad base
    /// URL, an unusable token, or when no rustls crypto provider is installed.
    pub fn new(
        cfg: &ClientConfig,
        token: ApiToken,
        limiter: Arc<TokenLimiter>,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<Self, Error> {
        let http = build_http(cfg)?;
        Self::with_http(cfg, token, limiter, observer, http)
    }

    fn with_http(
        cfg: &ClientConfig,
        token: ApiToken,
        limiter: Arc<TokenLimiter>,
        observer: Option<Arc<dyn CallObserver>>,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        let base_url = normalize_base_url(&cfg.base_url)?;
        if token.expose().is_empty() {
            return Err(Error::Config("the API token is empty".to_owned()));
        }
        let mut auth = HeaderValue::from_str(&format!("Token {}", token.expose()))
            .map_err(|_| Error::Config("the API token contains characters not allowed in a header".to_owned()))?;
        auth.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                token,
                auth,
                limiter,
                observer,
                timeout: cfg.timeout,
                read_retries: cfg.read_retries,
                retry_base_delay: cfg.retry_base_delay,
                max_retry_delay: cfg.max_retry_delay,
            }),
        })
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Fingerprint of the token (safe to log).
    pub fn token_fingerprint(&self) -> String {
        self.inner.token.fingerprint()
    }

    /// The limiter shared by every client of this token.
    pub fn limiter(&self) -> &Arc<TokenLimiter> {
        &self.inner.limiter
    }

    /// `GET /numbers/leases`: numbers the account may lease. A 404 is an empty list.
    pub async fn available(&self) -> Result<NumberList, Error> {
        match self
            .call::<NumberList>(Operation::Available, Method::GET, "/numbers/leases", None)
            .await
        {
            Err(e) if e.is_not_found() => Ok(NumberList::default()),
            other => other,
        }
    }

    /// `GET /numbers/{n}`: one number, with the lease fields when we hold its lease.
    pub async fn get(&self, number: &str) -> Result<NumberRecord, Error> {
        let n = validate_e164(number)?;
        let path = format!("/numbers/{}", encode_number(n));
        self.call(Operation::Get, Method::GET, &path, None).await
    }

    /// `POST /numbers/lease/{n}` with `{"billing_method": …}`. Never retried: after a
    /// [`Timeout`](Error::Timeout) or [`Transport`](Error::Transport) error the lease may exist;
    /// reconcile with [`get`](Self::get) or [`leased`](Self::leased).
    pub async fn create(&self, number: &str, billing: BillingMethod) -> Result<CreatedLease, Error> {
        let n = validate_e164(number)?;
        let path = format!("/numbers/lease/{}", encode_number(n));
        let body = serde_json::json!({ "billing_method": billing.as_str() });
        self.call(Operation::Create, Method::POST, &path, Some(&body)).await
    }

    /// `GET /numbers/leased`: our leases. A 404 is an empty list.
    pub async fn leased(&self) -> Result<NumberList, Error> {
        match self
            .call::<NumberList>(Operation::Leased, Method::GET, "/numbers/leased", None)
            .await
        {
            Err(e) if e.is_not_found() => Ok(NumberList::default()),
            other => other,
        }
    }

    /// Lease details: `GET /numbers/{n}`, falling back to the legacy `GET /numbers/leased/{n}`
    /// when the first answers 404 (the first error is returned if both do).
    pub async fn details(&self, number: &str) -> Result<NumberRecord, Error> {
        match self.get(number).await {
            Err(first) if first.is_not_found() => {
                let path = format!("/numbers/leased/{}", encode_number(number));
                match self
                    .call::<NumberRecord>(Operation::Details, Method::GET, &path, None)
                    .await
                {
                    Err(second) if second.is_not_found() => Err(first),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// `POST /numbers/{n}/configure` with `{"failover": …}`. Never retried by the client.
    pub async fn configure(&self, number: &str, failover: &FailoverConfig) -> Result<ConfigureResult, Error> {
        let n = validate_e164(number)?;
        for src in &failover.numbers {
            validate_e164(src)?;
        }
        let path = format!("/numbers/{}/configure", encode_number(n));
        let body = serde_json::json!({ "failover": failover });
        self.call(Operation::Configure, Method::POST, &path, Some(&body)).await
    }

    /// `DELETE /numbers/leased/{n}`. Never retried by the client; a 404 means we do not (or no
    /// longer) hold the lease.
    pub async fn terminate(&self, number: &str) -> Result<TerminatedLease, Error> {
        let n = validate_e164(number)?;
        let path = format!("/numbers/leased/{}", encode_number(n));
        self.call(Operation::Terminate, Method::DELETE, &path, None).await
    }

    /// `POST /send/text`. Never retried.
    pub async fn send_text(&self, msg: &TextMessage) -> Result<SentMessage, Error> {
        if let Some(from) = &msg.from {
            validate_e164(from)?;
        }
        let body = serde_json::to_value(msg).map_err(|e| Error::Config(format!("cannot encode the message: {e}")))?;
        self.call(Operation::SendText, Method::POST, "/send/text", Some(&body))
            .await
    }

    /// `POST /send/imessage`. Never retried.
    pub async fn send_imessage(&self, msg: &IMessage) -> Result<SentMessage, Error> {
        if let Some(from) = &msg.from {
            validate_e164(from)?;
        }
        if let Some(from) = msg.fallback.as_ref().and_then(|f| f.from.as_ref()) {
            validate_e164(from)?;
        }
        let body = serde_json::to_value(msg).map_err(|e| Error::Config(format!("cannot encode the message: {e}")))?;
        self.call(Operation::SendImessage, Method::POST, "/send/imessage", Some(&body))
            .await
    }

    /// Runs one operation: reads retry transient failures, mutations are attempted once.
    async fn call<T: DeserializeOwned>(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, Error> {
        let body = match body {
            Some(v) => Some(bytes_of(v)?),
            None => None,
        };
        let retries = if op.is_read() { self.inner.read_retries } else { 0 };
        let mut attempt: u32 = 0;
        loop {
            match self.attempt::<T>(op, &method, path, body.as_ref()).await {
                Err(e) if attempt < retries && e.is_transient() => {
                    let delay = self.backoff(attempt).max(e.retry_after().unwrap_or_default());
                    if delay > self.inner.max_retry_delay {
                        return Err(e);
                    }
                    tracing::debug!(
                        op = op.as_str(),
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %e,
                        "retrying contiguity read"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Exponential backoff with full jitter: uniform in `[0, base * 2^attempt]`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .inner
            .retry_base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.inner.max_retry_delay);
        let f: f64 = rand::rng().random_range(0.0..=1.0);
        cap.mul_f64(f)
    }

    fn observe(&self, op: Operation, outcome: &str, elapsed: Duration) {
        if let Some(o) = &self.inner.observer {
            o.observe(op, outcome, elapsed);
        }
    }

    fn gate_check(&self, op: Operation) -> Result<(), Error> {
        match self.inner.limiter.gate_remaining() {
            Some(retry_after) => {
                self.observe(op, "local_rate_limited", Duration::ZERO);
                Err(Error::LocalRateLimited { op, retry_after })
            }
            None => Ok(()),
        }
    }

    /// One HTTP exchange.
    async fn attempt<T: DeserializeOwned>(
        &self,
        op: Operation,
        method: &Method,
        path: &str,
        body: Option<&Vec<u8>>,
    ) -> Result<T, Error> {
        self.gate_check(op)?;
        self.inner.limiter.acquire().await;
        self.gate_check(op)?;

        let url = format!("{}{}", self.inner.base_url, path);
        let mut req = self
            .inner
            .http
            .request(method.clone(), url)
            .timeout(self.inner.timeout)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.body(b.clone());
        }

        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(op, e, started)),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        if status.as_u16() == 429
            && let Some(d) = retry_after
        {
            self.inner.limiter.close_for(d);
            tracing::warn!(
                op = op.as_str(),
                token = %self.inner.token.fingerprint(),
                retry_after_ms = d.as_millis() as u64,
                "contiguity rate limit: gate closed"
            );
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(self.transport_failure(op, e, started)),
        };
        self.observe(op, status.as_str(), started.elapsed());

        if status.is_success() {
            serde_json::from_slice::<Envelope<T>>(&bytes)
                .map(|env| env.data)
                .map_err(|e| Error::Decode {
                    op,
                    status: status.as_u16(),
                    request_id: envelope_id(&bytes),
                    message: e.to_string(),
                })
        } else {
            Err(api_error(op, status, &bytes, retry_after))
        }
    }

    fn transport_failure(&self, op: Operation, e: reqwest::Error, started: Instant) -> Error {
        let err = if e.is_timeout() {
            Error::Timeout {
                op,
                after: self.inner.timeout,
            }
        } else if e.is_builder() {
            Error::Config(error_chain(&e))
        } else {
            Error::Transport {
                op,
                message: error_chain(&e),
            }
        };
        let outcome = match &err {
            Error::Timeout { .. } => "timeout",
            Error::Config(_) => "config",
            _ => "transport",
        };
        self.observe(op, outcome, started.elapsed());
        err
    }
}

fn bytes_of(v: &serde_json::Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Config(format!("cannot encode the request body: {e}")))
}

/// The error and its sources on one line (reqwest hides the interesting part in sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let msg = src.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = src.source();
    }
    s
}

fn envelope_id(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("id")?.as_str().map(str::to_owned)
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MAX_MESSAGE_CHARS {
        s = s.chars().take(MAX_MESSAGE_CHARS).collect();
        s.push('…');
    }
    s
}

/// Builds an [`Error::Api`] from either error envelope, or from a non-JSON body.
fn api_error(op: Operation, status: reqwest::StatusCode, bytes: &[u8], retry_after: Option<Duration>) -> Error {
    let reason = status.canonical_reason().unwrap_or("unknown status");
    let parsed = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .filter(|v| v.is_object());
    let (request_id, message, agreement_url) = match parsed {
        Some(v) => {
            let data = v.get("data").filter(|d| d.is_object());
            let text = |val: Option<&serde_json::Value>| -> Option<String> {
                match val? {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    serde_json::Value::Object(o) => o.get("message").and_then(|m| m.as_str()).map(str::to_owned),
                    _ => None,
                }
            };
            let message = text(data.and_then(|d| d.get("error")))
                .or_else(|| text(v.get("message")))
                .or_else(|| text(data.and_then(|d| d.get("message"))))
                .or_else(|| text(v.get("error")))
                .unwrap_or_else(|| reason.to_owned());
            let agreement_url = data
                .and_then(|d| d.get("agreement_url"))
                .or_else(|| v.get("agreement_url"))
                .and_then(|u| u.as_str())
                .map(str::to_owned);
            let request_id = v.get("id").and_then(|i| i.as_str()).map(str::to_owned);
            (request_id, message, agreement_url)
        }
        None => (None, format!("{reason} (non-JSON body)"), None),
    };
    Error::Api {
        op,
        status: status.as_u16(),
        request_id,
        message: truncate(message),
        retry_after,
        agreement_url,
    }
}

/// Hands out [`ContiguityClient`]s that share one connection pool, and one [`TokenLimiter`] per
/// token (keyed by the token's fingerprint).
pub struct ClientPool {
    cfg: ClientConfig,
    observer: Option<Arc<dyn CallObserver>>,
    http: Mutex<Option<reqwest::Client>>,
    limiters: Mutex<HashMap<String, Arc<TokenLimiter>>>,
}

impl fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens = self.limiters.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("ClientPool")
            .field("cfg", &self.cfg)
            .field("tokens", &tokens)
            .finish()
    }
}

impl ClientPool {
    /// A pool for `cfg`; the HTTP client is built on first use.
    pub fn new(cfg: ClientConfig, observer: Option<Arc<dyn CallObserver>>) -> Self {
        Self {
            cfg,
            observer,
            http: Mutex::new(None),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The limiter of `token`, created on first use.
    pub fn limiter(&self, token: &ApiToken) -> Arc<TokenLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(token.fingerprint())
            .or_insert_with(|| Arc::new(TokenLimiter::new(self.cfg.rate_limit_per_sec, self.cfg.burst)))
            .clone()
    }

    /// A client for `token`, sharing the connection pool with every client of this pool and the
    /// limiter with every client of the same token.
    pub fn client(&self, token: ApiToken) -> Result<ContiguityClient, Error> {
        let http = {
            let mut slot = self.http.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(h) => h.clone(),
                None => {
                    let h = build_http(&self.cfg)?;
                    *slot = Some(h.clone());
                    h
                }
            }
        };
        let limiter = self.limiter(&token);
        ContiguityClient::with_http(&self.cfg, token, limiter, self.observer.clone(), http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_percent_encoded() {
        assert_eq!(encode_number("+13059478667"), "%2B13059478667");
    }

    #[test]
    fn base_url_is_normalized() {
        assert_eq!(normalize_base_url("http://127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        assert!(normalize_base_url("ftp://x").is_err());
    }

    #[test]
    fn both_error_envelopes_and_html() {
        let e = api_error(
            Operation::Create,
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"id":"err_abc","timestamp":1785698220563,"api_version":"v2026.8.2","object":"error","data":{"error":"Number is already leased","status":400}}"#,
            None,
        );
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.request_id(), Some("err_abc"));
        assert_eq!(e.api_message(), Some("Number is already leased"));
        assert!(e.is_already_leased());

        let e = api_error(
            Operation::Get,
            reqwest::StatusCode::FORBIDDEN,
            br#"{"message":"Fast Track terms not accepted","status":403,"data":{"agreement_url":"https://api.contiguity.com/entitlements/fast_track"}}"#,
            None,
        );
        assert_eq!(e.api_message(), Some("Fast Track terms not accepted"));
        assert_eq!(
            e.agreement_url(),
            Some("https://api.contiguity.com/entitlements/fast_track")
        );
        assert!(e.is_unauthorized());

        let e = api_error(
            Operation::Get,
            reqwest::StatusCode::BAD_GATEWAY,
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            Some(Duration::from_secs(2)),
        );
        assert_eq!(e.api_message(), Some("Bad Gateway (non-JSON body)"));
        assert_eq!(e.request_id(), None);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.is_transient());
    }
}
