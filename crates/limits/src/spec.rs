//! What a limit is: a rate with a burst, a concurrency cap, or both, under a key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::LimitError;

/// A limit key's longest length.
const MAX_KEY_LEN: usize = 128;

/// Checks a limit key: 1–128 ASCII letters, digits, `_ - . :` (e.g. `tenant:acme`).
pub fn check_key(key: &str) -> Result<(), LimitError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(LimitError::Spec(format!(
            "invalid limit key {key:?}: use 1 to {MAX_KEY_LEN} ASCII letters, digits, '_', '-', '.' or ':'"
        )))
    }
}

/// `count` units per `period_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Units per period.
    pub count: u64,
    /// The period, in milliseconds.
    pub period_ms: u64,
}

impl Rate {
    /// Microseconds between two units (the GCRA emission interval).
    pub fn interval_us(&self) -> f64 {
        self.period_ms as f64 * 1000.0 / self.count as f64
    }

    /// Units per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 * 1000.0 / self.period_ms as f64
    }
}

impl FromStr for Rate {
    type Err = LimitError;

    /// `50/s`, `600/m`, `1000/h`, or a bare number of units per second.
    fn from_str(s: &str) -> Result<Self, LimitError> {
        let bad = || {
            LimitError::Spec(format!(
                "invalid rate {s:?}: write COUNT/s, COUNT/m or COUNT/h, e.g. 50/s"
            ))
        };
        let (count, period_ms) = match s.split_once('/') {
            None => (s, 1000),
            Some((count, "s")) => (count, 1000),
            Some((count, "m")) => (count, 60_000),
            Some((count, "h")) => (count, 3_600_000),
            Some(_) => return Err(bad()),
        };
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(LimitError::Spec(format!(
                "invalid rate {s:?}: the count must be at least 1"
            )));
        }
        Ok(Self { count, period_ms })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period_ms {
            1000 => write!(f, "{}/s", self.count),
            60_000 => write!(f, "{}/m", self.count),
            3_600_000 => write!(f, "{}/h", self.count),
            ms => write!(f, "{}/{}ms", self.count, ms),
        }
    }
}

/// The limits under one key. Stored in Redis as JSON, e.g.
/// `{"rate":{"count":50,"period_ms":1000},"burst":5}` or `{"concurrency":4}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Units admitted per period, fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Units that may pass at once above the steady rate (at least 1).
    #[serde(default = "one")]
    pub burst: u64,
    /// Calls in flight at once, fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Under a `caller:<name>` key: the caller's weight in the fleet's fair
    /// shares (1 when unset); coordinators read it, workers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

fn one() -> u64 {
    1
}

impl LimitSpec {
    /// `per_second` calls a second with `burst` at once.
    pub fn per_second(per_second: u64, burst: u64) -> Self {
        Self {
            rate: Some(Rate {
                count: per_second,
                period_ms: 1000,
            }),
            burst,
            concurrency: None,
            weight: None,
        }
    }

    /// At most `n` calls in flight, no rate.
    pub fn concurrency(n: u32) -> Self {
        Self {
            rate: None,
            burst: 1,
            concurrency: Some(n),
            weight: None,
        }
    }

    /// Checks that the spec limits something and that its numbers make sense.
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.rate.is_none() && self.concurrency.is_none() && self.weight.is_none() {
            return Err(LimitError::Spec(
                "a limit needs a rate (e.g. 50/s), a concurrency cap, a weight, or several".into(),
            ));
        }
        if self.weight == Some(0) {
            return Err(LimitError::Spec("the weight must be at least 1".into()));
        }
        if self.burst == 0 {
            return Err(LimitError::Spec("the burst must be at least 1".into()));
        }
        if self.concurrency == Some(0) {
            return Err(LimitError::Spec(
                "the concurrency cap must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Parses the worker flag form `50/s`, `50/s,burst=5`, `concurrency=4`,
    /// `10/s,burst=2,concurrency=8`.
    pub fn parse_flag(s: &str) -> Result<Self, LimitError> {
        let mut spec = LimitSpec {
            rate: None,
            burst: 1,
            concurrency: None,
            weight: None,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let number = |v: &str, what: &str| {
                v.parse::<u64>()
                    .map_err(|_| LimitError::Spec(format!("invalid {what} {v:?} in limit {s:?}")))
            };
            match part.split_once('=') {
                Some(("burst", v)) => spec.burst = number(v, "burst")?,
                Some(("concurrency", v)) => {
                    spec.concurrency =
                        Some(u32::try_from(number(v, "concurrency")?).map_err(|_| {
                            LimitError::Spec(format!("concurrency {v} is too large"))
                        })?)
                }
                Some((other, _)) => {
                    return Err(LimitError::Spec(format!(
                        "unknown setting {other:?} in limit {s:?}; use burst= or concurrency="
                    )))
                }
                None => spec.rate = Some(part.parse()?),
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for LimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(rate) = self.rate {
            parts.push(format!("{rate} burst {}", self.burst));
        }
        if let Some(cap) = self.concurrency {
            parts.push(format!("concurrency {cap}"));
        }
        if let Some(weight) = self.weight {
            parts.push(format!("weight {weight}"));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_their_documented_forms() {
        assert_eq!(
            "50/s".parse::<Rate>().unwrap(),
            Rate {
                count: 50,
                period_ms: 1000
            }
        );
        assert_eq!("600/m".parse::<Rate>().unwrap().per_second(), 10.0);
        assert_eq!("7".parse::<Rate>().unwrap().to_string(), "7/s");
        assert_eq!("3600/h".parse::<Rate>().unwrap().interval_us(), 1_000_000.0);
        for bad in ["", "0/s", "x/s", "5/d", "-1/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn flag_specs_parse_and_name_their_errors() {
        let spec = LimitSpec::parse_flag("50/s,burst=5,concurrency=4").unwrap();
        assert_eq!(spec.to_string(), "50/s burst 5, concurrency 4");
        assert_eq!(LimitSpec::parse_flag("concurrency=4").unwrap().rate, None);
        let err = LimitSpec::parse_flag("burst=5").unwrap_err().to_string();
        assert!(err.contains("needs a rate"), "{err}");
        let err = LimitSpec::parse_flag("50/s,brust=5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting \"brust\""), "{err}");
        assert!(check_key("tenant:acme").is_ok());
        assert!(check_key("a b").is_err());
    }
}
