//! The edges every toolfan service shares: logs (human or JSON, `RUST_LOG`),
//! spans exported over OTLP when an endpoint is configured,
//! an HTTP endpoint with `/metrics`, `/healthz` and `/readyz`, and shutdown
//! on SIGINT/SIGTERM. The services' own metrics are defined where they are
//! counted (`toolfan_coordinator::metrics`, `toolfan_worker::metrics`) and
//! listed in docs/metrics.md.
//!
//! # Layout
//! - [`logging`] — `--log-format human|json`.
//! - [`traces`] — OTLP trace export from the `OTEL_*` variables.
//! - [`http`] — the metrics and health endpoint.
//! - [`signal`] — cancelling a token on SIGINT or SIGTERM.
//! - [`service`] — the flags every service shares.
//! - [`nats_auth`] — NATS credential flags.

pub mod http;
pub mod logging;
pub mod nats_auth;
pub mod service;
pub mod signal;
pub mod traces;

pub use http::{serve, MetricsAddr, Readiness};
pub use logging::LogFormat;
pub use nats_auth::NatsAuthArgs;
pub use service::ServiceArgs;
pub use signal::shutdown_on_signal;
pub use traces::{Traces, TracesError};
