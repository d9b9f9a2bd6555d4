//! The remote workers connected to the cluster, for `flotilla tasks`: each node knows the
//! sessions it holds, so the node asked collects every member's list with a peer admin call
//! (`LocalWorkers`, answered by the member itself, never forwarded).
//!
//! Why not replicate worker registrations through the log: a connection is not durable state.
//! Written to the log it would cost two writes per connect, and a node that crashes would
//! leave its workers listed until something expired them. Asked live, the answer is exactly
//! the sessions that exist now; a member that does not answer in time is reported as
//! unreachable instead of guessed at.

use std::time::Duration;

use futures::future::join_all;
use openraft::async_runtime::WatchReceiver;

use super::Admin;
use crate::network::peer::ConnectedWorker;
use crate::network::peer::LocalWorkers;
use crate::types::NodeId;

/// How long a member has to list its workers.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Every member's connected workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterWorkers {
    /// By node, then name.
    pub workers: Vec<ConnectedWorker>,
    /// Members that did not answer (down, partitioned, or of a build before the call).
    pub unreachable: Vec<NodeId>,
}

impl Admin {
    /// This node's workers and every other member's, asked in parallel.
    pub async fn cluster_workers(&self) -> ClusterWorkers {
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
            async move {
                let answer = tokio::time::timeout(ASK_TIMEOUT, client.admin(LocalWorkers {})).await;
                (id, answer.ok().and_then(Result::ok))
            }
        });
        let mut out = ClusterWorkers {
            workers: (self.local_workers)(),
            unreachable: Vec::new(),
        };
        for (id, answer) in join_all(asks).await {
            match answer {
                Some(workers) => out.workers.extend(workers),
                None => out.unreachable.push(id),
            }
        }
        out.workers
            .sort_by(|a, b| (a.node_id, &a.name).cmp(&(b.node_id, &b.name)));
        out.unreachable.sort_unstable();
        out
    }
}
