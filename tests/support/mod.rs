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

/// The token the e2e sandbox accepts as the operator's default account.
pub const TOKEN: &str = "contiguity_sk_e2e_default_token_0123456789";
/// A second account's token.
pub const OTHER_TOKEN: &str = "contiguity_sk_e2e_other_account_9876543210";

/// One e2e scenario: a namespace on the shared control plane, an in-process sandbox and the
/// operator binary watching that namespace.
pub struct Env {
    pub ns: String,
    pub client: kube::Client,
    pub sandbox: contiguity_operator::sandbox::SandboxHandle,
    pub operator: Option<Operator>,
    pub extra_namespaces: Vec<String>,
}

/// Options of the operator process.
#[derive(Clone, Debug)]
pub struct OperatorOpts {
    pub resync: &'static str,
    pub extra_args: Vec<String>,
    pub extra_env: Vec<(String, String)>,
    pub token: Option<String>,
    /// How many numbers the sandbox inventory holds.
    pub sandbox_numbers: usize,
}

impl Default for OperatorOpts {
    fn default() -> Self {
        Self {
            resync: "10m",
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            token: Some(TOKEN.to_string()),
            sandbox_numbers: 50,
        }
    }
}

/// The operator binary as a child process; killed (SIGKILL) when dropped.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
    pub metrics_port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Operator {
    /// Starts the operator binary with `args` and `env` (plus KUBECONFIG and a metrics port).
    pub fn start(name: &str, args: Vec<String>, mut env: Vec<(String, String)>) -> Operator {
        let cp = control_plane();
        let metrics_port = free_port();
        env.push(("KUBECONFIG".into(), cp.info.kubeconfig.display().to_string()));
        env.push(("METRICS_ADDR".into(), format!("127.0.0.1:{metrics_port}")));
        let log = log_dir().join(format!("{name}-{}.log", rand::random::<u32>()));
        let mut op = Operator {
            child: spawn_operator(&args, &env, &log),
            log,
            metrics_port,
            args,
            env,
        };
        op.metrics_port = metrics_port;
        op
    }

    /// SIGKILLs the process (a crash) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown); returns the exit status after at most `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        sigterm_and_wait(&mut self.child, timeout)
    }

    /// Starts the same command again (after [`Operator::kill`]).
    pub fn restart(&mut self) {
        self.child = spawn_operator(&self.args, &self.env, &self.log);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        read_to_string(&self.log)
    }

    /// GETs a path of the metrics/health server.
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        contiguity_operator::contiguity::install_crypto_provider();
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let resp = reqwest::get(&url).await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_operator(args: &[String], env: &[(String, String)], log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open operator log");
    let err = file.try_clone().expect("clone log handle");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contiguity-operator"));
    cmd.arg("run").args(args).stdout(file).stderr(err);
    cmd.env("RUST_LOG", "info,contiguity_operator=debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start the operator binary")
}

impl Env {
    /// A namespace, a sandbox with the default accounts, and the operator watching the namespace.
    pub async fn start(prefix: &str) -> Env {
        Self::start_with(prefix, OperatorOpts::default(), 0).await
    }

    /// Like [`Env::start`] with operator options and `extra` more namespaces watched.
    pub async fn start_with(prefix: &str, opts: OperatorOpts, extra: usize) -> Env {
        use contiguity_operator::sandbox::{Sandbox, SandboxConfig};
        let cp = control_plane();
        let ns = cp.namespace(prefix).await;
        let mut extra_namespaces = Vec::new();
        for i in 0..extra {
            extra_namespaces.push(cp.namespace(&format!("{prefix}-{i}")).await);
        }
        let mut cfg = SandboxConfig::with_tokens([TOKEN, OTHER_TOKEN]);
        cfg.inventory.count = opts.sandbox_numbers;
        cfg.seed = 7;
        let sandbox = Sandbox::start(cfg, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("start sandbox");
        let mut env = Env {
            ns,
            client: cp.client().await,
            sandbox,
            operator: None,
            extra_namespaces,
        };
        env.start_operator(opts);
        env
    }

    /// The watched namespaces, comma-separated.
    pub fn namespaces(&self) -> String {
        std::iter::once(self.ns.clone())
            .chain(self.extra_namespaces.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// (Re)starts the operator with `opts`.
    pub fn start_operator(&mut self, opts: OperatorOpts) {
        let mut env = vec![
            ("CONTIGUITY_BASE_URL".to_string(), self.sandbox.base_url()),
            ("WATCH_NAMESPACES".to_string(), self.namespaces()),
            ("RESYNC_INTERVAL".to_string(), opts.resync.to_string()),
            ("BACKOFF_BASE".to_string(), "200ms".to_string()),
            ("BACKOFF_MAX".to_string(), "3s".to_string()),
            ("CONTIGUITY_TIMEOUT".to_string(), "3s".to_string()),
            ("CONTIGUITY_RATE_LIMIT".to_string(), "200".to_string()),
            ("CONTIGUITY_RATE_BURST".to_string(), "200".to_string()),
        ];
        if let Some(t) = &opts.token {
            env.push(("CONTIGUITY_TOKEN".to_string(), t.clone()));
        }
        env.extend(opts.extra_env.iter().cloned());
        self.operator = None;
        self.operator = Some(Operator::start(&self.ns, opts.extra_args.clone(), env));
    }

    /// The operator process.
    pub fn operator(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("operator running")
    }

    /// NumberLeases of namespace `ns`.
    pub fn leases_in(&self, ns: &str) -> kube::Api<contiguity_operator::crd::NumberLease> {
        kube::Api::namespaced(self.client.clone(), ns)
    }

    /// NumberLeases of the main namespace.
    pub fn leases(&self) -> kube::Api<contiguity_operator::crd::NumberLease> {
        self.leases_in(&self.ns)
    }

    /// LeaseFailovers of the main namespace.
    pub fn failovers(&self) -> kube::Api<contiguity_operator::crd::LeaseFailover> {
        kube::Api::namespaced(self.client.clone(), &self.ns)
    }

    /// `n` numbers of the sandbox inventory that are available, distinct per call site `offset`.
    pub fn numbers(&self, n: usize) -> Vec<String> {
        let mut all = self.sandbox.state().available_numbers();
        all.sort();
        all.into_iter().take(n).collect()
    }

    /// Applies a manifest (YAML or JSON) with kubectl in the main namespace.
    pub fn kubectl_apply(&self, manifest: &str) -> std::process::Output {
        control_plane().kubectl_stdin(&["apply", "-n", &self.ns, "-f", "-"], manifest)
    }
}

/// Creates a NumberLease from a JSON spec.
pub async fn create_lease(
    api: &kube::Api<contiguity_operator::crd::NumberLease>,
    name: &str,
    spec: serde_json::Value,
) -> contiguity_operator::crd::NumberLease {
    let nl: contiguity_operator::crd::NumberLease = serde_json::from_value(serde_json::json!({
        "apiVersion": "contiguity.com/v1alpha1",
        "kind": "NumberLease",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("NumberLease");
    api.create(&kube::api::PostParams::default(), &nl)
        .await
        .expect("create NumberLease")
}

/// Waits until `check` holds for the named object, returning it.
pub async fn wait_obj<K, F>(api: &kube::Api<K>, name: &str, what: &str, timeout: Duration, check: F) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            if check(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {name} to be {what}; last seen: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of condition `kind` and its reason.
pub fn condition(conditions: &[contiguity_operator::crd::Condition], kind: &str) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The NumberLease's Ready condition as (status, reason).
pub fn nl_ready(nl: &contiguity_operator::crd::NumberLease) -> Option<(String, String)> {
    nl.status.as_ref().and_then(|s| condition(&s.conditions, "Ready"))
}

/// True when Ready=True for the current generation.
pub fn nl_is_ready(nl: &contiguity_operator::crd::NumberLease) -> bool {
    nl.status.as_ref().is_some_and(|s| {
        s.observed_generation == nl.metadata.generation
            && condition(&s.conditions, "Ready").is_some_and(|(st, _)| st == "True")
    })
}

/// True when Stalled=True with `reason`.
pub fn nl_stalled(nl: &contiguity_operator::crd::NumberLease, reason: &str) -> bool {
    nl.status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Stalled"))
        .is_some_and(|(st, r)| st == "True" && r == reason)
}

/// Creates a LeaseFailover from a JSON spec.
pub async fn create_failover(
    api: &kube::Api<contiguity_operator::crd::LeaseFailover>,
    name: &str,
    spec: serde_json::Value,
) -> contiguity_operator::crd::LeaseFailover {
    let lf: contiguity_operator::crd::LeaseFailover = serde_json::from_value(serde_json::json!({
        "apiVersion": "contiguity.com/v1alpha1",
        "kind": "LeaseFailover",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("LeaseFailover");
    api.create(&kube::api::PostParams::default(), &lf)
        .await
        .expect("create LeaseFailover")
}

/// The LeaseFailover's Ready condition as (status, reason).
pub fn lf_ready(lf: &contiguity_operator::crd::LeaseFailover) -> Option<(String, String)> {
    lf.status.as_ref().and_then(|s| condition(&s.conditions, "Ready"))
}

/// True when the LeaseFailover is Ready for its current generation.
pub fn lf_is_ready(lf: &contiguity_operator::crd::LeaseFailover) -> bool {
    lf.status.as_ref().is_some_and(|s| {
        s.observed_generation == lf.metadata.generation
            && condition(&s.conditions, "Ready").is_some_and(|(st, _)| st == "True")
    })
}

/// Waits (60 s at most) until the named object no longer exists: its finalizers were removed.
pub async fn wait_gone<K>(api: &kube::Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{name} to be deleted"), Duration::from_secs(60), || {
        let api = api.clone();
        let name = name.to_string();
        async move { api.get_opt(&name).await.ok().flatten().is_none().then_some(()) }
    })
    .await;
}

/// Leases `number` at the sandbox directly with `token`, outside the operator; the lease id.
pub async fn lease_directly(sandbox_url: &str, token: &str, number: &str) -> String {
    use contiguity_operator::contiguity::{ApiToken, BillingMethod, ClientConfig, ClientPool};
    contiguity_operator::contiguity::install_crypto_provider();
    let pool = ClientPool::new(
        ClientConfig {
            base_url: sandbox_url.to_string(),
            ..ClientConfig::default()
        },
        None,
    );
    let client = pool.client(ApiToken::new(token.to_string())).expect("client");
    client
        .create(number, BillingMethod::Monthly)
        .await
        .expect("lease outside the operator")
        .lease_id
}

/// Sends SIGTERM to `child` and waits at most `timeout` for it to exit.
pub fn sigterm_and_wait(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The message of the NumberLease's Stalled condition; panics when there is none.
pub fn stalled_message(nl: &contiguity_operator::crd::NumberLease) -> String {
    nl.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled"))
        .map(|c| c.message.clone())
        .expect("a Stalled condition")
}
