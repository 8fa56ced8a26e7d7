//! The dispatch window of one job: which task goes out next, keeping at
//! most `max_concurrency` of the job in flight.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    InFlight,
    Done,
}

/// Which of a job's tasks to send next.
#[derive(Debug)]
pub(crate) struct Window {
    states: Vec<State>,
    max_in_flight: usize,
    in_flight: usize,
    /// Tasks not yet sent, in order; failed dispatches go back to the front.
    queue: VecDeque<u32>,
}

impl Window {
    /// A window over every task of a job without dependencies.
    #[cfg(test)]
    pub(crate) fn new(total: u32, max_in_flight: u32) -> Self {
        Self::with_ready(total, max_in_flight, (0..total).collect())
    }

    /// A window over `total` tasks of which only `ready` may go out now;
    /// the rest wait to be made [`ready`](Self::ready).
    pub(crate) fn with_ready(total: u32, max_in_flight: u32, ready: Vec<u32>) -> Self {
        Self {
            states: vec![State::Waiting; total as usize],
            max_in_flight: max_in_flight.max(1) as usize,
            in_flight: 0,
            queue: ready.into(),
        }
    }

    /// Task `index` may go out now (its dependencies succeeded), after
    /// those already waiting.
    pub(crate) fn ready(&mut self, index: u32) {
        if self.states.get(index as usize) == Some(&State::Waiting) {
            self.queue.push_back(index);
        }
    }

    /// The next task to dispatch, if the window has room; counts it in flight.
    /// Tasks that already have their result are skipped.
    pub(crate) fn take(&mut self) -> Option<u32> {
        while self.in_flight < self.max_in_flight {
            let index = self.queue.pop_front()?;
            if self.states[index as usize] == State::Waiting {
                self.states[index as usize] = State::InFlight;
                self.in_flight += 1;
                return Some(index);
            }
        }
        None
    }

    /// Task `index` is known to have been dispatched (a coordinator taking
    /// the job over found it waiting for a person): it is not sent again,
    /// and holds its place until its result.
    pub(crate) fn hold(&mut self, index: u32) {
        if self.states.get(index as usize) == Some(&State::Waiting) {
            self.states[index as usize] = State::InFlight;
            self.in_flight += 1;
        }
    }

    /// A dispatch failed: `index` goes out again first, when there is room.
    pub(crate) fn retry(&mut self, index: u32) {
        if self.states[index as usize] == State::InFlight {
            self.states[index as usize] = State::Waiting;
            self.in_flight -= 1;
            self.queue.push_front(index);
        }
    }

    /// Task `index` has its result; if it was in flight its place frees up.
    pub(crate) fn finished(&mut self, index: u32) {
        let Some(state) = self.states.get_mut(index as usize) else {
            return;
        };
        if *state == State::InFlight {
            self.in_flight -= 1;
        }
        *state = State::Done;
    }

    /// Whether tasks are waiting to be sent (never sent, or to be sent again).
    pub(crate) fn waiting(&self) -> bool {
        self.queue
            .iter()
            .any(|&i| self.states[i as usize] == State::Waiting)
    }

    /// Stops dispatching anything more (the job is ending).
    pub(crate) fn close(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_window_in_flight() {
        let mut w = Window::new(10, 3);
        let first: Vec<u32> = std::iter::from_fn(|| w.take()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        assert_eq!(w.take(), None);
        w.finished(1);
        assert_eq!(w.take(), Some(3));
        assert_eq!(w.take(), None);
    }

    #[test]
    fn failed_dispatches_go_out_again_first() {
        let mut w = Window::new(5, 2);
        assert_eq!(w.take(), Some(0));
        assert_eq!(w.take(), Some(1));
        w.retry(0);
        assert_eq!(w.take(), Some(0));
        w.finished(0);
        w.finished(1);
        assert_eq!(w.take(), Some(2));
        assert_eq!(w.take(), Some(3));
        assert!(w.waiting());
        w.close();
        assert!(!w.waiting());
    }

    #[test]
    fn tasks_with_a_result_are_not_sent_and_free_no_place() {
        let mut w = Window::new(4, 2);
        w.finished(0); // recovered before dispatch
        w.finished(1);
        assert_eq!(w.take(), Some(2));
        assert_eq!(w.take(), Some(3));
        w.finished(0); // a duplicate does not free a place
        assert_eq!(w.in_flight, 2);
    }

    #[test]
    fn blocked_tasks_go_out_only_once_ready() {
        let mut w = Window::with_ready(3, 4, vec![0]);
        assert_eq!(w.take(), Some(0));
        assert_eq!(w.take(), None);
        assert!(!w.waiting());
        w.finished(0);
        w.ready(2);
        w.ready(0); // done: not sent again
        assert_eq!(w.take(), Some(2));
        assert_eq!(w.take(), None);
    }

    #[test]
    fn empty_job_dispatches_nothing() {
        let mut w = Window::new(0, 16);
        assert_eq!(w.take(), None);
        assert!(!w.waiting());
    }
}
