//! What the load benches look at besides the jobs: a process's RSS from
//! /proc, the size of each JetStream stream, a metrics endpoint, growth.

use async_nats::jetstream;
use serde_json::json;
use toolfan_protocol::Subjects;

/// Resident set size of process `pid` in bytes (Linux), if readable.
pub(super) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a /proc/<pid>/status text, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// Growth from `first` to `last` in percent of `first` (none when `first` is 0).
pub(super) fn growth_pct(first: u64, last: u64) -> Option<f64> {
    (first > 0).then(|| (last as f64 - first as f64) / first as f64 * 100.0)
}

/// Bytes as MiB with one decimal.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// One stream's size.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StreamSize {
    pub(super) name: String,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    /// Consumers on the stream (durable and ephemeral, e.g. each live
    /// job's results follower).
    pub(super) consumers: usize,
}

impl StreamSize {
    pub(super) fn json(&self) -> serde_json::Value {
        json!({"stream": self.name, "messages": self.messages, "bytes": self.bytes,
            "consumers": self.consumers})
    }
}

/// The size of toolfan's jobs, tasks and results streams.
pub(super) async fn streams(js: &jetstream::Context) -> anyhow::Result<Vec<StreamSize>> {
    let s = Subjects::default();
    let mut sizes = Vec::new();
    for name in [s.jobs_stream(), s.tasks_stream(), s.results_stream()] {
        let info = js.get_stream(&name).await?.info().await?.clone();
        sizes.push(StreamSize {
            name,
            messages: info.state.messages,
            bytes: info.state.bytes,
            consumers: info.state.consumer_count,
        });
    }
    Ok(sizes)
}

/// One line per stream: `NAME  N msgs  X MiB  C consumers`.
pub(super) fn streams_table(sizes: &[StreamSize]) -> String {
    sizes
        .iter()
        .map(|s| {
            format!(
                "  {:<32}{:>10} msgs {:>12} {:>6} consumers",
                s.name,
                s.messages,
                mib(s.bytes),
                s.consumers
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The counter `name` in `registry`, summed over its labels.
pub(super) fn counter(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value())
        .sum()
}

/// `GET /metrics` from `addr` (plain HTTP/1.0), the body as text.
pub(super) async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

/// The value of metric `name` in Prometheus text, summed over its labels
/// (none when no sample of it is there).
pub(super) fn metric_value(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => &labelled[labelled.find('}')? + 1..],
                None => rest,
            };
            rest.starts_with(' ')
                .then(|| rest.split_whitespace().next())?
        })
        .filter_map(|v| v.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status =
            "Name:\ttoolfan\nVmPeak:\t  900000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }

    #[test]
    fn growth_is_a_percentage_of_the_first_sample() {
        assert_eq!(growth_pct(100, 150), Some(50.0));
        assert_eq!(growth_pct(200, 150), Some(-25.0));
        assert_eq!(growth_pct(100, 100), Some(0.0));
        assert_eq!(growth_pct(0, 100), None);
    }

    #[test]
    fn metric_values_are_found_with_and_without_labels() {
        let text = "# HELP toolfan_jobs_taken_over_total Jobs.\n\
                    # TYPE toolfan_jobs_taken_over_total counter\n\
                    toolfan_jobs_taken_over_total 3\n\
                    toolfan_jobs_taken_over_total_other 9\n\
                    toolfan_task_results_total{outcome=\"ok\"} 10\n\
                    toolfan_task_results_total{outcome=\"timeout\"} 2\n";
        assert_eq!(
            metric_value(text, "toolfan_jobs_taken_over_total"),
            Some(3.0)
        );
        assert_eq!(metric_value(text, "toolfan_task_results_total"), Some(12.0));
        assert_eq!(metric_value(text, "toolfan_missing"), None);
    }
}
