//! Lanes: where the pending tasks that a limit may hold back wait, and the fair turns between
//! them (the rules are in `limits.rs`).
//!
//! A pending task with a concurrency key or a limited name waits in the lane of its (queue,
//! key, limited name), not in its queue's plain pending set, so a held-back task never sits in
//! front of one that may go. A queue with lanes has a **ring**: its lanes that may be granted,
//! ordered by turn (`(turn, lane)`), plus the turn of its plain tasks. A grant takes from the
//! lane (or the plain set) with the lowest turn, which then gets the next turn number; a new
//! lane gets the next turn number too. So every lane with pending tasks is served once before
//! any is served twice: a burst of 10,000 tasks of one key delays another key's task by at
//! most one grant, and each grant costs O(log n).
//!
//! A lane at the head of its ring whose limit holds it is **parked** on that limit (taken out
//! of the ring, lazily, when a grant finds it), and put back when the limit frees: a task of
//! the limit leaves `Leased`, its bucket's wake fires, or a rule changes. A lane exists while
//! it has pending tasks; it is in its ring or parked, never both.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::Index;
use super::Pending;
use super::Task;
use super::limits::Flow;
use super::limits::Held;
use crate::queue::command::*;

mod check;

/// A limit that holds lanes back (or, for `Queue`, a whole queue).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum Holder {
    Queue(Box<str>),
    Task(Box<str>),
    /// A key's own rule, by its rate (its concurrency parks on `Key`).
    KeyRule(Box<str>),
    /// A key's concurrency (from its rule or `key:*`), by key id.
    Key(u64),
}

/// `(queue slot, key id, limited name slot)`.
type LaneKey = (u32, Option<u64>, Option<u32>);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lane {
    key: LaneKey,
    pub(super) pending: Pending,
    turn: u64,
    /// `None`: in its ring.
    parked: Option<Holder>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ring {
    lanes: BTreeSet<(u64, u64)>,
    plain_turn: u64,
    /// Lanes of the queue, in the ring or parked.
    count: u64,
}

/// A concurrency key carried by live tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeyState {
    name: Box<str>,
    /// Live tasks carrying it.
    refs: u64,
    running: u64,
    parked: BTreeSet<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lanes {
    lanes: BTreeMap<u64, Lane>,
    lane_ids: BTreeMap<LaneKey, u64>,
    next_lane: u64,
    rings: BTreeMap<u32, Ring>,
    next_turn: u64,
    keys: BTreeMap<u64, KeyState>,
    key_ids: BTreeMap<Box<str>, u64>,
    next_key: u64,
    /// Keyed tasks only: task → key id, from submit to purge.
    task_keys: BTreeMap<TaskId, u64>,
}

impl Lanes {
    pub(super) fn is_empty(&self) -> bool {
        self.task_keys.is_empty() && self.lanes.is_empty()
    }

    /// Pending tasks in all lanes.
    pub(super) fn len(&self) -> u64 {
        self.lanes.values().map(|l| l.pending.len()).sum()
    }

    /// Whether a lane of queue `q` holds pending task `id` (O(lanes of `q`): for checks).
    pub(super) fn holds(&self, q: u32, priority: u8, id: TaskId) -> bool {
        self.lane_ids
            .range((q, None, None)..=(q, Some(u64::MAX), Some(u32::MAX)))
            .filter_map(|(_, l)| self.lanes.get(l))
            .any(|l| l.pending.contains(priority, id))
    }

    /// Pending tasks in the lanes of queue `q`.
    pub(super) fn pending_of_queue(&self, q: u32) -> u64 {
        self.lane_ids
            .range((q, None, None)..=(q, Some(u64::MAX), Some(u32::MAX)))
            .filter_map(|(_, id)| self.lanes.get(id))
            .map(|l| l.pending.len())
            .sum()
    }

    /// Pending tasks of these lanes.
    pub(super) fn pending_of(&self, lanes: &BTreeSet<u64>) -> u64 {
        lanes
            .iter()
            .filter_map(|id| self.lanes.get(id))
            .map(|l| l.pending.len())
            .sum()
    }

    /// `(running, held by its concurrency)` of key `name`.
    pub(super) fn key_counts(&self, name: &str) -> (u64, u64) {
        self.key_ids
            .get(name)
            .and_then(|k| self.keys.get(k))
            .map_or((0, 0), |k| (k.running, self.pending_of(&k.parked)))
    }

    /// `(running, held)` summed over the keys that `key:*` covers (`own`: whether a key has a
    /// concurrency of its own).
    pub(super) fn unruled_key_counts(&self, own: impl Fn(&str) -> bool) -> (u64, u64) {
        self.keys
            .values()
            .filter(|k| !own(&k.name))
            .fold((0, 0), |(r, h), k| {
                (r + k.running, h + self.pending_of(&k.parked))
            })
    }

    /// Ids of the pending tasks in the lanes of queue `q` (for `PurgeQueue`).
    pub(super) fn pending_ids(&self, q: u32) -> Vec<TaskId> {
        self.lane_ids
            .range((q, None, None)..=(q, Some(u64::MAX), Some(u32::MAX)))
            .filter_map(|(_, id)| self.lanes.get(id))
            .flat_map(|l| l.pending.iter().map(|(_, id)| id))
            .collect()
    }

    /// Whether queue `q`'s ring has a lane that is not parked (it may be granted, or be found
    /// held and parked by the next grant).
    pub(super) fn ring_live(&self, q: u32) -> bool {
        self.rings.get(&q).is_some_and(|r| !r.lanes.is_empty())
    }

    /// A submit's key: the task carries `key` until it is purged.
    pub(super) fn attach_key(&mut self, id: TaskId, key: &str) {
        let k = match self.key_ids.get(key) {
            Some(k) => *k,
            None => {
                let k = self.next_key;
                self.next_key = self.next_key.saturating_add(1);
                self.key_ids.insert(key.into(), k);
                let state = KeyState {
                    name: key.into(),
                    refs: 0,
                    running: 0,
                    parked: BTreeSet::new(),
                };
                self.keys.insert(k, state);
                k
            }
        };
        if let Some(s) = self.keys.get_mut(&k) {
            s.refs += 1;
        }
        self.task_keys.insert(id, k);
    }

    /// A task's concurrency key, if it carries one.
    pub(super) fn key_of(&self, id: TaskId) -> Option<&str> {
        let k = self.task_keys.get(&id)?;
        self.keys.get(k).map(|s| &*s.name)
    }

    /// A purged task lets its key go (after it was unlinked).
    pub(super) fn detach_key(&mut self, id: TaskId) {
        if self.task_keys.is_empty() {
            return;
        }
        let Some(k) = self.task_keys.remove(&id) else {
            return;
        };
        let gone = self.keys.get_mut(&k).is_some_and(|s| {
            s.refs = s.refs.saturating_sub(1);
            s.refs == 0
        });
        if gone && let Some(s) = self.keys.remove(&k) {
            self.key_ids.remove(&s.name);
        }
    }
}

impl Flow {
    /// The lane a pending task `t` waits in, if not its queue's plain set.
    fn lane_key(&self, id: TaskId, t: &Task) -> Option<LaneKey> {
        let key = if self.lanes.task_keys.is_empty() {
            None
        } else {
            self.lanes.task_keys.get(&id).copied()
        };
        let name =
            (!self.limited_names.is_empty() && self.limited_names.contains_key(&t.name)).then_some(t.name);
        (key.is_some() || name.is_some()).then_some((t.queue, key, name))
    }

    fn key_cap(&self, k: &KeyState) -> Option<u32> {
        self.key_rules
            .get(&k.name)
            .and_then(|r| r.rule.concurrency)
            .or(self.any_key)
    }

    /// What holds lane `lane` back now, if anything.
    fn lane_holder(&self, lane: &Lane, now: UnixMs) -> Option<(Holder, Held)> {
        let (_, key, name) = lane.key;
        if let Some(name) = name.and_then(|n| self.limited_names.get(&n))
            && let Some(r) = self.task_rules.get(name)
            && let Some(held) = r.holds(r.running, now)
        {
            return Some((Holder::Task(name.clone()), held));
        }
        let k = self.lanes.keys.get(&key?)?;
        let running = if crate::bugs::active(crate::bugs::Bug::LimitOffByOne) {
            k.running.saturating_sub(1)
        } else {
            k.running
        };
        if self.key_cap(k).is_some_and(|c| running >= u64::from(c)) {
            return Some((Holder::Key(key?), Held::Running));
        }
        let r = self.key_rules.get(&k.name)?;
        match r.holds(0, now) {
            Some(Held::Rate(at)) => Some((Holder::KeyRule(k.name.clone()), Held::Rate(at))),
            _ => None,
        }
    }

    fn parked_set(&mut self, holder: &Holder) -> Option<&mut BTreeSet<u64>> {
        match holder {
            Holder::Queue(_) => None,
            Holder::Task(n) => self.task_rules.get_mut(n).map(|r| &mut r.parked),
            Holder::KeyRule(n) => self.key_rules.get_mut(n).map(|r| &mut r.parked),
            Holder::Key(k) => self.lanes.keys.get_mut(k).map(|s| &mut s.parked),
        }
    }
}

impl Index {
    /// `link` of a pending task: into its lane if it has one (returns whether it did).
    pub(super) fn place(&mut self, id: TaskId, t: &Task) -> bool {
        let Some(key) = self.flow.lane_key(id, t) else {
            return false;
        };
        let lanes = &mut self.flow.lanes;
        let lid = match lanes.lane_ids.get(&key) {
            Some(l) => *l,
            None => {
                let lid = lanes.next_lane;
                lanes.next_lane = lanes.next_lane.saturating_add(1);
                let turn = lanes.next_turn;
                lanes.next_turn = lanes.next_turn.saturating_add(1);
                lanes.lane_ids.insert(key, lid);
                let lane = Lane {
                    key,
                    pending: Pending::default(),
                    turn,
                    parked: None,
                };
                lanes.lanes.insert(lid, lane);
                let ring = lanes.rings.entry(key.0).or_default();
                ring.lanes.insert((turn, lid));
                ring.count += 1;
                lid
            }
        };
        if let Some(l) = lanes.lanes.get_mut(&lid) {
            l.pending.insert(t.priority, id);
        }
        true
    }

    /// `unlink` of a pending task: out of its lane if it has one (returns whether it did); an
    /// emptied lane goes.
    pub(super) fn unplace(&mut self, id: TaskId, t: &Task) -> bool {
        let Some(key) = self.flow.lane_key(id, t) else {
            return false;
        };
        let Some(&lid) = self.flow.lanes.lane_ids.get(&key) else {
            return true;
        };
        let lanes = &mut self.flow.lanes;
        let Some(lane) = lanes.lanes.get_mut(&lid) else {
            return true;
        };
        lane.pending.remove(t.priority, id);
        if !lane.pending.is_empty() {
            return true;
        }
        let Some(lane) = lanes.lanes.remove(&lid) else {
            return true;
        };
        lanes.lane_ids.remove(&key);
        match &lane.parked {
            Some(h) => {
                if let Some(set) = self.flow.parked_set(h) {
                    set.remove(&lid);
                }
            }
            None => {
                if let Some(r) = self.flow.lanes.rings.get_mut(&key.0) {
                    r.lanes.remove(&(lane.turn, lid));
                }
            }
        }
        let lanes = &mut self.flow.lanes;
        if let Some(r) = lanes.rings.get_mut(&key.0) {
            r.count = r.count.saturating_sub(1);
            if r.count == 0 {
                lanes.rings.remove(&key.0);
            }
        }
        true
    }

    /// `link` of a leased task: count it against its key and name.
    pub(super) fn started(&mut self, id: TaskId, t: &Task) {
        if let Some(k) = self.flow.lanes.task_keys.get(&id)
            && let Some(s) = self.flow.lanes.keys.get_mut(k)
        {
            s.running += 1;
        }
        if let Some(name) = self.flow.limited_names.get(&t.name)
            && let Some(r) = self.flow.task_rules.get_mut(name)
        {
            r.running += 1;
        }
    }

    /// `unlink` of a leased task: uncount it, and wake what its limits held if they now allow.
    pub(super) fn stopped(&mut self, id: TaskId, t: &Task) {
        if let Some(&k) = self.flow.lanes.task_keys.get(&id)
            && let Some(s) = self.flow.lanes.keys.get_mut(&k)
        {
            s.running = s.running.saturating_sub(1);
            let (running, any) = (s.running, !s.parked.is_empty());
            let cap = self.flow.lanes.keys.get(&k).and_then(|s| self.flow.key_cap(s));
            if any && cap.is_none_or(|c| running < u64::from(c)) {
                self.release_holder(&Holder::Key(k));
            }
        }
        if let Some(name) = self.flow.limited_names.get(&t.name).cloned()
            && let Some(r) = self.flow.task_rules.get_mut(&name)
        {
            r.running = r.running.saturating_sub(1);
            if !r.parked.is_empty() && r.rule.concurrency.is_none_or(|c| r.running < u64::from(c)) {
                self.release_holder(&Holder::Task(name));
            }
        }
        if self
            .queue_rule(t.queue)
            .is_some_and(|r| r.rule.concurrency.is_some())
        {
            // The queue may have room again: a signal, re-checked when granted.
            self.flow.woke += 1;
        }
    }

    /// Put every lane `holder` parked back in its ring (a queue holder: signal its tasks).
    pub(super) fn release_holder(&mut self, holder: &Holder) {
        if let Holder::Queue(name) = holder {
            let q = self.queue_names.get(name);
            let n = q
                .and_then(|q| self.queues.get(q as usize))
                .map_or(0, |d| d.pending.len());
            self.flow.woke += n + q.map_or(0, |q| self.flow.lanes.pending_of_queue(q));
            return;
        }
        let parked = self
            .flow
            .parked_set(holder)
            .map(std::mem::take)
            .unwrap_or_default();
        for lid in parked {
            self.unpark(lid);
        }
    }

    /// Put a parked lane back in its ring (its holder's set already let it go).
    pub(super) fn unpark(&mut self, lid: u64) {
        let lanes = &mut self.flow.lanes;
        let Some(lane) = lanes.lanes.get_mut(&lid) else {
            return;
        };
        if lane.parked.take().is_none() {
            return;
        }
        self.flow.woke += lane.pending.len();
        if let Some(r) = lanes.rings.get_mut(&lane.key.0) {
            r.lanes.insert((lane.turn, lid));
        }
    }

    /// Every parked lane back in its ring (a rule changed: each is re-checked when granted).
    pub(super) fn unpark_all(&mut self) {
        for r in self.flow.task_rules.values_mut() {
            r.parked.clear();
        }
        for r in self.flow.key_rules.values_mut() {
            r.parked.clear();
        }
        for k in self.flow.lanes.keys.values_mut() {
            k.parked.clear();
        }
        let parked: Vec<u64> = self
            .flow
            .lanes
            .lanes
            .iter()
            .filter(|(_, l)| l.parked.is_some())
            .map(|(id, _)| *id)
            .collect();
        for lid in parked {
            self.unpark(lid);
        }
        self.flow.woke += 1;
    }

    /// The next task a lease takes from queue `q` now: `(priority, id)`, or none if the queue
    /// is empty or every task it has is held back. Parks the held lanes it meets.
    pub(super) fn next_grant(&mut self, q: u32, now: UnixMs) -> Option<(u8, TaskId)> {
        let plain = self.queues.get(q as usize)?.pending.first();
        if self.flow.is_idle() {
            return plain;
        }
        if !self.queue_open(q, now) {
            return None;
        }
        loop {
            let Some(ring) = self.flow.lanes.rings.get(&q) else {
                return plain;
            };
            let Some(&(turn, lid)) = ring.lanes.first() else {
                return plain;
            };
            if plain.is_some() && ring.plain_turn <= turn {
                return plain;
            }
            let lane = self.flow.lanes.lanes.get(&lid)?;
            let Some((holder, held)) = self.flow.lane_holder(lane, now) else {
                return lane.pending.first();
            };
            // Parked: out of the ring until its holder frees.
            if let Some(r) = self.flow.lanes.rings.get_mut(&q) {
                r.lanes.remove(&(turn, lid));
            }
            if let Some(l) = self.flow.lanes.lanes.get_mut(&lid) {
                l.parked = Some(holder.clone());
            }
            if let Some(set) = self.flow.parked_set(&holder) {
                set.insert(lid);
            }
            if let Held::Rate(at) = held {
                self.flow.wake_at(holder, at);
            }
        }
    }

    /// After `next_grant`'s task `id` of queue `q` was leased (`t`): take its limits' tokens
    /// and give its lane (or the queue's plain tasks) the next turn.
    pub(super) fn granted(&mut self, q: u32, id: TaskId, t: &Task, now: UnixMs) {
        if self.flow.is_idle() {
            return;
        }
        let flow = &mut self.flow;
        if let Some(name) = flow.limited_queues.get(&q).cloned()
            && let Some(r) = flow.queue_rules.get_mut(&name)
        {
            r.take(now);
            // A queue its bucket closes is skipped, not parked: wake it when a token is back,
            // or tasks held only by it would wait for an unrelated entry (standing capacity
            // never tries a closed queue).
            if let Some(Held::Rate(at)) = r.holds(0, now) {
                flow.wake_at(Holder::Queue(name), at);
            }
        }
        if let Some(r) = flow
            .limited_names
            .get(&t.name)
            .and_then(|n| flow.task_rules.get_mut(n))
        {
            r.take(now);
        }
        if let Some(k) = flow.lanes.task_keys.get(&id).and_then(|k| flow.lanes.keys.get(k))
            && let Some(r) = flow.key_rules.get_mut(&k.name)
        {
            r.take(now);
        }
        let lane = flow.lane_key(id, t);
        let lanes = &mut flow.lanes;
        let Some(ring) = lanes.rings.get_mut(&q) else {
            return;
        };
        let turn = lanes.next_turn;
        lanes.next_turn = lanes.next_turn.saturating_add(1);
        match lane.map(|k| lanes.lane_ids.get(&k)) {
            None => ring.plain_turn = turn,
            // Its last task: the lane is gone.
            Some(None) => {}
            Some(Some(lid)) => {
                if let Some(l) = lanes.lanes.get_mut(lid)
                    && l.parked.is_none()
                    && ring.lanes.remove(&(l.turn, *lid))
                {
                    l.turn = turn;
                    ring.lanes.insert((turn, *lid));
                }
            }
        }
    }
}
