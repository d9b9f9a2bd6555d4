//! [`NodeBackend`]: the pool's view of a node: proposals through the node's [`Proposer`] (the
//! Raft log), grants and wake-ups from its [`Replica`].

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::sync::watch;

use super::backend::Backend;
use crate::error::ProposeError;
use crate::proposer::Proposer;
use crate::queue::Command;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::replica::PoolEvent;
use crate::replica::Replica;

pub struct NodeBackend {
    proposer: Proposer,
    replica: Arc<Replica>,
}

impl NodeBackend {
    pub fn new(proposer: Proposer, replica: Arc<Replica>) -> Self {
        Self { proposer, replica }
    }
}

impl Backend for NodeBackend {
    fn propose_many(&self, cmds: Vec<Command>) -> BoxFuture<'static, Result<Vec<Response>, ProposeError>> {
        let proposer = self.proposer.clone();
        async move { proposer.propose_many(cmds).await }.boxed()
    }

    fn work_signal(&self) -> watch::Receiver<u64> {
        self.replica.work_signal()
    }

    fn may_have_work(&self, queues: &[String]) -> bool {
        self.replica.read(|q| q.leasable(queues) > 0)
    }

    fn pool_events(&self, pool: &str) -> mpsc::UnboundedReceiver<PoolEvent> {
        self.replica.subscribe_pool(pool)
    }

    fn holds(&self, pool: &str, lease: LeaseRef) -> bool {
        self.replica.holds(pool, lease)
    }

    fn log_now_ms(&self) -> u64 {
        self.replica.read(|q| q.now_ms())
    }
}
