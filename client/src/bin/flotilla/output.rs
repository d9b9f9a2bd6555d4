//! What the CLI prints: JSON lines and human text, as pure functions of the client's types.

use std::time::Duration;

use flotilla_client::{ClusterStatus, QueueStats, Submitted, TaskId, TaskInfo};
use serde_json::{Value, json};

/// What a command that changes one thing prints: `value` as one JSON object with `--json`,
/// else the sentence `text`.
pub fn ack(out: &mut impl std::io::Write, json: bool, text: &str, value: Value) -> std::io::Result<()> {
    if json {
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{text}")
    }
}

/// The JSON line for a task that was submitted and not waited for. `state` is what the client
/// knows at submit time ("pending", or "scheduled" with a countdown).
pub fn submitted_line(s: &Submitted, state: &str) -> Value {
    json!({"id": s.id.0, "state": state, "duplicate": s.duplicate})
}

/// The JSON line for a task's reported state: `result` is the parsed JSON result (the raw text
/// if it is not JSON, null if none) and `error` the failure message or null.
pub fn task_line(info: &TaskInfo) -> Value {
    json!({
        "id": info.id.0,
        "state": info.state.as_str(),
        "name": info.name,
        "queue": info.queue,
        "attempt": info.attempt,
        "result": result_value(info),
        "error": info.error,
    })
}

/// The JSON line for a waited-for task whose final state never arrived (`state` is
/// "timed_out", or "unknown" after an error).
pub fn unreported_line(id: TaskId, state: &str, error: &str) -> Value {
    json!({"id": id.0, "state": state, "result": null, "error": error})
}

fn result_value(info: &TaskInfo) -> Value {
    match info.result_value() {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(_)) => Value::String(String::from_utf8_lossy(&info.result).into_owned()),
    }
}

/// One human line for a task.
pub fn task_human(info: &TaskInfo) -> String {
    let mut line = format!("task {} {}", info.id, info.state);
    if !info.name.is_empty() {
        line.push_str(&format!(
            " name={} queue={} attempt={}",
            info.name, info.queue, info.attempt
        ));
    }
    if !info.result.is_empty() {
        line.push_str(&format!(" result={}", result_value(info)));
    }
    if let Some(error) = &info.error {
        line.push_str(&format!(" error={error:?}"));
    }
    line
}

/// "N tasks in S s (R tasks/s)".
pub fn throughput(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        n as f64 / secs
    } else {
        f64::INFINITY
    };
    format!("{n} tasks in {secs:.2} s ({rate:.0} tasks/s)")
}

/// A table of queue counts.
pub fn stats_human(stats: &[QueueStats]) -> String {
    let mut out = format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "queue", "scheduled", "pending", "leased", "retrying", "succeeded", "dead", "cancelled"
    );
    for q in stats {
        let paused = if q.paused { " (paused)" } else { "" };
        out.push_str(&format!(
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}{paused}\n",
            q.queue, q.scheduled, q.pending, q.leased, q.retrying, q.succeeded, q.dead, q.cancelled
        ));
    }
    if stats.is_empty() {
        out.push_str("(no tasks)\n");
    }
    out
}

/// `tasks` as a table: name, default queue, tasks held, declarers (`who=queue`, latest first).
pub fn task_names_human(catalogue: &flotilla_client::TaskCatalogue) -> String {
    let names = &catalogue.names;
    let mut out = format!(
        "{:<32} {:<16} {:>8}  {}\n",
        "task", "queue", "held", "declared by"
    );
    for t in names {
        let declarers: Vec<String> = t
            .declarers
            .iter()
            .map(|d| format!("{}={}", d.declarer, d.queue))
            .collect();
        out.push_str(&format!(
            "{:<32} {:<16} {:>8}  {}\n",
            t.name,
            t.default_queue,
            t.held,
            declarers.join(", ")
        ));
        // One line per connected worker: which node holds it, its name, how many it runs.
        for w in &t.workers {
            out.push_str(&format!(
                "    worker {} on node {} (concurrency {}, queues {})\n",
                w.name,
                w.node_id,
                w.concurrency,
                w.queues.join(",")
            ));
        }
    }
    if names.is_empty() {
        out.push_str("(no task names declared)\n");
    }
    if !catalogue.unreachable_nodes.is_empty() {
        let nodes: Vec<String> = catalogue.unreachable_nodes.iter().map(u64::to_string).collect();
        out.push_str(&format!(
            "(nodes {} did not answer: their workers are not listed)\n",
            nodes.join(", ")
        ));
    }
    out
}

/// `token list` as a table: id, role, label, created, expires (times in s since the epoch).
pub fn tokens_human(tokens: &[flotilla_client::ApiToken]) -> String {
    let mut out = format!(
        "{:>4}  {:<7} {:<24} {:>14} {:>14}\n",
        "id", "role", "label", "created_s", "expires_s"
    );
    for t in tokens {
        let role = t.role.map_or("?", |r| r.name());
        let expires = t
            .expires_unix_ms
            .map_or_else(|| "never".to_string(), |e| (e / 1000).to_string());
        out.push_str(&format!(
            "{:>4}  {:<7} {:<24} {:>14} {:>14}\n",
            t.id,
            role,
            t.label,
            t.created_unix_ms / 1000,
            expires
        ));
    }
    out
}

/// The cluster as text: who answered, the leader, then one line per member.
pub fn status_human(s: &ClusterStatus) -> String {
    let leader = s.leader_id.map_or_else(|| "none".to_owned(), |id| id.to_string());
    let mut out = format!(
        "node {} leader {leader} term {} commit {} applied {}\n{:<6} {:<24} {:<9} {:<8} {:>6}\n",
        s.node_id, s.term, s.commit_index, s.applied_index, "id", "addr", "role", "zone", "lag"
    );
    if let [old, new] = s.voter_sets.as_slice() {
        out = format!(
            "membership change in progress: voters {old:?} -> {new:?} (writes need a majority of both)\n{out}"
        );
    }
    for m in &s.members {
        let lag = m.lag.map_or_else(|| "-".to_owned(), |l| l.to_string());
        out.push_str(&format!(
            "{:<6} {:<24} {:<9} {:<8} {:>6}\n",
            m.id,
            m.addr,
            m.role,
            m.zone.as_deref().unwrap_or("-"),
            lag
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use flotilla_client::{Member, TaskState};

    use super::*;

    fn info(state: TaskState, result: &'static [u8], error: Option<&str>) -> TaskInfo {
        TaskInfo {
            id: TaskId(7),
            name: "echo".into(),
            queue: "default".into(),
            state,
            attempt: 1,
            max_retries: 0,
            result: Bytes::from_static(result),
            error: error.map(str::to_owned),
            created_unix_ms: 1,
            updated_unix_ms: 2,
        }
    }

    #[test]
    fn task_lines_carry_id_lowercase_state_parsed_result_and_error() {
        let line = task_line(&info(TaskState::Succeeded, br#"{"n": 2}"#, None));
        assert_eq!(
            line.to_string(),
            r#"{"attempt":1,"error":null,"id":7,"name":"echo","queue":"default","result":{"n":2},"state":"succeeded"}"#
        );
        let line = task_line(&info(TaskState::Dead, b"", Some("boom")));
        assert_eq!(
            (&line["state"], &line["result"], &line["error"]),
            (&json!("dead"), &Value::Null, &json!("boom"))
        );
        let line = task_line(&info(TaskState::Succeeded, b"not json", None));
        assert_eq!(line["result"], json!("not json"));
        let line = task_line(&info(TaskState::NotFound, b"", None));
        assert_eq!(line["state"], "not_found");
    }

    #[test]
    fn submitted_and_unreported_lines() {
        let s = Submitted {
            id: TaskId(3),
            duplicate: false,
        };
        assert_eq!(
            submitted_line(&s, "pending").to_string(),
            r#"{"duplicate":false,"id":3,"state":"pending"}"#
        );
        let line = unreported_line(TaskId(4), "timed_out", "timed out");
        assert_eq!(
            line.to_string(),
            r#"{"error":"timed out","id":4,"result":null,"state":"timed_out"}"#
        );
    }

    #[test]
    fn task_names_table() {
        use flotilla_client::{ConnectedWorker, Declarer, TaskCatalogue, TaskName};
        let d = |who: &str, queue: &str| Declarer {
            declarer: who.into(),
            queue: queue.into(),
        };
        let text = task_names_human(&TaskCatalogue {
            names: vec![TaskName {
                name: "tasks.add".into(),
                default_queue: "math".into(),
                declarers: vec![d("py-1", "math"), d("node:1", "default")],
                held: 2,
                workers: vec![ConnectedWorker {
                    node_id: 3,
                    name: "py-1".into(),
                    queues: vec!["math".into(), "default".into()],
                    concurrency: 8,
                }],
            }],
            unreachable_nodes: vec![2],
        });
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("tasks.add "), "{text}");
        assert!(row.ends_with("  py-1=math, node:1=default"), "{text}");
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "    worker py-1 on node 3 (concurrency 8, queues math,default)"
        );
        assert!(text.contains("nodes 2 did not answer"), "{text}");
        assert!(task_names_human(&TaskCatalogue::default()).contains("(no task names declared)"));
    }

    #[test]
    fn human_text() {
        let t = task_human(&info(TaskState::Dead, b"", Some("boom")));
        assert_eq!(t, r#"task 7 dead name=echo queue=default attempt=1 error="boom""#);
        assert_eq!(
            throughput(1000, Duration::from_millis(500)),
            "1000 tasks in 0.50 s (2000 tasks/s)"
        );
        let stats = stats_human(&[QueueStats {
            queue: "q".into(),
            pending: 4,
            paused: true,
            ..Default::default()
        }]);
        assert!(stats.lines().nth(1).unwrap().starts_with("q "), "{stats}");
        assert!(stats.ends_with("(paused)\n"));
        let status = ClusterStatus {
            node_id: 2,
            leader_id: None,
            term: 1,
            commit_index: 5,
            applied_index: 5,
            snapshot_index: 0,
            purged_index: 0,
            voter_sets: vec![vec![2]],
            members: vec![Member {
                id: 2,
                addr: "h:1".into(),
                role: "follower".into(),
                zone: None,
                lag: None,
            }],
        };
        let text = status_human(&status);
        assert!(text.starts_with("node 2 leader none term 1"), "{text}");
        assert!(text.lines().nth(2).unwrap().contains("follower"), "{text}");
        let joint = ClusterStatus {
            voter_sets: vec![vec![1, 2, 3], vec![1, 3]],
            ..status
        };
        let text = status_human(&joint);
        assert!(
            text.starts_with("membership change in progress: voters [1, 2, 3] -> [1, 3]"),
            "{text}"
        );
    }
}
