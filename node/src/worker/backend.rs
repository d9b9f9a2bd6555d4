//! [`Backend`]: the pool's one seam to the rest of the node. Everything the workers change goes
//! through `propose` as a queue [`Command`]; `work_signal` tells an idle pool when to look again.
//! The node implements it with its Raft proposer; [`super::testing::LocalBackend`] applies to a
//! local replica directly.

use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::replica::WorkerEvent;

pub trait Backend: Send + Sync + 'static {
    /// Propose commands to be applied together, in order, in one log entry (all or none):
    /// one response per command; resolves once committed and applied. The pool completes and
    /// leases this way, one entry for both.
    fn propose_many(
        &self,
        cmds: Vec<Command>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<Response>, ProposeError>>;
    /// Propose one command: [`Backend::propose_many`] of one.
    fn propose(&self, cmd: Command) -> futures::future::BoxFuture<'static, Result<Response, ProposeError>> {
        let many = self.propose_many(vec![cmd]);
        Box::pin(async move {
            let mut responses = many.await?;
            match (responses.pop(), responses.is_empty()) {
                (Some(response), true) => Ok(response),
                _ => Err(ProposeError::Fatal("not one response to one command".into())),
            }
        })
    }
    /// Changes whenever tasks may have become leasable (watch the local replica).
    fn work_signal(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Whether the local replica shows anything leasable from `queues` (all when empty). The
    /// idle poll asks this first, so an idle pool does not write a `Lease` entry per poll.
    fn may_have_work(&self, queues: &[String]) -> bool {
        let _ = queues;
        true
    }
    /// The events of the pool named `worker` on the local replica (grants to its standing
    /// capacity among them), if this backend has a replica. A pool that gets them leaves
    /// standing capacity when it finds too little work; one that does not only leases.
    fn worker_events(&self, worker: &str) -> Option<tokio::sync::mpsc::UnboundedReceiver<WorkerEvent>> {
        let _ = worker;
        None
    }
    /// Whether the local replica shows `lease` as the current lease of its task, held by
    /// `worker`. A grant heard of through [`Backend::worker_events`] runs only if so.
    fn holds(&self, worker: &str, lease: LeaseRef) -> bool {
        let _ = (worker, lease);
        true
    }
}
