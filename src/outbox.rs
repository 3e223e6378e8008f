//! The transactional outbox: side effects (telling a session its pull request changed) are
//! written as rows in the same D1 batch as the change that causes them, then delivered by a
//! queue message. A lost message is made up for by the cron's sweep; a repeated delivery is
//! recognised by the receiver (the row id is its idempotency key).

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use worker::{Env, MessageExt, QueueRetryOptionsBuilder};

use crate::config::log_error;
use crate::http::ApiResult;
use crate::jobs::{self, Job};
use crate::sessions::agent::{GitUpdate, SessionAgent};
use crate::time::{iso, now_ms};

/// A git-state update for a session (`target` = the session id, payload = a `GitUpdate`).
pub const SESSION_GIT: &str = "session-git";
/// Rows older than this without a delivery have lost their message.
const ORPHANED_AFTER_MS: i64 = 2 * 60 * 1000;
/// Deliveries of one row before it is dropped.
const MAX_ATTEMPTS: i64 = 10;

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
        other => {
            log_error(&format!("outbox: unknown kind {other}; dropped"));
            Ok(())
        }
    }
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

/// The cron's part: batches whose message was lost are enqueued again; rows that failed
/// `MAX_ATTEMPTS` times are given up (each sweep would otherwise start them over).
pub async fn sweep(env: &Env) -> ApiResult<()> {
    #[derive(Deserialize)]
    struct B {
        batch: String,
    }
    let db = env.d1("DB")?;
    let results = db
        .batch_rows(vec![
            crate::q!(&db, "DELETE FROM outbox WHERE attempts >= ?1 RETURNING id", &MAX_ATTEMPTS)?,
            crate::q!(
                &db,
                "SELECT DISTINCT batch FROM outbox WHERE created_at <= ?1 LIMIT 20",
                &iso(now_ms() - ORPHANED_AFTER_MS)
            )?,
        ])
        .await?;
    let dropped = results[0].count();
    if dropped > 0 {
        log_error(&format!("outbox: gave up on {dropped} notification(s) after {MAX_ATTEMPTS} attempts"));
    }
    let batches: Vec<B> = results[1].results()?;
    let jobs: Vec<Job> = batches.into_iter().map(|b| Job::Outbox { batch: b.batch }).collect();
    jobs::send_all(env, &jobs).await
}
