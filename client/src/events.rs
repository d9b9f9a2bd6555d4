//! The events stream (`flotilla.v1.EventService.Watch`; docs/OPERATIONS.md, "Watching
//! events"): [`Client::events`] yields what happens to tasks, pools and leadership, filtered,
//! from a [`Position`] or from now, and resumes by itself.
//!
//! ```no_run
//! # async fn demo(client: flotilla_client::Client) -> flotilla_client::Result<()> {
//! use flotilla_client::events::{EventKind, WatchOptions};
//! use futures::StreamExt;
//! let opts = WatchOptions {
//!     queues: vec!["emails".into()],
//!     kinds: vec![EventKind::Dead],
//!     ..WatchOptions::default()
//! };
//! let mut events = Box::pin(client.events(opts));
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("task {} died: {}", event.task_id, event.error.unwrap_or_default());
//!     // Persist `event.position_after()` to resume from it after a restart.
//! }
//! # Ok(()) }
//! ```
//!
//! Resuming: every event carries its [`Position`] (the log index of the entry that caused it,
//! and its ordinal among that entry's events), the same on every node. The stream reconnects
//! by itself from the position after the last event it yielded: after a transient failure (on
//! the next node), and after the node cut it off because it read too slowly. If the node no
//! longer holds that position (its ring of recent events moved on, or it started recording
//! later), the stream ends with [`ClientError::EventsLost`], which names the oldest position
//! the node holds: take a fresh view (stats, task reads) and watch from there.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::event_service_client::EventServiceClient;
use futures::Stream;
use serde::Serialize;
use tokio::time::Instant;
use tonic::Streaming;

use crate::client::{Client, describe, final_error};
use crate::error::{ClientError, Result};
use crate::retry::{Backoff, is_transient};

/// Where an event sits in the stream: `(log index, ordinal within the entry)`. Ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub index: u64,
    pub ordinal: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.ordinal)
    }
}

impl FromStr for Position {
    type Err = String;

    /// `INDEX` or `INDEX:ORDINAL`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}' is not a position (INDEX or INDEX:ORDINAL)");
        let (index, ordinal) = s.split_once(':').unwrap_or((s, "0"));
        Ok(Position {
            index: index.parse().map_err(|_| bad())?,
            ordinal: ordinal.parse().map_err(|_| bad())?,
        })
    }
}

/// What happened (see the table in docs/OPERATIONS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
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

const KINDS: [(EventKind, &str, pb::EventKind); 11] = [
    (EventKind::Submitted, "submitted", pb::EventKind::Submitted),
    (EventKind::Started, "started", pb::EventKind::Started),
    (EventKind::Progress, "progress", pb::EventKind::Progress),
    (EventKind::Succeeded, "succeeded", pb::EventKind::Succeeded),
    (EventKind::Retried, "retried", pb::EventKind::Retried),
    (EventKind::Released, "released", pb::EventKind::Released),
    (EventKind::Dead, "dead", pb::EventKind::Dead),
    (EventKind::Cancelled, "cancelled", pb::EventKind::Cancelled),
    (EventKind::PoolOnline, "pool_online", pb::EventKind::PoolOnline),
    (EventKind::PoolOffline, "pool_offline", pb::EventKind::PoolOffline),
    (
        EventKind::LeaderChanged,
        "leader_changed",
        pb::EventKind::LeaderChanged,
    ),
];

impl EventKind {
    pub fn as_str(self) -> &'static str {
        KINDS.iter().find(|(k, ..)| *k == self).map_or("", |(_, s, _)| s)
    }

    fn to_pb(self) -> pb::EventKind {
        KINDS
            .iter()
            .find(|(k, ..)| *k == self)
            .map_or(pb::EventKind::Unspecified, |(.., p)| *p)
    }

    fn from_pb(kind: i32) -> Option<Self> {
        KINDS.iter().find(|(.., p)| *p as i32 == kind).map(|(k, ..)| *k)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        KINDS
            .iter()
            .find(|(_, name, _)| *name == s)
            .map(|(k, ..)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|(_, n, _)| *n).collect();
                format!("'{s}' is not an event kind ({})", names.join(", "))
            })
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub index: u64,
    pub ordinal: u32,
    /// The entry's log time (ms since the Unix epoch).
    pub at_ms: u64,
    pub kind: EventKind,
    /// Task kinds: the task (else 0), its queue, name and attempt.
    pub task_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub queue: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub task_name: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// Started: the pool it runs on; pool kinds: the pool.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pool: String,
    /// Retried, dead: the task's last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Progress: the worker's report (JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// Leader changed: the term and its leader (0: unknown to the node).
    #[serde(skip_serializing_if = "is_zero64")]
    pub term: u64,
    #[serde(skip_serializing_if = "is_zero64")]
    pub leader: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero64(n: &u64) -> bool {
    *n == 0
}

impl Event {
    pub fn position(&self) -> Position {
        Position {
            index: self.index,
            ordinal: self.ordinal,
        }
    }

    /// Where to resume to see what follows this event (and not it again).
    pub fn position_after(&self) -> Position {
        Position {
            index: self.index,
            ordinal: self.ordinal.saturating_add(1),
        }
    }

    fn from_pb(e: pb::Event) -> Option<Self> {
        let progress = (!e.progress.is_empty()).then(|| {
            serde_json::from_slice(&e.progress).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&e.progress).into_owned())
            })
        });
        Some(Event {
            index: e.index,
            ordinal: e.ordinal,
            at_ms: e.at_ms,
            kind: EventKind::from_pb(e.kind)?,
            task_id: e.task_id,
            queue: e.queue,
            task_name: e.task_name,
            attempt: e.attempt,
            pool: e.pool,
            error: (!e.error.is_empty()).then_some(e.error),
            progress,
            term: e.term,
            leader: e.leader,
        })
    }
}

/// What to watch. Empty lists mean "every"; queue and task name filters apply to task events
/// only (pool and leader events pass unless `kinds` leaves them out).
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// At most 64.
    pub queues: Vec<String>,
    /// At most 64.
    pub task_names: Vec<String>,
    pub kinds: Vec<EventKind>,
    /// Resume from here; `None`: from now.
    pub from: Option<Position>,
}

impl Client {
    /// The events stream (see the module doc): never ends by itself unless the position is
    /// lost ([`ClientError::EventsLost`]) or a call fails for good.
    pub fn events(&self, opts: WatchOptions) -> impl Stream<Item = Result<Event>> + Send + 'static {
        let watch = Watch {
            client: self.clone(),
            node: self.current_node(),
            backoff: Backoff::new(&self.config().retry, Instant::now()),
            next: opts.from,
            opts,
            stream: None,
            buffer: VecDeque::new(),
            told: None,
            done: false,
        };
        futures::stream::unfold(watch, |mut w| async move { w.next().await.map(|item| (item, w)) })
    }
}

struct Watch {
    client: Client,
    opts: WatchOptions,
    /// Where the next stream starts: after what was yielded (or passed over by the filter).
    next: Option<Position>,
    stream: Option<Streaming<pb::WatchResponse>>,
    node: usize,
    backoff: Backoff,
    /// Events received, not yet yielded.
    buffer: VecDeque<Event>,
    /// The position the node told with the buffered events: `next` once they are yielded.
    told: Option<Position>,
    done: bool,
}

impl Watch {
    fn request(&self) -> pb::WatchRequest {
        pb::WatchRequest {
            queues: self.opts.queues.clone(),
            task_names: self.opts.task_names.clone(),
            kinds: self.opts.kinds.iter().map(|k| k.to_pb() as i32).collect(),
            from_index: self.next.map(|p| p.index),
            from_ordinal: self.next.map_or(0, |p| p.ordinal),
        }
    }

    async fn open(&mut self) -> std::result::Result<Streaming<pb::WatchResponse>, tonic::Status> {
        let timeout = self.client.config().request_timeout;
        let mut stub = EventServiceClient::new(self.client.channel(self.node))
            .max_decoding_message_size(crate::client::MAX_DECODING_MESSAGE_BYTES);
        // The deadline bounds the opening only: the stream itself lasts as long as it is read.
        let request = tonic::Request::new(self.request());
        match tokio::time::timeout(timeout, stub.watch(request)).await {
            Ok(reply) => reply.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::unavailable(format!("no reply within {timeout:?}"))),
        }
    }

    /// A failed open or read (`Ok`: the node's status; `Err`: what else went wrong): after a
    /// transient one, back off and move to the next node; the error if the stream is over.
    async fn failed(&mut self, failure: std::result::Result<tonic::Status, String>) -> Option<ClientError> {
        self.stream = None;
        let failure = match failure {
            Ok(status) if !is_transient(&status) => {
                self.done = true;
                return Some(final_error(&status, None));
            }
            Ok(status) => describe(&status),
            Err(text) => text,
        };
        match self
            .client
            .retry_after(self.node, &mut self.backoff, failure)
            .await
        {
            Ok(node) => {
                self.node = node;
                None
            }
            Err(e) => {
                self.done = true;
                Some(e)
            }
        }
    }

    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                let mut next = e.position_after();
                if self.buffer.is_empty()
                    && let Some(told) = self.told.take()
                {
                    next = next.max(told);
                }
                self.next = Some(next);
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let Some(stream) = &mut self.stream else {
                match self.open().await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(status) => {
                        if let Some(e) = self.failed(Ok(status)).await {
                            return Some(Err(e));
                        }
                    }
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(msg)) => {
                    self.backoff = Backoff::new(&self.client.config().retry, Instant::now());
                    let told = Position {
                        index: msg.next_index,
                        ordinal: msg.next_ordinal,
                    };
                    if pb::WatchEnd::try_from(msg.end) == Ok(pb::WatchEnd::Lost) {
                        self.done = true;
                        let oldest = Position {
                            index: msg.oldest_index,
                            ordinal: msg.oldest_ordinal,
                        };
                        let asked = self.next.unwrap_or(told);
                        return Some(Err(ClientError::EventsLost { asked, oldest }));
                    }
                    if pb::WatchEnd::try_from(msg.end) == Ok(pb::WatchEnd::FellBehind) {
                        // Cut off for reading slowly: reopen from the position told, once what
                        // came is yielded.
                        self.stream = None;
                    }
                    self.buffer
                        .extend(msg.events.into_iter().filter_map(Event::from_pb));
                    if self.buffer.is_empty() {
                        self.next = Some(told.max(self.next.unwrap_or_default()));
                    } else {
                        self.told = Some(told);
                    }
                }
                Ok(None) => {
                    if let Some(e) = self.failed(Err("the events stream ended".into())).await {
                        return Some(Err(e));
                    }
                }
                Err(status) => {
                    if let Some(e) = self.failed(Ok(status)).await {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}
