//! The command line: clap definitions only, so parsing is testable without a cluster.
//!
//! - this file: [`Cli`] (the global options) and [`Command`] (the subcommands);
//! - `args`: the arguments of the task commands (submit, get, list, retry, events) and their
//!   parsers (`--args`, durations);
//! - `actions`: the subcommands of token, tasks, limit, schedule, certs and cluster.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod actions;
mod args;
#[cfg(test)]
mod tests;

pub use crate::workflow::WorkflowAction;
pub use actions::*;
pub use args::*;

/// Submit tasks to a Flotilla cluster, wait for their results, and inspect the cluster.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version)]
pub struct Cli {
    /// Node addresses (host:port), comma-separated; any node serves any call.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:7000"
    )]
    pub nodes: Vec<String>,

    /// Give up on an unreachable cluster after this many seconds of retries.
    #[arg(long, global = true, default_value_t = 10)]
    pub retry_s: u64,

    /// Talk TLS to the nodes (started with --tls-*), trusting this CA certificate (PEM).
    #[arg(long, global = true, env = "FLOTILLA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// With --tls-ca: also show this client certificate (PEM) to the nodes.
    #[arg(long, global = true, env = "FLOTILLA_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "FLOTILLA_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,

    /// The token to present (`authorization: Bearer`): needed by nodes that are not on
    /// loopback. An admin token is in the founding node's data directory (admin.token).
    #[arg(long, global = true, env = "FLOTILLA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit COUNT tasks NAME with the same arguments (batched and pipelined).
    Submit(SubmitArgs),
    /// Show one task: its state, attempts, holder, last error, progress, args and headers
    /// (or wait until it is final).
    Get(GetArgs),
    /// Wait until tasks are final, printing each as it finishes; exit 1 if any did not
    /// succeed (or is not final by --timeout-s).
    Wait(WaitArgs),
    /// Find tasks: filtered by queue, state, name and age, newest first, a page at a time.
    List(ListArgs),
    /// Cancel tasks that have not started; with --terminate, running ones too (needs an
    /// admin token): the worker running one aborts it.
    Cancel {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Also cancel running tasks: their worker is told to abort, their result is dropped.
        #[arg(long)]
        terminate: bool,
        /// With --terminate: kept as the tasks' error [default: "revoked by an operator"].
        #[arg(long, requires = "terminate")]
        reason: Option<String>,
        /// Print one JSON object per id.
        #[arg(long)]
        json: bool,
    },
    /// Requeue dead tasks (or cancelled ones) with a fresh retry budget (needs an admin
    /// token): by ids, or every task a filter matches.
    Retry(RetryArgs),
    /// Stop leasing from a queue (needs an admin token): its tasks wait, running ones finish.
    Pause {
        /// The queue.
        queue: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lease from a paused queue again (needs an admin token).
    Resume {
        /// The queue.
        queue: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel every scheduled, pending and retrying task of a queue (needs an admin token);
    /// running tasks finish.
    Purge {
        /// The queue.
        queue: String,
        /// Do it without asking.
        #[arg(long)]
        yes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Task counts per queue.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cluster members, roles and the leader.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the cluster's membership.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Make a CA and the certificates of nodes and clients, for TLS (no cluster needed).
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Create, list and revoke API tokens (needs an admin token).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Periodic schedules: add, list (with next run times), pause, resume, remove.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// Flow-control limits: set, list (with running and held-back tasks), remove.
    Limit {
        #[command(subcommand)]
        action: LimitAction,
    },
    /// Follow the events stream: tasks submitted, started, progress, succeeded, retried,
    /// released, dead, cancelled; pools online and offline; leader changes. Until Ctrl-C,
    /// or --count events.
    Events(EventsArgs),
    /// Workflows (chain, group, chord): submit one from JSON, read one as one object.
    Workflow {
        #[command(subcommand)]
        action: WorkflowAction,
    },
    /// Every pool and remote worker of the cluster: node, kind, queues, concurrency, busy,
    /// tasks leased, connected since and last seen. Any node answers for all; a member that
    /// does not answer within 2 s is named as unreachable.
    Workers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for SHELL on stdout, e.g. `flotilla completions bash >
    /// /etc/bash_completion.d/flotilla` (no cluster needed).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The task names submits may use: each with its default queue and who declared it.
    Tasks {
        /// Print JSON (after `declare` too).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: Option<TasksAction>,
    },
}
