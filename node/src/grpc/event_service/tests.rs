//! The stream against a bare replica: resuming, a lost position, a slow client cut off
//! (apply never waits for it), and bad filters refused.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tonic::Request;

use super::*;
use crate::queue::Command;
use crate::queue::TaskSpec;

fn spec(queue: &str) -> TaskSpec {
    let mut spec = crate::worker::testing::task_spec("t", "{}");
    spec.queue = queue.into();
    spec
}

/// Apply, as the entry at `index`, a submit of `n` tasks to `queue`.
fn submit(replica: &Replica, index: u64, queue: &str, n: usize) {
    let tasks: Vec<TaskSpec> = (0..n).map(|_| spec(queue)).collect();
    let req = crate::queue::Request {
        now_ms: index,
        commands: vec![Command::Submit { tasks: tasks.into() }],
    };
    replica.apply_entry(index, &req);
}

async fn watch(api: &EventApi, req: pb::WatchRequest) -> WatchStream {
    api.watch(Request::new(req)).await.expect("watch").into_inner()
}

async fn next(stream: &mut WatchStream) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a message in time")
        .expect("the stream goes on")
        .expect("no error")
}

/// Messages until `n` events came; the events' `(index, ordinal, task)` and the last message.
async fn events(stream: &mut WatchStream, n: usize) -> (Vec<(u64, u32, u64)>, pb::WatchResponse) {
    let mut got = Vec::new();
    loop {
        let msg = next(stream).await;
        got.extend(msg.events.iter().map(|e| (e.index, e.ordinal, e.task_id)));
        if got.len() >= n {
            return (got, msg);
        }
    }
}

#[tokio::test]
async fn a_watcher_from_now_sees_what_follows_and_resumes_where_it_stopped() {
    let replica = Arc::new(Replica::default());
    submit(&replica, 1, "q", 1);
    let api = EventApi::new(replica.clone());
    let mut stream = watch(&api, pb::WatchRequest::default()).await;
    let first = next(&mut stream).await;
    assert!(
        first.events.is_empty(),
        "the first message says where the stream starts"
    );
    assert_eq!((first.next_index, first.next_ordinal), (2, 0));
    submit(&replica, 2, "q", 2);
    submit(&replica, 3, "q", 1);
    let (got, last) = events(&mut stream, 3).await;
    assert_eq!(got, vec![(2, 0, 2), (2, 1, 3), (3, 0, 4)]);
    assert_eq!((last.next_index, last.next_ordinal), (4, 0));
    drop(stream);
    // Missed while away, then resumed exactly where the last message said.
    submit(&replica, 4, "q", 1);
    submit(&replica, 5, "other", 1);
    let resume = pb::WatchRequest {
        from_index: Some(2),
        from_ordinal: 1,
        queues: vec!["q".into()],
        ..pb::WatchRequest::default()
    };
    let mut stream = watch(&api, resume).await;
    let (got, last) = events(&mut stream, 3).await;
    assert_eq!(got, vec![(2, 1, 3), (3, 0, 4), (4, 0, 5)], "once each, filtered");
    assert_eq!(last.next_index, 6, "past what the filter skipped");
}

#[tokio::test]
async fn a_position_no_longer_held_is_told_with_the_oldest_that_is() {
    let replica = Arc::new(Replica::default());
    submit(&replica, 1, "q", 1);
    let api = EventApi::new(replica.clone());
    // Recording starts with the first watcher: entry 1 was never recorded.
    let mut stream = watch(
        &api,
        pb::WatchRequest {
            from_index: Some(1),
            ..pb::WatchRequest::default()
        },
    )
    .await;
    let msg = next(&mut stream).await;
    assert_eq!(msg.end, pb::WatchEnd::Lost as i32);
    assert_eq!((msg.oldest_index, msg.oldest_ordinal), (2, 0));
    assert!(stream.next().await.is_none(), "and the stream ends");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_with_a_held_position_and_apply_never_waits() {
    let replica = Arc::new(Replica::default());
    let api = EventApi::new(replica.clone()).max_lag(2_000);
    let mut stream = watch(&api, pb::WatchRequest::default()).await;
    let first = next(&mut stream).await;
    // The client reads nothing while 20,000 events are applied: apply does not wait; the
    // stream fills its buffer and waits.
    for i in 0..40 {
        submit(&replica, 2 + i, "q", 500);
    }
    // Applies go on while the client still reads nothing: once the stream has filled its
    // buffer, the next apply finds it far behind and ends it (how soon depends on the load).
    let mut index = 42;
    for _ in 0..500 {
        if api.watchers.load(Ordering::Acquire) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        submit(&replica, index, "q", 1);
        index += 1;
    }
    assert_eq!(api.watchers.load(Ordering::Acquire), 0, "the stream ended");
    let total = 20_000 + usize::try_from(index - 42).expect("small");
    let mut delivered = Vec::new();
    let end = loop {
        let msg = next(&mut stream).await;
        delivered.extend(msg.events.iter().map(|e| (e.index, e.ordinal)));
        if msg.end != 0 {
            break msg;
        }
    };
    assert_eq!(end.end, pb::WatchEnd::FellBehind as i32);
    assert!(stream.next().await.is_none(), "the stream ended");
    assert!(
        delivered.len() <= STREAM_BUFFER * MAX_EVENTS_PER_MESSAGE,
        "no more than the stream's buffer was held for it"
    );
    assert!(delivered.len() < total);
    let resume = (end.next_index, end.next_ordinal);
    assert!(resume >= (first.next_index, 0));
    assert!(
        resume >= replica.events().floor(),
        "the position told is still held"
    );
    // Resuming there gives everything that followed, once, to a client that reads.
    let mut stream = watch(
        &api.clone(),
        pb::WatchRequest {
            from_index: Some(resume.0),
            from_ordinal: resume.1,
            ..pb::WatchRequest::default()
        },
    )
    .await;
    let expected = total - delivered.len();
    let (got, _) = events(&mut stream, expected).await;
    assert_eq!(got.len(), expected);
    let mut all: Vec<(u64, u32)> = delivered;
    all.extend(got.iter().map(|(i, o, _)| (*i, *o)));
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total, "every event once");
    assert_eq!(all, unique, "in order");
}

#[tokio::test]
async fn bad_filters_are_refused_and_change_nothing() {
    let replica = Arc::new(Replica::default());
    let api = EventApi::new(replica.clone());
    let refused = |req: pb::WatchRequest| {
        let api = api.clone();
        async move {
            match api.watch(Request::new(req)).await {
                Ok(_) => panic!("accepted"),
                Err(status) => status,
            }
        }
    };
    let too_many = pb::WatchRequest {
        queues: (0..=MAX_FILTER_NAMES).map(|i| format!("q{i}")).collect(),
        ..pb::WatchRequest::default()
    };
    assert_eq!(refused(too_many).await.code(), tonic::Code::InvalidArgument);
    let bad_queue = pb::WatchRequest {
        queues: vec!["no spaces".into()],
        ..pb::WatchRequest::default()
    };
    assert_eq!(refused(bad_queue).await.code(), tonic::Code::InvalidArgument);
    let bad_kind = pb::WatchRequest {
        kinds: vec![99],
        ..pb::WatchRequest::default()
    };
    assert_eq!(refused(bad_kind).await.code(), tonic::Code::InvalidArgument);
    let long_name = pb::WatchRequest {
        task_names: vec!["x".repeat(1000)],
        ..pb::WatchRequest::default()
    };
    assert_eq!(refused(long_name).await.code(), tonic::Code::InvalidArgument);
    assert!(!replica.events().is_on(), "a refused watch starts nothing");
}

#[tokio::test]
async fn the_number_of_streams_is_bounded() {
    let replica = Arc::new(Replica::default());
    let api = EventApi::new(replica.clone());
    let mut open = Vec::new();
    for _ in 0..MAX_WATCHERS {
        open.push(watch(&api, pb::WatchRequest::default()).await);
    }
    let status = match api.watch(Request::new(pb::WatchRequest::default())).await {
        Ok(_) => panic!("accepted"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    drop(open.pop());
    // The stream's task notices its client went at its next wake.
    submit(&replica, 2, "q", 1);
    let mut accepted = false;
    for _ in 0..100 {
        if api.watch(Request::new(pb::WatchRequest::default())).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted, "a closed stream frees its slot");
}
