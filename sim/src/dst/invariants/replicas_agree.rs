//! Once faults heal and every replica applied the same log prefix, their state machines are
//! identical: the hashes of their snapshot encodings are equal.

use flotilla_node::raft::snapshot::encode_parts;
use flotilla_node::types::TypeConfig;
use openraft::alias::StoredMembershipOf;
use sha2::Digest;
use sha2::Sha256;

use super::Violation;
use crate::dst::node::Running;
use crate::dst::trace::hex;

const NAME: &str = "replicas_agree";

/// The last applied index of a running node.
pub fn applied(running: &Running) -> Option<u64> {
    running.metrics().last_applied.map(|l| l.index)
}

/// The hash of a replica's queue state, encoded as a snapshot is.
pub fn state_hash(running: &Running) -> String {
    let bytes = running
        .replica
        .read(|q| encode_parts(&None, &StoredMembershipOf::<TypeConfig>::default(), q))
        .unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

/// Compare the replicas of `nodes` (name, running), which all applied the same index.
pub fn check(nodes: &[(String, Running)], at_ms: u64) -> Vec<Violation> {
    let Some((first_name, first_running)) = nodes.first() else {
        return Vec::new();
    };
    let first = state_hash(first_running);
    let mut out = Vec::new();
    for (name, running) in &nodes[1..] {
        let h = state_hash(running);
        if h != first {
            let diff = first_difference(first_running, running);
            out.push(Violation::new(
                NAME,
                at_ms,
                format!(
                    "{name}'s state hash {} differs from {first_name}'s {}: {diff}",
                    &h[..12],
                    &first[..12]
                ),
            ));
        }
    }
    out
}

/// Where two replicas' states first differ, as a JSON path and the two values (to tell a
/// reader where to look).
fn first_difference(a: &Running, b: &Running) -> String {
    let json = |r: &Running| r.replica.read(|q| serde_json::to_value(q)).unwrap_or_default();
    let (a, b) = (json(a), json(b));
    let mut path = String::new();
    let (mut x, mut y) = (&a, &b);
    loop {
        match (x, y) {
            (serde_json::Value::Object(m), serde_json::Value::Object(n)) => {
                let Some(k) = m.keys().chain(n.keys()).find(|k| m.get(*k) != n.get(*k)) else {
                    break;
                };
                path.push('.');
                path.push_str(k);
                match (m.get(k), n.get(k)) {
                    (Some(p), Some(q)) => (x, y) = (p, q),
                    (p, q) => return format!("{path}: {p:?} vs {q:?}"),
                }
            }
            (serde_json::Value::Array(m), serde_json::Value::Array(n)) if m.len() == n.len() => {
                let Some(i) = (0..m.len()).find(|&i| m[i] != n[i]) else {
                    break;
                };
                path.push_str(&format!("[{i}]"));
                (x, y) = (&m[i], &n[i]);
            }
            _ => break,
        }
    }
    let cut = |v: &serde_json::Value| v.to_string().chars().take(300).collect::<String>();
    format!("{path}: {} vs {}", cut(x), cut(y))
}
