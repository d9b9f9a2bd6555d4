//! [`Seen`]: the changes of task state one apply made, kept for the node's metrics (submits,
//! outcomes, queue wait and run time per queue). Not state: it is never serialized and never
//! compared (two replicas that applied the same entries are equal whatever they saw), it is
//! off unless the replica asks ([`QueueState::observe`]), and the replica drains it after
//! every apply ([`QueueState::drain_seen`]). Times are the log's (`now` minus the task's
//! `updated_ms`), so every replica measures the same durations.

use super::QueueState;
use crate::queue::command::TaskState;
use crate::queue::command::UnixMs;

/// One change of a task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// `None`: the task was created (submitted) in this state.
    pub from: Option<TaskState>,
    pub to: TaskState,
    /// How long the task had been in `from`, in log time (0 for a new task).
    pub after_ms: u64,
}

/// The changes of the current apply, by queue slot, when observing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    on: bool,
    changes: Vec<(u32, Change)>,
}

impl PartialEq for Seen {
    /// Not state: never part of equality.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Seen {}

impl Seen {
    /// Record a change of a task of queue slot `queue` that had been in `from` since `since`.
    #[inline]
    pub(super) fn record(
        &mut self,
        queue: u32,
        from: Option<TaskState>,
        to: TaskState,
        since: UnixMs,
        now: UnixMs,
    ) {
        if self.on {
            let after_ms = now.saturating_sub(since);
            self.changes.push((queue, Change { from, to, after_ms }));
        }
    }
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
        seen.sort_by_key(|(q, _)| *q);
        let mut run: Vec<Change> = Vec::new();
        for chunk in seen.chunk_by(|a, b| a.0 == b.0) {
            run.clear();
            run.extend(chunk.iter().map(|(_, c)| *c));
            let name = self.idx.queue_names.name(chunk[0].0);
            f(name, &run);
        }
        // Keep the allocation for the next apply.
        seen.clear();
        self.idx.seen.changes = seen;
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
        let created = Change {
            from: None,
            to: TaskState::Pending,
            after_ms: 0,
        };
        assert_eq!(
            drained(&mut q),
            vec![
                ("q1".to_string(), vec![created, created]),
                ("q2".to_string(), vec![created])
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
        };
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
        };
        assert_eq!(drained(&mut q), vec![("q1".to_string(), vec![done])]);
        assert!(drained(&mut q).is_empty(), "drained once");
    }
}
