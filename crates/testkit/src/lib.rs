//! Real servers for tests and for `toolfan dev`.
//!
//! [`NatsServer::start`] runs `nats-server -js` and [`RedisServer::start`]
//! runs `redis-server`, each from `PATH`, on a free loopback port with its
//! own temporary directory, and kills it on drop, so tests can run in
//! parallel without clashing. [`Process`] does the same for toolfan's own
//! binaries, found with [`binary`].
//!
//! # Layout
//! - [`server`] — starting, stopping and restarting the two servers.
//! - [`process`] — child processes that die with their owner, and finding
//!   the workspace's binaries.
//! - [`stats`] — counting over timestamps (rates in windows).

pub mod process;
pub mod server;
pub mod stats;

pub use process::{binary, Process};
pub use server::{NatsServer, RedisServer};

/// Why a server or process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The server binary is not on `PATH`.
    #[error("{binary} was not found on PATH; install it with: sudo apt-get install -y {package}")]
    MissingBinary {
        /// The binary looked for.
        binary: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A toolfan binary has not been built.
    #[error("{0} is not built; run `cargo build --workspace --bins` first (scripts/test does)")]
    NotBuilt(String),
    /// The process started but never accepted connections.
    #[error("{what} did not accept connections on 127.0.0.1:{port} within {secs} s: {detail}")]
    NotReady {
        /// Which server.
        what: &'static str,
        /// Its port.
        port: u16,
        /// How long we waited.
        secs: u64,
        /// The process's exit status or the last connect error.
        detail: String,
    },
    /// An I/O error starting the process or making its directory.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
