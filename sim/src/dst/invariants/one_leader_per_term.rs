//! At most one leader per term: Raft's election safety. Checked at every simulation step from
//! every running node's own view of its role and term.

use std::collections::BTreeMap;

use super::Violation;
use crate::dst::node::NodeSlot;

const NAME: &str = "one_leader_per_term";

/// The leaders seen so far, by term.
#[derive(Debug, Default)]
pub struct LeaderLog {
    leaders: BTreeMap<u64, u64>,
    reported: bool,
}

impl LeaderLog {
    /// Look at every running node; report a term with two leaders (once per run: one split
    /// brain is enough to fail the seed).
    pub fn observe(&mut self, slots: &[NodeSlot], now_ms: u64) -> Option<Violation> {
        for slot in slots {
            let Some(running) = slot.running() else { continue };
            let m = running.metrics();
            if !m.state.is_leader() {
                continue;
            }
            let first = *self.leaders.entry(m.current_term).or_insert(m.id);
            if first != m.id && !self.reported {
                self.reported = true;
                return Some(Violation::new(
                    NAME,
                    now_ms,
                    format!("nodes {first} and {} both led term {}", m.id, m.current_term),
                ));
            }
        }
        None
    }

    /// Leaders seen: (term, node id), by term. Part of the trace.
    pub fn new_leaders_since(&self, term: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.leaders.range(term + 1..).map(|(t, n)| (*t, *n))
    }
}
