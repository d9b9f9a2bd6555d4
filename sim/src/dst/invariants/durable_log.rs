//! A follower's log never goes back past entries it acknowledged (Raft §5.3 with durable
//! storage: an entry a follower acknowledged is on its disk, so a restart keeps it). openraft
//! checks this itself, in debug builds only: a leader that sees a follower's log conflict
//! below what it had matched panics ("follower log reversion"). The panic ends the simulated
//! run, so this checker reads the run's standard error instead of the cluster.

use super::Violation;

const NAME: &str = "durable_log";
const OPENRAFT_PANIC: &str = "follower log reversion is not allowed";

/// The violation, if the run ended in openraft's log-reversion check (`stderr` of the run).
pub fn from_crash(stderr: &str) -> Option<Violation> {
    let line = stderr.lines().find(|l| l.contains(OPENRAFT_PANIC))?;
    Some(Violation::new(
        NAME,
        0,
        format!("a follower's log went back past entries it had acknowledged (openraft: {line})"),
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
        assert!(from_crash("thread 'main' panicked at x.rs:1:2:\nsomething else\n").is_none());
    }
}
