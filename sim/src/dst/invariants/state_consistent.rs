//! Every replica's queue state is consistent in itself: its task table and every index agree,
//! and no standing capacity covers a pending task (`QueueState::check_invariants`, the
//! queue's own structural invariants, node/src/queue/state/invariants.rs).
//!
//! The other checkers see what clients saw and compare replicas with each other; they cannot
//! see an index that has drifted from the tasks on every replica alike (each applies the same
//! entries with the same code), until it loses or repeats a task. This looks inside: on every
//! live replica while the run goes on, and on every replica at the end. It also covers the
//! states a replica rebuilt from a snapshot and the log after a crash.
//!
//! The check walks the whole state (O(n log n)), so it does not run at every simulation step
//! (that doubled the CPU time of a seed): a replica is checked at each step after which it has
//! applied something new, which costs nothing measurable (20 seeds: ~17,000 checks, CPU time
//! within the noise of checking only at the end), and once more at the end.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::Violation;
use crate::dst::node::NodeSlot;
use crate::dst::node::Running;

const NAME: &str = "state_consistent";

/// What was last checked on each node, and which nodes were reported (once per node).
#[derive(Debug, Default)]
pub struct StateCheck {
    /// Node name → the applied index of its last check.
    last: BTreeMap<String, Option<u64>>,
    reported: BTreeSet<String>,
}

impl StateCheck {
    /// Check the running replicas that applied something since their last check.
    pub fn observe(&mut self, slots: &[NodeSlot], now_ms: u64) -> Vec<Violation> {
        let mut out = Vec::new();
        for slot in slots {
            if self.reported.contains(&slot.name) {
                continue;
            }
            let Some(running) = slot.running() else { continue };
            let applied = running.metrics().last_applied.map(|l| l.index);
            if self.last.get(&slot.name) != Some(&applied) {
                self.last.insert(slot.name.clone(), applied);
                out.extend(self.check_one(&slot.name, &running, now_ms));
            }
        }
        out
    }

    /// Check every running replica now, new applies or not: the end of a run.
    pub fn check_all(&mut self, slots: &[NodeSlot], now_ms: u64) -> Vec<Violation> {
        let mut out = Vec::new();
        for slot in slots {
            if self.reported.contains(&slot.name) {
                continue;
            }
            if let Some(running) = slot.running() {
                out.extend(self.check_one(&slot.name, &running, now_ms));
            }
        }
        out
    }

    fn check_one(&mut self, name: &str, running: &Running, now_ms: u64) -> Option<Violation> {
        // The same look inside serves `limits_respected` (its own file, its own name).
        let (invariant, problem) = running.replica.read(|q| match q.check_invariants() {
            Err(e) => Some((NAME, e)),
            Ok(()) => super::limits_respected::check(q)
                .map_err(|e| (super::limits_respected::NAME, e))
                .and_then(|()| {
                    super::callbacks_exact::check(q).map_err(|e| (super::callbacks_exact::NAME, e))
                })
                .err(),
        })?;
        self.reported.insert(name.to_owned());
        let m = running.metrics();
        Some(Violation::new(
            invariant,
            now_ms,
            format!(
                "{name} (node {}) at applied index {:?}: {problem}",
                m.id,
                m.last_applied.map(|l| l.index)
            ),
        ))
    }
}
