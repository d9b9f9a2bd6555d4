//! What a served connection knows of its peer's certificate, read back per call.
//!
//! tonic puts a connection's `Connected::ConnectInfo` into each request's extensions, under its
//! exact type: `TlsConnectInfo<TcpConnectInfo>` for TLS over TCP, but a wrapper of connections
//! (a guard, a counter) wraps the info too, and tonic's `Request::peer_certs` then finds
//! nothing. [`PeerCertificates`] reaches the certificates through any wrapping that forwards
//! it; [`caller_role`] reads the caller's [`Role`] with it.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tonic::transport::server::TcpConnectInfo;
use tonic::transport::server::TlsConnectInfo;

use crate::names::Role;

/// A connection info that may carry the peer's verified certificate chain (leaf first). A
/// wrapper of connections implements it by asking the info it wraps.
pub trait PeerCertificates: Clone + Send + Sync + 'static {
    fn peer_certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>>;
}

/// Plaintext TCP.
impl PeerCertificates for TcpConnectInfo {
    fn peer_certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        None
    }
}

/// Connections that tell nothing (in-memory pipes, the simulator's).
impl PeerCertificates for () {
    fn peer_certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        None
    }
}

/// TLS: the chain the handshake verified (none if the client showed no certificate).
impl<T: Clone + Send + Sync + 'static> PeerCertificates for TlsConnectInfo<T> {
    fn peer_certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        self.peer_certs()
    }
}

/// What the caller's verified certificate names, on a server whose connections' info is `C`:
/// `None` without TLS, without a client certificate, or with one that names no role.
pub fn caller_role<C: PeerCertificates, T>(req: &tonic::Request<T>) -> Option<Role> {
    let certs = req.extensions().get::<C>()?.peer_certificates()?;
    Role::of_certificate(certs.first()?)
}
