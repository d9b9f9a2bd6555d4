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

use crate::events;
use crate::events::EventLog;
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
    /// A `ClearStanding` of it was applied (every grant to its standing capacity came before),
    /// and which: told apart by the entry it came in, the only thing that names it.
    pub cleared: Option<Cleared>,
    /// Its leases a `Revoke` ended (`cancel --terminate`): abort those runs, drop their results.
    pub revoked: Vec<LeaseRef>,
}

/// Which of a pool's `ClearStanding`s an apply held, by the pool's other commands in the same
/// entry (each kind of entry that clears is proposed in one shape only, `worker/core/outbox.rs`).
/// A drain must know its own: it is done only once every grant before *its* clear was heard of.
/// A restand's clear applied earlier but heard of after the drain's committed is not that: the
/// drain took it for its own and ended while a grant to standing capacity was still on its way,
/// leaving that lease behind (proptest `with_lease_ahead_by_measurement_...`, issue 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleared {
    /// Alone: a drain's.
    Alone,
    /// With a `Lease` of the pool: a restand (stand again for less).
    WithLease,
    /// With a `Release` of the pool: a resume.
    WithRelease,
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
                cleared: None,
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
                let kind = clear_kind(req, pool);
                pools.entry(pool.clone()).or_default().cleared = Some(kind);
            }
            _ => {}
        }
    }
    pools
}

/// What else of `pool`'s the entry that clears its standing capacity holds.
fn clear_kind(req: &Request, pool: &str) -> Cleared {
    let mut kind = Cleared::Alone;
    for cmd in &req.commands {
        match cmd {
            Command::Lease { pool: p, .. } if p == pool => kind = Cleared::WithLease,
            Command::Release { pool: p, .. } if p == pool => kind = Cleared::WithRelease,
            _ => {}
        }
    }
    kind
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
    /// Recent events for watchers (`crate::events`), derived from each apply once watched.
    events: EventLog,
    /// Who leads a term, as this node knows it (set once by the server, from Raft's metrics).
    leader_of: OnceLock<LeaderOf>,
}

/// The leader of a term as this node knows it (a blank entry's log id names only the term).
pub type LeaderOf = Box<dyn Fn(u64) -> Option<u64> + Send + Sync>;

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
            events: EventLog::default(),
            leader_of: OnceLock::new(),
        }
    }

    /// This node's recent events (see [`crate::events`]).
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Say who leads a term (for leader-changed events). Once; a second is ignored.
    pub fn set_leader_of(&self, f: LeaderOf) {
        let _ = self.leader_of.set(f);
    }

    /// Start recording events (the first watcher came); from the next entry applied on. Under
    /// the queue's write lock, so an entry is recorded whole or not at all.
    pub fn watch_events(&self) {
        if self.events.is_on() {
            return;
        }
        let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
        if self.events.start() {
            q.observe(true);
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

    /// Apply one committed entry and wake whoever waits on its effects (an entry of no known
    /// log index: tests).
    pub fn apply(&self, req: &Request) -> Vec<Response> {
        self.apply_entry(0, req)
    }

    /// Apply the committed entry at log `index` and wake whoever waits on its effects.
    pub fn apply_entry(&self, index: u64, req: &Request) -> Vec<Response> {
        let mut effects = ApplyEffects::default();
        let responses = {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            let responses = q.apply(req, &mut effects);
            if self.events.is_on() {
                self.events
                    .append(index, |names, out| events::derive(index, req, &q, names, out));
            } else {
                self.events.skipped(index);
            }
            if q.observing() {
                match self.watcher.get() {
                    Some(watcher) => q.drain_seen(|queue, changes| watcher.changed(queue, changes)),
                    None => q.forget_seen(),
                }
            }
            // Under the lock, so that pools hear of applies in apply order even when entries
            // are applied from several threads (a local backend).
            tracing::debug!(target: crate::trace::TIMELINE, index, pools = effects.pools.len(), "applied");
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
        self.new_term_at(0, 0);
    }

    /// A new leader's first entry, at log `index` in `term`, was applied: see
    /// [`QueueState::new_term`].
    pub fn new_term_at(&self, index: u64, term: u64) {
        let mut effects = ApplyEffects::default();
        {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            q.new_term(&mut effects);
            if self.events.is_on() {
                let leader = self.leader_of.get().and_then(|f| f(term)).unwrap_or(0);
                let at_ms = q.now_ms();
                self.events.append(index, |names, out| {
                    out(events::leader_changed(index, at_ms, term, leader, names));
                });
            } else {
                self.events.skipped(index);
            }
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
        self.replace_at(state, 0);
    }

    /// Replace the whole state by a snapshot up to log `index` (its install, or the load at
    /// start). Every waiter is re-checked against it; no event before it can be given.
    pub fn replace_at(&self, state: QueueState, index: u64) {
        {
            let mut q = self.queue.write().unwrap_or_else(|e| e.into_inner());
            *q = state;
            q.observe(self.watcher.get().is_some() || self.events.is_on());
            self.events.replaced(index);
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

    /// Drops the registrations of `ids` whose receiver has gone (a wait that timed out or
    /// whose client hung up). Only those ids are looked at: scanning every waiter at the end of
    /// every stream cost O(open waits) per wait, quadratic under a flood of single-task waits
    /// (issue 15). A finished task's waiters are already gone (`notify` removed them).
    pub fn forget_closed_waiters(&self, ids: impl IntoIterator<Item = TaskId>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(txs) = waiters.get_mut(&id) {
                txs.retain(|tx| !tx.is_closed());
                if txs.is_empty() {
                    waiters.remove(&id);
                }
            }
        }
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
