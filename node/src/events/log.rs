//! [`EventLog`]: the bounded ring of this node's recent events, read by watchers by cursor.
//!
//! - **Apply never waits for a watcher.** Apply appends an entry's events under the log's
//!   mutex (held for the push only) and bumps a `watch` channel; watchers copy batches out
//!   under the same mutex, each copy bounded ([`MAX_SCAN`] events looked at), and send them
//!   on their own tasks. A watcher that cannot keep up falls behind in the ring, not in
//!   memory of its own: it is cut off while its cursor is still held (`grpc/event_service.rs`),
//!   so it can resume from it at once.
//! - **Bounded**: at most `capacity` events; the oldest go first, and the log remembers the
//!   position before which nothing is held ([`EventLog::floor`]). A snapshot install
//!   (entries never applied one by one here) moves the floor past it and empties the ring.
//! - **Off until watched**: until [`EventLog::start`] (the first watcher), applies record
//!   nothing and cost nothing here; from then on it records (for watchers that come back).

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::Event;
use super::Filter;
use super::Pos;

/// Events one read looks at, at most: bounds the time a watcher holds the mutex apply needs.
pub const MAX_SCAN: usize = 4096;

/// Default number of events held.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Most distinct names the cache keeps before it starts over (pool names come and go).
const MAX_NAMES: usize = 4096;

/// Shared copies of names, so events share their queue, task and pool names.
#[derive(Debug, Default)]
pub struct Names(BTreeMap<Box<str>, Arc<str>>);

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.get(name) {
            return n.clone();
        }
        if self.0.len() >= MAX_NAMES {
            self.0.clear();
        }
        let n: Arc<str> = Arc::from(name);
        self.0.insert(name.into(), n.clone());
        n
    }
}

/// What one read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The events from the cursor on that pass the filter (maybe none), and the cursor to read
    /// from next (past everything looked at). `behind`: events held past `next`.
    Events {
        events: Vec<Event>,
        next: Pos,
        behind: usize,
    },
    /// The cursor is no longer held: nothing from `floor` back can be given. `floor` is the
    /// oldest position held.
    Lost { floor: Pos },
}

#[derive(Debug)]
struct Inner {
    ring: VecDeque<Event>,
    capacity: usize,
    /// Nothing before this position is held (dropped, or never recorded).
    floor: Pos,
    /// The position after the last entry applied: where a watcher "from now" starts.
    head: Pos,
    names: Names,
}

/// The ring of recent events (see the module doc).
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
    on: AtomicBool,
    /// The last index applied, kept while off (so recording starts at the right place).
    last_index: AtomicU64,
    /// Bumped after each append, so watchers wake.
    appended: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        let (appended, _) = watch::channel(0);
        Self {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                capacity: capacity.max(1),
                floor: (1, 0),
                head: (1, 0),
                names: Names::default(),
            }),
            on: AtomicBool::new(false),
            last_index: AtomicU64::new(0),
            appended,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether events are recorded.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Start recording (the first watcher came), from the entry after the last one applied.
    /// Returns whether it was off. The caller turns on the state machine's recording of
    /// changes under the same lock apply takes, so no entry is half recorded.
    pub fn start(&self) -> bool {
        let mut inner = self.lock();
        if self.on.swap(true, Ordering::AcqRel) {
            return false;
        }
        let next = self.last_index.load(Ordering::Acquire).saturating_add(1);
        inner.floor = (next, 0);
        inner.head = (next, 0);
        true
    }

    /// An entry at `index` was applied while off.
    pub fn skipped(&self, index: u64) {
        self.last_index.fetch_max(index, Ordering::AcqRel);
    }

    /// Append the events of the entry at `index`, made by `f` (which gets the name cache and a
    /// sink), in order. Called by apply, in apply order.
    pub fn append(&self, index: u64, f: impl FnOnce(&mut Names, &mut dyn FnMut(Event))) {
        self.last_index.fetch_max(index, Ordering::AcqRel);
        {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let (ring, names, capacity) = (&mut inner.ring, &mut inner.names, inner.capacity);
            let mut dropped: Option<Pos> = None;
            f(names, &mut |e: Event| {
                if ring.len() >= capacity
                    && let Some(old) = ring.pop_front()
                {
                    dropped = Some(old.pos());
                }
                ring.push_back(e);
            });
            if let Some((i, o)) = dropped {
                inner.floor = inner.floor.max((i, o.saturating_add(1)));
            }
            inner.head = inner.head.max((index.saturating_add(1), 0));
        }
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The state was replaced by a snapshot up to `index`: the entries before it were never
    /// applied here one by one, so no event before it can be given.
    pub fn replaced(&self, index: u64) {
        self.last_index.fetch_max(index, Ordering::AcqRel);
        {
            let mut inner = self.lock();
            let next = (index.saturating_add(1), 0);
            inner.ring.clear();
            inner.floor = inner.floor.max(next);
            inner.head = inner.head.max(next);
        }
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The oldest position that can be read.
    pub fn floor(&self) -> Pos {
        self.lock().floor
    }

    /// The position after the last entry applied ("now").
    pub fn head(&self) -> Pos {
        self.lock().head
    }

    /// Events held at or after `from`: how far a reader at `from` is behind.
    pub fn behind(&self, from: Pos) -> usize {
        let inner = self.lock();
        let start = inner.ring.partition_point(|e| e.pos() < from);
        inner.ring.len() - start
    }

    /// Wakes after appends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Up to `max` events at or after `from` that pass `filter`, looking at [`MAX_SCAN`] events
    /// at most; or [`Read::Lost`] if `from` is older than what is held.
    pub fn read(&self, from: Pos, filter: &Filter, max: usize) -> Read {
        let inner = self.lock();
        if from < inner.floor {
            return Read::Lost { floor: inner.floor };
        }
        let start = inner.ring.partition_point(|e| e.pos() < from);
        let mut events = Vec::new();
        let mut next = from.max(inner.head);
        let mut looked = 0;
        for e in inner.ring.range(start..) {
            if looked >= MAX_SCAN || events.len() >= max {
                next = e.pos();
                break;
            }
            looked += 1;
            if filter.matches(e) {
                events.push(e.clone());
            }
        }
        let behind = inner.ring.len() - start - looked;
        Read::Events { events, next, behind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;

    fn event(names: &mut Names, index: u64, ordinal: u32, kind: Kind, queue: &str) -> Event {
        let mut e = Event::blank(index, 0, kind, names);
        e.ordinal = ordinal;
        e.queue = names.get(queue);
        e
    }

    fn append(log: &EventLog, index: u64, events: &[(Kind, &str)]) {
        log.append(index, |names, out| {
            for (i, (k, q)) in events.iter().enumerate() {
                out(event(names, index, i as u32, *k, q));
            }
        });
    }

    fn read(log: &EventLog, from: Pos, filter: &Filter, max: usize) -> (Vec<Pos>, Pos, usize) {
        match log.read(from, filter, max) {
            Read::Events { events, next, behind } => (events.iter().map(Event::pos).collect(), next, behind),
            Read::Lost { floor } => panic!("lost, floor {floor:?}"),
        }
    }

    #[test]
    fn recording_starts_after_the_last_entry_applied_while_off() {
        let log = EventLog::new(8);
        log.skipped(5);
        assert!(log.start());
        assert!(!log.start(), "once");
        assert_eq!(log.floor(), (6, 0));
        assert_eq!(log.head(), (6, 0));
        assert_eq!(
            log.read((3, 0), &Filter::default(), 10),
            Read::Lost { floor: (6, 0) }
        );
        append(&log, 6, &[(Kind::Submitted, "a"), (Kind::Submitted, "b")]);
        assert_eq!(log.head(), (7, 0));
        let (got, next, behind) = read(&log, (6, 0), &Filter::default(), 10);
        assert_eq!(got, vec![(6, 0), (6, 1)]);
        assert_eq!((next, behind), ((7, 0), 0));
    }

    #[test]
    fn a_cursor_resumes_within_an_entry_and_a_filter_skips_without_losing_the_place() {
        let log = EventLog::new(100);
        log.start();
        append(
            &log,
            1,
            &[
                (Kind::Submitted, "a"),
                (Kind::Submitted, "b"),
                (Kind::Started, "a"),
            ],
        );
        append(&log, 2, &[(Kind::Succeeded, "a")]);
        append(&log, 3, &[]);
        let (got, next, _) = read(&log, (1, 0), &Filter::default(), 2);
        assert_eq!(got, vec![(1, 0), (1, 1)]);
        assert_eq!(next, (1, 2), "max reached: resume at the next event");
        let (got, next, _) = read(&log, next, &Filter::default(), 10);
        assert_eq!(got, vec![(1, 2), (2, 0)]);
        assert_eq!(
            next,
            (4, 0),
            "past the last entry applied, even one with no events"
        );
        let only_b = Filter {
            queues: ["b".to_string()].into(),
            ..Filter::default()
        };
        let (got, next, _) = read(&log, (1, 0), &only_b, 10);
        assert_eq!((got, next), (vec![(1, 1)], (4, 0)));
        let (got, next, _) = read(&log, (4, 0), &Filter::default(), 10);
        assert_eq!((got, next), (vec![], (4, 0)), "nothing new: the cursor stays");
        let (got, next, _) = read(&log, (9, 0), &Filter::default(), 10);
        assert_eq!(
            (got, next),
            (vec![], (9, 0)),
            "a cursor in the future waits there"
        );
    }

    #[test]
    fn the_ring_is_bounded_and_says_what_it_dropped() {
        let log = EventLog::new(3);
        log.start();
        for i in 1..=4 {
            append(&log, i, &[(Kind::Submitted, "q")]);
        }
        assert_eq!(log.floor(), (1, 1), "entry 1's only event was dropped");
        assert_eq!(
            log.read((1, 0), &Filter::default(), 10),
            Read::Lost { floor: (1, 1) }
        );
        let (got, _, _) = read(&log, (1, 1), &Filter::default(), 10);
        assert_eq!(got, vec![(2, 0), (3, 0), (4, 0)]);
    }

    #[test]
    fn a_read_looks_at_a_bounded_number_of_events_and_reports_how_far_behind_it_is() {
        let log = EventLog::new(MAX_SCAN * 2);
        log.start();
        log.append(1, |names, out| {
            for i in 0..(MAX_SCAN + 10) as u32 {
                out(event(names, 1, i, Kind::Submitted, "q"));
            }
        });
        let none = Filter {
            queues: ["other".to_string()].into(),
            ..Filter::default()
        };
        let (got, next, behind) = read(&log, (1, 0), &none, 10);
        assert!(got.is_empty());
        assert_eq!(next, (1, MAX_SCAN as u32));
        assert_eq!(behind, 10);
        let (_, next, behind) = read(&log, next, &none, 10);
        assert_eq!((next, behind), ((2, 0), 0));
    }

    #[test]
    fn a_snapshot_install_empties_the_ring_and_moves_the_floor() {
        let log = EventLog::new(10);
        log.start();
        append(&log, 1, &[(Kind::Submitted, "q")]);
        log.replaced(50);
        assert_eq!(log.floor(), (51, 0));
        assert_eq!(
            log.read((2, 0), &Filter::default(), 10),
            Read::Lost { floor: (51, 0) }
        );
        append(&log, 51, &[(Kind::Submitted, "q")]);
        let (got, _, _) = read(&log, (51, 0), &Filter::default(), 10);
        assert_eq!(got, vec![(51, 0)]);
    }

    #[test]
    fn names_are_shared_and_the_cache_is_bounded() {
        let mut names = Names::default();
        let a = names.get("a");
        assert!(Arc::ptr_eq(&a, &names.get("a")));
        for i in 0..MAX_NAMES + 1 {
            names.get(&i.to_string());
        }
        assert!(names.0.len() <= MAX_NAMES);
    }
}
