//! Every query of the realtime room: `realtime_state` (one row per realtime integration),
//! `realtime_watches` (the provider-side subscriptions) and `integration_events` (connection
//! health), so the handlers and the job read as steps.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use worker::d1::D1Database;

use crate::http::ApiResult;
use crate::integrations::store::IntegrationRow;
use crate::time::{iso, Millis};

/// A realtime integration's state.
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    pub integration_id: String,
    pub mode: String,
    pub account: Option<String>,
    pub expires_at: Option<String>,
    pub last_notification_at: Option<String>,
    pub next_check_at: String,
    pub resync_at: Option<String>,
    pub note: Option<String>,
    pub origin: Option<String>,
}

/// A subscription row.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchRow {
    pub id: String,
    pub integration_id: String,
    pub kind: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub token_hash: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    /// Its integration's status (only where a query joins it).
    #[serde(default)]
    pub status: Option<String>,
}

impl WatchRow {
    pub fn planned(&self) -> super::Watch {
        // A channel recorded before Google's answer that never got one (the job died between
        // the two) counts as expired: it is replaced.
        let unconfirmed = self.kind == "calendar" && self.resource_id.is_none();
        super::Watch {
            id: self.id.clone(),
            resource: self.resource.clone(),
            resource_id: self.resource_id.clone(),
            expires_at: if unconfirmed {
                crate::time::parse_stored(&self.created_at)
            } else {
                self.expires_at.as_deref().and_then(crate::time::parse_stored)
            },
        }
    }
}

pub async fn state(db: &D1Database, integration: &str) -> ApiResult<Option<State>> {
    Ok(crate::q!(db, "SELECT * FROM realtime_state WHERE integration_id = ?1", &integration)?.one().await?)
}

/// Turns realtime on (or asks for a look now): the job creates the subscriptions.
pub async fn enable(db: &D1Database, integration: &str, origin: Option<&str>, now: Millis) -> ApiResult<()> {
    crate::q!(
        db,
        "INSERT INTO realtime_state (integration_id, mode, next_check_at, origin, updated_at) VALUES (?1, 'poll', ?2, ?3, ?2)
         ON CONFLICT(integration_id) DO UPDATE SET next_check_at = ?2, origin = COALESCE(?3, origin), updated_at = ?2",
        &integration,
        &iso(now),
        &origin
    )?
    .exec()
    .await?;
    Ok(())
}

/// What a look at the integration concluded.
pub struct Outcome<'a> {
    pub mode: &'a str,
    pub account: Option<&'a str>,
    pub expires_at: Option<Millis>,
    pub note: Option<&'a str>,
    pub next_check: Millis,
}

pub async fn save(db: &D1Database, integration: &str, o: &Outcome<'_>, now: Millis) -> ApiResult<()> {
    crate::q!(
        db,
        "UPDATE realtime_state SET mode = ?1, account = ?2, expires_at = ?3, note = ?4, next_check_at = ?5, updated_at = ?6
          WHERE integration_id = ?7",
        &o.mode,
        &o.account,
        &o.expires_at.map(iso),
        &o.note,
        &iso(o.next_check),
        &iso(now),
        &integration
    )?
    .exec()
    .await?;
    Ok(())
}

/// Realtime is off: the state goes (its subscriptions were stopped first).
pub async fn forget(db: &D1Database, integration: &str) -> ApiResult<()> {
    db.batch_rows(vec![
        crate::q!(db, "DELETE FROM realtime_watches WHERE integration_id = ?1", &integration)?,
        crate::q!(db, "DELETE FROM realtime_state WHERE integration_id = ?1", &integration)?,
    ])
    .await?;
    Ok(())
}

pub async fn watches(db: &D1Database, integration: &str, kind: &str) -> ApiResult<Vec<WatchRow>> {
    Ok(crate::q!(
        db,
        "SELECT * FROM realtime_watches WHERE integration_id = ?1 AND kind = ?2 ORDER BY created_at",
        &integration,
        &kind
    )?
    .rows()
    .await?
    .results()?)
}

pub async fn all_watches(db: &D1Database, integration: &str) -> ApiResult<Vec<WatchRow>> {
    Ok(crate::q!(db, "SELECT * FROM realtime_watches WHERE integration_id = ?1", &integration)?
        .rows()
        .await?
        .results()?)
}

/// A new subscription.
pub struct NewWatch<'a> {
    pub id: &'a str,
    pub integration: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    pub resource_id: Option<&'a str>,
    pub token_hash: Option<&'a str>,
    pub expires_at: Option<Millis>,
}

pub async fn add_watch(db: &D1Database, w: &NewWatch<'_>, now: Millis) -> ApiResult<()> {
    crate::q!(
        db,
        "INSERT INTO realtime_watches (id, integration_id, kind, resource, resource_id, token_hash, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET resource_id = ?5, token_hash = ?6, expires_at = ?7, created_at = ?8",
        &w.id,
        &w.integration,
        &w.kind,
        &w.resource,
        &w.resource_id,
        &w.token_hash,
        &w.expires_at.map(iso),
        &iso(now)
    )?
    .exec()
    .await?;
    Ok(())
}

pub async fn remove_watch(db: &D1Database, id: &str) -> ApiResult<()> {
    crate::q!(db, "DELETE FROM realtime_watches WHERE id = ?1", &id)?.exec().await?;
    Ok(())
}

/// A Calendar channel by its id, with its integration's status.
pub async fn channel(db: &D1Database, id: &str) -> ApiResult<Option<WatchRow>> {
    Ok(crate::q!(
        db,
        "SELECT w.*, i.status FROM realtime_watches w JOIN integrations i ON i.id = w.integration_id
          WHERE w.id = ?1 AND w.kind = 'calendar'",
        &id
    )?
    .one()
    .await?)
}

/// The active Gmail integrations watching `email`.
pub async fn gmail_watchers(db: &D1Database, email: &str) -> ApiResult<Vec<IntegrationRow>> {
    Ok(crate::q!(
        db,
        "SELECT i.* FROM realtime_state s JOIN integrations i ON i.id = s.integration_id
          WHERE s.account = ?1 AND i.service = 'gmail' AND i.status = 'active'
            AND EXISTS (SELECT 1 FROM realtime_watches w WHERE w.integration_id = s.integration_id AND w.kind = 'gmail')",
        &email
    )?
    .rows()
    .await?
    .results()?)
}

/// An integration by id.
pub async fn integration(db: &D1Database, id: &str) -> ApiResult<Option<IntegrationRow>> {
    Ok(crate::q!(db, "SELECT * FROM integrations WHERE id = ?1", &id)?.one().await?)
}

/// Records a push delivery in the webhook inbox; `false` when it was seen before.
pub async fn record_delivery(db: &D1Database, provider: &str, id: &str, event: &str, now: Millis) -> ApiResult<bool> {
    let r = crate::q!(
        db,
        "INSERT INTO webhook_inbox (id, provider, delivery_id, event_type, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(provider, delivery_id) DO NOTHING",
        &uuid::Uuid::new_v4().to_string(),
        &provider,
        &id,
        &event,
        &iso(now)
    )?
    .exec()
    .await?;
    Ok(r.changes() > 0)
}

/// Forgets a recorded delivery (its effect could not be enqueued: the provider's retry acts).
pub async fn forget_delivery(db: &D1Database, provider: &str, id: &str) -> ApiResult<()> {
    crate::q!(db, "DELETE FROM webhook_inbox WHERE provider = ?1 AND delivery_id = ?2", &provider, &id)?.exec().await?;
    Ok(())
}

/// Records a notification's arrival; when a run is already running, asks for one more after it.
pub async fn notified(db: &D1Database, integration: &str, run_started: bool, now: Millis) -> ApiResult<()> {
    crate::q!(
        db,
        "UPDATE realtime_state SET last_notification_at = ?1,
           resync_at = CASE WHEN ?3 THEN resync_at
                            WHEN EXISTS (SELECT 1 FROM sync_logs l WHERE l.integration_id = ?2 AND l.status = 'running') THEN ?1
                            ELSE resync_at END
          WHERE integration_id = ?2",
        &iso(now),
        &integration,
        &run_started
    )?
    .exec()
    .await?;
    Ok(())
}

/// Integrations due for a look (claimed: the next look is in five minutes unless the job
/// sets it), and realtime integrations that have no state row yet (created before this
/// release, or by a path that did not ask).
pub async fn claim_due(db: &D1Database, now: Millis, limit: u32) -> ApiResult<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        integration_id: String,
    }
    let results = db
        .batch_rows(vec![
            crate::q!(
                db,
                "INSERT INTO realtime_state (integration_id, mode, next_check_at, updated_at)
                 SELECT id, 'poll', ?1, ?1 FROM integrations
                  WHERE json_extract(config, '$.syncFrequency') = 'realtime' AND status = 'active'
                    AND id NOT IN (SELECT integration_id FROM realtime_state) LIMIT 50",
                &iso(now)
            )?,
            crate::q!(
                db,
                "UPDATE realtime_state SET next_check_at = ?1
                  WHERE integration_id IN (SELECT integration_id FROM realtime_state WHERE next_check_at <= ?2
                                            ORDER BY next_check_at LIMIT ?3)
                  RETURNING integration_id",
                &iso(now + 5 * 60_000),
                &iso(now),
                &limit
            )?,
        ])
        .await?;
    Ok(results[1].results::<R>()?.into_iter().map(|r| r.integration_id).collect())
}

/// Integrations owed one more run (a notification came during a run that has since ended),
/// and GitHub integrations polling every 15 minutes whose last run started that long ago.
pub async fn owed_runs(db: &D1Database, now: Millis) -> ApiResult<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        integration_id: String,
    }
    let rows: Vec<R> = crate::q!(
        db,
        "SELECT s.integration_id FROM realtime_state s JOIN integrations i ON i.id = s.integration_id
          WHERE i.status = 'active'
            AND NOT EXISTS (SELECT 1 FROM sync_logs l WHERE l.integration_id = s.integration_id AND l.status IN ('pending', 'running'))
            AND (s.resync_at IS NOT NULL
                 OR (i.service = 'github' AND s.mode = 'poll'
                     AND COALESCE((SELECT MAX(started_at) FROM sync_logs l WHERE l.integration_id = i.id), '') < ?1))
          LIMIT 20",
        &iso(now - super::GITHUB_POLL_MS)
    )?
    .rows()
    .await?
    .results()?;
    Ok(rows.into_iter().map(|r| r.integration_id).collect())
}

pub async fn clear_resync(db: &D1Database, integration: &str) -> ApiResult<()> {
    crate::q!(db, "UPDATE realtime_state SET resync_at = NULL WHERE integration_id = ?1", &integration)?.exec().await?;
    Ok(())
}
