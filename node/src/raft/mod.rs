//! openraft glue: the durable log store and the state-machine adapter over [`crate::replica`].
//!
//! - [`log_store`]: `RaftLogStorage` over the raft-log WAL.
//! - [`state_machine`]: `RaftStateMachine`: applies entries, builds and installs snapshots.

pub mod log_store;
pub mod state_machine;

