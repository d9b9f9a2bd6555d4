//! Step 1 of a node's start: who this data directory is (read back, founded, or asked of the
//! cluster named by `--join`) and the peer secret that proves it.

use std::sync::Arc;

use tracing::info;

use super::ServerError;
use crate::cluster::Identity;
use crate::cluster::join;
use crate::cluster::secrets;
use crate::config::Config;
use crate::network::Peers;
use crate::network::SharedSecret;

/// Step 1: this data directory's identity and peer secret: read back, or a new cluster founded
/// here (with a new secret), or an id and the secret asked of the cluster named by `--join`
/// (stored, with the join still pending). `anonymous` shows the join token.
pub(super) async fn open_identity(
    config: &Config,
    anonymous: &Peers,
) -> Result<(Identity, Arc<SharedSecret>), ServerError> {
    let data_dir = &config.data_dir;
    let (identity, secret, founded) = match Identity::load(data_dir)? {
        Some(identity) => {
            let secret = secrets::load_peer_secret(data_dir)?;
            if !config.join.is_empty() {
                let proof = shared_secret(data_dir, &secret)?;
                let member = anonymous.with_identity(&identity.cluster_id, identity.node_id, proof);
                join::check_same_cluster(&member, &config.join, &identity.cluster_id).await?;
            }
            (identity, secret, false)
        }
        None if config.join.is_empty() => {
            let identity = Identity::found();
            // The secret first: a directory with only a secret is still new (identity.rs).
            let secret = crate::secret::random_token()?;
            secrets::store_peer_secret(data_dir, &secret)?;
            identity.store(data_dir)?;
            (identity, secret, true)
        }
        None => {
            let advertise = config.advertise_addr();
            let (cluster_id, node_id, secret) =
                join::allocate_id(anonymous, &config.join, &advertise, &config.zone).await?;
            let identity = Identity::joining(cluster_id, node_id);
            secrets::store_peer_secret(data_dir, &secret.0)?;
            identity.store(data_dir)?;
            (identity, secret.0, false)
        }
    };
    if identity.pending_join && config.join.is_empty() {
        return Err(ServerError::Join(join::JoinError::Refused(
            "this node never finished joining its cluster; start it again with --join PEER".into(),
        )));
    }
    info!(node_id = identity.node_id, cluster_id = %identity.cluster_id, founded, pending_join = identity.pending_join, data_dir = %data_dir.display(), "opening node");
    Ok((identity, shared_secret(data_dir, &secret)?))
}

/// The peer proof of `secret` (read from, or stored in, `data_dir`).
pub(super) fn shared_secret(
    data_dir: &std::path::Path,
    secret: &str,
) -> Result<Arc<SharedSecret>, ServerError> {
    SharedSecret::new(secret).map(Arc::new).map_err(|e| {
        ServerError::Cluster(crate::cluster::ClusterError::BadIdentity {
            path: secrets::secret_path(data_dir),
            reason: e.to_string(),
        })
    })
}
