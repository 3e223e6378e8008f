//! A user's GitHub token in `oauth_tokens` (provider `github`), sealed by the credential
//! module with associated data = purpose + user. Rows written by the original worker (legacy
//! format) are read and re-sealed on first use. Also `PUT/DELETE /api/me/github-token`.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::json;
use worker::d1::D1Database;

use crate::config;
use crate::crypto::{Aad, Keyring, Legacy};
use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::time::iso;

pub const PURPOSE: &str = "oauth:github";

#[derive(Deserialize)]
struct Row {
    encrypted_access_token: String,
}

/// Stores (or replaces) the user's GitHub token.
pub async fn store(
    db: &D1Database,
    keys: &Keyring,
    user_id: &str,
    token: &str,
    scopes: &str,
    now: i64,
) -> ApiResult<()> {
    let sealed = keys.seal_str(&Aad { purpose: PURPOSE, owner: user_id }, token);
    crate::q!(
        db,
        "INSERT INTO oauth_tokens (id, user_id, provider, encrypted_access_token, scopes, created_at, updated_at)
         VALUES (?1, ?2, 'github', ?3, ?4, ?5, ?5)
         ON CONFLICT(user_id, provider) DO UPDATE SET encrypted_access_token = excluded.encrypted_access_token,
           scopes = COALESCE(excluded.scopes, oauth_tokens.scopes), expires_at = NULL, updated_at = excluded.updated_at",
        &uuid::Uuid::new_v4().to_string(),
        &user_id,
        &sealed,
        &scopes,
        &iso(now)
    )?
    .exec()
    .await?;
    Ok(())
}

/// The user's GitHub token, if connected.
pub async fn load(ctx: &Ctx, user_id: &str) -> ApiResult<Option<String>> {
    load_with(&ctx.db()?, &config::keyring(&ctx.env)?, user_id).await
}

/// The user's GitHub token, outside a request (the PR reconciler); a row in an old format is
/// sealed again on the way.
pub async fn load_with(db: &D1Database, keys: &Keyring, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<Row> = crate::q!(
        db,
        "SELECT encrypted_access_token FROM oauth_tokens WHERE user_id = ?1 AND provider = 'github'",
        &user_id
    )?
    .one()
    .await?;
    let Some(row) = row else { return Ok(None) };
    let aad = Aad { purpose: PURPOSE, owner: user_id };
    let (token, stale) = keys.open_str(&aad, &row.encrypted_access_token, Legacy::D1Column)?;
    if stale {
        let resealed = keys.seal_str(&aad, &token);
        crate::q!(
            db,
            "UPDATE oauth_tokens SET encrypted_access_token = ?1 WHERE user_id = ?2 AND provider = 'github'",
            &resealed,
            &user_id
        )?
        .exec()
        .await?;
    }
    Ok(Some(token))
}

/// The caller's token or the original's 400 "GitHub account not connected".
pub async fn require(ctx: &Ctx) -> ApiResult<String> {
    let caller = ctx.caller()?;
    load(ctx, &caller.id).await?.ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", "GitHub account not connected"))
}

/// `PUT /api/me/github-token` `{token}`: checked with `GET /user` first, then stored;
/// links the GitHub account to the user when it is not linked to someone else.
pub async fn put(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let token = input.str("token", 20, 255);
    // Every GitHub token format (ghp_, gho_, github_pat_, 40-hex) is letters, digits, `_`.
    if !token.is_empty() && !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        input.error("token", "Not a GitHub token (letters, digits and _ only)");
    }
    input.finish()?;
    let keys = config::keyring(&ctx.env)?;
    let api = super::api_url(&ctx.env);
    let gh = super::client::GitHub::new(&api, &token);
    let user = match gh.get("/user").await {
        Ok(r) => r,
        Err(super::client::GhError::Status(400 | 401 | 403, _)) => {
            return Err(ApiError::new(400, "INVALID_TOKEN", "GitHub rejected this token"));
        }
        Err(e) => return Err(e.into_api("Could not check the token with GitHub")),
    };
    let profile: serde_json::Value =
        user.json().ok_or_else(|| ApiError::upstream("GitHub answered an unreadable profile"))?;
    let login = profile["login"].as_str().unwrap_or_default().to_string();
    let github_id = profile["id"].as_i64().map(|i| i.to_string());
    let scopes: Vec<String> = user
        .header("x-oauth-scopes")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    let db = ctx.db()?;
    store(&db, &keys, &caller.id, &token, &scopes.join(","), ctx.now).await?;
    crate::q!(
        &db,
        "UPDATE users SET github_id = ?1, github_username = ?2, updated_at = ?3 WHERE id = ?4
           AND NOT EXISTS (SELECT 1 FROM users o WHERE o.id <> ?4 AND (o.github_id = ?1 OR o.github_username = ?2 COLLATE NOCASE))",
        &github_id,
        &login,
        &iso(ctx.now),
        &caller.id
    )?
    .exec()
    .await?;
    Reply::ok(&json!({ "connected": true, "login": login, "scopes": scopes }))
}

/// `DELETE /api/me/github-token` → `{connected: false}`; 404 when none is stored.
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let r = crate::q!(&db, "DELETE FROM oauth_tokens WHERE user_id = ?1 AND provider = 'github'", &caller.id)?
        .exec()
        .await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found("No GitHub token is stored"));
    }
    Reply::ok(&json!({ "connected": false }))
}
