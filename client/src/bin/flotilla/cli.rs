//! The command line: clap definitions only, so parsing is testable without a cluster.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::workflow::WorkflowAction;
use flotilla_tls::generate::{CA_DAYS, LEAF_DAYS};

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
    },
    /// Lease from a paused queue again (needs an admin token).
    Resume {
        /// The queue.
        queue: String,
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
    /// The task names submits may use: each with its default queue and who declared it.
    Tasks {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<TasksAction>,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only task events of this queue (repeat for more).
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Only task events of this task name (repeat for more).
    #[arg(long = "task")]
    pub task_names: Vec<String>,
    /// Only events of this kind (repeat for more): submitted, started, progress, succeeded,
    /// retried, released, dead, cancelled, pool_online, pool_offline, leader_changed.
    #[arg(long = "kind")]
    pub kinds: Vec<flotilla_client::events::EventKind>,
    /// Resume from this position (INDEX or INDEX:ORDINAL, as printed); default: from now.
    #[arg(long)]
    pub from: Option<flotilla_client::events::Position>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Print one JSON object per event (one a line).
    #[arg(long)]
    pub json: bool,
}

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
    },
    /// Resume a paused schedule from its next slot after now.
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Remove a schedule; the tasks it enqueued stay.
    Remove {
        /// The schedule's name.
        name: String,
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
    },
}

/// `30s`, `10m`, `24h`, `7d`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30m or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err("a duration must be above 0".into());
    }
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Remove a member (a dead one too); a replacement can then join.
    Remove {
        /// The member's node id (see `flotilla status`).
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Registered task name, e.g. "echo".
    pub name: String,
    /// Arguments as a JSON document; `@FILE` reads it from a file, `-` from stdin (payloads
    /// too long for a command line).
    #[arg(long, value_parser = parse_args, default_value = "null")]
    pub args: ArgsSource,
    /// Queue (default: the cluster's default queue).
    #[arg(long)]
    pub queue: Option<String>,
    /// Priority, 0..=255; higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    /// Run no earlier than this many ms after submitting.
    #[arg(long)]
    pub countdown_ms: Option<u64>,
    /// Retries after the first failed attempt.
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Concurrency key (a tenant id, say): `key:` limits apply, keys take fair turns.
    #[arg(long)]
    pub key: Option<String>,
    /// How many tasks to submit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Wait for every task's result; exit 1 if any did not succeed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Print one JSON object per task per line.
    #[arg(long)]
    pub json: bool,
}

/// A task state as the CLI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Scheduled,
    Pending,
    Leased,
    Retrying,
    Succeeded,
    Dead,
    Cancelled,
}

impl From<StateArg> for flotilla_client::TaskState {
    fn from(s: StateArg) -> Self {
        use flotilla_client::TaskState;
        match s {
            StateArg::Scheduled => TaskState::Scheduled,
            StateArg::Pending => TaskState::Pending,
            StateArg::Leased => TaskState::Leased,
            StateArg::Retrying => TaskState::Retrying,
            StateArg::Succeeded => TaskState::Succeeded,
            StateArg::Dead => TaskState::Dead,
            StateArg::Cancelled => TaskState::Cancelled,
        }
    }
}

/// Which tasks: the filter of `list` and `retry`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only tasks in this state (repeat for several).
    #[arg(long = "state", value_enum)]
    pub states: Vec<StateArg>,
    /// Only tasks of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only tasks created within this long before now (a number and a unit: s, m, h, d).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Tasks per page (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue where a previous page stopped (the cursor it printed).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Every page, not just the first.
    #[arg(long)]
    pub all: bool,
    /// Print JSON: {"tasks": [...], "next_cursor": ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Task ids; or none, and a filter (--queue, --state dead|cancelled, --name, --since).
    pub ids: Vec<u64>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// By filter: at most this many tasks per call (1 to 1000); with --all, calls again
    /// until every match is retried.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// By filter: every matching task, not just the first --limit.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Task id.
    pub id: u64,
    /// Wait until the task is final; exit 1 if it did not succeed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

/// Where `--args` comes from: the flag itself (checked as JSON while parsing), a file or stdin
/// (read, and checked, when the command runs).
#[derive(Clone, Debug, PartialEq)]
pub enum ArgsSource {
    Inline(serde_json::Value),
    File(PathBuf),
    Stdin,
}

impl ArgsSource {
    /// The JSON document.
    pub fn read(&self) -> anyhow::Result<serde_json::Value> {
        use anyhow::Context;
        let text = match self {
            ArgsSource::Inline(v) => return Ok(v.clone()),
            ArgsSource::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --args file {}", path.display()))?,
            ArgsSource::Stdin => {
                std::io::read_to_string(std::io::stdin()).context("cannot read --args from stdin")?
            }
        };
        serde_json::from_str(&text).context("--args is not valid JSON")
    }
}

fn parse_args(s: &str) -> Result<ArgsSource, String> {
    match s {
        "-" => Ok(ArgsSource::Stdin),
        _ => match s.strip_prefix('@') {
            Some(path) if !path.is_empty() => Ok(ArgsSource::File(PathBuf::from(path))),
            Some(_) => Err("@ needs a file name: --args @payload.json".into()),
            None => parse_json(s).map(ArgsSource::Inline),
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("flotilla").chain(args.iter().copied()))
    }

    #[test]
    fn limit_set_takes_a_scope_a_rate_and_a_concurrency() {
        let cli = parse(&[
            "limit",
            "set",
            "task:send",
            "--rate",
            "10/m",
            "--concurrency",
            "2",
        ])
        .unwrap();
        let Command::Limit {
            action:
                LimitAction::Set {
                    scope,
                    rate,
                    concurrency,
                },
        } = cli.command
        else {
            panic!("not limit set")
        };
        assert_eq!(
            (scope.as_str(), rate.as_deref(), concurrency),
            ("task:send", Some("10/m"), Some(2))
        );
        let cli = parse(&["submit", "echo", "--key", "tenant-1"]).unwrap();
        let Command::Submit(s) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(s.key.as_deref(), Some("tenant-1"));
    }

    #[test]
    fn schedule_add_takes_a_cron_or_an_interval() {
        let cli = parse(&[
            "schedule",
            "add",
            "nightly",
            "report",
            "--cron",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--catch-up",
            "once",
            "--grace",
            "5m",
        ])
        .unwrap();
        let Command::Schedule {
            action: ScheduleAction::Add(a),
        } = cli.command
        else {
            panic!("not schedule add")
        };
        assert_eq!(
            (a.cron.as_deref(), a.tz.as_deref(), a.catch_up, a.grace),
            (
                Some("30 2 * * *"),
                Some("Europe/Berlin"),
                flotilla_client::CatchUp::Once,
                Some(std::time::Duration::from_secs(300))
            )
        );
        assert!(parse(&["schedule", "add", "s", "t", "--every", "10s"]).is_ok());
        // Exactly one of the two; a zone only with a cron expression.
        assert!(parse(&["schedule", "add", "s", "t"]).is_err());
        assert!(
            parse(&[
                "schedule",
                "add",
                "s",
                "t",
                "--every",
                "1s",
                "--cron",
                "* * * * *"
            ])
            .is_err()
        );
        assert!(parse(&["schedule", "add", "s", "t", "--every", "1s", "--tz", "UTC"]).is_err());
        assert!(parse(&["schedule", "add", "s", "t", "--every", "1s", "--catch-up", "all"]).is_err());
        assert!(parse(&["schedule", "pause", "s"]).is_ok());
        assert!(parse(&["schedule", "list", "--next", "3", "--json"]).is_ok());
    }

    #[test]
    fn args_come_inline_from_a_file_or_from_stdin() {
        let args = |a: &str| {
            let Command::Submit(s) = parse(&["submit", "echo", "--args", a]).unwrap().command else {
                panic!("not submit")
            };
            s.args
        };
        assert_eq!(args("-"), ArgsSource::Stdin);
        assert_eq!(args("@big.json"), ArgsSource::File("big.json".into()));
        assert_eq!(args("[1]"), ArgsSource::Inline(serde_json::json!([1])));
        assert!(parse(&["submit", "echo", "--args", "@"]).is_err());
        assert!(parse(&["submit", "echo", "--args", "{bad"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, r#"{"big": true}"#).unwrap();
        assert_eq!(
            ArgsSource::File(file.clone()).read().unwrap(),
            serde_json::json!({"big": true})
        );
        std::fs::write(&file, "{oops").unwrap();
        assert!(ArgsSource::File(file).read().is_err());
        assert!(ArgsSource::File(dir.path().join("missing")).read().is_err());
    }

    #[test]
    fn operating_commands_parse() {
        let cli = parse(&[
            "list",
            "--queue",
            "emails",
            "--state",
            "dead",
            "--state",
            "cancelled",
            "--since",
            "2h",
        ])
        .unwrap();
        let Command::List(l) = cli.command else {
            panic!("not list")
        };
        assert_eq!(l.filter.states, vec![StateArg::Dead, StateArg::Cancelled]);
        assert_eq!(l.filter.since, Some(std::time::Duration::from_secs(7200)));
        assert_eq!((l.limit, l.all, l.json), (50, false, false));
        assert!(parse(&["list", "--limit", "1001"]).is_err());
        assert!(parse(&["list", "--state", "lost"]).is_err());
        assert!(parse(&["list", "--all", "--cursor", "v1.9"]).is_err());
        let cli = parse(&["cancel", "--terminate", "--reason", "stuck", "4", "5"]).unwrap();
        let Command::Cancel {
            ids,
            terminate,
            reason,
            ..
        } = cli.command
        else {
            panic!("not cancel")
        };
        assert_eq!(
            (ids, terminate, reason.as_deref()),
            (vec![4, 5], true, Some("stuck"))
        );
        assert!(
            parse(&["cancel", "--reason", "x", "4"]).is_err(),
            "a reason needs --terminate"
        );
        let cli = parse(&["retry", "--queue", "q", "--state", "dead", "--all"]).unwrap();
        let Command::Retry(r) = cli.command else {
            panic!("not retry")
        };
        assert!(r.ids.is_empty() && r.all && r.filter.queue.as_deref() == Some("q"));
        assert!(parse(&["retry", "1", "2"]).is_ok());
        assert!(parse(&["pause", "q"]).is_ok() && parse(&["resume", "q"]).is_ok());
        assert!(parse(&["purge"]).is_err());
        assert!(parse(&["purge", "q", "--yes", "--json"]).is_ok());
    }

    #[test]
    fn submit_defaults_and_options() {
        let cli = parse(&["submit", "echo"]).unwrap();
        assert_eq!(cli.nodes, ["127.0.0.1:7000"]);
        let Command::Submit(s) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(
            (s.name.as_str(), s.count, s.priority, s.wait, s.json),
            ("echo", 1, 0, false, false)
        );
        assert_eq!(s.args, ArgsSource::Inline(serde_json::Value::Null));

        let cli = parse(&[
            "--nodes",
            "10.0.0.1:7000,10.0.0.2:7000",
            "submit",
            "sum",
            "--args",
            r#"{"a": [1, 2]}"#,
            "--queue",
            "math",
            "--priority",
            "255",
            "--countdown-ms",
            "1500",
            "--max-retries",
            "3",
            "--count",
            "1000",
            "--wait",
            "--timeout-s",
            "5",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.nodes, ["10.0.0.1:7000", "10.0.0.2:7000"]);
        let Command::Submit(s) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(s.args, ArgsSource::Inline(serde_json::json!({"a": [1, 2]})));
        assert_eq!(
            (s.queue.as_deref(), s.priority, s.countdown_ms),
            (Some("math"), 255, Some(1500))
        );
        assert_eq!(
            (s.max_retries, s.count, s.wait, s.timeout_s, s.json),
            (Some(3), 1000, true, 5, true)
        );
    }

    #[test]
    fn bad_input_is_a_usage_error_with_exit_status_2() {
        for args in [
            &["submit", "echo", "--args", "{not json"][..],
            &["submit", "echo", "--priority", "256"],
            &["submit", "echo", "--count", "0"],
            &["cancel"],
            &["get", "abc"],
            &["frobnicate"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        }
    }

    #[test]
    fn other_commands_parse() {
        let cli = parse(&["get", "17", "--wait", "--json", "--nodes", "h:1"]).unwrap();
        assert_eq!(cli.nodes, ["h:1"], "--nodes is accepted after the subcommand too");
        let Command::Get(g) = cli.command else {
            panic!("not get")
        };
        assert_eq!((g.id, g.wait, g.json, g.timeout_s), (17, true, true, 60));
        let Command::Cancel { ids, json, .. } = parse(&["cancel", "1", "2", "3"]).unwrap().command else {
            panic!("not cancel")
        };
        assert_eq!((ids, json), (vec![1, 2, 3], false));
        assert!(matches!(
            parse(&["stats", "--json"]).unwrap().command,
            Command::Stats { json: true }
        ));
        assert!(matches!(
            parse(&["status"]).unwrap().command,
            Command::Status { json: false }
        ));
    }

    #[test]
    fn tls_and_certs_parse() {
        let cli = parse(&["--tls-ca", "ca.pem", "status"]).unwrap();
        assert_eq!(cli.tls_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            parse(&["status", "--tls-cert", "c.pem"]).unwrap_err().exit_code(),
            2
        );
        let cli = parse(&[
            "certs",
            "node",
            "--ca",
            "ca",
            "--cluster",
            "prod",
            "--name",
            "n1.example,10.0.0.1",
            "--out",
            "n1",
        ])
        .unwrap();
        let Command::Certs {
            action: CertsAction::Node { name, days, .. },
        } = cli.command
        else {
            panic!("not certs node")
        };
        assert_eq!(
            (name, days),
            (vec!["n1.example".to_string(), "10.0.0.1".to_string()], LEAF_DAYS)
        );
        assert!(parse(&["certs", "node", "--ca", "ca", "--cluster", "c", "--out", "o"]).is_err());
    }

    #[test]
    fn token_commands_parse() {
        let cli = parse(&["token", "create", "--role", "join", "--ttl", "2h", "--token", "t"]).unwrap();
        assert_eq!(cli.token.as_deref(), Some("t"));
        let Command::Token {
            action: TokenAction::Create { role, ttl, .. },
        } = cli.command
        else {
            panic!("not token create")
        };
        assert_eq!(role, flotilla_client::TokenRole::Join);
        assert_eq!(ttl, Some(std::time::Duration::from_secs(7200)));
        assert!(parse(&["token", "create", "--role", "root"]).is_err());
        assert!(parse(&["token", "create", "--role", "admin", "--ttl", "5y"]).is_err());
        assert!(parse(&["token", "create", "--role", "admin", "--ttl", "0s"]).is_err());
        assert!(matches!(
            parse(&["token", "revoke", "3"]).unwrap().command,
            Command::Token {
                action: TokenAction::Revoke { id: 3 }
            }
        ));
        let cmd = Cli::command();
        let token = cmd.get_arguments().find(|a| a.get_id() == "token").unwrap();
        assert_eq!(token.get_env().and_then(|e| e.to_str()), Some("FLOTILLA_TOKEN"));
    }

    #[test]
    fn tasks_commands_parse() {
        assert!(matches!(
            parse(&["tasks"]).unwrap().command,
            Command::Tasks {
                json: false,
                action: None
            }
        ));
        assert!(matches!(
            parse(&["tasks", "--json"]).unwrap().command,
            Command::Tasks { json: true, .. }
        ));
        let Command::Tasks {
            action:
                Some(TasksAction::Declare {
                    names,
                    queue,
                    declarer,
                }),
            ..
        } = parse(&["tasks", "declare", "a", "b", "--queue", "q"])
            .unwrap()
            .command
        else {
            panic!("not tasks declare")
        };
        assert_eq!(
            (names, queue, declarer.as_str()),
            (vec!["a".into(), "b".into()], "q".into(), "operator")
        );
        assert!(parse(&["tasks", "declare"]).is_err());
    }

    #[test]
    fn nodes_come_from_the_environment_too() {
        let cmd = Cli::command();
        let nodes = cmd.get_arguments().find(|a| a.get_id() == "nodes").unwrap();
        assert_eq!(nodes.get_env().and_then(|e| e.to_str()), Some("FLOTILLA_NODES"));
        Cli::command().debug_assert();
    }
}
