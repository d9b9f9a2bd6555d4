//! [`ProgressBuffer`]: the latest progress of each task a session runs, written to the log at
//! most once per [`PROGRESS_FLUSH`].
//!
//! Every kept report is a replicated write, so a worker that reports on every loop iteration
//! must not become a write per report. The session keeps only the latest report per lease and
//! proposes what it holds in one `Progress` command when the flush is due: at most one entry
//! per session per interval, each task at most once in it, whatever the worker sends. A report
//! for a lease that then ends (its result arrives, it is aborted) is dropped: the result says
//! more. Pure (time is passed in), so it is tested without a runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::queue::Command;
use crate::queue::LeaseRef;
use crate::queue::MAX_PROGRESS_BYTES;
use crate::queue::ProgressReport;

/// The shortest time between two progress writes of one session.
pub const PROGRESS_FLUSH: Duration = Duration::from_secs(1);

/// Reports waiting for the next flush.
#[derive(Debug)]
pub struct ProgressBuffer {
    latest: BTreeMap<LeaseRef, Bytes>,
    /// No flush before this (the last flush plus the interval).
    quiet_until: Instant,
    interval: Duration,
}

impl ProgressBuffer {
    pub fn new(now: Instant, interval: Duration) -> Self {
        Self {
            latest: BTreeMap::new(),
            quiet_until: now,
            interval,
        }
    }

    /// Keep `data` as `lease`'s latest report; `Err` says why it is refused (over
    /// [`MAX_PROGRESS_BYTES`]: a protocol error).
    pub fn report(&mut self, lease: LeaseRef, data: Bytes) -> Result<(), String> {
        if data.len() > MAX_PROGRESS_BYTES {
            return Err(format!(
                "progress of {} bytes for task {} is over the limit of {MAX_PROGRESS_BYTES} bytes",
                data.len(),
                lease.task
            ));
        }
        self.latest.insert(lease, data);
        Ok(())
    }

    /// The lease ended here: its pending report is moot.
    pub fn forget(&mut self, lease: LeaseRef) {
        self.latest.remove(&lease);
    }

    /// When the session should call [`Self::flush`]: `None` while nothing waits.
    pub fn due(&self) -> Option<Instant> {
        (!self.latest.is_empty()).then_some(self.quiet_until)
    }

    /// The `Progress` command of everything waiting, if the flush is due at `now`.
    pub fn flush(&mut self, now: Instant) -> Option<Command> {
        if self.latest.is_empty() || now < self.quiet_until {
            return None;
        }
        self.quiet_until = now + self.interval;
        let reports = std::mem::take(&mut self.latest)
            .into_iter()
            .map(|(lease, data)| ProgressReport { lease, data })
            .collect();
        Some(Command::Progress { reports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(task: u64) -> LeaseRef {
        LeaseRef { task, attempt: 1 }
    }

    fn reports(cmd: Option<Command>) -> Vec<(u64, Bytes)> {
        match cmd {
            Some(Command::Progress { reports }) => {
                reports.into_iter().map(|r| (r.lease.task, r.data)).collect()
            }
            other => panic!("expected a progress command, got {other:?}"),
        }
    }

    #[test]
    fn a_chatty_worker_costs_one_write_per_interval_with_the_latest_of_each_task() {
        let t0 = Instant::now();
        let mut b = ProgressBuffer::new(t0, PROGRESS_FLUSH);
        assert_eq!(b.due(), None);
        b.report(lease(1), Bytes::from_static(b"1")).unwrap();
        assert_eq!(b.due(), Some(t0), "the first report goes out at once");
        assert_eq!(reports(b.flush(t0)), [(1, Bytes::from_static(b"1"))]);
        for i in 0..1_000 {
            b.report(lease(1), Bytes::from(format!("{i}"))).unwrap();
            b.report(lease(2), Bytes::from_static(b"two")).unwrap();
            assert!(
                b.flush(t0 + Duration::from_micros(i)).is_none(),
                "inside the interval"
            );
        }
        assert_eq!(b.due(), Some(t0 + PROGRESS_FLUSH));
        assert_eq!(
            reports(b.flush(t0 + PROGRESS_FLUSH)),
            [(1, Bytes::from_static(b"999")), (2, Bytes::from_static(b"two"))]
        );
        assert_eq!(b.due(), None);
        assert!(b.flush(t0 + 10 * PROGRESS_FLUSH).is_none(), "nothing waits");
    }

    #[test]
    fn an_ended_lease_drops_its_report_and_oversized_reports_are_refused() {
        let t0 = Instant::now();
        let mut b = ProgressBuffer::new(t0, PROGRESS_FLUSH);
        b.report(lease(1), Bytes::from_static(b"1")).unwrap();
        b.forget(lease(1));
        assert_eq!(b.due(), None);
        let err = b
            .report(lease(2), Bytes::from(vec![b'x'; MAX_PROGRESS_BYTES + 1]))
            .unwrap_err();
        assert!(err.contains("over the limit of 4096 bytes"), "{err}");
        assert!(
            b.report(lease(2), Bytes::from(vec![b'x'; MAX_PROGRESS_BYTES]))
                .is_ok()
        );
    }
}
