//! The dispatch window of one job: which task goes out next, keeping at
//! most `max_concurrency` of the job in flight, and how many of each of
//! its groups (its tools, for fair shares) are in flight.

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
    /// Each task's group.
    groups: Vec<u32>,
    /// Tasks in flight per group.
    out: Vec<u32>,
    /// Tasks waiting to be sent, per group.
    waiting: Vec<u32>,
}

impl Window {
    /// A window over `total` tasks, all in one group.
    #[cfg(test)]
    pub(crate) fn new(total: u32, max_in_flight: u32) -> Self {
        Self::with_groups(vec![0; total as usize], max_in_flight)
    }

    /// A window over one task per entry of `groups`, each in its group
    /// (numbered from 0).
    pub(crate) fn with_groups(groups: Vec<u32>, max_in_flight: u32) -> Self {
        let total = groups.len() as u32;
        let n = groups.iter().max().map_or(0, |&g| g as usize + 1);
        let mut waiting = vec![0; n];
        for &g in &groups {
            waiting[g as usize] += 1;
        }
        Self {
            waiting,
            states: vec![State::Waiting; total as usize],
            max_in_flight: max_in_flight.max(1) as usize,
            in_flight: 0,
            queue: (0..total).collect(),
            groups,
            out: vec![0; n],
        }
    }

    /// The next task to dispatch, if the window has room; counts it in flight.
    /// Tasks that already have their result are skipped.
    #[cfg(test)]
    pub(crate) fn take(&mut self) -> Option<u32> {
        let mut room = vec![u32::MAX; self.out.len().max(1)];
        self.take_within(&mut room, &mut [])
    }

    /// The first task waiting whose group has `room` left (taking one of
    /// it), if the window has room; counts it in flight. Once none is,
    /// each group without room that has tasks waiting is marked in `held`.
    pub(crate) fn take_within(&mut self, room: &mut [u32], held: &mut [bool]) -> Option<u32> {
        let taken = self.next_within(room);
        if taken.is_none() && self.in_flight < self.max_in_flight {
            for (g, h) in held.iter_mut().enumerate() {
                *h |= room[g] == 0 && self.waiting[g] > 0;
            }
        }
        taken
    }

    fn next_within(&mut self, room: &mut [u32]) -> Option<u32> {
        let open =
            |w: &Self, room: &[u32]| (0..w.waiting.len()).any(|g| room[g] > 0 && w.waiting[g] > 0);
        if self.in_flight >= self.max_in_flight || !open(self, room) {
            return None;
        }
        let mut pos = 0;
        while pos < self.queue.len() {
            let index = self.queue[pos];
            if self.states[index as usize] != State::Waiting {
                self.queue.remove(pos); // finished before it went out
                continue;
            }
            let group = self.groups[index as usize] as usize;
            if room[group] == 0 {
                pos += 1;
                continue;
            }
            room[group] -= 1;
            self.queue.remove(pos);
            self.states[index as usize] = State::InFlight;
            self.in_flight += 1;
            self.out[group] += 1;
            self.waiting[group] -= 1;
            return Some(index);
        }
        None
    }

    /// Tasks in flight, per group.
    pub(crate) fn out(&self) -> &[u32] {
        &self.out
    }

    /// A dispatch failed: `index` goes out again first, when there is room.
    pub(crate) fn retry(&mut self, index: u32) {
        if self.states[index as usize] == State::InFlight {
            self.states[index as usize] = State::Waiting;
            self.in_flight -= 1;
            let group = self.groups[index as usize] as usize;
            self.out[group] -= 1;
            self.waiting[group] += 1;
            self.queue.push_front(index);
        }
    }

    /// Task `index` has its result; if it was in flight its place frees up.
    pub(crate) fn finished(&mut self, index: u32) {
        let Some(state) = self.states.get_mut(index as usize) else {
            return;
        };
        let group = self.groups[index as usize] as usize;
        match *state {
            State::InFlight => {
                self.in_flight -= 1;
                self.out[group] -= 1;
            }
            // (After `close` nothing counts as waiting any more.)
            State::Waiting => self.waiting[group] = self.waiting[group].saturating_sub(1),
            State::Done => {}
        }
        *state = State::Done;
    }

    /// Whether tasks are waiting to be sent (never sent, or to be sent again).
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.iter().any(|&n| n > 0)
    }

    /// Stops dispatching anything more (the job is ending).
    pub(crate) fn close(&mut self) {
        self.queue.clear();
        self.waiting.iter_mut().for_each(|n| *n = 0);
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
        w.finished(4); // a verdict for a task never sent
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
    fn a_group_without_room_is_held_and_the_others_go_on() {
        // Tasks 0, 2, 4 are group 0; 1, 3, 5 group 1.
        let mut w = Window::with_groups(vec![0, 1, 0, 1, 0, 1], 10);
        let mut room = [1, 2];
        let mut held = [false, false];
        let taken: Vec<u32> = std::iter::from_fn(|| w.take_within(&mut room, &mut held)).collect();
        assert_eq!(taken, vec![0, 1, 3]);
        assert_eq!(held, [true, true], "both had more waiting");
        assert_eq!(w.out(), &[1, 2]);
        w.finished(1);
        w.retry(3);
        assert_eq!(w.out(), &[1, 0]);
        let mut room = [0, 5];
        let mut held = [false, false];
        let taken: Vec<u32> = std::iter::from_fn(|| w.take_within(&mut room, &mut held)).collect();
        assert_eq!(taken, vec![3, 5], "the retried task first");
        assert_eq!(held, [true, false]);
        assert_eq!(w.out(), &[1, 2]);
    }

    #[test]
    fn empty_job_dispatches_nothing() {
        let mut w = Window::new(0, 16);
        assert_eq!(w.take(), None);
        assert!(!w.waiting());
    }
}
