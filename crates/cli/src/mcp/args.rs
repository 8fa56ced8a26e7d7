//! `toolfan mcp`'s flags, and the checks they must pass before anything
//! listens: a streamable HTTP server on a non-loopback address needs a
//! bearer token.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::fleet::ClusterArgs;

/// `--max-sessions` unless told otherwise.
const MAX_SESSIONS: u32 = 1024;

/// `toolfan mcp`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct McpArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Caller id the calls' jobs are submitted as (the `<caller>` of `toolfan.job.<caller>`).
    #[arg(long, env = "TOOLFAN_CALLER", default_value = "mcp")]
    pub(crate) caller: String,
    /// Serve streamable HTTP at `http://ADDR/mcp` instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Bearer token HTTP clients must send (`Authorization: Bearer <token>`);
    /// required when --http binds a non-loopback address.
    #[arg(long, env = "TOOLFAN_MCP_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Extra `Host` header values the HTTP server accepts (loopback names and
    /// the bound address are always accepted); repeatable.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub(crate) allowed_hosts: Vec<String>,
    /// At most this many streamable HTTP sessions open at once (an idle one
    /// closes after 5 minutes); a request opening one more is answered 503.
    #[arg(long, default_value_t = MAX_SESSIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_sessions: u32,
    /// An HTTP session whose client holds no GET stream open and has sent
    /// nothing for this many ms is closed.
    #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub(crate) session_idle_ms: u64,
    /// Deadline of each tool call's job, in ms.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub(crate) deadline_ms: u64,
    /// Timeout of each attempt of a call, in ms (default: the tool's own).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub(crate) timeout_ms: Option<u64>,
    /// Retries of a failed call (default: the tool's own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) retries: Option<u32>,
    /// At most this many calls in flight at once; more wait for a slot.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) max_calls: u32,
    /// How often the fleet's tool list is read again, in ms.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub(crate) poll_ms: u64,
    /// How long each read of the tool list collects workers' answers, in ms.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub(crate) listen_ms: u64,
    /// If this server dies, its calls' jobs are cancelled this many
    /// milliseconds after their last keepalive.
    #[arg(long, env = "TOOLFAN_CALLER_GRACE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub(crate) caller_grace_ms: u64,
}

/// How each tool call runs as a job.
#[derive(Debug, Clone)]
pub(crate) struct CallSettings {
    /// The job's deadline.
    pub(crate) deadline: Duration,
    /// Per-attempt timeout, when set.
    pub(crate) timeout: Option<Duration>,
    /// Retries, when set.
    pub(crate) retries: Option<u32>,
    /// Calls in flight at most.
    pub(crate) max_calls: u32,
}

/// What `--http` serves: where, and the token it asks for.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// The address to bind.
    pub(crate) addr: SocketAddr,
    /// The bearer token, when one is required.
    pub(crate) token: Option<String>,
    /// `Host` values accepted.
    pub(crate) allowed_hosts: Vec<String>,
    /// How many of them came from `--allowed-host`.
    pub(crate) extra_hosts: usize,
    /// Sessions open at most.
    pub(crate) max_sessions: usize,
    /// A session left this long by its client is closed.
    pub(crate) session_idle: Duration,
}

/// Why the flags cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ArgsError {
    /// A non-loopback bind without a token.
    OpenWithoutToken(SocketAddr),
    /// `--token` (or `TOOLFAN_MCP_TOKEN`) given but empty.
    EmptyToken,
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OpenWithoutToken(addr) => write!(
                f,
                "refusing to serve MCP on {addr} without a token: it is not a loopback \
                 address, so anyone who reaches it could run the fleet's tools; set \
                 --token or TOOLFAN_MCP_TOKEN, or bind 127.0.0.1"
            ),
            Self::EmptyToken => write!(f, "the MCP bearer token is empty"),
        }
    }
}

impl std::error::Error for ArgsError {}

impl McpArgs {
    /// The per-call job settings.
    pub(crate) fn call_settings(&self) -> CallSettings {
        CallSettings {
            deadline: Duration::from_millis(self.deadline_ms),
            timeout: self.timeout_ms.map(Duration::from_millis),
            retries: self.retries,
            max_calls: self.max_calls,
        }
    }

    /// The HTTP settings, when `--http` is given, checked.
    pub(crate) fn http_settings(&self) -> Result<Option<HttpSettings>, ArgsError> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        let mut settings = http_settings(addr, self.token.as_deref(), &self.allowed_hosts)?;
        settings.max_sessions = self.max_sessions as usize;
        settings.session_idle = Duration::from_millis(self.session_idle_ms);
        Ok(Some(settings))
    }
}

/// Checks a bind address and token: a non-loopback address needs a
/// non-empty token; loopback may go without.
pub(crate) fn http_settings(
    addr: SocketAddr,
    token: Option<&str>,
    extra_hosts: &[String],
) -> Result<HttpSettings, ArgsError> {
    // A token read from a file often ends in a newline; the presented one
    // is trimmed too.
    let token = match token.map(str::trim) {
        Some("") => return Err(ArgsError::EmptyToken),
        Some(token) => Some(token.to_owned()),
        None if !addr.ip().is_loopback() => return Err(ArgsError::OpenWithoutToken(addr)),
        None => None,
    };
    let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if !addr.ip().is_unspecified() {
        allowed_hosts.push(addr.ip().to_string());
    }
    allowed_hosts.extend(extra_hosts.iter().cloned());
    Ok(HttpSettings {
        addr,
        token,
        allowed_hosts,
        extra_hosts: extra_hosts.len(),
        max_sessions: MAX_SESSIONS as usize,
        session_idle: Duration::from_secs(300),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn loopback_goes_without_a_token() {
        let settings = http_settings(addr("127.0.0.1:7000"), None, &[]).expect("allowed");
        assert_eq!(settings.token, None);
        let settings = http_settings(addr("[::1]:7000"), None, &[]).expect("allowed");
        assert_eq!(settings.token, None);
    }

    #[test]
    fn a_non_loopback_bind_without_a_token_is_refused() {
        for open in ["0.0.0.0:7000", "10.1.2.3:7000", "[::]:7000"] {
            let err = http_settings(addr(open), None, &[]).expect_err(open);
            assert_eq!(err, ArgsError::OpenWithoutToken(addr(open)));
            assert!(err.to_string().contains("--token"), "{err}");
        }
    }

    #[test]
    fn a_non_loopback_bind_with_a_token_is_served() {
        let extra = vec!["mcp.example.com".to_owned()];
        let settings = http_settings(addr("10.1.2.3:7000"), Some("s3cret"), &extra).expect("ok");
        assert_eq!(settings.token.as_deref(), Some("s3cret"));
        assert!(settings.allowed_hosts.contains(&"10.1.2.3".to_owned()));
        assert!(settings
            .allowed_hosts
            .contains(&"mcp.example.com".to_owned()));
    }

    #[test]
    fn an_empty_token_is_refused() {
        let err = http_settings(addr("127.0.0.1:7000"), Some(""), &[]).expect_err("empty");
        assert_eq!(err, ArgsError::EmptyToken);
    }

    #[test]
    fn flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            mcp: McpArgs,
        }
        let cli =
            Cli::try_parse_from(["t", "--http", "0.0.0.0:9", "--max-calls", "3"]).expect("parses");
        assert_eq!(cli.mcp.max_calls, 3);
        assert_eq!(cli.mcp.call_settings().deadline, Duration::from_secs(60));
        // TOOLFAN_MCP_TOKEN may be set in the environment of the test run.
        if cli.mcp.token.is_none() {
            assert!(cli.mcp.http_settings().is_err());
        }
        assert!(Cli::try_parse_from(["t", "--max-calls", "0"]).is_err());
    }
}
