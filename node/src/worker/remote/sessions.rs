//! [`Sessions`]: the remote worker sessions live on this node. A name is held from the Hello
//! until the session has released everything it held ([`Claim`] dropped), so a worker that
//! reconnects at once under the same name is told `ALREADY_EXISTS` until its old session is
//! gone, and two sessions never hear the same pool's grants. Shutting the node down drains
//! every session ([`Sessions::drain_all`]). Each session also says when it last heard from
//! its worker and how many tasks it runs ([`Claim::seen`]), for `flotilla workers`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::network::peer::ConnectedWorker;
use crate::network::peer::NodeWorker;
use crate::network::peer::WorkerKind;

#[derive(Default)]
struct Inner {
    /// Name → session id.
    live: BTreeMap<String, u64>,
    /// Name → what the session's Hello said (once [`Claim::describe`]d).
    described: BTreeMap<String, ConnectedWorker>,
    /// Name → when the session opened, when it last heard from its worker, and its running
    /// tasks then.
    activity: BTreeMap<String, Arc<Activity>>,
    next_id: u64,
}

/// One session's activity, written by the session on every message it reads and read by
/// `flotilla workers`: atomics, so the session never takes the node-wide lock to say it heard
/// from its worker.
struct Activity {
    opened: Instant,
    /// When the worker was last heard from, in µs after `opened`.
    last_seen_us: AtomicU64,
    /// Tasks running at the worker then.
    busy: AtomicU32,
}

impl Activity {
    fn last_seen(&self) -> Instant {
        self.opened + Duration::from_micros(self.last_seen_us.load(Ordering::Relaxed))
    }
}

/// The live sessions of a node; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
    /// How many sessions are live, to wait for none.
    count: Arc<watch::Sender<usize>>,
    /// `Some(grace)` once the node shuts down.
    shutdown: Arc<watch::Sender<Option<Duration>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            count: Arc::new(watch::channel(0).0),
            shutdown: Arc::new(watch::channel(None).0),
        }
    }
}

/// A name held by a live session; dropping it frees the name.
pub struct Claim {
    sessions: Sessions,
    name: String,
    pub id: u64,
    /// This session's entry of `Inner::activity` (the name is held: nobody else writes it).
    activity: Arc<Activity>,
}

impl Sessions {
    /// Hold `name` for a new session; `None` if a live session has it.
    pub fn claim(&self, name: &str) -> Option<Claim> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.contains_key(name) {
            return None;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.live.insert(name.to_string(), id);
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            last_seen_us: AtomicU64::new(0),
            busy: AtomicU32::new(0),
        });
        inner.activity.insert(name.to_string(), activity.clone());
        self.count.send_replace(inner.live.len());
        Some(Claim {
            sessions: self.clone(),
            name: name.to_string(),
            id,
            activity,
        })
    }

    /// The live sessions that described themselves, by name.
    pub fn workers(&self) -> Vec<ConnectedWorker> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.described.values().cloned().collect()
    }

    /// The live sessions that described themselves, as `flotilla workers` shows them.
    pub fn node_workers(&self) -> Vec<NodeWorker> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let ago = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        inner
            .described
            .iter()
            .map(|(name, w)| {
                let a = inner.activity.get(name);
                NodeWorker {
                    node_id: w.node_id,
                    name: w.name.clone(),
                    kind: WorkerKind::Remote,
                    queues: w.queues.clone(),
                    concurrency: w.concurrency,
                    busy: a.map_or(0, |a| a.busy.load(Ordering::Relaxed)),
                    connected_ms_ago: a.map_or(0, |a| ago(a.opened)),
                    last_seen_ms_ago: a.map_or(0, |a| ago(a.last_seen())),
                }
            })
            .collect()
    }

    /// Names of the live sessions.
    pub fn names(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.live.keys().cloned().collect()
    }

    /// Resolves to the drain grace once the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<Option<Duration>> {
        self.shutdown.subscribe()
    }

    /// Drain every session (running tasks get `grace` to finish) and wait until none is left.
    /// Sessions that start afterwards are drained at once.
    pub async fn drain_all(&self, grace: Duration) {
        self.shutdown.send_replace(Some(grace));
        let mut count = self.count.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }
}

impl Claim {
    /// Record what the session's Hello said, for [`Sessions::workers`].
    pub fn describe(&self, worker: ConnectedWorker) {
        let mut inner = self.sessions.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.get(&self.name) == Some(&self.id) {
            inner.described.insert(self.name.clone(), worker);
        }
    }
}

impl Claim {
    /// The worker was heard from now, running `busy` tasks. Called on every message a
    /// session reads: two atomic stores, no lock.
    pub fn seen(&self, busy: usize) {
        let a = &self.activity;
        let since = Instant::now().saturating_duration_since(a.opened);
        let us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        a.last_seen_us.store(us, Ordering::Relaxed);
        a.busy
            .store(u32::try_from(busy).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut inner = self.sessions.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.get(&self.name) == Some(&self.id) {
            inner.live.remove(&self.name);
            inner.described.remove(&self.name);
            inner.activity.remove(&self.name);
        }
        self.sessions.count.send_replace(inner.live.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_is_held_until_its_claim_drops_and_drain_waits_for_all() {
        let s = Sessions::default();
        let a = s.claim("w").unwrap();
        assert!(s.claim("w").is_none());
        let b = s.claim("v").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(s.names(), vec!["v".to_string(), "w".to_string()]);
        let info = ConnectedWorker {
            node_id: 1,
            name: "w".into(),
            queues: vec!["default".into()],
            tasks: vec!["noop".into()],
            concurrency: 8,
        };
        a.describe(info.clone());
        assert_eq!(s.workers(), vec![info]);
        a.seen(3);
        let listed = s.node_workers();
        assert_eq!(listed.len(), 1, "v never described itself");
        assert_eq!(
            (
                listed[0].name.as_str(),
                listed[0].kind,
                listed[0].busy,
                listed[0].concurrency
            ),
            ("w", WorkerKind::Remote, 3, 8)
        );
        let mut signal = s.shutdown_signal();
        let drain = tokio::spawn({
            let s = s.clone();
            async move { s.drain_all(Duration::from_millis(5)).await }
        });
        signal.changed().await.unwrap();
        assert_eq!(*signal.borrow(), Some(Duration::from_millis(5)));
        drop(a);
        assert!(s.workers().is_empty(), "a worker gone is no longer listed");
        assert!(s.node_workers().is_empty());
        assert!(s.claim("w").is_some(), "the name is free again");
        assert!(!drain.is_finished());
        drop(b);
        drain.await.unwrap();
    }
}
