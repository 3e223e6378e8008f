//! The OAuth 2.1 authorization server of `/mcp` (README, "Connecting a remote MCP client"):
//! RFC 9728 and RFC 8414 metadata, dynamic registration (RFC 7591) and client ID metadata
//! documents, the authorization endpoint with its sign-in round trip and server-rendered consent,
//! PKCE S256, single-use codes, rotating refresh tokens whose reuse revokes the family,
//! revocation (RFC 7009), and the user's list of authorized clients.
//!
//! Storage is D1 (`mcp_clients`, `mcp_codes`, `mcp_tokens`, `mcp_browser_sessions`): codes and
//! tokens only as SHA-256 hashes, so a database read gives nothing usable. Access tokens carry
//! the MCP resource as their audience and are accepted by `/mcp` only (`auth::authenticate_mcp`).

pub mod pages;
pub mod policy;

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Method;

use crate::config::var;
use crate::crypto::{random_token, sha256_hex};
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::limits::{self, Limit};
use crate::outbound::{Call, Http as _, Net};
use crate::time::iso;
use policy::{Client, OAuthError};

/// The MCP resource these tokens are for: `<PUBLIC_URL>/mcp`.
pub fn resource(ctx: &Ctx) -> String {
    format!("{}/mcp", ctx.public_origin())
}

/// The `WWW-Authenticate` challenge of a 401 from `/mcp` (MCP authorization, RFC 9728 §5.1).
pub fn challenge(public_origin: &str, token_given: bool) -> String {
    let error = if token_given { ", error=\"invalid_token\"" } else { "" };
    format!("Bearer resource_metadata=\"{public_origin}/.well-known/oauth-protected-resource/mcp\"{error}")
}

fn oauth_json(status: u16, body: &Value) -> ApiResult<Reply> {
    // RFC 6749 §5.1: token answers are never cached. Any origin may call these endpoints (no
    // cookie is involved): browser-based MCP clients register and exchange codes cross-origin.
    Ok(Reply::json(status, body)?
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
        .with_header("Access-Control-Allow-Origin", "*"))
}

fn oauth_error(e: OAuthError) -> ApiResult<Reply> {
    oauth_json(e.status, &e.body())
}

/// `GET /.well-known/oauth-protected-resource[/mcp]` (RFC 9728).
pub async fn protected_resource(ctx: &Ctx) -> ApiResult<Reply> {
    let origin = ctx.public_origin();
    oauth_json(
        200,
        &json!({
            "resource": format!("{origin}/mcp"),
            "authorization_servers": [origin],
            "bearer_methods_supported": ["header"],
            "scopes_supported": policy::SCOPES,
            "resource_name": "Integrations MCP server",
        }),
    )
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn authorization_server(ctx: &Ctx) -> ApiResult<Reply> {
    let o = ctx.public_origin();
    oauth_json(
        200,
        &json!({
            "issuer": o,
            "authorization_endpoint": format!("{o}/oauth/authorize"),
            "token_endpoint": format!("{o}/oauth/token"),
            "registration_endpoint": format!("{o}/oauth/register"),
            "revocation_endpoint": format!("{o}/oauth/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": policy::SCOPES,
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

/// `POST /oauth/register` (RFC 7591): a public client with its redirect URIs → 201.
pub async fn register(ctx: &Ctx) -> ApiResult<Reply> {
    let ip = ctx.header("CF-Connecting-IP").unwrap_or_else(|| "unknown".into());
    if !limits::allow(&ctx.env, Limit::SignIn, &ip).await {
        return Err(limits::too_many(Limit::SignIn));
    }
    let (name, uris) = match policy::parse_registration(&ctx.raw_body()) {
        Ok(v) => v,
        Err(e) => return oauth_error(e),
    };
    let client_id = format!("mcpc_{}", random_token::<16>());
    crate::q!(
        &ctx.db()?,
        "INSERT INTO mcp_clients (client_id, kind, client_name, redirect_uris, created_at) VALUES (?1, 'registered', ?2, ?3, ?4)",
        &client_id,
        &name,
        &serde_json::to_string(&uris).unwrap_or_default(),
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    let mut body = json!({
        "client_id": client_id,
        "client_id_issued_at": ctx.now / 1000,
        "redirect_uris": uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": policy::scope_string(&policy::SCOPES),
    });
    if let Some(n) = name {
        body["client_name"] = json!(n);
    }
    oauth_json(201, &body)
}

#[derive(Deserialize)]
struct ClientRow {
    client_id: String,
    client_name: Option<String>,
    redirect_uris: String,
    fetched_at: Option<String>,
}

impl ClientRow {
    fn client(self) -> Client {
        Client {
            client_id: self.client_id,
            client_name: self.client_name,
            redirect_uris: serde_json::from_str(&self.redirect_uris).unwrap_or_default(),
        }
    }
}

/// The client a `client_id` names: a registration, or a client ID metadata document (read
/// from its URL, cached for a day). `Err` is what the error page says.
async fn find_client(ctx: &Ctx, client_id: &str) -> ApiResult<Result<Client, String>> {
    if client_id.is_empty() || client_id.len() > 2000 {
        return Ok(Err("The request names no valid client_id.".into()));
    }
    let row: Option<ClientRow> = crate::q!(
        &ctx.db()?,
        "SELECT client_id, client_name, redirect_uris, fetched_at FROM mcp_clients WHERE client_id = ?1",
        &client_id
    )?
    .one()
    .await?;
    if !policy::is_metadata_url(client_id) {
        return Ok(row.map(ClientRow::client).ok_or_else(|| format!("No client is registered as {client_id:?}.")));
    }
    let fresh = row.as_ref().and_then(|r| r.fetched_at.as_deref()).and_then(crate::time::parse_iso);
    if let (Some(at), Some(row)) = (fresh, row) {
        if ctx.now - at < policy::METADATA_TTL_MS {
            return Ok(Ok(row.client()));
        }
    }
    let loopback = var(&ctx.env, "MCP_CLIENT_METADATA_ALLOW_LOOPBACK").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Err(why) = policy::metadata_url_ok(client_id, loopback) {
        return Ok(Err(format!("The client ID {client_id:?} cannot be used: {why}.")));
    }
    // Short and small: a slow or large host must not hold the authorization page.
    let call = Call::new(Method::Get, client_id)
        .header("Accept", "application/json")
        .timeout(std::time::Duration::from_secs(5))
        .max_bytes(policy::METADATA_MAX_BYTES)
        .no_redirects();
    let doc = match Net.send(call).await {
        Ok(up) if up.status == 200 => policy::parse_metadata_document(client_id, &up.body),
        Ok(up) => Err(format!("its metadata document answered HTTP {}", up.status)),
        Err(e) => Err(format!("its metadata document could not be read ({e})")),
    };
    let client = match doc {
        Ok(c) => c,
        Err(why) => return Ok(Err(format!("The client {client_id:?} cannot be used: {why}."))),
    };
    crate::q!(
        &ctx.db()?,
        "INSERT INTO mcp_clients (client_id, kind, client_name, redirect_uris, fetched_at, created_at)
         VALUES (?1, 'metadata', ?2, ?3, ?4, ?4)
         ON CONFLICT(client_id) DO UPDATE SET client_name = excluded.client_name,
           redirect_uris = excluded.redirect_uris, fetched_at = excluded.fetched_at",
        &client.client_id,
        &client.client_name,
        &serde_json::to_string(&client.redirect_uris).unwrap_or_default(),
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Ok(Ok(client))
}

fn error_page(status: u16, title: &str, detail: &str) -> ApiResult<Reply> {
    Ok(Reply::html(status, pages::error(title, detail)))
}

/// The parameters of an authorization request (query of the GET, form of the POST).
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    code_challenge: String,
    code_challenge_method: String,
    state: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

impl AuthRequest {
    fn from(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        AuthRequest {
            client_id: get("client_id").unwrap_or_default(),
            redirect_uri: get("redirect_uri").unwrap_or_default(),
            response_type: get("response_type").unwrap_or_default(),
            code_challenge: get("code_challenge").unwrap_or_default(),
            code_challenge_method: get("code_challenge_method").unwrap_or_default(),
            state: get("state"),
            scope: get("scope"),
            resource: get("resource"),
        }
    }

    /// The fields the consent form posts back, as they came.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("response_type", self.response_type.clone()),
            ("code_challenge", self.code_challenge.clone()),
            ("code_challenge_method", self.code_challenge_method.clone()),
        ];
        for (k, v) in [("state", &self.state), ("scope", &self.scope), ("resource", &self.resource)] {
            if let Some(v) = v {
                f.push((k, v.clone()));
            }
        }
        f
    }

    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields() {
            q.append_pair(k, &v);
        }
        q.finish()
    }

    /// What the CSRF token binds: every field that decides what is granted, and to whom.
    fn bound(&self) -> [&str; 5] {
        [
            &self.client_id,
            &self.redirect_uri,
            &self.code_challenge,
            self.scope.as_deref().unwrap_or(""),
            self.state.as_deref().unwrap_or(""),
        ]
    }
}

/// The checks of an authorization request once its client and redirect URI are trusted: a
/// failure here goes back to the client (RFC 6749 §4.1.2.1).
fn check(ctx: &Ctx, r: &AuthRequest) -> Result<Vec<&'static str>, OAuthError> {
    if r.response_type != "code" {
        return Err(OAuthError::new(400, "unsupported_response_type", "response_type must be \"code\""));
    }
    if r.code_challenge_method != "S256" || !policy::challenge_ok(&r.code_challenge) {
        return Err(OAuthError::request(
            "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256",
        ));
    }
    if let Some(res) = &r.resource {
        if res.trim_end_matches('/') != resource(ctx) {
            return Err(OAuthError::new(400, "invalid_target", format!("resource must be {}", resource(ctx))));
        }
    }
    policy::parse_scope(r.scope.as_deref())
}

/// Sends the client's redirect URI the outcome (with `state` and `iss`, RFC 9207).
fn back_to_client(ctx: &Ctx, r: &AuthRequest, params: &[(&str, &str)]) -> Reply {
    let issuer = ctx.public_origin();
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = &r.state {
        all.push(("state", s));
    }
    all.push(("iss", &issuer));
    Reply::redirect(&policy::redirect_with(&r.redirect_uri, &all))
}

/// The client and redirect URI of a request, or the error page to show instead.
async fn trusted(ctx: &Ctx, r: &AuthRequest) -> ApiResult<Result<Client, Reply>> {
    let client = match find_client(ctx, &r.client_id).await? {
        Ok(c) => c,
        Err(why) => return Ok(Err(error_page(400, "Unknown client", &why)?)),
    };
    if r.redirect_uri.is_empty() || !policy::redirect_matches(&client.redirect_uris, &r.redirect_uri) {
        return Ok(Err(error_page(
            400,
            "Redirect URI not registered",
            &format!(
                "{} did not register the redirect URI {:?}; nothing was sent to it.",
                client.display_name(),
                r.redirect_uri
            ),
        )?));
    }
    Ok(Ok(client))
}

fn host_of(uri: &str) -> String {
    url::Url::parse(uri).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
}

/// Sign-in providers configured on this deployment, each returning to `back`.
fn providers(ctx: &Ctx, back: &str) -> Vec<(&'static str, String)> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    [("GitHub", "github", "GITHUB_CLIENT_ID"), ("Google", "google", "GOOGLE_CLIENT_ID")]
        .into_iter()
        .filter(|(_, _, var_name)| var(&ctx.env, var_name).is_some())
        .map(|(label, path, _)| (label, format!("/auth/{path}?return_to={}", enc(back))))
        .collect()
}

#[derive(Deserialize)]
struct UserRow {
    email: String,
}

/// `GET /oauth/authorize`: the consent page (or the sign-in page first).
pub async fn authorize(ctx: &Ctx) -> ApiResult<Reply> {
    let r = AuthRequest::from(ctx.query.pairs());
    let client = match trusted(ctx, &r).await? {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let scopes = match check(ctx, &r) {
        Ok(s) => s,
        Err(e) => return Ok(back_to_client(ctx, &r, &[("error", e.error), ("error_description", &e.description)])),
    };
    let Some((user_id, browser)) = crate::signin::browser_user(ctx).await? else {
        let back = format!("/oauth/authorize?{}", r.query());
        let mut html = pages::sign_in(client.display_name(), &providers(ctx, &back));
        if let Some(code) = ctx.query.get("signin_error") {
            let why = match code {
                "not_allowed" => "This account may not sign up on this deployment (ask an admin for an invite).",
                "no_email" => "The provider did not give a verified email address.",
                _ => "Signing in did not complete.",
            };
            html = html.replacen(
                "<div class=\"row\">",
                &format!("<p role=\"alert\">{}</p><div class=\"row\">", pages::esc(why)),
                1,
            );
        }
        return Ok(Reply::html(200, html));
    };
    let user: Option<UserRow> = crate::q!(&ctx.db()?, "SELECT email FROM users WHERE id = ?1", &user_id)?.one().await?;
    let Some(user) = user else { return error_page(400, "Signed out", "Your account no longer exists.") };
    let key = var(&ctx.env, "ENCRYPTION_KEY").ok_or_else(ApiError::encryption_not_configured)?;
    let csrf = policy::csrf_token(&key, &browser, &r.bound());
    let fields = r.fields();
    let field_refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let html = pages::consent(&pages::Consent {
        client: client.display_name(),
        client_id: &client.client_id,
        redirect_host: &host_of(&r.redirect_uri),
        user_email: &user.email,
        scopes: &scopes,
        fields: &field_refs,
        csrf: &csrf,
    });
    Ok(Reply::html(200, html).with_header("Cache-Control", "no-store"))
}

/// `POST /oauth/authorize` (the consent form): approve → a code; deny → `access_denied`.
pub async fn decide(ctx: &Ctx) -> ApiResult<Reply> {
    let body = ctx.raw_body().to_vec();
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A form posted from another site: refused before anything is looked at.
    if let Some(origin) = ctx.header("Origin") {
        if origin != "null" && origin.trim_end_matches('/') != ctx.public_origin() && origin != ctx.origin {
            return error_page(403, "Request refused", "This form can only be sent from this service's own page.");
        }
    }
    let r = AuthRequest::from(&pairs);
    if let Err(page) = trusted(ctx, &r).await? {
        return Ok(page);
    }
    let expired = || {
        error_page(403, "This page expired", "The approval form is no longer valid. Start again from your MCP client.")
    };
    let Some((user_id, browser)) = crate::signin::browser_user(ctx).await? else { return expired() };
    let key = var(&ctx.env, "ENCRYPTION_KEY").ok_or_else(ApiError::encryption_not_configured)?;
    if !policy::csrf_ok(&key, &browser, &r.bound(), get("csrf").unwrap_or("")) {
        return expired();
    }
    let mut scopes = match check(ctx, &r) {
        Ok(s) => s,
        Err(e) => return Ok(back_to_client(ctx, &r, &[("error", e.error), ("error_description", &e.description)])),
    };
    if get("decision") != Some("approve") {
        return Ok(back_to_client(
            ctx,
            &r,
            &[("error", "access_denied"), ("error_description", "The user denied access")],
        ));
    }
    // Unticking "Make changes" narrows the grant to reading.
    if get("write") != Some("1") {
        scopes.retain(|s| *s != policy::WRITE);
    }
    if scopes.is_empty() {
        scopes.push(policy::READ);
    }
    let code = random_token::<32>();
    crate::q!(
        &ctx.db()?,
        "INSERT INTO mcp_codes (code_hash, client_id, user_id, redirect_uri, code_challenge, scope, resource, family_id, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &sha256_hex(code.as_bytes()),
        &r.client_id,
        &user_id,
        &r.redirect_uri,
        &r.code_challenge,
        &policy::scope_string(&scopes),
        &resource(ctx),
        &uuid::Uuid::new_v4().to_string(),
        &iso(ctx.now + policy::CODE_TTL_MS)
    )?
    .exec()
    .await?;
    Ok(back_to_client(ctx, &r, &[("code", &code)]))
}

fn form(ctx: &Ctx) -> Result<Vec<(String, String)>, OAuthError> {
    let ct = ctx.header("Content-Type").unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::request("The body must be application/x-www-form-urlencoded"));
    }
    let body = ctx.raw_body();
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    // RFC 6749 §3.2: parameters must not be repeated.
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(p, _)| p == k) {
            return Err(OAuthError::request(format!("The parameter {k} is repeated")));
        }
    }
    Ok(pairs)
}

/// Issues an access and a refresh token in `family` (the statements to run; the answer).
fn issue(
    ctx: &Ctx,
    family: &str,
    client_id: &str,
    user_id: &str,
    scope: &str,
    audience: &str,
) -> ApiResult<(Vec<worker::d1::D1PreparedStatement>, Value)> {
    let db = ctx.db()?;
    let access = format!("mcp_at_{}", random_token::<32>());
    let refresh = format!("mcp_rt_{}", random_token::<32>());
    let mut statements = Vec::new();
    for (kind, token, ttl) in
        [("access", &access, policy::ACCESS_TTL_MS), ("refresh", &refresh, policy::REFRESH_TTL_MS)]
    {
        statements.push(crate::q!(
            &db,
            "INSERT INTO mcp_tokens (id, family_id, kind, token_hash, client_id, user_id, scope, audience, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            &uuid::Uuid::new_v4().to_string(),
            &family,
            &kind,
            &sha256_hex(token.as_bytes()),
            &client_id,
            &user_id,
            &scope,
            &audience,
            &iso(ctx.now + ttl),
            &iso(ctx.now)
        )?);
    }
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": policy::ACCESS_TTL_MS / 1000,
        "refresh_token": refresh,
        "scope": scope,
    });
    Ok((statements, body))
}

#[derive(Deserialize)]
struct CodeRow {
    client_id: String,
    user_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    resource: String,
    family_id: String,
    used_at: Option<String>,
    expires_at: String,
}

#[derive(Deserialize)]
struct TokenRow {
    id: String,
    family_id: String,
    client_id: String,
    user_id: String,
    scope: String,
    audience: String,
    expires_at: String,
    used_at: Option<String>,
    revoked_at: Option<String>,
}

async fn revoke_family(ctx: &Ctx, family: &str) -> ApiResult<()> {
    crate::q!(
        &ctx.db()?,
        "UPDATE mcp_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
        &family,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    Ok(())
}

/// `POST /oauth/token`: `authorization_code` and `refresh_token` grants.
pub async fn token(ctx: &Ctx) -> ApiResult<Reply> {
    match grant(ctx).await? {
        Ok(body) => oauth_json(200, &body),
        Err(e) => oauth_error(e),
    }
}

async fn grant(ctx: &Ctx) -> ApiResult<Result<Value, OAuthError>> {
    let pairs = match form(ctx) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else { return Ok(Err(OAuthError::request("client_id is required"))) };
    let known: Option<Value> =
        crate::q!(&ctx.db()?, "SELECT 1 AS known FROM mcp_clients WHERE client_id = ?1", &client_id)?.one().await?;
    if known.is_none() {
        return Ok(Err(OAuthError::client(format!("Unknown client {client_id:?}"))));
    }
    match get("grant_type") {
        None => Ok(Err(OAuthError::request("grant_type is required"))),
        Some("authorization_code") => {
            let (Some(code), Some(verifier), Some(redirect)) = (get("code"), get("code_verifier"), get("redirect_uri"))
            else {
                return Ok(Err(OAuthError::request("code, code_verifier and redirect_uri are required")));
            };
            code_grant(ctx, client_id, code, verifier, redirect).await
        }
        Some("refresh_token") => {
            let Some(refresh) = get("refresh_token") else {
                return Ok(Err(OAuthError::request("refresh_token is required")));
            };
            refresh_grant(ctx, client_id, refresh, get("scope")).await
        }
        Some(other) => Ok(Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!("grant_type {other:?} is not supported (authorization_code, refresh_token)"),
        ))),
    }
}

async fn code_grant(
    ctx: &Ctx,
    client_id: &str,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> ApiResult<Result<Value, OAuthError>> {
    let db = ctx.db()?;
    // Marking the code used is the single-use check: of two concurrent exchanges one wins.
    let row: Option<CodeRow> = crate::q!(
        &db,
        "UPDATE mcp_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL
         RETURNING client_id, user_id, redirect_uri, code_challenge, scope, resource, family_id, used_at, expires_at",
        &sha256_hex(code.as_bytes()),
        &iso(ctx.now)
    )?
    .one()
    .await?;
    let Some(row) = row else {
        // A code used twice: the tokens issued for it are revoked (RFC 6749 §4.1.2).
        let used: Option<CodeRow> = crate::q!(
            &db,
            "SELECT client_id, user_id, redirect_uri, code_challenge, scope, resource, family_id, used_at, expires_at FROM mcp_codes WHERE code_hash = ?1",
            &sha256_hex(code.as_bytes())
        )?
        .one()
        .await?;
        if let Some(u) = used {
            revoke_family(ctx, &u.family_id).await?;
        }
        return Ok(Err(OAuthError::grant("The authorization code is unknown, expired or already used")));
    };
    debug_assert!(row.used_at.is_some());
    if crate::time::parse_iso(&row.expires_at).is_none_or(|e| e <= ctx.now) {
        return Ok(Err(OAuthError::grant("The authorization code expired")));
    }
    if row.client_id != client_id {
        return Ok(Err(OAuthError::grant("The authorization code was issued to another client")));
    }
    if row.redirect_uri != redirect {
        return Ok(Err(OAuthError::grant("redirect_uri does not match the authorization request")));
    }
    if !policy::pkce_ok(verifier, &row.code_challenge) {
        return Ok(Err(OAuthError::grant("The PKCE code_verifier does not match the code_challenge")));
    }
    let (statements, body) = issue(ctx, &row.family_id, client_id, &row.user_id, &row.scope, &row.resource)?;
    db.batch_rows(statements).await?;
    Ok(Ok(body))
}

async fn refresh_grant(
    ctx: &Ctx,
    client_id: &str,
    refresh: &str,
    scope: Option<&str>,
) -> ApiResult<Result<Value, OAuthError>> {
    let db = ctx.db()?;
    let row: Option<TokenRow> = crate::q!(
        &db,
        "SELECT id, family_id, client_id, user_id, scope, audience, expires_at, used_at, revoked_at FROM mcp_tokens
          WHERE token_hash = ?1 AND kind = 'refresh'",
        &sha256_hex(refresh.as_bytes())
    )?
    .one()
    .await?;
    let invalid = || Ok(Err(OAuthError::grant("The refresh token is unknown, expired or revoked")));
    let Some(row) = row else { return invalid() };
    if row.client_id != client_id {
        return Ok(Err(OAuthError::grant("The refresh token was issued to another client")));
    }
    if row.revoked_at.is_some() {
        return invalid();
    }
    if row.used_at.is_some() {
        // Reuse of a rotated refresh token: someone else holds a copy. The whole grant goes.
        revoke_family(ctx, &row.family_id).await?;
        return invalid();
    }
    if crate::time::parse_iso(&row.expires_at).is_none_or(|e| e <= ctx.now) {
        return invalid();
    }
    let granted = policy::scope_list(&row.scope);
    let scopes: Vec<&str> = match scope {
        None => granted.clone(),
        Some(s) => match policy::parse_scope(Some(s)) {
            Ok(asked) if asked.iter().all(|a| granted.contains(a)) => asked,
            Ok(_) => return Ok(Err(OAuthError::scope("A refresh cannot widen the granted scopes"))),
            Err(e) => return Ok(Err(e)),
        },
    };
    let claimed: Option<Value> = crate::q!(
        &db,
        "UPDATE mcp_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL RETURNING id",
        &row.id,
        &iso(ctx.now)
    )?
    .one()
    .await?;
    if claimed.is_none() {
        // Used concurrently: the same as reuse.
        revoke_family(ctx, &row.family_id).await?;
        return invalid();
    }
    let (statements, body) =
        issue(ctx, &row.family_id, client_id, &row.user_id, &policy::scope_string(&scopes), &row.audience)?;
    db.batch_rows(statements).await?;
    Ok(Ok(body))
}

/// `POST /oauth/revoke` (RFC 7009): a refresh token takes its whole grant with it; an access
/// token only itself. Unknown tokens are answered 200 as well.
pub async fn revoke(ctx: &Ctx) -> ApiResult<Reply> {
    let pairs = match form(ctx) {
        Ok(p) => p,
        Err(e) => return oauth_error(e),
    };
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let Some(token) = get("token") else { return oauth_error(OAuthError::request("token is required")) };
    let Some(client_id) = get("client_id") else { return oauth_error(OAuthError::request("client_id is required")) };
    #[derive(Deserialize)]
    struct Row {
        id: String,
        family_id: String,
        kind: String,
        client_id: String,
    }
    let row: Option<Row> = crate::q!(
        &ctx.db()?,
        "SELECT id, family_id, kind, client_id FROM mcp_tokens WHERE token_hash = ?1",
        &sha256_hex(token.as_bytes())
    )?
    .one()
    .await?;
    if let Some(row) = row.filter(|r| r.client_id == client_id) {
        if row.kind == "refresh" {
            revoke_family(ctx, &row.family_id).await?;
        } else {
            crate::q!(
                &ctx.db()?,
                "UPDATE mcp_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                &row.id,
                &iso(ctx.now)
            )?
            .exec()
            .await?;
        }
    }
    oauth_json(200, &json!({}))
}

#[derive(Deserialize)]
struct GrantRow {
    client_id: String,
    client_name: Option<String>,
    scope: String,
    created_at: String,
    last_used_at: Option<String>,
}

/// `GET /api/me/mcp-clients`: the clients holding a live grant of the caller's.
pub async fn list_clients(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let rows: Vec<GrantRow> = crate::q!(
        &ctx.db()?,
        "SELECT t.client_id, c.client_name, MAX(t.scope) AS scope, MIN(t.created_at) AS created_at,
                MAX(t.last_used_at) AS last_used_at
           FROM mcp_tokens t LEFT JOIN mcp_clients c ON c.client_id = t.client_id
          WHERE t.user_id = ?1 AND t.revoked_at IS NULL AND t.expires_at > ?2
            AND (t.kind = 'access' OR t.used_at IS NULL)
          GROUP BY t.client_id ORDER BY created_at DESC, t.client_id",
        &caller.id,
        &iso(ctx.now)
    )?
    .rows()
    .await?
    .results()?;
    let clients: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "clientId": r.client_id,
                "clientName": r.client_name.clone().unwrap_or_else(|| r.client_id.clone()),
                "scopes": policy::scope_list(&r.scope),
                "createdAt": r.created_at,
                "lastUsedAt": r.last_used_at,
            })
        })
        .collect();
    Reply::ok(&json!({ "clients": clients }))
}

/// `DELETE /api/me/mcp-clients/:clientId`: every grant of the caller's to that client ends.
pub async fn revoke_client(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let client_id = ctx.params.get("clientId");
    let revoked = crate::q!(
        &ctx.db()?,
        "UPDATE mcp_tokens SET revoked_at = ?3 WHERE user_id = ?1 AND client_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
        &caller.id,
        &client_id,
        &iso(ctx.now)
    )?
    .exec()
    .await?
    .changes();
    if revoked == 0 {
        return Err(ApiError::not_found(format!("No authorized MCP client '{client_id}'")));
    }
    Reply::ok(&crate::http::success())
}
