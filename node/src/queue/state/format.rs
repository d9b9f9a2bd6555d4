//! The serialized form of [`QueueState`] (snapshot format version 5; `state/v1.rs` reads
//! version 1), and the equality that follows it.
//!
//! Version 3 is version 2 followed by the token table; version 4 is version 3 followed by the
//! task catalogue; version 5 is version 4 followed by the schedules. A state is written in the
//! oldest version that holds it (the rule of `docs/adr/002-format-versions.md`): one that never
//! added a schedule as version 4 ([`WithoutSchedules`]), one that also never declared a task
//! name as version 3 ([`WithoutCatalog`]), one that also never held a token as version 2
//! ([`WithoutTokens`]), so a cluster that does not use the new tables keeps writing snapshots
//! the builds before them read; [`QueueStateV4`], [`QueueStateV3`] and [`QueueStateV2`] read
//! those versions back.
//!
//! Every field is serialized as it is held, in the order below (bincode is positional), except
//! the key index: it is derived from the tasks, not ordered, and rebuilt on load, so its random
//! hash never reaches the bytes. Replicas that applied the same log serialize to the same
//! bytes, which `sim dst` compares (`replicas_agree`). Changing a serialized type or the order
//! of these fields is a new format version.

use serde::Deserialize;
use serde::Serialize;

use super::Catalog;
use super::Index;
use super::Interner;
use super::KeyIndex;
use super::QueueState;
use super::Schedules;
use super::Table;
use super::Task;
use super::Tokens;
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

/// Version 3: version 2, then the token table.
#[derive(Serialize)]
struct StateRefV3<'a> {
    v2: StateRef<'a>,
    tokens: &'a Tokens,
}

/// Version 4: version 3, then the task catalogue.
#[derive(Serialize)]
struct StateRefV4<'a> {
    v3: StateRefV3<'a>,
    catalog: &'a Catalog,
}

/// Version 5: version 4, then the schedules.
#[derive(Serialize)]
struct StateRefV5<'a> {
    v4: StateRefV4<'a>,
    schedules: &'a Schedules,
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

#[derive(Deserialize)]
struct StateOwnedV3 {
    v2: StateOwned,
    tokens: Tokens,
}

#[derive(Deserialize)]
struct StateOwnedV4 {
    v3: StateOwnedV3,
    catalog: Catalog,
}

#[derive(Deserialize)]
struct StateOwnedV5 {
    v4: StateOwnedV4,
    schedules: Schedules,
}

impl QueueState {
    fn v2_ref(&self) -> StateRef<'_> {
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

    fn v3_ref(&self) -> StateRefV3<'_> {
        StateRefV3 {
            v2: self.v2_ref(),
            tokens: &self.tokens,
        }
    }

    fn v4_ref(&self) -> StateRefV4<'_> {
        StateRefV4 {
            v3: self.v3_ref(),
            catalog: &self.catalog,
        }
    }

    fn from_owned(
        o: StateOwned,
        tokens: Tokens,
        catalog: Catalog,
        schedules: Schedules,
    ) -> Result<Self, String> {
        let idempotency = KeyIndex::build(&o.tasks)?;
        let catalog = super::catalog::checked(catalog)?;
        Ok(Self {
            now_ms: o.now_ms,
            next_id: o.next_id,
            tasks: o.tasks,
            idempotency,
            task_names: o.task_names,
            idx: o.idx,
            next_node_id: o.next_node_id,
            standing: o.standing,
            tokens,
            catalog,
            schedules,
        })
    }
}

impl Serialize for QueueState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StateRefV5 {
            v4: self.v4_ref(),
            schedules: &self.schedules,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for QueueState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = StateOwnedV5::deserialize(d)?;
        Self::from_owned(o.v4.v3.v2, o.v4.v3.tokens, o.v4.catalog, o.schedules)
            .map_err(serde::de::Error::custom)
    }
}

/// A state serialized in format version 4 (no schedules). Only for a state whose schedule
/// table is pristine ([`Schedules::is_pristine`]): anything else would lose schedules, so
/// serializing it fails.
pub struct WithoutSchedules<'a>(pub &'a QueueState);

impl Serialize for WithoutSchedules<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.0.schedules.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding schedules needs snapshot format 5",
            ));
        }
        self.0.v4_ref().serialize(s)
    }
}

/// A state read from format version 4: no schedules.
pub struct QueueStateV4(pub QueueState);

impl<'de> Deserialize<'de> for QueueStateV4 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = StateOwnedV4::deserialize(d)?;
        QueueState::from_owned(o.v3.v2, o.v3.tokens, o.catalog, Schedules::default())
            .map(QueueStateV4)
            .map_err(serde::de::Error::custom)
    }
}

/// A state serialized in format version 3 (no catalogue). Only for a state whose catalogue is
/// pristine ([`Catalog::is_pristine`]): anything else would lose declared names, so
/// serializing it fails.
pub struct WithoutCatalog<'a>(pub &'a QueueState);

impl Serialize for WithoutCatalog<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.0.catalog.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding declared task names needs snapshot format 4",
            ));
        }
        if !self.0.schedules.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding schedules needs snapshot format 5",
            ));
        }
        self.0.v3_ref().serialize(s)
    }
}

/// A state read from format version 3: an empty catalogue.
pub struct QueueStateV3(pub QueueState);

impl<'de> Deserialize<'de> for QueueStateV3 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = StateOwnedV3::deserialize(d)?;
        QueueState::from_owned(o.v2, o.tokens, Catalog::default(), Schedules::default())
            .map(QueueStateV3)
            .map_err(serde::de::Error::custom)
    }
}

/// A state serialized in format version 2 (no token table, no catalogue). Only for a state
/// whose token table and catalogue are pristine ([`Tokens::is_pristine`],
/// [`Catalog::is_pristine`]): anything else would lose them, so serializing it fails.
pub struct WithoutTokens<'a>(pub &'a QueueState);

impl Serialize for WithoutTokens<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.0.tokens.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding tokens needs snapshot format 3",
            ));
        }
        if !self.0.catalog.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding declared task names needs snapshot format 4",
            ));
        }
        if !self.0.schedules.is_pristine() {
            return Err(serde::ser::Error::custom(
                "a state holding schedules needs snapshot format 5",
            ));
        }
        self.0.v2_ref().serialize(s)
    }
}

/// A state read from format version 2: an empty token table.
pub struct QueueStateV2(pub QueueState);

impl<'de> Deserialize<'de> for QueueStateV2 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let o = StateOwned::deserialize(d)?;
        QueueState::from_owned(o, Tokens::default(), Catalog::default(), Schedules::default())
            .map(QueueStateV2)
            .map_err(serde::de::Error::custom)
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
            && self.schedules == other.schedules
    }
}

impl Eq for QueueState {}
