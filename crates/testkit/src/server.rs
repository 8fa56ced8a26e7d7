//! `nats-server -js` and `redis-server` on free loopback ports.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Process, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Ports below Linux's ephemeral range (32768–60999), so that no client
/// socket's local port can take a server's port between our check and the
/// server's bind, and no connect can land on itself.
const PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A free port on 127.0.0.1 (free when asked; servers retry on a clash).
pub fn free_port() -> Result<u16, TestkitError> {
    use std::hash::{BuildHasher, Hasher};
    let span = u64::from(PORTS.end - PORTS.start);
    let mut last = None;
    for _ in 0..100 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = PORTS.start + (hasher.finish() % span) as u16;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(TestkitError::io(
        "finding a free loopback port",
        last.expect("at least one port was tried"),
    ))
}

/// Finds `binary` on `PATH`, or in the sbin directories Debian installs
/// servers to (not on a regular user's `PATH`).
pub fn find_server(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// Waits until `port` accepts a TCP connection or `process` exits.
fn wait_ready(what: &'static str, port: u16, process: &mut Process) -> Result<(), TestkitError> {
    let start = Instant::now();
    loop {
        if let Some(status) = process.try_status() {
            return Err(TestkitError::NotReady {
                what,
                port,
                secs: start.elapsed().as_secs(),
                detail: format!("it exited with {status}"),
            });
        }
        match TcpStream::connect(("127.0.0.1", port)) {
            // A socket connected to itself is not a server.
            Ok(stream) if stream.local_addr().ok() != stream.peer_addr().ok() => return Ok(()),
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) if start.elapsed() > READY_TIMEOUT => {
                return Err(TestkitError::NotReady {
                    what,
                    port,
                    secs: READY_TIMEOUT.as_secs(),
                    detail: e.to_string(),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Serializes picking a port and waiting for the server to listen on it.
/// Without it, two servers started at once by tests in one process could
/// pick the same free port: the loser fails to bind, yet its readiness
/// check connects to the winner and it is taken for running.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `make(port)` on a free port, trying other ports if one was taken meanwhile.
fn start_on_free_port(
    what: &'static str,
    make: impl Fn(u16) -> Command,
) -> Result<(Process, u16), TestkitError> {
    let _one_at_a_time = STARTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let mut process = Process::spawn(what, make(port))?;
        match wait_ready(what, port, &mut process) {
            Ok(()) => return Ok((process, port)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt was made"))
}

/// A `nats-server -js` with file storage in its own temporary directory.
///
/// ```no_run
/// let nats = toolfan_testkit::NatsServer::start().unwrap();
/// println!("connect to {}", nats.url());
/// ```
#[derive(Debug)]
pub struct NatsServer {
    process: Option<Process>,
    port: u16,
    store: TempDir,
    binary: PathBuf,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_inner(None)
    }

    /// Starts one with `config` (nats-server configuration text, e.g. an
    /// `authorization` block) added; port, address and store stay the kit's.
    pub fn start_with_config(config: &str) -> Result<Self, TestkitError> {
        Self::start_inner(Some(config))
    }

    fn start_inner(config: Option<&str>) -> Result<Self, TestkitError> {
        let binary = find_server("nats-server").ok_or(TestkitError::MissingBinary {
            binary: "nats-server",
            package: "nats-server",
        })?;
        let store = tempfile::Builder::new()
            .prefix("toolfan-nats-")
            .tempdir()
            .map_err(|e| TestkitError::io("making the JetStream store directory", e))?;
        let config = match config {
            Some(text) => {
                let path = store.path().join("nats-server.conf");
                std::fs::write(&path, text)
                    .map_err(|e| TestkitError::io("writing the nats-server configuration", e))?;
                Some(path)
            }
            None => None,
        };
        let (process, port) = start_on_free_port("nats-server", |port| {
            nats_command(&binary, port, store.path(), config.as_deref())
        })?;
        Ok(Self {
            process: Some(process),
            port,
            store,
            binary,
            config,
        })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, unless it was killed.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Kills the server with SIGKILL; its store stays for [`NatsServer::restart`].
    pub fn kill(&mut self) {
        self.process.take();
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let mut process = Process::spawn(
            "nats-server",
            nats_command(
                &self.binary,
                self.port,
                self.store.path(),
                self.config.as_deref(),
            ),
        )?;
        wait_ready("nats-server", self.port, &mut process)?;
        self.process = Some(process);
        Ok(())
    }
}

fn nats_command(binary: &Path, port: u16, store: &Path, config: Option<&Path>) -> Command {
    let mut cmd = Command::new(binary);
    if let Some(config) = config {
        cmd.arg("-c").arg(config);
    }
    cmd.arg("-js")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A `redis-server` without persistence, in its own temporary directory.
#[derive(Debug)]
pub struct RedisServer {
    process: Option<Process>,
    port: u16,
    dir: TempDir,
    binary: PathBuf,
}

fn redis_command(binary: &Path, port: u16, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        let binary = find_server("redis-server").ok_or(TestkitError::MissingBinary {
            binary: "redis-server",
            package: "redis-server",
        })?;
        let dir = tempfile::Builder::new()
            .prefix("toolfan-redis-")
            .tempdir()
            .map_err(|e| TestkitError::io("making the Redis directory", e))?;
        let (process, port) = start_on_free_port("redis-server", |port| {
            redis_command(&binary, port, dir.path())
        })?;
        Ok(Self {
            process: Some(process),
            port,
            dir,
            binary,
        })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, unless it was killed.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Kills the server with SIGKILL; its data is gone (no persistence).
    pub fn kill(&mut self) {
        self.process.take();
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let mut process = Process::spawn(
            "redis-server",
            redis_command(&self.binary, self.port, self.dir.path()),
        )?;
        wait_ready("redis-server", self.port, &mut process)?;
        self.process = Some(process);
        Ok(())
    }
}
