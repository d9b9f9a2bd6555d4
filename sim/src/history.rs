//! [`History`]: what clients were told, checked against what a queue owes them.
//!
//! Pure bookkeeping over `flotilla_client` types, with no IO, no clock and no randomness, so
//! both `sim chaos` (real processes) and a deterministic simulator can feed it the same way:
//!
//! 1. [`History::acknowledged`] for every task a submit returned `Ok` for (retries and duplicate
//!    re-submits included: each acknowledgement is recorded);
//! 2. [`History::observed`] for every [`TaskInfo`] a get or wait returned, in the order the
//!    client received them;
//! 3. optionally [`History::expect_result`] when the result is known in advance (an `echo`
//!    task's result is its arguments);
//! 4. after a healed phase in which every acknowledged task was observed once more,
//!    [`History::verdict`].
//!
//! The properties (the queue's contract with a client, see `node/src/queue/state.rs`):
//!
//! - **No loss.** An acknowledged task is never reported unknown (`NotFound`) and is observed at
//!   least once. Result TTLs must outlast the run for this to hold; the runners keep the default
//!   of a day.
//! - **One result.** Once a task is seen final, every later observation shows the same final
//!   state and the same result bytes: a task that ran twice and whose second run was recorded, or
//!   a final task going back to pending, breaks it.
//! - **Idempotency.** An idempotency key is acknowledged under one task id only, and a task id
//!   under one key only.
//! - **Right result.** A succeeded task carries the result expected of it, when one is known.
//! - **Liveness.** After the healed phase, the last observation of every acknowledged task is
//!   final.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use flotilla_client::{TaskId, TaskInfo, TaskState};
use serde::Serialize;
use tokio::time::Instant;

/// How many example ids a [`Verdict`] keeps per kind of problem.
pub const EXAMPLES: usize = 5;

/// Every acknowledgement and observation of a run (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct History {
    tasks: BTreeMap<TaskId, Record>,
    /// Idempotency key → every id it was acknowledged under.
    keys: BTreeMap<String, BTreeSet<TaskId>>,
}

/// What is known of one task id.
#[derive(Clone, Debug, Default)]
struct Record {
    /// Keys this id was acknowledged under (more than one is a violation).
    keys: BTreeSet<String>,
    /// The first final state and result seen; later ones must equal it.
    first_final: Option<(TaskState, Bytes)>,
    /// The most recent state seen.
    last: Option<TaskState>,
    /// A final observation differed from `first_final`, or a non-final one followed it.
    changed_after_final: bool,
    /// `NotFound` was reported at some point.
    not_found: bool,
    /// The result a `Succeeded` observation must carry.
    expected: Option<Bytes>,
    /// A `Succeeded` observation carried another result than `expected`.
    wrong_result: bool,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// A submit the cluster acknowledged (`Ok` from `submit`/`submit_batch`): task `id` under
    /// idempotency key `key`. Calling it again for the same pair (a re-submit answered as a
    /// duplicate) is expected; the same key under another id is a violation.
    pub fn acknowledged(&mut self, id: TaskId, key: &str) {
        self.tasks.entry(id).or_default().keys.insert(key.to_owned());
        self.keys.entry(key.to_owned()).or_default().insert(id);
    }

    /// The result a `Succeeded` observation of `id` must carry (e.g. an `echo` task's
    /// arguments). Optional: tasks without an expectation are only checked for stability.
    pub fn expect_result(&mut self, id: TaskId, result: impl Into<Bytes>) {
        let record = self.tasks.entry(id).or_default();
        record.expected = Some(result.into());
        record.wrong_result |= record.first_final.as_ref().is_some_and(|(state, got)| {
            *state == TaskState::Succeeded && Some(got) != record.expected.as_ref()
        });
    }

    /// What a get or a wait returned for a task at some point. Observations of the same task
    /// must be fed in the order the client received them.
    pub fn observed(&mut self, info: &TaskInfo) {
        let record = self.tasks.entry(info.id).or_default();
        record.last = Some(info.state);
        if info.state == TaskState::NotFound {
            record.not_found = true;
            return;
        }
        match &record.first_final {
            Some((state, result)) => {
                record.changed_after_final |= *state != info.state || *result != info.result;
            }
            None if info.state.is_final() => {
                record.first_final = Some((info.state, info.result.clone()));
            }
            None => {}
        }
        if info.state == TaskState::Succeeded
            && let Some(expected) = &record.expected
        {
            record.wrong_result |= *expected != info.result;
        }
    }

    /// A get answered `NotFound` for `id` (a wait reports the same as a [`TaskInfo`] in state
    /// [`TaskState::NotFound`], which [`History::observed`] takes).
    pub fn observed_not_found(&mut self, id: TaskId) {
        let record = self.tasks.entry(id).or_default();
        record.last = Some(TaskState::NotFound);
        record.not_found = true;
    }

    /// Whether `id` was acknowledged and has been seen final (and not unknown) since.
    pub fn is_final(&self, id: TaskId) -> bool {
        self.tasks.get(&id).is_some_and(|r| {
            !r.keys.is_empty() && r.last.is_some_and(|s| s.is_final() && s != TaskState::NotFound)
        })
    }

    /// Acknowledged ids whose last observation is not final (or that were never observed): what
    /// a healed phase still has to wait for.
    pub fn unfinished(&self) -> Vec<TaskId> {
        self.acknowledged_records()
            .filter(|(_, r)| !r.last.is_some_and(TaskState::is_final))
            .map(|(id, _)| id)
            .collect()
    }

    /// Every acknowledged id, in id order.
    pub fn acknowledged_ids(&self) -> Vec<TaskId> {
        self.acknowledged_records().map(|(id, _)| id).collect()
    }

    fn acknowledged_records(&self) -> impl Iterator<Item = (TaskId, &Record)> {
        self.tasks
            .iter()
            .filter(|(_, r)| !r.keys.is_empty())
            .map(|(id, r)| (*id, r))
    }

    /// The verdict over every acknowledged task, from its observations so far (call it after
    /// the healed phase).
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict::default();
        for (id, r) in self.acknowledged_records() {
            v.acknowledged += 1;
            if r.not_found || r.last.is_none() {
                v.lost.add(id);
            }
            if r.changed_after_final {
                v.duplicate_results.add(id);
            }
            if r.wrong_result {
                v.wrong_results.add(id);
            }
            match r.last {
                Some(TaskState::Succeeded) => v.succeeded += 1,
                Some(TaskState::Dead) => v.dead += 1,
                Some(TaskState::Cancelled) => v.cancelled += 1,
                // Counted as lost above.
                Some(TaskState::NotFound) | None => {}
                Some(_) => v.not_final.add(id),
            }
            if r.keys.len() > 1 {
                v.key_conflicts.add(id);
            }
        }
        for ids in self.keys.values().filter(|ids| ids.len() > 1) {
            for id in ids {
                // An id already counted for holding two keys is one conflict, not two.
                if self.tasks.get(id).is_some_and(|r| r.keys.len() <= 1) {
                    v.key_conflicts.add(*id);
                }
            }
        }
        v
    }
}

/// How many tasks had one kind of problem, and a few of their ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub count: usize,
    /// Up to [`EXAMPLES`] ids, lowest first.
    pub examples: Vec<TaskId>,
}

impl Problem {
    fn add(&mut self, id: TaskId) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(id);
        }
    }
}

/// The outcome of [`History::verdict`]: counts over acknowledged tasks, by their last
/// observation, and the problems found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Distinct task ids acknowledged.
    pub acknowledged: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub cancelled: usize,
    /// Reported `NotFound` at some point, or never observed.
    pub lost: Problem,
    /// Seen final, then seen with another state or result.
    pub duplicate_results: Problem,
    /// Succeeded with another result than the expected one.
    pub wrong_results: Problem,
    /// One idempotency key acknowledged under several ids, or one id under several keys (each
    /// id involved counts once).
    pub key_conflicts: Problem,
    /// Last seen in a non-final state (a liveness failure once the cluster has healed).
    pub not_final: Problem,
}

impl Verdict {
    /// One line per violated property; empty when the history is clean.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut say = |p: &Problem, what: &str| {
            if p.count > 0 {
                out.push(format!("{} {what} (e.g. task {})", p.count, Ids(&p.examples)));
            }
        };
        say(
            &self.lost,
            "acknowledged tasks lost (reported not found, or never seen)",
        );
        say(
            &self.duplicate_results,
            "tasks changed after they were seen final",
        );
        say(
            &self.wrong_results,
            "tasks succeeded with a result other than the expected one",
        );
        say(
            &self.key_conflicts,
            "tasks in idempotency key conflicts (a key under several ids)",
        );
        say(
            &self.not_final,
            "acknowledged tasks not final after the healed phase",
        );
        out
    }

    /// True when no property is violated.
    pub fn is_clean(&self) -> bool {
        self.violations().is_empty()
    }
}

/// Ids as `1, 2, 3`.
struct Ids<'a>(&'a [TaskId]);

impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// The longest stretch without progress (a submit acknowledged or a task seen final) while
/// clients kept trying. The caller passes the times in, so simulated time works as well as real
/// time; marks must not go backwards.
#[derive(Clone, Copy, Debug)]
pub struct Availability {
    last: Instant,
    longest: Duration,
}

impl Availability {
    /// Starts measuring at `start` (clients start trying then).
    pub fn new(start: Instant) -> Availability {
        Availability {
            last: start,
            longest: Duration::ZERO,
        }
    }

    /// Some progress was made at `at`.
    pub fn progress(&mut self, at: Instant) {
        self.longest = self.longest.max(at.saturating_duration_since(self.last));
        self.last = self.last.max(at);
    }

    /// The longest stretch without progress between the start and `end` (the end of the window
    /// in which clients tried; the time since the last progress counts too).
    pub fn longest_until(&self, end: Instant) -> Duration {
        self.longest.max(end.saturating_duration_since(self.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, state: TaskState, result: &'static [u8]) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            name: "echo".into(),
            queue: "default".into(),
            state,
            attempt: 1,
            max_retries: 3,
            result: Bytes::from_static(result),
            error: None,
            created_unix_ms: 1,
            updated_unix_ms: 2,
        }
    }

    fn not_found(id: u64) -> TaskInfo {
        TaskInfo {
            name: String::new(),
            queue: String::new(),
            attempt: 0,
            ..info(id, TaskState::NotFound, b"")
        }
    }

    /// Three tasks acknowledged and seen through to a final state, with repeats.
    fn clean() -> History {
        let mut h = History::new();
        h.acknowledged(TaskId(1), "k1");
        h.acknowledged(TaskId(2), "k2");
        h.acknowledged(TaskId(3), "k3");
        // A retried submit answered as a duplicate: same key, same id.
        h.acknowledged(TaskId(2), "k2");
        h.expect_result(TaskId(2), &b"[2]"[..]);
        h.observed(&info(1, TaskState::Pending, b""));
        h.observed(&info(1, TaskState::Leased, b""));
        h.observed(&info(1, TaskState::Succeeded, b"null"));
        h.observed(&info(2, TaskState::Succeeded, b"[2]"));
        h.observed(&info(3, TaskState::Dead, b""));
        // The healed phase reads everything again.
        h.observed(&info(1, TaskState::Succeeded, b"null"));
        h.observed(&info(2, TaskState::Succeeded, b"[2]"));
        h.observed(&info(3, TaskState::Dead, b""));
        h
    }

    #[test]
    fn a_clean_history_has_no_violation() {
        let v = clean().verdict();
        assert_eq!(v.violations(), Vec::<String>::new());
        assert!(v.is_clean());
        assert_eq!((v.acknowledged, v.succeeded, v.dead, v.cancelled), (3, 2, 1, 0));
        assert_eq!(v.lost, Problem::default());
        assert!(clean().unfinished().is_empty());
        assert!(clean().is_final(TaskId(3)));
    }

    #[test]
    fn a_task_reported_not_found_is_lost_even_if_seen_again() {
        let mut h = clean();
        h.acknowledged(TaskId(4), "k4");
        h.observed(&not_found(4));
        let v = h.verdict();
        assert_eq!(v.lost.count, 1);
        assert_eq!(v.lost.examples, [TaskId(4)]);
        assert!(!h.is_final(TaskId(4)));
        // Known again later: still an acknowledged task the cluster once did not know.
        h.observed(&info(4, TaskState::Succeeded, b"null"));
        let v = h.verdict();
        assert_eq!(v.lost.examples, [TaskId(4)]);
        assert_eq!(v.violations().len(), 1, "{:?}", v.violations());
        assert!(
            v.violations()[0].starts_with("1 acknowledged tasks lost"),
            "{:?}",
            v.violations()
        );
    }

    #[test]
    fn an_acknowledged_task_never_observed_is_lost() {
        let mut h = clean();
        h.acknowledged(TaskId(9), "k9");
        assert_eq!(h.unfinished(), [TaskId(9)]);
        assert_eq!(h.verdict().lost.examples, [TaskId(9)]);
        // Observations of ids nobody acknowledged are not judged.
        let mut h = clean();
        h.observed(&not_found(77));
        assert!(h.verdict().is_clean());
        assert_eq!(h.verdict().acknowledged, 3);
    }

    #[test]
    fn a_result_that_changes_is_a_duplicate_result() {
        let mut h = clean();
        h.observed(&info(1, TaskState::Succeeded, br#"{"run":2}"#));
        let v = h.verdict();
        assert_eq!(v.duplicate_results.examples, [TaskId(1)]);
        assert_eq!(v.violations().len(), 1);
    }

    #[test]
    fn a_final_task_going_back_to_pending_is_a_duplicate_result() {
        let mut h = clean();
        h.observed(&info(3, TaskState::Pending, b""));
        let v = h.verdict();
        assert_eq!(v.duplicate_results.examples, [TaskId(3)]);
        // Its last observation is not final either: a liveness failure on top.
        assert_eq!(v.not_final.examples, [TaskId(3)]);
        // Even if it ends up in the same final state again.
        h.observed(&info(3, TaskState::Dead, b""));
        assert_eq!(h.verdict().duplicate_results.count, 1);
        assert_eq!(h.verdict().not_final.count, 0);
    }

    #[test]
    fn one_key_under_two_ids_is_a_conflict() {
        let mut h = clean();
        h.acknowledged(TaskId(5), "k1");
        h.observed(&info(5, TaskState::Succeeded, b"null"));
        let v = h.verdict();
        assert_eq!(v.key_conflicts.count, 2);
        assert_eq!(v.key_conflicts.examples, [TaskId(1), TaskId(5)]);
        assert_eq!(v.violations().len(), 1, "{:?}", v.violations());
    }

    #[test]
    fn one_id_under_two_keys_is_a_conflict() {
        let mut h = clean();
        h.acknowledged(TaskId(1), "another");
        let v = h.verdict();
        assert_eq!(v.key_conflicts.examples, [TaskId(1)]);
        assert_eq!(v.key_conflicts.count, 1);
    }

    #[test]
    fn an_unexpected_result_is_wrong_whichever_comes_first() {
        let mut h = clean();
        h.acknowledged(TaskId(6), "k6");
        h.expect_result(TaskId(6), &b"[6]"[..]);
        h.observed(&info(6, TaskState::Succeeded, b"[7]"));
        assert_eq!(h.verdict().wrong_results.examples, [TaskId(6)]);
        // The expectation may also be recorded after the observation.
        let mut h = clean();
        h.acknowledged(TaskId(6), "k6");
        h.observed(&info(6, TaskState::Succeeded, b"[7]"));
        h.expect_result(TaskId(6), &b"[6]"[..]);
        assert_eq!(h.verdict().wrong_results.examples, [TaskId(6)]);
    }

    #[test]
    fn a_task_still_pending_after_healing_is_not_final() {
        let mut h = clean();
        h.acknowledged(TaskId(8), "k8");
        h.observed(&info(8, TaskState::Leased, b""));
        assert_eq!(h.unfinished(), [TaskId(8)]);
        let v = h.verdict();
        assert_eq!(v.not_final.examples, [TaskId(8)]);
        assert_eq!(v.lost.count, 0);
        assert!(!v.is_clean());
    }

    #[test]
    fn examples_are_capped_and_the_verdict_serializes() {
        let mut h = History::new();
        for id in 1..=20 {
            h.acknowledged(TaskId(id), &format!("k{id}"));
        }
        let v = h.verdict();
        assert_eq!(v.lost.count, 20);
        assert_eq!(v.lost.examples.len(), EXAMPLES);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["lost"]["count"], 20);
        assert_eq!(json["lost"]["examples"][0], 1);
    }

    #[test]
    fn availability_is_the_longest_gap_including_the_edges() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = Availability::new(t0);
        assert_eq!(a.longest_until(t0 + s(4)), s(4));
        a.progress(t0 + s(1));
        a.progress(t0 + s(4));
        a.progress(t0 + s(5));
        // A mark from a slower client, earlier than the last one, changes nothing.
        a.progress(t0 + s(2));
        assert_eq!(a.longest_until(t0 + s(6)), s(3));
        assert_eq!(a.longest_until(t0 + s(10)), s(5));
    }
}
