//! The `sim` command line: `sim bench` runs the benchmarks, `sim failover` measures failover,
//! `sim chaos` injects faults into a real cluster and checks what clients were told, `sim dst`
//! simulates a cluster deterministically (see `sim <command> --help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use flotilla_node::bugs::Bug;
use flotilla_sim::bench::{self, BenchOptions, cluster::locate_node_bin};
use flotilla_sim::chaos::{self, ChaosOptions};
use flotilla_sim::dst::{self, DstOptions, SeedOutcome, plan::FaultKind, seeds::SeedsOptions};
use flotilla_sim::failover::{self, FailoverOptions};

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Flotilla's simulator, chaos runner and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Benchmark real `node` processes on loopback (fresh temporary data directories, fsync on).
    ///
    /// Figures are taken with release builds: `cargo build --release -p flotilla-node -p
    /// flotilla-sim`, then `target/release/sim bench`. Exit status: 0 when every task
    /// succeeded, 1 when some did not (the report says how many), 2 when the benchmark could
    /// not run.
    Bench(BenchArgs),
    /// SIGKILL the leader of a real cluster under a stream of probe tasks, round after round:
    /// how long until tasks complete again (release builds for figures).
    Failover(FailoverArgs),
    /// Kill (SIGKILL, then restart) and freeze (SIGSTOP, then SIGCONT) nodes of a real cluster
    /// at random while clients submit and wait for tasks; then heal, read every acknowledged
    /// task, and check that none was lost, none changed after it was final, and every
    /// idempotency key kept its id.
    ///
    /// With `--net` (root): each node in its own network namespace, in `--zones` data centers
    /// `--wan-rtt-ms` apart, and network faults too (partitions of a node or a zone, one-way
    /// cuts, loss, delay and jitter). Failovers after leader faults are measured either way.
    ///
    /// Exit status: 0 when no property was violated, 1 when one was (the seed and the command
    /// that reruns it are printed), 2 when the run could not be carried out.
    Chaos(ChaosArgs),
    /// Deterministic simulation: the whole cluster (Raft, storage, gRPC, workers, clients) in
    /// this process on simulated time, network and disk, with faults drawn from a seed.
    ///
    /// `--seed N` runs one seed and prints its outcome; `--seeds A..B` runs each seed of the
    /// range in a child process, several at once, and lists the failures with the command that
    /// replays each. Exit status: 0 when no invariant was violated, 1 when one was, 2 when the
    /// simulator could not run.
    Dst(DstArgs),
}

#[derive(clap::Args, Debug)]
struct ChaosArgs {
    /// Nodes in the cluster (at least 3; at most a minority is faulty at once).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds of faults (the healed phase comes after).
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// Seed of every random choice (default: a random one, printed on stderr).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// The `node` executable (default: `node` next to this executable).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Each node in its own network namespace behind a switch with WAN delay and network
    /// faults (needs root and `ip`; the namespaces are removed afterwards).
    #[arg(long)]
    net: bool,
    /// With --net: zones (data centers); node i is in zone i % zones.
    #[arg(long, default_value_t = 3, requires = "net")]
    zones: usize,
    /// With --net: round trip between two zones, drawn per pair from `A..B` ms (both included).
    #[arg(long, default_value = "30..80", value_parser = parse_rtt, requires = "net")]
    wan_rtt_ms: std::ops::RangeInclusive<u64>,
    /// Only these faults, comma-separated (default: kill,stop; with --net all of them).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<chaos::FaultKind>,
    /// Further flags for every node, in one string (e.g. "--election-timeout-ms-min 600
    /// --election-timeout-ms-max 1200").
    #[arg(long, allow_hyphen_values = true)]
    node_args: Option<String>,
}

/// `A..B` with both ends included, `A <= B`.
fn parse_rtt(s: &str) -> std::result::Result<std::ops::RangeInclusive<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range like 30..80"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("`{a}`: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("`{b}`: {e}"))?;
    if b < a {
        return Err(format!("`{s}` is empty"));
    }
    Ok(a..=b)
}

#[derive(clap::Args, Debug)]
struct DstArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds", required_unless_present = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, `A..B` (B excluded), one child process each.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<std::ops::Range<u64>>,
    /// Switch on a deliberate bug (ack-before-fsync, accept-stale-completion, forget-vote,
    /// heartbeat-keeps-old-timer, schedule-fires-early, limit-off-by-one, revoke-keeps-lease, callback-early, snapshot-drops-attempts), to see the checker
    /// catch it.
    #[arg(long, value_parser = parse_bug)]
    bug: Option<Bug>,
    /// Only these faults (comma-separated; default: a mix drawn from the seed).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// End with a line `trace-hash HEX`: the hash of the run's trace (one seed only).
    #[arg(long)]
    trace_hash: bool,
    /// Print every trace event to stderr as it happens (one seed only).
    #[arg(long)]
    trace: bool,
    /// If the seed fails, look for a smaller fault mix that still fails (one seed only).
    #[arg(long, requires = "seed")]
    shrink: bool,
    /// Print JSON: the seed's outcome, or a summary of the range.
    #[arg(long)]
    json: bool,
    /// Seeds run at once with `--seeds` (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// With `--seeds`: stop starting seeds after the first failure.
    #[arg(long)]
    stop_at_first: bool,
    /// Wall-clock limit of one seed, in seconds (a hung seed fails).
    #[arg(long, default_value_t = 600)]
    seed_timeout_s: u64,
}

fn parse_range(s: &str) -> std::result::Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range like 0..1000"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("`{a}`: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("`{b}`: {e}"))?;
    if b <= a {
        return Err(format!("`{s}` is empty"));
    }
    Ok(a..b)
}

fn parse_bug(s: &str) -> std::result::Result<Bug, String> {
    Bug::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug `{s}`; one of: {}", names.join(", "))
    })
}

#[derive(clap::Args, Debug)]
struct FailoverArgs {
    /// Nodes in the cluster (at least 3).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Leader kills, one per round (the killed node is restarted between rounds).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Workers per node.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The `node` executable (default: `node` next to this executable).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// (a) submit throughput with no workers; (b) end-to-end throughput, submit → result;
    /// (c) open-loop latency; CPU and peak RSS per node.
    Throughput,
    /// Memory per pending task (empty args, no workers), and restart time after SIGKILL with
    /// that backlog.
    Backlog,
    /// Open-loop noop tasks at --latency-rate for --latency-s, every --long-every-th one a
    /// `sleep` of --long-ms: the latency of the short ones (what a long task held ahead of
    /// them costs).
    Mix,
    /// The end-to-end maximum (closed loop, --tasks), then an open loop of single submits at
    /// --load-fraction of it for --latency-s on the same cluster: latency across snapshots.
    Sustained,
    /// End-to-end rounds of --tasks on --python-workers `flotilla-worker` processes per node
    /// (the Python SDK, --workers threads each, default 8), the nodes' own pools idle: issue
    /// 11's Python-worker figure, with CPU per task of nodes, workers and the load generator.
    Python,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    scenario: Scenario,
    /// Nodes in the cluster (the first founds it, the others join).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Tasks to submit (default: 100000; 1000000 for the backlog scenario; 50000 to size the
    /// sustained scenario's load).
    #[arg(long)]
    tasks: Option<usize>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Tasks per submit request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Submit requests each client keeps in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Tasks per second of the open-loop latency run.
    #[arg(long, default_value_t = 200.0)]
    latency_rate: f64,
    /// Seconds of the open-loop latency run.
    #[arg(long, default_value_t = 5.0)]
    latency_s: f64,
    /// Workers per node in the end-to-end and latency phases (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Run the end-to-end and latency phases on this many Rust remote workers per node (over
    /// the worker stream, each holding up to --workers tasks) instead of the in-process pool.
    #[arg(long, default_value_t = 0)]
    remote_workers: usize,
    /// The nodes' --prefetch (`auto`, a number, 0); not passed unless given.
    #[arg(long)]
    prefetch: Option<String>,
    /// Mix scenario: every this-many-th task is a long one.
    #[arg(long, default_value_t = 50)]
    long_every: usize,
    /// Mix scenario: how long a long task sleeps, in ms.
    #[arg(long, default_value_t = 1000)]
    long_ms: u64,
    /// Sustained scenario: the open loop's rate as a fraction of the measured maximum.
    #[arg(long, default_value_t = 0.5)]
    load_fraction: f64,
    /// Python scenario: `flotilla-worker` processes per node.
    #[arg(long, default_value_t = 1)]
    python_workers: usize,
    /// Python scenario: the interpreter (default: target/sdk-venv/bin/python of this checkout
    /// when it exists, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Python scenario: the SDK's `src` directory (default: this checkout's client/python/src).
    #[arg(long)]
    sdk_src: Option<PathBuf>,
    /// Python scenario: the workers' --prefetch (default: theirs, `auto`).
    #[arg(long)]
    worker_prefetch: Option<String>,
    /// Python scenario: measured rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Python scenario: tasks of the warm-up round before them.
    #[arg(long, default_value_t = 2000)]
    warmup: usize,
    /// Sustained scenario: the clients send one request (and one wait stream) per task, as
    /// before issue 15, instead of gathering concurrent calls; for comparisons.
    #[arg(long)]
    no_gather: bool,
    /// The `node` executable (default: `node` next to this executable).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Upper bound on each phase, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulated run's nodes log their (injected) troubles by the thousand: quiet by default.
    let default_filter = if matches!(cli.command, Cmd::Dst(_)) {
        "off"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if matches!(cli.command, Cmd::Dst(_)) {
        // Simulated time and host, not the wall clock: what lines up with the trace.
        logs.with_timer(dst::SimTimer).init();
    } else {
        logs.init();
    }
    // The simulator makes its own runtimes, one per simulated host: not inside another.
    let cli = match cli.command {
        Cmd::Dst(args) => return dst_cmd(args),
        command => Cli { command },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sim: cannot start tokio: {e}");
            return ExitCode::from(2);
        }
    };
    // On Ctrl-C the benchmark future is dropped, and with it the clusters: their nodes are killed.
    let outcome = runtime.block_on(async {
        tokio::select! {
                        r = run(cli.command) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Bench(args) => bench_cmd(args).await,
        Cmd::Failover(args) => failover_cmd(args).await,
        Cmd::Chaos(args) => chaos_cmd(args).await,
        Cmd::Dst(_) => unreachable!("dst runs outside the tokio runtime"),
    }
}

async fn chaos_cmd(args: ChaosArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.duration_s.is_finite() && args.duration_s > 0.0,
        "--duration-s must be above 0"
    );
    // A fresh seed when none is given (printed, so the run can be repeated): the one draw
    // that is meant to differ from run to run.
    #[allow(clippy::disallowed_methods)]
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("sim chaos: seed {seed}");
    let mut opts = ChaosOptions::new(locate_node_bin(args.node_bin.as_deref())?, seed);
    opts.nodes = args.nodes;
    opts.duration = Duration::from_secs_f64(args.duration_s);
    opts.clients = args.clients;
    if args.net {
        opts = opts.on_network(chaos::net::NetOptions {
            zones: args.zones,
            wan_rtt_ms: args.wan_rtt_ms,
        });
    }
    if !args.faults.is_empty() {
        opts.faults = args.faults;
    }
    if let Some(node_args) = &args.node_args {
        opts.node_args = node_args.split_whitespace().map(str::to_owned).collect();
    }
    let mut report = chaos::run(&opts).await?;
    // The exact command line: this executable, these choices, the same node binary.
    let exe = std::env::args().next().unwrap_or_else(|| "sim".into());
    report.rerun = format!("{exe} chaos {}", opts.rerun_args().join(" "));
    if let Some(bin) = &args.node_bin {
        report.rerun.push_str(&format!(" --node-bin {}", bin.display()));
    }
    if args.json {
        report.rerun.push_str(" --json");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "sim chaos: {} violation(s) with seed {seed}; rerun: {}",
        report.violations.len(),
        report.rerun
    );
    Ok(ExitCode::FAILURE)
}

fn dst_cmd(args: DstArgs) -> ExitCode {
    let template = DstOptions {
        seed: 0,
        bug: args.bug,
        faults: args.faults.clone(),
        echo_trace: args.trace,
    };
    if let Some(seed) = args.seed {
        let opts = DstOptions { seed, ..template };
        let outcome = dst::run_seed(&opts);
        if args.json {
            match serde_json::to_string(&outcome) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("sim dst: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            print!("{}", dst_text(&outcome));
        }
        if args.shrink && !outcome.passed() {
            let mix: Vec<FaultKind> = dst::plan::Plan::from_seed(seed, &opts.faults).faults;
            println!("shrinking the fault mix {mix:?} ...");
            let timeout = Duration::from_secs(args.seed_timeout_s);
            let shrunk = dst::seeds::shrink(None, &opts, &mix, timeout, |o, fails| {
                println!(
                    "  {:?}: {}",
                    o.faults,
                    if fails { "still fails" } else { "passes" }
                );
            });
            match shrunk {
                Ok(best) => println!("smallest failing run: {}", best.replay_command()),
                Err(e) => eprintln!("sim dst: cannot shrink: {e}"),
            }
        }
        if args.trace_hash {
            println!("trace-hash {}", outcome.trace_hash);
        }
        return if outcome.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let Some(seeds) = args.seeds else {
        eprintln!("sim dst: give --seed N or --seeds A..B");
        return ExitCode::from(2);
    };
    let opts = SeedsOptions {
        seeds: seeds.clone(),
        jobs: args.jobs.unwrap_or_else(bench::cores),
        template,
        stop_at_first: args.stop_at_first,
        seed_timeout: Duration::from_secs(args.seed_timeout_s),
        exe: None,
    };
    let total = seeds.end - seeds.start;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut failures = 0;
    let summary = dst::seeds::run_seeds(&opts, |outcome| {
        bar.inc(1);
        if !outcome.passed() {
            failures += 1;
            bar.println(format!(
                "seed {}: {} -- replay: {}",
                outcome.seed,
                outcome
                    .violations
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                outcome.replay
            ));
        }
        bar.set_message(format!("{failures} failed"));
    });
    bar.finish_and_clear();
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim dst: cannot run seeds: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        let failed: Vec<serde_json::Value> = summary
            .failed
            .iter()
            .map(|o| serde_json::json!({"seed": o.seed, "violations": o.violations, "replay": o.replay}))
            .collect();
        let report = serde_json::json!({
            "seeds": format!("{}..{}", seeds.start, seeds.end),
            "bug": args.bug.map(|b| b.name()),
            "run": summary.run,
            "passed": summary.passed,
            "failed": failed,
            "wall_s": summary.wall_s,
            "seeds_per_minute": summary.seeds_per_minute(),
        });
        println!("{report}");
    } else {
        println!(
            "{} seeds run, {} passed, {} failed in {:.0} s ({:.1} seeds/minute)",
            summary.run,
            summary.passed,
            summary.failed.len(),
            summary.wall_s,
            summary.seeds_per_minute()
        );
        for o in &summary.failed {
            println!(
                "  seed {}: {}",
                o.seed,
                o.violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            println!("    replay: {}", o.replay);
        }
    }
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn dst_text(o: &SeedOutcome) -> String {
    let mut s = format!(
        "seed {}: {} -- {} nodes, faults {:?} (injected {:?}); {} acknowledged: {} succeeded, {} dead, {} cancelled; {:.1} s simulated, {} trace events\n",
        o.seed,
        if o.passed() { "ok" } else { "FAILED" },
        o.nodes,
        o.faults,
        o.injected,
        o.acknowledged,
        o.succeeded,
        o.dead,
        o.cancelled,
        o.simulated_ms as f64 / 1000.0,
        o.trace_events
    );
    if !o.passed() {
        for v in &o.violations {
            s.push_str(&format!("  violation {v}\n"));
        }
        s.push_str("  last events:\n");
        for e in &o.recent_events {
            s.push_str(&format!("    {e}\n"));
        }
        s.push_str(&format!("  replay: {}\n", o.replay));
    }
    s
}

async fn failover_cmd(args: FailoverArgs) -> Result<ExitCode> {
    let mut opts = FailoverOptions::new(locate_node_bin(args.node_bin.as_deref())?);
    opts.nodes = args.nodes;
    opts.rounds = args.rounds;
    opts.workers = args.workers;
    let r = failover::run(&opts).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for (i, round) in r.rounds.iter().enumerate() {
            println!(
                "round {i}: killed node {}, tasks completing again after {:.0} ms (longest gap {:.0} ms, {} stuck on the dead node)",
                round.killed, round.recovery_ms, round.gap_ms, round.stuck
            );
        }
        if let (Some(rec), Some(gap)) = (r.recovery_ms, r.gap_ms) {
            println!(
                "recovery p50 {:.0} ms, max {:.0} ms; longest gap p50 {:.0} ms, max {:.0} ms",
                rec.p50, rec.max, gap.p50, gap.max
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn bench_cmd(args: BenchArgs) -> Result<ExitCode> {
    let node_bin = locate_node_bin(args.node_bin.as_deref())?;
    let mut opts = BenchOptions::new(node_bin);
    opts.nodes = args.nodes;
    opts.clients = args.clients;
    opts.batch = args.batch;
    opts.in_flight = args.in_flight;
    opts.latency_rate = args.latency_rate;
    opts.latency_s = args.latency_s;
    opts.workers = args.workers.unwrap_or_else(bench::cores);
    opts.remote_workers = args.remote_workers;
    opts.prefetch = args.prefetch;
    opts.phase_timeout = Duration::from_secs(args.timeout_s);
    opts.progress = true;
    let (json, text, ok) = match args.scenario {
        Scenario::Throughput => {
            opts.tasks = args.tasks.unwrap_or(100_000);
            let r = bench::run_throughput(&opts).await?;
            (serde_json::to_string_pretty(&r)?, r.human(), r.failed == 0)
        }
        Scenario::Backlog => {
            opts.tasks = args.tasks.unwrap_or(1_000_000);
            let r = bench::run_backlog(&opts).await?;
            (serde_json::to_string_pretty(&r)?, r.human(), true)
        }
        Scenario::Mix => {
            let long = bench::load::LongTasks {
                every: args.long_every.max(1),
                ms: args.long_ms,
            };
            let r = bench::mix::run_mix(&opts, long).await?;
            (serde_json::to_string_pretty(&r)?, r.human(), r.failed == 0)
        }
        Scenario::Sustained => {
            opts.tasks = args.tasks.unwrap_or(50_000);
            let r = bench::sustained::run_sustained(&opts, args.load_fraction, !args.no_gather).await?;
            (serde_json::to_string_pretty(&r)?, r.human(), r.failed == 0)
        }
        Scenario::Python => {
            opts.tasks = args.tasks.unwrap_or(20_000);
            opts.workers = args.workers.unwrap_or(8);
            let py = bench::python::PythonOptions {
                workers_per_node: args.python_workers,
                python: args.python.unwrap_or_else(bench::python::default_python),
                sdk_src: args.sdk_src.unwrap_or_else(bench::python::default_sdk_src),
                rounds: args.rounds,
                warmup: args.warmup,
                worker_prefetch: args.worker_prefetch,
            };
            let r = bench::python::run_python(&opts, &py).await?;
            (serde_json::to_string_pretty(&r)?, r.human(), r.failed == 0)
        }
    };
    if args.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
