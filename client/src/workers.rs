//! The workers of the whole cluster ([`Client::workers`]): every node's own pool and every
//! remote worker connected to any node, with what each holds in the replicated state. Any
//! node answers for all: it asks every member (each within 2 s), and names the members that
//! did not answer instead of waiting for them.

use flotilla_proto::v1 as pb;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::Result;

/// What runs tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerKind {
    /// A node's own pool (`node --workers N`), named `node-<id>`.
    Pool,
    /// A remote worker connected to a node.
    Remote,
    /// No member that answered runs it, but the replicated state holds leases or standing
    /// capacity of its name: a worker gone whose leases have not expired yet, or one on an
    /// unreachable node.
    Unknown,
}

impl WorkerKind {
    /// The name `--json` prints: `pool`, `remote` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            WorkerKind::Pool => "pool",
            WorkerKind::Remote => "remote",
            WorkerKind::Unknown => "unknown",
        }
    }
}

/// One pool or remote worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The node that runs the pool or holds the session; 0 for [`WorkerKind::Unknown`].
    pub node_id: u64,
    /// The name it leases under.
    pub name: String,
    pub kind: WorkerKind,
    /// Its queues, in order of preference.
    pub queues: Vec<String>,
    /// How many tasks it runs at once.
    pub concurrency: u32,
    /// Tasks it runs now, as its node sees them.
    pub busy: u32,
    /// Tasks it holds leased in the replicated state.
    pub leased: u64,
    /// Its standing capacity: tasks it stands ready to be granted.
    pub standing: u32,
    /// How long ago the pool started or the worker connected, in ms.
    pub connected_ms_ago: u64,
    /// How long ago its node last heard from it, in ms (0 for a pool).
    pub last_seen_ms_ago: u64,
}

/// The cluster's workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Workers {
    /// By node, then name; the [`WorkerKind::Unknown`] ones last.
    pub workers: Vec<WorkerInfo>,
    /// Members that did not answer (down, cut off, or of a build before the call): their
    /// workers are missing, or listed as [`WorkerKind::Unknown`] if they hold leases.
    pub unreachable_nodes: Vec<u64>,
}

impl From<pb::WorkerInfo> for WorkerInfo {
    fn from(w: pb::WorkerInfo) -> Self {
        let kind = match pb::WorkerKind::try_from(w.kind) {
            Ok(pb::WorkerKind::Pool) => WorkerKind::Pool,
            Ok(pb::WorkerKind::Remote) => WorkerKind::Remote,
            _ => WorkerKind::Unknown,
        };
        WorkerInfo {
            node_id: w.node_id,
            name: w.name,
            kind,
            queues: w.queues,
            concurrency: w.concurrency,
            busy: w.busy,
            leased: w.leased,
            standing: w.standing,
            connected_ms_ago: w.connected_ms_ago,
            last_seen_ms_ago: w.last_seen_ms_ago,
        }
    }
}

impl Client {
    /// Every pool and remote worker of the cluster (read right).
    pub async fn workers(&self) -> Result<Workers> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.list_workers(with_timeout(pb::ListWorkersRequest {}, t)).await
            })
            .await?;
        Ok(Workers {
            workers: reply.workers.into_iter().map(WorkerInfo::from).collect(),
            unreachable_nodes: reply.unreachable_nodes,
        })
    }
}
