//! The joining node's side of `node --join PEER[,PEER..]`:
//!
//! 1. [`allocate_id`]: ask any peer for an id (the leader hands it out through the log); the
//!    caller stores it (`pending_join`) before starting Raft, so Raft starts with its final id.
//! 2. the caller starts Raft and serves, so the leader can replicate to it;
//! 3. [`become_member`]: ask to be added; the leader adds a learner, waits for it to catch up
//!    and promotes it to voter. The caller then clears `pending_join`.
//!
//! A peer that cannot be reached, or one of another cluster, ends the join with a clear error
//! before anything was added, so no half-joined member is left behind.

use std::time::Duration;

use flotilla_proto::backoff::Backoff;
use tracing::info;
use tracing::warn;

use crate::network::Peers;
use crate::network::peer::AddMember;
use crate::network::peer::AdminCall;
use crate::network::peer::AdminError;
use crate::network::peer::AllocateNodeId;
use crate::network::peer::ClusterId;
use crate::network::peer::RemoveMember;
use crate::secret::Secret;
use crate::types::NodeId;

/// Rounds over the peer list before a join gives up on unreachable peers.
const ALLOCATE_ROUNDS: u32 = 5;
/// Pause between rounds over the peer list: from 100 ms, doubling, at most 1 s.
const ROUND_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot join: no peer among [{peers}] answered ({last})")]
    Unreachable { peers: String, last: String },
    #[error("cannot join: {0}")]
    Refused(String),
    /// The peer refused this node's credentials. A stranger is not told why in detail.
    #[error(
        "cannot join: {peer} refused this node ({reason}); a joining node needs a join token \
         (--token or FLOTILLA_TOKEN), made with `flotilla token create --role join`"
    )]
    Unauthorized { peer: String, reason: String },
    /// A member of another cluster refuses this node's proof of membership.
    #[error(
        "data directory belongs to cluster {ours}, but {peer} is in another cluster (it refused this node's credentials)"
    )]
    OtherCluster { ours: String, peer: String },
    #[error("could not become a member within {secs} s: {last}")]
    Timeout { secs: u64, last: String },
}

/// Send `call` to the peers in turn until one gives a definite answer.
async fn ask_any<C: AdminCall + Clone>(
    network: &Peers,
    peers: &[String],
    call: &C,
    rounds: u32,
) -> Result<(String, C::Answer), JoinError> {
    let mut last = String::from("no peers given");
    let mut backoff = ROUND_BACKOFF;
    for round in 0..rounds {
        for peer in peers {
            match network.client(0, peer).admin(call.clone()).await {
                Ok(resp) => return Ok((peer.clone(), resp)),
                Err(AdminError::Refused(msg)) => return Err(JoinError::Refused(msg)),
                Err(AdminError::Unauthorized(reason)) => {
                    return Err(JoinError::Unauthorized {
                        peer: peer.clone(),
                        reason,
                    });
                }
                Err(e) => {
                    warn!(%peer, round, error = %e, "join request failed");
                    last = format!("{peer}: {e}");
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
    Err(JoinError::Unreachable {
        peers: peers.join(","),
        last,
    })
}

/// Step 1: an id for this node in the peers' cluster, and the peer secret it proves its
/// membership with. `network` presents the join token. Returns `(cluster_id, node_id, secret)`.
pub async fn allocate_id(
    network: &Peers,
    peers: &[String],
    addr: &str,
    zone: &str,
) -> Result<(String, NodeId, Secret), JoinError> {
    let call = AllocateNodeId {
        addr: addr.to_string(),
        zone: zone.to_string(),
    };
    let (_, (cluster_id, node_id, secret)) = ask_any(network, peers, &call, ALLOCATE_ROUNDS).await?;
    info!(%cluster_id, node_id, "the cluster gave this node its id");
    Ok((cluster_id, node_id, secret))
}

/// Refuse to run a data directory of one cluster against peers of another. Unreachable peers
/// are not an error here: a restarting member does not depend on them.
/// `network` must carry this node's identity and proof: a member of another cluster refuses
/// it, which is the answer.
pub async fn check_same_cluster(network: &Peers, peers: &[String], ours: &str) -> Result<(), JoinError> {
    match ask_any(network, peers, &ClusterId {}, 1).await {
        Ok((peer, theirs)) if theirs != ours => Err(JoinError::OtherCluster {
            ours: ours.to_string(),
            peer,
        }),
        Err(JoinError::Unauthorized { peer, .. }) => Err(JoinError::OtherCluster {
            ours: ours.to_string(),
            peer,
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(error = %e, "could not check the peers' cluster; starting from the data directory");
            Ok(())
        }
    }
}

/// Step 3: be added as a learner, catch up, be promoted to voter. Retried through leader
/// changes until `timeout`.
pub async fn become_member(
    network: &Peers,
    peers: &[String],
    node_id: NodeId,
    addr: &str,
    zone: &str,
    timeout: Duration,
) -> Result<(), JoinError> {
    let call = AddMember {
        node_id,
        addr: addr.to_string(),
        zone: zone.to_string(),
    };
    let rounds = u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let attempt = ask_any(network, peers, &call, rounds);
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(JoinError::Timeout {
            secs: timeout.as_secs(),
            last: "no answer".into(),
        }),
    };
    match result {
        Ok(()) => {
            info!(node_id, "joined the cluster as a voter");
            Ok(())
        }
        Err(e) => {
            // Leave no half-joined member behind: the leader may have added this node as a
            // learner before the join failed. Best effort; a refusal means it was not added.
            let remove = RemoveMember { node_id };
            if let Ok((peer, _)) = ask_any(network, peers, &remove, 1).await {
                warn!(node_id, %peer, "join failed; removed this node's half-added membership");
            }
            Err(e)
        }
    }
}
