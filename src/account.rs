//! The caller's account: `GET /api/me` and API token management.

use crate::db::Query as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::d1::D1Database;

use crate::auth::mint_api_token;
use crate::http::input::Input;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::{success, ApiError, ApiResult, Caller, Ctx, Reply};
use crate::time::{iso, normalize, parse_stored, Millis};

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

/// API tokens created with a sign-in session expire within this long.
const SESSION_TOKEN_MAX_MS: Millis = 90 * 24 * 3600 * 1000;

/// The latest a new token may expire, from what the caller authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    /// An API token without an expiry: the new one may have any, or none.
    Free,
    /// A sign-in session: 90 days from now, so a stolen session cannot mint a credential that
    /// outlives it for good.
    Session(Millis),
    /// An API token that expires (say because a session made it): a token never outlives the
    /// token that made it, so the 90 days carry down the line.
    Maker(Millis),
}

async fn cap_of(db: &D1Database, caller: &Caller, now: Millis) -> ApiResult<Cap> {
    if caller.token_table == "auth_sessions" {
        return Ok(Cap::Session(now + SESSION_TOKEN_MAX_MS));
    }
    #[derive(Deserialize)]
    struct Maker {
        expires_at: Option<String>,
    }
    let maker: Option<Maker> =
        crate::q!(db, "SELECT expires_at FROM api_tokens WHERE id = ?1", &caller.token_id)?.one().await?;
    Ok(match maker.and_then(|m| m.expires_at) {
        // A stored value that does not parse is treated as already due (fail closed).
        Some(at) => Cap::Maker(parse_stored(&at).unwrap_or(now)),
        None => Cap::Free,
    })
}

/// The new token's expiry: what was asked for within the cap, the cap when nothing was. An
/// explicit `null` (no expiry) is honoured under no cap, and from a sign-in session for admins
/// only (the README's "unless an admin asks otherwise"); an API token that expires cannot ask.
fn expiry(cap: Cap, asked: Option<Millis>, explicit_null: bool, admin: bool) -> ApiResult<Option<Millis>> {
    let refuse = |m: String| Err(ApiError::invalid_field("expiresAt", &m));
    match cap {
        Cap::Free => Ok(asked),
        Cap::Session(_) if explicit_null && !admin => {
            refuse("Only admins may create a non-expiring token from a sign-in session".into())
        }
        Cap::Session(_) if explicit_null => Ok(None),
        Cap::Session(c) if asked.is_some_and(|a| a > c) => {
            refuse(format!("A token created with a sign-in session expires within 90 days (by {})", iso(c)))
        }
        Cap::Maker(c) if explicit_null || asked.is_some_and(|a| a > c) => {
            refuse(format!("A token cannot outlive the token that creates it (which expires at {})", iso(c)))
        }
        Cap::Session(c) | Cap::Maker(c) => Ok(Some(asked.unwrap_or(c))),
    }
}

/// `POST /api/api-tokens` `{name, expiresAt?}` → 201 `{id, name, prefix, token, createdAt, expiresAt?}`.
/// The token text is in this answer only; the database keeps its hash.
pub async fn create_token(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let name = input.str("name", 1, 100);
    let explicit_null = input.is_null("expiresAt");
    let asked = input.opt_future_time("expiresAt", ctx.now);
    input.finish()?;
    let db = ctx.db()?;
    let cap = cap_of(&db, caller, ctx.now).await?;
    let expires_at = expiry(cap, asked, explicit_null, caller.role == crate::http::Role::Admin)?.map(iso);

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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_767_323_045_678;
    const DAY: Millis = 24 * 3600 * 1000;

    #[test]
    fn expiry_under_each_cap() {
        let session = Cap::Session(NOW + 90 * DAY);
        let maker = Cap::Maker(NOW + 10 * DAY);
        let fields = |r: ApiResult<Option<Millis>>| r.unwrap_err().fields();
        // A sign-in session: 90 days by default, never later; `null` for admins only.
        assert_eq!(expiry(session, None, false, false).unwrap(), Some(NOW + 90 * DAY));
        assert_eq!(expiry(session, Some(NOW + DAY), false, false).unwrap(), Some(NOW + DAY));
        assert_eq!(fields(expiry(session, Some(NOW + 91 * DAY), false, true)), ["expiresAt"]);
        assert_eq!(fields(expiry(session, None, true, false)), ["expiresAt"]);
        assert_eq!(expiry(session, None, true, true).unwrap(), None);
        // A token that expires: its end by default, never later, never none (admins included).
        assert_eq!(expiry(maker, None, false, false).unwrap(), Some(NOW + 10 * DAY));
        assert_eq!(expiry(maker, Some(NOW + 10 * DAY), false, false).unwrap(), Some(NOW + 10 * DAY));
        assert_eq!(fields(expiry(maker, Some(NOW + 10 * DAY + 1), false, true)), ["expiresAt"]);
        assert_eq!(fields(expiry(maker, None, true, true)), ["expiresAt"]);
        // A token without an expiry: anything goes.
        assert_eq!(expiry(Cap::Free, None, false, false).unwrap(), None);
        assert_eq!(expiry(Cap::Free, None, true, false).unwrap(), None);
        assert_eq!(expiry(Cap::Free, Some(NOW + 9000 * DAY), false, false).unwrap(), Some(NOW + 9000 * DAY));
    }
}
