//! The task catalogue: [`Client::task_names`] lists the task names a submit may use, and
//! [`Client::declare_task_names`] (admin) declares more, so submits of them are accepted
//! before any worker running them has connected.

use flotilla_proto::v1 as pb;
use serde::Serialize;

use crate::client::{Client, with_timeout};
use crate::error::Result;

/// One name of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskName {
    pub name: String,
    /// Where a submit of it goes when it names no queue.
    pub default_queue: String,
    /// Who declared it and with which queue, latest first (`node:<id>` for a node's built-in
    /// registry, else a worker's name).
    pub declarers: Vec<Declarer>,
    /// Tasks of this name the cluster holds, in any state (finished ones until their result
    /// expires).
    pub held: u64,
    /// The remote workers connected now that run it.
    pub workers: Vec<ConnectedWorker>,
}

/// A remote worker connected to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectedWorker {
    /// The node that holds its session.
    pub node_id: u64,
    pub name: String,
    pub queues: Vec<String>,
    pub concurrency: u32,
}

/// The catalogue with its connected workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskCatalogue {
    /// Every declared name, sorted.
    pub names: Vec<TaskName>,
    /// Members that did not say which workers they hold: their workers are not listed.
    pub unreachable_nodes: Vec<u64>,
}

/// One declaration of a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Declarer {
    pub declarer: String,
    pub queue: String,
}

impl Client {
    /// Every declared task name, sorted.
    pub async fn task_names(&self) -> Result<Vec<TaskName>> {
        Ok(self.task_catalogue().await?.names)
    }

    /// Every declared task name, sorted, with the workers connected to each, cluster-wide.
    pub async fn task_catalogue(&self) -> Result<TaskCatalogue> {
        let reply = self
            .unary(None, |mut c, t| async move {
                c.list_task_names(with_timeout(pb::ListTaskNamesRequest {}, t))
                    .await
            })
            .await?;
        let names = reply
            .tasks
            .into_iter()
            .map(|t| TaskName {
                name: t.name,
                default_queue: t.default_queue,
                declarers: t
                    .declarers
                    .into_iter()
                    .map(|d| Declarer {
                        declarer: d.declarer,
                        queue: d.queue,
                    })
                    .collect(),
                held: t.held,
                workers: t
                    .workers
                    .into_iter()
                    .map(|w| ConnectedWorker {
                        node_id: w.node_id,
                        name: w.name,
                        queues: w.queues,
                        concurrency: w.concurrency,
                    })
                    .collect(),
            })
            .collect();
        Ok(TaskCatalogue {
            names,
            unreachable_nodes: reply.unreachable_nodes,
        })
    }

    /// Declare `names` with default queue `queue` (empty: `default`) as `declarer` (empty:
    /// `operator`); needs an admin token. Returns how many declarations were recorded (0 when
    /// all were declared so already). Declaring again is harmless.
    pub async fn declare_task_names(&self, declarer: &str, queue: &str, names: &[String]) -> Result<u32> {
        let request = pb::DeclareTaskNamesRequest {
            declarer: declarer.to_string(),
            names: names.to_vec(),
            queue: queue.to_string(),
        };
        let reply = self
            .unary(None, |mut c, t| {
                let r = with_timeout(request.clone(), t);
                async move { c.declare_task_names(r).await }
            })
            .await?;
        Ok(reply.recorded)
    }
}
