//! The workers of the whole cluster, asked live of every member with a peer admin call that the
//! member answers itself (never forwarded): the remote workers connected anywhere, for
//! `flotilla tasks` (`LocalWorkers`), and every node's own pool and remote worker sessions, for
//! `flotilla workers` (`NodeWorkers`).
//!
//! Why not replicate worker registrations through the log: a connection is not durable state.
//! Written to the log it would cost two writes per connect, and a node that crashes would
//! leave its workers listed until something expired them. Asked live, the answer is exactly
//! the sessions that exist now; a member that does not answer within `ASK_TIMEOUT` (2 s) is
//! reported as unreachable instead of guessed at, so one member down never makes the call hang.

use std::time::Duration;

use futures::future::join_all;
use openraft::async_runtime::WatchReceiver;

use super::Admin;
use crate::network::peer::AdminCall;
use crate::network::peer::ConnectedWorker;
use crate::network::peer::LocalWorkers;
use crate::network::peer::NodeWorker;
use crate::network::peer::NodeWorkers;
use crate::types::NodeId;

/// How long a member has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Every member's connected workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterWorkers {
    /// By node, then name.
    pub workers: Vec<ConnectedWorker>,
    /// Members that did not answer (down, partitioned, or of a build before the call).
    pub unreachable: Vec<NodeId>,
}

/// Every member's own pool and remote worker sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerTable {
    /// By node, then name.
    pub workers: Vec<NodeWorker>,
    /// Members that did not answer (down, partitioned, or of a build before the call).
    pub unreachable: Vec<NodeId>,
}

impl Admin {
    /// This node's workers and every other member's, asked in parallel.
    pub async fn cluster_workers(&self) -> ClusterWorkers {
        let local = (self.local_workers.connected)();
        let (mut workers, unreachable) = self.ask_every_member(LocalWorkers {}, local).await;
        workers.sort_by(|a, b| (a.node_id, &a.name).cmp(&(b.node_id, &b.name)));
        ClusterWorkers { workers, unreachable }
    }

    /// This node's pool and sessions and every other member's, asked in parallel.
    pub async fn worker_table(&self) -> WorkerTable {
        let local = (self.local_workers.all)();
        let (mut workers, unreachable) = self.ask_every_member(NodeWorkers {}, local).await;
        workers.sort_by(|a, b| (a.node_id, &a.name).cmp(&(b.node_id, &b.name)));
        WorkerTable { workers, unreachable }
    }

    /// Asks every other member for `call` (in parallel, each within [`ASK_TIMEOUT`]) and adds
    /// their answers to this node's own `local` one; the members that did not answer, sorted.
    async fn ask_every_member<C, T>(&self, call: C, local: Vec<T>) -> (Vec<T>, Vec<NodeId>)
    where
        C: AdminCall<Answer = Vec<T>> + Clone,
    {
        let me = *self.raft.node_id();
        let members: Vec<(NodeId, String)> = {
            let metrics = self.raft.metrics().borrow_watched().clone();
            metrics
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != me)
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect()
        };
        let asks = members.into_iter().map(|(id, addr)| {
            let client = self.peers.client(id, &addr);
            let call = call.clone();
            async move {
                let answer = tokio::time::timeout(ASK_TIMEOUT, client.admin(call)).await;
                (id, answer.ok().and_then(Result::ok))
            }
        });
        let mut all = local;
        let mut unreachable = Vec::new();
        for (id, answer) in join_all(asks).await {
            match answer {
                Some(theirs) => all.extend(theirs),
                None => unreachable.push(id),
            }
        }
        unreachable.sort_unstable();
        (all, unreachable)
    }
}
