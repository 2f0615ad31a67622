//! `contiguity-sandbox`: a local Contiguity emulator with fault injection.
//!
//! Every flag has an environment variable. The admin API is under `/_sandbox/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use contiguity_operator::contiguity::fingerprint_of;
use contiguity_operator::sandbox::{Faults, InventorySpec, Sandbox, SandboxConfig, TimestampFormat};

/// Token used when none is given.
const DEFAULT_TOKEN: &str = "contiguity_sk_sandbox";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TsFormat {
    /// Epoch seconds (as the OpenAPI spec says).
    EpochS,
    /// Epoch milliseconds.
    EpochMs,
    /// RFC 3339 strings.
    Rfc3339,
}

/// A stateful Contiguity API emulator (leases, failover, sends) with fault injection.
#[derive(Debug, Parser)]
#[command(name = "contiguity-sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,

    /// API token of an account (repeatable; env: comma-separated). Default: contiguity_sk_sandbox.
    #[arg(
        long = "token",
        env = "SANDBOX_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,

    /// Number of generated inventory numbers.
    #[arg(long, env = "SANDBOX_NUMBERS", default_value_t = 50)]
    numbers: usize,

    /// E.164 prefix of generated numbers.
    #[arg(long, env = "SANDBOX_NUMBER_PREFIX", default_value = "+1555010")]
    number_prefix: String,

    /// Seed of all random choices (inventory attributes, ids, faults).
    #[arg(long, env = "SANDBOX_SEED", default_value_t = 0)]
    seed: u64,

    /// JSON inventory file: an InventorySpec object or an array of numbers (replaces --numbers).
    #[arg(long, env = "SANDBOX_INVENTORY_FILE")]
    inventory_file: Option<PathBuf>,

    /// Probability (0..1) that any call fails with --error-status.
    #[arg(long, env = "SANDBOX_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,

    /// Status of injected errors.
    #[arg(long, env = "SANDBOX_ERROR_STATUS", default_value_t = 503)]
    error_status: u16,

    /// Added latency per call, milliseconds.
    #[arg(long, env = "SANDBOX_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,

    /// Extra random latency per call, 0..=N milliseconds.
    #[arg(long, env = "SANDBOX_LATENCY_JITTER_MS", default_value_t = 0)]
    latency_jitter_ms: u64,

    /// Requests per second allowed per token; above it: 429 + Retry-After.
    #[arg(long, env = "SANDBOX_RATE_LIMIT")]
    rate_limit: Option<f64>,

    /// Burst of the per-token rate limit (default: the rate).
    #[arg(long, env = "SANDBOX_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<u32>,

    /// Retry-After seconds sent with 429.
    #[arg(long, env = "SANDBOX_RETRY_AFTER_SECS", default_value_t = 1)]
    retry_after_secs: u64,

    /// Probability that a create/terminate/configure is applied but its reply is lost.
    #[arg(long, env = "SANDBOX_LOST_REPLY_RATE", default_value_t = 0.0)]
    lost_reply_rate: f64,

    /// Answer empty list calls with 404 instead of an empty list.
    #[arg(long, env = "SANDBOX_EMPTY_LISTS_404")]
    empty_lists_404: bool,

    /// Wire format of timestamps.
    #[arg(long, env = "SANDBOX_TIMESTAMP_FORMAT", value_enum, default_value = "epoch-s")]
    timestamp_format: TsFormat,
}

fn probability(name: &str, p: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("--{name} must be between 0 and 1, got {p}"))
    }
}

fn config(args: &Args) -> Result<SandboxConfig, String> {
    let inventory = match &args.inventory_file {
        Some(path) => InventorySpec::from_json_file(path).map_err(|e| e.to_string())?,
        None => InventorySpec {
            count: args.numbers,
            prefix: args.number_prefix.clone(),
            ..InventorySpec::default()
        },
    };
    let mut accounts: Vec<String> = args
        .tokens
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if accounts.is_empty() {
        accounts.push(DEFAULT_TOKEN.to_owned());
    }
    Ok(SandboxConfig {
        inventory,
        accounts,
        faults: Faults {
            error_rate: probability("error-rate", args.error_rate)?,
            error_status: args.error_status,
            latency_ms: args.latency_ms,
            latency_jitter_ms: args.latency_jitter_ms,
            rate_limit_per_sec: args.rate_limit,
            rate_limit_burst: args.rate_limit_burst,
            retry_after_secs: args.retry_after_secs,
            lost_reply_rate: probability("lost-reply-rate", args.lost_reply_rate)?,
            empty_lists_404: args.empty_lists_404,
            ..Faults::default()
        },
        seed: args.seed,
        timestamp_format: match args.timestamp_format {
            TsFormat::EpochS => TimestampFormat::EpochSeconds,
            TsFormat::EpochMs => TimestampFormat::EpochMillis,
            TsFormat::Rfc3339 => TimestampFormat::Rfc3339,
        },
        ..SandboxConfig::default()
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("contiguity-sandbox: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let fingerprints: Vec<String> = cfg.accounts.iter().map(|t| fingerprint_of(t)).collect();
    let handle = match Sandbox::start(cfg.clone(), args.listen).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("contiguity-sandbox: cannot start on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let state = handle.state();
    tracing::info!(
        addr = %handle.addr(),
        numbers = state.inventory_numbers().len(),
        accounts = ?fingerprints,
        default_token = args.tokens.is_empty(),
        seed = cfg.seed,
        faults = ?cfg.faults,
        "contiguity-sandbox started"
    );
    println!("contiguity-sandbox listening on {}", handle.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}
