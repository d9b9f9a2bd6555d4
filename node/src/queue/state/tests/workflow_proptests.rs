//! Property tests of dependencies: random DAGs (parents in the same workflow and existing
//! tasks, with or without an error callback), random outcomes in random orders, cancels and
//! time jumps. After every entry (besides the invariants `H` checks, `callbacks_exact` among
//! them), against a model that reads only task states:
//! - a waiting task never stops waiting before its parents decided it, and never waits again;
//! - a released task had every parent succeeded (an error callback: one failed);
//! - a task whose parent failed is cancelled, with the reason, at once (the cascade);
//!
//! and at the end, with every task run, each dependent ran exactly when its parents said so.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
struct Dag {
    /// Per task: parents as bit masks over earlier tasks and over the two existing tasks.
    tasks: Vec<(u16, u8)>,
    errback: bool,
}

#[derive(Clone, Debug)]
enum Op {
    /// Lease everything, complete the i-th grant (success or fatal failure), release the rest.
    Run(usize, bool),
    Cancel(usize),
    Advance(u64),
}

fn dag() -> impl Strategy<Value = Dag> {
    (
        prop::collection::vec((any::<u16>(), 0..4u8), 1..10),
        any::<bool>(),
    )
        .prop_map(|(tasks, errback)| Dag {
            tasks: tasks
                .into_iter()
                .enumerate()
                .map(|(i, (mask, existing))| (mask & ((1u16 << i) - 1), existing))
                .collect(),
            errback,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Run(i, ok)),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (0..100u64).prop_map(Op::Advance),
    ]
}

fn long(name: &str) -> TaskSpec {
    TaskSpec {
        result_ttl_ms: 1 << 40,
        ..spec(name)
    }
}

/// What the model knows of one dependent task.
struct Dep {
    parents: Vec<TaskId>,
    errback: bool,
}

fn failed(s: Option<TaskState>) -> bool {
    matches!(s, Some(TaskState::Dead | TaskState::Cancelled))
}

/// Check one step: `waited` holds the dependents that waited before it.
fn check_step(
    h: &H,
    deps: &BTreeMap<TaskId, Dep>,
    waited: &mut BTreeSet<TaskId>,
    cancelled: &BTreeSet<TaskId>,
) {
    for (id, d) in deps {
        let state = h.state(*id);
        let states: Vec<Option<TaskState>> = d.parents.iter().map(|p| h.state(*p)).collect();
        let all_ok = states.iter().all(|s| *s == Some(TaskState::Succeeded));
        let any_failed = states.iter().any(|s| failed(*s));
        let waiting = h.s.is_waiting(*id);
        if waiting {
            assert!(waited.contains(id), "task {id} waits again");
            assert_eq!(state, Some(TaskState::Scheduled));
            if d.errback {
                assert!(!any_failed, "errback {id} still waits though a parent failed");
                assert!(!all_ok, "errback {id} still waits though every parent succeeded");
            } else {
                assert!(
                    !all_ok && !any_failed,
                    "task {id} still waits though decided: {states:?}"
                );
            }
            continue;
        }
        waited.remove(id);
        if cancelled.contains(id) {
            continue;
        }
        match (d.errback, state) {
            (false, Some(TaskState::Cancelled)) => {
                assert!(any_failed, "task {id} cancelled with no failed parent");
                let error = h.s.task(*id).unwrap().error.unwrap();
                assert!(error.starts_with("parent task "), "{error}");
            }
            (false, _) => assert!(
                all_ok,
                "task {id} released before its parents succeeded: {states:?}"
            ),
            (true, Some(TaskState::Cancelled)) => assert!(all_ok),
            (true, _) => assert!(any_failed, "errback {id} released with no failed parent"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dependents_are_released_exactly_when_their_parents_decide(dag in dag(), ops in prop::collection::vec(op(), 0..40)) {
        let mut h = H::default();
        let existing = h.submit(1, vec![long("e0"), long("e1")]);
        // e1 succeeds before the workflow: a parent final at submit.
        h.run(2, existing[1], ok(b"\"e1\""));
        let tasks = dag
            .tasks
            .iter()
            .enumerate()
            .map(|(i, (mask, ex))| WorkflowTask {
                spec: long(&format!("t{i}")),
                parents: (0..i as u32)
                    .filter(|j| mask & (1 << j) != 0)
                    .map(Parent::Index)
                    .chain((0..2).filter(|j| ex & (1 << j) != 0).map(|j| Parent::Task(existing[j])))
                    .collect(),
                wait: WaitFor::AllSucceed,
            })
            .collect::<Vec<_>>();
        let n = tasks.len();
        let mut spec = WorkflowSpec {
            tasks,
            shape: vec![ShapeNode::Group((0..n as u32).collect()), ],
            idempotency_key: None,
        };
        spec.shape = (0..n as u32).map(ShapeNode::Task).collect();
        spec.shape.push(ShapeNode::Group((0..n as u32).collect()));
        if dag.errback {
            spec.tasks.push(WorkflowTask {
                spec: long("errback"),
                parents: (0..n as u32).map(Parent::Index).collect(),
                wait: WaitFor::AnyFails,
            });
        }
        let w = h.workflow(3, spec.clone()).unwrap();
        let deps: BTreeMap<TaskId, Dep> = spec
            .tasks
            .iter()
            .zip(&w.tasks)
            .filter(|(t, _)| !t.parents.is_empty())
            .map(|(t, id)| {
                let parents = t
                    .parents
                    .iter()
                    .map(|p| match *p {
                        Parent::Task(id) => id,
                        Parent::Index(j) => w.tasks[j as usize],
                    })
                    .collect();
                (*id, Dep { parents, errback: t.wait == WaitFor::AnyFails })
            })
            .collect();
        let mut waited: BTreeSet<TaskId> = deps.keys().copied().collect();
        let mut cancelled = BTreeSet::new();
        check_step(&h, &deps, &mut waited, &cancelled);
        let mut now = 10;
        let all: Vec<TaskId> = existing.iter().chain(&w.tasks).copied().collect();
        for op in ops {
            now += 1;
            match op {
                Op::Run(i, success) => {
                    let leases = h.lease(now, 100, 1 << 30);
                    if let Some(lease) = leases.get(i % leases.len().max(1)).copied() {
                        for other in leases.iter().filter(|l| **l != lease) {
                            h.release(now, *other);
                        }
                        let outcome = if success { ok(b"1") } else { failure(false) };
                        h.complete(now, lease, outcome);
                    }
                }
                Op::Cancel(i) => {
                    let id = all[i % all.len()];
                    if h.cancel(now, vec![id]) == vec![true] {
                        cancelled.insert(id);
                    }
                }
                Op::Advance(ms) => {
                    now += ms;
                    h.tick(now);
                }
            }
            check_step(&h, &deps, &mut waited, &cancelled);
        }
        // Run everything that can run, successfully.
        loop {
            now += 1;
            let leases = h.lease(now, 100, 1 << 30);
            if leases.is_empty() {
                break;
            }
            for lease in leases {
                h.complete(now, lease, ok(b"1"));
                check_step(&h, &deps, &mut waited, &cancelled);
            }
        }
        for id in &w.tasks {
            let s = h.state(*id);
            prop_assert!(s.is_some_and(TaskState::is_final), "task {} not final: {:?}", id, s);
        }
        prop_assert!(waited.is_empty());
        let v = h.s.workflow(w.id).unwrap();
        let any_failed = w.tasks.iter().zip(&spec.tasks).any(|(id, t)| t.wait == WaitFor::AllSucceed && failed(h.state(*id)));
        prop_assert_eq!(v.state == WorkflowState::Failed, any_failed);
    }
}
