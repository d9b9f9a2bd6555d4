//! `flotilla events`: follow the events stream (docs/OPERATIONS.md, "Watching events").

use std::io::Write;

use anyhow::Context;
use flotilla_client::Client;
use flotilla_client::events::{Event, EventKind, WatchOptions};
use futures::StreamExt;

use crate::cli::EventsArgs;

/// Print events as they come, one a line, until `--count` events or Ctrl-C.
pub async fn run(client: &Client, args: EventsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let opts = WatchOptions {
        queues: args.queues,
        task_names: args.task_names,
        kinds: args.kinds,
        from: args.from,
    };
    let mut events = Box::pin(client.events(opts));
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let Some(event) = events.next().await else { break };
        let event = event.context("events failed")?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
        } else {
            writeln!(out, "{}", human(&event))?;
        }
        // A follower of the stream reads lines as they come.
        out.flush()?;
        seen += 1;
    }
    Ok(())
}

/// One line: position, log time, kind, then what the kind has.
pub fn human(e: &Event) -> String {
    let mut line = format!("{:<12} {} {:<14}", e.position().to_string(), e.at_ms, e.kind);
    match e.kind {
        EventKind::PoolOnline | EventKind::PoolOffline => line.push_str(&format!(" pool={}", e.pool)),
        EventKind::LeaderChanged => line.push_str(&format!(" term={} leader={}", e.term, e.leader)),
        _ => {
            line.push_str(&format!(
                " task={} queue={} name={}",
                e.task_id, e.queue, e.task_name
            ));
            if e.attempt > 0 {
                line.push_str(&format!(" attempt={}", e.attempt));
            }
            if !e.pool.is_empty() {
                line.push_str(&format!(" pool={}", e.pool));
            }
            if let Some(error) = &e.error {
                line.push_str(&format!(" error={error:?}"));
            }
            if let Some(progress) = &e.progress {
                line.push_str(&format!(" progress={progress}"));
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_the_position_and_what_the_kind_has() {
        let e = Event {
            index: 12,
            ordinal: 3,
            at_ms: 1_000,
            kind: EventKind::Retried,
            task_id: 7,
            queue: "default".into(),
            task_name: "fail".into(),
            attempt: 2,
            pool: String::new(),
            error: Some("boom".into()),
            progress: None,
            term: 0,
            leader: 0,
        };
        assert_eq!(
            human(&e),
            "12:3         1000 retried        task=7 queue=default name=fail attempt=2 error=\"boom\""
        );
        let leader = Event {
            kind: EventKind::LeaderChanged,
            term: 4,
            leader: 2,
            ..e
        };
        assert!(human(&leader).ends_with("leader_changed term=4 leader=2"));
    }
}
