//! The sandbox's state: inventory, accounts, leases, failover settings, sent messages, the call
//! log and the fault state. Every operation is a short critical section on a lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::contiguity::{
    BillingMethod, FailoverConfig, FailoverMode, LeaseStatus, Operation, Timestamp, fingerprint_of, is_e164,
};

use super::faults::{Decision, FaultAction, FaultState, Faults, OneShotFault};
use super::inventory::InventoryNumber;
use super::{SandboxConfig, SandboxError, TimestampFormat};

/// `data.error` when leasing a number that has a current lease (ours or another account's);
/// HTTP 400.
pub const ERR_ALREADY_LEASED: &str = "Number is already leased";
/// `data.error` for a number that is not in the inventory; HTTP 404.
pub const ERR_NUMBER_NOT_FOUND: &str = "Number not found";
/// `data.error` when terminating, configuring or reading (legacy details) a number the caller
/// does not lease; HTTP 404.
pub const ERR_NOT_LEASED: &str = "Number is not leased by your account";
/// `data.error` for a missing, malformed or unknown token; HTTP 401.
pub const ERR_UNAUTHORIZED: &str = "Invalid or missing API key";
/// `data.error` for a path number that is not E.164; HTTP 400.
pub const ERR_INVALID_NUMBER: &str = "Invalid phone number: expected E.164 (e.g. +13059478667)";
/// `data.error` when leasing a number whose base status is not available; HTTP 400.
pub const ERR_NOT_AVAILABLE: &str = "Number is not available for lease";
/// `data.error` of 429 answers.
pub const ERR_RATE_LIMITED: &str = "Too many requests";
/// `data.error` of injected server errors.
pub const ERR_INJECTED: &str = "Internal server error (injected by the sandbox)";

/// An error answer of a wire call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub agreement_url: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            agreement_url: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
}

/// One row of the lease table (`GET /_sandbox/leases`), including ended leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Lease id.
    pub lease_id: String,
    /// E.164 number.
    pub number: String,
    /// Fingerprint of the holder's token (as [`ApiToken::fingerprint`](crate::contiguity::ApiToken::fingerprint)).
    pub account: String,
    /// `active`, `paused`, `expired` or `terminated`.
    pub status: LeaseStatus,
    /// Billing method.
    pub billing_method: BillingMethod,
    /// Creation time (whole seconds).
    pub created_at: Timestamp,
    /// End of the billing period (`service_contract` only).
    pub period_end: Option<Timestamp>,
    /// When it was terminated.
    pub terminated_at: Option<Timestamp>,
    /// `"api"` (DELETE by the holder) or `"out_of_band"` (admin).
    pub terminated_by: Option<String>,
    /// When it expired (admin).
    pub expired_at: Option<Timestamp>,
    /// Failover settings while the lease is current.
    pub failover: Option<FailoverConfig>,
    /// Whether this is the number's current lease (not terminated).
    pub current: bool,
}

/// One wire call as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Arrival order.
    pub seq: u64,
    /// Operation, `None` for unknown paths.
    pub op: Option<Operation>,
    /// HTTP method.
    pub method: String,
    /// Request path as sent (still percent-encoded).
    pub path: String,
    /// Fingerprint of the caller's token, when it was a known account.
    pub account: Option<String>,
    /// HTTP status (`"200"`, `"429"`…), `"dropped"` for a lost reply, or `"cancelled"` when
    /// the client went away before the (delayed) call was handled.
    pub outcome: String,
    /// Arrival time, epoch milliseconds.
    pub started_at_ms: i64,
    /// Time to answer, milliseconds (including injected latency).
    pub duration_ms: f64,
    /// Whether the call arrived while a 429's `Retry-After` for its token was running, and more
    /// than [`IN_FLIGHT_GRACE`](super::IN_FLIGHT_GRACE) (100 ms) after that 429 was answered, so
    /// it was not merely already in flight: a client that honours `Retry-After` never has this.
    pub before_retry_after: bool,
    /// Whether the call arrived while a 429's `Retry-After` for its token was running (strict;
    /// includes calls that were in flight when the 429 was answered).
    pub in_retry_after_window: bool,
    /// The envelope id sent back (`req_…`/`err_…`).
    pub request_id: Option<String>,
}

impl CallRecord {
    /// The HTTP status, `None` for a dropped reply.
    pub fn status(&self) -> Option<u16> {
        self.outcome.parse().ok()
    }
}

/// A message accepted by `POST /send/*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessageRecord {
    /// `text_…` / `imsg_…`.
    pub message_id: String,
    /// The operation.
    pub op: Operation,
    /// Sender account fingerprint.
    pub account: String,
    /// The request body.
    pub request: Value,
    /// When it was accepted.
    pub at: Timestamp,
}

/// An account of the sandbox (one per token).
#[derive(Clone, Serialize, Deserialize)]
pub struct AccountSpec {
    /// The API token.
    pub token: String,
    /// Entitlements (`imessage`, `whatsapp`, `enterprise`, …); `None` grants all.
    #[serde(default)]
    pub entitlements: Option<Vec<String>>,
    /// Whether `service_contract` leases are allowed (default true).
    #[serde(default = "yes")]
    pub service_contract: bool,
}

fn yes() -> bool {
    true
}

impl AccountSpec {
    /// An account with every entitlement and a service contract.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            entitlements: None,
            service_contract: true,
        }
    }
}

impl fmt::Debug for AccountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountSpec")
            .field("token", &format_args!("***{}", fingerprint_of(&self.token)))
            .field("entitlements", &self.entitlements)
            .field("service_contract", &self.service_contract)
            .finish()
    }
}

/// Public view of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    /// Token fingerprint.
    pub fingerprint: String,
    /// Entitlements; `None` = all.
    pub entitlements: Option<Vec<String>>,
    /// Service contract.
    pub service_contract: bool,
}

/// Public view of an inventory number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberView {
    /// E.164 number.
    pub number: String,
    /// Status as a non-holder sees it.
    pub status: String,
    /// Current lease id.
    pub lease_id: Option<String>,
    /// Current lease status.
    pub lease_status: Option<LeaseStatus>,
    /// Holder fingerprint.
    pub leased_by: Option<String>,
}

struct NumberEntry {
    inv: InventoryNumber,
    formatted: String,
    current: Option<usize>,
}

struct Account {
    fingerprint: String,
    entitlements: Option<Vec<String>>,
    service_contract: bool,
}

struct Lease {
    id: String,
    number: usize,
    account: usize,
    status: LeaseStatus,
    billing: BillingMethod,
    created: jiff::Timestamp,
    period_end: Option<jiff::Timestamp>,
    terminated: Option<jiff::Timestamp>,
    terminated_by: Option<&'static str>,
    expired: Option<jiff::Timestamp>,
    failover: Option<FailoverConfig>,
}

struct Data {
    numbers: Vec<NumberEntry>,
    index: HashMap<String, usize>,
    accounts: Vec<Account>,
    by_token: HashMap<String, usize>,
    leases: Vec<Lease>,
    lease_ids: HashMap<String, usize>,
    messages: VecDeque<SentMessageRecord>,
    rng: StdRng,
}

struct CallLog {
    records: VecDeque<CallRecord>,
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    total: u64,
}

struct Shared {
    data: RwLock<Data>,
    faults: Mutex<FaultState>,
    calls: Mutex<CallLog>,
    seq: AtomicU64,
    ids: AtomicU64,
    id_seed: u64,
    capacity: usize,
    api_version: String,
    timestamp_format: TimestampFormat,
}

/// Handle on the sandbox state; cheap to clone. All admin operations are methods here, so
/// in-process tests can call them directly.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Shared>,
}

impl fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.read();
        f.debug_struct("SandboxState")
            .field("numbers", &d.numbers.len())
            .field("accounts", &d.accounts.len())
            .field("leases", &d.leases.len())
            .finish()
    }
}

fn now_secs() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `imessage_entitlement_required` → `imessage`, `enterprise_plan_required` → `enterprise`.
fn entitlement_of(requirement: &str) -> &str {
    requirement
        .strip_suffix("_entitlement_required")
        .or_else(|| requirement.strip_suffix("_plan_required"))
        .or_else(|| requirement.strip_suffix("_required"))
        .unwrap_or(requirement)
}

fn parse_object(body: &[u8]) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(ApiError::bad("Request body must be a JSON object")),
        Err(_) => Err(ApiError::bad("Invalid JSON body")),
    }
}

impl SandboxState {
    /// Builds the state from a configuration.
    pub fn new(cfg: &SandboxConfig) -> Result<Self, SandboxError> {
        let mut data = Data {
            numbers: Vec::new(),
            index: HashMap::new(),
            accounts: Vec::new(),
            by_token: HashMap::new(),
            leases: Vec::new(),
            lease_ids: HashMap::new(),
            messages: VecDeque::new(),
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x1EA5_E000_0000_0001),
        };
        Self::insert_numbers(&mut data, cfg.inventory.generate(cfg.seed)?)?;
        for token in &cfg.accounts {
            Self::insert_account(&mut data, AccountSpec::new(token.clone()))?;
        }
        Ok(Self {
            inner: Arc::new(Shared {
                data: RwLock::new(data),
                faults: Mutex::new(FaultState::new(cfg.faults.clone(), cfg.seed)),
                calls: Mutex::new(CallLog {
                    records: VecDeque::new(),
                    counts: BTreeMap::new(),
                    total: 0,
                }),
                seq: AtomicU64::new(0),
                ids: AtomicU64::new(0),
                id_seed: splitmix(cfg.seed),
                capacity: cfg.call_log_capacity.max(1),
                api_version: cfg.api_version.clone(),
                timestamp_format: cfg.timestamp_format,
            }),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.inner.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.inner.data.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fault_state(&self) -> MutexGuard<'_, FaultState> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call_log(&self) -> MutexGuard<'_, CallLog> {
        self.inner.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert_numbers(data: &mut Data, numbers: Vec<InventoryNumber>) -> Result<(), SandboxError> {
        for n in &numbers {
            if !is_e164(&n.number) {
                return Err(SandboxError::Invalid(format!(
                    "inventory number {:?} is not E.164",
                    n.number
                )));
            }
            if data.index.contains_key(&n.number) {
                return Err(SandboxError::Invalid(format!(
                    "inventory number {} is listed twice",
                    n.number
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = numbers.iter().find(|n| !seen.insert(n.number.as_str())) {
            return Err(SandboxError::Invalid(format!(
                "inventory number {} is listed twice",
                dup.number
            )));
        }
        for inv in numbers {
            data.index.insert(inv.number.clone(), data.numbers.len());
            let formatted = inv.formatted();
            data.numbers.push(NumberEntry {
                inv,
                formatted,
                current: None,
            });
        }
        Ok(())
    }

    fn insert_account(data: &mut Data, spec: AccountSpec) -> Result<String, SandboxError> {
        let token = spec.token.trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(SandboxError::Invalid(
                "a token must be non-empty and contain no whitespace".to_owned(),
            ));
        }
        let fingerprint = fingerprint_of(&token);
        match data.by_token.get(&token) {
            Some(&i) => {
                let a = &mut data.accounts[i];
                a.entitlements = spec.entitlements;
                a.service_contract = spec.service_contract;
            }
            None => {
                data.by_token.insert(token, data.accounts.len());
                data.accounts.push(Account {
                    fingerprint: fingerprint.clone(),
                    entitlements: spec.entitlements,
                    service_contract: spec.service_contract,
                });
            }
        }
        Ok(fingerprint)
    }

    // ---------------------------------------------------------------- ids, time, envelope

    pub(crate) fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// A fresh `req_…` / `err_…` id (deterministic sequence for a seed).
    pub(crate) fn next_id(&self, prefix: &str) -> String {
        let n = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let x = splitmix(self.inner.id_seed ^ n);
        format!("{prefix}_{x:016x}")
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn ts(&self, t: jiff::Timestamp) -> Value {
        match self.inner.timestamp_format {
            TimestampFormat::EpochSeconds => json!(t.as_second()),
            TimestampFormat::EpochMillis => json!(t.as_millisecond()),
            TimestampFormat::Rfc3339 => json!(t.to_string()),
        }
    }

    // ---------------------------------------------------------------- auth and faults

    /// Resolves an `Authorization` header to an account index and fingerprint.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<(usize, String), ApiError> {
        let unauthorized = || ApiError::new(401, ERR_UNAUTHORIZED);
        let header = header.ok_or_else(unauthorized)?.trim();
        let (scheme, key) = header.split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("token") {
            return Err(ApiError::new(
                401,
                "Invalid authorization scheme: send 'Authorization: Token <api key>'",
            ));
        }
        let d = self.read();
        let &i = d.by_token.get(key.trim()).ok_or_else(unauthorized)?;
        Ok((i, d.accounts[i].fingerprint.clone()))
    }

    pub(crate) fn latency(&self) -> Duration {
        self.fault_state().latency()
    }

    pub(crate) fn decide(&self, op: Operation, account: usize, arrived: tokio::time::Instant) -> Decision {
        self.fault_state()
            .decide(op, account, arrived, tokio::time::Instant::now())
    }

    pub(crate) fn empty_lists_404(&self) -> bool {
        self.fault_state().faults.empty_lists_404
    }

    pub(crate) fn record_call(&self, rec: CallRecord) {
        let mut log = self.call_log();
        let op = rec.op.map(Operation::as_str).unwrap_or("unknown");
        *log.counts
            .entry(op.to_owned())
            .or_default()
            .entry(rec.outcome.clone())
            .or_default() += 1;
        log.total += 1;
        if log.records.len() >= self.inner.capacity {
            log.records.pop_front();
        }
        log.records.push_back(rec);
    }

    // ---------------------------------------------------------------- wire operations

    fn entry_index(d: &Data, number: &str) -> Result<usize, ApiError> {
        if !is_e164(number) {
            return Err(ApiError::bad(ERR_INVALID_NUMBER));
        }
        d.index
            .get(number)
            .copied()
            .ok_or_else(|| ApiError::new(404, ERR_NUMBER_NOT_FOUND))
    }

    fn holds(d: &Data, idx: usize, account: usize) -> Option<usize> {
        d.numbers[idx].current.filter(|&l| d.leases[l].account == account)
    }

    fn wire_status(d: &Data, idx: usize) -> &str {
        let e = &d.numbers[idx];
        if e.current.is_some() { "leased" } else { &e.inv.status }
    }

    fn eligible(acc: &Account, inv: &InventoryNumber) -> Result<(), ApiError> {
        let Some(ents) = &acc.entitlements else {
            return Ok(());
        };
        for req in &inv.requirements {
            let ent = entitlement_of(req);
            if !ents.iter().any(|e| e == ent) {
                return Err(ApiError {
                    status: 403,
                    message: format!("Missing entitlement: {req}"),
                    agreement_url: Some(format!("https://api.contiguity.com/entitlements/{ent}")),
                });
            }
        }
        Ok(())
    }

    fn record_json(&self, d: &Data, idx: usize, holder: Option<usize>) -> Value {
        let e = &d.numbers[idx];
        let inv = &e.inv;
        let created = inv
            .created_at
            .map(|t| t.as_jiff())
            .unwrap_or_else(|| jiff::Timestamp::from_second(1_718_851_200).unwrap_or_default());
        let mut v = json!({
            "id": inv.number,
            "status": Self::wire_status(d, idx),
            "number": { "e164": inv.number, "formatted": e.formatted },
            "location": { "country": inv.country, "region": inv.region, "city": inv.city },
            "carrier": inv.carrier,
            "capabilities": { "intl_sms": inv.intl_sms, "channels": inv.channels },
            "health": { "reputation": inv.reputation, "previous_owners": inv.previous_owners },
            "data": { "requirements": inv.requirements, "e911_capable": inv.e911_capable },
            "created_at": self.ts(created),
            "pricing": {
                "currency": inv.currency,
                "upfront_fee": inv.upfront_fee,
                "monthly_rate": inv.monthly_rate,
            },
        });
        if let (Some(l), Value::Object(m)) = (holder, &mut v) {
            let lease = &d.leases[l];
            m.insert("lease_id".into(), json!(lease.id));
            m.insert("lease_status".into(), json!(lease.status.as_str()));
            m.insert(
                "billing".into(),
                json!({
                    "method": lease.billing.as_str(),
                    "period": {
                        "start": self.ts(lease.created),
                        "end": lease.period_end.map(|t| self.ts(t)).unwrap_or(Value::Null),
                    },
                }),
            );
            if let Some(f) = &lease.failover {
                m.insert("failover".into(), json!(f));
            }
        }
        v
    }

    /// `GET /numbers/leases`.
    pub(crate) fn op_available(&self, account: usize) -> Result<Value, ApiError> {
        let d = self.read();
        let acc = &d.accounts[account];
        let numbers: Vec<Value> = (0..d.numbers.len())
            .filter(|&i| {
                let e = &d.numbers[i];
                e.current.is_none()
                    && matches!(e.inv.status.as_str(), "available" | "g-available")
                    && Self::eligible(acc, &e.inv).is_ok()
            })
            .map(|i| self.record_json(&d, i, None))
            .collect();
        if numbers.is_empty() && self.empty_lists_404() {
            return Err(ApiError::new(404, "No numbers available"));
        }
        Ok(json!({ "available": numbers.len(), "numbers": numbers }))
    }

    /// `GET /numbers/leased`.
    pub(crate) fn op_leased(&self, account: usize) -> Result<Value, ApiError> {
        let d = self.read();
        let numbers: Vec<Value> = (0..d.numbers.len())
            .filter_map(|i| Self::holds(&d, i, account).map(|l| self.record_json(&d, i, Some(l))))
            .collect();
        if numbers.is_empty() && self.empty_lists_404() {
            return Err(ApiError::new(404, "No leased numbers"));
        }
        Ok(json!({ "leased": numbers.len(), "numbers": numbers }))
    }

    /// `GET /numbers/{n}`.
    pub(crate) fn op_get(&self, account: usize, number: &str) -> Result<Value, ApiError> {
        let d = self.read();
        let idx = Self::entry_index(&d, number)?;
        Ok(self.record_json(&d, idx, Self::holds(&d, idx, account)))
    }

    /// `GET /numbers/leased/{n}` (legacy details): only for the holder.
    pub(crate) fn op_details(&self, account: usize, number: &str) -> Result<Value, ApiError> {
        let d = self.read();
        let idx = Self::entry_index(&d, number)?;
        let l = Self::holds(&d, idx, account).ok_or_else(|| ApiError::new(404, ERR_NOT_LEASED))?;
        Ok(self.record_json(&d, idx, Some(l)))
    }

    /// `POST /numbers/lease/{n}`.
    pub(crate) fn op_create(&self, account: usize, number: &str, body: &[u8]) -> Result<Value, ApiError> {
        if !is_e164(number) {
            return Err(ApiError::bad(ERR_INVALID_NUMBER));
        }
        let billing = match parse_object(body)?.as_ref().and_then(|m| m.get("billing_method")) {
            None | Some(Value::Null) => BillingMethod::Monthly,
            Some(Value::String(s)) if s == "monthly" => BillingMethod::Monthly,
            Some(Value::String(s)) if s == "service_contract" => BillingMethod::ServiceContract,
            Some(_) => {
                return Err(ApiError::bad(
                    "Invalid billing_method: expected \"monthly\" or \"service_contract\"",
                ));
            }
        };
        let mut guard = self.write();
        let d = &mut *guard;
        let idx = Self::entry_index(d, number)?;
        if d.numbers[idx].current.is_some() {
            return Err(ApiError::bad(ERR_ALREADY_LEASED));
        }
        if !matches!(d.numbers[idx].inv.status.as_str(), "available" | "g-available") {
            return Err(ApiError::bad(ERR_NOT_AVAILABLE));
        }
        let acc = &d.accounts[account];
        Self::eligible(acc, &d.numbers[idx].inv)?;
        if billing == BillingMethod::ServiceContract && !acc.service_contract {
            return Err(ApiError::new(
                403,
                "billing_method service_contract needs an active service contract",
            ));
        }
        let now = now_secs();
        let period_end = (billing == BillingMethod::ServiceContract)
            .then(|| now.checked_add(jiff::SignedDuration::from_hours(24 * 365)).ok())
            .flatten();
        let id = loop {
            let id = format!("lsd_{:016x}", d.rng.random::<u64>());
            if !d.lease_ids.contains_key(&id) {
                break id;
            }
        };
        let l = d.leases.len();
        d.lease_ids.insert(id.clone(), l);
        d.leases.push(Lease {
            id: id.clone(),
            number: idx,
            account,
            status: LeaseStatus::Active,
            billing: billing.clone(),
            created: now,
            period_end,
            terminated: None,
            terminated_by: None,
            expired: None,
            failover: None,
        });
        d.numbers[idx].current = Some(l);
        let inv = &d.numbers[idx].inv;
        Ok(json!({
            "lease_id": id,
            "number": inv.number,
            "status": "active",
            "billing": {
                "method": billing.as_str(),
                "price": {
                    "currency": inv.currency,
                    "monthly_rate": inv.monthly_rate,
                    "upfront_fee": inv.upfront_fee,
                },
                "period": {
                    "start": self.ts(now),
                    "end": period_end.map(|t| self.ts(t)).unwrap_or(Value::Null),
                },
            },
        }))
    }

    fn end_lease(d: &mut Data, l: usize, by: &'static str) -> jiff::Timestamp {
        let now = now_secs();
        let lease = &mut d.leases[l];
        lease.status = LeaseStatus::Terminated;
        lease.terminated = Some(now);
        lease.terminated_by = Some(by);
        lease.failover = None;
        let n = lease.number;
        d.numbers[n].current = None;
        now
    }

    /// `DELETE /numbers/leased/{n}`.
    pub(crate) fn op_terminate(&self, account: usize, number: &str) -> Result<Value, ApiError> {
        let mut guard = self.write();
        let d = &mut *guard;
        let idx = Self::entry_index(d, number)?;
        let l = Self::holds(d, idx, account).ok_or_else(|| ApiError::new(404, ERR_NOT_LEASED))?;
        let at = Self::end_lease(d, l, "api");
        Ok(json!({
            "lease_id": d.leases[l].id,
            "number_id": d.numbers[idx].inv.number,
            "status": "terminated",
            "terminated_at": self.ts(at),
        }))
    }

    /// `POST /numbers/{n}/configure`.
    pub(crate) fn op_configure(&self, account: usize, number: &str, body: &[u8]) -> Result<Value, ApiError> {
        if !is_e164(number) {
            return Err(ApiError::bad(ERR_INVALID_NUMBER));
        }
        let failover = parse_failover(parse_object(body)?, number)?;
        let mut guard = self.write();
        let d = &mut *guard;
        let idx = Self::entry_index(d, number)?;
        let l = Self::holds(d, idx, account).ok_or_else(|| ApiError::new(404, ERR_NOT_LEASED))?;
        if d.leases[l].status == LeaseStatus::Expired {
            return Err(ApiError::bad("Lease is expired"));
        }
        d.leases[l].failover = Some(failover.clone());
        let mut f = json!({ "enabled": failover.enabled, "numbers": failover.numbers });
        if let (Some(mode), Value::Object(m)) = (&failover.mode, &mut f) {
            m.insert("mode".into(), json!(mode.as_str()));
        }
        Ok(json!({ "number": number, "failover": f }))
    }

    fn check_from(
        d: &Data,
        account: usize,
        field: &str,
        from: Option<&Value>,
        channel: Option<&str>,
    ) -> Result<(), ApiError> {
        let from = match from {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(ApiError::bad(format!("{field} must be a string"))),
        };
        let not_ours = || ApiError::bad(format!("{field} {from} is not a number leased by your account"));
        let idx = d.index.get(from).copied().ok_or_else(not_ours)?;
        let l = Self::holds(d, idx, account).ok_or_else(not_ours)?;
        if d.leases[l].status != LeaseStatus::Active {
            return Err(ApiError::bad(format!(
                "{field} {from}: lease is {}",
                d.leases[l].status
            )));
        }
        if let Some(ch) = channel
            && !d.numbers[idx].inv.channels.iter().any(|c| c == ch)
        {
            return Err(ApiError::bad(format!("{field} {from} does not support {ch}")));
        }
        Ok(())
    }

    /// `POST /send/text` and `POST /send/imessage`.
    pub(crate) fn op_send(&self, op: Operation, account: usize, body: &[u8]) -> Result<Value, ApiError> {
        let imessage = op == Operation::SendImessage;
        let m = parse_object(body)?.ok_or_else(|| ApiError::bad("Request body is required"))?;
        let to = m
            .get("to")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("to is required"))?;
        if !(is_e164(to) || normalize_nanp(to).is_some() || (imessage && to.contains('@'))) {
            return Err(ApiError::bad(format!("to {to:?} is not a valid phone number")));
        }
        let attachments = match m.get("attachments") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(a)) => {
                if a.iter().any(|x| !x.as_str().is_some_and(|s| s.starts_with("https://"))) {
                    return Err(ApiError::bad("attachments must be https:// URLs"));
                }
                a.len()
            }
            Some(_) => return Err(ApiError::bad("attachments must be an array")),
        };
        let max = if imessage { 10 } else { 3 };
        if attachments > max {
            return Err(ApiError::bad(format!("at most {max} attachments are allowed")));
        }
        let has_message = m.get("message").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !has_message && attachments == 0 {
            return Err(ApiError::bad("message is required unless attachments are given"));
        }
        let fast_track = m.get("fast_track").and_then(Value::as_bool).unwrap_or(false);
        if fast_track && m.get("from").is_none_or(Value::is_null) {
            return Err(ApiError::bad("fast_track needs a leased from number"));
        }
        let mut guard = self.write();
        let d = &mut *guard;
        Self::check_from(d, account, "from", m.get("from"), imessage.then_some("imessage"))?;
        if imessage {
            match m.get("fallback") {
                None | Some(Value::Null) => {}
                Some(Value::Object(f)) => {
                    let when = f
                        .get("when")
                        .and_then(Value::as_array)
                        .ok_or_else(|| ApiError::bad("fallback.when is required"))?;
                    if when.is_empty()
                        || when
                            .iter()
                            .any(|w| !matches!(w.as_str(), Some("imessage_unsupported" | "imessage_fails")))
                    {
                        return Err(ApiError::bad(
                            "fallback.when items must be \"imessage_unsupported\" or \"imessage_fails\"",
                        ));
                    }
                    Self::check_from(d, account, "fallback.from", f.get("from"), None)?;
                }
                Some(_) => return Err(ApiError::bad("fallback must be an object")),
            }
        }
        let prefix = if imessage { "imsg" } else { "text" };
        let message_id = format!("{prefix}_{:010}", d.rng.random_range(0..10_000_000_000u64));
        if d.messages.len() >= self.inner.capacity {
            d.messages.pop_front();
        }
        d.messages.push_back(SentMessageRecord {
            message_id: message_id.clone(),
            op,
            account: d.accounts[account].fingerprint.clone(),
            request: Value::Object(m),
            at: Timestamp::now(),
        });
        Ok(json!({ "message_id": message_id }))
    }

    // ---------------------------------------------------------------- admin (Rust API)

    fn lease_record(d: &Data, l: usize) -> LeaseRecord {
        let lease = &d.leases[l];
        LeaseRecord {
            lease_id: lease.id.clone(),
            number: d.numbers[lease.number].inv.number.clone(),
            account: d.accounts[lease.account].fingerprint.clone(),
            status: lease.status.clone(),
            billing_method: lease.billing.clone(),
            created_at: lease.created.into(),
            period_end: lease.period_end.map(Into::into),
            terminated_at: lease.terminated.map(Into::into),
            terminated_by: lease.terminated_by.map(str::to_owned),
            expired_at: lease.expired.map(Into::into),
            failover: lease.failover.clone(),
            current: d.numbers[lease.number].current == Some(l),
        }
    }

    /// Every inventory number, in inventory order (seeded numbers first: `+15550100000`, …).
    pub fn inventory_numbers(&self) -> Vec<String> {
        self.read().numbers.iter().map(|e| e.inv.number.clone()).collect()
    }

    /// Numbers that have no current lease and whose base status is leasable.
    pub fn available_numbers(&self) -> Vec<String> {
        self.read()
            .numbers
            .iter()
            .filter(|e| e.current.is_none() && matches!(e.inv.status.as_str(), "available" | "g-available"))
            .map(|e| e.inv.number.clone())
            .collect()
    }

    /// The inventory with each number's current lease.
    pub fn numbers(&self) -> Vec<NumberView> {
        let d = self.read();
        (0..d.numbers.len())
            .map(|i| {
                let e = &d.numbers[i];
                let lease = e.current.map(|l| &d.leases[l]);
                NumberView {
                    number: e.inv.number.clone(),
                    status: Self::wire_status(&d, i).to_owned(),
                    lease_id: lease.map(|l| l.id.clone()),
                    lease_status: lease.map(|l| l.status.clone()),
                    leased_by: lease.map(|l| d.accounts[l.account].fingerprint.clone()),
                }
            })
            .collect()
    }

    /// Adds inventory numbers (rejects non-E.164 numbers and duplicates; nothing is added then).
    pub fn add_numbers(&self, numbers: Vec<InventoryNumber>) -> Result<(), SandboxError> {
        Self::insert_numbers(&mut self.write(), numbers)
    }

    /// Adds an account with every entitlement; returns its fingerprint.
    pub fn add_account(&self, token: impl Into<String>) -> Result<String, SandboxError> {
        self.add_account_with(AccountSpec::new(token))
    }

    /// Adds (or updates) an account; returns its fingerprint.
    pub fn add_account_with(&self, spec: AccountSpec) -> Result<String, SandboxError> {
        Self::insert_account(&mut self.write(), spec)
    }

    /// The accounts (fingerprints only).
    pub fn accounts(&self) -> Vec<AccountView> {
        self.read()
            .accounts
            .iter()
            .map(|a| AccountView {
                fingerprint: a.fingerprint.clone(),
                entitlements: a.entitlements.clone(),
                service_contract: a.service_contract,
            })
            .collect()
    }

    /// Whether `token` is a known account (constant data, for the binary's start-up log).
    pub fn has_account(&self, token: &str) -> bool {
        self.read().by_token.contains_key(token)
    }

    /// The full lease table, in creation order, ended leases included.
    pub fn leases(&self) -> Vec<LeaseRecord> {
        let d = self.read();
        (0..d.leases.len()).map(|l| Self::lease_record(&d, l)).collect()
    }

    /// The current lease of `number`, if any.
    pub fn current_lease(&self, number: &str) -> Option<LeaseRecord> {
        let d = self.read();
        let idx = *d.index.get(number)?;
        d.numbers[idx].current.map(|l| Self::lease_record(&d, l))
    }

    fn with_current<F>(&self, number: &str, f: F) -> Result<LeaseRecord, SandboxError>
    where
        F: FnOnce(&mut Data, usize) -> Result<(), SandboxError>,
    {
        let mut guard = self.write();
        let d = &mut *guard;
        let idx = *d
            .index
            .get(number)
            .ok_or_else(|| SandboxError::NotFound(number.to_owned()))?;
        let l = d.numbers[idx]
            .current
            .ok_or_else(|| SandboxError::NotLeased(number.to_owned()))?;
        f(d, l)?;
        Ok(Self::lease_record(d, l))
    }

    /// Terminates the current lease of `number` outside the API (as if done in Contiguity's
    /// console): the number becomes available again.
    pub fn terminate_out_of_band(&self, number: &str) -> Result<LeaseRecord, SandboxError> {
        self.with_current(number, |d, l| {
            Self::end_lease(d, l, "out_of_band");
            Ok(())
        })
    }

    /// Expires the current lease of `number`: `lease_status` becomes `expired`; the holder still
    /// sees it (and can terminate it), nobody can lease the number until it is terminated.
    pub fn expire(&self, number: &str) -> Result<LeaseRecord, SandboxError> {
        self.with_current(number, |d, l| {
            let lease = &mut d.leases[l];
            if lease.status != LeaseStatus::Expired {
                lease.status = LeaseStatus::Expired;
                lease.expired = Some(now_secs());
            }
            Ok(())
        })
    }

    /// Pauses the current lease of `number` (`lease_status: paused`).
    pub fn pause(&self, number: &str) -> Result<LeaseRecord, SandboxError> {
        self.with_current(number, |d, l| match d.leases[l].status {
            LeaseStatus::Active | LeaseStatus::Paused => {
                d.leases[l].status = LeaseStatus::Paused;
                Ok(())
            }
            ref s => Err(SandboxError::Invalid(format!("cannot pause a lease that is {s}"))),
        })
    }

    /// Resumes a paused lease.
    pub fn resume(&self, number: &str) -> Result<LeaseRecord, SandboxError> {
        self.with_current(number, |d, l| match d.leases[l].status {
            LeaseStatus::Active | LeaseStatus::Paused => {
                d.leases[l].status = LeaseStatus::Active;
                Ok(())
            }
            ref s => Err(SandboxError::Invalid(format!("cannot resume a lease that is {s}"))),
        })
    }

    /// Changes (or with `None` clears) the failover settings of a leased number outside the API.
    pub fn set_failover_out_of_band(
        &self,
        number: &str,
        failover: impl Into<Option<FailoverConfig>>,
    ) -> Result<LeaseRecord, SandboxError> {
        let failover = failover.into();
        self.with_current(number, |d, l| {
            d.leases[l].failover = failover;
            Ok(())
        })
    }

    /// Every wire call, in arrival order (bounded by the configured capacity).
    pub fn calls(&self) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self.call_log().records.iter().cloned().collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    /// The calls of one operation, in arrival order.
    pub fn calls_of(&self, op: Operation) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self
            .call_log()
            .records
            .iter()
            .filter(|c| c.op == Some(op))
            .cloned()
            .collect();
        v.sort_by_key(|c| c.seq);
        v
    }

    /// Call counts: operation label (`unknown` for other paths) → outcome → count. Not bounded by
    /// the log capacity.
    pub fn call_counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.call_log().counts.clone()
    }

    /// Number of calls of `op` with `outcome` (`"200"`, `"dropped"`…).
    pub fn count(&self, op: Operation, outcome: &str) -> u64 {
        self.call_log()
            .counts
            .get(op.as_str())
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Total number of calls of `op`, any outcome.
    pub fn count_op(&self, op: Operation) -> u64 {
        self.call_log()
            .counts
            .get(op.as_str())
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Total wire calls since the last reset.
    pub fn total_calls(&self) -> u64 {
        self.call_log().total
    }

    /// Clears the call log and counters.
    pub fn reset_calls(&self) {
        let mut log = self.call_log();
        log.records.clear();
        log.counts.clear();
        log.total = 0;
    }

    /// Messages accepted by the send calls.
    pub fn messages(&self) -> Vec<SentMessageRecord> {
        self.read().messages.iter().cloned().collect()
    }

    /// The current fault settings.
    pub fn faults(&self) -> Faults {
        self.fault_state().faults.clone()
    }

    /// Replaces the fault settings (one-shot faults are kept; rate-limit buckets restart).
    pub fn set_faults(&self, faults: Faults) {
        self.fault_state().set_faults(faults);
    }

    /// Queues a one-shot fault.
    pub fn push_one_shot(&self, fault: OneShotFault) {
        if fault.count > 0 {
            self.fault_state().one_shots.push(fault);
        }
    }

    /// Queued one-shot faults.
    pub fn one_shots(&self) -> Vec<OneShotFault> {
        self.fault_state().one_shots.clone()
    }

    /// Drops every queued one-shot fault.
    pub fn clear_one_shots(&self) {
        self.fault_state().one_shots.clear();
    }

    /// The next `n` calls of `op` fail with `status` (nothing is applied). 502 and 504 get an
    /// HTML body like a gateway's; 429 gets `Retry-After`; others the error envelope.
    pub fn fail_next(&self, op: Operation, n: u32, status: u16) {
        self.push_one_shot(OneShotFault {
            op,
            count: n,
            action: FaultAction::Status {
                status,
                html: matches!(status, 502 | 504),
            },
        });
    }

    /// The next `n` calls of `op` are applied but their reply is lost (connection dropped).
    pub fn lose_next_reply(&self, op: Operation, n: u32) {
        self.push_one_shot(OneShotFault {
            op,
            count: n,
            action: FaultAction::LostReply,
        });
    }

    /// The next `n` calls of `op` are delayed by `delay` before being handled.
    pub fn delay_next(&self, op: Operation, n: u32, delay: Duration) {
        self.push_one_shot(OneShotFault {
            op,
            count: n,
            action: FaultAction::Delay {
                ms: delay.as_millis() as u64,
            },
        });
    }
}

/// `3055550100`, `(305) 555-0100`, `1-305-555-0100` → `+13055550100`.
fn normalize_nanp(s: &str) -> Option<String> {
    if s.chars().any(|c| !(c.is_ascii_digit() || " ()-.+".contains(c))) {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        10 => Some(format!("+1{digits}")),
        11 if digits.starts_with('1') => Some(format!("+{digits}")),
        _ => None,
    }
}

fn parse_failover(body: Option<serde_json::Map<String, Value>>, target: &str) -> Result<FailoverConfig, ApiError> {
    let body = body.ok_or_else(|| ApiError::bad("Request body is required"))?;
    let f = body
        .get("failover")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad("failover (object) is required"))?;
    let enabled = f
        .get("enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::bad("failover.enabled (boolean) is required"))?;
    let mode = match f.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "all" => Some(FailoverMode::All),
        Some(Value::String(s)) if s == "selective" => Some(FailoverMode::Selective),
        Some(_) => {
            return Err(ApiError::bad("failover.mode must be \"all\" or \"selective\""));
        }
    };
    let numbers = match f.get("numbers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .filter(|s| is_e164(s))
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad("failover.numbers must be E.164 numbers"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::bad("failover.numbers must be an array")),
    };
    if enabled && mode == Some(FailoverMode::Selective) && numbers.is_empty() {
        return Err(ApiError::bad(
            "failover.numbers is required when failover.mode is \"selective\"",
        ));
    }
    if numbers.iter().any(|n| n == target) {
        return Err(ApiError::bad(
            "failover.numbers must not contain the configured number itself",
        ));
    }
    Ok(FailoverConfig { enabled, mode, numbers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SandboxState {
        SandboxState::new(&SandboxConfig {
            accounts: vec!["tok_a".into(), "tok_b".into()],
            ..SandboxConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn lease_terminate_lease_again() {
        let s = state();
        let n = s.inventory_numbers()[0].clone();
        let v = s.op_create(0, &n, b"").unwrap();
        let first = v["lease_id"].as_str().unwrap().to_owned();
        assert_eq!(s.op_create(0, &n, b"{}").unwrap_err().message, ERR_ALREADY_LEASED);
        assert_eq!(s.op_create(1, &n, b"{}").unwrap_err().status, 400);
        assert_eq!(s.op_terminate(1, &n).unwrap_err().status, 404);
        let t = s.op_terminate(0, &n).unwrap();
        assert_eq!(t["lease_id"], first.as_str());
        assert_eq!(t["number_id"], n.as_str());
        assert_eq!(t["status"], "terminated");
        let v = s.op_create(1, &n, br#"{"billing_method":"service_contract"}"#).unwrap();
        assert_ne!(v["lease_id"].as_str().unwrap(), first);
        assert!(v["billing"]["period"]["end"].is_i64());
        let leases = s.leases();
        assert_eq!(leases.len(), 2);
        assert!(!leases[0].current && leases[1].current);
        assert_eq!(leases[0].terminated_by.as_deref(), Some("api"));
    }

    #[test]
    fn bad_bodies() {
        let s = state();
        let n = s.inventory_numbers()[0].clone();
        assert_eq!(s.op_create(0, &n, b"{").unwrap_err().message, "Invalid JSON body");
        assert_eq!(s.op_create(0, &n, b"[]").unwrap_err().status, 400);
        assert_eq!(
            s.op_create(0, &n, br#"{"billing_method":"goodwill"}"#)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(s.op_create(0, "+1", b"").unwrap_err().message, ERR_INVALID_NUMBER);
        assert_eq!(s.op_create(0, "+19999999999", b"").unwrap_err().status, 404);
        s.op_create(0, &n, b"").unwrap();
        for body in [
            &br#"{}"#[..],
            br#"{"failover":{}}"#,
            br#"{"failover":{"enabled":true,"mode":"some"}}"#,
            br#"{"failover":{"enabled":true,"mode":"selective"}}"#,
            br#"{"failover":{"enabled":true,"mode":"selective","numbers":["123"]}}"#,
        ] {
            assert_eq!(s.op_configure(0, &n, body).unwrap_err().status, 400);
        }
    }

    #[test]
    fn nanp() {
        assert_eq!(normalize_nanp("(305) 555-0100").as_deref(), Some("+13055550100"));
        assert_eq!(normalize_nanp("1-305-555-0100").as_deref(), Some("+13055550100"));
        assert_eq!(normalize_nanp("555-0100"), None);
        assert_eq!(normalize_nanp("abc"), None);
    }
}
