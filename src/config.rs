//! Command line of the operator. Every `run` flag can also be set by the environment variable
//! named in its help.

use crate::contiguity::DEFAULT_BASE_URL;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// contiguity-operator: manages Contiguity phone-number leases declared as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "contiguity-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (the operator's main job).
    Run(Box<RunArgs>),
    /// Write the CRD YAML generated from the Rust types (and the CRD reference).
    Crdgen(CrdgenArgs),
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Flags of `run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Base URL of the Contiguity API (point it at the sandbox for local runs).
    #[arg(long, env = "CONTIGUITY_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// File holding the default Contiguity API token (used by resources without credentialsSecretRef).
    #[arg(long, env = "CONTIGUITY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The default Contiguity API token itself (prefer --token-file).
    #[arg(long, env = "CONTIGUITY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Namespaces to watch, comma-separated; empty watches every namespace.
    #[arg(long = "namespaces", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only manage resources whose labels match this selector (for sharding or tests).
    #[arg(long, env = "LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// How often converged resources are compared with Contiguity (jittered ±10 %), e.g. 10m, 30s.
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// Reconciles running at once, per kind and watched namespace.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Requests per second to Contiguity, per API token (token bucket).
    #[arg(long, env = "CONTIGUITY_RATE_LIMIT", default_value_t = 10.0)]
    pub rate_limit: f64,
    /// Burst of the per-token token bucket.
    #[arg(long, env = "CONTIGUITY_RATE_BURST", default_value_t = 20)]
    pub rate_burst: u32,
    /// Timeout of one call to Contiguity, e.g. 15s.
    #[arg(long, env = "CONTIGUITY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// First retry delay after a transient failure (doubles per failure, jittered).
    #[arg(long, env = "BACKOFF_BASE", default_value = "1s", value_parser = parse_duration)]
    pub backoff_base: Duration,
    /// Longest retry delay after transient failures.
    #[arg(long, env = "BACKOFF_MAX", default_value = "5m", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Address of the /metrics, /livez and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Run only while holding a coordination.k8s.io Lease, so several replicas can run.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEADER_ELECTION_LEASE_NAME", default_value = "contiguity-operator")]
    pub leader_election_lease_name: String,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// How long a leader's Lease is valid without renewal, e.g. 15s.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// This replica's name in Events and the leader Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// The operator's own namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
}

/// Flags of `crdgen`.
#[derive(Debug, Args, Clone)]
pub struct CrdgenArgs {
    /// Directory to write `<name>.yaml` files to; without it, all CRDs go to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A second directory that receives the same files (the Helm chart's crds/).
    #[arg(long)]
    pub chart_out: Option<PathBuf>,
    /// Where to write the Markdown CRD reference.
    #[arg(long)]
    pub docs_out: Option<PathBuf>,
}

/// Parses durations such as `500ms`, `30s`, `10m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 10m, 1h"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn every_run_flag_has_an_env_var() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").expect("run subcommand");
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "flag --{id} has no environment variable");
        }
    }
}
