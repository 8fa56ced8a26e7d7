//! The server's tool list: read at start into the tools to serve, and read
//! again when the server says it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{PaginatedRequestParams, Tool as McpToolDef};
use rmcp::service::RoleClient;
use rmcp::Peer;
use serde_json::Value;
use toolfan_worker::{check_parameters, ToolRuntime};

use super::config::McpDef;
use super::error::McpError;
use super::names::{map_names, Mapped};

/// Most pages of a tool list followed.
const MAX_PAGES: usize = 100;
/// Most tools taken from one server.
const MAX_TOOLS: usize = 1_000;
/// Longest description passed on to callers, in bytes (longer ones are cut:
/// every worker's descriptions travel in one NATS message).
const MAX_DESCRIPTION: usize = 16 * 1024;
/// Largest input schema served, in bytes of JSON.
const MAX_SCHEMA: usize = 64 * 1024;

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

/// The server's description of a tool (its title if it has no
/// description), cut to [`MAX_DESCRIPTION`] bytes.
fn description(tool: &McpToolDef) -> String {
    let mut text = match (&tool.description, &tool.title) {
        (Some(description), _) => description.to_string(),
        (None, Some(title)) => title.clone(),
        (None, None) => String::new(),
    };
    if text.len() > MAX_DESCRIPTION {
        let mut end = MAX_DESCRIPTION;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The tool's input schema, or why it cannot be served.
fn schema(tool: &McpToolDef) -> Result<Value, McpError> {
    let schema = Value::Object(tool.input_schema.as_ref().clone());
    let bytes = schema.to_string().len();
    if bytes > MAX_SCHEMA {
        return Err(McpError::SchemaTooLarge {
            tool: tool.name.to_string(),
            bytes,
            max: MAX_SCHEMA,
        });
    }
    Ok(schema)
}

/// Lists the server's tools, within `timeout`.
async fn list(peer: &Peer<RoleClient>, timeout: Duration) -> Result<Vec<McpToolDef>, McpError> {
    tokio::time::timeout(timeout, pages(peer))
        .await
        .map_err(|_| McpError::Unanswered(timeout.as_millis() as u64))?
}

/// Every page of the server's tool list, up to [`MAX_PAGES`] pages and
/// [`MAX_TOOLS`] tools; a repeated cursor is refused, and a name listed
/// twice is taken once.
async fn pages(peer: &Peer<RoleClient>) -> Result<Vec<McpToolDef>, McpError> {
    let (mut tools, mut cursors) = (Vec::<McpToolDef>::new(), BTreeSet::new());
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor.take());
        let page = peer
            .list_tools(Some(params))
            .await
            .map_err(McpError::List)?;
        for tool in page.tools {
            if tools.iter().any(|t| t.name == tool.name) {
                tracing::warn!(tool = %tool.name, "the MCP server lists a tool twice; taking the first");
            } else {
                tools.push(tool);
            }
        }
        if tools.len() > MAX_TOOLS {
            return Err(McpError::Paging(format!("holds over {MAX_TOOLS} tools")));
        }
        match page.next_cursor {
            None => return Ok(tools),
            Some(next) if !cursors.insert(next.clone()) => {
                return Err(McpError::Paging(format!("repeats the cursor {next:?}")))
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(McpError::Paging(format!("runs over {MAX_PAGES} pages")))
}

/// The tools to serve: all the server's, or those `tools = [...]` names
/// (each must exist), under their mapped names, each mapping logged.
pub(crate) async fn at_start(
    peer: &Peer<RoleClient>,
    def: &McpDef,
) -> Result<Vec<Served>, McpError> {
    let offered = list(peer, def.timeout()).await?;
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
        let schema = schema(tool)?;
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
    let listed = match list(peer, catalog.timeout).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(mcp = %name, error = %e, "cannot list the MCP server's tools again");
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
            None if catalog.wanted(remote) && catalog.notice(remote) => {
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
    /// Whether the new tool `remote` is to be logged: once each, and of at
    /// most [`MAX_TOOLS`] names kept.
    fn notice(&self, remote: &str) -> bool {
        let mut noticed = lock(&self.noticed);
        noticed.len() < MAX_TOOLS && noticed.insert(remote.to_owned())
    }

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
        let text = description(listed);
        let schema = match schema(listed) {
            Ok(schema) => schema,
            Err(e) => {
                tracing::warn!(mcp = %self.name, error = %e, "callers keep the MCP tool's old schema");
                return;
            }
        };
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
