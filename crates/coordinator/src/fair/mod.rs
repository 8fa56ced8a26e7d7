//! Fair shares of the fleet between callers, and between one caller's
//! jobs.
//!
//! Tool queues are first in, first out. Left alone, one caller's wide job
//! would put all its tasks in its tool's queue at once, and a small job
//! of another caller would wait behind every one of them. So each job
//! dispatches a tool's tasks only up to its share of `room`: the tool's
//! places in the fleet (the live workers' slots for it) plus `slack` more,
//! which keeps every worker fed between a result and the next dispatch.
//! A newcomer's tasks then wait behind at most `slack` tasks' worth of
//! the queue, and its share is carved out of the others' as soon as their
//! coordinators hear of it.
//!
//! Shares are weighted max-min fair (`share`): first between the callers
//! using the tool (a `caller:<name>` definition in the limits store gives
//! a weight and a cap on its tasks in flight), then evenly between a
//! caller's jobs wanting more. Each coordinator knows its own jobs' use
//! exactly (`book`) and hears the others' on `toolfan.coordinator.fair`
//! (`exchange`); nothing waits on Redis or on another coordinator to
//! dispatch.

mod book;
mod exchange;
mod rules;
mod share;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use toolfan_protocol::ToolName;

use crate::registry::Registry;
use book::{Book, ToolUse};
pub(crate) use exchange::start as start_exchange;
pub(crate) use rules::follow as follow_rules;

/// How long a tool's capacity, read from the registry, is reused.
const CAPACITY_FOR: Duration = Duration::from_millis(250);

/// How fair shares are sized.
#[derive(Debug, Clone, Copy)]
pub struct FairOptions {
    /// Off: every job dispatches up to its own window, first in, first out.
    pub enabled: bool,
    /// Places queued beyond the fleet's slots for a tool, as a fraction of them.
    pub slack: f64,
    /// ... and at least this many.
    pub min_slack: u32,
}

impl Default for FairOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            slack: 1.0,
            min_slack: 8,
        }
    }
}

/// The coordinator's fair shares; shared by its jobs.
pub(crate) struct Fair {
    book: Mutex<Book>,
    capacity: Mutex<HashMap<ToolName, (Instant, u32)>>,
    registry: Arc<Registry>,
    options: FairOptions,
    next_key: std::sync::atomic::AtomicU64,
    /// Bumped when places may have freed up for jobs held back.
    changed: watch::Sender<u64>,
}

impl Fair {
    pub(crate) fn new(registry: Arc<Registry>, options: FairOptions) -> Self {
        Self {
            book: Mutex::default(),
            capacity: Mutex::default(),
            registry,
            options,
            next_key: Default::default(),
            changed: watch::Sender::new(0),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account of a job of `caller` whose groups of tasks are for
    /// `tools`; its use is forgotten when it is dropped.
    pub(crate) fn job(self: &Arc<Self>, caller: &str, tools: Vec<ToolName>) -> JobShare {
        let key = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        JobShare {
            fair: self.clone(),
            key,
            caller: Arc::from(caller),
            held: vec![false; tools.len()],
            tools,
            changed: self.changed.subscribe(),
        }
    }

    /// A tool's places in the fleet, slack included; `None` when no live
    /// worker is known to serve it (its tasks wait in the queue anyway).
    fn room(&self, tool: &ToolName) -> Option<u32> {
        let mut cache = self.capacity.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = match cache.get(tool) {
            Some(&(at, n)) if at.elapsed() < CAPACITY_FOR => n,
            _ => {
                let n = self.registry.capacity(tool);
                cache.insert(tool.clone(), (Instant::now(), n));
                n
            }
        };
        let slack = (f64::from(capacity) * self.options.slack).ceil() as u32;
        (capacity > 0).then(|| capacity.saturating_add(slack.max(self.options.min_slack)))
    }

    /// Wakes the jobs held back by their share.
    fn wake(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One job's account with the fair shares: its groups of tasks are its
/// tools, in the order of `tools`.
pub(crate) struct JobShare {
    fair: Arc<Fair>,
    key: u64,
    caller: Arc<str>,
    tools: Vec<ToolName>,
    /// Groups with tasks held back by the share at the last dispatch.
    pub(crate) held: Vec<bool>,
    changed: watch::Receiver<u64>,
}

impl JobShare {
    /// How many more of its tasks of each group the job may dispatch now
    /// (`u32::MAX`: no bound from the shares); clears `held`.
    pub(crate) fn room(&mut self) -> Vec<u32> {
        self.held.iter_mut().for_each(|h| *h = false);
        if !self.fair.options.enabled {
            return vec![u32::MAX; self.tools.len()];
        }
        let rooms: Vec<Option<u32>> = self.tools.iter().map(|t| self.fair.room(t)).collect();
        let book = self.fair.book();
        self.tools
            .iter()
            .zip(rooms)
            .map(|(tool, room)| match room {
                Some(room) => book.allowance(self.key, &self.caller, tool, room),
                None => u32::MAX,
            })
            .collect()
    }

    /// Whether some of the job's tasks are held back by its share.
    pub(crate) fn held_any(&self) -> bool {
        self.held.iter().any(|&h| h)
    }

    /// Tells the book what the job has in flight per group (`out`) and
    /// where it is held back.
    pub(crate) fn report(&self, out: &[u32]) {
        if !self.fair.options.enabled {
            return;
        }
        let uses = self
            .tools
            .iter()
            .zip(out.iter().zip(&self.held))
            .filter(|(_, (&out, &held))| out > 0 || held)
            .map(|(tool, (&out, &wanting))| ToolUse {
                tool: tool.clone(),
                out,
                wanting,
            })
            .collect();
        self.fair.book().report(self.key, &self.caller, uses);
    }

    /// Resolves when places may have freed up (call again after each).
    pub(crate) async fn changed(&mut self) {
        if self.changed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for JobShare {
    fn drop(&mut self) {
        self.fair.book().forget(self.key);
    }
}
