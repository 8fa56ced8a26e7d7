//! The deduplication ids (`Nats-Msg-Id`) of everything toolfan stores in
//! JetStream, and so the rules that make sending again safe. JetStream
//! drops a message whose id it stored within the stream's duplicate window.
//!
//! | stored | id | sent again by |
//! |---|---|---|
//! | a job | `<job>` | a client whose submit was not acknowledged |
//! | dispatch 1 of task `i` | `<job>.<i>` | a coordinator that took the job over |
//! | dispatch `n` ≥ 2 of task `i` | `<job>.<i>.d<n>` | nobody: each re-dispatch is new |
//! | the result of attempt `a` | `<job>.<i>.<a>`, or `<job>.<i>.d<n>.<a>` | a worker whose publish was not acknowledged |
//! | a coordinator's verdict | `<job>.<i>.<tag>` (`cancel`, `deadline`, …) | a coordinator resending a failed verdict |
//!
//! A re-dispatch's results never share an id with the lost dispatch's, so
//! neither is taken for a duplicate of the other.

use crate::JobId;

/// The header that carries a message's deduplication id (JetStream's own).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The `Nats-Msg-Id` of a job: its id.
pub fn job_msg_id(job: &JobId) -> &str {
    job.as_str()
}

/// The `Nats-Msg-Id` of dispatch `dispatch` of task `index`:
/// `<job>.<index>` for the first (so a coordinator taking a job over and
/// sending it again is deduplicated), `<job>.<index>.d<dispatch>` for the
/// safety net's later ones.
pub fn task_msg_id(job: &JobId, index: u32, dispatch: u32) -> String {
    if dispatch <= 1 {
        format!("{job}.{index}")
    } else {
        format!("{job}.{index}.d{dispatch}")
    }
}

/// The `Nats-Msg-Id` of the result of attempt `attempt` (JetStream's
/// delivery count) of dispatch `dispatch` of task `index`:
/// `<job>.<index>.<attempt>`, or `<job>.<index>.d<dispatch>.<attempt>`
/// after the first dispatch (a re-dispatch's result is never taken for a
/// duplicate of the lost one's).
pub fn result_msg_id(job: &JobId, index: u32, dispatch: u32, attempt: u32) -> String {
    if dispatch <= 1 {
        format!("{job}.{index}.{attempt}")
    } else {
        format!("{job}.{index}.d{dispatch}.{attempt}")
    }
}

/// The `Nats-Msg-Id` of a coordinator's verdict on task `index`
/// (`tag` names it: `cancel`, `deadline`, `unknown`, `resolved`, …): one
/// per task and kind, so a verdict resent after a failed publish is
/// stored once.
pub fn verdict_msg_id(job: &JobId, index: u32, tag: &str) -> String {
    format!("{job}.{index}.{tag}")
}

/// The `Nats-Msg-Id` of a worker's record that task `index` waits for a
/// person: one per task, so a task run again stores it once.
pub fn waiting_msg_id(job: &JobId, index: u32) -> String {
    format!("{job}.{index}.waiting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redispatch_has_its_own_message_ids() {
        let job = JobId::new("j").unwrap();
        assert_eq!(job_msg_id(&job), "j");
        assert_eq!(task_msg_id(&job, 3, 1), "j.3");
        assert_eq!(task_msg_id(&job, 3, 2), "j.3.d2");
        assert_eq!(result_msg_id(&job, 3, 1, 1), "j.3.1");
        assert_eq!(result_msg_id(&job, 3, 2, 1), "j.3.d2.1");
        assert_eq!(verdict_msg_id(&job, 3, "cancel"), "j.3.cancel");
    }

    #[test]
    fn no_two_kinds_share_an_id() {
        let job = JobId::new("j").unwrap();
        let ids = [
            job_msg_id(&job).to_string(),
            task_msg_id(&job, 1, 1),
            task_msg_id(&job, 1, 2),
            result_msg_id(&job, 1, 1, 1),
            result_msg_id(&job, 1, 2, 1),
            verdict_msg_id(&job, 1, "cancel"),
            verdict_msg_id(&job, 1, "deadline"),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
