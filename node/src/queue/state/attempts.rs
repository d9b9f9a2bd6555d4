//! [`Attempts`]: each leased task's last [`MAX_ATTEMPT_HISTORY`] attempts (which pool held it,
//! when, how it ended), beside the task table like the extras (`extras.rs`).
//!
//! - **Off until switched on.** Recording changes what `Lease`, `Complete`, `Release`,
//!   expiry and `Revoke` do to the state, and ADR 002 forbids changing what an existing entry
//!   does: replicas replaying entries from before the switch must record nothing, all alike.
//!   So nothing is recorded until the log holds a `RecordAttempts` (entry format 10), which the
//!   leader proposes once every member's build reads that format (`leader.rs`); from that
//!   entry on every replica records the same history.
//! - **What is kept.** A grant opens an entry (attempt number, holder, granted at); the end of
//!   that attempt closes it (ended at, how: [`AttemptEnd`]). An attempt that was running when
//!   recording started has no entry, and its end records nothing. The 17th attempt drops the
//!   oldest. Holders are interned here, reference-counted by entry, so a history holds slot
//!   numbers and the names of pools that are long gone stay readable.
//! - **What it costs.** A pending task that never ran has no entry: it pays nothing (the
//!   backlog benchmark's ≤ 256 B per pending task stands). A task that ran pays its map entry
//!   (a `BTreeMap` slot of 24 B, ≈ 35 B with the node's share) plus one heap block of 32 B per
//!   attempt (+ the allocator's ≈ 16 B): ≈ 85 B for one attempt, ≈ 570 B at most (16). A final
//!   task keeps its history until it is purged (its result TTL), so the steady cost is about
//!   85 B × the tasks finished within one result TTL.
//! - **Shared with a snapshot** (`attempts/cow.rs`): the map is cut into `Arc` chunks of
//!   1,024 ids, so the snapshot's freeze copies a pointer per chunk instead of every history,
//!   and the applies after it copy the few chunks they write to, once each. Same entry cost as
//!   a plain `BTreeMap`, plus ~50 B per chunk.
//! - **Dropped with the task** (purged: result TTL, the end of a workflow).
//!
//! Snapshot format 11 is format 10 followed by this table (`format.rs`); a state that never
//! applied `RecordAttempts` keeps writing format 10 or older. Slot 9 stays a reserved unit.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::Interner;
use crate::queue::command::*;

mod cow;

use cow::CowMap;

/// One attempt as held: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    attempt: u32,
    /// Slot in [`Attempts::holders`].
    holder: u32,
    granted_ms: UnixMs,
    /// 0 while `end` is `None`.
    ended_ms: UnixMs,
    end: Option<AttemptEnd>,
}

/// The attempt histories, by task id (serialized as held).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// Whether `RecordAttempts` was applied: grants are recorded from then on.
    on: bool,
    /// Holder names, one reference per entry that names one.
    holders: Interner<Box<str>>,
    /// Oldest attempt first; never empty, at most [`MAX_ATTEMPT_HISTORY`]. Shared by chunks
    /// with the snapshot's frozen copy (`attempts/cow.rs`), serialized as a `BTreeMap`.
    tasks: CowMap<Box<[Attempt]>>,
}

impl Attempts {
    /// Whether recording never started: the state then fits snapshot format 10.
    pub fn is_pristine(&self) -> bool {
        !self.on && self.tasks.is_empty()
    }

    /// Whether grants are recorded.
    pub fn recording(&self) -> bool {
        self.on
    }

    /// `RecordAttempts`: start recording; whether it was off.
    pub(super) fn switch_on(&mut self) -> bool {
        !std::mem::replace(&mut self.on, true)
    }

    /// A grant of `attempt` of task `id` to `holder` at `now` (nothing while off).
    pub(super) fn start(&mut self, id: TaskId, attempt: u32, holder: &str, now: UnixMs) {
        if !self.on {
            return;
        }
        let entry = Attempt {
            attempt,
            holder: self.holders.acquire(holder),
            granted_ms: now,
            ended_ms: 0,
            end: None,
        };
        let old: &[Attempt] = self.tasks.get(id).map_or(&[], |h| h);
        // Drop the oldest past the bound; one allocation of the new length per grant.
        let skip = (old.len() + 1).saturating_sub(MAX_ATTEMPT_HISTORY);
        for dropped in &old[..skip] {
            self.holders.release(dropped.holder);
        }
        let mut kept = Vec::with_capacity(old.len() - skip + 1);
        kept.extend_from_slice(&old[skip..]);
        kept.push(entry);
        // Replaced in place: a task's first grant after a freeze copies its chunk only once.
        self.tasks.insert(id, kept.into_boxed_slice());
    }

    /// The end of `lease`'s attempt at `now`: closes its entry if it is the task's open one.
    pub(super) fn end(&mut self, lease: LeaseRef, how: AttemptEnd, now: UnixMs) {
        // Looked at before it is written: closing nothing must not copy a chunk a freeze shares.
        let open = |h: &[Attempt]| {
            h.last()
                .is_some_and(|a| a.attempt == lease.attempt && a.end.is_none())
        };
        if !self.tasks.get(lease.task).is_some_and(|h| open(h)) {
            return;
        }
        if let Some(last) = self.tasks.get_mut(lease.task).and_then(|h| h.last_mut()) {
            last.ended_ms = now;
            last.end = Some(how);
        }
    }

    /// Forget the task's history (it is purged).
    pub(super) fn remove(&mut self, id: TaskId) {
        if let Some(history) = self.tasks.remove(id) {
            for a in history.iter() {
                self.holders.release(a.holder);
            }
        }
    }

    /// Task `id`'s history, oldest first (empty if none was recorded).
    pub(super) fn history(&self, id: TaskId) -> Vec<AttemptView> {
        self.tasks.get(id).map_or_else(Vec::new, |h| {
            h.iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    holder: self.holders.name(a.holder).to_owned(),
                    granted_ms: a.granted_ms,
                    ended: a.end.map(|how| (a.ended_ms, how)),
                })
                .collect()
        })
    }

    /// Drop every history, recording stays on: only the deliberate bug
    /// [`SnapshotDropsAttempts`](crate::bugs::Bug::SnapshotDropsAttempts) does this.
    pub(super) fn forget_histories(&mut self) {
        self.tasks.clear();
        self.holders = Interner::default();
    }

    /// How many tasks have a history (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Chunks of histories this table shares with `other` (a frozen copy): for tests.
    #[cfg(test)]
    pub(super) fn shared_chunks(&self, other: &Attempts) -> usize {
        self.tasks.shared_chunks(&other.tasks)
    }

    /// The histories as the plain `BTreeMap` this table was before it was shared by chunks:
    /// for the measurement of what a freeze copied then.
    #[cfg(test)]
    pub(super) fn as_btree(&self) -> BTreeMap<TaskId, Box<[Attempt]>> {
        self.tasks.iter().map(|(id, h)| (id, h.clone())).collect()
    }

    /// Whether no task has a history.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The rules of the table. `task(id)`: the task's attempt counter and its current lease's
    /// attempt (if leased), `None` for an unknown task.
    pub(super) fn check(&self, task: impl Fn(TaskId) -> Option<(u32, Option<u32>)>) -> Result<(), String> {
        if !self.on && !self.tasks.is_empty() {
            return Err("attempt histories recorded while recording is off".into());
        }
        self.tasks.check()?;
        let mut refs: BTreeMap<u32, u64> = BTreeMap::new();
        for (id, history) in self.tasks.iter() {
            let err = |m: &str| Err(format!("attempt history of task {id}: {m}"));
            let Some((counter, leased)) = task(id) else {
                return err("the task does not exist");
            };
            if history.is_empty() || history.len() > MAX_ATTEMPT_HISTORY {
                return err("empty or longer than the bound");
            }
            if history.windows(2).any(|w| w[0].attempt >= w[1].attempt) {
                return err("attempts not in increasing order");
            }
            if history.windows(2).any(|w| w[0].granted_ms > w[1].granted_ms) {
                return err("grants not in time order");
            }
            for (i, a) in history.iter().enumerate() {
                *refs.entry(a.holder).or_default() += 1;
                if a.attempt == 0 || a.attempt > counter {
                    return err("names an attempt the task never started");
                }
                match a.end {
                    None if i + 1 != history.len() || leased != Some(a.attempt) => {
                        return err("an open attempt that is not the task's current lease");
                    }
                    None if a.ended_ms != 0 => return err("an open attempt with an end time"),
                    Some(_) if a.ended_ms < a.granted_ms => return err("ended before it was granted"),
                    Some(_) if leased == Some(a.attempt) => {
                        return err("the current lease's attempt is recorded as ended");
                    }
                    _ => {}
                }
            }
        }
        self.holders.check("attempt holder", &refs)
    }
}

impl super::QueueState {
    /// Whether this replica applied `RecordAttempts` (the leader proposes it until it has).
    pub fn records_attempts(&self) -> bool {
        self.attempts.recording()
    }
}
