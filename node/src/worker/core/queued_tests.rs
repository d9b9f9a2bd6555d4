//! The runner's queue step by step (`core/queued.rs`): lease-ahead handed to a runner that
//! queues, started in order, taken back by the stall rule, the drain and short leases.

use super::tests::Pool;
use super::tests::config;
use super::tests::grant;
use super::tests::runs;
use super::tests::success;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `auto`, and a runner that queues up to `queue` tasks beyond its slots.
fn queuing(slots: usize, queue: usize) -> CoreConfig {
    CoreConfig {
        prefetch: Prefetch::Auto,
        max_batch: 64,
        runner_queue: queue,
        ..config(slots)
    }
}

fn queued(decisions: &[Decision]) -> Vec<u64> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Queue(g) => Some(g.lease.task),
            _ => None,
        })
        .collect()
}

fn taken_back(decisions: &[Decision]) -> Vec<u64> {
    tasks_of(decisions, |d| matches!(d, Decision::TakeBack(_)))
}

fn aborted(decisions: &[Decision]) -> Vec<u64> {
    tasks_of(decisions, |d| matches!(d, Decision::Abort(_)))
}

fn tasks_of(decisions: &[Decision], kind: impl Fn(&Decision) -> bool) -> Vec<u64> {
    decisions
        .iter()
        .filter(|d| kind(d))
        .filter_map(|d| match d {
            Decision::TakeBack(l) | Decision::Abort(l) => Some(l.task),
            _ => None,
        })
        .collect()
}

fn released(decisions: &[Decision]) -> Vec<u64> {
    let mut tasks: Vec<u64> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Propose(_, Proposal::Release(r)) => Some(r.leases.iter().map(|l| l.task)),
            _ => None,
        })
        .flatten()
        .collect();
    tasks.sort_unstable();
    tasks
}

/// The token of the one `Release` proposal among `decisions`.
fn release_token(decisions: &[Decision]) -> Token {
    decisions
        .iter()
        .find_map(|d| match d {
            Decision::Propose(t, Proposal::Release(_)) => Some(*t),
            _ => None,
        })
        .expect("a release")
}

fn completed(decisions: &[Decision]) -> Vec<u64> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Propose(_, Proposal::Complete(c) | Proposal::CompleteAndLease(c, _)) => {
                Some(c.completions.iter().map(|c| c.lease.task))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// One slot, a queue of 3, 4 ms round trips and 1 ms runs (4 ahead): task 1 ran, then a lease
/// of 5 granted tasks 2..=6 at 9 ms. Task 2 runs, 3..=5 are queued at the runner, 6 waits here.
fn one_running_three_queued() -> Pool {
    let mut p = Pool::recovered(queuing(1, 3));
    let (token, max, _) = p.lease();
    assert_eq!(max, 1);
    p.core
        .at(ms(4))
        .replied(token, Ok(vec![Response::Leased(vec![grant(1)])]));
    assert_eq!(runs(&p.decisions()), vec![1]);
    p.core.at(ms(5)).finished(grant(1).lease, success());
    let d = p.decisions();
    let token = d
        .iter()
        .find_map(|d| match d {
            Decision::Propose(t, Proposal::CompleteAndLease(_, l)) => {
                assert_eq!(l.max, 5, "the slot and 4 ahead");
                Some(*t)
            }
            _ => None,
        })
        .expect("the completion with a lease");
    let grants: Vec<Grant> = (2..=6).map(grant).collect();
    let done = Response::Completed(vec![CompletionResult::Accepted]);
    p.core
        .at(ms(9))
        .replied(token, Ok(vec![done, Response::Leased(grants)]));
    let d = p.decisions();
    assert_eq!(runs(&d), vec![2]);
    assert_eq!(queued(&d), vec![3, 4, 5], "at most the runner's queue");
    let stats = p.core.stats();
    assert_eq!((stats.busy, stats.buffered), (1, 4), "3 queued and 1 here");
    p
}

#[test]
fn a_runner_that_queues_is_handed_the_lease_ahead_beyond_its_slots() {
    one_running_three_queued();
}

#[test]
fn a_queued_task_counts_as_started_when_a_run_ends_and_the_queue_is_refilled() {
    let mut p = one_running_three_queued();
    p.core.at(ms(10)).finished(grant(2).lease, success());
    let d = p.decisions();
    assert!(runs(&d).is_empty(), "task 3 is at the runner already: {d:?}");
    assert_eq!(queued(&d), vec![6], "the one waiting here goes down");
    assert!(p.core.running.contains_key(&grant(3).lease));
    assert!(p.core.is_queued(grant(6).lease));
    assert_eq!(completed(&d), vec![2]);
}

#[test]
fn a_runner_that_does_not_queue_is_handed_nothing_beyond_its_slots() {
    let mut p = Pool::recovered(queuing(1, 0));
    let (token, _, _) = p.lease();
    p.core
        .at(ms(4))
        .replied(token, Ok(vec![Response::Leased(vec![grant(1)])]));
    p.decisions();
    p.core.at(ms(5)).finished(grant(1).lease, success());
    let d = p.decisions();
    let Some(Decision::Propose(token, Proposal::CompleteAndLease(..))) =
        d.iter().find(|d| matches!(d, Decision::Propose(..)))
    else {
        panic!("{d:?}");
    };
    let done = Response::Completed(vec![CompletionResult::Accepted]);
    let grants: Vec<Grant> = (2..=6).map(grant).collect();
    p.core
        .at(ms(9))
        .replied(*token, Ok(vec![done, Response::Leased(grants)]));
    let d = p.decisions();
    assert_eq!(runs(&d), vec![2]);
    assert!(queued(&d).is_empty(), "{d:?}");
    assert_eq!(p.core.stats().buffered, 4, "held here");
}

#[test]
fn a_slot_pool_that_queues_counts_a_run_long_by_its_slots() {
    // 2 slots, 4 ms round trips, 6 ms runs: long for a pool that does not queue (6 > 4), short
    // for one that does (a slot frees every 3 ms): 2 · 4 / 6 → 2 ahead.
    for (queue, ahead) in [(0, 0), (8, 2)] {
        let mut p = Pool::recovered(queuing(2, queue));
        let (token, _, _) = p.lease();
        p.core
            .at(ms(4))
            .replied(token, Ok(vec![Response::Leased(vec![grant(1), grant(2)])]));
        p.decisions();
        p.core
            .at(ms(10))
            .finished_all([(grant(1).lease, success()), (grant(2).lease, success())]);
        assert_eq!(p.core.stats().lease_ahead, ahead, "queue {queue}");
    }
}

#[test]
fn a_long_run_takes_the_queue_back_and_each_comes_back_once_answered() {
    let mut p = one_running_three_queued();
    // Task 2 runs past two round trips (8 ms): the queue is asked back, task 6 released here.
    p.core.at(ms(17)).timer(Timer::Stall);
    let d = p.decisions();
    assert_eq!(taken_back(&d), vec![3, 4, 5]);
    assert_eq!(
        released(&d),
        vec![6],
        "only what was never sent is released at once"
    );
    assert_eq!(p.core.stats().lease_ahead, 0, "lease-ahead ends");
    let token = release_token(&d);
    p.core
        .at(ms(18))
        .replied(token, Ok(vec![Response::Released(vec![true])]));
    // Task 3 had not started: given back. Task 4 had (the runner's count ran ahead): its result.
    p.core.at(ms(18)).finished(grant(3).lease, RunResult::Aborted);
    p.core.at(ms(18)).finished(grant(4).lease, success());
    let d = p.decisions();
    assert_eq!(released(&d), vec![3]);
    assert_eq!(completed(&d), vec![4]);
    // Nothing taken back counts as started meanwhile, nor is anything queued again.
    p.core.at(ms(19)).finished(grant(2).lease, success());
    let d = p.decisions();
    assert!(runs(&d).is_empty() && queued(&d).is_empty(), "{d:?}");
    assert!(p.core.is_queued(grant(5).lease), "still waiting for its answer");
    assert!(p.core.running.is_empty());
}

#[test]
fn a_drain_takes_the_queue_back_and_a_gone_runner_has_it_released_at_once() {
    // A worker's or node's drain: asked back, released as the runner answers.
    let mut p = one_running_three_queued();
    p.core.at(ms(10)).drain(ms(1_000));
    let d = p.decisions();
    assert_eq!(taken_back(&d), vec![3, 4, 5]);
    assert_eq!(released(&d), vec![6]);
    // A broken stream: the grace is over at once, everything is aborted and released.
    let mut p = one_running_three_queued();
    p.core.at(ms(10)).drain(Duration::ZERO);
    p.core.at(ms(10)).timer(Timer::GraceOver);
    let d = p.decisions();
    assert_eq!(aborted(&d), vec![2, 3, 4, 5]);
    assert_eq!(released(&d), vec![6]);
    let token = release_token(&d);
    p.core
        .at(ms(11))
        .replied(token, Ok(vec![Response::Released(vec![true])]));
    let ends = (2..=5).map(|t| (grant(t).lease, RunResult::Aborted));
    p.core.at(ms(11)).finished_all(ends);
    assert_eq!(
        released(&p.decisions()),
        vec![2, 3, 4, 5],
        "every task back at once"
    );
}

#[test]
fn a_queued_task_whose_lease_would_run_short_is_taken_back_not_run_late() {
    let mut p = one_running_three_queued();
    // Leases from the lease proposed at 5 ms end by 1,005 ms; at 950 ms less than the 100 ms
    // needed to start (and a round trip) are left.
    p.core.at(ms(950)).heartbeat_tick();
    let d = p.decisions();
    assert_eq!(taken_back(&d), vec![3, 4, 5]);
    assert_eq!(p.core.stats().short_lease_released_total, 3);
}

#[test]
fn a_queued_task_whose_lease_is_lost_is_dropped_at_the_runner_and_owes_nothing() {
    let mut p = one_running_three_queued();
    p.core.at(ms(10)).heartbeat_tick();
    let (token, proposal) = p.proposal();
    let Proposal::Heartbeat(hb) = proposal else {
        panic!("{proposal:?}");
    };
    assert_eq!(hb.leases.len(), 5, "running, queued and buffered leases");
    let kept: Vec<bool> = hb.leases.iter().map(|l| l.task != 4).collect();
    p.core
        .at(ms(11))
        .replied(token, Ok(vec![Response::Heartbeated(kept)]));
    let d = p.decisions();
    assert_eq!(aborted(&d), vec![4]);
    p.core.at(ms(12)).finished(grant(4).lease, RunResult::Aborted);
    let d = p.decisions();
    assert!(released(&d).is_empty(), "lost: nothing owed");
    assert!(!p.core.is_queued(grant(4).lease));
}

/// A queued task's time limit counts from its start (the remote session reads
/// [`PoolCore::started_at`]): a task queued at 9 ms that starts when task 2 ends at 30 ms
/// started at 30 ms, not when it was granted; and `flotilla workers` counts it busy only then.
#[test]
fn a_queued_task_counts_as_started_when_a_run_ends_not_when_granted() {
    let mut p = one_running_three_queued();
    let lease = |t| grant(t).lease;
    assert!(p.core.is_queued(lease(3)));
    assert_eq!(p.core.started_at(lease(3)), None, "queued: not started");
    assert_eq!(p.core.started_at(lease(2)), Some(ms(9)));
    assert_eq!(p.core.started(), 1, "busy counts the slot, not the queue");
    p.core.at(ms(30)).finished(lease(2), success());
    assert!(!p.core.is_queued(lease(3)));
    assert_eq!(
        p.core.started_at(lease(3)),
        Some(ms(30)),
        "its start, 21 ms after its grant"
    );
    assert_eq!(p.core.started(), 1);
}
