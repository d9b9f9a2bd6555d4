//! `sim dst --seeds A..B`: many seeds, each in a child process of its own (process-wide state
//! such as tokio's thread locals must not carry from one run to the next), several at a time.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use wait_timeout::ChildExt;

use super::DstOptions;
use super::SeedOutcome;

/// A range of seeds to run, and how.
#[derive(Clone, Debug)]
pub struct SeedsOptions {
    /// First seed (inclusive) and end (exclusive).
    pub seeds: std::ops::Range<u64>,
    pub jobs: usize,
    /// Bug switch and fault mix, passed on to every seed.
    pub template: DstOptions,
    /// Stop starting new seeds after the first failure.
    pub stop_at_first: bool,
    /// Wall-clock limit of one seed (a hung run is a failure too).
    pub seed_timeout: Duration,
    /// The `sim` executable to run seeds with (default: this one).
    pub exe: Option<PathBuf>,
}

/// What a range of seeds gave.
#[derive(Debug, Default)]
pub struct Summary {
    pub run: u64,
    pub passed: u64,
    /// Failing seeds, in the order they finished.
    pub failed: Vec<SeedOutcome>,
    pub wall_s: f64,
}

impl Summary {
    pub fn seeds_per_minute(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.run as f64 * 60.0 / self.wall_s
        } else {
            0.0
        }
    }
}

/// Run every seed of `opts.seeds`; `on_done` sees each outcome as it arrives.
pub fn run_seeds(opts: &SeedsOptions, mut on_done: impl FnMut(&SeedOutcome)) -> std::io::Result<Summary> {
    let exe = match &opts.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?,
    };
    #[allow(clippy::disallowed_methods)] // wall time of the batch, for seeds per minute
    let started = std::time::Instant::now();
    let next = Arc::new(AtomicU64::new(opts.seeds.start));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<SeedOutcome>();
    let errors: Arc<Mutex<Vec<std::io::Error>>> = Arc::default();
    let mut threads = Vec::new();
    for _ in 0..opts.jobs.max(1) {
        let (next, stop, tx, errors) = (next.clone(), stop.clone(), tx.clone(), errors.clone());
        let (exe, opts) = (exe.clone(), opts.clone());
        threads.push(std::thread::spawn(move || {
            loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= opts.seeds.end {
                    return;
                }
                let run = DstOptions {
                    seed,
                    ..opts.template.clone()
                };
                match run_child(&exe, &run, opts.seed_timeout) {
                    Ok(outcome) => {
                        if !outcome.passed() && opts.stop_at_first {
                            stop.store(true, Ordering::SeqCst);
                        }
                        if tx.send(outcome).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut summary = Summary::default();
    for outcome in rx {
        summary.run += 1;
        if outcome.passed() {
            summary.passed += 1;
        } else {
            summary.failed.push(outcome.clone());
        }
        on_done(&outcome);
    }
    for t in threads {
        let _ = t.join();
    }
    if let Some(e) = errors.lock().unwrap_or_else(|p| p.into_inner()).pop() {
        return Err(e);
    }
    summary.wall_s = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Shrink a failing run: drop the kinds of fault of its mix one at a time, keeping each drop
/// after which the seed still fails. Returns the smallest failing options found (the seed's
/// other choices, cluster size, timing and workload, stay the same).
pub fn shrink(
    exe: Option<PathBuf>,
    failing: &DstOptions,
    mix: &[super::plan::FaultKind],
    timeout: Duration,
    mut on_try: impl FnMut(&DstOptions, bool),
) -> std::io::Result<DstOptions> {
    let exe = match exe {
        Some(exe) => exe,
        None => std::env::current_exe()?,
    };
    let mut best = DstOptions {
        faults: mix.to_vec(),
        ..failing.clone()
    };
    let mut i = 0;
    while i < best.faults.len() && best.faults.len() > 1 {
        let mut candidate = best.clone();
        candidate.faults.remove(i);
        let fails = !run_child(&exe, &candidate, timeout)?.passed();
        on_try(&candidate, fails);
        if fails {
            best = candidate;
        } else {
            i += 1;
        }
    }
    Ok(best)
}

/// Run one seed as `exe dst --seed N --json`, and read its outcome.
fn run_child(exe: &PathBuf, run: &DstOptions, timeout: Duration) -> std::io::Result<SeedOutcome> {
    let mut cmd = Command::new(exe);
    cmd.args(["dst", "--seed", &run.seed.to_string(), "--json"]);
    if let Some(bug) = run.bug {
        cmd.args(["--bug", bug.name()]);
    }
    if !run.faults.is_empty() {
        cmd.args(["--faults", &super::plan::FaultKind::names(&run.faults)]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = match child.wait_timeout(timeout)? {
        Some(status) => Some(status),
        None => {
            child.kill()?;
            child.wait()?;
            None
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if let Some(outcome) = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<SeedOutcome>(l).ok())
    {
        return Ok(outcome);
    }
    let why = match status {
        None => format!("the run took longer than {} s of wall time", timeout.as_secs()),
        Some(status) => format!("the run ended with {status} and no report"),
    };
    let tail: Vec<String> = err.lines().rev().take(20).map(str::to_owned).collect();
    let mut outcome = SeedOutcome::harness_failure(run, why, tail.into_iter().rev().collect());
    // A crash that is a safety check firing is that violation, not a harness failure.
    if let Some(v) = super::invariants::durable_log::from_crash(&err) {
        outcome.violations = vec![v];
    }
    Ok(outcome)
}
