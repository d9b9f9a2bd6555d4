//! `flotilla schedule add|list|pause|resume|remove`: periodic schedules (docs/SCHEDULES.md).

use std::io::Write;

use anyhow::Context;
use flotilla_client::schedules::Cadence;
use flotilla_client::{Client, ScheduleInfo};

use crate::cli::{ScheduleAction, ScheduleAddArgs};
use crate::output;

/// Carry out one `schedule` action.
pub async fn run(client: &Client, action: ScheduleAction, out: &mut impl Write) -> anyhow::Result<()> {
    match action {
        ScheduleAction::Add(args) => add(client, args, out).await?,
        ScheduleAction::List { next, json } => {
            let list = client.schedules(next).await.context("schedule list failed")?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "schedules": list }))?;
            } else {
                write!(out, "{}", list_human(&list))?;
            }
        }
        ScheduleAction::Pause { name, json } => {
            client
                .pause_schedule(&name)
                .await
                .context("schedule pause failed")?;
            let value = serde_json::json!({ "schedule": name, "paused": true });
            output::ack(out, json, &format!("schedule {name} paused"), value)?;
        }
        ScheduleAction::Resume { name, json } => {
            client
                .resume_schedule(&name)
                .await
                .context("schedule resume failed")?;
            let value = serde_json::json!({ "schedule": name, "paused": false });
            output::ack(out, json, &format!("schedule {name} resumed"), value)?;
        }
        ScheduleAction::Remove { name, json } => {
            client
                .remove_schedule(&name)
                .await
                .context("schedule remove failed")?;
            let value = serde_json::json!({ "schedule": name, "removed": true });
            output::ack(out, json, &format!("schedule {name} removed"), value)?;
        }
    }
    Ok(())
}

async fn add(client: &Client, a: ScheduleAddArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut task = client.task(&a.task).args(&a.args.read()?)?;
    if let Some(queue) = a.queue {
        task = task.queue(queue);
    }
    if let Some(retries) = a.max_retries {
        task = task.max_retries(retries);
    }
    let mut request = match (a.cron, a.every) {
        (Some(cron), _) => client.schedule_cron(&a.name, cron, a.tz.unwrap_or_default(), task),
        (None, Some(every)) => client.schedule_every(&a.name, every, task),
        (None, None) => anyhow::bail!("give --cron or --every"),
    };
    request = request.catch_up(a.catch_up).replace(a.replace);
    if let Some(grace) = a.grace {
        request = request.grace(grace);
    }
    let added = client
        .add_schedule(request)
        .await
        .context("schedule add failed")?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&added)?)?;
    } else {
        let next = added
            .next_unix_ms
            .map_or_else(|| "none (paused)".to_string(), utc);
        writeln!(
            out,
            "schedule {} {} (id {}); next run {next}",
            a.name, added.outcome, added.id
        )?;
    }
    Ok(())
}

/// A time as `2026-03-29T01:00:00Z` (UTC, to the second).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `schedule list` as text: one block per schedule.
pub fn list_human(list: &[ScheduleInfo]) -> String {
    let mut out = String::new();
    for s in list {
        let when = match &s.cadence {
            Cadence::Cron { expr, time_zone } if time_zone.is_empty() => format!("cron '{expr}' UTC"),
            Cadence::Cron { expr, time_zone } => format!("cron '{expr}' {time_zone}"),
            Cadence::Every { every_ms } => format!("every {every_ms} ms"),
        };
        let state = if s.paused { "paused" } else { "active" };
        out.push_str(&format!(
            "{} (id {}): {when} -> {} on {}; {state}; catch-up {}, grace {} ms; {} fired, {} outages\n",
            s.name,
            s.id,
            s.task,
            s.queue,
            s.catch_up.name(),
            s.grace_ms,
            s.fired,
            s.outages
        ));
        for next in &s.next_unix_ms {
            out.push_str(&format!("  next {}\n", utc(*next)));
        }
    }
    if list.is_empty() {
        out.push_str("(no schedules)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_774_746_000_000), "2026-03-29T01:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
