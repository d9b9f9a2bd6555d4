//! The `sim` command line: `sim bench` runs the benchmarks, `sim failover` measures failover,
//! `sim chaos` injects faults into a real cluster and checks what clients were told (see
//! `sim <command> --help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use flotilla_sim::bench::{self, BenchOptions, cluster::locate_node_bin};
use flotilla_sim::chaos::{self, ChaosOptions};
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
    /// Exit status: 0 when no property was violated, 1 when one was (the seed and the command
    /// that reruns it are printed), 2 when the run could not be carried out.
    Chaos(ChaosArgs),
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
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    scenario: Scenario,
    /// Nodes in the cluster (the first founds it, the others join).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Tasks to submit (default: 100000; 1000000 for the backlog scenario).
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    }
}

async fn chaos_cmd(args: ChaosArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.duration_s.is_finite() && args.duration_s > 0.0,
        "--duration-s must be above 0"
    );
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("sim chaos: seed {seed}");
    let mut opts = ChaosOptions::new(locate_node_bin(args.node_bin.as_deref())?, seed);
    opts.nodes = args.nodes;
    opts.duration = Duration::from_secs_f64(args.duration_s);
    opts.clients = args.clients;
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
    };
    if args.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
