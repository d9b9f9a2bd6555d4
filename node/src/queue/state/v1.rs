//! Reading snapshots of format version 1 (before the dense task table), so a node upgraded over
//! an old data directory, or a follower on the new build receiving an old leader's snapshot,
//! still loads it. The structs mirror the old layout field for field (bincode is positional);
//! [`QueueState::try_from`] converts and rebuilds what version 2 derives.
//!
//! The task-options slots are assigned in id order here, so a replica upgraded this way may
//! number them differently from one that applied the same log on the new build: the state is
//! the same, its snapshot bytes may not be. Both stay internally consistent.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;

use super::Index;
use super::Interner;
use super::KeyIndex;
use super::Output;
use super::Pending;
use super::QueueData;
use super::QueueState;
use super::STATES;
use super::Table;
use super::Task;
use super::TaskOptions;
use crate::queue::command::TaskId;
use crate::queue::command::TaskState;
use crate::queue::command::UnixMs;

/// [`QueueState`] as format version 1 stored it.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueStateV1 {
    now_ms: UnixMs,
    next_id: TaskId,
    tasks: BTreeMap<TaskId, TaskV1>,
    idempotency: BTreeMap<Box<str>, TaskId>,
    task_names: Interner<Box<str>>,
    idx: IndexV1,
    next_node_id: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct TaskV1 {
    args: Bytes,
    extra: Option<Box<ExtraV1>>,
    time_limit_ms: u64,
    created_ms: UnixMs,
    updated_ms: UnixMs,
    timer_ms: UnixMs,
    backoff_ms: u64,
    result_ttl_ms: u64,
    name: u32,
    queue: u32,
    pool: u32,
    attempt: u32,
    failures: u32,
    max_retries: u32,
    lost_leases: u8,
    priority: u8,
    state: TaskState,
    has_time_limit: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExtraV1 {
    idempotency_key: Option<Box<str>>,
    output: OutputV1,
}

#[derive(Debug, Serialize, Deserialize)]
enum OutputV1 {
    None,
    Result(Bytes),
    Error(Box<str>),
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueDataV1 {
    pending: BTreeSet<(Reverse<u8>, TaskId)>,
    counts: [u64; STATES],
    paused: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexV1 {
    queue_names: Interner<Box<str>>,
    queues: Vec<QueueDataV1>,
    pools: Interner<Box<str>>,
    timers: BTreeSet<(UnixMs, TaskId)>,
}

impl TryFrom<QueueStateV1> for QueueState {
    type Error = String;

    fn try_from(old: QueueStateV1) -> Result<Self, String> {
        let mut options: Interner<TaskOptions> = Interner::default();
        let mut tasks = Table::default();
        for (id, t) in old.tasks {
            let (key, output) = match t.extra.map(|e| *e) {
                Some(e) => (e.idempotency_key, e.output),
                None => (None, OutputV1::None),
            };
            let key_bytes = key.as_deref().unwrap_or_default().as_bytes();
            let opts = TaskOptions {
                max_retries: t.max_retries,
                backoff_ms: t.backoff_ms,
                result_ttl_ms: t.result_ttl_ms,
                time_limit_ms: t.has_time_limit.then_some(t.time_limit_ms),
            };
            let task = Task {
                data: Task::pack(key_bytes, &t.args),
                output: match output {
                    OutputV1::None => None,
                    OutputV1::Result(r) => Some(Box::new(Output::Result(r))),
                    OutputV1::Error(e) => Some(Box::new(Output::Error(e))),
                },
                created_ms: t.created_ms,
                updated_ms: t.updated_ms,
                timer_ms: t.timer_ms,
                name: t.name,
                queue: t.queue,
                options: options.acquire(&opts),
                pool: t.pool,
                attempt: t.attempt,
                failures: t.failures,
                key_len: u32::try_from(key_bytes.len()).map_err(|_| format!("task {id}: key too long"))?,
                lost_leases: t.lost_leases,
                priority: t.priority,
                state: t.state,
                keyed: key.is_some(),
            };
            tasks.insert(id, task);
        }
        let queues = old
            .idx
            .queues
            .into_iter()
            .map(|d| {
                let mut pending = Pending::default();
                for (Reverse(priority), id) in d.pending {
                    pending.insert(priority, id);
                }
                QueueData {
                    pending,
                    counts: d.counts,
                    paused: d.paused,
                }
            })
            .collect();
        let idempotency = KeyIndex::build(&tasks)?;
        if idempotency.len() != old.idempotency.len() {
            return Err("version 1 idempotency map does not match its tasks".into());
        }
        Ok(QueueState {
            now_ms: old.now_ms,
            next_id: old.next_id,
            tasks,
            idempotency,
            task_names: old.task_names,
            idx: Index {
                queue_names: old.idx.queue_names,
                queues,
                pools: old.idx.pools,
                options,
                timers: old.idx.timers,
                seen: Default::default(),
                flow: Default::default(),
            },
            next_node_id: old.next_node_id,
            // Version 1 had no standing capacity: idle pools stand again when they next lease.
            standing: Default::default(),
            // Nor tokens.
            tokens: Default::default(),
            catalog: Default::default(),
            extras: Default::default(),
            schedules: Default::default(),
            deps: Default::default(),
            attempts: Default::default(),
        })
    }
}

/// The inverse, for tests: what a version 1 build would have held.
#[cfg(test)]
pub(crate) fn downgrade(s: &QueueState) -> QueueStateV1 {
    let tasks = s
        .tasks
        .iter()
        .map(|(id, t)| {
            let opts = s.idx.options(t);
            let key = t
                .idempotency_key()
                .map(|k| Box::<str>::from(std::str::from_utf8(k).unwrap()));
            let output = match t.output() {
                None => OutputV1::None,
                Some(Output::Result(r)) => OutputV1::Result(r.clone()),
                Some(Output::Error(e)) => OutputV1::Error(e.clone()),
            };
            let extra = (key.is_some() || !matches!(output, OutputV1::None)).then(|| {
                Box::new(ExtraV1 {
                    idempotency_key: key,
                    output,
                })
            });
            let task = TaskV1 {
                args: Bytes::copy_from_slice(t.args()),
                extra,
                time_limit_ms: opts.time_limit_ms.unwrap_or(0),
                created_ms: t.created_ms,
                updated_ms: t.updated_ms,
                timer_ms: t.timer_ms,
                backoff_ms: opts.backoff_ms,
                result_ttl_ms: opts.result_ttl_ms,
                name: t.name,
                queue: t.queue,
                pool: t.pool,
                attempt: t.attempt,
                failures: t.failures,
                max_retries: opts.max_retries,
                lost_leases: t.lost_leases,
                priority: t.priority,
                state: t.state,
                has_time_limit: opts.time_limit_ms.is_some(),
            };
            (id, task)
        })
        .collect::<BTreeMap<_, _>>();
    let idempotency = tasks
        .iter()
        .filter_map(|(id, t)| Some((t.extra.as_ref()?.idempotency_key.clone()?, *id)))
        .collect();
    QueueStateV1 {
        now_ms: s.now_ms,
        next_id: s.next_id,
        tasks,
        idempotency,
        task_names: s.task_names.clone(),
        idx: IndexV1 {
            queue_names: s.idx.queue_names.clone(),
            queues: s
                .idx
                .queues
                .iter()
                .map(|d| QueueDataV1 {
                    pending: d.pending.iter().map(|(p, id)| (Reverse(p), id)).collect(),
                    counts: d.counts,
                    paused: d.paused,
                })
                .collect(),
            pools: s.idx.pools.clone(),
            timers: s.idx.timers.clone(),
        },
        next_node_id: s.next_node_id,
    }
}
