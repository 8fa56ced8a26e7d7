//! Gathering a job's results: the first result per index wins, in the order
//! of the results stream, for the coordinator and the caller alike.

use toolfan_protocol::TaskResult;

/// Which of a job's tasks have their result, and whether it succeeded.
/// The results themselves go straight on to the caller.
#[derive(Debug)]
pub(crate) struct Gather {
    slots: Vec<Option<bool>>,
    filled: usize,
    succeeded: u32,
}

/// What happened to a result offered to [`Gather::accept`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// It is the task's result.
    First,
    /// The task already had one; this one is dropped.
    Duplicate,
    /// Its index is not a task of the job.
    OutOfRange,
}

impl Gather {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            slots: vec![None; total],
            filled: 0,
            succeeded: 0,
        }
    }

    /// Records `result` unless its task already has one.
    pub(crate) fn accept(&mut self, result: &TaskResult) -> Accepted {
        let Some(slot) = self.slots.get_mut(result.index as usize) else {
            return Accepted::OutOfRange;
        };
        if slot.is_some() {
            return Accepted::Duplicate;
        }
        self.succeeded += u32::from(result.is_ok());
        *slot = Some(result.is_ok());
        self.filled += 1;
        Accepted::First
    }

    /// Indices still without a result.
    pub(crate) fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| i as u32)
    }

    /// How many tasks have their result.
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }

    /// Whether every task has its result.
    pub(crate) fn complete(&self) -> bool {
        self.filled == self.slots.len()
    }

    /// Results that succeeded.
    pub(crate) fn succeeded(&self) -> u32 {
        self.succeeded
    }

    /// Results that failed.
    pub(crate) fn failed(&self) -> u32 {
        self.filled as u32 - self.succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use toolfan_protocol::{ErrorKind, TaskError};

    fn ok(index: u32, v: i64) -> TaskResult {
        TaskResult {
            index,
            outcome: Ok(json!(v)),
            attempts: 1,
            duration_ms: 1,
            worker: None,
        }
    }

    #[test]
    fn first_result_per_index_wins() {
        let mut g = Gather::new(3);
        assert_eq!(g.accept(&ok(2, 20)), Accepted::First);
        assert_eq!(g.accept(&ok(2, 21)), Accepted::Duplicate);
        let late = TaskResult::decided(0, TaskError::new(ErrorKind::DeadlineExceeded, "late"));
        assert_eq!(g.accept(&late), Accepted::First);
        assert_eq!(g.accept(&ok(0, 1)), Accepted::Duplicate);
        assert_eq!(g.accept(&ok(3, 1)), Accepted::OutOfRange);
        assert_eq!(g.missing().collect::<Vec<_>>(), vec![1]);
        assert!(!g.complete());
        assert_eq!(g.accept(&ok(1, 10)), Accepted::First);
        assert!(g.complete());
        assert_eq!((g.succeeded(), g.failed()), (2, 1));
    }
}
