//! No flow-control limit ever has more of its tasks leased than its concurrency (issue 12;
//! the rule: node/src/queue/state/limits.rs), counted afresh from each replica's task table
//! (`QueueState::limits_respected`), not from the counts the limits keep. Checked on every live
//! replica at each step after which it applied something new (with `state_consistent`, which
//! calls it), and at the end. The workload's limits are set before the tasks they cover are
//! submitted (the `limits` client), so the property holds at every applied index.
//!
//! Rates are not checked here: a replica's state shows grants, not when each was made across
//! entries; the state machine's property tests check every window of log time
//! (node/src/queue/state/tests/limits_proptests.rs).

use flotilla_node::queue::QueueState;

/// The checker's name.
pub const NAME: &str = "limits_respected";

/// What is wrong with `q`'s leases under its limits, if anything.
pub fn check(q: &QueueState) -> Result<(), String> {
    q.limits_respected()
}
