//! [`PeerVerifier`]: how a node checks the peer it dials. The usual checks first (chain to the
//! CA, validity, the host name it dialled), then that the certificate names a node of the
//! dialling node's own cluster: a node of another cluster signed by the same CA is refused
//! during the handshake, before a byte of a peer call is sent.

use std::sync::Arc;

use rustls::CertificateError;
use rustls::DigitallySignedStruct;
use rustls::OtherError;
use rustls::SignatureScheme;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::ServerCertVerified;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::UnixTime;

use crate::names::Role;

/// Verifies a dialled peer: the CA's checks, then its cluster.
#[derive(Debug)]
pub struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    cluster: String,
}

impl PeerVerifier {
    pub(crate) fn new(inner: Arc<WebPkiServerVerifier>, cluster: String) -> Self {
        Self { inner, cluster }
    }
}

/// A peer's certificate, valid for the CA, that is not a node of our cluster.
#[derive(thiserror::Error)]
#[error("the peer's certificate is {}, not a node of cluster '{ours}'", describe(.named))]
pub struct NotOurCluster {
    /// What the certificate names, if anything.
    pub named: Option<Role>,
    /// The cluster this node belongs to.
    pub ours: String,
}

/// As its message: rustls shows this error with `{:?}` inside its own, and an operator reads it.
impl std::fmt::Debug for NotOurCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A role, or the lack of one, for messages.
pub(crate) fn describe(role: &Option<Role>) -> String {
    match role {
        Some(role) => role.to_string(),
        None => "of no flotilla role".to_string(),
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        match Role::of_certificate(end_entity) {
            Some(Role::Node { cluster }) if cluster == self.cluster => Ok(verified),
            named => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotOurCluster {
                    named,
                    ours: self.cluster.clone(),
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
