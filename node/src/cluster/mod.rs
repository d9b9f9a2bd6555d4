//! Cluster membership and the node's identity on disk.
//!
//! - [`identity`]: `node.json` in the data directory: which cluster this directory belongs to
//!   and this node's id in it. Written once, fsync'd, read on every start.

pub mod identity;

pub use identity::ClusterError;
pub use identity::Identity;
