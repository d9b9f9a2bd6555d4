//! No task is leased over and over: once the replicas converge, no task has started more than
//! [`MAX_ATTEMPTS`] attempts. Each fault can cost a task a few attempts (a lease that expired
//! behind a partition, a drain's release, a grant too short to start); a task that churns
//! through attempts with nothing failing is a pool and the log disagreeing in a loop, which
//! `all_final` sees only if the loop outlives the run (`sim dst --seed 55868944`: one task
//! granted and released ~50 times a second after a clock jump, for good).

use flotilla_node::queue::state::TaskFilter;

use super::Violation;
use crate::dst::node::Running;

const NAME: &str = "attempts_bounded";

/// Far above what the faults of one run cost a task, far below what a loop spends in seconds.
pub const MAX_ATTEMPTS: u32 = 100;

/// Check one converged replica's tasks.
pub fn check(running: &Running, at_ms: u64) -> Vec<Violation> {
    let worst = running.replica.read(|q| {
        let page = q.list_tasks(&TaskFilter::default(), None, usize::MAX, usize::MAX);
        page.tasks
            .iter()
            .filter(|t| t.attempt > MAX_ATTEMPTS)
            .map(|t| (t.id, t.attempt, t.state))
            .max_by_key(|(_, attempt, _)| *attempt)
    });
    match worst {
        Some((id, attempt, state)) => vec![Violation::new(
            NAME,
            at_ms,
            format!("task {id} started {attempt} attempts (more than {MAX_ATTEMPTS}; now {state:?})"),
        )],
        None => Vec::new(),
    }
}
