//! How this node talks to its peers, over the peers-only `RaftService` (tonic).
//!
//! - [`call`]: one peer call, written once: [`Peers`] (connector + this node's identity) opens
//!   a [`PeerChannel`]; a call has a deadline, carries the identity, and shapes its failures.
//! - [`headers`]: the gRPC metadata names of peer calls (cluster id, node id), stamped on one
//!   side and read on the other.
//! - [`peer_auth`]: [`peer_auth::PeerAuth`], how a member proves its membership on every peer
//!   call (the cluster's shared secret here; mutual TLS fills the same interface).
//! - [`raft_network`]: openraft's `RaftNetworkFactory` / `RaftNetworkV2`, and nothing else.
//! - [`peer`]: Flotilla's own calls: forwarding writes to the leader, and the admin messages
//!   (typed by [`peer::AdminCall`]) that `cluster` carries out.
//! - [`snapshot_stream`]: the wire format of a streamed snapshot, both ends: chunks out, and
//!   back in within a size limit and a wait per chunk.
//! - [`codec`]: bincode (serde) encoding of the messages inside `RaftMessage`.
//! - [`transport`]: the injectable [`transport::Connector`] that turns an address into a tonic
//!   channel (plain TCP, or mutual TLS); the simulator swaps in its own.
//!
//! This layer sits below `cluster`, `proposer` and `grpc`, and imports none of them.

pub mod call;
pub mod codec;
pub mod headers;
pub mod peer;
pub mod peer_auth;
pub mod raft_network;
pub mod snapshot_stream;
pub mod transport;

pub use call::PeerChannel;
pub use call::PeerFormats;
pub use call::Peers;
pub use peer::PeerClient;
pub use peer_auth::PeerAuth;
pub use peer_auth::SharedSecret;
pub use raft_network::NetworkFactory;
pub use transport::Connector;
pub use transport::TcpConnector;
pub use transport::TlsConnector;

#[cfg(test)]
mod tests;
