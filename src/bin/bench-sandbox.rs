//! `bench-sandbox`: throughput of the in-process sandbox over loopback, measured with the real
//! client. Prints requests/s and latency percentiles for `GET /numbers/{n}` and
//! `POST /numbers/lease/{n}`; asserts nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use contiguity_operator::contiguity::{
    ApiToken, BillingMethod, ClientConfig, ClientPool, ContiguityClient, install_crypto_provider,
};
use contiguity_operator::sandbox::{InventorySpec, Sandbox, SandboxConfig};

/// Sandbox throughput bench.
#[derive(Debug, Parser)]
#[command(name = "bench-sandbox")]
struct Args {
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 3.0)]
    duration_secs: f64,
    /// Inventory size (the lease phase stops when it runs out).
    #[arg(long, default_value_t = 200_000)]
    numbers: usize,
    /// Tokio worker threads (default: number of CPUs).
    #[arg(long)]
    workers: Option<usize>,
}

struct Phase {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn print(&self, name: &str) {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                0.0
            } else {
                let i = ((l.len() as f64 - 1.0) * p).round() as usize;
                f64::from(l[i]) / 1000.0
            }
        };
        println!(
            "{name:<28} {:>8} req in {:>5.2}s = {:>9.0} req/s  errors {:<4} p50 {:.2} ms  p99 {:.2} ms",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.errors,
            pct(0.5),
            pct(0.99),
        );
    }
}

async fn run_phase<F, Fut>(concurrency: usize, duration: Duration, f: F) -> Phase
where
    F: Fn(usize, usize) -> Option<Fut> + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = 0usize;
            while Instant::now() < deadline {
                let Some(fut) = f(task, i) else { break };
                let t = Instant::now();
                if !fut.await {
                    errors += 1;
                }
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                i += 1;
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    Phase {
        requests: latencies_us.len(),
        errors,
        elapsed: start.elapsed(),
        latencies_us,
    }
}

async fn bench(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    install_crypto_provider();
    let token = "contiguity_sk_bench";
    let cfg = SandboxConfig {
        inventory: InventorySpec {
            count: args.numbers,
            prefix: "+1555".to_owned(),
            ..InventorySpec::default()
        },
        accounts: vec![token.to_owned()],
        call_log_capacity: 2_000_000,
        ..SandboxConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let sandbox = Sandbox::start(cfg, addr).await?;
    let state = sandbox.state();
    let numbers: Arc<Vec<String>> = Arc::new(state.inventory_numbers());
    let pool = ClientPool::new(
        ClientConfig {
            base_url: sandbox.base_url(),
            rate_limit_per_sec: 0.0, // no client-side bucket: measure the server
            read_retries: 0,
            timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        },
        None,
    );
    let client: ContiguityClient = pool.client(ApiToken::new(token.to_owned()))?;
    let duration = Duration::from_secs_f64(args.duration_secs);
    println!(
        "sandbox at {} with {} numbers; {} tasks, {:.1}s per phase, {} worker threads",
        sandbox.base_url(),
        numbers.len(),
        args.concurrency,
        args.duration_secs,
        args.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
    );

    // Warm-up: open the connections.
    {
        let c = client.clone();
        let ns = numbers.clone();
        run_phase(args.concurrency, Duration::from_millis(300), move |t, i| {
            let c = c.clone();
            let n = ns[(t * 7919 + i) % ns.len()].clone();
            Some(async move { c.get(&n).await.is_ok() })
        })
        .await;
    }

    let c = client.clone();
    let ns = numbers.clone();
    let get = run_phase(args.concurrency, duration, move |t, i| {
        let c = c.clone();
        let n = ns[(t * 7919 + i) % ns.len()].clone();
        Some(async move { c.get(&n).await.is_ok() })
    })
    .await;
    get.print("GET /numbers/{n}");

    let c = client.clone();
    let ns = numbers.clone();
    let next = Arc::new(AtomicUsize::new(0));
    let lease = run_phase(args.concurrency, duration, move |_, _| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let n = ns.get(i)?.clone();
        let c = c.clone();
        Some(async move { c.create(&n, BillingMethod::Monthly).await.is_ok() })
    })
    .await;
    lease.print("POST /numbers/lease/{n}");

    println!(
        "sandbox saw {} calls; {} leases",
        state.total_calls(),
        state.leases().len()
    );
    sandbox.shutdown().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = args.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-sandbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
