//! A job's tasks as a graph: which tasks wait for which (`after` and
//! `$from` references), which become ready as results come, which fail
//! because a task they wait for did, and the values references still
//! need.
//!
//! Memory stays bounded by what is still to be read: a task's value is
//! kept only while some task that refers to it has not been dispatched,
//! and dropped when the last such task is; the resolved copy of a
//! dispatched task (args replaced) is kept only until its result, for the
//! safety net's re-dispatch. A coordinator taking a job over rebuilds all
//! of it from the replayed results, which pass through [`Graph::finished`]
//! like live ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use toolfan_protocol::{ErrorKind, Task, TaskError};

/// Where a task stands in its job's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waits for tasks still without a successful result.
    Blocked,
    /// Handed to the window (or dispatched).
    Ready,
    /// Has its result, or is being answered without running.
    Settled,
}

/// What a result changed in the graph.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Unblocked {
    /// Tasks whose every dependency has now succeeded.
    pub(crate) ready: Vec<u32>,
    /// Tasks that will not run, with their `dependency_failed` error.
    pub(crate) failed: Vec<(u32, TaskError)>,
}

/// The dependencies of one job's tasks.
#[derive(Debug)]
pub(crate) struct Graph {
    stages: Vec<Stage>,
    /// Per task, how many of its dependencies have not succeeded yet.
    waiting_on: Vec<u32>,
    /// Per task, the tasks that wait for it.
    dependents: Vec<Vec<u32>>,
    /// Per task, how many undispatched tasks refer to its value.
    readers: Vec<u32>,
    /// The tasks each undispatched task with references reads from.
    reads: HashMap<u32, Vec<u32>>,
    /// Values some undispatched task refers to.
    values: HashMap<u32, Value>,
    /// Dispatched tasks with their references replaced.
    resolved: Resolved,
}

impl Graph {
    /// The graph of `tasks`, and the tasks ready at once (in order).
    pub(crate) fn new(tasks: &[Task]) -> (Self, Vec<u32>) {
        let n = tasks.len();
        let mut graph = Self {
            stages: vec![Stage::Ready; n],
            waiting_on: vec![0; n],
            dependents: vec![Vec::new(); n],
            readers: vec![0; n],
            reads: HashMap::new(),
            values: HashMap::new(),
            resolved: Resolved::default(),
        };
        for (i, task) in tasks.iter().enumerate() {
            if task.after.is_empty() && !task.has_references() {
                continue;
            }
            // A validated job names only tasks in range; others are ignored.
            let deps: Vec<u32> = task
                .dependencies()
                .into_iter()
                .filter(|&d| (d as usize) < n && d as usize != i)
                .collect();
            let mut readers = Vec::new();
            toolfan_protocol::graph::each_reference(&task.args, &mut |_, r| {
                readers.extend(r.ok().map(|r| r.task()).filter(|&d| (d as usize) < n))
            });
            readers.sort_unstable();
            readers.dedup();
            for &d in &readers {
                graph.readers[d as usize] += 1;
            }
            if !readers.is_empty() {
                graph.reads.insert(i as u32, readers);
            }
            graph.waiting_on[i] = deps.len() as u32;
            graph.stages[i] = if deps.is_empty() {
                Stage::Ready
            } else {
                Stage::Blocked
            };
            for d in deps {
                graph.dependents[d as usize].push(i as u32);
            }
        }
        let ready = (0..n as u32)
            .filter(|&i| graph.stages[i as usize] == Stage::Ready)
            .collect();
        (graph, ready)
    }

    /// The dispatched tasks' resolved copies, shared with the job's messages.
    pub(crate) fn resolved(&self) -> Resolved {
        self.resolved.clone()
    }

    /// Whether task `index`'s value is still to be read by a reference.
    pub(crate) fn needs_value(&self, index: u32) -> bool {
        self.readers.get(index as usize).is_some_and(|&r| r > 0)
    }

    /// Task `index` has its first result (`value` given when it succeeded
    /// and [`needs_value`](Self::needs_value) said so): its dependents
    /// become ready or fail.
    pub(crate) fn finished(&mut self, index: u32, ok: bool, value: Option<Value>) -> Unblocked {
        let mut out = Unblocked::default();
        let Some(stage) = self.stages.get_mut(index as usize) else {
            return out;
        };
        *stage = Stage::Settled;
        self.resolved.remove(index);
        self.release(index);
        if let Some(value) = value.filter(|_| ok && self.needs_value(index)) {
            self.values.insert(index, value);
        }
        for d in std::mem::take(&mut self.dependents[index as usize]) {
            if self.stages[d as usize] != Stage::Blocked {
                continue;
            }
            if ok {
                self.waiting_on[d as usize] -= 1;
                if self.waiting_on[d as usize] == 0 {
                    self.stages[d as usize] = Stage::Ready;
                    out.ready.push(d);
                }
            } else {
                self.stages[d as usize] = Stage::Settled;
                let message = format!("task {index}, which task {d} waits for, did not succeed");
                out.failed
                    .push((d, TaskError::new(ErrorKind::DependencyFailed, message)));
            }
        }
        for &(d, _) in &out.failed {
            self.release(d);
        }
        out
    }

    /// Task `index` is about to be dispatched. A task with dependencies
    /// gets its resolved copy (references replaced, `after` dropped; kept
    /// for re-dispatch until its result); a reference that names nothing
    /// is the task's `invalid_args` error. Sending again is idempotent.
    pub(crate) fn resolve(&mut self, index: u32, spec: &Task) -> Result<(), TaskError> {
        if (spec.after.is_empty() && !self.reads.contains_key(&index))
            || self.resolved.contains(index)
        {
            return Ok(());
        }
        let values = &self.values;
        let args = toolfan_protocol::graph::substitute(&spec.args, &|d| values.get(&d))
            .map_err(|e| format!("task {index}'s args: {e}"));
        self.release(index);
        let args = args.map_err(|e| TaskError::new(ErrorKind::InvalidArgs, e))?;
        let mut task = spec.clone();
        task.args = args;
        task.after.clear();
        self.resolved.insert(index, task);
        Ok(())
    }

    /// Task `index` reads no more values: each one it referred to loses a
    /// reader, and is dropped with its last.
    fn release(&mut self, index: u32) {
        for d in self.reads.remove(&index).unwrap_or_default() {
            let readers = &mut self.readers[d as usize];
            *readers -= 1;
            if *readers == 0 {
                self.values.remove(&d);
            }
        }
    }

    /// How many values are kept for references now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.values.len()
    }
}

/// Dispatched tasks with their references replaced, by index: the job's
/// loop writes them, the publisher reads them when it encodes a dispatch.
#[derive(Debug, Default, Clone)]
pub(crate) struct Resolved(Arc<Mutex<HashMap<u32, Arc<Task>>>>);

impl Resolved {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Task>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Task `index` as it is to be sent, if it was resolved.
    pub(crate) fn get(&self, index: u32) -> Option<Arc<Task>> {
        self.lock().get(&index).cloned()
    }

    fn contains(&self, index: u32) -> bool {
        self.lock().contains_key(&index)
    }

    fn insert(&self, index: u32, task: Task) {
        self.lock().insert(index, Arc::new(task));
    }

    fn remove(&self, index: u32) {
        self.lock().remove(&index);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use toolfan_protocol::Ref;

    use super::*;

    #[test]
    fn tasks_become_ready_as_their_dependencies_succeed_and_values_are_dropped_when_read() {
        let tasks = vec![
            Task::new("search", json!({})),
            Task::new("search", json!({})),
            Task::new("fetch", json!({"url": Ref::to(0).at("/url")})),
            Task::new("sum", json!({"a": Ref::to(0), "b": Ref::to(2)})).after([1]),
        ];
        let (mut g, ready) = Graph::new(&tasks);
        assert_eq!(ready, vec![0, 1]);
        assert!(g.needs_value(0) && !g.needs_value(1));
        let value = Some(json!({"url": "https://x"}));
        assert_eq!(g.finished(0, true, value).ready, vec![2]);
        assert_eq!(g.finished(1, true, None), Unblocked::default());
        g.resolve(2, &tasks[2]).unwrap();
        assert_eq!(
            g.resolved().get(2).unwrap().args,
            json!({"url": "https://x"})
        );
        assert_eq!(g.kept(), 1, "task 3 still reads task 0");
        assert_eq!(g.finished(2, true, Some(json!("page"))).ready, vec![3]);
        assert!(g.resolved().get(2).is_none(), "dropped with its result");
        g.resolve(3, &tasks[3]).unwrap();
        let sent = g.resolved().get(3).unwrap();
        assert_eq!(sent.args, json!({"a": {"url": "https://x"}, "b": "page"}));
        assert!(sent.after.is_empty());
        assert_eq!(g.kept(), 0, "no undispatched task reads anything");
    }

    #[test]
    fn a_failed_dependency_fails_its_dependents_once_naming_it() {
        let tasks = vec![
            Task::new("a", json!({})),
            Task::new("b", json!({})),
            Task::new("c", json!({})).after([0, 1]),
            Task::new("d", json!({"x": Ref::to(0).at("/nope")})),
        ];
        let (mut g, ready) = Graph::new(&tasks);
        assert_eq!(ready, vec![0, 1]);
        let out = g.finished(1, false, None);
        assert_eq!(out.failed.len(), 1);
        let (index, error) = &out.failed[0];
        assert_eq!((*index, &error.kind), (2, &ErrorKind::DependencyFailed));
        assert!(error.message.contains("task 1"), "{}", error.message);
        let out = g.finished(0, true, Some(json!({"url": 1})));
        assert_eq!(out.ready, vec![3], "task 2 already failed");
        let refused = g.resolve(3, &tasks[3]).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidArgs);
        assert!(refused.message.contains("/nope"), "{}", refused.message);
        assert_eq!(g.kept(), 0);
    }
}
