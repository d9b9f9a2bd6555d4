//! Dependencies and workflows (`state/deps.rs`, `command/canvas.rs`): each rule of
//! docs/WORKFLOWS.md with an example. Every step checks the invariants (`H`), which include
//! `callbacks_exact`.

use super::*;

fn task(name: &str) -> Canvas {
    Canvas::Task {
        spec: Box::new(spec(name)),
        parents: Vec::new(),
        immutable: false,
    }
}

fn after(name: &str, parents: Vec<TaskId>) -> Canvas {
    Canvas::Task {
        spec: Box::new(spec(name)),
        parents,
        immutable: false,
    }
}

fn chord(header: Vec<Canvas>, body: Canvas) -> Canvas {
    Canvas::Chord {
        header: Box::new(Canvas::Group(header)),
        body: Box::new(body),
    }
}

impl H {
    pub(super) fn workflow(
        &mut self,
        now: UnixMs,
        spec: WorkflowSpec,
    ) -> Result<WorkflowSubmitted, WorkflowRefusal> {
        let cmd = Command::SubmitWorkflow {
            workflow: Box::new(spec),
        };
        match self.apply(now, vec![cmd]).0.remove(0) {
            Response::WorkflowSubmitted(r) => r,
            r => panic!("unexpected {r:?}"),
        }
    }

    fn canvas(&mut self, now: UnixMs, c: Canvas, on_error: Option<TaskSpec>) -> WorkflowSubmitted {
        let spec = c.flatten(on_error, None).unwrap();
        self.workflow(now, spec).unwrap()
    }

    /// Lease task `id` (it must be the only pending task) and complete it with `outcome`.
    pub(super) fn run(&mut self, now: UnixMs, id: TaskId, outcome: Outcome) {
        let leases = self.lease(now, 100, 10_000);
        let lease = *leases.iter().find(|l| l.task == id).expect("task leased");
        for other in leases.iter().filter(|l| l.task != id) {
            self.release(now, *other);
        }
        assert_eq!(self.complete(now, lease, outcome), CompletionResult::Accepted);
    }

    fn header(&self, id: TaskId, name: &str) -> Option<String> {
        self.s.headers(id).get(name).cloned()
    }
}

#[test]
fn chain_passes_each_result_to_the_next() {
    let mut h = H::default();
    let w = h.canvas(10, Canvas::Chain(vec![task("a"), task("b"), task("c")]), None);
    let [a, b, c] = w.tasks[..] else { panic!() };
    assert_eq!(h.state(a), Some(TaskState::Pending));
    assert!(h.s.is_waiting(b) && h.s.is_waiting(c));
    assert_eq!(h.state(b), Some(TaskState::Scheduled));
    assert_eq!(
        h.s.next_deadline_ms(),
        None,
        "a waiting task's timer is never due"
    );
    assert_eq!(h.header(a, PASS_HEADER), None);
    assert_eq!(h.header(b, PASS_HEADER).as_deref(), Some("one"));
    h.run(20, a, ok(b"1"));
    assert_eq!(h.state(b), Some(TaskState::Pending));
    assert_eq!(h.header(b, PARENT_RESULTS_HEADER).as_deref(), Some("[1]"));
    assert!(h.s.is_waiting(c));
    assert_eq!(h.s.workflow(w.id).unwrap().state, WorkflowState::Running);
    h.run(30, b, ok(b"2"));
    h.run(40, c, ok(b"3"));
    let v = h.s.workflow(w.id).unwrap();
    assert_eq!(v.state, WorkflowState::Succeeded);
    assert_eq!(v.result.as_deref(), Some(&b"3"[..]));
    assert_eq!(h.s.workflow_of(c), Some(w.id));
}

#[test]
fn chord_callback_waits_for_every_member_and_gets_their_results_in_order() {
    let mut h = H::default();
    let w = h.canvas(
        10,
        chord(vec![task("a"), task("b"), task("c")], task("sum")),
        None,
    );
    let [a, b, c, sum] = w.tasks[..] else { panic!() };
    assert_eq!(h.header(sum, PASS_HEADER).as_deref(), Some("list"));
    h.run(20, c, ok(b"30"));
    h.run(21, a, ok(b"10"));
    assert!(h.s.is_waiting(sum), "one member still runs");
    h.run(22, b, ok(b"20"));
    assert_eq!(h.state(sum), Some(TaskState::Pending));
    assert_eq!(
        h.header(sum, PARENT_RESULTS_HEADER).as_deref(),
        Some("[10,20,30]")
    );
    h.run(30, sum, ok(b"60"));
    let v = h.s.workflow(w.id).unwrap();
    assert_eq!(
        (v.state, v.result.as_deref()),
        (WorkflowState::Succeeded, Some(&b"60"[..]))
    );
}

#[test]
fn a_group_reads_as_the_list_of_its_results_and_nests() {
    let mut h = H::default();
    let inner = Canvas::Chain(vec![task("x"), task("y")]);
    let w = h.canvas(10, Canvas::Group(vec![task("a"), inner]), None);
    let [a, x, y] = w.tasks[..] else { panic!() };
    h.run(20, a, ok(b"\"A\""));
    h.run(21, x, ok(b"1"));
    h.run(22, y, ok(b"2"));
    let v = h.s.workflow(w.id).unwrap();
    assert_eq!(v.result.as_deref(), Some(&b"[\"A\",2]"[..]));
}

#[test]
fn a_dead_parent_cancels_its_dependents_with_the_reason_and_the_errback_runs_once() {
    let mut h = H::default();
    let c = Canvas::Chain(vec![
        Canvas::Group(vec![task("a"), task("b")]),
        task("c"),
        task("d"),
    ]);
    let w = h.canvas(10, c, Some(spec("on_error")));
    let [a, b, c, d, e] = w.tasks[..] else { panic!() };
    h.run(20, a, failure(false));
    assert_eq!(h.state(c), Some(TaskState::Cancelled));
    assert_eq!(
        h.s.task(c).unwrap().error.as_deref(),
        Some(format!("parent task {a} dead: boom").as_str())
    );
    assert_eq!(h.state(d), Some(TaskState::Cancelled));
    assert_eq!(
        h.s.task(d).unwrap().error.as_deref(),
        Some(format!("parent task {c} cancelled: parent task {a} dead: boom").as_str())
    );
    assert_eq!(h.state(e), Some(TaskState::Pending), "the error callback runs");
    let error = h.header(e, PARENT_ERROR_HEADER).unwrap();
    assert_eq!(error, format!(r#"{{"task":{a},"state":"dead","error":"boom"}}"#));
    // b fails too: the error callback is not released again.
    h.run(30, b, failure(false));
    assert_eq!(h.state(e), Some(TaskState::Pending));
    let v = h.s.workflow(w.id).unwrap();
    assert_eq!(v.state, WorkflowState::Failed);
    assert_eq!(v.error.as_deref(), Some("boom"));
    assert!(v.tasks[4].errback);
}

#[test]
fn the_errback_is_cancelled_when_every_task_succeeded() {
    let mut h = H::default();
    let w = h.canvas(
        10,
        Canvas::Chain(vec![task("a"), task("b")]),
        Some(spec("on_error")),
    );
    let [a, b, e] = w.tasks[..] else { panic!() };
    h.run(20, a, ok(b"1"));
    assert!(h.s.is_waiting(e));
    h.run(30, b, ok(b"2"));
    assert_eq!(h.state(e), Some(TaskState::Cancelled));
    assert_eq!(h.s.workflow(w.id).unwrap().state, WorkflowState::Succeeded);
}

#[test]
fn cancelling_a_waiting_task_cascades_and_purge_queue_cancels_waiting_tasks() {
    let mut h = H::default();
    let w = h.canvas(10, Canvas::Chain(vec![task("a"), task("b"), task("c")]), None);
    let [a, b, c] = w.tasks[..] else { panic!() };
    assert_eq!(h.cancel(20, vec![b]), vec![true]);
    assert_eq!(h.state(c), Some(TaskState::Cancelled));
    assert_eq!(
        h.s.task(c).unwrap().error.as_deref(),
        Some(format!("parent task {b} cancelled").as_str())
    );
    assert_eq!(h.state(a), Some(TaskState::Pending), "a parent is not touched");

    let w = h.canvas(30, Canvas::Chain(vec![task("x"), task("y")]), None);
    let (r, _) = h.apply(
        40,
        vec![Command::PurgeQueue {
            queue: "default".into(),
        }],
    );
    assert_eq!(r, vec![Response::Purged(3)], "a, x and the waiting y");
    assert_eq!(h.state(w.tasks[1]), Some(TaskState::Cancelled));
    assert_eq!(h.s.deps().waiting_count(), 0);
}

#[test]
fn a_task_may_name_existing_parents() {
    let mut h = H::default();
    let [p, q] = h.submit(10, vec![spec("p"), spec("q")])[..] else {
        panic!()
    };
    let w = h.canvas(20, after("child", vec![p, q]), None);
    let child = w.tasks[0];
    assert!(h.s.is_waiting(child));
    assert_eq!(h.header(child, PASS_HEADER).as_deref(), Some("list"));
    h.run(30, q, ok(b"\"q\""));
    h.run(31, p, ok(b"\"p\""));
    assert_eq!(
        h.header(child, PARENT_RESULTS_HEADER).as_deref(),
        Some(r#"["p","q"]"#)
    );

    // Parents final already: decided at submit.
    let w = h.canvas(40, after("late", vec![p]), None);
    assert_eq!(h.state(w.tasks[0]), Some(TaskState::Pending));
    let [dead] = h.submit(50, vec![spec("dead")])[..] else {
        panic!()
    };
    h.run(51, dead, failure(false));
    let w = h.canvas(60, after("doomed", vec![dead]), None);
    assert_eq!(h.state(w.tasks[0]), Some(TaskState::Cancelled));

    // An unknown parent refuses the whole workflow: nothing is created.
    let before = h.s.task_count();
    let spec = Canvas::Chain(vec![task("a"), after("b", vec![999])])
        .flatten(None, None)
        .unwrap();
    assert_eq!(
        h.workflow(70, spec),
        Err(WorkflowRefusal::UnknownParent { task: 1, parent: 999 })
    );
    assert_eq!(h.s.task_count(), before);
}

#[test]
fn a_released_task_with_an_eta_ahead_is_scheduled_then_pending() {
    let mut h = H::default();
    let mut late = spec("late");
    late.countdown_ms = Some(1_000);
    let b = Canvas::Task {
        spec: Box::new(late),
        parents: Vec::new(),
        immutable: true,
    };
    let w = h.canvas(10, Canvas::Chain(vec![task("a"), b]), None);
    let [a, b] = w.tasks[..] else { panic!() };
    assert_eq!(h.header(b, PASS_HEADER).as_deref(), Some("none"));
    assert!(h.s.task(b).unwrap().waiting);
    h.run(20, a, ok(b"1"));
    assert_eq!(h.state(b), Some(TaskState::Scheduled));
    assert!(!h.s.is_waiting(b));
    assert!(
        !h.s.task(b).unwrap().waiting,
        "scheduled for its own ETA, not waiting"
    );
    assert_eq!(h.s.next_deadline_ms(), Some(1_010));
    h.tick(1_010);
    assert_eq!(h.state(b), Some(TaskState::Pending));
}

#[test]
fn a_finished_workflow_goes_with_its_last_task() {
    let mut h = H::default();
    let w = h.canvas(10, Canvas::Chain(vec![task("a"), task("b")]), None);
    let [a, b] = w.tasks[..] else { panic!() };
    h.run(20, a, ok(b"1"));
    h.tick(1_020);
    assert!(h.s.task(a).is_none(), "a's result TTL (1 s) ran out");
    assert!(h.s.workflow(w.id).is_some(), "b is still held");
    h.run(1_030, b, ok(b"2"));
    assert_eq!(h.s.workflow(w.id).unwrap().tasks[0].task, None);
    h.tick(2_030);
    assert!(h.s.workflow(w.id).is_none());
    assert_eq!(h.s.deps().waiting_count(), 0);
}

#[test]
fn the_workflow_key_makes_a_resubmit_a_duplicate() {
    let mut h = H::default();
    let c = Canvas::Chain(vec![task("a"), task("b")]);
    let first = h
        .workflow(10, c.flatten(None, Some("k".into())).unwrap())
        .unwrap();
    let again = h
        .workflow(20, c.flatten(None, Some("k".into())).unwrap())
        .unwrap();
    assert!(again.duplicate);
    assert_eq!((again.id, &again.tasks), (first.id, &first.tasks));
    let [plain] = h.submit(
        30,
        vec![TaskSpec {
            idempotency_key: Some("taken".into()),
            ..spec("p")
        }],
    )[..] else {
        panic!()
    };
    let r = h.workflow(40, c.flatten(None, Some("taken".into())).unwrap());
    assert_eq!(r, Err(WorkflowRefusal::KeyTaken(plain)));
}

#[test]
fn bad_workflows_are_refused_and_change_nothing() {
    let mut h = H::default();
    let t = |parents: Vec<Parent>, wait| WorkflowTask {
        spec: spec("t"),
        parents,
        wait,
    };
    let shape = vec![ShapeNode::Task(0)];
    let cases = [
        (vec![], WorkflowRefusal::Empty),
        (
            vec![t(vec![Parent::Index(0)], WaitFor::AllSucceed)],
            WorkflowRefusal::BadParentIndex { task: 0, parent: 0 },
        ),
        (
            vec![
                t(vec![], WaitFor::AllSucceed),
                t(vec![Parent::Index(0), Parent::Index(0)], WaitFor::AllSucceed),
            ],
            WorkflowRefusal::DuplicateParent(1),
        ),
        (
            vec![t(vec![], WaitFor::AnyFails)],
            WorkflowRefusal::ErrbackWithoutParents(0),
        ),
    ];
    for (tasks, refusal) in cases {
        let spec = WorkflowSpec {
            tasks,
            shape: shape.clone(),
            idempotency_key: None,
        };
        assert_eq!(h.workflow(10, spec), Err(refusal));
    }
    let bad_shape = WorkflowSpec {
        tasks: vec![t(vec![], WaitFor::AllSucceed)],
        shape: vec![ShapeNode::Chain(vec![0])],
        idempotency_key: None,
    };
    assert!(matches!(
        h.workflow(10, bad_shape),
        Err(WorkflowRefusal::BadShape(_))
    ));
    assert_eq!(h.s.task_count(), 0);
    assert!(h.s.deps().is_pristine());
    let deep = (0..MAX_CANVAS_DEPTH).fold(task("t"), |c, _| Canvas::Chain(vec![c]));
    assert!(matches!(
        deep.flatten(None, None),
        Err(WorkflowRefusal::BadShape(_))
    ));
}

/// Issue 12: a 100,000-task group stays within the entry size limit; one more task is refused.
#[test]
fn a_group_of_100_000_fits_one_entry_and_one_more_is_refused() {
    let noop = |_| Canvas::Task {
        spec: Box::new(TaskSpec {
            args: Bytes::new(),
            ..spec("noop")
        }),
        parents: Vec::new(),
        immutable: false,
    };
    let group = Canvas::Group((0..MAX_WORKFLOW_TASKS).map(noop).collect());
    let spec = group.flatten(None, None).unwrap();
    let req = Request {
        now_ms: 1,
        commands: vec![Command::SubmitWorkflow {
            workflow: Box::new(spec),
        }],
    };
    let bytes = crate::encoding::encode(&req).unwrap();
    // The node takes requests up to config::MAX_REQUEST_BYTES_CAP (64 MiB).
    assert!(bytes.len() < 8 << 20, "{} bytes", bytes.len());
    let mut s = QueueState::new();
    let r = s.apply(&req, &mut ApplyEffects::default());
    let Response::WorkflowSubmitted(Ok(w)) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(w.tasks.len(), MAX_WORKFLOW_TASKS);
    let chord = Canvas::Chord {
        header: Box::new(Canvas::Group((0..MAX_WORKFLOW_TASKS).map(noop).collect())),
        body: Box::new(noop(0)),
    };
    let refused = chord.flatten(None, None).unwrap_err();
    assert_eq!(
        refused,
        WorkflowRefusal::TooManyTasks(MAX_WORKFLOW_TASKS as u64 + 1)
    );
    assert_eq!(
        refused.to_string(),
        "a workflow of 100001 tasks is over the limit of 100000"
    );
}

#[test]
fn waiting_tasks_survive_a_snapshot_and_a_plain_state_keeps_its_format() {
    let mut h = H::default();
    h.submit(5, vec![spec("plain")]);
    let plain = h.s.snapshot_format();
    assert!(plain < 10);
    let w = h.canvas(
        10,
        chord(vec![task("a"), task("b")], task("sum")),
        Some(spec("e")),
    );
    h.run(20, w.tasks[0], ok(b"1"));
    assert_eq!(h.s.snapshot_format(), 10);
    let bytes = crate::encoding::encode(&h.s).unwrap();
    let mut back: QueueState = crate::encoding::decode(&bytes).unwrap();
    assert_eq!(back, h.s);
    back.check_invariants().unwrap();
    // The restored state goes on the same way.
    let mut fx = ApplyEffects::default();
    let r = back.apply(
        &Request {
            now_ms: 30,
            commands: vec![Command::Lease {
                pool: "w".into(),
                queues: vec![],
                max: 10,
                lease_ms: 1_000,
                standing_ticket: None,
            }],
        },
        &mut fx,
    );
    let Response::Leased(g) = &r[0] else { panic!() };
    assert_eq!(g.len(), 2, "the plain task and b");
    assert!(back.is_waiting(w.tasks[2]));
}

/// A waiting task reads as waiting (`WAITING` on the wire) and a listing tells it apart from
/// the scheduled tasks when it filters by state; with no state filter it lists every task.
#[test]
fn a_waiting_task_is_listed_as_waiting_not_as_scheduled() {
    let mut h = H::default();
    let w = h.canvas(10, Canvas::Chain(vec![task("a"), task("b")]), None);
    let [a, b] = w.tasks[..] else { panic!() };
    let mut later = spec("later");
    later.countdown_ms = Some(60_000);
    let scheduled = h.submit(11, vec![later])[0];
    assert!(h.s.task(b).unwrap().waiting);
    assert_eq!(h.s.task(b).unwrap().state, TaskState::Scheduled);
    assert!(!h.s.task(scheduled).unwrap().waiting);
    assert!(!h.s.task(a).unwrap().waiting);
    assert_eq!(
        h.s.describe(b).unwrap().timer_ms,
        None,
        "its timer is never, not a time"
    );
    assert_eq!(h.s.describe(scheduled).unwrap().timer_ms, Some(60_011));
    let ids = |s: &QueueState, f: TaskFilter| -> Vec<TaskId> {
        s.list_tasks(&f, None, 100, 1_000)
            .tasks
            .iter()
            .map(|t| t.id)
            .collect()
    };
    let only = |states: Vec<TaskState>, waiting: bool| TaskFilter {
        states,
        waiting,
        ..Default::default()
    };
    assert_eq!(ids(&h.s, only(vec![], true)), vec![b]);
    assert_eq!(
        ids(&h.s, only(vec![TaskState::Scheduled], false)),
        vec![scheduled]
    );
    assert_eq!(
        ids(&h.s, only(vec![TaskState::Scheduled], true)),
        vec![scheduled, b]
    );
    assert_eq!(ids(&h.s, only(vec![TaskState::Pending], true)), vec![b, a]);
    assert_eq!(ids(&h.s, TaskFilter::default()), vec![scheduled, b, a]);
    h.run(20, a, ok(b"1"));
    assert!(
        ids(&h.s, only(vec![], true)).is_empty(),
        "released: no longer waiting"
    );
    assert_eq!(ids(&h.s, only(vec![TaskState::Pending], false)), vec![b]);
}
