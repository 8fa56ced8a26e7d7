//! W3C trace context (`traceparent`), carried in NATS headers so one trace
//! spans client → coordinator → worker.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;

/// The header that carries the trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A `traceparent` value: `00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace this work belongs to.
    pub trace_id: u128,
    /// The span that caused this message.
    pub span_id: u64,
    /// Trace flags (01: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// A new trace with a random id.
    pub fn generate() -> Self {
        let id = ulid::Ulid::new().0;
        Self {
            trace_id: id.max(1),
            span_id: (id as u64).max(1),
            flags: 1,
        }
    }

    /// The same trace, with `span_id` as the parent of what comes next.
    pub fn child(&self) -> Self {
        let mut span_id = ulid::Ulid::new().0 as u64;
        if span_id == 0 {
            span_id = 1;
        }
        Self { span_id, ..*self }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        let bad = |reason: &'static str| ValidationError::Name {
            what: "traceparent",
            value: s.chars().take(80).collect(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return Err(bad("expected version-traceid-spanid-flags"));
        };
        if *version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return Err(bad("expected 00-<32 hex>-<16 hex>-<2 hex>"));
        }
        let hex = |h: &str| u128::from_str_radix(h, 16).map_err(|_| bad("not hexadecimal"));
        let trace_id = hex(trace)?;
        let span_id = hex(span)? as u64;
        if trace_id == 0 || span_id == 0 {
            return Err(bad("all-zero ids are invalid"));
        }
        Ok(Self {
            trace_id,
            span_id,
            flags: hex(flags)? as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_values() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent: TraceParent = text.parse().unwrap();
        assert_eq!(parent.to_string(), text);
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
        let fresh = TraceParent::generate();
        assert_eq!(fresh.to_string().parse::<TraceParent>().unwrap(), fresh);
    }
}
