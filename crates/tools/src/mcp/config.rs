//! An `[[mcp]]` entry of the tools file: which server, how to reach it, and
//! what of it to serve.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toolfan_protocol::ToolName;

use super::error::{McpError, MAX_SOURCE_NAME_LEN};

/// One MCP server of a tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpDef {
    /// The server's name in toolfan; its tools are served as `<name>_<tool>`.
    pub name: String,
    /// Program and fixed arguments of a stdio server, run as a child process.
    pub command: Option<Vec<String>>,
    /// URL of a streamable HTTP server.
    pub url: Option<String>,
    /// HTTP headers sent to a `url` server; a value `env:VAR` is the
    /// environment variable `VAR`, and `${VAR}` inside a value is replaced
    /// by it (as for HTTP tools), read when the worker starts.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Serve only these of the server's tools (its own names); each must exist.
    pub tools: Option<Vec<String>>,
    /// Longest wait for one call's answer, in ms (default 30 s).
    #[serde(default = "thirty_seconds")]
    pub timeout_ms: u64,
    /// Most calls in flight at once over the session (default 32).
    #[serde(default = "thirty_two")]
    pub max_concurrency: usize,
    /// Limit keys every one of its tools' calls is under.
    #[serde(default)]
    pub limit_keys: Vec<String>,
    /// Fleet-wide cap on calls in flight, for each of its tools.
    pub max_in_flight: Option<i64>,
}

fn thirty_seconds() -> u64 {
    30_000
}

fn thirty_two() -> usize {
    32
}

/// How a server is reached, checked.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// A child process speaking MCP on its stdin and stdout.
    Stdio(Vec<String>),
    /// A streamable HTTP server, with the headers to send it.
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl McpDef {
    /// Checks what can be checked without the environment or the server.
    pub(crate) fn check(&self) -> Result<(), McpError> {
        let name = ToolName::new(self.name.clone()).map_err(McpError::Name)?;
        if name.as_str().len() > MAX_SOURCE_NAME_LEN {
            return Err(McpError::NameTooLong);
        }
        match (&self.command, &self.url) {
            (Some(argv), None) if argv.is_empty() => return Err(McpError::EmptyCommand),
            (Some(_), None) if !self.headers.is_empty() => return Err(McpError::HeadersNeedUrl),
            (None, Some(url)) => check_url(url)?,
            (Some(_), None) => {}
            _ => return Err(McpError::CommandOrUrl),
        }
        for header in self.headers.keys() {
            let reserved = ["accept", "mcp-session-id", "last-event-id"]
                .iter()
                .any(|r| header.eq_ignore_ascii_case(r));
            if reserved || reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(McpError::HeaderName(header.clone()));
            }
        }
        if let Some(tools) = &self.tools {
            if tools.is_empty() {
                return Err(McpError::NoToolsListed);
            }
            let twice = tools
                .iter()
                .enumerate()
                .find(|(i, t)| tools[..*i].contains(t));
            if let Some((_, twice)) = twice {
                return Err(McpError::ListedTwice(twice.clone()));
            }
        }
        if self.max_concurrency == 0 {
            return Err(McpError::NoConcurrency);
        }
        if self.timeout_ms == 0 {
            return Err(McpError::NoTimeout);
        }
        Ok(())
    }

    /// How to reach the server, header variables read from the environment
    /// (the error names a variable, never a value).
    pub(crate) fn endpoint(&self) -> Result<Endpoint, McpError> {
        if let Some(argv) = &self.command {
            return Ok(Endpoint::Stdio(argv.clone()));
        }
        let url = self.url.clone().ok_or(McpError::CommandOrUrl)?;
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let unset = |var: &str| McpError::UnsetVariable {
                header: name.clone(),
                var: var.to_owned(),
            };
            // `env:VAR` (the whole value), or `${VAR}` inside it as HTTP tools take.
            let value = match value.strip_prefix("env:") {
                Some(var) => std::env::var(var).map_err(|_| unset(var))?,
                None => crate::http::expand_env(value).map_err(|e| match e {
                    crate::http::HttpToolError::UnsetVariable(var) => unset(&var),
                    _ => McpError::HeaderValue(name.clone()),
                })?,
            };
            reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| McpError::HeaderValue(name.clone()))?;
            headers.push((name.clone(), value));
        }
        Ok(Endpoint::Http { url, headers })
    }

    /// The longest wait for one call.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// An `http` or `https` URL.
fn check_url(url: &str) -> Result<(), McpError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| McpError::Url {
        url: url.to_owned(),
        problem: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(McpError::Url {
            url: url.to_owned(),
            problem: format!("the scheme must be http or https, not {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<McpDef, String> {
        let def: McpDef = toml::from_str(text).map_err(|e| e.to_string())?;
        def.check().map_err(|e| e.to_string())?;
        Ok(def)
    }

    #[test]
    fn entries_parse_with_their_defaults() {
        let def = parse("name = \"calc\"\ncommand = [\"python3\", \"calc.py\"]").unwrap();
        assert_eq!((def.timeout_ms, def.max_concurrency), (30_000, 32));
        assert!(matches!(def.endpoint().unwrap(), Endpoint::Stdio(argv) if argv.len() == 2));
        let def = parse(
            "name = \"web\"\nurl = \"http://127.0.0.1:8000/mcp\"\ntools = [\"add\"]\nlimit_keys = [\"api\"]\nmax_in_flight = 3\ntimeout_ms = 500\nmax_concurrency = 4",
        )
        .unwrap();
        assert_eq!(def.tools.as_deref(), Some(&["add".to_owned()][..]));
        assert_eq!(
            (def.max_in_flight, def.timeout()),
            (Some(3), Duration::from_millis(500))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("name = \"x\"", "exactly one of `command` and `url`"),
            (
                "name = \"x\"\ncommand = [\"a\"]\nurl = \"http://h/\"",
                "exactly one of",
            ),
            ("name = \"x\"\ncommand = []", "at least the program"),
            ("name = \"x.y\"\ncommand = [\"a\"]", "only ASCII letters"),
            ("name = \"x\"\nurl = \"ftp://h/\"", "http or https"),
            ("name = \"x\"\nurl = \"not a url\"", "not a valid URL"),
            (
                "name = \"x\"\ncommand = [\"a\"]\nheaders = { A = \"b\" }",
                "only to `url`",
            ),
            (
                "name = \"x\"\nurl = \"http://h/\"\nheaders = { \"a b\" = \"c\" }",
                "header name",
            ),
            (
                "name = \"x\"\ncommand = [\"a\"]\ntools = []",
                "names no tool",
            ),
            (
                "name = \"x\"\ncommand = [\"a\"]\ntools = [\"b\", \"b\"]",
                "names \"b\" twice",
            ),
            (
                "name = \"x\"\ncommand = [\"a\"]\nmax_concurrency = 0",
                "max_concurrency",
            ),
            (
                "name = \"x\"\ncommand = [\"a\"]\ntimeout_ms = 0",
                "timeout_ms",
            ),
            ("name = \"x\"\ncmd = [\"a\"]", "unknown field `cmd`"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let long = format!("name = \"{}\"\ncommand = [\"a\"]", "n".repeat(33));
        assert!(parse(&long).unwrap_err().contains("at most 32"));
    }

    #[test]
    fn header_variables_come_from_the_environment() {
        std::env::set_var("TOOLFAN_TEST_MCP_TOKEN", "Bearer t0ken");
        let def = parse(
            "name = \"x\"\nurl = \"http://h/\"\nheaders = { Authorization = \"env:TOOLFAN_TEST_MCP_TOKEN\", X-Plain = \"v\" }",
        )
        .unwrap();
        let Endpoint::Http { headers, .. } = def.endpoint().unwrap() else {
            panic!("an HTTP endpoint");
        };
        assert!(headers.contains(&("Authorization".into(), "Bearer t0ken".into())));
        assert!(headers.contains(&("X-Plain".into(), "v".into())));
        let def = parse(
            "name = \"x\"\nurl = \"http://h/\"\nheaders = { Authorization = \"env:TOOLFAN_SURELY_UNSET_MCP\" }",
        )
        .unwrap();
        let err = def.endpoint().unwrap_err().to_string();
        assert!(
            err.contains("TOOLFAN_SURELY_UNSET_MCP") && err.contains("Authorization"),
            "{err}"
        );
    }

    #[test]
    fn header_values_take_variables_as_http_tools_do() {
        std::env::set_var("TOOLFAN_TEST_MCP_INLINE", "t0ken");
        let def = parse(
            "name = \"x\"\nurl = \"http://h/\"\nheaders = { Authorization = \"Bearer ${TOOLFAN_TEST_MCP_INLINE}\" }",
        )
        .unwrap();
        let Endpoint::Http { headers, .. } = def.endpoint().unwrap() else {
            panic!("an HTTP endpoint");
        };
        assert_eq!(
            headers,
            vec![("Authorization".into(), "Bearer t0ken".into())]
        );
        for (value, named) in [
            (
                "Bearer ${TOOLFAN_SURELY_UNSET_INLINE}",
                "TOOLFAN_SURELY_UNSET_INLINE",
            ),
            ("Bearer ${OPEN", "Authorization"),
        ] {
            let toml = format!(
                "name = \"x\"\nurl = \"http://h/\"\nheaders = {{ Authorization = {value:?} }}"
            );
            let err = parse(&toml).unwrap().endpoint().unwrap_err().to_string();
            assert!(err.contains(named), "{value}: {err}");
        }
    }
}
