//! Jobs whose tasks use earlier results: a task's `after` (run once those
//! tasks succeeded) and the `$from` references in its args (replaced by
//! an earlier task's value before dispatch, implying `after`), and the
//! checks that make a job's tasks a graph without cycles.
//!
//! # Layout
//! - `reference` — [`Ref`]: reading, writing and replacing references.
//! - `check` — the graph's checks (indices in range, no self-reference,
//!   no cycle), each naming the task.

mod check;
mod reference;

pub use reference::{each_reference, substitute, Ref, Unresolved, FROM_KEY};

pub(crate) use check::check_graph;

use crate::Task;

impl Task {
    /// Runs the task only once the tasks `indices` of the same job
    /// succeeded (it reads `dependency_failed` if one did not).
    ///
    /// ```
    /// use serde_json::json;
    /// use toolfan_protocol::Task;
    ///
    /// let summary = Task::new("summarise", json!({})).after([0, 1]);
    /// assert_eq!(summary.after, vec![0, 1]);
    /// ```
    pub fn after(mut self, indices: impl IntoIterator<Item = u32>) -> Self {
        self.after.extend(indices);
        self
    }

    /// Whether the task's args hold a `$from` reference.
    pub fn has_references(&self) -> bool {
        let mut any = false;
        each_reference(&self.args, &mut |_, _| any = true);
        any
    }

    /// The tasks this one waits for: its `after` and the tasks its args
    /// refer to, sorted, each once (references that cannot be read are
    /// left out: validation refuses them).
    pub fn dependencies(&self) -> Vec<u32> {
        let mut deps = self.after.clone();
        each_reference(&self.args, &mut |_, reference| {
            if let Ok(reference) = reference {
                deps.push(reference.task());
            }
        });
        deps.sort_unstable();
        deps.dedup();
        deps
    }
}

#[cfg(test)]
mod tests;
