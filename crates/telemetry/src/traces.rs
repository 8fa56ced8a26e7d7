//! Spans exported over OTLP (HTTP/protobuf) to a tracing backend, set up
//! from the standard OpenTelemetry variables:
//!
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended): where to send.
//!   Neither set (or `OTEL_SDK_DISABLED=true`): export is off and no
//!   exporter is built.
//! - `OTEL_SERVICE_NAME`: the `service.name` (default per binary).
//! - `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: `always_on`,
//!   `always_off`, `traceidratio`, `parentbased_always_on` (default),
//!   `parentbased_always_off`, `parentbased_traceidratio`.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf` is built in.
//!
//! Spans go through a batch span processor: a queue of 2,048 spans by
//! default (`OTEL_BSP_MAX_QUEUE_SIZE`; spans beyond it are dropped, not
//! waited for), sent every 5 s (`OTEL_BSP_SCHEDULE_DELAY`) or 512 at a
//! time, and flushed when [`Traces`] is shut down or dropped.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// The sampler variable.
pub const SAMPLER_VAR: &str = "OTEL_TRACES_SAMPLER";
/// The sampler argument variable (a ratio for the `traceidratio` samplers).
pub const SAMPLER_ARG_VAR: &str = "OTEL_TRACES_SAMPLER_ARG";
/// How long a shutdown waits for the last spans to be sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Trace export could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// A variable holds a value that cannot be used.
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value (cut to 200 characters).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OTLP exporter refused its configuration.
    #[error("cannot build the OTLP span exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// The trace pipeline of a process: flushes its spans when shut down or
/// dropped (keep it alive in `main` until the process stops).
#[derive(Debug, Default)]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
    /// The variable naming the endpoint, and its value.
    endpoint: Option<(&'static str, String)>,
}

impl Traces {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Where spans go (the variable that said so, and its value with any
    /// credentials in it hidden), if anywhere.
    pub fn endpoint(&self) -> Option<(&'static str, String)> {
        let (var, url) = self.endpoint.as_ref()?;
        Some((var, redacted(url)))
    }

    /// Sends the spans still queued (waiting up to 5 s) and stops export.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take() {
            self.endpoint = None;
            if let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                eprintln!("toolfan: the last spans may not have been exported: {e}");
            }
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The pipeline the variables ask for and the tracer to give the
/// `tracing` layer; `(Traces::default(), None)` when export is off.
pub(crate) fn from_env(default_service: &str) -> Result<(Traces, Option<SdkTracer>), TracesError> {
    let Some((var, endpoint)) = endpoint() else {
        return Ok((Traces::default(), None));
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid(
            var,
            &redacted(&endpoint),
            "expected an http:// or https:// URL",
        ));
    }
    if let Some((var, protocol)) = var_of(&[
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]) {
        if protocol != "http/protobuf" {
            return Err(invalid(var, &protocol, "only http/protobuf is supported"));
        }
    }
    let sampler = sampler(
        std::env::var(SAMPLER_VAR).ok().as_deref(),
        std::env::var(SAMPLER_ARG_VAR).ok().as_deref(),
    )?;
    // rustls without a provider of its own: ring, as the tools use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The exporter reads the endpoint variables itself (and names the one
    // it cannot parse).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(TracesError::Exporter)?;
    let service = var_of(&["OTEL_SERVICE_NAME"]).map_or(default_service.to_owned(), |(_, v)| v);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_sampler(sampler)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("toolfan");
    let traces = Traces {
        provider: Some(provider),
        endpoint: Some((var, endpoint)),
    };
    Ok((traces, Some(tracer)))
}

/// The endpoint variable that is set, and its value; `None` turns export off.
fn endpoint() -> Option<(&'static str, String)> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim() == "true");
    if disabled {
        return None;
    }
    var_of(&[
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ])
}

/// The first of `vars` set to something other than blanks, trimmed.
fn var_of(vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter().find_map(|var| {
        let value = std::env::var(var).ok()?;
        let value = value.trim();
        (!value.is_empty()).then(|| (*var, value.to_owned()))
    })
}

/// `url` with a `user:password@` part replaced by `***@`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> TracesError {
    TracesError::Invalid {
        var,
        value: value.chars().take(200).collect(),
        reason: reason.into(),
    }
}

/// The sampler `name` (`OTEL_TRACES_SAMPLER`) and `arg` ask for.
fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, TracesError> {
    let ratio = || -> Result<f64, TracesError> {
        let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
            return Ok(1.0);
        };
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(
                SAMPLER_ARG_VAR,
                arg,
                "expected a ratio from 0 to 1",
            )),
        }
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    Ok(match name.unwrap_or("parentbased_always_on") {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        other => return Err(invalid(
            SAMPLER_VAR,
            other,
            "expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_parse_and_bad_values_name_their_variable() {
        assert_eq!(
            redacted("https://u:p@otel.example/v1"),
            "https://***@otel.example/v1"
        );
        assert_eq!(redacted("http://127.0.0.1:4318"), "http://127.0.0.1:4318");
        assert!(sampler(None, None).is_ok());
        assert!(sampler(Some("traceidratio"), Some("0.25")).is_ok());
        assert!(sampler(Some("parentbased_always_off"), None).is_ok());
        let e = sampler(Some("sometimes"), None).unwrap_err().to_string();
        assert!(e.starts_with("OTEL_TRACES_SAMPLER=\"sometimes\""), "{e}");
        let e = sampler(Some("traceidratio"), Some("2"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("OTEL_TRACES_SAMPLER_ARG=\"2\""), "{e}");
    }
}
