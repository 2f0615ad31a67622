//! The operator binary (release build) as a child process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running `contiguity-operator run`; SIGKILLed when dropped.
pub struct OperatorProcess {
    child: Child,
    env: Vec<(String, String)>,
    pub log: PathBuf,
    pub metrics_port: u16,
}

impl OperatorProcess {
    /// Starts the operator with `env` (a metrics port is added), logging to `log`.
    pub fn start(mut env: Vec<(String, String)>, log: PathBuf) -> Result<Self, BoxError> {
        let metrics_port = free_port()?;
        env.push(("METRICS_ADDR".into(), format!("127.0.0.1:{metrics_port}")));
        let child = spawn(&env, &log)?;
        Ok(Self {
            child,
            env,
            log,
            metrics_port,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (a crash) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again after [`kill`](Self::kill), on the same metrics port.
    pub fn restart(&mut self) -> Result<(), BoxError> {
        self.child = spawn(&self.env, &self.log)?;
        Ok(())
    }

    /// Waits until `/readyz` answers 200 (the CRDs were found and the controllers run).
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> Result<(), BoxError> {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("operator exited with {status}; see {}", self.log.display()).into());
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("operator not ready after {timeout:?}; see {}", self.log.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(env: &[(String, String)], log: &PathBuf) -> Result<Child, BoxError> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_contiguity-operator"));
    cmd.arg("run").stdin(Stdio::null()).stdout(out).stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd.spawn()?)
}

/// A free loopback TCP port.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|a| a.port())
}
