//! NumberLease end to end: the operator binary against the real control plane and the sandbox.

mod support;

use contiguity_operator::contiguity::Operation;
use contiguity_operator::crd::NumberLease;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(60);

fn mutating_calls(env: &Env) -> u64 {
    let s = env.sandbox.state();
    [Operation::Create, Operation::Configure, Operation::Terminate]
        .into_iter()
        .map(|op| s.count_op(op))
        .sum()
}

async fn lease_outside(env: &Env, token: &str, number: &str) -> String {
    lease_directly(&env.sandbox.base_url(), token, number).await
}

async fn gone(env: &Env, ns: &str, name: &str) {
    wait_gone(&env.leases_in(ns), name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_becomes_ready_with_the_sandbox_lease_id() {
    let env = Env::start("nl-create").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "main", json!({"number": number})).await;
    let nl = wait_obj(&env.leases(), "main", "Ready", T, nl_is_ready).await;
    let st = nl.status.clone().expect("status");
    let lease = env
        .sandbox
        .state()
        .current_lease(&number)
        .expect("lease at the sandbox");
    assert_eq!(st.lease_id.as_deref(), Some(lease.lease_id.as_str()));
    assert_eq!(st.lease_status.as_deref(), Some("active"));
    assert_eq!(st.origin, Some(contiguity_operator::crd::LeaseOrigin::Created));
    assert_eq!(st.number.as_deref(), Some(number.as_str()));
    assert!(
        st.billing.as_ref().and_then(|b| b.monthly_rate.clone()).is_some(),
        "{st:?}"
    );
    // The create was marked before it was sent, with the finalizer, and the mark stays.
    assert!(nl.create_requested_at().is_some(), "{:?}", nl.metadata.annotations);
    assert!(
        nl.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"contiguity.com/terminate-lease".to_string())
    );
    // One lookup before one create; nothing else at Contiguity for this lease.
    let s = env.sandbox.state();
    assert_eq!(s.count_op(Operation::Create), 1);
    assert_eq!(s.count_op(Operation::Get), 1);
    assert_eq!(s.count_op(Operation::Terminate), 0);
    let get = s.calls_of(Operation::Get)[0].seq;
    let create = s.calls_of(Operation::Create)[0].seq;
    assert!(get < create, "the number is looked up before the create");
    println!("calls per converged lease: {:?}", s.call_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_the_columns() {
    let env = Env::start("nl-columns").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "cols", json!({"number": number})).await;
    let nl = wait_obj(&env.leases(), "cols", "Ready", T, nl_is_ready).await;
    let lease_id = nl.status.and_then(|s| s.lease_id).expect("lease id");
    let cp = control_plane();
    let out = cp.kubectl(&["get", "nl", "-n", &env.ns]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "NUMBER", "STATUS", "READY", "AGE"], "{text}");
    assert!(
        text.contains(&number) && text.contains("active") && text.contains("True"),
        "{text}"
    );
    let out = cp.kubectl(&["get", "contiguity", "-o", "wide", "-n", &env.ns]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "NUMBER", "STATUS", "READY", "LEASE-ID", "ORIGIN", "REASON", "AGE"
        ],
        "{text}"
    );
    assert!(
        text.contains(&lease_id) && text.contains("Created") && text.contains("Leased"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_terminates_the_lease_and_removes_the_finalizer() {
    let env = Env::start("nl-delete").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "del", json!({"number": number})).await;
    wait_obj(&env.leases(), "del", "Ready", T, nl_is_ready).await;
    env.leases()
        .delete("del", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "del").await;
    let s = env.sandbox.state();
    assert!(s.current_lease(&number).is_none(), "lease still current at the sandbox");
    assert_eq!(s.count_op(Operation::Terminate), 1);
    let lease = s.leases().into_iter().find(|l| l.number == number).expect("lease row");
    assert_eq!(lease.terminated_by.as_deref(), Some("api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_lease() {
    let env = Env::start("nl-retain").await;
    let number = env.numbers(1).remove(0);
    create_lease(
        &env.leases(),
        "keep",
        json!({"number": number, "deletionPolicy": "Retain"}),
    )
    .await;
    wait_obj(&env.leases(), "keep", "Ready", T, nl_is_ready).await;
    env.leases()
        .delete("keep", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "keep").await;
    assert!(
        env.sandbox.state().current_lease(&number).is_some(),
        "a retained lease must survive"
    );
    assert_eq!(env.sandbox.state().count_op(Operation::Terminate), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_never_mutates() {
    let env = Env::start("nl-observe").await;
    let nums = env.numbers(2);
    let lease_id = lease_outside(&env, TOKEN, &nums[0]).await;
    env.sandbox.state().reset_calls();
    create_lease(
        &env.leases(),
        "seen",
        json!({"number": nums[0], "managementPolicy": "Observe"}),
    )
    .await;
    create_lease(
        &env.leases(),
        "absent",
        json!({"number": nums[1], "managementPolicy": "Observe"}),
    )
    .await;
    let nl = wait_obj(&env.leases(), "seen", "Ready", T, nl_is_ready).await;
    let st = nl.status.expect("status");
    assert_eq!(st.lease_id.as_deref(), Some(lease_id.as_str()));
    assert_eq!(st.origin, Some(contiguity_operator::crd::LeaseOrigin::Observed));
    let absent = wait_obj(&env.leases(), "absent", "NotLeased", T, |nl| {
        nl_ready(nl).is_some_and(|(s, r)| s == "False" && r == "NotLeased")
    })
    .await;
    assert!(absent.status.and_then(|s| s.lease_id).is_none());
    env.leases()
        .delete("seen", &DeleteParams::default())
        .await
        .expect("delete");
    env.leases()
        .delete("absent", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "seen").await;
    gone(&env, &env.ns, "absent").await;
    assert_eq!(
        mutating_calls(&env),
        0,
        "Observe made mutating calls: {:?}",
        env.sandbox.state().call_counts()
    );
    assert!(env.sandbox.state().current_lease(&nums[0]).is_some());
    assert!(env.sandbox.state().current_lease(&nums[1]).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_never_stalls_and_if_leased_adopts_then_retains() {
    let env = Env::start("nl-adopt").await;
    let nums = env.numbers(2);
    let id0 = lease_outside(&env, TOKEN, &nums[0]).await;
    let id1 = lease_outside(&env, TOKEN, &nums[1]).await;
    create_lease(&env.leases(), "never", json!({"number": nums[0]})).await;
    create_lease(
        &env.leases(),
        "adopt",
        json!({"number": nums[1], "adoption": "IfLeased"}),
    )
    .await;
    let never = wait_obj(&env.leases(), "never", "Stalled AlreadyLeased", T, |nl| {
        nl_stalled(nl, "AlreadyLeased")
    })
    .await;
    assert!(never.status.and_then(|s| s.lease_id).is_none());
    let adopted = wait_obj(&env.leases(), "adopt", "Ready", T, nl_is_ready).await;
    let st = adopted.status.expect("status");
    assert_eq!(st.lease_id.as_deref(), Some(id1.as_str()));
    assert_eq!(st.origin, Some(contiguity_operator::crd::LeaseOrigin::Adopted));
    assert_eq!(
        env.sandbox.state().count_op(Operation::Create),
        2,
        "only the two direct leases"
    );
    // Deleting both: the refused one terminates nothing, the adopted one is retained by default.
    env.leases()
        .delete("never", &DeleteParams::default())
        .await
        .expect("delete");
    env.leases()
        .delete("adopt", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "never").await;
    gone(&env, &env.ns, "adopt").await;
    let s = env.sandbox.state();
    assert_eq!(s.count_op(Operation::Terminate), 0);
    assert_eq!(s.current_lease(&nums[0]).map(|l| l.lease_id), Some(id0));
    assert_eq!(s.current_lease(&nums[1]).map(|l| l.lease_id), Some(id1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_number_in_two_namespaces_has_one_owner() {
    let env = Env::start_with("nl-claim", OperatorOpts::default(), 1).await;
    let number = env.numbers(1).remove(0);
    let other_ns = env.extra_namespaces[0].clone();
    create_lease(&env.leases(), "first", json!({"number": number})).await;
    wait_obj(&env.leases(), "first", "Ready", T, nl_is_ready).await;
    create_lease(&env.leases_in(&other_ns), "second", json!({"number": number})).await;
    let second = wait_obj(&env.leases_in(&other_ns), "second", "Stalled NumberClaimed", T, |nl| {
        nl_stalled(nl, "NumberClaimed")
    })
    .await;
    let msg = stalled_message(&second);
    assert!(msg.contains(&env.ns) && msg.contains("first"), "{msg}");
    assert_eq!(env.sandbox.state().count_op(Operation::Create), 1);
    env.leases_in(&other_ns)
        .delete("second", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &other_ns, "second").await;
    let s = env.sandbox.state();
    assert_eq!(
        s.count_op(Operation::Terminate),
        0,
        "deleting the stalled claimant terminated the lease"
    );
    assert!(s.current_lease(&number).is_some());
    let first = env.leases().get("first").await.expect("first");
    assert!(nl_is_ready(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_refused_by_the_api_server() {
    let env = Env::start("nl-invalid").await;
    let cases = [
        (
            r#"{"apiVersion":"contiguity.com/v1alpha1","kind":"NumberLease","metadata":{"name":"bad1"},"spec":{"number":"15550100"}}"#,
            "spec.number",
        ),
        (
            r#"{"apiVersion":"contiguity.com/v1alpha1","kind":"NumberLease","metadata":{"name":"bad2"},"spec":{"number":"+1555010000","billingMethod":"weekly"}}"#,
            "spec.billingMethod",
        ),
        (
            r#"{"apiVersion":"contiguity.com/v1alpha1","kind":"NumberLease","metadata":{"name":"bad3"},"spec":{"number":"+0555010000"}}"#,
            "spec.number",
        ),
        (
            r#"{"apiVersion":"contiguity.com/v1alpha1","kind":"NumberLease","metadata":{"name":"bad4"},"spec":{"number":"+1555010000","deletionPolicy":"Delete"}}"#,
            "spec.deletionPolicy",
        ),
    ];
    for (manifest, field) in cases {
        let out = env.kubectl_apply(manifest);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {manifest}");
        assert!(err.contains(field), "message does not name {field}: {err}");
    }
    // Editing the immutable number is refused with the rule's message.
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "fixed", json!({"number": number})).await;
    let patch = json!({"spec": {"number": "+15559999999"}});
    let err = env
        .leases()
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("spec.number") && msg.contains("immutable"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_stalls_and_fixing_the_secret_recovers_without_restart() {
    let env = Env::start("nl-token").await;
    let number = env.numbers(1).remove(0);
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let secret = |token: &str| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json!({
            "metadata": {"name": "contiguity"}, "stringData": {"token": token}
        }))
        .expect("secret")
    };
    secrets
        .create(&Default::default(), &secret("contiguity_sk_wrong"))
        .await
        .expect("secret");
    create_lease(
        &env.leases(),
        "tok",
        json!({"number": number, "credentialsSecretRef": {"name": "contiguity"}}),
    )
    .await;
    let nl = wait_obj(&env.leases(), "tok", "Stalled CredentialsRejected", T, |nl| {
        nl_stalled(nl, "CredentialsRejected")
    })
    .await;
    let message = stalled_message(&nl);
    assert!(
        !message.contains("contiguity_sk_wrong"),
        "token leaked into status: {message}"
    );
    // No retry loop while nothing changes.
    let before = env.sandbox.state().total_calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.sandbox.state().total_calls(),
        before,
        "a permanent error was retried"
    );
    secrets
        .patch(
            "contiguity",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"token": TOKEN}})),
        )
        .await
        .expect("fix secret");
    wait_obj(&env.leases(), "tok", "Ready", T, nl_is_ready).await;
    assert_eq!(env.sandbox.state().count_op(Operation::Create), 1);
    let mut env = env;
    let logs = env.operator().logs();
    assert!(
        !logs.contains("contiguity_sk_wrong") && !logs.contains(TOKEN),
        "token in operator logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_rate_limits_are_retried_never_before_retry_after() {
    let env = Env::start("nl-faults").await;
    let nums = env.numbers(3);
    let s = env.sandbox.state();
    s.fail_next(Operation::Get, 2, 503);
    s.fail_next(Operation::Create, 1, 500);
    s.fail_next(Operation::Create, 1, 429);
    for (i, n) in nums.iter().enumerate() {
        create_lease(&env.leases(), &format!("f{i}"), json!({"number": n})).await;
    }
    for i in 0..nums.len() {
        wait_obj(&env.leases(), &format!("f{i}"), "Ready", T, nl_is_ready).await;
    }
    let calls = s.calls();
    assert!(
        calls.iter().all(|c| !c.before_retry_after),
        "a call came before Retry-After passed"
    );
    assert!(calls.iter().any(|c| c.outcome == "429"), "the 429 was injected");
    // Each lease was created exactly once despite the failures.
    let creates_ok = s
        .calls_of(Operation::Create)
        .iter()
        .filter(|c| c.outcome == "200")
        .count();
    assert_eq!(creates_ok, 3);
    assert_eq!(s.leases().iter().filter(|l| l.current).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_terminated_out_of_band_is_reported_lost_not_re_leased() {
    let env = Env::start_with(
        "nl-lost",
        OperatorOpts {
            resync: "2s",
            ..Default::default()
        },
        0,
    )
    .await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "lost", json!({"number": number})).await;
    wait_obj(&env.leases(), "lost", "Ready", T, nl_is_ready).await;
    env.sandbox
        .state()
        .terminate_out_of_band(&number)
        .expect("terminate out of band");
    let nl = wait_obj(&env.leases(), "lost", "LeaseLost", T, |nl| {
        nl_ready(nl).is_some_and(|(s, r)| s == "False" && r == "LeaseLost")
    })
    .await;
    assert!(nl_stalled(&nl, "LeaseLost"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        env.sandbox.state().count_op(Operation::Create),
        1,
        "a lost lease was leased again"
    );
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let list = events.list(&Default::default()).await.expect("events");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("LeaseLost") && e.type_.as_deref() == Some("Warning")),
        "no LeaseLost Warning event"
    );
    // Deleting a lost lease calls nothing at Contiguity.
    env.leases()
        .delete("lost", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "lost").await;
    assert_eq!(env.sandbox.state().count_op(Operation::Terminate), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_at_steady_state_makes_no_mutating_calls() {
    let mut env = Env::start("nl-restart").await;
    let nums = env.numbers(5);
    for (i, n) in nums.iter().enumerate() {
        create_lease(&env.leases(), &format!("r{i}"), json!({"number": n})).await;
    }
    for i in 0..nums.len() {
        wait_obj(&env.leases(), &format!("r{i}"), "Ready", T, nl_is_ready).await;
    }
    let mutating_before = mutating_calls(&env);
    assert_eq!(mutating_before, 5);
    env.sandbox.state().reset_calls();
    env.operator().kill();
    env.operator().restart();
    // Give the restarted operator time to list and reconcile everything.
    let op = env.operator.as_ref().expect("operator");
    wait_for("operator ready", T, || async {
        (op.http_get("/readyz").await?.0 == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        mutating_calls(&env),
        0,
        "calls after restart: {:?}",
        env.sandbox.state().call_counts()
    );
    for i in 0..nums.len() {
        assert!(nl_is_ready(&env.leases().get(&format!("r{i}")).await.expect("get")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_reply_and_a_crash_before_the_status_write_lease_once() {
    let mut env = Env::start_with(
        "nl-crash-create",
        OperatorOpts {
            extra_env: vec![("BACKOFF_BASE".into(), "3s".into())],
            ..Default::default()
        },
        0,
    )
    .await;
    let number = env.numbers(1).remove(0);
    let s = env.sandbox.state();
    // The first lookup passes, the create is applied but its reply lost, and every lookup
    // after it fails: the operator cannot learn the outcome before it is killed.
    s.delay_next(Operation::Get, 1, Duration::from_millis(1));
    s.fail_next(Operation::Get, 10_000, 503);
    s.lose_next_reply(Operation::Create, 1);
    create_lease(&env.leases(), "crash", json!({"number": number})).await;
    // The create is applied, its reply lost: the resource is marked and has no leaseId.
    wait_for("dropped create", T, || async {
        env.sandbox
            .state()
            .calls_of(Operation::Create)
            .iter()
            .any(|c| c.outcome == "dropped")
            .then_some(())
    })
    .await;
    env.operator().kill();
    let nl: NumberLease = env.leases().get("crash").await.expect("get");
    assert!(nl.create_requested_at().is_some(), "{:?}", nl.metadata);
    assert!(
        nl.status.as_ref().is_none_or(|s| s.lease_id.is_none()),
        "{:?}",
        nl.status
    );
    assert!(env.sandbox.state().current_lease(&number).is_some());
    env.sandbox.state().clear_one_shots();
    env.operator().restart();
    let nl = wait_obj(&env.leases(), "crash", "Ready", T, nl_is_ready).await;
    let s = env.sandbox.state();
    assert_eq!(s.count_op(Operation::Create), 1, "a second create was sent");
    assert_eq!(
        nl.status.and_then(|s| s.lease_id),
        s.current_lease(&number).map(|l| l.lease_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_create_leases_once() {
    let mut env = Env::start("nl-crash-before").await;
    let number = env.numbers(1).remove(0);
    // The create arrives but waits; the operator dies meanwhile, so nothing is leased.
    env.sandbox
        .state()
        .delay_next(Operation::Create, 1, Duration::from_secs(4));
    create_lease(&env.leases(), "early", json!({"number": number})).await;
    wait_obj(&env.leases(), "early", "create marked as requested", T, |nl| {
        nl.create_requested_at().is_some()
    })
    .await;
    env.operator().kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    env.operator().restart();
    wait_obj(&env.leases(), "early", "Ready", T, nl_is_ready).await;
    let s = env.sandbox.state();
    let applied: Vec<_> = s.leases().into_iter().filter(|l| l.number == number).collect();
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(applied[0].current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_termination_still_terminates_once_and_finishes() {
    let mut env = Env::start_with(
        "nl-crash-delete",
        OperatorOpts {
            extra_env: vec![("BACKOFF_BASE".into(), "3s".into())],
            ..Default::default()
        },
        0,
    )
    .await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "bye", json!({"number": number})).await;
    wait_obj(&env.leases(), "bye", "Ready", T, nl_is_ready).await;
    env.sandbox.state().lose_next_reply(Operation::Terminate, 1);
    env.leases()
        .delete("bye", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("dropped terminate", T, || async {
        env.sandbox
            .state()
            .calls_of(Operation::Terminate)
            .iter()
            .any(|c| c.outcome == "dropped")
            .then_some(())
    })
    .await;
    env.operator().kill();
    assert!(
        env.leases().get_opt("bye").await.expect("get").is_some(),
        "finalizer must still hold"
    );
    env.operator().restart();
    gone(&env, &env.ns, "bye").await;
    let s = env.sandbox.state();
    assert!(s.current_lease(&number).is_none());
    let rows: Vec<_> = s.leases().into_iter().filter(|l| l.number == number).collect();
    assert_eq!(rows.len(), 1, "exactly one lease existed: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_reported_lost() {
    let env = Env::start_with(
        "nl-expired",
        OperatorOpts {
            resync: "2s",
            ..Default::default()
        },
        0,
    )
    .await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "exp", json!({"number": number})).await;
    wait_obj(&env.leases(), "exp", "Ready", T, nl_is_ready).await;
    env.sandbox.state().expire(&number).expect("expire");
    wait_obj(&env.leases(), "exp", "LeaseLost", T, |nl| nl_stalled(nl, "LeaseLost")).await;
    assert_eq!(env.sandbox.state().count_op(Operation::Create), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_reply_is_recognised_without_a_crash() {
    let env = Env::start("nl-lost-reply").await;
    let number = env.numbers(1).remove(0);
    env.sandbox.state().lose_next_reply(Operation::Create, 1);
    create_lease(&env.leases(), "lr", json!({"number": number})).await;
    let nl = wait_obj(&env.leases(), "lr", "Ready", T, nl_is_ready).await;
    let s = env.sandbox.state();
    assert_eq!(s.count_op(Operation::Create), 1);
    assert_eq!(
        nl.status.and_then(|s| s.origin),
        Some(contiguity_operator::crd::LeaseOrigin::Created)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_unmarks_the_resource_so_a_later_outside_lease_is_not_taken() {
    let env = Env::start("nl-refused").await;
    let number = env.numbers(1).remove(0);
    env.sandbox.state().fail_next(Operation::Create, 1, 400);
    create_lease(&env.leases(), "no", json!({"number": number})).await;
    let nl = wait_obj(&env.leases(), "no", "Stalled RequestRefused", T, |nl| {
        nl_stalled(nl, "RequestRefused")
    })
    .await;
    assert_eq!(nl.create_requested_at(), None, "{:?}", nl.metadata.annotations);
    assert!(nl.finalizers().iter().any(|f| f == "contiguity.com/terminate-lease"));
    // The account leases the number some other way; deleting the resource must not end it.
    let outside = lease_outside(&env, TOKEN, &number).await;
    env.leases()
        .delete("no", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "no").await;
    let s = env.sandbox.state();
    assert_eq!(s.current_lease(&number).map(|l| l.lease_id), Some(outside));
    assert_eq!(s.count_op(Operation::Terminate), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_removed_by_hand_is_restored_so_a_delete_still_terminates() {
    let env = Env::start("nl-refinalize").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "keep", json!({"number": number})).await;
    wait_obj(&env.leases(), "keep", "Ready", T, nl_is_ready).await;
    let strip = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    env.leases()
        .patch("keep", &PatchParams::default(), &strip)
        .await
        .expect("strip the finalizer");
    // Well before the 10-minute resync would write status again.
    wait_obj(
        &env.leases(),
        "keep",
        "finalizer restored",
        Duration::from_secs(15),
        |nl| nl.finalizers().iter().any(|f| f == "contiguity.com/terminate-lease"),
    )
    .await;
    env.leases()
        .delete("keep", &DeleteParams::default())
        .await
        .expect("delete");
    gone(&env, &env.ns, "keep").await;
    let s = env.sandbox.state();
    assert!(s.current_lease(&number).is_none(), "the lease outlived its resource");
    assert_eq!(s.count_op(Operation::Terminate), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_goes_the_claimant_takes_the_number() {
    let env = Env::start("nl-handover").await;
    let number = env.numbers(1).remove(0);
    create_lease(&env.leases(), "owner", json!({"number": number})).await;
    wait_obj(&env.leases(), "owner", "Ready", T, nl_is_ready).await;
    create_lease(&env.leases(), "next", json!({"number": number})).await;
    wait_obj(&env.leases(), "next", "Stalled NumberClaimed", T, |nl| {
        nl_stalled(nl, "NumberClaimed")
    })
    .await;
    env.leases()
        .delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    gone(&env, &env.ns, "owner").await;
    // The owner's lease was terminated; the claimant now owns the number and leases it anew.
    let nl = wait_obj(&env.leases(), "next", "Ready", T, nl_is_ready).await;
    let s = env.sandbox.state();
    assert_eq!(s.count_op(Operation::Terminate), 1);
    assert_eq!(s.count_op(Operation::Create), 2);
    assert_eq!(
        nl.status.and_then(|s| s.lease_id),
        s.current_lease(&number).map(|l| l.lease_id)
    );
}
