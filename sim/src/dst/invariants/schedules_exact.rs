//! Every due slot of every schedule is enqueued exactly once, and none early (issue 12; the
//! rule: node/src/queue/state/schedule.rs). Checked on a replica once faults heal and every
//! replica applied the same log (`replicas_agree` says the others hold the same).
//!
//! The schedules are the workload's (`workload::SCHEDULES`), whose slots this checker computes
//! by plain arithmetic, not with the node's slot code. For each, every slot after it was added
//! and before its next slot (the first it has not handled) is:
//! - with a grace longer than the run (every slot due): enqueued, as one live task keyed
//!   `schedule:<id>:<slot>`, created (on the log's time) at or after the slot;
//! - with the short grace: enqueued at most once, never early, on time (within the grace)
//!   unless it is a catch-up run;
//!
//! and the schedule's count of enqueued tasks equals the tasks found: a second enqueue of a
//! slot (which its key would turn into a duplicate) or one at a time that is not a slot would
//! show as a difference.

use flotilla_node::queue::Cadence;
use flotilla_node::queue::QueueState;
use flotilla_node::queue::schedule_key;

use super::Violation;
use crate::dst::node::Running;
use crate::dst::workload::SCHEDULES;
use crate::dst::workload::SimCadence;

const NAME: &str = "schedules_exact";

/// Violations listed in full; the rest are counted.
const MAX_REPORTED: usize = 5;

/// A grace at least this long makes every slot of the run due.
const LONGER_THAN_ANY_RUN_MS: u64 = 3_600_000;

/// Check `running`'s replica (all replicas agree by now).
pub fn check(running: &Running, at_ms: u64) -> Vec<Violation> {
    running.replica.read(|q| check_state(q, at_ms))
}

fn check_state(q: &QueueState, at_ms: u64) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut bad = |m: String| out.push(Violation::new(NAME, at_ms, m));
    for (name, cadence, _, _) in SCHEDULES {
        let Some(info) = q.schedules().get(name) else {
            // The workload gave up adding it; `all_final` reports that.
            continue;
        };
        let (first, step) = match (cadence, &info.spec.cadence) {
            (SimCadence::Every(ms), Cadence::Interval { every_ms }) if ms == *every_ms => {
                (info.created_ms + ms, ms)
            }
            (SimCadence::EverySecondsCron(n), Cadence::Cron { .. }) => {
                let step = n * 1_000;
                (info.created_ms / step * step + step, step)
            }
            _ => {
                bad(format!(
                    "schedule {name} holds another cadence: {:?}",
                    info.spec.cadence
                ));
                continue;
            }
        };
        let Some(next) = info.next_ms else {
            bad(format!("schedule {name} has no next slot"));
            continue;
        };
        if next < first || (next - first) % step != 0 {
            bad(format!(
                "schedule {name}: next slot {next} is not one of its slots"
            ));
            continue;
        }
        let every_slot_due = info.spec.grace_ms >= LONGER_THAN_ANY_RUN_MS;
        let mut found = 0u64;
        for slot in (first..next).step_by(step as usize) {
            let task = q
                .task_by_key(&schedule_key(info.id, slot))
                .and_then(|id| q.task(id));
            let Some(task) = task else {
                if every_slot_due {
                    bad(format!("schedule {name}: slot {slot} was due and never enqueued"));
                }
                continue;
            };
            found += 1;
            if task.created_ms < slot {
                bad(format!(
                    "schedule {name}: slot {slot} enqueued early, at {}",
                    task.created_ms
                ));
            }
            let late = task.created_ms.saturating_sub(slot);
            if !every_slot_due && late > info.spec.grace_ms && info.outages == 0 {
                bad(format!(
                    "schedule {name}: slot {slot} enqueued {late} ms late without an outage"
                ));
            }
        }
        if found != info.fired {
            bad(format!(
                "schedule {name}: {} enqueues counted, {found} tasks of its slots found",
                info.fired
            ));
        }
    }
    if out.len() > MAX_REPORTED {
        let more = out.len() - MAX_REPORTED;
        out.truncate(MAX_REPORTED);
        out.push(Violation::new(NAME, at_ms, format!("and {more} more")));
    }
    out
}
