//! The arguments of the task commands (submit, get, list, retry, events), and the parsers of
//! `--args` (inline JSON, `@FILE`, `-`) and of durations (`30m`, `7d`).

use std::path::PathBuf;

use clap::Args;

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
    /// Workflow tasks waiting for their parents.
    Waiting,
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
            StateArg::Waiting => TaskState::Waiting,
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
pub struct WaitArgs {
    /// Task ids.
    #[arg(required = true)]
    pub ids: Vec<u64>,
    /// Give up after this many seconds (the tasks not final then are listed as timed_out).
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Print one JSON object per task per line, as each finishes.
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

pub(super) fn parse_args(s: &str) -> Result<ArgsSource, String> {
    match s {
        "-" => Ok(ArgsSource::Stdin),
        _ => match s.strip_prefix('@') {
            Some(path) if !path.is_empty() => Ok(ArgsSource::File(PathBuf::from(path))),
            Some(_) => Err("@ needs a file name: --args @payload.json".into()),
            None => parse_json(s).map(ArgsSource::Inline),
        },
    }
}

/// `30s`, `10m`, `24h`, `7d`.
pub(super) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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
