//! A follower's log never goes back past entries it acknowledged (Raft §5.3 with durable
//! storage: an entry a follower acknowledged is on its disk, so a restart keeps it). openraft
//! checks this itself, in debug builds only: a leader that sees a follower's log conflict
//! below what it had matched panics ("follower log reversion"), and a node asked about an entry
//! below its committed index asserts that the entry is the committed one (in
//! `log_state_reader.rs`): a node that lost committed entries fails it; and the state machine
//! worker asserts that it read back every committed entry it was told to apply (in
//! `core/sm/worker.rs`): a log that lost them returns fewer. Each panic ends the simulated
//! run, so this checker reads the run's standard error instead of the cluster.

use super::Violation;

const NAME: &str = "durable_log";
const OPENRAFT_PANIC: &str = "follower log reversion is not allowed";
/// openraft's assertion that a log id below the committed index is the committed one.
const COMMITTED_ASSERTION: &str = "<= self.committed()";

/// Where openraft's state machine worker asserts it read back every entry it was to apply.
const APPLY_WORKER: &str = "src/core/sm/worker.rs";

/// The violation, if the run ended in one of openraft's durability checks (`stderr` of the run).
pub fn from_crash(stderr: &str) -> Option<Violation> {
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains("panicked at") && l.contains("openraft") && l.contains(APPLY_WORKER))
    {
        return Some(Violation::new(
            NAME,
            0,
            format!("a node could not read back committed entries to apply them (openraft: {line})"),
        ));
    }
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
        let err = "thread 'main' (1) panicked at /r/openraft-0.10.0-alpha.37/src/core/sm/worker.rs:211:13:\n\
                   assertion `left == right` failed\n  left: 139\n right: 130\n";
        let v = from_crash(err).expect("recognized");
        assert!(v.detail.contains("read back committed entries"), "{}", v.detail);
        assert!(from_crash("thread 'main' panicked at x.rs:1:2:\nsomething else\n").is_none());
    }
}
