//! No acknowledged submit is lost: every task a submit returned `Ok` for is found afterwards
//! (never `NotFound`), and an idempotency key names one task only.

use super::Violation;
use crate::history::Verdict;

const NAME: &str = "acknowledged_not_lost";

pub fn check(verdict: &Verdict, at_ms: u64) -> Vec<Violation> {
    [
        Violation::of(NAME, at_ms, &verdict.lost, "acknowledged tasks lost"),
        Violation::of(
            NAME,
            at_ms,
            &verdict.key_conflicts,
            "tasks share an idempotency key with another task",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
