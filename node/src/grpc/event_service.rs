//! `flotilla.v1.EventService.Watch`: the events stream of this node's replica
//! (`crate::events`), filtered, from a position or from now.
//!
//! Each stream is one task reading the node's [`EventLog`] by cursor and sending messages of at
//! most [`MAX_EVENTS_PER_MESSAGE`] events into a channel of [`STREAM_BUFFER`] messages. What a
//! client may make the node hold is bounded: the filter ([`MAX_FILTER_NAMES`] names), the
//! channel, and [`MAX_WATCHERS`] streams per node; the ring is shared. A stream always keeps
//! one slot of its channel free, so the message that ends it can always be sent:
//!
//! - **Fell behind**: a client whose stream's buffer is full (it reads slower than the node
//!   applies) while it is more than [`MAX_LAG`] events behind the newest gets a last message
//!   with `end = FELL_BEHIND` and the position to resume from, which the ring still holds then
//!   (it holds more than `MAX_LAG`). A client that reads, however far back it started, is
//!   never cut off.
//! - **Lost**: a position older than the ring's oldest gets `end = LOST` with the oldest.
//!
//! A message may carry no events: it moves the position on (at most once a second while the
//! filter matches nothing), so a client's resume position stays recent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::event_service_server::EventService;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tracing::debug;

use super::status::ApiError;
use crate::events::Event;
use crate::events::EventLog;
use crate::events::Filter;
use crate::events::Kind;
use crate::events::MAX_FILTER_NAMES;
use crate::events::Pos;
use crate::events::Read;
use crate::queue::name::check_queue_name;
use crate::replica::Replica;

/// Streams one node serves at once.
pub const MAX_WATCHERS: usize = 256;
/// Most events in one message.
pub const MAX_EVENTS_PER_MESSAGE: usize = 512;
/// Messages a stream holds for a client that reads slowly.
pub const STREAM_BUFFER: usize = 16;
/// Events a client may lag behind the ring before it is told it fell behind; less than the
/// ring holds, so the position it is told is still held.
pub const MAX_LAG: usize = crate::events::log::DEFAULT_CAPACITY / 2;
/// Longest task name a filter may name (a task name has no rule of its own: keep it sane).
const MAX_FILTER_NAME_LEN: usize = 256;
/// How often a stream whose filter matches nothing moves the client's position on.
const POSITION_EVERY: Duration = Duration::from_secs(1);

/// The event service: reads the replica's event log.
#[derive(Clone)]
pub struct EventApi {
    replica: Arc<Replica>,
    watchers: Arc<AtomicUsize>,
    max_lag: usize,
}

impl EventApi {
    pub fn new(replica: Arc<Replica>) -> Self {
        Self {
            replica,
            watchers: Arc::default(),
            max_lag: MAX_LAG,
        }
    }

    /// Tell a client it fell behind after `max_lag` events (tests make it small).
    pub fn max_lag(mut self, max_lag: usize) -> Self {
        self.max_lag = max_lag.max(1);
        self
    }
}

fn kind_of(k: i32) -> Result<Kind, ApiError> {
    use pb::EventKind as K;
    Ok(match K::try_from(k) {
        Ok(K::Submitted) => Kind::Submitted,
        Ok(K::Started) => Kind::Started,
        Ok(K::Progress) => Kind::Progress,
        Ok(K::Succeeded) => Kind::Succeeded,
        Ok(K::Retried) => Kind::Retried,
        Ok(K::Released) => Kind::Released,
        Ok(K::Dead) => Kind::Dead,
        Ok(K::Cancelled) => Kind::Cancelled,
        Ok(K::PoolOnline) => Kind::PoolOnline,
        Ok(K::PoolOffline) => Kind::PoolOffline,
        Ok(K::LeaderChanged) => Kind::LeaderChanged,
        Ok(K::Unspecified) | Err(_) => {
            return Err(ApiError::InvalidArgument(format!("unknown event kind {k}")));
        }
    })
}

/// The wire's kind of `k`.
pub fn kind_pb(k: Kind) -> pb::EventKind {
    use pb::EventKind as K;
    match k {
        Kind::Submitted => K::Submitted,
        Kind::Started => K::Started,
        Kind::Progress => K::Progress,
        Kind::Succeeded => K::Succeeded,
        Kind::Retried => K::Retried,
        Kind::Released => K::Released,
        Kind::Dead => K::Dead,
        Kind::Cancelled => K::Cancelled,
        Kind::PoolOnline => K::PoolOnline,
        Kind::PoolOffline => K::PoolOffline,
        Kind::LeaderChanged => K::LeaderChanged,
    }
}

/// The filter a request asks for, checked: bounded, names well formed, kinds known.
pub fn filter_of(req: &pb::WatchRequest) -> Result<Filter, ApiError> {
    if req.queues.len() > MAX_FILTER_NAMES || req.task_names.len() > MAX_FILTER_NAMES {
        return Err(ApiError::InvalidArgument(format!(
            "a watch filters on at most {MAX_FILTER_NAMES} queues and {MAX_FILTER_NAMES} task names"
        )));
    }
    for q in &req.queues {
        check_queue_name(q).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    }
    if let Some(n) = req
        .task_names
        .iter()
        .find(|n| n.is_empty() || n.len() > MAX_FILTER_NAME_LEN)
    {
        let shown: String = n.chars().take(64).collect();
        return Err(ApiError::InvalidArgument(format!(
            "'{shown}' is not a task name (1-{MAX_FILTER_NAME_LEN} bytes)"
        )));
    }
    Ok(Filter {
        queues: req.queues.iter().cloned().collect(),
        names: req.task_names.iter().cloned().collect(),
        kinds: req.kinds.iter().map(|k| kind_of(*k)).collect::<Result<_, _>>()?,
    })
}

/// An event as the wire shows it.
pub fn event_pb(e: &Event) -> pb::Event {
    pb::Event {
        index: e.index,
        ordinal: e.ordinal,
        at_ms: e.at_ms,
        kind: kind_pb(e.kind) as i32,
        task_id: e.task,
        queue: e.queue.to_string(),
        task_name: e.name.to_string(),
        attempt: e.attempt,
        pool: e.pool.to_string(),
        error: e.error.as_deref().unwrap_or_default().to_string(),
        progress: e.progress.clone().unwrap_or_default(),
        term: e.term,
        leader: e.leader,
    }
}

fn message(events: Vec<pb::Event>, next: Pos) -> pb::WatchResponse {
    pb::WatchResponse {
        events,
        next_index: next.0,
        next_ordinal: next.1,
        ..pb::WatchResponse::default()
    }
}

fn ending(end: pb::WatchEnd, next: Pos, oldest: Pos) -> pb::WatchResponse {
    pb::WatchResponse {
        end: end as i32,
        oldest_index: oldest.0,
        oldest_ordinal: oldest.1,
        ..message(Vec::new(), next)
    }
}

type Out = mpsc::Sender<Result<pb::WatchResponse, Status>>;

/// Counts a stream among the node's watchers while it lives.
struct WatcherSlot(Arc<AtomicUsize>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One stream: read the log from `cursor`, send what passes `filter`, until the client goes,
/// falls behind or asks for what is no longer held.
async fn serve(replica: Arc<Replica>, mut cursor: Pos, filter: Filter, max_lag: usize, out: Out) {
    let log: &EventLog = replica.events();
    let mut wake = log.subscribe();
    let mut last_sent = tokio::time::Instant::now();
    let mut sent_pos: Option<Pos> = None;
    loop {
        let (events, next, behind) = match log.read(cursor, &filter, MAX_EVENTS_PER_MESSAGE) {
            Read::Lost { floor } => {
                let _ = out.try_send(Ok(ending(pb::WatchEnd::Lost, cursor, floor)));
                debug!(?cursor, ?floor, "watch: position no longer held");
                return;
            }
            Read::Events { events, next, behind } => (events, next, behind),
        };
        let due = sent_pos.is_none() || last_sent.elapsed() >= POSITION_EVERY;
        if !events.is_empty() || (sent_pos != Some(next) && due) {
            let msg = message(events.iter().map(event_pb).collect(), next);
            // Keep one slot free for the message that ends the stream.
            loop {
                tokio::select! {
                    permits = out.reserve_many(2) => {
                        let Ok(mut permits) = permits else { return };
                        if let Some(p) = permits.next() {
                            p.send(Ok(msg));
                        }
                        break;
                    }
                    changed = wake.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if log.behind(cursor) > max_lag {
                            let _ = out.try_send(Ok(ending(pb::WatchEnd::FellBehind, cursor, log.floor())));
                            debug!(?cursor, "watch: client fell behind");
                            return;
                        }
                    }
                }
            }
            last_sent = tokio::time::Instant::now();
            sent_pos = Some(next);
        }
        cursor = next;
        if behind > 0 {
            continue;
        }
        let moved_unsent = sent_pos != Some(cursor);
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(POSITION_EVERY), if moved_unsent => {}
            () = out.closed() => return,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let filter = filter_of(&req)?;
        if self.watchers.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHERS {
            self.watchers.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::TooManyWatchers(MAX_WATCHERS).into());
        }
        let slot = WatcherSlot(self.watchers.clone());
        self.replica.watch_events();
        let log = self.replica.events();
        let cursor = match req.from_index {
            Some(index) => (index, req.from_ordinal),
            None => log.head(),
        };
        let (out, rx) = mpsc::channel(STREAM_BUFFER);
        let replica = self.replica.clone();
        let max_lag = self.max_lag;
        tokio::spawn(async move {
            let _slot = slot;
            serve(replica, cursor, filter, max_lag, out).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests;
