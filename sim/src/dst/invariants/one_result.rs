//! No task has two recorded results: once a client saw a task final, every later read shows
//! the same state and the same result bytes (a second successful completion taking effect,
//! or a finished task running again, would change them).

use super::Violation;
use crate::history::Verdict;

const NAME: &str = "one_result";

pub fn check(verdict: &Verdict, at_ms: u64) -> Vec<Violation> {
    Violation::of(
        NAME,
        at_ms,
        &verdict.duplicate_results,
        "tasks changed after they were seen final",
    )
    .into_iter()
    .collect()
}
