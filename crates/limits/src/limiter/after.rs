//! After a call: what it learned about its rate limits — a backend's "too
//! many" and its real cost — told to the fleet in one call of
//! `lua/after.lua` (see [`crate::adapt`]), only when there is something to tell.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use super::{Limiter, GLOBAL_KEY};
use crate::{LimitError, LimitSpec};

static AFTER: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../lua/after.lua")));

/// What one call learned about its limits once it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The backend said "too many" (HTTP 429, 503 with `Retry-After`, a
    /// tool's rate-limited error).
    pub too_many: bool,
    /// How long the backend asked everyone to wait.
    pub retry_after: Option<Duration>,
    /// Real cost by limit key, as the tool reported it.
    pub charges: BTreeMap<String, u64>,
}

impl Learned {
    /// Whether there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        !self.too_many && self.charges.is_empty()
    }
}

/// What telling the fleet changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Keys whose effective rate was cut.
    pub cut: Vec<String>,
    /// Keys whose arrival time moved, by units (actual − estimate).
    pub charged: Vec<(String, i64)>,
}

/// One rate key's part of the report.
struct Entry<'a> {
    key: &'a str,
    rate: crate::Rate,
    burst: u64,
    too_many: bool,
    delta: i64,
}

impl Limiter {
    /// Tells the fleet what a call admitted under `admitted` (each at
    /// `cost` units) learned. A "too many" cuts the effective rate of the
    /// call's rate limits except `global` (one backend's refusal says
    /// nothing about the others); a charge moves a key's arrival time by
    /// actual − estimate, the estimate being `cost` where the call took
    /// the key and 0 where it did not (a key it charged but was not under).
    pub async fn after(
        &self,
        admitted: &[(String, LimitSpec)],
        cost: u64,
        learned: &Learned,
    ) -> Result<Settled, LimitError> {
        let definitions = self.definitions.read().expect("definitions lock").clone();
        let entries = entries(admitted, &definitions, cost, learned);
        if entries.is_empty() {
            return Ok(Settled::default());
        }
        let how = &self.options.adaptation;
        let prefix = &self.options.prefix;
        let mut call = AFTER.prepare_invoke();
        for e in &entries {
            call.key(format!("{prefix}:gcra:{}", e.key));
        }
        for e in &entries {
            call.key(format!("{prefix}:adapt:{}", e.key));
        }
        let hold = learned.retry_after.filter(|_| learned.too_many);
        call.arg(entries.len())
            .arg(hold.unwrap_or_default().as_micros() as u64)
            .arg(how.factor)
            .arg(how.quiet.as_micros() as u64)
            .arg(how.recovery.as_micros() as u64)
            .arg(how.max_bursts_ahead);
        for e in &entries {
            call.arg(e.rate.interval_us())
                .arg(e.burst)
                .arg(e.rate.period_ms * 1000)
                .arg(u8::from(e.too_many))
                .arg(e.delta);
        }
        let mut conn = self.conn().await?;
        let reply: Vec<i64> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("after script", e))?;
        if reply.len() != entries.len() {
            return Err(LimitError::Reply {
                context: "after script",
                reply: format!("{reply:?}"),
            });
        }
        Ok(Settled {
            cut: entries
                .iter()
                .zip(&reply)
                .filter(|(_, &c)| c == 1)
                .map(|(e, _)| e.key.to_owned())
                .collect(),
            charged: entries
                .iter()
                .filter(|e| e.delta != 0)
                .map(|e| (e.key.to_owned(), e.delta))
                .collect(),
        })
    }
}

/// The rate keys with something to tell, each once.
fn entries<'a>(
    admitted: &'a [(String, LimitSpec)],
    definitions: &'a BTreeMap<String, LimitSpec>,
    cost: u64,
    learned: &Learned,
) -> Vec<Entry<'a>> {
    let delta = |key: &str, estimate: u64| {
        learned.charges.get(key).map_or(0, |&actual| {
            (actual.min(i64::MAX as u64) as i64).saturating_sub(estimate as i64)
        })
    };
    let mut entries: Vec<Entry<'a>> = admitted
        .iter()
        .filter_map(|(key, spec)| {
            Some(Entry {
                key,
                rate: spec.rate?,
                burst: spec.burst,
                too_many: learned.too_many && key != GLOBAL_KEY,
                delta: delta(key, cost),
            })
        })
        .collect();
    for key in learned.charges.keys() {
        if entries.iter().any(|e| e.key == key) {
            continue;
        }
        if let Some((key, spec)) = definitions.get_key_value(key) {
            if let Some(rate) = spec.rate {
                let (too_many, delta) = (false, delta(key, 0));
                let burst = spec.burst;
                entries.push(Entry {
                    key,
                    rate,
                    burst,
                    too_many,
                    delta,
                });
            }
        }
    }
    entries.retain(|e| e.too_many || e.delta != 0);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_keys_it_changes_and_by_how_much() {
        let admitted = vec![
            ("api".to_owned(), LimitSpec::per_second(100, 10)),
            ("db".to_owned(), LimitSpec::concurrency(4)),
            (GLOBAL_KEY.to_owned(), LimitSpec::per_second(1000, 10)),
        ];
        let definitions: BTreeMap<String, LimitSpec> =
            [("tokens".to_owned(), LimitSpec::per_second(1000, 100))].into();
        let learned = Learned {
            too_many: true,
            retry_after: None,
            charges: [
                ("api".to_owned(), 3),
                ("tokens".to_owned(), 100),
                ("nope".to_owned(), 5),
            ]
            .into(),
        };
        let got: Vec<(&str, bool, i64)> = entries(&admitted, &definitions, 10, &learned)
            .iter()
            .map(|e| (e.key, e.too_many, e.delta))
            .collect();
        // api: cut, and credited 7 (3 against an estimate of 10); global
        // is not cut; tokens was not taken, so all 100 are debited; the
        // concurrency cap and an undefined key have nothing to move.
        assert_eq!(got, [("api", true, -7), ("tokens", false, 100)]);
        assert!(Learned::default().is_empty());
    }
}
