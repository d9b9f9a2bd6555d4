//! Once faults heal, the cluster makes progress: each client gets a new submit acknowledged,
//! and every acknowledged task reaches a final state (succeeded, dead or cancelled).

use super::Violation;
use crate::history::Verdict;

const NAME: &str = "all_final";

pub fn check(verdict: &Verdict, client_problems: &[String], at_ms: u64) -> Vec<Violation> {
    let mut out: Vec<Violation> = client_problems
        .iter()
        .map(|p| Violation::new(NAME, at_ms, p.clone()))
        .collect();
    if verdict.not_final.count > 0 {
        out.push(Violation::new(
            NAME,
            at_ms,
            format!(
                "{} acknowledged tasks not final after the healed phase, e.g. {:?}",
                verdict.not_final.count, verdict.not_final.examples
            ),
        ));
    }
    out
}
