//! The events stream on a follower of a 3-node cluster: tasks submitted, run, retried and
//! dead are each seen once, in order, across a stream killed and resumed from the position of
//! the last event it gave; the leader, watched from the same position, gives the same events.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use anyhow::bail;
use anyhow::ensure;
use flotilla_client::Client;
use flotilla_client::TaskState;
use flotilla_client::events::Event;
use flotilla_client::events::EventKind;
use flotilla_client::events::Position;
use flotilla_client::events::WatchOptions;
use futures::Stream;
use futures::StreamExt;

use crate::connect;
use crate::leader;
use crate::start_cluster;

/// The next event of `stream` within 30 s.
async fn next(stream: &mut (impl Stream<Item = flotilla_client::Result<Event>> + Unpin)) -> Result<Event> {
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        Ok(Some(event)) => Ok(event?),
        Ok(None) => bail!("the events stream ended"),
        Err(_) => bail!("no event within 30 s"),
    }
}

/// Submit `noop` markers until `stream` shows one: the stream is then recording.
async fn until_watching(
    client: &Client,
    stream: &mut (impl Stream<Item = flotilla_client::Result<Event>> + Unpin),
) -> Result<Vec<Event>> {
    for _ in 0..50 {
        client.submit(client.task("noop").queue("marker")).await?;
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
            return Ok(vec![event?]);
        }
    }
    bail!("the events stream never showed a marker")
}

fn kinds_by_task(events: &[Event]) -> BTreeMap<u64, Vec<EventKind>> {
    let mut by_task: BTreeMap<u64, Vec<EventKind>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.task_id != 0) {
        by_task.entry(e.task_id).or_default().push(e.kind);
    }
    by_task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_events_resume_from_a_position_and_show_each_step_once() -> Result<()> {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir()?;
    let nodes = start_cluster(dir.path(), 3, &["--workers", "2"]).await?;
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let client = connect(&addrs, Duration::from_secs(60)).await?;
    let lead = leader(&nodes).await?;
    let follower = (lead + 1) % 3;
    let on_follower = connect(std::slice::from_ref(&addrs[follower]), Duration::from_secs(30)).await?;
    let on_leader = connect(std::slice::from_ref(&addrs[lead]), Duration::from_secs(30)).await?;

    let mut watch = Box::pin(on_follower.events(WatchOptions::default()));
    // The leader records too from now, so it can be asked for the same positions later.
    let mut leader_watch = Box::pin(on_leader.events(WatchOptions::default()));
    let mut got = until_watching(&client, &mut watch).await?;
    let start = got[0].position();
    let leader_start = until_watching(&client, &mut leader_watch).await?[0].position();
    drop(leader_watch);

    // Ten tasks that succeed and one that fails, is retried once, and dies.
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(client.submit(client.task("echo").args(&i)?).await?);
    }
    let failing = client
        .task("fail")
        .args(&serde_json::json!({"message": "boom"}))?
        .max_retries(1)
        .retry_backoff(Duration::from_millis(10));
    let dead = client.submit(failing).await?;
    ids.push(dead);
    let done = client.wait_all(ids.clone(), Duration::from_secs(60)).await?;
    ensure!(done.iter().filter(|t| t.state == TaskState::Succeeded).count() == 10);

    // Read some, then kill the stream.
    for _ in 0..12 {
        got.push(next(&mut watch).await?);
    }
    drop(watch);
    let resume = got.last().map(Event::position_after).unwrap_or(start);

    // Tasks that run while nobody watches are seen after the resume.
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(client.submit(client.task("echo").args(&i)?).await?);
    }
    client.wait_all(later.clone(), Duration::from_secs(60)).await?;
    ids.extend(later);

    let opts = WatchOptions {
        from: Some(resume),
        ..WatchOptions::default()
    };
    let mut watch = Box::pin(on_follower.events(opts));
    let want = |events: &[Event]| {
        let by_task = kinds_by_task(events);
        ids.iter().all(|id| {
            by_task.get(&id.0).is_some_and(|k| {
                k.last()
                    .is_some_and(|k| matches!(k, EventKind::Succeeded | EventKind::Dead))
            })
        })
    };
    while !want(&got) {
        got.push(next(&mut watch).await?);
    }

    let positions: Vec<Position> = got.iter().map(Event::position).collect();
    let mut unique = positions.clone();
    unique.sort();
    unique.dedup();
    ensure!(positions == unique, "every event once, in order: {positions:?}");
    let by_task = kinds_by_task(&got);
    use EventKind::*;
    for id in &ids {
        let kinds = &by_task[&id.0];
        if *id == dead {
            ensure!(
                kinds == &vec![Submitted, Started, Retried, Started, Dead],
                "task {id}: {kinds:?}"
            );
        } else {
            ensure!(
                kinds == &vec![Submitted, Started, Succeeded],
                "task {id}: {kinds:?}"
            );
        }
    }
    let died = got.iter().find(|e| e.task_id == dead.0 && e.kind == Dead);
    ensure!(
        died.and_then(|e| e.error.as_deref())
            .is_some_and(|e| e.contains("boom"))
    );
    ensure!(
        got.iter()
            .filter(|e| e.kind == Started)
            .all(|e| !e.pool.is_empty() && e.attempt >= 1)
    );

    // The leader gives the very same events for the same positions (from where both record).
    let common = start.max(leader_start);
    let opts = WatchOptions {
        from: Some(common),
        ..WatchOptions::default()
    };
    let mut from_leader = Box::pin(on_leader.events(opts));
    let key = |e: &Event| (e.position(), e.kind, e.task_id, e.attempt, e.pool.clone());
    let ours: Vec<_> = got.iter().filter(|e| e.position() >= common).map(key).collect();
    let mut same = Vec::new();
    while same.len() < ours.len() {
        same.push(next(&mut from_leader).await?);
    }
    let theirs: Vec<_> = same.iter().map(key).collect();
    ensure!(ours == theirs, "the leader's events differ from the follower's");
    Ok(())
}
