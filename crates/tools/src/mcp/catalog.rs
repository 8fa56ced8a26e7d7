//! The server's tool list: read at start into the tools to serve, and read
//! again when the server says it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rmcp::model::Tool as McpToolDef;
use rmcp::service::RoleClient;
use rmcp::Peer;
use serde_json::Value;
use toolfan_worker::{check_parameters, ToolRuntime};

use super::config::McpDef;
use super::error::McpError;
use super::names::{map_names, Mapped};

/// A tool served from the server, as it was described at start.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) mapped: Mapped,
    pub(crate) description: String,
    pub(crate) schema: Value,
}

/// What a session knows of its server's tools.
pub(crate) struct Catalog {
    pub(crate) name: String,
    pub(crate) timeout: Duration,
    /// The served tools by the server's names, as callers are told of them.
    pub(crate) served: Mutex<BTreeMap<String, Served>>,
    /// The worker's runtime of each served tool, once it started serving it.
    runtimes: Mutex<BTreeMap<String, ToolRuntime>>,
    /// New tools already logged as needing a restart.
    noticed: Mutex<BTreeSet<String>>,
    /// Served tools the server has since stopped listing.
    pub(crate) gone: RwLock<BTreeSet<String>>,
    /// The tools asked for (`tools = [...]`), if any.
    pub(crate) filter: Option<Vec<String>>,
}

impl Catalog {
    pub(crate) fn new(def: &McpDef, served: &[Served]) -> Self {
        Self {
            name: def.name.clone(),
            timeout: def.timeout(),
            served: Mutex::new(
                served
                    .iter()
                    .map(|s| (s.mapped.remote.clone(), s.clone()))
                    .collect(),
            ),
            runtimes: Mutex::default(),
            noticed: Mutex::default(),
            gone: RwLock::default(),
            filter: def.tools.clone(),
        }
    }

    /// Whether the server has stopped listing the served tool `remote`.
    pub(crate) fn is_gone(&self, remote: &str) -> bool {
        match self.gone.read() {
            Ok(gone) => gone.contains(remote),
            Err(poisoned) => poisoned.into_inner().contains(remote),
        }
    }
}

/// The server's description of a tool (its title if it has no description).
fn description(tool: &McpToolDef) -> String {
    match (&tool.description, &tool.title) {
        (Some(description), _) => description.to_string(),
        (None, Some(title)) => title.clone(),
        (None, None) => String::new(),
    }
}

fn schema(tool: &McpToolDef) -> Value {
    Value::Object(tool.input_schema.as_ref().clone())
}

/// Lists the server's tools, within the entry's timeout.
async fn list(peer: &Peer<RoleClient>, def: &McpDef) -> Result<Vec<McpToolDef>, McpError> {
    tokio::time::timeout(def.timeout(), peer.list_all_tools())
        .await
        .map_err(|_| McpError::Unanswered(def.timeout_ms))?
        .map_err(McpError::List)
}

/// The tools to serve: all the server's, or those `tools = [...]` names
/// (each must exist), under their mapped names, each mapping logged.
pub(crate) async fn at_start(
    peer: &Peer<RoleClient>,
    def: &McpDef,
) -> Result<Vec<Served>, McpError> {
    let offered = list(peer, def).await?;
    let chosen: Vec<&McpToolDef> = match &def.tools {
        None => offered.iter().collect(),
        Some(wanted) => {
            let mut chosen = Vec::new();
            for name in wanted {
                let tool = offered.iter().find(|t| t.name == name.as_str());
                chosen.push(tool.ok_or_else(|| McpError::MissingTool {
                    tool: name.clone(),
                    offered: names_of(&offered),
                })?);
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Err(McpError::NoTools);
    }
    let remote: Vec<String> = chosen.iter().map(|t| t.name.to_string()).collect();
    let mapped = map_names(&def.name, &remote)?;
    let mut served = Vec::new();
    for (tool, mapped) in chosen.into_iter().zip(mapped) {
        let schema = schema(tool);
        check_parameters(&schema).map_err(|source| McpError::Schema {
            tool: mapped.remote.clone(),
            source,
        })?;
        if mapped.renamed(&def.name) {
            tracing::warn!(mcp = %def.name, tool = %mapped.remote, served = %mapped.served, "MCP tool name is not a safe token; serving it under a mapped name");
        } else {
            tracing::info!(mcp = %def.name, tool = %mapped.remote, served = %mapped.served, "serving MCP tool");
        }
        served.push(Served {
            description: description(tool),
            schema,
            mapped,
        });
    }
    Ok(served)
}

fn names_of(tools: &[McpToolDef]) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Lists the tools again and says what changed: a served tool whose
/// description or schema changed is described anew to callers, a new tool
/// needs a restart of the worker, and a served tool no longer listed fails
/// its calls until it is back.
pub(crate) async fn relist(catalog: &Catalog, peer: &Peer<RoleClient>) {
    let name = &catalog.name;
    let listed = match tokio::time::timeout(catalog.timeout, peer.list_all_tools()).await {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => {
            tracing::warn!(mcp = %name, error = %e, "cannot list the MCP server's tools again");
            return;
        }
        Err(_) => {
            tracing::warn!(mcp = %name, "the MCP server did not list its tools in time");
            return;
        }
    };
    let mut served = lock(&catalog.served);
    let mut gone = match catalog.gone.write() {
        Ok(gone) => gone,
        Err(poisoned) => poisoned.into_inner(),
    };
    for tool in &listed {
        let remote = tool.name.as_ref();
        match served.get_mut(remote) {
            Some(known) => {
                if gone.remove(remote) {
                    tracing::info!(mcp = %name, tool = remote, "the MCP server lists the tool again; serving its calls");
                }
                catalog.redescribe(known, tool);
            }
            None if catalog.wanted(remote) && lock(&catalog.noticed).insert(remote.into()) => {
                tracing::warn!(mcp = %name, tool = remote, "the MCP server offers a new tool; restart the worker to serve it");
            }
            None => {}
        }
    }
    for (remote, known) in served.iter() {
        if !listed.iter().any(|t| t.name == remote.as_str()) && gone.insert(remote.clone()) {
            tracing::warn!(mcp = %name, tool = %remote, served = %known.mapped.served, "the MCP server no longer lists the tool; its calls fail until it is back");
        }
    }
}

/// A mutex's value, also after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Catalog {
    /// Whether `remote` is among the tools asked for (all, without `tools`).
    fn wanted(&self, remote: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|wanted| wanted.iter().any(|w| w == remote))
    }

    /// Keeps the worker's runtime of the served tool `remote`, through
    /// which its description can change.
    pub(crate) fn started(&self, remote: &str, runtime: ToolRuntime) {
        lock(&self.runtimes).insert(remote.to_owned(), runtime);
    }

    /// Describes `known` as the server now lists it, if that changed.
    fn redescribe(&self, known: &mut Served, listed: &McpToolDef) {
        let (text, schema) = (description(listed), schema(listed));
        if known.description == text && known.schema == schema {
            return;
        }
        let served = &known.mapped.served;
        let runtimes = lock(&self.runtimes);
        let Some(runtime) = runtimes.get(&known.mapped.remote) else {
            return;
        };
        match runtime.redescribe(text.clone(), schema.clone()) {
            Ok(()) => {
                tracing::info!(mcp = %self.name, tool = %known.mapped.remote, served = %served, "the MCP tool's description changed; callers are told the new one");
                known.description = text;
                known.schema = schema;
            }
            Err(e) => {
                tracing::warn!(mcp = %self.name, tool = %known.mapped.remote, error = %e, "the MCP tool's new schema is unusable; callers keep the old one");
            }
        }
    }
}
