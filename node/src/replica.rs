//! [`Replica`]: this node's applied copy of the queue, shared by the Raft state machine (which
//! writes it) and the gRPC service and workers (which read it and wait on it).
//!
//! The state is behind one `RwLock`, taken once per applied entry (an entry is a batch), never
//! per task. Waiters are keyed by task id so a finished task wakes only its own waiters.
//! A worker pool subscribes to its own name ([`Replica::subscribe_pool`]): each apply that
//! granted it tasks (by its ticketed `Lease`s or to its standing capacity), changed or cleared
//! its standing capacity sends it a [`PoolEvent`], in apply order. Grants to standing capacity
//! reach a pool only this way; the grants of a lease that left standing capacity also come
//! with its reply, and the pool takes whichever comes first (see `worker::core`). [`pool_effects`] derives the events, purely,
//! from the entry, its responses and the state machine's effects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::RwLock;

use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::queue::ApplyEffects;
use crate::queue::Change;
use crate::queue::Command;
use crate::queue::Grant;
use crate::queue::LeaseRef;
use crate::queue::PoolEffects;
use crate::queue::QueueState;
use crate::queue::Request;
use crate::queue::Response;
use crate::queue::TaskId;

/// Sender half given to [`Replica::watch_tasks`]: receives each id once it is final (possibly
/// more than once; receivers de-duplicate).
pub type FinishedTx = mpsc::UnboundedSender<TaskId>;

/// Hears the changes of task state each apply made, per queue, under the replica's write lock
/// (the node's metrics, `observe::apply`): it must be quick (atomic adds).
pub trait ApplyWatcher: Send + Sync {
    fn changed(&self, queue: &str, changes: &[Change]);
}

/// What a pool hears from its replica, in apply order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolEvent {
    /// One apply touched this pool.
    Applied(PoolApplied),
    /// The state was replaced (snapshot install): applies in between were never seen. This is
    /// the pool's standing capacity now.
    Resync { standing: u32 },
}

/// What one apply did for one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolApplied {
    /// Each of its ticketed `Lease`s applied that left standing capacity, with the tasks it
    /// granted.
    pub leases: Vec<(u64, Vec<Grant>)>,
    /// Tasks granted to its standing capacity, in order.
    pub grants: Vec<Grant>,
    /// Its standing capacity after the apply, if the apply touched it.
    pub standing: Option<u32>,
    /// A `ClearStanding` of it was applied: every grant to its standing capacity came before.
    pub cleared: bool,
    /// Its leases a `Revoke` ended (`cancel --terminate`): abort those runs, drop their results.
    pub revoked: Vec<LeaseRef>,
}

/// Per pool named by `wanted`, what applying `req` (answered by `responses`, with the state
/// machine's per-worker `effects`) did for it: the grants of its ticketed `Lease`s that left
/// standing capacity (copied from their responses, which also go back to the proposer; a
/// filled lease is settled by its reply, so a busy pool gets no events), and its standing
/// capacity and grants to it. Pure, so tests build the events a replica would send from a
/// bare [`QueueState`].
pub fn pool_effects(
    req: &Request,
    responses: &[Response],
    effects: BTreeMap<String, PoolEffects>,
    wanted: impl Fn(&str) -> bool,
) -> BTreeMap<String, PoolApplied> {
    let mut pools: BTreeMap<String, PoolApplied> = effects
        .into_iter()
        .filter(|(pool, _)| wanted(pool))
        .map(|(pool, fx)| {
            let applied = PoolApplied {
                leases: Vec::new(),
                grants: fx.grants,
                standing: fx.standing,
                cleared: false,
                revoked: fx.revoked,
            };
            (pool, applied)
        })
        .collect();
    for (cmd, response) in req.commands.iter().zip(responses) {
        match (cmd, response) {
            (
                Command::Lease {
                    pool,
                    max,
                    standing_ticket: Some(ticket),
                    ..
                },
                Response::Leased(grants),
            ) if grants.len() < *max as usize && wanted(pool) => {
                let applied = pools.entry(pool.clone()).or_default();
                applied.leases.push((*ticket, grants.clone()));
            }
            (Command::ClearStanding { pool }, _) if wanted(pool) => {
                pools.entry(pool.clone()).or_default().cleared = true;
            }
            _ => {}
        }
    }
    pools
}

/// Whether `req` holds a `ClearStanding`, which its pool hears of even when it stood for
/// nothing. (A lease that left standing capacity shows in the state machine's effects.)
fn clears_standing(req: &Request) -> bool {
    req.commands
        .iter()
        .any(|c| matches!(c, Command::ClearStanding { .. }))
}

pub struct Replica {
    queue: RwLock<QueueState>,
    waiters: Mutex<BTreeMap<TaskId, Vec<FinishedTx>>>,
    /// Bumped whenever tasks became leasable, so idle worker pools wake without polling.
    work_tx: watch::Sender<u64>,
    /// Pool name → its event senders.
    pool_txs: Mutex<BTreeMap<String, Vec<mpsc::UnboundedSender<PoolEvent>>>>,
    /// Set once, when the node keeps metrics.
    watcher: OnceLock<Arc<dyn ApplyWatcher>>,
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
            pool_txs: Mutex::new(BTreeMap::new()),
            watcher: OnceLock::new(),
        }
    }

    /// Tell `watcher` the changes of task state of every apply from now on. Once per replica:
    /// a second watcher is ignored.
    pub fn watch_applies(&self, watcher: Arc<dyn ApplyWatcher>) {
        let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
        if self.watcher.set(watcher).is_ok() {
            q.observe(true);
        }
    }

    /// Apply one committed entry and wake whoever waits on its effects.
    pub fn apply(&self, req: &Request) -> Vec<Response> {
        let mut effects = ApplyEffects::default();
        let responses = {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            let responses = q.apply(req, &mut effects);
            if let Some(watcher) = self.watcher.get() {
                q.drain_seen(|queue, changes| watcher.changed(queue, changes));
            }
            // Under the lock, so that pools hear of applies in apply order even when entries
            // are applied from several threads (a local backend).
            if !effects.pools.is_empty() || clears_standing(req) {
                self.notify_pools(req, &responses, std::mem::take(&mut effects.pools));
            }
            responses
        };
        self.notify(effects);
        responses
    }

    /// A new leader's first entry was applied: see [`QueueState::new_term`].
    pub fn new_term(&self) {
        let mut effects = ApplyEffects::default();
        {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            q.new_term(&mut effects);
            let no_entry = Request {
                now_ms: 0,
                commands: Vec::new(),
            };
            self.notify_pools(&no_entry, &[], std::mem::take(&mut effects.pools));
        }
        self.notify(effects);
    }

    /// Replace the whole state (snapshot install). Every waiter is re-checked against it.
    pub fn replace(&self, state: QueueState) {
        {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            *q = state;
            q.observe(self.watcher.get().is_some());
            // Under the lock, like every pool event (see `apply`).
            let mut txs = self.pool_txs.lock().unwrap_or_else(|e| e.into_inner());
            for (pool, txs) in txs.iter_mut() {
                let standing = q.standing_capacity(pool);
                txs.retain(|tx| tx.send(PoolEvent::Resync { standing }).is_ok());
            }
        }
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
    }

    /// Send each subscribed pool what this apply did for it (see [`pool_effects`]). Called
    /// under the queue's write lock (lock order: queue, then pool senders).
    fn notify_pools(&self, req: &Request, responses: &[Response], workers: BTreeMap<String, PoolEffects>) {
        let mut txs = self.pool_txs.lock().unwrap_or_else(|e| e.into_inner());
        let pools = pool_effects(req, responses, workers, |pool| txs.contains_key(pool));
        for (pool, applied) in pools {
            if let Some(txs) = txs.get_mut(&pool) {
                // Usually one subscriber: the last one gets the original, not a copy.
                let mut applied = Some(applied);
                let last = txs.len().saturating_sub(1);
                let mut i = 0;
                txs.retain(|tx| {
                    let event = if i == last {
                        applied.take()
                    } else {
                        applied.clone()
                    };
                    i += 1;
                    event.is_some_and(|e| tx.send(PoolEvent::Applied(e)).is_ok())
                });
            }
        }
    }

    fn notify(&self, effects: ApplyEffects) {
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

    /// Events of the pool named `pool` (its `worker` name in commands), from now on, in apply
    /// order.
    pub fn subscribe_pool(&self, pool: &str) -> mpsc::UnboundedReceiver<PoolEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pool_txs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(pool.to_owned())
            .or_default()
            .push(tx);
        rx
    }

    /// Whether `lease` is the current lease of its task, held by `pool`, on this replica.
    pub fn holds(&self, pool: &str, lease: LeaseRef) -> bool {
        self.read(|q| holds(q, pool, lease))
    }

    /// Changes whenever new work may be leasable.
    pub fn work_signal(&self) -> watch::Receiver<u64> {
        self.work_tx.subscribe()
    }
}

/// Whether `q` shows `lease` as the current lease of its task, held by `pool`.
pub fn holds(q: &QueueState, pool: &str, lease: LeaseRef) -> bool {
    q.current_lease(lease.task)
        .is_some_and(|(l, w, _)| l == lease && w == pool)
}
