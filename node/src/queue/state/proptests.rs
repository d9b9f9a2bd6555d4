//! Property tests: random sequences of entries (every command, valid, stale and unknown leases
//! and ids, time moving forward, backward and jumping to the end of time), checked after every
//! entry, command and individual completion.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::tests::spec;
use super::*;

/// A lease chosen relative to the state at the time the entry is built, so that random
/// sequences hit live leases often instead of almost never.
#[derive(Clone, Debug)]
enum LeaseSel {
    /// The i-th currently leased task, with its current attempt.
    Live(usize),
    /// The i-th currently leased task, with an older attempt.
    Old(usize),
    Raw(TaskId, u32),
}

#[derive(Clone, Debug)]
enum IdSel {
    Existing(usize),
    Raw(TaskId),
}

#[derive(Clone, Debug)]
enum Op {
    Submit(Vec<TaskSpec>),
    Lease {
        worker: &'static str,
        queues: Vec<&'static str>,
        max: u32,
        lease_ms: u64,
        standing_ticket: Option<u64>,
    },
    ClearStanding(&'static str),
    Complete(Vec<(LeaseSel, Outcome)>),
    Heartbeat(Vec<LeaseSel>, u64),
    Release(Vec<LeaseSel>),
    ReleasePool(&'static str),
    AllocateNodeId,
    Cancel(Vec<IdSel>),
    Tick,
    PurgeQueue(&'static str),
    PauseQueue(&'static str, bool),
    /// A token with one of a few hashes (so some repeat), a role and an optional ttl.
    CreateToken(u8, Role, Option<u64>),
    RevokeToken(TokenId),
    /// A declaration by one of a few declarers of a few names (some too long) and queues.
    DeclareTasks(&'static str, Vec<(&'static str, &'static str)>),
    /// Progress reports of a few leases.
    Progress(Vec<LeaseSel>),
    /// An operator's retry of a few tasks (`state/operator.rs`).
    Retry(Vec<IdSel>),
    /// An operator's revoke (`cancel --terminate`) of a few tasks, running ones too.
    Revoke(Vec<IdSel>),
    /// The switch that starts attempt histories (`state/attempts.rs`).
    RecordAttempts,
}

#[derive(Clone, Debug)]
enum Time {
    Delta(i64),
    EndOfTime,
}

#[derive(Clone, Debug)]
struct Step {
    /// A new leader's blank entry comes first ([`QueueState::new_term`]).
    new_term: bool,
    time: Time,
    ops: Vec<Op>,
}

const QUEUES: [&str; 4] = ["", "default", "q1", "q2"];

/// A task name one byte over the catalogue's limit.
const LONG_NAME: &str = concat!(
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "!"
);

fn big_u64(small: std::ops::Range<u64>) -> impl Strategy<Value = u64> {
    prop_oneof![20 => small, 1 => Just(u64::MAX), 1 => Just(0u64)]
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (
        (
            prop::sample::select(vec!["a", "b"]),
            prop::sample::select(QUEUES.to_vec()),
            0u8..4,
        ),
        (
            prop::option::weighted(0.2, big_u64(0..3_000)),
            prop::option::weighted(0.2, big_u64(0..500)),
        ),
        (prop_oneof![10 => 0u32..4, 1 => Just(u32::MAX)], big_u64(1..200)),
        (
            prop::option::weighted(0.3, prop::sample::select(vec!["k0", "k1", "k2", "k3"])),
            big_u64(0..1_000),
            prop::option::of(0u64..10_000),
            prop::option::weighted(0.2, prop::sample::select(vec!["t1", "t2"])),
        ),
    )
        .prop_map(
            |(
                (name, queue, priority),
                (eta_ms, countdown_ms),
                (max_retries, backoff_ms),
                (key, ttl, limit, trace),
            )| {
                let mut s = spec(name);
                s.queue = queue.into();
                s.priority = priority;
                s.eta_ms = eta_ms;
                s.countdown_ms = countdown_ms;
                s.max_retries = max_retries;
                s.backoff_ms = backoff_ms;
                s.idempotency_key = key.map(String::from);
                s.result_ttl_ms = ttl;
                s.time_limit_ms = limit;
                s.headers = trace
                    .map(|t| [("traceparent".to_string(), t.to_string())].into())
                    .unwrap_or_default();
                s.args = Bytes::from(name.as_bytes().to_vec());
                s
            },
        )
}

fn lease_sel() -> impl Strategy<Value = LeaseSel> {
    prop_oneof![
        6 => (0usize..8).prop_map(LeaseSel::Live),
        2 => (0usize..8).prop_map(LeaseSel::Old),
        2 => (0u64..30, 0u32..5).prop_map(|(t, a)| LeaseSel::Raw(t, a)),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Success(Bytes::from_static(b"ok"))),
        3 => Just(Outcome::Failure { error: "transient".into(), retry: true }),
        1 => Just(Outcome::Failure { error: "fatal".into(), retry: false }),
        1 => big_u64(0..2_000).prop_map(|delay_ms| Outcome::RetryAfter { error: "later".into(), delay_ms }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(task_spec(), 0..4).prop_map(Op::Submit),
        5 => (
            prop::sample::select(vec!["w1", "w2", "w3"]),
            prop::collection::vec(prop::sample::select(vec!["", "q1", "q2", "nope"]), 0..3),
            prop_oneof![5 => 0u32..4, 1 => Just(u32::MAX)],
            big_u64(0..400),
            // Half of the leases leave standing capacity, as a pool with events does.
            prop::option::of(0u64..4),
        )
            .prop_map(|(worker, queues, max, lease_ms, standing_ticket)| Op::Lease {
                worker,
                queues,
                max,
                lease_ms,
                standing_ticket,
            }),
        1 => prop::sample::select(vec!["w1", "w2", "w3"]).prop_map(Op::ClearStanding),
        5 => prop::collection::vec((lease_sel(), outcome()), 0..4).prop_map(Op::Complete),
        2 => (prop::collection::vec(lease_sel(), 0..3), big_u64(0..400)).prop_map(|(l, ms)| Op::Heartbeat(l, ms)),
        1 => prop::collection::vec(lease_sel(), 0..3).prop_map(Op::Release),
        1 => prop::sample::select(vec!["w1", "w2", "w3", "nobody"]).prop_map(Op::ReleasePool),
        1 => Just(Op::AllocateNodeId),
        1 => prop::collection::vec(
            prop_oneof![(0usize..10).prop_map(IdSel::Existing), (0u64..30).prop_map(IdSel::Raw)],
            0..3
        )
        .prop_map(Op::Cancel),
        1 => Just(Op::Tick),
        1 => prop::sample::select(QUEUES.to_vec()).prop_map(Op::PurgeQueue),
        1 => (prop::sample::select(QUEUES.to_vec()), any::<bool>()).prop_map(|(q, p)| Op::PauseQueue(q, p)),
        1 => (0u8..4, prop::sample::select(Role::ALL.to_vec()), prop::option::of(big_u64(0..400)))
            .prop_map(|(h, role, ttl)| Op::CreateToken(h, role, ttl)),
        1 => (0u64..6).prop_map(Op::RevokeToken),
        1 => (
            prop::sample::select(vec!["node:1", "w1", "w2", ""]),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "b", "c", "", LONG_NAME]),
                    prop::sample::select(vec!["", "q1", "images"]),
                ),
                0..4,
            ),
        )
            .prop_map(|(declarer, tasks)| Op::DeclareTasks(declarer, tasks)),
        2 => prop::collection::vec(lease_sel(), 0..3).prop_map(Op::Progress),
        1 => prop::collection::vec(id_sel(), 0..3).prop_map(Op::Retry),
        1 => prop::collection::vec(id_sel(), 0..3).prop_map(Op::Revoke),
        1 => Just(Op::RecordAttempts),
    ]
}

fn id_sel() -> impl Strategy<Value = IdSel> {
    prop_oneof![
        (0usize..10).prop_map(IdSel::Existing),
        (0u64..30).prop_map(IdSel::Raw)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let time = prop_oneof![60 => (-100i64..300).prop_map(Time::Delta), 1 => Just(Time::EndOfTime)];
    (prop::bool::weighted(0.1), time, prop::collection::vec(op(), 0..4))
        .prop_map(|(new_term, time, ops)| Step { new_term, time, ops })
}

/// Turn a symbolic step into a concrete entry against the current state.
fn resolve(s: &QueueState, last_now: UnixMs, step: &Step) -> Request {
    let now_ms = match step.time {
        Time::Delta(d) if d < 0 => last_now.saturating_sub(d.unsigned_abs()),
        Time::Delta(d) => last_now.saturating_add(d as u64),
        Time::EndOfTime => u64::MAX,
    };
    let leased: Vec<(TaskId, u32)> = s
        .tasks
        .iter()
        .filter(|(_, t)| t.state == TaskState::Leased)
        .map(|(id, t)| (id, t.attempt))
        .collect();
    let lease = |sel: &LeaseSel| match *sel {
        LeaseSel::Live(i) if !leased.is_empty() => {
            let (task, attempt) = leased[i % leased.len()];
            LeaseRef { task, attempt }
        }
        LeaseSel::Old(i) if !leased.is_empty() => {
            let (task, attempt) = leased[i % leased.len()];
            LeaseRef {
                task,
                attempt: attempt - 1,
            }
        }
        LeaseSel::Live(i) | LeaseSel::Old(i) => LeaseRef {
            task: i as TaskId,
            attempt: 1,
        },
        LeaseSel::Raw(task, attempt) => LeaseRef { task, attempt },
    };
    let ids: Vec<TaskId> = s.tasks.keys().collect();
    let pick = |sel: &[IdSel]| -> Vec<TaskId> {
        sel.iter()
            .map(|s| match *s {
                IdSel::Existing(i) if !ids.is_empty() => ids[i % ids.len()],
                IdSel::Existing(i) => i as TaskId,
                IdSel::Raw(id) => id,
            })
            .collect()
    };
    let commands = step
        .ops
        .iter()
        .map(|op| match op {
            Op::Submit(tasks) => Command::Submit {
                tasks: tasks.clone().into(),
            },
            Op::Lease {
                worker,
                queues,
                max,
                lease_ms,
                standing_ticket,
            } => Command::Lease {
                pool: worker.to_string(),
                queues: queues.iter().map(|q| q.to_string()).collect(),
                max: *max,
                lease_ms: *lease_ms,
                standing_ticket: *standing_ticket,
            },
            Op::ClearStanding(w) => Command::ClearStanding { pool: w.to_string() },
            Op::Complete(c) => Command::Complete {
                pool: "w1".into(),
                completions: c
                    .iter()
                    .map(|(l, o)| Completion {
                        lease: lease(l),
                        outcome: o.clone(),
                    })
                    .collect(),
            },
            Op::Progress(l) => Command::Progress {
                reports: l
                    .iter()
                    .map(|sel| {
                        let lease = lease(sel);
                        let data = Bytes::from(format!("{{\"at\":{now_ms},\"attempt\":{}}}", lease.attempt));
                        ProgressReport { lease, data }
                    })
                    .collect(),
            },
            Op::Heartbeat(l, ms) => Command::Heartbeat {
                pool: "w1".into(),
                leases: l.iter().map(&lease).collect(),
                lease_ms: *ms,
            },
            Op::AllocateNodeId => Command::AllocateNodeId,
            Op::ReleasePool(w) => Command::ReleasePool { pool: w.to_string() },
            Op::Release(l) => Command::Release {
                pool: "w1".into(),
                leases: l.iter().map(&lease).collect(),
            },
            Op::Cancel(sel) => Command::Cancel { ids: pick(sel) },
            Op::Retry(sel) => Command::Retry { ids: pick(sel) },
            Op::Revoke(sel) => Command::Revoke {
                ids: pick(sel),
                reason: "stop".into(),
            },
            Op::Tick => Command::Tick,
            Op::RecordAttempts => Command::RecordAttempts,
            Op::PurgeQueue(q) => Command::PurgeQueue { queue: q.to_string() },
            Op::PauseQueue(q, p) => Command::PauseQueue {
                queue: q.to_string(),
                paused: *p,
            },
            Op::CreateToken(h, role, ttl_ms) => Command::CreateToken {
                role: *role,
                hash: TokenHash([*h; 32]),
                label: format!("t{h}"),
                ttl_ms: *ttl_ms,
            },
            Op::RevokeToken(id) => Command::RevokeToken { id: *id },
            Op::DeclareTasks(declarer, tasks) => Command::DeclareTasks {
                declarer: declarer.to_string(),
                tasks: tasks
                    .iter()
                    .map(|(name, queue)| TaskDecl {
                        name: name.to_string(),
                        queue: queue.to_string(),
                    })
                    .collect(),
            },
        })
        .collect();
    Request { now_ms, commands }
}

fn shape_matches(cmd: &Command, r: &Response) -> bool {
    match (cmd, r) {
        (Command::Submit { tasks }, Response::Submitted(s)) => s.len() == tasks.len(),
        (Command::Lease { max, .. }, Response::Leased(g)) => g.len() <= *max as usize,
        (Command::Complete { completions, .. }, Response::Completed(c)) => c.len() == completions.len(),
        (Command::Heartbeat { leases, .. }, Response::Heartbeated(b)) => b.len() == leases.len(),
        (Command::Progress { reports }, Response::Progressed(b)) => b.len() == reports.len(),
        (Command::Release { leases, .. }, Response::Released(b)) => b.len() == leases.len(),
        (Command::Cancel { ids }, Response::Cancelled(b)) => b.len() == ids.len(),
        (Command::Retry { ids }, Response::Retried(b)) => b.len() == ids.len(),
        (Command::Revoke { ids, .. }, Response::Revoked(o)) => o.len() == ids.len(),
        (Command::ReleasePool { .. }, Response::ReleasedPool(_)) => true,
        (Command::ClearStanding { .. }, Response::ClearedStanding(_)) => true,
        (Command::AllocateNodeId, Response::NodeId(_)) => true,
        (Command::Tick, Response::Ticked) | (Command::PauseQueue { .. }, Response::Paused) => true,
        (Command::PurgeQueue { .. }, Response::Purged(_)) => true,
        (Command::RecordAttempts, Response::RecordingAttempts(_)) => true,
        (Command::CreateToken { .. }, Response::TokenCreated(_)) => true,
        (Command::RevokeToken { .. }, Response::TokenRevoked(_)) => true,
        (Command::DeclareTasks { tasks, .. }, Response::TasksDeclared(r)) => {
            r.as_ref().map_or(true, |n| *n as usize <= tasks.len())
        }
        _ => false,
    }
}

/// Replays `req` on a copy of `before` one command (and one completion, heartbeat, release or
/// cancel) at a time through the private per-item functions, asserting that every rejected
/// item changed nothing and that leases were granted as claimed. Returns the state and answers,
/// which must equal the batch `apply`'s.
fn apply_stepwise(before: &QueueState, req: &Request) -> (QueueState, Vec<Response>, ApplyEffects) {
    let mut s = before.clone();
    let mut fx = ApplyEffects::default();
    s.advance(req.now_ms, &mut fx);
    s.check_indexes().unwrap();
    // Standing capacity not renewed by now is gone before anything else happens.
    for w in ["w1", "w2", "w3"] {
        if let Some(o) = before.standing.offers.get(w) {
            let expired = o.expires_ms <= s.now_ms;
            assert_eq!(
                s.standing_capacity(w) == 0,
                expired,
                "expiry of {w}'s standing capacity"
            );
        }
    }

    assert!(
        s.next_deadline_ms().is_none_or(|d| d > s.now_ms),
        "a due timer survived the advance"
    );
    // Every lease that ran out counted one lost lease and no failure: the task is pending again,
    // or dead at the cap (it may be gone if its TTL was 0).
    for (id, t) in before
        .tasks
        .iter()
        .filter(|(_, t)| t.state == TaskState::Leased && t.timer_ms <= s.now_ms)
    {
        if let Some(after) = s.tasks.get(id) {
            assert_eq!(
                (after.failures, after.attempt, after.lost_leases),
                (t.failures, t.attempt, t.lost_leases + 1),
                "expiry of task {id}"
            );
            let expected = if after.lost_leases >= MAX_LOST_LEASES {
                TaskState::Dead
            } else {
                TaskState::Pending
            };
            // Checked before the grant pass: until then nothing can lease it again.
            assert_eq!(after.state, expected, "state after expiry of task {id}");
        }
    }
    // Then what became pending goes to standing capacity (in the same apply).
    checked_grant_pass(&mut s, &mut fx);
    let mut responses = Vec::new();
    // Runs one item whose acceptance the caller predicted from the state before it; a rejected
    // item must leave the state exactly as it was.
    fn item(
        s: &mut QueueState,
        expect: impl FnOnce(&QueueState) -> bool,
        f: impl FnOnce(&mut QueueState) -> bool,
    ) -> bool {
        let expect = expect(s);
        let snapshot = s.clone();
        let accepted = f(s);
        assert_eq!(accepted, expect, "acceptance differs from the fencing rule");
        if !accepted {
            assert_eq!(*s, snapshot, "a rejected item changed the state");
        }
        s.check_indexes().unwrap();
        accepted
    }
    let current = |s: &QueueState, l: LeaseRef| s.current_lease(l.task).is_some_and(|(c, _, _)| c == l);
    let cancellable = |s: &QueueState, id: TaskId| {
        s.task(id).is_some_and(|t| {
            matches!(
                t.state,
                TaskState::Scheduled | TaskState::Pending | TaskState::Retrying
            )
        })
    };
    for cmd in &req.commands {
        let pending_before = fx.became_pending;
        let r = match cmd {
            Command::Complete { completions, .. } => Response::Completed(
                completions
                    .iter()
                    .map(|c| {
                        let prior = s.tasks.get(c.lease.task).cloned();
                        let ok = item(
                            &mut s,
                            |s| current(s, c.lease),
                            |s| s.complete(c, &mut fx) == CompletionResult::Accepted,
                        );
                        if ok && let Some(p) = prior {
                            check_retry_rule(
                                &p,
                                s.idx.options(&p),
                                &s.tasks[&c.lease.task],
                                &c.outcome,
                                s.now_ms,
                            );
                        }
                        if ok {
                            CompletionResult::Accepted
                        } else {
                            CompletionResult::Stale
                        }
                    })
                    .collect(),
            ),
            Command::Heartbeat { leases, lease_ms, .. } => Response::Heartbeated(
                leases
                    .iter()
                    .map(|l| {
                        let ok = item(&mut s, |s| current(s, *l), |s| s.heartbeat(*l, *lease_ms));
                        if ok {
                            assert_eq!(
                                s.current_lease(l.task).unwrap().2,
                                s.now_ms.saturating_add(*lease_ms)
                            );
                        }
                        ok
                    })
                    .collect(),
            ),
            Command::Progress { reports } => Response::Progressed(
                reports
                    .iter()
                    .map(|r| {
                        let ok = item(&mut s, |s| current(s, r.lease), |s| s.progress(r.lease, &r.data));
                        if ok {
                            let view = s.task(r.lease.task).unwrap();
                            let kept = view.progress.unwrap();
                            assert_eq!(
                                (kept.attempt, kept.at_ms, &kept.data),
                                (r.lease.attempt, s.now_ms, &r.data)
                            );
                        }
                        ok
                    })
                    .collect(),
            ),
            Command::Release { leases, .. } => Response::Released(
                leases
                    .iter()
                    .map(|l| item(&mut s, |s| current(s, *l), |s| s.release(*l, &mut fx)))
                    .collect(),
            ),
            Command::ReleasePool { pool: worker } => {
                let held: Vec<(TaskId, Task)> = s
                    .tasks
                    .iter()
                    .filter(|(id, _)| s.current_lease(*id).is_some_and(|(_, w, _)| w == worker))
                    .map(|(id, t)| (id, t.clone()))
                    .collect();
                let r = s.apply_command(cmd, &mut fx);
                assert_eq!(r, Response::ReleasedPool(held.len() as u64));
                for (id, t) in held {
                    let after = &s.tasks[&id];
                    assert_eq!(after.state, TaskState::Pending, "released task {id}");
                    assert_eq!(
                        (after.attempt, after.failures, after.lost_leases),
                        (t.attempt, t.failures, t.lost_leases)
                    );
                }
                assert_eq!(
                    s.standing_capacity(worker),
                    0,
                    "ReleasePool leaves standing capacity"
                );
                s.check_indexes().unwrap();
                r
            }
            Command::Cancel { ids } => Response::Cancelled(
                ids.iter()
                    .map(|id| item(&mut s, |s| cancellable(s, *id), |s| s.cancel(*id, &mut fx)))
                    .collect(),
            ),
            Command::Retry { ids } => Response::Retried(
                ids.iter()
                    .map(|id| {
                        let prior = s.tasks.get(*id).cloned();
                        let retriable = |s: &QueueState| {
                            s.task(*id)
                                .is_some_and(|t| matches!(t.state, TaskState::Dead | TaskState::Cancelled))
                        };
                        let ok = item(&mut s, retriable, |s| s.retry(*id, &mut fx));
                        if ok && let Some(p) = prior {
                            let t = &s.tasks[id];
                            assert_eq!(
                                (t.state, t.attempt, t.failures, t.lost_leases),
                                (TaskState::Pending, p.attempt, 0, 0),
                                "retried task {id}"
                            );
                        }
                        ok
                    })
                    .collect(),
            ),
            Command::Revoke { ids, reason } => Response::Revoked(
                ids.iter()
                    .map(|id| {
                        let held = s.current_lease(*id).map(|(l, w, _)| (l, w.to_owned()));
                        let live = |s: &QueueState| s.task(*id).is_some_and(|t| !t.state.is_final());
                        let mut outcome = Revoked::Unchanged;
                        let ok = item(&mut s, live, |s| {
                            outcome = s.revoke(*id, reason, &mut fx);
                            outcome != Revoked::Unchanged
                        });
                        if ok {
                            let v = s.task(*id).unwrap();
                            assert_eq!(
                                (v.state, v.error.as_deref()),
                                (TaskState::Cancelled, Some("stop"))
                            );
                            assert!(s.current_lease(*id).is_none(), "a revoked task still leased");
                            match &held {
                                Some((lease, worker)) => {
                                    assert_eq!(outcome, Revoked::Terminated);
                                    assert!(fx.pools[worker].revoked.contains(lease), "holder not told");
                                }
                                None => assert_eq!(outcome, Revoked::Cancelled),
                            }
                        }
                        outcome
                    })
                    .collect(),
            ),
            Command::Lease {
                pool: worker,
                max,
                standing_ticket,
                ..
            } => {
                let prior: BTreeMap<TaskId, u32> = s.tasks.iter().map(|(id, t)| (id, t.attempt)).collect();
                let standing_before = s.standing_capacity(worker);
                let r = s.apply_command(cmd, &mut fx);
                let Response::Leased(grants) = &r else {
                    panic!("lease answered {r:?}")
                };
                let granted: BTreeSet<TaskId> = grants.iter().map(|g| g.lease.task).collect();
                assert_eq!(granted.len(), grants.len(), "a task granted twice in one lease");
                for g in grants {
                    assert_eq!(
                        g.lease.attempt,
                        prior[&g.lease.task] + 1,
                        "attempt not incremented by one"
                    );
                    let current = s.current_lease(g.lease.task).unwrap();
                    assert_eq!(current, (g.lease, worker.as_str(), g.lease_deadline_ms));
                }
                // A ticketed lease adds what it did not fill to what stood; others leave it.
                let expected = match standing_ticket {
                    Some(_) => standing_before.saturating_add(max.saturating_sub(grants.len() as u32)),
                    None => standing_before,
                };
                assert_eq!(
                    s.standing_capacity(worker),
                    expected,
                    "standing capacity after a lease"
                );
                s.check_indexes().unwrap();
                r
            }
            Command::CreateToken {
                role, hash, ttl_ms, ..
            } => {
                let taken = s.tokens.id_of(hash).is_some();
                let before = s.tokens.clone();
                let r = s.apply_command(cmd, &mut fx);
                match &r {
                    Response::TokenCreated(Some(id)) => {
                        assert!(!taken, "a repeated hash was stored");
                        assert_eq!(s.tokens.id_of(hash), Some(*id));
                        let rec = s.tokens.get(*id).expect("the new token is stored");
                        assert_eq!(rec.role, *role);
                        assert_eq!(rec.expires_ms, ttl_ms.map(|t| s.now_ms.saturating_add(t)));
                        assert_eq!(
                            s.tokens.find(hash, s.now_ms).is_some(),
                            ttl_ms.is_none_or(|t| s.now_ms < s.now_ms.saturating_add(t)),
                            "live from its creation until its ttl ends"
                        );
                    }
                    Response::TokenCreated(None) => {
                        assert!(taken, "a new hash was refused");
                        assert_eq!(s.tokens, before, "a refused create changed tokens");
                    }
                    other => panic!("create token answered {other:?}"),
                }
                s.check_invariants().unwrap();
                r
            }
            Command::RevokeToken { id } => {
                let existed = s.tokens.get(*id).is_some();
                let r = s.apply_command(cmd, &mut fx);
                assert_eq!(r, Response::TokenRevoked(existed));
                assert!(s.tokens.get(*id).is_none(), "a revoked token is still stored");
                r
            }
            Command::DeclareTasks { declarer, tasks } => {
                let before = s.catalog.clone();
                let missing = before.missing(declarer, tasks);
                let r = s.apply_command(cmd, &mut fx);
                match &r {
                    Response::TasksDeclared(Ok(n)) => {
                        // Each name ends declared by `declarer` with the queue it was given
                        // last in the command; what was declared already counts nothing.
                        let mut last = BTreeMap::new();
                        for t in tasks {
                            last.insert(t.name.clone(), t.clone());
                        }
                        let last: Vec<TaskDecl> = last.into_values().collect();
                        assert!(s.catalog.missing(declarer, &last).is_empty(), "not declared");
                        assert!(*n as usize >= missing.len().min(1) && *n as usize <= tasks.len());
                        if missing.is_empty() {
                            assert_eq!(s.catalog, before, "re-declaring changed the catalogue");
                        }
                    }
                    Response::TasksDeclared(Err(_)) => {
                        assert_eq!(s.catalog, before, "a refused declaration changed the catalogue");
                        assert!(before.check_declaration(declarer, tasks).is_err());
                    }
                    other => panic!("declare answered {other:?}"),
                }
                s.check_invariants().unwrap();
                r
            }
            _ => {
                let r = s.apply_command(cmd, &mut fx);
                s.check_indexes().unwrap();
                r
            }
        };
        let grants_before = grant_count(&fx);
        s.after_command(cmd, pending_before, &mut fx);
        check_grants(&s, &fx, grants_before);
        s.check_invariants().unwrap();
        responses.push(r);
    }
    (s, responses, fx)
}

fn grant_count(fx: &ApplyEffects) -> usize {
    fx.pools.values().map(|w| w.grants.len()).sum()
}

/// The grant pass after an advance, checked like the one after each command.
fn checked_grant_pass(s: &mut QueueState, fx: &mut ApplyEffects) {
    let before = grant_count(fx);
    s.grant_standing(fx);
    check_grants(s, fx, before);
    s.check_invariants().unwrap();
}

/// Grants to standing capacity are current leases of the worker they were reported to, with
/// a deadline `now + lease_ms` in the future of the apply, and each worker's reported standing
/// capacity is what the state holds.
fn check_grants(s: &QueueState, fx: &ApplyEffects, _before: usize) {
    for (worker, w) in &fx.pools {
        for g in &w.grants {
            // Released later in the same entry (`ReleasePool`) is the only way to lose it.
            if let Some((lease, holder, _)) = s.current_lease(g.lease.task)
                && lease == g.lease
            {
                assert_eq!(holder, worker, "grant reported to another worker");
            }
        }
        if let Some(n) = w.standing {
            assert_eq!(
                s.standing_capacity(worker),
                n,
                "reported standing capacity of {worker}"
            );
        }
    }
}

/// An accepted completion moved the task as the retry rules say, computed independently (in
/// u128, without the code under test's `backoff_delay`).
fn check_retry_rule(before: &Task, opts: TaskOptions, after: &Task, outcome: &Outcome, now: UnixMs) {
    let failures = before.failures + 1;
    let expected = match outcome {
        Outcome::Success(_) => (TaskState::Succeeded, before.failures),
        Outcome::Failure { retry: true, .. } if failures <= opts.max_retries && opts.backoff_ms == 0 => {
            (TaskState::Pending, failures)
        }
        Outcome::Failure { retry: true, .. } if failures <= opts.max_retries => {
            let delay =
                (u128::from(opts.backoff_ms) << (failures - 1).min(100)).min(u128::from(MAX_BACKOFF_MS));
            let due = (u128::from(now) + delay).min(u128::from(u64::MAX)) as u64;
            assert_eq!(after.timer_ms, due, "retry due time");
            (TaskState::Retrying, failures)
        }
        Outcome::RetryAfter { delay_ms: 0, .. } if failures <= opts.max_retries => {
            (TaskState::Pending, failures)
        }
        Outcome::RetryAfter { delay_ms, .. } if failures <= opts.max_retries => {
            let due = now.saturating_add((*delay_ms).min(MAX_BACKOFF_MS));
            assert_eq!(after.timer_ms, due, "retry due time (the worker's delay)");
            (TaskState::Retrying, failures)
        }
        Outcome::Failure { .. } | Outcome::RetryAfter { .. } => (TaskState::Dead, failures),
    };
    assert_eq!(
        (after.state, after.failures, after.attempt),
        (expected.0, expected.1, before.attempt)
    );
}

/// Checks one entry's transition from `before` to `after`.
fn check_transition(
    before: &QueueState,
    after: &QueueState,
    req: &Request,
    responses: &[Response],
    fx: &ApplyEffects,
) {
    after.check_invariants().unwrap();
    assert_eq!(
        after.now_ms(),
        before.now_ms().max(req.now_ms),
        "time must be max(previous, entry)"
    );
    assert_eq!(responses.len(), req.commands.len());
    for (cmd, r) in req.commands.iter().zip(responses) {
        assert!(shape_matches(cmd, r), "{cmd:?} answered {r:?}");
    }
    check_history(before, after, req);
    // Every task is counted in exactly one state of exactly one queue.
    let counted: u64 = after
        .stats()
        .values()
        .map(|c| c.scheduled + c.pending + c.leased + c.retrying + c.succeeded + c.dead + c.cancelled)
        .sum();
    assert_eq!(counted, after.task_count() as u64);
    // An operator's retry is the one way out of a final state (`state/operator.rs`).
    let retried: BTreeSet<TaskId> = req
        .commands
        .iter()
        .zip(responses)
        .filter_map(|(c, r)| match (c, r) {
            (Command::Retry { ids }, Response::Retried(flags)) => Some(
                ids.iter()
                    .zip(flags)
                    .filter(|(_, f)| **f)
                    .map(|(id, _)| *id)
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    for id in 0..before.next_id {
        let (b, a) = (before.task(id), after.task(id));
        match (&b, &a) {
            // Gone (purged or never existed) stays gone: ids are never reused.
            (None, Some(_)) => panic!("task {id} reappeared"),
            // Final never changes again, except by being purged, or retried.
            (Some(b), Some(a)) if b.state.is_final() && !retried.contains(&id) => {
                assert_eq!(a, b, "final task {id} changed")
            }
            (Some(b), Some(a)) => assert!(a.attempt >= b.attempt, "task {id} attempt went down"),
            _ => {}
        }
    }
    let finished: BTreeSet<TaskId> = fx.finished.iter().copied().collect();
    // A task retried in the entry may end again in it (revoked, or failed for good).
    let once: Vec<TaskId> = fx
        .finished
        .iter()
        .copied()
        .filter(|id| !retried.contains(id))
        .collect();
    assert_eq!(
        once.iter().collect::<BTreeSet<_>>().len(),
        once.len(),
        "a task finished twice in one apply"
    );
    for id in &fx.finished {
        assert!(
            retried.contains(id) || before.task(*id).is_none_or(|t| !t.state.is_final()),
            "task {id} was already final"
        );
        assert!(*id > 0 && *id < after.next_id);
        assert!(
            retried.contains(id) || after.task(*id).is_none_or(|t| t.state.is_final()),
            "finished task {id} is not final"
        );
    }
    // Tasks that newly became final (and were not purged in the same apply) are all reported.
    for id in 0..after.next_id {
        if let Some(a) = after.task(id)
            && a.state.is_final()
            && before.task(id).is_none_or(|b| !b.state.is_final())
        {
            assert!(finished.contains(&id), "task {id} became final unreported");
        }
    }
    let pending = |s: &QueueState| s.stats().values().map(|c| c.pending).sum::<u64>();
    assert!(fx.became_pending >= pending(after).saturating_sub(pending(before)));
    // The catalogue's view counts the tasks held under each name.
    for info in after.task_names() {
        let held = (0..after.next_id)
            .filter_map(|id| after.task(id))
            .filter(|t| t.name == info.name)
            .count();
        assert_eq!(info.held, held as u64, "tasks held of {}", info.name);
        assert_eq!(
            after.catalog.default_queue(&info.name),
            Some(info.default_queue.as_str())
        );
    }
    // Declared names are never forgotten.
    for (name, _, _) in before.catalog.iter() {
        assert!(after.catalog.contains(name), "{name} left the catalogue");
    }
}

/// The attempt histories (`state/attempts.rs`) follow the attempts: nothing is recorded before
/// the switch; after it each attempt started is recorded (the last 16 kept), an attempt that
/// ended is closed at the entry's time with how it ended, and nothing else changes.
fn check_history(before: &QueueState, after: &QueueState, req: &Request) {
    let switched = req.commands.iter().any(|c| matches!(c, Command::RecordAttempts));
    assert_eq!(after.records_attempts(), before.records_attempts() || switched);
    let now = after.now_ms();
    for (id, t) in after.tasks.iter() {
        let history = after.attempts.history(id);
        if !after.records_attempts() {
            assert!(history.is_empty(), "task {id}: a history before the switch");
            continue;
        }
        let (old, old_attempt, old_lease) = match before.tasks.get(id) {
            Some(b) => (before.attempts.history(id), b.attempt, b.lease(id)),
            None => (Vec::new(), 0, None),
        };
        let started = (t.attempt - old_attempt) as usize;
        let new = history.iter().filter(|a| a.attempt > old_attempt).count();
        if before.records_attempts() {
            assert_eq!(
                new,
                started.min(MAX_ATTEMPT_HISTORY),
                "task {id}: attempts recorded"
            );
        }
        for a in &history {
            let Some(o) = old.iter().find(|o| o.attempt == a.attempt) else {
                assert!(a.attempt > old_attempt, "task {id}: an old attempt appeared");
                continue;
            };
            assert_eq!(
                (o.holder.as_str(), o.granted_ms),
                (a.holder.as_str(), a.granted_ms)
            );
            if o.ended.is_some()
                || old_lease.is_some_and(|l| l.attempt == a.attempt) && t.lease(id) == old_lease
            {
                assert_eq!(o, a, "task {id}: a kept attempt changed");
                continue;
            }
            // The attempt running before ended in this entry.
            let (at, how) = a.ended.expect("an attempt that ended is closed");
            assert_eq!(at, now, "task {id}: attempt {} ended at another time", a.attempt);
            if t.attempt == a.attempt {
                // Later commands of the entry may move the task on (a lost lease, then a
                // cancel; a fatal failure, then an operator's retry), except out of these.
                let fits = match t.state {
                    TaskState::Succeeded => how == AttemptEnd::Succeeded,
                    TaskState::Retrying => how == AttemptEnd::Failed { retryable: true },
                    TaskState::Leased => false,
                    _ => how != AttemptEnd::Succeeded,
                };
                assert!(fits, "task {id}: {how:?} but the task is {:?}", t.state);
            }
        }
        // The newest recorded attempt of a leased task is its lease, open.
        if let (Some(lease), Some(last)) = (t.lease(id), history.last())
            && last.attempt == lease.attempt
        {
            assert_eq!(last.ended, None, "task {id}: its running attempt is closed");
        }
    }
}

fn run(steps: &[Step], roundtrip_at: usize) {
    let mut s = QueueState::new();
    let mut copy: Option<QueueState> = None;
    let mut frozen: Option<(Frozen, Vec<u8>)> = None;
    // `None`: a new leader's blank entry.
    let mut entries: Vec<Option<Request>> = Vec::new();
    let mut last_now = 0;
    for (i, step) in steps.iter().enumerate() {
        if i == roundtrip_at {
            let cfg = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&s, cfg).unwrap();
            let (back, _): (QueueState, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
            assert_eq!(back, s);
            copy = Some(back);
            // A snapshot's frozen view, encoded only at the end: later applies must not reach
            // it, and its rebuilt timers must be the live ones.
            frozen = Some((s.freeze(), bytes));
        }
        if step.new_term {
            let mut fx = ApplyEffects::default();
            s.new_term(&mut fx);
            s.check_invariants().unwrap();
            assert_eq!(s.standing.offers.len(), 0);
            if let Some(c) = &mut copy {
                c.new_term(&mut ApplyEffects::default());
            }
            entries.push(None);
        }
        let req = resolve(&s, last_now, step);
        last_now = req.now_ms;
        let before = s.clone();
        let mut fx = ApplyEffects::default();
        let responses = s.apply(&req, &mut fx);
        check_transition(&before, &s, &req, &responses, &fx);
        let (stepwise, stepwise_responses, stepwise_fx) = apply_stepwise(&before, &req);
        assert_eq!(stepwise, s);
        assert_eq!(stepwise_responses, responses);
        assert_eq!(stepwise_fx, fx);
        if let Some(c) = &mut copy {
            let mut fx2 = ApplyEffects::default();
            assert_eq!(c.apply(&req, &mut fx2), responses);
            assert_eq!(fx2, fx);
            assert_eq!(*c, s, "round-tripped copy diverged");
        }
        entries.push(Some(req));
    }
    // Determinism: a fresh replica applying the same entries ends equal, to the byte.
    let mut replica = QueueState::new();
    for entry in &entries {
        match entry {
            Some(req) => {
                replica.apply(req, &mut ApplyEffects::default());
            }
            None => replica.new_term(&mut ApplyEffects::default()),
        }
    }
    assert_eq!(replica, s);
    let cfg = bincode::config::standard();
    if let Some((mut frozen, bytes)) = frozen {
        let state = frozen.for_encoding().unwrap();
        assert_eq!(bincode::serde::encode_to_vec(state, cfg).unwrap(), bytes);
    }
    assert_eq!(
        bincode::serde::encode_to_vec(&replica, cfg).unwrap(),
        bincode::serde::encode_to_vec(&s, cfg).unwrap()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_entries_keep_every_invariant(steps in prop::collection::vec(step(), 1..60), at in 0usize..60) {
        run(&steps, at);
    }
}
