//! One look at the soak's cluster: each process's RSS and each stream's
//! size at a moment, with the tasks answered by then.

use serde_json::json;

use super::probe::StreamSize;

/// One look at the cluster.
pub(super) struct Sample {
    pub(super) at_s: f64,
    /// RSS in bytes of each process, in the order of `Fleet::processes`.
    pub(super) rss: Vec<Option<u64>>,
    pub(super) streams: Vec<StreamSize>,
    pub(super) answered: u64,
}

impl Sample {
    pub(super) fn json(&self, names: &[String]) -> serde_json::Value {
        let rss: serde_json::Map<_, _> = names
            .iter()
            .zip(&self.rss)
            .map(|(n, r)| (n.clone(), json!(r)))
            .collect();
        let streams: Vec<_> = self.streams.iter().map(StreamSize::json).collect();
        json!({"at_s": self.at_s, "rss_bytes": rss, "streams": streams, "tasks_answered": self.answered})
    }
}
