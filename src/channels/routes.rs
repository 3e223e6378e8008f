//! The channels API: binding management (`/api/channels/bindings`) and `POST /api/prompt`, which
//! routes a prompt to the session the caller's binding names, else to their orchestrator.

use serde_json::json;

use super::routing;
use super::scope::{scope_key, ChannelType};
use super::store::{self, owned_binding, BindingRow, Bound, Change, NewBinding, NotCreated, MAX_BINDINGS};
use crate::http::input::Input;
use crate::http::page::{page_body, PageQuery};
use crate::http::Ctx;
use crate::http::{success, ApiError, ApiResult, Reply};
use crate::sessions::agent::{PromptRequest, SessionAgent};
use crate::sessions::prompt::{parse_api_attachments, QueueMode, MAX_CONTENT_CHARS};
use crate::sessions::store::owned_session;
use crate::time::iso;

const MAX_DEBOUNCE_MS: i64 = 600_000;

/// `GET /api/channels/bindings?limit&cursor` → `{bindings, cursor?, hasMore}`.
pub async fn list_bindings(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = PageQuery::parse(&ctx.query, 100)?;
    let db = ctx.db()?;
    let rows = store::list(&db, &caller.id, &page).await?;
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
    let binding = NewBinding {
        id: &id,
        session_id: &session.id,
        channel_type: channel.as_str(),
        channel_id: &channel_id,
        scope_key: &key,
        user_id: &caller.id,
        queue_mode: mode.as_str(),
        collect_debounce_ms: debounce,
        now: &now,
    };
    match store::insert(&db, &binding).await? {
        Ok(()) => {}
        Err(NotCreated::Limit) => return Err(crate::http::limit_reached("channel bindings", MAX_BINDINGS)),
        Err(NotCreated::Exists) => {
            return Err(ApiError::conflict(
                "BINDING_EXISTS",
                "This channel is already bound; update or delete that binding instead",
            ))
        }
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
    let change = Change {
        queue_mode: mode.map(QueueMode::as_str),
        collect_debounce_ms: debounce,
        session_id: session_id.as_deref(),
    };
    store::update(&db, &caller.id, &binding.id, &change, &iso(ctx.now)).await?;
    let updated = owned_binding(&db, &caller.id, &binding.id).await?;
    Reply::ok(&json!({ "binding": updated.view() }))
}

/// `DELETE /api/channels/bindings/:id` → `{success: true}`.
pub async fn delete_binding(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let binding = owned_binding(&db, &caller.id, ctx.params.get("id")).await?;
    store::delete(&db, &caller.id, &binding.id).await?;
    Reply::ok(&success())
}

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
    let bound = match &key {
        Some(k) => store::bound(&db, k, &caller.id).await?,
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

    if let Some(b) = bound.filter(Bound::is_live) {
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

    let d = routing::dispatch_to_orchestrator(&ctx.env, &db, &caller.id, &req).await?;
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
