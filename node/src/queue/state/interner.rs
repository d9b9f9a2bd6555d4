//! [`Interner`]: reference-counted interning of task, queue and worker names and of task
//! options, so that a task holds small slot numbers instead of strings.
//!
//! A slot lives while something references it; a freed slot is cleared and recycled LIFO
//! through a free list, which is deterministic, so every replica numbers slots alike. The
//! owner keeps the reference counts honest; [`Interner::check`] compares them with what the
//! owner counted.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// Reference-counted interning (of names, of task options).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Interner<K: Ord> {
    pub(super) ids: BTreeMap<K, u32>,
    pub(super) slots: Vec<Slot<K>>,
    pub(super) free: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Slot<K> {
    name: K,
    pub(super) refs: u64,
}

impl Interner<Box<str>> {
    pub(super) fn name(&self, id: u32) -> &str {
        self.slots.get(id as usize).map_or("", |s| &s.name)
    }
}

impl<K: Ord + Default + fmt::Debug> Interner<K> {
    pub(super) fn get<Q: Ord + ?Sized>(&self, name: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
    {
        self.ids.get(name).copied()
    }

    /// How many references `id` holds (0 for a free or unknown slot).
    pub(super) fn refs(&self, id: u32) -> u64 {
        self.slots.get(id as usize).map_or(0, |s| s.refs)
    }

    pub(super) fn value(&self, id: u32) -> Option<&K> {
        self.slots.get(id as usize).map(|s| &s.name)
    }

    /// Interns `name` and takes one reference to it.
    pub(super) fn acquire<Q: Ord + ?Sized>(&mut self, name: &Q) -> u32
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

    pub(super) fn add_ref(&mut self, id: u32) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    /// Drops one reference; returns true if that freed the slot.
    pub(super) fn release(&mut self, id: u32) -> bool {
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
    pub(super) fn check(&self, what: &str, expected: &BTreeMap<u32, u64>) -> Result<(), String> {
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
