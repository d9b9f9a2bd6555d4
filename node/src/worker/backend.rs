//! [`Backend`]: the pool's one seam to the rest of the node. Everything the pool changes goes
//! through `propose_many` as queue commands, one log entry per call (the core builds them from
//! typed ops and reads the answers back through `queue::ops`); the local replica tells it
//! what was granted to it ([`Backend::pool_events`]) and when to look for work again. The node
//! implements it with its Raft proposer ([`super::node_backend::NodeBackend`]);
//! [`super::testing::LocalBackend`] applies to a local replica directly.

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::replica::PoolEvent;

pub trait Backend: Send + Sync + 'static {
    /// Propose commands to be applied together, in order, in one log entry (all or none):
    /// one response per command; resolves once committed and applied.
    fn propose_many(&self, cmds: Vec<Command>) -> BoxFuture<'static, Result<Vec<Response>, ProposeError>>;
    /// Changes whenever tasks may have become leasable (watch the local replica).
    fn work_signal(&self) -> watch::Receiver<u64>;
    /// Whether the local replica shows anything leasable from `queues` (all when empty). The
    /// idle poll asks this first, so an idle pool does not write a `Lease` entry per poll.
    fn may_have_work(&self, queues: &[String]) -> bool {
        let _ = queues;
        true
    }
    /// The events of the pool named `pool` on the local replica, from now on: every grant to
    /// the pool arrives here (from its own leases and to its standing capacity).
    fn pool_events(&self, pool: &str) -> mpsc::UnboundedReceiver<PoolEvent>;
    /// Whether the local replica shows `lease` as the current lease of its task, held by
    /// `pool`. A grant heard of through [`Backend::pool_events`] runs only if so.
    fn holds(&self, pool: &str, lease: LeaseRef) -> bool;
    /// The log's time on the local replica (the time of the last entry it applied), from
    /// which a starting pool numbers its lease tickets.
    fn log_now_ms(&self) -> u64;
}
