//! Handshakes in memory (tokio duplex pipes) between the configs this crate builds, with
//! certificates from [`crate::generate`]: who may talk to whom, and the accept stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::DuplexStream;
use tokio_rustls::TlsConnector;
use tonic::transport::server::TlsConnectInfo;

use crate::NodeTls;
use crate::PeerCertificates;
use crate::Role;
use crate::generate;
use crate::generate::LEAF_DAYS;
use crate::load::ALPN_H2;
use crate::peer::caller_role;
use crate::verify::NotOurCluster;

/// Two CAs, and node certificates of clusters "a" and "b" under the first, "a" under the second.
struct Pki {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        generate::make_ca(&root.join("ca1"), 1).unwrap();
        generate::make_ca(&root.join("ca2"), 1).unwrap();
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        for (ca, cluster, out) in [
            ("ca1", "a", "a1"),
            ("ca1", "a", "a2"),
            ("ca1", "b", "b1"),
            ("ca2", "a", "x1"),
        ] {
            generate::make_node(&root.join(ca), cluster, &hosts, &root.join(out), LEAF_DAYS).unwrap();
        }
        generate::make_client(&root.join("ca1"), "ops", &root.join("client"), LEAF_DAYS).unwrap();
        Pki { _dir: dir, root }
    }

    fn node(&self, name: &str) -> NodeTls {
        let dir = self.root.join(name);
        NodeTls::load(&dir.join("node.pem"), &dir.join("node.key"), &dir.join("ca.pem")).unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Dial `server` from `client` (as a peer) over a pipe; the server side's result and the
/// client side's.
async fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> (
    std::io::Result<tokio_rustls::server::TlsStream<DuplexStream>>,
    std::io::Result<tokio_rustls::client::TlsStream<DuplexStream>>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("localhost").unwrap();
    let accept = tokio_rustls::TlsAcceptor::from(server).accept(a);
    let connect = TlsConnector::from(client).connect(name, b);
    let (mut served, mut dialled) = tokio::join!(accept, connect);
    // TLS 1.3: the server's verdict on the client certificate reaches the client with the
    // first read; make one so a refusal shows on both sides.
    if let (Ok(s), Ok(c)) = (&mut served, &mut dialled) {
        c.write_all(b"x").await.unwrap();
        c.flush().await.unwrap();
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
    }
    (served, dialled)
}

fn refused_for_cluster(err: &std::io::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) =
        err.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    other.0.downcast_ref::<NotOurCluster>().map(|e| e.to_string())
}

#[tokio::test]
async fn nodes_of_one_cluster_talk_with_mutual_tls() {
    let pki = Pki::new();
    let (a1, a2) = (pki.node("a1"), pki.node("a2"));
    assert_eq!(a1.cluster(), "a");
    let (served, dialled) =
        handshake(a1.peer_client_config().unwrap(), a2.grpc_server_config().unwrap()).await;
    let served = served.unwrap();
    dialled.unwrap();
    let (_, session) = served.get_ref();
    assert_eq!(session.alpn_protocol(), Some(ALPN_H2));

    // What a call on this connection reads: tonic stores the connection's info in the request,
    // here wrapped once more (as a connection guard would), forwarding the certificates.
    #[derive(Clone)]
    struct Wrapped<C>(C);
    impl<C: PeerCertificates> PeerCertificates for Wrapped<C> {
        fn peer_certificates(&self) -> Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>> {
            self.0.peer_certificates()
        }
    }
    let info = Wrapped(tonic::transport::server::Connected::connect_info(&served));
    let mut req = tonic::Request::new(());
    req.extensions_mut().insert(info);
    let a = Some(Role::Node { cluster: "a".into() });
    assert_eq!(caller_role::<Wrapped<TlsConnectInfo<()>>, _>(&req), a);
    // Under another type (tonic's own `peer_certs` looks for TLS over TCP) nothing is found.
    assert!(req.peer_certs().is_none());
    assert_eq!(caller_role::<TlsConnectInfo<()>, _>(&req), None);
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused_by_the_dialler() {
    let pki = Pki::new();
    let (a1, b1) = (pki.node("a1"), pki.node("b1"));
    let (_, dialled) = handshake(a1.peer_client_config().unwrap(), b1.grpc_server_config().unwrap()).await;
    let err = dialled.unwrap_err();
    assert_eq!(
        refused_for_cluster(&err).as_deref(),
        Some("the peer's certificate is a node of cluster 'b', not a node of cluster 'a'"),
        "{err}"
    );
}

#[tokio::test]
async fn a_node_of_another_ca_is_refused_both_ways() {
    let pki = Pki::new();
    let (a1, x1) = (pki.node("a1"), pki.node("x1"));
    // x1 dials a1: x1 does not trust a1's CA, and a1 would not trust x1's certificate.
    let (served, dialled) =
        handshake(x1.peer_client_config().unwrap(), a1.grpc_server_config().unwrap()).await;
    let err = dialled.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(served.is_err());
    // A dialler that would trust anything is still refused by a1: its client certificate is
    // not of a1's CA.
    let trusting = rustls::ClientConfig::builder_with_provider(crate::load::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(a1.peer_verifier())
        .with_client_auth_cert(
            rustls::pki_types::pem::PemObject::pem_file_iter(pki.path("x1/node.pem"))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            rustls::pki_types::pem::PemObject::from_pem_file(pki.path("x1/node.key")).unwrap(),
        )
        .unwrap();
    let (served, _) = handshake(Arc::new(trusting), a1.grpc_server_config().unwrap()).await;
    assert!(served.unwrap_err().to_string().contains("UnknownIssuer"));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_served() {
    let pki = Pki::new();
    let a1 = pki.node("a1");
    // ClientTls goes into tonic (tested with real nodes in tests/); the same trust here.
    crate::ClientTls::load(&pki.path("client/ca.pem"), None).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_file_iter(pki.path("ca1/ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::load::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (served, dialled) = handshake(Arc::new(config), a1.grpc_server_config().unwrap()).await;
    dialled.unwrap();
    assert!(served.unwrap().get_ref().1.peer_certificates().is_none());
}

#[test]
fn loading_refuses_what_cannot_work_and_names_the_file() {
    let pki = Pki::new();
    let load = |cert: &str, key: &str, ca: &str| {
        NodeTls::load(&pki.path(cert), &pki.path(key), &pki.path(ca))
            .unwrap_err()
            .to_string()
    };
    let err = load("client/client.pem", "client/client.key", "ca1/ca.pem");
    assert!(err.contains("client 'ops', not a node certificate"), "{err}");
    let err = load("a1/node.pem", "a1/node.key", "ca2/ca.pem");
    assert!(err.contains("is not valid under the CA"), "{err}");
    let err = load("a1/node.pem", "a2/node.key", "ca1/ca.pem");
    assert!(err.contains("a2/node.key: does not go with"), "{err}");
    let err = load("a1/node.key", "a1/node.key", "ca1/ca.pem");
    assert!(err.contains("no certificate"), "{err}");
    let err = load("a1/nope.pem", "a1/node.key", "ca1/ca.pem");
    assert!(err.contains("a1/nope.pem"), "{err}");
    assert!(crate::ClientTls::load(&pki.path("a1/node.key"), None).is_err());
    assert!(
        crate::ClientTls::load(
            &pki.path("ca1/ca.pem"),
            Some((&pki.path("client/client.pem"), &pki.path("client/client.pem")))
        )
        .is_err()
    );
}

/// Connections the accept stream gets, over pipes.
fn pipes(n: usize) -> (Vec<DuplexStream>, Vec<DuplexStream>) {
    (0..n).map(|_| tokio::io::duplex(64 * 1024)).unzip()
}

#[tokio::test]
async fn the_accept_stream_drops_failed_handshakes_and_serves_the_rest() {
    let pki = Pki::new();
    let (a1, a2) = (pki.node("a1"), pki.node("a2"));
    let (server_ends, mut client_ends) = pipes(3);
    let incoming = futures::stream::iter(server_ends.into_iter().map(Ok::<_, std::io::Error>));
    let mut accepted = crate::accept(incoming, a2.grpc_server_config().unwrap(), Duration::from_secs(5));
    // 0: plaintext HTTP/2 preface; 1: silent (times out); 2: a peer of the cluster.
    let good = client_ends.pop().unwrap();
    let _silent = client_ends.pop().unwrap();
    let mut plain = client_ends.pop().unwrap();
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let dial = tokio::spawn(async move {
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(a1.peer_client_config().unwrap())
            .connect(name, good)
            .await
    });
    let first = accepted.next().await.unwrap().unwrap();
    assert!(first.get_ref().1.peer_certificates().is_some());
    dial.await.unwrap().unwrap();
    // The silent one times out and the stream, its input exhausted, ends.
    tokio::time::pause();
    assert!(accepted.next().await.is_none());
}

#[tokio::test]
async fn a_ca_bundle_trusts_old_and_new_during_a_rotation() {
    let pki = Pki::new();
    let bundle = pki.path("bundle.pem");
    let mut both = std::fs::read(pki.path("ca1/ca.pem")).unwrap();
    both.extend(std::fs::read(pki.path("ca2/ca.pem")).unwrap());
    std::fs::write(&bundle, both).unwrap();
    let load = |dir: &str| {
        let dir = pki.path(dir);
        NodeTls::load(&dir.join("node.pem"), &dir.join("node.key"), &bundle).unwrap()
    };
    // a1 (old CA) and x1 (new CA), both of cluster "a", talk while both trust the bundle.
    let (old, new) = (load("a1"), load("x1"));
    let (served, dialled) = handshake(
        old.peer_client_config().unwrap(),
        new.grpc_server_config().unwrap(),
    )
    .await;
    served.unwrap();
    dialled.unwrap();
}
