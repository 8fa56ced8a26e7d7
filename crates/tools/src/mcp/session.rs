//! A session with one MCP server: how it is reached ([`Connector`]), the
//! client side of it ([`Handler`]), and the supervisor that keeps it up and
//! tells calls whether it is ([`Link`]).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{
    ClientCacheConfig, NotificationContext, QuitReason, RoleClient, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, ServiceExt};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

use super::config::{Endpoint, McpDef};
use super::error::McpError;

pub(crate) use super::catalog::Served;
use super::catalog::{self, Catalog};

/// The first wait before starting a server again; it doubles per start.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between starts.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A server up this long starts its next restart at `FIRST_DELAY` again.
const STABLE: Duration = Duration::from_secs(10);
/// How long a call waits for a stdio server that is restarting.
pub(crate) const RESTART_WAIT: Duration = Duration::from_secs(5);

type Service = RunningService<RoleClient, Handler>;

/// Whether the server can take calls now.
#[derive(Clone)]
pub(crate) enum Link {
    /// Connected: calls go to this peer.
    Up(Peer<RoleClient>),
    /// Down (restarting, or unreachable), and why.
    Down(Arc<str>),
}

/// The client side of a session: who toolfan is, and list changes passed on.
#[derive(Clone)]
pub(crate) struct Handler {
    changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let me = Implementation::new("toolfan-worker", env!("CARGO_PKG_VERSION"));
        ClientConfig::new(ClientCapabilities::default(), me)
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }
}

/// How to reach one server, checked and with its header variables read.
pub(crate) struct Connector {
    name: String,
    endpoint: Endpoint,
    max_concurrency: usize,
    timeout: Duration,
    changed: Arc<Notify>,
}

impl Connector {
    pub(crate) fn new(def: &McpDef) -> Result<Self, McpError> {
        Ok(Self {
            name: def.name.clone(),
            endpoint: def.endpoint()?,
            max_concurrency: def.max_concurrency,
            timeout: def.timeout(),
            changed: Arc::new(Notify::new()),
        })
    }

    fn restarts(&self) -> bool {
        matches!(self.endpoint, Endpoint::Stdio(_))
    }

    /// Starts (stdio) or reaches (HTTP) the server and makes the handshake,
    /// within the entry's timeout.
    async fn connect(&self) -> Result<Service, McpError> {
        let handler = Handler {
            changed: self.changed.clone(),
        };
        let unanswered = McpError::Unanswered(self.timeout.as_millis() as u64);
        let service = match &self.endpoint {
            Endpoint::Stdio(argv) => {
                let transport = self.spawn(argv)?;
                tokio::time::timeout(self.timeout, handler.serve(transport)).await
            }
            Endpoint::Http { url, headers } => {
                let transport = self.http(url, headers);
                tokio::time::timeout(self.timeout, handler.serve(transport)).await
            }
        };
        let service = service
            .map_err(|_| unanswered)?
            .map_err(|e| McpError::Connect(Box::new(e)))?;
        // toolfan has its own cache; tools/list must be read afresh.
        let peer = service.peer();
        peer.set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        Ok(service)
    }

    /// The child process, killed when its transport drops, its stderr
    /// forwarded to the log.
    fn spawn(&self, argv: &[String]) -> Result<TokioChildProcess, McpError> {
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).kill_on_drop(true);
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| McpError::Spawn {
                program: argv[0].clone(),
                source,
            })?;
        if let Some(stderr) = stderr {
            let name = self.name.clone();
            tokio::spawn(forward_stderr(name, stderr));
        }
        Ok(transport)
    }

    fn http(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> StreamableHttpClientTransport<reqwest::Client> {
        // TLS through rustls with the ring provider the rest of the worker uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut map = HashMap::new();
        for (name, value) in headers {
            // Both were checked when the entry was read.
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                map.insert(name, value);
            }
        }
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
            .custom_headers(map)
            .max_concurrent_requests(self.max_concurrency);
        config.max_json_response_size = MAX_HTTP_MESSAGE;
        config.max_sse_event_size = MAX_HTTP_MESSAGE;
        StreamableHttpClientTransport::from_config(config)
    }
}

/// Longest line of a child's stderr logged whole; the rest of a longer one
/// is dropped (a progress bar that never writes a newline must not grow the
/// worker's memory).
const MAX_STDERR_LINE: usize = 8 * 1024;
/// Largest message taken from an HTTP server (a JSON answer or an SSE
/// event); a task's result is bounded again by the worker's
/// `max_result_bytes`.
const MAX_HTTP_MESSAGE: usize = 4 * 1024 * 1024;

/// Logs the child's stderr, a line an event, each line at most
/// [`MAX_STDERR_LINE`] bytes.
async fn forward_stderr(name: String, stderr: tokio::process::ChildStderr) {
    use futures::StreamExt;
    use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
    let codec = LinesCodec::new_with_max_length(MAX_STDERR_LINE);
    let mut lines = FramedRead::new(stderr, codec);
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => tracing::info!(mcp = %name, "{line}"),
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::info!(mcp = %name, "(a stderr line over {MAX_STDERR_LINE} bytes, dropped)")
            }
            Err(LinesCodecError::Io(_)) => return,
        }
    }
}

/// What every tool of one server shares.
pub(crate) struct Session {
    pub(crate) name: String,
    link: watch::Receiver<Link>,
    pub(crate) permits: Semaphore,
    pub(crate) timeout: Duration,
    restarts: bool,
    pub(crate) catalog: Catalog,
}

impl Session {
    /// Connects, lists the tools to serve, and leaves a supervisor keeping
    /// the session up.
    pub(crate) async fn start(
        connector: Connector,
        def: &McpDef,
    ) -> Result<(Arc<Self>, Vec<Served>), McpError> {
        let service = connector.connect().await?;
        let served = catalog::at_start(service.peer(), def).await?;
        let (tx, link) = watch::channel(Link::Up(service.peer().clone()));
        let session = Arc::new(Self {
            name: def.name.clone(),
            link,
            permits: Semaphore::new(def.max_concurrency),
            timeout: def.timeout(),
            restarts: connector.restarts(),
            catalog: Catalog::new(def, &served),
        });
        tokio::spawn(supervise(connector, service, tx, Arc::downgrade(&session)));
        Ok((session, served))
    }

    /// The peer to call, waiting briefly for a stdio server that restarts;
    /// a server that stays down is a retryable error.
    pub(crate) async fn peer(&self, within: Duration) -> Result<Peer<RoleClient>, String> {
        let wait = if self.restarts {
            within
        } else {
            Duration::ZERO
        };
        let mut link = self.link.clone();
        // An `Up` whose transport closed is a server that just died, before
        // the supervisor saw it: wait for the next one too.
        let open = |l: &Link| matches!(l, Link::Up(peer) if !peer.is_transport_closed());
        let up = tokio::time::timeout(wait, link.wait_for(open));
        if let Ok(Ok(link)) = up.await {
            if let Link::Up(peer) = &*link {
                return Ok(peer.clone());
            }
        }
        Err(match &*self.link.borrow() {
            Link::Down(why) => format!("MCP server {} is down: {why}", self.name),
            Link::Up(_) => format!("the connection to MCP server {} closed", self.name),
        })
    }
}

/// The waits between starts of a server: from 100 ms, doubling with each
/// start up to 5 s, and from 100 ms again after a session that stayed up 10 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// A session that lasted `up` ended.
    fn session_lasted(&mut self, up: Duration) {
        if up >= STABLE {
            self.next = FIRST_DELAY;
        }
    }

    /// The wait before the next start.
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(MAX_DELAY);
        delay
    }
}

/// Keeps the session up while its tools live: re-lists on list changes,
/// and starts (or reaches) the server again, with backoff, when it ends.
async fn supervise(
    connector: Connector,
    mut service: Service,
    link: watch::Sender<Link>,
    session: std::sync::Weak<Session>,
) {
    let mut backoff = Backoff::default();
    loop {
        let up_since = Instant::now();
        let mut why = serve_until_closed(service, &connector, &session).await;
        backoff.session_lasted(up_since.elapsed());
        link.send_replace(Link::Down(why.as_str().into()));
        service = loop {
            let delay = backoff.next_delay();
            tracing::warn!(mcp = %connector.name, "MCP session down ({why}); connecting again in {} ms", delay.as_millis());
            tokio::time::sleep(delay).await;
            if session.strong_count() == 0 {
                return;
            }
            match connector.connect().await {
                Ok(service) => break service,
                Err(e) => {
                    why = e.to_string();
                    link.send_replace(Link::Down(why.as_str().into()));
                }
            }
        };
        tracing::info!(mcp = %connector.name, "MCP session up again");
        link.send_replace(Link::Up(service.peer().clone()));
        if let Some(session) = session.upgrade() {
            catalog::relist(&session.catalog, service.peer()).await;
        }
    }
}

/// Serves until the session ends, re-listing the tools on each list change;
/// says why it ended.
async fn serve_until_closed(
    service: Service,
    connector: &Connector,
    session: &std::sync::Weak<Session>,
) -> String {
    let peer = service.peer().clone();
    let waiting = service.waiting();
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            quit = &mut waiting => return match quit {
                Ok(QuitReason::Closed) => "the connection closed (a stdio server: it exited)".into(),
                Ok(QuitReason::JoinError(e)) | Err(e) => e.to_string(),
                Ok(other) => format!("{other:?}"),
            },
            _ = connector.changed.notified() => {
                let Some(session) = session.upgrade() else { return "the worker stopped".into() };
                catalog::relist(&session.catalog, &peer).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_five_seconds_and_start_over_after_a_stable_session() {
        let mut backoff = Backoff::default();
        let ms = |d: Duration| d.as_millis();
        let waits: Vec<u128> = (0..8).map(|_| ms(backoff.next_delay())).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.session_lasted(Duration::from_secs(3));
        assert_eq!(
            ms(backoff.next_delay()),
            5000,
            "a crash loop keeps its wait"
        );
        backoff.session_lasted(STABLE);
        assert_eq!(ms(backoff.next_delay()), 100);
    }
}
