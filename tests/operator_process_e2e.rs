//! The operator process: /metrics, /livez, /readyz, leader election between two replicas and
//! graceful shutdown.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

const T: Duration = Duration::from_secs(60);

/// Parses the Prometheus text format strictly enough to catch malformed output:
/// `name{label="value",...} number` per sample line, `# HELP`/`# TYPE`/`# EOF` comments.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE ") || rest.starts_with("UNIT ") || rest == "EOF",
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served() {
    let mut env = Env::start("process-metrics").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "m", json!({"number": number})).await;
    let nl = wait_obj(&env.leases(), "m", "Ready", T, nl_is_ready).await;
    let rate = nl
        .status
        .and_then(|s| s.billing)
        .and_then(|b| b.monthly_rate)
        .expect("rate");
    let op = env.operator();
    assert_eq!(op.http_get("/livez").await.map(|r| r.0), Some(200));
    assert_eq!(op.http_get("/readyz").await.map(|r| r.0), Some(200));
    let (status, body) = op.http_get("/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    let m = parse_metrics(&body);
    let get = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("missing {k} in\n{body}"));
    assert!(get(r#"contiguity_operator_reconciles_total{kind="NumberLease",result="ok"}"#) >= 1.0);
    assert_eq!(
        get(r#"contiguity_operator_contiguity_calls_total{operation="create",status="200"}"#),
        1.0
    );
    assert_eq!(
        get(r#"contiguity_operator_contiguity_calls_total{operation="get",status="200"}"#),
        1.0
    );
    assert_eq!(get(r#"contiguity_operator_leases{state="active"}"#), 1.0);
    let spend = get(r#"contiguity_operator_committed_monthly_spend{currency="USD"}"#);
    assert!(
        (spend - rate.parse::<f64>().expect("rate")).abs() < 0.001,
        "{spend} vs {rate}"
    );
    assert!(get(r#"contiguity_operator_reconcile_duration_seconds_count{kind="NumberLease"}"#) >= 1.0);
    assert!(
        m.keys()
            .any(|k| k.starts_with("contiguity_operator_contiguity_rate_limited_total"))
    );
}

fn leader_env(ns: &str, lease: &str) -> Vec<(String, String)> {
    vec![
        ("LEADER_ELECT".into(), "true".into()),
        ("LEADER_ELECTION_NAMESPACE".into(), ns.into()),
        ("LEADER_ELECTION_LEASE_NAME".into(), lease.into()),
        ("LEADER_ELECTION_LEASE_DURATION".into(), "4s".into()),
    ]
}

async fn holder(env: &Env, name: &str) -> Option<String> {
    let leases: kube::Api<Lease> = kube::Api::namespaced(env.client.clone(), &env.ns);
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn reconciles(op: &Operator) -> f64 {
    let Some((_, body)) = op.http_get("/metrics").await else {
        return 0.0;
    };
    parse_metrics(&body)
        .iter()
        .filter(|(k, _)| k.starts_with("contiguity_operator_reconciles_total{kind=\"NumberLease\""))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_leads_and_the_other_takes_over() {
    let mut env = Env::start_with(
        "process-leader",
        OperatorOpts {
            extra_env: leader_env("placeholder", "unused"),
            ..Default::default()
        },
        0,
    )
    .await;
    // Restart the first replica with the real lease settings, then start a second one.
    let ns = env.ns.clone();
    let mut extra_env = leader_env(&ns, "contiguity-operator-test");
    extra_env.push(("POD_NAME".into(), "replica-a".into()));
    let opts = OperatorOpts {
        extra_env,
        ..Default::default()
    };
    env.start_operator(opts.clone());
    wait_for("replica-a leads", T, || async {
        (holder(&env, "contiguity-operator-test").await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let mut b_env = vec![
        ("CONTIGUITY_BASE_URL".to_string(), env.sandbox.base_url()),
        ("CONTIGUITY_TOKEN".to_string(), TOKEN.to_string()),
        ("WATCH_NAMESPACES".to_string(), env.ns.clone()),
        ("POD_NAME".to_string(), "replica-b".to_string()),
    ];
    b_env.extend(leader_env(&ns, "contiguity-operator-test"));
    let mut b = Operator::start(&format!("{ns}-b"), Vec::new(), b_env);
    let nums = env.numbers(2);
    create_lease(&env.leases(), "one", json!({"number": nums[0]})).await;
    wait_obj(&env.leases(), "one", "Ready", T, nl_is_ready).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a_count = reconciles(env.operator()).await;
    let b_count = reconciles(&b).await;
    assert!(
        a_count >= 1.0 && b_count == 0.0,
        "leader {a_count} reconciles, standby {b_count}"
    );
    let (code, body) = b.http_get("/readyz").await.expect("readyz");
    assert_eq!(code, 200, "a standby must stay ready so rollouts proceed");
    assert!(body.contains("standby"), "{body}");
    // The leader dies without releasing its lease: the standby takes over within the duration.
    env.operator().kill();
    let killed = Instant::now();
    wait_for("replica-b leads", T, || async {
        (holder(&env, "contiguity-operator-test").await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    println!("takeover after the leader died: {takeover:?} (lease duration 4s)");
    assert!(takeover < Duration::from_secs(12), "{takeover:?}");
    create_lease(&env.leases(), "two", json!({"number": nums[1]})).await;
    wait_obj(&env.leases(), "two", "Ready", T, nl_is_ready).await;
    assert!(reconciles(&b).await >= 1.0);
    // Graceful shutdown releases the lease at once.
    let status = b.terminate(Duration::from_secs(20)).expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(holder(&env, "contiguity-operator-test").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let mut env = Env::start("process-sigterm").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "s", json!({"number": number})).await;
    wait_obj(&env.leases(), "s", "Ready", T, nl_is_ready).await;
    let status = env
        .operator()
        .terminate(Duration::from_secs(20))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    let logs = env.operator().logs();
    assert!(
        logs.contains("shutdown requested") && logs.contains("controllers stopped"),
        "{logs}"
    );
}
