//! Once faults heal, the cluster makes progress: each client gets a new submit acknowledged,
//! and every acknowledged task reaches a final state (succeeded, dead or cancelled).

use super::Violation;
use crate::history::Verdict;

const NAME: &str = "all_final";

pub fn check(verdict: &Verdict, client_problems: &[String], at_ms: u64) -> Vec<Violation> {
    let not_final = Violation::of(
        NAME,
        at_ms,
        &verdict.not_final,
        "acknowledged tasks not final after the healed phase",
    );
    client_problems
        .iter()
        .map(|p| Violation::new(NAME, at_ms, p.clone()))
        .chain(not_final)
        .collect()
}
