//! Pings: the keep-alive (a stream that answers none for [`SessionSettings::missed_pings`]
//! intervals counts as broken), and, while the worker runs tasks, the stream's round trip that
//! lease-ahead covers (`worker/core/prefetch.rs`).
//!
//! [`SessionSettings::missed_pings`]: super::SessionSettings::missed_pings

use flotilla_proto::v1 as pb;
use flotilla_proto::v1::node_message::Msg as Out;
use futures::Stream;
use tokio::time::Instant;
use tonic::Status;

use super::Phase;
use super::Session;

impl<S> Session<S>
where
    S: Stream<Item = Result<pb::WorkerMessage, Status>> + Unpin + Send,
{
    pub(super) fn ping(&mut self) {
        let silent = self.last_pong.elapsed();
        if silent > self.settings.ping_interval * self.settings.missed_pings {
            return self.broken(&format!("no pong for {} ms", silent.as_millis()));
        }
        self.send_ping();
    }

    fn send_ping(&mut self) {
        self.nonce += 1;
        if self.probe.is_none() {
            self.probe = Some((self.nonce, Instant::now()));
        }
        self.send(Out::Ping(pb::Ping { nonce: self.nonce }));
    }

    /// While the worker runs tasks, a ping per heartbeat interval (one at a time) measures the
    /// stream's round trip as tasks meet it (queued behind results and the worker's own loop),
    /// which lease-ahead covers (`core/prefetch.rs`). An idle stream has only the keep-alive
    /// pings.
    pub(super) fn probe_stream(&mut self) {
        if self.phase == Phase::Open && self.probe.is_none() && !self.running.is_empty() {
            self.send_ping();
        }
    }

    pub(super) fn pong(&mut self, nonce: u64) {
        let now = Instant::now();
        self.last_pong = now;
        if let Some((probe, sent)) = self.probe
            && nonce >= probe
        {
            self.probe = None;
            if nonce == probe {
                let took = now.saturating_duration_since(sent);
                self.core().stream_round_trip(took);
            }
        }
    }
}
