//! The calls a client prefetched lately, which its later calls claim: the
//! registry behind [`Client::prefetch`](crate::Client::prefetch), kept
//! apart so the client holds it without depending on the prefetch module.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use toolfan_protocol::Task;

/// The calls this client prefetched lately: (tool, cache id) → until when
/// a confirmed call may still claim them.
#[derive(Debug, Default)]
pub(crate) struct Prefetched(Mutex<HashMap<(String, String), Instant>>);

impl Prefetched {
    /// Remembers the cached calls among `tasks` as claimable until `until`.
    pub(crate) fn remember(&self, tasks: &[Task], until: Instant) {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        calls.retain(|_, until| *until > now);
        for task in tasks {
            if let Some(id) = task.cache_id() {
                calls.insert((task.tool.to_string(), id), until);
            }
        }
    }

    /// Marks the uncached calls among `tasks` that equal a live prefetch as
    /// cached, so they share its outcome.
    pub(crate) fn claim(&self, tasks: &mut [Task]) {
        let calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if calls.is_empty() {
            return;
        }
        let now = Instant::now();
        for task in tasks.iter_mut().filter(|t| !t.is_cached()) {
            task.cache = calls
                .get(&(task.tool.to_string(), task.args_cache_id()))
                .is_some_and(|until| *until > now);
        }
    }
}
