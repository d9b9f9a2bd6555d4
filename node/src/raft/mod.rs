//! openraft glue: the durable log store and the state-machine adapter over [`crate::replica`].
//!
//! A node's data directory holds `wal/` (the Raft log) and `snapshot/` (its last snapshot):
//!
//! - [`log_store`]: `RaftLogStorage` over the raft-log WAL (group commit, torn-tail recovery,
//!   corruption detection).
//! - [`wal`]: the raft-log type binding (bincode-encoded fields) and the tail check on open.
//! - [`sim_log`]: the simulator's log store: in memory, with a simulated disk that keeps only
//!   what was synced when its node crashes.
//! - [`state_machine`]: `RaftStateMachine`: applies entries, builds and installs snapshots.
//! - [`snapshot`]: the versioned snapshot format and its atomically replaced file.
//! - [`acked`]: the highest log index this node acknowledged, kept beside the log, so a log
//!   that lost acknowledged entries is refused at start.
//! - [`error`]: [`StorageError`], fatal storage errors.

pub mod acked;
pub mod error;
pub mod log_store;
pub mod sim_log;
pub mod snapshot;
pub mod state_machine;
pub mod wal;

pub use error::StorageError;
pub use log_store::LogStore;
pub use sim_log::SimDisk;
pub use sim_log::SimLogStore;
pub use state_machine::StateMachineStore;

/// The Raft handle of a Flotilla node.
pub type Raft = openraft::Raft<crate::types::TypeConfig, StateMachineStore>;

#[cfg(test)]
pub(crate) mod tests;
