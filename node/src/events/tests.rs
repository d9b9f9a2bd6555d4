//! What one apply becomes as events ([`derive`]) and what a filter lets through.

use bytes::Bytes;

use super::*;
use crate::queue::ApplyEffects;
use crate::queue::Completion;
use crate::queue::Outcome;
use crate::queue::ProgressReport;
use crate::queue::Response;
use crate::queue::TaskSpec;

/// A task of `queue` with one retry, retried at once.
fn spec(name: &str, queue: &str) -> TaskSpec {
    let mut spec = crate::worker::testing::task_spec(name, "{}");
    spec.queue = queue.into();
    spec.max_retries = 1;
    spec
}

/// Apply `commands` at `now_ms` as the entry at `index`; its events as `(kind, task, attempt,
/// pool, error)`, and the responses.
fn apply(
    q: &mut QueueState,
    names: &mut Names,
    index: u64,
    now_ms: u64,
    commands: Vec<Command>,
) -> (Vec<Event>, Vec<Response>) {
    let req = Request { now_ms, commands };
    let responses = q.apply(&req, &mut ApplyEffects::default());
    let mut events = Vec::new();
    derive(index, &req, q, names, |e| events.push(e));
    q.forget_seen();
    (events, responses)
}

fn lease(worker: &str, max: u32) -> Command {
    Command::Lease {
        pool: worker.into(),
        queues: vec![],
        max,
        lease_ms: 10_000,
        standing_ticket: None,
    }
}

fn summary(events: &[Event]) -> Vec<(Kind, TaskId, u32, String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            let error = e.error.as_deref().map(str::to_string);
            (e.kind, e.task, e.attempt, e.pool.to_string(), error)
        })
        .collect()
}

#[test]
fn a_task_life_becomes_one_event_per_step_with_the_entry_index_and_ordinals() {
    let mut q = QueueState::new();
    q.observe(true);
    let mut names = Names::default();
    let submit = Command::Submit {
        tasks: vec![spec("a", "q1"), spec("b", "q2")].into(),
    };
    let (events, _) = apply(&mut q, &mut names, 7, 100, vec![submit]);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.pos(), e.kind, &*e.queue, &*e.name))
            .collect::<Vec<_>>(),
        vec![
            ((7, 0), Kind::Submitted, "q1", "a"),
            ((7, 1), Kind::Submitted, "q2", "b")
        ]
    );
    assert!(events.iter().all(|e| e.at_ms == 100));

    let (events, responses) = apply(&mut q, &mut names, 8, 110, vec![lease("pool-1", 1)]);
    assert_eq!(
        summary(&events),
        vec![(Kind::Started, 1, 1, "pool-1".into(), None)]
    );
    let Response::Leased(grants) = &responses[0] else {
        panic!()
    };
    let first = grants[0].lease;

    let report = ProgressReport {
        lease: first,
        data: Bytes::from_static(b"{\"done\":1}"),
    };
    let fail = Command::Complete {
        pool: "pool-1".into(),
        completions: vec![Completion {
            lease: first,
            outcome: Outcome::Failure {
                error: "boom".into(),
                retry: true,
            },
        }],
    };
    let (events, _) = apply(
        &mut q,
        &mut names,
        9,
        120,
        vec![
            Command::Progress {
                reports: vec![report],
            },
            fail,
        ],
    );
    assert_eq!(
        summary(&events),
        vec![
            (Kind::Progress, 1, 1, String::new(), None),
            (Kind::Retried, 1, 1, String::new(), Some("boom".into()))
        ]
    );
    assert_eq!(events[0].progress.as_deref(), Some(&b"{\"done\":1}"[..]));

    let (events, responses) = apply(&mut q, &mut names, 10, 130, vec![lease("pool-2", 1)]);
    assert_eq!(
        summary(&events),
        vec![(Kind::Started, 1, 2, "pool-2".into(), None)]
    );
    let Response::Leased(grants) = &responses[0] else {
        panic!()
    };
    let second = grants[0].lease;
    let dead = Command::Complete {
        pool: "pool-2".into(),
        completions: vec![Completion {
            lease: second,
            outcome: Outcome::Failure {
                error: "again".into(),
                retry: true,
            },
        }],
    };
    let (events, _) = apply(&mut q, &mut names, 11, 140, vec![dead]);
    assert_eq!(
        summary(&events),
        vec![(Kind::Dead, 1, 2, String::new(), Some("again".into()))]
    );

    let (events, _) = apply(
        &mut q,
        &mut names,
        12,
        150,
        vec![Command::Cancel { ids: vec![2] }],
    );
    assert_eq!(
        summary(&events),
        vec![(Kind::Cancelled, 2, 0, String::new(), None)]
    );
}

#[test]
fn successes_releases_and_expiries_are_told_apart() {
    let mut q = QueueState::new();
    q.observe(true);
    let mut names = Names::default();
    let submit = Command::Submit {
        tasks: vec![spec("a", "q"), spec("a", "q"), spec("a", "q")].into(),
    };
    apply(&mut q, &mut names, 1, 0, vec![submit]);
    let (_, responses) = apply(&mut q, &mut names, 2, 0, vec![lease("p", 3)]);
    let Response::Leased(grants) = &responses[0] else {
        panic!()
    };
    let (l1, l2) = (grants[0].lease, grants[1].lease);
    let done = Command::Complete {
        pool: "p".into(),
        completions: vec![Completion {
            lease: l1,
            outcome: Outcome::Success(Bytes::from_static(b"1")),
        }],
    };
    let release = Command::Release {
        pool: "p".into(),
        leases: vec![l2],
    };
    let (events, _) = apply(&mut q, &mut names, 3, 10, vec![done, release]);
    assert_eq!(
        events.iter().map(|e| (e.kind, e.task)).collect::<Vec<_>>(),
        vec![(Kind::Succeeded, 1), (Kind::Released, 2)]
    );
    // Task 3's lease runs out (10 s): released, with no error shown (not a failure).
    let (events, _) = apply(&mut q, &mut names, 4, 20_000, vec![Command::Tick]);
    assert_eq!(
        events.iter().map(|e| (e.kind, e.task)).collect::<Vec<_>>(),
        vec![(Kind::Released, 3)]
    );
}

#[test]
fn pools_come_online_and_go_offline_by_their_commands() {
    let mut q = QueueState::new();
    q.observe(true);
    let mut names = Names::default();
    let clear = |w: &str| Command::ClearStanding { pool: w.into() };
    let commands = vec![
        Command::ReleasePool { pool: "a".into() },
        // A resize of standing capacity: nothing.
        clear("b"),
        lease("b", 0),
        // A resume through another node: online.
        clear("c"),
        Command::Release {
            pool: "c".into(),
            leases: vec![],
        },
        // A drain, or a lost pool: offline.
        clear("d"),
    ];
    let (events, _) = apply(&mut q, &mut names, 5, 0, commands);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.ordinal, e.kind, &*e.pool))
            .collect::<Vec<_>>(),
        vec![
            (0, Kind::PoolOnline, "a"),
            (1, Kind::PoolOnline, "c"),
            (2, Kind::PoolOffline, "d")
        ]
    );
}

#[test]
fn the_same_entries_make_the_same_events_on_every_replica() {
    let entries: Vec<Vec<Command>> = vec![
        vec![Command::Submit {
            tasks: vec![spec("a", "q"), spec("b", "r")].into(),
        }],
        vec![lease("p", 1), Command::ReleasePool { pool: "x".into() }],
        vec![Command::Cancel { ids: vec![2] }],
    ];
    let run = || {
        let mut q = QueueState::new();
        q.observe(true);
        let mut names = Names::default();
        let mut all = Vec::new();
        for (i, commands) in entries.iter().enumerate() {
            all.extend(apply(&mut q, &mut names, i as u64 + 1, 5, commands.clone()).0);
        }
        all
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    let positions: Vec<Pos> = a.iter().map(Event::pos).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(positions, sorted, "strictly increasing positions");
}

#[test]
fn a_filter_narrows_task_events_by_queue_name_and_kind_and_keeps_cluster_events() {
    let mut names = Names::default();
    let mut e = |kind, queue: &str, name: &str| {
        let mut e = Event::blank(1, 0, kind, &mut names);
        e.queue = names.get(queue);
        e.name = names.get(name);
        e
    };
    let q1a = e(Kind::Submitted, "q1", "a");
    let q2a = e(Kind::Dead, "q2", "a");
    let q1b = e(Kind::Dead, "q1", "b");
    let leader = e(Kind::LeaderChanged, "", "");
    let f = Filter {
        queues: ["q1".to_string()].into(),
        ..Filter::default()
    };
    assert_eq!(
        [&q1a, &q2a, &q1b, &leader].map(|e| f.matches(e)),
        [true, false, true, true]
    );
    let f = Filter {
        names: ["a".to_string()].into(),
        kinds: [Kind::Dead].into(),
        ..Filter::default()
    };
    assert_eq!(
        [&q1a, &q2a, &q1b, &leader].map(|e| f.matches(e)),
        [false, true, false, false]
    );
    assert!(Filter::default().matches(&leader));
}

#[test]
fn long_errors_are_clipped_on_a_char_boundary() {
    let long = "é".repeat(MAX_EVENT_ERROR_CHARS + 5);
    assert_eq!(clip(&long).chars().count(), MAX_EVENT_ERROR_CHARS);
    assert_eq!(clip("short"), "short");
}
