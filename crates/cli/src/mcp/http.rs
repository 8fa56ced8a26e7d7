//! Streamable HTTP at `/mcp` (rmcp's `StreamableHttpService` in axum),
//! behind a bearer token when one is set.
//!
//! With a token, every request to `/mcp` without `Authorization: Bearer
//! <token>` is answered 401 with a `WWW-Authenticate: Bearer` header before
//! MCP sees it; the comparison takes the same time wherever the two first
//! differ. Sessions are rmcp's stateful ones (so `list_changed` reaches
//! clients on their GET stream); a session whose client holds no GET
//! stream and has sent nothing for `--session-idle-ms` is closed
//! ([`super::idle`]).
//! `Host` headers are checked against loopback names, the bound address
//! and `--allowed-host` (DNS rebinding). A request that would open a
//! session while `--max-sessions` are open is answered 503.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::args::HttpSettings;
use super::call::Fleet;
use super::handler::Session;
use super::idle::{self, Activity};

/// The header naming a streamable HTTP session.
const SESSION_ID_HEADER: &str = "mcp-session-id";

/// Serves `/mcp` on `settings.addr` until `stop`.
pub(crate) async fn serve(
    fleet: Arc<Fleet>,
    settings: HttpSettings,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if settings.addr.ip().is_unspecified() && settings.extra_hosts == 0 {
        tracing::warn!(
            addr = %settings.addr,
            "only requests whose Host is a loopback name are accepted; \
             name the hosts clients reach this server by with --allowed-host"
        );
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_cancellation_token(stop.child_token());
    let sessions = Arc::new(LocalSessionManager::default());
    let service: StreamableHttpService<Session, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(Session::new(fleet.clone())),
        sessions.clone(),
        config,
    );
    let activity = Arc::new(Activity::default());
    tokio::spawn(idle::reap(
        activity.clone(),
        sessions.clone(),
        settings.session_idle,
        stop.clone(),
    ));
    let gate = Arc::new(Gate {
        token: settings.token.clone(),
        sessions,
        max_sessions: settings.max_sessions,
        activity,
    });
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(gate, admit));
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, auth = settings.token.is_some(), "serving MCP at http://{local}/mcp");
    eprintln!("toolfan mcp: serving http://{local}/mcp");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled_owned().await })
        .await
        .context("the MCP HTTP server failed")
}

/// What a request must pass before MCP sees it.
struct Gate {
    /// The bearer token, if one is required.
    token: Option<String>,
    /// The live sessions.
    sessions: Arc<LocalSessionManager>,
    /// A request that would open a session past this many is refused.
    max_sessions: usize,
    /// What the sessions' clients last did.
    activity: Arc<Activity>,
}

/// Lets a request through if it carries the token (when one is set) and,
/// when it would open a session, if fewer than `--max-sessions` are live.
async fn admit(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if let Some(token) = gate.token.as_deref() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer)
            .unwrap_or("");
        if !same_secret(presented.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid `Authorization: Bearer <token>` header is required\n",
            )
                .into_response();
        }
    }
    let opens_session =
        request.method() == Method::POST && !request.headers().contains_key(SESSION_ID_HEADER);
    if opens_session && gate.sessions.sessions.read().await.len() >= gate.max_sessions {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this MCP server already has {} sessions open (--max-sessions)\n",
                gate.max_sessions
            ),
        )
            .into_response();
    }
    let session = request
        .headers()
        .get(SESSION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_get = request.method() == Method::GET;
    let response = next.run(request).await;
    match session {
        Some(id) if is_get && response.status().is_success() => gate.activity.stream(&id, response),
        Some(id) => {
            gate.activity.touch(&id);
            response
        }
        None => {
            let opened = response.headers().get(SESSION_ID_HEADER);
            if let Some(id) = opened.and_then(|v| v.to_str().ok()) {
                gate.activity.touch(id);
            }
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in
/// any case, RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only, not on where they first differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::{bearer, same_secret};

    #[test]
    fn bearer_tokens_are_read() {
        assert_eq!(bearer("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer("Basic s3cret"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(same_secret(b"", b""));
    }
}
