//! How much of each limit is in use now ([`Usage`]), read from the state
//! the workers' acquire script keeps: a rate limit's theoretical arrival
//! time (`<prefix>:gcra:<key>`, µs of Redis time) and a concurrency cap's
//! lease set (`<prefix>:lease:<key>`, member → expiry in ms), and the
//! rate's adaptive state (`<prefix>:adapt:<key>`, see [`crate::adapt`]).

use super::LimitStore;
use crate::adapt::{effective_interval, Adapted};
use crate::{LimitError, Rate};

/// One limit key's state in Redis at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Redis' clock when it was read, µs since the Unix epoch.
    pub now_us: u64,
    /// The rate limit's theoretical arrival time, if it was ever taken:
    /// ahead of `now_us` by one emission interval per unit of burst in use.
    pub tat_us: Option<u64>,
    /// Leases of the concurrency cap held now (not expired).
    pub leases: u64,
    /// The rate's state after a backend's "too many", until it recovered.
    pub adapted: Option<Adapted>,
}

impl Usage {
    /// Units per second admitted now for a key configured at `rate`: the
    /// configured rate, or less while it recovers from a backend's "too many".
    pub fn effective_per_second(&self, rate: &Rate) -> f64 {
        let interval = effective_interval(
            self.adapted.as_ref(),
            rate.interval_us(),
            self.now_us as f64,
        );
        1e6 / interval
    }

    /// Units of burst in use now, for a limit of `interval_us` per unit.
    pub fn burst_in_use(&self, interval_us: f64) -> f64 {
        match self.tat_us {
            Some(tat) if tat > self.now_us && interval_us > 0.0 => {
                (tat - self.now_us) as f64 / interval_us
            }
            _ => 0.0,
        }
    }

    /// Units taken per second between `earlier` and this reading, for a
    /// limit of `interval_us` per unit, when it was busy at both (its
    /// arrival time ahead of the clock): then every unit taken in between
    /// moved the arrival time on by one interval, and the figure is exact.
    /// `None` when it was idle at either: the acquire script restarts an
    /// arrival time left behind at the clock (and lets it expire), so the
    /// state then only says that the limit held nothing back.
    pub fn rate_since(&self, earlier: &Usage, interval_us: f64) -> Option<f64> {
        let elapsed_us = self.now_us.checked_sub(earlier.now_us).filter(|&e| e > 0)?;
        let then = earlier.tat_us.filter(|&t| t > earlier.now_us)?;
        let now = self.tat_us.filter(|&t| t > self.now_us)?;
        let units = now.saturating_sub(then) as f64 / interval_us;
        Some(units * 1e6 / elapsed_us as f64)
    }
}

impl LimitStore {
    /// The state of each of `keys`' limits now (Redis' clock first, then
    /// every key in one atomic read).
    pub async fn usage(&self, keys: &[String]) -> Result<Vec<Usage>, LimitError> {
        let prefix = self.hash.strip_suffix(":limits").unwrap_or(&self.hash);
        let mut conn = self.conn.clone();
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| LimitError::redis("reading Redis' TIME", e))?;
        let now_us = secs * 1_000_000 + micros;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.get(format!("{prefix}:gcra:{key}"));
            // A lease's score is its expiry (ms); expired ones go lazily.
            pipe.cmd("ZCOUNT")
                .arg(format!("{prefix}:lease:{key}"))
                .arg(format!("({}", now_us / 1000))
                .arg("+inf");
            pipe.cmd("HMGET")
                .arg(format!("{prefix}:adapt:{key}"))
                .arg(&["interval", "at", "recover", "quiet_until"]);
        }
        let reply: Vec<Read> = if keys.is_empty() {
            Vec::new()
        } else {
            let flat: Vec<redis::Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| LimitError::redis("reading limit usage", e))?;
            triples(flat)?
        };
        Ok(reply
            .into_iter()
            .map(|(tat, leases, adapted)| Usage {
                now_us,
                // The script stores the arrival time as a whole number.
                tat_us: tat.and_then(|t| t.parse::<f64>().ok()).map(|t| t as u64),
                leases,
                adapted: adapted_state(&adapted),
            })
            .collect())
    }
}

fn unexpected(e: &dyn std::fmt::Display) -> LimitError {
    LimitError::Reply {
        context: "reading limit usage",
        reply: e.to_string(),
    }
}

/// One key's replies: its GET, ZCOUNT and HMGET.
type Read = (Option<String>, u64, Vec<Option<String>>);

/// The pipeline's flat replies as (GET, ZCOUNT, HMGET) triples.
fn triples(flat: Vec<redis::Value>) -> Result<Vec<Read>, LimitError> {
    let mut values = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(tat), Some(leases), Some(adapt)) = (values.next(), values.next(), values.next())
    {
        let tat: Option<String> = redis::from_redis_value(tat).map_err(|e| unexpected(&e))?;
        let leases: u64 = redis::from_redis_value(leases).map_err(|e| unexpected(&e))?;
        let adapt: Vec<Option<String>> =
            redis::from_redis_value(adapt).map_err(|e| unexpected(&e))?;
        out.push((tat, leases, adapt));
    }
    Ok(out)
}

/// The adaptive state from its hash's fields, if all are there.
fn adapted_state(fields: &[Option<String>]) -> Option<Adapted> {
    let number = |i: usize| fields.get(i)?.as_deref()?.parse::<f64>().ok();
    Some(Adapted {
        interval_us: number(0)?,
        at_us: number(1)?,
        recover_us: number(2)?,
        quiet_until_us: number(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(now_us: u64, tat_us: Option<u64>) -> Usage {
        Usage {
            now_us,
            tat_us,
            leases: 0,
            adapted: None,
        }
    }

    #[test]
    fn a_busy_limit_has_an_exact_rate_an_idle_one_none() {
        // 50/s: 20 ms a unit. Busy at both reads, the arrival time moved on
        // by 50 units in one second.
        let interval = 20_000.0;
        let before = at(1_000_000, Some(1_080_000));
        let now = at(2_000_000, Some(2_080_000));
        assert_eq!(now.rate_since(&before, interval), Some(50.0));
        assert_eq!(now.burst_in_use(interval), 4.0);
        // Idle at either read: nothing said about the rate.
        assert_eq!(
            at(2_000_000, Some(1_900_000)).rate_since(&before, interval),
            None
        );
        assert_eq!(now.rate_since(&at(1_000_000, None), interval), None);
        assert_eq!(at(2_000_000, None).burst_in_use(interval), 0.0);
    }
}
