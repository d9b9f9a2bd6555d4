//! The events stream (`flotilla.v1.EventService.Watch`, `flotilla events`): what happened to
//! tasks, pools and leadership, derived from what this node's replica applies — never a second
//! source of truth. Every event carries the log index of the entry that caused it and its
//! ordinal among that entry's events: `(index, ordinal)` is its [`Pos`], the same on every
//! node for the same entry (events are derived from the entry, its responses and the state
//! machine's recorded changes, all deterministic), so a consumer resumes from a position on
//! any node and misses nothing, as long as the position is still held.
//!
//! - `mod.rs` (this file): [`Event`], [`Kind`], [`Filter`] and [`derive()`], which turns one
//!   apply into events.
//! - [`log`]: [`EventLog`], the bounded in-memory ring of recent events that watchers read by
//!   cursor. It records nothing until a first watcher comes (a node nobody watches pays one
//!   branch per task change: `queue/state/seen.rs`); apply only appends and never waits for a
//!   watcher.
//!
//! What each kind means (`docs/OPERATIONS.md`, "Watching events"):
//!
//! | kind | caused by |
//! |---|---|
//! | submitted | a task created (pending or scheduled) |
//! | started | a task leased (granted) to a pool: `pool` names it, `attempt` is the lease's |
//! | progress | a worker's progress report kept (`progress` is its JSON) |
//! | succeeded | a result accepted |
//! | retried | a failed attempt that will run again (`error`) |
//! | released | a lease handed back or expired: the task is pending again, no retry used |
//! | dead | a task that will not run again (`error`) |
//! | cancelled | a task cancelled (cancel or purge) |
//! | pool_online | a pool (a node's own, or a remote worker's session) started (`ReleaseWorker`) or resumed its leases on this node |
//! | pool_offline | a pool's standing capacity cleared for good (it drained, or its node was lost) |
//! | leader_changed | a new leader's first entry: `term`, `leader` |

pub mod log;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

pub use self::log::EventLog;
pub use self::log::Names;
pub use self::log::Read;
use crate::queue::Command;
use crate::queue::QueueState;
use crate::queue::Request;
use crate::queue::SeenChange;
use crate::queue::TaskId;
use crate::queue::TaskState;
use crate::queue::UnixMs;
use crate::queue::Why;

/// Where an event sits in the stream: `(log index, ordinal within the entry)`. Ordered.
pub type Pos = (u64, u32);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Submitted,
    Started,
    Progress,
    Succeeded,
    Retried,
    Released,
    Dead,
    Cancelled,
    PoolOnline,
    PoolOffline,
    LeaderChanged,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Submitted,
        Kind::Started,
        Kind::Progress,
        Kind::Succeeded,
        Kind::Retried,
        Kind::Released,
        Kind::Dead,
        Kind::Cancelled,
        Kind::PoolOnline,
        Kind::PoolOffline,
        Kind::LeaderChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Submitted => "submitted",
            Kind::Started => "started",
            Kind::Progress => "progress",
            Kind::Succeeded => "succeeded",
            Kind::Retried => "retried",
            Kind::Released => "released",
            Kind::Dead => "dead",
            Kind::Cancelled => "cancelled",
            Kind::PoolOnline => "pool_online",
            Kind::PoolOffline => "pool_offline",
            Kind::LeaderChanged => "leader_changed",
        }
    }

    /// About a task (filtered by queue and task name); the others are about the cluster.
    pub fn is_task(self) -> bool {
        self <= Kind::Cancelled
    }
}

/// Most characters of an error kept in an event (the task keeps the whole error).
pub const MAX_EVENT_ERROR_CHARS: usize = 1024;

/// One event. Names are shared (`Arc<str>` from the log's name cache), so an event costs no
/// allocation of its own for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub index: u64,
    pub ordinal: u32,
    /// The entry's log time.
    pub at_ms: UnixMs,
    pub kind: Kind,
    /// The task (task kinds), else 0.
    pub task: TaskId,
    pub queue: Arc<str>,
    pub name: Arc<str>,
    pub attempt: u32,
    /// The pool a task started on, or the pool that came online or went offline.
    pub pool: Arc<str>,
    /// Retried and dead: the task's last error (at most [`MAX_EVENT_ERROR_CHARS`]).
    pub error: Option<Arc<str>>,
    /// Progress: the report, as the worker sent it.
    pub progress: Option<Bytes>,
    /// Leader changed: the new term and its leader.
    pub term: u64,
    pub leader: u64,
}

impl Event {
    pub fn pos(&self) -> Pos {
        (self.index, self.ordinal)
    }

    fn blank(index: u64, at_ms: UnixMs, kind: Kind, names: &mut Names) -> Self {
        let empty = names.get("");
        Event {
            index,
            ordinal: 0,
            at_ms,
            kind,
            task: 0,
            queue: empty.clone(),
            name: empty.clone(),
            attempt: 0,
            pool: empty,
            error: None,
            progress: None,
            term: 0,
            leader: 0,
        }
    }
}

/// Most queues or task names one watcher may filter on.
pub const MAX_FILTER_NAMES: usize = 64;

/// What a watcher wants. Empty sets mean "every". Bounded ([`MAX_FILTER_NAMES`]), checked
/// where it enters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub queues: BTreeSet<String>,
    pub names: BTreeSet<String>,
    pub kinds: BTreeSet<Kind>,
}

impl Filter {
    /// Whether `e` passes. Queue and task name filters apply to task events only: a watcher of
    /// one queue still hears of pools and leaders unless its kinds leave them out.
    pub fn matches(&self, e: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&e.kind) {
            return false;
        }
        if !e.kind.is_task() {
            return true;
        }
        (self.queues.is_empty() || self.queues.contains(&*e.queue))
            && (self.names.is_empty() || self.names.contains(&*e.name))
    }
}

/// The kind of a recorded change of task state, if it is one the stream shows. A retry coming
/// due or an ETA reached (to pending) is not shown.
fn kind_of(c: &SeenChange<'_>) -> Option<Kind> {
    let ch = &c.change;
    Some(match (ch.from, ch.to, ch.why) {
        (_, _, Why::Progress) => Kind::Progress,
        (None, _, _) => Kind::Submitted,
        (_, _, Why::Retry) => Kind::Retried,
        (_, TaskState::Leased, _) => Kind::Started,
        (_, TaskState::Succeeded, _) => Kind::Succeeded,
        (_, TaskState::Dead, _) => Kind::Dead,
        (_, TaskState::Cancelled, _) => Kind::Cancelled,
        (Some(TaskState::Leased), TaskState::Pending, _) => Kind::Released,
        _ => return None,
    })
}

fn clip(error: &str) -> &str {
    match error.char_indices().nth(MAX_EVENT_ERROR_CHARS) {
        Some((i, _)) => &error[..i],
        None => error,
    }
}

/// The pool events of an entry's commands: a `ReleaseWorker` (a pool starting) or a
/// `ClearStanding` followed at once by a `Release` of the same pool (a remote worker resuming
/// its leases through another node) is a pool online; any other `ClearStanding` not followed at
/// once by a `Lease` of the same pool (which only resizes its standing capacity) is a pool
/// offline. In command order; `online` first or last as asked.
fn pool_events<'a>(req: &'a Request, online: bool) -> impl Iterator<Item = &'a str> + 'a {
    let cmds = &req.commands;
    cmds.iter().enumerate().filter_map(move |(i, cmd)| {
        let next = cmds.get(i + 1);
        let (pool, is_online) = match cmd {
            Command::ReleasePool { pool } => (pool, true),
            Command::ClearStanding { pool } => match next {
                Some(Command::Release { pool: p, .. }) if p == pool => (pool, true),
                Some(Command::Lease { pool: p, .. }) if p == pool => return None,
                _ => (pool, false),
            },
            _ => return None,
        };
        (is_online == online).then_some(pool.as_str())
    })
}

/// The events of one applied entry at `index`, in order (ordinals from 0): pools online, then
/// the recorded changes of task state in apply order, then pools offline. Reads `q` after the
/// apply, before its recorded changes are drained. Pure: tests build what a replica would
/// record from a bare [`QueueState`].
pub fn derive(index: u64, req: &Request, q: &QueueState, names: &mut Names, mut out: impl FnMut(Event)) {
    let at_ms = q.now_ms();
    let mut ordinal = 0u32;
    let mut push = |mut e: Event| {
        e.ordinal = ordinal;
        ordinal = ordinal.saturating_add(1);
        out(e);
    };
    for pool in pool_events(req, true) {
        let mut e = Event::blank(index, at_ms, Kind::PoolOnline, names);
        e.pool = names.get(pool);
        push(e);
    }
    for c in q.seen_changes() {
        let Some(kind) = kind_of(&c) else { continue };
        let mut e = Event::blank(index, at_ms, kind, names);
        e.task = c.change.id;
        e.queue = names.get(c.queue);
        e.name = names.get(c.name);
        e.attempt = c.change.attempt;
        e.pool = names.get(c.pool);
        if matches!(kind, Kind::Retried | Kind::Dead) {
            e.error = c.error.map(|s| Arc::from(clip(s)));
        }
        if kind == Kind::Progress {
            e.progress = q.latest_progress(c.change.id).map(|p| p.data.clone());
        }
        push(e);
    }
    for pool in pool_events(req, false) {
        let mut e = Event::blank(index, at_ms, Kind::PoolOffline, names);
        e.pool = names.get(pool);
        push(e);
    }
}

/// The event of a new leader's first entry (openraft's blank entry) at `index`.
pub fn leader_changed(index: u64, at_ms: UnixMs, term: u64, leader: u64, names: &mut Names) -> Event {
    let mut e = Event::blank(index, at_ms, Kind::LeaderChanged, names);
    e.term = term;
    e.leader = leader;
    e
}

#[cfg(test)]
mod tests;
