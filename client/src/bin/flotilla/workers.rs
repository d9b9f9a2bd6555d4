//! `flotilla workers`: every pool and remote worker of the cluster, as a table.

use flotilla_client::{WorkerKind, Workers};

/// The table: one line a worker, then the members that did not answer.
pub fn human(w: &Workers) -> String {
    let mut out = format!(
        "{:<24} {:>5}  {:<7} {:<20} {:>5} {:>5} {:>7}  {:<10} {}\n",
        "name", "node", "kind", "queues", "conc", "busy", "leased", "connected", "last seen"
    );
    for x in &w.workers {
        let known = x.kind != WorkerKind::Unknown;
        let node = if known { x.node_id.to_string() } else { "-".into() };
        let dash_unless = |v: String| if known { v } else { "-".into() };
        let last_seen = match x.kind {
            WorkerKind::Remote => format!("{} ago", age(x.last_seen_ms_ago)),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<24} {:>5}  {:<7} {:<20} {:>5} {:>5} {:>7}  {:<10} {}\n",
            x.name,
            node,
            x.kind.name(),
            dash_unless(x.queues.join(",")),
            dash_unless(x.concurrency.to_string()),
            dash_unless(x.busy.to_string()),
            x.leased,
            dash_unless(age(x.connected_ms_ago)),
            last_seen
        ));
    }
    if w.workers.is_empty() {
        out.push_str("(no pools or workers)\n");
    }
    if w.workers.iter().any(|x| x.kind == WorkerKind::Unknown) {
        out.push_str("(unknown: no member that answered runs it, but it holds leases or capacity)\n");
    }
    if !w.unreachable_nodes.is_empty() {
        let nodes: Vec<String> = w.unreachable_nodes.iter().map(u64::to_string).collect();
        out.push_str(&format!(
            "(unreachable: node {} did not answer; its workers are not listed)\n",
            nodes.join(", node ")
        ));
    }
    out
}

/// `950ms`, `42s`, `12m`, `3h`, `2d`: the largest whole unit.
fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use flotilla_client::WorkerInfo;

    use super::*;

    fn worker(node_id: u64, name: &str, kind: WorkerKind) -> WorkerInfo {
        WorkerInfo {
            node_id,
            name: name.into(),
            kind,
            queues: vec!["default".into(), "slow".into()],
            concurrency: 4,
            busy: 1,
            leased: 2,
            standing: 0,
            connected_ms_ago: 125_000,
            last_seen_ms_ago: 300,
        }
    }

    #[test]
    fn the_table_shows_each_worker_and_names_the_silent_members() {
        let w = Workers {
            workers: vec![
                worker(1, "node-1", WorkerKind::Pool),
                worker(3, "js-1", WorkerKind::Remote),
                worker(0, "gone", WorkerKind::Unknown),
            ],
            unreachable_nodes: vec![2],
        };
        let text = human(&w);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("name"), "{text}");
        assert!(lines[1].contains("node-1") && lines[1].contains("pool") && lines[1].contains("2m"));
        assert!(
            lines[2].contains("remote") && lines[2].contains("300ms ago"),
            "{text}"
        );
        assert!(lines[3].starts_with("gone") && lines[3].contains(" - "), "{text}");
        assert!(text.contains("node 2 did not answer"), "{text}");
        assert_eq!(
            human(&Workers::default()).lines().nth(1),
            Some("(no pools or workers)")
        );
        assert_eq!(
            (age(59_999), age(3_600_000), age(90_000_000)),
            ("59s".into(), "1h".into(), "1d".into())
        );
    }
}
