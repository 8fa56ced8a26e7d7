//! [`Recorder`]: what a tool of a [`LocalFleet`](super::LocalFleet) saw —
//! its calls, their arguments, and how many ran at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use toolfan_worker::{TaskContext, Tool, ToolFuture};

/// The calls one tool of a fleet received. Cheap to clone: clones share
/// the same counts.
///
/// Every call is counted when the tool starts it (retries included: a
/// task tried twice is two calls), and counts as running until the tool's
/// future ends or is dropped (a cancelled or timed-out call stops running
/// when the worker drops it).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    args: Mutex<Vec<Value>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Recorder {
    /// How many calls the tool has started.
    pub fn calls(&self) -> usize {
        self.args_lock().len()
    }

    /// Each call's arguments, in the order the calls started.
    pub fn args(&self) -> Vec<Value> {
        self.args_lock().clone()
    }

    /// How many calls are running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// The most calls that were running at once.
    pub fn peak_concurrency(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Forgets the calls so far: no calls, no arguments, and the peak set
    /// to the calls running now. (A [`FakeTool`](super::FakeTool)'s
    /// injected failures are not re-armed.)
    pub fn reset(&self) {
        let mut args = self.args_lock();
        args.clear();
        let running = self.inner.running.load(Ordering::SeqCst);
        self.inner.peak.store(running, Ordering::SeqCst);
    }

    /// Records a call starting with `args`; it runs until the guard drops.
    fn start(&self, args: &Value) -> Running {
        self.args_lock().push(args.clone());
        let now = self.inner.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.peak.fetch_max(now, Ordering::SeqCst);
        Running {
            counts: self.inner.clone(),
        }
    }

    /// Wraps `tool` so that every call of it is recorded here.
    pub(crate) fn around(&self, tool: Arc<dyn Tool>) -> Arc<dyn Tool> {
        Arc::new(Recorded {
            tool,
            recorder: self.clone(),
        })
    }

    /// The arguments, even if a thread panicked holding them.
    fn args_lock(&self) -> MutexGuard<'_, Vec<Value>> {
        self.inner
            .args
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One running call; ends (the running count goes down) on drop.
struct Running {
    counts: Arc<Counts>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.counts.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A tool whose calls are recorded.
struct Recorded {
    tool: Arc<dyn Tool>,
    recorder: Recorder,
}

impl Tool for Recorded {
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let running = self.recorder.start(&args);
        let call = self.tool.call(ctx, args);
        Box::pin(async move {
            let outcome = call.await;
            drop(running);
            outcome
        })
    }

    fn start(&self, runtime: toolfan_worker::ToolRuntime) {
        self.tool.start(runtime);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_the_peak() {
        let recorder = Recorder::default();
        let a = recorder.start(&serde_json::json!(1));
        let b = recorder.start(&serde_json::json!(2));
        drop(a);
        let c = recorder.start(&serde_json::json!(3));
        assert_eq!(recorder.calls(), 3);
        assert_eq!(recorder.running(), 2);
        assert_eq!(recorder.peak_concurrency(), 2);
        assert_eq!(recorder.args(), [1, 2, 3].map(Value::from));
        drop((b, c));
        recorder.reset();
        assert_eq!((recorder.calls(), recorder.peak_concurrency()), (0, 0));
    }
}
