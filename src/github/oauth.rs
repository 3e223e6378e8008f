//! Sign-in with GitHub (anchor §2.9, fixed): the `state` is random, stored hashed in D1,
//! single use, expiring in 10 minutes and bound to the browser by an HttpOnly cookie nonce.
//! The GitHub token is sealed into `oauth_tokens`; the session token reaches the frontend in
//! the URL fragment (never sent to a server, so it stays out of access logs).

use serde::Deserialize;
use serde_json::{json, Value};
use worker::Method;

use super::{api_url, token, web_url};
use crate::config::{self, var};
use crate::crypto::{random_token, sha256_hex};
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::outbound::Call;
use crate::time::iso;

const STATE_TTL_MS: i64 = 10 * 60 * 1000;
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
const COOKIE: &str = "gh_oauth_nonce";
pub const SCOPES: &str = "repo read:user user:email";

fn frontend(ctx: &Ctx) -> String {
    var(&ctx.env, "FRONTEND_URL").unwrap_or_else(|| "http://localhost:5173".into()).trim_end_matches('/').to_string()
}

fn redirect(location: &str) -> Reply {
    Reply::redirect(location)
}

fn fail(ctx: &Ctx, code: &str) -> ApiResult<Reply> {
    Ok(redirect(&format!("{}/login?error={code}", frontend(ctx))).with_header("Set-Cookie", clear_cookie()))
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/auth/github; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

/// `GET /auth/github` → 302 to GitHub's authorize page.
pub async fn start(ctx: &Ctx) -> ApiResult<Reply> {
    let client_id = var(&ctx.env, "GITHUB_CLIENT_ID").ok_or_else(|| {
        ApiError::new(503, "OAUTH_NOT_CONFIGURED", "GitHub sign-in is not configured (GITHUB_CLIENT_ID)")
    })?;
    let state = random_token::<32>();
    let nonce = random_token::<32>();
    let redirect_uri = format!("{}/auth/github/callback", ctx.public_origin());
    let db = ctx.db()?;
    crate::q!(
        &db,
        "INSERT INTO oauth_states (state_hash, purpose, browser_hash, redirect_uri, expires_at, created_at)
         VALUES (?1, 'login:github', ?2, ?3, ?4, ?5)",
        &sha256_hex(state.as_bytes()),
        &sha256_hex(nonce.as_bytes()),
        &redirect_uri,
        &iso(ctx.now + STATE_TTL_MS),
        &iso(ctx.now)
    )?
    .run()
    .await?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", &state)
        .append_pair("allow_signup", "true")
        .finish();
    Ok(redirect(&format!("{}/login/oauth/authorize?{query}", web_url(&ctx.env))).with_header(
        "Set-Cookie",
        format!("{COOKIE}={nonce}; Path=/auth/github; HttpOnly; Secure; SameSite=Lax; Max-Age=600"),
    ))
}

fn cookie(ctx: &Ctx, name: &str) -> Option<String> {
    let header = ctx.headers.get("Cookie").ok().flatten()?;
    header.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[derive(Deserialize)]
struct StateRow {
    redirect_uri: String,
    browser_hash: Option<String>,
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
}

/// `GET /auth/github/callback?code&state` → 302 to the frontend, with the session token in the
/// fragment on success or `?error=<code>` on failure.
pub async fn callback(ctx: &Ctx) -> ApiResult<Reply> {
    if let Some(err) = ctx.query.get("error") {
        let code = if err == "access_denied" { "access_denied" } else { "oauth_error" };
        return fail(ctx, code);
    }
    let (Some(code), Some(state)) = (ctx.query.get("code"), ctx.query.get("state")) else {
        return fail(ctx, "missing_params");
    };
    let db = ctx.db()?;
    // Consuming the state row is the single-use check: a second callback finds nothing.
    let row: Option<StateRow> = crate::q!(
        &db,
        "DELETE FROM oauth_states WHERE state_hash = ?1 AND purpose = 'login:github' AND expires_at > ?2
         RETURNING redirect_uri, browser_hash",
        &sha256_hex(state.as_bytes()),
        &iso(ctx.now)
    )?
    .first(None)
    .await?;
    let Some(row) = row else { return fail(ctx, "invalid_state") };
    let nonce_ok = match (cookie(ctx, COOKIE), row.browser_hash) {
        (Some(n), Some(h)) => crate::crypto::constant_time_eq(sha256_hex(n.as_bytes()).as_bytes(), h.as_bytes()),
        _ => false,
    };
    if !nonce_ok {
        return fail(ctx, "invalid_state");
    }
    match complete(ctx, code, &row.redirect_uri).await {
        Ok(session_token) => {
            Ok(redirect(&format!("{}/auth/callback#token={session_token}&provider=github", frontend(ctx)))
                .with_header("Set-Cookie", clear_cookie()))
        }
        Err(code) => fail(ctx, code),
    }
}

/// The rest of the flow; each failure is the error code the frontend receives.
async fn complete(ctx: &Ctx, code: &str, redirect_uri: &str) -> Result<String, &'static str> {
    let client_id = var(&ctx.env, "GITHUB_CLIENT_ID").ok_or("oauth_error")?;
    let secret = var(&ctx.env, "GITHUB_CLIENT_SECRET").ok_or("oauth_error")?;
    let exchange = Call::new(Method::Post, format!("{}/login/oauth/access_token", web_url(&ctx.env)))
        .header("Accept", "application/json")
        .json_body(
            &json!({ "client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": redirect_uri }),
        )
        .send()
        .await
        .map_err(|_| "token_exchange_failed")?;
    // GitHub reports a bad code as 200 with `{"error": "bad_verification_code"}`.
    let grant: Value = exchange.json().filter(|_| exchange.ok()).ok_or("token_exchange_failed")?;
    let access = grant["access_token"].as_str().filter(|t| !t.is_empty()).ok_or("token_exchange_failed")?.to_string();
    let scopes = grant["scope"].as_str().map(str::to_string).unwrap_or_else(|| SCOPES.replace(' ', ","));

    let gh = super::client::GitHub::new(&api_url(&ctx.env), &access);
    let profile: Value = gh.get("/user").await.ok().and_then(|r| r.json()).ok_or("github_profile_failed")?;
    let github_id = profile["id"].as_i64().ok_or("github_profile_failed")?.to_string();
    let login = profile["login"].as_str().unwrap_or_default().to_string();
    let mut email = profile["email"].as_str().map(str::to_string);
    if email.is_none() {
        let emails: Vec<Value> = gh.get("/user/emails").await.ok().and_then(|r| r.json()).unwrap_or_default();
        let verified = |e: &&Value| e["verified"].as_bool() == Some(true);
        email = emails
            .iter()
            .filter(verified)
            .find(|e| e["primary"].as_bool() == Some(true))
            .or_else(|| emails.iter().find(verified))
            .and_then(|e| e["email"].as_str().map(str::to_string));
    }
    let email = email.ok_or("no_email")?.to_lowercase();
    let db = ctx.db().map_err(|_| "oauth_error")?;
    let existing: Option<UserRow> = async {
        crate::q!(
            &db,
            "SELECT id FROM users WHERE github_id = ?1 UNION ALL SELECT id FROM users WHERE email = ?2 LIMIT 1",
            &github_id,
            &email
        )?
        .first(None)
        .await
    }
    .await
    .map_err(|_| "oauth_error")?;
    if existing.is_none() && !allowed(ctx, &email) {
        return Err("not_allowed");
    }
    let name = profile["name"].as_str().map(str::to_string).or_else(|| Some(login.clone()));
    let avatar = profile["avatar_url"].as_str().map(str::to_string);
    let now = iso(ctx.now);
    let user_id = match existing {
        Some(u) => u.id,
        None => uuid::Uuid::new_v4().to_string(),
    };
    // The first user of a fresh deployment becomes its admin.
    let upsert = async {
        crate::q!(
            &db,
            "INSERT INTO users (id, email, name, avatar_url, github_id, github_username, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN (SELECT COUNT(*) FROM users) = 0 THEN 'admin' ELSE 'member' END, ?7, ?7)
             ON CONFLICT(id) DO UPDATE SET github_id = ?5, github_username = ?6, name = COALESCE(users.name, ?3),
               avatar_url = ?4, updated_at = ?7",
            &user_id,
            &email,
            &name,
            &avatar,
            &github_id,
            &login,
            &now
        )?
        .run()
        .await
    };
    upsert.await.map_err(|e| {
        config::log_error(&format!("github login: user upsert failed: {e}"));
        "oauth_error"
    })?;
    let keys = config::keyring(&ctx.env).map_err(|_| "oauth_error")?;
    token::store(&db, &keys, &user_id, &access, &scopes, ctx.now).await.map_err(|_| "oauth_error")?;
    let session = random_token::<32>();
    let insert = async {
        crate::q!(
            &db,
            "INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at, created_at) VALUES (?1, ?2, ?3, 'github', ?4, ?5)",
            &uuid::Uuid::new_v4().to_string(),
            &user_id,
            &sha256_hex(session.as_bytes()),
            &iso(ctx.now + SESSION_TTL_MS),
            &now
        )?
        .run()
        .await
    };
    insert.await.map_err(|_| "oauth_error")?;
    Ok(session)
}

/// Optional sign-up allow-list: `ALLOWED_EMAILS` (comma-separated addresses) and/or
/// `ALLOWED_EMAIL_DOMAINS` (comma-separated domains). Unset → everyone may sign up.
fn allowed(ctx: &Ctx, email: &str) -> bool {
    let list = |name: &str| -> Vec<String> {
        var(&ctx.env, name)
            .map(|v| v.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    };
    email_allowed(email, &list("ALLOWED_EMAILS"), &list("ALLOWED_EMAIL_DOMAINS"))
}

pub fn email_allowed(email: &str, emails: &[String], domains: &[String]) -> bool {
    if emails.is_empty() && domains.is_empty() {
        return true;
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    emails.iter().any(|e| e == email) || domains.iter().any(|d| d == domain)
}

#[cfg(test)]
mod tests {
    use super::email_allowed;

    #[test]
    fn allow_lists() {
        let none: Vec<String> = vec![];
        assert!(email_allowed("a@x.com", &none, &none));
        assert!(email_allowed("a@x.com", &["a@x.com".into()], &none));
        assert!(!email_allowed("b@x.com", &["a@x.com".into()], &none));
        assert!(email_allowed("b@corp.io", &["a@x.com".into()], &["corp.io".into()]));
        assert!(!email_allowed("b@evilcorp.io", &none, &["corp.io".into()]));
    }
}
