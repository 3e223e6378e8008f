//! Who may get in (README, "Accounts and access"): an existing user; a valid invite (by code, or open for that
//! email), consumed atomically; `org_settings` domain gating and email allow-list when enabled;
//! `ALLOWED_EMAILS` / `ALLOWED_EMAIL_DOMAINS`. With none of these configured only the very first
//! user may sign up (and becomes admin). Only verified provider emails count, and an existing
//! account is linked by email only through a verified one. Also the org-settings and invites
//! admin routes.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

use crate::config::{log_error, var};
use crate::crypto::{random_token, sha256_hex};
use crate::http::input::Input;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::time::{iso, normalize};

/// A provider's account, as sign-in learned it (the email is a verified one).
pub struct Identity {
    pub provider: &'static str,
    pub provider_id: String,
    pub email: String,
    pub name: Option<String>,
    pub avatar: Option<String>,
    /// The GitHub login.
    pub login: Option<String>,
}

#[derive(Deserialize, Default)]
struct Settings {
    name: String,
    allowed_email_domain: Option<String>,
    allowed_emails: Option<String>,
    domain_gating_enabled: i64,
    email_allowlist_enabled: i64,
}

fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("").split([',', '\n', ' ']).map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
}

fn domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The sign-up rules after users and invites (pure, unit-tested): `Some(true)` admitted by a
/// configured rule, `Some(false)` refused by configured rules, `None` nothing is configured.
pub fn gate(
    email: &str,
    org_domains: Option<&[String]>,
    org_emails: Option<&[String]>,
    env_emails: &[String],
    env_domains: &[String],
) -> Option<bool> {
    let mut configured = false;
    if let Some(domains) = org_domains {
        configured = true;
        if domains.iter().any(|d| d == domain(email)) {
            return Some(true);
        }
    }
    if let Some(emails) = org_emails {
        configured = true;
        if emails.iter().any(|e| e == email) {
            return Some(true);
        }
    }
    if !env_emails.is_empty() || !env_domains.is_empty() {
        configured = true;
        if env_emails.iter().any(|e| e == email) || env_domains.iter().any(|d| d == domain(email)) {
            return Some(true);
        }
    }
    configured.then_some(false)
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Role {
    role: String,
}

/// Finds or creates the user behind `who`; each refusal is the frontend's error code.
pub async fn admit(ctx: &Ctx, db: &D1Database, who: &Identity, invite: Option<&str>) -> Result<String, &'static str> {
    let err = |e: worker::Error| {
        log_error(&format!("sign-in: {e}"));
        "oauth_error"
    };
    let id_column = if who.provider == "github" { "github_id" } else { "google_id" };
    let now = iso(ctx.now);
    // 1. An existing user: by the provider's id, else by the (verified) email, linked now.
    let existing: Option<Id> = crate::q!(
        db,
        &format!("SELECT id FROM users WHERE {id_column} = ?1 UNION ALL SELECT id FROM users WHERE email = ?2 LIMIT 1"),
        &who.provider_id,
        &who.email
    )
    .map_err(err)?
    .one()
    .await
    .map_err(err)?;
    if let Some(u) = existing {
        update_profile(db, who, &u.id, &now).await.map_err(err)?;
        return Ok(u.id);
    }
    // 2. An invite: the one whose code came with this sign-in, or one open for this email.
    let by_code: Option<Role> = match invite {
        Some(code) => crate::q!(
            db,
            "UPDATE invites SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL AND expires_at > ?1
               AND (email IS NULL OR email = ?3) RETURNING role",
            &now,
            &sha256_hex(code.as_bytes()),
            &who.email
        )
        .map_err(err)?
        .one()
        .await
        .map_err(err)?,
        None => None,
    };
    let invited = match by_code {
        Some(r) => Some(r),
        None => crate::q!(
            db,
            "UPDATE invites SET used_at = ?1 WHERE id = (SELECT id FROM invites WHERE email = ?2 AND used_at IS NULL AND expires_at > ?1
               ORDER BY created_at LIMIT 1) AND used_at IS NULL RETURNING role",
            &now,
            &who.email
        )
        .map_err(err)?
        .one()
        .await
        .map_err(err)?,
    };
    let user_id = uuid::Uuid::new_v4().to_string();
    let created = if let Some(invite) = invited {
        insert_user(db, who, &user_id, &invite.role, false, &now).await.map_err(err)?
    } else {
        // 3–4. Org settings, then the environment's allow-lists.
        let s: Settings = crate::q!(db, "SELECT * FROM org_settings WHERE id = 'default'")
            .map_err(err)?
            .one()
            .await
            .map_err(err)?
            .unwrap_or_default();
        let env = |n: &str| list(var(&ctx.env, n).as_deref());
        let org_domains = (s.domain_gating_enabled != 0).then(|| list(s.allowed_email_domain.as_deref()));
        let org_emails = (s.email_allowlist_enabled != 0).then(|| list(s.allowed_emails.as_deref()));
        match gate(
            &who.email,
            org_domains.as_deref(),
            org_emails.as_deref(),
            &env("ALLOWED_EMAILS"),
            &env("ALLOWED_EMAIL_DOMAINS"),
        ) {
            Some(true) => insert_user(db, who, &user_id, "member", true, &now).await.map_err(err)?,
            Some(false) => return Err("not_allowed"),
            // 5. Nothing configured: only the very first user, who becomes the admin.
            None => insert_user_if_first(db, who, &user_id, &now).await.map_err(err)?,
        }
    };
    if !created {
        return Err("not_allowed");
    }
    if let Some(code) = invite {
        // Record who used the invite (best effort: it is already consumed).
        let _ = async {
            crate::q!(
                db,
                "UPDATE invites SET used_by = ?1 WHERE code_hash = ?2",
                &user_id,
                &sha256_hex(code.as_bytes())
            )?
            .exec()
            .await
        }
        .await;
    }
    Ok(user_id)
}

async fn update_profile(db: &D1Database, who: &Identity, user_id: &str, now: &str) -> worker::Result<()> {
    let sql = if who.provider == "github" {
        "UPDATE users SET github_id = ?2, github_username = ?3, name = COALESCE(name, ?4), avatar_url = COALESCE(?5, avatar_url), updated_at = ?6
          WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM users WHERE github_id = ?2 AND id <> ?1)"
    } else {
        "UPDATE users SET google_id = ?2, name = COALESCE(name, ?4), avatar_url = COALESCE(avatar_url, ?5), updated_at = ?6
          WHERE id = ?1 AND ?3 IS NULL AND NOT EXISTS (SELECT 1 FROM users WHERE google_id = ?2 AND id <> ?1)"
    };
    crate::q!(db, sql, &user_id, &who.provider_id, &who.login, &who.name, &who.avatar, &now)?.exec().await?;
    Ok(())
}

fn columns(who: &Identity) -> (&'static str, Option<String>, Option<String>) {
    if who.provider == "github" {
        ("github_id", Some(who.provider_id.clone()), who.login.clone())
    } else {
        ("google_id", Some(who.provider_id.clone()), None)
    }
}

/// Inserts a user; a user admitted by an allow-list on an empty deployment is its admin.
async fn insert_user(
    db: &D1Database,
    who: &Identity,
    id: &str,
    role: &str,
    first_is_admin: bool,
    now: &str,
) -> worker::Result<bool> {
    let (col, pid, login) = columns(who);
    let role_sql =
        if first_is_admin { "CASE WHEN (SELECT COUNT(*) FROM users) = 0 THEN 'admin' ELSE ?7 END" } else { "?7" };
    let r = crate::q!(
        db,
        &format!(
            "INSERT INTO users (id, email, name, avatar_url, {col}, github_username, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, {role_sql}, ?8, ?8) ON CONFLICT DO NOTHING"
        ),
        &id,
        &who.email,
        &who.name,
        &who.avatar,
        &pid,
        &login,
        &role,
        &now
    )?
    .exec()
    .await?;
    Ok(r.changes() > 0)
}

/// The first-user rule, atomically: the insert happens only while the table is empty.
async fn insert_user_if_first(db: &D1Database, who: &Identity, id: &str, now: &str) -> worker::Result<bool> {
    let (col, pid, login) = columns(who);
    let r = crate::q!(
        db,
        &format!(
            "INSERT INTO users (id, email, name, avatar_url, {col}, github_username, role, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'admin', ?7, ?7 WHERE NOT EXISTS (SELECT 1 FROM users)"
        ),
        &id,
        &who.email,
        &who.name,
        &who.avatar,
        &pid,
        &login,
        &now
    )?
    .exec()
    .await?;
    Ok(r.changes() > 0)
}

fn settings_view(s: &Settings) -> Value {
    json!({
        "name": s.name, "domainGatingEnabled": s.domain_gating_enabled != 0, "allowedDomains": list(s.allowed_email_domain.as_deref()),
        "emailAllowlistEnabled": s.email_allowlist_enabled != 0, "allowedEmails": list(s.allowed_emails.as_deref()),
    })
}

async fn load_settings(ctx: &Ctx) -> ApiResult<Settings> {
    Ok(crate::q!(&ctx.db()?, "SELECT * FROM org_settings WHERE id = 'default'")?.one().await?.unwrap_or_default())
}

/// `GET /api/admin/org-settings`.
pub async fn get_settings(ctx: &Ctx) -> ApiResult<Reply> {
    Reply::ok(&settings_view(&load_settings(ctx).await?))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !e.contains(char::is_whitespace)
        && e.len() <= 254
        && !domain.contains('@')
}

fn valid_domain(d: &str) -> bool {
    d.contains('.')
        && d.len() <= 253
        && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// `PUT /api/admin/org-settings` `{name?, domainGatingEnabled?, allowedDomains?, emailAllowlistEnabled?, allowedEmails?}`.
pub async fn put_settings(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    let name = input.opt_str("name", 1, 100);
    let gating = input.opt_bool("domainGatingEnabled");
    let allowlist = input.opt_bool("emailAllowlistEnabled");
    let domains = input
        .opt_str_list("allowedDomains", 100, 253)
        .map(|v| v.into_iter().map(|d| d.to_lowercase()).collect::<Vec<_>>());
    let emails = input
        .opt_str_list("allowedEmails", 1000, 254)
        .map(|v| v.into_iter().map(|e| e.to_lowercase()).collect::<Vec<_>>());
    if let Some(bad) = domains.iter().flatten().find(|d| !valid_domain(d)) {
        input.error("allowedDomains", format!("'{bad}' is not a domain"));
    }
    if let Some(bad) = emails.iter().flatten().find(|e| !valid_email(e)) {
        input.error("allowedEmails", format!("'{bad}' is not an email address"));
    }
    input.finish()?;
    let db = ctx.db()?;
    db.batch_rows(vec![
        crate::q!(&db, "INSERT INTO org_settings (id) VALUES ('default') ON CONFLICT DO NOTHING")?,
        crate::q!(
            &db,
            "UPDATE org_settings SET name = COALESCE(?1, name), domain_gating_enabled = COALESCE(?2, domain_gating_enabled),
               email_allowlist_enabled = COALESCE(?3, email_allowlist_enabled), allowed_email_domain = COALESCE(?4, allowed_email_domain),
               allowed_emails = COALESCE(?5, allowed_emails), updated_at = ?6 WHERE id = 'default'",
            &name,
            &gating.map(i32::from),
            &allowlist.map(i32::from),
            &domains.map(|d| d.join(",")),
            &emails.map(|e| e.join(",")),
            &iso(ctx.now)
        )?,
    ])
    .await?;
    Reply::ok(&settings_view(&load_settings(ctx).await?))
}

#[derive(Deserialize)]
struct InviteRow {
    id: String,
    email: Option<String>,
    role: String,
    expires_at: String,
    used_at: Option<String>,
    created_at: String,
}

impl Keyed for InviteRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

fn invite_view(r: &InviteRow) -> Value {
    json!({
        "id": r.id, "email": r.email, "role": r.role, "expiresAt": normalize(&r.expires_at),
        "usedAt": r.used_at.as_deref().map(normalize), "createdAt": normalize(&r.created_at),
    })
}

/// `POST /api/admin/invites {email?, role?, expiresInDays?}` → 201 `{invite: {id, code, email?, role, expiresAt}}`
/// (the code is shown once).
pub async fn create_invite(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let email = input.opt_str("email", 3, 254).map(|e| e.to_lowercase());
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        input.error("email", "Not an email address");
    }
    let role = input
        .opt_enum("role", &["member", "admin"], |r| ["member", "admin"].contains(&r).then(|| r.to_string()))
        .unwrap_or_else(|| "member".into());
    let days = input.opt_int("expiresInDays", 1, 90).unwrap_or(7);
    input.finish()?;
    let code = format!("inv_{}", random_token::<24>());
    let id = uuid::Uuid::new_v4().to_string();
    let expires = iso(ctx.now + days * 86_400_000);
    crate::q!(
        &ctx.db()?,
        "INSERT INTO invites (id, code_hash, email, role, created_by, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &id,
        &sha256_hex(code.as_bytes()),
        &email,
        &role,
        &caller.id,
        &expires,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    let mut invite = json!({ "id": id, "code": code, "role": role, "expiresAt": expires });
    if let Some(e) = email {
        invite["email"] = json!(e);
    }
    Reply::json(201, &json!({ "invite": invite }))
}

/// `GET /api/admin/invites` → `{invites, cursor?, hasMore}` (codes are never listed).
pub async fn list_invites(ctx: &Ctx) -> ApiResult<Reply> {
    let page = PageQuery::parse(&ctx.query, 50)?;
    let rows: Vec<InviteRow> = crate::http::page::newest_first(
        &ctx.db()?,
        "SELECT id, email, role, expires_at, used_at, created_at FROM invites WHERE ?1 = ?1",
        "",
        &page,
    )
    .await?;
    Reply::ok(&page_body("invites", &rows, page.limit, invite_view))
}

/// `DELETE /api/admin/invites/:id`.
pub async fn delete_invite(ctx: &Ctx) -> ApiResult<Reply> {
    let id = ctx.params.get("id");
    let r = crate::q!(&ctx.db()?, "DELETE FROM invites WHERE id = ?1", &id)?.exec().await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found(format!("Invite '{id}' not found")));
    }
    Reply::ok(&crate::http::success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gating_order_and_unconfigured() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(gate("a@corp.io", None, None, &[], &[]), None, "nothing configured");
        assert_eq!(gate("a@corp.io", Some(&v(&["corp.io"])), None, &[], &[]), Some(true));
        assert_eq!(gate("a@evil.io", Some(&v(&["corp.io"])), None, &[], &[]), Some(false));
        assert_eq!(gate("a@evil.io", Some(&v(&["corp.io"])), Some(&v(&["a@evil.io"])), &[], &[]), Some(true));
        assert_eq!(gate("b@x.io", None, None, &v(&["b@x.io"]), &[]), Some(true));
        assert_eq!(gate("c@x.io", None, None, &v(&["b@x.io"]), &v(&["y.io"])), Some(false));
        assert_eq!(gate("c@y.io", None, None, &[], &v(&["y.io"])), Some(true));
        assert_eq!(gate("c@sub.y.io", None, None, &[], &v(&["y.io"])), Some(false), "exact domains only");
        assert_eq!(gate("c@y.io", Some(&[]), None, &[], &[]), Some(false), "gating enabled with no domains refuses");
    }

    #[test]
    fn lists_and_addresses() {
        assert_eq!(list(Some("A@x.io, b@y.io\nc@z.io")), ["a@x.io", "b@y.io", "c@z.io"], "commas and newlines");
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a b@c.d"));
        assert!(valid_domain("corp.example"));
        assert!(!valid_domain("corp"));
    }
}
