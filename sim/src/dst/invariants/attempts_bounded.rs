//! No task is leased over and over once faults heal: once the replicas converge, no task has
//! started more than [`MAX_AFTER_HEAL`] attempts since the heal. During the faulty phase a
//! task may spend many (a lease that expired behind a partition, a drain's release, grants
//! that arrive too late to start while message loss stretches every round trip: a hundred or
//! more in some seeds); once faults are undone the pools' measurements settle within a few
//! round trips. A task that still churns through attempts is a pool and the log disagreeing
//! in a loop, which `all_final` sees only if the loop outlives the run (`sim dst --seed
//! 55868944`: after a clock jump, one task granted and released ~50 times a second for good;
//! clock skews are not undone by the heal), or a measurement the faults left behind that
//! nothing refreshes (`--seed 52`: a round-trip estimate past the lease, ~200 releases).

use std::collections::BTreeMap;

use flotilla_node::queue::state::TaskFilter;

use super::Violation;
use crate::dst::node::NodeSlot;
use crate::dst::node::Running;

const NAME: &str = "attempts_bounded";

/// Far above what the healed phase costs a task, far below what a loop spends in seconds.
pub const MAX_AFTER_HEAL: u32 = 50;

/// Each task's attempts on `running`.
fn attempts(running: &Running) -> BTreeMap<u64, u32> {
    running.replica.read(|q| {
        let page = q.list_tasks(&TaskFilter::default(), None, usize::MAX, usize::MAX);
        page.tasks.iter().map(|t| (t.id, t.attempt)).collect()
    })
}

/// The attempts each task had started when the faults healed: the most any replica up then
/// shows (a lagging replica shows fewer).
pub fn at_heal(slots: &[NodeSlot]) -> BTreeMap<u64, u32> {
    let mut most = BTreeMap::new();
    for running in slots.iter().filter_map(NodeSlot::running) {
        for (id, attempt) in attempts(&running) {
            let m = most.entry(id).or_insert(0);
            *m = attempt.max(*m);
        }
    }
    most
}

/// Check one converged replica's tasks against their attempts at the heal.
pub fn check(running: &Running, at_heal: &BTreeMap<u64, u32>, at_ms: u64) -> Vec<Violation> {
    let worst = attempts(running)
        .into_iter()
        .map(|(id, attempt)| {
            (
                id,
                attempt,
                attempt.saturating_sub(at_heal.get(&id).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, _, since)| *since > MAX_AFTER_HEAL)
        .max_by_key(|(_, _, since)| *since);
    match worst {
        Some((id, attempt, since)) => vec![Violation::new(
            NAME,
            at_ms,
            format!(
                "task {id} started {since} attempts after the heal (more than {MAX_AFTER_HEAL}; {attempt} in all)"
            ),
        )],
        None => Vec::new(),
    }
}
