//! What a caller's TLS client certificate proves, and the gate that keeps `RaftService` to the
//! nodes of this cluster when the node has TLS.
//!
//! The handshake already verified the certificate's chain against `--tls-ca`
//! (`flotilla_tls::NodeTls::server_config`); here we read what it names ([`Role`]): a node of
//! a cluster, or a client. [`caller_role`] is for any service that wants to know (tokens, not
//! certificates, decide what a client may do); [`NodeGate`] refuses a peer call, before its
//! body is decoded, unless the caller is a node of this cluster.

use std::sync::Arc;

use flotilla_tls::NodeTls;
use flotilla_tls::Role;
use tonic::Request;
use tonic::Status;
use tonic::service::Interceptor;
use tracing::debug;
use tracing::warn;

use super::status::PeerCallError;

/// What the caller's verified certificate names: `None` without TLS, without a client
/// certificate, or with one that names no role.
pub fn caller_role<T>(req: &Request<T>) -> Option<Role> {
    let certs = req.peer_certs()?;
    Role::of_certificate(certs.first()?)
}

/// Lets a peer call through only from a node of this cluster, when the node has TLS; without
/// TLS (a loopback node, the simulator) it lets everything through, and the calls' own checks
/// (cluster id, membership, tokens) are all there is.
#[derive(Clone, Debug)]
pub struct NodeGate {
    /// The cluster a caller's certificate must name; `None`: no TLS.
    cluster: Option<Arc<str>>,
}

impl NodeGate {
    pub fn new(tls: Option<&NodeTls>) -> Self {
        Self {
            cluster: tls.map(|t| t.cluster().into()),
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

impl Interceptor for NodeGate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(caller_role(&req).as_ref())?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_node_of_this_cluster_passes_a_tls_gate() {
        let node = |c: &str| Role::Node { cluster: c.into() };
        let gate = NodeGate {
            cluster: Some("a".into()),
        };
        assert!(gate.check(Some(&node("a"))).is_ok());
        let refused = |role: Option<&Role>| Status::from(gate.check(role).unwrap_err());
        assert_eq!(refused(None).code(), tonic::Code::Unauthenticated);
        assert_eq!(refused(Some(&node("b"))).code(), tonic::Code::PermissionDenied);
        let client = Role::Client { name: "a".into() };
        assert_eq!(refused(Some(&client)).code(), tonic::Code::PermissionDenied);
        assert!(!refused(Some(&node("b"))).message().contains("'a'"));

        let open = NodeGate::new(None);
        assert!(open.check(None).is_ok());
        assert!(open.check(Some(&client)).is_ok());
    }

    #[test]
    fn a_plaintext_request_names_no_role() {
        assert_eq!(caller_role(&Request::new(())), None);
        let mut gate = NodeGate {
            cluster: Some("a".into()),
        };
        let status = gate.call(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
