//! The soak's figures: what became of the offered tasks, RSS growth of
//! each process from the first sample after warm-up to the last, and the
//! store's size over the same span.

use serde_json::json;

use super::args::SoakArgs;
use super::offer::Tally;
use super::probe;
use super::sample::Sample;
use crate::bench::common::{percentiles, takeover_failure, Figures};

/// One process's RSS over the span after warm-up.
struct Growth {
    name: String,
    first: Option<u64>,
    last: Option<u64>,
    pct: Option<f64>,
}

/// What the soak measured, for the table and JSON.
pub(super) struct Report<'a> {
    pub(super) args: &'a SoakArgs,
    pub(super) names: &'a [String],
    pub(super) samples: &'a [Sample],
    pub(super) tally: &'a Tally,
    pub(super) seconds: f64,
    pub(super) warmup_s: f64,
    pub(super) taken_over: Option<f64>,
}

impl Report<'_> {
    /// The first sample after warm-up and the last one.
    fn span(&self) -> Option<(&Sample, &Sample)> {
        let first = self.samples.iter().find(|s| s.at_s >= self.warmup_s)?;
        Some((first, self.samples.last()?))
    }

    pub(super) fn failure(&self) -> Option<String> {
        let lost = Tally::get(&self.tally.lost);
        if lost > 0 {
            return Some(format!("{lost} task(s) lost: their jobs got no answer"));
        }
        match self.taken_over {
            None => Some("could not read the coordinator's metrics".into()),
            Some(n) => takeover_failure(n),
        }
    }

    /// Per process: its RSS at the span's start and end, and the growth.
    fn rss_growth(&self) -> Vec<Growth> {
        let Some((first, last)) = self.span() else {
            return Vec::new();
        };
        (0..self.names.len())
            .map(|i| {
                let (a, b) = (first.rss[i], last.rss[i]);
                Growth {
                    name: self.names[i].clone(),
                    first: a,
                    last: b,
                    pct: a.zip(b).and_then(|(a, b)| probe::growth_pct(a, b)),
                }
            })
            .collect()
    }

    pub(super) fn figures(&self) -> Figures {
        Figures {
            table: self.table(),
            json: self.json(),
        }
    }

    fn table(&self) -> String {
        let t = self.tally;
        let latencies = t.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default();
        let (p50, p99) = percentiles(&latencies);
        let mut out = format!(
            "load soak: {} echo tasks/s offered in jobs of {} for {:.1} min, {} worker process(es) × {} slots\n\n\
             \x20 tasks offered {} ({:.0}/s), answered {} ({:.0}/s), late {}, failed {}, lost {}, shed {}\n\
             \x20 job latency p50 / p99   {p50:.0} ms / {p99:.0} ms\n\
             \x20 jobs taken over         {}\n",
            self.args.rate, self.args.job_size, self.seconds / 60.0, self.args.workers, self.args.concurrency,
            Tally::get(&t.offered), Tally::get(&t.offered) as f64 / self.seconds,
            Tally::get(&t.answered), Tally::get(&t.answered) as f64 / self.seconds,
            Tally::get(&t.late), Tally::get(&t.failed), Tally::get(&t.lost), Tally::get(&t.shed),
            self.taken_over.map_or("unknown".into(), |n| n.to_string()),
        );
        out.push_str(&self.span_table());
        out
    }

    fn span_table(&self) -> String {
        let Some((first, last)) = self.span() else {
            return "\n  no sample after the warm-up: run longer or lower --warmup\n".into();
        };
        let mib = |b: Option<u64>| b.map_or("-".into(), probe::mib);
        let mut out = format!(
            "\n  RSS from {:.0} s (after warm-up) to {:.0} s:\n",
            first.at_s, last.at_s
        );
        for g in self.rss_growth() {
            let pct = g.pct.map_or("-".into(), |p| format!("{p:+.1} %"));
            let (a, b) = (mib(g.first), mib(g.last));
            out += &format!("  {:<16}{a:>12} → {b:>12}  {pct:>9}\n", g.name);
        }
        out += &format!("\n  store, {:.0} s → {:.0} s:\n", first.at_s, last.at_s);
        for (a, b) in first.streams.iter().zip(&last.streams) {
            out += &format!(
                "  {:<16}{:>10} msgs {:>12} → {:>10} msgs {:>12}\n",
                a.name,
                a.messages,
                probe::mib(a.bytes),
                b.messages,
                probe::mib(b.bytes)
            );
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let t = self.tally;
        let latencies = t.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default();
        let (p50, p99) = percentiles(&latencies);
        let growth: serde_json::Map<_, _> = self
            .rss_growth()
            .into_iter()
            .map(|g| (g.name, json!(g.pct)))
            .collect();
        let samples: Vec<_> = self.samples.iter().map(|s| s.json(self.names)).collect();
        json!({"scenario": "load", "shape": "soak", "rate": self.args.rate, "job_size": self.args.job_size,
            "seconds": self.seconds, "warmup_s": self.warmup_s, "workers": self.args.workers,
            "concurrency": self.args.concurrency, "tasks_offered": Tally::get(&t.offered),
            "tasks_answered": Tally::get(&t.answered), "tasks_late": Tally::get(&t.late),
            "tasks_failed": Tally::get(&t.failed), "tasks_lost": Tally::get(&t.lost),
            "tasks_shed": Tally::get(&t.shed), "job_latency_ms_p50": p50, "job_latency_ms_p99": p99,
            "jobs_taken_over": self.taken_over, "rss_growth_pct": growth, "samples": samples})
    }
}
