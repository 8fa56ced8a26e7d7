//! Logs: human-readable by default, one JSON object a line for machines;
//! the level comes from `RUST_LOG` (default `info`). The same subscriber
//! exports spans over OTLP when an endpoint is configured ([`crate::traces`]).

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::traces::{self, Traces};

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, with the current span and its parents.
    Json,
}

/// Installs the global subscriber, logging to stderr at `RUST_LOG` (default
/// `info`), and spans exported as `service` (unless `OTEL_SERVICE_NAME`
/// names it) when the OTLP variables ask for it. Keep what it returns
/// until the process ends: dropping it flushes the last spans.
pub fn init(format: LogFormat, service: &str) -> Traces {
    init_filtered(format, "info", service)
}

/// [`init`] with `default_filter` when `RUST_LOG` is not set.
pub fn init_filtered(format: LogFormat, default_filter: &str, service: &str) -> Traces {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let (traces, tracer, problem) = match traces::from_env(service) {
        Ok((traces, tracer)) => (traces, tracer, None),
        Err(e) => (Traces::default(), None, Some(e)),
    };
    // Exported: toolfan's own spans (and the events in them) from `info`
    // up, whatever `RUST_LOG` keeps in the logs.
    let exported = Targets::new().with_target("toolfan", Level::INFO);
    let otel = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(exported)
    });
    let plain = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Human => plain.boxed(),
        LogFormat::Json => plain
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    if let Some(e) = problem {
        let error = std::error::Error::source(&e).map(|s| s.to_string());
        tracing::warn!(error = %e, cause = error, "spans are not exported");
    } else if let Some((var, endpoint)) = traces.endpoint() {
        tracing::info!("exporting spans over OTLP/HTTP to {endpoint} ({var})");
    }
    traces
}
