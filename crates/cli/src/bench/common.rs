//! What every scenario shares: its [`Figures`], and the percentiles and
//! failure texts they are made of. A leaf: the scenarios use it, it uses
//! none of them.

/// What a scenario measured: a table for people, JSON for BENCHMARKS.md.
pub(crate) struct Figures {
    pub(crate) table: String,
    pub(crate) json: serde_json::Value,
}

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The failure to report for `taken_over` jobs, if any.
pub(crate) fn takeover_failure(taken_over: f64) -> Option<String> {
    (taken_over > 0.0).then(|| {
        format!("the coordinator took over {taken_over} job(s) it was still running (toolfan_jobs_taken_over_total)")
    })
}

/// p50 and p99 of `samples` (nearest rank), 0 when there are none.
pub(crate) fn percentiles(samples: &[f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 100.0), 3.0);
    }
}
