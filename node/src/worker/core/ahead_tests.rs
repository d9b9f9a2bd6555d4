//! Lease-ahead step by step: the allowance the core's measurements give, and when buffered
//! grants go back instead of running (`core/prefetch.rs`, `core/buffer.rs`). Time is what the
//! test says it is ([`PoolCore::at`]).

use super::tests::Pool;
use super::tests::config;
use super::tests::grant;
use super::tests::runs;
use super::tests::success;
use super::*;
use crate::replica::Cleared;
use crate::replica::PoolApplied;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn auto(slots: usize) -> CoreConfig {
    CoreConfig {
        prefetch: Prefetch::Auto,
        // Also the most held ahead.
        max_batch: 64,
        ..config(slots)
    }
}

fn completed(n: usize) -> Response {
    Response::Completed(vec![CompletionResult::Accepted; n])
}

fn released(proposals: &[(Token, Proposal)]) -> Vec<u64> {
    proposals
        .iter()
        .filter_map(|(_, p)| match p {
            Proposal::Release(r) => Some(r.leases.iter().map(|l| l.task)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The `max` of the one `Lease` (alone or with completions) among `proposals`.
fn lease_max(proposals: &[(Token, Proposal)]) -> Option<(Token, u32, u64)> {
    proposals.iter().find_map(|(token, p)| match p {
        Proposal::Lease(l) | Proposal::CompleteAndLease(_, l) | Proposal::ClearAndLease(_, l) => {
            Some((*token, l.max, l.standing_ticket.expect("ticketed")))
        }
        _ => None,
    })
}

/// A pool of `slots` that measured a `rtt_ms` round trip and `run_ms` runs: its first lease
/// (of its slots) came back full after `rtt_ms`, and the runs ended `run_ms` later, at
/// `rtt_ms + run_ms`. Returns the pool and the proposals of that moment.
fn measured(cfg: CoreConfig, rtt_ms: u64, run_ms: u64) -> (Pool, Vec<(Token, Proposal)>) {
    let slots = cfg.slots as u64;
    let mut p = Pool::recovered(cfg);
    let (token, max, _) = p.lease();
    assert_eq!(
        u64::from(max),
        slots,
        "nothing is held ahead before a measurement"
    );
    let grants: Vec<Grant> = (1..=slots).map(grant).collect();
    p.core
        .at(ms(rtt_ms))
        .replied(token, Ok(vec![Response::Leased(grants)]));
    assert_eq!(runs(&p.decisions()).len() as u64, slots);
    let ended = (1..=slots).map(|t| (grant(t).lease, success()));
    p.core.at(ms(rtt_ms + run_ms)).finished_all(ended);
    let proposals = p.proposals();
    (p, proposals)
}

#[test]
fn short_tasks_are_leased_ahead_by_the_bandwidth_delay_product() {
    // 2 slots finish 2 × 4 / 1 = 8 tasks in one 4 ms round trip.
    let (p, proposals) = measured(auto(2), 4, 1);
    let (_, max, _) = lease_max(&proposals).expect("a lease with the completions");
    assert_eq!(max, 2 + 8);
    assert_eq!(p.core.stats().lease_ahead, 8);
}

#[test]
fn long_tasks_get_no_prefetch() {
    let (p, proposals) = measured(auto(2), 2, 10);
    let (_, max, _) = lease_max(&proposals).expect("a lease with the completions");
    assert_eq!(max, 2, "tasks longer than a round trip: only the free slots");
    assert_eq!(p.core.stats().lease_ahead, 0);
}

#[test]
fn a_fixed_prefetch_and_none_ignore_the_measurements() {
    for (prefetch, want) in [(Prefetch::Fixed(3), 2 + 3), (Prefetch::Fixed(0), 2)] {
        let cfg = CoreConfig {
            prefetch,
            ..config(2)
        };
        let mut p = Pool::recovered(cfg);
        let (_, max, _) = p.lease();
        assert_eq!(max, want, "{prefetch}");
    }
}

/// One slot, one task held ahead (fixed), 1000 ms leases, 100 ms needed to start: task 1
/// runs, task 2 waits, both granted by a lease proposed at 0 ms.
fn one_running_one_buffered() -> Pool {
    let mut p = Pool::recovered(CoreConfig {
        prefetch: Prefetch::Fixed(1),
        ..config(1)
    });
    let (token, max, _) = p.lease();
    assert_eq!(max, 2);
    p.core
        .at(ms(1))
        .replied(token, Ok(vec![Response::Leased(vec![grant(1), grant(2)])]));
    assert_eq!(runs(&p.decisions()), vec![1]);
    assert_eq!(p.core.stats().buffered, 1);
    p
}

#[test]
fn a_buffered_task_whose_lease_would_run_short_is_released_not_run() {
    let mut p = one_running_one_buffered();
    // Its lease ends by 1000 ms at the latest; at 950 ms less than 100 ms (and a round trip)
    // are left.
    p.core.at(ms(950)).finished(grant(1).lease, success());
    let d = p.decisions();
    assert!(runs(&d).is_empty(), "{d:?}");
    let proposals: Vec<(Token, Proposal)> = d
        .into_iter()
        .filter_map(|d| match d {
            Decision::Propose(t, p) => Some((t, p)),
            _ => None,
        })
        .collect();
    assert_eq!(released(&proposals), vec![2]);
    assert_eq!(p.core.stats().short_lease_released_total, 1);
}

#[test]
fn a_heartbeat_the_log_accepted_keeps_a_buffered_task_startable() {
    let mut p = one_running_one_buffered();
    p.core.at(ms(500)).heartbeat_tick();
    let (token, proposal) = p.proposal();
    let Proposal::Heartbeat(hb) = proposal else {
        panic!("not a heartbeat: {proposal:?}");
    };
    assert_eq!(
        hb.leases,
        vec![grant(1).lease, grant(2).lease],
        "buffered leases too"
    );
    p.core
        .at(ms(502))
        .replied(token, Ok(vec![Response::Heartbeated(vec![true, true])]));
    // Extended to 500 + 1000 ms at least.
    p.core.at(ms(950)).finished(grant(1).lease, success());
    assert_eq!(runs(&p.decisions()), vec![2]);
}

#[test]
fn a_long_run_holding_up_the_buffer_sends_it_back() {
    // One slot, 4 ms round trips, 1 ms runs: 4 held ahead.
    let (mut p, proposals) = measured(auto(1), 4, 1);
    let (token, max, _) = lease_max(&proposals).expect("a lease with the completion");
    assert_eq!(max, 5);
    let grants: Vec<Grant> = (2..=6).map(grant).collect();
    p.core
        .at(ms(9))
        .replied(token, Ok(vec![completed(1), Response::Leased(grants)]));
    let d = p.decisions();
    assert_eq!(runs(&d), vec![2]);
    assert!(
        d.contains(&Decision::After(ms(8), Timer::Stall)),
        "two round trips: {d:?}"
    );
    // Task 2 runs on past the window: the four waiting behind it go back.
    p.core.at(ms(17)).timer(Timer::Stall);
    assert_eq!(released(&p.proposals()), vec![6, 5, 4, 3]);
    let stats = p.core.stats();
    assert_eq!(
        (stats.buffered, stats.lease_ahead, stats.unbuffered_total),
        (0, 0, 4)
    );
}

#[test]
fn a_run_ending_within_the_stall_window_keeps_the_buffer() {
    let (mut p, proposals) = measured(auto(1), 4, 1);
    let (token, _, _) = lease_max(&proposals).expect("a lease");
    let grants: Vec<Grant> = (2..=6).map(grant).collect();
    p.core
        .at(ms(9))
        .replied(token, Ok(vec![completed(1), Response::Leased(grants)]));
    p.decisions();
    p.core.at(ms(10)).finished(grant(2).lease, success());
    assert_eq!(runs(&p.decisions()), vec![3]);
    p.core.at(ms(17)).timer(Timer::Stall);
    assert!(released(&p.proposals()).is_empty());
    assert_eq!(p.core.stats().buffered, 3);
}

#[test]
fn a_fixed_prefetch_keeps_its_buffer_behind_a_long_run() {
    let mut p = Pool::recovered(CoreConfig {
        prefetch: Prefetch::Fixed(1),
        ..config(1)
    });
    let (token, _, _) = p.lease();
    p.core
        .at(ms(1))
        .replied(token, Ok(vec![Response::Leased(vec![grant(1), grant(2)])]));
    let d = p.decisions();
    assert_eq!(runs(&d), vec![1]);
    assert!(
        !d.iter().any(|d| matches!(d, Decision::After(_, Timer::Stall))),
        "no stall watch: {d:?}"
    );
    p.core.at(ms(400)).timer(Timer::Stall);
    assert!(p.proposals().is_empty());
    assert_eq!(p.core.stats().buffered, 1);
}

#[test]
fn when_the_allowance_falls_the_pool_stands_for_less() {
    // One slot, 4 held ahead; the queue is empty: its lease of 5 all stands.
    let (mut p, proposals) = measured(auto(1), 4, 1);
    let (token, max, ticket) = lease_max(&proposals).expect("a lease");
    assert_eq!(max, 5);
    p.apply(vec![(ticket, vec![])], vec![], Some(5));
    p.core
        .at(ms(9))
        .replied(token, Ok(vec![completed(1), Response::Leased(vec![])]));
    p.decisions();
    // A task comes to the standing capacity and runs 200 ms: runs now average far above a
    // round trip, and the pool stands for 4 it should no longer hold.
    p.core.at(ms(20));
    p.apply(vec![], vec![grant(7)], Some(4));
    assert_eq!(runs(&p.decisions()), vec![7]);
    p.core.at(ms(220)).finished(grant(7).lease, success());
    assert_eq!(p.core.stats().lease_ahead, 0);
    let proposals = p.proposals();
    let (token, max, ticket) = proposals
        .iter()
        .find_map(|(token, p)| match p {
            Proposal::ClearAndLease(_, l) => Some((*token, l.max, l.standing_ticket.expect("ticketed"))),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ClearAndLease in {proposals:?}"));
    assert_eq!(max, 0, "nothing more while the old standing capacity counts");
    // Applied: the pool stands again, for its free slot only.
    p.core.at(ms(222)).applied(
        PoolEvent::Applied(PoolApplied {
            leases: vec![(ticket, vec![])],
            grants: vec![],
            standing: Some(0),
            cleared: Some(Cleared::WithLease),
            revoked: vec![],
        }),
        |_| true,
    );
    p.core.replied(
        token,
        Ok(vec![Response::ClearedStanding(true), Response::Leased(vec![])]),
    );
    let (_, max, _) = lease_max(&p.proposals()).expect("a lease");
    assert_eq!(max, 1);
}

#[test]
fn grants_a_lagging_replica_replays_from_an_earlier_run_are_dropped_after_recovery() {
    // The `ReleasePool` was answered, but the replica still applies the entries before it:
    // a grant to the earlier run's standing capacity comes now (`sim dst --seed 4`).
    let mut p = Pool::recovered(config(2));
    let (token, _, ticket) = p.lease();
    p.apply(vec![], vec![grant(9)], Some(1));
    assert!(runs(&p.decisions()).is_empty(), "an earlier run's grant");
    assert_eq!(p.core.stats().stale_grants_total, 1);
    // Once the replica shows this run's lease, what it grants is this run's.
    p.apply(vec![(ticket, vec![])], vec![], Some(2));
    p.core.replied(token, Ok(vec![Response::Leased(vec![])]));
    p.apply(vec![], vec![grant(10)], Some(1));
    assert_eq!(runs(&p.decisions()), vec![10]);
}

/// A pool of `cfg` (no lease-ahead) whose first `Lease`, asked at 0 ms for its slots, was
/// answered at `answered_ms` with task 1, granted at log time 0 (its lease ends at 1,000), and
/// applied leaving `standing`: the pool measured the log's clock as not ahead of its own.
fn first_lease_granted(cfg: CoreConfig, answered_ms: u64, standing: u32) -> Pool {
    let slots = cfg.slots;
    let mut p = Pool::recovered(cfg);
    let (token, max, ticket) = p.lease();
    assert_eq!(max as usize, slots);
    p.core
        .at(ms(answered_ms))
        .replied(token, Ok(vec![Response::Leased(vec![grant(1)])]));
    p.apply(vec![(ticket, vec![grant(1)])], vec![], Some(standing));
    p
}

#[test]
fn a_grant_a_lagging_replica_reports_after_its_lease_is_gone_is_released_not_run() {
    let mut p = first_lease_granted(config(2), 2, 1);
    assert_eq!(runs(&p.decisions()), vec![1]);
    // The replica, cut off for 5 s, reports a grant to the standing capacity made at log time
    // 0: its lease ended by 1,000 ms.
    p.core.at(ms(5_000));
    p.apply(vec![], vec![grant(2)], Some(0));
    let d = p.decisions();
    assert!(runs(&d).is_empty(), "{d:?}");
    let proposals: Vec<(Token, Proposal)> = d
        .into_iter()
        .filter_map(|d| match d {
            Decision::Propose(t, p) => Some((t, p)),
            _ => None,
        })
        .collect();
    assert_eq!(released(&proposals), vec![2]);
}

/// The tasks of the `Complete` (alone or with a lease) among `proposals`.
fn completed_tasks(proposals: &[(Token, Proposal)]) -> Vec<u64> {
    proposals
        .iter()
        .filter_map(|(_, p)| match p {
            Proposal::Complete(c) | Proposal::CompleteAndLease(c, _) => {
                Some(c.completions.iter().map(|c| c.lease.task))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// A pool of `cfg.slots` running tasks 1..=slots, its one lease answered after a 4 ms round
/// trip (at 4 ms).
fn running_all(cfg: CoreConfig) -> Pool {
    let slots = cfg.slots as u64;
    let mut p = Pool::recovered(cfg);
    let (token, _, _) = p.lease();
    let grants: Vec<Grant> = (1..=slots).map(grant).collect();
    p.core
        .at(ms(4))
        .replied(token, Ok(vec![Response::Leased(grants)]));
    assert_eq!(runs(&p.decisions()).len() as u64, slots);
    p
}

#[test]
fn completions_wait_for_the_entry_in_flight_or_one_round_trip() {
    let mut p = running_all(CoreConfig {
        max_batch: 64,
        ..config(4)
    });
    // Nothing in flight: a finished task goes at once.
    p.core.at(ms(5)).finished(grant(1).lease, success());
    let proposals = p.proposals();
    assert_eq!(completed_tasks(&proposals), vec![1]);
    let (a, _, _) = lease_max(&proposals).expect("a lease with the completion");
    // One in flight: the next waits until it is a round trip (4 ms) old, one timer for all.
    p.core.at(ms(6)).finished(grant(2).lease, success());
    assert_eq!(p.decisions(), vec![Decision::After(ms(3), Timer::Pace)]);
    p.core.at(ms(7)).finished(grant(3).lease, success());
    // Work is hinted and a slot is free, but the lease waits to ride with the completions.
    p.core.work_signal();
    assert!(p.decisions().is_empty(), "an entry more while completions wait");
    // The answer comes first: what finished meanwhile goes in one entry, with the lease.
    p.core
        .at(ms(9))
        .replied(a, Ok(vec![completed(1), Response::Leased(vec![])]));
    let proposals = p.proposals();
    assert_eq!(completed_tasks(&proposals), vec![2, 3]);
    assert!(lease_max(&proposals).is_some(), "{proposals:?}");
    // The timer set for the first entry finds the second too young: it waits again.
    p.core.at(ms(9)).finished(grant(4).lease, success());
    p.core.at(ms(9)).timer(Timer::Pace);
    assert_eq!(p.decisions(), vec![Decision::After(ms(4), Timer::Pace)]);
    // No answer within a round trip: the next entry goes anyway (the pipeline covers a slow
    // commit), two in flight.
    p.core.at(ms(13)).timer(Timer::Pace);
    assert_eq!(completed_tasks(&p.proposals()), vec![4]);
    assert_eq!(p.core.outbox.completes_in_flight(), 2);
}

#[test]
fn a_full_batch_of_completions_does_not_wait() {
    // Two completions fill a `Complete` (`config`'s max_batch).
    let mut p = running_all(config(3));
    p.core.at(ms(5)).finished(grant(1).lease, success());
    assert_eq!(completed_tasks(&p.proposals()), vec![1]);
    p.core.at(ms(6)).finished(grant(2).lease, success());
    assert_eq!(p.decisions(), vec![Decision::After(ms(3), Timer::Pace)]);
    p.core.at(ms(6)).finished(grant(3).lease, success());
    assert_eq!(completed_tasks(&p.proposals()), vec![2, 3]);
}

#[test]
fn a_grant_short_only_by_a_stale_log_clock_is_released_once_then_runs() {
    // `sim dst --seed 55868944`: after the leader's clock jumped back, the log's clock stood
    // still while the pool's ran on; every grant to standing capacity looked short by the
    // jump, went back to the same standing capacity in the release's entry, and looped.
    let mut p = first_lease_granted(config(3), 2, 2);
    assert_eq!(runs(&p.decisions()), vec![1]);
    // 2 s later the log's clock reads only 500 ms (it stood still 1.5 s): a grant to the
    // standing capacity made just now looks as if its lease ended 1.5 s ago.
    let stale = |attempt| Grant {
        lease: LeaseRef { task: 2, attempt },
        lease_deadline_ms: 1_500,
        ..grant(2)
    };
    p.core.at(ms(2_000));
    p.apply(vec![], vec![stale(1)], Some(1));
    assert_eq!(released(&p.proposals()), vec![2]);
    assert_eq!(p.core.stats().short_lease_released_total, 1);
    // The release's entry grants it straight back to the standing capacity, the log's clock
    // still standing: judged on the estimate now, it runs.
    p.core.at(ms(2_006));
    p.apply(vec![], vec![stale(2)], Some(1));
    assert_eq!(runs(&p.decisions()), vec![2]);
    assert_eq!(p.core.stats().short_lease_released_total, 1);
}

#[test]
fn a_grant_short_by_its_own_lease_keeps_the_log_clock_measured() {
    // Only a bound from the log's clock alone is suspect: a grant of the pool's own `Lease`
    // that comes back too late is released, and the measurement it gave stays.
    let mut p = first_lease_granted(config(2), 950, 1);
    let proposals = p.proposals();
    assert_eq!(released(&proposals), vec![1]);
    let release = proposals
        .iter()
        .find_map(|(t, p)| matches!(p, Proposal::Release(_)).then_some(*t))
        .expect("a release");
    p.core.replied(release, Ok(vec![Response::Released(vec![true])]));
    // So a grant a lagging replica reports seconds late is still judged on it: released.
    p.core.at(ms(5_000));
    p.apply(vec![], vec![grant(2)], Some(0));
    let proposals = p.proposals();
    assert_eq!(released(&proposals), vec![2], "{proposals:?}");
}

#[test]
fn answers_to_releases_bring_a_stretched_round_trip_back_down() {
    // `sim dst --seed 52`: message loss stretched the pool's round trip past its lease; every
    // grant then went back as too short to start, and the pool proposed nothing but releases.
    let mut p = Pool::recovered(config(2));
    let (token, _, ticket) = p.lease();
    // The lease's answer took 3 s: the estimate is 3 s, far past the 1 s lease.
    p.core
        .at(ms(3_000))
        .replied(token, Ok(vec![Response::Leased(vec![])]));
    p.apply(vec![(ticket, vec![])], vec![], Some(2));
    p.decisions();
    let mut now = 3_000;
    let mut released_before_run = 0;
    for attempt in 1..=60 {
        now += 10;
        // Granted by the release's own entry, at the log's time `now` (the clocks agree).
        let g = Grant {
            lease: LeaseRef { task: 7, attempt },
            lease_deadline_ms: now + 1_000,
            ..grant(7)
        };
        p.core.at(ms(now));
        p.apply(vec![], vec![g], Some(1));
        let d = p.decisions();
        if !runs(&d).is_empty() {
            break;
        }
        released_before_run += 1;
        let (token, _) = d
            .iter()
            .find_map(|d| match d {
                Decision::Propose(t, Proposal::Release(r)) => Some((*t, r.leases.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("neither run nor released: {d:?}"));
        // Each release is answered in 5 ms.
        now += 5;
        p.core
            .at(ms(now))
            .replied(token, Ok(vec![Response::Released(vec![true])]));
    }
    assert!(
        (1..30).contains(&released_before_run),
        "released {released_before_run} times before it ran"
    );
}
