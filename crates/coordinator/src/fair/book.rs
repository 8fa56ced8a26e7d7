//! What one coordinator knows of the fleet's use, per tool and caller:
//! its own jobs' (exact, as they report it) and the other coordinators'
//! (from their last [`FairReport`]), and the shares that follow.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use toolfan_protocol::{FairEntry, FairReport, ToolName, MAX_FAIR_ENTRIES};

use super::share::{caller_share, job_share, Claim, Demand};

/// A report not renewed within this is forgotten (its coordinator is gone).
pub(crate) const REPORT_TTL: Duration = Duration::from_secs(3);

/// What a `caller:<name>` definition says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CallerRule {
    pub(crate) weight: f64,
    /// Its tasks in flight at once, over all tools, fleet-wide.
    pub(crate) cap: Option<u32>,
}

impl Default for CallerRule {
    fn default() -> Self {
        Self {
            weight: 1.0,
            cap: None,
        }
    }
}

/// One job's use of one tool, as it last reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolUse {
    pub(crate) tool: ToolName,
    pub(crate) out: u32,
    /// Tasks for the tool held back by the share.
    pub(crate) wanting: bool,
}

impl ToolUse {
    fn demand(&self) -> Demand {
        Demand {
            out: self.out,
            wanting_jobs: u32::from(self.wanting),
            settled_out: if self.wanting { 0 } else { self.out },
        }
    }
}

type ByCaller = HashMap<Arc<str>, Demand>;

/// The coordinator's book of the fleet's use.
#[derive(Default)]
pub(crate) struct Book {
    jobs: HashMap<u64, (Arc<str>, Vec<ToolUse>)>,
    local: HashMap<ToolName, ByCaller>,
    remote: HashMap<String, (Instant, FairReport)>,
    remote_sum: HashMap<ToolName, ByCaller>,
    pub(crate) rules: HashMap<String, CallerRule>,
    /// Changed since the last report was sent.
    pub(crate) dirty: bool,
    /// Some job's use went down since jobs held back were last woken.
    pub(crate) freed: bool,
}

impl Book {
    /// Job `key` of `caller` now uses `uses` (replacing what it said before).
    pub(crate) fn report(&mut self, key: u64, caller: &Arc<str>, uses: Vec<ToolUse>) {
        let old = self.jobs.insert(key, (caller.clone(), uses.clone()));
        if old.as_ref().is_some_and(|(_, was)| *was == uses) {
            return;
        }
        if let Some((_, was)) = old {
            let out = |u: &[ToolUse]| u.iter().map(|u| u.out).sum::<u32>();
            self.freed |= out(&uses) < out(&was) || uses.len() < was.len();
            self.apply(caller, &was, false);
        }
        self.apply(caller, &uses, true);
        self.dirty = true;
    }

    /// Job `key` has ended.
    pub(crate) fn forget(&mut self, key: u64) {
        if let Some((caller, was)) = self.jobs.remove(&key) {
            self.apply(&caller, &was, false);
            self.dirty = true;
            self.freed = true;
        }
    }

    fn apply(&mut self, caller: &Arc<str>, uses: &[ToolUse], add: bool) {
        for usage in uses {
            let by_caller = self.local.entry(usage.tool.clone()).or_default();
            let sum = by_caller.entry(caller.clone()).or_default();
            let d = usage.demand();
            if add {
                sum.add(d);
            } else {
                sum.out -= d.out;
                sum.wanting_jobs -= d.wanting_jobs;
                sum.settled_out -= d.settled_out;
            }
            if *sum == Demand::default() {
                by_caller.remove(caller);
                if by_caller.is_empty() {
                    self.local.remove(&usage.tool);
                }
            }
        }
    }

    /// Another coordinator's report (its last one replaces the one before).
    pub(crate) fn heard(&mut self, report: FairReport) {
        if report.entries.is_empty() {
            self.remote.remove(&report.coordinator);
        } else {
            self.remote
                .insert(report.coordinator.clone(), (Instant::now(), report));
        }
        self.sum_remote();
    }

    /// Forgets reports older than [`REPORT_TTL`]; true if any was.
    pub(crate) fn expire(&mut self) -> bool {
        let before = self.remote.len();
        self.remote.retain(|_, (at, _)| at.elapsed() < REPORT_TTL);
        let expired = self.remote.len() != before;
        if expired {
            self.sum_remote();
        }
        expired
    }

    fn sum_remote(&mut self) {
        self.remote_sum.clear();
        for (_, report) in self.remote.values() {
            for e in &report.entries {
                let d = Demand {
                    out: e.out,
                    wanting_jobs: e.wanting_jobs,
                    settled_out: e.settled_out.min(e.out),
                };
                let by_caller = self.remote_sum.entry(e.tool.clone()).or_default();
                by_caller
                    .entry(Arc::from(e.caller.as_str()))
                    .or_default()
                    .add(d);
            }
        }
    }

    /// This coordinator's report, the busiest entries first if they are
    /// more than one message holds.
    pub(crate) fn own_report(&self, coordinator: &str) -> FairReport {
        let mut entries: Vec<FairEntry> = self
            .local
            .iter()
            .flat_map(|(tool, by_caller)| {
                by_caller.iter().map(|(caller, d)| FairEntry {
                    tool: tool.clone(),
                    caller: caller.to_string(),
                    out: d.out,
                    wanting_jobs: d.wanting_jobs,
                    settled_out: d.settled_out,
                })
            })
            .collect();
        if entries.len() > MAX_FAIR_ENTRIES {
            entries.sort_by_key(|e| std::cmp::Reverse(e.out));
            entries.truncate(MAX_FAIR_ENTRIES);
        }
        FairReport {
            v: 1,
            coordinator: coordinator.to_owned(),
            entries,
        }
    }

    /// Whether this coordinator has anything in the fleet.
    pub(crate) fn busy(&self) -> bool {
        !self.local.is_empty()
    }

    /// How many more tasks for `tool` job `key` of `caller` may dispatch
    /// now, out of `room` places for the tool in the fleet.
    pub(crate) fn allowance(&self, key: u64, caller: &Arc<str>, tool: &ToolName, room: u32) -> u32 {
        let mine = self
            .jobs
            .get(&key)
            .and_then(|(_, uses)| uses.iter().find(|u| &u.tool == tool));
        let job_out = mine.map_or(0, |u| u.out);
        let mut claims = Vec::new();
        let mut me = None;
        for (who, demand) in self.demands(tool) {
            if &who == caller {
                me = Some(claims.len());
            }
            let weight = self.rule(&who).weight;
            claims.push(Claim { demand, weight });
        }
        let me = me.unwrap_or_else(|| {
            claims.push(Claim {
                demand: Demand::default(),
                weight: self.rule(caller).weight,
            });
            claims.len() - 1
        });
        // The asking job has tasks waiting: it counts as wanting.
        if !mine.is_some_and(|u| u.wanting) {
            let d = &mut claims[me].demand;
            d.wanting_jobs += 1;
            d.settled_out = d.settled_out.saturating_sub(job_out);
        }
        let mut share = caller_share(room, &claims, me);
        let caller_out = claims[me].demand.out;
        if let Some(cap) = self.rule(caller).cap {
            let elsewhere = self.caller_out(caller).saturating_sub(caller_out);
            share = share.min(cap.saturating_sub(elsewhere));
        }
        let per_job = job_share(share, claims[me].demand).min(share);
        per_job
            .saturating_sub(job_out)
            .min(share.saturating_sub(caller_out))
    }

    /// Every caller's demand on `tool`, over the fleet.
    fn demands(&self, tool: &ToolName) -> Vec<(Arc<str>, Demand)> {
        let mut sum: HashMap<Arc<str>, Demand> = HashMap::new();
        for source in [self.local.get(tool), self.remote_sum.get(tool)]
            .into_iter()
            .flatten()
        {
            for (caller, d) in source {
                sum.entry(caller.clone()).or_default().add(*d);
            }
        }
        sum.into_iter().collect()
    }

    /// A caller's tasks in flight over all tools, fleet-wide.
    fn caller_out(&self, caller: &Arc<str>) -> u32 {
        [&self.local, &self.remote_sum]
            .into_iter()
            .flat_map(|by_tool| by_tool.values())
            .filter_map(|by_caller| by_caller.get(caller))
            .map(|d| d.out)
            .sum()
    }

    fn rule(&self, caller: &str) -> CallerRule {
        self.rules.get(caller).copied().unwrap_or_default()
    }
}
