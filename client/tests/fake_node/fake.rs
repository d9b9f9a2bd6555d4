//! A tiny in-memory `QueueService`, served on 127.0.0.1:0, with knobs for faults.
//!
//! Task names drive behaviour: `echo` succeeds at once with its args as the result, `fail` is
//! dead at once, a name starting with `unknown` is rejected with INVALID_ARGUMENT, and anything
//! else stays pending until the test calls [`Fake::complete`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flotilla_proto::v1 as pb;
use flotilla_proto::v1::queue_service_server::{QueueService, QueueServiceServer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
pub struct Fake {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
    /// Every call fails with UNAVAILABLE while this is above zero (and counts it down).
    unavailable_calls: AtomicU32,
    /// Submits that commit their batch but then answer UNAVAILABLE, as if the reply was lost.
    lost_submit_replies: AtomicU32,
    /// WaitResults streams that break with UNAVAILABLE after this many items (the next ones
    /// are not broken once it reaches zero).
    broken_streams: AtomicU32,
    break_after_items: AtomicUsize,
    submits_in_flight: AtomicUsize,
    max_submits_in_flight: AtomicUsize,
    calls: AtomicUsize,
}

#[derive(Default)]
struct State {
    next_id: u64,
    tasks: BTreeMap<u64, pb::TaskInfo>,
    args: BTreeMap<u64, Bytes>,
    keys: BTreeMap<String, u64>,
    /// Every idempotency key received, in arrival order (retries included).
    keys_seen: Vec<String>,
    /// Task count of each Submit request, in arrival order.
    submit_sizes: Vec<usize>,
    /// Ids of each WaitResults request, in arrival order.
    wait_requests: Vec<Vec<u64>>,
    get_requests: Vec<pb::GetTaskRequest>,
}

impl Fake {
    /// Serves the fake on an ephemeral loopback port.
    pub async fn serve(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let service = QueueServiceServer::new(self.clone());
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        addr
    }

    pub fn fail_next_calls(&self, n: u32) {
        self.inner.unavailable_calls.store(n, Ordering::SeqCst);
    }

    pub fn lose_next_submit_replies(&self, n: u32) {
        self.inner.lost_submit_replies.store(n, Ordering::SeqCst);
    }

    pub fn break_next_streams(&self, streams: u32, after_items: usize) {
        self.inner.break_after_items.store(after_items, Ordering::SeqCst);
        self.inner.broken_streams.store(streams, Ordering::SeqCst);
    }

    /// Marks a pending task succeeded with `result`.
    pub fn complete(&self, id: u64, result: &str) {
        let mut state = self.inner.state.lock().unwrap();
        let task = state.tasks.get_mut(&id).expect("known task");
        task.state = pb::TaskState::Succeeded as i32;
        task.result = Bytes::copy_from_slice(result.as_bytes());
        drop(state);
        self.inner.changed.notify_waiters();
    }

    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    pub fn task_count(&self) -> usize {
        self.inner.state.lock().unwrap().tasks.len()
    }

    pub fn args_of(&self, id: u64) -> Bytes {
        self.inner.state.lock().unwrap().args[&id].clone()
    }

    pub fn keys_seen(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().keys_seen.clone()
    }

    pub fn submit_sizes(&self) -> Vec<usize> {
        self.inner.state.lock().unwrap().submit_sizes.clone()
    }

    pub fn wait_requests(&self) -> Vec<Vec<u64>> {
        self.inner.state.lock().unwrap().wait_requests.clone()
    }

    pub fn get_requests(&self) -> Vec<pb::GetTaskRequest> {
        self.inner.state.lock().unwrap().get_requests.clone()
    }

    pub fn max_submits_in_flight(&self) -> usize {
        self.inner.max_submits_in_flight.load(Ordering::SeqCst)
    }

    /// Counts a call, and fails it when the test asked for UNAVAILABLE.
    fn enter(&self) -> Result<(), Status> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        let left = &self.inner.unavailable_calls;
        if left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Status::unavailable("no leader is ready"));
        }
        Ok(())
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn submit_batch(&self, tasks: Vec<pb::TaskSpec>) -> Result<Vec<pb::SubmitResult>, Status> {
        let mut state = self.inner.state.lock().unwrap();
        state.submit_sizes.push(tasks.len());
        if let Some(bad) = tasks.iter().find(|t| t.name.starts_with("unknown")) {
            return Err(Status::invalid_argument(format!(
                "unknown task name `{}`",
                bad.name
            )));
        }
        let mut results = Vec::with_capacity(tasks.len());
        for spec in tasks {
            state.keys_seen.push(spec.idempotency_key.clone());
            if let Some(&id) = state.keys.get(&spec.idempotency_key) {
                results.push(pb::SubmitResult { id, duplicate: true });
                continue;
            }
            state.next_id += 1;
            let id = state.next_id;
            let (task_state, result, error) = match spec.name.as_str() {
                "echo" => (pb::TaskState::Succeeded, spec.args.clone(), String::new()),
                "fail" => (pb::TaskState::Dead, Bytes::new(), "boom".to_owned()),
                _ => (pb::TaskState::Pending, Bytes::new(), String::new()),
            };
            state.tasks.insert(
                id,
                pb::TaskInfo {
                    id,
                    name: spec.name,
                    queue: if spec.queue.is_empty() {
                        "default".into()
                    } else {
                        spec.queue
                    },
                    state: task_state as i32,
                    attempt: u32::from(task_state != pb::TaskState::Pending),
                    max_retries: spec.max_retries,
                    result,
                    error,
                    created_unix_ms: 1,
                    updated_unix_ms: 2,
                    not_found: false,
                    ..Default::default()
                },
            );
            state.args.insert(id, spec.args);
            state.keys.insert(spec.idempotency_key, id);
            results.push(pb::SubmitResult { id, duplicate: false });
        }
        Ok(results)
    }

    /// Final reports for `ids` that are not reported yet.
    fn finals(&self, ids: &[u64], reported: &mut [bool]) -> Vec<pb::TaskInfo> {
        let state = self.inner.state.lock().unwrap();
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if reported[i] {
                continue;
            }
            let info = match state.tasks.get(id) {
                None => pb::TaskInfo {
                    id: *id,
                    not_found: true,
                    ..Default::default()
                },
                Some(t) if is_final(t.state) => t.clone(),
                Some(_) => continue,
            };
            reported[i] = true;
            out.push(info);
        }
        out
    }
}

fn is_final(state: i32) -> bool {
    [
        pb::TaskState::Succeeded,
        pb::TaskState::Dead,
        pb::TaskState::Cancelled,
    ]
    .iter()
    .any(|s| *s as i32 == state)
}

#[tonic::async_trait]
impl QueueService for Fake {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        self.enter()?;
        let in_flight = self.inner.submits_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner
            .max_submits_in_flight
            .fetch_max(in_flight, Ordering::SeqCst);
        let tasks = request.into_inner().tasks;
        // Tests make later batches of a pipelined run finish first, so that result order must
        // come from the client, not from arrival.
        // A batch whose first task has priority p in 1..=9 is held (10 - p) * 5 ms.
        let first_priority = tasks.first().map_or(0, |t| t.priority);
        if (1..=9).contains(&first_priority) {
            tokio::time::sleep(Duration::from_millis(u64::from(10 - first_priority) * 5)).await;
        }
        let outcome = self.submit_batch(tasks);
        self.inner.submits_in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
        let results = outcome?;
        if Self::take(&self.inner.lost_submit_replies) {
            return Err(Status::unavailable("forwarding to the leader failed"));
        }
        Ok(Response::new(pb::SubmitResponse { results }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::GetTaskResponse>, Status> {
        self.enter()?;
        let request = request.into_inner();
        let mut state = self.inner.state.lock().unwrap();
        state.get_requests.push(request);
        match state.tasks.get(&request.id) {
            Some(task) => Ok(Response::new(pb::GetTaskResponse {
                task: Some(task.clone()),
            })),
            None => Err(Status::not_found(format!("task {} not found", request.id))),
        }
    }

    type WaitResultsStream = ReceiverStream<Result<pb::TaskInfo, Status>>;

    async fn wait_results(
        &self,
        request: Request<pb::WaitResultsRequest>,
    ) -> Result<Response<Self::WaitResultsStream>, Status> {
        self.enter()?;
        let request = request.into_inner();
        self.inner
            .state
            .lock()
            .unwrap()
            .wait_requests
            .push(request.ids.clone());
        let break_after = Self::take(&self.inner.broken_streams)
            .then(|| self.inner.break_after_items.load(Ordering::SeqCst));
        let (tx, rx) = mpsc::channel(64);
        let fake = self.clone();
        tokio::spawn(async move {
            let deadline = (request.timeout_ms > 0)
                .then(|| tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms));
            let mut reported = vec![false; request.ids.len()];
            let mut sent = 0;
            loop {
                // Register interest before looking, so no completion slips between the two.
                let changed = fake.inner.changed.notified();
                for info in fake.finals(&request.ids, &mut reported) {
                    if break_after == Some(sent) {
                        let _ = tx.send(Err(Status::unavailable("node shutting down"))).await;
                        return;
                    }
                    if tx.send(Ok(info)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if reported.iter().all(|r| *r) {
                    return;
                }
                let timed_out = match deadline {
                    Some(at) => tokio::time::timeout_at(at, changed).await.is_err(),
                    None => {
                        changed.await;
                        false
                    }
                };
                if timed_out {
                    let _ = tx.send(Err(Status::deadline_exceeded("wait timed out"))).await;
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        self.enter()?;
        let mut state = self.inner.state.lock().unwrap();
        let cancelled = request
            .into_inner()
            .ids
            .iter()
            .map(|id| match state.tasks.get_mut(id) {
                Some(t) if t.state == pb::TaskState::Pending as i32 => {
                    t.state = pb::TaskState::Cancelled as i32;
                    true
                }
                _ => false,
            })
            .collect();
        drop(state);
        self.inner.changed.notify_waiters();
        Ok(Response::new(pb::CancelResponse { cancelled }))
    }

    async fn queue_stats(
        &self,
        _request: Request<pb::QueueStatsRequest>,
    ) -> Result<Response<pb::QueueStatsResponse>, Status> {
        self.enter()?;
        let state = self.inner.state.lock().unwrap();
        let mut queues: BTreeMap<String, pb::QueueStats> = BTreeMap::new();
        for t in state.tasks.values() {
            let q = queues.entry(t.queue.clone()).or_insert_with(|| pb::QueueStats {
                queue: t.queue.clone(),
                ..Default::default()
            });
            match pb::TaskState::try_from(t.state) {
                Ok(pb::TaskState::Pending) => q.pending += 1,
                Ok(pb::TaskState::Succeeded) => q.succeeded += 1,
                Ok(pb::TaskState::Dead) => q.dead += 1,
                Ok(pb::TaskState::Cancelled) => q.cancelled += 1,
                _ => {}
            }
        }
        Ok(Response::new(pb::QueueStatsResponse {
            queues: queues.into_values().collect(),
        }))
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        self.enter()?;
        let member = |id: u64, role: &str, lag| pb::Member {
            id,
            addr: format!("127.0.0.1:700{id}"),
            role: role.into(),
            zone: if id == 1 { "dc1".into() } else { String::new() },
            lag,
        };
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: 1,
            leader_id: Some(1),
            term: 3,
            commit_index: 42,
            applied_index: 41,
            members: vec![member(1, "leader", Some(0)), member(2, "follower", Some(5))],
            snapshot_index: 30,
            purged_index: 20,
            voter_sets: vec![pb::VoterSet { ids: vec![1, 2] }],
        }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        self.enter()?;
        // The fake cluster is members 1 and 2; removing 2 leaves 1, anything else is refused.
        match request.into_inner().id {
            2 => Ok(Response::new(pb::RemoveNodeResponse { members: vec![1] })),
            id => Err(Status::failed_precondition(format!("node {id} is not a member"))),
        }
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        self.enter()?;
        match pb::TokenRole::try_from(request.into_inner().role) {
            Ok(pb::TokenRole::Unspecified) | Err(_) => Err(Status::invalid_argument("no role")),
            Ok(_) => Ok(Response::new(pb::CreateTokenResponse {
                id: 7,
                token: "flt_fake".into(),
            })),
        }
    }

    /// One token, whose label is the `authorization` header this call carried (so a test sees
    /// what the client sends).
    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.enter()?;
        let seen = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<none>")
            .to_string();
        Ok(Response::new(pb::ListTokensResponse {
            tokens: vec![pb::ApiToken {
                id: 7,
                role: pb::TokenRole::Submit as i32,
                label: seen,
                created_unix_ms: 1_000,
                expires_unix_ms: None,
            }],
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        self.enter()?;
        Ok(Response::new(pb::RevokeTokenResponse {
            revoked: request.into_inner().id == 7,
        }))
    }

    /// One name, declared by a node and a worker.
    async fn list_task_names(
        &self,
        _request: Request<pb::ListTaskNamesRequest>,
    ) -> Result<Response<pb::ListTaskNamesResponse>, Status> {
        self.enter()?;
        let declarer = |declarer: &str, queue: &str| pb::TaskNameDeclarer {
            declarer: declarer.into(),
            queue: queue.into(),
        };
        Ok(Response::new(pb::ListTaskNamesResponse {
            tasks: vec![pb::TaskName {
                name: "tasks.add".into(),
                default_queue: "math".into(),
                declarers: vec![declarer("py-1", "math"), declarer("node:1", "default")],
                held: 3,
                workers: vec![pb::ConnectedWorker {
                    node_id: 2,
                    name: "py-1".into(),
                    queues: vec!["math".into()],
                    concurrency: 8,
                }],
            }],
            unreachable_nodes: vec![3],
        }))
    }

    /// A pool, a remote worker, a name only the log holds, and node 3 silent.
    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        self.enter()?;
        let worker = |node_id, name: &str, kind: pb::WorkerKind| pb::WorkerInfo {
            node_id,
            name: name.into(),
            kind: kind as i32,
            queues: vec!["default".into()],
            concurrency: 4,
            busy: 1,
            leased: 2,
            standing: 0,
            connected_ms_ago: 60_000,
            last_seen_ms_ago: 150,
        };
        Ok(Response::new(pb::ListWorkersResponse {
            workers: vec![
                worker(1, "node-1", pb::WorkerKind::Pool),
                worker(2, "py-1", pb::WorkerKind::Remote),
                worker(0, "gone-1", pb::WorkerKind::Unspecified),
            ],
            unreachable_nodes: vec![3],
        }))
    }

    /// Records every name as new.
    async fn declare_task_names(
        &self,
        request: Request<pb::DeclareTaskNamesRequest>,
    ) -> Result<Response<pb::DeclareTaskNamesResponse>, Status> {
        self.enter()?;
        Ok(Response::new(pb::DeclareTaskNamesResponse {
            recorded: request.into_inner().names.len() as u32,
        }))
    }

    /// Finds no task.
    async fn find_tasks_by_idempotency_key(
        &self,
        request: Request<pb::FindTasksByIdempotencyKeyRequest>,
    ) -> Result<Response<pb::FindTasksByIdempotencyKeyResponse>, Status> {
        self.enter()?;
        Ok(Response::new(pb::FindTasksByIdempotencyKeyResponse {
            ids: vec![0; request.into_inner().idempotency_keys.len()],
        }))
    }
}

/// An address on which nothing listens: connections to it are refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    listener.local_addr().expect("local addr")
}

/// A node that stopped answering, as a SIGSTOPped process looks from outside: the kernel
/// completes TCP handshakes into the listen backlog, but nothing accepts, reads or writes.
/// Connections to the address stay open and silent while the listener lives.
pub async fn frozen_addr() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}
