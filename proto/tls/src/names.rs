//! What a certificate says its holder is: a [`Role`], written as one URI subject alternative
//! name (SAN) beside the usual DNS and IP names.
//!
//! - `flotilla://cluster/<cluster>/node`: a node of cluster `<cluster>`. Nodes accept peer calls
//!   only from such a certificate naming their own cluster, and dial only peers whose
//!   certificate does; a node of another cluster signed by the same CA is refused both ways.
//! - `flotilla://client/<name>`: a client. It names no cluster: tokens, not certificates, say
//!   what a client may do.
//!
//! The cluster name is the operator's (`flotilla certs node --cluster NAME`), chosen before
//! any node runs; it is not the cluster id a founder draws at start (that id exists only once
//! the cluster does, too late to sign for).

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// The URI scheme of Flotilla's names.
const SCHEME: &str = "flotilla://";

/// Longest cluster or client name.
pub const MAX_NAME_LEN: usize = 64;

/// What a certificate's holder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A node of `cluster`.
    Node { cluster: String },
    /// A client named `name`.
    Client { name: String },
}

impl Role {
    /// The URI SAN that names this role.
    pub fn uri(&self) -> String {
        match self {
            Role::Node { cluster } => format!("{SCHEME}cluster/{cluster}/node"),
            Role::Client { name } => format!("{SCHEME}client/{name}"),
        }
    }

    /// The role a URI names, if it is one of ours and well formed.
    pub fn from_uri(uri: &str) -> Option<Role> {
        let path = uri.strip_prefix(SCHEME)?;
        let role = match path.split('/').collect::<Vec<_>>().as_slice() {
            ["cluster", cluster, "node"] => Role::Node {
                cluster: (*cluster).to_string(),
            },
            ["client", name] => Role::Client {
                name: (*name).to_string(),
            },
            _ => return None,
        };
        let name = match &role {
            Role::Node { cluster } => cluster,
            Role::Client { name } => name,
        };
        check_name(name).ok()?;
        Some(role)
    }

    /// The role named by `cert`: `None` when it names none, more than one, or does not parse.
    /// Only meaningful for a certificate whose chain was verified (rustls did it during the
    /// handshake).
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Option<Role> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let sans = parsed.subject_alternative_name().ok()??;
        let mut ours = sans.value.general_names.iter().filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(SCHEME) => Some(*uri),
            _ => None,
        });
        // One role per certificate: a certificate naming two would be a node of two clusters.
        match (ours.next(), ours.next()) {
            (Some(uri), None) => Role::from_uri(uri),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Node { cluster } => write!(f, "a node of cluster '{cluster}'"),
            Role::Client { name } => write!(f, "client '{name}'"),
        }
    }
}

/// A cluster or client name: 1-64 of `A-Z a-z 0-9 - _ .` (it goes into a URI path).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a name (1-{MAX_NAME_LEN} of A-Z a-z 0-9 - _ .)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_strangers_are_not_roles() {
        for role in [
            Role::Node {
                cluster: "prod-eu.1".into(),
            },
            Role::Client { name: "ops".into() },
        ] {
            assert_eq!(Role::from_uri(&role.uri()), Some(role));
        }
        assert_eq!(
            Role::Node { cluster: "a".into() }.uri(),
            "flotilla://cluster/a/node"
        );
        for uri in [
            "https://cluster/a/node",
            "flotilla://cluster/a/node/x",
            "flotilla://cluster//node",
            "flotilla://cluster/../node",
            "flotilla://cluster/a b/node",
            "flotilla://client/",
            "flotilla://cluster/a/client",
        ] {
            assert_eq!(Role::from_uri(uri), None, "{uri}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("prod").is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
