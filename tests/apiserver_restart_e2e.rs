//! The API server and etcd stop and come back (keeping their data) while the operator runs:
//! the operator recovers its watches without being restarted.
//!
//! In its own test binary: it restarts the control plane that the binary's tests share.

mod support;

use kube::api::DeleteParams;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_survives_an_api_server_restart() {
    let mut env = Env::start("apiserver-restart").await;
    let nums = env.numbers(4);
    create_lease(&env.leases(), "before-0", json!({"number": nums[0]})).await;
    create_lease(&env.leases(), "before-1", json!({"number": nums[1]})).await;
    wait_obj(&env.leases(), "before-0", "Ready", T, nl_is_ready).await;
    wait_obj(&env.leases(), "before-1", "Ready", T, nl_is_ready).await;

    let cp = control_plane();
    let status = Command::new("kill")
        .args(["-USR1", &cp.info.pid.to_string()])
        .status()
        .expect("kill -USR1");
    assert!(status.success());
    // Wait until the API server is down, then until it answers again.
    let started = std::time::Instant::now();
    let client = env.client.clone();
    wait_for("API server down", T, || {
        let client = client.clone();
        async move { client.apiserver_version().await.err().map(|_| ()) }
    })
    .await;
    wait_for("API server back", T, || {
        let client = client.clone();
        async move { client.apiserver_version().await.ok().map(|_| ()) }
    })
    .await;
    println!("API server answered again after {:?}", started.elapsed());
    // Changes made after the restart are picked up by the same operator process.
    create_lease(&env.leases(), "after", json!({"number": nums[2]})).await;
    env.leases()
        .delete("before-1", &DeleteParams::default())
        .await
        .expect("delete");
    wait_obj(&env.leases(), "after", "Ready", T, nl_is_ready).await;
    wait_gone(&env.leases(), "before-1").await;
    assert!(env.operator().is_running(), "the operator exited");
    let s = env.sandbox.state();
    assert!(s.current_lease(&nums[1]).is_none());
    assert!(s.current_lease(&nums[2]).is_some());
    assert_eq!(s.count_op(contiguity_operator::contiguity::Operation::Create), 3);
}
