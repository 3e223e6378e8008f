//! Delivering the outbox: each row of a batch to its receiver (a session's `SessionAgent`, an
//! integration's `IntegrationData`), within the invocation's subrequest budget; failed rows are
//! retried with backoff and given up after their attempts (rows are written by the features,
//! see `outbox`).

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use worker::{Env, MessageExt, QueueRetryOptionsBuilder};

use crate::config::log_error;
use crate::http::ApiResult;
use crate::integrations::data::{DataPlane, UpsertGroup, UpsertRequest};
use crate::jobs::{self, Job};
use crate::outbox::{RevokeGrant, DROP_DATA, ENTITY_UPSERT, REVOKE_GRANT, REVOKE_GRANT_PURPOSE, SESSION_GIT};
use crate::sessions::agent::{GitUpdate, SessionAgent};
use crate::time::{iso, now_ms};

#[derive(Deserialize)]
struct Row {
    id: String,
    kind: String,
    target: String,
    payload: String,
    attempts: i64,
}

async fn deliver_one(env: &Env, row: &Row) -> Result<(), String> {
    #[cfg(feature = "fault-injection")]
    if crate::faults::outbox_should_fail() {
        return Err("fault injection: delivery failed".into());
    }
    match row.kind.as_str() {
        SESSION_GIT => {
            let mut update: GitUpdate = serde_json::from_str(&row.payload).map_err(|e| e.to_string())?;
            update.idempotency_key = Some(row.id.clone());
            let r = SessionAgent::new(env, &row.target)
                .post("/webhook-update", &update)
                .await
                .map_err(|e| e.message.clone())?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("session answered {}", r.status))
            }
        }
        ENTITY_UPSERT => {
            let groups: Vec<UpsertGroup<Box<RawValue>>> =
                serde_json::from_str(&row.payload).map_err(|e| e.to_string())?;
            let req = UpsertRequest { groups, now: iso(now_ms()) };
            // A dropped object (the integration was deleted) refuses the write: nothing to do.
            DataPlane::new(env, &row.target).upsert(&req).await.map(|_| ()).map_err(|e| e.message.clone())
        }
        DROP_DATA => DataPlane::new(env, &row.target).drop_all().await.map_err(|e| e.message.clone()),
        REVOKE_GRANT => revoke_grant(env, row).await,
        other => {
            log_error(&format!("outbox: unknown kind {other}; dropped"));
            Ok(())
        }
    }
}

/// Revokes a deleted integration's grant at its provider. Already revoked counts as done; a
/// provider that is down is an error (the row is retried with backoff, then given up).
async fn revoke_grant(env: &Env, row: &Row) -> Result<(), String> {
    let p: RevokeGrant = serde_json::from_str(&row.payload).map_err(|e| e.to_string())?;
    let Some(spec) = crate::integrations::registry::find(&p.service).and_then(|s| s.oauth()) else {
        return Ok(());
    };
    let keys = crate::config::keyring(env).map_err(|_| "ENCRYPTION_KEY is not usable".to_string())?;
    let aad = crate::crypto::Aad { purpose: REVOKE_GRANT_PURPOSE, owner: &row.target };
    let (plain, _) = keys
        .open_str(&aad, &p.sealed, crate::crypto::Legacy::D1Column)
        .map_err(|_| "credentials unreadable".to_string())?;
    let creds: crate::integrations::service::Credentials = serde_json::from_str(&plain).map_err(|e| e.to_string())?;
    crate::integrations::oauth::revoke(&crate::outbound::Net, spec, env, &creds)
        .await
        .map_err(|e| format!("integration {}: its {} grant was not revoked ({e}); retried", row.target, spec.display))
}

/// Delivers a batch within `budget` subrequests; answers how many it used.
pub async fn deliver<M: MessageExt>(env: &Env, batch: &str, budget: u32, msg: &M, retry_base: u32) -> u32 {
    match try_deliver(env, batch, budget).await {
        Ok((used, None)) => {
            msg.ack();
            used
        }
        Ok((used, Some(attempts))) => {
            let delay = jobs::backoff_secs(retry_base, attempts);
            msg.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
            used
        }
        Err(e) => {
            log_error(&format!("outbox {batch}: {}", e.message));
            msg.retry();
            budget
        }
    }
}

/// `(used, Some(attempts))` when some rows failed and the message should be retried.
async fn try_deliver(env: &Env, batch: &str, budget: u32) -> ApiResult<(u32, Option<u32>)> {
    let db = env.d1("DB")?;
    let rows: Vec<Row> =
        crate::q!(&db, "SELECT id, kind, target, payload, attempts FROM outbox WHERE batch = ?1 ORDER BY id", &batch)?
            .rows()
            .await?
            .results()?;
    // Reads, then one call per row, then one write for the outcome, then maybe a hand-over.
    let room = budget.saturating_sub(3) as usize;
    let (now, later) = rows.split_at(rows.len().min(room));
    let results = futures::future::join_all(now.iter().map(|r| deliver_one(env, r))).await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (row, result) in now.iter().zip(results) {
        match result {
            Ok(()) => done.push(row.id.as_str()),
            Err(e) => {
                log_error(&format!("outbox row {}: {e}", row.id));
                failed.push(row);
            }
        }
    }
    let mut stmts = Vec::new();
    if !done.is_empty() {
        let ids = serde_json::to_string(&done)?;
        stmts.push(crate::q!(&db, "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?1))", &ids)?);
    }
    if !failed.is_empty() {
        let ids = serde_json::to_string(&failed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())?;
        stmts.push(crate::q!(
            &db,
            "UPDATE outbox SET attempts = attempts + 1 WHERE id IN (SELECT value FROM json_each(?1))",
            &ids
        )?);
    }
    if !stmts.is_empty() {
        db.batch_rows(stmts).await?;
    }
    let used = 2 + now.len() as u32;
    if !failed.is_empty() {
        let attempts = failed.iter().map(|r| r.attempts + 1).max().unwrap_or(1) as u32;
        return Ok((used, Some(attempts)));
    }
    if !later.is_empty() {
        jobs::send(env, &Job::Outbox { batch: batch.to_string() }, 0).await?;
        return Ok((used + 1, None));
    }
    Ok((used, None))
}

/// Retries are exhausted: the rows are dropped, with a log line saying what was lost.
pub async fn give_up(env: &Env, batch: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let r = crate::q!(&db, "DELETE FROM outbox WHERE batch = ?1", &batch)?.exec().await?;
    log_error(&format!("outbox {batch}: gave up on {} undelivered notification(s)", r.changes()));
    Ok(())
}
