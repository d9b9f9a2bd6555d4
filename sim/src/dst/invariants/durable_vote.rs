//! A node's term never lags the entries it applied. Raft persists the vote before it appends
//! entries of the vote's term, so on every node, at all times, including just after a restart,
//! the current term is at least the term of the last applied entry. A node that lost its vote
//! in a crash comes back with an older term and may vote twice in one term (two leaders, which
//! [`super::one_leader_per_term`] would see if the timing allows; this sees the cause).

use std::collections::BTreeSet;

use super::Violation;
use crate::dst::node::NodeSlot;

const NAME: &str = "durable_vote";

/// Nodes already reported (once per node is enough).
#[derive(Debug, Default)]
pub struct VoteCheck {
    reported: BTreeSet<String>,
}

impl VoteCheck {
    pub fn observe(&mut self, slots: &[NodeSlot], now_ms: u64) -> Vec<Violation> {
        let mut out = Vec::new();
        for slot in slots {
            let Some(running) = slot.running() else { continue };
            let m = running.metrics();
            let Some(applied) = m.last_applied else { continue };
            let applied_term = applied.leader_id.term;
            if m.current_term < applied_term && self.reported.insert(slot.name.clone()) {
                out.push(Violation::new(
                    NAME,
                    now_ms,
                    format!(
                        "{} (node {}) is at term {} but applied entry {} of term {applied_term}",
                        slot.name, m.id, m.current_term, applied.index
                    ),
                ));
            }
        }
        out
    }
}
