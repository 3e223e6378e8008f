//! Slack as a channel (README, "Slack"): one Slack app per deployment, installed per workspace
//! through OAuth v2 (the bot token sealed per team); verified events acknowledged at once and
//! worked through the queue (`events`); Slack people linked to users with one-time codes;
//! replies in threads as mrkdwn (`reply`, `mrkdwn`).

pub mod api;
pub mod events;
pub mod ids;
pub mod mrkdwn;
pub mod reply;

use crate::db::{Batch as _, Query as _};
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use crate::config::{self, log_error, var};
use crate::crypto::{random_token, sha256_hex, Aad, Legacy};
use crate::http::input::Input;
use crate::http::page::{encode_cursor, PageQuery};
use crate::http::{success, ApiError, ApiResult, Ctx, Reply};
use crate::time::{iso, normalize, Millis};
use api::Slack;
use ids::slack_id;

/// What the bot token is sealed for (the owner is the team id).
pub const PURPOSE: &str = "slack:bot";
/// The bot's scopes, as the install URL asks for them.
pub const SCOPES: [&str; 6] = ["app_mentions:read", "chat:write", "im:history", "im:read", "im:write", "users:read"];
const STATE_PURPOSE: &str = "slack:install";
const STATE_TTL_MS: Millis = 10 * 60 * 1000;
pub const LINK_CODE_TTL_MS: Millis = 15 * 60 * 1000;

pub fn api_base(env: &Env) -> String {
    config::base_url(env, "SLACK_API_URL", "https://slack.com/api")
}

fn oauth_url(env: &Env) -> String {
    config::base_url(env, "SLACK_OAUTH_URL", "https://slack.com/oauth/v2/authorize")
}

/// An installed workspace. Read from a JSON row (D1 rows are read as values here: one
/// deserializer in the Wasm for all of them, not one per row type).
#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    pub team_id: String,
    pub team_name: Option<String>,
    pub bot_user_id: Option<String>,
    pub app_id: Option<String>,
    pub bot_token_encrypted: String,
    pub scopes: String,
    pub installed_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub const WORKSPACE_COLUMNS: &str =
    "team_id, team_name, bot_user_id, app_id, bot_token_encrypted, scopes, installed_by, created_at, updated_at";

impl WorkspaceRow {
    pub fn from_row(v: &Value) -> Option<WorkspaceRow> {
        let text = |k: &str| v[k].as_str().map(str::to_string);
        Some(WorkspaceRow {
            team_id: text("team_id")?,
            team_name: text("team_name"),
            bot_user_id: text("bot_user_id"),
            app_id: text("app_id"),
            bot_token_encrypted: text("bot_token_encrypted")?,
            scopes: text("scopes").unwrap_or_default(),
            installed_by: text("installed_by"),
            created_at: text("created_at")?,
            updated_at: text("updated_at")?,
        })
    }

    fn view(&self) -> Value {
        json!({
            "teamId": self.team_id, "teamName": self.team_name, "botUserId": self.bot_user_id, "appId": self.app_id,
            "scopes": self.scopes.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            "installedBy": self.installed_by,
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at),
        })
    }
}

/// A Slack client for a workspace, its bot token opened (and re-sealed when stale).
pub async fn open_workspace(env: &Env, db: &D1Database, ws: &WorkspaceRow) -> ApiResult<Slack> {
    let keys = config::keyring(env)?;
    let aad = Aad { purpose: PURPOSE, owner: &ws.team_id };
    let (token, stale) = keys.open_str(&aad, &ws.bot_token_encrypted, Legacy::D1Column)?;
    if stale {
        crate::q!(
            db,
            "UPDATE slack_workspaces SET bot_token_encrypted = ?1 WHERE team_id = ?2",
            &keys.seal_str(&aad, &token),
            &ws.team_id
        )?
        .exec()
        .await?;
    }
    Ok(Slack::new(&api_base(env), &token))
}

pub async fn load_workspace(db: &D1Database, team: &str) -> ApiResult<Option<WorkspaceRow>> {
    let row: Option<Value> =
        crate::q!(db, &format!("SELECT {WORKSPACE_COLUMNS} FROM slack_workspaces WHERE team_id = ?1"), &team)?
            .one()
            .await?;
    Ok(row.as_ref().and_then(WorkspaceRow::from_row))
}

/// Removes a workspace and everything known about its people (links, codes, conversations).
pub async fn forget_workspace(db: &D1Database, team: &str) -> ApiResult<()> {
    db.batch_rows(vec![
        crate::q!(db, "DELETE FROM slack_workspaces WHERE team_id = ?1", &team)?,
        crate::q!(db, "DELETE FROM slack_links WHERE team_id = ?1", &team)?,
        crate::q!(db, "DELETE FROM slack_link_codes WHERE team_id = ?1", &team)?,
        crate::q!(db, "DELETE FROM slack_conversations WHERE team_id = ?1", &team)?,
    ])
    .await?;
    Ok(())
}

fn not_configured(what: &str) -> ApiError {
    ApiError::new(503, "SLACK_NOT_CONFIGURED", format!("Slack is not configured ({what})"))
}

fn redirect_uri(ctx: &Ctx) -> String {
    format!("{}/slack/oauth/callback", ctx.public_origin())
}

/// The authorize URL for an install: Slack's scopes are comma-separated.
pub fn install_url(base: &str, client_id: &str, redirect_uri: &str, state: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("scope", &SCOPES.join(","))
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

/// `GET /api/slack/install` (admin) → `{url}`: Slack's consent page for installing the app in
/// a workspace, with a single-use, 10-minute state stored here.
pub async fn install(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let client_id = var(&ctx.env, "SLACK_CLIENT_ID").ok_or_else(|| not_configured("SLACK_CLIENT_ID"))?;
    var(&ctx.env, "SLACK_CLIENT_SECRET").ok_or_else(|| not_configured("SLACK_CLIENT_SECRET"))?;
    let state = random_token::<32>();
    let redirect = redirect_uri(ctx);
    crate::q!(
        &ctx.db()?,
        "INSERT INTO oauth_states (state_hash, purpose, user_id, redirect_uri, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &sha256_hex(state.as_bytes()),
        &STATE_PURPOSE,
        &caller.id,
        &redirect,
        &iso(ctx.now + STATE_TTL_MS),
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Reply::ok(&json!({ "url": install_url(&oauth_url(&ctx.env), &client_id, &redirect, &state) }))
}

/// `GET /slack/oauth/callback?code&state` → 302 to `FRONTEND_URL/settings/slack?installed=<teamId>`
/// (the console's when `FRONTEND_URL` is unset),
/// or `…?error=<code>` (missing_params, invalid_state, access_denied, token_exchange_failed,
/// oauth_error).
pub async fn oauth_callback(ctx: &Ctx) -> ApiResult<Reply> {
    let front = ctx.frontend();
    let fail = |code: &str| Ok(Reply::redirect(&format!("{front}/settings/slack?error={code}")));
    let state = ctx.query.get("state").filter(|s| !s.is_empty() && s.len() <= 200);
    // Consuming the state row is the single-use check: a second callback finds nothing.
    // Rows are read as JSON values (one deserializer for all of them in the Wasm).
    let row: Option<Value> = match state {
        Some(s) => {
            crate::q!(
                &ctx.db()?,
                "DELETE FROM oauth_states WHERE state_hash = ?1 AND purpose = ?2 AND expires_at > ?3 RETURNING user_id, redirect_uri",
                &sha256_hex(s.as_bytes()),
                &STATE_PURPOSE,
                &iso(ctx.now)
            )?
            .one()
            .await?
        }
        None => None,
    };
    if let Some(err) = ctx.query.get("error") {
        return fail(if err == "access_denied" { "access_denied" } else { "oauth_error" });
    }
    let Some(code) = ctx.query.get("code").filter(|c| !c.is_empty() && c.len() <= 500) else {
        return fail("missing_params");
    };
    if state.is_none() {
        return fail("missing_params");
    }
    let Some(row) = row else { return fail("invalid_state") };
    match complete_install(ctx, code, &row).await {
        Ok(team) => {
            Ok(Reply::redirect(&format!("{front}/settings/slack?installed={}", crate::outbound::segment(&team))))
        }
        Err(code) => fail(code),
    }
}

/// The code exchange and the sealed install; each failure is the frontend's error code.
async fn complete_install(ctx: &Ctx, code: &str, state: &Value) -> Result<String, &'static str> {
    let (Some(id), Some(secret)) = (var(&ctx.env, "SLACK_CLIENT_ID"), var(&ctx.env, "SLACK_CLIENT_SECRET")) else {
        return Err("oauth_error");
    };
    let grant = Slack::new(&api_base(&ctx.env), "")
        .oauth_access(&id, &secret, code, state["redirect_uri"].as_str().unwrap_or_default())
        .await
        .map_err(|e| {
            log_error(&format!("slack install: {e}"));
            "token_exchange_failed"
        })?;
    let token = grant["access_token"].as_str().filter(|t| !t.is_empty() && t.len() <= 500);
    let team = grant["team"]["id"].as_str().filter(|t| slack_id(t));
    let (Some(token), Some(team)) = (token, team) else {
        log_error("slack install: oauth.v2.access answered without a bot token or team id");
        return Err("token_exchange_failed");
    };
    if grant["token_type"].as_str().is_some_and(|t| t != "bot") {
        return Err("token_exchange_failed");
    }
    let text =
        |v: &Value, max: usize| v.as_str().filter(|s| !s.is_empty()).map(|s| s.chars().take(max).collect::<String>());
    let stored = async {
        let keys = config::keyring(&ctx.env)?;
        let sealed = keys.seal_str(&Aad { purpose: PURPOSE, owner: team }, token);
        let now = iso(ctx.now);
        crate::q!(
            &ctx.db()?,
            "INSERT INTO slack_workspaces (team_id, team_name, bot_user_id, app_id, bot_token_encrypted, scopes, installed_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT(team_id) DO UPDATE SET team_name = excluded.team_name, bot_user_id = excluded.bot_user_id,
               app_id = excluded.app_id, bot_token_encrypted = excluded.bot_token_encrypted, scopes = excluded.scopes,
               installed_by = excluded.installed_by, updated_at = excluded.updated_at",
            &team,
            &text(&grant["team"]["name"], 200),
            &text(&grant["bot_user_id"], 40),
            &text(&grant["app_id"], 40),
            &sealed,
            &text(&grant["scope"], 1000).unwrap_or_default(),
            &state["user_id"].as_str(),
            &now
        )?
        .exec()
        .await?;
        Ok::<_, ApiError>(())
    };
    stored.await.map_err(|e| {
        log_error(&format!("slack install: storing the workspace failed: {}", e.message));
        "oauth_error"
    })?;
    Ok(team.to_string())
}

/// `GET /api/slack/workspaces?limit&cursor` (admin) → `{workspaces, hasMore, cursor?}` (no tokens).
pub async fn list_workspaces(ctx: &Ctx) -> ApiResult<Reply> {
    let page = PageQuery::parse(&ctx.query, 50)?;
    let rows: Vec<Value> = crate::q!(
        &ctx.db()?,
        &format!(
            "SELECT {WORKSPACE_COLUMNS} FROM slack_workspaces
              WHERE created_at < ?1 OR (created_at = ?1 AND ?2 <> '' AND team_id < ?2)
              ORDER BY created_at DESC, team_id DESC LIMIT ?3"
        ),
        &page.after_created,
        &page.after_id,
        &page.fetch()
    )?
    .rows()
    .await?
    .results()?;
    let rows: Vec<WorkspaceRow> = rows.iter().filter_map(WorkspaceRow::from_row).collect();
    let has_more = rows.len() > page.limit as usize;
    let items = &rows[..rows.len().min(page.limit as usize)];
    let mut body =
        json!({ "workspaces": items.iter().map(WorkspaceRow::view).collect::<Vec<_>>(), "hasMore": has_more });
    if let (true, Some(last)) = (has_more, items.last()) {
        body["cursor"] = json!(encode_cursor(&last.created_at, &last.team_id));
    }
    Reply::ok(&body)
}

/// `DELETE /api/slack/workspaces/:teamId` (admin) → `{success: true}`: the bot token is revoked
/// at Slack (best effort) and the install, its people's links and codes are removed.
pub async fn delete_workspace(ctx: &Ctx) -> ApiResult<Reply> {
    let team = ctx.params.get("teamId");
    let db = ctx.db()?;
    let missing = || ApiError::not_found(format!("Slack workspace '{team}' is not installed"));
    if !slack_id(team) {
        return Err(missing());
    }
    let ws = load_workspace(&db, team).await?.ok_or_else(missing)?;
    match open_workspace(&ctx.env, &db, &ws).await {
        Ok(slack) => {
            if let Err(e) = slack.revoke().await {
                log_error(&format!("slack uninstall: {e}"));
            }
        }
        Err(_) => log_error("slack uninstall: the bot token could not be opened; removing the install anyway"),
    }
    forget_workspace(&db, team).await?;
    Reply::ok(&success())
}

/// The caller's links as the API shows them (`{teamId, teamName, slackUserId, slackUserName, createdAt}`).
async fn user_links(db: &D1Database, user_id: &str, team: Option<&str>) -> ApiResult<Vec<Value>> {
    let mut rows: Vec<Value> = crate::q!(
        db,
        "SELECT l.team_id AS teamId, w.team_name AS teamName, l.slack_user_id AS slackUserId,
                l.slack_user_name AS slackUserName, l.created_at AS createdAt
           FROM slack_links l LEFT JOIN slack_workspaces w ON w.team_id = l.team_id
          WHERE l.user_id = ?1 AND (?2 IS NULL OR l.team_id = ?2) ORDER BY l.created_at, l.team_id",
        &user_id,
        &team
    )?
    .rows()
    .await?
    .results()?;
    for r in &mut rows {
        r["createdAt"] = json!(normalize(r["createdAt"].as_str().unwrap_or_default()));
    }
    Ok(rows)
}

/// `POST /api/me/slack/link {code}` → 201 `{link}`: the Slack person the one-time code was sent
/// to is linked to the caller (replacing the caller's earlier link in that workspace).
pub async fn link(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let code = input.str("code", 1, 200);
    input.finish()?;
    let db = ctx.db()?;
    let invalid = || ApiError::new(400, "INVALID_CODE", "Unknown, expired or already used link code");
    // Consuming the code row is the single-use check.
    let row: Option<Value> = crate::q!(
        &db,
        "DELETE FROM slack_link_codes WHERE code_hash = ?1 AND expires_at > ?2 RETURNING team_id, slack_user_id, channel_id, thread_ts",
        &sha256_hex(code.as_bytes()),
        &iso(ctx.now)
    )?
    .one()
    .await?;
    let row = row.ok_or_else(invalid)?;
    let field = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    let (team, slack_user, channel) = (field("team_id"), field("slack_user_id"), field("channel_id"));
    let thread = row["thread_ts"].as_str().map(str::to_string);
    let ws = load_workspace(&db, &team).await?.ok_or_else(invalid)?;
    let now = iso(ctx.now);
    let results = db
        .batch_rows(vec![
            // The caller's earlier Slack person in this workspace, and where they talked, go.
            crate::q!(
                &db,
                "DELETE FROM slack_links WHERE user_id = ?1 AND team_id = ?2 AND slack_user_id <> ?3",
                &caller.id,
                &team,
                &slack_user
            )?,
            crate::q!(
                &db,
                "INSERT INTO slack_links (team_id, slack_user_id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(team_id, slack_user_id) DO NOTHING",
                &team,
                &slack_user,
                &caller.id,
                &now
            )?,
            crate::q!(
                &db,
                "SELECT user_id FROM slack_links WHERE team_id = ?1 AND slack_user_id = ?2",
                &team,
                &slack_user
            )?,
        ])
        .await?;
    let owner = results[2].results::<Value>()?.into_iter().next();
    if owner.as_ref().and_then(|o| o["user_id"].as_str()) != Some(caller.id.as_str()) {
        return Err(ApiError::conflict("SLACK_USER_LINKED", "This Slack account is linked to someone else"));
    }
    if results[0].changes() > 0 {
        crate::q!(&db, "DELETE FROM slack_conversations WHERE user_id = ?1 AND team_id = ?2", &caller.id, &team)?
            .exec()
            .await?;
    }
    // A word in Slack where the code was asked for (after the response; best effort).
    let env = ctx.env.clone();
    let name = caller.name.clone().unwrap_or_else(|| caller.email.clone());
    ctx.wctx.wait_until(async move {
        let text = format!("Linked! Your messages now reach the agents of {name}.");
        let Ok(db) = env.d1("DB") else { return };
        let sent = match open_workspace(&env, &db, &ws).await {
            Ok(slack) if channel.starts_with('D') => {
                slack.post_message(&channel, thread.as_deref(), &text).await.map(|_| ())
            }
            Ok(slack) => slack.post_ephemeral(&channel, &slack_user, thread.as_deref(), &text).await.map(|_| ()),
            Err(_) => return,
        };
        if let Err(e) = sent {
            log_error(&format!("slack link confirmation: {e}"));
        }
    });
    let link = user_links(&db, &caller.id, Some(&team))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("slack link vanished"))?;
    Reply::json(201, &json!({ "link": link }))
}

/// `GET /api/me/slack` → `{links}`: the caller's linked Slack accounts.
pub async fn links(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let rows = user_links(&ctx.db()?, &caller.id, None).await?;
    Reply::ok(&json!({ "links": rows }))
}

/// `DELETE /api/me/slack/:teamId` → `{success: true}`: unlinks the caller's Slack account there.
pub async fn unlink(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let team = ctx.params.get("teamId");
    let db = ctx.db()?;
    let results = db
        .batch_rows(vec![
            crate::q!(&db, "DELETE FROM slack_links WHERE user_id = ?1 AND team_id = ?2", &caller.id, &team)?,
            crate::q!(&db, "DELETE FROM slack_conversations WHERE user_id = ?1 AND team_id = ?2", &caller.id, &team)?,
        ])
        .await?;
    if results[0].changes() == 0 {
        return Err(ApiError::not_found(format!("No Slack account of yours is linked in workspace '{team}'")));
    }
    Reply::ok(&success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_url_has_the_scopes_and_state() {
        let u = install_url(
            "https://slack.com/oauth/v2/authorize",
            "123.456",
            "https://svc.example.com/slack/oauth/callback",
            "st8",
        );
        let parsed = url::Url::parse(&u).unwrap();
        let q: std::collections::BTreeMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.path(), "/oauth/v2/authorize");
        assert_eq!(q["client_id"], "123.456");
        assert_eq!(q["scope"], "app_mentions:read,chat:write,im:history,im:read,im:write,users:read");
        assert_eq!(q["redirect_uri"], "https://svc.example.com/slack/oauth/callback");
        assert_eq!(q["state"], "st8");
        assert!(install_url("http://x/a?team=T1", "c", "r", "s").starts_with("http://x/a?team=T1&client_id=c"));
    }
}
