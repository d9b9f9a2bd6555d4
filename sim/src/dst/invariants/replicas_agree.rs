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
    let hashes: Vec<(String, String)> = nodes.iter().map(|(n, r)| (n.clone(), state_hash(r))).collect();
    let Some((first_name, first)) = hashes.first() else {
        return Vec::new();
    };
    hashes
        .iter()
        .filter(|(_, h)| h != first)
        .map(|(name, h)| {
            Violation::new(
                NAME,
                at_ms,
                format!(
                    "{name}'s state hash {} differs from {first_name}'s {}",
                    &h[..12],
                    &first[..12]
                ),
            )
        })
        .collect()
}
