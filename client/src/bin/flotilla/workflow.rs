//! `flotilla workflow submit|get`: workflows (docs/WORKFLOWS.md). A canvas is given as JSON
//! (`{"chain": [...]}`, `{"group": [...]}`, `{"chord": {"header": ..., "body": ...}}`, a task
//! `{"task": NAME, "args": JSON}`) and a workflow prints as one object.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use flotilla_client::workflow::{Canvas, WorkflowInfo};
use flotilla_client::{Client, TaskId};
use serde_json::{Value, json};

use crate::Outcome;
use crate::output;
use crate::progress::Progress;

/// Carry out one `workflow` action; a workflow that failed is [`Outcome::SomeFailed`].
pub async fn run(client: &Client, action: WorkflowAction, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let (info, json, wait) = match action {
        WorkflowAction::Submit {
            canvas,
            on_error,
            show: WorkflowShow { wait, timeout, json },
        } => {
            let value: Value = serde_json::from_str(&canvas).context("the canvas is not JSON")?;
            let canvas = canvas_of(client, &value, 1)?;
            let on_error = on_error.map(|name| client.task(name));
            let w = client
                .submit_workflow(canvas, on_error)
                .await
                .context("workflow submit failed")?;
            if !wait {
                let ids: Vec<u64> = w.task_ids.iter().map(|t| t.0).collect();
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"id": w.id, "tasks": ids, "duplicate": w.duplicate})
                    )?;
                } else {
                    writeln!(out, "workflow {} tasks {:?}", w.id, ids)?;
                }
                return Ok(Outcome::AllSucceeded);
            }
            let progress = Progress::spinner(&format!("waiting for workflow {}", w.id), json);
            let info = client.wait_workflow(w.id, Duration::from_secs(timeout)).await;
            drop(progress);
            (info.context("workflow wait failed")?, json, true)
        }
        WorkflowAction::Get {
            id,
            task,
            show: WorkflowShow { wait, timeout, json },
        } => {
            let info = if task {
                client.workflow_of_task(TaskId(id)).await
            } else {
                client.workflow(id).await
            }
            .context("workflow get failed")?;
            let info = if wait {
                let _progress = Progress::spinner(&format!("waiting for workflow {}", info.id), json);
                client
                    .wait_workflow(info.id, Duration::from_secs(timeout))
                    .await
                    .context("workflow wait failed")?
            } else {
                info
            };
            (info, json, wait)
        }
    };
    if json {
        writeln!(out, "{}", workflow_json(&info))?;
    } else {
        write!(out, "{}", workflow_human(&info))?;
    }
    let failed = info.state == flotilla_client::WorkflowState::Failed;
    Ok(if wait && failed {
        Outcome::SomeFailed
    } else {
        Outcome::AllSucceeded
    })
}

/// The canvas a JSON value describes.
pub fn canvas_of(client: &Client, v: &Value, depth: usize) -> anyhow::Result<Canvas> {
    if depth > 32 {
        bail!("canvases nest deeper than 32");
    }
    let items = |v: &Value| -> anyhow::Result<Vec<Canvas>> {
        v.as_array()
            .context("a chain or group is a list")?
            .iter()
            .map(|i| canvas_of(client, i, depth + 1))
            .collect()
    };
    if let Some(v) = v.get("chain") {
        return Ok(Canvas::Chain(items(v)?));
    }
    if let Some(v) = v.get("group") {
        return Ok(Canvas::Group(items(v)?));
    }
    if let Some(c) = v.get("chord") {
        let part = |k: &str| -> anyhow::Result<Canvas> {
            canvas_of(
                client,
                c.get(k).with_context(|| format!("a chord needs a {k}"))?,
                depth + 1,
            )
        };
        return Ok(Canvas::Chord(Box::new(part("header")?), Box::new(part("body")?)));
    }
    let Some(name) = v.get("task").and_then(Value::as_str) else {
        bail!(
            "a canvas node is {{\"task\": NAME}}, {{\"chain\": [..]}}, {{\"group\": [..]}} or {{\"chord\": {{..}}}}: {v}"
        );
    };
    let mut task = client.task(name);
    if let Some(args) = v.get("args") {
        task = task.args(args)?;
    }
    if let Some(q) = v.get("queue").and_then(Value::as_str) {
        task = task.queue(q);
    }
    let parents = v
        .get("parents")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(Value::as_u64).map(TaskId).collect())
        .unwrap_or_default();
    Ok(Canvas::Task {
        task: Box::new(task),
        parents,
        immutable: v.get("immutable").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The workflow as one JSON object.
pub fn workflow_json(w: &WorkflowInfo) -> Value {
    let result: Value = serde_json::from_slice(&w.result).unwrap_or(Value::Null);
    let state = serde_json::to_value(w.state).unwrap_or(Value::Null);
    let tasks: Vec<Value> = w
        .tasks
        .iter()
        .map(|t| {
            let mut line = match &t.task {
                Some(info) => output::task_line(info),
                None => json!({"id": t.id.0, "state": "purged"}),
            };
            line["waiting"] = json!(t.waiting);
            line["parents"] = json!(t.parents.iter().map(|p| p.0).collect::<Vec<_>>());
            line["errback"] = json!(t.errback);
            line
        })
        .collect();
    json!({"id": w.id, "state": state, "result": result, "error": w.error, "tasks": tasks})
}

/// The workflow as text: a summary line, then a line per task.
pub fn workflow_human(w: &WorkflowInfo) -> String {
    let state = serde_json::to_value(w.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut s = format!("workflow {} {state}", w.id);
    if !w.result.is_empty() {
        s.push_str(&format!(" result={}", String::from_utf8_lossy(&w.result)));
    }
    if let Some(e) = &w.error {
        s.push_str(&format!(" error={e:?}"));
    }
    s.push('\n');
    for t in &w.tasks {
        let line = match &t.task {
            Some(info) if t.waiting => format!("task {} waiting name={}", info.id, info.name),
            Some(info) => output::task_human(info),
            None => format!("task {} purged", t.id),
        };
        let parents: Vec<String> = t.parents.iter().map(|p| p.0.to_string()).collect();
        let after = if parents.is_empty() {
            String::new()
        } else {
            format!(" after={}", parents.join(","))
        };
        let errback = if t.errback { " errback" } else { "" };
        s.push_str(&format!("  {line}{after}{errback}\n"));
    }
    s
}

#[derive(Debug, Subcommand)]
pub enum WorkflowAction {
    /// Submit a canvas given as JSON (docs/WORKFLOWS.md): a task is `{"task": NAME, "args":
    /// JSON, "queue": Q, "parents": [IDS], "immutable": BOOL}`, and `{"chain": [..]}`,
    /// `{"group": [..]}`, `{"chord": {"header": .., "body": ..}}` nest freely.
    Submit {
        /// The canvas, as JSON.
        canvas: String,
        /// An error callback task: runs once if any task ends dead or cancelled.
        #[arg(long)]
        on_error: Option<String>,
        #[command(flatten)]
        show: WorkflowShow,
    },
    /// A workflow's state, result and tasks (by its id, or by one of its tasks with --task).
    Get {
        /// The workflow's id (or a task's, with --task).
        id: u64,
        /// ID is one of the workflow's tasks.
        #[arg(long)]
        task: bool,
        #[command(flatten)]
        show: WorkflowShow,
    },
}

/// How `workflow submit|get` waits and prints.
#[derive(Debug, clap::Args)]
pub struct WorkflowShow {
    /// Wait until every task is final, then print the workflow.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
