//! flotilla-tls: TLS for Flotilla's ports, with rustls (ring provider), shared by the node, the
//! client and the `flotilla certs` quick start. The operator's guide is docs/OPERATIONS.md
//! "TLS".
//!
//! - [`names`]: what a certificate says its holder is ([`Role`]): a node of a named cluster,
//!   or a client, as a `flotilla://` URI subject alternative name.
//! - [`load`]: PEM files into [`NodeTls`] (the server side of a node's ports, and mutual TLS
//!   to its peers) and [`ClientTls`]; both checked when loaded.
//! - [`verify`]: [`verify::PeerVerifier`], the check a node makes of the peer it dials: the
//!   CA's, then that the peer is a node of the same cluster.
//! - [`peer`]: [`peer::PeerCertificates`], how a served call reaches its connection's verified
//!   certificate, and [`peer::caller_role`].
//! - [`mod@accept`]: TLS on a stream of accepted connections (concurrent handshakes, each under a
//!   deadline), for tonic's `serve_with_incoming` or an HTTP server.
//! - [`generate`]: the quick start's CA, node and client certificates (rcgen).
//!
//! The trust model in one line: the CA says who is who (a node of cluster C, or a client); a
//! node serves anyone with TLS, calls between nodes need a node certificate of the same
//! cluster at both ends, and tokens (not certificates) say what a client may do.

pub mod accept;
pub mod generate;
pub mod load;
pub mod names;
pub mod peer;
pub mod verify;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use accept::accept;
pub use load::ClientTls;
pub use load::NodeTls;
pub use names::Role;
pub use peer::PeerCertificates;
/// The certificate type of [`PeerCertificates`], for implementers outside this crate.
pub use rustls::pki_types::CertificateDer;

/// Why TLS could not be set up (at start, or by `flotilla certs`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that is there but unfit (bad PEM, wrong kind of certificate, not the CA's).
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}
