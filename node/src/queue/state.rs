//! [`QueueState`]: the replicated task queue as a pure, deterministic state machine.
//!
//! Every replica applies the same [`Request`]s in the same order and so holds the same state and
//! serializes it to the same bytes. Hence: ordered containers only (the one hash table, the key
//! index, is never iterated nor serialized, so its randomly keyed hash cannot reach the state), no
//! wall clock, no RNG in what `apply` decides, and `apply` is total (it never panics and never
//! fails; problems are reported in responses).
//!
//! # Semantics
//!
//! - **Time.** `apply` first sets `now = max(now, req.now_ms)` (time never runs backwards) and
//!   fires every timer with `due <= now`, then applies the commands in order, all at that same
//!   `now`. Timers created by a command with `due <= now` (a `lease_ms` of 0, a result TTL of 0)
//!   fire at the start of the next apply, not between commands of the same entry. All time
//!   arithmetic saturates.
//! - **Ids** are sequential from 1 and never reused.
//! - **Submit.** An empty queue name means [`DEFAULT_QUEUE`]. `due = max(eta_ms, now +
//!   countdown_ms)` (absent = 0); `due > now` makes the task `Scheduled`, otherwise `Pending`. An
//!   idempotency key that maps to an existing task returns `{id: existing, duplicate: true}` and
//!   creates nothing, also within one batch. The key is forgotten when its task is purged.
//! - **Lease** takes up to `max` pending tasks from the listed queues in the given order (an
//!   empty list means every queue in name order; an empty name means the default queue),
//!   skipping paused and unknown queues. Within a queue: highest priority first, then FIFO by id.
//!   Each grant increments the task's `attempt`: attempts are never reused or decremented, they
//!   are the fencing tokens. The lease runs until `now + lease_ms`.
//! - **Complete.** Accepted only if the task is `Leased` with exactly that attempt; otherwise it
//!   is `Stale` and changes nothing (the first valid completion wins). The worker name is not
//!   part of the fence. `Success` → `Succeeded` with the result. `Failure{retry: true}` counts a
//!   failure (failures are counted apart from attempts); while `failures <= max_retries` the task
//!   waits `min(backoff_ms * 2^(failures-1), MAX_BACKOFF_MS)` in `Retrying` (a `backoff_ms` of 0
//!   goes straight to `Pending`), else it is `Dead`. `Failure{retry: false}` is `Dead` at once.
//!   The last error is kept; a success clears it (the view shows either result or error).
//! - **Heartbeat** sets a matching lease's deadline to `now + lease_ms`.
//! - **Release** puts a matching lease back to `Pending` without counting a failure. Its attempt
//!   number stays consumed: the next lease gets `attempt + 1`.
//! - **Lease expiry** (`deadline <= now`: the worker died or was cut off) puts the task back to
//!   `Pending` with error `"lease expired (worker lost)"`, without using up a retry: a node crash
//!   must not cost a task one of its `max_retries`. Lost leases are counted on their own; the
//!   [`MAX_LOST_LEASES`]-th makes the task `Dead`, so a task that keeps killing its workers
//!   does not run forever.
//! - **Standing capacity** (`state/standing.rs`). A `Lease` with a `standing_ticket` leaves
//!   `max − granted` as the worker's standing capacity, added to what it had, and renews all of
//!   it until `now + lease_ms` (a `max` of 0 only renews). It is dropped at the start of the
//!   first apply with `now >= expiry`, before timers fire. Whenever a task may have become
//!   pending (after the advance; after any command that made one pending, un-paused a queue or
//!   stood), pending tasks are granted to standing capacity one at a time: the covering worker
//!   granted to least recently (ties: name order) takes exactly the task its own `Lease { max:
//!   1, lease_ms }` would take then (its queues in order, priority, id), as an ordinary lease.
//!   Such tasks are not counted in `became_pending`; the grants are reported per worker in
//!   [`ApplyEffects::workers`]. Invariant: no standing capacity covers a pending task of an
//!   unpaused queue. `ClearStanding` drops a worker's standing capacity; so does `ReleaseWorker`
//!   (first, so the tasks it releases go to other workers' standing capacity, not back), and
//!   [`QueueState::new_term`] drops everyone's (applied for a new leader's first entry).
//! - **ReleaseWorker** releases every lease held by the named worker (a pool that restarted
//!   under the same name): those tasks are pending again at once, nothing counted. It scans the
//!   timer set, which is fine for a command proposed once per pool start.
//! - **Cancel** turns `Scheduled`/`Pending`/`Retrying` into `Cancelled`; a leased, final or
//!   unknown task answers `false`. **PurgeQueue** cancels every scheduled, pending and retrying
//!   task of the queue and returns how many. **PauseQueue** makes `Lease` skip the queue.
//! - **Final** tasks (`Succeeded`/`Dead`/`Cancelled`) keep their record and result until
//!   `now >= finished_at + result_ttl_ms`, then they are purged entirely.
//! - `TaskView::updated_ms` is the time of the last state change (a heartbeat is not one).
//! - [`ApplyEffects::finished`] lists every task that reached a final state in this apply;
//!   [`ApplyEffects::became_pending`] counts tasks that became `Pending` (new submits, ETA or
//!   retry coming due, backoff 0, lease expiry, release) plus, since its purpose is to wake idle
//!   workers, the pending tasks of a queue that is un-paused.
//! - If a task's attempt counter would overflow `u32` (four billion leases), leasing it makes it
//!   `Dead` instead, so a fencing token is never repeated.
//!
//! # Layout
//!
//! Tasks live in a `Table` (`state/table.rs`) by id: a ring over the recent ids (ids are
//! sequential), with long-lived older tasks moved to a side `BTreeMap` by a fixed rule, so one
//! old task cannot pin the ring. Each non-pending task has exactly one entry in a single timer
//! set keyed `(due, id)`: the ETA/retry time, the lease deadline, or the purge time of a final
//! task. Pending tasks instead sit in their queue's `Pending` set (`state/pending.rs`) in
//! `(Reverse(priority), id)` order, stored as 64-id bitmaps. Task, queue and worker names, and
//! the rarely varied per-task options (retries, backoff, result TTL, time limit), are interned
//! (reference-counted, slots recycled through a free list) so a task holds small integers
//! instead of strings. A task's idempotency key is stored once, in front of its args in one
//! allocation; the key index is a hash table of task ids that reads the keys from the tasks. A
//! queue disappears when it holds no task and is not paused. Everything is serialized as is
//! except the key index, which is derived and rebuilt on load (it is not ordered, so it must
//! never be iterated into state or responses); snapshots of the layout before this one (format
//! version 1) are converted by `state/v1.rs`. [`QueueState::check_invariants`] verifies that
//! the table and every index agree.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::BuildHasher;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::command::*;
use pending::Pending;
use table::Table;

mod pending;
#[cfg(test)]
mod proptests;
mod standing;
mod table;
#[cfg(test)]
mod tests;
mod v1;

pub use v1::QueueStateV1;
#[cfg(test)]
pub(crate) use v1::downgrade as downgrade_to_v1;

pub use standing::WorkerEffects;

/// Error recorded when a lease runs out.
pub const LEASE_EXPIRED_ERROR: &str = "lease expired (worker lost)";
/// Error recorded when a task's attempt counter is exhausted.
pub const ATTEMPTS_EXHAUSTED_ERROR: &str = "attempt counter exhausted";

const STATES: usize = 7;

/// What applying an entry did that the node (not the replicated state) wants to know: which
/// tasks reached a final state (to answer waiting clients) and whether new work became
/// leasable (to wake idle workers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyEffects {
    /// Tasks that reached a final state during this apply, in order.
    pub finished: Vec<TaskId>,
    /// Tasks that became pending (leasable) during this apply and were not granted to standing
    /// capacity in it.
    pub became_pending: u64,
    /// Per worker name: tasks granted to its standing capacity, its ticketed leases applied,
    /// its standing capacity after the apply. Only workers this apply touched.
    pub workers: BTreeMap<String, WorkerEffects>,
}

/// The whole replicated queue.
#[derive(Clone, Debug)]
pub struct QueueState {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: Table<Task>,
    /// Idempotency key → the live task that claimed it. Derived from `tasks`: not serialized.
    idempotency: KeyIndex,
    task_names: Interner<Box<str>>,
    idx: Index,
    /// Next id `AllocateNodeId` hands out; the founding node is 1.
    next_node_id: u64,
    /// Idle pools' standing capacity (see [`standing`]).
    standing: standing::Standing,
}

impl Default for QueueState {
    fn default() -> Self {
        Self {
            now_ms: 0,
            next_id: 1,
            tasks: Table::default(),
            idempotency: KeyIndex::default(),
            task_names: Interner::default(),
            idx: Index::default(),
            next_node_id: 2,
            standing: standing::Standing::default(),
        }
    }
}

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

/// One task. Kept compact because a queue can hold millions: names and options are interned
/// ids, the key and args share one allocation, the output lives behind an optional box, and
/// `timer_ms` is the one time that matters in the current state (ETA, retry time, lease
/// deadline, or purge time once final).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Task {
    /// The idempotency key (its first `key_len` bytes), then the args. No allocation if both
    /// are empty.
    #[serde(with = "boxed_bytes")]
    data: Box<[u8]>,
    /// The result or the last error, once there is one.
    output: Option<Box<Output>>,
    created_ms: UnixMs,
    updated_ms: UnixMs,
    /// 0 while pending (pending tasks have no timer).
    timer_ms: UnixMs,
    name: u32,
    queue: u32,
    /// [`TaskOptions`] slot in [`Index::options`].
    options: u32,
    /// Worker slot while leased, 0 otherwise.
    worker: u32,
    attempt: u32,
    failures: u32,
    /// 0 unless `keyed`.
    key_len: u32,
    /// Leases that expired (worker lost); see [`MAX_LOST_LEASES`].
    lost_leases: u8,
    priority: u8,
    state: TaskState,
    /// Has an idempotency key (possibly empty).
    keyed: bool,
}

impl Task {
    fn output(&self) -> Option<&Output> {
        self.output.as_deref()
    }

    fn set_output(&mut self, output: Output) {
        match &mut self.output {
            Some(o) => **o = output,
            None => self.output = Some(Box::new(output)),
        }
    }

    fn idempotency_key(&self) -> Option<&[u8]> {
        if self.keyed {
            self.data.get(..self.key_len as usize)
        } else {
            None
        }
    }

    fn args(&self) -> &[u8] {
        self.data.get(self.key_len as usize..).unwrap_or_default()
    }

    /// `data` for a task with this key (empty if none) and these args: one allocation.
    fn pack(key: &[u8], args: &[u8]) -> Box<[u8]> {
        let mut data = Vec::with_capacity(key.len() + args.len());
        data.extend_from_slice(key);
        data.extend_from_slice(args);
        data.into_boxed_slice()
    }
}

/// The per-task options a client rarely varies, interned (tasks hold a slot number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct TaskOptions {
    max_retries: u32,
    backoff_ms: u64,
    result_ttl_ms: u64,
    time_limit_ms: Option<u64>,
}

impl From<&TaskOptions> for TaskOptions {
    fn from(o: &TaskOptions) -> Self {
        *o
    }
}

/// `Box<[u8]>` as one serde byte string (serde's default is a sequence of `u8`s).
mod boxed_bytes {
    use std::fmt;

    use serde::Deserializer;
    use serde::Serializer;
    use serde::de::SeqAccess;
    use serde::de::Visitor;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Box<[u8]>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E>(self, v: &[u8]) -> Result<Box<[u8]>, E> {
                Ok(v.into())
            }

            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Box<[u8]>, E> {
                Ok(v.into_boxed_slice())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Box<[u8]>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out.into_boxed_slice())
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The result or the last error: a task shows one or the other, never both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Output {
    Result(Bytes),
    Error(Box<str>),
}

/// Idempotency key → task id, as a hash table of ids: the key itself is read from the task, so
/// it is stored once. Keys come from clients, so the hash is SipHash with a random key per
/// table (`RandomState`): nobody can choose keys that collide. That is safe for determinism
/// because the table is neither iterated nor serialized: its layout cannot reach the state.
#[derive(Clone, Debug, Default)]
struct KeyIndex {
    table: hashbrown::HashTable<TaskId>,
    hasher: std::hash::RandomState,
}

/// The key of task `id` (empty if it has none, which the index never holds).
fn key_of(tasks: &Table<Task>, id: TaskId) -> &[u8] {
    tasks.get(id).and_then(Task::idempotency_key).unwrap_or_default()
}

impl KeyIndex {
    /// Index every keyed task; two tasks with one key is a corrupt state.
    fn build(tasks: &Table<Task>) -> Result<Self, String> {
        let mut index = Self {
            table: hashbrown::HashTable::with_capacity(tasks.iter().filter(|(_, t)| t.keyed).count()),
            hasher: std::hash::RandomState::new(),
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

    fn get(&self, tasks: &Table<Task>, key: &[u8]) -> Option<TaskId> {
        self.table
            .find(self.hasher.hash_one(key), |&id| key_of(tasks, id) == key)
            .copied()
    }

    /// `id` must be in `tasks` with this key, and the key not yet indexed.
    fn insert(&mut self, tasks: &Table<Task>, key: &[u8], id: TaskId) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hasher.hash_one(key), id, |&id| hasher.hash_one(key_of(tasks, id)));
    }

    fn remove(&mut self, key: &[u8], id: TaskId) {
        if let Ok(entry) = self.table.find_entry(self.hasher.hash_one(key), |&x| x == id) {
            entry.remove();
        }
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Reference-counted interning (of names, of [`TaskOptions`]). Freed slots are recycled
/// (LIFO), which is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Interner<K: Ord> {
    ids: BTreeMap<K, u32>,
    slots: Vec<Slot<K>>,
    free: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slot<K> {
    name: K,
    refs: u64,
}

impl Interner<Box<str>> {
    fn name(&self, id: u32) -> &str {
        self.slots.get(id as usize).map_or("", |s| &s.name)
    }
}

impl<K: Ord + Default + fmt::Debug> Interner<K> {
    fn get<Q: Ord + ?Sized>(&self, name: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
    {
        self.ids.get(name).copied()
    }

    fn value(&self, id: u32) -> Option<&K> {
        self.slots.get(id as usize).map(|s| &s.name)
    }

    /// Interns `name` and takes one reference to it.
    fn acquire<Q: Ord + ?Sized>(&mut self, name: &Q) -> u32
    where
        K: Borrow<Q> + for<'q> From<&'q Q>,
    {
        if let Some(id) = self.get(name) {
            self.add_ref(id);
            return id;
        }
        let slot = Slot {
            name: K::from(name),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) if (id as usize) < self.slots.len() => {
                self.slots[id as usize] = slot;
                id
            }
            _ => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.ids.insert(K::from(name), id);
        id
    }

    fn add_ref(&mut self, id: u32) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    /// Drops one reference; returns true if that freed the slot.
    fn release(&mut self, id: u32) -> bool {
        let Some(s) = self.slots.get_mut(id as usize) else {
            return false;
        };
        if s.refs == 0 {
            return false;
        }
        s.refs -= 1;
        if s.refs > 0 {
            return false;
        }
        let name = std::mem::take(&mut s.name);
        self.ids.remove(&name);
        self.free.push(id);
        true
    }

    /// `expected`: slot → number of references the owner holds.
    fn check(&self, what: &str, expected: &BTreeMap<u32, u64>) -> Result<(), String> {
        let mut live = 0usize;
        for (id, slot) in self.slots.iter().enumerate() {
            let id = id as u32;
            let want = expected.get(&id).copied().unwrap_or(0);
            if slot.refs != want {
                return Err(format!(
                    "{what} slot {id} ({:?}) has {} refs, expected {want}",
                    slot.name, slot.refs
                ));
            }
            if slot.refs > 0 {
                live += 1;
                if self.ids.get(&slot.name) != Some(&id) {
                    return Err(format!(
                        "{what} slot {id} ({:?}) missing from the name map",
                        slot.name
                    ));
                }
            } else if slot.name != K::default() || !self.free.contains(&id) {
                return Err(format!("{what} slot {id} is dead but not cleared and free"));
            }
        }
        if let Some(id) = expected.keys().find(|id| **id as usize >= self.slots.len()) {
            return Err(format!("{what} slot {id} referenced but does not exist"));
        }
        if self.ids.len() != live || self.free.len() + live != self.slots.len() {
            return Err(format!("{what} name map or free list out of sync with slots"));
        }
        Ok(())
    }
}

/// Per-queue data. Lives in [`Index::queues`] at the queue name's interner slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QueueData {
    pending: Pending,
    /// Tasks of this queue by `TaskState as usize`.
    counts: [u64; STATES],
    paused: bool,
}

/// Everything derived from the task table. Kept apart from `tasks` so a `&mut Task` borrowed
/// from the table and `&mut Index` can be used together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Index {
    /// A queue's refs = its tasks + 1 if paused.
    queue_names: Interner<Box<str>>,
    queues: Vec<QueueData>,
    /// A worker's refs = the tasks it holds leased.
    workers: Interner<Box<str>>,
    /// An options slot's refs = the tasks that have those options.
    options: Interner<TaskOptions>,
    /// `(timer_ms, id)` of every task that is not pending.
    timers: BTreeSet<(UnixMs, TaskId)>,
}

impl Index {
    fn options(&self, t: &Task) -> TaskOptions {
        self.options.value(t.options).copied().unwrap_or_default()
    }

    fn acquire_queue(&mut self, name: &str) -> u32 {
        let q = self.queue_names.acquire(name);
        if self.queues.len() <= q as usize {
            self.queues.resize_with(q as usize + 1, QueueData::default);
        }
        q
    }

    fn release_queue(&mut self, q: u32) {
        if self.queue_names.release(q)
            && let Some(data) = self.queues.get_mut(q as usize)
        {
            *data = QueueData::default();
        }
    }

    /// Add a task (in its current state) to the indexes.
    fn link(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_add(1);
            if t.state == TaskState::Pending {
                q.pending.insert(t.priority, id);
            }
        }
        if t.state != TaskState::Pending {
            self.timers.insert((t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.workers.add_ref(t.worker);
        }
    }

    /// Remove a task (in its current state) from the indexes.
    fn unlink(&mut self, id: TaskId, t: &Task) {
        if let Some(q) = self.queues.get_mut(t.queue as usize) {
            let c = &mut q.counts[t.state as usize];
            *c = c.saturating_sub(1);
            if t.state == TaskState::Pending {
                q.pending.remove(t.priority, id);
            }
        }
        if t.state != TaskState::Pending {
            self.timers.remove(&(t.timer_ms, id));
        }
        if t.state == TaskState::Leased {
            self.workers.release(t.worker);
        }
    }

    /// The one way a live task changes state: unlink, update, relink.
    fn set_state(&mut self, id: TaskId, t: &mut Task, to: To, now: UnixMs) {
        self.unlink(id, t);
        (t.state, t.timer_ms, t.worker) = match to {
            To::Pending => (TaskState::Pending, 0, 0),
            To::Leased { worker, deadline } => (TaskState::Leased, deadline, worker),
            To::Retrying { due } => (TaskState::Retrying, due, 0),
            To::Final(state) => (state, now.saturating_add(self.options(t).result_ttl_ms), 0),
        };
        t.updated_ms = now;
        self.link(id, t);
    }

    /// Queue slots a lease (or `leasable`) draws from, in order: unknown and paused ones skipped.
    fn lease_order(&self, queues: &[String]) -> Vec<u32> {
        let ids: Vec<u32> = if queues.is_empty() {
            self.queue_names.ids.values().copied().collect()
        } else {
            queues
                .iter()
                .filter_map(|n| self.queue_names.get(queue_name(n)))
                .collect()
        };
        ids.into_iter()
            .filter(|q| self.queues.get(*q as usize).is_some_and(|d| !d.paused))
            .collect()
    }
}

/// Target of [`Index::set_state`].
#[derive(Clone, Copy)]
enum To {
    Pending,
    Leased { worker: u32, deadline: UnixMs },
    Retrying { due: UnixMs },
    Final(TaskState),
}

fn queue_name(name: &str) -> &str {
    if name.is_empty() { DEFAULT_QUEUE } else { name }
}

/// Delay before retry number `failures` (≥ 1): `backoff_ms * 2^(failures-1)`, capped.
fn backoff_delay(backoff_ms: u64, failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(63);
    backoff_ms.saturating_mul(1u64 << exp).min(MAX_BACKOFF_MS)
}

/// Record a failed attempt and move the task on by the retry rules.
fn fail(
    idx: &mut Index,
    id: TaskId,
    t: &mut Task,
    error: &str,
    retry: bool,
    now: UnixMs,
    effects: &mut ApplyEffects,
) {
    t.failures = t.failures.saturating_add(1);
    t.set_output(Output::Error(error.into()));
    let opts = idx.options(t);
    if retry && t.failures <= opts.max_retries {
        if opts.backoff_ms == 0 {
            idx.set_state(id, t, To::Pending, now);
            effects.became_pending += 1;
        } else {
            let due = now.saturating_add(backoff_delay(opts.backoff_ms, t.failures));
            idx.set_state(id, t, To::Retrying { due }, now);
        }
    } else {
        idx.set_state(id, t, To::Final(TaskState::Dead), now);
        effects.finished.push(id);
    }
}

impl QueueState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one log entry: advance time to `max(now, req.now_ms)` (firing due timers), then
    /// each command in order. Returns one response per command. Never panics on any input.
    pub fn apply(&mut self, req: &Request, effects: &mut ApplyEffects) -> Vec<Response> {
        self.advance(req.now_ms, effects);
        self.grant_standing(effects);
        req.commands
            .iter()
            .map(|cmd| {
                let pending_before = effects.became_pending;
                let response = self.apply_command(cmd, effects);
                self.after_command(cmd, pending_before, effects);
                response
            })
            .collect()
    }

    /// After each command: grant to standing capacity where the command may have made a task
    /// pending (`became_pending` moved from `pending_before`) or changed what stands.
    fn after_command(&mut self, cmd: &Command, pending_before: u64, effects: &mut ApplyEffects) {
        let may_grant = effects.became_pending != pending_before
            || matches!(
                cmd,
                Command::PauseQueue { .. }
                    | Command::Lease {
                        standing_ticket: Some(_),
                        ..
                    }
            );
        if may_grant {
            self.grant_standing(effects);
        }
    }

    /// Move the clock forward to `to` (never back) and fire every timer due by then.
    fn advance(&mut self, to: UnixMs, effects: &mut ApplyEffects) {
        self.now_ms = self.now_ms.max(to);
        self.expire_standing(effects);
        // Each firing moves its task strictly forward in its lifecycle (Leased → Retrying/Pending/
        // Dead, Scheduled/Retrying → Pending, final → gone), so this loop ends even if new timers
        // are already due.
        while let Some(&(due, id)) = self.timers_first() {
            if due > self.now_ms {
                break;
            }
            self.idx.timers.pop_first();
            self.fire(id, effects);
        }
    }

    fn timers_first(&self) -> Option<&(UnixMs, TaskId)> {
        self.idx.timers.first()
    }

    fn fire(&mut self, id: TaskId, effects: &mut ApplyEffects) {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else { return };
        match t.state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.idx.set_state(id, t, To::Pending, now);
                effects.became_pending += 1;
            }
            TaskState::Leased => {
                t.lost_leases = t.lost_leases.saturating_add(1);
                t.set_output(Output::Error(LEASE_EXPIRED_ERROR.into()));
                if t.lost_leases >= MAX_LOST_LEASES {
                    self.idx.set_state(id, t, To::Final(TaskState::Dead), now);
                    effects.finished.push(id);
                } else {
                    self.idx.set_state(id, t, To::Pending, now);
                    effects.became_pending += 1;
                }
            }
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled => self.purge(id),
            TaskState::Pending => {}
        }
    }

    /// Forget a task entirely (its result TTL ran out).
    fn purge(&mut self, id: TaskId) {
        let Some(t) = self.tasks.remove(id) else { return };
        self.idx.unlink(id, &t);
        self.idx.release_queue(t.queue);
        self.idx.options.release(t.options);
        self.task_names.release(t.name);
        if let Some(key) = t.idempotency_key() {
            self.idempotency.remove(key, id);
        }
    }

    fn apply_command(&mut self, cmd: &Command, effects: &mut ApplyEffects) -> Response {
        match cmd {
            Command::Submit { tasks } => {
                Response::Submitted(tasks.iter().map(|spec| self.submit(spec, effects)).collect())
            }
            Command::Lease {
                worker,
                queues,
                max,
                lease_ms,
                standing_ticket,
            } => {
                let grants = self.lease(worker, queues, *max, *lease_ms, effects);
                if let Some(ticket) = standing_ticket {
                    let granted = u32::try_from(grants.len()).unwrap_or(u32::MAX);
                    self.stand(worker, queues, (*max, granted), *lease_ms, *ticket, effects);
                }
                Response::Leased(grants)
            }
            Command::Complete {
                worker: _,
                completions,
            } => Response::Completed(completions.iter().map(|c| self.complete(c, effects)).collect()),
            Command::Heartbeat {
                worker: _,
                leases,
                lease_ms,
            } => Response::Heartbeated(leases.iter().map(|l| self.heartbeat(*l, *lease_ms)).collect()),
            Command::Release { worker: _, leases } => {
                Response::Released(leases.iter().map(|l| self.release(*l, effects)).collect())
            }
            Command::ReleaseWorker { worker } => {
                self.clear_standing(worker, effects);
                Response::ReleasedWorker(self.release_worker(worker, effects))
            }
            Command::ClearStanding { worker } => {
                Response::ClearedStanding(self.clear_standing(worker, effects))
            }
            Command::Cancel { ids } => {
                Response::Cancelled(ids.iter().map(|id| self.cancel(*id, effects)).collect())
            }
            Command::Tick => Response::Ticked,
            Command::PurgeQueue { queue } => Response::Purged(self.purge_queue(queue, effects)),
            Command::AllocateNodeId => {
                let id = self.next_node_id;
                self.next_node_id = self.next_node_id.saturating_add(1);
                Response::NodeId(id)
            }
            Command::PauseQueue { queue, paused } => {
                self.pause_queue(queue, *paused, effects);
                Response::Paused
            }
        }
    }

    fn submit(&mut self, spec: &TaskSpec, effects: &mut ApplyEffects) -> Submitted {
        if let Some(key) = &spec.idempotency_key
            && let Some(id) = self.idempotency.get(&self.tasks, key.as_bytes())
        {
            return Submitted { id, duplicate: true };
        }
        let now = self.now_ms;
        // Unreachable in practice (2^64 submits); saturating keeps apply total.
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let due = spec
            .eta_ms
            .unwrap_or(0)
            .max(spec.countdown_ms.map_or(0, |c| now.saturating_add(c)));
        let (state, timer_ms) = if due > now {
            (TaskState::Scheduled, due)
        } else {
            (TaskState::Pending, 0)
        };
        let key = spec.idempotency_key.as_deref().unwrap_or_default().as_bytes();
        let options = TaskOptions {
            max_retries: spec.max_retries,
            backoff_ms: spec.backoff_ms,
            result_ttl_ms: spec.result_ttl_ms,
            time_limit_ms: spec.time_limit_ms,
        };
        let task = Task {
            data: Task::pack(key, &spec.args),
            output: None,
            created_ms: now,
            updated_ms: now,
            timer_ms,
            name: self.task_names.acquire(spec.name.as_str()),
            queue: self.idx.acquire_queue(queue_name(&spec.queue)),
            options: self.idx.options.acquire(&options),
            worker: 0,
            attempt: 0,
            failures: 0,
            // A key can't reach 4 GiB: a log entry is smaller.
            key_len: u32::try_from(key.len()).unwrap_or(u32::MAX),
            lost_leases: 0,
            priority: spec.priority,
            state,
            keyed: spec.idempotency_key.is_some(),
        };
        self.idx.link(id, &task);
        let keyed = task.keyed;
        self.tasks.insert(id, task);
        if keyed {
            self.idempotency.insert(&self.tasks, key, id);
        }
        if state == TaskState::Pending {
            effects.became_pending += 1;
        }
        Submitted { id, duplicate: false }
    }

    fn lease(
        &mut self,
        worker: &str,
        queues: &[String],
        max: u32,
        lease_ms: u64,
        effects: &mut ApplyEffects,
    ) -> Vec<Grant> {
        let now = self.now_ms;
        let deadline = now.saturating_add(lease_ms);
        let max = max as usize;
        let mut grants = Vec::new();
        if max == 0 {
            return grants;
        }
        // The worker name is interned once for the whole command, held by `hold` meanwhile.
        let mut hold: Option<u32> = None;
        for q in self.idx.lease_order(queues) {
            while grants.len() < max {
                let Some((priority, id)) = self.idx.queues.get(q as usize).and_then(|d| d.pending.first())
                else {
                    break;
                };
                let Some(t) = self.tasks.get_mut(id) else {
                    // Cannot happen while the invariants hold; drop the entry so the loop ends.
                    self.idx.queues[q as usize].pending.remove(priority, id);
                    continue;
                };
                if t.attempt == u32::MAX {
                    t.set_output(Output::Error(ATTEMPTS_EXHAUSTED_ERROR.into()));
                    self.idx.set_state(id, t, To::Final(TaskState::Dead), now);
                    effects.finished.push(id);
                    continue;
                }
                let worker = *hold.get_or_insert_with(|| self.idx.workers.acquire(worker));
                t.attempt += 1;
                self.idx.set_state(id, t, To::Leased { worker, deadline }, now);
                grants.push(Grant {
                    lease: LeaseRef {
                        task: id,
                        attempt: t.attempt,
                    },
                    name: self.task_names.name(t.name).to_owned(),
                    queue: self.idx.queue_names.name(q).to_owned(),
                    args: Bytes::copy_from_slice(t.args()),
                    time_limit_ms: self.idx.options(t).time_limit_ms,
                    lease_deadline_ms: deadline,
                });
            }
        }
        if let Some(w) = hold {
            self.idx.workers.release(w);
        }
        grants
    }

    fn complete(&mut self, c: &Completion, effects: &mut ApplyEffects) -> CompletionResult {
        let now = self.now_ms;
        let id = c.lease.task;
        let Some(t) = self.tasks.get_mut(id) else {
            return CompletionResult::Stale;
        };
        // The attempt fence (a deliberate bug switch may drop it, for the simulator to catch).
        let fenced =
            t.attempt == c.lease.attempt || crate::bugs::active(crate::bugs::Bug::AcceptStaleCompletion);
        if t.state != TaskState::Leased || !fenced {
            return CompletionResult::Stale;
        }
        match &c.outcome {
            Outcome::Success(result) => {
                t.set_output(Output::Result(result.clone()));
                self.idx.set_state(id, t, To::Final(TaskState::Succeeded), now);
                effects.finished.push(id);
            }
            Outcome::Failure { error, retry } => fail(&mut self.idx, id, t, error, *retry, now, effects),
        }
        CompletionResult::Accepted
    }

    fn heartbeat(&mut self, lease: LeaseRef, lease_ms: u64) -> bool {
        let deadline = self.now_ms.saturating_add(lease_ms);
        let Some(t) = self.tasks.get_mut(lease.task) else {
            return false;
        };
        if t.state != TaskState::Leased || t.attempt != lease.attempt {
            return false;
        }
        self.idx.timers.remove(&(t.timer_ms, lease.task));
        t.timer_ms = deadline;
        self.idx.timers.insert((deadline, lease.task));
        true
    }

    fn release(&mut self, lease: LeaseRef, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(lease.task) else {
            return false;
        };
        if t.state != TaskState::Leased || t.attempt != lease.attempt {
            return false;
        }
        self.idx.set_state(lease.task, t, To::Pending, now);
        effects.became_pending += 1;
        true
    }

    fn release_worker(&mut self, worker: &str, effects: &mut ApplyEffects) -> u64 {
        let Some(slot) = self.idx.workers.get(worker) else {
            return 0;
        };
        // Leased tasks are indexed only by deadline: scan the timers (once per pool start).
        let leases: Vec<LeaseRef> = self
            .idx
            .timers
            .iter()
            .filter_map(|(_, id)| {
                let t = self.tasks.get(*id)?;
                (t.state == TaskState::Leased && t.worker == slot).then_some(LeaseRef {
                    task: *id,
                    attempt: t.attempt,
                })
            })
            .collect();
        leases
            .into_iter()
            .map(|l| u64::from(self.release(l, effects)))
            .sum()
    }

    fn cancel(&mut self, id: TaskId, effects: &mut ApplyEffects) -> bool {
        let now = self.now_ms;
        let Some(t) = self.tasks.get_mut(id) else {
            return false;
        };
        if !matches!(
            t.state,
            TaskState::Scheduled | TaskState::Pending | TaskState::Retrying
        ) {
            return false;
        }
        self.idx.set_state(id, t, To::Final(TaskState::Cancelled), now);
        effects.finished.push(id);
        true
    }

    fn purge_queue(&mut self, queue: &str, effects: &mut ApplyEffects) -> u64 {
        let Some(q) = self.idx.queue_names.get(queue_name(queue)) else {
            return 0;
        };
        let Some(data) = self.idx.queues.get(q as usize) else {
            return 0;
        };
        let mut ids: Vec<TaskId> = data.pending.iter().map(|(_, id)| id).collect();
        let waiting = data.counts[TaskState::Scheduled as usize] + data.counts[TaskState::Retrying as usize];
        if waiting > 0 {
            // Scheduled and retrying tasks are only indexed by time: scan the timers. Purging a
            // queue is a rare admin action, so O(timers) is acceptable here.
            ids.extend(self.idx.timers.iter().map(|(_, id)| *id).filter(|id| {
                self.tasks.get(*id).is_some_and(|t| {
                    t.queue == q && matches!(t.state, TaskState::Scheduled | TaskState::Retrying)
                })
            }));
        }
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| u64::from(self.cancel(id, effects)))
            .sum()
    }

    fn pause_queue(&mut self, queue: &str, paused: bool, effects: &mut ApplyEffects) {
        let name = queue_name(queue);
        let existing = self.idx.queue_names.get(name);
        let is_paused = existing
            .and_then(|q| self.idx.queues.get(q as usize))
            .is_some_and(|d| d.paused);
        if paused == is_paused {
            return;
        }
        if paused {
            // Pausing holds a reference so an empty paused queue keeps existing (and shows in stats).
            let q = self.idx.acquire_queue(name);
            self.idx.queues[q as usize].paused = true;
        } else if let Some(q) = existing {
            let data = &mut self.idx.queues[q as usize];
            data.paused = false;
            effects.became_pending += data.pending.len();
            self.idx.release_queue(q);
        }
    }

    /// The machine's clock: the largest `now_ms` applied so far.
    pub fn now_ms(&self) -> UnixMs {
        self.now_ms
    }

    /// One task, if it exists (it may have been purged after its result TTL).
    pub fn task(&self, id: TaskId) -> Option<TaskView> {
        let t = self.tasks.get(id)?;
        Some(TaskView {
            id,
            name: self.task_names.name(t.name).to_owned(),
            queue: self.idx.queue_names.name(t.queue).to_owned(),
            state: t.state,
            attempt: t.attempt,
            max_retries: self.idx.options(t).max_retries,
            result: match t.output() {
                Some(Output::Result(b)) => Some(b.clone()),
                _ => None,
            },
            error: match t.output() {
                Some(Output::Error(e)) => Some(e.to_string()),
                _ => None,
            },
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
        })
    }

    /// The current lease of a task: `(lease, worker, deadline)`, if it is leased.
    pub fn current_lease(&self, id: TaskId) -> Option<(LeaseRef, &str, UnixMs)> {
        let t = self.tasks.get(id).filter(|t| t.state == TaskState::Leased)?;
        Some((
            LeaseRef {
                task: id,
                attempt: t.attempt,
            },
            self.idx.workers.name(t.worker),
            t.timer_ms,
        ))
    }

    /// Number of tasks held (in any state, final ones until purged).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Counts per queue, for every queue that holds a task or was paused.
    pub fn stats(&self) -> BTreeMap<String, QueueCounts> {
        self.idx
            .queue_names
            .ids
            .iter()
            .filter_map(|(name, q)| {
                let d = self.idx.queues.get(*q as usize)?;
                let c = |s: TaskState| d.counts[s as usize];
                Some((
                    name.to_string(),
                    QueueCounts {
                        scheduled: c(TaskState::Scheduled),
                        pending: c(TaskState::Pending),
                        leased: c(TaskState::Leased),
                        retrying: c(TaskState::Retrying),
                        succeeded: c(TaskState::Succeeded),
                        dead: c(TaskState::Dead),
                        cancelled: c(TaskState::Cancelled),
                        paused: d.paused,
                    },
                ))
            })
            .collect()
    }

    /// The earliest time at which a `Tick` would change something (an ETA or retry coming due,
    /// a lease expiring, a result expiring), if any. May be `<= now_ms()` when an entry created
    /// an already-due timer (lease_ms or result TTL of 0): the next apply fires it.
    pub fn next_deadline_ms(&self) -> Option<UnixMs> {
        self.timers_first().map(|(due, _)| *due)
    }

    /// Number of tasks that could be leased now from these queues (all queues when empty).
    pub fn leasable(&self, queues: &[String]) -> u64 {
        let order: BTreeSet<u32> = self.idx.lease_order(queues).into_iter().collect();
        order
            .into_iter()
            .filter_map(|q| self.idx.queues.get(q as usize))
            .map(|d| d.pending.len())
            .sum()
    }

    /// Check that every index agrees with the task table, and that no standing capacity covers
    /// a pending task. O(n log n); for tests and the simulator. Holds between entries and
    /// between commands.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_indexes()?;
        self.check_standing()
    }

    /// The invariants that hold even inside a command (standing capacity is granted at its end).
    fn check_indexes(&self) -> Result<(), String> {
        let mut queue_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut name_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut worker_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut option_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut counts: BTreeMap<u32, [u64; STATES]> = BTreeMap::new();
        let (mut pending, mut timed, mut keyed) = (0u64, 0usize, 0usize);
        if self.next_id == 0 {
            return Err("next_id is 0".into());
        }
        self.tasks.check()?;
        for (id, t) in self.tasks.iter() {
            let err = |m: &str| Err(format!("task {id} ({:?}): {m}", t.state));
            if id == 0 || id >= self.next_id {
                return err("id outside 1..next_id");
            }
            *queue_refs.entry(t.queue).or_default() += 1;
            *name_refs.entry(t.name).or_default() += 1;
            *option_refs.entry(t.options).or_default() += 1;
            counts.entry(t.queue).or_default()[t.state as usize] += 1;
            if t.failures > t.attempt {
                return err("more failures than attempts");
            }
            if t.state == TaskState::Pending {
                pending += 1;
                let in_queue = self
                    .idx
                    .queues
                    .get(t.queue as usize)
                    .is_some_and(|d| d.pending.contains(t.priority, id));
                if !in_queue || t.timer_ms != 0 {
                    return err("pending but not in its queue's pending index (or has a timer)");
                }
            } else {
                timed += 1;
                if !self.idx.timers.contains(&(t.timer_ms, id)) {
                    return err("missing from the timers");
                }
            }
            if t.state == TaskState::Leased {
                *worker_refs.entry(t.worker).or_default() += 1;
            } else if t.worker != 0 {
                return err("holds a worker while not leased");
            }
            let ttl = self.idx.options(t).result_ttl_ms;
            if t.state.is_final() && t.timer_ms != t.updated_ms.saturating_add(ttl) {
                return err("purge time is not finished_at + result_ttl_ms");
            }
            if (t.state == TaskState::Succeeded) != matches!(t.output(), Some(Output::Result(_))) {
                return err("result present iff succeeded");
            }
            if (t.keyed || t.key_len != 0) && t.idempotency_key().is_none() {
                return err("key length without a key, or past the data");
            }
            if let Some(key) = t.idempotency_key() {
                keyed += 1;
                if self.idempotency.get(&self.tasks, key) != Some(id) {
                    return err("idempotency key does not map back to it");
                }
            }
        }
        if self.idempotency.len() != keyed {
            return Err("idempotency map has keys of no live task".into());
        }
        for d in &self.idx.queues {
            d.pending.check()?;
        }
        let indexed_pending: u64 = self.idx.queues.iter().map(|d| d.pending.len()).sum();
        if indexed_pending != pending || self.idx.timers.len() != timed {
            return Err(format!(
                "index sizes: pending {indexed_pending} vs {pending} tasks, timers {} vs {timed} tasks",
                self.idx.timers.len()
            ));
        }
        for (q, d) in self.idx.queues.iter().enumerate() {
            let q = q as u32;
            let want = counts.get(&q).copied().unwrap_or_default();
            if d.counts != want {
                return Err(format!("queue {q} counts {:?}, tasks say {want:?}", d.counts));
            }
            if d.paused {
                *queue_refs.entry(q).or_default() += 1;
            }
            let alive = queue_refs.contains_key(&q);
            if !alive && *d != QueueData::default() {
                return Err(format!("queue slot {q} is dead but not cleared"));
            }
        }
        if self.idx.queues.len() != self.idx.queue_names.slots.len() {
            return Err("queue data and queue names disagree in length".into());
        }
        self.idx.queue_names.check("queue", &queue_refs)?;
        self.task_names.check("task name", &name_refs)?;
        self.idx.workers.check("worker", &worker_refs)?;
        self.idx.options.check("task options", &option_refs)?;
        Ok(())
    }
}
