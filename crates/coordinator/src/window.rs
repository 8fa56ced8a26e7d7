//! The dispatch window of one job: which task goes out next, keeping at
//! most `max_concurrency` of the job in flight, only tasks whose
//! dependencies succeeded, and how many of each of its groups (its tools,
//! for fair shares) are in flight and queued.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for its dependencies.
    Blocked,
    /// Ready, waiting to be sent.
    Queued,
    InFlight,
    /// In flight, but waiting for a person: it holds a window place and
    /// no place in the fleet.
    Parked,
    Done,
}

/// Which of a job's tasks to send next.
#[derive(Debug)]
pub(crate) struct Window {
    states: Vec<State>,
    max_in_flight: usize,
    in_flight: usize,
    /// Tasks ready and not yet sent, in order; failed dispatches go back
    /// to the front.
    queue: VecDeque<u32>,
    /// Each task's group.
    groups: Vec<u32>,
    /// Tasks in flight (not parked) per group.
    out: Vec<u32>,
    /// Tasks queued per group.
    queued: Vec<u32>,
}

impl Window {
    /// A window over `total` tasks without dependencies, all in one group.
    #[cfg(test)]
    pub(crate) fn new(total: u32, max_in_flight: u32) -> Self {
        Self::with_ready(total, max_in_flight, (0..total).collect())
    }

    /// A window over `total` tasks in one group of which only `ready` may go out now.
    #[cfg(test)]
    pub(crate) fn with_ready(total: u32, max_in_flight: u32, ready: Vec<u32>) -> Self {
        Self::build(vec![0; total as usize], max_in_flight, ready)
    }

    /// A window over one task per entry of `groups`, each in its group
    /// (numbered from 0), of which only `ready` may go out now; the rest
    /// wait to be made [`ready`](Self::ready).
    pub(crate) fn build(groups: Vec<u32>, max_in_flight: u32, ready: Vec<u32>) -> Self {
        let total = groups.len();
        let n = groups.iter().max().map_or(0, |&g| g as usize + 1);
        let mut window = Self {
            states: vec![State::Blocked; total],
            max_in_flight: max_in_flight.max(1) as usize,
            in_flight: 0,
            queue: VecDeque::with_capacity(ready.len()),
            groups,
            out: vec![0; n],
            queued: vec![0; n],
        };
        for index in ready {
            window.ready(index);
        }
        window
    }

    /// Task `index` may go out now (its dependencies succeeded), after
    /// those already waiting.
    pub(crate) fn ready(&mut self, index: u32) {
        if self.states.get(index as usize) == Some(&State::Blocked) {
            self.states[index as usize] = State::Queued;
            self.queued[self.groups[index as usize] as usize] += 1;
            self.queue.push_back(index);
        }
    }

    /// The next task to dispatch, if the window has room; counts it in flight.
    #[cfg(test)]
    pub(crate) fn take(&mut self) -> Option<u32> {
        let mut room = vec![u32::MAX; self.out.len().max(1)];
        self.take_within(&mut room, &mut [])
    }

    /// The first task queued whose group has `room` left (taking one of
    /// it), if the window has room; counts it in flight. Once none is,
    /// each group without room that has tasks queued is marked in `held`.
    pub(crate) fn take_within(&mut self, room: &mut [u32], held: &mut [bool]) -> Option<u32> {
        let taken = self.next_within(room);
        if taken.is_none() && self.in_flight < self.max_in_flight {
            for (g, h) in held.iter_mut().enumerate() {
                *h |= room[g] == 0 && self.queued[g] > 0;
            }
        }
        taken
    }

    fn next_within(&mut self, room: &mut [u32]) -> Option<u32> {
        let open = (0..self.queued.len()).any(|g| room[g] > 0 && self.queued[g] > 0);
        if self.in_flight >= self.max_in_flight || !open {
            return None;
        }
        let mut pos = 0;
        while pos < self.queue.len() {
            let index = self.queue[pos];
            if self.states[index as usize] != State::Queued {
                self.queue.remove(pos); // finished or parked before it went out
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
            self.queued[group] -= 1;
            return Some(index);
        }
        None
    }

    /// Tasks in flight (not waiting for a person), per group.
    pub(crate) fn out(&self) -> &[u32] {
        &self.out
    }

    /// Task `index` waits for a person (or, for a coordinator taking the
    /// job over, is known to): it is not sent again, and holds its window
    /// place until its result, but no place in the fleet.
    pub(crate) fn hold(&mut self, index: u32) {
        let Some(&state) = self.states.get(index as usize) else {
            return;
        };
        let group = self.groups[index as usize] as usize;
        match state {
            State::InFlight => self.out[group] -= 1,
            State::Blocked => self.in_flight += 1,
            State::Queued => {
                self.queued[group] -= 1;
                self.in_flight += 1;
            }
            State::Parked | State::Done => return,
        }
        self.states[index as usize] = State::Parked;
    }

    /// A dispatch failed: `index` goes out again first, when there is room.
    pub(crate) fn retry(&mut self, index: u32) {
        if self.states[index as usize] == State::InFlight {
            let group = self.groups[index as usize] as usize;
            self.states[index as usize] = State::Queued;
            self.in_flight -= 1;
            self.out[group] -= 1;
            self.queued[group] += 1;
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
            State::Parked => self.in_flight -= 1,
            // (After `close` nothing counts as queued any more.)
            State::Queued => self.queued[group] = self.queued[group].saturating_sub(1),
            State::Blocked | State::Done => {}
        }
        *state = State::Done;
    }

    /// Whether tasks are waiting to be sent (ready, or to be sent again).
    pub(crate) fn waiting(&self) -> bool {
        self.queued.iter().any(|&n| n > 0)
    }

    /// Stops dispatching anything more (the job is ending).
    pub(crate) fn close(&mut self) {
        self.queue.clear();
        self.queued.iter_mut().for_each(|n| *n = 0);
    }
}

#[cfg(test)]
mod tests;
