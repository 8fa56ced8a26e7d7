//! Gathering a job's results: the first result per index wins, in the order
//! of the results stream, for the coordinator and the caller alike.

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

    /// Records the result of task `index` unless it already has one.
    pub(crate) fn accept(&mut self, index: u32, ok: bool) -> Accepted {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Accepted::OutOfRange;
        };
        if slot.is_some() {
            return Accepted::Duplicate;
        }
        self.succeeded += u32::from(ok);
        *slot = Some(ok);
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

    /// Whether `index` is a task of the job still without a result.
    pub(crate) fn is_open(&self, index: u32) -> bool {
        self.slots.get(index as usize).is_some_and(Option::is_none)
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

    #[test]
    fn first_result_per_index_wins() {
        let mut g = Gather::new(3);
        assert_eq!(g.accept(2, true), Accepted::First);
        assert_eq!(g.accept(2, true), Accepted::Duplicate);
        assert_eq!(
            g.accept(0, false),
            Accepted::First,
            "a verdict that came first"
        );
        assert_eq!(g.accept(0, true), Accepted::Duplicate);
        assert_eq!(g.accept(3, true), Accepted::OutOfRange);
        assert_eq!(g.missing().collect::<Vec<_>>(), vec![1]);
        assert!(g.is_open(1) && !g.is_open(0) && !g.is_open(3));
        assert!(!g.complete());
        assert_eq!(g.accept(1, true), Accepted::First);
        assert!(g.complete());
        assert_eq!((g.succeeded(), g.failed()), (2, 1));
    }
}
