//! [`CowMap`]: a map by task id whose clone shares its chunks, for the attempt histories.
//!
//! The histories grow with every task that ran and is still held (a finished task keeps its
//! history until its result's TTL purges it), so the snapshot's freeze (`frozen.rs`) must not
//! copy them entry by entry. The map is cut by id into chunks of [`SPAN`] ids, each a
//! `BTreeMap` behind an [`Arc`] and written through [`Arc::make_mut`]: a clone copies one
//! pointer per chunk that holds a history, and an apply that then writes to a chunk the clone
//! still holds copies that chunk once (its histories included), after which it writes in place
//! again. The writes after a freeze land on few chunks (grants and completions on the newest
//! ids, purges on the oldest held ones), so a snapshot costs a few chunk copies, not a copy
//! of every history.
//!
//! Why not the task table's ring (`table.rs`): histories are sparse among ids (a pending or
//! scheduled task has none), and the ring sends entries to its side table (a plain `BTreeMap`,
//! cloned whole) whenever under half its slots are live. Why not a persistent map (`imbl`'s
//! `OrdMap`, O(1) clone): it pays a path copy or a refcount check per node on every write and
//! a new dependency, while here each write is two `BTreeMap` steps (the outer one over a few
//! chunks) and one refcount check, about what the single `BTreeMap` cost, and the clone is
//! O(chunks) — ~1,000 pointers for a million held histories.
//!
//! Memory: the same `BTreeMap` entry per history as before, plus per chunk its `Arc` and outer
//! map slot (~50 B per 1,024 ids). A history alone in its chunk pays a `BTreeMap` leaf of its
//! own (a few hundred bytes): only when the ids around it are gone or never ran.
//!
//! Which chunk holds an entry is not part of the state: equality and serialization see only
//! `(id, value)` pairs in id order, serialized exactly like `BTreeMap<TaskId, V>` (snapshot
//! format 11's bytes are unchanged).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
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

use crate::queue::command::TaskId;

/// Ids per chunk: the unit a clone shares and a write after it copies.
pub(crate) const SPAN: TaskId = 1024;

/// Values by task id in `Arc`-shared chunks of [`SPAN`] ids.
#[derive(Clone)]
pub(crate) struct CowMap<V> {
    /// Chunk number (`id / SPAN`) → its entries; no chunk is empty.
    chunks: BTreeMap<TaskId, Arc<BTreeMap<TaskId, V>>>,
    len: usize,
}

impl<V> Default for CowMap<V> {
    fn default() -> Self {
        Self {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> CowMap<V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&V> {
        self.chunks.get(&(id / SPAN))?.get(&id)
    }

    /// Every `(id, value)` in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &V)> {
        self.chunks
            .values()
            .flat_map(|c| c.iter().map(|(id, v)| (*id, v)))
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Chunks this map shares with `other` (the same allocation): for tests of the clone.
    #[cfg(test)]
    pub(crate) fn shared_chunks(&self, other: &Self) -> usize {
        self.chunks
            .iter()
            .filter(|(k, c)| other.chunks.get(k).is_some_and(|o| Arc::ptr_eq(c, o)))
            .count()
    }

    /// The structural rules: every entry in its chunk, no empty chunk, the count right.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut n = 0;
        for (k, c) in &self.chunks {
            if c.is_empty() {
                return Err(format!("attempt history chunk {k} is empty"));
            }
            if let Some(id) = c.keys().find(|id| *id / SPAN != *k) {
                return Err(format!("attempt history of task {id} in chunk {k}"));
            }
            n += c.len();
        }
        if n != self.len {
            return Err(format!("attempt histories counted {}, held {n}", self.len));
        }
        Ok(())
    }
}

impl<V: Clone> CowMap<V> {
    /// The value of `id`, made writable: its chunk is copied first if a clone shares it. A miss
    /// copies nothing.
    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut V> {
        let chunk = self.chunks.get_mut(&(id / SPAN))?;
        if !chunk.contains_key(&id) {
            return None;
        }
        Arc::make_mut(chunk).get_mut(&id)
    }

    /// Insert or replace; the old value if any.
    pub(crate) fn insert(&mut self, id: TaskId, value: V) -> Option<V> {
        let chunk = self.chunks.entry(id / SPAN).or_default();
        let old = Arc::make_mut(chunk).insert(id, value);
        self.len += usize::from(old.is_none());
        old
    }

    /// Remove `id`'s value; a miss copies nothing, and a chunk left empty goes.
    pub(crate) fn remove(&mut self, id: TaskId) -> Option<V> {
        let Entry::Occupied(mut chunk) = self.chunks.entry(id / SPAN) else {
            return None;
        };
        if !chunk.get().contains_key(&id) {
            return None;
        }
        let value = Arc::make_mut(chunk.get_mut()).remove(&id);
        if chunk.get().is_empty() {
            chunk.remove();
        }
        self.len -= 1;
        value
    }
}

impl<V: PartialEq> PartialEq for CowMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<V: Eq> Eq for CowMap<V> {}

impl<V: fmt::Debug> fmt::Debug for CowMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a `BTreeMap<TaskId, V>`: the length, then the entries in id order.
impl<V: Serialize> Serialize for CowMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len))?;
        for (id, v) in self.iter() {
            map.serialize_entry(&id, v)?;
        }
        map.end()
    }
}

/// As a `BTreeMap<TaskId, V>` reads (a repeated id keeps its last value).
impl<'de, V: Deserialize<'de> + Clone> Deserialize<'de> for CowMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de> + Clone> Visitor<'de> for Vis<V> {
            type Value = CowMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map by task id")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<CowMap<V>, A::Error> {
                let mut map = CowMap::default();
                while let Some((id, v)) = access.next_entry::<TaskId, V>()? {
                    map.insert(id, v);
                }
                Ok(map)
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(TaskId, u32),
        Remove(TaskId),
        Bump(TaskId),
        Freeze,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Ids over a few chunks, so that chunks fill, empty and are shared.
        let id = 0..4 * SPAN;
        prop_oneof![
            4 => (id.clone(), any::<u32>()).prop_map(|(i, v)| Op::Insert(i, v)),
            2 => id.clone().prop_map(Op::Remove),
            2 => id.prop_map(Op::Bump),
            1 => Just(Op::Freeze),
        ]
    }

    fn bytes<T: Serialize>(t: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(t, bincode::config::standard()).unwrap()
    }

    proptest! {
        /// The map behaves as a `BTreeMap`, encodes to its bytes and reads back from them, and
        /// every clone (a freeze) keeps the contents it had, whatever is written after it.
        #[test]
        fn acts_and_encodes_as_a_btreemap_and_clones_stay_put(ops in prop::collection::vec(op(), 1..200)) {
            let mut map = CowMap::default();
            let mut model: BTreeMap<TaskId, u32> = BTreeMap::new();
            let mut frozen: Vec<(CowMap<u32>, Vec<u8>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(id, v) => prop_assert_eq!(map.insert(id, v), model.insert(id, v)),
                    Op::Remove(id) => prop_assert_eq!(map.remove(id), model.remove(&id)),
                    Op::Bump(id) => {
                        if let Some(v) = map.get_mut(id) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = model.get_mut(&id) {
                            *v = v.wrapping_add(1);
                        }
                    }
                    Op::Freeze => frozen.push((map.clone(), bytes(&model))),
                }
                map.check().map_err(TestCaseError::fail)?;
                prop_assert_eq!(map.len(), model.len());
            }
            prop_assert!(map.iter().map(|(k, v)| (k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            let encoded = bytes(&map);
            prop_assert_eq!(&encoded, &bytes(&model));
            let (back, _): (CowMap<u32>, usize) =
                bincode::serde::decode_from_slice(&encoded, bincode::config::standard()).unwrap();
            prop_assert_eq!(&back, &map);
            back.check().map_err(TestCaseError::fail)?;
            for (f, want) in &frozen {
                prop_assert_eq!(&bytes(f), want);
            }
        }
    }

    /// A clone shares every chunk; a write copies only the chunk it lands in, a miss none.
    #[test]
    fn a_clone_shares_chunks_until_written() {
        let mut map = CowMap::default();
        for id in 0..3 * SPAN {
            map.insert(id, id);
        }
        let frozen = map.clone();
        assert_eq!(map.shared_chunks(&frozen), 3);
        assert_eq!(map.get_mut(5 * SPAN), None);
        assert_eq!(map.remove(5 * SPAN), None);
        assert_eq!(map.shared_chunks(&frozen), 3, "a miss copies nothing");
        *map.get_mut(1).unwrap() = 7;
        assert_eq!(map.shared_chunks(&frozen), 2);
        map.remove(SPAN);
        map.insert(3 * SPAN, 0);
        assert_eq!(
            map.shared_chunks(&frozen),
            1,
            "a remove copies its chunk, a new chunk shares none"
        );
        assert_eq!(frozen.get(1), Some(&1));
        assert_eq!(frozen.get(SPAN), Some(&SPAN));
        assert_eq!(frozen.len(), 3 * SPAN as usize);
    }
}
