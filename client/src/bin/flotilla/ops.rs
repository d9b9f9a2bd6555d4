//! Operating tasks: `flotilla list`, `get` (a task's detail), `retry`, `cancel --terminate`,
//! `pause`, `resume`, `purge` (docs/OPERATIONS.md, "Finding and acting on tasks").

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use flotilla_client::{
    Client, ClientError, RevokeOutcome, TaskDetail, TaskFilter, TaskId, TaskInfo, TaskState,
};
use serde_json::{Value, json};

use crate::cli::{FilterArgs, GetArgs, ListArgs, RetryArgs};
use crate::output;
use crate::progress::Progress;

/// The client's filter of the CLI's flags (`--since` against this machine's clock).
fn filter_of(f: &FilterArgs) -> TaskFilter {
    // The operator's wall clock is what `--since 2h` means; the CLI is not simulated.
    #[allow(clippy::disallowed_methods)]
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    TaskFilter {
        queue: f.queue.clone(),
        states: f.states.iter().map(|s| TaskState::from(*s)).collect(),
        name: f.name.clone(),
        created_from_unix_ms: f.since.map(|s| now_ms.saturating_sub(s.as_millis() as u64)),
        created_before_unix_ms: None,
    }
}

/// `flotilla list`.
pub async fn list(client: &Client, args: ListArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let filter = filter_of(&args.filter);
    let mut cursor = args.cursor.clone();
    let mut tasks: Vec<TaskInfo> = Vec::new();
    let mut header = !args.json;
    loop {
        let page = client
            .list_tasks(&filter, args.limit, cursor.as_deref())
            .await
            .context("list failed")?;
        cursor = page.next_cursor;
        if args.json {
            tasks.extend(page.tasks);
        } else {
            write!(out, "{}", list_human(&page.tasks, header))?;
            header = header && page.tasks.is_empty();
            out.flush()?;
        }
        if !args.all || cursor.is_none() {
            break;
        }
    }
    if args.json {
        let tasks: Vec<Value> = tasks.iter().map(output::task_line).collect();
        writeln!(out, "{}", json!({ "tasks": tasks, "next_cursor": cursor }))?;
    } else if header {
        writeln!(out, "(no matching tasks)")?;
    }
    if !args.json
        && let Some(next) = cursor
    {
        eprintln!("more: flotilla list ... --cursor {next} (or --all)");
    }
    Ok(())
}

/// Tasks as a table (with its header line when `header`).
pub fn list_human(tasks: &[TaskInfo], header: bool) -> String {
    let mut s = String::new();
    if header && !tasks.is_empty() {
        s.push_str(&format!(
            "{:>10} {:<10} {:<16} {:<24} {:>7} {:<24} error\n",
            "id", "state", "queue", "name", "attempt", "created (UTC)"
        ));
    }
    for t in tasks {
        s.push_str(&format!(
            "{:>10} {:<10} {:<16} {:<24} {:>7} {:<24} {}\n",
            t.id.0,
            t.state.as_str(),
            t.queue,
            t.name,
            t.attempt,
            utc(t.created_unix_ms),
            t.error.as_deref().unwrap_or("")
        ));
    }
    s
}

/// A Unix time in ms as `2026-12-02T03:04:05.678Z`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm), for a clock after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `flotilla get ID` without `--wait`: the task's detail, or its plain view from a node that
/// has no operations service (an older build).
pub async fn get_detail(client: &Client, args: &GetArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let id = TaskId(args.id);
    let detail = match client.describe_task(id).await {
        Err(ClientError::Server {
            code: tonic::Code::Unimplemented,
            ..
        }) => {
            let info = client
                .get(id)
                .await
                .with_context(|| format!("cannot get task {id}"))?;
            if args.json {
                writeln!(out, "{}", output::task_line(&info))?;
            } else {
                writeln!(out, "{}", output::task_human(&info))?;
            }
            return Ok(());
        }
        other => other.with_context(|| format!("cannot get task {id}"))?,
    };
    if args.json {
        writeln!(out, "{}", detail_line(&detail))?;
    } else {
        write!(out, "{}", detail_human(&detail))?;
    }
    Ok(())
}

/// A task's detail as one JSON object: `task_line`'s fields and the rest.
pub fn detail_line(d: &TaskDetail) -> Value {
    let mut v = output::task_line(&d.task);
    let args = serde_json::from_slice::<Value>(&d.args)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.args).into_owned()));
    let progress = d.progress.as_ref().map(|p| {
        let data = serde_json::from_str::<Value>(&p.data).unwrap_or_else(|_| Value::String(p.data.clone()));
        json!({"data": data, "attempt": p.attempt, "at_unix_ms": p.at_unix_ms})
    });
    let extra = json!({
        "max_retries": d.task.max_retries,
        "failures": d.failures,
        "lost_leases": d.lost_leases,
        "holder": d.holder,
        "timer_unix_ms": d.timer_unix_ms,
        "created_unix_ms": d.task.created_unix_ms,
        "updated_unix_ms": d.task.updated_unix_ms,
        "priority": d.priority,
        "args": args,
        "headers": d.headers,
        "idempotency_key": d.idempotency_key,
        "retry_backoff_ms": d.retry_backoff_ms,
        "time_limit_ms": d.time_limit_ms,
        "result_ttl_ms": d.result_ttl_ms,
        "progress": progress,
        "attempts": crate::attempts::attempts_json(&d.attempts),
    });
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    v
}

/// A task's detail, a field a line.
pub fn detail_human(d: &TaskDetail) -> String {
    let t = &d.task;
    let mut s = format!("task {} {}\n", t.id, t.state);
    let mut field = |k: &str, v: String| s.push_str(&format!("  {k:<12} {v}\n"));
    field("name", t.name.clone());
    field("queue", t.queue.clone());
    field(
        "attempt",
        format!(
            "{} (failures {} of {} retries, lost leases {})",
            t.attempt, d.failures, t.max_retries, d.lost_leases
        ),
    );
    if let Some(h) = &d.holder {
        field("held by", h.clone());
    }
    let timer = match t.state {
        TaskState::Leased => "lease until",
        TaskState::Scheduled | TaskState::Retrying => "due",
        _ => "kept until",
    };
    if t.state == TaskState::Waiting {
        // Its timer is "never": it moves when its parents decide it, not at a time.
        field("waits for", "its parents (a workflow task)".to_owned());
    } else if let Some(ms) = d.timer_unix_ms {
        field(timer, utc(ms));
    }
    field("created", utc(t.created_unix_ms));
    field("updated", utc(t.updated_unix_ms));
    field("priority", d.priority.to_string());
    field("args", String::from_utf8_lossy(&d.args).into_owned());
    if !t.result.is_empty() {
        field("result", String::from_utf8_lossy(&t.result).into_owned());
    }
    if let Some(e) = &t.error {
        field("error", e.clone());
    }
    if let Some(p) = &d.progress {
        field(
            "progress",
            format!("{} (attempt {}, {})", p.data, p.attempt, utc(p.at_unix_ms)),
        );
    }
    for (k, v) in &d.headers {
        field("header", format!("{k}: {v}"));
    }
    if let Some(k) = &d.idempotency_key {
        field("key", k.clone());
    }
    if !d.attempts.is_empty() {
        s.push_str("attempts:\n");
        s.push_str(&crate::attempts::attempts_table(&d.attempts, utc));
    }
    s
}

/// `flotilla cancel [--terminate] ID...`.
pub async fn cancel(
    client: &Client,
    ids: Vec<u64>,
    terminate: bool,
    reason: Option<String>,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let ids: Vec<TaskId> = ids.into_iter().map(TaskId).collect();
    let outcomes: Vec<RevokeOutcome> = if terminate {
        client
            .revoke(ids.iter().copied(), true, reason.as_deref().unwrap_or(""))
            .await
            .context("cancel failed")?
    } else {
        // The queue service's cancel: the submit right is enough (no running task is touched).
        let flags = client
            .cancel(ids.iter().copied())
            .await
            .context("cancel failed")?;
        flags
            .into_iter()
            .map(|c| {
                if c {
                    RevokeOutcome::Cancelled
                } else {
                    RevokeOutcome::Unchanged
                }
            })
            .collect()
    };
    for (id, outcome) in ids.iter().zip(outcomes) {
        if json {
            let cancelled = outcome != RevokeOutcome::Unchanged;
            writeln!(
                out,
                "{}",
                json!({"id": id.0, "cancelled": cancelled, "outcome": outcome})
            )?;
        } else {
            let text = match outcome {
                RevokeOutcome::Cancelled => "cancelled".to_owned(),
                RevokeOutcome::Terminated => "cancelled while it ran: its worker aborts it".to_owned(),
                RevokeOutcome::Unchanged if terminate => {
                    "not cancelled (already ended, or unknown)".to_owned()
                }
                RevokeOutcome::Unchanged => {
                    "not cancelled (already started, ended or unknown; --terminate stops a running task)"
                        .to_owned()
                }
            };
            writeln!(out, "task {id} {text}")?;
        }
    }
    Ok(())
}

/// `flotilla retry`.
pub async fn retry(client: &Client, args: RetryArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let by_filter = args.filter.queue.is_some()
        || !args.filter.states.is_empty()
        || args.filter.name.is_some()
        || args.filter.since.is_some();
    if !args.ids.is_empty() {
        if by_filter || args.all {
            bail!("give task ids or a filter (--queue, --state, --name, --since), not both");
        }
        let ids: Vec<TaskId> = args.ids.iter().copied().map(TaskId).collect();
        let flags = client.retry(ids.iter().copied()).await.context("retry failed")?;
        for (id, retried) in ids.iter().zip(flags) {
            if args.json {
                writeln!(out, "{}", json!({"id": id.0, "retried": retried}))?;
            } else if retried {
                writeln!(out, "task {id} requeued")?;
            } else {
                writeln!(out, "task {id} not requeued (not dead or cancelled, or unknown)")?;
            }
        }
        return Ok(());
    }
    if !by_filter {
        bail!("name the tasks: ids, or a filter such as --queue Q --state dead");
    }
    let filter = filter_of(&args.filter);
    let mut cursor: Option<String> = None;
    let mut retried: Vec<TaskId> = Vec::new();
    let progress = Progress::spinner("requeued", args.json);
    loop {
        let page = client
            .retry_matching(&filter, args.limit, cursor.as_deref())
            .await
            .context("retry failed")?;
        progress.inc(page.retried.len() as u64);
        retried.extend(page.retried);
        cursor = page.next_cursor;
        if cursor.is_none() || (!args.all && retried.len() >= args.limit as usize) {
            break;
        }
    }
    drop(progress);
    if args.json {
        let ids: Vec<u64> = retried.iter().map(|id| id.0).collect();
        writeln!(out, "{}", json!({"retried": ids, "more": cursor.is_some()}))?;
    } else {
        writeln!(out, "requeued {} tasks", retried.len())?;
        if cursor.is_some() {
            eprintln!("more may match: run it again, or with --all");
        }
    }
    Ok(())
}

/// `flotilla purge Q`: asks first, unless `--yes`.
pub async fn purge(
    client: &Client,
    queue: &str,
    yes: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if !yes {
        let stats = client.stats().await.context("purge failed")?;
        let waiting = stats
            .iter()
            .find(|q| q.queue == queue)
            .map_or(0, |q| q.scheduled + q.pending + q.retrying);
        if !std::io::stdin().is_terminal() {
            bail!("purge cancels the {waiting} waiting tasks of queue {queue}: pass --yes to do it");
        }
        eprint!("cancel the {waiting} waiting tasks of queue {queue}? type yes: ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("not purged");
        }
    }
    let purged = client.purge_queue(queue).await.context("purge failed")?;
    if json {
        writeln!(out, "{}", json!({"queue": queue, "purged": purged}))?;
    } else {
        writeln!(out, "queue {queue}: {purged} tasks cancelled")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
