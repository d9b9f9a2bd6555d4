//! The pure, deterministic queue state machine: commands in, responses out. No IO, no async,
//! no wall clock, no RNG in its decisions; ordered maps only (the idempotency-key index, a hash
//! table with a random hash key, is never iterated nor serialized), so every replica applying
//! the same entries holds the same state and produces the same snapshot bytes.
//!
//! - [`command`]: the log entry ([`Request`]) and its commands and responses.
//! - [`ops`]: typed proposals: each command paired with the type of its answer.
//! - [`name`]: the rule for queue names, checked wherever a name enters (not by `apply`).
//! - [`state`]: [`QueueState`] and `apply`; inside it, one file per concern: the task record
//!   (`state/task.rs`), the task table (`state/table.rs`), the interner (`state/interner.rs`),
//!   the indexes (`state/index.rs`, with the pending sets of `state/pending.rs`), the key index
//!   (`state/key_index.rs`, the one randomly keyed structure), the lease rules and the one lease
//!   check (`state/lease.rs`), standing capacity (`state/standing.rs`), periodic schedules
//!   (`state/schedule.rs`, slots in `state/schedule/slots.rs`), tasks waiting for parents and
//!   workflows (`state/deps.rs`; the canvas is flattened by `command/canvas.rs`), the invariants
//!   (`state/invariants.rs`), the task extras (`state/extras.rs`: headers, progress), the
//!   attempt histories (`state/attempts.rs`), the
//!   serialized form (`state/format.rs`) and the reader of
//!   version-1 snapshots (`state/v1.rs`).

pub mod command;
pub mod name;
pub mod ops;
pub mod state;

pub use command::*;
pub use state::ApplyEffects;
pub use state::Change;
pub use state::Frozen;
pub use state::InFormat;
pub use state::NEWEST_SNAPSHOT_FORMAT;
pub use state::PoolEffects;
pub use state::PoolHolding;
pub use state::QueueState;
pub use state::QueueStateV1;
pub use state::ReadFormat;
pub use state::SeenChange;
pub use state::Why;
