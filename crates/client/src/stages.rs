//! [`Stages`]: a job of dependent steps written in the order they run.

use std::ops::Range;

use toolfan_protocol::{Job, Task};

/// Builds a job stage by stage: each stage's tasks wait for the previous
/// stage's, and read its values through [`Ref`](crate::Ref)s. The whole
/// chain is one job: the coordinator dispatches each task as soon as
/// what it waits for has succeeded, with no round trip to the caller.
///
/// ```
/// use serde_json::json;
/// use toolfan::{Ref, Stages, Task};
///
/// // Three searches in parallel, one fetch per search (each as soon as
/// // its search is done), then one summary of every page.
/// let stages = Stages::new(["rust", "nats", "tokio"].map(|q| Task::new("search", json!({"q": q}))))
///     .each(|search| Task::new("fetch", json!({"url": Ref::to(search).at("/url")})))
///     .then(|pages| {
///         let pages: Vec<_> = pages.map(Ref::to).collect();
///         vec![Task::new("summarise", json!({"pages": pages}))]
///     });
/// assert_eq!(stages.last(), 6..7);
/// let job = stages.job();
/// assert_eq!(job.tasks[3].after, vec![0]);
/// assert_eq!(job.tasks[6].after, vec![3, 4, 5]);
/// ```
#[derive(Debug, Clone)]
pub struct Stages {
    tasks: Vec<Task>,
    last: Range<u32>,
}

impl Stages {
    /// A first stage of tasks that wait for nothing.
    pub fn new(first: impl IntoIterator<Item = Task>) -> Self {
        let tasks: Vec<Task> = first.into_iter().collect();
        let last = 0..tasks.len() as u32;
        Self { tasks, last }
    }

    /// A stage of one task per task of the previous stage, made by `step`
    /// from that task's index; each waits only for its own.
    pub fn each(self, mut step: impl FnMut(u32) -> Task) -> Self {
        let previous = self.last.clone();
        self.stage(previous.map(|i| step(i).after([i])).collect())
    }

    /// A stage of the tasks `step` makes from the previous stage's indices;
    /// each waits for the whole previous stage.
    pub fn then(self, step: impl FnOnce(Range<u32>) -> Vec<Task>) -> Self {
        let previous = self.last.clone();
        let tasks = step(previous.clone())
            .into_iter()
            .map(|task| task.after(previous.clone()))
            .collect();
        self.stage(tasks)
    }

    /// The indices of the last stage's tasks in the job.
    pub fn last(&self) -> Range<u32> {
        self.last.clone()
    }

    /// The tasks of every stage, in order.
    pub fn tasks(self) -> Vec<Task> {
        self.tasks
    }

    /// A job of every stage's tasks with the default window, deadline and
    /// policy (set them on the [`Job`]).
    pub fn job(self) -> Job {
        Job::new(self.tasks)
    }

    fn stage(mut self, tasks: Vec<Task>) -> Self {
        let start = self.tasks.len() as u32;
        self.tasks.extend(tasks);
        self.last = start..self.tasks.len() as u32;
        self
    }
}
