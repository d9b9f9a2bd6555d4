//! [`Table`]: the task table, dense by id.
//!
//! Task ids are sequential and never reused, and most tasks live for a short while, so the live
//! ids crowd into a window just below `next_id`. The table keeps that window as a ring
//! (`VecDeque<Option<T>>`, slot `i` holds id `base + i`): a lookup is an index, a task costs its
//! record and no tree node. A task that outlives the window (scheduled a week ahead, a result
//! kept for a day) must not pin the ring's front while millions of newer tasks come and go, so
//! one deterministic rule bounds the ring: **after every change, while fewer than half of the
//! ring's slots are live, its front task moves to `sparse`**, a `BTreeMap` of such stragglers
//! (all below `base`), and the dead slots after it are dropped. Each task moves at most once,
//! so the rule costs O(1) amortized, and memory stays within about two ring slots per live task
//! plus a tree node per straggler. The ring's capacity is given back when it drains.
//!
//! Where a task sits (ring or side table) is not part of the state: equality and serialization
//! see only `(id, task)` pairs in id order (serialized like `BTreeMap<TaskId, T>`), so replicas
//! whose tables split differently (one rebuilt from a snapshot) compare and encode the same.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use serde::de::MapAccess;
use serde::de::Visitor;
use serde::ser::SerializeMap;

use super::TaskId;

/// Below this capacity the ring's memory is never given back.
const MIN_CAPACITY: usize = 1024;

/// Tasks by id: a ring over the recent ids plus a side table of long-lived older ones.
#[derive(Clone)]
pub(crate) struct Table<T> {
    /// Id of `ring[0]`; every id in `sparse` is below it.
    base: TaskId,
    /// Empty, or both ends are `Some`.
    ring: VecDeque<Option<T>>,
    /// Number of `Some` slots in `ring`; `2 * ring_live >= ring.len()`.
    ring_live: usize,
    sparse: BTreeMap<TaskId, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            base: 0,
            ring: VecDeque::new(),
            ring_live: 0,
            sparse: BTreeMap::new(),
        }
    }
}

impl<T> Table<T> {
    pub(crate) fn len(&self) -> usize {
        self.ring_live + self.sparse.len()
    }

    fn slot(&self, id: TaskId) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.ring.len()).then_some(i)
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&T> {
        match self.slot(id) {
            Some(i) => self.ring[i].as_ref(),
            None if id < self.base => self.sparse.get(&id),
            None => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut T> {
        match self.slot(id) {
            Some(i) => self.ring[i].as_mut(),
            None if id < self.base => self.sparse.get_mut(&id),
            None => None,
        }
    }

    /// Insert or replace. Ids at or past the ring's end append (the usual case: a new id);
    /// an id below the ring goes to the side table.
    pub(crate) fn insert(&mut self, id: TaskId, value: T) {
        if let Some(i) = self.slot(id) {
            if self.ring[i].is_none() {
                self.ring_live += 1;
            }
            self.ring[i] = Some(value);
            return;
        }
        if id < self.base {
            self.sparse.insert(id, value);
            return;
        }
        if self.ring.is_empty() {
            self.base = id;
        } else {
            // Make room by the same rule before growing, so a gap never allocates dead slots
            // beyond twice the live ones (only a decode or a run of removals at the back makes
            // gaps: new ids are consecutive).
            while let Some(&Some(_)) = self.ring.front()
                && ring_len_for(self.base, id) > 2 * (self.ring_live + 1)
            {
                self.evict_front();
            }
            if self.ring.is_empty() {
                self.base = id;
            }
        }
        let len = ring_len_for(self.base, id);
        self.ring.resize_with(len - 1, || None);
        self.ring.push_back(Some(value));
        self.ring_live += 1;
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<T> {
        let Some(i) = self.slot(id) else {
            return if id < self.base {
                self.sparse.remove(&id)
            } else {
                None
            };
        };
        let value = self.ring[i].take()?;
        self.ring_live -= 1;
        self.trim();
        while 2 * self.ring_live < self.ring.len() {
            self.evict_front();
        }
        self.shrink();
        Some(value)
    }

    /// Move the front task to the side table and drop the dead slots after it.
    fn evict_front(&mut self) {
        if let Some(Some(value)) = self.ring.pop_front() {
            self.sparse.insert(self.base, value);
            self.ring_live -= 1;
        }
        self.base += 1;
        self.trim();
    }

    /// Drop dead slots at both ends.
    fn trim(&mut self) {
        while let Some(None) = self.ring.front() {
            self.ring.pop_front();
            self.base += 1;
        }
        while let Some(None) = self.ring.back() {
            self.ring.pop_back();
        }
    }

    /// Give memory back once the ring uses under a quarter of it (amortized O(1)).
    fn shrink(&mut self) {
        let cap = self.ring.capacity();
        if cap > MIN_CAPACITY && self.ring.len() < cap / 4 {
            self.ring.shrink_to((self.ring.len() * 2).max(MIN_CAPACITY));
        }
    }

    /// Every `(id, value)` in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &T)> {
        let ring = self
            .ring
            .iter()
            .zip(self.base..)
            .filter_map(|(v, id)| v.as_ref().map(|v| (id, v)));
        self.sparse.iter().map(|(id, v)| (*id, v)).chain(ring)
    }

    /// Every `(id, value)` with `id < below`, newest (highest id) first, lazily: a caller that
    /// stops after `n` items has touched `n` items plus the dead ring slots between them.
    pub(crate) fn iter_below(&self, below: TaskId) -> impl Iterator<Item = (TaskId, &T)> {
        let in_ring = usize::try_from(below.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.ring.len());
        let ring = self
            .ring
            .range(..in_ring)
            .enumerate()
            .rev()
            .filter_map(|(i, v)| v.as_ref().map(|v| (self.base + i as TaskId, v)));
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

    /// Ring slots in use and their capacity (live or not), and side-table entries: for tests of
    /// the memory bound.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, usize, usize) {
        (self.ring.len(), self.ring.capacity(), self.sparse.len())
    }

    /// The structural rules of the table (not of the tasks).
    pub(crate) fn check(&self) -> Result<(), String> {
        let live = self.ring.iter().filter(|v| v.is_some()).count();
        if live != self.ring_live {
            return Err(format!(
                "task table counts {} live ring slots, holds {live}",
                self.ring_live
            ));
        }
        if matches!(self.ring.front(), Some(None)) || matches!(self.ring.back(), Some(None)) {
            return Err("task table ring starts or ends with a dead slot".into());
        }
        if 2 * self.ring_live < self.ring.len() {
            return Err(format!(
                "task table ring less than half live: {live} of {}",
                self.ring.len()
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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
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
mod tests {
    use super::*;

    fn check<T: fmt::Debug + PartialEq + Clone>(t: &Table<T>, model: &BTreeMap<TaskId, T>) {
        t.check().unwrap();
        assert_eq!(t.len(), model.len());
        let got: Vec<(TaskId, T)> = t.iter().map(|(id, v)| (id, v.clone())).collect();
        let want: Vec<(TaskId, T)> = model.iter().map(|(id, v)| (*id, v.clone())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn behaves_like_a_map() {
        let mut t = Table::default();
        let mut m = BTreeMap::new();
        // A fixed pseudo-random order of removals over sequential inserts.
        let mut x: u64 = 7;
        for id in 1..=2000u64 {
            t.insert(id, id * 10);
            m.insert(id, id * 10);
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let victim = 1 + (x >> 33) % id;
            assert_eq!(t.remove(victim), m.remove(&victim));
            assert_eq!(t.get(victim), None);
            if id % 97 == 0 {
                check(&t, &m);
            }
        }
        for id in [0, 5, 1999, 2000, 2001, u64::MAX] {
            assert_eq!(t.get(id), m.get(&id));
        }
        *t.get_mut(2000).unwrap() = 1;
        m.insert(2000, 1);
        check(&t, &m);
        while let Some((&id, _)) = m.iter().next() {
            assert_eq!(t.remove(id), m.remove(&id));
        }
        check(&t, &m);
        assert_eq!(t.footprint().0, 0);
    }

    /// One old task lives on while millions of newer ones come and go: the ring must not keep
    /// every slot between it and the newest id.
    #[test]
    fn memory_stays_bounded_with_a_long_lived_task() {
        let mut t = Table::default();
        t.insert(1, 1u64);
        let mut max_cap = 0;
        for id in 2..=1_000_000u64 {
            t.insert(id, id);
            // 100 tasks in flight at a time (besides task 1).
            if id > 101 {
                assert_eq!(t.remove(id - 100), Some(id - 100));
            }
            max_cap = max_cap.max(t.footprint().1);
        }
        let (ring, _, sparse) = t.footprint();
        assert_eq!(t.len(), 101);
        assert_eq!(t.get(1), Some(&1));
        assert!(ring <= 2 * 101 && sparse == 1, "ring {ring}, side table {sparse}");
        assert!(max_cap <= 4 * MIN_CAPACITY, "ring capacity reached {max_cap}");
        // A drained ring gives its memory back.
        let mut t = Table::default();
        for id in 1..=100_000u64 {
            t.insert(id, id);
        }
        for id in 1..100_000u64 {
            t.remove(id);
        }
        assert!(
            t.footprint().1 <= 2 * MIN_CAPACITY,
            "capacity {}",
            t.footprint().1
        );
        t.check().unwrap();
    }

    #[test]
    fn gaps_do_not_allocate_dead_slots() {
        let mut t = Table::default();
        t.insert(1, ());
        t.insert(1_000_000_000, ());
        let (ring, cap, sparse) = t.footprint();
        assert!(ring == 1 && sparse == 1 && cap < 1024, "{ring} {cap} {sparse}");
        t.check().unwrap();
    }

    #[test]
    fn serializes_like_a_btreemap_whatever_the_split() {
        let mut a = Table::default();
        let mut m = BTreeMap::new();
        for id in 1..=300u64 {
            a.insert(id, id as u32);
            m.insert(id, id as u32);
        }
        for id in 2..=250u64 {
            a.remove(id);
            m.remove(&id);
        }
        assert_eq!(a.footprint().2, 1, "task 1 moved to the side table");
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&a, cfg).unwrap();
        assert_eq!(bytes, bincode::serde::encode_to_vec(&m, cfg).unwrap());
        let (b, _): (Table<u32>, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(a, b);
        check(&b, &m);
        let reversed: BTreeMap<u64, u32> = BTreeMap::from([(1, 1)]);
        let mut bad = bincode::serde::encode_to_vec(&reversed, cfg).unwrap();
        bad[0] = 2; // two entries...
        bad.extend_from_slice(&bincode::serde::encode_to_vec((1u64, 1u32), cfg).unwrap()); // ...the same id twice
        assert!(bincode::serde::decode_from_slice::<Table<u32>, _>(&bad, cfg).is_err());
    }
}
