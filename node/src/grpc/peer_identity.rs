//! What a caller's TLS client certificate proves, and the gate that keeps `RaftService` to the
//! nodes of this cluster when the node has TLS.
//!
//! The handshake already verified the certificate's chain against `--tls-ca`
//! (`flotilla_tls::NodeTls::server_config`); here we read what it names ([`Role`]): a node of
//! a cluster, or a client. [`caller_role`] is for any service that wants to know (tokens, not
//! certificates, decide what a client may do); [`NodeGate`] refuses a peer call, before its
//! body is decoded, unless the caller is a node of this cluster.
//!
//! Both are generic over `C`, the connection info tonic stores in each request (the served
//! connections' `Connected::ConnectInfo`): a wrapper of connections must forward
//! [`PeerCertificates`], or no caller shows a certificate and a TLS node refuses every peer.

use std::marker::PhantomData;
use std::sync::Arc;

use flotilla_tls::NodeTls;
pub use flotilla_tls::PeerCertificates;
use flotilla_tls::Role;
pub use flotilla_tls::peer::caller_role;
use tonic::Request;
use tonic::Status;
use tonic::service::Interceptor;
use tracing::debug;
use tracing::warn;

use super::status::PeerCallError;

/// Lets a peer call through only from a node of this cluster, when the node has TLS; without
/// TLS (a loopback node, the simulator) it lets everything through, and the calls' own checks
/// (cluster id, membership, tokens) are all there is.
pub struct NodeGate<C> {
    /// The cluster a caller's certificate must name; `None`: no TLS.
    cluster: Option<Arc<str>>,
    info: PhantomData<fn() -> C>,
}

impl<C> Clone for NodeGate<C> {
    fn clone(&self) -> Self {
        Self {
            cluster: self.cluster.clone(),
            info: PhantomData,
        }
    }
}

impl<C> NodeGate<C> {
    pub fn new(tls: Option<&NodeTls>) -> Self {
        Self {
            cluster: tls.map(|t| t.cluster().into()),
            info: PhantomData,
        }
    }

    /// The gate's decision for a caller whose certificate names `role` (`None`: no client
    /// certificate, or one naming no role).
    pub fn check(&self, role: Option<&Role>) -> Result<(), PeerCallError> {
        let Some(ours) = &self.cluster else {
            return Ok(());
        };
        match role {
            Some(Role::Node { cluster }) if **cluster == **ours => Ok(()),
            // A stranger, or a client without a certificate: nothing to tell the operator.
            None => {
                debug!("peer call refused: no node certificate");
                Err(PeerCallError::NoNodeCertificate)
            }
            // Signed by our CA, so an operator's mistake (a node started with another
            // cluster's certificate, a client calling peer methods): say so in our log.
            Some(role) => {
                warn!(caller = %role, "peer call refused: the caller's certificate is not a node of this cluster");
                Err(PeerCallError::NotANodeOfThisCluster)
            }
        }
    }
}

impl<C: PeerCertificates> Interceptor for NodeGate<C> {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(caller_role::<C, _>(&req).as_ref())?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's connections tell nothing: `()`.
    fn gate(cluster: Option<&str>) -> NodeGate<()> {
        NodeGate {
            cluster: cluster.map(Into::into),
            info: PhantomData,
        }
    }

    #[test]
    fn only_a_node_of_this_cluster_passes_a_tls_gate() {
        let node = |c: &str| Role::Node { cluster: c.into() };
        let gate_a = gate(Some("a"));
        assert!(gate_a.check(Some(&node("a"))).is_ok());
        let refused = |role: Option<&Role>| Status::from(gate_a.check(role).unwrap_err());
        assert_eq!(refused(None).code(), tonic::Code::Unauthenticated);
        assert_eq!(refused(Some(&node("b"))).code(), tonic::Code::PermissionDenied);
        let client = Role::Client { name: "a".into() };
        assert_eq!(refused(Some(&client)).code(), tonic::Code::PermissionDenied);
        assert!(!refused(Some(&node("b"))).message().contains("'a'"));

        let open = gate(None);
        assert!(open.check(None).is_ok());
        assert!(open.check(Some(&client)).is_ok());
    }

    #[test]
    fn a_plaintext_request_names_no_role() {
        let mut req = Request::new(());
        assert_eq!(caller_role::<(), _>(&req), None);
        req.extensions_mut().insert(());
        assert_eq!(caller_role::<(), _>(&req), None);
        let status = gate(Some("a")).call(req).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
