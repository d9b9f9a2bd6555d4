//! A stale lease's completion never takes effect. The simulated handler puts the attempt that
//! ran into its result; a task that succeeded must hold the result of its last attempt, since
//! a new attempt starts only after the previous lease expired (and with it, the right of the
//! old attempt to complete).

use std::collections::BTreeMap;

use flotilla_client::TaskId;
use flotilla_client::TaskInfo;
use flotilla_client::TaskState;

use super::Violation;
use crate::dst::node::TaskResult;

const NAME: &str = "no_stale_completion";

pub fn check(finals: &BTreeMap<TaskId, TaskInfo>, at_ms: u64) -> Vec<Violation> {
    let mut out = Vec::new();
    for (id, info) in finals {
        if info.state != TaskState::Succeeded {
            continue;
        }
        match serde_json::from_slice::<TaskResult>(&info.result) {
            Ok(result) if result.attempt == info.attempt => {}
            Ok(result) => out.push(Violation::new(
                NAME,
                at_ms,
                format!(
                    "task {id} succeeded with the result of attempt {} while attempt {} held the lease",
                    result.attempt, info.attempt
                ),
            )),
            Err(e) => out.push(Violation::new(
                NAME,
                at_ms,
                format!("task {id}: unreadable result: {e}"),
            )),
        }
    }
    out
}
