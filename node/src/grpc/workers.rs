//! `ListWorkers`' answer: the live worker table the members gave (`cluster::workers`), joined
//! with what the replicated state holds per pool name (leases, standing capacity).
//!
//! A name the state holds leases or standing capacity for that no member that answered runs
//! is listed too, with node 0 and no kind: a worker that went away and whose leases have not
//! expired yet, or one whose node is unreachable. So a member down hides no held task.

use std::collections::BTreeMap;

use flotilla_proto::v1 as pb;

use crate::cluster::workers::WorkerTable;
use crate::network::peer::WorkerKind;
use crate::queue::PoolHolding;

/// The reply: the members' workers by node then name, then the names only the state knows.
/// Two sessions of one name on two nodes share a pool in the log: its holdings are shown on
/// the first.
pub fn list(table: WorkerTable, mut holdings: BTreeMap<String, PoolHolding>) -> pb::ListWorkersResponse {
    let mut workers: Vec<pb::WorkerInfo> = table
        .workers
        .into_iter()
        .map(|w| {
            let held = holdings.remove(&w.name).unwrap_or_default();
            let kind = match w.kind {
                WorkerKind::Pool => pb::WorkerKind::Pool,
                WorkerKind::Remote => pb::WorkerKind::Remote,
            };
            pb::WorkerInfo {
                node_id: w.node_id,
                name: w.name,
                kind: kind as i32,
                queues: w.queues,
                concurrency: w.concurrency,
                busy: w.busy,
                leased: held.leased,
                standing: held.standing,
                connected_ms_ago: w.connected_ms_ago,
                last_seen_ms_ago: w.last_seen_ms_ago,
            }
        })
        .collect();
    workers.extend(holdings.into_iter().map(|(name, held)| pb::WorkerInfo {
        name,
        leased: held.leased,
        standing: held.standing,
        ..Default::default()
    }));
    pb::ListWorkersResponse {
        workers,
        unreachable_nodes: table.unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::peer::NodeWorker;

    fn worker(node_id: u64, name: &str, kind: WorkerKind) -> NodeWorker {
        NodeWorker {
            node_id,
            name: name.into(),
            kind,
            queues: vec!["default".into()],
            concurrency: 4,
            busy: 1,
            connected_ms_ago: 5_000,
            last_seen_ms_ago: 20,
        }
    }

    #[test]
    fn members_workers_get_their_holdings_and_names_only_the_log_knows_come_last() {
        let table = WorkerTable {
            workers: vec![
                worker(1, "node-1", WorkerKind::Pool),
                worker(3, "js-1", WorkerKind::Remote),
            ],
            unreachable: vec![2],
        };
        let holdings = BTreeMap::from([
            (
                "js-1".to_string(),
                PoolHolding {
                    leased: 3,
                    standing: 0,
                },
            ),
            (
                "node-2".to_string(),
                PoolHolding {
                    leased: 2,
                    standing: 1,
                },
            ),
        ]);
        let reply = list(table, holdings);
        let rows: Vec<(u64, &str, i32, u64, u32)> = reply
            .workers
            .iter()
            .map(|w| (w.node_id, w.name.as_str(), w.kind, w.leased, w.standing))
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, "node-1", pb::WorkerKind::Pool as i32, 0, 0),
                (3, "js-1", pb::WorkerKind::Remote as i32, 3, 0),
                (0, "node-2", pb::WorkerKind::Unspecified as i32, 2, 1),
            ]
        );
        assert_eq!(reply.unreachable_nodes, vec![2]);
        assert_eq!(reply.workers[1].busy, 1);
        assert_eq!(reply.workers[1].connected_ms_ago, 5_000);
    }
}
