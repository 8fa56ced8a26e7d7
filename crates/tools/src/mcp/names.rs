//! Serving an MCP server's tools under toolfan tool names: `<source>_<tool>`,
//! where `<tool>` keeps ASCII letters, digits, `_` and `-` and every other
//! character becomes `_`. A name that would be longer than a tool name may be
//! ([`MAX_NAME_LEN`]), or that a mapped name would share with another of the
//! server's tools, is cut and ends in `_` and eight hex digits of a hash of
//! the server's name for it, so the mapping stays the same from one start
//! to the next; a tool whose name is already safe keeps it as it is.

use std::collections::BTreeSet;

use toolfan_protocol::ids::MAX_NAME_LEN;

use super::error::McpError;

/// A server's tool and the name toolfan serves it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The server's own name for the tool.
    pub remote: String,
    /// The toolfan tool name.
    pub served: String,
}

impl Mapped {
    /// Whether the served name is not simply `<source>_<remote>`.
    pub fn renamed(&self, source: &str) -> bool {
        self.served != format!("{source}_{}", self.remote)
    }
}

/// Maps each of `tools` (the server's names) to a toolfan tool name.
pub fn map_names(source: &str, tools: &[String]) -> Result<Vec<Mapped>, McpError> {
    let plain: Vec<String> = tools
        .iter()
        .map(|t| format!("{source}_{}", sanitize(t)))
        .collect();
    let mut taken = BTreeSet::new();
    let mut mapped = Vec::with_capacity(tools.len());
    for (i, remote) in tools.iter().enumerate() {
        // A tool whose own name is already safe keeps its plain name when
        // another's maps onto it: a tool the server adds later must not
        // rename one callers (and limits) already use.
        let safe = sanitize(remote) == *remote;
        let shared = !safe && plain.iter().filter(|p| **p == plain[i]).count() > 1;
        let served = if shared || plain[i].len() > MAX_NAME_LEN {
            hashed(&plain[i], remote)
        } else {
            plain[i].clone()
        };
        if !taken.insert(served.clone()) {
            return Err(McpError::NameClash {
                tool: remote.clone(),
                served,
            });
        }
        mapped.push(Mapped {
            remote: remote.clone(),
            served,
        });
    }
    Ok(mapped)
}

/// `name` with every character a tool name cannot hold replaced by `_`.
fn sanitize(name: &str) -> String {
    let kept: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if kept.is_empty() {
        "_".into()
    } else {
        kept
    }
}

/// `plain` cut to leave room for `_` and the hash of `remote`.
fn hashed(plain: &str, remote: &str) -> String {
    let suffix = format!("_{:08x}", fnv1a(remote.as_bytes()));
    let keep = MAX_NAME_LEN - suffix.len();
    // `plain` is ASCII, so any byte index is a character boundary.
    format!("{}{suffix}", &plain[..plain.len().min(keep)])
}

/// FNV-1a, 32 bits: small, stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolfan_protocol::ToolName;

    fn names(tools: &[&str]) -> Vec<String> {
        let tools: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
        map_names("calc", &tools)
            .unwrap()
            .into_iter()
            .map(|m| m.served)
            .collect()
    }

    #[test]
    fn safe_names_are_prefixed_and_others_mapped() {
        assert_eq!(
            names(&["add", "mul-2", "odd.name", "spa ce!", "ünï"]),
            [
                "calc_add",
                "calc_mul-2",
                "calc_odd_name",
                "calc_spa_ce_",
                "calc__n_"
            ]
        );
        let mapped = map_names("calc", &["add".into(), "a.b".into()]).unwrap();
        assert!(!mapped[0].renamed("calc") && mapped[1].renamed("calc"));
    }

    #[test]
    fn clashes_and_long_names_get_a_stable_hash() {
        let served = names(&["a.b", "a_b", "a-b", "a b"]);
        assert_eq!(served[2], "calc_a-b");
        // The safe name keeps its own; both mapped onto it are hashed apart.
        assert_eq!(served[1], "calc_a_b");
        assert!(served[0].starts_with("calc_a_b_") && served[3].starts_with("calc_a_b_"));
        assert_ne!(served[0], served[3]);
        assert_eq!(
            served,
            names(&["a.b", "a_b", "a-b", "a b"]),
            "the same every time"
        );
        // A server that adds `a.b` later does not rename `a_b`.
        assert_eq!(names(&["a_b"]), ["calc_a_b"]);
        assert_eq!(names(&["a_b", "a.b"])[0], "calc_a_b");
        let long = "x".repeat(100);
        let served = names(&[&long]);
        assert_eq!(served[0].len(), MAX_NAME_LEN);
        for name in names(&["a.b", "a_b", &long, "", "日本"]) {
            ToolName::new(name.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
