//! The push endpoints. Each is verified before it has any effect and fails closed, and each
//! only enqueues: one incremental run per integration, coalesced (the one-unfinished-run index
//! makes a flood of notifications one run; a notification during a running run asks the cron
//! for one more afterwards).
//!
//! - `POST /webhooks/google/pubsub`: Gmail's mailbox changes through a Pub/Sub push
//!   subscription, with Google's OIDC token (`oidc`); 503 without `GOOGLE_PUBSUB_AUDIENCE` and
//!   `GOOGLE_PUBSUB_SERVICE_ACCOUNT`; duplicates (same `messageId`) acknowledged once.
//! - `POST /webhooks/google/calendar`: Calendar channel notifications, checked by channel id
//!   (404 unknown or expired) and the channel's secret token (401, constant time).

use serde_json::json;
use worker::Env;

use super::oidc::{self, Refusal, Runtime};
use super::store;
use crate::config::{log_error, var};
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::http::error::FieldError;
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::integrations::runs;
use crate::integrations::store::IntegrationRow;
use crate::jobs::{self, Job};
use crate::time::{parse_stored, Millis};

const PUBSUB: &str = "google-pubsub";

/// Asks for an incremental run of `entities` (of one parent only, when given): `true` when a
/// run was created and enqueued, `false` when one was already waiting (coalesced).
pub async fn request_sync(
    env: &Env,
    row: &IntegrationRow,
    entities: Vec<String>,
    only_parent: Option<String>,
    now: Millis,
) -> ApiResult<bool> {
    let db = env.d1("DB")?;
    let created = runs::create_scoped(env, &db, row, entities, only_parent, false, now).await?;
    if let Some(run) = &created {
        // A lost send is found by the cron's sweep a minute later.
        if let Err(e) = jobs::send(env, &Job::Sync { run: run.clone(), chain: 0 }, 0).await {
            log_error(&format!("sync {run}: could not enqueue ({}); the cron will", e.message));
        }
    }
    store::notified(&db, &row.id, created.is_some(), now).await?;
    Ok(created.is_some())
}

fn refused() -> ApiError {
    ApiError::new(401, "UNAUTHORIZED", "Missing or invalid Google OIDC token")
}

/// `POST /webhooks/google/pubsub` → 200 `{received: true, integrations}` (or `duplicate`).
pub async fn pubsub(ctx: &Ctx) -> ApiResult<Reply> {
    let (Some(audience), Some(account)) =
        (var(&ctx.env, "GOOGLE_PUBSUB_AUDIENCE"), var(&ctx.env, "GOOGLE_PUBSUB_SERVICE_ACCOUNT"))
    else {
        return Err(ApiError::new(
            503,
            "WEBHOOK_NOT_CONFIGURED",
            "Gmail push is not configured (GOOGLE_PUBSUB_AUDIENCE, GOOGLE_PUBSUB_SERVICE_ACCOUNT)",
        ));
    };
    let bearer = ctx.header("Authorization").and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    let Some(bearer) = bearer.filter(|b| !b.is_empty() && b.len() <= 8192) else { return Err(refused()) };
    let certs = var(&ctx.env, "GOOGLE_CERTS_URL").unwrap_or_else(|| oidc::DEFAULT_CERTS_URL.to_string());
    match oidc::verify(&Runtime, &certs, &bearer, &audience, &account, ctx.now).await {
        Ok(_) => {}
        Err(Refusal::Keys(m)) => {
            log_error(&format!("pubsub push: {}", Refusal::Keys(m)));
            return Err(ApiError::new(502, "UPSTREAM_ERROR", "Google's signing keys are unavailable; retry later"));
        }
        Err(why) => {
            log_error(&format!("pubsub push refused: {why}"));
            return Err(refused());
        }
    }
    let notice = super::decode_push(&ctx.raw_body()).map_err(|(field, message)| {
        if field.is_empty() {
            ApiError::invalid_json()
        } else {
            ApiError::validation(vec![FieldError { field: field.into(), message: message.into() }])
        }
    })?;
    let db = ctx.db()?;
    if !store::record_delivery(&db, PUBSUB, &notice.message_id, "gmail", ctx.now).await? {
        return Reply::ok(&json!({ "received": true, "duplicate": true }));
    }
    let acted = async {
        let rows = store::gmail_watchers(&db, &notice.email).await?;
        for row in &rows {
            let plan = row.plan().unwrap_or_default();
            request_sync(&ctx.env, row, plan, None, ctx.now).await?;
        }
        Ok::<usize, ApiError>(rows.len())
    }
    .await;
    match acted {
        Ok(n) => Reply::ok(&json!({ "received": true, "integrations": n })),
        Err(e) => {
            // Not recorded: Pub/Sub's redelivery gets another chance.
            let _ = store::forget_delivery(&db, PUBSUB, &notice.message_id).await;
            Err(e)
        }
    }
}

/// `POST /webhooks/google/calendar` → 200 `{received: true}`.
pub async fn calendar(ctx: &Ctx) -> ApiResult<Reply> {
    let id = ctx.header("X-Goog-Channel-ID").unwrap_or_default();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::validation(vec![FieldError {
            field: "X-Goog-Channel-ID".into(),
            message: "Required: a channel id".into(),
        }]));
    }
    let unknown = || ApiError::not_found("Unknown notification channel");
    let db = ctx.db()?;
    let Some(ch) = store::channel(&db, &id).await? else { return Err(unknown()) };
    let token = ctx.header("X-Goog-Channel-Token").unwrap_or_default();
    let expected = ch.token_hash.as_deref().unwrap_or("");
    if expected.is_empty() || !constant_time_eq(sha256_hex(token.as_bytes()).as_bytes(), expected.as_bytes()) {
        return Err(ApiError::new(401, "UNAUTHORIZED", "Invalid channel token"));
    }
    if ch.expires_at.as_deref().and_then(parse_stored).is_some_and(|e| e <= ctx.now) {
        return Err(unknown());
    }
    let state = ctx.header("X-Goog-Resource-State").unwrap_or_default();
    if state == "sync" || ch.status.as_deref() != Some("active") {
        return Reply::ok(&json!({ "received": true }));
    }
    let Some(row) = store::integration(&db, &ch.integration_id).await? else { return Err(unknown()) };
    let plan = row.plan().unwrap_or_default();
    if plan.iter().any(|e| e == "events") {
        request_sync(&ctx.env, &row, vec!["events".into()], Some(ch.resource.clone()), ctx.now).await?;
    }
    Reply::ok(&json!({ "received": true }))
}
