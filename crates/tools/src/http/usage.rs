//! An HTTP tool's real cost, read from its JSON response at a JSON Pointer
//! and charged to a limit key after the call ([`TaskContext::charge`]).

use serde::Deserialize;
use serde_json::Value;
use toolfan_worker::{TaskContext, ToolError};

/// The real cost of a call, read from its JSON response, e.g.
/// `usage = { pointer = "/usage/total_tokens", key = "openai-tokens" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageDef {
    /// A JSON Pointer (RFC 6901) to a non-negative number in the response.
    pub pointer: String,
    /// The limit key charged with it.
    pub key: String,
}

impl UsageDef {
    /// Checks the pointer and the key; the error names what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.pointer.is_empty() && !self.pointer.starts_with('/') {
            return Err(format!(
                "the pointer {:?} must be empty or start with '/' (e.g. /usage/total_tokens)",
                self.pointer
            ));
        }
        toolfan_limits::check_key(&self.key).map_err(|e| e.to_string())
    }

    /// Charges the number at the pointer in a response to the key. A
    /// response without one is still the call's result; the miss is logged.
    pub(crate) fn charge(&self, ctx: &TaskContext, value: &Value) -> Result<(), ToolError> {
        let units = value.pointer(&self.pointer).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64))
        });
        match units {
            Some(units) => ctx.charge(&self.key, units),
            None => {
                tracing::warn!(
                    pointer = %self.pointer,
                    "the response has no non-negative number at the usage pointer; the estimate stands"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::http::{HttpDef, HttpTool};

    #[test]
    fn a_usage_pointer_and_key_are_checked_when_the_tool_is_made() {
        let def = |pointer: &str, key: &str| HttpDef {
            method: "POST".into(),
            url: "http://h/".into(),
            headers: BTreeMap::new(),
            allowed_hosts: vec!["h".into()],
            timeout_ms: 1000,
            usage: Some(UsageDef {
                pointer: pointer.into(),
                key: key.into(),
            }),
        };
        assert!(HttpTool::new(def("/usage/total_tokens", "tokens")).is_ok());
        let err = HttpTool::new(def("usage/total_tokens", "tokens")).unwrap_err();
        assert!(
            err.to_string().contains("must be empty or start with '/'"),
            "{err}"
        );
        let err = HttpTool::new(def("/usage", "a b")).unwrap_err();
        assert!(err.to_string().contains("invalid limit key"), "{err}");
    }
}
