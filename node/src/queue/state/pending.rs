//! [`Pending`]: one queue's pending tasks in lease order (highest priority first, then by id).
//!
//! A set of `(Reverse(priority), id)` stored as 64-id bitmaps: key `(Reverse(priority), id / 64)`,
//! bit `id % 64`. Iterating keys in order and bits from the lowest is exactly the order of the
//! tuples, and since ids are sequential a backlog of pending tasks costs one 24-byte entry per
//! 64 tasks instead of a 16-byte tree key (plus the node's slack) per task. An entry exists iff
//! its word is non-zero, so equal sets have equal structure (and snapshot bytes).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::TaskId;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    words: BTreeMap<(Reverse<u8>, u64), u64>,
    len: u64,
}

fn split(priority: u8, id: TaskId) -> ((Reverse<u8>, u64), u64) {
    ((Reverse(priority), id / 64), 1u64 << (id % 64))
}

impl Pending {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns whether it was absent.
    pub(crate) fn insert(&mut self, priority: u8, id: TaskId) -> bool {
        let (key, bit) = split(priority, id);
        let word = self.words.entry(key).or_insert(0);
        let absent = *word & bit == 0;
        *word |= bit;
        self.len += u64::from(absent);
        absent
    }

    /// Returns whether it was present.
    pub(crate) fn remove(&mut self, priority: u8, id: TaskId) -> bool {
        let (key, bit) = split(priority, id);
        let Some(word) = self.words.get_mut(&key) else {
            return false;
        };
        let present = *word & bit != 0;
        *word &= !bit;
        if *word == 0 {
            self.words.remove(&key);
        }
        self.len -= u64::from(present);
        present
    }

    pub(crate) fn contains(&self, priority: u8, id: TaskId) -> bool {
        let (key, bit) = split(priority, id);
        self.words.get(&key).is_some_and(|w| w & bit != 0)
    }

    /// The next task to lease: `(priority, id)`.
    pub(crate) fn first(&self) -> Option<(u8, TaskId)> {
        let (&(Reverse(p), hi), &w) = self.words.first_key_value()?;
        Some((p, hi * 64 + u64::from(w.trailing_zeros())))
    }

    /// `(priority, id)` in lease order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u8, TaskId)> {
        self.words.iter().flat_map(|(&(Reverse(p), hi), &w)| {
            (0..64u64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| (p, hi * 64 + b))
        })
    }

    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The count matches the bits and no word is empty.
    pub(crate) fn check(&self) -> Result<(), String> {
        let bits: u64 = self.words.values().map(|w| u64::from(w.count_ones())).sum();
        if bits != self.len || self.words.values().any(|w| *w == 0) {
            return Err(format!("pending set counts {} tasks, holds {bits}", self.len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn agrees_with_a_set_of_tuples() {
        let mut p = Pending::default();
        let mut m: BTreeSet<(Reverse<u8>, TaskId)> = BTreeSet::new();
        let mut x: u64 = 3;
        for i in 0..5000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let prio = ((x >> 40) % 3) as u8 * 100;
            let id = (x >> 20) % 700;
            if i % 3 == 0 {
                assert_eq!(p.remove(prio, id), m.remove(&(Reverse(prio), id)));
            } else {
                assert_eq!(p.insert(prio, id), m.insert((Reverse(prio), id)));
            }
            assert_eq!(p.contains(prio, id), m.contains(&(Reverse(prio), id)));
            assert_eq!(p.first(), m.first().map(|(Reverse(p), id)| (*p, *id)));
            assert_eq!(p.len(), m.len() as u64);
        }
        let all: Vec<(u8, TaskId)> = m.iter().map(|(Reverse(p), id)| (*p, *id)).collect();
        assert_eq!(p.iter().collect::<Vec<_>>(), all);
        p.check().unwrap();
        for (prio, id) in all {
            assert!(p.remove(prio, id));
        }
        assert_eq!(p, Pending::default());
    }
}
