//! How a pool recovers from an earlier run of the same name before it leases: by default it
//! releases every lease of the name (`ReleasePool`: whatever that run held died with it). A
//! remote worker whose node failed reconnects elsewhere still running some tasks; its new
//! session *resumes* them: the pool starts with them running, and recovers by dropping the
//! name's standing capacity and releasing only the other leases, in one entry. The runner
//! works out which leases those are (it reads the replica); the core only proposes it.

use tracing::info;

use super::CoreConfig;
use super::PoolCore;
use super::Proposal;
use super::Sent;
use super::outbox::pair;
use crate::error::ProposeError;
use crate::queue::LeaseRef;
use crate::queue::Response;
use crate::queue::ops;

impl PoolCore {
    /// A pool that resumes `keep` (running already: their results come back through
    /// [`PoolCore::finished`]) and releases `release`, the other leases of its name, instead
    /// of proposing `ReleasePool`.
    pub fn resuming(cfg: CoreConfig, keep: Vec<LeaseRef>, release: Vec<LeaseRef>) -> Self {
        Self::start(cfg, Some(release), keep)
    }

    /// Propose the recovery this pool owes (it is not recovered and none is in flight).
    pub(super) fn recover(&mut self) {
        let pool = self.cfg.pool.clone();
        match &self.resume_release {
            None => {
                let op = ops::ReleasePool { pool };
                self.propose(Sent::ReleasePool, Proposal::ReleasePool(op));
            }
            Some(leases) => {
                let clear = ops::ClearStanding { pool: pool.clone() };
                let release = ops::Release {
                    pool,
                    leases: leases.clone(),
                };
                self.propose(Sent::Resume, Proposal::Resume(clear, release));
            }
        }
    }

    /// The reply to the resume's entry.
    pub(super) fn resumed(&mut self, reply: Result<Vec<Response>, ProposeError>) -> Result<(), ProposeError> {
        let (_, flags) = pair::<ops::ClearStanding, ops::Release>(reply)?;
        let released = flags.iter().filter(|f| **f).count();
        info!(pool = %self.cfg.pool, kept = self.running.len(), released, "resumed the leases of an earlier session");
        self.recovered = true;
        Ok(())
    }
}
