//! The gRPC metadata of peer calls, in one place: the sender stamps its cluster id and node id
//! on every call ([`Stamp`]); the receiving service reads them back ([`cluster_id`],
//! [`node_id`]) to refuse calls from another cluster and writes from non-members. A client's
//! (or a joining node's) token travels as `authorization: Bearer <token>` ([`Bearer`],
//! [`bearer_token`]). The peer secret's header is in `peer_auth.rs`.

use tonic::metadata::Ascii;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;

use crate::types::NodeId;

/// Names the sender's cluster on every peer call.
pub const CLUSTER_ID: &str = "flotilla-cluster-id";
/// Names the sending node on every peer call.
pub const NODE_ID: &str = "flotilla-node-id";

/// On every reply of the peer service: the newest log entry format the replying node's build
/// reads. The leader switches a cluster onto a new command only once every member said it reads
/// it (`leader.rs`, `RecordAttempts`). Builds before it send none: they read format 9 at most.
pub const ENTRY_FORMAT: &str = "flotilla-entry-format";

/// Write this build's entry format into a reply's metadata.
pub fn stamp_entry_format(metadata: &mut MetadataMap) {
    metadata.insert(ENTRY_FORMAT, MetadataValue::from(crate::queue::ENTRY_FORMAT));
}

/// The entry format a reply says its sender reads: `None` when it says none (an older build).
pub fn entry_format(metadata: &MetadataMap) -> Option<u32> {
    metadata.get(ENTRY_FORMAT)?.to_str().ok()?.parse().ok()
}

/// The header of a client's token.
pub const AUTHORIZATION: &str = "authorization";

/// `authorization: Bearer <token>`, ready to stamp (marked sensitive: never logged by tonic).
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// `None` when the token cannot be sent as a header (not printable ASCII).
    pub fn new(token: &str) -> Option<Self> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse().ok()?;
        value.set_sensitive(true);
        Some(Self(value))
    }

    pub fn apply(&self, metadata: &mut MetadataMap) {
        metadata.insert(AUTHORIZATION, self.0.clone());
    }
}

/// The token of an `authorization: Bearer <token>` header: `None` without the header,
/// `Some(Err(()))` when it is not a bearer token.
pub fn bearer_token(headers: &tonic::codegen::http::HeaderMap) -> Option<Result<&[u8], ()>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let token = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "));
    Some(token.map(<[u8]>::trim_ascii).filter(|t| !t.is_empty()).ok_or(()))
}

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
    cluster_id_of(metadata.as_ref())
}

/// The cluster id a call carries, from its HTTP headers (before tonic reads the request).
pub fn cluster_id_of(headers: &tonic::codegen::http::HeaderMap) -> CallerCluster<'_> {
    match headers.get(CLUSTER_ID).map(|v| v.to_str()) {
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

    #[test]
    fn the_entry_format_reads_back() {
        let mut metadata = MetadataMap::new();
        assert_eq!(entry_format(&metadata), None);
        stamp_entry_format(&mut metadata);
        assert_eq!(entry_format(&metadata), Some(crate::queue::ENTRY_FORMAT));
    }

    #[test]
    fn a_bearer_token_reads_back() {
        let mut metadata = MetadataMap::new();
        Bearer::new("flt_abc").unwrap().apply(&mut metadata);
        let headers = metadata.into_headers();
        assert_eq!(bearer_token(&headers), Some(Ok(&b"flt_abc"[..])));
        let mut other = tonic::codegen::http::HeaderMap::new();
        assert_eq!(bearer_token(&other), None);
        other.insert(AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer_token(&other), Some(Err(())));
        assert!(Bearer::new("a\nb").is_none());
    }
}
