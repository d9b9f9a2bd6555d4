//! The quick start's certificates (`flotilla certs ca|node|client`), made with rcgen: a CA, node
//! certificates naming their cluster and host names, and client certificates. Keys are ECDSA
//! P-256, written with mode 0600; nothing existing is ever overwritten (a CA key above all).
//!
//! Every output directory gets a copy of the CA certificate, so one directory holds all a node
//! (or a client) needs: `--tls-cert DIR/node.pem --tls-key DIR/node.key --tls-ca DIR/ca.pem`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::path::PathBuf;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::SanType;
use time::Duration;
use time::OffsetDateTime;

use crate::TlsError;
use crate::names::Role;
use crate::names::check_name;

/// The CA certificate's file name, in the CA's directory and in every directory made from it.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name (keep it off the nodes).
pub const CA_KEY: &str = "ca.key";
/// A node certificate's file name.
pub const NODE_CERT: &str = "node.pem";
/// A node key's file name.
pub const NODE_KEY: &str = "node.key";
/// A client certificate's file name.
pub const CLIENT_CERT: &str = "client.pem";
/// A client key's file name.
pub const CLIENT_KEY: &str = "client.key";

/// Default lifetime of a CA, in days (ten years).
pub const CA_DAYS: u32 = 3650;
/// Default lifetime of a node or client certificate, in days.
pub const LEAF_DAYS: u32 = 365;

/// Make a CA in `out`: `ca.pem` and `ca.key`.
pub fn make_ca(out: &Path, days: u32) -> Result<Vec<PathBuf>, TlsError> {
    let files = Outputs::new(out, &[CA_CERT, CA_KEY])?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    // Named after its key, so two CAs never share a name (a chain checker looks issuers up by
    // name, and says "unknown issuer" rather than "bad signature" for another CA's certificate).
    let id: String = params.key_identifier(&key)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("flotilla CA {id}"));
    // The CA signs node and client certificates directly; no intermediate CA below it.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days)?;
    let cert = params.self_signed(&key)?;
    files.write(&[(CA_CERT, cert.pem(), false), (CA_KEY, key.serialize_pem(), true)])
}

/// Make a certificate for a node of `cluster` reachable as each of `names` (host names or IP
/// addresses: every address it advertises), signed by the CA in `ca_dir`, in `out`:
/// `node.pem`, `node.key` and a copy of `ca.pem`. It serves TLS and dials peers with it.
pub fn make_node(
    ca_dir: &Path,
    cluster: &str,
    names: &[String],
    out: &Path,
    days: u32,
) -> Result<Vec<PathBuf>, TlsError> {
    check_name(cluster).map_err(|e| TlsError::Invalid(format!("cluster name {e}")))?;
    if names.is_empty() {
        return Err(TlsError::Invalid(
            "a node certificate needs at least one host name or IP address".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    for name in names {
        params.subject_alt_names.push(host_san(name)?);
    }
    let role = Role::Node {
        cluster: cluster.to_string(),
    };
    params
        .subject_alt_names
        .push(SanType::URI(role.uri().try_into()?));
    // Mutual TLS between nodes: the same certificate serves and dials.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    issue(ca_dir, params, out, days, NODE_CERT, NODE_KEY)
}

/// Make a client certificate named `name`, signed by the CA in `ca_dir`, in `out`:
/// `client.pem`, `client.key` and a copy of `ca.pem`. Only needed where nodes ask for client
/// certificates; `ca.pem` alone lets a client verify the nodes.
pub fn make_client(ca_dir: &Path, name: &str, out: &Path, days: u32) -> Result<Vec<PathBuf>, TlsError> {
    check_name(name).map_err(|e| TlsError::Invalid(format!("client name {e}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let role = Role::Client {
        name: name.to_string(),
    };
    params
        .subject_alt_names
        .push(SanType::URI(role.uri().try_into()?));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca_dir, params, out, days, CLIENT_CERT, CLIENT_KEY)
}

/// Sign `params` (a leaf) with the CA of `ca_dir` and write it, its key and the CA to `out`.
fn issue(
    ca_dir: &Path,
    mut params: CertificateParams,
    out: &Path,
    days: u32,
    cert_name: &str,
    key_name: &str,
) -> Result<Vec<PathBuf>, TlsError> {
    let ca_cert_path = ca_dir.join(CA_CERT);
    let ca_pem = read_text(&ca_cert_path)?;
    let ca_key_path = ca_dir.join(CA_KEY);
    let ca_key = KeyPair::from_pem(&read_text(&ca_key_path)?).map_err(|e| TlsError::File {
        path: ca_key_path.clone(),
        reason: format!("not a private key: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| TlsError::File {
        path: ca_cert_path.clone(),
        reason: format!("not a CA certificate: {e}"),
    })?;
    // The CA copy is the only file that may already be there (the CA's own directory).
    let copy_ca = !same_file_content(&out.join(CA_CERT), ca_pem.as_bytes());
    let names: Vec<&str> = if copy_ca {
        vec![cert_name, key_name, CA_CERT]
    } else {
        vec![cert_name, key_name]
    };
    let files = Outputs::new(out, &names)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let mut writes = vec![
        (cert_name, cert.pem(), false),
        (key_name, key.serialize_pem(), true),
    ];
    if copy_ca {
        writes.push((CA_CERT, ca_pem, false));
    }
    files.write(&writes)
}

/// A host name or IP address as a SAN.
fn host_san(name: &str) -> Result<SanType, TlsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(TlsError::Invalid(format!(
            "'{name}' is neither a host name nor an IP address"
        )));
    }
    Ok(SanType::DnsName(name.try_into()?))
}

/// Valid from an hour ago (clocks differ) for `days`.
fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), TlsError> {
    if days == 0 {
        return Err(TlsError::Invalid(
            "a certificate must be valid for at least one day".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    Ok(())
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn same_file_content(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|existing| existing == content)
}

/// The files one command writes, all checked absent before any is written.
struct Outputs {
    dir: PathBuf,
}

impl Outputs {
    fn new(dir: &Path, names: &[&str]) -> Result<Outputs, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for name in names {
            let path = dir.join(name);
            if path.exists() {
                return Err(TlsError::File {
                    path,
                    reason: "already exists; nothing was written (choose another --out)".into(),
                });
            }
        }
        Ok(Outputs {
            dir: dir.to_path_buf(),
        })
    }

    /// Write each `(name, content, secret)`; a secret is readable by its owner only.
    fn write(&self, files: &[(&str, String, bool)]) -> Result<Vec<PathBuf>, TlsError> {
        let mut written = Vec::new();
        for (name, content, secret) in files {
            let path = self.dir.join(name);
            let io = |source| TlsError::Io {
                path: path.clone(),
                source,
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(if *secret { 0o600 } else { 0o644 });
            }
            let mut file = options.open(&path).map_err(io)?;
            file.write_all(content.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    fn cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    #[test]
    fn certificates_name_their_role_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let written = make_ca(&ca, CA_DAYS).unwrap();
        assert_eq!(written, vec![ca.join(CA_CERT), ca.join(CA_KEY)]);
        assert!(
            make_ca(&ca, CA_DAYS)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );

        let node = dir.path().join("n1");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        make_node(&ca, "prod", &names, &node, LEAF_DAYS).unwrap();
        assert_eq!(
            Role::of_certificate(&cert(&node.join(NODE_CERT))),
            Some(Role::Node {
                cluster: "prod".into()
            })
        );
        assert_eq!(
            std::fs::read(node.join(CA_CERT)).unwrap(),
            std::fs::read(ca.join(CA_CERT)).unwrap()
        );
        let client = dir.path().join("c");
        make_client(&ca, "ops", &client, LEAF_DAYS).unwrap();
        assert_eq!(
            Role::of_certificate(&cert(&client.join(CLIENT_CERT))),
            Some(Role::Client { name: "ops".into() })
        );
        // Into the CA's own directory: the CA copy is not needed and not an obstacle.
        make_client(&ca, "ops", &ca, LEAF_DAYS).unwrap();
        assert_eq!(Role::of_certificate(&cert(&ca.join(CA_CERT))), None);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(node.join(NODE_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        make_ca(&ca, CA_DAYS).unwrap();
        let out = dir.path().join("n");
        let host = vec!["h".to_string()];
        assert!(make_node(&ca, "a/b", &host, &out, 1).is_err());
        assert!(make_node(&ca, "a", &[], &out, 1).is_err());
        assert!(make_node(&ca, "a", &["bad host".to_string()], &out, 1).is_err());
        assert!(make_node(&ca, "a", &host, &out, 0).is_err());
        assert!(make_node(&dir.path().join("nope"), "a", &host, &out, 1).is_err());
        assert!(!out.join(NODE_KEY).exists());
    }
}
