//! The serialized form of [`QueueState`] (snapshot format version 2; `state/v1.rs` reads
//! version 1), and the equality that follows it.
//!
//! Every field is serialized as it is held, in the order below (bincode is positional), except
//! the key index: it is derived from the tasks, not ordered, and rebuilt on load, so its random
//! hash never reaches the bytes. Replicas that applied the same log serialize to the same
//! bytes, which `sim dst` compares (`replicas_agree`). Changing a serialized type or the order
//! of these fields is a new format version.

use serde::Deserialize;
use serde::Serialize;

use super::Index;
use super::Interner;
use super::KeyIndex;
use super::QueueState;
use super::Table;
use super::Task;
use super::standing;
use crate::queue::command::TaskId;
use crate::queue::command::UnixMs;

/// The serialized fields of [`QueueState`], in order (the key index is rebuilt on load).
#[derive(Serialize)]
struct StateRef<'a> {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: &'a Table<Task>,
    task_names: &'a Interner<Box<str>>,
    idx: &'a Index,
    next_node_id: u64,
    standing: &'a standing::Standing,
}

#[derive(Deserialize)]
struct StateOwned {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: Table<Task>,
    task_names: Interner<Box<str>>,
    idx: Index,
    next_node_id: u64,
    standing: standing::Standing,
}

impl Serialize for QueueState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StateRef {
            now_ms: self.now_ms,
            next_id: self.next_id,
            tasks: &self.tasks,
            task_names: &self.task_names,
            idx: &self.idx,
            next_node_id: self.next_node_id,
            standing: &self.standing,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for QueueState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = StateOwned::deserialize(d)?;
        let idempotency = KeyIndex::build(&o.tasks).map_err(serde::de::Error::custom)?;
        Ok(Self {
            now_ms: o.now_ms,
            next_id: o.next_id,
            tasks: o.tasks,
            idempotency,
            task_names: o.task_names,
            idx: o.idx,
            next_node_id: o.next_node_id,
            standing: o.standing,
        })
    }
}

/// Equal iff the serialized state is (the key index follows from the tasks).
impl PartialEq for QueueState {
    fn eq(&self, other: &Self) -> bool {
        self.now_ms == other.now_ms
            && self.next_id == other.next_id
            && self.tasks == other.tasks
            && self.task_names == other.task_names
            && self.idx == other.idx
            && self.next_node_id == other.next_node_id
            && self.standing == other.standing
    }
}

impl Eq for QueueState {}
