//! Test harness shared by the integration and e2e tests: a real control plane (etcd +
//! kube-apiserver built from the Kubernetes Go modules), a namespace per test, the sandbox,
//! and the operator binary run as a child process.
//!
//! One control plane is started per test binary, on first use, on free loopback ports. It is
//! supervised by `k8s-testbin up --watch-stdin`: when the test process exits for any reason
//! (success, failure, panic, abort, SIGKILL) the pipe closes and the supervisor stops etcd and
//! the API server and removes their directory.
#![allow(dead_code)]

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the supervisor prints once the control plane is ready.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaneInfo {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub token: String,
    pub ca_file: PathBuf,
    pub dir: PathBuf,
    pub pid: u32,
    pub etcd_pid: u32,
    pub apiserver_pid: u32,
    pub startup_ms: u64,
}

/// A running control plane, alive until the test process exits.
pub struct ControlPlane {
    pub info: PlaneInfo,
    // Held open for the life of the process: closing it stops the control plane.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory of the test tools (k8s-testbin, kubectl, helm).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CONTROL_PLANE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/control-plane"))
}

/// Builds the tools if their inputs changed (a cached build returns at once).
fn ensure_tools() {
    let status = Command::new("bash")
        .arg(repo_root().join("tests/control-plane/build.sh"))
        .status()
        .expect("run tests/control-plane/build.sh");
    assert!(status.success(), "building the test control plane failed");
}

/// The shared control plane of this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    PLANE.get_or_init(start_control_plane)
}

fn start_control_plane() -> ControlPlane {
    ensure_tools();
    let base = repo_root().join("target/test-planes");
    std::fs::create_dir_all(&base).expect("create target/test-planes");
    let dir = base.join(format!("{}-{}", std::process::id(), rand::random::<u32>()));
    let mut child = Command::new(tools_dir().join("k8s-testbin"))
        .args(["up", "--watch-stdin", "--remove-dir-on-exit", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start k8s-testbin up");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read control-plane info");
    let info: PlaneInfo = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "control plane did not start ({e}); output: {line:?}; logs under {}",
            dir.display()
        )
    });
    let plane = ControlPlane {
        info,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    };
    plane.install_crds();
    plane
}

impl ControlPlane {
    /// Runs the bundled kubectl against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new(tools_dir().join("kubectl"))
            .env("KUBECONFIG", &self.info.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(tools_dir().join("kubectl"))
            .env("KUBECONFIG", &self.info.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
        child.wait_with_output().expect("kubectl output")
    }

    fn install_crds(&self) {
        let crds = repo_root().join("crds");
        let out = self.kubectl(&["apply", "--server-side", "-f", crds.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "installing CRDs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/numberleases.contiguity.com",
            "crd/leasefailovers.contiguity.com",
        ]);
        assert!(
            out.status.success(),
            "CRDs never established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new kube client (one per test: clients are bound to the test's runtime).
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.info.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
        Client::try_from(config).expect("kube client")
    }

    /// Creates a namespace with a unique name that starts with `prefix`.
    pub async fn namespace(&self, prefix: &str) -> String {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"contiguity.test/suite": "true"}}
        }))
        .expect("namespace");
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        name
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory where tests write operator logs.
pub fn log_dir() -> PathBuf {
    let dir = repo_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("create target/test-logs");
    dir
}

/// Reads a file to a string, empty when missing.
pub fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
