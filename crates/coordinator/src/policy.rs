//! Join policies: when a job's results so far decide it.

use toolfan_protocol::Policy;

/// Counts outcomes and says when the policy ends the job.
#[derive(Debug)]
pub(crate) struct Judge {
    policy: Policy,
    succeeded: u32,
}

impl Judge {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            succeeded: 0,
        }
    }

    /// Records that task `index` finished (`ok` or not); returns why the
    /// job ends now, if it does.
    pub(crate) fn decide(&mut self, index: u32, ok: bool) -> Option<String> {
        self.succeeded += u32::from(ok);
        match self.policy {
            Policy::All => None,
            Policy::FailFast if !ok => Some(format!("fail_fast: task {index} failed")),
            Policy::FirstOk if ok => Some(format!("first_ok: task {index} succeeded")),
            Policy::Quorum(k) if ok && self.succeeded == k => {
                Some(format!("quorum({k}): task {index} was success number {k}"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_never_ends_early() {
        let mut judge = Judge::new(Policy::All);
        assert_eq!(judge.decide(0, false), None);
        assert_eq!(judge.decide(1, true), None);
    }

    #[test]
    fn fail_fast_ends_at_the_first_failure() {
        let mut judge = Judge::new(Policy::FailFast);
        assert_eq!(judge.decide(3, true), None);
        assert_eq!(
            judge.decide(7, false).as_deref(),
            Some("fail_fast: task 7 failed")
        );
    }

    #[test]
    fn first_ok_ends_at_the_first_success() {
        let mut judge = Judge::new(Policy::FirstOk);
        assert_eq!(judge.decide(0, false), None);
        assert_eq!(
            judge.decide(2, true).as_deref(),
            Some("first_ok: task 2 succeeded")
        );
    }

    #[test]
    fn quorum_ends_at_the_kth_success() {
        let mut judge = Judge::new(Policy::Quorum(2));
        assert_eq!(judge.decide(4, true), None);
        assert_eq!(judge.decide(1, false), None);
        assert_eq!(
            judge.decide(0, true).as_deref(),
            Some("quorum(2): task 0 was success number 2")
        );
    }
}
