//! Authentication: `Authorization: Bearer <token>` only. Tokens are stored as the
//! lowercase hex SHA-256 of their text, in `api_tokens` (revocable, optional expiry)
//! or `auth_sessions` (login sessions, always expiring).

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use worker::d1::D1Database;

use crate::crypto::{random_token, sha256_hex};
use crate::http::{ApiError, ApiResult, Caller, OAuthGrant, Role};
use crate::time::{iso, parse_stored, Millis};

/// API tokens start with this, so they are recognisable in configs and secret scanners.
pub const TOKEN_PREFIX: &str = "itk_";
/// How much of a token is kept in clear for recognition (`itk_` + 8 characters).
pub const DISPLAY_PREFIX_LEN: usize = 12;
/// `last_used_at` is written at most this often per token, to keep reads cheap.
const TOUCH_INTERVAL_MS: Millis = 60_000;

/// A freshly minted API token: the text is shown once, only the hash is stored.
pub struct NewToken {
    pub text: String,
    pub hash: String,
    pub prefix: String,
}

pub fn mint_api_token() -> NewToken {
    let text = format!("{TOKEN_PREFIX}{}", random_token::<32>());
    NewToken { hash: sha256_hex(text.as_bytes()), prefix: text[..DISPLAY_PREFIX_LEN].to_string(), text }
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let header = header?.trim();
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 512).then_some(token)
}

/// Whether `last_used_at` is old enough to be worth writing again.
pub fn needs_touch(last_used_at: Option<&str>, now: Millis) -> bool {
    match last_used_at.and_then(parse_stored) {
        Some(t) => now - t >= TOUCH_INTERVAL_MS,
        None => true,
    }
}

#[derive(Deserialize)]
struct AuthRow {
    id: String,
    email: String,
    name: Option<String>,
    role: String,
    kind: String,
    token_id: String,
    last_used_at: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

impl AuthRow {
    fn caller(self) -> Caller {
        let (table, oauth) = match self.kind.as_str() {
            "api" => ("api_tokens", None),
            "oauth" => (
                "mcp_tokens",
                Some(OAuthGrant {
                    client_id: self.client_id.unwrap_or_default(),
                    scope: self.scope.unwrap_or_default(),
                }),
            ),
            _ => ("auth_sessions", None),
        };
        Caller {
            id: self.id,
            email: self.email,
            name: self.name,
            role: Role::parse(&self.role),
            token_table: table,
            token_id: self.token_id,
            last_used_at: self.last_used_at,
            oauth,
        }
    }
}

/// `caller_sql!()` for `/mcp`, which also takes the OAuth access tokens issued for its audience
/// (`?3`): those tokens are accepted nowhere else.
const MCP_CALLER_SQL: &str =
    "SELECT u.id, u.email, u.name, u.role, t.kind, t.token_id, t.last_used_at, t.client_id, t.scope FROM (
   SELECT 'api' AS kind, id AS token_id, user_id, last_used_at, NULL AS client_id, NULL AS scope FROM api_tokens
    WHERE token_hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR julianday(expires_at) > julianday(?2))
   UNION ALL
   SELECT 'session', id, user_id, last_used_at, NULL, NULL FROM auth_sessions
    WHERE token_hash = ?1 AND julianday(expires_at) > julianday(?2)
   UNION ALL
   SELECT 'oauth', id, user_id, last_used_at, client_id, scope FROM mcp_tokens
    WHERE token_hash = ?1 AND kind = 'access' AND revoked_at IS NULL AND expires_at > ?2 AND audience = ?3
 ) t JOIN users u ON u.id = t.user_id LIMIT 1";

/// Authenticates a caller of `/mcp` (`audience`: the MCP resource's URL).
pub async fn authenticate_mcp(db: &D1Database, token: &str, now: Millis, audience: &str) -> ApiResult<Caller> {
    let row: Option<AuthRow> =
        crate::q!(db, MCP_CALLER_SQL, &sha256_hex(token.as_bytes()), &iso(now), &audience)?.one().await?;
    Ok(row.ok_or_else(ApiError::unauthorized)?.caller())
}

/// The caller of the token whose hash is `?1`, at `?2` (ISO): one row or none. The token is
/// looked up in both tables with one query; `julianday` compares our ISO timestamps and SQLite
/// `datetime()` text (rows migrated from the original) alike. A route whose first query can run
/// in the same D1 batch as authentication selects from it (`WITH caller AS (…)`, see
/// `authenticate_with`).
#[macro_export]
macro_rules! caller_sql {
    () => {
        "SELECT u.id, u.email, u.name, u.role, t.kind, t.token_id, t.last_used_at FROM (
           SELECT 'api' AS kind, id AS token_id, user_id, last_used_at FROM api_tokens
            WHERE token_hash = ?1 AND revoked_at IS NULL
              AND (expires_at IS NULL OR julianday(expires_at) > julianday(?2))
           UNION ALL
           SELECT 'session', id, user_id, last_used_at FROM auth_sessions
            WHERE token_hash = ?1 AND julianday(expires_at) > julianday(?2)
         ) t JOIN users u ON u.id = t.user_id LIMIT 1"
    };
}

pub async fn authenticate(db: &D1Database, token: &str, now: Millis) -> ApiResult<Caller> {
    Ok(authenticate_with(db, token, now, None).await?.0)
}

/// Authenticates and, when `with` is given, runs it in the same D1 batch (one round trip, one
/// snapshot): a statement over `?1`/`?2` that selects from `WITH caller AS (caller_sql!())`, so
/// it sees nothing unless the token is valid. Its result is returned only with a caller.
pub async fn authenticate_with(
    db: &D1Database,
    token: &str,
    now: Millis,
    with: Option<&str>,
) -> ApiResult<(Caller, Option<crate::db::Rows>)> {
    let hash = sha256_hex(token.as_bytes());
    let now = iso(now);
    let (row, prefetched): (Option<AuthRow>, _) = match with {
        None => (crate::q!(db, caller_sql!(), &hash, &now)?.one().await?, None),
        Some(sql) => {
            let mut results = db
                .batch_rows(vec![crate::q!(db, caller_sql!(), &hash, &now)?, crate::q!(db, sql, &hash, &now)?])
                .await?;
            let prefetched = results.pop();
            let auth = results.pop().map(|r| r.results::<AuthRow>()).transpose()?;
            (auth.and_then(|rows| rows.into_iter().next()), prefetched)
        }
    };
    let row = row.ok_or_else(ApiError::unauthorized)?;
    Ok((row.caller(), prefetched))
}

/// Records that the caller's token was used (run after the response via `wait_until`).
pub async fn touch(db: D1Database, table: &'static str, token_id: String, now: Millis) {
    let sql = format!("UPDATE {table} SET last_used_at = ?1 WHERE id = ?2");
    let result = match crate::q!(&db, &sql, &iso(now), &token_id) {
        Ok(stmt) => stmt.exec().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        crate::config::log_error(&format!("last_used_at update failed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens() {
        let t = mint_api_token();
        assert!(t.text.starts_with("itk_"));
        assert_eq!(t.text.len(), 4 + 43);
        assert_eq!(t.prefix, &t.text[..12]);
        assert_eq!(t.hash, sha256_hex(t.text.as_bytes()));
        assert_eq!(t.hash.len(), 64);
        assert_ne!(mint_api_token().text, t.text);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("abc")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn touch_throttle() {
        let now = 1_767_323_045_678;
        assert!(needs_touch(None, now));
        assert!(!needs_touch(Some(&iso(now - 1_000)), now));
        assert!(needs_touch(Some(&iso(now - 61_000)), now));
        assert!(needs_touch(Some("2020-01-01 00:00:00"), now));
    }
}
