//! No acknowledged submit is lost: every task a submit returned `Ok` for is found afterwards
//! (never `NotFound`), and an idempotency key names one task only.

use super::Violation;
use crate::history::Verdict;

const NAME: &str = "acknowledged_not_lost";

pub fn check(verdict: &Verdict, at_ms: u64) -> Vec<Violation> {
    let mut out = Vec::new();
    if verdict.lost.count > 0 {
        out.push(Violation::new(
            NAME,
            at_ms,
            format!(
                "{} acknowledged tasks lost, e.g. {:?}",
                verdict.lost.count, verdict.lost.examples
            ),
        ));
    }
    if verdict.key_conflicts.count > 0 {
        out.push(Violation::new(
            NAME,
            at_ms,
            format!(
                "{} tasks share an idempotency key with another task, e.g. {:?}",
                verdict.key_conflicts.count, verdict.key_conflicts.examples
            ),
        ));
    }
    out
}
