//! `nats-server -js` and `redis-server` on free loopback ports.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Process, TestkitError};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A free port on 127.0.0.1 (free when asked; servers retry on a clash).
pub fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| TestkitError::io("binding a free loopback port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| TestkitError::io("reading the free port", e))
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file())
    })
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
            Ok(_) => return Ok(()),
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

/// Starts `make(port)` on a free port, trying other ports if one was taken meanwhile.
fn start_on_free_port(
    what: &'static str,
    make: impl Fn(u16) -> Command,
) -> Result<(Process, u16), TestkitError> {
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
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        if !on_path("nats-server") {
            return Err(TestkitError::MissingBinary {
                binary: "nats-server",
                package: "nats-server",
            });
        }
        let store = tempfile::Builder::new()
            .prefix("toolfan-nats-")
            .tempdir()
            .map_err(|e| TestkitError::io("making the JetStream store directory", e))?;
        let (process, port) =
            start_on_free_port("nats-server", |port| nats_command(port, store.path()))?;
        Ok(Self {
            process: Some(process),
            port,
            store,
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

    /// Kills the server with SIGKILL; its store stays for [`NatsServer::restart`].
    pub fn kill(&mut self) {
        self.process.take();
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let mut process =
            Process::spawn("nats-server", nats_command(self.port, self.store.path()))?;
        wait_ready("nats-server", self.port, &mut process)?;
        self.process = Some(process);
        Ok(())
    }
}

fn nats_command(port: u16, store: &Path) -> Command {
    let mut cmd = Command::new("nats-server");
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
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        if !on_path("redis-server") {
            return Err(TestkitError::MissingBinary {
                binary: "redis-server",
                package: "redis-server",
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("toolfan-redis-")
            .tempdir()
            .map_err(|e| TestkitError::io("making the Redis directory", e))?;
        let (process, port) = start_on_free_port("redis-server", |port| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd
        })?;
        Ok(Self {
            process: Some(process),
            port,
            _dir: dir,
        })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        self.process.take();
    }
}
