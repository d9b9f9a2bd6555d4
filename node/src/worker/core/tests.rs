//! The core step by step, with hand-made replies and replica events: no runtime, no sleeps.

use bytes::Bytes;

use super::*;
use crate::replica::Cleared;
use crate::replica::PoolApplied;

const POOL: &str = "pool-1";

pub(super) fn config(slots: usize) -> CoreConfig {
    CoreConfig {
        pool: POOL.into(),
        queues: Vec::new(),
        lease_ms: 1_000,
        slots,
        prefetch: Prefetch::Fixed(0),
        min_lease_to_start: Duration::from_millis(100),
        max_batch: 2,
        runner_queue: 0,
        drain_flush_timeout: Duration::from_millis(500),
        first_ticket: 1,
    }
}

pub(super) fn grant(task: u64) -> Grant {
    Grant {
        lease: LeaseRef { task, attempt: 1 },
        name: "noop".into(),
        queue: "default".into(),
        args: Bytes::new(),
        time_limit_ms: None,
        // Granted at log time 0 for `config`'s 1,000 ms (the log's clock is the test's).
        lease_deadline_ms: 1_000,
        headers: Default::default(),
    }
}

pub(super) fn success() -> RunResult {
    RunResult::Finished(Outcome::Success(Bytes::from_static(b"null")))
}

/// The core and the decisions it made, less the stats (checked apart).
pub(super) struct Pool {
    pub(super) core: PoolCore,
}

impl Pool {
    /// A pool whose `ReleasePool` committed.
    pub(super) fn recovered(cfg: CoreConfig) -> Self {
        let mut p = Self {
            core: PoolCore::new(cfg),
        };
        let (token, proposal) = p.proposal();
        assert!(matches!(proposal, Proposal::ReleasePool(_)), "{proposal:?}");
        p.core.replied(token, Ok(vec![Response::ReleasedPool(0)]));
        p
    }

    pub(super) fn decisions(&mut self) -> Vec<Decision> {
        std::iter::from_fn(|| self.core.next_decision())
            .filter(|d| !matches!(d, Decision::Stats(_)))
            .collect()
    }

    pub(super) fn proposals(&mut self) -> Vec<(Token, Proposal)> {
        self.decisions()
            .into_iter()
            .filter_map(|d| match d {
                Decision::Propose(token, p) => Some((token, p)),
                _ => None,
            })
            .collect()
    }

    /// The one proposal decided since the last look.
    pub(super) fn proposal(&mut self) -> (Token, Proposal) {
        let mut all = self.proposals();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    /// The one `Lease` decided: its token, max and ticket.
    pub(super) fn lease(&mut self) -> (Token, u32, u64) {
        match self.proposal() {
            (token, Proposal::Lease(l)) => {
                (token, l.max, l.standing_ticket.expect("every lease is ticketed"))
            }
            other => panic!("not a lease: {other:?}"),
        }
    }

    pub(super) fn apply(
        &mut self,
        leases: Vec<(u64, Vec<Grant>)>,
        grants: Vec<Grant>,
        standing: Option<u32>,
    ) {
        let fx = PoolApplied {
            leases,
            grants,
            standing,
            cleared: None,
            revoked: Vec::new(),
        };
        self.core.applied(PoolEvent::Applied(fx), |_| true);
    }

    fn spoken_for(&self) -> usize {
        let c = &self.core;
        c.running.len() + c.buffered.len() + c.standing + c.tickets.held()
    }
}

pub(super) fn runs(decisions: &[Decision]) -> Vec<u64> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Run(g) => Some(g.lease.task),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_leased_before_the_earlier_runs_leases_are_released() {
    let mut p = Pool {
        core: PoolCore::new(config(2)),
    };
    let (token, proposal) = p.proposal();
    assert_eq!(
        proposal,
        Proposal::ReleasePool(ops::ReleasePool { pool: POOL.into() })
    );
    p.core.work_signal();
    assert!(p.proposals().is_empty(), "leased before recovering");
    // A grant replayed from the earlier run is not this run's.
    p.apply(vec![], vec![grant(9)], Some(0));
    assert!(p.decisions().is_empty());
    p.core.replied(token, Err(ProposeError::NoLeader));
    assert_eq!(
        p.decisions(),
        vec![Decision::After(Duration::from_millis(10), Timer::Retry)]
    );
    p.core.timer(Timer::Retry);
    let (token, proposal) = p.proposal();
    assert!(matches!(proposal, Proposal::ReleasePool(_)));
    p.core.replied(token, Ok(vec![Response::ReleasedPool(3)]));
    let (_, max, _) = p.lease();
    assert_eq!(max, 2);
}

#[test]
fn a_leases_grants_come_from_its_reply_or_its_apply_whichever_is_first() {
    let mut p = Pool::recovered(config(4));
    // A filled lease is settled by its reply: the grants run, nothing more is awaited.
    let (token, max, _) = p.lease();
    assert_eq!((max, p.spoken_for()), (4, 4));
    p.core
        .replied(token, Ok(vec![Response::Leased((1..=4).map(grant).collect())]));
    let d = p.decisions();
    assert_eq!(runs(&d), vec![1, 2, 3, 4]);
    // Full: more may wait, but there is no room until a run ends.
    assert!(!d.iter().any(|d| matches!(d, Decision::Propose(..))), "{d:?}");
    assert!(p.core.tickets.is_empty());
    // Unfilled, the reply first (a follower's pool): the apply brings nothing new.
    p.core.finished(grant(1).lease, success());
    p.core.finished(grant(2).lease, success());
    let proposals = p.proposals();
    let leases: Vec<(Token, u64)> = proposals
        .iter()
        .filter_map(|(t, p)| match p {
            Proposal::CompleteAndLease(_, l) => Some((*t, l.standing_ticket.unwrap())),
            _ => None,
        })
        .collect();
    let [(first, t1), (second, t2)] = leases[..] else {
        panic!("{proposals:?}")
    };
    let reply = |g: Vec<Grant>| {
        vec![
            Response::Completed(vec![CompletionResult::Accepted]),
            Response::Leased(g),
        ]
    };
    p.core.replied(first, Ok(reply(vec![])));
    assert!(runs(&p.decisions()).is_empty());
    p.apply(vec![(t1, vec![])], vec![], Some(1));
    // Unfilled, the apply first (the leader's pool): the reply brings nothing new.
    p.apply(vec![(t2, vec![])], vec![grant(5)], Some(1));
    assert_eq!(runs(&p.decisions()), vec![5]);
    p.core.replied(second, Ok(reply(vec![])));
    assert!(runs(&p.decisions()).is_empty());
    assert!(p.core.tickets.is_empty());
    assert_eq!(p.spoken_for(), 4);
}

#[test]
fn a_partly_filled_lease_holds_its_rest_until_the_apply_shows_it_standing() {
    let mut p = Pool::recovered(config(3));
    let (token, _, ticket) = p.lease();
    p.core.replied(token, Ok(vec![Response::Leased(vec![grant(1)])]));
    assert_eq!(runs(&p.decisions()), vec![1]);
    assert_eq!((p.core.tickets.held(), p.spoken_for()), (2, 3));
    p.apply(vec![(ticket, vec![grant(1)])], vec![], Some(2));
    assert!(p.decisions().is_empty());
    assert_eq!(
        (p.core.tickets.held(), p.core.standing, p.spoken_for()),
        (0, 2, 3)
    );
}

#[test]
fn an_unfilled_lease_stands_and_standing_grants_run() {
    let mut p = Pool::recovered(config(3));
    let (_, _, ticket) = p.lease();
    // One task granted, two left standing.
    p.apply(vec![(ticket, vec![grant(1)])], vec![], Some(2));
    assert_eq!(runs(&p.decisions()), vec![1]);
    assert_eq!((p.core.standing, p.spoken_for()), (2, 3));
    p.core.work_signal();
    assert!(p.proposals().is_empty(), "standing capacity is spoken for");
    p.apply(vec![], vec![grant(2)], Some(1));
    assert_eq!(runs(&p.decisions()), vec![2]);
    assert_eq!(p.spoken_for(), 3);
}

#[test]
fn a_finished_run_is_completed_with_the_lease_of_the_capacity_it_freed() {
    let mut p = Pool::recovered(config(2));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![grant(1), grant(2)])], vec![], None);
    p.decisions();
    p.core.finished(grant(1).lease, success());
    let (token, proposal) = p.proposal();
    let Proposal::CompleteAndLease(complete, lease) = proposal else {
        panic!("{proposal:?}")
    };
    assert_eq!((complete.completions.len(), lease.max), (1, 1));
    // The stale answer is counted, the lease's grant runs.
    let reply = vec![
        Response::Completed(vec![CompletionResult::Stale]),
        Response::Leased(vec![grant(3)]),
    ];
    p.core.replied(token, Ok(reply));
    assert_eq!(runs(&p.decisions()), vec![3]);
    let stats = p.core.stats();
    assert_eq!(
        (stats.completed_total, stats.stale_total, stats.in_flight),
        (1, 1, 2)
    );
}

#[test]
fn a_failed_entry_is_retried_once_after_one_timer_items_first() {
    let mut p = Pool::recovered(config(4));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, (1..=4).map(grant).collect())], vec![], None);
    p.decisions();
    p.core.finished(grant(1).lease, success());
    let (first, _) = p.proposal();
    p.core.finished(grant(2).lease, success());
    let (second, _) = p.proposal();
    // Both in flight fail: one timer, nothing proposed until it fires.
    p.core.replied(first, Err(ProposeError::NoLeader));
    p.core.replied(second, Err(ProposeError::NoLeader));
    assert_eq!(
        p.decisions(),
        vec![Decision::After(Duration::from_millis(10), Timer::Retry)]
    );
    assert_eq!(
        p.core.tickets.held(),
        0,
        "the failed leases no longer hold capacity"
    );
    p.core.finished(grant(3).lease, success());
    assert!(p.decisions().is_empty(), "proposed while a retry is pending");
    p.core.timer(Timer::Retry);
    let (_, proposal) = p.proposal();
    let Proposal::CompleteAndLease(complete, lease) = proposal else {
        panic!("{proposal:?}")
    };
    // The failed batches go first (cap 2), with a lease of the three freed workers.
    let mut tasks: Vec<u64> = complete.completions.iter().map(|c| c.lease.task).collect();
    tasks.sort();
    assert_eq!((tasks, lease.max), (vec![1, 2], 3));
}

#[test]
fn a_refused_heartbeat_aborts_the_run_and_drops_its_result() {
    let mut p = Pool::recovered(config(1));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![grant(1)])], vec![], None);
    p.decisions();
    p.core.heartbeat_tick();
    let (token, proposal) = p.proposal();
    let Proposal::Heartbeat(hb) = proposal else {
        panic!("{proposal:?}")
    };
    assert_eq!(hb.leases, vec![grant(1).lease]);
    p.core
        .replied(token, Ok(vec![Response::Heartbeated(vec![false])]));
    assert_eq!(p.decisions(), vec![Decision::Abort(grant(1).lease)]);
    p.core.finished(grant(1).lease, success());
    // Neither completed nor released: the lease is someone else's now. The freed worker leases.
    let proposals = p.proposals();
    assert!(
        matches!(proposals.as_slice(), [(_, Proposal::Lease(_))]),
        "{proposals:?}"
    );
    assert_eq!(p.core.stats().in_flight, 0);
}

#[test]
fn grants_no_longer_held_are_dropped_and_grants_beyond_capacity_released() {
    let mut p = Pool::recovered(config(1));
    let (token, _, ticket) = p.lease();
    p.core
        .replied(token, Err(ProposeError::Forward("timed out".into())));
    p.decisions();
    p.core.timer(Timer::Retry);
    let (_, _, second) = p.lease();
    // The failed lease applied after all: its grant does not fit beside the second lease.
    p.apply(vec![(ticket, vec![grant(1)])], vec![], None);
    p.apply(vec![(second, vec![grant(2)])], vec![], None);
    let d = p.decisions();
    assert_eq!(runs(&d), vec![2]);
    let released: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Propose(_, Proposal::Release(r)) => Some(r.leases.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![vec![grant(1).lease]]);
    // A replayed grant the replica no longer shows as ours is dropped.
    let fx = PoolApplied {
        grants: vec![grant(3)],
        ..PoolApplied::default()
    };
    p.core.applied(PoolEvent::Applied(fx), |l| l.task != 3);
    assert!(runs(&p.decisions()).is_empty());
    assert_eq!(p.core.stats().stale_grants_total, 1);
}

#[test]
fn a_late_apply_of_a_swept_ticket_runs_nothing_twice() {
    let mut p = Pool::recovered(config(2));
    let (token, _, ticket) = p.lease();
    p.core.replied(token, Ok(vec![Response::Leased(vec![grant(1)])]));
    assert_eq!(runs(&p.decisions()), vec![1]);
    // Its apply is not seen for two ticks: the ticket ends (the rest no longer held).
    p.core.heartbeat_tick();
    p.core.heartbeat_tick();
    p.decisions();
    assert_eq!(p.core.tickets.held(), 0);
    p.core.finished(grant(1).lease, success());
    p.decisions();
    // Then it comes: grant 1 is being completed, not run again.
    p.apply(vec![(ticket, vec![grant(1)])], vec![], Some(1));
    assert!(runs(&p.decisions()).is_empty());
}

#[test]
fn a_replayed_lease_of_an_earlier_run_is_not_taken_for_this_runs() {
    let mut p = Pool::recovered(CoreConfig {
        first_ticket: first_ticket(5_000),
        ..config(1)
    });
    let (_, _, ticket) = p.lease();
    assert_eq!(ticket, first_ticket(5_000));
    // The earlier run numbered its tickets from a lower base: its lease does not settle ours,
    // and its grant does not fit beside it (it is given back).
    p.apply(vec![(1, vec![grant(7)])], vec![], Some(0));
    let d = p.decisions();
    assert!(runs(&d).is_empty());
    assert_eq!(p.core.tickets.held(), 1);
    let released = d
        .iter()
        .any(|d| matches!(d, Decision::Propose(_, Proposal::Release(r)) if r.leases == vec![grant(7).lease]));
    assert!(released, "{d:?}");
}

#[test]
fn an_idle_pool_renews_its_standing_capacity_once_per_quiet_tick() {
    let mut p = Pool::recovered(config(2));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![])], vec![], Some(2));
    p.decisions();
    // The tick right after a lease is not quiet.
    p.core.heartbeat_tick();
    assert!(p.proposals().is_empty());
    p.core.heartbeat_tick();
    let (_, max, _) = p.lease();
    assert_eq!(max, 0, "all capacity stands: the renewal asks for none");
}

#[test]
fn a_resync_ends_granted_tickets_and_takes_the_standing_capacity_it_reports() {
    let mut p = Pool::recovered(config(2));
    let (token, _, _) = p.lease();
    p.core.replied(token, Ok(vec![Response::Leased(vec![])]));
    assert_eq!(p.spoken_for(), 2, "what it did not fill may stand");
    p.core.applied(PoolEvent::Resync { standing: 0 }, |_| true);
    // Free again: it leases at once.
    let (_, max, _) = p.lease();
    assert_eq!(max, 2);
}

#[test]
fn the_drain_releases_buffered_grants_aborts_after_the_grace_and_clears_standing() {
    let mut p = Pool::recovered(CoreConfig {
        prefetch: Prefetch::Fixed(1),
        ..config(1)
    });
    let (token, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![grant(1), grant(2)])], vec![], None);
    p.core
        .replied(token, Ok(vec![Response::Leased(vec![grant(1), grant(2)])]));
    p.decisions();
    p.core.drain(Duration::from_millis(100));
    let d = p.decisions();
    assert!(d.contains(&Decision::After(Duration::from_millis(100), Timer::GraceOver)));
    assert!(d.contains(&Decision::After(Duration::from_millis(600), Timer::FlushDeadline)));
    let proposals: Vec<&Proposal> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Propose(_, p) => Some(p),
            _ => None,
        })
        .collect();
    let release = ops::Release {
        pool: POOL.into(),
        leases: vec![grant(2).lease],
    };
    let clear = ops::ClearStanding { pool: POOL.into() };
    assert_eq!(
        proposals,
        vec![&Proposal::Release(release), &Proposal::ClearStanding(clear)]
    );
    p.core.timer(Timer::GraceOver);
    assert_eq!(p.decisions(), vec![Decision::Abort(grant(1).lease)]);
    // Its Release and ClearStanding are in flight: not drained yet.
    p.core.finished(grant(1).lease, RunResult::Aborted);
    let mut pending: Vec<(Token, Proposal)> = d
        .into_iter()
        .filter_map(|d| match d {
            Decision::Propose(t, p) => Some((t, p)),
            _ => None,
        })
        .collect();
    assert!(p.decisions().is_empty(), "the second release waits for the first");
    for (token, proposal) in pending.drain(..) {
        let reply = match proposal {
            Proposal::Release(_) => Response::Released(vec![true]),
            _ => Response::ClearedStanding(true),
        };
        p.core.replied(token, Ok(vec![reply]));
    }
    let (token, proposal) = p.proposal();
    assert!(matches!(proposal, Proposal::Release(r) if r.leases == vec![grant(1).lease]));
    p.core.replied(token, Ok(vec![Response::Released(vec![true])]));
    // Committed is not enough: grants to the standing capacity may still be on their way,
    // until the replica's apply of the `ClearStanding` shows they are not.
    assert!(p.decisions().is_empty());
    let cleared = PoolApplied {
        standing: Some(0),
        cleared: Some(Cleared::Alone),
        ..PoolApplied::default()
    };
    p.core.applied(PoolEvent::Applied(cleared), |_| true);
    let report = DrainReport {
        finished: 0,
        released: 2,
        aborted: 1,
        unflushed: 0,
    };
    assert_eq!(p.decisions(), vec![Decision::Drained(report)]);
    assert!(p.core.is_done());
    p.core.work_signal();
    p.core.heartbeat_tick();
    assert!(p.decisions().is_empty(), "a drained pool decides nothing more");
}

#[test]
fn a_drain_gives_up_at_the_flush_deadline_and_counts_what_is_left() {
    let mut p = Pool::recovered(config(1));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![grant(1)])], vec![], None);
    p.core.finished(grant(1).lease, success());
    p.decisions();
    p.core.drain(Duration::ZERO);
    p.decisions();
    p.core.timer(Timer::FlushDeadline);
    let d = p.decisions();
    let Some(Decision::Drained(report)) = d.last() else {
        panic!("{d:?}")
    };
    // The completion (in flight, unanswered) never made it.
    assert_eq!((report.finished, report.unflushed), (0, 1));
}

#[test]
fn a_capacity_above_the_slots_buffers_ahead_of_free_slots() {
    let mut p = Pool::recovered(CoreConfig {
        prefetch: Prefetch::Fixed(2),
        ..config(1)
    });
    let (_, max, ticket) = p.lease();
    assert_eq!(max, 3);
    p.apply(vec![(ticket, vec![grant(1), grant(2), grant(3)])], vec![], None);
    assert_eq!(runs(&p.decisions()), vec![1]);
    assert_eq!((p.core.running.len(), p.core.buffered.len()), (1, 2));
    p.core.finished(grant(1).lease, success());
    assert_eq!(runs(&p.decisions()), vec![2]);
}

#[test]
fn stats_are_published_when_they_change_only() {
    let mut core = PoolCore::new(config(2));
    let first: Vec<Decision> = std::iter::from_fn(|| core.next_decision()).collect();
    assert!(matches!(first.last(), Some(Decision::Stats(s)) if s.workers == 2));
    core.work_signal();
    assert_eq!(core.next_decision(), None);
}

/// An operator's revoke (`core/revoke.rs`): the running task is aborted and its result
/// dropped, a revoked grant that comes later (its lease's reply after the apply) never runs.
#[test]
fn a_revoked_lease_is_aborted_and_its_late_grant_never_runs() {
    let mut p = Pool::recovered(config(2));
    let (_, _, ticket) = p.lease();
    p.apply(vec![(ticket, vec![grant(1)])], vec![], Some(1));
    assert_eq!(runs(&p.decisions()), vec![1]);
    let revoked = |leases: Vec<LeaseRef>| PoolApplied {
        revoked: leases,
        ..PoolApplied::default()
    };
    p.core
        .applied(PoolEvent::Applied(revoked(vec![grant(1).lease])), |_| true);
    assert_eq!(p.decisions(), vec![Decision::Abort(grant(1).lease)]);
    assert!(p.core.was_revoked(grant(1).lease));
    // The run ends (aborted, or finished before the abort reached it): nothing is owed.
    p.core.finished(grant(1).lease, success());
    let proposals = p.proposals();
    assert!(
        proposals.iter().all(|(_, p)| !matches!(
            p,
            Proposal::Complete(_) | Proposal::CompleteAndLease(..) | Proposal::Release(_)
        )),
        "{proposals:?}"
    );
    // Revoked before its grant arrived: dropped when it does.
    p.core
        .applied(PoolEvent::Applied(revoked(vec![grant(2).lease])), |_| true);
    p.apply(vec![], vec![grant(2)], Some(0));
    assert!(runs(&p.decisions()).is_empty());
    assert_eq!(p.core.stats().busy, 0);
}
