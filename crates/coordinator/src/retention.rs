//! Which results the results stream must keep, and purging the rest.
//!
//! Every job a coordinator holds has a *floor*: the lowest stream sequence
//! any of its results can have. A live job holds its floor until it is
//! answered, and then until its deadline plus `results_keep` (a client
//! that missed events reads the stream until then). A coordinator's floor
//! is the lowest of its jobs' (or, holding none, just past the last result
//! it has seen). Coordinators tell each other their floors every second on
//! `toolfan.coordinator.floor`, and each purges the stream below the
//! lowest floor heard within `floor_ttl`: one cheap purge by sequence a
//! second, whatever the number of jobs. (Purging each answered job's
//! subject costs nats-server 2.9 a scan of the stream per purge: at 100
//! jobs/s it took a third of a core and stalled the fleet.)
//!
//! A dead coordinator's floor is kept for `floor_ttl`, longer than the
//! jobs consumer's ack wait, so its jobs are redelivered and held by a new
//! owner before their results can go; a coordinator that has just started
//! purges nothing for that long, for the same reason.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{CoordinatorFloor as FloorMessage, PROTOCOL_VERSION};
use toolfan_transport::Topology;

/// How often floors are told and the stream purged.
const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Holds {
    next_id: u64,
    /// Live jobs' floors, by hold id.
    live: HashMap<u64, u64>,
    /// Answered jobs' floors, released at their time.
    answered: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Other coordinators' floors and when each was heard.
    peers: HashMap<String, (u64, Instant)>,
}

/// The results this coordinator's jobs still need.
#[derive(Clone)]
pub(crate) struct Retention {
    holds: Arc<Mutex<Holds>>,
    /// The highest stream sequence the results follower has delivered.
    seen: Arc<AtomicU64>,
}

/// One job's claim on its results; released (or kept until a time) by
/// [`Hold::release_at`], dropped at once when the job is handed back.
pub(crate) struct Hold {
    id: u64,
    retention: Retention,
}

impl Retention {
    /// Starts from `seen`, the follower's last delivered sequence.
    pub(crate) fn new(seen: Arc<AtomicU64>) -> Self {
        Self {
            holds: Arc::default(),
            seen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holds> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a new job's results: anything stored from now on (`taken_over`
    /// jobs hold everything until [`Hold::lower_to`] says where theirs start).
    pub(crate) fn hold(&self, taken_over: bool) -> Hold {
        let floor = if taken_over {
            0
        } else {
            self.seen.load(Ordering::Relaxed) + 1
        };
        let mut holds = self.lock();
        let id = holds.next_id;
        holds.next_id += 1;
        holds.live.insert(id, floor);
        Hold {
            id,
            retention: self.clone(),
        }
    }

    /// This coordinator's floor at `now`.
    fn own_floor(&self, now: Instant) -> u64 {
        let mut holds = self.lock();
        while holds
            .answered
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            holds.answered.pop();
        }
        let live = holds.live.values().copied().min();
        let answered = holds.answered.iter().map(|Reverse((_, f))| *f).min();
        let none_held = self.seen.load(Ordering::Relaxed) + 1;
        [live, answered]
            .into_iter()
            .flatten()
            .fold(none_held, u64::min)
    }

    /// The lowest floor of every coordinator heard within `ttl`, this one's included.
    fn fleet_floor(&self, own: u64, now: Instant, ttl: Duration) -> u64 {
        let mut holds = self.lock();
        holds
            .peers
            .retain(|_, (_, heard)| now.duration_since(*heard) < ttl);
        holds.peers.values().map(|(f, _)| *f).fold(own, u64::min)
    }

    fn heard(&self, peer: FloorMessage, now: Instant) {
        self.lock()
            .peers
            .insert(peer.coordinator, (peer.floor, now));
    }
}

impl Hold {
    /// A taken-over job's results start at `floor` (its first stored result).
    pub(crate) fn lower_to(&self, floor: u64) {
        if let Some(f) = self.retention.lock().live.get_mut(&self.id) {
            *f = floor;
        }
    }

    /// The job is answered: keep its results until `at`.
    pub(crate) fn release_at(self, at: Instant) {
        let mut holds = self.retention.lock();
        if let Some(floor) = holds.live.remove(&self.id) {
            holds.answered.push(Reverse((at, floor)));
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.retention.lock().live.remove(&self.id);
    }
}

/// Tells the fleet this coordinator's floor and purges below the fleet's,
/// every second until `stop`. Nothing is purged during the first `ttl`.
pub(crate) async fn run(
    retention: Retention,
    topology: Topology,
    coordinator: String,
    ttl: Duration,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let client = topology.js.client();
    let subject = topology.subjects.coordinator_floor();
    let mut floors = client.subscribe(subject.clone()).await?;
    let mut trimmer = Trimmer {
        retention,
        topology,
        client,
        subject,
        coordinator,
        ttl,
        started: Instant::now(),
        purged: 0,
    };
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => trimmer.tell_and_purge().await,
                Some(message) = floors.next() => trimmer.heard(&message.payload),
                _ = stop.cancelled() => return,
            }
        }
    }))
}

/// The state of [`run`]'s task.
struct Trimmer {
    retention: Retention,
    topology: Topology,
    client: async_nats::Client,
    /// Where floors are told.
    subject: String,
    /// This coordinator's name in the floors it tells.
    coordinator: String,
    ttl: Duration,
    started: Instant,
    /// Everything up to this sequence is purged already.
    purged: u64,
}

impl Trimmer {
    /// Takes a floor message of another coordinator (its own are ignored).
    fn heard(&self, payload: &[u8]) {
        match toolfan_protocol::decode::<FloorMessage>("floor", payload) {
            Ok(peer) if peer.coordinator != self.coordinator => {
                self.retention.heard(peer, Instant::now())
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ignoring a malformed floor message"),
        }
    }

    /// Tells this coordinator's floor, and purges below the fleet's once
    /// the first `ttl` has passed.
    async fn tell_and_purge(&mut self) {
        let now = Instant::now();
        let own = self.retention.own_floor(now);
        let told = FloorMessage {
            v: PROTOCOL_VERSION,
            coordinator: self.coordinator.clone(),
            floor: own,
        };
        let _ = self
            .client
            .publish(self.subject.clone(), toolfan_protocol::encode(&told).into())
            .await;
        let floor = self.retention.fleet_floor(own, now, self.ttl);
        if now.duration_since(self.started) >= self.ttl && floor > self.purged + 1 {
            match self.topology.purge_results_below(floor).await {
                Ok(_) => self.purged = floor - 1,
                Err(e) => {
                    tracing::debug!(error = %e, "results not purged; trying again in a second")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(seen: u64) -> Retention {
        Retention::new(Arc::new(AtomicU64::new(seen)))
    }

    #[test]
    fn a_live_job_holds_what_is_stored_after_it_started() {
        let r = retention(100);
        let now = Instant::now();
        let hold = r.hold(false);
        r.seen.store(500, Ordering::Relaxed);
        assert_eq!(
            r.own_floor(now),
            101,
            "the live job's results start past 100"
        );
        drop(hold);
        assert_eq!(
            r.own_floor(now),
            501,
            "nothing held: everything seen may go"
        );
    }

    #[test]
    fn an_answered_job_holds_until_its_time_and_a_taken_over_one_from_its_first_result() {
        let r = retention(100);
        let now = Instant::now();
        let answered = r.hold(false);
        r.seen.store(200, Ordering::Relaxed);
        answered.release_at(now + Duration::from_secs(30));
        let taken = r.hold(true);
        assert_eq!(
            r.own_floor(now),
            0,
            "a takeover holds everything until replayed"
        );
        taken.lower_to(50);
        assert_eq!(r.own_floor(now), 50);
        drop(taken);
        assert_eq!(r.own_floor(now), 101);
        assert_eq!(r.own_floor(now + Duration::from_secs(31)), 201);
    }

    #[test]
    fn the_fleet_floor_is_the_lowest_heard_recently() {
        let r = retention(0);
        let now = Instant::now();
        let peer = |floor| FloorMessage {
            v: 1,
            coordinator: "b".into(),
            floor,
        };
        r.heard(peer(40), now);
        let ttl = Duration::from_secs(35);
        assert_eq!(r.fleet_floor(90, now, ttl), 40);
        assert_eq!(
            r.fleet_floor(90, now + ttl, ttl),
            90,
            "a silent peer's floor lapses"
        );
    }
}
