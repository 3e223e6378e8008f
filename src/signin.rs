//! Sign-in with GitHub or Google (README, "Accounts and access"): a browser-bound, single-use, 10-minute state
//! with PKCE; the provider's verified email decides who may sign up (`access::admit`); the
//! provider's token sealed into `oauth_tokens`; and a hand-off that keeps session tokens out of
//! URLs: the frontend receives a one-time 60-second code in the fragment and exchanges it with
//! `POST /auth/exchange`. Sessions can be listed, revoked, and logged out of.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::access::{self, Identity};
use crate::config::{self, var};
use crate::crypto::{constant_time_eq, random_token, sha256_hex, Aad};
use crate::http::input::Input;
use crate::http::{success, ApiError, ApiResult, Ctx, Reply};
use crate::integrations::oauth::{self, GrantError};
use crate::integrations::service::{Credentials, OAuth};
use crate::limits::{self, Limit};
use crate::outbound::Net;
use crate::time::{iso, normalize, Millis};

const STATE_TTL_MS: Millis = 10 * 60 * 1000;
/// Where a sign-in started by the MCP authorization page returns to.
const AUTHORIZE_PREFIX: &str = "/oauth/authorize?";
/// The cookie of a browser signed in for the MCP authorization page only (path `/oauth`).
pub const BROWSER_COOKIE: &str = "mcp_signin";
pub const BROWSER_TTL_MS: Millis = 15 * 60 * 1000;
const CODE_TTL_MS: Millis = 60 * 1000;
pub const SESSION_TTL_MS: Millis = 7 * 24 * 3600 * 1000;

static GITHUB: OAuth = OAuth {
    display: "GitHub",
    authorize_base: ("GITHUB_WEB_URL", "https://github.com"),
    authorize_path: "/login/oauth/authorize",
    token_url: ("GITHUB_WEB_URL", "https://github.com"),
    token_path: "/login/oauth/access_token",
    client_id_var: "GITHUB_CLIENT_ID",
    client_secret_var: "GITHUB_CLIENT_SECRET",
    scopes: &["repo", "read:user", "user:email"],
    scope_separator: " ",
    extra: &[("allow_signup", "true")],
    refresh: false,
    revoke: None,
};

static GOOGLE: OAuth = OAuth {
    display: "Google",
    authorize_base: ("GOOGLE_ACCOUNTS_URL", "https://accounts.google.com"),
    authorize_path: "/o/oauth2/v2/auth",
    token_url: ("GOOGLE_OAUTH_TOKEN_URL", "https://oauth2.googleapis.com/token"),
    token_path: "",
    client_id_var: "GOOGLE_CLIENT_ID",
    client_secret_var: "GOOGLE_CLIENT_SECRET",
    scopes: &["openid", "email", "profile"],
    scope_separator: " ",
    extra: &[("access_type", "offline"), ("prompt", "consent")],
    refresh: true,
    revoke: None,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Provider {
    GitHub,
    Google,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Google => "google",
        }
    }

    fn spec(self) -> &'static OAuth {
        match self {
            Provider::GitHub => &GITHUB,
            Provider::Google => &GOOGLE,
        }
    }

    fn cookie(self) -> String {
        format!("{}_oauth_nonce", self.name())
    }

    fn parse(s: &str) -> Option<Provider> {
        match s {
            "github" => Some(Provider::GitHub),
            "google" => Some(Provider::Google),
            _ => None,
        }
    }
}

fn client_ip(ctx: &Ctx) -> String {
    ctx.header("CF-Connecting-IP").unwrap_or_else(|| "unknown".into())
}

fn clear_cookie(p: Provider) -> String {
    format!("{}=; Path=/auth/{}; HttpOnly; Secure; SameSite=Lax; Max-Age=0", p.cookie(), p.name())
}

fn fail(ctx: &Ctx, p: Provider, code: &str) -> ApiResult<Reply> {
    let front = ctx.frontend();
    Ok(Reply::redirect(&format!("{front}/login?error={code}")).with_header("Set-Cookie", clear_cookie(p)))
}

fn provider(ctx: &Ctx) -> ApiResult<Provider> {
    // Routes are `/auth/github…` and `/auth/google…`.
    let name = ctx.path_and_query().trim_start_matches("/auth/").split(['/', '?']).next().unwrap_or("");
    Provider::parse(name).ok_or_else(ApiError::route_not_found)
}

/// `GET /auth/providers` → `{providers: ["github", "google"]}`: the sign-in providers this
/// deployment has credentials for (the console offers only those).
pub fn providers(ctx: &Ctx) -> ApiResult<Reply> {
    let configured = [("github", &GITHUB), ("google", &GOOGLE)]
        .into_iter()
        .filter(|(_, o)| var(&ctx.env, o.client_id_var).is_some() && var(&ctx.env, o.client_secret_var).is_some())
        .map(|(name, _)| name)
        .collect::<Vec<_>>();
    Reply::ok(&json!({ "providers": configured }))
}

/// `GET /auth/{github,google}?invite_code=` → 302 to the provider's consent page.
pub async fn start(ctx: &Ctx) -> ApiResult<Reply> {
    let p = provider(ctx)?;
    // `return_to`: the MCP authorization page that sent the browser here (and nothing else:
    // never an open redirect). That round trip ends on this service, not on the frontend.
    let return_to = match ctx.query.get("return_to") {
        None => None,
        Some(r) if r.starts_with(AUTHORIZE_PREFIX) && r.len() <= 4096 => Some(r),
        Some(_) => {
            return Err(ApiError::invalid_field("return_to", "Only the MCP authorization page can be returned to"))
        }
    };
    if !limits::allow(&ctx.env, Limit::SignIn, &client_ip(ctx)).await {
        return Err(limits::too_many(Limit::SignIn));
    }
    let key = var(&ctx.env, "ENCRYPTION_KEY").ok_or_else(ApiError::encryption_not_configured)?;
    let state = random_token::<32>();
    let nonce = random_token::<32>();
    let redirect_uri = format!("{}/auth/{}/callback", ctx.public_origin(), p.name());
    let challenge = oauth::pkce_challenge(&oauth::pkce_verifier(&key, &state));
    let url = oauth::authorize_url(p.spec(), &ctx.env, &redirect_uri, &state, &challenge).map_err(|_| {
        ApiError::new(
            503,
            "OAUTH_NOT_CONFIGURED",
            format!("{} sign-in is not configured ({})", p.spec().display, p.spec().client_id_var),
        )
    })?;
    let invite = ctx.query.get("invite_code").filter(|c| !c.is_empty() && c.len() <= 200);
    crate::q!(
        &ctx.db()?,
        "INSERT INTO oauth_states (state_hash, purpose, browser_hash, redirect_uri, data, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &sha256_hex(state.as_bytes()),
        &format!("login:{}", p.name()),
        &sha256_hex(nonce.as_bytes()),
        &redirect_uri,
        &json!({ "invite": invite, "returnTo": return_to }).to_string(),
        &iso(ctx.now + STATE_TTL_MS),
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Ok(Reply::redirect(&url).with_header(
        "Set-Cookie",
        format!("{}={nonce}; Path=/auth/{}; HttpOnly; Secure; SameSite=Lax; Max-Age=600", p.cookie(), p.name()),
    ))
}

/// Back to the authorization page the sign-in started from (on this service's own origin).
fn back_to_authorize(ctx: &Ctx, p: Provider, back: &str, extra: &str) -> Reply {
    Reply::redirect(&format!("{}{back}{extra}", ctx.public_origin())).with_header("Set-Cookie", clear_cookie(p))
}

/// A browser sign-in for the MCP authorization page: a random token (stored hashed), 15 minutes.
async fn browser_session(ctx: &Ctx, user_id: &str) -> ApiResult<String> {
    let token = random_token::<32>();
    crate::q!(
        &ctx.db()?,
        "INSERT INTO mcp_browser_sessions (token_hash, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
        &sha256_hex(token.as_bytes()),
        &user_id,
        &iso(ctx.now + BROWSER_TTL_MS),
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Ok(token)
}

/// The user a browser is signed in as for the MCP authorization page, with the hash of its
/// sign-in (what the consent form's CSRF token is bound to).
pub async fn browser_user(ctx: &Ctx) -> ApiResult<Option<(String, String)>> {
    let Some(token) = cookie(ctx, BROWSER_COOKIE) else { return Ok(None) };
    let hash = sha256_hex(token.as_bytes());
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let row: Option<Row> = crate::q!(
        &ctx.db()?,
        "SELECT user_id FROM mcp_browser_sessions WHERE token_hash = ?1 AND expires_at > ?2",
        &hash,
        &iso(ctx.now)
    )?
    .one()
    .await?;
    Ok(row.map(|r| (r.user_id, hash)))
}

fn cookie(ctx: &Ctx, name: &str) -> Option<String> {
    let header = ctx.header("Cookie")?;
    header.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[derive(Deserialize)]
struct StateRow {
    redirect_uri: String,
    browser_hash: Option<String>,
    data: String,
}

/// `GET /auth/{github,google}/callback?code&state` → 302 to the frontend: a one-time code in
/// the fragment on success, `/login?error=<code>` on failure.
pub async fn callback(ctx: &Ctx) -> ApiResult<Reply> {
    let p = provider(ctx)?;
    if let Some(err) = ctx.query.get("error") {
        return fail(ctx, p, if err == "access_denied" { "access_denied" } else { "oauth_error" });
    }
    let (Some(code), Some(state)) = (ctx.query.get("code"), ctx.query.get("state")) else {
        return fail(ctx, p, "missing_params");
    };
    // Consuming the state row is the single-use check: a second callback finds nothing.
    let row: Option<StateRow> = crate::q!(
        &ctx.db()?,
        "DELETE FROM oauth_states WHERE state_hash = ?1 AND purpose = ?2 AND expires_at > ?3
         RETURNING redirect_uri, browser_hash, data",
        &sha256_hex(state.as_bytes()),
        &format!("login:{}", p.name()),
        &iso(ctx.now)
    )?
    .one()
    .await?;
    let Some(row) = row else { return fail(ctx, p, "invalid_state") };
    let nonce_ok = match (cookie(ctx, &p.cookie()), row.browser_hash) {
        (Some(n), Some(h)) => constant_time_eq(sha256_hex(n.as_bytes()).as_bytes(), h.as_bytes()),
        _ => false,
    };
    if !nonce_ok {
        return fail(ctx, p, "invalid_state");
    }
    let data = serde_json::from_str::<Value>(&row.data).unwrap_or(Value::Null);
    let invite = data["invite"].as_str();
    let user_id = match complete(ctx, p, code, state, &row.redirect_uri, invite).await {
        Ok(user_id) => user_id,
        Err(code) => match data["returnTo"].as_str() {
            Some(back) => return Ok(back_to_authorize(ctx, p, back, &format!("&signin_error={code}"))),
            None => return fail(ctx, p, code),
        },
    };
    if let Some(back) = data["returnTo"].as_str() {
        let token = browser_session(ctx, &user_id).await?;
        return Ok(back_to_authorize(ctx, p, back, "").with_header(
            "Set-Cookie",
            format!(
                "{BROWSER_COOKIE}={token}; Path=/oauth; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
                BROWSER_TTL_MS / 1000
            ),
        ));
    }
    match one_time_code(ctx, p, &user_id).await {
        Ok(one_time) => {
            let front = ctx.frontend();
            Ok(Reply::redirect(&format!("{front}/auth/callback#code={one_time}&provider={}", p.name()))
                .with_header("Set-Cookie", clear_cookie(p)))
        }
        Err(code) => fail(ctx, p, code),
    }
}

/// The provider's identity behind a granted token; each failure is the frontend's error code.
async fn identity(ctx: &Ctx, p: Provider, grant: &Credentials) -> Result<Identity, &'static str> {
    match p {
        Provider::GitHub => {
            let access = grant.get("access_token").map(String::as_str).unwrap_or("");
            let gh = crate::github::client::GitHub::new(&crate::github::api_url(&ctx.env), access);
            let profile: Value = gh.get("/user").await.ok().and_then(|r| r.json()).ok_or("github_profile_failed")?;
            let id = profile["id"].as_i64().ok_or("github_profile_failed")?.to_string();
            // Only a verified address counts (the profile's public email may not be one).
            let emails: Vec<Value> = gh.get("/user/emails").await.ok().and_then(|r| r.json()).unwrap_or_default();
            let verified = |e: &&Value| e["verified"].as_bool() == Some(true);
            let email = emails
                .iter()
                .filter(verified)
                .find(|e| e["primary"].as_bool() == Some(true))
                .or_else(|| emails.iter().find(verified))
                .and_then(|e| e["email"].as_str().map(str::to_lowercase));
            let login = profile["login"].as_str().unwrap_or_default().to_string();
            Ok(Identity {
                provider: "github",
                provider_id: id,
                email: email.ok_or("no_email")?,
                name: profile["name"].as_str().map(str::to_string).or_else(|| Some(login.clone())),
                avatar: profile["avatar_url"].as_str().map(str::to_string),
                login: Some(login),
            })
        }
        Provider::Google => {
            // The ID token came straight from Google's token endpoint over TLS, so its claims
            // are taken as they are (OpenID Connect Core §3.1.3.7, item 6).
            let claims = grant.get("id_token").and_then(|t| jwt_claims(t)).ok_or("google_profile_failed")?;
            let id = claims["sub"].as_str().ok_or("google_profile_failed")?.to_string();
            let aud_ok = var(&ctx.env, "GOOGLE_CLIENT_ID").is_some_and(|c| claims["aud"] == c.as_str());
            if !aud_ok {
                return Err("google_profile_failed");
            }
            let verified = claims["email_verified"] == true || claims["email_verified"] == "true";
            let email = claims["email"].as_str().filter(|_| verified).map(str::to_lowercase).ok_or("no_email")?;
            Ok(Identity {
                provider: "google",
                provider_id: id,
                email,
                name: claims["name"].as_str().map(str::to_string),
                avatar: claims["picture"].as_str().map(str::to_string),
                login: None,
            })
        }
    }
}

/// The payload of a JWT (not verified: see the caller).
fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&crate::integrations::services::google::b64url_decode(payload)?).ok()
}

async fn complete(
    ctx: &Ctx,
    p: Provider,
    code: &str,
    state: &str,
    redirect_uri: &str,
    invite: Option<&str>,
) -> Result<String, &'static str> {
    // Answers the user's id once they are admitted and the provider's token is stored.
    let key = var(&ctx.env, "ENCRYPTION_KEY").ok_or("oauth_error")?;
    let verifier = oauth::pkce_verifier(&key, state);
    let grant = oauth::exchange(&Net, p.spec(), &ctx.env, code, redirect_uri, &verifier, ctx.now / 1000)
        .await
        .map_err(|e| match e {
            GrantError::NotConfigured(_) => "oauth_error",
            _ => "token_exchange_failed",
        })?;
    let who = identity(ctx, p, &grant).await?;
    let db = ctx.db().map_err(|_| "oauth_error")?;
    let user_id = access::admit(ctx, &db, &who, invite).await?;
    store_token(ctx, &db, p, &user_id, &grant).await.map_err(|e| {
        config::log_error(&format!("{} sign-in: token storage failed: {}", p.name(), e.message));
        "oauth_error"
    })?;
    Ok(user_id)
}

/// The one-time code the frontend exchanges for a session (`POST /auth/exchange`).
async fn one_time_code(ctx: &Ctx, p: Provider, user_id: &str) -> Result<String, &'static str> {
    let db = ctx.db().map_err(|_| "oauth_error")?;
    let one_time = random_token::<32>();
    crate::q!(
        &db,
        "INSERT INTO signin_codes (code_hash, user_id, provider, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        &sha256_hex(one_time.as_bytes()),
        &user_id,
        &p.name(),
        &iso(ctx.now + CODE_TTL_MS),
        &iso(ctx.now)
    )
    .map_err(|_| "oauth_error")?
    .exec()
    .await
    .map_err(|_| "oauth_error")?;
    Ok(one_time)
}

/// The provider's token, sealed (associated data = provider + user).
async fn store_token(
    ctx: &Ctx,
    db: &worker::d1::D1Database,
    p: Provider,
    user_id: &str,
    grant: &Credentials,
) -> ApiResult<()> {
    let access = grant.get("access_token").cloned().unwrap_or_default();
    if p == Provider::GitHub {
        let scopes = grant.get("scope").cloned().unwrap_or_else(|| GITHUB.scopes.join(","));
        return crate::github::token::store(db, &config::keyring(&ctx.env)?, user_id, &access, &scopes, ctx.now).await;
    }
    let keys = config::keyring(&ctx.env)?;
    let purpose = "oauth:google";
    let sealed = keys.seal_str(&Aad { purpose, owner: user_id }, &access);
    let refresh =
        grant.get("refresh_token").map(|r| keys.seal_str(&Aad { purpose: "oauth:google:refresh", owner: user_id }, r));
    let expires = grant.get("expires_at").and_then(|e| e.parse::<Millis>().ok()).map(|s| iso(s * 1000));
    crate::q!(
        db,
        "INSERT INTO oauth_tokens (id, user_id, provider, encrypted_access_token, encrypted_refresh_token, scopes, expires_at, created_at, updated_at)
         VALUES (?1, ?2, 'google', ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT(user_id, provider) DO UPDATE SET encrypted_access_token = excluded.encrypted_access_token,
           encrypted_refresh_token = COALESCE(excluded.encrypted_refresh_token, oauth_tokens.encrypted_refresh_token),
           scopes = COALESCE(excluded.scopes, oauth_tokens.scopes), expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        &uuid::Uuid::new_v4().to_string(),
        &user_id,
        &sealed,
        &refresh,
        &grant.get("scope"),
        &expires,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct CodeRow {
    user_id: String,
    provider: String,
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    role: String,
}

/// `POST /auth/exchange {code, provider?}` → `{token, expiresAt, user}` (the code works once,
/// for 60 seconds).
pub async fn exchange(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    let code = input.str("code", 1, 200);
    let expected = input.opt_enum("provider", &["github", "google"], Provider::parse);
    input.finish()?;
    let db = ctx.db()?;
    let row: Option<CodeRow> = crate::q!(
        &db,
        "DELETE FROM signin_codes WHERE code_hash = ?1 AND expires_at > ?2 RETURNING user_id, provider",
        &sha256_hex(code.as_bytes()),
        &iso(ctx.now)
    )?
    .one()
    .await?;
    let invalid = || ApiError::new(400, "INVALID_CODE", "Unknown, expired or already used sign-in code");
    let row = row.ok_or_else(invalid)?;
    if expected.is_some_and(|p| p.name() != row.provider) {
        return Err(invalid());
    }
    let token = random_token::<32>();
    let expires = iso(ctx.now + SESSION_TTL_MS);
    let results = db
        .batch_rows(vec![
            crate::q!(
                &db,
                "INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &uuid::Uuid::new_v4().to_string(),
                &row.user_id,
                &sha256_hex(token.as_bytes()),
                &row.provider,
                &expires,
                &iso(ctx.now)
            )?,
            crate::q!(&db, "SELECT id, email, name, role FROM users WHERE id = ?1", &row.user_id)?,
        ])
        .await?;
    let user: UserRow = results[1].results()?.into_iter().next().ok_or_else(invalid)?;
    Reply::ok(&json!({
        "token": token, "expiresAt": expires,
        "user": { "id": user.id, "email": user.email, "name": user.name, "role": user.role },
    }))
}

/// `POST /auth/logout`: revokes the calling sign-in session.
pub async fn logout(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    if caller.token_table != "auth_sessions" {
        return Err(ApiError::new(
            400,
            "NOT_A_SESSION",
            "Sign out with a sign-in session token; API tokens are revoked with DELETE /api/api-tokens/:id",
        ));
    }
    crate::q!(&ctx.db()?, "DELETE FROM auth_sessions WHERE id = ?1 AND user_id = ?2", &caller.token_id, &caller.id)?
        .exec()
        .await?;
    Reply::ok(&success())
}

#[derive(Deserialize)]
struct SessionRow {
    id: String,
    provider: String,
    created_at: String,
    expires_at: String,
    last_used_at: Option<String>,
}

/// `GET /api/me/sessions` → `{sessions: [{id, provider, createdAt, expiresAt, lastUsedAt?, current}]}`.
pub async fn sessions(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let rows: Vec<SessionRow> = crate::q!(
        &ctx.db()?,
        "SELECT id, provider, created_at, expires_at, last_used_at FROM auth_sessions
          WHERE user_id = ?1 AND julianday(expires_at) > julianday(?2) ORDER BY created_at DESC, id DESC LIMIT 100",
        &caller.id,
        &iso(ctx.now)
    )?
    .rows()
    .await?
    .results()?;
    let current = |id: &str| caller.token_table == "auth_sessions" && caller.token_id == id;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = json!({ "id": r.id, "provider": r.provider, "createdAt": normalize(&r.created_at), "expiresAt": normalize(&r.expires_at), "current": current(&r.id) });
            if let Some(l) = &r.last_used_at {
                v["lastUsedAt"] = json!(normalize(l));
            }
            v
        })
        .collect();
    Reply::ok(&json!({ "sessions": list }))
}

/// `DELETE /api/me/sessions/:id`: revokes one of the caller's sign-in sessions (its API tokens
/// stay: they are revoked on their own).
pub async fn revoke_session(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let id = ctx.params.get("id");
    let r = crate::q!(&ctx.db()?, "DELETE FROM auth_sessions WHERE id = ?1 AND user_id = ?2", &id, &caller.id)?
        .exec()
        .await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found(format!("Session '{id}' not found")));
    }
    Reply::ok(&success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_payloads() {
        let claims = json!({ "sub": "1", "email": "a@b.c", "email_verified": true });
        let token = format!("e30.{}.sig", crate::integrations::services::google::b64url(claims.to_string().as_bytes()));
        assert_eq!(jwt_claims(&token), Some(claims));
        assert_eq!(jwt_claims("garbage"), None);
    }
}
