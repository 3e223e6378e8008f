//! Channel bindings (where a user's channels lead) and prompt routing: `POST /api/prompt`
//! and the one "dispatch to orchestrator" path every channel shares.

pub mod scope;

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use crate::http::input::Input;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::Ctx;
use crate::http::{success, ApiError, ApiResult, Reply};
use crate::sessions::agent::{PromptAccepted, PromptRequest, SessionAgent};
use crate::sessions::prompt::{parse_api_attachments, QueueMode, MAX_CONTENT_CHARS};
use crate::sessions::{find_orchestrator, owned_session};
use crate::time::{iso, normalize};
use scope::{scope_key, ChannelType};

const MAX_DEBOUNCE_MS: i64 = 600_000;

#[derive(Debug, Clone, Deserialize)]
pub struct BindingRow {
    pub id: String,
    pub session_id: String,
    pub channel_type: String,
    pub channel_id: String,
    pub scope_key: String,
    pub queue_mode: String,
    pub collect_debounce_ms: i64,
    pub created_at: String,
}

const BINDING_COLUMNS: &str =
    "id, session_id, channel_type, channel_id, scope_key, queue_mode, collect_debounce_ms, created_at";

impl Keyed for BindingRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl BindingRow {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "sessionId": self.session_id, "channelType": self.channel_type, "channelId": self.channel_id,
            "scopeKey": self.scope_key, "queueMode": self.queue_mode, "collectDebounceMs": self.collect_debounce_ms,
            "createdAt": normalize(&self.created_at),
        })
    }
}

async fn owned_binding(db: &D1Database, user_id: &str, id: &str) -> ApiResult<BindingRow> {
    let row: Option<BindingRow> = crate::q!(
        db,
        &format!("SELECT {BINDING_COLUMNS} FROM channel_bindings WHERE id = ?1 AND user_id = ?2"),
        &id,
        &user_id
    )?
    .one()
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("Binding with id '{id}' not found")))
}

/// `GET /api/channels/bindings?limit&cursor` → `{bindings, cursor?, hasMore}`.
pub async fn list_bindings(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = PageQuery::parse(&ctx.query, 100)?;
    let db = ctx.db()?;
    let select = format!("SELECT {BINDING_COLUMNS} FROM channel_bindings WHERE user_id = ?1");
    let rows: Vec<BindingRow> = crate::db::newest_first(&db, &select, &caller.id, &page).await?;
    Reply::ok(&page_body("bindings", &rows, page.limit, BindingRow::view))
}

/// `POST /api/channels/bindings` `{sessionId, channelType, channelId, queueMode?, collectDebounceMs?}`
/// → 201 `{binding}`. The scope key is computed here from the caller and the channel.
pub async fn create_binding(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let session_id = input.str("sessionId", 1, 100);
    let channel = input.opt_enum("channelType", &ChannelType::ALL, ChannelType::parse);
    if !input.has("channelType") {
        input.error("channelType", "Required");
    }
    let channel_id = input.str("channelId", 1, 500);
    if let Some(c) = channel {
        if let Err(msg) = c.check_id(&channel_id) {
            input.error("channelId", msg);
        }
    }
    let mode = input.opt_enum("queueMode", &QueueMode::ALL, QueueMode::parse).unwrap_or(QueueMode::Followup);
    let debounce = input.opt_int("collectDebounceMs", 0, MAX_DEBOUNCE_MS).unwrap_or(3000);
    input.finish()?;
    let channel = channel.ok_or_else(|| ApiError::invalid_field("channelType", "Required"))?;

    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, &session_id).await?;
    if session.is_finished() {
        return Err(ApiError::conflict("SESSION_FINISHED", format!("Session is {}", session.status)));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let key = scope_key(&caller.id, channel, &channel_id);
    let now = iso(ctx.now);
    let result = crate::q!(
        &db,
        "INSERT INTO channel_bindings (id, session_id, channel_type, channel_id, scope_key, user_id, queue_mode, collect_debounce_ms, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9 WHERE (SELECT COUNT(*) FROM channel_bindings WHERE user_id = ?6) < ?10
         ON CONFLICT DO NOTHING",
        &id,
        &session.id,
        &channel.as_str(),
        &channel_id,
        &key,
        &caller.id,
        &mode.as_str(),
        &debounce,
        &now,
        &MAX_BINDINGS
    )?
    .exec()
    .await?;
    if result.changes() == 0 {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let count: Option<Count> =
            crate::q!(&db, "SELECT COUNT(*) AS n FROM channel_bindings WHERE user_id = ?1", &caller.id)?.one().await?;
        if count.is_some_and(|c| c.n >= MAX_BINDINGS) {
            return Err(crate::http::limit_reached("channel bindings", MAX_BINDINGS));
        }
        return Err(ApiError::conflict(
            "BINDING_EXISTS",
            "This channel is already bound; update or delete that binding instead",
        ));
    }
    let binding = owned_binding(&db, &caller.id, &id).await?;
    Reply::json(201, &json!({ "binding": binding.view() }))
}

/// `PATCH /api/channels/bindings/:id` `{queueMode?, collectDebounceMs?, sessionId?}` → `{binding}`.
pub async fn update_binding(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let mode = input.opt_enum("queueMode", &QueueMode::ALL, QueueMode::parse);
    let debounce = input.opt_int("collectDebounceMs", 0, MAX_DEBOUNCE_MS);
    let session_id = input.opt_str("sessionId", 1, 100);
    if mode.is_none() && debounce.is_none() && session_id.is_none() && !input.has("queueMode") {
        input.error("", "Nothing to update: give queueMode, collectDebounceMs or sessionId");
    }
    input.finish()?;
    let db = ctx.db()?;
    let binding = owned_binding(&db, &caller.id, ctx.params.get("id")).await?;
    if let Some(s) = &session_id {
        let target = owned_session(&db, &caller.id, s).await?;
        if target.is_finished() {
            return Err(ApiError::conflict("SESSION_FINISHED", format!("Session is {}", target.status)));
        }
    }
    crate::q!(
        &db,
        "UPDATE channel_bindings SET queue_mode = COALESCE(?1, queue_mode), collect_debounce_ms = COALESCE(?2, collect_debounce_ms),
           session_id = COALESCE(?3, session_id), updated_at = ?4 WHERE id = ?5 AND user_id = ?6",
        &mode.map(QueueMode::as_str),
        &debounce,
        &session_id,
        &iso(ctx.now),
        &binding.id,
        &caller.id
    )?
    .exec()
    .await?;
    let updated = owned_binding(&db, &caller.id, &binding.id).await?;
    Reply::ok(&json!({ "binding": updated.view() }))
}

/// `DELETE /api/channels/bindings/:id` → `{success: true}`.
pub async fn delete_binding(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let binding = owned_binding(&db, &caller.id, ctx.params.get("id")).await?;
    crate::q!(&db, "DELETE FROM channel_bindings WHERE id = ?1 AND user_id = ?2", &binding.id, &caller.id)?
        .exec()
        .await?;
    Reply::ok(&success())
}

/// `POST /api/sessions/:id/reply`: to a Slack thread or a Telegram chat, by `channelType`.
pub async fn reply(ctx: &Ctx) -> ApiResult<Reply> {
    let slack = serde_json::from_slice::<Value>(&ctx.raw_body()).is_ok_and(|v| v["channelType"] == "slack");
    if slack {
        crate::slack::reply::reply(ctx).await
    } else {
        crate::telegram::reply::reply(ctx).await
    }
}

/// The outcome of handing a prompt to the caller's orchestrator.
pub struct Dispatch {
    pub dispatched: bool,
    pub session_id: Option<String>,
    pub reason: Option<String>,
    pub accepted: Option<PromptAccepted>,
}

/// The one path by which any channel reaches a user's orchestrator. The prompt is stored once,
/// by the session object; nothing is written when the orchestrator is missing or unavailable.
pub async fn dispatch_to_orchestrator(
    env: &Env,
    db: &D1Database,
    user_id: &str,
    req: &PromptRequest,
) -> ApiResult<Dispatch> {
    let fail = |session_id: Option<String>, reason: String| Dispatch {
        dispatched: false,
        session_id,
        reason: Some(reason),
        accepted: None,
    };
    if req.content.trim().is_empty() && req.attachments.is_empty() {
        return Ok(fail(None, "empty_prompt".into()));
    }
    let Some(session) = find_orchestrator(db, user_id).await? else {
        return Ok(fail(None, "orchestrator_not_configured".into()));
    };
    if session.is_finished() {
        return Ok(fail(Some(session.id), format!("orchestrator_unavailable:{}", session.status)));
    }
    match SessionAgent::new(env, &session.id).prompt(req).await {
        Ok(accepted) => {
            Ok(Dispatch { dispatched: true, session_id: Some(session.id), reason: None, accepted: Some(accepted) })
        }
        Err(e) => Ok(fail(Some(session.id), format!("orchestrator_dispatch_failed:{}", e.status))),
    }
}

#[derive(Deserialize)]
struct RouteRow {
    session_id: String,
    channel_type: String,
    channel_id: String,
    queue_mode: String,
    collect_debounce_ms: i64,
    status: String,
}

/// Channel bindings one user may have.
pub const MAX_BINDINGS: i64 = 200;

/// `POST /api/prompt`: to the session the caller's binding names, else to the caller's
/// orchestrator, with channel, author, attachments and queue mode intact.
pub async fn prompt(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    // The body (up to 32 MiB) is freed once parsed, and the attachments are moved from the
    // parsed value into the request: one copy of the data at a time (see the README's memory
    // figure).
    let mut input = Input::parse(&ctx.take_body())?;
    let content = input.opt_text("content", MAX_CONTENT_CHARS);
    let channel = input.opt_enum("channelType", &ChannelType::ALL, ChannelType::parse);
    let channel_id = input.opt_str("channelId", 1, 500);
    let explicit_key = input.opt_str("scopeKey", 1, 1000);
    let mode = input.opt_enum("queueMode", &QueueMode::ALL, QueueMode::parse);
    let attachments = match input.take_array("attachments") {
        Some(items) => parse_api_attachments(&mut input, "attachments", items),
        None => Vec::new(),
    };
    if content.as_deref().unwrap_or("").trim().is_empty() && attachments.is_empty() {
        input.error("content", "Required (1 to 100000 characters) unless attachments are sent");
    }
    if let (Some(c), Some(id)) = (channel, &channel_id) {
        if let Err(m) = c.check_id(id) {
            input.error("channelId", m);
        }
    }
    input.finish()?;

    let key = explicit_key.or_else(|| match (channel, &channel_id) {
        (Some(c), Some(id)) => Some(scope_key(&caller.id, c, id)),
        _ => None,
    });
    let db = ctx.db()?;
    let bound: Option<RouteRow> = match &key {
        Some(k) => {
            crate::q!(
                &db,
                "SELECT b.session_id, b.channel_type, b.channel_id, b.queue_mode, b.collect_debounce_ms, s.status
                   FROM channel_bindings b JOIN sessions s ON s.id = b.session_id
                  WHERE b.scope_key = ?1 AND b.user_id = ?2 AND s.user_id = ?2",
                k,
                &caller.id
            )?
            .one()
            .await?
        }
        None => None,
    };
    let mut req = PromptRequest {
        content: content.unwrap_or_default(),
        attachments,
        queue_mode: mode,
        channel_type: channel.map(|c| c.as_str().to_string()),
        channel_id: channel_id.clone(),
        author_id: Some(caller.id.clone()),
        author_name: caller.name.clone(),
        author_email: Some(caller.email.clone()),
        ..Default::default()
    };

    // A binding to a finished session no longer routes (its prompts would wait forever).
    if let Some(b) = bound.filter(|b| !crate::sessions::FINISHED_STATUSES.contains(&b.status.as_str())) {
        req.queue_mode = mode.or_else(|| QueueMode::parse(&b.queue_mode));
        req.collect_debounce_ms = u32::try_from(b.collect_debounce_ms).ok();
        req.channel_type = req.channel_type.or(Some(b.channel_type));
        req.channel_id = req.channel_id.or(Some(b.channel_id));
        let accepted = SessionAgent::new(&ctx.env, &b.session_id).prompt(&req).await.map_err(|e| {
            if e.status == 400 {
                e
            } else {
                ApiError::upstream("Failed to route prompt to session")
            }
        })?;
        return Reply::ok(&json!({
            "routed": true, "sessionId": b.session_id, "scopeKey": key, "queueMode": accepted.queue_mode,
            "promptId": accepted.prompt_id, "messageId": accepted.message_id, "status": accepted.status,
        }));
    }

    let d = dispatch_to_orchestrator(&ctx.env, &db, &caller.id, &req).await?;
    let mut body = json!({
        "routed": d.dispatched, "sessionId": d.session_id, "scopeKey": key, "orchestratorFallback": true,
    });
    if let Some(reason) = d.reason {
        body["reason"] = json!(reason);
    }
    if let Some(a) = d.accepted {
        body["queueMode"] = json!(a.queue_mode);
        body["promptId"] = json!(a.prompt_id);
        body["messageId"] = json!(a.message_id);
        body["status"] = json!(a.status);
    }
    Reply::ok(&body)
}
