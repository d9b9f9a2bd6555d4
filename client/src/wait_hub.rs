//! Gathering concurrent [`crate::Client::wait`] calls of one client into shared `WaitResults`
//! streams (issue 15): a caller per task no longer costs the cluster a stream per task.
//!
//! The rule is the one of `gather` (no fixed linger): a wait for an id no stream watches opens
//! a stream at once when no other stream is being opened; waits that come while one is being
//! opened gather, and open the next stream together (at most `wait_chunk_size` ids, the
//! existing limit of ids per request) once the first open attempt ends. A stream stays open
//! until its ids are all reported; meanwhile more streams may open. A wait for an id already
//! watched joins that stream. Each caller is woken with its task's info (the map below holds
//! the callers of every id); its own timeout is its own (a local timer), and a stream lasts
//! until the latest deadline of the callers it was opened for.
//!
//! When a stream ends with ids unreported: after a failure that is not a timeout (the retry
//! policy gave up, a refusal), their callers get that error; after its timeout, callers with
//! time left are queued again for a new stream (a later caller of the same id may have a later
//! deadline), the others have timed out already. Callers that gave up are forgotten; a stream
//! whose callers all gave up runs out its time on the node.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{ClientError, Result};
use crate::gather::share;
use crate::info::TaskInfo;

/// Opens one stream for `ids` lasting `timeout`, telling the sender when its first open
/// attempt has ended; the stream reports each id once, or ends with an error.
pub(crate) type OpenStream = Arc<
    dyn Fn(Vec<u64>, Duration, oneshot::Sender<()>) -> BoxStream<'static, Result<TaskInfo>> + Send + Sync,
>;

/// The waits of one client (see the module doc).
#[derive(Default)]
pub(crate) struct WaitHub {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for WaitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("WaitHub")
            .field("ids", &s.ids.len())
            .field("queued", &s.queued.len())
            .field("opening", &s.opening)
            .finish()
    }
}

#[derive(Default)]
struct State {
    ids: BTreeMap<u64, Watch>,
    /// Ids waiting for the next stream, in the order asked.
    queued: Vec<u64>,
    /// A stream is being opened (the opening task runs).
    opening: bool,
}

/// The callers of one id, and whether a stream watches it or it is queued for one.
#[derive(Default)]
struct Watch {
    callers: Vec<Caller>,
    watched: bool,
    queued: bool,
}

struct Caller {
    deadline: Instant,
    tx: oneshot::Sender<Result<TaskInfo>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // No invariant a panic could break half-way: use the state as it is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WaitHub {
    /// Registers a caller of `id` until `deadline`; its result comes on the receiver (it may
    /// come after the deadline: the caller times out by itself).
    pub(crate) fn wait(
        &self,
        id: u64,
        deadline: Instant,
        chunk: usize,
        open: OpenStream,
    ) -> oneshot::Receiver<Result<TaskInfo>> {
        let (tx, rx) = oneshot::channel();
        let mut s = lock(&self.state);
        let watch = s.ids.entry(id).or_default();
        watch.callers.push(Caller { deadline, tx });
        if !watch.watched && !watch.queued {
            watch.queued = true;
            s.queued.push(id);
        }
        start_opening(&self.state, &mut s, chunk, open);
        rx
    }
}

/// Starts the opening task unless it runs.
fn start_opening(state: &Arc<Mutex<State>>, s: &mut State, chunk: usize, open: OpenStream) {
    if !s.queued.is_empty() && !std::mem::replace(&mut s.opening, true) {
        tokio::spawn(open_all(state.clone(), chunk.max(1), open));
    }
}

/// Clears `opening` if the opening task ends other than by itself (see `gather::Sending`).
struct Opening {
    state: Arc<Mutex<State>>,
    armed: bool,
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.state).opening = false;
        }
    }
}

/// The opening task: one stream at a time, each for the ids queued meanwhile.
async fn open_all(state: Arc<Mutex<State>>, chunk: usize, open: OpenStream) {
    let mut opening = Opening { state, armed: true };
    loop {
        let (ids, deadline) = {
            let mut s = lock(&opening.state);
            match take_queued(&mut s, chunk) {
                Some(taken) => taken,
                None => {
                    s.opening = false;
                    opening.armed = false;
                    return;
                }
            }
        };
        let (opened_tx, opened_rx) = oneshot::channel();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let stream = open(ids.clone(), timeout, opened_tx);
        tokio::spawn(drive(opening.state.clone(), ids, stream, chunk, open.clone()));
        // Opened, refused, or the stream gone: the next set may go.
        let _ = opened_rx.await;
    }
}

/// Takes up to `chunk` queued ids that still have callers (marked watched), with the latest
/// deadline among their callers; `None` when none is left.
fn take_queued(s: &mut State, chunk: usize) -> Option<(Vec<u64>, Instant)> {
    let mut ids = Vec::new();
    let mut deadline: Option<Instant> = None;
    for id in std::mem::take(&mut s.queued) {
        if ids.len() == chunk {
            s.queued.push(id);
            continue;
        }
        let Entry::Occupied(mut e) = s.ids.entry(id) else {
            continue;
        };
        let watch = e.get_mut();
        watch.queued = false;
        watch.callers.retain(|c| !c.tx.is_closed());
        if watch.callers.is_empty() {
            e.remove();
            continue;
        }
        watch.watched = true;
        let latest = watch.callers.iter().map(|c| c.deadline).max();
        deadline = deadline.max(latest);
        ids.push(id);
    }
    Some((ids, deadline?))
}

/// Reads one stream to its end, waking each id's callers; then settles its unreported ids.
async fn drive(
    state: Arc<Mutex<State>>,
    ids: Vec<u64>,
    mut stream: BoxStream<'static, Result<TaskInfo>>,
    chunk: usize,
    open: OpenStream,
) {
    let mut reported = BTreeSet::new();
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let watch = lock(&state).ids.remove(&info.id.0);
                reported.insert(info.id.0);
                for caller in watch.into_iter().flat_map(|w| w.callers) {
                    let _ = caller.tx.send(Ok(info.clone()));
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(stream);
    let mut s = lock(&state);
    let now = Instant::now();
    for id in ids.into_iter().filter(|id| !reported.contains(id)) {
        let Entry::Occupied(mut e) = s.ids.entry(id) else {
            continue;
        };
        let watch = e.get_mut();
        watch.watched = false;
        let callers = std::mem::take(&mut watch.callers);
        for caller in callers {
            if caller.tx.is_closed() {
                continue;
            }
            match &failure {
                Some(f) if !matches!(f, ClientError::Timeout) => {
                    let _ = caller.tx.send(Err(share(f)));
                }
                _ if caller.deadline <= now => {
                    let _ = caller.tx.send(Err(ClientError::Timeout));
                }
                _ => watch.callers.push(caller),
            }
        }
        if watch.callers.is_empty() {
            e.remove();
        } else if !watch.queued {
            watch.queued = true;
            s.queued.push(id);
        }
    }
    start_opening(&state, &mut s, chunk, open);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use flotilla_proto::v1 as pb;
    use futures::channel::mpsc;

    use super::*;
    use crate::info::TaskState;

    /// A stream the fake node opened: its ids, its timeout, the signal it owes, and its sender.
    struct Opened {
        ids: Vec<u64>,
        timeout: Duration,
        opened: Option<oneshot::Sender<()>>,
        tx: mpsc::UnboundedSender<Result<TaskInfo>>,
    }

    #[derive(Clone, Default)]
    struct Fake {
        streams: Arc<Mutex<Vec<Opened>>>,
        hub: Arc<WaitHub>,
    }

    impl Fake {
        fn open(&self) -> OpenStream {
            let streams = self.streams.clone();
            Arc::new(move |ids, timeout, opened| {
                let (tx, rx) = mpsc::unbounded();
                streams.lock().unwrap().push(Opened {
                    ids,
                    timeout,
                    opened: Some(opened),
                    tx,
                });
                rx.boxed()
            })
        }

        fn wait(&self, id: u64, secs: u64) -> oneshot::Receiver<Result<TaskInfo>> {
            let deadline = Instant::now() + Duration::from_secs(secs);
            self.hub.wait(id, deadline, 3, self.open())
        }

        fn opened_ids(&self) -> Vec<Vec<u64>> {
            self.streams
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.ids.clone())
                .collect()
        }

        /// Stream `i`'s first open attempt ended.
        fn opened(&self, i: usize) {
            let _ = self.streams.lock().unwrap()[i].opened.take().unwrap().send(());
        }

        fn report(&self, i: usize, item: Result<TaskInfo>) {
            self.streams.lock().unwrap()[i].tx.unbounded_send(item).unwrap();
        }

        /// Stream `i` ends (the node closed it after its last report or its error).
        fn end(&self, i: usize) {
            self.streams.lock().unwrap()[i].tx.close_channel();
        }
    }

    fn done(id: u64) -> TaskInfo {
        TaskInfo::from(pb::TaskInfo {
            id,
            state: pb::TaskState::Succeeded as i32,
            ..pb::TaskInfo::default()
        })
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    async fn got(rx: oneshot::Receiver<Result<TaskInfo>>) -> Result<TaskInfo> {
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn waits_meanwhile_share_the_next_stream_and_each_caller_gets_its_task() {
        let fake = Fake::default();
        let one = fake.wait(1, 60);
        settle().await;
        assert_eq!(fake.opened_ids(), [vec![1]], "opened at once, alone");
        let two = fake.wait(2, 60);
        let three = fake.wait(3, 30);
        let one_again = fake.wait(1, 60);
        settle().await;
        assert_eq!(fake.opened_ids().len(), 1, "the others wait for the opening");
        fake.opened(0);
        settle().await;
        assert_eq!(
            fake.opened_ids(),
            [vec![1], vec![2, 3]],
            "id 1 is watched already"
        );
        let timeout = fake.streams.lock().unwrap()[1].timeout;
        assert!(
            timeout > Duration::from_secs(59),
            "the latest deadline of its callers: {timeout:?}"
        );
        fake.report(1, Ok(done(3)));
        fake.report(0, Ok(done(1)));
        fake.report(1, Ok(done(2)));
        for (rx, id) in [(three, 3), (one, 1), (one_again, 1), (two, 2)] {
            let info = got(rx).await.unwrap();
            assert_eq!((info.id.0, info.state), (id, TaskState::Succeeded));
        }
        assert!(lock(&fake.hub.state).ids.is_empty(), "nothing left registered");
    }

    #[tokio::test]
    async fn a_stream_holds_at_most_a_chunk_of_ids() {
        let fake = Fake::default();
        let mut rxs = vec![fake.wait(0, 60)];
        settle().await;
        rxs.extend((1..=7).map(|id| fake.wait(id, 60)));
        for i in 0..4 {
            settle().await;
            fake.opened(i);
        }
        settle().await;
        assert_eq!(
            fake.opened_ids(),
            [vec![0], vec![1, 2, 3], vec![4, 5, 6], vec![7]]
        );
    }

    #[tokio::test]
    async fn a_failed_stream_fails_only_the_callers_of_its_ids() {
        let fake = Fake::default();
        let one = fake.wait(1, 60);
        settle().await;
        fake.opened(0);
        let two = fake.wait(2, 60);
        let three = fake.wait(3, 60);
        settle().await;
        assert_eq!(fake.opened_ids(), [vec![1], vec![2, 3]]);
        fake.report(1, Ok(done(2)));
        fake.report(
            1,
            Err(ClientError::Unavailable {
                attempts: 4,
                last: "down".into(),
            }),
        );
        fake.end(1);
        assert_eq!(got(two).await.unwrap().id.0, 2, "reported before the failure");
        let e = got(three).await.unwrap_err();
        assert!(matches!(e, ClientError::Unavailable { attempts: 4, .. }), "{e}");
        fake.report(0, Ok(done(1)));
        assert_eq!(
            got(one).await.unwrap().id.0,
            1,
            "another stream's caller is untouched"
        );
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_others_of_its_id_be() {
        let fake = Fake::default();
        let first = fake.wait(1, 60);
        let second = fake.wait(1, 60);
        settle().await;
        drop(first);
        fake.report(0, Ok(done(1)));
        assert_eq!(got(second).await.unwrap().id.0, 1);
        // A queued id whose only caller left is not asked for.
        fake.opened(0);
        let gone = fake.wait(5, 60);
        settle().await;
        fake.opened(1);
        let queued_gone = fake.wait(6, 60);
        let stays = fake.wait(7, 60);
        drop(queued_gone);
        drop(gone);
        settle().await;
        fake.opened(2);
        settle().await;
        assert_eq!(fake.opened_ids(), [vec![1], vec![5], vec![7]]);
        fake.report(2, Ok(done(7)));
        assert_eq!(got(stays).await.unwrap().id.0, 7);
    }

    #[tokio::test]
    async fn after_a_stream_times_out_callers_with_time_left_get_a_new_one() {
        let fake = Fake::default();
        let short = fake.wait(1, 0);
        settle().await;
        fake.opened(0);
        // A later caller of the same id joins the open stream, with more time.
        let long = fake.wait(1, 60);
        settle().await;
        assert_eq!(fake.opened_ids(), [vec![1]]);
        fake.report(0, Err(ClientError::Timeout));
        fake.end(0);
        assert!(matches!(got(short).await, Err(ClientError::Timeout)));
        settle().await;
        assert_eq!(
            fake.opened_ids(),
            [vec![1], vec![1]],
            "reopened for the caller with time left"
        );
        fake.report(1, Ok(done(1)));
        assert_eq!(got(long).await.unwrap().id.0, 1);
    }
}
