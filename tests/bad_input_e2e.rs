//! Bad input: invalid manifests are refused by the API server with a message naming the field;
//! schema-valid but impossible ones reach Stalled with a clear reason; tenancy and secrets hold.

mod support;

use contiguity_operator::contiguity::Operation;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(60);

fn nl(name: &str, spec: Value) -> String {
    json!({"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

fn lf(name: &str, spec: Value) -> String {
    json!({"apiVersion": "contiguity.com/v1alpha1", "kind": "LeaseFailover", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_refused_with_the_field_named() {
    let env = Env::start("bad-input").await;
    let long = format!("+1{}", "5".repeat(40));
    let cases: Vec<(String, &str)> = vec![
        // E.164 variants
        (nl("e1", json!({"number": "15550100001"})), "spec.number"),
        (nl("e2", json!({"number": "+05550100001"})), "spec.number"),
        (nl("e3", json!({"number": "+1"})), "spec.number"),
        (nl("e4", json!({"number": "+1234567890123456"})), "spec.number"),
        (nl("e5", json!({"number": "+1 555 010 0001"})), "spec.number"),
        (nl("e6", json!({"number": "+1-555-010-0001"})), "spec.number"),
        (nl("e7", json!({"number": "+1555O100001"})), "spec.number"),
        (nl("e8", json!({"number": "++15550100001"})), "spec.number"),
        (nl("e9", json!({"number": ""})), "spec.number"),
        (nl("e10", json!({"number": "+١٥٥٥٠١٠٠٠٠١"})), "spec.number"),
        (nl("e11", json!({"number": long})), "spec.number"),
        (nl("e12", json!({"number": "+15550100001\n"})), "spec.number"),
        // wrong types and missing fields
        (nl("t1", json!({"number": 15550100001u64})), "spec.number"),
        (nl("t2", json!({})), "spec.number"),
        (
            nl(
                "t3",
                json!({"number": "+15550100001", "credentialsSecretRef": "contiguity"}),
            ),
            "spec.credentialsSecretRef",
        ),
        (
            nl(
                "t4",
                json!({"number": "+15550100001", "credentialsSecretRef": {"key": "token"}}),
            ),
            "spec.credentialsSecretRef.name",
        ),
        (
            nl(
                "t5",
                json!({"number": "+15550100001", "credentialsSecretRef": {"name": ""}}),
            ),
            "spec.credentialsSecretRef.name",
        ),
        (
            nl(
                "t6",
                json!({"number": "+15550100001", "credentialsSecretRef": {"name": "x".repeat(300)}}),
            ),
            "spec.credentialsSecretRef.name",
        ),
        // enums
        (
            nl("n1", json!({"number": "+15550100001", "billingMethod": "weekly"})),
            "spec.billingMethod",
        ),
        (
            nl("n2", json!({"number": "+15550100001", "billingMethod": "goodwill"})),
            "spec.billingMethod",
        ),
        (
            nl("n3", json!({"number": "+15550100001", "deletionPolicy": "Delete"})),
            "spec.deletionPolicy",
        ),
        (
            nl("n4", json!({"number": "+15550100001", "deletionPolicy": "retain"})),
            "spec.deletionPolicy",
        ),
        (
            nl("n5", json!({"number": "+15550100001", "managementPolicy": "ReadOnly"})),
            "spec.managementPolicy",
        ),
        (
            nl("n6", json!({"number": "+15550100001", "adoption": "Always"})),
            "spec.adoption",
        ),
        // LeaseFailover rules
        (
            lf(
                "f1",
                json!({"leaseRef": {"name": "a"}, "number": "+15550100001", "enabled": true}),
            ),
            "exactly one of leaseRef or number",
        ),
        (lf("f2", json!({"enabled": true})), "exactly one of leaseRef or number"),
        (
            lf(
                "f3",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective"}),
            ),
            "numbers is required",
        ),
        (
            lf(
                "f4",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": []}),
            ),
            "numbers is required",
        ),
        (
            lf(
                "f5",
                json!({"number": "+15550100001", "enabled": true, "numbers": ["+15550100002"]}),
            ),
            "must be omitted when mode is all",
        ),
        (
            lf(
                "f6",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["+15550100002", "+15550100002"]}),
            ),
            "spec.numbers[1]",
        ),
        (
            lf(
                "f7",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["5550100002"]}),
            ),
            "spec.numbers[0]",
        ),
        (
            lf(
                "f8",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": ["+15550100001"]}),
            ),
            "must not contain the target",
        ),
        (
            lf("f9", json!({"number": "+15550100001", "enabled": "yes"})),
            "spec.enabled",
        ),
        (lf("f10", json!({"number": "+15550100001"})), "spec.enabled"),
        (
            lf(
                "f11",
                json!({"number": "+15550100001", "enabled": true, "mode": "some"}),
            ),
            "spec.mode",
        ),
        (
            lf("f12", json!({"leaseRef": {}, "enabled": true})),
            "spec.leaseRef.name",
        ),
        (
            lf(
                "f13",
                json!({"number": "+15550100001", "enabled": true, "mode": "selective", "numbers": (0..101).map(|i| format!("+1555020{i:04}")).collect::<Vec<_>>()}),
            ),
            "spec.numbers",
        ),
    ];
    let mut refused = 0;
    for (manifest, field) in &cases {
        let out = env.kubectl_apply(manifest);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {manifest}");
        assert!(
            err.contains(field),
            "message for {manifest} does not name {field}: {err}"
        );
        refused += 1;
    }
    // Unknown fields are refused by kubectl's server-side field validation.
    let out = control_plane().kubectl_stdin(
        &["apply", "--validate=strict", "-n", &env.ns, "-f", "-"],
        &nl("u1", json!({"number": "+15550100001", "colour": "blue"})),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("colour"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused += 1;
    // Edits of immutable fields.
    create_lease(&env.leases(), "imm", json!({"number": "+15550100001"})).await;
    for (patch, field) in [
        (json!({"spec": {"number": "+15550100002"}}), "number is immutable"),
        (
            json!({"spec": {"billingMethod": "service_contract"}}),
            "billingMethod is immutable",
        ),
    ] {
        let err = env
            .leases()
            .patch("imm", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(field), "{err}");
        refused += 1;
    }
    println!("bad inputs refused by the API server: {refused}");
    assert!(refused >= 30);
    let mut env = env;
    let logs = env.operator().logs();
    assert!(!logs.contains("panicked"), "the operator panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_but_valid_manifests_stall_with_a_clear_reason() {
    let mut env = Env::start("impossible").await;
    let nums = env.numbers(3);
    // Leased by another account.
    lease_directly(&env.sandbox.base_url(), OTHER_TOKEN, &nums[0]).await;
    create_lease(&env.leases(), "taken", json!({"number": nums[0]})).await;
    create_lease(&env.leases(), "unknown", json!({"number": "+19995550000"})).await;
    create_lease(
        &env.leases(),
        "nosecret",
        json!({"number": nums[1], "credentialsSecretRef": {"name": "missing"}}),
    )
    .await;
    for (name, reason) in [
        ("taken", "NumberUnavailable"),
        ("unknown", "NumberNotFound"),
        ("nosecret", "CredentialsSecretNotFound"),
    ] {
        let obj = wait_obj(&env.leases(), name, reason, T, |nl| nl_stalled(nl, reason)).await;
        let msg = stalled_message(&obj);
        assert!(!msg.is_empty(), "{name}: empty message");
    }
    assert_eq!(
        env.sandbox.state().count_op(Operation::Create),
        1,
        "only the other account's lease"
    );
    // No default token at all.
    let mut no_token = OperatorOpts {
        token: None,
        ..Default::default()
    };
    no_token.extra_env.push(("CONTIGUITY_TOKEN".into(), String::new()));
    env.start_operator(no_token);
    create_lease(&env.leases(), "notoken", json!({"number": nums[2]})).await;
    wait_obj(&env.leases(), "notoken", "NoCredentials", T, |nl| {
        nl_stalled(nl, "NoCredentials")
    })
    .await;
    assert!(!env.operator().logs().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_in_their_namespace() {
    let env = Env::start_with("tenancy", OperatorOpts::default(), 1).await;
    let other_ns = env.extra_namespaces[0].clone();
    let nums = env.numbers(2);
    let number = nums[1].clone();
    // The Secret lives in the main namespace; a NumberLease in the other namespace names it.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "shared"}, "stringData": {"token": TOKEN}}))
            .expect("secret");
    secrets.create(&Default::default(), &secret).await.expect("secret");
    create_lease(
        &env.leases_in(&other_ns),
        "borrow",
        json!({"number": nums[0], "credentialsSecretRef": {"name": "shared"}}),
    )
    .await;
    wait_obj(
        &env.leases_in(&other_ns),
        "borrow",
        "CredentialsSecretNotFound",
        T,
        |nl| nl_stalled(nl, "CredentialsSecretNotFound"),
    )
    .await;
    assert_eq!(env.sandbox.state().count_op(Operation::Create), 0);
    // A LeaseFailover in the other namespace cannot configure a number owned here.
    create_lease(&env.leases(), "owner", json!({"number": number})).await;
    wait_obj(&env.leases(), "owner", "Ready", T, nl_is_ready).await;
    let failovers: kube::Api<contiguity_operator::crd::LeaseFailover> =
        kube::Api::namespaced(env.client.clone(), &other_ns);
    create_failover(&failovers, "intruder", json!({"number": number, "enabled": true})).await;
    wait_obj(&failovers, "intruder", "NumberOwnedElsewhere", T, |lf| {
        lf.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Stalled"))
            .is_some_and(|(st, r)| st == "True" && r == "NumberOwnedElsewhere")
    })
    .await;
    assert_eq!(env.sandbox.state().count_op(Operation::Configure), 0);
}
