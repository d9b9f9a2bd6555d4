//! `flotilla`: submit tasks to a Flotilla cluster, wait for results, and inspect the cluster.
//!
//! - `cli`: the clap definitions.
//! - `certs`: `flotilla certs`, the TLS quick start.
//! - `ops`: operating tasks: `list`, `get`'s detail, `retry`, `cancel --terminate`, `purge`.
//! - `output`: JSON lines and human text (pure functions).
//! - `schedule`: `flotilla schedule ...`, periodic schedules.
//!
//! Exit status: 0 on success; 1 when a call failed (message on stderr) or a waited-for task did
//! not succeed; 2 for usage errors.

mod attempts;
mod certs;
mod cli;
mod events;
mod limit;
mod ops;
mod output;
mod schedule;
mod workflow;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use flotilla_client::{Client, ClientError, ClientTls, RetryPolicy, TaskId, TaskInfo, TaskState};
use futures::StreamExt;
use serde_json::Value;

use cli::{Cli, ClusterAction, Command, GetArgs, SubmitArgs, TasksAction, TokenAction};

/// Up to this many tasks, a human-readable submit prints every id.
const LIST_IDS_UP_TO: usize = 20;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(Outcome::AllSucceeded) => ExitCode::SUCCESS,
        Ok(Outcome::SomeFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("flotilla: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether every task the command waited for succeeded (true when it waited for none).
pub(crate) enum Outcome {
    AllSucceeded,
    SomeFailed,
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let policy = RetryPolicy {
        max_elapsed: Duration::from_secs(cli.retry_s),
        ..RetryPolicy::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let command = match cli.command {
        Command::Certs { action } => {
            certs::run(action, &mut out)?;
            out.flush()?;
            return Ok(Outcome::AllSucceeded);
        }
        command => command,
    };
    let mut builder = Client::builder(cli.nodes.iter().map(|n| n.trim().to_owned())).retry_policy(policy);
    if let Some(ca) = &cli.tls_ca {
        let cert_and_key = cli.tls_cert.as_deref().zip(cli.tls_key.as_deref());
        builder = builder.tls(ClientTls::load(ca, cert_and_key).context("cannot load the TLS files")?);
    }
    if let Some(token) = cli.token.as_deref().filter(|t| !t.is_empty()) {
        builder = builder.token(token)?;
    }
    let client = builder.build().await.context("cannot set up the client")?;
    let outcome = match command {
        Command::Certs { .. } => unreachable!("handled above"),
        Command::Submit(args) => submit(&client, args, &mut out).await?,
        Command::Get(args) => get(&client, args, &mut out).await?,
        Command::Cancel {
            ids,
            terminate,
            reason,
            json,
        } => {
            ops::cancel(&client, ids, terminate, reason, json, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::List(args) => {
            ops::list(&client, args, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Retry(args) => {
            ops::retry(&client, args, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Pause { queue } => {
            client.pause_queue(&queue).await.context("pause failed")?;
            writeln!(out, "queue {queue} paused")?;
            Outcome::AllSucceeded
        }
        Command::Resume { queue } => {
            client.resume_queue(&queue).await.context("resume failed")?;
            writeln!(out, "queue {queue} resumed")?;
            Outcome::AllSucceeded
        }
        Command::Purge { queue, yes, json } => {
            ops::purge(&client, &queue, yes, json, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Stats { json } => {
            let stats = client.stats().await.context("stats failed")?;
            // The limits with the tasks each holds back (docs/LIMITS.md); a node of a build
            // before limits (UNIMPLEMENTED) has none to show, and its stats still do.
            let limits = match client.limits().await {
                Err(ClientError::Server {
                    code: tonic::Code::Unimplemented,
                    ..
                }) => Vec::new(),
                other => other.context("stats failed")?,
            };
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "queues": stats, "limits": limits })
                )?;
            } else {
                write!(out, "{}", output::stats_human(&stats))?;
                if !limits.is_empty() {
                    write!(out, "\n{}", limit::list_human(&limits))?;
                }
            }
            Outcome::AllSucceeded
        }
        Command::Cluster {
            action: ClusterAction::Remove { id },
        } => {
            let members = client.remove_node(id).await.context("cluster remove failed")?;
            writeln!(out, "removed node {id}; members now {members:?}")?;
            Outcome::AllSucceeded
        }
        Command::Token { action } => {
            token(&client, action, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Tasks { json, action } => {
            tasks(&client, json, action, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Schedule { action } => {
            schedule::run(&client, action, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Limit { action } => {
            limit::run(&client, action, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Events(args) => {
            events::run(&client, args, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Workflow { action } => workflow::run(&client, action, &mut out).await?,
        Command::Status { json } => {
            let status = client.status().await.context("status failed")?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&status)?)?;
            } else {
                write!(out, "{}", output::status_human(&status))?;
            }
            Outcome::AllSucceeded
        }
    };
    out.flush()?;
    Ok(outcome)
}

async fn tasks(
    client: &Client,
    json: bool,
    action: Option<TasksAction>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        None => {
            let catalogue = client.task_catalogue().await.context("tasks failed")?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "tasks": catalogue.names,
                        "unreachable_nodes": catalogue.unreachable_nodes,
                    })
                )?;
            } else {
                write!(out, "{}", output::task_names_human(&catalogue))?;
            }
        }
        Some(TasksAction::Declare {
            names,
            queue,
            declarer,
        }) => {
            let recorded = client
                .declare_task_names(&declarer, &queue, &names)
                .await
                .context("tasks declare failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "recorded": recorded }))?;
            } else {
                writeln!(
                    out,
                    "{} names declared by {declarer} on queue {queue} ({recorded} new)",
                    names.len()
                )?;
            }
        }
    }
    Ok(())
}

async fn token(client: &Client, action: TokenAction, out: &mut impl Write) -> anyhow::Result<()> {
    match action {
        TokenAction::Create {
            role,
            ttl,
            label,
            json,
        } => {
            let (id, token) = client
                .create_token(role, &label, ttl)
                .await
                .context("token create failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({"id": id, "token": token}))?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!(
                    "token {id} ({}): shown once; the cluster keeps only its hash",
                    role.name()
                );
            }
        }
        TokenAction::List { json } => {
            let tokens = client.list_tokens().await.context("token list failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "tokens": tokens }))?;
            } else {
                write!(out, "{}", output::tokens_human(&tokens))?;
            }
        }
        TokenAction::Revoke { id } => {
            if client.revoke_token(id).await.context("token revoke failed")? {
                writeln!(out, "token {id} revoked")?;
            } else {
                anyhow::bail!("no token {id}");
            }
        }
    }
    Ok(())
}

async fn submit(client: &Client, args: SubmitArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
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

async fn get(client: &Client, args: GetArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
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

/// Counts of how the waited-for tasks ended.
#[derive(Default)]
struct WaitReport {
    succeeded: u64,
    failed: u64,
    unreported: u64,
    error: Option<String>,
}

impl WaitReport {
    fn outcome(&self) -> Outcome {
        if self.failed == 0 && self.unreported == 0 {
            Outcome::AllSucceeded
        } else {
            Outcome::SomeFailed
        }
    }

    fn summary(&self) -> String {
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
async fn wait_and_print(
    client: &Client,
    ids: &[TaskId],
    timeout: Duration,
    verbose: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<WaitReport> {
    let mut unreported: BTreeSet<TaskId> = ids.iter().copied().collect();
    let mut report = WaitReport::default();
    // Print what is ready, then flush: lines appear as results arrive, without a write per line.
    let mut results = std::pin::pin!(client.wait_many(ids.iter().copied(), timeout).ready_chunks(1024));
    while let Some(batch) = results.next().await {
        for item in batch {
            match item {
                Ok(info) => {
                    if !unreported.remove(&info.id) {
                        continue;
                    }
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
                        eprintln!("flotilla: error: wait failed: {e}");
                    }
                    report.error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        out.flush()?;
    }
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
