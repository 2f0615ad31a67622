//! The sandbox's state machine and admin API, driven over real loopback HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contiguity_operator::contiguity::{
    ApiToken, BillingMethod, ClientConfig, ContiguityClient, Error, FailoverConfig, FailoverMode, IMessage,
    LeaseStatus, NumberStatus, Operation, TextMessage, TokenLimiter, install_crypto_provider,
};
use contiguity_operator::sandbox::{
    AccountSpec, ERR_ALREADY_LEASED, ERR_NOT_LEASED, FaultAction, Faults, InventoryNumber, InventorySpec, LeaseRecord,
    OneShotFault, Sandbox, SandboxConfig, SandboxHandle, TimestampFormat,
};
use serde_json::{Value, json};

const A: &str = "contiguity_sk_state_a";
const B: &str = "contiguity_sk_state_b";

async fn start(cfg: SandboxConfig) -> SandboxHandle {
    install_crypto_provider();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Sandbox::start(cfg, addr).await.unwrap()
}

fn client(sb: &SandboxHandle, token: &str) -> ContiguityClient {
    let cfg = ClientConfig {
        base_url: sb.base_url(),
        timeout: Duration::from_secs(2),
        read_retries: 0,
        rate_limit_per_sec: 0.0,
        ..ClientConfig::default()
    };
    ContiguityClient::new(
        &cfg,
        ApiToken::new(token.to_owned()),
        Arc::new(TokenLimiter::unlimited()),
        None,
    )
    .unwrap()
}

fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

#[tokio::test]
async fn lease_terminate_lease_again_gets_a_new_id() {
    let sb = start(SandboxConfig::with_tokens([A, B])).await;
    let (a, b) = (client(&sb, A), client(&sb, B));
    let n = "+15550100010";
    let first = a.create(n, BillingMethod::Monthly).await.unwrap();
    a.terminate(n).await.unwrap();
    let second = b.create(n, BillingMethod::ServiceContract).await.unwrap();
    assert_ne!(first.lease_id, second.lease_id);
    let period = second.billing.period.unwrap();
    let (start, end) = (period.start.unwrap(), period.end.unwrap());
    assert_eq!(end.as_epoch_seconds() - start.as_epoch_seconds(), 365 * 86_400);
    let third_try = a.create(n, BillingMethod::Monthly).await.unwrap_err();
    assert_eq!(third_try.api_message(), Some(ERR_ALREADY_LEASED));

    let leases = sb.state().leases();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].lease_id, first.lease_id);
    assert_eq!(leases[0].status, LeaseStatus::Terminated);
    assert_eq!(leases[0].terminated_by.as_deref(), Some("api"));
    assert!(!leases[0].current && leases[0].terminated_at.is_some());
    assert_eq!(leases[1].status, LeaseStatus::Active);
    assert_eq!(leases[1].billing_method, BillingMethod::ServiceContract);
    assert_eq!(leases[1].account, ApiToken::new(B.into()).fingerprint());
    assert!(leases[1].current);
}

#[tokio::test]
async fn expiry_keeps_the_number_until_terminated() {
    let sb = start(SandboxConfig::with_tokens([A, B])).await;
    let st = sb.state();
    let (a, b) = (client(&sb, A), client(&sb, B));
    let n = "+15550100011";
    a.create(n, BillingMethod::Monthly).await.unwrap();
    let rec = st.expire(n).unwrap();
    assert_eq!(rec.status, LeaseStatus::Expired);
    assert!(rec.expired_at.is_some());

    let got = a.get(n).await.unwrap();
    assert_eq!(got.lease_status, Some(LeaseStatus::Expired));
    assert_eq!(got.status, NumberStatus::Leased);
    let leased = a.leased().await.unwrap();
    assert_eq!(leased.count, 1);
    assert_eq!(leased.numbers[0].lease_status, Some(LeaseStatus::Expired));
    assert!(
        b.create(n, BillingMethod::Monthly)
            .await
            .unwrap_err()
            .is_already_leased()
    );
    let fo = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::All),
        numbers: vec![],
    };
    assert_eq!(a.configure(n, &fo).await.unwrap_err().status(), Some(400));
    // Sending from an expired lease is refused.
    let e = a
        .send_text(&TextMessage {
            to: "+13059478667".into(),
            message: Some("x".into()),
            from: Some(n.into()),
            ..TextMessage::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));

    let t = a.terminate(n).await.unwrap();
    assert_eq!(t.status, LeaseStatus::Terminated);
    assert_eq!(b.get(n).await.unwrap().status, NumberStatus::Available);
    b.create(n, BillingMethod::Monthly).await.unwrap();
}

#[tokio::test]
async fn pause_and_resume() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let st = sb.state();
    let a = client(&sb, A);
    let n = "+15550100012";
    a.create(n, BillingMethod::Monthly).await.unwrap();
    st.pause(n).unwrap();
    assert_eq!(a.get(n).await.unwrap().lease_status, Some(LeaseStatus::Paused));
    st.resume(n).unwrap();
    assert_eq!(a.get(n).await.unwrap().lease_status, Some(LeaseStatus::Active));
    st.expire(n).unwrap();
    assert!(st.pause(n).is_err());
}

#[tokio::test]
async fn out_of_band_termination() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let st = sb.state();
    let a = client(&sb, A);
    let n = "+15550100013";
    let lease = a.create(n, BillingMethod::Monthly).await.unwrap();
    let fo = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::All),
        numbers: vec![],
    };
    a.configure(n, &fo).await.unwrap();
    let rec = st.terminate_out_of_band(n).unwrap();
    assert_eq!(rec.lease_id, lease.lease_id);
    assert_eq!(rec.terminated_by.as_deref(), Some("out_of_band"));
    assert_eq!(rec.failover, None);

    let got = a.get(n).await.unwrap();
    assert_eq!(got.status, NumberStatus::Available);
    assert!(!got.is_leased_by_us());
    assert_eq!(a.leased().await.unwrap().count, 0);
    let e = a.terminate(n).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.api_message(), Some(ERR_NOT_LEASED));
    assert!(a.details(n).await.unwrap().lease_id.is_none());
    // Nothing left to terminate.
    assert!(st.terminate_out_of_band(n).is_err());
    assert!(st.terminate_out_of_band("+19990000000").is_err());
}

#[tokio::test]
async fn accounts_are_isolated() {
    let sb = start(SandboxConfig::with_tokens([A, B])).await;
    let (a, b) = (client(&sb, A), client(&sb, B));
    let n = "+15550100014";
    a.create(n, BillingMethod::Monthly).await.unwrap();
    let seen_by_b = b.get(n).await.unwrap();
    assert_eq!(seen_by_b.status, NumberStatus::Leased);
    assert!(seen_by_b.lease_id.is_none() && seen_by_b.billing.is_none());
    assert_eq!(b.leased().await.unwrap().count, 0);
    assert_eq!(a.leased().await.unwrap().count, 1);
    assert!(b.available().await.unwrap().numbers.iter().all(|r| r.id != n));
    let fo = FailoverConfig {
        enabled: false,
        mode: None,
        numbers: vec![],
    };
    assert!(b.configure(n, &fo).await.unwrap_err().is_not_found());
    assert!(b.terminate(n).await.unwrap_err().is_not_found());
    // Details: GET /numbers/{n} answers (without lease fields) so no fallback is needed.
    assert!(b.details(n).await.unwrap().lease_id.is_none());
    let e = b
        .send_text(&TextMessage {
            to: "+13059478667".into(),
            message: Some("x".into()),
            from: Some(n.into()),
            ..TextMessage::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(a.get(n).await.unwrap().is_leased_by_us());
}

#[tokio::test]
async fn failover_configuration() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let st = sb.state();
    let a = client(&sb, A);
    let n = "+15550100015";
    let other = "+15550100016";
    a.create(n, BillingMethod::Monthly).await.unwrap();
    assert_eq!(a.get(n).await.unwrap().failover, None);

    let selective = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::Selective),
        numbers: vec![other.into()],
    };
    let r = a.configure(n, &selective).await.unwrap();
    assert_eq!(r.failover, Some(selective.clone()));
    assert_eq!(st.current_lease(n).unwrap().failover, Some(selective.clone()));
    assert_eq!(a.leased().await.unwrap().numbers[0].failover, Some(selective));

    // Invalid: selective without numbers; the target itself in the list.
    for bad in [
        FailoverConfig {
            enabled: true,
            mode: Some(FailoverMode::Selective),
            numbers: vec![],
        },
        FailoverConfig {
            enabled: true,
            mode: Some(FailoverMode::Selective),
            numbers: vec![n.into()],
        },
        FailoverConfig {
            enabled: true,
            mode: Some(FailoverMode::Unknown("most".into())),
            numbers: vec![],
        },
    ] {
        let e = a.configure(n, &bad).await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{bad:?}");
    }

    // Out-of-band change is visible to the holder.
    let oob = FailoverConfig {
        enabled: false,
        mode: Some(FailoverMode::All),
        numbers: vec![],
    };
    st.set_failover_out_of_band(n, oob.clone()).unwrap();
    assert_eq!(a.get(n).await.unwrap().failover, Some(oob));
    st.set_failover_out_of_band(n, None).unwrap();
    assert_eq!(a.get(n).await.unwrap().failover, None);
    // Unleased numbers cannot be configured out of band either.
    assert!(st.set_failover_out_of_band(other, None).is_err());
}

#[tokio::test]
async fn inventory_is_deterministic_and_lease_ids_too() {
    let run = || async {
        let sb = start(SandboxConfig {
            seed: 42,
            ..SandboxConfig::with_tokens([A])
        })
        .await;
        let a = client(&sb, A);
        let avail = a.available().await.unwrap();
        let id = a.create("+15550100000", BillingMethod::Monthly).await.unwrap().lease_id;
        sb.shutdown().await;
        (avail, id)
    };
    let (avail1, id1) = run().await;
    let (avail2, id2) = run().await;
    assert_eq!(avail1, avail2);
    assert_eq!(id1, id2);
}

#[tokio::test]
async fn timestamp_formats_decode_to_the_same_instants() {
    let mut seen = Vec::new();
    for fmt in [
        TimestampFormat::EpochSeconds,
        TimestampFormat::EpochMillis,
        TimestampFormat::Rfc3339,
    ] {
        let sb = start(SandboxConfig {
            timestamp_format: fmt,
            ..SandboxConfig::with_tokens([A])
        })
        .await;
        let rec = client(&sb, A).get("+15550100005").await.unwrap();
        seen.push(rec.created_at.unwrap());
        let raw: Value = http()
            .get(format!("{}/numbers/%2B15550100005", sb.base_url()))
            .header("Authorization", format!("Token {A}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let created = &raw["data"]["created_at"];
        match fmt {
            TimestampFormat::EpochSeconds => assert!(created.as_i64().unwrap() < 100_000_000_000),
            TimestampFormat::EpochMillis => assert!(created.as_i64().unwrap() > 100_000_000_000),
            TimestampFormat::Rfc3339 => assert!(created.as_str().unwrap().ends_with('Z')),
        }
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
}

#[tokio::test]
async fn wire_envelope_auth_and_errors() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let h = http();
    let base = sb.base_url();

    let resp = h
        .get(format!("{base}/numbers/leases"))
        .header("Authorization", format!("Token {A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("req_"));
    assert!(v["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(v["api_version"], "v2026.8.2");
    assert_eq!(v["object"], "response");
    assert_eq!(v["data"]["available"], 50);

    // Bearer, missing and unknown tokens are 401 with the error envelope.
    for auth in [Some(format!("Bearer {A}")), None, Some("Token nope".to_owned())] {
        let mut req = h.get(format!("{base}/numbers/leased"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let v: Value = resp.json().await.unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("err_"));
        assert_eq!(v["object"], "error");
        assert_eq!(v["data"]["status"], 401);
        assert!(v["data"]["error"].as_str().unwrap().len() > 5);
    }

    // A raw '+' in the path works too; a non-E.164 number is 400.
    let ok = h
        .get(format!("{base}/numbers/+15550100000"))
        .header("Authorization", format!("Token {A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = h
        .get(format!("{base}/numbers/5550100000"))
        .header("Authorization", format!("Token {A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Bad bodies are 400.
    for body in ["{", "[1]", r#"{"billing_method":"goodwill"}"#] {
        let resp = h
            .post(format!("{base}/numbers/lease/%2B15550100000"))
            .header("Authorization", format!("Token {A}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    // An empty body leases monthly.
    let resp = h
        .post(format!("{base}/numbers/lease/%2B15550100000"))
        .header("Authorization", format!("Token {A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"]["billing"]["method"], "monthly");
    assert_eq!(v["data"]["billing"]["period"]["end"], Value::Null);

    // Unknown paths: 404 envelope, recorded as op "unknown".
    let resp = h
        .get(format!("{base}/v1/numbers"))
        .header("Authorization", format!("Token {A}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "error");
    assert_eq!(sb.state().call_counts()["unknown"]["404"], 1);
}

#[tokio::test]
async fn entitlements_and_service_contracts() {
    let sb = start(SandboxConfig {
        inventory: InventorySpec {
            count: 0,
            numbers: vec![
                InventoryNumber {
                    requirements: vec!["imessage_entitlement_required".into()],
                    channels: vec!["imessage".into()],
                    ..InventoryNumber::new("+15550109000")
                },
                InventoryNumber {
                    status: "unavailable".into(),
                    ..InventoryNumber::new("+15550109001")
                },
                InventoryNumber::new("+15550109002"),
            ],
            ..InventorySpec::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let st = sb.state();
    st.add_account_with(AccountSpec {
        token: A.into(),
        entitlements: Some(vec![]),
        service_contract: false,
    })
    .unwrap();
    let a = client(&sb, A);
    let avail = a.available().await.unwrap();
    assert_eq!(avail.count, 1, "only the number A is eligible for");
    let e = a.create("+15550109000", BillingMethod::Monthly).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(
        e.agreement_url(),
        Some("https://api.contiguity.com/entitlements/imessage")
    );
    assert!(e.is_unauthorized());
    let e = a.create("+15550109001", BillingMethod::Monthly).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    let e = a
        .create("+15550109002", BillingMethod::ServiceContract)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    a.create("+15550109002", BillingMethod::Monthly).await.unwrap();
    // iMessage from a number without the channel is refused.
    let e = a
        .send_imessage(&IMessage {
            to: "someone@icloud.com".into(),
            message: Some("hi".into()),
            from: Some("+15550109002".into()),
            ..IMessage::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
}

#[tokio::test]
async fn lost_reply_on_terminate_applies_it() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let st = sb.state();
    let a = client(&sb, A);
    let n = "+15550100020";
    a.create(n, BillingMethod::Monthly).await.unwrap();
    st.lose_next_reply(Operation::Terminate, 1);
    let e = a.terminate(n).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert_eq!(st.leases()[0].status, LeaseStatus::Terminated);
    assert_eq!(st.count(Operation::Terminate, "dropped"), 1);
    // The next call on a fresh connection works.
    assert_eq!(a.get(n).await.unwrap().status, NumberStatus::Available);
}

#[tokio::test]
async fn random_faults_are_reproducible() {
    let run = || async {
        let sb = start(SandboxConfig {
            seed: 9,
            faults: Faults {
                error_rates: [(Operation::Get, 0.5)].into_iter().collect(),
                ..Faults::default()
            },
            ..SandboxConfig::with_tokens([A])
        })
        .await;
        let a = client(&sb, A);
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(a.get("+15550100000").await.is_ok());
        }
        // Other operations are unaffected.
        assert!(a.leased().await.is_ok());
        out
    };
    let first = run().await;
    assert_eq!(first, run().await);
    let oks = first.iter().filter(|b| **b).count();
    assert!((3..=17).contains(&oks), "{oks}");
}

#[tokio::test]
async fn admin_http_api() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let h = http();
    let base = sb.base_url();
    let a = client(&sb, A);
    let n = "+15550100030";
    a.create(n, BillingMethod::Monthly).await.unwrap();

    let health: Value = h
        .get(format!("{base}/_sandbox/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({ "ok": true }));

    let leases: Vec<LeaseRecord> = h
        .get(format!("{base}/_sandbox/leases"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].number, n);
    assert_eq!(leases[0].account, ApiToken::new(A.into()).fingerprint());

    let calls: Value = h
        .get(format!("{base}/_sandbox/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["total"], 1);
    assert_eq!(calls["counts"]["create"]["200"], 1);
    assert_eq!(calls["calls"][0]["path"], "/numbers/lease/%2B15550100030");
    let reset = h.post(format!("{base}/_sandbox/calls/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(sb.state().total_calls(), 0);

    // Faults: PUT replaces, one-shots queue.
    let put = h
        .put(format!("{base}/_sandbox/faults"))
        .json(&json!({ "error_rates": { "leased": 1.0 }, "error_status": 500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(a.leased().await.unwrap_err().status(), Some(500));
    h.put(format!("{base}/_sandbox/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(sb.state().faults(), Faults::default());
    let q = h
        .post(format!("{base}/_sandbox/faults/next"))
        .json(&json!({ "op": "get", "count": 1, "action": { "kind": "status", "status": 418 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 200);
    assert_eq!(
        sb.state().one_shots(),
        vec![OneShotFault {
            op: Operation::Get,
            count: 1,
            action: FaultAction::Status {
                status: 418,
                html: false
            }
        }]
    );
    assert_eq!(a.get(n).await.unwrap_err().status(), Some(418));
    let faults: Value = h
        .get(format!("{base}/_sandbox/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["one_shots"], json!([]));
    assert_eq!(faults["faults"]["error_status"], 503);

    // Out-of-band failover, expiry and termination.
    let r = h
        .post(format!("{base}/_sandbox/numbers/%2B15550100030/failover"))
        .json(&json!({ "enabled": true, "mode": "all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(a.get(n).await.unwrap().failover.unwrap().mode, Some(FailoverMode::All));
    let r: LeaseRecord = h
        .post(format!("{base}/_sandbox/numbers/%2B15550100030/expire"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r.status, LeaseStatus::Expired);
    let r: LeaseRecord = h
        .post(format!("{base}/_sandbox/numbers/%2B15550100030/terminate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r.status, LeaseStatus::Terminated);
    let again = h
        .post(format!("{base}/_sandbox/numbers/%2B15550100030/terminate"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // New accounts and numbers.
    let r: Value = h
        .post(format!("{base}/_sandbox/accounts"))
        .json(&json!({ "token": B }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["fingerprint"], ApiToken::new(B.into()).fingerprint());
    let r = h
        .post(format!("{base}/_sandbox/numbers"))
        .json(&json!([{ "number": "+447700900123", "country": "GB", "carrier": "International Partner", "currency": "GBP" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dup = h
        .post(format!("{base}/_sandbox/numbers"))
        .json(&json!({ "number": "+447700900123" }))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 400);
    let b = client(&sb, B);
    let lease = b.create("+447700900123", BillingMethod::Monthly).await.unwrap();
    assert_eq!(lease.billing.price.unwrap().currency.as_str(), "GBP");
    let numbers: Value = h
        .get(format!("{base}/_sandbox/numbers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers.as_array().unwrap().len(), 51);
    assert_eq!(numbers[50]["leased_by"], ApiToken::new(B.into()).fingerprint());
    let accounts: Value = h
        .get(format!("{base}/_sandbox/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 2);
    assert!(!accounts.to_string().contains(A));
    let msgs: Value = h
        .get(format!("{base}/_sandbox/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msgs, json!([]));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sb = start(SandboxConfig::with_tokens([A])).await;
    let base = sb.base_url();
    let a = client(&sb, A);
    a.get("+15550100000").await.unwrap();
    sb.shutdown().await;
    let fresh = client_for(&base);
    let e = fresh.get("+15550100000").await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
}

fn client_for(base: &str) -> ContiguityClient {
    let cfg = ClientConfig {
        base_url: base.to_owned(),
        timeout: Duration::from_secs(1),
        read_retries: 0,
        ..ClientConfig::default()
    };
    ContiguityClient::new(&cfg, ApiToken::new(A.into()), Arc::new(TokenLimiter::unlimited()), None).unwrap()
}
