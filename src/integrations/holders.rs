//! Which integrations hold which parent entity (a GitHub repository, by its id), and whether
//! their owners can still see it. Webhook deliveries reach an integration's object only while its
//! holder row was verified within a day: a sync that lists the parent verifies it, and this daily
//! re-check asks the provider with the owner's credentials. A parent the owner can no longer see
//! is forgotten: its row goes, and its entity and every entity under it leave the object.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use std::cell::RefCell;
use worker::d1::D1Database;
use worker::Env;

use super::data::{DataPlane, ForgetRequest};
use super::service::{Conn, ServiceError};
use super::store::{load_credentials, IntegrationRow};
use super::tokens::Stored;
use crate::config::log_error;
use crate::http::ApiResult;
use crate::outbound::Net;
use crate::time::{iso, now_ms, Millis};

/// Deliveries reach holders verified within this long.
pub const VERIFIED_FOR_MS: Millis = 24 * 3600 * 1000;
/// A holder is re-checked when its verification is older than this (before it lapses).
const RECHECK_AFTER_MS: Millis = 20 * 3600 * 1000;
/// A holder taken by a re-check is not taken again for this long (its run failed or was cut).
const CLAIM_FOR_MS: Millis = 10 * 60 * 1000;
/// Holders re-checked per queue message (one provider call each, plus the credentials).
const PER_RUN: u32 = 10;

/// The statements a commit of parents adds to the run's progress batch: the parents it listed
/// are verified now; the ones it saw deleted are no longer held.
pub fn verified_statements(
    db: &D1Database,
    integration: &str,
    holder_type: &str,
    live: &[&str],
    gone: &[&str],
    now: Millis,
) -> worker::Result<Vec<worker::d1::D1PreparedStatement>> {
    let mut out = Vec::new();
    if !live.is_empty() {
        out.push(crate::q!(
            db,
            "INSERT INTO integration_holders (integration_id, holder_type, holder_key, verified_at)
             SELECT ?1, ?2, value, ?3 FROM json_each(?4) WHERE true
             ON CONFLICT(integration_id, holder_type, holder_key) DO UPDATE SET verified_at = excluded.verified_at",
            &integration,
            &holder_type,
            &iso(now),
            &serde_json::to_string(live)?
        )?);
    }
    if !gone.is_empty() {
        out.push(crate::q!(
            db,
            "DELETE FROM integration_holders WHERE integration_id = ?1 AND holder_type = ?2
               AND holder_key IN (SELECT value FROM json_each(?3))",
            &integration,
            &holder_type,
            &serde_json::to_string(gone)?
        )?);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct Claimed {
    integration_id: String,
    holder_type: String,
    holder_key: String,
}

/// One re-check run (the cron enqueues one a minute): claims the holders due, asks each
/// integration's provider, records the answers. `Ok(true)` when more were due than it took.
pub async fn recheck(env: &Env) -> ApiResult<bool> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let claimed: Vec<Claimed> = crate::q!(
        &db,
        "UPDATE integration_holders SET checked_at = ?1
          WHERE rowid IN (SELECT h.rowid FROM integration_holders h JOIN integrations i ON i.id = h.integration_id
                           WHERE i.status = 'active' AND i.data_home = 'object'
                             AND (h.verified_at IS NULL OR h.verified_at < ?2)
                             AND (h.checked_at IS NULL OR h.checked_at < ?3)
                           ORDER BY h.verified_at LIMIT ?4)
          RETURNING integration_id, holder_type, holder_key",
        &iso(now),
        &iso(now - RECHECK_AFTER_MS),
        &iso(now - CLAIM_FOR_MS),
        &PER_RUN
    )?
    .rows()
    .await?
    .results()?;
    let full = claimed.len() as u32 == PER_RUN;
    let mut by_integration: Vec<(String, Vec<Claimed>)> = Vec::new();
    for c in claimed {
        match by_integration.iter_mut().find(|(id, _)| *id == c.integration_id) {
            Some((_, list)) => list.push(c),
            None => by_integration.push((c.integration_id.clone(), vec![c])),
        }
    }
    for (integration, holders) in by_integration {
        if let Err(e) = recheck_integration(env, &db, &integration, &holders).await {
            log_error(&format!("holder re-check of {integration}: {}", e.internal.as_deref().unwrap_or(&e.message)));
        }
    }
    Ok(full)
}

async fn recheck_integration(env: &Env, db: &D1Database, integration: &str, holders: &[Claimed]) -> ApiResult<()> {
    let Some(row) =
        crate::q!(db, "SELECT * FROM integrations WHERE id = ?1", &integration)?.one::<IntegrationRow>().await?
    else {
        return Ok(());
    };
    let service = row.service()?;
    let creds = load_credentials(env, &row).await?;
    let now = now_ms();
    let current = RefCell::new(None);
    let tokens = Stored::new(env, &row, service, &creds, None, &current, now);
    let conn = Conn { http: &Net, vars: env, creds: &creds, tokens: &tokens, now };
    let (mut seen, mut lost) = (Vec::new(), Vec::new());
    for h in holders {
        match service.holds(&conn, &h.holder_type, &h.holder_key).await {
            Ok(true) => seen.push(h),
            Ok(false) => lost.push(h),
            // Rate limited, unreachable, or the credentials refused: the next run asks again
            // (meanwhile the verification lapses and deliveries stop, which is the safe side).
            Err(ServiceError::RateLimited(_) | ServiceError::Transport(_) | ServiceError::Auth(_)) => {}
            Err(e) => log_error(&format!("holder re-check of {integration}: {}", e.message())),
        }
    }
    let plane = DataPlane::new(env, integration);
    for h in &lost {
        // The parent's key path (what its children carry as their parent) is the service's.
        let key = service
            .entities()
            .iter()
            .find_map(|e| service.parent(e).filter(|p| p.entity == h.holder_type).map(|p| p.key))
            .unwrap_or("$.id");
        let req = ForgetRequest { entity: h.holder_type.clone(), id: h.holder_key.clone(), key: key.to_string() };
        plane.forget(&req).await?;
    }
    let mut stmts = Vec::new();
    for h in &seen {
        stmts.push(crate::q!(
            db,
            "UPDATE integration_holders SET verified_at = ?1 WHERE integration_id = ?2 AND holder_type = ?3 AND holder_key = ?4",
            &iso(now),
            &integration,
            &h.holder_type,
            &h.holder_key
        )?);
    }
    for h in &lost {
        stmts.push(crate::q!(
            db,
            "DELETE FROM integration_holders WHERE integration_id = ?1 AND holder_type = ?2 AND holder_key = ?3",
            &integration,
            &h.holder_type,
            &h.holder_key
        )?);
    }
    if !stmts.is_empty() {
        db.batch_rows(stmts).await?;
    }
    Ok(())
}
