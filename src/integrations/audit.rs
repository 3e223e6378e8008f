//! The audit trail of action runs, through the REST actions API and MCP `tools/call` alike:
//! when, who, through which token or client, which integration and action, the outcome (`ok` or
//! the error code) and how long it took. Argument values are never recorded: they hold the
//! users' mail and issue text.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::log_error;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::{ApiResult, Caller, Ctx, Reply};
use crate::time::{iso, normalize, Millis};

/// Which door an action came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Rest,
    Mcp,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Rest => "rest",
            Via::Mcp => "mcp",
        }
    }
}

/// The caller as the trail names it: the kind of credential and its id (never the secret).
pub fn caller_of(caller: &Caller) -> (&'static str, &str) {
    if let Some(grant) = &caller.oauth {
        return ("oauth_client", &grant.client_id);
    }
    match caller.token_table {
        "auth_sessions" => ("session", &caller.token_id),
        _ => ("api_token", &caller.token_id),
    }
}

/// One action run.
pub struct Entry<'a> {
    pub caller: &'a Caller,
    pub via: Via,
    pub integration_id: &'a str,
    pub service: &'a str,
    pub action: &'a str,
    /// `ok`, or the error code it ended with.
    pub outcome: &'a str,
    pub started: Millis,
    pub ended: Millis,
}

/// Records one run. A failure to record is logged, not returned: the action already happened
/// upstream, and its answer must reach the caller.
pub async fn record(ctx: &Ctx, entry: &Entry<'_>) {
    let (caller_type, caller_id) = caller_of(entry.caller);
    let result = async {
        let db = ctx.db().map_err(|e| e.message.clone())?;
        crate::q!(
            &db,
            "INSERT INTO action_audit (id, created_at, user_id, caller_type, caller_id, via, integration_id, service, action, outcome, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            &uuid::Uuid::new_v4().to_string(),
            &iso(entry.started),
            &entry.caller.id,
            &caller_type,
            &caller_id,
            &entry.via.as_str(),
            &entry.integration_id,
            &entry.service,
            &entry.action,
            &entry.outcome,
            &(entry.ended - entry.started).max(0)
        )
        .map_err(|e| e.to_string())?
        .run()
        .await
        .map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        log_error(&format!("audit entry for {} not recorded: {e}", entry.action));
    }
}

#[derive(Deserialize)]
struct Row {
    id: String,
    created_at: String,
    user_id: String,
    caller_type: String,
    caller_id: String,
    via: String,
    integration_id: Option<String>,
    service: Option<String>,
    action: String,
    outcome: String,
    duration_ms: i64,
}

impl Keyed for Row {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

fn view(r: &Row) -> Value {
    json!({
        "id": r.id,
        "createdAt": normalize(&r.created_at),
        "userId": r.user_id,
        "caller": { "type": r.caller_type, "id": r.caller_id },
        "via": r.via,
        "integrationId": r.integration_id,
        "service": r.service,
        "action": r.action,
        "outcome": r.outcome,
        "durationMs": r.duration_ms,
    })
}

const COLUMNS: &str = "SELECT id, created_at, user_id, caller_type, caller_id, via, integration_id, service, action, outcome, duration_ms FROM action_audit";

/// `GET /api/me/audit?limit&cursor` → `{entries, hasMore, cursor?}`: the caller's own runs,
/// newest first.
pub async fn mine(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = PageQuery::parse(&ctx.query, 50)?;
    let select = format!("{COLUMNS} WHERE user_id = ?1");
    let rows: Vec<Row> = crate::http::page::newest_first(&ctx.db()?, &select, &caller.id, &page).await?;
    Reply::ok(&page_body("entries", &rows, page.limit, view))
}

/// `GET /api/admin/audit?limit&cursor&userId` (admin) → every user's runs, or one user's.
pub async fn all(ctx: &Ctx) -> ApiResult<Reply> {
    let page = PageQuery::parse(&ctx.query, 50)?;
    let user = ctx.query.get("userId").unwrap_or("");
    let select = format!("{COLUMNS} WHERE (?1 = '' OR user_id = ?1)");
    let rows: Vec<Row> = crate::http::page::newest_first(&ctx.db()?, &select, user, &page).await?;
    Reply::ok(&page_body("entries", &rows, page.limit, view))
}
