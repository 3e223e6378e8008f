//! Notion's webhook (README, "Webhooks from other services"). Notion proves a subscription by
//! posting a `verification_token` that then signs every event; whoever posts first must not
//! become that key. So a token is taken only while an admin has a verification window open (15
//! minutes), every token received in it is held pending (sealed, at most 20), admins list them
//! and confirm the one Notion accepted, and events are checked against the confirmed token
//! alone (503 until there is one).

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

use crate::crypto::{sha256_hex, Aad, Legacy};
use crate::http::input::Input;
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::time::{iso, normalize, Millis};

const NOTION: &str = "notion";
/// The confirmed token (`webhook_secrets`; the re-seal job knows this purpose).
const CONFIRMED_PURPOSE: &str = "webhook:notion:verification-token";
/// A pending token, bound to its row by the token's hash.
const PENDING_PURPOSE: &str = "webhook:notion:pending-verification-token";
/// How long a verification window stays open.
const WINDOW_MS: Millis = 15 * 60 * 1000;
/// Tokens one window holds: whoever floods it fills it, and the admin opens a new one.
const MAX_PENDING: i64 = 20;
const MAX_TOKEN_LEN: usize = 500;

fn confirmed_aad() -> Aad<'static> {
    Aad { purpose: CONFIRMED_PURPOSE, owner: NOTION }
}

fn pending_aad(hash: &str) -> Aad<'_> {
    Aad { purpose: PENDING_PURPOSE, owner: hash }
}

/// `POST /webhooks/notion`: a verification request (`{verification_token}` alone) is held
/// pending while a window is open; anything else is an event, verified with the confirmed token.
pub async fn webhook(ctx: &Ctx) -> ApiResult<Reply> {
    let v = super::json_body(ctx)?;
    if let Some(token) = v["verification_token"].as_str().filter(|_| v.as_object().is_some_and(|o| o.len() == 1)) {
        return hold(ctx, token).await;
    }
    let sealed = confirmed_sealed(&ctx.db()?)
        .await?
        .ok_or_else(|| super::not_configured("Notion (no confirmed verification token)"))?;
    let (token, _) = crate::config::keyring(&ctx.env)?
        .open_str(&confirmed_aad(), &sealed, Legacy::D1Column)
        .map_err(|_| ApiError::internal("the Notion verification token could not be decrypted"))?;
    let signature = ctx.header("X-Notion-Signature").unwrap_or_default();
    if !super::signatures::notion_valid(&token, &ctx.raw_body(), signature.trim()) {
        return Err(super::bad_signature());
    }
    let id = v["id"].as_str().map(str::to_string).unwrap_or_else(|| sha256_hex(&ctx.raw_body()));
    let new = super::record(ctx, NOTION, &[(id, v["type"].as_str().map(str::to_string))]).await?;
    let mut body = json!({ "received": true });
    if new == 0 {
        body["duplicate"] = json!(true);
    }
    Reply::ok(&body)
}

/// A verification request: held pending inside an open window (once per token), refused with
/// 409 and stored nowhere otherwise.
async fn hold(ctx: &Ctx, token: &str) -> ApiResult<Reply> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::invalid_field("verification_token", "Too long"));
    }
    let hash = sha256_hex(token.as_bytes());
    let sealed = crate::config::keyring(&ctx.env)?.seal_str(&pending_aad(&hash), token);
    let db = ctx.db()?;
    let now = iso(ctx.now);
    if insert_pending(&db, &hash, &sealed, &now).await? {
        return Reply::ok(&json!({ "received": true, "verification": true }));
    }
    // Nothing was inserted: say why (a token already held is the same request again).
    match why_not_held(&db, &hash, &now).await? {
        NotHeld::AlreadyHeld => Reply::ok(&json!({ "received": true, "verification": true })),
        NotHeld::WindowClosed => Err(ApiError::conflict(
            "VERIFICATION_WINDOW_CLOSED",
            "No Notion verification window is open: an admin opens one with POST /api/admin/webhooks/notion/verification",
        )),
        NotHeld::Full => Err(ApiError::conflict(
            "TOO_MANY_PENDING_TOKENS",
            format!("The verification window already holds {MAX_PENDING} tokens"),
        )),
    }
}

/// `POST /api/admin/webhooks/notion/verification` → `{windowEndsAt}`: opens (or restarts) the
/// window and forgets the tokens of an earlier one. A confirmed token keeps verifying events
/// until another is confirmed.
pub async fn open_window(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let ends_at = iso(ctx.now + WINDOW_MS);
    db.batch_rows(vec![
        crate::q!(&db, "DELETE FROM webhook_verification_pending WHERE provider = ?1", &NOTION)?,
        crate::q!(
            &db,
            "INSERT INTO webhook_verification_windows (provider, ends_at, opened_by, opened_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(provider) DO UPDATE SET ends_at = excluded.ends_at, opened_by = excluded.opened_by, opened_at = excluded.opened_at",
            &NOTION,
            &ends_at,
            &caller.id,
            &iso(ctx.now)
        )?,
    ])
    .await?;
    Reply::ok(&json!({ "windowEndsAt": ends_at }))
}

#[derive(Deserialize)]
struct PendingRow {
    token_hash: String,
    sealed: String,
    received_at: String,
}

#[derive(Deserialize)]
struct At {
    at: String,
}

/// `GET /api/admin/webhooks/notion/verification` → `{pending: [{token, receivedAt}],
/// windowEndsAt, confirmedAt}` (the two times null when there is no open window / no
/// confirmed token). The confirmed token itself is never shown again.
pub async fn verification(ctx: &Ctx) -> ApiResult<Reply> {
    let db = ctx.db()?;
    let now = iso(ctx.now);
    let results = db
        .batch_rows(vec![
            crate::q!(
                &db,
                "SELECT token_hash, sealed, received_at FROM webhook_verification_pending WHERE provider = ?1
                  ORDER BY received_at, token_hash",
                &NOTION
            )?,
            crate::q!(
                &db,
                "SELECT ends_at AS at FROM webhook_verification_windows WHERE provider = ?1 AND ends_at > ?2",
                &NOTION,
                &now
            )?,
            crate::q!(&db, "SELECT created_at AS at FROM webhook_secrets WHERE provider = ?1", &NOTION)?,
        ])
        .await?;
    let [pending, window, confirmed] = <[_; 3]>::try_from(results).map_err(|_| ApiError::internal("D1 batch size"))?;
    let keys = crate::config::keyring(&ctx.env)?;
    let mut tokens = Vec::new();
    for row in pending.results::<PendingRow>()? {
        match keys.open_str(&pending_aad(&row.token_hash), &row.sealed, Legacy::D1Column) {
            Ok((token, _)) => tokens.push(json!({ "token": token, "receivedAt": normalize(&row.received_at) })),
            // A token sealed under a key that is gone: useless, and not worth failing the list.
            Err(_) => crate::config::log_error("a pending Notion verification token opens with no configured key"),
        }
    }
    let at = |rows: &crate::db::Rows| -> ApiResult<Option<String>> {
        Ok(rows.results::<At>()?.into_iter().next().map(|r| normalize(&r.at)))
    };
    Reply::ok(&json!({ "pending": tokens, "windowEndsAt": at(&window)?, "confirmedAt": at(&confirmed)? }))
}

/// `POST /api/admin/webhooks/notion/verification/confirm` `{token}` → `{ok, confirmedAt}`: the
/// pending token becomes the one events are verified with; the window closes and the other
/// pending tokens are dropped. A token never received in a window is a 404.
pub async fn confirm(ctx: &Ctx) -> ApiResult<Reply> {
    let mut input = Input::parse(&ctx.raw_body())?;
    // Exactly as received (no trimming): it is matched by its hash.
    let token = input.opt_text("token", MAX_TOKEN_LEN);
    if !input.has("token") || token.as_deref() == Some("") {
        input.error("token", "Required");
    }
    input.finish()?;
    let token = token.unwrap_or_default();
    let db = ctx.db()?;
    let hash = sha256_hex(token.as_bytes());
    let held: Option<Value> = crate::q!(
        &db,
        "SELECT 1 AS held FROM webhook_verification_pending WHERE provider = ?1 AND token_hash = ?2",
        &NOTION,
        &hash
    )?
    .one()
    .await?;
    if held.is_none() {
        return Err(ApiError::not_found("No pending Notion verification token matches"));
    }
    let sealed = crate::config::keyring(&ctx.env)?.seal_str(&confirmed_aad(), &token);
    let now = iso(ctx.now);
    db.batch_rows(vec![
        crate::q!(
            &db,
            "INSERT INTO webhook_secrets (provider, sealed, shown_at, created_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(provider) DO UPDATE SET sealed = excluded.sealed, shown_at = excluded.shown_at, created_at = excluded.created_at",
            &NOTION,
            &sealed,
            &now
        )?,
        crate::q!(&db, "DELETE FROM webhook_verification_pending WHERE provider = ?1", &NOTION)?,
        crate::q!(&db, "DELETE FROM webhook_verification_windows WHERE provider = ?1", &NOTION)?,
    ])
    .await?;
    Reply::ok(&json!({ "ok": true, "confirmedAt": now }))
}

/// `DELETE /api/admin/webhooks/notion/verification-token`: forget the confirmed token (events
/// answer 503 until another is confirmed).
pub async fn forget(ctx: &Ctx) -> ApiResult<Reply> {
    let r = crate::q!(&ctx.db()?, "DELETE FROM webhook_secrets WHERE provider = ?1", &NOTION)?.exec().await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found("No Notion verification token is stored"));
    }
    Reply::ok(&json!({ "ok": true }))
}

#[derive(Deserialize)]
struct Sealed {
    sealed: String,
}

async fn confirmed_sealed(db: &D1Database) -> ApiResult<Option<String>> {
    let row: Option<Sealed> =
        crate::q!(db, "SELECT sealed FROM webhook_secrets WHERE provider = ?1", &NOTION)?.one().await?;
    Ok(row.map(|r| r.sealed))
}

/// Holds a token when a window is open and not full, in one statement (no race between the
/// check and the write); answers whether it was inserted.
async fn insert_pending(db: &D1Database, hash: &str, sealed: &str, now: &str) -> ApiResult<bool> {
    let r = crate::q!(
        db,
        "INSERT INTO webhook_verification_pending (provider, token_hash, sealed, received_at)
         SELECT ?1, ?2, ?3, ?4
          WHERE EXISTS (SELECT 1 FROM webhook_verification_windows WHERE provider = ?1 AND ends_at > ?4)
            AND (SELECT COUNT(*) FROM webhook_verification_pending WHERE provider = ?1) < ?5
         ON CONFLICT(provider, token_hash) DO NOTHING",
        &NOTION,
        &hash,
        &sealed,
        &now,
        &MAX_PENDING
    )?
    .exec()
    .await?;
    Ok(r.changes() > 0)
}

enum NotHeld {
    AlreadyHeld,
    WindowClosed,
    Full,
}

#[derive(Deserialize)]
struct HoldState {
    held: i64,
    open: i64,
}

async fn why_not_held(db: &D1Database, hash: &str, now: &str) -> ApiResult<NotHeld> {
    let state: Option<HoldState> = crate::q!(
        db,
        "SELECT EXISTS (SELECT 1 FROM webhook_verification_pending WHERE provider = ?1 AND token_hash = ?2) AS held,
                EXISTS (SELECT 1 FROM webhook_verification_windows WHERE provider = ?1 AND ends_at > ?3) AS open",
        &NOTION,
        &hash,
        &now
    )?
    .one()
    .await?;
    Ok(match state {
        Some(s) if s.held == 1 && s.open == 1 => NotHeld::AlreadyHeld,
        Some(s) if s.open == 1 => NotHeld::Full,
        _ => NotHeld::WindowClosed,
    })
}
