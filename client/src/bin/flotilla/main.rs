//! `flotilla`: submit tasks to a Flotilla cluster, wait for results, and inspect the cluster.
//!
//! - `main` (this file): the global options, building the client, and the dispatch of each
//!   subcommand to its module.
//! - `cli`: the clap definitions (`cli/args.rs`: task commands; `cli/actions.rs`: the
//!   subcommands of token, tasks, limit, schedule, certs, cluster).
//! - `wait`: `submit`, `wait` and `get --wait`: waiting for many results, printing each as it
//!   arrives.
//! - `progress`: progress bars on long waits (a terminal only, never with `--json`).
//! - `admin`: `tasks` (the catalogue) and `token`.
//! - `certs`: `flotilla certs`, the TLS quick start.
//! - `ops`: operating tasks: `list`, `get`'s detail, `retry`, `cancel --terminate`, `purge`.
//! - `events`: `flotilla events`, following the events stream.
//! - `limit`: `flotilla limit ...`, flow-control limits.
//! - `workflow`: `flotilla workflow ...`.
//! - `workers`: `flotilla workers`' table.
//! - `output`: JSON lines and human text (pure functions).
//! - `schedule`: `flotilla schedule ...`, periodic schedules.
//!
//! Exit status: 0 on success; 1 when a call failed (message on stderr) or a waited-for task did
//! not succeed; 2 for usage errors.

mod admin;
mod attempts;
mod certs;
mod cli;
mod events;
mod limit;
mod ops;
mod output;
mod progress;
mod schedule;
mod wait;
mod workers;
mod workflow;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use flotilla_client::{Client, ClientError, ClientTls, RetryPolicy};

use cli::{Cli, ClusterAction, Command};

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
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "flotilla", &mut out);
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
        Command::Certs { .. } | Command::Completions { .. } => unreachable!("handled above"),
        Command::Submit(args) => wait::submit(&client, args, &mut out).await?,
        Command::Get(args) => wait::get(&client, args, &mut out).await?,
        Command::Wait(args) => wait::wait(&client, args, &mut out).await?,
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
        Command::Pause { queue, json } => {
            client.pause_queue(&queue).await.context("pause failed")?;
            let value = serde_json::json!({ "queue": queue, "paused": true });
            output::ack(&mut out, json, &format!("queue {queue} paused"), value)?;
            Outcome::AllSucceeded
        }
        Command::Resume { queue, json } => {
            client.resume_queue(&queue).await.context("resume failed")?;
            let value = serde_json::json!({ "queue": queue, "paused": false });
            output::ack(&mut out, json, &format!("queue {queue} resumed"), value)?;
            Outcome::AllSucceeded
        }
        Command::Workers { json } => {
            let workers = client.workers().await.context("workers failed")?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&workers)?)?;
            } else {
                write!(out, "{}", workers::human(&workers))?;
            }
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
            action: ClusterAction::Remove { id, json },
        } => {
            let members = client.remove_node(id).await.context("cluster remove failed")?;
            let value = serde_json::json!({ "removed": id, "members": members });
            output::ack(
                &mut out,
                json,
                &format!("removed node {id}; members now {members:?}"),
                value,
            )?;
            Outcome::AllSucceeded
        }
        Command::Token { action } => {
            admin::token(&client, action, &mut out).await?;
            Outcome::AllSucceeded
        }
        Command::Tasks { json, action } => {
            admin::tasks(&client, json, action, &mut out).await?;
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
