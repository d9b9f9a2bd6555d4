//! [`Table`]: the task table, dense by id, cloned in O(chunks).
//!
//! Task ids are sequential and never reused, and most tasks live for a short while, so the live
//! ids crowd into a window just below `next_id`. The table keeps that window as a ring (slot `i`
//! holds id `base + i`): a lookup is an index, a task costs its record and no tree node. A task
//! that outlives the window (scheduled a week ahead, a result kept for a day) must not pin the
//! ring's front while millions of newer tasks come and go, so one deterministic rule bounds the
//! ring: **after every change, while fewer than half of the ring's slots are live, its front
//! task moves to `sparse`**, a `BTreeMap` of such stragglers (all below `base`), and the dead
//! slots after it are dropped. Each task moves at most once, so the rule costs O(1) amortized.
//!
//! # Chunks, copy on write
//!
//! The ring is stored as chunks of [`CHUNK`] slots aligned on ids (chunk `k` holds ids
//! `k * CHUNK ..`), each behind an [`Arc`] and written through [`Arc::make_mut`]. Cloning the
//! table (the snapshot's frozen copy, `raft/state_machine.rs`) copies one pointer per chunk and
//! the side table, not the tasks; an apply that then writes to a chunk the copy still holds
//! copies that chunk once (1,024 task records), and every later write to it is in place again.
//! A clone never sees the original's later writes, nor the original the clone's. Reads never
//! copy, and a write that finds no task (a stale completion) does not either.
//!
//! Memory: the ring's chunks hold at most `len + 2 * CHUNK` slots (the chunks at both ends are
//! partly outside the ring), with `len <= 2 * live`, so about two slots per live task plus a
//! tree node per straggler; chunks are freed as the ring moves past them (there is no separate
//! capacity to give back). A chunk's vector grows up to `CHUNK` slots as ids reach it, so a
//! small table does not pay for a whole chunk.
//!
//! Where a task sits (ring or side table, which chunk) is not part of the state: equality and
//! serialization see only `(id, task)` pairs in id order (serialized like `BTreeMap<TaskId, T>`),
//! so replicas whose tables split differently (one rebuilt from a snapshot) compare and encode
//! the same.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use serde::de::MapAccess;
use serde::de::Visitor;
use serde::ser::SerializeMap;

use super::TaskId;

/// Slots per chunk: the unit a clone shares and a write after a clone copies (80 KiB of task
/// records). Smaller chunks make that copy cheaper and the clone dearer (one pointer each:
/// ~1,000 for a million tasks at this size).
pub(crate) const CHUNK: usize = 1024;

/// The same as a `TaskId`, for chunk arithmetic.
const CHUNK_ID: TaskId = CHUNK as TaskId;

/// One chunk: slot `id % CHUNK`; slots past the vector's end are dead.
type Chunk<T> = Arc<Vec<Option<T>>>;

/// Tasks by id: a ring over the recent ids plus a side table of long-lived older ones.
#[derive(Clone)]
pub(crate) struct Table<T> {
    /// Id of the ring's first slot; every id in `sparse` is below it.
    base: TaskId,
    /// Ring length: it covers ids `base..base + len`; empty, or both ends are live.
    len: usize,
    /// `chunks[k]` holds the ids of chunk number `base / CHUNK + k`: exactly the chunks that
    /// meet the ring (none when it is empty). Every slot outside the ring is dead.
    chunks: VecDeque<Chunk<T>>,
    /// Number of live slots in the ring; `2 * ring_live >= len`.
    ring_live: usize,
    sparse: BTreeMap<TaskId, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            base: 0,
            len: 0,
            chunks: VecDeque::new(),
            ring_live: 0,
            sparse: BTreeMap::new(),
        }
    }
}

/// Chunk number of `id`.
fn chunk_of(id: TaskId) -> TaskId {
    id / CHUNK_ID
}

/// Slot of `id` in its chunk.
fn offset(id: TaskId) -> usize {
    (id % CHUNK_ID) as usize
}

impl<T> Table<T> {
    pub(crate) fn len(&self) -> usize {
        self.ring_live + self.sparse.len()
    }

    /// One past the ring's last id.
    fn end(&self) -> TaskId {
        self.base.saturating_add(self.len as TaskId)
    }

    /// `(chunk index, slot)` of a ring id.
    fn locate(&self, id: TaskId) -> Option<(usize, usize)> {
        if id < self.base || id >= self.end() {
            return None;
        }
        let k = usize::try_from(chunk_of(id) - chunk_of(self.base)).ok()?;
        Some((k, offset(id)))
    }

    /// The ring slot of `id` (`None` outside the ring or dead).
    fn ring_get(&self, id: TaskId) -> Option<&T> {
        let (k, off) = self.locate(id)?;
        self.chunks[k].get(off)?.as_ref()
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&T> {
        if id < self.base {
            self.sparse.get(&id)
        } else {
            self.ring_get(id)
        }
    }

    /// Every `(id, value)` in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &T)> {
        let first = chunk_of(self.base) * CHUNK_ID;
        // Slots outside the ring are dead, so the chunks can be walked whole.
        let ring = self.chunks.iter().enumerate().flat_map(move |(k, c)| {
            let start = first + k as TaskId * CHUNK_ID;
            c.iter()
                .zip(start..)
                .filter_map(|(v, id)| v.as_ref().map(|v| (id, v)))
        });
        self.sparse.iter().map(|(id, v)| (*id, v)).chain(ring)
    }

    /// Every `(id, value)` with `id < below`, newest (highest id) first, lazily: a caller that
    /// stops after `n` items has touched `n` items plus the dead ring slots between them.
    pub(crate) fn iter_below(&self, below: TaskId) -> impl Iterator<Item = (TaskId, &T)> {
        let hi = below.clamp(self.base, self.end());
        // Chunks holding ids below `hi`.
        let n = if hi > self.base {
            (chunk_of(hi - 1) - chunk_of(self.base) + 1) as usize
        } else {
            0
        };
        let first = chunk_of(self.base) * CHUNK_ID;
        let ring = self.chunks.range(..n).enumerate().rev().flat_map(move |(k, c)| {
            let start = first + k as TaskId * CHUNK_ID;
            c.iter()
                .enumerate()
                .rev()
                .map(move |(off, v)| (start + off as TaskId, v))
                .filter(move |(id, _)| *id < hi)
                .filter_map(|(id, v)| v.as_ref().map(|v| (id, v)))
        });
        let sparse = self
            .sparse
            .range(..below.min(self.base))
            .rev()
            .map(|(id, v)| (*id, v));
        ring.chain(sparse)
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = TaskId> {
        self.iter().map(|(id, _)| id)
    }

    /// Ring slots in use and the slots its chunks hold (live or not), and side-table entries:
    /// for tests of the memory bound.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, usize, usize) {
        let slots = self.chunks.iter().map(|c| c.capacity()).sum();
        (self.len, slots, self.sparse.len())
    }

    /// Chunks this table shares with `other` (the same allocation): for tests of the clone.
    #[cfg(test)]
    pub(crate) fn shared_chunks(&self, other: &Self) -> usize {
        self.chunks
            .iter()
            .filter(|c| other.chunks.iter().any(|o| Arc::ptr_eq(c, o)))
            .count()
    }

    /// The structural rules of the table (not of the tasks).
    pub(crate) fn check(&self) -> Result<(), String> {
        let first = chunk_of(self.base) * CHUNK_ID;
        let mut live = 0;
        for (k, c) in self.chunks.iter().enumerate() {
            if c.len() > CHUNK {
                return Err(format!("task table chunk of {} slots", c.len()));
            }
            for (v, id) in c.iter().zip(first + k as TaskId * CHUNK_ID..) {
                match (v.is_some(), (self.base..self.end()).contains(&id)) {
                    (true, true) => live += 1,
                    (true, false) => {
                        return Err(format!("task table holds {id} outside its ring"));
                    }
                    _ => {}
                }
            }
        }
        if live != self.ring_live {
            return Err(format!(
                "task table counts {} live ring slots, holds {live}",
                self.ring_live
            ));
        }
        let want = if self.len == 0 {
            0
        } else {
            (chunk_of(self.end() - 1) - chunk_of(self.base) + 1) as usize
        };
        if self.chunks.len() != want {
            return Err(format!(
                "task table ring of {} slots in {} chunks, not {want}",
                self.len,
                self.chunks.len()
            ));
        }
        if self.len > 0 && (self.ring_get(self.base).is_none() || self.ring_get(self.end() - 1).is_none()) {
            return Err("task table ring starts or ends with a dead slot".into());
        }
        if 2 * self.ring_live < self.len {
            return Err(format!(
                "task table ring less than half live: {live} of {}",
                self.len
            ));
        }
        if self
            .sparse
            .last_key_value()
            .is_some_and(|(id, _)| *id >= self.base)
        {
            return Err("task table side entry at or past the ring's base".into());
        }
        Ok(())
    }
}

impl<T: Clone> Table<T> {
    /// The slot of ring id `id`, made writable: its chunk is copied first if a clone shares it.
    fn slot_mut(&mut self, id: TaskId) -> &mut Option<T> {
        let (k, off) = self.locate(id).expect("a ring id");
        let chunk = Arc::make_mut(&mut self.chunks[k]);
        if chunk.len() <= off {
            // Grow towards one chunk, never past it (plain `resize` may double past it).
            let want = (off + 1).max(2 * chunk.len()).min(CHUNK);
            chunk.reserve_exact(want - chunk.len());
            chunk.resize_with(off + 1, || None);
        }
        &mut chunk[off]
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut T> {
        if id < self.base {
            return self.sparse.get_mut(&id);
        }
        // A miss must not copy a shared chunk.
        self.ring_get(id)?;
        self.slot_mut(id).as_mut()
    }

    /// Insert or replace. Ids at or past the ring's end append (the usual case: a new id);
    /// an id below the ring goes to the side table.
    pub(crate) fn insert(&mut self, id: TaskId, value: T) {
        if self.locate(id).is_some() {
            let slot = self.slot_mut(id);
            let was_dead = slot.is_none();
            *slot = Some(value);
            self.ring_live += usize::from(was_dead);
            return;
        }
        if id < self.base {
            self.sparse.insert(id, value);
            return;
        }
        // Make room by the same rule before growing, so a gap never allocates dead slots
        // beyond twice the live ones (only a decode or a run of removals at the back makes
        // gaps: new ids are consecutive).
        while self.len > 0 && ring_len_for(self.base, id) > 2 * (self.ring_live + 1) {
            self.evict_front();
        }
        if self.len == 0 {
            self.base = id;
            self.chunks.clear();
        }
        let len = ring_len_for(self.base, id);
        let chunks = (chunk_of(id) - chunk_of(self.base) + 1) as usize;
        while self.chunks.len() < chunks {
            self.chunks.push_back(Arc::new(Vec::new()));
        }
        self.len = len;
        *self.slot_mut(id) = Some(value);
        self.ring_live += 1;
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<T> {
        if id < self.base {
            return self.sparse.remove(&id);
        }
        // A miss must not copy a shared chunk.
        self.ring_get(id)?;
        let value = self.slot_mut(id).take()?;
        self.ring_live -= 1;
        self.trim();
        while 2 * self.ring_live < self.len {
            self.evict_front();
        }
        self.shrink();
        Some(value)
    }

    /// Move the front task to the side table and drop the dead slots after it.
    fn evict_front(&mut self) {
        if let Some(value) = self.slot_mut(self.base).take() {
            self.sparse.insert(self.base, value);
            self.ring_live -= 1;
        }
        self.pop_front();
        self.trim();
    }

    /// Drop the ring's first slot (dead by now), and its chunk once the ring has left it.
    fn pop_front(&mut self) {
        self.base += 1;
        self.len -= 1;
        if self.len == 0 {
            self.chunks.clear();
        } else if offset(self.base) == 0 {
            self.chunks.pop_front();
        }
    }

    /// Drop dead slots at both ends.
    fn trim(&mut self) {
        while self.len > 0 && self.ring_get(self.base).is_none() {
            self.pop_front();
        }
        while self.len > 0 && self.ring_get(self.end() - 1).is_none() {
            self.len -= 1;
            if self.len == 0 {
                self.chunks.clear();
            } else if offset(self.end()) == 0 {
                self.chunks.pop_back();
            }
        }
    }

    /// Give back the chunk list's spare room once it uses under a quarter of it (the chunks
    /// themselves go as the ring leaves them).
    fn shrink(&mut self) {
        let cap = self.chunks.capacity();
        if cap > 64 && self.chunks.len() < cap / 4 {
            self.chunks.shrink_to(self.chunks.len() * 2);
        }
    }
}

/// Ring length once it reaches `id` (with `id >= base`).
fn ring_len_for(base: TaskId, id: TaskId) -> usize {
    usize::try_from(id - base).unwrap_or(usize::MAX).saturating_add(1)
}

impl<T> std::ops::Index<&TaskId> for Table<T> {
    type Output = T;

    fn index(&self, id: &TaskId) -> &T {
        self.get(*id).expect("no task with this id")
    }
}

impl<T: PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for Table<T> {}

impl<T: fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (id, v) in self.iter() {
            map.serialize_entry(&id, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for V<T> {
            type Value = Table<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of tasks by increasing id")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table<T>, A::Error> {
                let mut table = Table::default();
                let mut last: Option<TaskId> = None;
                while let Some((id, v)) = map.next_entry::<TaskId, T>()? {
                    if last.is_some_and(|l| id <= l) {
                        return Err(serde::de::Error::custom("task ids not increasing"));
                    }
                    last = Some(id);
                    table.insert(id, v);
                }
                Ok(table)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests;
