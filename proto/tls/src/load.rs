//! Loading certificates from PEM files into what the two ends of a connection need:
//! [`NodeTls`] for a node (the server side of every port, and dialling peers with mutual TLS)
//! and [`ClientTls`] for a client. Both are checked when loaded, so a wrong file stops a node
//! at start with its path named, not at its first connection.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;
use tonic::transport::Identity;

use crate::TlsError;
use crate::names::Role;
use crate::verify::PeerVerifier;
use crate::verify::describe;

/// The ALPN protocol of gRPC (HTTP/2); tonic's client insists on it.
pub const ALPN_H2: &[u8] = b"h2";

/// The one crypto provider: ring (see docs/OPERATIONS.md "TLS").
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS: its certificate (naming its cluster), its key, and the CA it trusts for peers
/// and client certificates.
pub struct NodeTls {
    cluster: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    peer_verifier: Arc<PeerVerifier>,
    /// For tonic's client identity, which takes PEM.
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl NodeTls {
    /// Load and check: `cert` is a node certificate naming a cluster, signed by `ca`, valid
    /// now, and `key` is its key.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<NodeTls, TlsError> {
        let cert_pem = read(cert)?;
        let chain = certificates(cert, &cert_pem)?;
        let key_pem = read(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
            path: key.to_path_buf(),
            reason: format!("no private key: {e}"),
        })?;
        let roots = roots(ca)?;
        let cluster = match Role::of_certificate(&chain[0]) {
            Some(Role::Node { cluster }) => cluster,
            other => {
                return Err(TlsError::File {
                    path: cert.to_path_buf(),
                    reason: format!(
                        "is {}, not a node certificate naming its cluster (make one with `flotilla certs node`)",
                        describe(&other)
                    ),
                });
            }
        };
        // The chain checks peers will make of this certificate, made now.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Invalid(format!("CA {}: {e}", ca.display())))?;
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map_err(|e| TlsError::File {
                path: cert.to_path_buf(),
                reason: format!("is not valid under the CA {}: {e}", ca.display()),
            })?;
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Invalid(format!("CA {}: {e}", ca.display())))?;
        let peer_verifier = Arc::new(PeerVerifier::new(webpki, cluster.clone()));
        let tls = NodeTls {
            cluster,
            chain,
            key: key_der,
            roots,
            peer_verifier,
            cert_pem,
            key_pem,
        };
        // Catches a key that is not the certificate's.
        tls.server_config(vec![ALPN_H2.to_vec()])
            .map_err(|e| TlsError::File {
                path: key.to_path_buf(),
                reason: format!("does not go with {}: {e}", cert.display()),
            })?;
        Ok(tls)
    }

    /// The cluster this node's certificate names.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The server side of a port: this node's certificate; a client certificate is optional
    /// (tokens authenticate clients) but, when one is presented, its chain must verify against
    /// the CA. Which caller may call what is decided per call, from the verified certificate.
    /// `alpn`: `h2` for gRPC; an HTTP port adds `http/1.1`.
    pub fn server_config(&self, alpn: Vec<Vec<u8>>) -> Result<Arc<ServerConfig>, TlsError> {
        let clients = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Invalid(format!("client verifier: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(clients)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The gRPC port's server side ([`NodeTls::server_config`] with `h2`).
    pub fn grpc_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config(vec![ALPN_H2.to_vec()])
    }

    /// Dial a peer over mutual TLS: present this node's certificate, and accept only a peer
    /// whose certificate the CA signed for the dialled host and that names this node's
    /// cluster. `endpoint` must be an `https://` one.
    pub fn dial(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        let config =
            ClientTlsConfig::new().identity(Identity::from_pem(self.cert_pem.clone(), self.key_pem.clone()));
        endpoint.tls_config_with_verifier(config, self.peer_verifier())
    }

    /// The check of a dialled peer (see [`PeerVerifier`]).
    pub fn peer_verifier(&self) -> Arc<PeerVerifier> {
        self.peer_verifier.clone()
    }

    /// The rustls client side of [`NodeTls::dial`], for a dialler other than tonic's.
    pub fn peer_client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(self.peer_verifier())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Never prints the key.
impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A client's TLS: the CA that signed the nodes, and optionally a client certificate.
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Never prints the key.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Load and check the CA, and the client certificate and key if given.
    pub fn load(ca: &Path, cert_and_key: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
        let ca_pem = read(ca)?;
        certificates(ca, &ca_pem)?;
        let identity = match cert_and_key {
            None => None,
            Some((cert, key)) => {
                let cert_pem = read(cert)?;
                certificates(cert, &cert_pem)?;
                let key_pem = read(key)?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::File {
                    path: key.to_path_buf(),
                    reason: format!("no private key: {e}"),
                })?;
                Some((cert_pem, key_pem))
            }
        };
        Ok(ClientTls { ca_pem, identity })
    }

    /// TLS on `endpoint` (an `https://` one): nodes must present a certificate of the CA for
    /// the host dialled.
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint.tls_config(config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file: at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            reason: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.to_path_buf(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

/// The CA file's certificates as trust roots.
fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca, &read(ca)?)? {
        roots.add(cert).map_err(|e| TlsError::File {
            path: ca.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(roots))
}
