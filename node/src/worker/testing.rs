//! Backends for tests and the simulator: [`LocalBackend`] applies each command straight to a
//! local [`Replica`] (a one-node "log"), and [`RecordingBackend`] wraps any backend to record
//! what the pool proposes, check it as it goes, and inject proposal failures.

use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::sync::watch;

use super::backend::Backend;
use crate::clock::SharedClock;
use crate::error::ProposeError;
use crate::queue::Command;
use crate::queue::LeaseRef;
use crate::queue::Request;
use crate::queue::Response;
use crate::queue::TaskSpec;
use crate::replica::PoolEvent;
use crate::replica::Replica;

/// Proposes by applying `Request { now_ms: clock.now_ms(), commands: vec![cmd] }` to a replica.
#[derive(Clone)]
pub struct LocalBackend {
    replica: Arc<Replica>,
    clock: SharedClock,
}

impl LocalBackend {
    pub fn new(replica: Arc<Replica>, clock: SharedClock) -> Self {
        Self { replica, clock }
    }

    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Apply one command now (e.g. a test's `Submit`).
    pub fn apply(&self, cmd: Command) -> Response {
        let mut responses = self.replica.apply(&Request {
            now_ms: self.clock.now_ms(),
            commands: vec![cmd],
        });
        // One command in, one response out: the state machine's contract.
        responses.pop().unwrap_or(Response::Ticked)
    }
}

/// All-or-nothing counting: the state machine returns one response per command.
fn check_count(cmds: usize, responses: Vec<Response>) -> Result<Vec<Response>, ProposeError> {
    if responses.len() == cmds {
        Ok(responses)
    } else {
        Err(ProposeError::Fatal(format!(
            "state machine returned {} responses for {cmds} commands",
            responses.len()
        )))
    }
}

impl Backend for LocalBackend {
    fn propose_many(&self, cmds: Vec<Command>) -> BoxFuture<'static, Result<Vec<Response>, ProposeError>> {
        let replica = self.replica.clone();
        let clock = self.clock.clone();
        async move {
            let n = cmds.len();
            let responses = replica.apply(&Request {
                now_ms: clock.now_ms(),
                commands: cmds,
            });
            check_count(n, responses)
        }
        .boxed()
    }

    fn work_signal(&self) -> watch::Receiver<u64> {
        self.replica.work_signal()
    }

    /// Also true when a timer is due: there is no ticker here (the node has one), so a `Lease`
    /// is what moves time forward and brings due retries and expired leases back.
    fn may_have_work(&self, queues: &[String]) -> bool {
        let now = self.clock.now_ms();
        self.replica
            .read(|q| q.leasable(queues) > 0 || q.next_deadline_ms().is_some_and(|d| d <= now))
    }

    fn pool_events(&self, pool: &str) -> mpsc::UnboundedReceiver<PoolEvent> {
        self.replica.subscribe_pool(pool)
    }

    fn holds(&self, pool: &str, lease: LeaseRef) -> bool {
        self.replica.holds(pool, lease)
    }

    fn log_now_ms(&self) -> u64 {
        self.replica.read(|q| q.now_ms())
    }
}

type Check = Box<dyn Fn(&Command) + Send + Sync>;

/// How an injected proposal failure happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fails with `NoLeader` without reaching the log.
    BeforeApply,
    /// Reaches the log and is applied, then fails anyway (a reply lost on the way back): the
    /// proposer cannot tell this from `BeforeApply`.
    AfterApply,
}

struct Injection {
    left: usize,
    fault: Fault,
    applies_to: fn(&Command) -> bool,
}

/// Wraps a backend: records every command proposed, runs `check` on each before it is
/// proposed (panicking there fails the test at the offending proposal), tracks concurrency
/// per kind of command, and fails proposals on demand.
pub struct RecordingBackend {
    inner: Arc<dyn Backend>,
    check: Option<Check>,
    log: Mutex<Vec<Command>>,
    injections: Mutex<Vec<Injection>>,
    counters: Arc<Mutex<Concurrency>>,
}

/// Concurrent proposals per kind: now and the most seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Concurrency {
    pub lease_now: usize,
    pub lease_max: usize,
    pub complete_now: usize,
    pub complete_max: usize,
}

impl RecordingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            check: None,
            log: Mutex::new(Vec::new()),
            injections: Mutex::new(Vec::new()),
            counters: Arc::default(),
        }
    }

    pub fn with_check(mut self, check: impl Fn(&Command) + Send + Sync + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Fail the next `n` proposals for which `applies_to` holds (see [`is_lease`],
    /// [`is_complete`], [`any_command`]).
    pub fn inject(&self, n: usize, fault: Fault, applies_to: fn(&Command) -> bool) {
        self.injections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Injection {
                left: n,
                fault,
                applies_to,
            });
    }

    /// Injected failures not yet hit.
    pub fn pending_faults(&self) -> usize {
        self.injections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|i| i.left)
            .sum()
    }

    /// Every command proposed so far (failed ones included), in order.
    pub fn commands(&self) -> Vec<Command> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn concurrency(&self) -> Concurrency {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_fault(&self, cmd: &Command) -> Option<Fault> {
        let mut injections = self.injections.lock().unwrap_or_else(|e| e.into_inner());
        let hit = injections
            .iter_mut()
            .find(|i| i.left > 0 && (i.applies_to)(cmd))?;
        hit.left -= 1;
        Some(hit.fault)
    }
}

pub fn is_lease(cmd: &Command) -> bool {
    matches!(cmd, Command::Lease { .. })
}

pub fn is_complete(cmd: &Command) -> bool {
    matches!(cmd, Command::Complete { .. })
}

pub fn any_command(_: &Command) -> bool {
    true
}

impl RecordingBackend {
    /// Record and check `cmds`, count them as in flight, and decide the injected fault (the
    /// first injection that matches any of them; a fault hits the whole entry).
    fn begin(&self, cmds: &[Command]) -> (Option<Fault>, impl FnOnce() + Send + 'static) {
        for cmd in cmds {
            if let Some(check) = &self.check {
                check(cmd);
            }
        }
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(cmds.iter().cloned());
        let leases = cmds.iter().filter(|c| is_lease(c)).count();
        let completes = cmds.iter().filter(|c| is_complete(c)).count();
        {
            let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.lease_now += leases;
            c.lease_max = c.lease_max.max(c.lease_now);
            c.complete_now += completes;
            c.complete_max = c.complete_max.max(c.complete_now);
        }
        let counters = self.counters.clone();
        let end = move || {
            let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
            c.lease_now -= leases;
            c.complete_now -= completes;
        };
        let fault = cmds.iter().find_map(|cmd| self.take_fault(cmd));
        (fault, end)
    }
}

impl Backend for RecordingBackend {
    fn propose_many(&self, cmds: Vec<Command>) -> BoxFuture<'static, Result<Vec<Response>, ProposeError>> {
        let (fault, end) = self.begin(&cmds);
        if fault == Some(Fault::BeforeApply) {
            end();
            return futures::future::ready(Err(ProposeError::NoLeader)).boxed();
        }
        let proposal = self.inner.propose_many(cmds);
        async move {
            let result = proposal.await;
            end();
            if fault == Some(Fault::AfterApply) {
                Err(ProposeError::Forward("reply lost".into()))
            } else {
                result
            }
        }
        .boxed()
    }

    fn work_signal(&self) -> watch::Receiver<u64> {
        self.inner.work_signal()
    }

    fn may_have_work(&self, queues: &[String]) -> bool {
        self.inner.may_have_work(queues)
    }

    fn pool_events(&self, pool: &str) -> mpsc::UnboundedReceiver<PoolEvent> {
        self.inner.pool_events(pool)
    }

    fn holds(&self, pool: &str, lease: LeaseRef) -> bool {
        self.inner.holds(pool, lease)
    }

    fn log_now_ms(&self) -> u64 {
        self.inner.log_now_ms()
    }
}

/// A task for the default queue with no retries, no ETA and a one-hour result TTL.
pub fn task_spec(name: &str, args: &str) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        queue: String::new(),
        args: Bytes::copy_from_slice(args.as_bytes()),
        priority: 0,
        eta_ms: None,
        countdown_ms: None,
        max_retries: 0,
        backoff_ms: 0,
        time_limit_ms: None,
        idempotency_key: None,
        result_ttl_ms: 3_600_000,
        headers: Default::default(),
        concurrency_key: None,
    }
}
