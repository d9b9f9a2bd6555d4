//! Wiring. [`run_with`] runs a node in five steps, one function each:
//!
//! 1. `identity.rs`, `open_identity`: read the data directory's identity, or found a cluster,
//!    or ask one for an id (`--join`);
//! 2. `raft.rs`, `open_raft`: open the log and the state machine, start Raft, initialize a
//!    founder;
//! 3. `services.rs`, `start_services`: the proposer, the admin, the node's duties
//!    ([`crate::leader`]), the declaration of its built-in task names
//!    ([`crate::cluster::catalog`]), the worker pool, the gRPC services, and a join that still
//!    has to finish;
//! 4. `serve.rs`, `serve_until_shutdown`: serve until shutdown is asked (or the join fails);
//!    then drain the workers first (they still need the log to hand tasks back), hand
//!    leadership off, and stop serving;
//! 5. `serve.rs`, `stop`: end the duties and a join still running, and stop Raft.
//!
//! This file keeps what callers see: [`run`] (TCP or TLS), [`run_with`] (any connections, as
//! the simulator's), [`NodeEnv`] and [`ServerError`].

mod identity;
mod observe;
mod raft;
mod serve;
mod services;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotilla_tls::NodeTls;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tracing::info;
use tracing::warn;

use crate::clock::SharedClock;
use crate::clock::SystemClock;
use crate::cluster::join;
use crate::config::Config;
use crate::grpc::conn;
use crate::grpc::conn::ConnLimits;
use crate::grpc::conn::Guarded;
use crate::grpc::peer_identity::PeerCertificates;
use crate::network::Connector;
use crate::network::Peers;
use crate::network::TcpConnector;
use crate::network::TlsConnector;
use crate::raft::Raft;
use crate::raft::SimDisk;
use crate::replica::Replica;
use crate::worker::TaskRegistry;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    Storage(#[from] crate::raft::StorageError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("workers: {0}")]
    Worker(String),
    #[error(transparent)]
    Join(#[from] join::JoinError),
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("grpc reflection: {0}")]
    Reflection(String),
    #[error("http port: {0}")]
    Http(String),
    #[error(transparent)]
    Tls(#[from] flotilla_tls::TlsError),
    #[error(transparent)]
    Entropy(#[from] crate::secret::EntropyError),
    /// Raft stopped by itself (a write failed: a full disk, an IO error). The node exits so
    /// that a service manager restarts it, instead of lingering without a working log.
    #[error(
        "raft stopped: {0}; this node exits so it can be restarted (free disk space first if \
         it is full)"
    )]
    RaftFailed(String),
}

/// Run a node on `listener` until `shutdown` resolves: over TLS when `config.tls` names the
/// files (the port then serves TLS only, and peers are dialled with mutual TLS).
pub async fn run(
    config: Config,
    registry: TaskRegistry,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let incoming = conn::accept(listener);
    let Some(files) = &config.tls else {
        return run_with(config, registry, NodeEnv::default(), incoming, shutdown).await;
    };
    let tls = Arc::new(NodeTls::load(&files.cert, &files.key, &files.ca)?);
    info!(cluster = tls.cluster(), cert = %files.cert.display(), "tls on; peers need a node certificate of this cluster");
    let server_config = tls.grpc_server_config()?;
    let env = NodeEnv {
        connector: Arc::new(TlsConnector::new(TcpConnector::default(), tls.clone())),
        tls: Some(tls),
        ..NodeEnv::default()
    };
    let incoming = flotilla_tls::accept(incoming, server_config, flotilla_tls::accept::HANDSHAKE_TIMEOUT);
    run_with(config, registry, env, incoming, shutdown).await
}

/// What a node takes from the world outside the process: the clock, how it dials peers, where
/// its Raft log lives, how its workers run, and (as `run_with`'s `incoming`) the connections
/// it accepts. The simulator supplies its own.
#[derive(Clone)]
pub struct NodeEnv {
    pub clock: SharedClock,
    pub connector: Arc<dyn Connector>,
    pub storage: LogStorage,
    /// Run the worker actors on the caller's `LocalSet` instead of an actix `System` on a
    /// thread of their own (the simulator runs a whole node on one thread).
    pub local_workers: bool,
    /// Called once Raft is up, with the node's Raft handle and replica: the simulator watches
    /// roles, terms and applied state through them.
    pub observer: Option<Observer>,
    /// The node's TLS, when `incoming` and `connector` carry it (`run` sets all three from
    /// `config.tls`): peer calls are then taken only from nodes of its cluster ([`crate::grpc::NodeGate`]).
    pub tls: Option<Arc<NodeTls>>,
}

/// See [`NodeEnv::observer`].
pub type Observer = Arc<dyn Fn(&Raft, &Arc<Replica>) + Send + Sync>;

/// Where the Raft log is kept.
#[derive(Clone, Debug)]
pub enum LogStorage {
    /// The WAL in `<data dir>/wal/`.
    Disk,
    /// A simulated disk; snapshot files are then written without a blocking thread, so the
    /// simulator controls every step.
    Simulated(Arc<SimDisk>),
}

impl Default for NodeEnv {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            connector: Arc::new(TcpConnector::default()),
            storage: LogStorage::Disk,
            local_workers: false,
            observer: None,
            tls: None,
        }
    }
}

/// A connection the node serves (TCP, TLS, or the simulator's). Its info says whether the peer
/// showed a certificate ([`PeerCertificates`]): a wrapper of connections must forward it.
pub trait Connection:
    tokio::io::AsyncRead
    + tokio::io::AsyncWrite
    + tonic::transport::server::Connected<ConnectInfo: PeerCertificates>
    + Unpin
    + Send
    + 'static
{
}

impl<T> Connection for T where
    T: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected<ConnectInfo: PeerCertificates>
        + Unpin
        + Send
        + 'static
{
}

/// Run a node serving the connections of `incoming` until `shutdown` resolves.
pub async fn run_with<I, IO, IE>(
    config: Config,
    registry: TaskRegistry,
    env: NodeEnv,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: Connection,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if config.tls.is_some() && env.tls.is_none() {
        // Never serve plaintext to a config that asked for TLS (`run` sets both).
        return Err(ServerError::Tls(flotilla_tls::TlsError::Invalid(
            "config.tls is set but the node's connections carry no tls".into(),
        )));
    }
    let (warn_exposure, exposure) = config.exposure_summary();
    if warn_exposure {
        warn!(listen = %config.listen, "{exposure}");
    } else {
        info!(listen = %config.listen, "{exposure}");
    }
    // A joining node shows its join token until it has its id and the peer secret.
    let anonymous = Peers::new(env.connector.clone()).with_token(config.token.as_ref().map(|t| t.0.as_str()));
    let (identity, secret) = identity::open_identity(&config, &anonymous).await?;
    let peers = anonymous.with_identity(&identity.cluster_id, identity.node_id, secret.clone());
    let instruments = observe::instruments(&config);
    let opened = raft::open_raft(&config, &env, &identity, peers.clone(), instruments.as_ref()).await?;
    let (serving, stopping) = services::start_services(
        &config,
        registry,
        &env,
        &identity,
        opened,
        peers,
        secret,
        instruments.as_ref(),
    )?;
    // Every connection, TCP or simulated, is closed when it stays silent or idle too long.
    let limits = ConnLimits {
        handshake: Duration::from_millis(config.handshake_timeout_ms),
        idle: Duration::from_millis(config.idle_timeout_ms),
    };
    let incoming = incoming.map(move |conn| conn.map(|io| Guarded::new(io, limits)));
    let (served, failure) = serve::serve_until_shutdown(&config, serving, incoming, shutdown).await;
    serve::stop(stopping).await;
    if let Some(e) = failure {
        return Err(e);
    }
    served.map_err(ServerError::from)
}
