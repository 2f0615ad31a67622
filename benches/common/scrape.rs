//! Reading figures from the outside: the API server's `apiserver_request_total`, the operator's
//! `/metrics`, and a process's peak RSS and CPU time from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Write verbs as `apiserver_request_total` labels them (server-side apply is `APPLY`).
pub const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// One series of `apiserver_request_total` that the bench cares about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey {
    pub resource: String,
    pub subresource: String,
    pub verb: String,
    pub code: String,
}

/// A snapshot (or a difference of two) of write requests by resource, subresource, verb, code.
#[derive(Debug, Clone, Default)]
pub struct Requests(pub BTreeMap<RequestKey, f64>);

impl Requests {
    /// `self - before`, dropping series that did not move.
    pub fn since(&self, before: &Requests) -> Requests {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let d = v - before.0.get(k).copied().unwrap_or(0.0);
            if d > 0.0 {
                out.insert(k.clone(), d);
            }
        }
        Requests(out)
    }

    /// Total writes to `resource` (any subresource, verb, code).
    pub fn total(&self, resource: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .map(|(_, v)| v)
            .sum()
    }

    /// Writes to `resource` by `VERB[/subresource]`, with non-2xx codes called out, e.g.
    /// `PATCH`, `APPLY/status`, `PATCH 409`.
    pub fn breakdown(&self, resource: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, v) in self.0.iter().filter(|(k, _)| k.resource == resource) {
            let mut label = k.verb.clone();
            if !k.subresource.is_empty() {
                label = format!("{label}/{}", k.subresource);
            }
            if !k.code.starts_with('2') {
                label = format!("{label} {}", k.code);
            }
            *out.entry(label).or_insert(0.0) += v;
        }
        out
    }
}

/// Scrapes the API server's `/metrics` with the admin token.
pub struct ApiServerMetrics {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl ApiServerMetrics {
    pub fn new(server: &str, token: &str, ca_pem: &[u8]) -> Result<Self, BoxError> {
        let ca = reqwest::Certificate::from_pem(ca_pem)?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/metrics", server.trim_end_matches('/')),
            token: token.to_string(),
        })
    }

    /// Write requests to `numberleases` and `events` so far.
    pub async fn writes(&self) -> Result<Requests, BoxError> {
        let body = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut out = BTreeMap::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = parse_labels(labels);
            let get = |name: &str| labels.get(name).cloned().unwrap_or_default();
            let resource = get("resource");
            let verb = get("verb");
            if !(resource == "numberleases" || resource == "events") || !WRITE_VERBS.contains(&verb.as_str()) {
                continue;
            }
            let key = RequestKey {
                resource,
                subresource: get("subresource"),
                verb,
                code: get("code"),
            };
            *out.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
        }
        Ok(Requests(out))
    }
}

/// Parses `a="x",b="y"` (Prometheus text format label set, with `\"` escapes).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

/// Sum of the operator's `contiguity_operator_reconciles_total` for `kind` (every result).
pub async fn operator_reconciles(http: &reqwest::Client, port: u16, kind: &str) -> Option<f64> {
    let body = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let needle = format!("kind=\"{kind}\"");
    Some(
        body.lines()
            .filter(|l| l.starts_with("contiguity_operator_reconciles_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
            .sum(),
    )
}

/// Peak and current resident memory and CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub peak_rss_mib: f64,
    pub rss_mib: f64,
    pub cpu_secs: f64,
}

/// Reads `/proc/<pid>/status` (VmHWM, VmRSS) and `/proc/<pid>/stat` (utime + stime).
pub fn proc_stats(pid: u32, clk_tck: f64) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcStats {
        peak_rss_mib: kib("VmHWM:")? / 1024.0,
        rss_mib: kib("VmRSS:")? / 1024.0,
        cpu_secs: (utime + stime) / clk_tck,
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` (from `getconf CLK_TCK`, else 100).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// Checks the label parser (run when the binary is started by `cargo test`, not `cargo bench`).
pub fn self_check() -> Result<(), String> {
    let l = parse_labels(r#"code="201",resource="numberleases",subresource="",verb="POST",x="a\"b""#);
    let ok = l.get("code").map(String::as_str) == Some("201")
        && l.get("subresource").map(String::as_str) == Some("")
        && l.get("verb").map(String::as_str) == Some("POST")
        && l.get("x").map(String::as_str) == Some("a\"b");
    if ok {
        Ok(())
    } else {
        Err(format!("label parser: {l:?}"))
    }
}
