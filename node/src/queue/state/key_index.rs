//! [`KeyIndex`]: idempotency key → the live task that claimed it.
//!
//! A hash table of task ids: the key itself is read from the task (it sits in front of the
//! args, `state/task.rs`), so it is stored once, ~19 bytes per keyed task instead of a tree
//! node plus a second copy of the key. Keys come from clients, so the hash is SipHash with a
//! random key per table (`RandomState`): nobody can choose keys that collide.
//!
//! **This is the one place allowed a random hash** (clippy.toml bans `hashbrown` and
//! `RandomState` everywhere else). It is safe for determinism because the table is derived
//! from the task table, is neither iterated nor serialized (it is rebuilt on load), and answers
//! only "which task has this key", which does not depend on its layout: its randomness cannot
//! reach the state, a response or a snapshot.

// The one sanctioned use of a randomly keyed hash table: see the module doc.
#![allow(clippy::disallowed_types)]

use std::hash::BuildHasher;
use std::hash::RandomState;

use super::Table;
use super::Task;
use crate::queue::command::TaskId;

/// Idempotency key → task id; derived from the task table, never iterated nor serialized.
#[derive(Clone, Debug, Default)]
pub(super) struct KeyIndex {
    table: hashbrown::HashTable<TaskId>,
    hasher: RandomState,
}

/// The key of task `id` (empty if it has none, which the index never holds).
fn key_of(tasks: &Table<Task>, id: TaskId) -> &[u8] {
    tasks.get(id).and_then(Task::idempotency_key).unwrap_or_default()
}

impl KeyIndex {
    /// Index every keyed task; two tasks with one key is a corrupt state.
    pub(super) fn build(tasks: &Table<Task>) -> Result<Self, String> {
        let mut index = Self {
            table: hashbrown::HashTable::with_capacity(tasks.iter().filter(|(_, t)| t.keyed).count()),
            hasher: RandomState::new(),
        };
        for (id, t) in tasks.iter() {
            if let Some(key) = t.idempotency_key() {
                if let Some(other) = index.get(tasks, key) {
                    return Err(format!("tasks {other} and {id} share an idempotency key"));
                }
                index.insert(tasks, key, id);
            }
        }
        Ok(index)
    }

    pub(super) fn get(&self, tasks: &Table<Task>, key: &[u8]) -> Option<TaskId> {
        self.table
            .find(self.hasher.hash_one(key), |&id| key_of(tasks, id) == key)
            .copied()
    }

    /// `id` must be in `tasks` with this key, and the key not yet indexed.
    pub(super) fn insert(&mut self, tasks: &Table<Task>, key: &[u8], id: TaskId) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hasher.hash_one(key), id, |&id| hasher.hash_one(key_of(tasks, id)));
    }

    pub(super) fn remove(&mut self, key: &[u8], id: TaskId) {
        if let Ok(entry) = self.table.find_entry(self.hasher.hash_one(key), |&x| x == id) {
            entry.remove();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}
