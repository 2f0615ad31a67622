//! A throwaway control plane for the bench: `k8s-testbin up --watch-stdin` (etcd +
//! kube-apiserver on loopback), the CRDs installed, and clients for it. Everything stops when
//! the bench process exits, because the supervisor watches its stdin.

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The JSON line `k8s-testbin up` prints once the API server answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaneInfo {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub token: String,
    pub ca_file: PathBuf,
    pub apiserver_pid: u32,
    pub startup_ms: u64,
}

/// A running control plane; dropping it closes the supervisor's stdin, which stops it.
pub struct Plane {
    pub info: PlaneInfo,
    tools: PathBuf,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Plane {
    /// Builds the tools if needed (cached), starts the plane and installs the CRDs.
    pub fn start(repo: &Path) -> Result<Plane, BoxError> {
        let tools = repo.join("target/control-plane");
        let built = Command::new("bash")
            .arg(repo.join("tests/control-plane/build.sh"))
            .status()?;
        if !built.success() {
            return Err("tests/control-plane/build.sh failed".into());
        }
        let dir =
            repo.join("target/bench/planes")
                .join(format!("{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(dir.parent().ok_or("plane dir has no parent")?)?;
        let mut child = Command::new(tools.join("k8s-testbin"))
            .args(["up", "--watch-stdin", "--remove-dir-on-exit", "--dir"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("k8s-testbin has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let info: PlaneInfo = serde_json::from_str(line.trim())
            .map_err(|e| format!("control plane did not start ({e}); it printed {line:?}"))?;
        let plane = Plane {
            info,
            tools,
            stdin,
            child,
        };
        plane.kubectl(&["apply", "--server-side", "-f", &repo.join("crds").display().to_string()])?;
        plane.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/numberleases.contiguity.com",
            "crd/leasefailovers.contiguity.com",
        ])?;
        Ok(plane)
    }

    /// Runs the bundled kubectl; an error carries its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new(self.tools.join("kubectl"))
            .env("KUBECONFIG", &self.info.kubeconfig)
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(format!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A kube client with the admin credentials of the kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, BoxError> {
        let kubeconfig = Kubeconfig::read_from(&self.info.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Creates a namespace named `prefix-<random>`.
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> Result<String, BoxError> {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(name)
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        // Closing stdin makes the supervisor stop etcd and the API server and remove the dir.
        self.stdin.take();
        let _ = self.child.wait();
    }
}
