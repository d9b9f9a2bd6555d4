//! The task catalogue through the log (`queue/state/catalog.rs` holds it and says its rules).
//!
//! - [`declare_tasks`]: declare task names for a declarer, proposing only what the local
//!   replica does not already hold for it; a worker session calls it on a worker's `Hello`
//!   (declarer: the worker's name).
//! - [`declare_built_ins`]: every node declares its built-in registry's names (declarer
//!   `node:<id>`, default queue `default`) once at start, after the cluster has a leader. A
//!   node whose registry did not change since it last declared proposes nothing.
//!
//! Rolling upgrades: `DeclareTasks` is entry format 3; an older leader cannot decode a
//! forwarded one (the node retries until the leader is upgraded), and a newer leader appends
//! it (its older followers refuse it). Upgrading the leader last, as docs/OPERATIONS.md says,
//! keeps both from mattering; the first admin token (`cluster::tokens`) has the same rule.

use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::backoff::Backoff;
use tokio::task::JoinHandle;
use tracing::error;
use tracing::info;
use tracing::warn;

use super::Admin;
use crate::error::ProposeError;
use crate::proposer::Proposer;
use crate::queue::CatalogRefusal;
use crate::queue::DEFAULT_QUEUE;
use crate::queue::TaskDecl;
use crate::queue::node_declarer;
use crate::queue::ops;
use crate::replica::Replica;
use crate::types::NodeId;

/// Pauses between attempts of the start-up declaration (no leader yet, an older leader).
const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));

/// Why a declaration did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The catalogue refused it (a bad name, or full): retrying cannot help.
    #[error("task declaration refused: {0}")]
    Refused(#[from] CatalogRefusal),
    /// It could not be written (no leader, shutting down, ...): it may be retried.
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// Declare `tasks` for `declarer`: propose `DeclareTasks` with the declarations this node's
/// replica does not hold for it (nothing when it holds them all). Returns how many
/// declarations the log recorded. Checked against the replica first, so a refusal costs no
/// entry; the state machine checks again and is what decides.
pub async fn declare_tasks(
    proposer: &Proposer,
    replica: &Replica,
    declarer: &str,
    tasks: &[TaskDecl],
) -> Result<u32, DeclareError> {
    let missing = replica.read(|q| {
        q.catalog().check_declaration(declarer, tasks)?;
        Ok::<_, CatalogRefusal>(q.catalog().missing(declarer, tasks))
    })?;
    if missing.is_empty() {
        return Ok(0);
    }
    let op = ops::DeclareTasks {
        declarer: declarer.to_string(),
        tasks: missing,
    };
    Ok(proposer.op(op).await??)
}

/// The declarations of a node's built-in registry: each name on the default queue.
pub fn built_ins<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<TaskDecl> {
    names
        .into_iter()
        .map(|name| TaskDecl {
            name: name.to_string(),
            queue: DEFAULT_QUEUE.to_string(),
        })
        .collect()
}

/// Declare node `node_id`'s built-in `tasks` once, in the background: after a read barrier
/// (so the replica holds what was declared before, and an unchanged registry proposes
/// nothing), retried with backoff until the cluster has a leader that takes it. Ends when
/// declared, or refused (logged as an error: a registry name the catalogue does not take).
pub fn declare_built_ins(
    admin: Admin,
    replica: Arc<Replica>,
    proposer: Proposer,
    node_id: NodeId,
    tasks: Vec<TaskDecl>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if tasks.is_empty() {
            return;
        }
        let declarer = node_declarer(node_id);
        let mut backoff = RETRY;
        let mut attempt = 0u32;
        loop {
            let declared = match admin.read_barrier().await {
                Ok(()) => declare_tasks(&proposer, &replica, &declarer, &tasks).await,
                Err(e) => Err(DeclareError::Propose(ProposeError::Forward(e.to_string()))),
            };
            match declared {
                Ok(recorded) => {
                    info!(
                        declarer,
                        names = tasks.len(),
                        recorded,
                        "built-in task names declared"
                    );
                    return;
                }
                Err(DeclareError::Refused(e)) => {
                    error!(declarer, error = %e, "built-in task names not declared; submits of them are refused");
                    return;
                }
                Err(e) => {
                    // The first attempts usually meet an election or a join still running.
                    if attempt >= 5 {
                        warn!(declarer, error = %e, attempt, "built-in task names not declared yet; retrying");
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    })
}
