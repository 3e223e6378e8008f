//! Scheduled maintenance (cron `0 3 * * *`): removes what can no longer authenticate or
//! protect anything: expired sessions and OAuth states, long-revoked tokens, and webhook
//! delivery ids older than any redelivery GitHub or Telegram would attempt, finished sync runs
//! and entities deleted upstream more than 30 days ago.

use worker::Env;

use crate::config::log_error;
use crate::time::{iso, now_ms};

/// Revoked or expired API tokens are kept this long (for audit) before deletion.
const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

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
}

pub const DAILY: &str = "0 3 * * *";

async fn purge(env: &Env) -> worker::Result<()> {
    let db = env.d1("DB")?;
    let now = iso(now_ms());
    let horizon = iso(now_ms() - RETENTION_MS);
    db.batch(vec![
        crate::q!(&db, "DELETE FROM auth_sessions WHERE julianday(expires_at) <= julianday(?1)", &now)?,
        crate::q!(
            &db,
            "DELETE FROM api_tokens WHERE julianday(COALESCE(revoked_at, expires_at)) <= julianday(?1)",
            &horizon
        )?,
        crate::q!(&db, "DELETE FROM oauth_states WHERE expires_at <= ?1", &now)?,
        crate::q!(&db, "DELETE FROM webhook_deliveries WHERE received_at <= ?1", &horizon)?,
        // Finished runs and long-deleted entities are history nobody reads after a month.
        crate::q!(&db, "DELETE FROM sync_logs WHERE completed_at IS NOT NULL AND completed_at <= ?1", &horizon)?,
        crate::q!(&db, "DELETE FROM synced_entities WHERE deleted_at IS NOT NULL AND deleted_at <= ?1", &horizon)?,
    ])
    .await?;
    Ok(())
}
