//! Gathering concurrent single calls of one client into shared requests (issue 15): many
//! callers of [`crate::Client::submit`], each with one task, cost the cluster one request
//! between them, as a batch does, instead of one request (and its CPU on every node) each.
//!
//! The rule, with no fixed linger: a call made while nothing is being sent goes at once, alone
//! (an idle client's latency is unchanged); calls made while a request is in flight wait in a
//! queue and go together as the next request, up to `max` items, as soon as the one in flight
//! is answered. Under load the requests therefore grow with the load: the rate of requests is
//! bounded by their round trip, not by the rate of calls.
//!
//! Each caller gets its own result: the reply's entries are handed out in request order. A
//! request that fails fails only its own callers; one refused as a whole for something an item
//! may have caused (`INVALID_ARGUMENT`: an unknown task name, bad options; `NOT_FOUND`: a
//! parent that does not exist; `OUT_OF_RANGE`: a request over the size limit) is sent again
//! item by item, so the item at fault fails its own caller and the others go through (a
//! refused request committed nothing). A refusal every item shares (unavailable, a full table
//! or call limit) is not resent: that would multiply the requests of a struggling cluster.
//! A caller that gives up before its item is sent is left out of the request; one that gives
//! up later has its item submitted all the same, as a single call's would be.
//!
//! The requests are sent by a task spawned by the call that found nothing in flight; it ends
//! when the queue is empty, so an idle client runs nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::error::{ClientError, Result};

/// Sends one request of items; its results in item order.
pub(crate) type SendItems<T, R> =
    Arc<dyn Fn(Arc<Vec<T>>) -> BoxFuture<'static, Result<Vec<R>>> + Send + Sync>;

/// Requests of single items sent again one by one after a gathered request was refused.
const RESENDS_IN_FLIGHT: usize = 8;

/// The queue of one kind of call (see the module doc).
pub(crate) struct Gather<T, R> {
    queue: Arc<Mutex<Queue<T, R>>>,
}

impl<T, R> std::fmt::Debug for Gather<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = lock(&self.queue);
        f.debug_struct("Gather")
            .field("sending", &q.sending)
            .field("waiting", &q.waiting.len())
            .finish()
    }
}

struct Queue<T, R> {
    /// A request is in flight (the sending task runs).
    sending: bool,
    waiting: VecDeque<(T, oneshot::Sender<Result<R>>)>,
}

fn lock<Q>(m: &Mutex<Q>) -> MutexGuard<'_, Q> {
    // The queue holds no invariant a panic could break half-way: use it as it is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T, R> Default for Gather<T, R> {
    fn default() -> Self {
        Gather {
            queue: Arc::new(Mutex::new(Queue {
                sending: false,
                waiting: VecDeque::new(),
            })),
        }
    }
}

impl<T, R> Gather<T, R>
where
    T: Clone + Send + Sync + 'static,
    R: Send + 'static,
{
    /// Sends `item` in the next request (at once when none is in flight) of at most `max`
    /// items, with `send`; returns its own result.
    pub(crate) async fn call(&self, item: T, max: usize, send: SendItems<T, R>) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = lock(&self.queue);
            q.waiting.push_back((item, tx));
            !std::mem::replace(&mut q.sending, true)
        };
        if start {
            tokio::spawn(send_all(self.queue.clone(), max.max(1), send));
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::protocol("a gathered request ended without a result")))
    }
}

/// Clears `sending` however the sending task ends (a panic, a runtime shutting down), so the
/// next call starts a new one instead of queueing behind a task that is gone.
struct Sending<T, R> {
    queue: Arc<Mutex<Queue<T, R>>>,
    /// Cleared when the task ends by itself: it cleared `sending` under the lock, and a new
    /// task may run by the time this is dropped.
    armed: bool,
}

impl<T, R> Drop for Sending<T, R> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.queue).sending = false;
        }
    }
}

/// The sending task: one request at a time, each of what gathered meanwhile.
async fn send_all<T, R>(queue: Arc<Mutex<Queue<T, R>>>, max: usize, send: SendItems<T, R>)
where
    T: Clone + Send + Sync + 'static,
    R: Send + 'static,
{
    let mut sending = Sending { queue, armed: true };
    loop {
        let (items, callers): (Vec<T>, Vec<oneshot::Sender<Result<R>>>) = {
            let mut q = lock(&sending.queue);
            // Callers that gave up before their item went out are left out.
            q.waiting.retain(|(_, tx)| !tx.is_closed());
            if q.waiting.is_empty() {
                q.sending = false;
                sending.armed = false;
                return;
            }
            let n = q.waiting.len().min(max);
            q.waiting.drain(..n).unzip()
        };
        let items = Arc::new(items);
        match send(items.clone()).await {
            Ok(results) if results.len() == callers.len() => {
                for (tx, result) in callers.into_iter().zip(results) {
                    let _ = tx.send(Ok(result));
                }
            }
            Ok(results) => {
                let e = format!("a reply of {} results for {} items", results.len(), callers.len());
                for tx in callers {
                    let _ = tx.send(Err(ClientError::protocol(e.clone())));
                }
            }
            Err(e) if callers.len() > 1 && an_item_may_be_at_fault(&e) => {
                resend_one_by_one(&items, callers, &send).await;
            }
            Err(e) => {
                for tx in callers {
                    let _ = tx.send(Err(share(&e)));
                }
            }
        }
    }
}

/// Whether a refusal of a whole request may be one item's doing, not every item's: the
/// statuses a node gives bad input (`INVALID_ARGUMENT`), a parent that does not exist
/// (`NOT_FOUND`) or a request over its size limit (`OUT_OF_RANGE`). Failures of the cluster or
/// the connection (unavailable, timeout, a full table or call limit: `RESOURCE_EXHAUSTED`, a
/// node that is not a member, an internal error) and of the client's token concern every item
/// alike: resending those item by item would only multiply the requests an overloaded or
/// failing cluster refuses.
fn an_item_may_be_at_fault(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::InvalidArgument(_)
            | ClientError::NotFound(_)
            | ClientError::Server {
                code: tonic::Code::NotFound | tonic::Code::OutOfRange,
                ..
            }
    )
}

async fn resend_one_by_one<T, R>(
    items: &[T],
    callers: Vec<oneshot::Sender<Result<R>>>,
    send: &SendItems<T, R>,
) where
    T: Clone + Send + Sync + 'static,
    R: Send + 'static,
{
    let resends = items.iter().cloned().zip(callers).map(|(item, tx)| {
        let reply = send(Arc::new(vec![item]));
        async move {
            let result = reply.await.and_then(|one| {
                <[R; 1]>::try_from(one)
                    .map(|[r]| r)
                    .map_err(|_| ClientError::protocol("a reply of one item without one result"))
            });
            let _ = tx.send(result);
        }
    });
    futures::stream::iter(resends)
        .buffer_unordered(RESENDS_IN_FLIGHT)
        .for_each(|()| async {})
        .await;
}

/// The same error again, for another caller of a shared request.
pub(crate) fn share(e: &ClientError) -> ClientError {
    match e {
        ClientError::Unavailable { attempts, last } => ClientError::Unavailable {
            attempts: *attempts,
            last: last.clone(),
        },
        ClientError::InvalidArgument(m) => ClientError::InvalidArgument(m.clone()),
        ClientError::NotFound(id) => ClientError::NotFound(*id),
        ClientError::Timeout => ClientError::Timeout,
        ClientError::Config(m) => ClientError::Config(m.clone()),
        ClientError::Transport(m) => ClientError::Transport(m.clone()),
        ClientError::Unauthenticated(m) => ClientError::Unauthenticated(m.clone()),
        ClientError::PermissionDenied(m) => ClientError::PermissionDenied(m.clone()),
        ClientError::Server { code, message } => ClientError::Server {
            code: *code,
            message: message.clone(),
        },
        other => ClientError::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Semaphore;
    use tokio::task::JoinHandle;

    use super::*;

    /// A fake node: logs each request's items, answers once a permit is given, with each item
    /// times ten; an item 13 makes it refuse the request as bad input, an item 99 unavailable, an item 77
    /// full (`RESOURCE_EXHAUSTED`).
    struct Fake {
        log: Arc<Mutex<Vec<Vec<u32>>>>,
        permits: Arc<Semaphore>,
        gather: Arc<Gather<u32, u32>>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                log: Arc::default(),
                permits: Arc::new(Semaphore::new(0)),
                gather: Arc::new(Gather::default()),
            }
        }

        fn send(&self) -> SendItems<u32, u32> {
            let (log, permits) = (self.log.clone(), self.permits.clone());
            Arc::new(move |items: Arc<Vec<u32>>| {
                log.lock().unwrap().push(items.to_vec());
                let permits = permits.clone();
                Box::pin(async move {
                    permits.acquire().await.unwrap().forget();
                    if items.contains(&99) {
                        return Err(ClientError::Unavailable {
                            attempts: 3,
                            last: "down".into(),
                        });
                    }
                    if items.contains(&13) {
                        return Err(ClientError::InvalidArgument("13 is bad".into()));
                    }
                    if items.contains(&77) {
                        return Err(ClientError::Server {
                            code: tonic::Code::ResourceExhausted,
                            message: "full".into(),
                        });
                    }
                    Ok(items.iter().map(|i| i * 10).collect())
                })
            })
        }

        fn call(&self, item: u32, max: usize) -> JoinHandle<Result<u32>> {
            let (gather, send) = (self.gather.clone(), self.send());
            tokio::spawn(async move { gather.call(item, max, send).await })
        }

        fn requests(&self) -> Vec<Vec<u32>> {
            self.log.lock().unwrap().clone()
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_first_call_goes_alone_and_calls_meanwhile_go_together_in_order() {
        let fake = Fake::new();
        let first = fake.call(1, 100);
        settle().await;
        assert_eq!(fake.requests(), [vec![1]], "sent at once, alone");
        let later: Vec<_> = (2..=6).map(|i| fake.call(i, 100)).collect();
        settle().await;
        assert_eq!(fake.requests().len(), 1, "the others wait for the one in flight");
        fake.permits.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), 10);
        settle().await;
        assert_eq!(fake.requests(), [vec![1], vec![2, 3, 4, 5, 6]]);
        fake.permits.add_permits(1);
        for (i, h) in (2..=6).zip(later) {
            assert_eq!(
                h.await.unwrap().unwrap(),
                i * 10,
                "each caller gets its own result"
            );
        }
        // Idle again: the next call goes at once.
        let again = fake.call(7, 100);
        settle().await;
        assert_eq!(fake.requests().last().unwrap(), &vec![7]);
        fake.permits.add_permits(1);
        assert_eq!(again.await.unwrap().unwrap(), 70);
    }

    #[tokio::test]
    async fn requests_hold_at_most_max_items() {
        let fake = Fake::new();
        let first = fake.call(0, 4);
        settle().await;
        let later: Vec<_> = (1..=10).map(|i| fake.call(i, 4)).collect();
        settle().await;
        fake.permits.add_permits(10);
        first.await.unwrap().unwrap();
        for h in later {
            h.await.unwrap().unwrap();
        }
        assert_eq!(
            fake.requests(),
            [vec![0], vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]
        );
    }

    #[tokio::test]
    async fn a_failed_request_fails_only_its_own_callers() {
        let fake = Fake::new();
        let down = fake.call(99, 100);
        settle().await;
        let later: Vec<_> = (1..=3).map(|i| fake.call(i, 100)).collect();
        settle().await;
        fake.permits.add_permits(2);
        let e = down.await.unwrap().unwrap_err();
        assert!(matches!(e, ClientError::Unavailable { attempts: 3, .. }), "{e}");
        for (i, h) in (1..=3).zip(later) {
            assert_eq!(h.await.unwrap().unwrap(), i * 10);
        }
        // A failure every item of a request shares is not resent item by item.
        let first = fake.call(1, 100);
        settle().await;
        let shared: Vec<_> = [2, 99, 3].into_iter().map(|i| fake.call(i, 100)).collect();
        settle().await;
        fake.permits.add_permits(2);
        first.await.unwrap().unwrap();
        for h in shared {
            assert!(matches!(h.await.unwrap(), Err(ClientError::Unavailable { .. })));
        }
        assert_eq!(fake.requests().last().unwrap(), &vec![2, 99, 3]);
    }

    #[tokio::test]
    async fn a_request_refused_as_full_is_not_resent_item_by_item() {
        let fake = Fake::new();
        let first = fake.call(1, 100);
        settle().await;
        let shared: Vec<_> = [2, 77, 3].into_iter().map(|i| fake.call(i, 100)).collect();
        settle().await;
        fake.permits.add_permits(2);
        first.await.unwrap().unwrap();
        for h in shared {
            let e = h.await.unwrap().unwrap_err();
            assert!(
                matches!(
                    e,
                    ClientError::Server {
                        code: tonic::Code::ResourceExhausted,
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert_eq!(fake.requests(), [vec![1], vec![2, 77, 3]]);
    }

    #[tokio::test]
    async fn a_request_refused_for_bad_input_is_resent_item_by_item() {
        let fake = Fake::new();
        let first = fake.call(1, 100);
        settle().await;
        let later: Vec<_> = [2, 13, 4].into_iter().map(|i| fake.call(i, 100)).collect();
        settle().await;
        fake.permits.add_permits(5);
        first.await.unwrap().unwrap();
        let results: Vec<_> = futures::future::join_all(later).await;
        let results: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(results[0].as_ref().unwrap(), &20);
        assert!(matches!(&results[1], Err(ClientError::InvalidArgument(m)) if m.contains("13")));
        assert_eq!(results[2].as_ref().unwrap(), &40);
        let mut resent = fake.requests().split_off(2);
        resent.sort();
        assert_eq!(resent, [vec![2], vec![4], vec![13]], "one request per item");
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_is_left_out_or_leaves_the_others_be() {
        let fake = Fake::new();
        let first = fake.call(1, 100);
        settle().await;
        let gone = fake.call(2, 100);
        let stays = fake.call(3, 100);
        settle().await;
        gone.abort();
        settle().await;
        fake.permits.add_permits(1);
        first.await.unwrap().unwrap();
        settle().await;
        assert_eq!(
            fake.requests().last().unwrap(),
            &vec![3],
            "left out before it went"
        );
        // Giving up once the item went out does not disturb the others of its request.
        let more: Vec<_> = [4, 5].into_iter().map(|i| fake.call(i, 100)).collect();
        settle().await;
        fake.permits.add_permits(1);
        assert_eq!(stays.await.unwrap().unwrap(), 30);
        settle().await;
        assert_eq!(fake.requests().last().unwrap(), &vec![4, 5]);
        let mut more = more;
        more[0].abort();
        fake.permits.add_permits(1);
        let last = more.pop().unwrap();
        let five = tokio::time::timeout(Duration::from_secs(5), last).await.unwrap();
        assert_eq!(five.unwrap().unwrap(), 50);
    }
}
