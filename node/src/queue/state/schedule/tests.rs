//! Schedules through `apply`: firing on the log's time, the grace and both catch-up policies,
//! add/replace/pause/remove, the bounds, snapshots; and a property test that drives random
//! clocks (with jumps and snapshot round trips) and checks, against the rule stated plainly,
//! that every due slot is enqueued exactly once and none early.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::queue::command::Cadence;
use crate::queue::command::Command;
use crate::queue::command::Request;
use crate::queue::command::Response;
use crate::queue::command::TaskState;

fn task() -> TaskSpec {
    TaskSpec {
        name: "report".into(),
        queue: String::new(),
        args: Bytes::from_static(b"{}"),
        priority: 0,
        eta_ms: None,
        countdown_ms: None,
        max_retries: 0,
        backoff_ms: 0,
        time_limit_ms: None,
        idempotency_key: None,
        // Long enough that no fired task is purged within a test.
        result_ttl_ms: 1 << 40,
        headers: Default::default(),
        concurrency_key: None,
    }
}

fn every(name: &str, every_ms: u64, grace_ms: u64, catch_up: CatchUp) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cadence: Cadence::Interval { every_ms },
        catch_up,
        grace_ms,
        task: task(),
    }
}

fn cron(name: &str, expr: &str, tz: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cadence: Cadence::Cron {
            expr: expr.into(),
            tz: tz.into(),
        },
        catch_up: CatchUp::Skip,
        grace_ms: 60_000,
        task: task(),
    }
}

fn apply(q: &mut QueueState, now: UnixMs, commands: Vec<Command>) -> Vec<Response> {
    let r = q.apply(
        &Request {
            now_ms: now,
            commands,
        },
        &mut ApplyEffects::default(),
    );
    q.check_invariants().unwrap();
    r
}

fn add(
    q: &mut QueueState,
    now: UnixMs,
    spec: ScheduleSpec,
    replace: bool,
) -> Result<ScheduleAdded, ScheduleRefusal> {
    match apply(
        q,
        now,
        vec![Command::AddSchedule {
            schedule: spec.into(),
            replace,
        }],
    )
    .remove(0)
    {
        Response::ScheduleAdded(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The slots schedule `id` enqueued a live task for, with each task's creation time.
fn fired(
    q: &QueueState,
    id: ScheduleId,
    slots: impl IntoIterator<Item = UnixMs>,
) -> BTreeMap<UnixMs, UnixMs> {
    slots
        .into_iter()
        .filter_map(|s| {
            let task = q.task_by_key(&schedule_key(id, s))?;
            Some((s, q.task(task)?.created_ms))
        })
        .collect()
}

#[test]
fn an_interval_fires_each_slot_once_on_the_logs_time() {
    let mut q = QueueState::new();
    let added = add(&mut q, 10_000, every("tick", 1_000, 5_000, CatchUp::Skip), false).unwrap();
    assert_eq!(added.outcome, AddOutcome::Added);
    assert_eq!(added.next_ms, Some(11_000));
    assert_eq!(q.next_deadline_ms(), Some(11_000));
    // Before the slot nothing fires; at it, it does; again at the same time, nothing more.
    apply(&mut q, 10_999, vec![Command::Tick]);
    assert_eq!(q.task_count(), 0);
    for now in [11_000, 11_000, 11_500] {
        apply(&mut q, now, vec![Command::Tick]);
    }
    assert_eq!(fired(&q, added.id, [11_000]), BTreeMap::from([(11_000, 11_000)]));
    assert_eq!(q.task_count(), 1);
    // A later entry of any kind fires the slots it passed (within the grace), each once.
    apply(&mut q, 13_200, vec![Command::Cancel { ids: vec![] }]);
    assert_eq!(
        fired(&q, added.id, [12_000, 13_000]),
        BTreeMap::from([(12_000, 13_200), (13_000, 13_200)])
    );
    // A leader whose clock is behind cannot move time back, nor fire anything twice.
    apply(&mut q, 9_000, vec![Command::Tick]);
    assert_eq!(q.task_count(), 3);
    let info = q.schedules().get("tick").unwrap();
    assert_eq!(
        (info.fired, info.last_slot_ms, info.next_ms),
        (3, Some(13_000), Some(14_000))
    );
    let t = q.task(info.last_task.unwrap()).unwrap();
    assert_eq!((t.name.as_str(), t.state), ("report", TaskState::Pending));
}

#[test]
fn slots_missed_past_the_grace_are_skipped_or_run_once() {
    for (catch_up, expected_extra) in [(CatchUp::Skip, 0), (CatchUp::Once, 1)] {
        let mut q = QueueState::new();
        let id = add(&mut q, 0, every("s", 1_000, 2_500, catch_up), false)
            .unwrap()
            .id;
        // An outage: nothing applied from 0 until 10,000. Slots 1,000..=7,000 are missed; 8,000,
        // 9,000 and 10,000 are within the grace.
        apply(&mut q, 10_000, vec![Command::Tick]);
        let got = fired(&q, id, (1..=10).map(|k| k * 1_000));
        let mut expected: Vec<UnixMs> = vec![8_000, 9_000, 10_000];
        if catch_up == CatchUp::Once {
            expected.insert(0, 1_000); // the catch-up run, keyed by the first missed slot
        }
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), expected, "{catch_up:?}");
        assert_eq!(q.task_count(), 3 + expected_extra);
        let info = q.schedules().get("s").unwrap();
        assert_eq!((info.outages, info.next_ms), (1, Some(11_000)));
    }
}

#[test]
fn adding_is_idempotent_and_replacing_is_explicit() {
    let mut q = QueueState::new();
    let spec = every("nightly", 60_000, 60_000, CatchUp::Skip);
    let first = add(&mut q, 1_000, spec.clone(), false).unwrap();
    let again = add(&mut q, 2_000, spec.clone(), false).unwrap();
    assert_eq!(
        again,
        ScheduleAdded {
            outcome: AddOutcome::Unchanged,
            ..first
        }
    );
    let other = every("nightly", 30_000, 60_000, CatchUp::Skip);
    assert_eq!(
        add(&mut q, 3_000, other.clone(), false),
        Err(ScheduleRefusal::Exists {
            name: "nightly".into()
        })
    );
    let replaced = add(&mut q, 3_000, other, true).unwrap();
    assert_eq!(
        (replaced.id, replaced.outcome, replaced.next_ms),
        (first.id, AddOutcome::Replaced, Some(33_000))
    );
    assert_eq!(q.schedules().len(), 1);
    let second = add(
        &mut q,
        4_000,
        every("hourly", 3_600_000, 60_000, CatchUp::Once),
        false,
    )
    .unwrap();
    assert_eq!(second.id, first.id + 1);
}

#[test]
fn a_paused_schedule_runs_nothing_and_resumes_at_its_next_slot() {
    let mut q = QueueState::new();
    let id = add(&mut q, 0, every("p", 1_000, 60_000, CatchUp::Once), false)
        .unwrap()
        .id;
    let pause = |paused| Command::PauseSchedule {
        name: "p".into(),
        paused,
    };
    assert_eq!(
        apply(&mut q, 500, vec![pause(true)]),
        [Response::SchedulePaused(true)]
    );
    assert_eq!(q.next_deadline_ms(), None);
    apply(&mut q, 5_000, vec![Command::Tick]);
    assert_eq!(q.task_count(), 0);
    apply(&mut q, 5_500, vec![pause(false)]);
    assert_eq!(q.schedules().get("p").unwrap().next_ms, Some(6_000));
    apply(&mut q, 6_000, vec![Command::Tick]);
    assert_eq!(fired(&q, id, (1..=6).map(|k| k * 1_000)).len(), 1);
    let unknown = Command::PauseSchedule {
        name: "nope".into(),
        paused: true,
    };
    assert_eq!(
        apply(&mut q, 6_000, vec![unknown]),
        [Response::SchedulePaused(false)]
    );
}

#[test]
fn removing_stops_it_and_keeps_its_tasks() {
    let mut q = QueueState::new();
    add(&mut q, 0, every("r", 1_000, 60_000, CatchUp::Skip), false).unwrap();
    apply(&mut q, 1_000, vec![Command::Tick]);
    let remove = || Command::RemoveSchedule { name: "r".into() };
    assert_eq!(
        apply(&mut q, 1_500, vec![remove()]),
        [Response::ScheduleRemoved(true)]
    );
    assert_eq!(
        apply(&mut q, 1_500, vec![remove()]),
        [Response::ScheduleRemoved(false)]
    );
    apply(&mut q, 9_000, vec![Command::Tick]);
    assert_eq!(q.task_count(), 1);
    assert!(q.schedules().is_empty());
    assert!(!q.schedules().is_pristine());
}

#[test]
fn a_cron_schedule_fires_on_its_zones_local_time() {
    let mut q = QueueState::new();
    // 2026-10-25 in Berlin: 02:30 occurs twice; it runs once (00:30Z), not at 01:30Z.
    let t0 = 1_792_884_000_000; // 2026-10-24T23:20:00Z
    let id = add(&mut q, t0, cron("berlin", "30 2 * * *", "Europe/Berlin"), false)
        .unwrap()
        .id;
    let first = t0 + 70 * 60_000; // 00:30Z
    assert_eq!(q.schedules().get("berlin").unwrap().next_ms, Some(first));
    for now in (t0..t0 + 3 * 3_600_000).step_by(50_000) {
        apply(&mut q, now, vec![Command::Tick]);
    }
    assert_eq!(q.task_count(), 1);
    assert_eq!(fired(&q, id, [first]).len(), 1);
    // The next is 02:30 CET on the 26th: 01:30Z.
    assert_eq!(
        q.schedules().get("berlin").unwrap().next_ms,
        Some(first + 25 * 3_600_000)
    );
}

#[test]
fn bad_schedules_are_refused_and_change_nothing() {
    let mut q = QueueState::new();
    let refused = |q: &mut QueueState, spec: ScheduleSpec| add(q, 0, spec, false).unwrap_err();
    let mut keyed = every("k", 1_000, 60_000, CatchUp::Skip);
    keyed.task.idempotency_key = Some("mine".into());
    assert!(matches!(
        refused(&mut q, keyed),
        ScheduleRefusal::TaskOption { .. }
    ));
    let mut eta = every("e", 1_000, 60_000, CatchUp::Skip);
    eta.task.eta_ms = Some(5);
    assert!(matches!(refused(&mut q, eta), ScheduleRefusal::TaskOption { .. }));
    assert!(matches!(
        refused(&mut q, every("", 1_000, 60_000, CatchUp::Skip)),
        ScheduleRefusal::BadName { len: 0 }
    ));
    assert!(matches!(
        refused(&mut q, every("g", 1_000, 999, CatchUp::Skip)),
        ScheduleRefusal::BadGrace { .. }
    ));
    assert!(matches!(
        refused(&mut q, every("g", 1_000, MAX_GRACE_MS + 1, CatchUp::Skip)),
        ScheduleRefusal::BadGrace { .. }
    ));
    let mut big = every("big", 1_000, 60_000, CatchUp::Skip);
    big.task.args = Bytes::from(vec![b' '; MAX_SCHEDULE_BYTES]);
    assert!(matches!(refused(&mut q, big), ScheduleRefusal::TooLarge { .. }));
    // Feb 30th never comes.
    assert!(matches!(
        refused(&mut q, cron("never", "0 0 30 2 *", "")),
        ScheduleRefusal::NoSlot { .. }
    ));
    assert!(q.schedules().is_pristine());
}

#[test]
fn the_table_is_bounded_by_count() {
    let mut q = QueueState::new();
    let commands: Vec<Command> = (0..MAX_SCHEDULES + 1)
        .map(|i| Command::AddSchedule {
            schedule: every(&format!("s{i}"), 3_600_000, 60_000, CatchUp::Skip).into(),
            replace: false,
        })
        .collect();
    let responses = q.apply(&Request { now_ms: 0, commands }, &mut ApplyEffects::default());
    assert!(
        responses[..MAX_SCHEDULES]
            .iter()
            .all(|r| matches!(r, Response::ScheduleAdded(Ok(_))))
    );
    assert_eq!(
        responses[MAX_SCHEDULES],
        Response::ScheduleAdded(Err(ScheduleRefusal::Full))
    );
    assert_eq!(q.schedules().len(), MAX_SCHEDULES);
    // Replacing one is still possible when full; the table stays consistent.
    add(&mut q, 1, every("s0", 7_200_000, 60_000, CatchUp::Skip), true).unwrap();
}

#[test]
fn the_table_is_bounded_by_bytes() {
    let mut q = QueueState::new();
    let mut spec = every("b00000", 3_600_000, 60_000, CatchUp::Skip);
    spec.task.args = Bytes::from(vec![b' '; MAX_SCHEDULE_BYTES - 512]);
    let most = (MAX_SCHEDULES_TOTAL_BYTES / spec.size() as u64) as usize;
    let commands: Vec<Command> = (0..=most)
        .map(|i| Command::AddSchedule {
            schedule: ScheduleSpec {
                name: format!("b{i:05}"),
                ..spec.clone()
            }
            .into(),
            replace: false,
        })
        .collect();
    let responses = q.apply(&Request { now_ms: 0, commands }, &mut ApplyEffects::default());
    assert_eq!(
        responses.last(),
        Some(&Response::ScheduleAdded(Err(ScheduleRefusal::Full)))
    );
    assert_eq!(q.schedules().len(), most);
    q.check_invariants().unwrap();
}

#[test]
fn schedules_survive_a_snapshot_round_trip() {
    let mut q = QueueState::new();
    add(&mut q, 0, every("a", 1_000, 60_000, CatchUp::Once), false).unwrap();
    add(&mut q, 0, cron("b", "*/5 * * * * *", "America/New_York"), false).unwrap();
    apply(
        &mut q,
        3_000,
        vec![Command::PauseSchedule {
            name: "b".into(),
            paused: true,
        }],
    );
    let bytes = crate::encoding::encode(&q).unwrap();
    let back: QueueState = crate::encoding::decode(&bytes).unwrap();
    assert_eq!(back, q);
    back.check_invariants().unwrap();
    assert_eq!(back.schedules().list(), q.schedules().list());
    assert_eq!(back.next_deadline_ms(), Some(4_000));
}

/// The rule of the module docs, stated over the whole history instead of step by step: for
/// the applies' clock readings `nows` (already made monotone), which slots are enqueued and
/// at which apply.
fn expected_fires(
    slots: &Slots,
    created: UnixMs,
    nows: &[UnixMs],
    grace: u64,
    catch_up: CatchUp,
) -> Vec<(UnixMs, usize)> {
    let mut out = Vec::new();
    let mut s = slots.next_after(created);
    // Group the slots by the first apply whose clock reached them.
    let mut missed_run: Option<(UnixMs, usize)> = None;
    while let Some(slot) = s {
        let Some(i) = nows.iter().position(|n| *n >= slot) else {
            break;
        };
        if nows[i] - slot <= grace {
            out.push((slot, i));
        } else if catch_up == CatchUp::Once && missed_run.is_none_or(|(_, j)| j != i) {
            // The first missed slot of this apply stands for all of them.
            missed_run = Some((slot, i));
            out.push((slot, i));
        }
        s = slots.next_after(slot);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random clocks (small steps, outages, a leader behind), random cadences and policies,
    /// a snapshot round trip now and then: the tasks enqueued are exactly the rule's, each
    /// once, none before its slot.
    #[test]
    fn every_due_slot_is_enqueued_exactly_once_and_none_early(
        steps in prop::collection::vec((0u64..4_000, 0u32..20), 1..60),
        cadence in prop_oneof![
            (1_000u64..5_000).prop_map(|every_ms| Cadence::Interval { every_ms }),
            prop::sample::select(&["*/2 * * * * *", "*/5 * * * * *", "0,1,2,30 * * * * *", "* * * * *"][..])
                .prop_map(|e| Cadence::Cron { expr: e.into(), tz: "Europe/Berlin".into() }),
        ],
        grace_ms in 1_000u64..10_000,
        once in any::<bool>(),
    ) {
        let catch_up = if once { CatchUp::Once } else { CatchUp::Skip };
        let t0 = 1_792_887_000_000; // 2026-10-25T00:10:00Z: the repeated hour in Berlin
        let mut q = QueueState::new();
        let spec = ScheduleSpec { name: "p".into(), cadence: cadence.clone(), catch_up, grace_ms, task: task() };
        let id = add(&mut q, t0, spec, false).unwrap().id;
        let mut clock = t0;
        let mut nows = Vec::new();
        for (i, (dt, kind)) in steps.iter().enumerate() {
            // Mostly small steps; sometimes an outage; sometimes a leader whose clock is behind.
            let now = match kind {
                0 => clock.saturating_sub(*dt),
                1 => clock + dt * 30,
                _ => clock + dt,
            };
            apply(&mut q, now, vec![Command::Tick]);
            clock = q.now_ms();
            nows.push(clock);
            if i % 7 == 3 {
                let bytes = crate::encoding::encode(&q).unwrap();
                q = crate::encoding::decode(&bytes).unwrap();
            }
        }
        let slots = Slots::new(&cadence, t0).unwrap();
        let expected = expected_fires(&slots, t0, &nows, grace_ms, catch_up);
        let until_now = std::iter::successors(slots.next_after(t0), |s| slots.next_after(*s)).take_while(|s| *s <= clock);
        let got = fired(&q, id, until_now);
        let want: BTreeMap<UnixMs, UnixMs> = expected.iter().map(|(s, i)| (*s, nows[*i])).collect();
        prop_assert_eq!(&got, &want);
        // Exactly once: no task besides these; none early.
        prop_assert_eq!(q.task_count(), want.len());
        prop_assert!(got.iter().all(|(slot, created)| created >= slot));
        prop_assert_eq!(q.schedules().get("p").unwrap().fired, want.len() as u64);
    }
}
