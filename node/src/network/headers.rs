//! The gRPC metadata of peer calls, in one place: the sender stamps its cluster id and node id
//! on every call ([`Stamp`]); the receiving service reads them back ([`cluster_id`],
//! [`node_id`]) to refuse calls from another cluster and writes from non-members.

use tonic::metadata::Ascii;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;

use crate::types::NodeId;

/// Names the sender's cluster on every peer call.
pub const CLUSTER_ID: &str = "flotilla-cluster-id";
/// Names the sending node on every peer call.
pub const NODE_ID: &str = "flotilla-node-id";

/// What a member stamps on each of its peer calls.
#[derive(Clone, Debug)]
pub struct Stamp {
    cluster_id: MetadataValue<Ascii>,
    node_id: NodeId,
}

impl Stamp {
    /// `None` when `cluster_id` cannot be sent as metadata (the ids we make are UUIDs, so
    /// never in practice); such a node calls anonymously and members refuse it.
    pub fn new(cluster_id: &str, node_id: NodeId) -> Option<Self> {
        let cluster_id = cluster_id.parse().ok()?;
        Some(Self { cluster_id, node_id })
    }

    /// Write the stamp into a request's metadata.
    pub fn apply(&self, metadata: &mut MetadataMap) {
        metadata.insert(CLUSTER_ID, self.cluster_id.clone());
        metadata.insert(NODE_ID, MetadataValue::from(self.node_id));
    }
}

/// The cluster a call says it comes from, if it says one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerCluster<'a> {
    /// No cluster id: a node that is still joining (it does not know its cluster yet).
    Anonymous,
    /// A cluster id that is not valid ASCII metadata.
    Unreadable,
    Id(&'a str),
}

/// The cluster id a call carries.
pub fn cluster_id(metadata: &MetadataMap) -> CallerCluster<'_> {
    match metadata.get(CLUSTER_ID).map(|v| v.to_str()) {
        None => CallerCluster::Anonymous,
        Some(Err(_)) => CallerCluster::Unreadable,
        Some(Ok(id)) => CallerCluster::Id(id),
    }
}

/// The sending node's id, if the call carries a readable one.
pub fn node_id(metadata: &MetadataMap) -> Option<NodeId> {
    metadata.get(NODE_ID)?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_no_stamp_is_anonymous() {
        let mut metadata = MetadataMap::new();
        assert_eq!(cluster_id(&metadata), CallerCluster::Anonymous);
        assert_eq!(node_id(&metadata), None);
        Stamp::new("c-1", 7).unwrap().apply(&mut metadata);
        assert_eq!(cluster_id(&metadata), CallerCluster::Id("c-1"));
        assert_eq!(node_id(&metadata), Some(7));
        assert!(Stamp::new("not\nascii", 1).is_none());
    }
}
