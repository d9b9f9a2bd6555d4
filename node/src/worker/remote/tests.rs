//! A session against the real state machine ([`LocalBackend`]), the worker played by the test
//! through channels; time is paused (tokio advances it only when everything waits).

use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::v1::result_ack::Status as AckStatus;
use flotilla_proto::v1::task_result::Outcome as PbOutcome;
use flotilla_proto::v1::worker_message::Msg as In;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::results::success;
use super::*;
use crate::clock::SystemClock;
use crate::queue::Command;
use crate::queue::TaskState;
use crate::queue::ops;
use crate::queue::ops::Op;
use crate::worker::testing::LocalBackend;
use crate::worker::testing::task_spec;

const NAME: &str = "w-1";

fn settings() -> SessionSettings {
    SessionSettings {
        node_id: 1,
        lease_ms: 30_000,
        heartbeat_interval: Duration::from_secs(10),
        idle_poll: Duration::from_secs(1),
        ping_interval: Duration::from_secs(5),
        missed_pings: 3,
        max_result_bytes: 8,
        default_time_limit_ms: 300_000,
        worker_drain_grace: Duration::from_secs(60),
        drain_flush_timeout: Duration::from_secs(10),
        max_batch: 1024,
        prefetch: Prefetch::Fixed(0),
    }
}

fn hello(concurrency: u32) -> Hello {
    Hello {
        name: NAME.into(),
        queues: vec!["default".into()],
        concurrency,
        resume: Vec::new(),
        prefetch: None,
        queue_ahead: 0,
    }
}

/// The node side of one session, and the test's ends of its stream.
struct Worker {
    backend: LocalBackend,
    sessions: Sessions,
    to_node: Option<mpsc::Sender<Result<pb::WorkerMessage, Status>>>,
    from_node: mpsc::UnboundedReceiver<Result<pb::NodeMessage, Status>>,
    session: JoinHandle<()>,
    /// Tasks that came while acks were awaited.
    early: Vec<pb::Task>,
}

impl Worker {
    async fn start(backend: &LocalBackend, hello: Hello) -> Worker {
        let sessions = Sessions::default();
        let (to_node, inbound) = mpsc::channel(64);
        let (out, from_node) = mpsc::unbounded_channel();
        let node = SessionNode {
            backend: Arc::new(backend.clone()),
            replica: backend.replica().clone(),
            barrier: Arc::new(|| Box::pin(async { Ok(()) })),
        };
        let claim = sessions.claim(&hello.name).unwrap();
        let stream = (ReceiverStream::new(inbound), out);
        let session = Session::open(settings(), node, hello, claim, stream).await;
        let session = tokio::spawn(session.run(sessions.shutdown_signal()));
        Worker {
            backend: backend.clone(),
            sessions,
            to_node: Some(to_node),
            from_node,
            session,
            early: Vec::new(),
        }
    }

    async fn send(&self, msg: In) {
        let msg = pb::WorkerMessage { msg: Some(msg) };
        self.to_node.as_ref().unwrap().send(Ok(msg)).await.unwrap();
    }

    async fn results(&self, results: Vec<pb::TaskResult>) {
        self.send(In::Results(pb::Results { results })).await;
    }

    /// The next message that is not a ping (pings are answered).
    async fn next(&mut self) -> Result<Out, Status> {
        loop {
            let msg = self.from_node.recv().await.expect("stream open")?;
            match msg.msg.unwrap() {
                Out::Ping(p) => self.send(In::Pong(pb::Pong { nonce: p.nonce })).await,
                other => return Ok(other),
            }
        }
    }

    async fn tasks(&mut self) -> Vec<pb::Task> {
        if !self.early.is_empty() {
            return std::mem::take(&mut self.early);
        }
        match self.next().await {
            Ok(Out::Tasks(t)) => t.tasks,
            other => panic!("expected tasks, got {other:?}"),
        }
    }

    /// Acks until `n` came (they may come in several messages).
    async fn acks(&mut self, n: usize) -> Vec<(u64, AckStatus)> {
        let mut acks = Vec::new();
        while acks.len() < n {
            match self.next().await {
                Ok(Out::Acks(a)) => acks.extend(a.acks.iter().map(|a| (a.task_id, a.status()))),
                Ok(Out::Tasks(t)) => self.early.extend(t.tasks),
                other => panic!("expected acks, got {other:?}"),
            }
        }
        acks.sort();
        acks
    }

    fn state(&self, id: u64) -> TaskState {
        self.backend.replica().read(|q| q.task(id).unwrap().state)
    }

    /// The session ended and freed its name.
    async fn ended(self) {
        self.session.await.unwrap();
        assert!(self.sessions.names().is_empty());
    }
}

fn submit(backend: &LocalBackend, n: usize) {
    let tasks: Vec<_> = (0..n).map(|_| task_spec("noop", "null")).collect();
    backend.apply(ops::Submit { tasks: tasks.into() }.command());
}

fn backend() -> LocalBackend {
    LocalBackend::new(Arc::new(Replica::default()), Arc::new(SystemClock))
}

#[tokio::test(start_paused = true)]
async fn grants_go_down_in_batches_results_come_back_acked() {
    let b = backend();
    submit(&b, 3);
    let mut w = Worker::start(&b, hello(2)).await;
    let first = w.tasks().await;
    assert_eq!(first.iter().map(|t| t.task_id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((first[0].attempt, first[0].name.as_str()), (1, "noop"));
    w.results(vec![success(1, 1, b"1"), success(2, 1, b"2")]).await;
    assert_eq!(
        w.acks(2).await,
        vec![(1, AckStatus::Accepted), (2, AckStatus::Accepted)]
    );
    let third = w.tasks().await;
    assert_eq!(third[0].task_id, 3);
    assert_eq!(w.state(1), TaskState::Succeeded);
    // A repeat of a committed result is accepted again (a retry after a lost ack).
    w.results(vec![success(1, 1, b"1")]).await;
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::Accepted)]);
    // A different result for that attempt is not what committed.
    w.results(vec![success(2, 1, b"other")]).await;
    assert_eq!(w.acks(1).await, vec![(2, AckStatus::Stale)]);
}

#[tokio::test(start_paused = true)]
async fn a_broken_stream_releases_every_lease_at_once() {
    let b = backend();
    submit(&b, 2);
    let mut w = Worker::start(&b, hello(4)).await;
    assert_eq!(w.tasks().await.len(), 2);
    assert_eq!(w.state(1), TaskState::Leased);
    w.to_node = None;
    let (s1, s2) = (w.backend.clone(), w.backend.clone());
    w.ended().await;
    let state = |b: &LocalBackend, id| b.replica().read(|q| q.task(id).unwrap());
    for (b, id) in [(&s1, 1), (&s2, 2)] {
        let t = state(b, id);
        assert_eq!(
            (t.state, t.error),
            (TaskState::Pending, None),
            "released, not expired"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_loses_its_stream_after_missed_pings() {
    let b = backend();
    submit(&b, 1);
    let mut w = Worker::start(&b, hello(1)).await;
    assert_eq!(w.tasks().await.len(), 1);
    // Read without answering pings: the session gives up after three intervals.
    let start = tokio::time::Instant::now();
    while let Some(msg) = w.from_node.recv().await {
        assert!(
            matches!(
                msg,
                Ok(pb::NodeMessage {
                    msg: Some(Out::Ping(_))
                })
            ),
            "{msg:?}"
        );
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited <= Duration::from_secs(21),
        "{waited:?}"
    );
    assert_eq!(w.state(1), TaskState::Pending);
    w.ended().await;
}

#[tokio::test(start_paused = true)]
async fn a_result_for_a_task_never_sent_ends_only_this_stream() {
    let b = backend();
    submit(&b, 2);
    let mut w = Worker::start(&b, hello(1)).await;
    assert_eq!(w.tasks().await.len(), 1);
    w.results(vec![success(2, 1, b"1")]).await;
    match w.next().await {
        Ok(Out::Error(e)) => assert!(e.message.contains("never sent"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    let status = w.next().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    w.to_node = None;
    let b2 = w.backend.clone();
    w.ended().await;
    // Its lease released; the other task untouched (pending, attempt 0).
    let t = |id| b2.replica().read(|q| q.task(id).unwrap());
    assert_eq!((t(1).state, t(1).attempt), (TaskState::Pending, 1));
    assert_eq!((t(2).state, t(2).attempt), (TaskState::Pending, 0));
}

#[tokio::test(start_paused = true)]
async fn a_result_over_the_limit_fails_the_task_for_good() {
    let b = backend();
    submit(&b, 1);
    let mut w = Worker::start(&b, hello(1)).await;
    w.tasks().await;
    w.results(vec![success(1, 1, b"123456789")]).await;
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::TooLarge)]);
    let t = b.replica().read(|q| q.task(1).unwrap());
    assert_eq!(t.state, TaskState::Dead);
    assert!(t.error.unwrap().contains("over the limit of 8 bytes"));
}

#[tokio::test(start_paused = true)]
async fn a_result_for_a_lost_lease_is_stale() {
    let b = backend();
    submit(&b, 1);
    let mut w = Worker::start(&b, hello(1)).await;
    let lease = LeaseRef { task: 1, attempt: 1 };
    w.tasks().await;
    b.apply(
        ops::Release {
            pool: "other".into(),
            leases: vec![lease],
        }
        .command(),
    );
    let failure = pb::TaskResult {
        task_id: 1,
        attempt: 1,
        outcome: Some(PbOutcome::Failure(pb::Failure {
            message: "boom".into(),
            retryable: true,
            ..Default::default()
        })),
    };
    w.results(vec![failure]).await;
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::Stale)]);
}

#[tokio::test(start_paused = true)]
async fn a_draining_worker_answers_what_it_holds_then_is_drained() {
    let b = backend();
    submit(&b, 3);
    let mut w = Worker::start(&b, hello(2)).await;
    assert_eq!(w.tasks().await.len(), 2);
    w.send(In::Drain(pb::Drain {})).await;
    let released = pb::TaskResult {
        task_id: 2,
        attempt: 1,
        outcome: Some(PbOutcome::Released(pb::Released {})),
    };
    w.results(vec![success(1, 1, b"1"), released]).await;
    assert_eq!(
        w.acks(2).await,
        vec![(1, AckStatus::Accepted), (2, AckStatus::Accepted)]
    );
    loop {
        match w.next().await {
            Ok(Out::Drained(_)) => break,
            Ok(Out::Acks(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(w.from_node.recv().await.is_none(), "the node closes its side");
    assert_eq!(
        (w.state(1), w.state(2), w.state(3)),
        (TaskState::Succeeded, TaskState::Pending, TaskState::Pending)
    );
    w.ended().await;
}

#[tokio::test(start_paused = true)]
async fn a_resumed_session_keeps_its_leases_and_releases_the_others() {
    let b = backend();
    submit(&b, 3);
    let lease = Command::Lease {
        pool: NAME.into(),
        queues: vec![],
        max: 2,
        lease_ms: 30_000,
        standing_ticket: None,
    };
    b.apply(lease);
    // Task 1 is still running on the worker; task 2's run was lost; 3 was never granted.
    let hello = Hello {
        resume: vec![LeaseRef { task: 1, attempt: 1 }, LeaseRef { task: 3, attempt: 1 }],
        ..hello(1)
    };
    let mut w = Worker::start(&b, hello).await;
    w.results(vec![success(1, 1, b"1"), success(3, 1, b"3")]).await;
    assert_eq!(
        w.acks(2).await,
        vec![(1, AckStatus::Accepted), (3, AckStatus::Stale)]
    );
    assert_eq!(w.state(1), TaskState::Succeeded);
    let t2 = b.replica().read(|q| q.task(2).unwrap());
    assert!(t2.state == TaskState::Pending || t2.attempt > 1, "{t2:?}");
}

#[tokio::test(start_paused = true)]
async fn a_node_shutdown_drains_the_session_and_says_unavailable() {
    let b = backend();
    submit(&b, 1);
    let mut w = Worker::start(&b, hello(1)).await;
    w.tasks().await;
    let sessions = w.sessions.clone();
    let drain = tokio::spawn(async move { sessions.drain_all(Duration::from_secs(5)).await });
    w.results(vec![success(1, 1, b"1")]).await;
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::Accepted)]);
    match w.next().await {
        Ok(Out::Error(e)) => assert!(e.message.contains("shutting down")),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.next().await.unwrap_err().code(), tonic::Code::Unavailable);
    drain.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_lease_ahead_of_a_worker_waits_at_the_node_and_goes_back_when_it_breaks() {
    let b = backend();
    submit(&b, 4);
    let hello = Hello {
        prefetch: Some(Prefetch::Fixed(2)),
        ..hello(1)
    };
    let mut w = Worker::start(&b, hello).await;
    let first = w.tasks().await;
    assert_eq!(
        first.iter().map(|t| t.task_id).collect::<Vec<_>>(),
        vec![1],
        "its one place"
    );
    let leased = |b: &LocalBackend| {
        (1..=4)
            .filter(|id| b.replica().read(|q| q.task(*id).unwrap().state) == TaskState::Leased)
            .count()
    };
    assert_eq!(leased(&b), 3, "one sent, two held at the node");
    w.results(vec![success(1, 1, b"1")]).await;
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::Accepted)]);
    assert_eq!(w.tasks().await[0].task_id, 2, "the next held one, oldest first");
    // The stream breaks: what was held at the node goes back with what was sent.
    w.to_node = None;
    let b2 = w.backend.clone();
    w.ended().await;
    assert_eq!(leased(&b2), 0);
}

fn released(task: u64) -> pb::TaskResult {
    pb::TaskResult {
        task_id: task,
        attempt: 1,
        outcome: Some(PbOutcome::Released(pb::Released {})),
    }
}

/// A worker of one slot that queues up to 4 (`Hello.queue_ahead`), the node's `auto`.
fn queuing() -> Hello {
    Hello {
        prefetch: Some(Prefetch::Auto),
        queue_ahead: 4,
        ..hello(1)
    }
}

impl Worker {
    /// Task 1 (its one slot), answered at once: a short run, so lease-ahead starts and the
    /// next five come down (the slot and the worker's queue of 4). Their ids.
    async fn first_then_five(&mut self) -> Vec<u64> {
        assert_eq!(
            self.tasks().await.iter().map(|t| t.task_id).collect::<Vec<_>>(),
            vec![1]
        );
        self.results(vec![success(1, 1, b"1")]).await;
        let mut sent = Vec::new();
        while sent.len() < 5 {
            match self.next().await {
                Ok(Out::Tasks(t)) => sent.extend(t.tasks.iter().map(|t| t.task_id)),
                Ok(Out::Acks(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        sent
    }
}

fn leased(b: &LocalBackend, n: u64) -> Vec<u64> {
    (1..=n)
        .filter(|id| b.replica().read(|q| q.task(*id).unwrap().state) == TaskState::Leased)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_queues_gets_the_lease_ahead_and_the_stall_rule_takes_it_back() {
    let b = backend();
    submit(&b, 20);
    let mut w = Worker::start(&b, queuing()).await;
    // A short run: lease-ahead starts, and goes down beyond the one slot, at most 4 more.
    let sent = w.first_then_five().await;
    assert_eq!(
        sent,
        vec![2, 3, 4, 5, 6],
        "the slot and the worker's queue, in order"
    );
    // Task 2 runs on: past the stall window the queue is asked back (not released yet).
    let mut asked = Vec::new();
    while asked.len() < 4 {
        match w.next().await {
            Ok(Out::TakeBack(t)) => asked.push(t.task_id),
            other => panic!("expected take-backs, got {other:?}"),
        }
    }
    asked.sort_unstable();
    assert_eq!(asked, vec![3, 4, 5, 6]);
    assert!(
        leased(&b, 20).starts_with(&[2, 3, 4, 5, 6]),
        "held until answered"
    );
    // 3 and 4 not started (released); 5 had started after all: its result stands.
    w.results(vec![released(3), released(4), success(5, 1, b"5"), released(6)])
        .await;
    let acks = w.acks(4).await;
    assert!(acks.iter().all(|(_, s)| *s == AckStatus::Accepted), "{acks:?}");
    assert_eq!(w.state(3), TaskState::Pending);
    assert_eq!(w.state(5), TaskState::Succeeded);
    // Killed with task 2 running: back at once.
    w.to_node = None;
    let b2 = w.backend.clone();
    w.ended().await;
    assert!(leased(&b2, 20).is_empty());
    assert_eq!(
        b2.replica().read(|q| q.task(2).unwrap().state),
        TaskState::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_killed_with_tasks_queued_loses_none() {
    let b = backend();
    submit(&b, 20);
    let mut w = Worker::start(&b, queuing()).await;
    assert_eq!(w.first_then_five().await.len(), 5);
    // 1 running and 4 queued at the worker; the rest of the allowance held at the node.
    assert!(leased(&b, 20).len() >= 5);
    w.to_node = None;
    let b2 = w.backend.clone();
    w.ended().await;
    assert!(leased(&b2, 20).is_empty(), "every queued task released at once");
    for id in 2..=6 {
        let t = b2.replica().read(|q| q.task(id).unwrap());
        assert_eq!((t.state, t.error), (TaskState::Pending, None), "task {id}");
    }
}

// On the real clock: a paused one jumps to the next timer whenever all is idle, and a round
// trip it measures across such a jump (seconds) makes any run look short.
#[tokio::test]
async fn a_worker_that_queues_gets_nothing_ahead_for_long_tasks() {
    let b = backend();
    submit(&b, 20);
    let mut w = Worker::start(&b, queuing()).await;
    w.tasks().await;
    // Long against any round trip this test measures, even on a machine loaded enough to
    // stretch the stream's pings to hundreds of ms (500 ms was not, under load 12-19).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    w.results(vec![success(1, 1, b"1")]).await;
    // Only its one slot: nothing queued at the worker while task 2 runs long too.
    assert_eq!(w.acks(1).await, vec![(1, AckStatus::Accepted)]);
    assert_eq!(
        w.tasks().await.iter().map(|t| t.task_id).collect::<Vec<_>>(),
        vec![2]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(msg) = w.from_node.try_recv() {
        let msg = msg.unwrap().msg.unwrap();
        assert!(matches!(msg, Out::Ping(_)), "sent beyond its slot: {msg:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_draining_worker_gives_its_queue_back_and_nothing_runs_twice() {
    let b = backend();
    submit(&b, 6);
    let mut w = Worker::start(&b, queuing()).await;
    assert_eq!(w.first_then_five().await, vec![2, 3, 4, 5, 6]);
    // SIGTERM at the worker: it releases what it queued, finishes what runs, says Drain.
    w.send(In::Drain(pb::Drain {})).await;
    w.results(vec![released(3), released(4), released(5), released(6)])
        .await;
    w.results(vec![success(2, 1, b"2")]).await;
    loop {
        match w.next().await {
            Ok(Out::Drained(_)) => break,
            Ok(Out::Acks(_) | Out::TakeBack(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    for id in 1..=6 {
        let t = b.replica().read(|q| q.task(id).unwrap());
        let want = if id <= 2 {
            TaskState::Succeeded
        } else {
            TaskState::Pending
        };
        assert_eq!((t.state, t.attempt <= 1), (want, true), "task {id}: {t:?}");
    }
}
