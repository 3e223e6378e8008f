//! Scheduled maintenance (cron `0 3 * * *`): removes what can no longer authenticate or
//! protect anything: expired sessions and OAuth states, long-revoked tokens, and webhook
//! delivery ids older than any redelivery GitHub or Telegram would attempt, finished sync runs
//! and entities deleted upstream more than 30 days ago.

use crate::db::{Batch as _, Query as _};
use worker::Env;

use crate::config::log_error;
use crate::time::{iso, now_ms};

/// Revoked or expired API tokens are kept this long (for audit) before deletion.
const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// The audit trail is kept longer: an incident is often noticed weeks later.
const AUDIT_RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;

/// The cron entry point: every minute the sync engine ticks; once a day, the purge.
pub async fn run(cron: &str, env: &Env) {
    if cron == DAILY {
        if let Err(e) = purge(env).await {
            log_error(&format!("maintenance ({cron}) failed: {e}"));
        }
        return;
    }
    // Every minute: only enqueue (runs are worked by queue consumers, never by the cron).
    if let Err(e) = crate::integrations::runs::sweep(env).await {
        log_error(&format!("sync sweep failed: {}", e.message));
    }
    if let Err(e) = crate::outbox::sweep(env).await {
        log_error(&format!("outbox sweep failed: {}", e.message));
    }
    if let Err(e) = sweep_reseal(env).await {
        log_error(&format!("re-seal sweep failed: {}", e.message));
    }
    if let Err(e) = crate::integrations::realtime::sweep(env).await {
        log_error(&format!("realtime sweep failed: {}", e.message));
    }
    if let Err(e) = crate::integrations::moving::sweep(env).await {
        log_error(&format!("data move sweep failed: {}", e.message));
    }
    // The PR reconciler and the holders' re-check run as queue jobs: their provider calls get
    // budgets of their own.
    if let Err(e) = crate::jobs::send_all(env, &[crate::jobs::Job::Reconcile, crate::jobs::Job::RecheckHolders]).await {
        log_error(&format!("pr reconciler and holder re-check not enqueued: {}", e.message));
    }
}

pub const DAILY: &str = "0 3 * * *";

async fn purge(env: &Env) -> worker::Result<()> {
    let db = env.d1("DB")?;
    let now = iso(now_ms());
    let horizon = iso(now_ms() - RETENTION_MS);
    db.batch_rows(vec![
        crate::q!(&db, "DELETE FROM auth_sessions WHERE julianday(expires_at) <= julianday(?1)", &now)?,
        crate::q!(
            &db,
            "DELETE FROM api_tokens WHERE julianday(COALESCE(revoked_at, expires_at)) <= julianday(?1)",
            &horizon
        )?,
        crate::q!(&db, "DELETE FROM oauth_states WHERE expires_at <= ?1", &now)?,
        crate::q!(&db, "DELETE FROM slack_link_codes WHERE expires_at <= ?1", &now)?,
        crate::q!(&db, "DELETE FROM webhook_deliveries WHERE received_at <= ?1", &horizon)?,
        // Finished runs are history nobody reads after a month (long-deleted entities are purged
        // by each integration's object, on its own alarm).
        crate::q!(&db, "DELETE FROM sync_logs WHERE completed_at IS NOT NULL AND completed_at <= ?1", &horizon)?,
        crate::q!(&db, "DELETE FROM action_audit WHERE created_at <= ?1", &iso(now_ms() - AUDIT_RETENTION_MS))?,
        // MCP OAuth: codes and browser sign-ins once expired; access tokens once expired; a
        // rotated refresh token a day after its use (its reuse revokes the family within that
        // day: the window that bounds the table at ~26 rows per hourly-refreshing client);
        // revoked and expired grants a month after they ended; a registered client nobody
        // authorized within a month.
        crate::q!(&db, "DELETE FROM mcp_codes WHERE expires_at <= ?1", &now)?,
        crate::q!(&db, "DELETE FROM mcp_browser_sessions WHERE expires_at <= ?1", &now)?,
        crate::q!(&db, "DELETE FROM mcp_tokens WHERE kind = 'access' AND expires_at <= ?1", &now)?,
        crate::q!(
            &db,
            "DELETE FROM mcp_tokens WHERE kind = 'refresh' AND revoked_at IS NULL AND used_at <= ?1",
            &iso(now_ms() - 24 * 3600 * 1000)
        )?,
        crate::q!(&db, "DELETE FROM mcp_tokens WHERE COALESCE(revoked_at, expires_at) <= ?1", &horizon)?,
        crate::q!(
            &db,
            "DELETE FROM mcp_clients WHERE kind = 'registered' AND created_at <= ?1
               AND NOT EXISTS (SELECT 1 FROM mcp_tokens t WHERE t.client_id = mcp_clients.client_id)",
            &horizon
        )?,
    ])
    .await?;
    Ok(())
}

/// The re-seal job: every sealed value still in one of the original worker's formats or under
/// `ENCRYPTION_KEY_PREVIOUS` is opened and sealed again under the current key, a bounded batch
/// per queue message, with its progress in `maintenance_jobs`. When it has finished,
/// `LEGACY_CIPHERTEXT=reject` turns legacy reading off and the previous key can be removed.
pub const RESEAL: &str = "reseal";

/// Rows per batch of a D1 phase; users per batch of the `API_KEYS` phase.
const RESEAL_BATCH: usize = 50;
const RESEAL_USERS: usize = 10;

/// A D1 column of sealed values: where it is, and the associated data of each row.
struct Column {
    phase: &'static str,
    table: &'static str,
    key: &'static str,
    column: &'static str,
    /// SQL expressions of the associated data's purpose and owner.
    purpose: &'static str,
    owner: &'static str,
}

const COLUMNS: [Column; 7] = [
    Column {
        phase: "oauth_tokens",
        table: "oauth_tokens",
        key: "id",
        column: "encrypted_access_token",
        purpose: "'oauth:' || provider",
        owner: "user_id",
    },
    Column {
        phase: "oauth_refresh_tokens",
        table: "oauth_tokens",
        key: "id",
        column: "encrypted_refresh_token",
        purpose: "'oauth:' || provider || ':refresh'",
        owner: "user_id",
    },
    Column {
        phase: "telegram",
        table: "user_telegram_config",
        key: "user_id",
        column: "bot_token_encrypted",
        purpose: "'telegram:bot'",
        owner: "user_id",
    },
    Column {
        phase: "custom_providers",
        table: "custom_providers",
        key: "provider_id",
        column: "encrypted_key",
        purpose: "'custom-provider:api-key'",
        owner: "provider_id",
    },
    Column {
        phase: "webhook_triggers",
        table: "webhook_triggers",
        key: "id",
        column: "secret_sealed",
        purpose: "'webhook-trigger:secret'",
        owner: "id",
    },
    Column {
        phase: "webhook_secrets",
        table: "webhook_secrets",
        key: "provider",
        column: "sealed",
        purpose: "'webhook:' || provider || ':verification-token'",
        owner: "provider",
    },
    Column {
        phase: "slack_workspaces",
        table: "slack_workspaces",
        key: "team_id",
        column: "bot_token_encrypted",
        purpose: "'slack:bot'",
        owner: "team_id",
    },
];
const API_KEYS_PHASE: &str = "api_keys";

#[derive(serde::Deserialize)]
struct JobRow {
    status: String,
    phase: Option<String>,
    cursor: Option<String>,
    scanned: i64,
    resealed: i64,
    error: Option<String>,
    started_at: String,
    updated_at: String,
    finished_at: Option<String>,
}

fn job_view(j: &JobRow) -> serde_json::Value {
    serde_json::json!({
        "name": RESEAL, "status": j.status, "phase": j.phase, "scanned": j.scanned, "resealed": j.resealed, "error": j.error,
        "startedAt": j.started_at, "updatedAt": j.updated_at, "finishedAt": j.finished_at,
    })
}

async fn load_job(db: &worker::d1::D1Database) -> worker::Result<Option<JobRow>> {
    crate::q!(db, "SELECT * FROM maintenance_jobs WHERE name = ?1", &RESEAL)?.one().await
}

/// `POST /api/admin/maintenance/reseal` → 202 `{job}` (409 while one runs).
pub async fn start_reseal(ctx: &crate::http::Ctx) -> crate::http::ApiResult<crate::http::Reply> {
    crate::config::keyring(&ctx.env)?;
    let db = ctx.db()?;
    let now = iso(ctx.now);
    let r = crate::q!(
        &db,
        "INSERT INTO maintenance_jobs (name, status, phase, cursor, scanned, resealed, started_at, updated_at) VALUES (?1, 'running', ?2, '', 0, 0, ?3, ?3)
         ON CONFLICT(name) DO UPDATE SET status = 'running', phase = ?2, cursor = '', scanned = 0, resealed = 0, error = NULL,
           started_at = ?3, updated_at = ?3, finished_at = NULL WHERE maintenance_jobs.status <> 'running'",
        &RESEAL,
        &COLUMNS[0].phase,
        &now
    )?
    .exec()
    .await?;
    if r.changes() == 0 {
        return Err(crate::http::ApiError::conflict("RESEAL_RUNNING", "A re-seal is already running"));
    }
    crate::jobs::send(&ctx.env, &crate::jobs::Job::Reseal, 0).await?;
    let job = load_job(&db).await?.ok_or_else(|| crate::http::ApiError::internal("job vanished"))?;
    crate::http::Reply::json(202, &serde_json::json!({ "job": job_view(&job) }))
}

/// `GET /api/admin/maintenance/reseal` → `{job}` (null before the first run).
pub async fn reseal_status(ctx: &crate::http::Ctx) -> crate::http::ApiResult<crate::http::Reply> {
    let job = load_job(&ctx.db()?).await?;
    crate::http::Reply::ok(&serde_json::json!({ "job": job.as_ref().map(job_view) }))
}

/// One batch of the re-seal; answers whether more remains (the consumer enqueues the next).
pub async fn reseal_batch(env: &Env) -> crate::http::ApiResult<bool> {
    use crate::crypto::{Aad, Legacy};
    let db = env.d1("DB")?;
    let Some(job) = load_job(&db).await?.filter(|j| j.status == "running") else { return Ok(false) };
    let keys = crate::config::keyring(env)?;
    let phase = job.phase.clone().unwrap_or_default();
    let cursor = job.cursor.clone().unwrap_or_default();
    let next_phase = |p: &str| -> Option<&'static str> {
        let i = COLUMNS.iter().position(|c| c.phase == p);
        match i {
            Some(i) if i + 1 < COLUMNS.len() => Some(COLUMNS[i + 1].phase),
            Some(_) => Some(API_KEYS_PHASE),
            None => None,
        }
    };
    let (scanned, resealed, last, done_phase) = if let Some(col) = COLUMNS.iter().find(|c| c.phase == phase) {
        #[derive(serde::Deserialize)]
        struct R {
            k: String,
            purpose: String,
            owner: String,
            v: String,
        }
        let rows: Vec<R> = crate::q!(
            &db,
            &format!(
                "SELECT {key} AS k, {purpose} AS purpose, {owner} AS owner, {column} AS v FROM {table}
                  WHERE {key} > ?1 AND {column} IS NOT NULL ORDER BY {key} LIMIT ?2",
                key = col.key,
                purpose = col.purpose,
                owner = col.owner,
                column = col.column,
                table = col.table
            ),
            &cursor,
            &RESEAL_BATCH
        )?
        .rows()
        .await?
        .results()?;
        let mut stmts = Vec::new();
        for r in &rows {
            let aad = Aad { purpose: &r.purpose, owner: &r.owner };
            match keys.open(&aad, &r.v, Legacy::D1Column) {
                Ok(opened) if opened.stale => stmts.push(crate::q!(
                    &db,
                    &format!(
                        "UPDATE {} SET {col} = ?1 WHERE {} = ?2 AND {col} = ?3",
                        col.table,
                        col.key,
                        col = col.column
                    ),
                    &keys.seal(&aad, &opened.plaintext),
                    &r.k,
                    &r.v
                )?),
                Ok(_) => {}
                Err(_) => {
                    log_error(&format!("re-seal: a value in {}.{} opens with no configured key", col.table, col.column))
                }
            }
        }
        let resealed = stmts.len();
        if !stmts.is_empty() {
            db.batch_rows(stmts).await?;
        }
        (rows.len(), resealed, rows.last().map(|r| r.k.clone()), rows.len() < RESEAL_BATCH)
    } else {
        // The credentials in each user's API_KEYS object.
        #[derive(serde::Deserialize)]
        struct U {
            id: String,
        }
        let users: Vec<U> =
            crate::q!(&db, "SELECT id FROM users WHERE id > ?1 ORDER BY id LIMIT ?2", &cursor, &RESEAL_USERS)?
                .rows()
                .await?
                .results()?;
        let mut scanned = 0;
        let mut resealed = 0;
        for u in &users {
            let (s, r) = crate::credentials::ApiKeys::for_user(env, &u.id).reseal().await?;
            scanned += s;
            resealed += r;
        }
        (scanned, resealed, users.last().map(|u| u.id.clone()), users.len() < RESEAL_USERS)
    };
    let now = iso(now_ms());
    let (next, next_cursor, status) = if done_phase {
        match next_phase(&phase) {
            Some(p) => (Some(p.to_string()), String::new(), "running"),
            None => (None, String::new(), "completed"),
        }
    } else {
        (Some(phase.clone()), last.unwrap_or(cursor), "running")
    };
    crate::q!(
        &db,
        "UPDATE maintenance_jobs SET phase = ?1, cursor = ?2, status = ?3, scanned = scanned + ?4, resealed = resealed + ?5,
           updated_at = ?6, finished_at = CASE WHEN ?3 = 'completed' THEN ?6 ELSE NULL END WHERE name = ?7",
        &next,
        &next_cursor,
        &status,
        &scanned,
        &resealed,
        &now,
        &RESEAL
    )?
    .exec()
    .await?;
    Ok(status == "running")
}

/// A re-seal whose message was lost (no progress for two minutes) is enqueued again.
async fn sweep_reseal(env: &Env) -> crate::http::ApiResult<()> {
    let db = env.d1("DB")?;
    if let Some(j) = load_job(&db).await? {
        let stale = crate::time::parse_stored(&j.updated_at).is_some_and(|t| now_ms() - t > 120_000);
        if j.status == "running" && stale {
            crate::jobs::send(env, &crate::jobs::Job::Reseal, 0).await?;
        }
    }
    Ok(())
}

/// The dead-letter queue's verdict on the re-seal: failed, with the reason in the log.
pub async fn fail_reseal(env: &Env) -> crate::http::ApiResult<()> {
    let db = env.d1("DB")?;
    crate::q!(
        &db,
        "UPDATE maintenance_jobs SET status = 'failed', error = 'a batch kept failing; see the logs', updated_at = ?1 WHERE name = ?2 AND status = 'running'",
        &iso(now_ms()),
        &RESEAL
    )?
    .exec()
    .await?;
    Ok(())
}
