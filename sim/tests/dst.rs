//! The deterministic simulator, run as the `sim` binary: a seed passes, the same seed gives the
//! same trace in separate processes, and each deliberate bug is caught within a few seeds.
//! (CI runs hundreds of seeds with a release build in `.ci/run`; these keep the checks honest.)

use std::process::Command;

use anyhow::{Context, Result, bail};

fn sim(args: &[&str]) -> Result<(Option<i32>, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .context("running sim")?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn trace_hash(seed: &str) -> Result<String> {
    let (code, out) = sim(&["dst", "--seed", seed, "--trace-hash"])?;
    if code != Some(0) {
        bail!("seed {seed} failed:\n{out}");
    }
    let last = out.lines().last().unwrap_or_default();
    let hash = last
        .strip_prefix("trace-hash ")
        .with_context(|| format!("no trace hash in {out}"))?;
    Ok(hash.to_string())
}

#[test]
fn a_seed_passes_and_replays_to_the_same_trace() -> Result<()> {
    let first = trace_hash("3")?;
    let second = trace_hash("3")?;
    assert_eq!(first, second, "seed 3 gave two different traces");
    assert_ne!(
        trace_hash("4")?,
        first,
        "two seeds gave one trace: the seed decides nothing"
    );
    Ok(())
}

/// Run seeds `0..limit` with `bug` on, stopping at the first failure; the failure must be
/// found by one of `invariants` and come with the command that replays it.
fn caught(bug: &str, limit: u64, invariants: &[&str]) -> Result<()> {
    let range = format!("0..{limit}");
    let (code, out) = sim(&[
        "dst",
        "--seeds",
        &range,
        "--bug",
        bug,
        "--stop-at-first",
        "--json",
    ])?;
    assert_eq!(code, Some(1), "bug {bug} not caught in seeds {range}:\n{out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).context("summary JSON")?;
    let failed = report["failed"].as_array().context("failed list")?;
    let first = failed.first().context("a failing seed")?;
    let names: Vec<&str> = first["violations"]
        .as_array()
        .context("violations")?
        .iter()
        .filter_map(|v| v["invariant"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| invariants.contains(n)),
        "bug {bug}: expected one of {invariants:?}, got {names:?}"
    );
    let replay = first["replay"].as_str().context("replay")?;
    assert!(
        replay.contains(&format!("--bug {bug}")),
        "replay command {replay}"
    );
    Ok(())
}

#[test]
fn accepting_a_stale_completion_is_caught() -> Result<()> {
    caught("accept-stale-completion", 10, &["no_stale_completion"])
}

#[test]
fn acknowledging_before_fsync_is_caught() -> Result<()> {
    // Lost acknowledged entries show up as lost tasks, reused ids or keys, replicas that
    // applied different logs, or (debug builds) openraft seeing a follower's log go back.
    caught(
        "ack-before-fsync",
        30,
        &[
            "acknowledged_not_lost",
            "one_result",
            "replicas_agree",
            "no_stale_completion",
            "durable_log",
        ],
    )
}

#[test]
fn forgetting_the_vote_is_caught() -> Result<()> {
    caught("forget-vote", 10, &["durable_vote", "one_leader_per_term"])
}

#[test]
fn a_schedule_firing_early_is_caught() -> Result<()> {
    caught("schedule-fires-early", 5, &["schedules_exact"])
}

#[test]
fn a_limit_letting_one_task_too_many_run_is_caught() -> Result<()> {
    caught("limit-off-by-one", 5, &["limits_respected"])
}

#[test]
fn a_callback_released_before_its_last_parent_is_caught() -> Result<()> {
    caught("callback-early", 5, &["callbacks_exact"])
}

#[test]
fn a_revoke_that_leaves_the_task_running_is_caught() -> Result<()> {
    caught("revoke-keeps-lease", 10, &["revoked_stay_cancelled"])
}

#[test]
fn a_snapshot_that_drops_the_attempt_histories_is_caught() -> Result<()> {
    // Only a replica that loads a snapshot loses them: its histories differ from the others'.
    caught(
        "snapshot-drops-attempts",
        10,
        &["attempts_agree", "replicas_agree"],
    )
}

#[test]
fn an_index_that_drifts_from_the_tasks_is_caught() -> Result<()> {
    // Every replica applies the same bad heartbeat alike, so only a look inside each one
    // (`QueueState::check_invariants`) sees the stale timer before it expires a lease early.
    caught("heartbeat-keeps-old-timer", 5, &["state_consistent"])
}
