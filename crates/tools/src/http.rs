//! HTTP tools: a request per call, its URL filled from the call's args, its
//! JSON (or text) response the result. Only the operator's allowed hosts can
//! be reached; a 429 or 5xx is retryable and its `Retry-After` honoured; a
//! 429, or a 503 with `Retry-After`, also makes the whole fleet back off on
//! the tool's limit keys ([`ToolError::rate_limited`]); any other non-2xx
//! status is a `tool_error`. With `usage`, the number at a JSON Pointer in
//! the response (e.g. `/usage/total_tokens`) is the call's real cost under
//! a limit key ([`TaskContext::charge`]). Header values may name
//! environment variables (`${TOKEN}`), read once when the tool is made and
//! never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use toolfan_worker::{TaskContext, Tool, ToolError, ToolFuture};

mod usage;
pub use usage::UsageDef;

/// Longest response excerpt kept in an error message.
const EXCERPT: usize = 512;

/// An HTTP tool as written in a tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDef {
    /// GET, POST, PUT, PATCH or DELETE (default GET); POST, PUT and PATCH
    /// send the args as a JSON body.
    #[serde(default = "get")]
    pub method: String,
    /// The URL; `{name}` is replaced by the arg `name`, percent-encoded.
    pub url: String,
    /// Request headers; `${VAR}` in a value is replaced by the environment variable.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Hosts the filled URL may point at.
    pub allowed_hosts: Vec<String>,
    /// Longest wait for the response, in ms (default 30 s).
    #[serde(default = "thirty_seconds")]
    pub timeout_ms: u64,
    /// Where a response says what the call really cost, and under which
    /// limit key to charge it.
    #[serde(default)]
    pub usage: Option<UsageDef>,
}

impl HttpDef {
    /// The argument schema the URL template implies: each `{name}` a
    /// required string (other args are allowed; POST, PUT and PATCH send
    /// them in the body).
    pub fn placeholder_schema(&self) -> Value {
        let mut names: Vec<String> = Vec::new();
        for piece in pieces(&self.url).map_while(Result::ok) {
            if let Piece::Arg(name) = piece {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        let properties: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.clone(), serde_json::json!({ "type": "string" })))
            .collect();
        serde_json::json!({ "type": "object", "properties": properties, "required": names })
    }
}

fn get() -> String {
    "GET".into()
}

fn thirty_seconds() -> u64 {
    30_000
}

/// A ready HTTP tool.
#[derive(Clone)]
pub struct HttpTool {
    client: reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    allowed_hosts: Vec<String>,
    usage: Option<UsageDef>,
}

impl fmt::Debug for HttpTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold secrets.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpTool")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// Why an HTTP tool could not be made (never a variable's value).
#[derive(Debug, thiserror::Error)]
pub enum HttpToolError {
    /// The method is not an HTTP method.
    #[error("unknown HTTP method {0:?}")]
    Method(String),
    /// No host is allowed.
    #[error("`allowed_hosts` must name the hosts the tool may call")]
    NoAllowedHosts,
    /// A header value has `${` without its `}`.
    #[error("unclosed ${{ in a header value: {0:?}")]
    UnclosedVariable(String),
    /// A header names a variable that is not set.
    #[error("the environment variable {0} is not set")]
    UnsetVariable(String),
    /// The HTTP client could not be made.
    #[error("cannot make the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// `usage` names a malformed pointer or limit key.
    #[error("usage: {0}")]
    Usage(String),
}

impl HttpTool {
    /// Makes the tool, reading header variables from the environment;
    /// the error names what is wrong (never a variable's value).
    pub fn new(def: HttpDef) -> Result<Self, HttpToolError> {
        let method = reqwest::Method::from_bytes(def.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| HttpToolError::Method(def.method.clone()))?;
        if def.allowed_hosts.is_empty() {
            return Err(HttpToolError::NoAllowedHosts);
        }
        if let Some(usage) = &def.usage {
            usage.check().map_err(HttpToolError::Usage)?;
        }
        let mut headers = Vec::new();
        for (name, value) in def.headers {
            headers.push((name, expand_env(&value)?));
        }
        // TLS through rustls with the ring provider the NATS client uses too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(def.timeout_ms))
            .build()
            .map_err(HttpToolError::Client)?;
        Ok(Self {
            client,
            method,
            url: def.url,
            headers,
            allowed_hosts: def.allowed_hosts,
            usage: def.usage,
        })
    }

    async fn call_once(&self, ctx: &TaskContext, args: Value) -> Result<Value, ToolError> {
        let url = fill(&self.url, &args)?;
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| ToolError::invalid_args(format!("the URL {url:?} is not valid: {e}")))?;
        let host = parsed.host_str().unwrap_or_default();
        if !self.allowed_hosts.iter().any(|h| h == host) {
            return Err(ToolError::invalid_args(format!(
                "host {host:?} is not among this tool's allowed hosts"
            )));
        }
        let mut request = self.client.request(self.method.clone(), parsed);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if matches!(
            self.method,
            reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
        ) {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&args).expect("JSON values serialize"));
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ToolError::retryable("the HTTP request timed out")
            } else {
                ToolError::retryable(format!("the HTTP request failed: {e}"))
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .text()
            .await
            .map_err(|e| ToolError::retryable(format!("reading the HTTP response failed: {e}")))?;
        if status.is_success() {
            let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            if let Some(usage) = &self.usage {
                usage.charge(ctx, &value)?;
            }
            return Ok(value);
        }
        Err(refused(status, retry_after, &body))
    }
}

/// The error of a non-2xx answer: a 429, or a 503 with `Retry-After`, is
/// the backend saying "too many" (the fleet backs off); any other 5xx is
/// retryable; the rest is final.
fn refused(status: reqwest::StatusCode, retry_after: Option<Duration>, body: &str) -> ToolError {
    let excerpt: String = body.chars().take(EXCERPT).collect();
    let message = format!("HTTP {status}: {excerpt}");
    let too_many = status.as_u16() == 429 || (status.as_u16() == 503 && retry_after.is_some());
    let error = if too_many {
        ToolError::rate_limited(message)
    } else if status.is_server_error() {
        ToolError::retryable(message)
    } else {
        return ToolError::new(message);
    };
    match retry_after {
        Some(after) => error.with_retry_after(after),
        None => error,
    }
}

impl Tool for HttpTool {
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let tool = self.clone();
        Box::pin(async move { tool.call_once(&ctx, args).await })
    }
}

/// Replaces `${VAR}` with the environment variable's value.
pub(crate) fn expand_env(value: &str) -> Result<String, HttpToolError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| HttpToolError::UnclosedVariable(value.to_owned()))?;
        let name = &rest[start + 2..start + end];
        let var = std::env::var(name).map_err(|_| HttpToolError::UnsetVariable(name.to_owned()))?;
        out.push_str(&rest[..start]);
        out.push_str(&var);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A piece of a URL template: literal text or a `{name}` placeholder.
enum Piece<'a> {
    Text(&'a str),
    Arg(&'a str),
}

/// The pieces of a URL template in order, ending with an `Err` at an
/// unclosed `{`.
fn pieces(template: &str) -> impl Iterator<Item = Result<Piece<'_>, String>> {
    let mut rest = Some(template);
    let mut arg_next = None;
    std::iter::from_fn(move || {
        if let Some(name) = arg_next.take() {
            return Some(Ok(Piece::Arg(name)));
        }
        let text = rest.take()?;
        let Some(start) = text.find('{') else {
            return Some(Ok(Piece::Text(text)));
        };
        let Some(end) = text[start..].find('}') else {
            return Some(Err(format!("unclosed {{ in the URL template {template:?}")));
        };
        arg_next = Some(&text[start + 1..start + end]);
        rest = Some(&text[start + end + 1..]);
        Some(Ok(Piece::Text(&text[..start])))
    })
}

/// Fills `{name}` placeholders from `args`, percent-encoding each value.
fn fill(template: &str, args: &Value) -> Result<String, ToolError> {
    let mut out = String::new();
    for piece in pieces(template) {
        match piece.map_err(ToolError::new)? {
            Piece::Text(text) => out.push_str(text),
            Piece::Arg(name) => {
                let value = match &args[name] {
                    Value::String(s) => s.clone(),
                    Value::Null => {
                        return Err(ToolError::invalid_args(format!(
                            "the URL needs the arg {name:?}"
                        )))
                    }
                    other => other.to_string(),
                };
                out.extend(utf8_percent_encode(&value, NON_ALPHANUMERIC));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_placeholders_become_required_string_args() {
        let def: HttpDef = toml::from_str(
            "url = \"http://h/{city}/x?d={days}&c={city}\"\nallowed_hosts = [\"h\"]",
        )
        .unwrap();
        assert_eq!(
            def.placeholder_schema(),
            json!({"type": "object", "required": ["city", "days"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "string"}}})
        );
    }

    #[test]
    fn urls_are_filled_and_encoded() {
        let url = fill(
            "http://h/w?city={city}&n={n}",
            &json!({"city": "São Paulo/../x", "n": 3}),
        )
        .unwrap();
        assert_eq!(url, "http://h/w?city=S%C3%A3o%20Paulo%2F%2E%2E%2Fx&n=3");
        let err = fill("http://h/{missing}", &json!({})).unwrap_err();
        assert!(err.to_string().contains("needs the arg \"missing\""));
        let err = fill("http://h/{a}/{b", &json!({"a": 1})).unwrap_err();
        assert!(
            err.to_string().contains("unclosed { in the URL template"),
            "{err}"
        );
    }

    #[test]
    fn header_variables_come_from_the_environment_and_stay_hidden() {
        std::env::set_var("TOOLFAN_TEST_SECRET_HEADER", "s3cret-value");
        let tool = HttpTool::new(HttpDef {
            method: "get".into(),
            url: "http://h/".into(),
            headers: [(
                "Authorization".to_owned(),
                "Bearer ${TOOLFAN_TEST_SECRET_HEADER}".to_owned(),
            )]
            .into(),
            allowed_hosts: vec!["h".into()],
            timeout_ms: 1000,
            usage: None,
        })
        .unwrap();
        assert_eq!(tool.headers[0].1, "Bearer s3cret-value");
        assert!(!format!("{tool:?}").contains("s3cret"));
        let err = expand_env("${TOOLFAN_SURELY_UNSET_VAR}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the environment variable TOOLFAN_SURELY_UNSET_VAR is not set"
        );
    }

    #[test]
    fn a_429_or_a_503_with_retry_after_is_the_backend_saying_too_many() {
        use reqwest::StatusCode;
        let after = Some(Duration::from_secs(2));
        let e = refused(StatusCode::TOO_MANY_REQUESTS, None, "slow down");
        assert!(e.is_rate_limited() && e.is_retryable(), "{e}");
        let e = refused(StatusCode::SERVICE_UNAVAILABLE, after, "");
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(e.retry_after(), after);
        let e = refused(StatusCode::SERVICE_UNAVAILABLE, None, "");
        assert!(!e.is_rate_limited() && e.is_retryable(), "{e}");
        let e = refused(StatusCode::NOT_FOUND, None, "");
        assert!(!e.is_rate_limited() && !e.is_retryable(), "{e}");
    }
}
