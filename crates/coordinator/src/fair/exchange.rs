//! The coordinators' exchange of their use of the fleet on
//! `toolfan.coordinator.fair`, and the tick that wakes jobs held back by
//! their share when places free up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use toolfan_protocol::FairReport;

use super::Fair;

/// How often jobs held back are woken (when places freed up) and reports
/// are considered.
const TICK: Duration = Duration::from_millis(5);
/// A changed use is told at most this often.
const TELL_CHANGES: Duration = Duration::from_millis(20);
/// An unchanged, non-empty use is told again this often.
const TELL_AGAIN: Duration = Duration::from_secs(1);

/// Starts the exchange: tells this coordinator's use as `coordinator`
/// and hears the others', until `stop`.
pub(crate) async fn start(
    fair: Arc<Fair>,
    client: async_nats::Client,
    subject: String,
    coordinator: String,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let mut reports = client.subscribe(subject.clone()).await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut told = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(report) = fair.tick(&coordinator, told.elapsed()) {
                        told = Instant::now();
                        let payload = toolfan_protocol::encode(&report);
                        if let Err(e) = client.publish(subject.clone(), payload.into()).await {
                            tracing::debug!(error = %e, "fair-share report not sent");
                        }
                    }
                }
                Some(message) = reports.next() => fair.heard(&coordinator, &message.payload),
                _ = stop.cancelled() => return,
            }
        }
    }))
}

impl Fair {
    /// One tick: wakes jobs held back if places freed up or a report
    /// expired, and gives the report to tell, if one is due.
    fn tick(&self, coordinator: &str, since_told: Duration) -> Option<FairReport> {
        let (wake, report) = {
            let mut book = self.book();
            let expired = book.expire();
            let wake = std::mem::take(&mut book.freed) || expired;
            let due = (book.dirty && since_told >= TELL_CHANGES)
                || (book.busy() && since_told >= TELL_AGAIN);
            let report = due.then(|| {
                book.dirty = false;
                book.own_report(coordinator)
            });
            (wake, report)
        };
        if wake {
            self.wake();
        }
        report
    }

    /// Another coordinator's report (this one's own are skipped).
    fn heard(&self, coordinator: &str, payload: &[u8]) {
        match toolfan_protocol::decode::<FairReport>("fair-share report", payload) {
            Ok(report) if report.coordinator != coordinator => {
                self.book().heard(report);
                self.wake();
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ignoring a malformed fair-share report"),
        }
    }
}
