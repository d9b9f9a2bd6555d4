//! `submit` and `get --wait`: submitting, then waiting for results and printing each as it
//! arrives.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use flotilla_client::{Client, ClientError, TaskId, TaskInfo, TaskState};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::Outcome;
use crate::cli::{GetArgs, SubmitArgs, WaitArgs};
use crate::progress::Progress;
use crate::{ops, output};

/// Up to this many tasks, a human-readable submit prints every id.
const LIST_IDS_UP_TO: usize = 20;

pub(crate) async fn submit(
    client: &Client,
    args: SubmitArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let payload = Bytes::from(serde_json::to_vec(&args.args.read()?)?);
    let count = usize::try_from(args.count).context("--count too large")?;
    let tasks = (0..count)
        .map(|_| {
            let mut task = client
                .task(&args.name)
                .args_json(payload.clone())
                .priority(args.priority);
            if let Some(queue) = &args.queue {
                task = task.queue(queue.clone());
            }
            if let Some(ms) = args.countdown_ms {
                task = task.countdown(Duration::from_millis(ms));
            }
            if let Some(n) = args.max_retries {
                task = task.max_retries(n);
            }
            if let Some(key) = &args.key {
                task = task.concurrency_key(key.clone());
            }
            task
        })
        .collect();
    let started = Instant::now();
    let submitted = client.submit_batch(tasks).await.context("submit failed")?;
    let submit_time = started.elapsed();
    let ids: Vec<TaskId> = submitted.iter().map(|s| s.id).collect();

    if !args.wait {
        if args.json {
            let state = if args.countdown_ms.is_some_and(|ms| ms > 0) {
                "scheduled"
            } else {
                "pending"
            };
            for s in &submitted {
                writeln!(out, "{}", output::submitted_line(s, state))?;
            }
        } else if count <= LIST_IDS_UP_TO {
            for id in &ids {
                writeln!(out, "{id}")?;
            }
        } else {
            writeln!(out, "submitted {}", output::throughput(args.count, submit_time))?;
        }
        return Ok(Outcome::AllSucceeded);
    }

    let verbose = args.json || count <= LIST_IDS_UP_TO;
    let report = wait_and_print(
        client,
        &ids,
        Duration::from_secs(args.timeout_s),
        verbose,
        args.json,
        out,
    )
    .await?;
    if !args.json {
        if count > LIST_IDS_UP_TO {
            writeln!(out, "submitted {}", output::throughput(args.count, submit_time))?;
            writeln!(
                out,
                "finished {}",
                output::throughput(args.count, started.elapsed())
            )?;
        }
        writeln!(out, "{}", report.summary())?;
    }
    Ok(report.outcome())
}

pub(crate) async fn get(client: &Client, args: GetArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if !args.wait {
        ops::get_detail(client, &args, out).await?;
        return Ok(Outcome::AllSucceeded);
    }
    let id = TaskId(args.id);
    let info = if args.wait {
        client.wait(id, Duration::from_secs(args.timeout_s)).await
    } else {
        client.get(id).await
    };
    let info = info.with_context(|| format!("cannot get task {id}"))?;
    if args.json {
        writeln!(out, "{}", output::task_line(&info))?;
    } else {
        writeln!(out, "{}", output::task_human(&info))?;
    }
    let ok = !args.wait || info.state == TaskState::Succeeded;
    Ok(if ok {
        Outcome::AllSucceeded
    } else {
        Outcome::SomeFailed
    })
}

/// `flotilla wait ID...`: each task's line as it finishes, then the summary (human output).
pub(crate) async fn wait(client: &Client, args: WaitArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let ids: Vec<TaskId> = args.ids.iter().copied().map(TaskId).collect();
    let timeout = Duration::from_secs(args.timeout_s);
    let report = wait_and_print(client, &ids, timeout, true, args.json, out).await?;
    if !args.json {
        writeln!(out, "{}", report.summary())?;
    }
    Ok(report.outcome())
}

/// Counts of how the waited-for tasks ended.
#[derive(Default)]
pub(crate) struct WaitReport {
    succeeded: u64,
    failed: u64,
    unreported: u64,
    error: Option<String>,
}

impl WaitReport {
    pub(crate) fn outcome(&self) -> Outcome {
        if self.failed == 0 && self.unreported == 0 {
            Outcome::AllSucceeded
        } else {
            Outcome::SomeFailed
        }
    }

    pub(crate) fn summary(&self) -> String {
        let mut s = format!("succeeded {}, not succeeded {}", self.succeeded, self.failed);
        if self.unreported > 0 {
            s.push_str(&format!(", no result {}", self.unreported));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" ({e})"));
        }
        s
    }
}

/// Waits for `ids`, printing each task's line (when `verbose`) as its result arrives, then a
/// line for each id whose result never came. Each id is printed exactly once.
pub(crate) async fn wait_and_print(
    client: &Client,
    ids: &[TaskId],
    timeout: Duration,
    verbose: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<WaitReport> {
    let mut unreported: BTreeSet<TaskId> = ids.iter().copied().collect();
    let mut report = WaitReport::default();
    let progress = Progress::bar(unreported.len() as u64, "waiting", json);
    // Print what is ready, then flush: lines appear as results arrive, without a write per line.
    let mut results = std::pin::pin!(client.wait_many(ids.iter().copied(), timeout).ready_chunks(1024));
    while let Some(batch) = results.next().await {
        for item in batch {
            match item {
                Ok(info) => {
                    if !unreported.remove(&info.id) {
                        continue;
                    }
                    progress.inc(1);
                    if info.state == TaskState::Succeeded {
                        report.succeeded += 1;
                    } else {
                        report.failed += 1;
                    }
                    if verbose {
                        writeln!(out, "{}", line(&info, json))?;
                    }
                }
                Err(e) => {
                    if !matches!(e, ClientError::Timeout) {
                        progress.suspend(|| eprintln!("flotilla: error: wait failed: {e}"));
                    }
                    report.error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        progress.suspend(|| out.flush())?;
    }
    drop(progress);
    let (state, error) = match &report.error {
        Some(e) if e == &ClientError::Timeout.to_string() => ("timed_out", e.clone()),
        Some(e) => ("unknown", e.clone()),
        None => ("unknown", "the cluster never reported this task".to_owned()),
    };
    for id in &unreported {
        report.unreported += 1;
        if verbose {
            let line: Value = output::unreported_line(*id, state, &error);
            if json {
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "task {id} {state}: {error}")?;
            }
        }
    }
    Ok(report)
}

fn line(info: &TaskInfo, json: bool) -> String {
    if json {
        output::task_line(info).to_string()
    } else {
        output::task_human(info)
    }
}
