//! Limits that adapt to what the backend says, and costs known after the
//! call: real Redis, NATS, worker processes serving an HTTP tool from a
//! tools file, and a local HTTP backend in the test process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::{spawn, Cluster};
use toolfan_limits::{LimitSpec, LimitStore};
use toolfan_testkit::{Process, RedisServer};

/// A backend that answers 429 to calls above `limit` a second (0: no
/// limit) and says each call used `usage` tokens; it logs every call.
struct Backend {
    limit: AtomicU64,
    usage: u64,
    accepted: Mutex<VecDeque<Instant>>,
    log: Mutex<Vec<(Instant, bool)>>,
}

async fn call(State(backend): State<Arc<Backend>>) -> Response {
    let now = Instant::now();
    let limit = backend.limit.load(Ordering::Relaxed);
    let ok = {
        let mut accepted = backend.accepted.lock().unwrap();
        while accepted
            .front()
            .is_some_and(|t| now - *t >= Duration::from_secs(1))
        {
            accepted.pop_front();
        }
        let ok = limit == 0 || (accepted.len() as u64) < limit;
        if ok {
            accepted.push_back(now);
        }
        ok
    };
    backend.log.lock().unwrap().push((now, ok));
    if ok {
        axum::Json(json!({"ok": true, "usage": {"total_tokens": backend.usage}})).into_response()
    } else {
        (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response()
    }
}

impl Backend {
    /// Serves on a free local port.
    async fn start(limit: u64, usage: u64) -> anyhow::Result<(Arc<Self>, u16)> {
        let backend = Arc::new(Self {
            limit: AtomicU64::new(limit),
            usage,
            accepted: Mutex::default(),
            log: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/call", axum::routing::post(call))
            .with_state(backend.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((backend, port))
    }

    /// Calls per second and the fraction answered 429 between `from` and `to`.
    fn between(&self, from: Instant, to: Instant) -> (f64, f64) {
        let log = self.log.lock().unwrap();
        let calls: Vec<bool> = log
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, ok)| *ok)
            .collect();
        let refused = calls.iter().filter(|ok| !**ok).count();
        let seconds = (to - from).as_secs_f64();
        let fraction = refused as f64 / calls.len().max(1) as f64;
        (calls.len() as f64 / seconds, fraction)
    }
}

/// NATS, a coordinator, Redis and two workers serving `backend`, an HTTP
/// tool on `port` under `key` (with `usage`, a line of the tool's table).
struct Setup {
    cluster: Cluster,
    redis: RedisServer,
    store: LimitStore,
    _workers: Vec<Process>,
    _dir: tempfile::TempDir,
}

async fn setup(port: u16, key: &str, usage: &str) -> anyhow::Result<Setup> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tools.toml");
    std::fs::write(
        &path,
        format!(
            "[[tools]]\nname = \"backend\"\nlimit_keys = [\"{key}\"]\n\
             http = {{ method = \"POST\", url = \"http://127.0.0.1:{port}/call\", \
             allowed_hosts = [\"127.0.0.1\"] {usage} }}\n"
        ),
    )?;
    let (nats, redis_url) = (cluster.nats.url(), redis.url());
    let path = path.to_str().expect("a UTF-8 temporary path");
    let ids = ["adapt-w1".to_owned(), "adapt-w2".to_owned()];
    let mut workers = Vec::new();
    for id in &ids {
        let args = [
            "--nats-url",
            &nats,
            "--redis-url",
            &redis_url,
            "--id",
            id,
            "--config",
            path,
        ];
        workers.push(spawn("toolfan-worker", &args)?);
    }
    cluster.wait_for_workers(&ids).await?;
    Ok(Setup {
        cluster,
        redis,
        store,
        _workers: workers,
        _dir: dir,
    })
}

/// Submits `n` calls of `backend` costing `cost` each, not waited for.
async fn submit(setup: &Setup, n: usize, cost: u32) -> anyhow::Result<toolfan::JobHandle> {
    let task = Task::new("backend", json!({})).cost(cost).retries(3);
    let job = Job::new(vec![task; n])
        .max_concurrency(1000)
        .deadline(Duration::from_secs(60));
    Ok(setup.cluster.client().await?.submit(job).await?)
}

/// `toolfan limits list`'s output.
fn listed(redis: &RedisServer) -> anyhow::Result<String> {
    let output = std::process::Command::new(toolfan_testkit::binary("toolfan")?)
        .args(["limits", "list", "--redis-url", &redis.url()])
        .env_remove("TOOLFAN_PREFIX")
        .output()?;
    anyhow::ensure!(output.status.success(), "toolfan limits list failed");
    Ok(String::from_utf8(output.stdout)?)
}

/// The number after "effective " in `line`.
fn effective(line: &str) -> Option<f64> {
    let rest = line.split("effective ").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

#[tokio::test]
async fn the_fleet_backs_off_to_what_the_backend_allows_and_climbs_back() -> anyhow::Result<()> {
    let (backend, port) = Backend::start(30, 1).await?;
    let setup = setup(port, "api", "").await?;
    setup
        .store
        .set("api", &LimitSpec::per_second(100, 10))
        .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let start = Instant::now();
    let job = submit(&setup, 3000, 1).await?;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let (rate, refused) = backend.between(start + Duration::from_secs(4), Instant::now());
    let list = listed(&setup.redis)?;
    let line = list.lines().find(|l| l.starts_with("api: ")).unwrap_or("");
    let listed_rate = effective(line).unwrap_or(f64::NAN);
    // Lift the backend's limit: the fleet climbs back.
    backend.limit.store(0, Ordering::Relaxed);
    let lifted = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (climbed, _) = backend.between(lifted + Duration::from_secs(4), Instant::now());
    let _ = job.cancel().await;
    eprintln!(
        "configured 100/s, backend 429 above 30/s: {rate:.1} calls/s from 4 s to 9 s, \
         {:.1} % answered 429; listed {line:?}; 4 to 7 s after the limit was lifted {climbed:.1}/s",
        refused * 100.0
    );
    assert!(
        rate <= 31.0,
        "the fleet called {rate:.1}/s, above the backend's 30/s"
    );
    assert!(rate >= 12.0, "the fleet backed off too far: {rate:.1}/s");
    assert!(
        refused < 0.05,
        "{:.1} % of calls answered 429",
        refused * 100.0
    );
    assert!(
        line.starts_with("api: 100/s burst 10; effective "),
        "{list}"
    );
    assert!(
        listed_rate < 60.0,
        "listed effective rate {listed_rate}: {list}"
    );
    assert!(
        climbed >= 45.0,
        "only {climbed:.1}/s after the backend's limit was lifted"
    );
    Ok(())
}

#[tokio::test]
async fn a_real_cost_reported_after_the_call_holds_the_units_per_second() -> anyhow::Result<()> {
    // Each call is estimated at 10 units and really uses 100.
    let (backend, port) = Backend::start(0, 100).await?;
    let usage = ", usage = { pointer = \"/usage/total_tokens\", key = \"tokens\" }";
    let setup = setup(port, "tokens", usage).await?;
    setup
        .store
        .set("tokens", &LimitSpec::per_second(1000, 100))
        .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let start = Instant::now();
    let job = submit(&setup, 600, 10).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // From 2 s to 8 s, after the first burst. A bucket that filled while
    // tasks slept lets its burst through at once (100 units of estimates:
    // 10 calls, 1000 real units), so over 6 s at most 6000 + 1000 units:
    // 70 calls, 11.7 a second. Without the charges it would be 100 a second.
    let (rate, _) = backend.between(start + Duration::from_secs(2), Instant::now());
    let _ = job.cancel().await;
    eprintln!(
        "1000 units/s, calls estimated at 10 costing 100: {rate:.1} calls/s ({:.0} units/s) from 2 s to 8 s",
        rate * 100.0
    );
    assert!(
        rate <= 12.0,
        "{rate:.1} calls/s of 100 units under 1000 units/s"
    );
    assert!(
        rate >= 7.0,
        "{rate:.1} calls/s: the limit's rate was not used"
    );
    Ok(())
}
