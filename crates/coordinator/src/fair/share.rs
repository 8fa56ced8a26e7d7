//! The arithmetic of fair shares, pure: how many of a tool's places in
//! the fleet each caller may hold (weighted max-min fairness, so a caller
//! that needs less than its share leaves the rest to the others), and how
//! a caller's share splits between its jobs.

/// One caller's use of one tool, summed over the fleet's coordinators.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Demand {
    /// Its tasks on the tool dispatched and not yet finished.
    pub(crate) out: u32,
    /// Its jobs with tasks for the tool held back by their share.
    pub(crate) wanting_jobs: u32,
    /// What its jobs that want no more hold (they keep it, whatever
    /// the share says).
    pub(crate) settled_out: u32,
}

impl Demand {
    pub(crate) fn add(&mut self, other: Demand) {
        self.out += other.out;
        self.wanting_jobs += other.wanting_jobs;
        self.settled_out += other.settled_out;
    }

    fn active(&self) -> bool {
        self.out > 0 || self.wanting_jobs > 0
    }
}

/// One caller's claim in the split: its demand and its weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) demand: Demand,
    pub(crate) weight: f64,
}

/// How many of `room` places the caller at `me` in `claims` may hold:
/// weighted max-min fair. A caller wanting no more needs only what it
/// holds; what it leaves goes to the others in proportion to their
/// weights. A caller with work waiting always gets at least one place.
pub(crate) fn caller_share(room: u32, claims: &[Claim], me: usize) -> u32 {
    let need = |c: &Claim| {
        if c.demand.wanting_jobs > 0 {
            f64::INFINITY
        } else {
            f64::from(c.demand.out)
        }
    };
    let mut open: Vec<usize> = (0..claims.len())
        .filter(|&i| i == me || claims[i].demand.active())
        .collect();
    let mut left = f64::from(room);
    loop {
        let weights: f64 = open.iter().map(|&i| claims[i].weight.max(1e-6)).sum();
        let fair = |i: usize| left * claims[i].weight.max(1e-6) / weights;
        // Callers needing less than their fair part take just that.
        let (small, rest): (Vec<usize>, Vec<usize>) =
            open.iter().partition(|&&i| need(&claims[i]) < fair(i));
        if small.is_empty() || rest.is_empty() {
            let mine = if small.contains(&me) {
                need(&claims[me])
            } else {
                fair(me)
            };
            return (mine.floor() as u32).max(1);
        }
        if small.contains(&me) {
            return (need(&claims[me]) as u32).max(1);
        }
        left -= small.iter().map(|&i| need(&claims[i])).sum::<f64>();
        open = rest;
    }
}

/// How many places each of a caller's wanting jobs may hold out of the
/// caller's `share`: what its settled jobs do not hold, split evenly.
pub(crate) fn job_share(share: u32, demand: Demand) -> u32 {
    let jobs = demand.wanting_jobs.max(1);
    share
        .saturating_sub(demand.settled_out)
        .div_ceil(jobs)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanting(out: u32) -> Claim {
        Claim {
            demand: Demand {
                out,
                wanting_jobs: 1,
                settled_out: 0,
            },
            weight: 1.0,
        }
    }

    fn settled(out: u32) -> Claim {
        Claim {
            demand: Demand {
                out,
                wanting_jobs: 0,
                settled_out: out,
            },
            weight: 1.0,
        }
    }

    #[test]
    fn a_caller_alone_may_fill_the_room() {
        assert_eq!(caller_share(128, &[wanting(0)], 0), 128);
        assert_eq!(caller_share(128, &[wanting(500)], 0), 128);
    }

    #[test]
    fn two_wanting_callers_split_evenly_or_by_weight() {
        let claims = [wanting(128), wanting(0)];
        assert_eq!(caller_share(128, &claims, 0), 64);
        assert_eq!(caller_share(128, &claims, 1), 64);
        let weighted = [
            Claim {
                weight: 3.0,
                ..wanting(100)
            },
            wanting(0),
        ];
        assert_eq!(caller_share(128, &weighted, 0), 96);
        assert_eq!(caller_share(128, &weighted, 1), 32);
    }

    #[test]
    fn what_a_small_caller_leaves_goes_to_the_others() {
        // The second caller holds 5 and wants no more: the first may use
        // everything else, not just half.
        let claims = [wanting(64), settled(5), wanting(10)];
        assert_eq!(caller_share(128, &claims, 0), 61);
        assert_eq!(caller_share(128, &claims, 2), 61);
        assert_eq!(caller_share(128, &claims, 1), 5);
    }

    #[test]
    fn idle_callers_take_nothing_and_a_waiting_one_gets_a_place() {
        let idle = Claim {
            demand: Demand::default(),
            weight: 1.0,
        };
        assert_eq!(caller_share(10, &[wanting(3), idle], 0), 10);
        let many: Vec<Claim> = (0..50).map(|_| wanting(1)).collect();
        assert_eq!(caller_share(10, &many, 7), 1, "never zero for work waiting");
    }

    #[test]
    fn a_callers_share_splits_between_its_wanting_jobs() {
        let demand = Demand {
            out: 70,
            wanting_jobs: 2,
            settled_out: 10,
        };
        assert_eq!(job_share(100, demand), 45);
        let all_settled = Demand {
            out: 120,
            wanting_jobs: 1,
            settled_out: 120,
        };
        assert_eq!(job_share(100, all_settled), 1);
    }
}
