//! What reaches a live job from outside, routed to it by job id: its
//! results (from one coordinator-wide consumer on the results stream, in
//! stream order), its caller's cancel and keepalives (one wildcard
//! subscription each), and a redelivery of its own job message.
//!
//! So the server cost of a live job is no consumer and no subscription of
//! its own: however many jobs live here, the coordinator holds one results
//! consumer and two subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{CallerId, JobId, Subjects};
use toolfan_transport::{Follower, Topology};

/// Something for one live job.
pub(crate) enum Inbound {
    /// A message of the job's results subject and its stream sequence.
    Result { sequence: u64, payload: Bytes },
    /// The caller cancelled the job.
    Cancel,
    /// The caller still wants the job.
    Alive,
    /// The caller (or an operator) resolves a task waiting for a person;
    /// the answer goes to `reply`.
    Resolve {
        body: Bytes,
        reply: Option<async_nats::Subject>,
    },
    /// JetStream delivered the job message again (its ack wait lapsed while
    /// this coordinator runs it): the job keeps running, acking this delivery.
    Redelivered(Box<jetstream::Message>),
}

struct Route {
    caller: CallerId,
    inbox: mpsc::Sender<Inbound>,
}

/// The live jobs of this coordinator and where their messages go.
#[derive(Default)]
pub(crate) struct Routes {
    jobs: Mutex<HashMap<JobId, Route>>,
}

/// A job's place in [`Routes`]; the route goes when this drops.
pub(crate) struct Registration {
    routes: Arc<Routes>,
    job: JobId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.job);
    }
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Route>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Routes `job`'s messages to the returned receiver, which holds up to
    /// `capacity` of them; `None` if the job is live here already.
    pub(crate) fn register(
        self: &Arc<Self>,
        job: &JobId,
        caller: &CallerId,
        capacity: usize,
    ) -> Option<(Registration, mpsc::Receiver<Inbound>)> {
        let mut jobs = self.lock();
        if jobs.contains_key(job) {
            return None;
        }
        let (inbox, receiver) = mpsc::channel(capacity.max(1));
        let caller = caller.clone();
        jobs.insert(job.clone(), Route { caller, inbox });
        let registration = Registration {
            routes: self.clone(),
            job: job.clone(),
        };
        Some((registration, receiver))
    }

    /// How many jobs are live here.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Hands `inbound` to `job` if it is live here (and, for a caller's
    /// message, if `caller` is its caller); says whether it was.
    pub(crate) async fn deliver(
        &self,
        job: &JobId,
        caller: Option<&CallerId>,
        inbound: Inbound,
    ) -> bool {
        let inbox = match self.lock().get(job) {
            Some(route) if caller.is_none_or(|c| *c == route.caller) => route.inbox.clone(),
            _ => return false,
        };
        // The job's loop drains its inbox continually; waiting here is brief.
        inbox.send(inbound).await.is_ok()
    }
}

/// Hands every job's results, as `follower` reads them, to their jobs
/// until `stop`. The follower makes its consumer again after a lost
/// server, after the last sequence seen, so nothing stored meanwhile is
/// missed. `seen` keeps the highest sequence delivered.
pub(crate) fn follow_results(
    topology: &Topology,
    mut follower: Follower,
    routes: Arc<Routes>,
    seen: Arc<AtomicU64>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let prefix = format!("{}.result.", topology.subjects.prefix());
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = follower.next() => message,
                _ = stop.cancelled() => return,
            };
            let sequence = message.info().map_or(0, |info| info.stream_sequence);
            route_result(&routes, &prefix, message, sequence).await;
            // Raised once the result is in its job's inbox: the safety net
            // takes `seen` for "every result stored so far has reached its job".
            seen.fetch_max(sequence, Ordering::Relaxed);
        }
    })
}

async fn route_result(routes: &Routes, prefix: &str, message: jetstream::Message, sequence: u64) {
    let Some(job) = message
        .subject
        .strip_prefix(prefix)
        .and_then(|token| JobId::new(token).ok())
    else {
        return;
    };
    let payload = message.message.payload;
    routes
        .deliver(&job, None, Inbound::Result { sequence, payload })
        .await;
}

/// Follows every caller's cancels, keepalives and resolutions and hands
/// each to its job (if it is live here and the subject names its caller)
/// until `stop`. A resolution for a job not live here is left to the
/// coordinator that runs it (the resolver hears nothing from this one).
pub(crate) async fn follow_callers(
    client: &async_nats::Client,
    subjects: &Subjects,
    routes: Arc<Routes>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let prefix = subjects.prefix().to_owned();
    let mut cancels = client.subscribe(format!("{prefix}.cancel.*.*")).await?;
    let mut alive = client.subscribe(format!("{prefix}.alive.*.*")).await?;
    let mut resolves = client.subscribe(format!("{prefix}.resolve.*.*")).await?;
    Ok(tokio::spawn(async move {
        loop {
            let (message, inbound) = tokio::select! {
                Some(m) = cancels.next() => (m, Inbound::Cancel),
                Some(m) = alive.next() => (m, Inbound::Alive),
                Some(m) = resolves.next() => {
                    let (body, reply) = (m.payload.clone(), m.reply.clone());
                    (m, Inbound::Resolve { body, reply })
                }
                _ = stop.cancelled() => return,
                else => return,
            };
            if let Some((caller, job)) = caller_and_job(&message.subject) {
                routes.deliver(&job, Some(&caller), inbound).await;
            }
        }
    }))
}

/// The caller and job named by the last two tokens of a subject.
fn caller_and_job(subject: &str) -> Option<(CallerId, JobId)> {
    let mut tokens = subject.rsplitn(3, '.');
    let job = JobId::new(tokens.next()?).ok()?;
    let caller = CallerId::new(tokens.next()?).ok()?;
    Some((caller, job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_subjects_name_caller_and_job() {
        let (caller, job) = caller_and_job("toolfan.cancel.acme.01JOB").unwrap();
        assert_eq!((caller.as_str(), job.as_str()), ("acme", "01JOB"));
        assert!(caller_and_job("toolfan").is_none());
    }

    #[tokio::test]
    async fn a_job_is_routed_to_once_and_only_by_its_caller() {
        let routes = Arc::new(Routes::default());
        let job = JobId::new("j1").unwrap();
        let acme = CallerId::new("acme").unwrap();
        let other = CallerId::new("other").unwrap();
        let (registration, mut inbox) = routes.register(&job, &acme, 4).unwrap();
        assert!(routes.register(&job, &acme, 4).is_none(), "live already");
        assert!(!routes.deliver(&job, Some(&other), Inbound::Cancel).await);
        assert!(routes.deliver(&job, Some(&acme), Inbound::Cancel).await);
        assert!(matches!(inbox.recv().await, Some(Inbound::Cancel)));
        drop(registration);
        assert_eq!(routes.len(), 0);
        assert!(!routes.deliver(&job, None, Inbound::Alive).await);
    }
}
