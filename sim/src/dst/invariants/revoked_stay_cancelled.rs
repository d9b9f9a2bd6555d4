//! A revoked task stays cancelled: once an operator's `Revoke` (`cancel --terminate`) answered
//! that it cancelled or terminated a task, no completion of the attempt that was running
//! takes effect, and the task never runs again (the workload never retries it), so its final
//! state is `Cancelled` (`queue/state/operator.rs`: the revoke fences the lease in the log;
//! the pool holding it aborts the run and drops its result, `worker/core/revoke.rs`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use flotilla_client::TaskId;
use flotilla_client::TaskInfo;
use flotilla_client::TaskState;

use super::Violation;

const NAME: &str = "revoked_stay_cancelled";

pub fn check(revoked: &BTreeSet<TaskId>, finals: &BTreeMap<TaskId, TaskInfo>, at_ms: u64) -> Vec<Violation> {
    revoked
        .iter()
        .filter_map(|id| finals.get(id))
        .filter(|info| info.state != TaskState::Cancelled)
        .map(|info| {
            Violation::new(
                NAME,
                at_ms,
                format!(
                    "task {} was revoked, then ended {} (attempt {})",
                    info.id, info.state, info.attempt
                ),
            )
        })
        .collect()
}
