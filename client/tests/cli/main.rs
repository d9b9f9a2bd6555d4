//! The `flotilla` binary end to end, against the in-process fake node on loopback.

#[allow(dead_code)]
#[path = "../fake_node/fake.rs"]
mod fake;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Output;

use fake::{Fake, refused_addr};
use serde_json::{Value, json};
use tokio::process::Command;

async fn flotilla(nodes: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .env("FLOTILLA_NODES", nodes.to_string())
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run flotilla")
}

/// `flotilla submit NAME --count N`: the ids it printed, one a line.
async fn submit_ids(nodes: SocketAddr, name: &str, count: u32) -> Vec<String> {
    let out = flotilla(nodes, &["submit", name, "--count", &count.to_string()]).await;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect()
}

#[tokio::test]
async fn submit_wait_json_prints_each_task_once_with_its_result() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let out = flotilla(
        addr,
        &[
            "submit",
            "echo",
            "--args",
            r#"{"k": 1}"#,
            "--count",
            "5",
            "--wait",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let ids: BTreeSet<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!((lines.len(), ids.len()), (5, 5));
    for l in &lines {
        assert_eq!(
            (&l["state"], &l["result"], &l["error"]),
            (&json!("succeeded"), &json!({"k": 1}), &Value::Null)
        );
    }
    assert_eq!(fake.task_count(), 5);
}

#[tokio::test]
async fn failed_or_unfinished_tasks_exit_1() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let out = flotilla(addr, &["submit", "fail", "--count", "2", "--wait", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_lines(&out)
            .iter()
            .all(|l| l["state"] == "dead" && l["error"] == "boom")
    );

    let out = flotilla(addr, &["submit", "noop", "--wait", "--timeout-s", "1", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["state"], "timed_out");

    let out = flotilla(addr, &["submit", "noop", "--count", "3", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(json_lines(&out).iter().all(|l| l["state"] == "pending"));
}

#[tokio::test]
async fn human_output_for_many_tasks_is_a_summary() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let out = flotilla(addr, &["submit", "echo", "--count", "2500", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("submitted 2500 tasks in"), "{text}");
    assert!(text.contains("succeeded 2500, not succeeded 0"), "{text}");
    assert_eq!(fake.submit_sizes(), [1000, 1000, 500]);
}

#[tokio::test]
async fn get_cancel_stats_and_status() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let ids = submit_ids(addr, "noop", 2).await;
    assert_eq!(ids.len(), 2);
    let out = flotilla(addr, &["get", &ids[0], "--json"]).await;
    assert_eq!(json_lines(&out)[0]["state"], "pending");
    let out = flotilla(addr, &["cancel", &ids[0], "--json"]).await;
    assert_eq!(json_lines(&out)[0]["cancelled"], true);
    let out = flotilla(addr, &["get", &ids[0], "--wait", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "a cancelled task did not succeed");
    let out = flotilla(addr, &["stats", "--json"]).await;
    assert_eq!(json_lines(&out)[0]["queues"][0]["cancelled"], 1);
    let out = flotilla(addr, &["status", "--json"]).await;
    let status = &json_lines(&out)[0];
    assert_eq!(
        (&status["leader_id"], &status["members"][1]["role"]),
        (&json!(1), &json!("follower"))
    );
    let out = flotilla(addr, &["get", "999"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("task 999 not found"));
}

#[tokio::test]
async fn server_and_connection_errors_are_clear_and_exit_1() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let out = flotilla(addr, &["submit", "unknown.thing"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid argument: unknown task name `unknown.thing`"),
        "{stderr}"
    );

    let dead = refused_addr().await;
    let out = flotilla(dead, &["status", "--retry-s", "1"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cluster unavailable") && stderr.contains(&dead.to_string()),
        "{stderr}"
    );

    let out = flotilla(addr, &["submit", "echo", "--args", "{bad"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn args_from_a_file_and_from_stdin() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.json");
    let big = "x".repeat(200_000);
    std::fs::write(&file, serde_json::to_vec(&json!({ "big": big })).unwrap()).unwrap();
    let at_file = format!("@{}", file.display());
    let out = flotilla(addr, &["submit", "echo", "--args", &at_file, "--wait", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json_lines(&out)[0]["result"]["big"].as_str().map(str::len),
        Some(200_000)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["submit", "echo", "--args", "-", "--wait", "--json"])
        .env("FLOTILLA_NODES", addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(br#"{"from": "stdin"}"#).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(json_lines(&out)[0]["result"], json!({"from": "stdin"}));

    let missing = format!("@{}", dir.path().join("nope.json").display());
    let out = flotilla(addr, &["submit", "echo", "--args", &missing]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read --args file"));
}

#[tokio::test]
async fn workers_prints_one_json_object_or_a_table_naming_the_silent_node() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let out = flotilla(addr, &["workers", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "one object");
    let w = &lines[0];
    assert_eq!(w["unreachable_nodes"], json!([3]));
    let first = &w["workers"][0];
    for field in [
        "node_id",
        "name",
        "kind",
        "queues",
        "concurrency",
        "busy",
        "leased",
        "standing",
        "connected_ms_ago",
        "last_seen_ms_ago",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(
        (&first["kind"], &w["workers"][1]["kind"], &w["workers"][2]["kind"]),
        (&json!("pool"), &json!("remote"), &json!("unknown"))
    );
    let out = flotilla(addr, &["workers"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("py-1") && text.contains("remote"), "{text}");
    assert!(text.contains("node 3 did not answer"), "{text}");
}

#[tokio::test]
async fn wait_prints_each_task_as_it_finishes_and_exits_1_unless_all_succeeded() {
    let fake = Fake::default();
    let addr = fake.serve().await;
    let ids = submit_ids(addr, "echo", 3).await;
    let mut args = vec!["wait", "--json"];
    args.extend(ids.iter().map(String::as_str));
    let out = flotilla(addr, &args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["state"] == "succeeded"), "{lines:?}");
    assert!(out.stderr.is_empty(), "no progress bar off a terminal");
    let out = flotilla(addr, &["wait", "999", "--timeout-s", "5"]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = flotilla(addr, &["wait"]).await;
    assert_eq!(out.status.code(), Some(2), "ids are required");
}

#[tokio::test]
async fn completions_are_printed_for_each_shell_without_a_cluster() {
    let nowhere = refused_addr().await;
    let out = flotilla(nowhere, &["completions", "bash"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("_flotilla"), "a bash function");
    for sub in ["submit", "workers", "completions", "retry", "events", "schedule"] {
        assert!(script.contains(sub), "{sub} missing from the bash script");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = flotilla(nowhere, &["completions", shell]).await;
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let out = flotilla(nowhere, &["completions", "tcsh"]).await;
    assert_eq!(out.status.code(), Some(2));
}
