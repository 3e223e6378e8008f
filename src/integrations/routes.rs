//! The integrations API (the README's "API" table): connect, read, update,
//! disconnect, sync, entities, fetch/push, actions and OAuth. Every handler speaks to the
//! service behind an integration through `service::Service` only.

use serde_json::{json, Value};

use super::engine::plan;
use std::cell::RefCell;

use super::audit::{self, Via};
use super::data::{DataPlane, EntitiesRequest};
use super::registry::{self, KNOWN_SERVICES};
use super::service::{self, Conn, Credentials, Fixed, Service, ServiceError, OBTAINED_VIA};
use super::store::{self, credentials_key, load_credentials, IntegrationRow, MAX_INTEGRATIONS};
use super::sync_store::store_items;
use super::tokens::Stored;
use super::{oauth, realtime, runs, schema};
use crate::config::var;
use crate::credentials::ApiKeys;
use crate::crypto::{random_token, sha256_hex, Aad};
use crate::http::error::FieldError;
use crate::http::input::Input;
use crate::http::upstream::UpstreamError;
use crate::http::{success, ApiError, ApiResult, Caller, Ctx, Reply, Role};
use crate::outbound::Net;
use crate::time::{iso, normalize, now_ms, Millis};

/// Sync frequencies a configuration may ask for (`realtime`: webhook-driven, with an hourly
/// safety-net run).
pub const FREQUENCIES: [&str; 4] = ["realtime", "hourly", "daily", "manual"];

/// The caller's own integration (`write`), or also an org-scope one (read); else 404.
async fn find(ctx: &Ctx, write: bool) -> ApiResult<IntegrationRow> {
    store::find(&ctx.db()?, &ctx.caller()?.id, ctx.params.get("id"), write).await
}

/// A service's failure as an upstream error (the codes of the README's "API" section).
pub fn service_error(e: ServiceError, service: &str) -> ApiError {
    match e {
        ServiceError::RateLimited(s) => UpstreamError::RateLimited {
            message: format!("{service} rate limit exceeded; retry later"),
            retry_after: s,
        },
        ServiceError::Auth(m) => UpstreamError::Reconnect(format!("{m}; reconnect the account")),
        ServiceError::NotFound(m) => UpstreamError::NotFound(m),
        ServiceError::InvalidField { field, message } => UpstreamError::Invalid { field, message },
        ServiceError::Invalid(message) => UpstreamError::Invalid { field: String::new(), message },
        ServiceError::Refused { status, code, message } => UpstreamError::Refused { status, code, message },
        ServiceError::Upstream { status, message } => UpstreamError::failed_with_status(message, Some(status)),
        ServiceError::Transport(m) | ServiceError::CheckpointExpired(m) => UpstreamError::failed_with_status(m, None),
    }
    .into()
}

/// The integration's service and opened credentials, for one call.
async fn open(ctx: &Ctx, row: &IntegrationRow) -> ApiResult<(&'static dyn Service, Credentials)> {
    Ok((row.service()?, load_credentials(&ctx.env, row).await?))
}

/// A service call's outcome as the API answers it. A refusal of the credentials puts the
/// integration in `error`: its owner must reconnect.
async fn settle<T>(ctx: &Ctx, row: &IntegrationRow, service: &dyn Service, r: Result<T, ServiceError>) -> ApiResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(ServiceError::Auth(m)) => {
            let message = format!("{m}; reconnect the account");
            store::set_error(&ctx.db()?, &row.id, &message, ctx.now).await?;
            Err(ApiError::new(409, "RECONNECT_REQUIRED", message))
        }
        Err(e) => Err(service_error(e, service.name())),
    }
}

/// One integration as the API shows it, with its `realtime` status.
async fn view(db: &worker::D1Database, row: &IntegrationRow, caller: &str) -> ApiResult<Value> {
    let state = realtime::store::state(db, &row.id).await?;
    let mut v = row.view(caller);
    v["realtime"] = realtime::view(state.as_ref());
    Ok(v)
}

/// `GET /api/integrations` → own integrations, then org-scope ones of others.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let result = match ctx.take_prefetched() {
        Some(result) => result,
        None => store::list(&ctx.db()?, &caller.id).await?,
    };
    let rows: Vec<IntegrationRow> = result.results()?;
    Reply::ok(&json!({ "integrations": rows.iter().map(|r| r.view(&caller.id)).collect::<Vec<_>>() }))
}

/// `GET /api/integrations/available`: every registered service, its entities and actions.
pub async fn available(_ctx: &Ctx) -> ApiResult<Reply> {
    let services: Vec<Value> = registry::REGISTRY
        .iter()
        .map(|s| {
            json!({
                "service": s.name(), "supportedEntities": s.entities(),
                "actions": s.actions().iter().map(|a| a.name).collect::<Vec<_>>(), "oauth": s.oauth().is_some(),
            })
        })
        .collect();
    Reply::ok(&json!({ "services": services }))
}

struct ConfigInput {
    frequency: String,
    entities: Vec<String>,
    filters: Option<Value>,
}

fn parse_config(input: &mut Input, service: Option<&dyn Service>, required: bool) -> Option<ConfigInput> {
    let Some(cfg) = input.opt_object("config") else {
        if required {
            input.error("config", "Required");
        }
        return None;
    };
    let frequency = match cfg.get("syncFrequency") {
        None => "hourly".to_string(),
        Some(Value::String(f)) if FREQUENCIES.contains(&f.as_str()) => f.clone(),
        Some(_) => {
            input.error("config.syncFrequency", format!("Expected one of: {}", FREQUENCIES.join(", ")));
            return None;
        }
    };
    let entities: Vec<String> = match cfg.get("entities") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
        }
        Some(_) => {
            input.error("config.entities", "Expected an array of strings");
            return None;
        }
    };
    if let Some(s) = service {
        if let Err(m) = plan(&entities, s.entities()) {
            input.error("config.entities", m);
            return None;
        }
    }
    let filters = match cfg.get("filters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(given)) => {
            let problems = service.map(|s| filter_problems(s, given)).unwrap_or_default();
            if !problems.is_empty() {
                for (field, message) in problems {
                    input.error(&field, message);
                }
                return None;
            }
            Some(Value::Object(given.clone()))
        }
        Some(_) => {
            input.error("config.filters", "Expected an object");
            return None;
        }
    };
    Some(ConfigInput { frequency, entities, filters })
}

/// What is wrong with `config.filters` for `service`: `(field, message)` per entry it does not
/// honour (another service's, or none at all) or whose value has the wrong shape.
fn filter_problems(service: &dyn Service, given: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let known = service.filters();
    given
        .iter()
        .filter_map(|(name, value)| {
            let field = format!("config.filters.{name}");
            match known.iter().find(|f| f.name == name) {
                None if known.is_empty() => Some((field, format!("{} takes no filters", service.name()))),
                None => {
                    let names: Vec<&str> = known.iter().map(|f| f.name).collect();
                    Some((field, format!("Not a filter of {}; expected one of: {}", service.name(), names.join(", "))))
                }
                Some(f) => (f.check)(value).err().map(|m| (field, m)),
            }
        })
        .collect()
}

fn config_json(c: &ConfigInput) -> Value {
    let mut v = json!({ "syncFrequency": c.frequency, "entities": c.entities });
    if let Some(f) = &c.filters {
        v["filters"] = f.clone();
    }
    v
}

fn auth_failed() -> ApiError {
    ApiError::new(400, "INTEGRATION_AUTH_FAILED", "Failed to connect to service")
}

/// Tests credentials against the service (before anything is stored).
async fn check(ctx: &Ctx, service: &dyn Service, creds: &Credentials) -> ApiResult<Value> {
    check_with(ctx, service, creds, &Fixed(creds)).await
}

/// Tests credentials with their tokens (stored ones are refreshed when they have expired).
async fn check_with(
    ctx: &Ctx,
    service: &dyn Service,
    creds: &Credentials,
    tokens: &dyn service::Tokens,
) -> ApiResult<Value> {
    let conn = Conn { http: &Net, vars: &ctx.env, creds, tokens, now: ctx.now };
    match service.check(&conn).await {
        Ok(account) => Ok(account),
        Err(ServiceError::RateLimited(s)) => Err(service_error(ServiceError::RateLimited(s), service.name())),
        Err(ServiceError::Transport(m)) => Err(ApiError::upstream(format!("{} unreachable: {m}", service.name()))),
        Err(_) => Err(auth_failed()),
    }
}

/// Tests credentials, then creates (or, with `upsert`, reactivates) the row and stores the
/// credentials under the integration's own key. `upsert` is the OAuth callback's: its grant is
/// marked as obtained here (revoked at the provider when the integration is deleted).
async fn connect(
    ctx: &Ctx,
    service: &dyn Service,
    creds: Credentials,
    config: Value,
    upsert: bool,
) -> ApiResult<IntegrationRow> {
    let caller = ctx.caller()?;
    let mut creds = service
        .prepare_credentials(creds, ctx.now)
        .map_err(|m| ApiError::new(400, "INVALID_CREDENTIALS", format!("Invalid credentials provided: {m}")))?;
    creds.remove(OBTAINED_VIA);
    if upsert {
        creds.insert(OBTAINED_VIA.into(), "oauth".into());
    }
    // Credentials given directly may carry an expired access token and a refresh token.
    if let Some(spec) = service.oauth().filter(|o| o.refresh) {
        if crate::credentials::vault::needs_refresh(&creds, None, ctx.now / 1000) {
            let refresh = creds.get("refresh_token").cloned().unwrap_or_default();
            match oauth::refresh(&Net, spec, &ctx.env, &refresh, ctx.now / 1000).await {
                Ok(grant) => creds = crate::credentials::vault::merge_grant(&creds, grant),
                Err(oauth::GrantError::NotConfigured(v)) => return Err(not_configured(v, service.name())),
                Err(_) => return Err(auth_failed()),
            }
        }
    }
    check(ctx, service, &creds).await?;
    // The scopes the provider granted (Google: space-separated, GitHub: comma-separated).
    let scopes: Vec<String> = creds
        .get("scope")
        .map(|s| s.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    let granted = creds.contains_key("scope").then(|| json!(scopes).to_string());
    let db = ctx.db()?;
    let id = uuid::Uuid::new_v4().to_string();
    let row = store::insert(&db, &id, &caller.id, service.name(), &config, granted.as_deref(), ctx.now, upsert).await?;
    let Some(row) = row else {
        if !store::exists(&db, &caller.id, service.name()).await? {
            return Err(crate::http::limit_reached("integrations", MAX_INTEGRATIONS));
        }
        return Err(ApiError::conflict(
            "INTEGRATION_ALREADY_EXISTS",
            format!("Integration for {} already exists", service.name()),
        ));
    };
    // Credentials go in after the row exists, so a refused duplicate never overwrites them.
    if let Err(e) = ApiKeys::for_user(&ctx.env, &caller.id).store(&credentials_key(&row.id), creds, scopes, None).await
    {
        if row.id == id {
            store::delete(&db, &id).await?;
        }
        return Err(e);
    }
    Ok(row)
}

/// `POST /api/integrations` `{service, credentials, config}` → 201 `{integration}`.
pub async fn configure(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let name = input.str("service", 1, 40);
    if !name.is_empty() && !KNOWN_SERVICES.contains(&name.as_str()) {
        input.error("service", format!("Expected one of: {}", KNOWN_SERVICES.join(", ")));
    }
    let creds: Credentials = input.str_or_int_map("credentials", 32, 16 * 1024).into_iter().collect();
    let service = registry::find(&name);
    let config = parse_config(&mut input, service, true);
    input.finish()?;
    if store::exists(&db, &caller.id, &name).await? {
        return Err(ApiError::conflict("INTEGRATION_ALREADY_EXISTS", format!("Integration for {name} already exists")));
    }
    let service = service
        .ok_or_else(|| ApiError::new(400, "UNSUPPORTED_INTEGRATION", format!("Unsupported integration: {name}")))?;
    let config = config.map(|c| config_json(&c)).unwrap_or(json!({}));
    let row = connect(ctx, service, creds, config, false).await?;
    realtime::configured(&ctx.env, &row.id, &row.config(), Some(&ctx.public_origin()), ctx.now).await?;
    Reply::json(201, &json!({ "integration": view(&ctx.db()?, &row, &caller.id).await? }))
}

/// `GET /api/integrations/:id` (own, or org-scope).
pub async fn get(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = find(ctx, false).await?;
    // The object's database size and live entities (one call to it).
    let stats = match row.data_home.as_str() {
        "object" => DataPlane::new(&ctx.env, &row.id).stats().await?,
        _ => super::moving::legacy_stats(&ctx.db()?, &row.id).await?,
    };
    let mut view = view(&ctx.db()?, &row, &caller.id).await?;
    view["storage"] = json!({ "bytes": stats.bytes, "entities": stats.entities });
    Reply::ok(&json!({ "integration": view }))
}

/// `PATCH /api/integrations/:id` `{config?, status?: "active", scope?}`: reactivation re-tests
/// the stored credentials first; `scope` is for admins.
pub async fn patch(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = find(ctx, true).await?;
    let service = row.service()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let config = parse_config(&mut input, Some(service), false);
    let status = input.opt_enum("status", &["active"], |s| (s == "active").then_some(()));
    let scope = input.opt_enum("scope", &["user", "org"], |s| ["user", "org"].contains(&s).then(|| s.to_string()));
    if config.is_none() && status.is_none() && scope.is_none() && !input.has("config") {
        input.error("", "Nothing to update: give config, status or scope");
    }
    input.finish()?;
    if scope.is_some() && caller.role != Role::Admin {
        return Err(ApiError::admin_required());
    }
    if status.is_some() {
        let creds = load_credentials(&ctx.env, &row).await.map_err(|_| {
            ApiError::new(400, "INTEGRATION_AUTH_FAILED", "Stored credentials are unavailable; reconnect")
        })?;
        let current = RefCell::new(None);
        let tokens = Stored::new(&ctx.env, &row, service, &creds, None, &current, ctx.now);
        check_with(ctx, service, &creds, &tokens).await?;
    }
    let db = ctx.db()?;
    let change = store::Change {
        config: config.as_ref().map(|c| config_json(c).to_string()),
        status: status.map(|_| "active"),
        scope: scope.as_deref(),
    };
    let updated = store::update(&db, &row.id, &change, ctx.now).await?;
    let updated = updated.ok_or_else(|| ApiError::not_found("Integration not found"))?;
    realtime::configured(&ctx.env, &updated.id, &updated.config(), Some(&ctx.public_origin()), ctx.now).await?;
    Reply::ok(&json!({ "integration": view(&db, &updated, &caller.id).await? }))
}

/// `DELETE /api/integrations/:id` → `{success: true}`: its own credentials revoked (a user's
/// credential of the same service name is left alone), its runs and entities removed, and a
/// grant obtained through OAuth revoked at the provider. The data drop and the revocation are
/// outbox rows written with the deletion: delivered through the queue and retried while the
/// provider is down (never in the way of the deletion itself).
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, true).await?;
    // The grant is read before the credentials go; unreadable credentials only cost the revocation.
    let grant = match load_credentials(&ctx.env, &row).await {
        Ok(creds) => oauth::obtained_here(&creds).then_some(creds),
        Err(e) if e.status == 404 => None,
        Err(e) => {
            crate::config::log_error(&format!(
                "integration {}: credentials unreadable ({}); its grant is not revoked at the provider",
                row.id, e.code
            ));
            None
        }
    };
    let revoke = match (grant, row.service().ok().and_then(|s| s.oauth())) {
        (Some(creds), Some(spec)) => revocation(ctx, &db, &row, spec, &creds).await,
        _ => None,
    };
    // Push subscriptions are stopped while the credentials still exist.
    realtime::watch::stop_before_delete(&ctx.env, &row, ctx.now).await;
    ApiKeys::for_user(&ctx.env, &row.user_id).revoke(&credentials_key(&row.id)).await?;
    let batch = store::delete_with_data(&db, &row.id, revoke, ctx.now).await?;
    if let Err(e) = crate::jobs::send(&ctx.env, &crate::jobs::Job::Outbox { batch }, 0).await {
        crate::config::log_error(&format!(
            "integration {}: data drop not enqueued ({}); the cron will",
            row.id, e.message
        ));
    }
    Reply::ok(&success())
}

/// The outbox payload that revokes a deleted integration's grant (its credentials sealed to
/// that row), unless another of the user's integrations was connected through the same OAuth
/// client (Gmail and Calendar share Google's): revoking would disconnect it too.
async fn revocation(
    ctx: &Ctx,
    db: &worker::D1Database,
    row: &IntegrationRow,
    spec: &'static service::OAuth,
    creds: &Credentials,
) -> Option<String> {
    let listed = store::list(db, &row.user_id).await;
    let others = match listed.and_then(|r| -> ApiResult<Vec<IntegrationRow>> { Ok(r.results()?) }) {
        Ok(rows) => rows,
        Err(e) => {
            crate::config::log_error(&format!("integration {}: grant not revoked ({})", row.id, e.code));
            return None;
        }
    };
    let sharing = others.iter().filter(|o| o.user_id == row.user_id && o.id != row.id).find(|o| {
        registry::find(&o.service).and_then(|s| s.oauth()).is_some_and(|other| oauth::same_client(spec, other))
    });
    if let Some(other) = sharing {
        crate::config::log_error(&format!(
            "integration {}: its {} grant is kept (integration {} uses the same OAuth client)",
            row.id, spec.display, other.id
        ));
        return None;
    }
    let keys = crate::config::keyring(&ctx.env).ok()?;
    // GitHub deletes every token of the app's authorization: the user's sign-in token (same
    // OAuth app) would go with it, and their repositories routes with it.
    if matches!(spec.revoke, Some(service::Revocation::GitHubGrant { .. })) {
        let signed_in = crate::github::token::load_with(db, &keys, &row.user_id).await.ok().flatten();
        if signed_in.is_some_and(|t| !oauth::personal_token(&t)) {
            crate::config::log_error(&format!(
                "integration {}: its GitHub grant is kept (the user's sign-in token belongs to it)",
                row.id
            ));
            return None;
        }
    }
    let plain = serde_json::to_string(creds).ok()?;
    let sealed = keys.seal_str(&Aad { purpose: crate::outbox::REVOKE_GRANT_PURPOSE, owner: &row.id }, &plain);
    serde_json::to_string(&crate::outbox::RevokeGrant { service: row.service.clone(), sealed }).ok()
}

/// `POST /api/integrations/:id/sync` `{entities?, fullSync?}` → 202 `{syncId, status: "started"}`:
/// the run is queued; its slices run in queue consumers.
pub async fn sync(ctx: &Ctx) -> ApiResult<Reply> {
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let entities = input.opt_str_list("entities", 20, 40);
    let full = input.opt_bool("fullSync").unwrap_or(false);
    input.finish()?;
    if row.status != "active" {
        return Err(ApiError::new(
            400,
            "INTEGRATION_NOT_ACTIVE",
            "Integration is not active; PATCH it with status \"active\" after fixing the cause",
        ));
    }
    let service = row.service()?;
    let plan = match entities {
        Some(e) => plan(&e, service.entities()),
        None => row.plan(),
    }
    .map_err(|m| ApiError::invalid_field("entities", &m))?;
    let id = runs::start(&ctx.env, &row, plan, full, ctx.now).await?;
    Reply::json(202, &json!({ "syncId": id, "status": "started" }))
}

/// `GET /api/integrations/:id/sync/:syncId` → the run with its progress.
pub async fn sync_status(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, false).await?;
    let sync_id = ctx.params.get("syncId");
    let log = runs::find_log(&db, &row.id, sync_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Sync with id '{sync_id}' not found")))?;
    Reply::ok(&run_view(&log))
}

/// `GET /api/integrations/:id/syncs?limit&cursor` → the integration's run log, newest first
/// (each run as its status route shows it).
pub async fn sync_history(ctx: &Ctx) -> ApiResult<Reply> {
    let page = crate::http::page::PageQuery::parse(&ctx.query, 20)?;
    let row = find(ctx, false).await?;
    let logs = runs::list_logs(&ctx.db()?, &row.id, &page).await?;
    Reply::ok(&crate::http::page::page_body("syncs", &logs, page.limit, run_view))
}

/// A run as the status and history routes show it.
fn run_view(log: &runs::LogView) -> Value {
    let parse =
        |t: &Option<String>| t.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()).unwrap_or(json!([]));
    let errors = parse(&log.errors);
    let mut body = json!({
        "id": log.id, "integrationId": log.integration_id, "status": log.status, "fullSync": log.full_sync != 0,
        "progress": log.records_synced, "currentEntity": log.current_entity, "requestsMade": log.requests_made,
        "invocations": log.invocations, "resumeAt": log.resume_at, "startedAt": normalize(&log.started_at),
        "completedAt": log.completed_at.as_deref().map(normalize), "notes": parse(&log.notes), "lastError": log.last_error,
    });
    if let Some(done) = &log.completed_at {
        body["result"] = json!({ "success": log.status == "completed", "recordsSynced": log.records_synced, "errors": errors, "completedAt": normalize(done) });
    }
    body
}

/// `GET /api/integrations/:id/entities/:type?limit&cursor&modifiedAfter&includeDeleted`.
pub async fn entities(ctx: &Ctx) -> ApiResult<Reply> {
    use base64::Engine;
    let db = ctx.db()?;
    let row = find(ctx, false).await?;
    let kind = ctx.params.get("type");
    if !row.service()?.entities().contains(&kind) {
        return Err(ApiError::invalid_field("type", &format!("Unsupported entity type '{kind}'")));
    }
    let limit = ctx.query.limit(100)?;
    let bad_cursor = || ApiError::invalid_field("cursor", "Invalid cursor");
    let after = match ctx.query.get("cursor") {
        Some(c) => {
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad_cursor())?)
                .map_err(|_| bad_cursor())?
        }
        None => String::new(),
    };
    let modified_after = match ctx.query.get("modifiedAfter") {
        Some(m) => Some(
            crate::time::parse_iso(m)
                .map(iso)
                .ok_or_else(|| ApiError::invalid_field("modifiedAfter", "Expected an ISO 8601 timestamp"))?,
        ),
        None => None,
    };
    let include_deleted = ctx.query.get("includeDeleted") != Some("false");
    let rows = match row.data_home.as_str() {
        "object" => {
            let req =
                EntitiesRequest { entity: kind.to_string(), after, modified_after, include_deleted, limit: limit + 1 };
            DataPlane::new(&ctx.env, &row.id).entities(&req).await?.rows
        }
        _ => {
            let (after, modified_after) = (after.as_str(), modified_after.as_deref());
            super::moving::legacy_entities(&db, &row.id, kind, after, modified_after, include_deleted, limit + 1)
                .await?
        }
    };
    let has_more = rows.len() > limit as usize;
    let items: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let mut v: Value = serde_json::from_str(&r.data).unwrap_or(json!({}));
            // The entity's own id when its data has one (an event's id, keyed by calendar and id),
            // else its external id.
            if v.get("id").is_none_or(|id| !id.is_string()) {
                v["id"] = json!(r.external_id);
            }
            v["_sync"] = json!({ "externalId": r.external_id, "firstSeenAt": r.first_seen_at, "lastModifiedAt": r.last_modified_at, "deleted": r.deleted_at.is_some(), "deletedAt": r.deleted_at });
            v
        })
        .collect();
    let mut body = json!({ "entities": items, "hasMore": has_more });
    if let (true, Some(last)) = (has_more, rows.get(limit as usize - 1)) {
        body["cursor"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&last.external_id));
    }
    Reply::ok(&body)
}

/// `GET /api/integrations/:id/search?q&type&limit&cursor` → `{results: [{type, externalId,
/// title, snippet, modifiedAt}], cursor?, hasMore}`: the synced entities this integration
/// holds (readable as its entities are: owner, or anyone for org scope), best match first.
pub async fn search(ctx: &Ctx) -> ApiResult<Reply> {
    let row = find(ctx, false).await?;
    let kind = ctx.query.get("type");
    if let Some(k) = kind {
        if !row.service()?.entities().contains(&k) {
            return Err(ApiError::invalid_field("type", &format!("Unsupported entity type '{k}'")));
        }
    }
    let limit = ctx.query.limit(super::search::DEFAULT_LIMIT)?;
    let p = super::search::params(ctx.query.get("q"), kind, limit, ctx.query.get("cursor"))?;
    Reply::ok(&super::search::run(&ctx.env, std::slice::from_ref(&row), &p, false).await?)
}

/// `POST /api/integrations/:id/fetch` `{entityType, externalId}` → the live entity (also stored).
pub async fn fetch(ctx: &Ctx) -> ApiResult<Reply> {
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let kind = input.str("entityType", 1, 40);
    let id = input.str("externalId", 1, 300);
    input.finish()?;
    let (service, creds) = open(ctx, &row).await?;
    let current = RefCell::new(None);
    let tokens = Stored::new(&ctx.env, &row, service, &creds, None, &current, ctx.now);
    let conn = Conn { http: &Net, vars: &ctx.env, creds: &creds, tokens: &tokens, now: ctx.now };
    let fetched = service.fetch(&conn, &kind, &id).await;
    let (entity, item) = settle(ctx, &row, service, fetched).await?;
    store_items(&ctx.env, &row.id, &[(entity, item.clone())]).await?;
    let mut v = item.data;
    v["id"] = json!(item.external_id);
    Reply::ok(&json!({ "entity": v }))
}

/// `POST /api/integrations/:id/push` `{entityType, data}` → 201 `{result}`: the action behind
/// that entity type (GitHub: `issues` → `create_issue`, `comments` → `comment`).
pub async fn push(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let kind = input.str("entityType", 1, 40);
    let data = input.opt_object("data").map(Value::Object);
    if data.is_none() {
        input.error("data", "Required");
    }
    input.finish()?;
    let action = row
        .service()?
        .push_action(&kind)
        .ok_or_else(|| ApiError::invalid_field("entityType", &format!("push is not supported for {kind}")))?;
    let result = invoke(ctx, caller, Via::Rest, &row, action, &data.unwrap_or_default()).await?;
    Reply::json(201, &json!({ "result": result }))
}

/// `GET /api/integrations/:id/actions` → `{actions: [{name, description, params}]}`.
pub async fn actions(ctx: &Ctx) -> ApiResult<Reply> {
    let row = find(ctx, false).await?;
    let list: Vec<Value> = row
        .service()?
        .actions()
        .iter()
        .map(|a| json!({ "name": a.name, "description": a.description, "params": serde_json::from_str::<Value>(a.params).unwrap_or(Value::Null) }))
        .collect();
    Reply::ok(&json!({ "actions": list }))
}

/// `POST /api/integrations/:id/actions/:name` with the parameters as the body → `{result}`.
pub async fn act(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = find(ctx, false).await?;
    let params = if ctx.raw_body().iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice::<Value>(&ctx.raw_body()).map_err(|_| ApiError::invalid_json())?
    };
    let result = invoke(ctx, caller, Via::Rest, &row, ctx.params.get("name"), &params).await?;
    Reply::ok(&json!({ "result": result }))
}

/// Runs an action for `caller` (the HTTP route, `push` and the MCP server share this) and
/// records the run in the audit trail, whatever its outcome.
pub async fn invoke(
    ctx: &Ctx,
    caller: &Caller,
    via: Via,
    row: &IntegrationRow,
    name: &str,
    params: &Value,
) -> ApiResult<Value> {
    let started = now_ms();
    let result = run_action(ctx, &caller.id, row, name, params).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    let entry = audit::Entry {
        caller,
        via,
        integration_id: &row.id,
        service: &row.service,
        action: name,
        outcome,
        started,
        ended: now_ms(),
    };
    audit::record(ctx, &entry).await;
    result
}

/// One action run: the schema is checked, write actions on another user's org-scope
/// integration answer like a missing integration, the touched entities are stored.
async fn run_action(ctx: &Ctx, caller: &str, row: &IntegrationRow, name: &str, params: &Value) -> ApiResult<Value> {
    let service = row.service()?;
    let action =
        service.actions().iter().find(|a| a.name == name).ok_or_else(|| {
            ApiError::new(404, "ACTION_NOT_FOUND", format!("{} has no action '{name}'", service.name()))
        })?;
    if action.write && row.user_id != caller {
        return Err(ApiError::not_found(format!("Integration with id '{}' not found", row.id)));
    }
    let schema: Value =
        serde_json::from_str(action.params).map_err(|e| ApiError::internal(format!("schema of {name}: {e}")))?;
    let violations = schema::validate(&schema, params);
    if !violations.is_empty() {
        return Err(ApiError::validation(
            violations.into_iter().map(|v| FieldError { field: v.field, message: v.message }).collect(),
        ));
    }
    match row.status.as_str() {
        "active" => {}
        "error" => {
            return Err(ApiError::new(
                409,
                "RECONNECT_REQUIRED",
                row.error_message.clone().unwrap_or_else(|| "The account must be reconnected".into()),
            ))
        }
        other => return Err(ApiError::new(409, "INTEGRATION_NOT_ACTIVE", format!("The integration is {other}"))),
    }
    // A consent that left out a scope the action needs would fail at the provider (403):
    // say which one, before calling it. Credentials given without a scope are not checked.
    if let Some(granted) = row.granted_scopes() {
        let missing = service::missing_scopes(service.required_scopes(name), &granted);
        if let Some(first) = missing.first() {
            return Err(ApiError::new(
                403,
                "SCOPE_MISSING",
                format!(
                    "{name} needs the {} scope, which this connection was not granted; reconnect and allow it",
                    first[0]
                ),
            )
            .with_details(json!({ "missing": missing.iter().map(|g| g[0]).collect::<Vec<_>>(), "anyOf": missing })));
        }
    }
    let creds = load_credentials(&ctx.env, row).await?;
    let current = RefCell::new(None);
    let tokens = Stored::new(&ctx.env, row, service, &creds, None, &current, ctx.now);
    let conn = Conn { http: &Net, vars: &ctx.env, creds: &creds, tokens: &tokens, now: ctx.now };
    let acted = service.act(&conn, name, params).await;
    let outcome = settle(ctx, row, service, acted).await?;
    if !outcome.items.is_empty() {
        store_items(&ctx.env, &row.id, &outcome.items).await?;
    }
    Ok(outcome.result)
}

/// Allowed OAuth `redirect_uri`s: the frontend's and this worker's own origins.
fn redirect_allowed(ctx: &Ctx, uri: &str) -> bool {
    let Ok(u) = crate::http::parse_url(uri) else { return false };
    let origin = u.origin().ascii_serialization();
    [var(&ctx.env, "FRONTEND_URL"), Some(ctx.public_origin())]
        .into_iter()
        .flatten()
        .filter_map(|o| crate::http::parse_url(&o).ok())
        .any(|o| o.origin().ascii_serialization() == origin)
}

fn oauth_service(ctx: &Ctx) -> ApiResult<(&'static dyn Service, &'static service::OAuth)> {
    let name = ctx.params.get("service");
    registry::find(name)
        .and_then(|s| s.oauth().map(|o| (s, o)))
        .ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", format!("OAuth not supported for {name}")))
}

fn encryption_key(ctx: &Ctx) -> ApiResult<String> {
    var(&ctx.env, "ENCRYPTION_KEY").ok_or_else(ApiError::encryption_not_configured)
}

fn not_configured(var: &str, service: &str) -> ApiError {
    ApiError::new(503, "OAUTH_NOT_CONFIGURED", format!("{service} OAuth is not configured ({var})"))
}

const STATE_TTL_MS: Millis = 10 * 60 * 1000;

/// `GET /api/integrations/:service/oauth?redirect_uri=` → `{url, state}`; the state is stored
/// server-side, bound to the caller, single use, 10 minutes; PKCE S256.
pub async fn oauth_start(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let (service, spec) = oauth_service(ctx)?;
    let redirect = ctx.query.get("redirect_uri").ok_or_else(|| ApiError::invalid_field("redirect_uri", "Required"))?;
    if !redirect_allowed(ctx, redirect) {
        return Err(ApiError::invalid_field("redirect_uri", "Must be on FRONTEND_URL or this service's origin"));
    }
    let state = random_token::<32>();
    let challenge = oauth::pkce_challenge(&oauth::pkce_verifier(&encryption_key(ctx)?, &state));
    let url = oauth::authorize_url(spec, &ctx.env, redirect, &state, &challenge).map_err(|e| match e {
        oauth::GrantError::NotConfigured(v) => not_configured(v, service.name()),
        _ => ApiError::internal("authorize url"),
    })?;
    let purpose = format!("integration:{}", service.name());
    let hash = sha256_hex(state.as_bytes());
    store::save_oauth_state(&ctx.db()?, &hash, &purpose, &caller.id, redirect, ctx.now + STATE_TTL_MS, ctx.now).await?;
    Reply::ok(&json!({ "url": url, "state": state }))
}

/// `POST /api/integrations/:service/oauth/callback` `{code, state, redirect_uri}` → `{integration}`:
/// the code is exchanged here and the credentials stored; no token goes back to the client.
pub async fn oauth_callback(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let (service, spec) = oauth_service(ctx)?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let code = input.str("code", 1, 2000);
    let state = input.str("state", 1, 200);
    let redirect = input.str("redirect_uri", 1, 2000);
    input.finish()?;
    let purpose = format!("integration:{}", service.name());
    let consumed =
        store::take_oauth_state(&ctx.db()?, &sha256_hex(state.as_bytes()), &purpose, &caller.id, ctx.now).await?;
    if consumed.filter(|uri| *uri == redirect).is_none() {
        return Err(ApiError::new(400, "INVALID_STATE", "Unknown, expired or already used OAuth state"));
    }
    let verifier = oauth::pkce_verifier(&encryption_key(ctx)?, &state);
    let creds = oauth::exchange(&Net, spec, &ctx.env, &code, &redirect, &verifier, ctx.now / 1000).await.map_err(
        |e| match e {
            oauth::GrantError::NotConfigured(v) => not_configured(v, service.name()),
            oauth::GrantError::Refused { error, .. } => {
                ApiError::new(400, "OAUTH_EXCHANGE_FAILED", format!("{} refused the code: {error}", service.name()))
            }
            oauth::GrantError::Unavailable(m) => {
                ApiError::upstream(format!("{} token exchange failed: {m}", service.name()))
            }
        },
    )?;
    let row = connect(ctx, service, creds, json!({ "syncFrequency": "hourly", "entities": [] }), true).await?;
    realtime::configured(&ctx.env, &row.id, &row.config(), Some(&ctx.public_origin()), ctx.now).await?;
    Reply::ok(&json!({ "integration": view(&ctx.db()?, &row, &caller.id).await? }))
}

/// `GET /api/search?q&type&limit&cursor` → `{results: [{integrationId, type, externalId, title,
/// snippet, modifiedAt}], cursor?, hasMore}`: every integration the caller may read (their own
/// and the organization's), searched in parallel and merged by rank.
pub async fn search_all(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let rows: Vec<IntegrationRow> = store::list(&ctx.db()?, &caller.id).await?.results()?;
    let limit = ctx.query.limit(super::search::DEFAULT_LIMIT)?;
    let p = super::search::params(ctx.query.get("q"), ctx.query.get("type"), limit, ctx.query.get("cursor"))?;
    Reply::ok(&super::search::run(&ctx.env, &rows, &p, true).await?)
}

/// `GET /api/admin/data-plane` → `{remaining, moving}`: integrations whose data is still being
/// copied out of D1 (admin).
pub async fn data_plane(ctx: &Ctx) -> ApiResult<Reply> {
    Reply::ok(&super::moving::remaining(&ctx.db()?).await?)
}
