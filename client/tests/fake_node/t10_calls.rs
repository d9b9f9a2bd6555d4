use flotilla_client::{Client, ClientError, TaskId, TaskState};
use serde_json::json;
use std::collections::BTreeSet;

use crate::client_of;
use crate::fake::Fake;

#[tokio::test]
async fn submit_then_get_returns_the_typed_result() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let id = client
        .submit(client.task("echo").args(&json!({"x": 1}))?.queue("q"))
        .await?;
    let info = client.get(id).await?;
    assert_eq!(
        (info.id, info.state, info.queue.as_str()),
        (id, TaskState::Succeeded, "q")
    );
    assert_eq!(info.result_json::<serde_json::Value>()?, json!({"x": 1}));
    let stale = client.get_stale(id).await?;
    assert_eq!(stale.state, TaskState::Succeeded);
    let flags: Vec<bool> = fake.get_requests().iter().map(|r| r.stale_ok).collect();
    assert_eq!(flags, [false, true]);
    let dead = client.get(client.submit(client.task("fail")).await?).await?;
    assert_eq!(
        (dead.state, dead.error.as_deref()),
        (TaskState::Dead, Some("boom"))
    );
    match client.get(TaskId(999)).await {
        Err(ClientError::NotFound(TaskId(999))) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn every_task_gets_a_unique_idempotency_key() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let mut tasks: Vec<_> = (0..2500).map(|_| client.task("noop")).collect();
    tasks.push(client.task("noop").idempotency_key("mine"));
    let submitted = client.submit_batch(tasks).await?;
    assert_eq!(submitted.len(), 2501);
    assert!(submitted.iter().all(|s| !s.duplicate));
    let keys = fake.keys_seen();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!((keys.len(), unique.len()), (2501, 2501));
    assert_eq!(keys.last().map(String::as_str), Some("mine"));
    assert!(keys[..2500].iter().all(|k| k.len() == 32));
    // The same request submitted again is recognised, not enqueued twice.
    let again = client.task("noop").idempotency_key("mine");
    let dup = client.submit_batch(vec![again]).await?;
    assert_eq!((dup[0].id, dup[0].duplicate), (submitted[2500].id, true));
    assert_eq!(fake.task_count(), 2501);
    Ok(())
}

#[tokio::test]
async fn batches_are_split_pipelined_and_results_keep_request_order() -> anyhow::Result<()> {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let client = Client::builder([addr.to_string()])
        .max_batch_size(100)
        .max_in_flight_batches(4)
        .build()
        .await?;
    // Priority 1..=9 by batch makes the fake answer later batches first.
    let tasks = (0..1050u32)
        .map(|i| {
            Ok(client
                .task("noop")
                .args(&json!({"i": i}))?
                .priority((1 + (i / 100) % 9) as u8))
        })
        .collect::<Result<Vec<_>, ClientError>>()?;
    let submitted = client.submit_batch(tasks).await?;
    assert_eq!(fake.submit_sizes().iter().sum::<usize>(), 1050);
    assert_eq!(fake.submit_sizes().len(), 11);
    assert!(fake.submit_sizes().iter().all(|&n| n <= 100));
    let in_flight = fake.max_submits_in_flight();
    assert!((2..=4).contains(&in_flight), "max in flight {in_flight}");
    for (i, s) in submitted.iter().enumerate() {
        let args: serde_json::Value = serde_json::from_slice(&fake.args_of(s.id.0))?;
        assert_eq!(args, json!({"i": i}), "result {i} belongs to another task");
    }
    // Ids were assigned in arrival order, which was not request order.
    assert!(submitted.windows(2).any(|w| w[0].id > w[1].id));
    assert!(client.submit_batch(Vec::new()).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn invalid_argument_is_surfaced_and_not_retried() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let err = client.submit(client.task("unknown.task")).await.unwrap_err();
    match err {
        ClientError::InvalidArgument(msg) => assert_eq!(msg, "unknown task name `unknown.task`"),
        other => panic!("expected invalid argument, got {other:?}"),
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(fake.task_count(), 0);
    Ok(())
}

#[tokio::test]
async fn cancel_stats_and_status_are_typed() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    let ids: Vec<TaskId> = client
        .submit_batch(vec![
            client.task("noop"),
            client.task("echo"),
            client.task("noop").queue("other"),
        ])
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        client.cancel([ids[0], ids[1], TaskId(77)]).await?,
        [true, false, false]
    );
    assert_eq!(client.get(ids[0]).await?.state, TaskState::Cancelled);
    let stats = client.stats().await?;
    let summary: Vec<_> = stats
        .iter()
        .map(|q| (q.queue.as_str(), q.pending, q.succeeded, q.cancelled))
        .collect();
    assert_eq!(summary, [("default", 0, 1, 1), ("other", 1, 0, 0)]);
    let status = client.status().await?;
    assert_eq!(
        (status.node_id, status.leader_id, status.term, status.commit_index),
        (1, Some(1), 3, 42)
    );
    let roles: Vec<_> = status
        .members
        .iter()
        .map(|m| (m.id, m.role.as_str(), m.zone.as_deref(), m.lag))
        .collect();
    assert_eq!(
        roles,
        [
            (1, "leader", Some("dc1"), Some(0)),
            (2, "follower", None, Some(5))
        ]
    );
    // Clones share the connection and the key generator.
    let clone = client.clone();
    assert_ne!(clone.task("a").key(), client.task("a").key());
    assert_eq!(clone.stats().await?, stats);
    Ok(())
}

#[tokio::test]
async fn remove_node_returns_the_members_left_and_refusals_are_not_retried() -> anyhow::Result<()> {
    let fake = Fake::default();
    let client = client_of(&[fake.serve().await]).await;
    assert_eq!(client.remove_node(2).await?, vec![1]);
    match client.remove_node(7).await {
        Err(ClientError::Server { message, .. }) => assert!(message.contains("not a member"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_token_is_sent_on_every_call_and_token_calls_are_typed() -> anyhow::Result<()> {
    use flotilla_client::TokenRole;
    let fake = Fake::default();
    let addr = fake.serve().await;
    let anonymous = client_of(std::slice::from_ref(&addr)).await;
    assert_eq!(anonymous.list_tokens().await?[0].label, "<none>");
    let client = Client::builder([addr.to_string()])
        .token("flt_mine")?
        .build()
        .await?;
    let tokens = client.list_tokens().await?;
    assert_eq!(tokens[0].label, "Bearer flt_mine");
    assert_eq!(tokens[0].role, Some(TokenRole::Submit));
    assert_eq!(
        client.create_token(TokenRole::Join, "node 4", None).await?,
        (7, "flt_fake".to_string())
    );
    assert!(client.revoke_token(7).await?);
    assert!(!client.revoke_token(8).await?);
    assert!(Client::builder(["127.0.0.1:1"]).token("bad\ntoken").is_err());
    Ok(())
}

#[tokio::test]
async fn task_names_are_listed_and_declared_typed() -> anyhow::Result<()> {
    use flotilla_client::Declarer;
    let fake = Fake::default();
    let addr = fake.serve().await;
    let client = client_of(std::slice::from_ref(&addr)).await;
    let names = client.task_names().await?;
    assert_eq!(names.len(), 1);
    let t = &names[0];
    assert_eq!(
        (t.name.as_str(), t.default_queue.as_str(), t.held),
        ("tasks.add", "math", 3)
    );
    assert_eq!(
        t.declarers[0],
        Declarer {
            declarer: "py-1".into(),
            queue: "math".into()
        }
    );
    let catalogue = client.task_catalogue().await?;
    let w = &catalogue.names[0].workers[0];
    assert_eq!((w.name.as_str(), w.node_id, w.concurrency), ("py-1", 2, 8));
    assert_eq!(catalogue.unreachable_nodes, [3]);
    let two = ["a".to_string(), "b".to_string()];
    assert_eq!(client.declare_task_names("ops", "q", &two).await?, 2);
    Ok(())
}

#[tokio::test]
async fn workers_lists_pools_remote_workers_and_names_only_the_log_holds() -> anyhow::Result<()> {
    use flotilla_client::WorkerKind;
    let fake = Fake::default();
    let addr = fake.serve().await;
    let client = client_of(std::slice::from_ref(&addr)).await;
    let w = client.workers().await?;
    let rows: Vec<(u64, &str, WorkerKind)> = w
        .workers
        .iter()
        .map(|w| (w.node_id, w.name.as_str(), w.kind))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "node-1", WorkerKind::Pool),
            (2, "py-1", WorkerKind::Remote),
            (0, "gone-1", WorkerKind::Unknown)
        ]
    );
    let py = &w.workers[1];
    assert_eq!(
        (py.busy, py.leased, py.concurrency, py.last_seen_ms_ago),
        (1, 2, 4, 150)
    );
    assert_eq!(w.unreachable_nodes, [3]);
    let json = serde_json::to_value(&w)?;
    assert_eq!(json["workers"][0]["kind"], "pool");
    assert_eq!(json["workers"][2]["kind"], "unknown");
    Ok(())
}
