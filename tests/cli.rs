//! The `toolfan` command line as new users type it: flags after the
//! subcommand, the tools table, `toolfan dev` stopped by SIGTERM.

use std::process::{Command, Output};

use toolfan_testkit::RedisServer;

/// Runs the built `toolfan` binary with `args` to its end, with no
/// `TOOLFAN_*` connection variables set (the flags must do the work).
fn toolfan(args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(toolfan_testkit::binary("toolfan")?)
        .args(args)
        .env_remove("TOOLFAN_REDIS_URL")
        .env_remove("TOOLFAN_NATS_URL")
        .env_remove("TOOLFAN_PREFIX")
        .env("RUST_LOG", "warn")
        .output()?;
    Ok(output)
}

fn stdout_of(args: &[&str]) -> anyhow::Result<String> {
    let output = toolfan(args)?;
    anyhow::ensure!(
        output.status.success(),
        "toolfan {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn connection_flags_are_taken_after_the_subcommand() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    stdout_of(&["limits", "set", "api", "50/s", "--redis-url", &url])?;
    stdout_of(&[
        "limits",
        "set",
        "db",
        "--redis-url",
        &url,
        "--concurrency",
        "5",
        "--prefix",
        "p2",
    ])?;
    // Before the nested subcommand still works, as it did.
    let listed = stdout_of(&["limits", "--redis-url", &url, "list"])?;
    assert!(listed.contains("api: 50/s"), "{listed}");
    assert!(
        !listed.contains("db:"),
        "db was set under prefix p2: {listed}"
    );
    let listed = stdout_of(&["limits", "list", "--prefix", "p2", "--redis-url", &url])?;
    assert!(listed.contains("db: "), "{listed}");
    assert!(!listed.contains("api:"), "{listed}");
    // The environment variable still stands in for the flag.
    let output = Command::new(toolfan_testkit::binary("toolfan")?)
        .args(["limits", "list"])
        .env("TOOLFAN_REDIS_URL", &url)
        .env_remove("TOOLFAN_PREFIX")
        .output()?;
    assert!(String::from_utf8(output.stdout)?.contains("api: 50/s"));
    // NATS flags, too: a refused connection names the URL given after `workers`.
    let output = toolfan(&[
        "workers",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--nats-user",
        "u",
    ])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    Ok(())
}

/// The pids of `parent`'s live (not zombie) children, from /proc.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            // stat: "pid (comm) state ppid ..."; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str())
        })
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGKILLs the processes still alive when dropped, so a failing test does
/// not leave the servers it checks behind.
struct KillLeftOnDrop(Vec<u32>);

impl Drop for KillLeftOnDrop {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|&&pid| alive(pid)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    let port = url.trim().rsplit(':').next().unwrap_or_default();
    Ok(port.parse()?)
}

#[test]
fn dev_keep_stopped_by_sigterm_stops_its_servers() -> anyhow::Result<()> {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let mut cmd = Command::new(toolfan_testkit::binary("toolfan")?);
    cmd.args(["dev", "--keep", "--no-demo", "--workers", "1"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let mut dev = toolfan_testkit::Process::spawn("toolfan dev", cmd)?;
    let stdout = dev
        .take_stdout()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    // Read its lines on a thread, so waiting for them is bounded.
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let (mut nats_port, mut redis_port) = (None, None);
    let started = Instant::now();
    while nats_port.is_none() || redis_port.is_none() {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let line = seen
            .recv_timeout(left)
            .map_err(|_| anyhow::anyhow!("toolfan dev --keep did not come up within 60 s"))?;
        if let Some(url) = line.trim().strip_prefix("export TOOLFAN_NATS_URL=") {
            nats_port = Some(port_of(url)?);
        }
        if let Some(url) = line.trim().strip_prefix("export TOOLFAN_REDIS_URL=") {
            redis_port = Some(port_of(url)?);
        }
    }
    let servers = children(dev.pid());
    let _cleanup = KillLeftOnDrop(servers.clone());
    assert_eq!(
        servers.len(),
        2,
        "nats-server and redis-server: {servers:?}"
    );
    for port in [nats_port, redis_port].into_iter().flatten() {
        std::net::TcpStream::connect(("127.0.0.1", port))?;
    }
    toolfan_e2e::terminate(&dev)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = dev.try_status() {
            break status;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "toolfan dev still runs 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "toolfan dev exited {status} on SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while servers.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = servers.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(
        left.is_empty(),
        "servers left running after SIGTERM: {left:?}"
    );
    for port in [nats_port, redis_port].into_iter().flatten() {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
    Ok(())
}
