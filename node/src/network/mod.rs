//! openraft's network over tonic.
//!
//! - [`codec`]: bincode (serde) encoding of openraft messages inside `RaftMessage`.
//! - [`transport`]: the injectable [`transport::Connector`] that turns an address into a tonic
//!   channel; the simulator swaps in its own.
//! - [`raft_network`]: `RaftNetworkFactory` / `RaftNetworkV2` for peers, and the client used to
//!   forward writes to the leader.

pub mod codec;
pub mod raft_network;
pub mod transport;

pub use raft_network::NetworkFactory;
pub use raft_network::PeerClient;
pub use transport::Connector;
pub use transport::TcpConnector;
