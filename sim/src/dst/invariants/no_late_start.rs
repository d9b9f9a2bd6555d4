//! An attempt never starts after a later attempt of the same task started. A later attempt is
//! granted only once the earlier lease ended (expired, released or lost), so an earlier one
//! starting after it ran on a lease the log no longer held: the run a pool must not make when
//! it holds tasks ahead of its free workers (lease-ahead, `worker/core/buffer.rs`: a buffered
//! task whose lease would run short is released, not run late). The simulated handler records
//! every start, in simulated time.

use std::collections::BTreeMap;

use super::Violation;

const NAME: &str = "no_late_start";

/// `starts`: per task tag, the attempts that started, in the order they started.
pub fn check(starts: &BTreeMap<String, Vec<u32>>, at_ms: u64) -> Vec<Violation> {
    let mut late = 0;
    let mut example = None;
    for (tag, attempts) in starts {
        let mut highest = 0;
        for &attempt in attempts {
            if attempt < highest {
                late += 1;
                example.get_or_insert_with(|| {
                    format!("task {tag}: attempt {attempt} started after attempt {highest}")
                });
            }
            highest = highest.max(attempt);
        }
    }
    match example {
        Some(e) => vec![Violation::new(
            NAME,
            at_ms,
            format!("{late} attempts started after a later attempt of their task, e.g. {e}"),
        )],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_attempt_starting_last_is_a_violation() {
        let mut starts = BTreeMap::new();
        starts.insert("a".to_string(), vec![1, 2, 2, 3]);
        starts.insert("b".to_string(), vec![1, 1]);
        assert!(check(&starts, 5).is_empty());
        starts.insert("c".to_string(), vec![1, 2, 1]);
        let v = check(&starts, 5);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].detail.contains("attempt 1 started after attempt 2"),
            "{}",
            v[0]
        );
    }
}
