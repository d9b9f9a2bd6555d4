//! Cluster membership and the node's identity on disk.
//!
//! - [`identity`]: `node.json` in the data directory: which cluster this directory belongs to,
//!   this node's id in it, and whether its join finished. Written atomically, read on start.
//! - [`admin`]: leader-executed administration (node ids for joiners, add/remove members,
//!   read indexes for followers' linearizable reads). Its messages are the network's
//!   ([`crate::network::peer`]): this layer imports them, never the reverse.
//! - [`join`]: the joining node's side of `node --join PEER`.
//! - [`liveness`]: which members the leader hears from (one rule for admin and leader duties).
//! - [`secrets`]: the peer secret (`cluster.secret`) and the first admin token's file, mode
//!   0600 in the data directory.
//! - [`tokens`]: API tokens made and revoked through the log, and the first admin token.
//! - [`catalog`]: task names declared through the log (a worker's, a node's built-in ones).
//! - [`workers`]: the remote workers connected to every member, and every member's own pool
//!   and worker sessions (`flotilla workers`), asked live.

pub mod admin;
pub mod catalog;
pub mod identity;
pub mod join;
pub mod liveness;
pub mod secrets;
pub mod tokens;
pub mod workers;

pub use admin::Admin;
pub use identity::ClusterError;
pub use identity::Identity;
