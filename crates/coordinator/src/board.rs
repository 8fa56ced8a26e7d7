//! The coordinator's board of jobs ([`Board`]): each live job's progress,
//! counted by the job loop in a few atomics it owns a share of (no lock
//! on the loop's path), and a bounded ring of the jobs it finished; told
//! to whoever asks on `toolfan.coordinator.jobs` ([`serve`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::jobs::MAX_TASK_TOOLS;
use toolfan_protocol::{
    decode, encode, CoordinatorJobs, FinishedJob, JobId, JobSummary, JobsRequest, LiveJobInfo,
    Subjects, ToolName, WaitingTask, RECENT_JOBS,
};

use crate::intake::AcceptedJob;

/// A live job's results so far, counted by its loop.
#[derive(Debug)]
pub(crate) struct Progress {
    job: Arc<AcceptedJob>,
    info: LiveJobInfo,
    succeeded: AtomicU32,
    failed: AtomicU32,
    /// Its tasks waiting for a person (rarely any; set by the job loop).
    waiting: Mutex<Vec<WaitingTask>>,
}

impl Progress {
    fn new(job: &Arc<AcceptedJob>) -> Self {
        Self {
            job: job.clone(),
            info: LiveJobInfo {
                job: job.id.clone(),
                caller: job.caller.clone(),
                total: job.spec.tasks.len() as u32,
                done: 0,
                succeeded: 0,
                failed: 0,
                started_unix_ms: job.submitted_unix_ms,
                deadline_unix_ms: job.deadline().unix_ms(),
                tools: tools_of(job),
                task_tools: Vec::new(),
                waiting: Vec::new(),
            },
            succeeded: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// The job's tasks waiting for a person now.
    pub(crate) fn set_waiting(&self, waiting: Vec<WaitingTask>) {
        *lock(&self.waiting) = waiting;
    }

    /// Counts a task's first result.
    pub(crate) fn record(&self, ok: bool) {
        let counter = if ok { &self.succeeded } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The job's progress now, with each task's tool if `asked` names it.
    fn snapshot(&self, asked: Option<&JobId>) -> LiveJobInfo {
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let tasks = &self.job.spec.tasks;
        let task_tools = if asked == Some(&self.job.id) && tasks.len() <= MAX_TASK_TOOLS {
            tasks.iter().map(|t| t.tool.clone()).collect()
        } else {
            Vec::new()
        };
        LiveJobInfo {
            done: succeeded + failed,
            succeeded,
            failed,
            task_tools,
            waiting: lock(&self.waiting).clone(),
            ..self.info.clone()
        }
    }
}

/// The distinct tools of a job's tasks, the first [`toolfan_protocol::jobs::LISTED_TOOLS`].
fn tools_of(job: &AcceptedJob) -> Vec<ToolName> {
    let mut tools: Vec<ToolName> = Vec::new();
    for task in &job.spec.tasks {
        if tools.len() == toolfan_protocol::jobs::LISTED_TOOLS {
            break;
        }
        if !tools.contains(&task.tool) {
            tools.push(task.tool.clone());
        }
    }
    tools
}

/// What a coordinator tells about its jobs.
#[derive(Debug)]
pub(crate) struct Board {
    coordinator: String,
    live: Mutex<BTreeMap<JobId, Arc<Progress>>>,
    recent: Mutex<VecDeque<FinishedJob>>,
}

/// A job's place on the board while it is live; dropping it takes the job off.
pub(crate) struct OnBoard<'a> {
    board: &'a Board,
    job: JobId,
    /// The job's counters.
    pub(crate) progress: Arc<Progress>,
}

impl Drop for OnBoard<'_> {
    fn drop(&mut self) {
        lock(&self.board.live).remove(&self.job);
    }
}

impl Board {
    /// An empty board of coordinator `coordinator`.
    pub(crate) fn new(coordinator: String) -> Self {
        Self {
            coordinator,
            live: Mutex::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_JOBS)),
        }
    }

    /// Puts a job that starts running on the board.
    pub(crate) fn enter(&self, job: &Arc<AcceptedJob>) -> OnBoard<'_> {
        let progress = Arc::new(Progress::new(job));
        lock(&self.live).insert(job.id.clone(), progress.clone());
        OnBoard {
            board: self,
            job: job.id.clone(),
            progress,
        }
    }

    /// Remembers an answered job among the recent ones (the oldest forgotten).
    pub(crate) fn finished(&self, job: &AcceptedJob, summary: &JobSummary) {
        let finished = FinishedJob {
            job: job.id.clone(),
            caller: job.caller.clone(),
            total: summary.total,
            succeeded: summary.succeeded,
            failed: summary.failed,
            status: summary.status,
            ended_by: summary.ended_by,
            reason: summary.reason.clone(),
            duration_ms: summary.duration_ms,
            ended_unix_ms: toolfan_protocol::now_unix_ms(),
            tools: tools_of(job),
        };
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_JOBS {
            recent.pop_back();
        }
        recent.push_front(finished);
    }

    /// The listing as it stands, with each task's tool of job `asked`.
    pub(crate) fn listing(&self, asked: Option<&JobId>) -> CoordinatorJobs {
        let mut live: Vec<LiveJobInfo> = lock(&self.live)
            .values()
            .map(|p| p.snapshot(asked))
            .collect();
        live.sort_by_key(|j| j.started_unix_ms);
        CoordinatorJobs {
            v: toolfan_protocol::PROTOCOL_VERSION,
            coordinator: self.coordinator.clone(),
            live_total: u32::try_from(live.len()).unwrap_or(u32::MAX),
            live,
            recent: lock(&self.recent).iter().cloned().collect(),
        }
    }
}

/// `listing` encoded in at most `max` bytes (the server's largest
/// message): with thousands of live jobs, the newest are left out, half
/// at a time, keeping the one asked about; `live_total` still counts all.
fn fit(mut listing: CoordinatorJobs, asked: Option<&JobId>, max: usize) -> Vec<u8> {
    let mut bytes = encode(&listing);
    while bytes.len() > max && listing.live.len() > 1 {
        let mut keep = listing.live.len() / 2;
        let at = asked.and_then(|id| listing.live.iter().position(|j| &j.job == id));
        let kept = match at {
            Some(at) if at >= keep => {
                keep -= 1;
                Some(listing.live.swap_remove(at))
            }
            _ => None,
        };
        listing.live.truncate(keep);
        listing.live.extend(kept);
        bytes = encode(&listing);
    }
    bytes
}

/// A lock that a panic elsewhere does not poison for good: the board's
/// data stays consistent under any single update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers every request on `toolfan.coordinator.jobs` with the board's
/// listing, until `stop`.
pub(crate) async fn serve(
    client: &async_nats::Client,
    subjects: &Subjects,
    board: Arc<Board>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut requests = client.subscribe(subjects.coordinator_jobs()).await?;
    let client = client.clone();
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                request = requests.next() => request,
                _ = stop.cancelled() => break,
            };
            let Some(request) = request else { break };
            let Some(reply) = request.reply else { continue };
            let asked = (!request.payload.is_empty())
                .then(|| decode::<JobsRequest>("jobs request", &request.payload))
                .and_then(|r| {
                    r.map_err(|e| tracing::debug!(error = %e, "an unreadable jobs request"))
                        .ok()
                })
                .and_then(|r| r.job);
            let max = client.server_info().max_payload;
            let listing = fit(board.listing(asked.as_ref()), asked.as_ref(), max);
            if let Err(e) = client.publish(reply, listing.into()).await {
                tracing::debug!(error = %e, "cannot answer a jobs request");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolfan_protocol::{CallerId, EndedBy, Job, JobStatus, Policy, Task, TraceParent};

    fn job(id: &str, tools: &[&str]) -> AcceptedJob {
        let tasks = tools
            .iter()
            .map(|t| Task::new(*t, serde_json::json!({})))
            .collect();
        AcceptedJob {
            id: JobId::new(id).unwrap(),
            caller: CallerId::new("acme").unwrap(),
            spec: Job::new(tasks),
            submitted_unix_ms: 1_000,
            trace: TraceParent::generate(),
        }
    }

    fn summary(job: &AcceptedJob) -> JobSummary {
        JobSummary {
            job: job.id.clone(),
            status: JobStatus::Completed,
            policy: Policy::All,
            total: job.spec.tasks.len() as u32,
            succeeded: 1,
            failed: 1,
            duration_ms: 7,
            ended_by: EndedBy::AllDone,
            reason: None,
            error: None,
        }
    }

    #[test]
    fn a_live_job_counts_its_results_and_leaves_when_dropped() {
        let board = Board::new("c1".into());
        let live = job("j1", &["a", "b", "a"]);
        let live = Arc::new(live);
        let on_board = board.enter(&live);
        on_board.progress.record(true);
        on_board.progress.record(false);
        assert!(board.listing(None).live[0].task_tools.is_empty());
        let listed = board.listing(Some(&live.id));
        assert_eq!(listed.live[0].task_tools.len(), 3);
        assert_eq!(listed.coordinator, "c1");
        let entry = &listed.live[0];
        assert_eq!(
            (entry.done, entry.succeeded, entry.failed, entry.total),
            (2, 1, 1, 3)
        );
        let tools: Vec<&str> = entry.tools.iter().map(|t| t.as_str()).collect();
        assert_eq!(tools, ["a", "b"]);
        assert_eq!(entry.deadline_unix_ms, live.deadline().unix_ms());
        board.finished(&live, &summary(&live));
        drop(on_board);
        let listed = board.listing(None);
        assert!(listed.live.is_empty());
        assert_eq!(listed.recent[0].job, live.id);
        assert_eq!(listed.recent[0].duration_ms, 7);
    }

    #[test]
    fn thousands_of_live_jobs_fit_in_one_message() {
        let board = Board::new("c".into());
        let jobs: Vec<_> = (0..10_000)
            .map(|i| {
                let mut j = job(&format!("j{i}"), &["search", "fetch", "summarise"]);
                j.submitted_unix_ms = 1_000 + i;
                Arc::new(j)
            })
            .collect();
        let entries: Vec<_> = jobs.iter().map(|j| board.enter(j)).collect();
        let asked = jobs[9_999].id.clone();
        let listing = board.listing(Some(&asked));
        assert!(
            encode(&listing).len() > 1024 * 1024,
            "the test must overflow"
        );
        let bytes = fit(listing, Some(&asked), 1024 * 1024);
        assert!(bytes.len() <= 1024 * 1024, "{} bytes", bytes.len());
        let fitted: CoordinatorJobs = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(fitted.live_total, 10_000);
        assert!(
            fitted.live.len() > 1_000 && fitted.live.len() < 10_000,
            "{}",
            fitted.live.len()
        );
        assert!(
            fitted.live.iter().any(|j| j.job == asked),
            "the job asked about is kept"
        );
        assert_eq!(fitted.live[0].job.as_str(), "j0", "oldest first");
        drop(entries);
    }

    #[test]
    fn recent_jobs_are_bounded_newest_first() {
        let board = Board::new("c1".into());
        let many: Vec<String> = (0..RECENT_JOBS + 5).map(|i| format!("j{i}")).collect();
        let tools: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let tools: Vec<&str> = tools.iter().map(String::as_str).collect();
        for id in &many {
            let done = job(id, &tools);
            board.finished(&done, &summary(&done));
        }
        let recent = board.listing(None).recent;
        assert_eq!(recent.len(), RECENT_JOBS);
        assert_eq!(recent[0].job.as_str(), format!("j{}", RECENT_JOBS + 4));
        assert_eq!(recent.last().unwrap().job.as_str(), "j5");
        assert_eq!(recent[0].tools.len(), toolfan_protocol::jobs::LISTED_TOOLS);
    }
}
