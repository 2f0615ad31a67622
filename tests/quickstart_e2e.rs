//! The README's first command, end to end: `hack/demo.sh up` (what `make demo` runs) builds
//! what it needs, starts a control plane, the sandbox and the operator, applies
//! `deploy/examples/` and prints them Ready; running it again is safe; `down` stops everything.

use std::path::Path;
use std::process::Command;

fn demo(dir: &Path, action: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/demo.sh"))
        .arg(action)
        .env("DEMO_DIR", dir)
        .output()
        .expect("run hack/demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pids(dir: &Path) -> Vec<String> {
    ["operator", "sandbox", "control-plane"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(dir.join(format!("{p}.pid"))).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// Runs `demo down` when dropped, so a failed assertion leaves no process behind.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if self.0.exists() {
            demo(self.0, "down");
        }
    }
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

#[test]
fn make_demo_brings_the_examples_to_ready_and_demo_down_stops_everything() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/quickstart-{}", std::process::id()));
    let _down = Down(&dir);
    let (ok, text) = demo(&dir, "up");
    let started = pids(&dir);
    assert!(ok, "demo up failed:\n{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("default ") && l.contains("numberlease.contiguity.com/"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows.iter().all(|r| r.contains(" True ") && r.contains("Leased")),
        "{text}"
    );
    let failovers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("default ") && l.contains("leasefailover.contiguity.com/"))
        .collect();
    assert_eq!(failovers.len(), 2, "{text}");
    assert!(failovers.iter().all(|r| r.contains(" True ")), "{text}");
    assert!(text.contains("export KUBECONFIG="), "{text}");
    assert_eq!(started.len(), 3);
    // Again while running: re-uses the processes.
    let (ok, again) = demo(&dir, "up");
    assert!(ok, "second demo up failed:\n{again}");
    assert!(
        again.contains("control plane already running") && again.contains("operator already running"),
        "{again}"
    );
    assert_eq!(pids(&dir), started);
    let (ok, down) = demo(&dir, "down");
    assert!(ok, "{down}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    for pid in &started {
        assert!(!alive(pid), "process {pid} still running after demo down");
    }
    assert!(!dir.exists(), "demo down leaves {dir:?} behind");
}
