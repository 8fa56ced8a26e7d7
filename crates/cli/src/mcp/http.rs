//! Streamable HTTP at `/mcp` (rmcp's `StreamableHttpService` in axum),
//! behind a bearer token when one is set.
//!
//! With a token, every request to `/mcp` without `Authorization: Bearer
//! <token>` is answered 401 with a `WWW-Authenticate: Bearer` header before
//! MCP sees it; the comparison takes the same time wherever the two first
//! differ. Sessions are rmcp's stateful ones (so `list_changed` reaches
//! clients on their GET stream); an idle session closes after 5 minutes.
//! `Host` headers are checked against loopback names, the bound address
//! and `--allowed-host` (DNS rebinding).

use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::args::HttpSettings;
use super::call::Fleet;
use super::handler::Session;

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
    let service: StreamableHttpService<Session, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(Session::new(fleet.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token = Arc::new(settings.token.clone());
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(token, authorize));
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

/// Lets a request through if no token is set or it carries the token.
async fn authorize(
    State(token): State<Arc<Option<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if same_secret(presented.as_bytes(), token.as_bytes()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid `Authorization: Bearer <token>` header is required\n",
    )
        .into_response()
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
    use super::same_secret;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(same_secret(b"", b""));
    }
}
