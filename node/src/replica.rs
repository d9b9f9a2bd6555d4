//! [`Replica`]: this node's applied copy of the queue, shared by the Raft state machine (which
//! writes it) and the gRPC service and workers (which read it and wait on it).
//!
//! The state is behind one `RwLock`, taken once per applied entry (an entry is a batch), never
//! per task. Waiters are keyed by task id so a finished task wakes only its own waiters.
//! A worker pool subscribes to its own name ([`Replica::subscribe_worker`]): each apply that
//! touched its leases or standing capacity sends it a [`WorkerEvent`] (grants to its standing
//! capacity among them), in apply order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::RwLock;

use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::queue::ApplyEffects;
use crate::queue::QueueState;
use crate::queue::Request;
use crate::queue::Response;
use crate::queue::TaskId;
use crate::queue::WorkerEffects;

/// Sender half given to [`Replica::watch_tasks`]: receives each id once it is final (possibly
/// more than once; receivers de-duplicate).
pub type FinishedTx = mpsc::UnboundedSender<TaskId>;

/// What a worker pool hears from its replica, in apply order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerEvent {
    /// One apply touched this worker: grants to its standing capacity, its ticketed leases
    /// applied, its standing capacity after the apply.
    Applied(WorkerEffects),
    /// The state was replaced (snapshot install): effects in between were never seen. This is
    /// the worker's standing capacity now.
    Resync { standing: u32 },
}

pub struct Replica {
    queue: RwLock<QueueState>,
    waiters: Mutex<BTreeMap<TaskId, Vec<FinishedTx>>>,
    /// Bumped whenever tasks became leasable, so idle worker pools wake without polling.
    work_tx: watch::Sender<u64>,
    /// Worker name → its pool's event senders.
    worker_txs: Mutex<BTreeMap<String, Vec<mpsc::UnboundedSender<WorkerEvent>>>>,
}

impl Default for Replica {
    fn default() -> Self {
        Self::new(QueueState::new())
    }
}

impl Replica {
    pub fn new(state: QueueState) -> Self {
        let (work_tx, _) = watch::channel(0);
        Self {
            queue: RwLock::new(state),
            waiters: Mutex::new(BTreeMap::new()),
            work_tx,
            worker_txs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Apply one committed entry and wake whoever waits on its effects.
    pub fn apply(&self, req: &Request) -> Vec<Response> {
        let mut effects = ApplyEffects::default();
        let responses = {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            q.apply(req, &mut effects)
        };
        self.notify(effects);
        responses
    }

    /// A new leader's first entry was applied: see [`QueueState::new_term`].
    pub fn new_term(&self) {
        let mut effects = ApplyEffects::default();
        self.queue
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .new_term(&mut effects);
        self.notify(effects);
    }

    /// Replace the whole state (snapshot install). Every waiter is re-checked against it.
    pub fn replace(&self, state: QueueState) {
        *self.queue.write().unwrap_or_else(|e| e.into_inner()) = state;
        let ids: Vec<TaskId> = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let finished = self.read(|q| {
            ids.into_iter()
                .filter(|id| q.task(*id).is_none_or(|t| t.state.is_final()))
                .collect()
        });
        self.notify(ApplyEffects {
            finished,
            became_pending: 1,
            ..ApplyEffects::default()
        });
        let mut txs = self.worker_txs.lock().unwrap_or_else(|e| e.into_inner());
        for (worker, txs) in txs.iter_mut() {
            let standing = self.read(|q| q.standing_capacity(worker));
            txs.retain(|tx| tx.send(WorkerEvent::Resync { standing }).is_ok());
        }
    }

    fn notify(&self, effects: ApplyEffects) {
        if !effects.workers.is_empty() {
            let mut txs = self.worker_txs.lock().unwrap_or_else(|e| e.into_inner());
            if !txs.is_empty() {
                for (worker, fx) in effects.workers {
                    if let Some(txs) = txs.get_mut(&worker) {
                        txs.retain(|tx| tx.send(WorkerEvent::Applied(fx.clone())).is_ok());
                    }
                }
            }
        }
        if !effects.finished.is_empty() {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if !waiters.is_empty() {
                for id in &effects.finished {
                    if let Some(txs) = waiters.remove(id) {
                        for tx in txs {
                            let _ = tx.send(*id);
                        }
                    }
                }
            }
        }
        if effects.became_pending > 0 {
            self.work_tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Read the state under the lock. Keep `f` short: apply waits for it.
    pub fn read<T>(&self, f: impl FnOnce(&QueueState) -> T) -> T {
        f(&self.queue.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Register `tx` to hear when each of `ids` is final, then report those already final (or
    /// gone). Registering before reading means no completion can slip between the two.
    pub fn watch_tasks(&self, ids: &[TaskId], tx: &FinishedTx) {
        {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                waiters.entry(*id).or_default().push(tx.clone());
            }
        }
        let done: Vec<TaskId> = self.read(|q| {
            ids.iter()
                .copied()
                .filter(|id| q.task(*id).is_none_or(|t| t.state.is_final()))
                .collect()
        });
        for id in done {
            let _ = tx.send(id);
        }
    }

    /// Drop registrations whose receiver has gone (a client that hung up).
    pub fn forget_closed_waiters(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.retain(|_, txs| {
            txs.retain(|tx| !tx.is_closed());
            !txs.is_empty()
        });
    }

    /// Events of the worker (pool) named `worker`, from now on, in apply order.
    pub fn subscribe_worker(&self, worker: &str) -> mpsc::UnboundedReceiver<WorkerEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.worker_txs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(worker.to_owned())
            .or_default()
            .push(tx);
        rx
    }

    /// Whether `lease` is the current lease of its task, held by `worker`, on this replica.
    pub fn holds(&self, worker: &str, lease: crate::queue::LeaseRef) -> bool {
        self.read(|q| {
            q.current_lease(lease.task)
                .is_some_and(|(l, w, _)| l == lease && w == worker)
        })
    }

    /// Changes whenever new work may be leasable.
    pub fn work_signal(&self) -> watch::Receiver<u64> {
        self.work_tx.subscribe()
    }
}
