//! Every replica records the same attempt histories (`queue/state/attempts.rs`), and they agree
//! with what clients saw: once faults heal and the replicas applied the same log, each task's
//! history is the same on every node; no history names an attempt beyond the task's final
//! attempt counter, and a task that succeeded with an attempt the history holds shows that
//! attempt as succeeded. The histories are part of the state `replicas_agree` hashes too; this
//! checker says which task and which attempt differ.

use std::collections::BTreeMap;

use flotilla_client::TaskId;
use flotilla_client::TaskInfo;
use flotilla_client::TaskState;
use flotilla_node::queue::AttemptEnd;
use flotilla_node::queue::AttemptView;
use flotilla_node::queue::state::TaskFilter;

use super::Violation;
use crate::dst::node::Running;

const NAME: &str = "attempts_agree";

type Histories = BTreeMap<u64, Vec<AttemptView>>;

/// Every task's history on one replica (tasks without one left out).
fn histories(running: &Running) -> Histories {
    running.replica.read(|q| {
        let page = q.list_tasks(&TaskFilter::default(), None, usize::MAX, usize::MAX);
        page.tasks
            .iter()
            .filter_map(|t| {
                let attempts = q.describe(t.id)?.attempts;
                (!attempts.is_empty()).then_some((t.id, attempts))
            })
            .collect()
    })
}

/// Compare the histories of `nodes` (name, running), which all applied the same index, with
/// each other and with the final views clients read (`finals`).
pub fn check(nodes: &[(String, Running)], finals: &BTreeMap<TaskId, TaskInfo>, at_ms: u64) -> Vec<Violation> {
    let Some((first_name, first_running)) = nodes.first() else {
        return Vec::new();
    };
    let first = histories(first_running);
    let mut out = Vec::new();
    for (name, running) in &nodes[1..] {
        let other = histories(running);
        let differs = first
            .keys()
            .chain(other.keys())
            .find(|id| first.get(id) != other.get(id));
        if let Some(id) = differs {
            out.push(Violation::new(
                NAME,
                at_ms,
                format!(
                    "task {id}: {first_name} records {:?}, {name} records {:?}",
                    first.get(id),
                    other.get(id)
                ),
            ));
        }
    }
    // A client's last view of a task still moving (`all_final` reports it) trails the history.
    for (id, info) in finals.iter().filter(|(_, info)| info.state.is_final()) {
        let Some(history) = first.get(&id.0) else {
            continue;
        };
        if let Some(a) = history.iter().find(|a| a.attempt > info.attempt) {
            out.push(Violation::new(
                NAME,
                at_ms,
                format!(
                    "task {id} ended at attempt {} but records attempt {}",
                    info.attempt, a.attempt
                ),
            ));
        }
        let last = history.iter().find(|a| a.attempt == info.attempt);
        if info.state == TaskState::Succeeded
            && let Some(a) = last
            && a.ended.map(|(_, how)| how) != Some(AttemptEnd::Succeeded)
        {
            out.push(Violation::new(
                NAME,
                at_ms,
                format!(
                    "task {id} succeeded with attempt {} recorded as {:?}",
                    a.attempt, a.ended
                ),
            ));
        }
    }
    out
}
