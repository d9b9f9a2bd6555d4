//! The serialized form of [`QueueState`] (snapshot format version 11; `state/v1.rs` reads
//! version 1), and the equality that follows it.
//!
//! Each version is the one before it followed by one more table ([`TABLES`]): 3 the token
//! table, 4 the task catalogue, 5 the task extras (headers, progress: `extras.rs`), 6 the
//! periodic schedules (`schedule.rs`), 7 a slot reserved for another branch's table (written
//! as nothing: a unit), 8 flow control (limits, lanes, keys: `limits.rs`, `lanes.rs`), 9 a
//! slot reserved for branch ops (a unit, like 7; it stays a unit for ever), 10 waiting tasks
//! and workflows (`deps.rs`), 11 the attempt histories (`attempts.rs`). A state is written in the oldest version that holds it
//! (the rule of `docs/adr/002-format-versions.md`, [`QueueState::snapshot_format`]): a table
//! that is pristine is left out with every table after it, so a cluster that does not use the
//! new tables keeps writing snapshots the builds before them read. [`InFormat`] writes a given
//! version (refusing a state that would lose a table) and [`ReadFormat`] reads one back.
//!
//! Every field is serialized as it is held, in the order below (bincode is positional: a
//! struct, a tuple and a nested struct of the same fields are the same bytes), except the key
//! index: it is derived from the tasks, not ordered, and rebuilt on load, so its random hash
//! never reaches the bytes. Replicas that applied the same log serialize to the same bytes,
//! which `sim dst` compares (`replicas_agree`). Changing a serialized type or the order of
//! these fields is a new format version.
//!
//! Adding a table: append it to [`TABLES`] (its format is the next version), to the writer and
//! the reader below, and to [`QueueState::from_owned`]; bump `raft/snapshot.rs`'s
//! `FORMAT_VERSION`; add a fixture.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;
use serde::de::SeqAccess;
use serde::de::Visitor;
use serde::ser::SerializeTuple;

use super::Attempts;
use super::Catalog;
use super::Deps;
use super::Extras;
use super::Index;
use super::Interner;
use super::KeyIndex;
use super::QueueState;
use super::Schedules;
use super::Table;
use super::Task;
use super::Tokens;
use super::limits::Flow;
use super::standing;
use crate::queue::command::TaskId;
use crate::queue::command::UnixMs;

/// The oldest snapshot format: the dense task layout, no optional table.
pub const BASE_FORMAT: u32 = 2;

/// The optional tables in the order they follow the base fields, each with the format that
/// added it (its position + 3) and what a state holding it is told when written older.
pub const TABLES: [(&str, u32); 9] = [
    ("tokens", 3),
    ("declared task names", 4),
    ("task headers or progress", 5),
    ("schedules", 6),
    // Reserved for branch `ops` (issue 13): always pristine here, written as a unit (no bytes).
    ("reserved", 7),
    ("limits or concurrency keys", 8),
    // Reserved for branch `ops` (issue 13) until it lands: a unit, like slot 7.
    ("reserved for ops", 9),
    ("workflows", 10),
    // Issue 13's attempt histories (ADR 005 had planned slot 9, which stays a unit).
    ("attempt history", 11),
];

/// The newest snapshot format of the queue state.
pub const NEWEST_FORMAT: u32 = BASE_FORMAT + TABLES.len() as u32;

/// The base fields of [`QueueState`], in order (the key index is rebuilt on load).
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

/// The optional tables, each default (pristine) when the format read predates it.
#[derive(Default)]
struct Tables {
    tokens: Tokens,
    catalog: Catalog,
    extras: Extras,
    schedules: Schedules,
    flow: Flow,
    deps: Deps,
    attempts: Attempts,
}

impl QueueState {
    fn base_ref(&self) -> StateRef<'_> {
        StateRef {
            now_ms: self.now_ms,
            next_id: self.next_id,
            tasks: &self.tasks,
            task_names: &self.task_names,
            idx: &self.idx,
            next_node_id: self.next_node_id,
            standing: &self.standing,
        }
    }

    /// Which optional tables hold something, in [`TABLES`] order.
    fn tables_used(&self) -> [bool; TABLES.len()] {
        [
            !self.tokens.is_pristine(),
            !self.catalog.is_pristine(),
            !self.extras.is_pristine(),
            !self.schedules.is_pristine(),
            false,
            !self.idx.flow.is_pristine(),
            false,
            !self.deps.is_pristine(),
            !self.attempts.is_pristine(),
        ]
    }

    /// The oldest snapshot format that holds this state: the format of the last table in use.
    pub fn snapshot_format(&self) -> u32 {
        self.tables_used()
            .iter()
            .zip(TABLES)
            .filter(|(used, _)| **used)
            .map(|(_, (_, format))| format)
            .max()
            .unwrap_or(BASE_FORMAT)
    }

    fn from_owned(o: StateOwned, t: Tables) -> Result<Self, String> {
        let idempotency = KeyIndex::build(&o.tasks)?;
        let catalog = super::catalog::checked(t.catalog)?;
        t.extras.check(|id| o.tasks.get(id).is_some())?;
        t.attempts.check(|id| {
            o.tasks
                .get(id)
                .map(|t| (t.attempt, t.lease(id).map(|l| l.attempt)))
        })?;
        t.schedules.check()?;
        let mut idx = o.idx;
        idx.flow = t.flow;
        Ok(Self {
            now_ms: o.now_ms,
            next_id: o.next_id,
            tasks: o.tasks,
            idempotency,
            task_names: o.task_names,
            idx,
            next_node_id: o.next_node_id,
            standing: o.standing,
            tokens: t.tokens,
            catalog,
            extras: t.extras,
            schedules: t.schedules,
            deps: t.deps,
            attempts: t.attempts,
        })
        .and_then(|s| {
            // Only a state that used workflows pays the scan.
            if !s.deps.is_pristine() {
                s.check_deps()?;
            }
            Ok(s)
        })
    }
}

/// A state serialized in snapshot format `.1` (2 to [`NEWEST_FORMAT`]): the base fields, then
/// the tables that format has. Serializing fails for a state that holds a table the format
/// lacks (it would be lost) and for a format that does not exist.
pub struct InFormat<'a>(pub &'a QueueState, pub u32);

impl Serialize for InFormat<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let InFormat(state, format) = *self;
        if !(BASE_FORMAT..=NEWEST_FORMAT).contains(&format) {
            return Err(serde::ser::Error::custom(format!(
                "snapshot format {format} does not exist"
            )));
        }
        if let Some((name, needs)) = state
            .tables_used()
            .iter()
            .zip(TABLES)
            .find(|(used, (_, needs))| **used && *needs > format)
            .map(|(_, table)| table)
        {
            return Err(serde::ser::Error::custom(format!(
                "a state holding {name} needs snapshot format {needs}"
            )));
        }
        let n = (format - BASE_FORMAT) as usize;
        let mut t = s.serialize_tuple(1 + n)?;
        t.serialize_element(&state.base_ref())?;
        if n >= 1 {
            t.serialize_element(&state.tokens)?;
        }
        if n >= 2 {
            t.serialize_element(&state.catalog)?;
        }
        if n >= 3 {
            t.serialize_element(&state.extras)?;
        }
        if n >= 4 {
            t.serialize_element(&state.schedules)?;
        }
        if n >= 5 {
            t.serialize_element(&())?;
        }
        if n >= 6 {
            t.serialize_element(&state.idx.flow)?;
        }
        if n >= 7 {
            t.serialize_element(&())?;
        }
        if n >= 8 {
            t.serialize_element(&state.deps)?;
        }
        if n >= 9 {
            t.serialize_element(&state.attempts)?;
        }
        t.end()
    }
}

impl Serialize for QueueState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        InFormat(self, NEWEST_FORMAT).serialize(s)
    }
}

/// A state read from snapshot format `V` (2 to [`NEWEST_FORMAT`]): the tables `V` lacks are
/// empty.
pub struct ReadFormat<const V: u32>(pub QueueState);

impl<'de, const V: u32> Deserialize<'de> for ReadFormat<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<const V: u32>;
        impl<'de, const V: u32> Visitor<'de> for V_<V> {
            type Value = ReadFormat<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a queue state in snapshot format {V}")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let missing = |what| serde::de::Error::custom(format!("no {what} in the state"));
                let base: StateOwned = seq.next_element()?.ok_or_else(|| missing("base"))?;
                let n = V.saturating_sub(BASE_FORMAT);
                let mut t = Tables::default();
                if n >= 1 {
                    t.tokens = seq.next_element()?.ok_or_else(|| missing(TABLES[0].0))?;
                }
                if n >= 2 {
                    t.catalog = seq.next_element()?.ok_or_else(|| missing(TABLES[1].0))?;
                }
                if n >= 3 {
                    t.extras = seq.next_element()?.ok_or_else(|| missing(TABLES[2].0))?;
                }
                if n >= 4 {
                    t.schedules = seq.next_element()?.ok_or_else(|| missing(TABLES[3].0))?;
                }
                if n >= 5 {
                    seq.next_element::<()>()?.ok_or_else(|| missing(TABLES[4].0))?;
                }
                if n >= 6 {
                    t.flow = seq.next_element()?.ok_or_else(|| missing(TABLES[5].0))?;
                }
                if n >= 7 {
                    seq.next_element::<()>()?.ok_or_else(|| missing(TABLES[6].0))?;
                }
                if n >= 8 {
                    t.deps = seq.next_element()?.ok_or_else(|| missing(TABLES[7].0))?;
                }
                if n >= 9 {
                    t.attempts = seq.next_element()?.ok_or_else(|| missing(TABLES[8].0))?;
                    if crate::bugs::active(crate::bugs::Bug::SnapshotDropsAttempts) {
                        // The deliberate bug (for the simulator to catch).
                        t.attempts.forget_histories();
                    }
                }
                QueueState::from_owned(base, t)
                    .map(ReadFormat)
                    .map_err(serde::de::Error::custom)
            }
        }
        if !(BASE_FORMAT..=NEWEST_FORMAT).contains(&V) {
            return Err(serde::de::Error::custom(format!(
                "snapshot format {V} does not exist"
            )));
        }
        d.deserialize_tuple(1 + (V - BASE_FORMAT) as usize, V_::<V>)
    }
}

impl<'de> Deserialize<'de> for QueueState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ReadFormat::<NEWEST_FORMAT>::deserialize(d).map(|r| r.0)
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
            && self.tokens == other.tokens
            && self.catalog == other.catalog
            && self.extras == other.extras
            && self.schedules == other.schedules
            && self.deps == other.deps
            && self.attempts == other.attempts
    }
}

impl Eq for QueueState {}
