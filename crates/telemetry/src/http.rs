//! `/metrics` (Prometheus text format), `/healthz` (the process is up) and
//! `/readyz` (connected to what it needs) on one small axum server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// Says whether the service can do its work now, and if not, why.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Endpoint {
    registry: Registry,
    ready: Readiness,
}

/// A `--metrics-addr` value: `HOST:PORT`, or `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

/// A `--metrics-addr` value that is neither `HOST:PORT` nor `off`.
#[derive(Debug, thiserror::Error)]
#[error("{value:?}: expected HOST:PORT (e.g. 127.0.0.1:9470) or off")]
pub struct MetricsAddrError {
    value: String,
    #[source]
    source: std::net::AddrParseError,
}

impl std::str::FromStr for MetricsAddr {
    type Err = MetricsAddrError;

    fn from_str(value: &str) -> Result<Self, MetricsAddrError> {
        if value == "off" {
            return Ok(Self(None));
        }
        value
            .parse()
            .map(|a| Self(Some(a)))
            .map_err(|source| MetricsAddrError {
                value: value.to_owned(),
                source,
            })
    }
}

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct ServeError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// How many ports after a taken default one [`serve_near`] tries before
/// it takes any free port.
pub const NEXT_PORTS: u16 = 20;

/// Serves `registry` and the health checks on `addr` until `shutdown`.
/// Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    serve_on(listener, addr, registry, ready, shutdown)
}

/// Like [`serve`], for a default address: if its port is taken (another
/// service on this host), serves on the next free one of the
/// [`NEXT_PORTS`] after it, else on any free port, and logs where.
pub async fn serve_near(
    addr: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServeError> {
    let next = (1..=NEXT_PORTS).filter_map(|n| addr.port().checked_add(n));
    let mut candidates = std::iter::once(addr.port()).chain(next).chain([0]);
    loop {
        let port = candidates.next().unwrap_or(0);
        let candidate = SocketAddr::new(addr.ip(), port);
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => {
                if port != addr.port() {
                    let chosen = listener.local_addr().unwrap_or(candidate);
                    tracing::warn!(taken = %addr, %chosen, "the default metrics address is taken: serving on the next free one");
                }
                return serve_on(listener, candidate, registry, ready, shutdown);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 => continue,
            Err(source) => return Err(ServeError { addr, source }),
        }
    }
}

fn serve_on(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServeError> {
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Endpoint { registry, ready });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(bound)
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&endpoint.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn readyz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    match (endpoint.ready)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn always_ready() -> Readiness {
        Arc::new(|| Ok(()))
    }

    #[tokio::test]
    async fn a_taken_default_port_moves_to_a_free_one_and_an_explicit_one_fails() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = taken.local_addr().expect("its address");
        let stop = CancellationToken::new();
        let err = serve(addr, Registry::new(), always_ready(), stop.clone())
            .await
            .expect_err("the port is taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        let bound = serve_near(addr, Registry::new(), always_ready(), stop.clone())
            .await
            .expect("another port");
        assert_ne!(bound.port(), addr.port());
        assert_eq!(bound.ip(), addr.ip());
        let again = serve_near(addr, Registry::new(), always_ready(), stop.clone())
            .await
            .expect("a third port");
        assert!(again != bound && again != addr, "{again}");
        stop.cancel();
    }
}
