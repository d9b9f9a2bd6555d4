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
///
/// The recording methods return an [`Anomaly`] when the event itself breaks a property, so a
/// runner can log it at the moment it happens (next to its faults); the [`Verdict`] counts
/// them all at the end either way.
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
    /// The first observation that differed from `first_final` (state, result).
    changed_to: Option<(TaskState, Bytes)>,
    /// `NotFound` was reported at some point.
    not_found: bool,
    /// The result a `Succeeded` observation must carry.
    expected: Option<Bytes>,
    /// The first result of a `Succeeded` observation that was not `expected`.
    wrong_result: Option<Bytes>,
}

impl Record {
    fn key(&self) -> &str {
        self.keys.first().map_or("?", String::as_str)
    }
}

/// One event that broke a property, as it was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub id: TaskId,
    /// What broke, in words (keys and results included).
    pub what: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// A submit the cluster acknowledged (`Ok` from `submit`/`submit_batch`): task `id` under
    /// idempotency key `key`. Calling it again for the same pair (a re-submit answered as a
    /// duplicate) is expected; the same key under another id, or the id under another key, is
    /// an anomaly.
    pub fn acknowledged(&mut self, id: TaskId, key: &str) -> Option<Anomaly> {
        let record = self.tasks.entry(id).or_default();
        let mut anomaly = record.keys.iter().find(|k| *k != key).map(|other| Anomaly {
            id,
            what: format!("task {id} acknowledged under key {key}, but earlier under key {other}"),
        });
        record.keys.insert(key.to_owned());
        let ids = self.keys.entry(key.to_owned()).or_default();
        if let Some(other) = ids.iter().find(|i| **i != id) {
            anomaly.get_or_insert(Anomaly {
                id,
                what: format!("key {key} acknowledged as task {id}, but earlier as task {other}"),
            });
        }
        ids.insert(id);
        anomaly
    }

    /// The result a `Succeeded` observation of `id` must carry (e.g. an `echo` task's
    /// arguments). Optional: tasks without an expectation are only checked for stability.
    pub fn expect_result(&mut self, id: TaskId, result: impl Into<Bytes>) -> Option<Anomaly> {
        let record = self.tasks.entry(id).or_default();
        let expected = result.into();
        let anomaly = match record.first_final.clone() {
            Some((TaskState::Succeeded, got)) if got != expected => wrong(id, record, &got, &expected),
            _ => None,
        };
        record.expected = Some(expected);
        anomaly
    }

    /// What a get or a wait returned for a task at some point. Observations of the same task
    /// must be fed in the order the client received them.
    pub fn observed(&mut self, info: &TaskInfo) -> Option<Anomaly> {
        if info.state == TaskState::NotFound {
            return self.observed_not_found(info.id);
        }
        let id = info.id;
        let record = self.tasks.entry(id).or_default();
        record.last = Some(info.state);
        let mut anomaly = None;
        match &record.first_final {
            // Only the first change is described; later ones add nothing.
            Some((state, result))
                if (*state != info.state || *result != info.result) && record.changed_to.is_none() =>
            {
                anomaly = Some(Anomaly {
                    id,
                    what: format!(
                        "task {id} (key {}) was seen {state} {}, then {} {}",
                        record.key(),
                        Shown(result),
                        info.state,
                        Shown(&info.result)
                    ),
                });
                record.changed_to = Some((info.state, info.result.clone()));
            }
            Some(_) => {}
            None if info.state.is_final() => {
                record.first_final = Some((info.state, info.result.clone()));
            }
            None => {}
        }
        if info.state == TaskState::Succeeded
            && let Some(expected) = &record.expected
            && *expected != info.result
            && record.wrong_result.is_none()
        {
            let expected = expected.clone();
            anomaly = anomaly.or(wrong(id, record, &info.result, &expected));
        }
        anomaly
    }

    /// A get answered `NotFound` for `id` (a wait reports the same as a [`TaskInfo`] in state
    /// [`TaskState::NotFound`], which [`History::observed`] takes too).
    pub fn observed_not_found(&mut self, id: TaskId) -> Option<Anomaly> {
        let record = self.tasks.entry(id).or_default();
        record.last = Some(TaskState::NotFound);
        let first = !std::mem::replace(&mut record.not_found, true);
        (first && !record.keys.is_empty()).then(|| Anomaly {
            id,
            what: format!(
                "task {id} (key {}) was acknowledged but reported not found",
                record.key()
            ),
        })
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
            if r.not_found {
                v.lost
                    .add(id, format!("task {id} (key {}) reported not found", r.key()));
            } else if r.last.is_none() {
                v.lost.add(id, format!("task {id} (key {}) never seen", r.key()));
            }
            if let (Some((was, was_result)), Some((now, now_result))) = (&r.first_final, &r.changed_to) {
                let detail = format!(
                    "task {id}: {was} {}, then {now} {}",
                    Shown(was_result),
                    Shown(now_result)
                );
                v.duplicate_results.add(id, detail);
            }
            if let Some(got) = &r.wrong_result {
                let expected = r
                    .expected
                    .as_ref()
                    .map_or(String::new(), |e| Shown(e).to_string());
                v.wrong_results
                    .add(id, format!("task {id}: got {}, expected {expected}", Shown(got)));
            }
            match r.last {
                Some(TaskState::Succeeded) => v.succeeded += 1,
                Some(TaskState::Dead) => v.dead += 1,
                Some(TaskState::Cancelled) => v.cancelled += 1,
                // Counted as lost above.
                Some(TaskState::NotFound) | None => {}
                Some(state) => v.not_final.add(id, format!("task {id} last seen {state}")),
            }
            if r.keys.len() > 1 {
                let keys: Vec<&str> = r.keys.iter().map(String::as_str).collect();
                v.key_conflicts
                    .add(id, format!("task {id} under keys {}", keys.join(", ")));
            }
        }
        for (key, ids) in self.keys.iter().filter(|(_, ids)| ids.len() > 1) {
            let all: Vec<String> = ids.iter().map(TaskId::to_string).collect();
            for id in ids {
                // An id already counted for holding two keys is one conflict, not two.
                if self.tasks.get(id).is_some_and(|r| r.keys.len() <= 1) {
                    v.key_conflicts
                        .add(*id, format!("key {key} under tasks {}", all.join(", ")));
                }
            }
        }
        v
    }
}

/// Records the first unexpected result of a task, as an anomaly.
fn wrong(id: TaskId, record: &mut Record, got: &Bytes, expected: &Bytes) -> Option<Anomaly> {
    if record.wrong_result.is_some() {
        return None;
    }
    record.wrong_result = Some(got.clone());
    Some(Anomaly {
        id,
        what: format!(
            "task {id} (key {}) succeeded with {}, expected {}",
            record.key(),
            Shown(got),
            Shown(expected)
        ),
    })
}

/// A result for a message: as text, cut short.
struct Shown<'a>(&'a Bytes);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 80;
        let text = String::from_utf8_lossy(self.0);
        if text.is_empty() {
            return f.write_str("(no result)");
        }
        match text.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{}…", &text[..cut]),
            None => f.write_str(&text),
        }
    }
}

/// How many tasks had one kind of problem, and a few of them described.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub count: usize,
    /// Up to [`EXAMPLES`] ids, lowest first.
    pub examples: Vec<TaskId>,
    /// What was wrong with each example, in the same order.
    pub details: Vec<String>,
}

impl Problem {
    fn add(&mut self, id: TaskId, detail: String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(id);
            self.details.push(detail);
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
            if let Some(first) = p.details.first() {
                out.push(format!(
                    "{} {what} (e.g. task {}; {first})",
                    p.count,
                    Ids(&p.examples)
                ));
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
mod tests;
