//! The caller's account: `GET /api/me` and API token management.

use crate::db::Query as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::mint_api_token;
use crate::http::input::Input;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::Ctx;
use crate::http::{success, ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};

/// Tokens a user may hold at once; a leaked script minting tokens in a loop stops here.
const MAX_ACTIVE_TOKENS: i64 = 100;

/// `GET /api/me` → `{user: {id, email, name, role}}`.
pub async fn me(ctx: &Ctx) -> ApiResult<Reply> {
    let c = ctx.caller()?;
    Reply::ok(&json!({ "user": { "id": c.id, "email": c.email, "name": c.name, "role": c.role.as_str() } }))
}

#[derive(Deserialize)]
struct TokenRow {
    id: String,
    name: String,
    prefix: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenView {
    id: String,
    name: String,
    prefix: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl Keyed for TokenRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl From<&TokenRow> for TokenView {
    fn from(r: &TokenRow) -> Self {
        TokenView {
            id: r.id.clone(),
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            created_at: normalize(&r.created_at),
            last_used_at: r.last_used_at.as_deref().map(normalize),
            expires_at: r.expires_at.as_deref().map(normalize),
        }
    }
}

/// `GET /api/api-tokens?limit&cursor` → `{tokens, cursor?, hasMore}` (newest first;
/// revoked tokens are gone, expired ones stay visible with their `expiresAt`).
pub async fn list_tokens(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = PageQuery::parse(&ctx.query, 50)?;
    let db = ctx.db()?;
    let select = "SELECT id, name, prefix, created_at, last_used_at, expires_at FROM api_tokens WHERE user_id = ?1 AND revoked_at IS NULL";
    let rows: Vec<TokenRow> = crate::http::page::newest_first(&db, select, &caller.id, &page).await?;
    Reply::ok(&page_body("tokens", &rows, page.limit, |r| json!(TokenView::from(r))))
}

/// API tokens created with a sign-in session expire after this long by default.
const SESSION_TOKEN_DEFAULT_MS: i64 = 90 * 24 * 3600 * 1000;

/// `POST /api/api-tokens` `{name, expiresAt?}` → 201 `{id, name, prefix, token, createdAt, expiresAt?}`.
/// The token text is in this answer only; the database keeps its hash.
pub async fn create_token(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let name = input.str("name", 1, 100);
    let explicit_null = input.is_null("expiresAt");
    let expires_at = input.opt_future_time("expiresAt", ctx.now).map(iso);
    input.finish()?;
    // A token minted with a sign-in session expires in 90 days unless an admin explicitly asks
    // for none, so a stolen session cannot mint a credential that outlives it forever.
    let from_session = caller.token_table == "auth_sessions";
    if from_session && explicit_null && caller.role != crate::http::Role::Admin {
        return Err(ApiError::invalid_field(
            "expiresAt",
            "Only admins may create a non-expiring token from a sign-in session",
        ));
    }
    let expires_at = match expires_at {
        Some(e) => Some(e),
        None if from_session && !explicit_null => Some(iso(ctx.now + SESSION_TOKEN_DEFAULT_MS)),
        None => None,
    };

    let db = ctx.db()?;
    let id = uuid::Uuid::new_v4().to_string();
    let token = mint_api_token();
    let created_at = iso(ctx.now);
    // Insert only while the user is under the cap: one statement, no race.
    let result = crate::q!(
        &db,
        "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, scopes, expires_at, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5, '[]', ?6, ?7
          WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = ?2 AND revoked_at IS NULL) < ?8",
        &id,
        &caller.id,
        &name,
        &token.hash,
        &token.prefix,
        &expires_at,
        &created_at,
        &MAX_ACTIVE_TOKENS
    )?
    .exec()
    .await?;
    if result.changes() == 0 {
        return Err(ApiError::conflict(
            "TOO_MANY_TOKENS",
            format!("A user may hold at most {MAX_ACTIVE_TOKENS} active API tokens; revoke one first"),
        ));
    }
    let mut body =
        json!({ "id": id, "name": name, "prefix": token.prefix, "token": token.text, "createdAt": created_at });
    if let Some(e) = expires_at {
        body["expiresAt"] = json!(e);
    }
    Reply::json(201, &body)
}

/// `DELETE /api/api-tokens/:id` → `{success: true}`; another user's token is a 404.
pub async fn revoke_token(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let id = ctx.params.get("id");
    let db = ctx.db()?;
    let result = crate::q!(
        &db,
        "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
        &iso(ctx.now),
        &id,
        &caller.id
    )?
    .exec()
    .await?;
    if result.changes() == 0 {
        return Err(ApiError::not_found(format!("API token with id '{id}' not found")));
    }
    Reply::ok(&success())
}

impl Keyed for UserRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Deserialize, Serialize)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    role: String,
    created_at: String,
}

/// `GET /api/admin/users?limit&cursor` (admin) → `{users: [{id, email, name, role, createdAt}], cursor?, hasMore}`.
pub async fn list_users(ctx: &Ctx) -> ApiResult<Reply> {
    let page = PageQuery::parse(&ctx.query, 50)?;
    let db = ctx.db()?;
    // `?1 = ?1` keeps the helper's owner parameter meaningful for a table-wide list.
    let rows: Vec<UserRow> = crate::http::page::newest_first(
        &db,
        "SELECT id, email, name, role, created_at FROM users WHERE ?1 = ?1",
        "",
        &page,
    )
    .await?;
    Reply::ok(&page_body(
        "users",
        &rows,
        page.limit,
        |u| json!({ "id": u.id, "email": u.email, "name": u.name, "role": u.role, "createdAt": normalize(&u.created_at) }),
    ))
}
