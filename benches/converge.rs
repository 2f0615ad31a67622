//! Converge benchmark: N NumberLeases against the API server's own floor, on the real control
//! plane and the in-process sandbox. Prints one table and writes `target/bench/converge.json`.
//! Figures are printed, never asserted; it fails only when something never converges.
//!
//! Per N (default 100 and 1000; `--n 100,1000,10000` for more):
//! 1. floor: a bare client creates N objects and writes what a converge needs at the minimum
//!    (finalizer by merge patch, final status by server-side apply), no operator, no Contiguity;
//! 2. converge: the operator watches a fresh namespace, the same client creates N objects with
//!    the same concurrency, timed until every object is Ready for its generation;
//! 3. calls at the sandbox and API-server write requests per lease, operator peak RSS and CPU;
//! 4. SIGKILL and restart of the operator: calls until it reconciled all N again (+2 s);
//! 5. delete all N, timed until every object is gone and every lease terminated.
//!
//! `cargo bench` passes `--bench`; without it (as `cargo test --all-targets` runs bench
//! targets) the binary only checks its own parsers and exits.

mod common;

use clap::Parser;
use common::operator::OperatorProcess;
use common::plane::Plane;
use common::scrape::{self, ApiServerMetrics, ProcStats, Requests};
use common::tracker::Tracker;
use contiguity_operator::contiguity::{Operation, install_crypto_provider};
use contiguity_operator::controller::CONTROLLER_NAME;
use contiguity_operator::controller::events::Events;
use contiguity_operator::controller::number_lease::FINALIZER;
use contiguity_operator::crd::{BillingStatus, CREATE_REQUESTED_AT, LeaseOrigin, NumberLease, NumberLeaseStatus};
use contiguity_operator::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use contiguity_operator::status::{Phase, apply_status, conditions, now_rfc3339};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Token of the sandbox account the operator uses.
const TOKEN: &str = "contiguity_sk_bench_0123456789abcdef";
/// Contiguity operations that change something.
const MUTATING: [Operation; 3] = [Operation::Create, Operation::Configure, Operation::Terminate];

/// Converge benchmark (figures printed, never asserted).
#[derive(Debug, Parser)]
#[command(name = "converge")]
struct Args {
    /// Numbers of NumberLeases, comma-separated (e.g. 100,1000,10000).
    #[arg(long = "n", value_delimiter = ',', default_values_t = [100usize, 1000])]
    n: Vec<usize>,
    /// Requests in flight of the bench's own client (creates in the floor and the converge, deletes).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// RECONCILE_CONCURRENCY of the operator (default: the operator's own default).
    #[arg(long)]
    operator_concurrency: Option<u16>,
    /// CONTIGUITY_RATE_LIMIT of the operator (per-token requests/s; high so the sandbox never throttles).
    #[arg(long, default_value_t = 2000.0)]
    rate_limit: f64,
    /// CONTIGUITY_RATE_BURST of the operator.
    #[arg(long, default_value_t = 2000)]
    rate_burst: u32,
    /// Repeat the whole sequence this many times per N; the table adds the medians (this
    /// machine is shared, so single runs are noisy).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Extra environment of the operator, KEY=VALUE (repeatable), to try knobs.
    #[arg(long = "operator-env", value_parser = parse_kv)]
    operator_env: Vec<(String, String)>,
    /// RUST_LOG of the operator.
    #[arg(long, default_value = "info")]
    operator_log: String,
    /// Where to write the JSON figures (relative to the repository root).
    #[arg(long, default_value = "target/bench/converge.json")]
    out: PathBuf,
    /// Also measure a work floor: the bare client makes every API request the operator makes
    /// for a create (adds the create-requested-at marker to the finalizer patch, and the Event)
    /// with the operator's watch open; prints the converge's ratio to it too.
    #[arg(long)]
    work_floor: bool,
    /// Leave a part out of the work floor (repeatable), to see what each part costs.
    #[arg(long = "work-floor-without", value_enum)]
    work_floor_without: Vec<WorkPart>,
    /// Also write the sandbox's call log of the converge phase to target/bench/calls-n<N>.tsv.
    #[arg(long)]
    dump_calls: bool,
    /// A label stored in the JSON (e.g. "baseline").
    #[arg(long)]
    label: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Parts of the work floor beyond the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WorkPart {
    /// The create-requested-at annotation in the finalizer patch.
    Pending,
    /// The "Leased" Event.
    Event,
    /// The operator's NumberLease watch.
    Watches,
}

/// What the work floor does per lease beyond the floor.
struct WorkFloor {
    pending: bool,
    events: Option<Events>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() -> std::process::ExitCode {
    // Test runners pass their own flags (--nocapture, --test-threads...): only `cargo bench`
    // (which passes --bench) runs the benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return match scrape::self_check() {
            Ok(()) => {
                println!("converge: self-check ok; run the benchmark with `make bench` (cargo bench --bench converge)");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("converge: self-check failed: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("converge: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // On Ctrl-C the run is dropped, which stops the operator and the control plane it started.
    let interruptible = async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    };
    match runtime.block_on(interruptible) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("converge: FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Everything the bench shares between phases.
struct Bench {
    args: Args,
    repo: PathBuf,
    plane: Plane,
    kube: kube::Client,
    apiserver: ApiServerMetrics,
    http: reqwest::Client,
    clk_tck: f64,
}

async fn run(args: Args) -> Result<(), BoxError> {
    install_crypto_provider();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    println!("converge: starting the control plane (etcd + kube-apiserver)...");
    let plane = Plane::start(&repo)?;
    let kube = plane.client().await?;
    let apiserver = ApiServerMetrics::new(
        &plane.info.server,
        &plane.info.token,
        &std::fs::read(&plane.info.ca_file)?,
    )?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    println!(
        "converge: control plane up in {} ms at {}; client concurrency {}, operator concurrency {}, Contiguity client bucket {}/s burst {}",
        plane.info.startup_ms,
        plane.info.server,
        args.concurrency,
        args.operator_concurrency
            .map_or_else(|| "default".to_string(), |c| c.to_string()),
        args.rate_limit,
        args.rate_burst
    );
    let bench = Bench {
        args,
        repo,
        plane,
        kube,
        apiserver,
        http,
        clk_tck: scrape::clk_tck(),
    };
    bench.warm_up(50).await?;
    let mut results = Vec::new();
    for &n in &bench.args.n {
        for round in 1..=bench.args.rounds.max(1) {
            println!("\n== N = {n}, round {round}");
            let mut r = bench.one(n).await?;
            r.round = round;
            if let Some(obj) = r.json.as_object_mut() {
                obj.insert("round".into(), json!(round));
            }
            results.push(r);
        }
    }
    print_table(&bench.args, &results);
    let out = bench.repo.join(&bench.args.out);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let doc = json!({
        "label": bench.args.label,
        "when": now_rfc3339(),
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "settings": {
            "clientConcurrency": bench.args.concurrency,
            "operatorConcurrency": bench.args.operator_concurrency,
            "contiguityRateLimit": bench.args.rate_limit,
            "contiguityRateBurst": bench.args.rate_burst,
            "operatorEnv": bench.args.operator_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "resyncInterval": "10m",
            "workFloor": bench.args.work_floor,
            "workFloorWithout": bench.args.work_floor_without.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
        },
        "runs": results.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
        "medians": median_json(&results),
        "totalSeconds": started.elapsed().as_secs_f64(),
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!("\nconverge: figures written to {}", out.display());
    Ok(())
}

/// What one floor measured.
struct Floor {
    elapsed: Duration,
    apiserver_cpu: f64,
    writes: Requests,
    load: f64,
    cleanup: Duration,
}

/// The operator's NumberLease watch (full objects, shared by its cache and both controllers),
/// drained, so the work floor pays the same watch fan-out.
fn operator_like_watch(client: &kube::Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let full: Api<NumberLease> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        watcher(full, watcher::Config::default().any_semantic())
            .default_backoff()
            .for_each(|_| async {})
            .await;
    })
}

/// Figures of one N, for the table and the JSON.
#[derive(Clone)]
struct RunResult {
    n: usize,
    work_floor_s: Option<f64>,
    round: usize,
    floor_api_cpu_s: f64,
    converge_api_cpu_s: f64,
    floor_s: f64,
    converge_s: f64,
    ratio: f64,
    ready_p50_s: f64,
    ready_p95_s: f64,
    calls: BTreeMap<String, f64>,
    writes_create_op: f64,
    writes_delete_op: f64,
    events_create: f64,
    events_delete: f64,
    peak_rss_mib: f64,
    cpu_s: f64,
    delete_s: f64,
    restart_mutating: u64,
    restart_calls: u64,
    restart_writes: f64,
    json: Value,
}

impl Bench {
    fn leases(&self, ns: &str) -> Api<NumberLease> {
        Api::namespaced(self.kube.clone(), ns)
    }

    async fn writes(&self) -> Result<Requests, BoxError> {
        self.apiserver.writes().await
    }

    fn stats(&self, pid: u32) -> ProcStats {
        scrape::proc_stats(pid, self.clk_tck).unwrap_or_default()
    }

    async fn one(&self, n: usize) -> Result<RunResult, BoxError> {
        let c = self.args.concurrency.max(1);
        let sandbox = start_sandbox(n).await?;
        let mut numbers = sandbox.state().inventory_numbers();
        numbers.sort();
        numbers.truncate(n);
        if numbers.len() < n {
            return Err(format!("the sandbox offers {} numbers, {n} needed", numbers.len()).into());
        }
        let numbers = Arc::new(numbers);
        let timeout = Duration::from_secs(120) + Duration::from_millis(100) * n as u32;

        // 1. Floor (and, when asked, the work floor).
        let fl = self.floor(n, c, &numbers, false).await?;
        let (floor, floor_apiserver_cpu, load_floor) = (fl.elapsed, fl.apiserver_cpu, fl.load);
        let floor_writes = fl.writes.clone();
        let work = if self.args.work_floor {
            Some(self.floor(n, c, &numbers, true).await?)
        } else {
            None
        };

        // 2. Converge.
        let ns = self.plane.namespace(&self.kube, "bench-converge").await?;
        let api = self.leases(&ns);
        let mut op = self.start_operator(&sandbox, &ns, n)?;
        op.wait_ready(&self.http, Duration::from_secs(90)).await?;
        let mut tracker = Tracker::start(api.clone());
        tracker
            .wait_for(Duration::from_secs(30), |c| c.total == 0)
            .await
            .ok_or("the watch of the bench namespace never synced")?;
        sandbox.state().reset_calls();
        let load_converge = loadavg();
        let before = self.writes().await?;
        let created_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let apiserver_cpu = self.stats(self.plane.info.apiserver_pid).cpu_secs;
        let converge_started = Instant::now();
        {
            let api = api.clone();
            let numbers = numbers.clone();
            let created_at = created_at.clone();
            run_workers(n, c, move |i| {
                let api = api.clone();
                let number = numbers[i].clone();
                let created_at = created_at.clone();
                async move {
                    let name = lease_name(i);
                    let t = Instant::now();
                    create_lease(&api, &name, &number).await?;
                    if let Ok(mut m) = created_at.lock() {
                        m.insert(name, t);
                    }
                    Ok(())
                }
            })
            .await?;
        }
        let created = converge_started.elapsed();
        let Some(all_ready) = tracker.wait_for(timeout, |c| c.ready >= n).await else {
            let counts = tracker.counts();
            return Err(format!(
                "N={n}: only {} of {} NumberLeases Ready after {timeout:?}; operator log: {}",
                counts.ready,
                counts.total,
                op.log.display()
            )
            .into());
        };
        let converge = all_ready.duration_since(converge_started);
        let converge_apiserver_cpu = self.stats(self.plane.info.apiserver_pid).cpu_secs - apiserver_cpu;
        let ready_latencies = latencies(&created_at, &tracker.first_ready());
        println!(
            "converge: {n} Ready in {:.2} s (creates done after {:.2} s); ratio {:.2}; kube-apiserver CPU {:.2} s (floor {:.2} s)",
            converge.as_secs_f64(),
            created.as_secs_f64(),
            converge.as_secs_f64() / floor.as_secs_f64(),
            converge_apiserver_cpu,
            floor_apiserver_cpu
        );
        // Let trailing writes (if any) land before counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let converge_writes = self.writes().await?.since(&before);
        let converge_calls = sandbox.state().call_counts();
        if self.args.dump_calls {
            let lines: Vec<String> = sandbox
                .state()
                .calls()
                .iter()
                .map(|c| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}",
                        c.seq, c.started_at_ms, c.method, c.path, c.outcome
                    )
                })
                .collect();
            std::fs::write(
                self.repo.join(format!("target/bench/calls-n{n}.tsv")),
                lines.join("\n") + "\n",
            )?;
        }
        let reconciles = scrape::operator_reconciles(&self.http, op.metrics_port, "NumberLease")
            .await
            .unwrap_or(0.0);
        let stats = self.stats(op.pid());
        if !op.is_running() {
            return Err(format!("the operator died; see {}", op.log.display()).into());
        }

        // 4. Restart at steady state.
        op.kill();
        sandbox.state().reset_calls();
        let before = self.writes().await?;
        let restart_started = Instant::now();
        op.restart()?;
        let mut synced = None;
        while restart_started.elapsed() < timeout {
            let done = scrape::operator_reconciles(&self.http, op.metrics_port, "NumberLease")
                .await
                .unwrap_or(0.0);
            if done >= n as f64 {
                synced = Some(restart_started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let synced = synced.ok_or_else(|| format!("after a restart the operator did not reconcile all {n} leases"))?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let restart_calls = sandbox.state().call_counts();
        let restart_writes = self.writes().await?.since(&before);
        let restart_stats = self.stats(op.pid());
        let restart_mutating: u64 = MUTATING.iter().map(|o| op_total(&restart_calls, o.as_str())).sum();
        let restart_total: u64 = restart_calls.values().flat_map(|m| m.values()).sum();
        println!(
            "restart:  reconciled all {n} in {:.2} s; Contiguity calls in the window: {restart_total} ({restart_mutating} mutating); API writes {}",
            synced.as_secs_f64(),
            restart_writes.total("numberleases") + restart_writes.total("events") + 0.0
        );

        // 5. Delete.
        sandbox.state().reset_calls();
        let before = self.writes().await?;
        let delete_started = Instant::now();
        {
            let api = api.clone();
            run_workers(n, c, move |i| {
                let api = api.clone();
                async move {
                    let (name, dp) = (lease_name(i), DeleteParams::default());
                    retry(|| api.delete(&name, &dp)).await?;
                    Ok(())
                }
            })
            .await?;
        }
        tracker
            .wait_for(timeout, |c| c.total == 0)
            .await
            .ok_or_else(|| format!("N={n}: NumberLeases still present {timeout:?} after the deletes"))?;
        let deadline = Instant::now() + timeout;
        while sandbox.state().available_numbers().len() < n {
            if Instant::now() > deadline {
                return Err(format!("N={n}: leases still held at the sandbox {timeout:?} after the deletes").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delete = delete_started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let delete_writes = self.writes().await?.since(&before);
        let delete_calls = sandbox.state().call_counts();
        let after_delete_stats = self.stats(op.pid());
        println!(
            "delete:   {n} objects gone and leases terminated in {:.2} s",
            delete.as_secs_f64()
        );
        drop(tracker);
        drop(op);
        sandbox.shutdown().await;

        // Figures.
        let nf = n as f64;
        let per = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            m.iter().map(|(k, v)| (k.clone(), v / nf)).collect()
        };
        let calls_per: BTreeMap<String, f64> = converge_calls
            .iter()
            .map(|(op, m)| (op.clone(), m.values().sum::<u64>() as f64 / nf))
            .collect();
        // The bench's own requests (one POST per lease, one DELETE per lease) are not the operator's.
        let writes_create_op = (converge_writes.total("numberleases") - nf) / nf;
        let writes_delete_op = (delete_writes.total("numberleases") - nf) / nf;
        let mut sorted = ready_latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let json = json!({
            "n": n,
            "clientConcurrency": c,
            "floor": {
                "seconds": floor.as_secs_f64(),
                "writesPerLease": per(&floor_writes.breakdown("numberleases")),
                "cleanupSeconds": fl.cleanup.as_secs_f64(),
                "apiserverCpuSeconds": floor_apiserver_cpu,
                "loadAverageBefore": load_floor,
            },
            "workFloor": work.as_ref().map(|w| json!({
                "seconds": w.elapsed.as_secs_f64(),
                "apiserverCpuSeconds": w.apiserver_cpu,
                "loadAverageBefore": w.load,
                "writesPerLease": per(&w.writes.breakdown("numberleases")),
                "eventsPerLease": per(&w.writes.breakdown("events")),
                "convergeRatio": converge.as_secs_f64() / w.elapsed.as_secs_f64(),
            })),
            "converge": {
                "seconds": converge.as_secs_f64(),
                "createsDoneSeconds": created.as_secs_f64(),
                "ratio": converge.as_secs_f64() / floor.as_secs_f64(),
                "timeToReadySeconds": {
                    "p50": percentile(&sorted, 0.50),
                    "p95": percentile(&sorted, 0.95),
                    "p99": percentile(&sorted, 0.99),
                    "max": sorted.last().copied().unwrap_or(0.0),
                },
                "contiguityCallsPerLease": calls_per,
                "contiguityCallsByOutcome": converge_calls,
                "apiWritesPerLease": {
                    "numberleases": per(&converge_writes.breakdown("numberleases")),
                    "operatorNumberleases": writes_create_op,
                    "clientNumberleases": 1.0,
                    "events": per(&converge_writes.breakdown("events")),
                },
                "reconcilesPerLease": reconciles / nf,
                "apiserverCpuSeconds": converge_apiserver_cpu,
                "loadAverageBefore": load_converge,
                "operator": {
                    "peakRssMiB": stats.peak_rss_mib,
                    "rssMiB": stats.rss_mib,
                    "cpuSeconds": stats.cpu_secs,
                },
            },
            "restart": {
                "reconciledAllSeconds": synced.as_secs_f64(),
                "windowSeconds": synced.as_secs_f64() + 2.0,
                "contiguityCalls": restart_calls,
                "mutatingCalls": restart_mutating,
                "totalCalls": restart_total,
                "apiWrites": {
                    "numberleases": restart_writes.breakdown("numberleases"),
                    "events": restart_writes.breakdown("events"),
                },
                "operator": {
                    "peakRssMiB": restart_stats.peak_rss_mib,
                    "rssMiB": restart_stats.rss_mib,
                    "cpuSeconds": restart_stats.cpu_secs,
                },
            },
            "delete": {
                "seconds": delete.as_secs_f64(),
                "contiguityCallsPerLease": delete_calls.iter()
                    .map(|(op, m)| (op.clone(), m.values().sum::<u64>() as f64 / nf))
                    .collect::<BTreeMap<_, _>>(),
                "apiWritesPerLease": {
                    "numberleases": per(&delete_writes.breakdown("numberleases")),
                    "operatorNumberleases": writes_delete_op,
                    "clientNumberleases": 1.0,
                    "events": per(&delete_writes.breakdown("events")),
                },
                "operatorAfterRestartAndDelete": {
                    "peakRssMiB": after_delete_stats.peak_rss_mib,
                    "cpuSeconds": after_delete_stats.cpu_secs,
                },
            },
        });
        println!(
            "detail:   writes/lease on create {:?}, events {:?}; on delete {:?}, events {:?}",
            per(&converge_writes.breakdown("numberleases")),
            per(&converge_writes.breakdown("events")),
            per(&delete_writes.breakdown("numberleases")),
            per(&delete_writes.breakdown("events"))
        );
        Ok(RunResult {
            n,
            work_floor_s: work.as_ref().map(|w| w.elapsed.as_secs_f64()),
            round: 1,
            floor_api_cpu_s: floor_apiserver_cpu,
            converge_api_cpu_s: converge_apiserver_cpu,
            floor_s: floor.as_secs_f64(),
            converge_s: converge.as_secs_f64(),
            ratio: converge.as_secs_f64() / floor.as_secs_f64(),
            ready_p50_s: percentile(&sorted, 0.50),
            ready_p95_s: percentile(&sorted, 0.95),
            calls: calls_per,
            writes_create_op,
            writes_delete_op,
            events_create: converge_writes.total("events") / nf,
            events_delete: delete_writes.total("events") / nf,
            peak_rss_mib: stats.peak_rss_mib,
            cpu_s: stats.cpu_secs,
            delete_s: delete.as_secs_f64(),
            restart_mutating,
            restart_calls: restart_total,
            restart_writes: restart_writes.total("numberleases") + restart_writes.total("events"),
            json,
        })
    }

    fn start_operator(&self, sandbox: &SandboxHandle, ns: &str, n: usize) -> Result<OperatorProcess, BoxError> {
        let mut env = vec![
            (
                "KUBECONFIG".to_string(),
                self.plane.info.kubeconfig.display().to_string(),
            ),
            ("CONTIGUITY_BASE_URL".to_string(), sandbox.base_url()),
            ("CONTIGUITY_TOKEN".to_string(), TOKEN.to_string()),
            ("WATCH_NAMESPACES".to_string(), ns.to_string()),
            ("RESYNC_INTERVAL".to_string(), "10m".to_string()),
            ("CONTIGUITY_RATE_LIMIT".to_string(), self.args.rate_limit.to_string()),
            ("CONTIGUITY_RATE_BURST".to_string(), self.args.rate_burst.to_string()),
            ("LOG_FORMAT".to_string(), "plain".to_string()),
            ("RUST_LOG".to_string(), self.args.operator_log.clone()),
            ("POD_NAME".to_string(), "contiguity-operator-bench".to_string()),
        ];
        if let Some(cc) = self.args.operator_concurrency {
            env.push(("RECONCILE_CONCURRENCY".to_string(), cc.to_string()));
        }
        env.extend(self.args.operator_env.iter().cloned());
        let dir = self.repo.join("target/bench/logs");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join(format!("operator-n{n}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        OperatorProcess::start(env, log)
    }

    /// The floor: a bare client creates `n` objects and writes what a converge needs at the
    /// minimum (finalizer, final status), in a fresh namespace that only the bench watches.
    /// With `work`, it makes every request the operator makes for a create (finalizer with the
    /// create-requested-at marker, Event, final status) with the operator's watch open
    /// as well.
    async fn floor(&self, n: usize, c: usize, numbers: &Arc<Vec<String>>, work: bool) -> Result<Floor, BoxError> {
        let what = if work { "work floor" } else { "floor" };
        let ns = self
            .plane
            .namespace(&self.kube, if work { "bench-work-floor" } else { "bench-floor" })
            .await?;
        let api = self.leases(&ns);
        // The same watch as in the converge, so that the observer costs the same in both.
        let mut tracker = Tracker::start(api.clone());
        tracker
            .wait_for(Duration::from_secs(30), |c| c.total == 0)
            .await
            .ok_or("the watch of the floor namespace never synced")?;
        let without = |p: WorkPart| self.args.work_floor_without.contains(&p);
        let extra_watches = if work && !without(WorkPart::Watches) {
            Some(operator_like_watch(&self.kube, &ns))
        } else {
            None
        };
        let events = Events::new(self.kube.clone(), CONTROLLER_NAME, Some("bench-work-floor".into()));
        let plan = work.then(|| {
            Arc::new(WorkFloor {
                pending: !without(WorkPart::Pending),
                events: (!without(WorkPart::Event)).then_some(events),
            })
        });
        let load = loadavg();
        let before = self.writes().await?;
        let apiserver_cpu = self.stats(self.plane.info.apiserver_pid).cpu_secs;
        let started = Instant::now();
        {
            let api = api.clone();
            let numbers = numbers.clone();
            run_workers(n, c, move |i| {
                let api = api.clone();
                let number = numbers[i].clone();
                let plan = plan.clone();
                async move { floor_one(&api, i, &number, plan.as_deref()).await }
            })
            .await?;
        }
        let elapsed = started.elapsed();
        let apiserver_cpu = self.stats(self.plane.info.apiserver_pid).cpu_secs - apiserver_cpu;
        let writes = self.writes().await?.since(&before);
        println!(
            "{what}:{}{n} objects done in {:.2} s ({:.0} numberleases writes/s, {:.2} events/lease); kube-apiserver CPU {:.2} s",
            " ".repeat(10usize.saturating_sub(what.len() + 1)),
            elapsed.as_secs_f64(),
            writes.total("numberleases") / elapsed.as_secs_f64(),
            writes.total("events") / n as f64 + 0.0,
            apiserver_cpu
        );
        drop(tracker);
        if let Some(w) = extra_watches {
            w.abort();
        }
        let cleanup_started = Instant::now();
        self.remove_all(&api, n, c).await?;
        let cleanup = cleanup_started.elapsed();
        Ok(Floor {
            elapsed,
            apiserver_cpu,
            writes,
            load,
            cleanup,
        })
    }

    /// Runs the floor once on a few objects so that neither measured phase pays the API
    /// server's first-use costs (CRD handler, server-side apply type converter, connections).
    async fn warm_up(&self, n: usize) -> Result<(), BoxError> {
        let started = Instant::now();
        let ns = self.plane.namespace(&self.kube, "bench-warm-up").await?;
        let api = self.leases(&ns);
        let a = api.clone();
        run_workers(n, self.args.concurrency.max(1), move |i| {
            let api = a.clone();
            async move { floor_one(&api, i, &format!("+1999{i:07}"), None).await }
        })
        .await?;
        self.remove_all(&api, n, self.args.concurrency.max(1)).await?;
        println!(
            "converge: warmed up the API server with {n} objects in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Removes the floor's objects: finalizers off (nothing else would), then one deletecollection.
    async fn remove_all(&self, api: &Api<NumberLease>, n: usize, c: usize) -> Result<(), BoxError> {
        let a = api.clone();
        run_workers(n, c, move |i| {
            let api = a.clone();
            async move {
                let (name, pp) = (lease_name(i), PatchParams::default());
                let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
                retry(|| api.patch(&name, &pp, &patch)).await?;
                Ok(())
            }
        })
        .await?;
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        Ok(())
    }
}

async fn start_sandbox(n: usize) -> Result<SandboxHandle, BoxError> {
    let mut cfg = SandboxConfig::with_tokens([TOKEN]);
    // `+1555` followed by 7 digits: NANP-shaped numbers for up to 10 million leases.
    cfg.inventory.prefix = "+1555".to_string();
    cfg.inventory.count = n;
    cfg.seed = 42;
    Ok(Sandbox::start(cfg, "127.0.0.1:0".parse()?).await?)
}

fn lease_name(i: usize) -> String {
    format!("nl-{i:05}")
}

fn lease_object(name: &str, number: &str) -> Result<NumberLease, BoxError> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "contiguity.com/v1alpha1",
        "kind": "NumberLease",
        "metadata": {"name": name},
        "spec": {"number": number, "billingMethod": "monthly"},
    }))?)
}

async fn create_lease(api: &Api<NumberLease>, name: &str, number: &str) -> Result<NumberLease, BoxError> {
    let (obj, pp) = (lease_object(name, number)?, PostParams::default());
    Ok(retry(|| api.create(&pp, &obj)).await?)
}

/// The floor for one lease: create, add the finalizer the way the operator does (one merge
/// patch conditional on the resourceVersion), write the final status the way the operator
/// does (one server-side apply of the status subresource, the fields a converged lease
/// carries).
///
/// With `work` (the work floor) the finalizer patch also carries the create-requested-at
/// marker and the Event is published, as the operator does around its create call.
async fn floor_one(api: &Api<NumberLease>, i: usize, number: &str, work: Option<&WorkFloor>) -> Result<(), BoxError> {
    let name = lease_name(i);
    let created = create_lease(api, &name, number).await?;
    let now = now_rfc3339();
    let mut meta = json!({"resourceVersion": created.metadata.resource_version, "finalizers": [FINALIZER]});
    if work.is_some_and(|plan| plan.pending) {
        meta["annotations"] = json!({ CREATE_REQUESTED_AT: now });
    }
    let (patch, pp) = (Patch::Merge(json!({ "metadata": meta })), PatchParams::default());
    retry(|| api.patch(&name, &pp, &patch))
        .await
        .map_err(|e| format!("adding the finalizer to {name}: {e}"))?;
    let lease_id = format!("lse_{:016x}", rand::random::<u64>());
    if let Some(events) = work.and_then(|plan| plan.events.as_ref()) {
        let note = format!("leased {number} as lease {lease_id}");
        events
            .publish(&created, EventType::Normal, "Leased", "Lease", &note)
            .await?;
    }
    let phase = Phase::Ready {
        reason: "Leased",
        message: format!("{number} is leased ({lease_id})"),
    };
    let status = NumberLeaseStatus {
        number: Some(number.to_string()),
        lease_id: Some(lease_id),
        lease_status: Some("active".to_string()),
        origin: Some(LeaseOrigin::Created),
        billing: Some(BillingStatus {
            method: Some("monthly".to_string()),
            currency: Some("USD".to_string()),
            monthly_rate: Some("19.99".to_string()),
            upfront_fee: Some("2.99".to_string()),
            period_start: Some(now.clone()),
            period_end: None,
        }),
        last_sync_time: Some(now.clone()),
        observed_generation: created.metadata.generation,
        conditions: conditions(&[], created.metadata.generation, &phase, &now),
        ..NumberLeaseStatus::default()
    };
    retry(|| apply_status(api, &created, &status)).await?;
    Ok(())
}

/// Retries a request on server-side or transport failures (3 attempts); the bench counts on
/// every request landing once, so anything else is an error.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code < 500 && s.code != 429 => return Err(kube::Error::Api(s)),
            Err(e) if attempt >= 2 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
}

/// Runs `job(0..n)` on `c` spawned workers (each takes the next index when done).
async fn run_workers<F, Fut>(n: usize, c: usize, job: F) -> Result<(), BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut tasks = Vec::new();
    for _ in 0..c.min(n.max(1)) {
        let next = next.clone();
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), BoxError>(());
                }
                job(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Seconds from each object's create request to the watch showing it Ready.
fn latencies(created: &Mutex<HashMap<String, Instant>>, ready: &HashMap<String, Instant>) -> Vec<f64> {
    let Ok(created) = created.lock() else {
        return Vec::new();
    };
    created
        .iter()
        .filter_map(|(name, t)| ready.get(name).map(|r| r.saturating_duration_since(*t).as_secs_f64()))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The 1-minute load average (other work on this machine skews the figures).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn op_total(calls: &BTreeMap<String, BTreeMap<String, u64>>, op: &str) -> u64 {
    calls.get(op).map(|m| m.values().sum()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Field-wise medians of the rounds of one N (the ratio is the median of the rounds' ratios).
fn medians(rows: &[&RunResult]) -> Option<RunResult> {
    let first = (*rows.first()?).clone();
    let m = |f: &dyn Fn(&RunResult) -> f64| median(rows.iter().map(|r| f(r)).collect());
    let mut calls = BTreeMap::new();
    for k in rows.iter().flat_map(|r| r.calls.keys()) {
        calls.insert(k.clone(), m(&|r| r.calls.get(k).copied().unwrap_or(0.0)));
    }
    Some(RunResult {
        round: 0,
        floor_api_cpu_s: m(&|r| r.floor_api_cpu_s),
        converge_api_cpu_s: m(&|r| r.converge_api_cpu_s),
        floor_s: m(&|r| r.floor_s),
        converge_s: m(&|r| r.converge_s),
        ratio: m(&|r| r.ratio),
        ready_p50_s: m(&|r| r.ready_p50_s),
        ready_p95_s: m(&|r| r.ready_p95_s),
        calls,
        writes_create_op: m(&|r| r.writes_create_op),
        writes_delete_op: m(&|r| r.writes_delete_op),
        events_create: m(&|r| r.events_create),
        events_delete: m(&|r| r.events_delete),
        peak_rss_mib: m(&|r| r.peak_rss_mib),
        cpu_s: m(&|r| r.cpu_s),
        delete_s: m(&|r| r.delete_s),
        restart_mutating: rows.iter().map(|r| r.restart_mutating).max().unwrap_or(0),
        restart_calls: rows.iter().map(|r| r.restart_calls).max().unwrap_or(0),
        restart_writes: rows.iter().map(|r| r.restart_writes).fold(0.0, f64::max),
        work_floor_s: first.work_floor_s.map(|_| m(&|r| r.work_floor_s.unwrap_or(0.0))),
        ..first
    })
}

/// Medians over the rounds of each N.
fn median_json(results: &[RunResult]) -> Vec<Value> {
    let mut ns: Vec<usize> = results.iter().map(|r| r.n).collect();
    ns.dedup();
    ns.into_iter()
        .filter_map(|n| {
            let of_n: Vec<&RunResult> = results.iter().filter(|r| r.n == n).collect();
            let m = medians(&of_n)?;
            Some(json!({
                "n": n,
                "rounds": of_n.len(),
                "floorSeconds": m.floor_s,
                "convergeSeconds": m.converge_s,
                "ratio": m.ratio,
                "apiserverCpuRatio": m.converge_api_cpu_s / m.floor_api_cpu_s.max(1e-9),
                "timeToReadyP50Seconds": m.ready_p50_s,
                "timeToReadyP95Seconds": m.ready_p95_s,
                "contiguityCallsPerLease": m.calls,
                "operatorWritesPerLeaseCreate": m.writes_create_op,
                "operatorWritesPerLeaseDelete": m.writes_delete_op,
                "eventsPerLeaseCreate": m.events_create,
                "eventsPerLeaseDelete": m.events_delete,
                "operatorPeakRssMiB": m.peak_rss_mib,
                "operatorCpuSeconds": m.cpu_s,
                "deleteSeconds": m.delete_s,
                "restartMutatingCallsMax": m.restart_mutating,
                "restartCallsMax": m.restart_calls,
            }))
        })
        .collect()
}

fn print_table(args: &Args, results: &[RunResult]) {
    println!(
        "\nconverge benchmark: client concurrency {}, operator concurrency {}, Contiguity client bucket {}/s (burst {}), resync 10m",
        args.concurrency,
        args.operator_concurrency
            .map_or_else(|| "default".to_string(), |c| c.to_string()),
        args.rate_limit,
        args.rate_burst
    );
    println!(
        "{:>9} {:>8} {:>10} {:>6} {:>7} {:>11} {:>26} {:>11} {:>12} {:>8} {:>6} {:>8} {:>13} {:>14}",
        "N",
        "floor s",
        "converge s",
        "ratio",
        "api CPU",
        "p50/p95 s",
        "calls/lease get+cr (other)",
        "writes/l cr",
        "writes/l del",
        "RSS MiB",
        "CPU s",
        "delete s",
        "events cr/del",
        "restart calls"
    );
    let mut rows: Vec<(String, RunResult)> = Vec::new();
    let mut ns: Vec<usize> = results.iter().map(|r| r.n).collect();
    ns.dedup();
    for n in ns {
        let of_n: Vec<&RunResult> = results.iter().filter(|r| r.n == n).collect();
        for r in &of_n {
            let label = if of_n.len() > 1 {
                format!("{n} #{}", r.round)
            } else {
                n.to_string()
            };
            rows.push((label, (*r).clone()));
        }
        if of_n.len() > 1
            && let Some(m) = medians(&of_n)
        {
            rows.push((format!("{n} med"), m));
        }
    }
    let with_work: Vec<(String, RunResult)> = rows.iter().filter(|(_, r)| r.work_floor_s.is_some()).cloned().collect();
    for (label, r) in rows {
        let get = r.calls.get(Operation::Get.as_str()).copied().unwrap_or(0.0);
        let create = r.calls.get(Operation::Create.as_str()).copied().unwrap_or(0.0);
        let other: f64 = r
            .calls
            .iter()
            .filter(|(k, _)| k.as_str() != Operation::Get.as_str() && k.as_str() != Operation::Create.as_str())
            .map(|(_, v)| v)
            .sum::<f64>()
            + 0.0;
        println!(
            "{:>9} {:>8.2} {:>10.2} {:>6.2} {:>7} {:>11} {:>26} {:>11} {:>12} {:>8.1} {:>6.2} {:>8.2} {:>13} {:>14}",
            label,
            r.floor_s,
            r.converge_s,
            r.ratio,
            format!("{:.2}x", r.converge_api_cpu_s / r.floor_api_cpu_s.max(1e-9)),
            format!("{:.2}/{:.2}", r.ready_p50_s, r.ready_p95_s),
            format!("{get:.2}+{create:.2} ({other:.2})"),
            format!("{:.2}+1", r.writes_create_op),
            format!("{:.2}+1", r.writes_delete_op),
            r.peak_rss_mib,
            r.cpu_s,
            r.delete_s,
            format!("{:.2}/{:.2}", r.events_create, r.events_delete),
            format!(
                "{}mut/{} w{}",
                r.restart_mutating,
                r.restart_calls,
                r.restart_writes + 0.0
            ),
        );
    }
    if !with_work.is_empty() {
        println!(
            "\n{:>9} {:>8} {:>13} {:>10} {:>6} {:>16}",
            "N", "floor s", "work floor s", "converge s", "ratio", "ratio vs work"
        );
        for (label, r) in &with_work {
            let w = r.work_floor_s.unwrap_or(0.0);
            println!(
                "{:>9} {:>8.2} {:>13.2} {:>10.2} {:>6.2} {:>16.2}",
                label,
                r.floor_s,
                w,
                r.converge_s,
                r.ratio,
                r.converge_s / w.max(1e-9)
            );
        }
        println!(
            "work floor = the bare client makes every request the operator makes for a create (finalizer with the\n\
             create-requested-at marker, Event, final status) with the operator's watch open; ratio vs work = converge s / work floor s (the operator's own overhead)."
        );
    }
    println!(
        "ratio = converge s / floor s. api CPU = kube-apiserver CPU seconds during the converge / during the floor.\n\
         writes/l = API-server write requests per lease on numberleases: the operator's + the bench's own POST (create) or DELETE (delete);\n\
         events are counted separately (events/lease). restart calls = Contiguity calls after SIGKILL + restart until all N reconciled (+2 s):\n\
         mutating (create/configure/terminate) / all, and API writes in that window. RSS = operator VmHWM, CPU = operator user+sys, after the converge."
    );
}
