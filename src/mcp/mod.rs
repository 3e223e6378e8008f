//! The agents' door (README, "Connecting an MCP client"): `POST /mcp`, a Model Context Protocol server over the
//! Streamable HTTP transport with plain JSON answers (no server-sent events; `GET /mcp` is 405).
//! Stateless: no `Mcp-Session-Id` is issued, and every request is authenticated on its own with
//! the API's bearer tokens. Tools are the actions of the caller's active integrations (run
//! through `integrations::routes::invoke`, exactly as `POST /api/integrations/:id/actions/:name`),
//! plus `integrations_list` and `entities_search`.
//!
//! - `rpc`: JSON-RPC messages, version negotiation, method dispatch (no runtime).
//! - `tools`: the tool list and names.

pub mod oauth;
pub mod rpc;
pub mod tools;

use crate::db::Query as _;
use std::cell::OnceCell;

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use crate::http::{ApiError, ApiResult, Caller, Ctx, Reply};
use crate::integrations::audit::Via;
use crate::integrations::store::IntegrationRow;
use crate::integrations::{routes, search};
use tools::{Target, Tool};

/// Tools per `tools/list` page unless `MCP_TOOLS_PAGE_SIZE` says otherwise.
const DEFAULT_PAGE: usize = 100;

/// DNS-rebinding guard (transport spec, "Security Warning"): a browser's `Origin` must be one
/// the API's CORS rules allow, or this service's own configured `PUBLIC_URL`. (The request's own
/// host proves nothing: under DNS rebinding it is the attacker's name.) No `Origin` is fine:
/// that is not a browser.
pub fn origin_allowed(origin: &str, frontend_url: Option<&str>, public_url: Option<&str>) -> bool {
    let same = |a: &str, b: &str| match (crate::http::parse_url(a), crate::http::parse_url(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.origin() == b.origin(),
        _ => false,
    };
    crate::http::cors_allows(origin, frontend_url) || public_url.is_some_and(|p| same(origin, p))
}

/// `POST /mcp`.
pub async fn handle(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = crate::config::var(&ctx.env, "MCP_TOOLS_PAGE_SIZE")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(DEFAULT_PAGE);
    let backend = Live { ctx, caller, rows: OnceCell::new() };
    let (version, method, name) =
        (ctx.header("MCP-Protocol-Version"), ctx.header("Mcp-Method"), ctx.header("Mcp-Name"));
    let transport = rpc::Transport {
        version: version.as_deref().map(str::trim),
        method: method.as_deref().map(str::trim),
        name: name.as_deref(),
    };
    let body = ctx.take_body();
    match rpc::handle_request(&backend, &body, &transport, page).await {
        rpc::Answer::Accepted => Ok(Reply::empty(202)),
        rpc::Answer::Json(status, body) => Reply::json(status, &body),
    }
}

/// The caller's integrations in D1, read once per request.
struct Live<'a> {
    ctx: &'a Ctx,
    caller: &'a Caller,
    rows: OnceCell<Vec<IntegrationRow>>,
}

impl Live<'_> {
    async fn rows(&self) -> ApiResult<&[IntegrationRow]> {
        if let Some(rows) = self.rows.get() {
            return Ok(rows);
        }
        // Visible as in `GET /api/integrations`: the caller's own, then org-scope ones.
        let rows: Vec<IntegrationRow> = crate::q!(
            &self.ctx.db()?,
            "SELECT * FROM integrations WHERE user_id = ?1 OR scope = 'org'
              ORDER BY CASE WHEN user_id = ?1 THEN 0 ELSE 1 END, created_at, id",
            &self.caller.id
        )?
        .rows()
        .await?
        .results()?;
        Ok(self.rows.get_or_init(|| rows))
    }

    fn row<'r>(rows: &'r [IntegrationRow], id: &str) -> ApiResult<&'r IntegrationRow> {
        rows.iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ApiError::not_found(format!("Integration with id '{id}' not found")))
    }

    async fn integrations(&self) -> ApiResult<Value> {
        let rows = self.rows().await?;
        let tools = tools::build(rows, &self.caller.id, false);
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = r.view(&self.caller.id);
                let names: Vec<&str> = tools
                    .iter()
                    .filter(|t| matches!(&t.target, Target::Action { integration, .. } if *integration == r.id))
                    .map(|t| t.name.as_str())
                    .collect();
                v["tools"] = json!(names);
                v
            })
            .collect();
        Ok(json!({ "integrations": list }))
    }

    async fn search(&self, args: &Value) -> ApiResult<Value> {
        let rows = self.rows().await?;
        let kind = args["type"].as_str();
        let targets: Vec<IntegrationRow> = match args["integrationId"].as_str() {
            Some(id) => {
                let row = Self::row(rows, id)?;
                if let Some(k) = kind {
                    if !row.service()?.entities().contains(&k) {
                        return Err(ApiError::invalid_field("type", &format!("Unsupported entity type '{k}'")));
                    }
                }
                vec![row.clone()]
            }
            None => rows.to_vec(),
        };
        let limit = args["limit"].as_u64().map_or(search::DEFAULT_LIMIT, |l| l.min(100) as u32);
        let p = search::params(args["q"].as_str(), kind, limit, args["cursor"].as_str())?;
        search::run(&self.ctx.env, &targets, &p, true).await
    }
}

impl rpc::Backend for Live<'_> {
    fn tools(&self, inactive: bool) -> LocalBoxFuture<'_, Result<Vec<Tool>, ApiError>> {
        Box::pin(async move { Ok(tools::build(self.rows().await?, &self.caller.id, inactive)) })
    }

    fn may_write(&self) -> bool {
        self.caller.may_write()
    }

    fn call<'a>(&'a self, tool: &'a Tool, args: &'a Value) -> LocalBoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            match &tool.target {
                Target::IntegrationsList => self.integrations().await,
                Target::EntitiesSearch => self.search(args).await,
                Target::Action { integration, action } => {
                    let row = Self::row(self.rows().await?, integration)?;
                    routes::invoke(self.ctx, self.caller, Via::Mcp, row, action, args).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_as_cors_or_the_public_url() {
        let fe = Some("https://app.example.com");
        let public = Some("https://api.example.com/");
        assert!(origin_allowed("https://app.example.com", fe, public));
        assert!(origin_allowed("https://api.example.com", fe, public));
        assert!(origin_allowed("https://pr-3.app.example.com", fe, None));
        assert!(!origin_allowed("https://evil.example", fe, public));
        assert!(!origin_allowed("http://api.example.com", fe, public), "scheme counts");
        assert!(!origin_allowed("null", fe, public));
        assert!(!origin_allowed("http://127.0.0.1:8787", fe, None), "the request's own host is not enough");
        assert!(origin_allowed("http://localhost:5173", None, None), "local frontends while developing");
    }
}
