//! LeaseFailover end to end: the operator binary against the real control plane and the sandbox.

mod support;

use contiguity_operator::contiguity::{FailoverConfig, FailoverMode, Operation};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(60);

fn failover_at_sandbox(env: &Env, number: &str) -> Option<FailoverConfig> {
    env.sandbox.state().current_lease(number).and_then(|l| l.failover)
}

async fn ready_lease(env: &Env, name: &str, number: &str) {
    create_lease(&env.leases(), name, json!({"number": number})).await;
    wait_obj(&env.leases(), name, "Ready", T, nl_is_ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_referenced_lease_then_configures() {
    let env = Env::start("lf-wait").await;
    let number = env.numbers(1).remove(0);
    create_failover(
        &env.failovers(),
        "fo",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    let lf = wait_obj(&env.failovers(), "fo", "LeaseNotReady", T, |lf| {
        lf_ready(lf).is_some_and(|(s, r)| s == "False" && r == "LeaseNotReady")
    })
    .await;
    assert!(lf.status.and_then(|s| s.applied).is_none());
    assert_eq!(env.sandbox.state().count_op(Operation::Configure), 0);
    ready_lease(&env, "target", &number).await;
    let lf = wait_obj(&env.failovers(), "fo", "Ready", T, lf_is_ready).await;
    let st = lf.status.expect("status");
    assert_eq!(st.number.as_deref(), Some(number.as_str()));
    assert_eq!(st.applied.as_ref().map(|a| a.enabled), Some(true));
    let at = failover_at_sandbox(&env, &number).expect("failover at the sandbox");
    assert!(at.enabled);
    assert_eq!(at.mode, Some(FailoverMode::All));
    assert!(at.numbers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_mode_reaches_the_sandbox_as_declared_and_edits_reconfigure_once() {
    let env = Env::start("lf-selective").await;
    let nums = env.numbers(4);
    ready_lease(&env, "target", &nums[0]).await;
    create_failover(
        &env.failovers(),
        "sel",
        json!({"number": nums[0], "enabled": true, "mode": "selective", "numbers": [nums[2], nums[1]]}),
    )
    .await;
    wait_obj(&env.failovers(), "sel", "Ready", T, lf_is_ready).await;
    let at = failover_at_sandbox(&env, &nums[0]).expect("failover");
    assert_eq!(at.mode, Some(FailoverMode::Selective));
    let mut got = at.numbers.clone();
    got.sort();
    assert_eq!(got, vec![nums[1].clone(), nums[2].clone()]);
    assert_eq!(env.sandbox.state().count_op(Operation::Configure), 1);
    let patch = json!({"spec": {"numbers": [nums[1], nums[3]]}});
    env.failovers()
        .patch("sel", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edit");
    wait_obj(&env.failovers(), "sel", "Ready for generation 2", T, |lf| {
        lf_is_ready(lf) && lf.metadata.generation == Some(2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.sandbox.state().count_op(Operation::Configure),
        2,
        "one configure per change"
    );
    let mut got = failover_at_sandbox(&env, &nums[0]).expect("failover").numbers;
    got.sort();
    assert_eq!(got, vec![nums[1].clone(), nums[3].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_are_restored_at_resync() {
    let env = Env::start_with(
        "lf-drift",
        OperatorOpts {
            resync: "2s",
            ..Default::default()
        },
        0,
    )
    .await;
    let number = env.numbers(1).remove(0);
    ready_lease(&env, "target", &number).await;
    create_failover(
        &env.failovers(),
        "fo",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    wait_obj(&env.failovers(), "fo", "Ready", T, lf_is_ready).await;
    env.sandbox
        .state()
        .set_failover_out_of_band(
            &number,
            FailoverConfig {
                enabled: false,
                mode: None,
                numbers: vec![],
            },
        )
        .expect("change out of band");
    wait_for("failover restored", T, || async {
        failover_at_sandbox(&env, &number)
            .filter(|f| f.enabled && f.mode == Some(FailoverMode::All))
            .map(|_| ())
    })
    .await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let list = events.list(&Default::default()).await.expect("events");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailoverDriftCorrected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_failover_disables_it_at_the_sandbox() {
    let env = Env::start("lf-delete").await;
    let number = env.numbers(1).remove(0);
    ready_lease(&env, "target", &number).await;
    create_failover(
        &env.failovers(),
        "fo",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    wait_obj(&env.failovers(), "fo", "Ready", T, lf_is_ready).await;
    env.failovers()
        .delete("fo", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&env.failovers(), "fo").await;
    let at = failover_at_sandbox(&env, &number).expect("failover record");
    assert!(!at.enabled, "{at:?}");
    assert!(
        env.sandbox.state().current_lease(&number).is_some(),
        "the lease itself stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_lease_disables_failover_before_terminating() {
    let env = Env::start("lf-order").await;
    let number = env.numbers(1).remove(0);
    ready_lease(&env, "target", &number).await;
    create_failover(
        &env.failovers(),
        "fo",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    wait_obj(&env.failovers(), "fo", "Ready", T, lf_is_ready).await;
    env.leases()
        .delete("target", &DeleteParams::default())
        .await
        .expect("delete lease");
    wait_gone(&env.leases(), "target").await;
    let s = env.sandbox.state();
    let calls = s.calls();
    let encoded = number.replace('+', "%2B");
    let disable = calls
        .iter()
        .rposition(|c| c.op == Some(Operation::Configure) && c.path.contains(&encoded))
        .expect("a configure call");
    let terminate = calls
        .iter()
        .position(|c| c.op == Some(Operation::Terminate))
        .expect("a terminate call");
    assert!(disable < terminate, "failover must be disabled before the terminate");
    assert!(s.current_lease(&number).is_none());
    // The failover then finds its lease gone and is deleted without more calls.
    env.failovers()
        .delete("fo", &DeleteParams::default())
        .await
        .expect("delete failover");
    wait_gone(&env.failovers(), "fo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_failovers_are_refused_by_the_api_server() {
    let env = Env::start("lf-invalid").await;
    let lf = |spec: serde_json::Value| {
        json!({"apiVersion": "contiguity.com/v1alpha1", "kind": "LeaseFailover", "metadata": {"name": "bad"}, "spec": spec})
            .to_string()
    };
    let cases = [
        (
            lf(json!({"leaseRef": {"name": "a"}, "number": "+15550100001", "enabled": true})),
            "exactly one of leaseRef or number",
        ),
        (lf(json!({"enabled": true})), "exactly one of leaseRef or number"),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "mode": "selective"})),
            "numbers is required",
        ),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": []})),
            "numbers is required",
        ),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "numbers": ["+15550100002"]})),
            "must be omitted when mode is all",
        ),
        (
            lf(
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["+15550100002", "+15550100002"]}),
            ),
            "Duplicate value",
        ),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["5550100002"]})),
            "spec.numbers[0]",
        ),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["+15550100001"]})),
            "must not contain the target",
        ),
        (lf(json!({"number": "15550100001", "enabled": true})), "spec.number"),
        (lf(json!({"number": "+15550100001"})), "spec.enabled"),
        (
            lf(json!({"number": "+15550100001", "enabled": true, "mode": "some"})),
            "spec.mode",
        ),
    ];
    for (manifest, expected) in cases {
        let out = env.kubectl_apply(&manifest);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {manifest}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    // The target cannot be changed after creation.
    create_failover(
        &env.failovers(),
        "fixed",
        json!({"number": "+15550100001", "enabled": true}),
    )
    .await;
    let patch = json!({"spec": {"number": "+15550100002"}});
    let err = env
        .failovers()
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("immutable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failovers_for_one_number_leave_one_stalled() {
    let env = Env::start("lf-claim").await;
    let number = env.numbers(1).remove(0);
    ready_lease(&env, "target", &number).await;
    create_failover(
        &env.failovers(),
        "first",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    wait_obj(&env.failovers(), "first", "Ready", T, lf_is_ready).await;
    create_failover(&env.failovers(), "second", json!({"number": number, "enabled": false})).await;
    let second = wait_obj(&env.failovers(), "second", "Stalled FailoverClaimed", T, |lf| {
        lf.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Stalled"))
            .is_some_and(|(st, r)| st == "True" && r == "FailoverClaimed")
    })
    .await;
    assert!(second.status.and_then(|s| s.applied).is_none());
    assert!(
        failover_at_sandbox(&env, &number).is_some_and(|f| f.enabled),
        "the claimant must not win"
    );
    assert_eq!(env.sandbox.state().count_op(Operation::Configure), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_lease_keeps_no_failover_once_its_failover_is_deleted() {
    let env = Env::start("lf-retain").await;
    let number = env.numbers(1).remove(0);
    create_lease(
        &env.leases(),
        "target",
        json!({"number": number, "deletionPolicy": "Retain"}),
    )
    .await;
    wait_obj(&env.leases(), "target", "Ready", T, nl_is_ready).await;
    create_failover(
        &env.failovers(),
        "fo",
        json!({"leaseRef": {"name": "target"}, "enabled": true}),
    )
    .await;
    wait_obj(&env.failovers(), "fo", "Ready", T, lf_is_ready).await;
    // The NumberLease goes first; its lease lives on at Contiguity.
    env.leases()
        .delete("target", &DeleteParams::default())
        .await
        .expect("delete lease");
    wait_gone(&env.leases(), "target").await;
    env.failovers()
        .delete("fo", &DeleteParams::default())
        .await
        .expect("delete failover");
    wait_gone(&env.failovers(), "fo").await;
    let lease = env
        .sandbox
        .state()
        .current_lease(&number)
        .expect("the retained lease lives on");
    assert!(
        lease.failover.is_some_and(|f| !f.enabled),
        "failover left enabled on a retained lease"
    );
}
