//! Reading a service's Prometheus endpoint in tests.

use std::collections::BTreeMap;

use crate::http_client;

/// One scrape: series (`name{a="1",b="2"}` with labels sorted) → value.
pub async fn scrape(port: u16) -> anyhow::Result<BTreeMap<String, f64>> {
    let body = http_client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut series = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad line {line:?}"))?;
        series.insert(normalize(key), value.parse()?);
    }
    Ok(series)
}

/// `name{b="2",a="1"}` → `name{a="1",b="2"}`.
fn normalize(series: &str) -> String {
    match series.split_once('{') {
        None => series.to_owned(),
        Some((name, labels)) => {
            let mut pairs: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
                .collect();
            pairs.sort_unstable();
            format!("{name}{{{}}}", pairs.join(","))
        }
    }
}

/// The value of one series of a scrape (0 when absent).
pub fn value(series: &BTreeMap<String, f64>, key: &str) -> f64 {
    series.get(&normalize(key)).copied().unwrap_or(0.0)
}
