//! The generic integration framework (anchor §2.1, fixed): connect a service, keep its data
//! in D1 with the sync engine, read it page by page. GitHub is the registered service; the
//! other names of the platform's type union answer a clear "unsupported".

pub mod engine;
pub mod framework;
pub mod github;

use serde::Deserialize;
use serde_json::{json, Value};
use worker::Env;

use crate::app::Ctx;
use crate::auth::Role;
use crate::credentials::ApiKeys;
use crate::crypto::{random_token, sha256_hex};
use crate::github::client::GitHub;
use crate::http::input::Input;
use crate::http::{success, ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};
use framework::{plan, Credentials, SyncError, FREQUENCIES, KNOWN_SERVICES};

/// Services that can be configured, with their entity types.
pub const REGISTERED: [(&str, &[&str]); 1] = [("github", &github::ENTITIES)];

pub fn supported(service: &str) -> Option<&'static [&'static str]> {
    REGISTERED.iter().find(|(s, _)| *s == service).map(|(_, e)| *e)
}

#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationRow {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub config: String,
    pub status: String,
    pub error_message: Option<String>,
    pub last_synced_at: Option<String>,
    pub scope: String,
    pub created_at: String,
    pub updated_at: String,
}

impl IntegrationRow {
    fn config(&self) -> Value {
        serde_json::from_str(&self.config).unwrap_or(json!({}))
    }

    fn view(&self, caller: &str) -> Value {
        json!({
            "id": self.id, "service": self.service, "status": self.status, "scope": self.scope, "config": self.config(),
            "errorMessage": self.error_message, "lastSyncedAt": self.last_synced_at.as_deref().map(normalize),
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at), "owned": self.user_id == caller,
        })
    }
}

/// The entity types a configured integration syncs (all supported ones when none are listed).
pub fn configured_plan(row: &IntegrationRow) -> Result<Vec<String>, String> {
    let requested: Vec<String> = row.config()["entities"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    plan(&requested, supported(&row.service).unwrap_or(&[]))
}

/// The service's credentials, from the owner's `API_KEYS` object.
pub async fn load_credentials(env: &Env, row: &IntegrationRow) -> ApiResult<Credentials> {
    Ok(ApiKeys::for_user(env, &row.user_id).retrieve(&row.service).await?.credentials)
}

fn client(env: &Env, creds: &Credentials) -> ApiResult<GitHub> {
    let token = github::token(creds)
        .ok_or_else(|| ApiError::new(400, "INVALID_CREDENTIALS", "Invalid credentials provided"))?;
    Ok(GitHub::new(&crate::github::api_url(env), token))
}

/// The caller's own integration (`write`), or also an org-scope one (`read`); else 404.
async fn find(ctx: &Ctx, write: bool) -> ApiResult<IntegrationRow> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let id = ctx.params.get("id");
    let row: Option<IntegrationRow> = crate::q!(
        &db,
        "SELECT * FROM integrations WHERE id = ?1 AND (user_id = ?2 OR (?3 AND scope = 'org'))",
        &id,
        &caller.id,
        &!write
    )?
    .first(None)
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("Integration with id '{id}' not found")))
}

/// `GET /api/integrations` → own integrations, then org-scope ones of others.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let rows: Vec<IntegrationRow> = crate::q!(
        &db,
        "SELECT * FROM integrations WHERE user_id = ?1 OR scope = 'org'
          ORDER BY CASE WHEN user_id = ?1 THEN 0 ELSE 1 END, created_at DESC",
        &caller.id
    )?
    .all()
    .await?
    .results()?;
    Reply::ok(&json!({ "integrations": rows.iter().map(|r| r.view(&caller.id)).collect::<Vec<_>>() }))
}

/// `GET /api/integrations/available`.
pub async fn available(_ctx: &Ctx) -> ApiResult<Reply> {
    let services: Vec<Value> = REGISTERED
        .iter()
        .map(|(s, e)| json!({ "service": s, "supportedEntities": e, "oauth": *s == "github" }))
        .collect();
    Reply::ok(&json!({ "services": services }))
}

struct ConfigInput {
    frequency: String,
    entities: Vec<String>,
    filters: Option<Value>,
}

fn parse_config(input: &mut Input, service: Option<&str>, required: bool) -> Option<ConfigInput> {
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
    if let Some(ents) = service.and_then(supported) {
        if let Err(m) = plan(&entities, ents) {
            input.error("config.entities", m);
            return None;
        }
    }
    Some(ConfigInput { frequency, entities, filters: cfg.get("filters").cloned().filter(Value::is_object) })
}

fn config_json(c: &ConfigInput) -> Value {
    let mut v = json!({ "syncFrequency": c.frequency, "entities": c.entities });
    if let Some(f) = &c.filters {
        v["filters"] = f.clone();
    }
    v
}

/// Validates, tests and stores credentials, then creates (or, with `upsert`, updates) the row.
async fn connect(
    ctx: &Ctx,
    service: &str,
    creds: Credentials,
    config: Value,
    upsert: bool,
) -> ApiResult<IntegrationRow> {
    let caller = ctx.caller()?;
    github::validate_credentials(&creds)
        .map_err(|_| ApiError::new(400, "INVALID_CREDENTIALS", "Invalid credentials provided"))?;
    let gh = client(&ctx.env, &creds)?;
    match github::test_connection(&gh).await {
        Ok(_) => {}
        Err(SyncError::RateLimited(s)) => {
            return Err(ApiError::new(429, "RATE_LIMITED", "GitHub rate limit exceeded; retry later")
                .with_header("Retry-After", s.to_string()))
        }
        Err(_) => return Err(ApiError::new(400, "INTEGRATION_AUTH_FAILED", "Failed to connect to service")),
    }
    let db = ctx.db()?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = iso(ctx.now);
    let sql = if upsert {
        "INSERT INTO integrations (id, user_id, service, config, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)
         ON CONFLICT(user_id, service) DO UPDATE SET status = 'active', error_message = NULL, updated_at = excluded.updated_at"
    } else {
        "INSERT INTO integrations (id, user_id, service, config, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)
         ON CONFLICT DO NOTHING"
    };
    let r = crate::q!(&db, sql, &id, &caller.id, &service, &config.to_string(), &now)?.run().await?;
    if crate::db::changes(&r)? == 0 {
        return Err(ApiError::conflict(
            "INTEGRATION_ALREADY_EXISTS",
            format!("Integration for {service} already exists"),
        ));
    }
    // Credentials go in after the row exists, so a refused duplicate never overwrites them.
    let scopes: Vec<String> = config["entities"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if let Err(e) = ApiKeys::for_user(&ctx.env, &caller.id).store(service, creds, scopes, None).await {
        if !upsert {
            crate::q!(&db, "DELETE FROM integrations WHERE id = ?1", &id)?.run().await?;
        }
        return Err(e);
    }
    let row: Option<IntegrationRow> =
        crate::q!(&db, "SELECT * FROM integrations WHERE user_id = ?1 AND service = ?2", &caller.id, &service)?
            .first(None)
            .await?;
    row.ok_or_else(|| ApiError::internal("integration vanished"))
}

/// `POST /api/integrations` `{service, credentials, config}` → 201 `{integration}`.
pub async fn configure(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.body)?;
    let service = input.str("service", 1, 40);
    if !service.is_empty() && !KNOWN_SERVICES.contains(&service.as_str()) {
        input.error("service", format!("Expected one of: {}", KNOWN_SERVICES.join(", ")));
    }
    let creds: Credentials = input.str_map("credentials", 32, 16 * 1024).into_iter().collect();
    let config = parse_config(&mut input, Some(service.as_str()), true);
    input.finish()?;
    let exists: Option<Value> =
        crate::q!(&db, "SELECT id FROM integrations WHERE user_id = ?1 AND service = ?2", &caller.id, &service)?
            .first(None)
            .await?;
    if exists.is_some() {
        return Err(ApiError::conflict(
            "INTEGRATION_ALREADY_EXISTS",
            format!("Integration for {service} already exists"),
        ));
    }
    if supported(&service).is_none() {
        return Err(ApiError::new(400, "UNSUPPORTED_INTEGRATION", format!("Unsupported integration: {service}")));
    }
    let config = config.map(|c| config_json(&c)).unwrap_or(json!({}));
    let row = connect(ctx, &service, creds, config, false).await?;
    Reply::json(201, &json!({ "integration": row.view(&caller.id) }))
}

/// `GET /api/integrations/:id` (own, or org-scope).
pub async fn get(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    Reply::ok(&json!({ "integration": find(ctx, false).await?.view(&caller.id) }))
}

/// `PATCH /api/integrations/:id` `{config?, status?: "active", scope?}`: reactivation re-tests
/// the stored credentials first; `scope` is for admins.
pub async fn patch(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.body)?;
    let config = parse_config(&mut input, Some(row.service.as_str()), false);
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
        if github::test_connection(&client(&ctx.env, &creds)?).await.is_err() {
            return Err(ApiError::new(400, "INTEGRATION_AUTH_FAILED", "Failed to connect to service"));
        }
    }
    let db = ctx.db()?;
    crate::q!(
        &db,
        "UPDATE integrations SET config = COALESCE(?1, config), status = COALESCE(?2, status),
           error_message = CASE WHEN ?2 IS NULL THEN error_message ELSE NULL END, scope = COALESCE(?3, scope), updated_at = ?4
         WHERE id = ?5",
        &config.as_ref().map(|c| config_json(c).to_string()),
        &status.map(|_| "active"),
        &scope,
        &iso(ctx.now),
        &row.id
    )?
    .run()
    .await?;
    let updated: IntegrationRow = crate::q!(&db, "SELECT * FROM integrations WHERE id = ?1", &row.id)?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::internal("vanished"))?;
    Reply::ok(&json!({ "integration": updated.view(&caller.id) }))
}

/// `DELETE /api/integrations/:id` → `{success: true}` (credentials revoked, entities removed).
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, true).await?;
    ApiKeys::for_user(&ctx.env, &row.user_id).revoke(&row.service).await?;
    crate::q!(&db, "DELETE FROM integrations WHERE id = ?1", &row.id)?.run().await?;
    Reply::ok(&success())
}

/// `POST /api/integrations/:id/sync` `{entities?, fullSync?}` → 202 `{syncId, status: "started"}`.
pub async fn sync(ctx: &Ctx) -> ApiResult<Reply> {
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.body)?;
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
    let plan = match entities {
        Some(e) => plan(&e, supported(&row.service).unwrap_or(&[])),
        None => configured_plan(&row),
    }
    .map_err(|m| ApiError::invalid_field("entities", &m))?;
    let db = ctx.db()?;
    let log = engine::start(&db, &row, plan, full, ctx.now).await?;
    let env = ctx.env.clone();
    let run_id = log.clone();
    ctx.wctx.wait_until(async move {
        if let Err(e) = engine::run(&env, &run_id).await {
            crate::config::log_error(&format!("sync {run_id} failed: {}", e.message));
        }
    });
    Reply::json(202, &json!({ "syncId": log, "status": "started" }))
}

#[derive(Deserialize)]
struct LogView {
    id: String,
    integration_id: String,
    status: String,
    full_sync: i64,
    current_entity: Option<String>,
    records_synced: i64,
    requests_made: i64,
    invocations: i64,
    errors: Option<String>,
    started_at: String,
    resume_at: Option<String>,
    completed_at: Option<String>,
}

/// `GET /api/integrations/:id/sync/:syncId` → the run with its progress.
pub async fn sync_status(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, false).await?;
    let sync_id = ctx.params.get("syncId");
    let log: LogView =
        crate::q!(&db, "SELECT * FROM sync_logs WHERE id = ?1 AND integration_id = ?2", &sync_id, &row.id)?
            .first(None)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("Sync with id '{sync_id}' not found")))?;
    let errors: Value = log.errors.as_deref().and_then(|e| serde_json::from_str(e).ok()).unwrap_or(json!([]));
    let mut body = json!({
        "id": log.id, "integrationId": log.integration_id, "status": log.status, "fullSync": log.full_sync != 0,
        "progress": log.records_synced, "currentEntity": log.current_entity, "requestsMade": log.requests_made,
        "invocations": log.invocations, "resumeAt": log.resume_at, "startedAt": normalize(&log.started_at),
        "completedAt": log.completed_at.as_deref().map(normalize),
    });
    if let Some(done) = &log.completed_at {
        body["result"] = json!({ "success": log.status == "completed", "recordsSynced": log.records_synced, "errors": errors, "completedAt": normalize(done) });
    }
    Reply::ok(&body)
}

#[derive(Deserialize)]
struct EntityRow {
    external_id: String,
    data: String,
    first_seen_at: String,
    last_modified_at: String,
    deleted_at: Option<String>,
}

/// `GET /api/integrations/:id/entities/:type?limit&cursor&modifiedAfter&includeDeleted`.
pub async fn entities(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    use base64::Engine;
    let row = find(ctx, false).await?;
    let kind = ctx.params.get("type");
    if !supported(&row.service).unwrap_or(&[]).contains(&kind) {
        return Err(ApiError::invalid_field("type", &format!("Unsupported entity type '{kind}'")));
    }
    let limit = ctx.query.limit(100)?;
    let after = match ctx.query.get("cursor") {
        Some(c) => String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ApiError::invalid_field("cursor", "Invalid cursor"))?,
        )
        .map_err(|_| ApiError::invalid_field("cursor", "Invalid cursor"))?,
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
    let rows: Vec<EntityRow> = crate::q!(
        &db,
        "SELECT external_id, data, first_seen_at, last_modified_at, deleted_at FROM synced_entities
          WHERE integration_id = ?1 AND entity_type = ?2 AND external_id > ?3
            AND (?4 IS NULL OR last_modified_at > ?4) AND (?5 OR deleted_at IS NULL)
          ORDER BY external_id LIMIT ?6",
        &row.id,
        &kind,
        &after,
        &modified_after,
        &include_deleted,
        &(limit + 1)
    )?
    .all()
    .await?
    .results()?;
    let has_more = rows.len() > limit as usize;
    let items: Vec<Value> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let mut v: Value = serde_json::from_str(&r.data).unwrap_or(json!({}));
            v["id"] = json!(r.external_id);
            v["_sync"] = json!({ "firstSeenAt": r.first_seen_at, "lastModifiedAt": r.last_modified_at, "deleted": r.deleted_at.is_some(), "deletedAt": r.deleted_at });
            v
        })
        .collect();
    let mut body = json!({ "entities": items, "hasMore": has_more });
    if let (true, Some(last)) = (has_more, rows.get(limit as usize - 1)) {
        body["cursor"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&last.external_id));
    }
    Reply::ok(&body)
}

/// `POST /api/integrations/:id/fetch` `{entityType, externalId}` → the live entity (also stored).
pub async fn fetch(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.body)?;
    let kind = input.str("entityType", 1, 40);
    let id = input.str("externalId", 1, 300);
    input.finish()?;
    let gh = client(&ctx.env, &load_credentials(&ctx.env, &row).await?)?;
    let item = github::fetch(&gh, &kind, &id).await.map_err(sync_api_error)?;
    let entity: &str = if kind == "issues" {
        "issues"
    } else if kind == "pull_requests" {
        "pull_requests"
    } else {
        "repositories"
    };
    engine::store_items(&db, &row.id, &[(entity, item.clone())]).await?;
    let mut v = item.data.clone();
    v["id"] = json!(item.external_id);
    Reply::ok(&json!({ "entity": v }))
}

/// `POST /api/integrations/:id/push` `{entityType: "issues"|"comments", data}` → 201 `{result}`.
pub async fn push(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let row = find(ctx, true).await?;
    let mut input = Input::parse(&ctx.body)?;
    let kind = input.str("entityType", 1, 40);
    let data = input.opt_object("data").map(Value::Object);
    if data.is_none() {
        input.error("data", "Required");
    }
    input.finish()?;
    let gh = client(&ctx.env, &load_credentials(&ctx.env, &row).await?)?;
    let (_, item, result) = github::push(&gh, &kind, &data.unwrap_or_default()).await.map_err(sync_api_error)?;
    if let Some(item) = item {
        engine::store_items(&db, &row.id, &[("issues", item)]).await?;
    }
    Reply::json(201, &json!({ "result": result }))
}

fn sync_api_error(e: SyncError) -> ApiError {
    match e {
        SyncError::RateLimited(s) => ApiError::new(429, "RATE_LIMITED", "GitHub rate limit exceeded; retry later")
            .with_header("Retry-After", s.to_string()),
        SyncError::Auth(m) => ApiError::new(400, "INTEGRATION_AUTH_FAILED", m),
        SyncError::Failed(m) if m.starts_with("GitHub answered 404") => ApiError::not_found("Not found on GitHub"),
        SyncError::Failed(m) if m.starts_with("GitHub") => ApiError::upstream(m),
        SyncError::Failed(m) => ApiError::new(400, "VALIDATION_ERROR", m),
    }
}

/// GitHub webhook deliveries update the entities of active GitHub integrations that hold the
/// delivery's repository.
pub async fn on_github_webhook(env: &Env, event: &str, payload: &Value) -> ApiResult<usize> {
    let items = github::webhook_items(event, payload);
    let Some(repo_id) = payload["repository"]["id"].as_i64().map(|i| i.to_string()) else { return Ok(0) };
    if items.is_empty() {
        return Ok(0);
    }
    let db = env.d1("DB")?;
    #[derive(Deserialize)]
    struct I {
        integration_id: String,
    }
    let holders: Vec<I> = crate::q!(
        &db,
        "SELECT e.integration_id FROM synced_entities e JOIN integrations i ON i.id = e.integration_id
          WHERE e.entity_type = 'repositories' AND e.external_id = ?1 AND e.deleted_at IS NULL AND i.service = 'github' AND i.status = 'active'",
        &repo_id
    )?
    .all()
    .await?
    .results()?;
    for h in &holders {
        engine::store_items(&db, &h.integration_id, &items).await?;
    }
    Ok(holders.len())
}

/// Allowed OAuth `redirect_uri`s: the frontend's and this worker's own origins.
fn redirect_allowed(ctx: &Ctx, uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else { return false };
    let origin = u.origin().ascii_serialization();
    [crate::config::var(&ctx.env, "FRONTEND_URL"), Some(crate::github::oauth::public_origin(ctx))]
        .into_iter()
        .flatten()
        .filter_map(|o| url::Url::parse(&o).ok())
        .any(|o| o.origin().ascii_serialization() == origin)
}

/// `GET /api/integrations/:service/oauth?redirect_uri=` → `{url, state}`; the state is stored
/// server-side, bound to the caller, single use, 10 minutes.
pub async fn oauth_start(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let service = ctx.params.get("service");
    if service != "github" {
        return Err(ApiError::new(400, "VALIDATION_ERROR", format!("OAuth not supported for {service}")));
    }
    let redirect = ctx
        .query
        .get("redirect_uri")
        .ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", "redirect_uri is required"))?;
    if !redirect_allowed(ctx, redirect) {
        return Err(ApiError::invalid_field("redirect_uri", "Must be on FRONTEND_URL or this service's origin"));
    }
    let client_id = crate::config::var(&ctx.env, "GITHUB_CLIENT_ID")
        .ok_or_else(|| ApiError::new(503, "OAUTH_NOT_CONFIGURED", "GitHub OAuth is not configured"))?;
    let state = random_token::<32>();
    crate::q!(
        &db,
        "INSERT INTO oauth_states (state_hash, purpose, user_id, redirect_uri, expires_at, created_at) VALUES (?1, 'integration:github', ?2, ?3, ?4, ?5)",
        &sha256_hex(state.as_bytes()),
        &caller.id,
        &redirect,
        &iso(ctx.now + 600_000),
        &iso(ctx.now)
    )?
    .run()
    .await?;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "repo read:user")
        .append_pair("state", &state)
        .finish();
    Reply::ok(
        &json!({ "url": format!("{}/login/oauth/authorize?{q}", crate::github::web_url(&ctx.env)), "state": state }),
    )
}

/// `POST /api/integrations/:service/oauth/callback` `{code, state, redirect_uri}` → `{integration}`:
/// the code is exchanged here and the credentials stored; no token goes back to the client.
pub async fn oauth_callback(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let caller = ctx.caller()?;
    let service = ctx.params.get("service").to_string();
    if service != "github" {
        return Err(ApiError::new(400, "VALIDATION_ERROR", format!("OAuth not supported for {service}")));
    }
    let mut input = Input::parse(&ctx.body)?;
    let code = input.str("code", 1, 500);
    let state = input.str("state", 1, 200);
    let redirect = input.str("redirect_uri", 1, 2000);
    input.finish()?;
    #[derive(Deserialize)]
    struct S {
        redirect_uri: String,
    }
    let consumed: Option<S> = crate::q!(
        &db,
        "DELETE FROM oauth_states WHERE state_hash = ?1 AND purpose = 'integration:github' AND user_id = ?2 AND expires_at > ?3 RETURNING redirect_uri",
        &sha256_hex(state.as_bytes()),
        &caller.id,
        &iso(ctx.now)
    )?
    .first(None)
    .await?;
    if consumed.filter(|s| s.redirect_uri == redirect).is_none() {
        return Err(ApiError::new(400, "INVALID_STATE", "Unknown, expired or already used OAuth state"));
    }
    let (id, secret) = match (
        crate::config::var(&ctx.env, "GITHUB_CLIENT_ID"),
        crate::config::var(&ctx.env, "GITHUB_CLIENT_SECRET"),
    ) {
        (Some(i), Some(s)) => (i, s),
        _ => return Err(ApiError::new(503, "OAUTH_NOT_CONFIGURED", "GitHub OAuth is not configured")),
    };
    let exchange = crate::outbound::Call::new(
        worker::Method::Post,
        format!("{}/login/oauth/access_token", crate::github::web_url(&ctx.env)),
    )
    .header("Accept", "application/json")
    .json_body(&json!({ "client_id": id, "client_secret": secret, "code": code, "redirect_uri": redirect }))
    .send()
    .await
    .map_err(|_| ApiError::upstream("GitHub token exchange failed"))?;
    let grant: Value = exchange.json().unwrap_or_default();
    let Some(token) = grant["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            400,
            "OAUTH_EXCHANGE_FAILED",
            format!("GitHub refused the code: {}", grant["error"].as_str().unwrap_or("no access token")),
        ));
    };
    let mut creds = Credentials::new();
    creds.insert("access_token".into(), token.to_string());
    if let Some(s) = grant["scope"].as_str() {
        creds.insert("scope".into(), s.to_string());
    }
    let row = connect(ctx, "github", creds, json!({ "syncFrequency": "hourly", "entities": [] }), true).await?;
    Reply::ok(&json!({ "integration": row.view(&caller.id) }))
}
