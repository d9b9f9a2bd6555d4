//! Every callback becomes pending exactly once, after all its parents are final, never before
//! (issue 12; the rule: node/src/queue/state/deps.rs). A waiting task (a chord's callback, a
//! chain's link, an error callback) is checked on each replica's state
//! (`QueueState::callbacks_exact`): each workflow records how often each of its tasks left
//! waiting (at most once), and whether its parents, recounted from the task table when it
//! left (not from the counter that decided it), were all final then; and no task still waits
//! once its parents decided it (never late). Checked on every live replica at each step after
//! which it applied something new (with `state_consistent`, which calls it), and at the end.
//! The `flows` client (`workload::workflows`) submits the chords and chains it looks at.

use flotilla_node::queue::QueueState;

/// The checker's name.
pub const NAME: &str = "callbacks_exact";

/// What is wrong with `q`'s waiting tasks, if anything.
pub fn check(q: &QueueState) -> Result<(), String> {
    q.callbacks_exact()
}
