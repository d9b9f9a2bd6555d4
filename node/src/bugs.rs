//! Deliberate bugs, to prove the simulator's checker finds the kind of mistake it is there for.
//!
//! Compiled in only with the `bug-switches` feature (the simulator's build); without it
//! [`active`] is a constant `false` and every switch vanishes from the code. Even when compiled
//! in, a switch is off until `enable` turns it on, which only `sim dst --bug NAME` does.

/// A bug that can be switched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// The log store acknowledges an append (openraft's `IOFlushed`) before it is durable.
    AckBeforeFsync,
    /// The state machine accepts a completion from a stale attempt (an expired lease).
    AcceptStaleCompletion,
    /// The log store keeps a saved vote in memory only: a restarted node forgets it voted.
    ForgetVote,
    /// A heartbeat adds the lease's new deadline to the timer index without removing the old
    /// one: an index that no longer agrees with the task table (and a lease that expires early).
    HeartbeatKeepsOldTimer,
    /// A schedule fires every slot up to one second before its time (a rounding mistake).
    ScheduleFiresEarly,
    /// A concurrency limit counts one running task too few, so it lets one task too many run.
    LimitOffByOne,
    /// `Revoke` answers that it terminated a running task but leaves its lease alone: the
    /// task runs on and completes (`state/operator.rs`).
    RevokeKeepsLease,
    /// A task waiting for several parents becomes pending when one parent is still running.
    CallbackEarly,
    /// A snapshot's reader drops the attempt histories (`state/format.rs`): a replica that
    /// restarts from a snapshot, or installs one, shows none for the tasks that ran before it,
    /// unlike the others.
    SnapshotDropsAttempts,
}

impl Bug {
    /// Every switch, for command lines and tests.
    pub const ALL: [Bug; 9] = [
        Bug::AckBeforeFsync,
        Bug::AcceptStaleCompletion,
        Bug::ForgetVote,
        Bug::HeartbeatKeepsOldTimer,
        Bug::ScheduleFiresEarly,
        Bug::LimitOffByOne,
        Bug::RevokeKeepsLease,
        Bug::CallbackEarly,
        Bug::SnapshotDropsAttempts,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::AcceptStaleCompletion => "accept-stale-completion",
            Bug::ForgetVote => "forget-vote",
            Bug::HeartbeatKeepsOldTimer => "heartbeat-keeps-old-timer",
            Bug::ScheduleFiresEarly => "schedule-fires-early",
            Bug::LimitOffByOne => "limit-off-by-one",
            Bug::RevokeKeepsLease => "revoke-keeps-lease",
            Bug::CallbackEarly => "callback-early",
            Bug::SnapshotDropsAttempts => "snapshot-drops-attempts",
        }
    }

    /// The bug named `name`, if any.
    pub fn from_name(name: &str) -> Option<Bug> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[cfg(feature = "bug-switches")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cfg(feature = "bug-switches")]
fn code(bug: Option<Bug>) -> u8 {
    match bug {
        None => 0,
        Some(Bug::AckBeforeFsync) => 1,
        Some(Bug::AcceptStaleCompletion) => 2,
        Some(Bug::ForgetVote) => 3,
        Some(Bug::HeartbeatKeepsOldTimer) => 4,
        Some(Bug::ScheduleFiresEarly) => 5,
        Some(Bug::LimitOffByOne) => 6,
        Some(Bug::RevokeKeepsLease) => 7,
        Some(Bug::CallbackEarly) => 8,
        Some(Bug::SnapshotDropsAttempts) => 9,
    }
}

/// Turn `bug` on (or every switch off with `None`), process-wide.
#[cfg(feature = "bug-switches")]
pub fn enable(bug: Option<Bug>) {
    ACTIVE.store(code(bug), std::sync::atomic::Ordering::SeqCst);
}

/// Whether `bug` is switched on.
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(feature = "bug-switches")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == code(Some(bug))
    }
    #[cfg(not(feature = "bug-switches"))]
    {
        let _ = bug;
        false
    }
}
