//! The `contiguity-operator` binary: `run` (the controllers) and `crdgen`.

use clap::Parser;
use contiguity_operator::config::{Cli, Command, CrdgenArgs, RunArgs};
use contiguity_operator::contiguity::{self, ApiToken, ClientConfig};
use contiguity_operator::controller::{self, RunOptions, context::Settings};
use contiguity_operator::leader::LeaderElector;
use contiguity_operator::metrics::Metrics;
use contiguity_operator::server::{self, HealthState};
use contiguity_operator::{crd, telemetry};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen(args) => match crdgen(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crdgen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            telemetry::init(args.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn crdgen(args: &CrdgenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let crds = crd::all();
    let Some(out) = &args.out else {
        for c in &crds {
            print!("{}", crd::to_yaml(c)?);
        }
        return Ok(());
    };
    for dir in std::iter::once(out).chain(args.chart_out.iter()) {
        std::fs::create_dir_all(dir)?;
        for c in &crds {
            std::fs::write(dir.join(crd::file_name(c)), crd::to_yaml(c)?)?;
        }
    }
    if let Some(docs) = &args.docs_out {
        if let Some(parent) = docs.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(docs, crd::reference::markdown(&crds))?;
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    contiguity::install_crypto_provider();
    let token = match (&args.token_file, &args.token) {
        (Some(path), _) => Some(ApiToken::new(std::fs::read_to_string(path)?.trim().to_string())),
        (None, Some(t)) if !t.trim().is_empty() => Some(ApiToken::new(t.trim().to_string())),
        _ => None,
    };
    if token.is_none() {
        tracing::warn!("no default Contiguity token: only resources with credentialsSecretRef can be reconciled");
    }
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let standby = Arc::new(AtomicBool::new(false));
    let health = HealthState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        standby: standby.clone(),
    };
    let server = tokio::spawn(server::serve(args.metrics_addr, health, stopped()));

    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing running reconciles");
        let _ = signal_tx.send(true);
    });

    let identity = args.instance.clone().unwrap_or_else(hostname);
    let elector = if args.leader_elect {
        let ns = args
            .leader_election_namespace
            .clone()
            .or_else(|| args.pod_namespace.clone())
            .unwrap_or_else(|| "default".to_string());
        let elector = Arc::new(LeaderElector::new(
            client.clone(),
            &ns,
            &args.leader_election_lease_name,
            &identity,
            args.leader_election_lease_duration,
        ));
        standby.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stopped() => return Ok(()),
        }
        standby.store(false, std::sync::atomic::Ordering::SeqCst);
        let holder = elector.clone();
        let lost_tx = stop_tx.clone();
        tokio::spawn(async move {
            holder.hold().await;
            tracing::error!("leadership lost: stopping");
            let _ = lost_tx.send(true);
            // Give reconciles a moment, then exit so no work happens without the lease.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            std::process::exit(1);
        });
        Some(elector)
    } else {
        None
    };

    let opts = RunOptions {
        namespaces: args.namespaces.iter().filter(|n| !n.is_empty()).cloned().collect(),
        label_selector: args.label_selector.clone(),
        concurrency: args.concurrency.max(1),
        settings: Settings {
            resync_interval: args.resync_interval,
            backoff_base: args.backoff_base,
            backoff_max: args.backoff_max,
        },
        client: ClientConfig {
            base_url: args.base_url.trim_end_matches('/').to_string(),
            timeout: args.request_timeout,
            rate_limit_per_sec: args.rate_limit,
            burst: args.rate_burst,
            ..ClientConfig::default()
        },
        default_token: token,
        instance: Some(identity),
    };
    let result = controller::run(client, opts, metrics, ready, stopped()).await;
    let _ = stop_tx.send(true);
    if let Some(elector) = elector {
        elector.release().await;
    }
    let _ = server.await;
    result.map_err(Into::into)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("contiguity-operator-{}", std::process::id()))
}
