//! A follower's log never goes back past entries it acknowledged (Raft §5.3 with durable
//! storage: an entry a follower acknowledged is on its disk, so a restart keeps it). openraft
//! checks this itself, in debug builds only: a leader that sees a follower's log conflict
//! below what it had matched panics ("follower log reversion"), and a node asked about an entry
//! below its committed index asserts that the entry is the committed one (in
//! `log_state_reader.rs`): a node that lost committed entries fails it. Either panic ends the
//! simulated run, so this checker reads the run's standard error instead of the cluster.

use super::Violation;

const NAME: &str = "durable_log";
const OPENRAFT_PANIC: &str = "follower log reversion is not allowed";
/// openraft's assertion that a log id below the committed index is the committed one.
const COMMITTED_ASSERTION: &str = "<= self.committed()";

/// The violation, if the run ended in one of openraft's durability checks (`stderr` of the run).
pub fn from_crash(stderr: &str) -> Option<Violation> {
    if let Some(line) = stderr.lines().find(|l| l.contains(OPENRAFT_PANIC)) {
        return Some(Violation::new(
            NAME,
            0,
            format!("a follower's log went back past entries it had acknowledged (openraft: {line})"),
        ));
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("assertion failed") && l.contains(COMMITTED_ASSERTION))?;
    Some(Violation::new(
        NAME,
        0,
        format!("a node's log lost entries below its committed index (openraft: {line})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrafts_reversion_panic_is_a_violation_and_other_crashes_are_not() {
        let err = "thread 'main' panicked at x.rs:1:2:\nfollower log reversion is not allowed without \
                   `allow_log_reversion` enabled; matching: 7.130; conflict: 130\n";
        let v = from_crash(err).expect("recognized");
        assert_eq!(v.invariant, "durable_log");
        assert!(v.detail.contains("matching: 7.130"), "{}", v.detail);
        let err = "thread 'main' panicked at openraft/src/raft_state/log_state_reader.rs:25:13:\n\
                   assertion failed: Some(log_id.to_ref()) <= self.committed().to_ref()\n";
        let v = from_crash(err).expect("recognized");
        assert!(v.detail.contains("committed index"), "{}", v.detail);
        assert!(from_crash("thread 'main' panicked at x.rs:1:2:\nsomething else\n").is_none());
    }
}
