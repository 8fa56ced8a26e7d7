//! Between `tracing` spans and the W3C `traceparent` carried in NATS
//! headers: a span adopts a remote parent, and a span's own context becomes
//! the `traceparent` of the messages it sends. Both go through the
//! OpenTelemetry layer `toolfan-telemetry` installs when traces are
//! exported; without it (no OTLP endpoint) they do nothing and cost a
//! type check.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use toolfan_protocol::TraceParent;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes the remote span `parent` (from a message's `traceparent`) the
/// parent of `span`. Call it before the span is first entered; without
/// the OpenTelemetry layer it does nothing.
pub fn adopt_parent(span: &tracing::Span, parent: TraceParent) {
    let context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id.to_be_bytes()),
        SpanId::from_bytes(parent.span_id.to_be_bytes()),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let remote = opentelemetry::Context::new().with_remote_span_context(context);
    // Only fails when traces are not exported, or the span already started.
    let _ = span.set_parent(remote);
}

/// `span`'s own context as a `traceparent`, for the messages sent under
/// it; `None` when traces are not exported (or the span is disabled).
pub fn traceparent_of(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let span_ref = context.span();
    let own = span_ref.span_context();
    if !own.is_valid() {
        return None;
    }
    Some(TraceParent {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_layer_nothing_is_adopted_or_sent() {
        let span = tracing::info_span!("job");
        adopt_parent(&span, TraceParent::generate());
        assert_eq!(traceparent_of(&span), None);
    }
}
