//! [`Extras`]: what few tasks carry, kept beside the task table rather than in every record:
//! submit headers and the latest progress a worker reported.
//!
//! A task record is compact because a queue holds millions (`task.rs`); most tasks have no
//! headers and no progress, so they cost nothing here. An entry lives as long as its task
//! (removed when the task is purged) and is never empty. Snapshot format 5 is format 4 followed
//! by this table (`format.rs`); a state whose table is empty is still written as format 4.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use crate::queue::command::Headers;
use crate::queue::command::LeaseRef;
use crate::queue::command::TaskId;
use crate::queue::command::UnixMs;

/// Progress reported by the attempt `attempt` at `at_ms` (the applying entry's time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub attempt: u32,
    pub at_ms: UnixMs,
    /// The worker's JSON, as sent.
    pub data: Bytes,
}

/// One task's extras; never both empty while stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Extra {
    pub(super) headers: Headers,
    pub(super) progress: Option<Progress>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.progress.is_none()
    }
}

/// Extras by task id, ordered (serialized as held).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras(BTreeMap<TaskId, Extra>);

impl Extras {
    /// Whether nothing is held: the state then fits snapshot format 4.
    pub fn is_pristine(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn set_headers(&mut self, id: TaskId, headers: &Headers) {
        if !headers.is_empty() {
            self.0.entry(id).or_default().headers = headers.clone();
        }
    }

    /// Add (or replace) one header of the task.
    pub(super) fn insert_header(&mut self, id: TaskId, name: &str, value: String) {
        self.0
            .entry(id)
            .or_default()
            .headers
            .insert(name.to_owned(), value);
    }

    pub(super) fn headers(&self, id: TaskId) -> Option<&Headers> {
        self.0.get(&id).map(|e| &e.headers).filter(|h| !h.is_empty())
    }

    /// Keep `data` as the task's latest progress, reported by `lease`'s attempt.
    pub(super) fn set_progress(&mut self, lease: LeaseRef, data: &Bytes, now: UnixMs) {
        self.0.entry(lease.task).or_default().progress = Some(Progress {
            attempt: lease.attempt,
            at_ms: now,
            data: data.clone(),
        });
    }

    pub(super) fn progress(&self, id: TaskId) -> Option<&Progress> {
        self.0.get(&id)?.progress.as_ref()
    }

    /// Forget the task's extras (it is purged).
    pub(super) fn remove(&mut self, id: TaskId) {
        self.0.remove(&id);
    }

    /// Every id held and no entry empty (`exists`: whether the task table holds the id).
    pub(super) fn check(&self, exists: impl Fn(TaskId) -> bool) -> Result<(), String> {
        for (id, e) in &self.0 {
            if e.is_empty() {
                return Err(format!("task {id}: empty extras entry"));
            }
            if !exists(*id) {
                return Err(format!("extras of task {id}, which does not exist"));
            }
        }
        Ok(())
    }
}
