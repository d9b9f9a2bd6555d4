//! The one rule for queue names, wherever a name enters the node: the `--queues` flag, a
//! client's submit, and every command proposed to the log (leases, purges, pauses; also those a
//! peer forwards). A name is 1 to [`MAX_QUEUE_NAME_LEN`] bytes of `A-Z a-z 0-9 - _ . :`: it
//! shows in logs, metrics and the CLI as it is, so it holds nothing that needs escaping.
//!
//! The state machine itself does not check names: its `apply` must stay what it was for entries
//! already in logs (docs/adr/002-format-versions.md), so names are checked before they reach
//! the log.

use super::command::Command;
use super::command::LimitScope;

/// Longest queue name, in bytes.
pub const MAX_QUEUE_NAME_LEN: usize = 128;

/// A string that is not a queue name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' is not a queue name (1-128 of A-Z a-z 0-9 - _ . :)")]
pub struct InvalidQueueName {
    /// The name as shown in the error: escaped, and cut to 64 characters (it came from outside).
    shown: String,
}

/// Check `name` against the rule (see the module docs).
pub fn check_queue_name(name: &str) -> Result<(), InvalidQueueName> {
    let valid = !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if valid {
        return Ok(());
    }
    let mut shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().nth(64).is_some() {
        shown.push('…');
    }
    Err(InvalidQueueName { shown })
}

/// Check every queue name `commands` carry: the queue of each submitted or scheduled task
/// (empty: the default queue), a lease's queues, a purged or paused queue.
pub fn check_commands(commands: &[Command]) -> Result<(), InvalidQueueName> {
    for command in commands {
        match command {
            Command::Submit { tasks } => {
                // An empty queue means the default one (`TaskSpec::queue`).
                for task in tasks.iter().filter(|t| !t.queue.is_empty()) {
                    check_queue_name(&task.queue)?;
                }
            }
            Command::Lease { queues, .. } => {
                for queue in queues {
                    check_queue_name(queue)?;
                }
            }
            Command::PurgeQueue { queue } | Command::PauseQueue { queue, .. } => {
                check_queue_name(queue)?;
            }
            Command::SetLimit {
                scope: LimitScope::Queue(queue),
                ..
            }
            | Command::RemoveLimit {
                scope: LimitScope::Queue(queue),
            } => check_queue_name(queue)?,
            Command::SetLimit { .. } | Command::RemoveLimit { .. } => {}
            Command::Complete { .. }
            | Command::Heartbeat { .. }
            | Command::Release { .. }
            | Command::ReleasePool { .. }
            | Command::ClearStanding { .. }
            | Command::Cancel { .. }
            | Command::Tick
            | Command::AllocateNodeId
            | Command::CreateToken { .. }
            | Command::RevokeToken { .. }
            | Command::Progress { .. }
            | Command::RemoveSchedule { .. }
            | Command::PauseSchedule { .. }
            | Command::Retry { .. }
            | Command::Revoke { .. }
            | Command::RecordAttempts => {}
            Command::AddSchedule { schedule, .. } if !schedule.task.queue.is_empty() => {
                check_queue_name(&schedule.task.queue)?;
            }
            Command::AddSchedule { .. } => {}
            Command::DeclareTasks { tasks, .. } => {
                for task in tasks.iter().filter(|t| !t.queue.is_empty()) {
                    check_queue_name(&task.queue)?;
                }
            }
            Command::SubmitWorkflow { workflow } => {
                for task in workflow.tasks.iter().filter(|t| !t.spec.queue.is_empty()) {
                    check_queue_name(&task.spec.queue)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_of_the_rule_pass_and_others_are_refused_readably() {
        for ok in ["default", "a", "billing.eu-1:high_prio", &"q".repeat(128)] {
            assert_eq!(check_queue_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "with space",
            "ünïcode",
            "new\nline",
            "tab\t",
            &"q".repeat(129),
        ] {
            assert!(check_queue_name(bad).is_err(), "{bad:?}");
        }
        let err = check_queue_name("new\nline").unwrap_err().to_string();
        assert_eq!(
            err,
            "'new\\nline' is not a queue name (1-128 of A-Z a-z 0-9 - _ . :)"
        );
        let long = check_queue_name(&"x ".repeat(1000)).unwrap_err().to_string();
        assert!(long.len() < 150, "{long}");
    }

    #[test]
    fn every_command_that_names_a_queue_is_checked() {
        let purge = |queue: &str| Command::PurgeQueue { queue: queue.into() };
        let pause = Command::PauseQueue {
            queue: "bad name".into(),
            paused: true,
        };
        let lease = Command::Lease {
            pool: "w".into(),
            queues: vec!["ok".into(), "".into()],
            max: 1,
            lease_ms: 1,
            standing_ticket: None,
        };
        assert!(check_commands(&[purge("ok"), Command::Tick]).is_ok());
        assert!(check_commands(&[purge("ok"), purge("a/b")]).is_err());
        assert!(check_commands(&[pause]).is_err());
        assert!(check_commands(&[lease]).is_err());
    }

    proptest! {
        #[test]
        fn the_rule_is_exactly_the_documented_alphabet_and_length(name in ".{0,140}") {
            let alphabet = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            let expected = !name.is_empty() && name.len() <= 128 && alphabet;
            prop_assert_eq!(check_queue_name(&name).is_ok(), expected);
        }
    }
}
