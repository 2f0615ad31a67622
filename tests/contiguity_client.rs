//! The Contiguity client against an in-process sandbox over real loopback HTTP, plus decoding of
//! odd-but-valid payloads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contiguity_operator::contiguity::{
    ApiToken, BillingMethod, CallObserver, Carrier, Channel, ClientConfig, ClientPool, ContiguityClient, CreatedLease,
    Currency, Error, FailoverConfig, FailoverMode, FallbackWhen, IMessage, ImessageFallback, LeaseStatus, NumberList,
    NumberRecord, NumberStatus, Operation, Requirement, TerminatedLease, TextMessage, TokenLimiter,
    install_crypto_provider,
};
use contiguity_operator::sandbox::{
    ERR_ALREADY_LEASED, ERR_NOT_LEASED, ERR_NUMBER_NOT_FOUND, Faults, Sandbox, SandboxConfig, SandboxHandle,
};

const TOKEN_A: &str = "contiguity_sk_test_alpha_s3cr3t";
const TOKEN_B: &str = "contiguity_sk_test_bravo_s3cr3t";

async fn sandbox() -> SandboxHandle {
    sandbox_with(SandboxConfig::with_tokens([TOKEN_A, TOKEN_B])).await
}

async fn sandbox_with(cfg: SandboxConfig) -> SandboxHandle {
    install_crypto_provider();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Sandbox::start(cfg, addr).await.unwrap()
}

fn config(sb: &SandboxHandle) -> ClientConfig {
    ClientConfig {
        base_url: sb.base_url(),
        timeout: Duration::from_secs(2),
        rate_limit_per_sec: 1000.0,
        burst: 1000,
        read_retries: 3,
        retry_base_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_secs(3),
    }
}

fn client_with(cfg: &ClientConfig, token: &str) -> ContiguityClient {
    ContiguityClient::new(
        cfg,
        ApiToken::new(token.to_owned()),
        Arc::new(TokenLimiter::new(cfg.rate_limit_per_sec, cfg.burst)),
        None,
    )
    .unwrap()
}

fn client(sb: &SandboxHandle, token: &str) -> ContiguityClient {
    client_with(&config(sb), token)
}

fn outcomes(sb: &SandboxHandle, op: Operation) -> Vec<String> {
    sb.state().calls_of(op).into_iter().map(|c| c.outcome).collect()
}

#[tokio::test]
async fn every_operation_round_trips() {
    let sb = sandbox().await;
    let st = sb.state();
    let c = client(&sb, TOKEN_A);
    let numbers = st.inventory_numbers();
    assert_eq!(numbers.len(), 50);
    assert_eq!(numbers[0], "+15550100000");
    let n = numbers[0].as_str();
    let n2 = numbers[1].as_str();

    let avail = c.available().await.unwrap();
    assert_eq!(avail.count, 50);
    assert_eq!(avail.numbers.len(), 50);
    assert_eq!(avail.numbers[0].id, n);

    let rec = c.get(n).await.unwrap();
    assert_eq!(rec.id, n);
    assert_eq!(rec.status, NumberStatus::Available);
    assert_eq!(rec.number.as_ref().unwrap().formatted, "+1 (555) 010-0000");
    assert_eq!(rec.pricing.as_ref().unwrap().currency, Currency::Usd);
    assert_eq!(
        rec.created_at.unwrap().as_epoch_seconds() % 86_400,
        1_718_851_200 % 86_400
    );
    assert!(!rec.is_leased_by_us());
    assert!(rec.carrier.is_known());

    let created = c.create(n, BillingMethod::Monthly).await.unwrap();
    assert!(created.lease_id.starts_with("lsd_"), "{}", created.lease_id);
    assert_eq!(created.number, n);
    assert_eq!(created.status, LeaseStatus::Active);
    assert_eq!(created.billing.method, BillingMethod::Monthly);
    assert_eq!(
        created.billing.price.as_ref().unwrap().monthly_rate,
        rec.pricing.as_ref().unwrap().monthly_rate
    );
    let period = created.billing.period.clone().unwrap();
    assert!(period.start.is_some());
    assert_eq!(period.end, None);

    let rec = c.get(n).await.unwrap();
    assert_eq!(rec.status, NumberStatus::Leased);
    assert!(rec.is_leased_by_us());
    assert_eq!(rec.lease_id.as_deref(), Some(created.lease_id.as_str()));
    assert_eq!(rec.lease_status, Some(LeaseStatus::Active));
    assert_eq!(rec.billing.as_ref().unwrap().method, BillingMethod::Monthly);

    let leased = c.leased().await.unwrap();
    assert_eq!(leased.count, 1);
    assert_eq!(leased.numbers[0].id, n);
    assert_eq!(leased.numbers[0].lease_id, rec.lease_id);
    assert_eq!(c.available().await.unwrap().count, 49);

    let details = c.details(n).await.unwrap();
    assert_eq!(details.lease_id, rec.lease_id);

    let fo = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::Selective),
        numbers: vec![n2.to_owned()],
    };
    let conf = c.configure(n, &fo).await.unwrap();
    assert_eq!(conf.number, n);
    assert_eq!(conf.failover.as_ref(), Some(&fo));
    assert_eq!(c.get(n).await.unwrap().failover, Some(fo.clone()));
    assert_eq!(st.current_lease(n).unwrap().failover, Some(fo));

    let sent = c
        .send_text(&TextMessage {
            to: "+13059478667".into(),
            message: Some("hello".into()),
            from: Some(n.to_owned()),
            ..TextMessage::default()
        })
        .await
        .unwrap();
    assert!(sent.message_id.starts_with("text_"), "{}", sent.message_id);

    // An iMessage-capable number for the iMessage send.
    let im = avail
        .numbers
        .iter()
        .find(|r| r.capabilities.channels.contains(&Channel::Imessage))
        .map(|r| r.id.clone())
        .expect("the default inventory has iMessage numbers");
    c.create(&im, BillingMethod::Monthly).await.unwrap();
    let sent = c
        .send_imessage(&IMessage {
            to: "+13059478667".into(),
            message: Some("**hi**".into()),
            from: Some(im.clone()),
            fallback: Some(ImessageFallback {
                when: vec![FallbackWhen::ImessageUnsupported],
                from: Some(n.to_owned()),
            }),
            ..IMessage::default()
        })
        .await
        .unwrap();
    assert!(sent.message_id.starts_with("imsg_"), "{}", sent.message_id);
    let msgs = st.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].request["fallback"]["when"][0], "imessage_unsupported");

    let t = c.terminate(n).await.unwrap();
    assert_eq!(t.lease_id, created.lease_id);
    assert_eq!(t.number_id, n);
    assert_eq!(t.status, LeaseStatus::Terminated);
    assert!(t.terminated_at.is_some());
    let rec = c.get(n).await.unwrap();
    assert_eq!(rec.status, NumberStatus::Available);
    assert!(!rec.is_leased_by_us());
    assert_eq!(rec.failover, None);

    // Wire details: percent-encoded numbers, Token auth recorded per account.
    let gets = st.calls_of(Operation::Get);
    assert_eq!(gets[0].path, "/numbers/%2B15550100000");
    assert_eq!(gets[0].method, "GET");
    assert_eq!(
        gets[0].account.as_deref(),
        Some(ApiToken::new(TOKEN_A.into()).fingerprint().as_str())
    );
    assert_eq!(st.calls_of(Operation::Create)[0].path, "/numbers/lease/%2B15550100000");
    assert_eq!(
        st.calls_of(Operation::Configure)[0].path,
        "/numbers/%2B15550100000/configure"
    );
    assert_eq!(
        st.calls_of(Operation::Terminate)[0].path,
        "/numbers/leased/%2B15550100000"
    );
    assert!(st.calls().iter().all(|c| c.status() == Some(200)));
    assert!(
        st.calls()
            .iter()
            .all(|c| { c.request_id.as_deref().is_some_and(|id| id.starts_with("req_")) })
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_token_is_401_and_not_retried() {
    let sb = sandbox().await;
    let c = client(&sb, "contiguity_sk_not_an_account");
    let e = c.get("+15550100000").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.is_unauthorized());
    assert!(!e.is_transient());
    assert_eq!(e.category(), "unauthorized");
    assert!(e.request_id().unwrap().starts_with("err_"));
    assert_eq!(outcomes(&sb, Operation::Get), vec!["401"]);
    assert_eq!(sb.state().calls()[0].account, None);
}

#[tokio::test]
async fn unknown_number_is_404() {
    let sb = sandbox().await;
    let c = client(&sb, TOKEN_A);
    let n = "+19998887777";
    let e = c.get(n).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.api_message(), Some(ERR_NUMBER_NOT_FOUND));
    assert!(c.create(n, BillingMethod::Monthly).await.unwrap_err().is_not_found());
    assert!(c.terminate(n).await.unwrap_err().is_not_found());
    // details falls back to the legacy path, then returns the first 404.
    let e = c.details(n).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.operation(), Some(Operation::Get));
    assert_eq!(outcomes(&sb, Operation::Details), vec!["404"]);
    assert_eq!(outcomes(&sb, Operation::Get), vec!["404", "404"]);
}

#[tokio::test]
async fn invalid_numbers_are_refused_locally() {
    let sb = sandbox().await;
    let c = client(&sb, TOKEN_A);
    for bad in ["15550100000", "+0555", "+1", "+1555abc", "+1234567890123456"] {
        assert!(matches!(c.get(bad).await, Err(Error::InvalidNumber { .. })), "{bad}");
        assert!(matches!(
            c.create(bad, BillingMethod::Monthly).await,
            Err(Error::InvalidNumber { .. })
        ));
    }
    let fo = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::Selective),
        numbers: vec!["nope".into()],
    };
    assert!(matches!(
        c.configure("+15550100000", &fo).await,
        Err(Error::InvalidNumber { .. })
    ));
    assert_eq!(sb.state().total_calls(), 0);
}

#[tokio::test]
async fn already_leased_by_another_account_and_by_us() {
    let sb = sandbox().await;
    let a = client(&sb, TOKEN_A);
    let b = client(&sb, TOKEN_B);
    let n = "+15550100003";
    let lease = a.create(n, BillingMethod::Monthly).await.unwrap();

    let e = b.create(n, BillingMethod::Monthly).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.api_message(), Some(ERR_ALREADY_LEASED));
    assert!(e.is_already_leased());
    assert!(!e.is_transient());

    let e = a.create(n, BillingMethod::ServiceContract).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.is_already_leased());

    // B sees "leased" without lease fields and cannot touch it.
    let rec = b.get(n).await.unwrap();
    assert_eq!(rec.status, NumberStatus::Leased);
    assert!(!rec.is_leased_by_us());
    assert_eq!(rec.lease_status, None);
    assert_eq!(rec.billing, None);
    let e = b.terminate(n).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.api_message(), Some(ERR_NOT_LEASED));
    assert_eq!(b.leased().await.unwrap().count, 0);
    // Still exactly one lease, A's.
    let leases = sb.state().leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].lease_id, lease.lease_id);
}

#[tokio::test]
async fn get_retries_5xx_then_succeeds() {
    let sb = sandbox().await;
    let c = client(&sb, TOKEN_A);
    sb.state().fail_next(Operation::Get, 2, 503);
    let rec = c.get("+15550100000").await.unwrap();
    assert_eq!(rec.id, "+15550100000");
    assert_eq!(outcomes(&sb, Operation::Get), vec!["503", "503", "200"]);

    // Retries are bounded by read_retries.
    sb.state().fail_next(Operation::Leased, 10, 500);
    let e = c.leased().await.unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(e.is_transient());
    assert_eq!(outcomes(&sb, Operation::Leased).len(), 4);
}

#[tokio::test]
async fn mutations_are_not_retried_on_5xx() {
    let sb = sandbox().await;
    let c = client(&sb, TOKEN_A);
    let st = sb.state();
    let n = "+15550100001";
    st.fail_next(Operation::Create, 1, 503);
    let e = c.create(n, BillingMethod::Monthly).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert!(e.is_transient());
    assert_eq!(outcomes(&sb, Operation::Create), vec!["503"]);
    assert!(st.leases().is_empty());

    c.create(n, BillingMethod::Monthly).await.unwrap();
    st.fail_next(Operation::Terminate, 1, 500);
    assert_eq!(c.terminate(n).await.unwrap_err().status(), Some(500));
    assert_eq!(outcomes(&sb, Operation::Terminate), vec!["500"]);
    st.fail_next(Operation::Configure, 1, 503);
    let fo = FailoverConfig {
        enabled: true,
        mode: Some(FailoverMode::All),
        numbers: vec![],
    };
    assert_eq!(c.configure(n, &fo).await.unwrap_err().status(), Some(503));
    assert_eq!(outcomes(&sb, Operation::Configure), vec!["503"]);
    st.fail_next(Operation::SendText, 1, 503);
    let msg = TextMessage {
        to: "+13059478667".into(),
        message: Some("x".into()),
        from: Some(n.into()),
        ..TextMessage::default()
    };
    assert_eq!(c.send_text(&msg).await.unwrap_err().status(), Some(503));
    assert_eq!(outcomes(&sb, Operation::SendText), vec!["503"]);
    assert!(st.messages().is_empty());
}

#[tokio::test]
async fn retry_after_gate_is_shared_per_token_only() {
    let sb = sandbox().await;
    let st = sb.state();
    let cfg = ClientConfig {
        read_retries: 0,
        ..config(&sb)
    };
    let pool = ClientPool::new(cfg, None);
    let a1 = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    let a2 = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    let b = pool.client(ApiToken::new(TOKEN_B.into())).unwrap();
    assert!(Arc::ptr_eq(a1.limiter(), a2.limiter()));
    assert!(!Arc::ptr_eq(a1.limiter(), b.limiter()));

    st.fail_next(Operation::Get, 1, 429);
    let t0 = Instant::now();
    let e = a1.get("+15550100000").await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.is_rate_limited() && e.is_transient());

    // The other client of the same token fails fast without sending.
    let e = a2.get("+15550100000").await.unwrap_err();
    assert!(matches!(e, Error::LocalRateLimited { .. }), "{e:?}");
    assert!(e.retry_after().unwrap() > Duration::from_millis(800));
    assert_eq!(e.category(), "local_rate_limited");
    let e = a2.create("+15550100000", BillingMethod::Monthly).await.unwrap_err();
    assert!(matches!(e, Error::LocalRateLimited { .. }));
    // Another token is not affected.
    b.get("+15550100000").await.unwrap();

    let fp_a = ApiToken::new(TOKEN_A.into()).fingerprint();
    let calls_a = |st: &contiguity_operator::sandbox::SandboxState| {
        st.calls()
            .into_iter()
            .filter(|c| c.account.as_deref() == Some(fp_a.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(calls_a(&st).len(), 1);

    // After Retry-After, calls go through again.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    a2.get("+15550100000").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let calls = calls_a(&st);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, "429");
    assert_eq!(calls[1].outcome, "200");
    assert!(calls[1].started_at_ms - calls[0].started_at_ms >= 1000);
    assert!(
        st.calls()
            .iter()
            .all(|c| !c.before_retry_after && !c.in_retry_after_window)
    );
}

#[tokio::test]
async fn reads_wait_out_retry_after() {
    let sb = sandbox().await;
    let st = sb.state();
    let c = client(&sb, TOKEN_A);
    st.fail_next(Operation::Get, 1, 429);
    let t0 = Instant::now();
    c.get("+15550100000").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let calls = st.calls_of(Operation::Get);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, "429");
    assert_eq!(calls[1].outcome, "200");
    assert!(calls[1].started_at_ms - calls[0].started_at_ms >= 1000);
    assert!(!calls[1].before_retry_after && !calls[1].in_retry_after_window);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_rate_limit_is_honoured_under_concurrency() {
    let sb = sandbox_with(SandboxConfig {
        faults: Faults {
            rate_limit_per_sec: Some(5.0),
            rate_limit_burst: Some(5),
            retry_after_secs: 1,
            ..Faults::default()
        },
        ..SandboxConfig::with_tokens([TOKEN_A])
    })
    .await;
    let st = sb.state();
    let pool = ClientPool::new(config(&sb), None);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
        tasks.push(tokio::spawn(async move { c.get(&format!("+155501000{i:02}")).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = st.calls_of(Operation::Get);
    let limited = calls.iter().filter(|c| c.outcome == "429").count();
    assert!(limited >= 1, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.outcome == "200").count(), 8);
    assert!(calls.iter().all(|c| !c.before_retry_after), "{calls:?}");
}

#[tokio::test]
async fn client_bucket_is_shared_by_clients_of_a_token() {
    let sb = sandbox().await;
    let pool = ClientPool::new(
        ClientConfig {
            rate_limit_per_sec: 5.0,
            burst: 2,
            ..config(&sb)
        },
        None,
    );
    let a1 = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    let a2 = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    let b = pool.client(ApiToken::new(TOKEN_B.into())).unwrap();
    let t0 = Instant::now();
    // 2 burst + 4 paced at 5/s => >= 800 ms.
    for _ in 0..3 {
        a1.get("+15550100000").await.unwrap();
        a2.get("+15550100000").await.unwrap();
    }
    let a_elapsed = t0.elapsed();
    assert!(a_elapsed >= Duration::from_millis(780), "{a_elapsed:?}");
    // Token B has its own bucket: its burst is untouched (sharing A's would wait >= 400 ms).
    let t1 = Instant::now();
    b.get("+15550100000").await.unwrap();
    b.get("+15550100000").await.unwrap();
    let b_elapsed = t1.elapsed();
    assert!(b_elapsed < Duration::from_millis(300), "{b_elapsed:?}");
}

#[tokio::test]
async fn non_json_502_body_is_tolerated() {
    let sb = sandbox().await;
    let c = client_with(
        &ClientConfig {
            read_retries: 0,
            ..config(&sb)
        },
        TOKEN_A,
    );
    sb.state().fail_next(Operation::Get, 1, 502);
    let e = c.get("+15550100000").await.unwrap_err();
    assert_eq!(e.status(), Some(502));
    assert_eq!(e.api_message(), Some("Bad Gateway (non-JSON body)"));
    assert_eq!(e.request_id(), None);
    assert!(e.is_transient());
    assert_eq!(e.category(), "server_error");
    // With retries the read recovers.
    sb.state().fail_next(Operation::Get, 1, 502);
    client(&sb, TOKEN_A).get("+15550100000").await.unwrap();
}

#[tokio::test]
async fn lost_reply_on_create_leaves_the_lease() {
    let sb = sandbox().await;
    let st = sb.state();
    let c = client(&sb, TOKEN_A);
    let n = "+15550100007";
    st.lose_next_reply(Operation::Create, 1);
    let t0 = Instant::now();
    let e = c.create(n, BillingMethod::Monthly).await.unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "the connection should drop, not time out"
    );
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.is_transient() && e.is_ambiguous());
    assert_eq!(outcomes(&sb, Operation::Create), vec!["dropped"]);
    let leases = st.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].number, n);
    assert_eq!(leases[0].status, LeaseStatus::Active);
    // Reconcile: the lease is ours.
    let rec = c.get(n).await.unwrap();
    assert!(rec.is_leased_by_us());
    assert_eq!(rec.lease_id.as_deref(), Some(leases[0].lease_id.as_str()));
    assert!(
        c.create(n, BillingMethod::Monthly)
            .await
            .unwrap_err()
            .is_already_leased()
    );

    // Same for terminate and configure.
    st.lose_next_reply(Operation::Configure, 1);
    let fo = FailoverConfig {
        enabled: true,
        mode: None,
        numbers: vec![],
    };
    assert!(c.configure(n, &fo).await.unwrap_err().is_ambiguous());
    assert_eq!(st.current_lease(n).unwrap().failover, Some(fo));
    st.lose_next_reply(Operation::Terminate, 1);
    assert!(c.terminate(n).await.unwrap_err().is_ambiguous());
    assert!(st.current_lease(n).is_none());
    assert!(c.terminate(n).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn timeouts() {
    let sb = sandbox().await;
    let st = sb.state();
    let cfg = ClientConfig {
        timeout: Duration::from_millis(300),
        read_retries: 0,
        ..config(&sb)
    };
    let c = client_with(&cfg, TOKEN_A);
    st.delay_next(Operation::Get, 1, Duration::from_millis(1000));
    let t0 = Instant::now();
    let e = c.get("+15550100000").await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(e.category(), "timeout");
    assert!(e.is_transient());
    assert!(t0.elapsed() < Duration::from_millis(900));

    // A read retries a timeout.
    let c = client_with(
        &ClientConfig {
            read_retries: 1,
            ..cfg.clone()
        },
        TOKEN_A,
    );
    st.delay_next(Operation::Get, 1, Duration::from_millis(1000));
    c.get("+15550100000").await.unwrap();

    // Latency above the timeout on a create: Timeout, not retried.
    st.set_faults(Faults {
        latency_ms: 600,
        ..Faults::default()
    });
    let e = c.create("+15550100002", BillingMethod::Monthly).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    st.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The client hung up during the injected latency: hyper drops the handler, nothing applied.
    assert_eq!(outcomes(&sb, Operation::Create), vec!["cancelled"]);
    assert!(st.leases().is_empty());
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Operation, String)>>);

impl CallObserver for Recorder {
    fn observe(&self, op: Operation, outcome: &str, _elapsed: Duration) {
        self.0.lock().unwrap().push((op, outcome.to_owned()));
    }
}

#[tokio::test]
async fn observer_sees_every_attempt() {
    let sb = sandbox().await;
    let rec = Arc::new(Recorder::default());
    let pool = ClientPool::new(config(&sb), Some(rec.clone()));
    let c = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    sb.state().fail_next(Operation::Get, 1, 503);
    c.get("+15550100000").await.unwrap();
    c.create("+15550100000", BillingMethod::Monthly).await.unwrap();
    sb.state().lose_next_reply(Operation::Terminate, 1);
    let _ = c.terminate("+15550100000").await;
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Operation::Get, "503".to_owned()),
            (Operation::Get, "200".to_owned()),
            (Operation::Create, "200".to_owned()),
            (Operation::Terminate, "transport".to_owned()),
        ]
    );
    for op in Operation::ALL {
        assert!(op.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
}

#[tokio::test]
async fn token_never_appears_in_debug_or_errors() {
    let sb = sandbox().await;
    let c = client(&sb, TOKEN_A);
    let bad = client(&sb, "contiguity_sk_wrong_s3cr3t");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("ApiToken(***)"));
    let e = bad.get("+15550100000").await.unwrap_err();
    for s in [format!("{e:?}"), format!("{e}")] {
        assert!(!s.contains("s3cr3t"), "{s}");
    }
    sb.state().lose_next_reply(Operation::Create, 1);
    let e = c.create("+15550100000", BillingMethod::Monthly).await.unwrap_err();
    for s in [format!("{e:?}"), format!("{e}")] {
        assert!(!s.contains("s3cr3t"), "{s}");
    }
    let pool = ClientPool::new(config(&sb), None);
    let _ = pool.client(ApiToken::new(TOKEN_A.into())).unwrap();
    assert!(!format!("{pool:?}").contains("s3cr3t"));
    assert!(!format!("{:?}", SandboxConfig::with_tokens([TOKEN_A])).contains("s3cr3t"));
}

#[tokio::test]
async fn empty_lists_answered_404_are_empty() {
    let sb = sandbox_with(SandboxConfig {
        faults: Faults {
            empty_lists_404: true,
            ..Faults::default()
        },
        ..SandboxConfig::with_tokens([TOKEN_A])
    })
    .await;
    let c = client(&sb, TOKEN_A);
    let l = c.leased().await.unwrap();
    assert_eq!(l, NumberList::default());
    assert_eq!(outcomes(&sb, Operation::Leased), vec!["404"]);
}

#[tokio::test]
async fn missing_crypto_provider_or_bad_config_is_an_error_not_a_panic() {
    install_crypto_provider();
    let limiter = Arc::new(TokenLimiter::unlimited());
    let bad_url = ClientConfig {
        base_url: "api.contiguity.com".into(),
        ..ClientConfig::default()
    };
    assert!(matches!(
        ContiguityClient::new(&bad_url, ApiToken::new("x".into()), limiter.clone(), None),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        ContiguityClient::new(&ClientConfig::default(), ApiToken::new("  ".into()), limiter, None),
        Err(Error::Config(_))
    ));
}

// ---------------------------------------------------------------- decoding odd-but-valid payloads

fn record(json: &str) -> NumberRecord {
    serde_json::from_str(json).unwrap()
}

#[test]
fn decodes_records_with_every_timestamp_form() {
    let base = r#"{"id":"+13059478667","status":"leased","number":{"e164":"+13059478667","formatted":"+1 (305) 947-8667"},
        "location":{"country":"US","region":"FL","city":"Miami"},"carrier":"T-Mobile",
        "capabilities":{"intl_sms":true,"channels":["sms","mms","rcs","imessage","whatsapp"]},
        "health":{"reputation":0.91,"previous_owners":2},
        "data":{"requirements":["imessage_entitlement_required"],"e911_capable":true},
        "pricing":{"currency":"USD","upfront_fee":2.99,"monthly_rate":19.99},
        "lease_id":"lsd_1234567890","lease_status":"paused",
        "billing":{"method":"goodwill","period":{"start":START,"end":null}},
        "created_at":CREATED}"#;
    let forms = [
        ("1718851200", "1718851200"),
        ("1718851200000", "1718851200000"),
        ("\"2024-06-20T02:40:00.000Z\"", "\"2024-06-20T02:40:00Z\""),
    ];
    let mut decoded = Vec::new();
    for (created, start) in forms {
        let r = record(&base.replace("CREATED", created).replace("START", start));
        assert_eq!(r.created_at.unwrap().as_epoch_seconds(), 1_718_851_200);
        let billing = r.billing.clone().unwrap();
        assert_eq!(billing.method, BillingMethod::Goodwill);
        let period = billing.period.unwrap();
        assert_eq!(period.start.unwrap().to_string(), "2024-06-20T02:40:00Z");
        assert_eq!(period.end, None);
        assert_eq!(r.lease_status, Some(LeaseStatus::Paused));
        assert_eq!(r.carrier, Carrier::TMobile);
        assert_eq!(r.capabilities.channels.len(), 5);
        assert_eq!(r.capabilities.channels[4], Channel::Whatsapp);
        assert_eq!(r.data.requirements, vec![Requirement::ImessageEntitlementRequired]);
        assert_eq!(r.health.previous_owners, 2);
        assert!(r.is_leased_by_us());
        decoded.push(r);
    }
    assert_eq!(decoded[0], decoded[1]);
    assert_eq!(decoded[1], decoded[2]);
}

#[test]
fn keeps_unknown_enum_values() {
    let r = record(
        r#"{"id":"+447700900123","status":"reserved","carrier":"Sprint",
        "capabilities":{"intl_sms":false,"channels":["sms","telegram"]},
        "data":{"requirements":["kyc_required"]},
        "pricing":{"currency":"JPY","upfront_fee":0,"monthly_rate":500},
        "lease_id":"lease_1","lease_status":"suspended","billing":{"method":"prepaid"}}"#,
    );
    assert_eq!(r.status, NumberStatus::Unknown("reserved".into()));
    assert_eq!(r.carrier, Carrier::Unknown("Sprint".into()));
    assert_eq!(r.carrier.as_str(), "Sprint");
    assert_eq!(r.capabilities.channels[1], Channel::Unknown("telegram".into()));
    assert_eq!(r.data.requirements[0], Requirement::Unknown("kyc_required".into()));
    assert_eq!(r.pricing.as_ref().unwrap().currency, Currency::Unknown("JPY".into()));
    assert_eq!(r.lease_status, Some(LeaseStatus::Unknown("suspended".into())));
    assert_eq!(
        r.billing.as_ref().unwrap().method,
        BillingMethod::Unknown("prepaid".into())
    );
    // Unknown values survive a round trip.
    let back: NumberRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let g: NumberStatus = serde_json::from_str("\"g-available\"").unwrap();
    assert_eq!(g, NumberStatus::GAvailable);
    assert_eq!(g.as_str(), "g-available");
}

#[test]
fn tolerates_missing_optional_fields() {
    let r = record(r#"{"id":"+15550100000","status":"available","data":{}}"#);
    assert_eq!(r.id, "+15550100000");
    assert_eq!(r.status, NumberStatus::Available);
    assert!(r.number.is_none() && r.pricing.is_none() && r.created_at.is_none());
    assert!(r.data.requirements.is_empty());
    assert!(!r.data.e911_capable);
    assert!(!r.is_leased_by_us());
    assert_eq!(r.e164(), "+15550100000");
    let r = record(
        r#"{"id":"+15550100000","carrier":null,"created_at":null,"billing":{"method":"monthly","period":{"start":1718851200}}}"#,
    );
    assert_eq!(r.carrier, Carrier::Unknown(String::new()));
    let p = r.billing.unwrap().period.unwrap();
    assert!(p.start.is_some() && p.end.is_none());

    let list: NumberList = serde_json::from_str(r#"{"leased":0,"numbers":[]}"#).unwrap();
    assert_eq!(list.count, 0);
}

#[test]
fn decodes_create_terminate_and_configure_payloads() {
    let c: CreatedLease = serde_json::from_str(
        r#"{"lease_id":"lsd_1234567890","number":"+13059478667","status":"active",
        "billing":{"method":"service_contract","price":{"currency":"EUR","monthly_rate":19.99,"upfront_fee":2.99},
        "period":{"start":1718851200,"end":"2025-06-20T02:40:00Z"}}}"#,
    )
    .unwrap();
    assert_eq!(c.billing.method, BillingMethod::ServiceContract);
    assert_eq!(c.billing.price.unwrap().currency, Currency::Eur);
    assert_eq!(c.billing.period.unwrap().end.unwrap().as_epoch_seconds(), 1_750_387_200);
    // No price, no period.
    let c: CreatedLease = serde_json::from_str(
        r#"{"lease_id":"lsd_1","number":"+13059478667","status":"pending","billing":{"method":"monthly"}}"#,
    )
    .unwrap();
    assert_eq!(c.status, LeaseStatus::Unknown("pending".into()));
    assert!(c.billing.price.is_none() && c.billing.period.is_none());

    for at in ["1718851200", "\"2024-06-20T02:40:00Z\"", "1718851200000"] {
        let t: TerminatedLease = serde_json::from_str(&format!(
            r#"{{"lease_id":"lsd_1","number_id":"+13059478667","status":"terminated","terminated_at":{at}}}"#
        ))
        .unwrap();
        assert_eq!(t.status, LeaseStatus::Terminated);
        assert_eq!(t.terminated_at.unwrap().as_epoch_seconds(), 1_718_851_200);
    }
    let r: contiguity_operator::contiguity::ConfigureResult = serde_json::from_str(
        r#"{"number":"+13059478667","failover":{"enabled":true,"mode":"selective","numbers":["+13059478668"]}}"#,
    )
    .unwrap();
    assert_eq!(r.failover.unwrap().mode, Some(FailoverMode::Selective));
    let r: contiguity_operator::contiguity::ConfigureResult =
        serde_json::from_str(r#"{"number":"+13059478667"}"#).unwrap();
    assert!(r.failover.is_none());
}

#[test]
fn messages_serialize_like_the_wire() {
    let m = IMessage {
        to: "+13059478667".into(),
        message: Some("hi".into()),
        from: Some("+15550100000".into()),
        fallback: Some(ImessageFallback {
            when: vec![FallbackWhen::ImessageUnsupported, FallbackWhen::ImessageFails],
            from: None,
        }),
        ..IMessage::default()
    };
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"to":"+13059478667","message":"hi","from":"+15550100000","fallback":{"when":["imessage_unsupported","imessage_fails"]}}"#
    );
    let t = TextMessage {
        to: "+13059478667".into(),
        message: Some("hi".into()),
        ..TextMessage::default()
    };
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"to":"+13059478667","message":"hi"}"#
    );
}

// ---------------------------------------------------------------- both error envelopes over HTTP

/// A one-route server answering every request with a fixed status, content type and body.
async fn fixture(status: u16, content_type: &'static str, body: &'static str) -> String {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [
                (header::CONTENT_TYPE, content_type),
                (header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT"),
            ],
            body,
        )
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn both_error_envelopes_over_http() {
    install_crypto_provider();
    let cfg = |base: String| ClientConfig {
        base_url: base,
        read_retries: 0,
        ..ClientConfig::default()
    };
    let base = fixture(
        403,
        "application/json",
        r#"{"id":"err_x1","timestamp":1785698220563,"api_version":"v2026.8.2","object":"error","data":{"error":"Fast Track terms not accepted","status":403,"agreement_url":"https://api.contiguity.com/entitlements/fast_track"}}"#,
    )
    .await;
    let e = client_with(&cfg(base), TOKEN_A)
        .send_text(&TextMessage {
            to: "+13059478667".into(),
            message: Some("x".into()),
            fast_track: Some(true),
            ..TextMessage::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.request_id(), Some("err_x1"));
    assert_eq!(e.api_message(), Some("Fast Track terms not accepted"));
    assert_eq!(
        e.agreement_url(),
        Some("https://api.contiguity.com/entitlements/fast_track")
    );
    // A past HTTP-date Retry-After is zero.
    assert_eq!(e.retry_after(), Some(Duration::ZERO));

    let base = fixture(400, "application/json", r#"{"message":"Bad Request","status":400}"#).await;
    let e = client_with(&cfg(base), TOKEN_A).leased().await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.api_message(), Some("Bad Request"));
    assert_eq!(e.request_id(), None);

    // A 200 that is not an envelope is a decode error.
    let base = fixture(200, "application/json", r#"{"unexpected":true}"#).await;
    let e = client_with(&cfg(base), TOKEN_A).get("+13059478667").await.unwrap_err();
    assert!(matches!(e, Error::Decode { status: 200, .. }), "{e:?}");
    assert_eq!(e.category(), "decode");
}
