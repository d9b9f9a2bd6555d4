//! [`Seen`]: the changes of task state one apply made, kept for the node's metrics (submits,
//! outcomes, queue wait and run time per queue) and its events stream (`crate::events`). Not
//! state: it is never serialized and never compared (two replicas that applied the same
//! entries are equal whatever they saw), it is off unless the replica asks
//! ([`QueueState::observe`]), and the replica drains it after every apply
//! ([`QueueState::drain_seen`]). Times are the log's (`now` minus the task's `updated_ms`), so
//! every replica measures the same durations. Off, recording is one branch per change: a plain
//! task costs nothing more when nobody observes; on, it is a push onto a vector kept between
//! applies (no allocation per task once it has grown).

use super::QueueState;
use crate::queue::command::TaskId;
use crate::queue::command::TaskState;
use crate::queue::command::UnixMs;

/// Why a change happened, where the states alone do not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Why {
    /// What `from` → `to` says.
    #[default]
    Plain,
    /// A failed attempt that will be retried (to `Retrying`, or straight to `Pending` when its
    /// delay is 0), unlike a lease handed back or expired (`Leased` → `Pending` too).
    Retry,
    /// Not a change of state: a worker's progress report was kept (`from == to == Leased`).
    Progress,
}

/// One change of a task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// `None`: the task was created (submitted) in this state.
    pub from: Option<TaskState>,
    pub to: TaskState,
    /// How long the task had been in `from`, in log time (0 for a new task).
    pub after_ms: u64,
    pub id: TaskId,
    /// The task's attempt after the change (the lease's, for `Leased`).
    pub attempt: u32,
    pub why: Why,
}

/// A change with the slots of the names it needs (resolved when read, not when recorded).
#[derive(Clone, Copy, Debug)]
struct Record {
    queue: u32,
    name: u32,
    /// The pool slot while leased, else 0.
    pool: u32,
    change: Change,
}

/// The changes of the current apply, when observing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    on: bool,
    changes: Vec<Record>,
}

impl PartialEq for Seen {
    /// Not state: never part of equality.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Seen {}

/// What [`Seen::record`] needs of the task, after the change.
pub(super) struct Of {
    pub(super) id: TaskId,
    pub(super) queue: u32,
    pub(super) name: u32,
    pub(super) pool: u32,
    pub(super) attempt: u32,
}

impl Seen {
    /// Record a change of a task (`of`, as it is after the change) that had been in `from`
    /// since `since`.
    #[inline]
    pub(super) fn record(
        &mut self,
        of: impl FnOnce() -> Of,
        from: Option<TaskState>,
        to: TaskState,
        why: Why,
        (since, now): (UnixMs, UnixMs),
    ) {
        if self.on {
            let of = of();
            let change = Change {
                from,
                to,
                after_ms: now.saturating_sub(since),
                id: of.id,
                attempt: of.attempt,
                why,
            };
            self.changes.push(Record {
                queue: of.queue,
                name: of.name,
                pool: of.pool,
                change,
            });
        }
    }
}

/// A change as the events stream reads it: with its names.
#[derive(Clone, Copy, Debug)]
pub struct SeenChange<'a> {
    pub queue: &'a str,
    pub name: &'a str,
    /// The pool holding the lease, for a change to `Leased`; else empty.
    pub pool: &'a str,
    pub change: Change,
    /// The task's last error as of the end of the apply, for a failed attempt or a dead task.
    pub error: Option<&'a str>,
}

impl QueueState {
    /// Record the changes of task state from now on (for [`QueueState::drain_seen`]), or stop.
    pub fn observe(&mut self, on: bool) {
        self.idx.seen.on = on;
        if !on {
            self.idx.seen.changes = Vec::new();
        }
    }

    /// Hand the changes recorded since the last drain to `f`, one call per queue with that
    /// queue's changes in apply order; then forget them.
    pub fn drain_seen(&mut self, mut f: impl FnMut(&str, &[Change])) {
        let mut seen = std::mem::take(&mut self.idx.seen.changes);
        if seen.is_empty() {
            return;
        }
        // Stable: each queue's changes stay in apply order.
        seen.sort_by_key(|r| r.queue);
        let mut run: Vec<Change> = Vec::new();
        for chunk in seen.chunk_by(|a, b| a.queue == b.queue) {
            run.clear();
            run.extend(chunk.iter().map(|r| r.change));
            let name = self.idx.queue_names.name(chunk[0].queue);
            f(name, &run);
        }
        // Keep the allocation for the next apply.
        seen.clear();
        self.idx.seen.changes = seen;
    }

    /// The latest progress kept for task `id` (what a progress change reported).
    pub fn latest_progress(&self, id: TaskId) -> Option<&super::Progress> {
        self.extras.progress(id)
    }

    /// Forget the changes recorded since the last drain (nobody wants them one by one).
    pub fn forget_seen(&mut self) {
        self.idx.seen.changes.clear();
    }

    /// Whether changes are being recorded.
    pub fn observing(&self) -> bool {
        self.idx.seen.on
    }

    /// Each change recorded since the last drain, in apply order, with its names (call before
    /// [`QueueState::drain_seen`], which forgets them).
    pub fn seen_changes(&self) -> impl Iterator<Item = SeenChange<'_>> {
        self.idx.seen.changes.iter().map(|r| {
            let c = r.change;
            let failed = c.why == Why::Retry || c.to == TaskState::Dead;
            let error = if failed {
                self.tasks.get(c.id).and_then(|t| match t.output() {
                    Some(super::Output::Error(e)) => Some(&**e),
                    _ => None,
                })
            } else {
                None
            };
            SeenChange {
                queue: self.idx.queue_names.name(r.queue),
                name: self.task_names.name(r.name),
                pool: if c.to == TaskState::Leased {
                    self.idx.pools.name(r.pool)
                } else {
                    ""
                },
                change: c,
                error,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ApplyEffects;
    use crate::queue::command::*;
    use crate::queue::state::tests::spec;

    fn submit(queue: &str) -> Command {
        let mut task = spec("a");
        task.queue = queue.into();
        Command::Submit {
            tasks: vec![task].into(),
        }
    }

    fn apply(q: &mut QueueState, now_ms: UnixMs, commands: Vec<Command>) -> Vec<Response> {
        q.apply(&Request { now_ms, commands }, &mut ApplyEffects::default())
    }

    fn drained(q: &mut QueueState) -> Vec<(String, Vec<Change>)> {
        let mut out = Vec::new();
        q.drain_seen(|queue, changes| out.push((queue.to_string(), changes.to_vec())));
        out
    }

    #[test]
    fn nothing_is_recorded_unless_asked_and_seen_is_never_state() {
        let mut q = QueueState::new();
        apply(&mut q, 10, vec![submit("default")]);
        assert!(drained(&mut q).is_empty());
        let mut other = q.clone();
        q.observe(true);
        apply(&mut q, 20, vec![submit("default")]);
        apply(&mut other, 20, vec![submit("default")]);
        assert_eq!(q, other, "what was seen is not part of the state");
        assert_eq!(drained(&mut q).len(), 1);
    }

    #[test]
    fn submits_leases_and_completions_are_seen_per_queue_in_log_time() {
        let mut q = QueueState::new();
        q.observe(true);
        apply(&mut q, 100, vec![submit("q1"), submit("q2"), submit("q1")]);
        let created = |id| Change {
            from: None,
            to: TaskState::Pending,
            after_ms: 0,
            id,
            attempt: 0,
            why: Why::Plain,
        };
        let names: Vec<(&str, &str, TaskId)> =
            q.seen_changes().map(|c| (c.queue, c.name, c.change.id)).collect();
        assert_eq!(
            names,
            vec![("q1", "a", 1), ("q2", "a", 2), ("q1", "a", 3)],
            "in apply order"
        );
        assert_eq!(
            drained(&mut q),
            vec![
                ("q1".to_string(), vec![created(1), created(3)]),
                ("q2".to_string(), vec![created(2)])
            ]
        );
        let lease = Command::Lease {
            pool: "w".into(),
            queues: vec!["q1".into()],
            max: 1,
            lease_ms: 1_000,
            standing_ticket: None,
        };
        let responses = apply(&mut q, 130, vec![lease]);
        let Response::Leased(grants) = &responses[0] else {
            panic!("{responses:?}")
        };
        let leased = Change {
            from: Some(TaskState::Pending),
            to: TaskState::Leased,
            after_ms: 30,
            id: 1,
            attempt: 1,
            why: Why::Plain,
        };
        assert_eq!(q.seen_changes().map(|c| c.pool).collect::<Vec<_>>(), vec!["w"]);
        assert_eq!(drained(&mut q), vec![("q1".to_string(), vec![leased])]);
        let complete = Command::Complete {
            pool: "w".into(),
            completions: vec![Completion {
                lease: grants[0].lease,
                outcome: Outcome::Success(Default::default()),
            }],
        };
        apply(&mut q, 205, vec![complete]);
        let done = Change {
            from: Some(TaskState::Leased),
            to: TaskState::Succeeded,
            after_ms: 75,
            id: 1,
            attempt: 1,
            why: Why::Plain,
        };
        assert_eq!(drained(&mut q), vec![("q1".to_string(), vec![done])]);
        assert!(drained(&mut q).is_empty(), "drained once");
    }

    #[test]
    fn progress_and_a_retry_with_no_delay_are_told_apart_from_a_release() {
        let mut q = QueueState::new();
        q.observe(true);
        let mut task = spec("a");
        task.max_retries = 3;
        task.backoff_ms = 0;
        apply(
            &mut q,
            10,
            vec![Command::Submit {
                tasks: vec![task].into(),
            }],
        );
        let lease = |q: &mut QueueState| {
            let cmd = Command::Lease {
                pool: "w".into(),
                queues: vec![],
                max: 1,
                lease_ms: 1_000,
                standing_ticket: None,
            };
            match &apply(q, 20, vec![cmd])[0] {
                Response::Leased(g) => g[0].lease,
                r => panic!("{r:?}"),
            }
        };
        let first = lease(&mut q);
        let report = ProgressReport {
            lease: first,
            data: bytes::Bytes::from_static(b"{}"),
        };
        let fail = Command::Complete {
            pool: "w".into(),
            completions: vec![Completion {
                lease: first,
                outcome: Outcome::Failure {
                    error: "boom".into(),
                    retry: true,
                },
            }],
        };
        drained(&mut q);
        apply(
            &mut q,
            30,
            vec![
                Command::Progress {
                    reports: vec![report],
                },
                fail,
            ],
        );
        let seen: Vec<(Why, TaskState, Option<String>)> = q
            .seen_changes()
            .map(|c| (c.change.why, c.change.to, c.error.map(str::to_string)))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Why::Progress, TaskState::Leased, None),
                (Why::Retry, TaskState::Pending, Some("boom".into()))
            ]
        );
        drained(&mut q);
        let second = lease(&mut q);
        drained(&mut q);
        apply(
            &mut q,
            40,
            vec![Command::Release {
                pool: "w".into(),
                leases: vec![second],
            }],
        );
        let seen: Vec<Why> = q.seen_changes().map(|c| c.change.why).collect();
        assert_eq!(seen, vec![Why::Plain], "a release is no retry");
    }
}
