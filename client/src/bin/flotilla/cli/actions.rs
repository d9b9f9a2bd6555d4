//! The subcommands of `token`, `tasks`, `limit`, `schedule`, `certs` and `cluster`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use flotilla_tls::generate::{CA_DAYS, LEAF_DAYS};

use super::args::{ArgsSource, parse_args, parse_duration};

#[derive(Debug, Subcommand)]
pub enum TasksAction {
    /// Declare task names (needs an admin token), so submits of them are accepted before a
    /// worker running them connects.
    Declare {
        /// The task names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Their default queue (where a submit naming no queue goes).
        #[arg(long, default_value = "default")]
        queue: String,
        /// Who declares them, as `flotilla tasks` shows it.
        #[arg(long, default_value = "operator")]
        declarer: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LimitAction {
    /// Set (or replace) a limit (needs an admin token). SCOPE is queue:NAME, task:NAME,
    /// key:KEY or key:* (every concurrency key without a limit of its own).
    Set {
        /// What the limit applies to.
        scope: String,
        /// A token bucket: N/s, N/m, N/h or N/d.
        #[arg(long)]
        rate: Option<String>,
        /// Most tasks of the scope running (leased) at once.
        #[arg(long)]
        concurrency: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every limit, with the tasks it covers running and the pending tasks it holds back.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a limit; the tasks it held back may run at once.
    Remove {
        /// The limit's scope, as set.
        scope: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Add a schedule (needs an admin token): NAME enqueues TASK at every time of --cron (in
    /// --tz) or --every. Adding it again with the same options changes nothing.
    Add(ScheduleAddArgs),
    /// Every schedule: its cadence, task, state and next run times.
    List {
        /// How many next run times to show per schedule.
        #[arg(long, default_value_t = 1)]
        next: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a schedule: slots that pass while paused do not run.
    Pause {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused schedule from its next slot after now.
    Resume {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule; the tasks it enqueued stay.
    Remove {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleAddArgs {
    /// The schedule's name (unique).
    pub name: String,
    /// The task to enqueue, e.g. "echo".
    pub task: String,
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with
    /// seconds first, or a nickname such as @daily.
    #[arg(long, required_unless_present = "every", conflicts_with = "every")]
    pub cron: Option<String>,
    /// The IANA time zone --cron is read in, e.g. Europe/Berlin [default: UTC].
    #[arg(long, conflicts_with = "every")]
    pub tz: Option<String>,
    /// Or: every so long (a number and a unit: s, m, h, d), from now.
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Slots missed by more than --grace (an outage): skip them, or run them once.
    #[arg(long, default_value = "skip")]
    pub catch_up: flotilla_client::CatchUp,
    /// How late a slot may run and still count as on time (1s to 1h) [default: 1m].
    #[arg(long, value_parser = parse_duration)]
    pub grace: Option<std::time::Duration>,
    /// The task's arguments as a JSON document; `@FILE` reads it from a file, `-` from stdin.
    #[arg(long, value_parser = parse_args, default_value = "null")]
    pub args: ArgsSource,
    /// The task's queue (default: the task name's default queue).
    #[arg(long)]
    pub queue: Option<String>,
    /// The task's retries after a failed attempt.
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Replace a schedule of this name that has other options.
    #[arg(long)]
    pub replace: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// A new CA: DIR/ca.pem (give it to every node and client) and DIR/ca.key (keep it apart).
    Ca {
        /// Directory to write to (created; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Lifetime, in days.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A node's certificate, naming its cluster and the names it is reached by:
    /// DIR/node.pem, DIR/node.key and a copy of the CA's ca.pem.
    Node {
        /// Directory of the CA (ca.pem, ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// The cluster's name (1-64 of A-Z a-z 0-9 - _ .): only nodes of the same cluster talk.
        #[arg(long)]
        cluster: String,
        /// Host names and IP addresses the node is reached by (its --advertise and the
        /// addresses others --join), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        name: Vec<String>,
        /// Directory to write to (created; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Lifetime, in days.
        #[arg(long, default_value_t = LEAF_DAYS)]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A client certificate (only where nodes should see one; tokens authorize clients):
    /// DIR/client.pem, DIR/client.key and a copy of the CA's ca.pem.
    Client {
        /// Directory of the CA (ca.pem, ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// The client's name (1-64 of A-Z a-z 0-9 - _ .).
        #[arg(long, default_value = "client")]
        name: String,
        /// Directory to write to (created; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Lifetime, in days.
        #[arg(long, default_value_t = LEAF_DAYS)]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print its secret (shown once: the cluster keeps only its hash).
    Create {
        /// What it may do: submit (submit and read), worker, admin, or join (add a node).
        #[arg(long)]
        role: flotilla_client::TokenRole,
        /// It expires this long after its creation: a number and a unit (s, m, h, d), e.g.
        /// 30m or 7d [default: never].
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// A note shown by `token list`.
        #[arg(long, default_value = "")]
        label: String,
        /// Print JSON ({"id", "token"}).
        #[arg(long)]
        json: bool,
    },
    /// List tokens: id, role, label, created, expires (never a secret).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it grants nothing from then on.
    Revoke {
        /// The token's id (see `token list`).
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Remove a member (a dead one too); a replacement can then join.
    Remove {
        /// The member's node id (see `flotilla status`).
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
