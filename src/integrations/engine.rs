//! The sync engine. A run works through its plan one page (one upstream request) at a time,
//! upserting each page in one D1 batch together with its progress, so a crash or a fault
//! never leaves a page half-written. It stops on its own when the invocation's request
//! budget is spent or the upstream rate-limits, and the cron tick resumes it from the saved
//! position. Full runs mark entities that were not seen as deleted.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::{D1Database, D1PreparedStatement};
use worker::Env;

use super::framework::{later, Item, Position, RunState, SyncError};
use super::{github, load_credentials, IntegrationRow};
use crate::config::{log_error, var};
use crate::github::client::GitHub;
use crate::http::{ApiError, ApiResult};
use crate::time::{iso, now_ms};

/// Requests one invocation may make (Workers: 50 subrequests on the free plan, 1000 paid).
const DEFAULT_REQUEST_BUDGET: u32 = 40;
/// A run whose heartbeat is older than this is failed (the invocation died).
pub const STUCK_AFTER_MS: i64 = 10 * 60 * 1000;

fn budget(env: &Env) -> u32 {
    var(env, "SYNC_REQUEST_BUDGET").and_then(|v| v.parse().ok()).filter(|b| *b > 0).unwrap_or(DEFAULT_REQUEST_BUDGET)
}

#[derive(Deserialize)]
struct LogRow {
    id: String,
    integration_id: String,
    status: String,
    full_sync: i64,
    state: String,
    records_synced: i64,
    requests_made: i64,
}

fn upsert(
    db: &D1Database,
    integration: &str,
    entity: &str,
    item: &Item,
    run: &str,
    now: &str,
) -> worker::Result<D1PreparedStatement> {
    crate::q!(
        db,
        "INSERT INTO synced_entities (id, integration_id, entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, seen_run)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8)
         ON CONFLICT(integration_id, entity_type, external_id) DO UPDATE SET data = excluded.data,
           last_modified_at = excluded.last_modified_at, synced_at = excluded.synced_at, deleted_at = NULL, seen_run = excluded.seen_run",
        &format!("{integration}:{entity}:{}", item.external_id),
        &integration,
        &entity,
        &item.external_id,
        &item.data.to_string(),
        &now,
        &(if item.modified_at.is_empty() { now.to_string() } else { item.modified_at.clone() }),
        &run
    )
}

/// Upserts items outside a run (webhooks, fetch, push).
pub async fn store_items(db: &D1Database, integration: &str, items: &[(&str, Item)]) -> ApiResult<()> {
    let now = iso(now_ms());
    let stmts =
        items.iter().map(|(e, i)| upsert(db, integration, e, i, "", &now)).collect::<worker::Result<Vec<_>>>()?;
    if !stmts.is_empty() {
        db.batch(stmts).await?;
    }
    Ok(())
}

async fn finish(
    db: &D1Database,
    log: &str,
    integration: &str,
    outcome: Result<(), SyncError>,
    now: &str,
) -> ApiResult<()> {
    let stmts = match &outcome {
        Ok(()) => vec![
            crate::q!(db, "UPDATE sync_logs SET status = 'completed', errors = '[]', completed_at = ?1, heartbeat_at = ?1, resume_at = NULL, current_entity = NULL WHERE id = ?2", &now, &log)?,
            crate::q!(db, "UPDATE integrations SET last_synced_at = ?1, updated_at = ?1, error_message = NULL WHERE id = ?2", &now, &integration)?,
        ],
        Err(e) => {
            let errors = json!([{ "entity": "sync", "message": e.message(), "code": if matches!(e, SyncError::Auth(_)) { "AUTH_FAILED" } else { "SYNC_ERROR" } }]).to_string();
            // Only an authentication failure needs the user; other failures leave it active.
            let status = if matches!(e, SyncError::Auth(_)) { "error" } else { "active" };
            vec![
                crate::q!(db, "UPDATE sync_logs SET status = 'failed', errors = ?1, completed_at = ?2, heartbeat_at = ?2, resume_at = NULL WHERE id = ?3", &errors, &now, &log)?,
                crate::q!(db, "UPDATE integrations SET status = ?1, error_message = ?2, updated_at = ?3 WHERE id = ?4", &status, &e.message(), &now, &integration)?,
            ]
        }
    };
    db.batch(stmts).await?;
    Ok(())
}

/// Runs (or continues) a sync for as long as this invocation's budget allows.
pub async fn run(env: &Env, log_id: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let log: Option<LogRow> = crate::q!(&db, "SELECT id, integration_id, status, full_sync, state, records_synced, requests_made FROM sync_logs WHERE id = ?1", &log_id)?
        .first(None)
        .await?;
    let Some(log) = log.filter(|l| l.status == "pending" || l.status == "running") else { return Ok(()) };
    let integration: IntegrationRow = crate::q!(&db, "SELECT * FROM integrations WHERE id = ?1", &log.integration_id)?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::internal("integration vanished"))?;
    let now = iso(now_ms());
    crate::q!(&db, "UPDATE sync_logs SET status = 'running', invocations = invocations + 1, heartbeat_at = ?1, resume_at = NULL WHERE id = ?2", &now, &log.id)?
        .run()
        .await?;
    let creds = match load_credentials(env, &integration).await {
        Ok(c) => c,
        Err(e) => {
            return finish(
                &db,
                &log.id,
                &integration.id,
                Err(SyncError::Auth(format!("credentials unavailable: {}", e.message))),
                &now,
            )
            .await
        }
    };
    let Some(token) = github::token(&creds) else {
        return finish(
            &db,
            &log.id,
            &integration.id,
            Err(SyncError::Auth("stored credentials have no access token".into())),
            &now,
        )
        .await;
    };
    let gh = GitHub::new(&crate::github::api_url(env), token);
    let mut state: RunState = serde_json::from_str(&log.state).unwrap_or_default();
    let full = log.full_sync != 0;
    let mut records = log.records_synced;
    let mut requests = log.requests_made;
    let mut left = budget(env);
    while state.index < state.entities.len() {
        let entity = state.entities[state.index].clone();
        let now = iso(now_ms());
        if state.position.is_none() {
            state.position = Some(start_position(&db, &integration.id, &entity, full).await?);
        }
        if left == 0 {
            // Budget spent: save and let the next invocation (the cron tick) continue.
            crate::q!(
                &db,
                "UPDATE sync_logs SET state = ?1, heartbeat_at = ?2, resume_at = ?2 WHERE id = ?3",
                &serde_json::to_string(&state)?,
                &now,
                &log.id
            )?
            .run()
            .await?;
            return Ok(());
        }
        let pos = state.position.clone().unwrap_or_default();
        left -= 1;
        requests += 1;
        match github::sync_page(&gh, &entity, &pos).await {
            Ok(page) => {
                let mut next_pos = pos.clone();
                for item in &page.items {
                    next_pos.max_modified = later(next_pos.max_modified.take(), &item.modified_at);
                }
                next_pos.cursor = page.next.clone();
                records += page.items.len() as i64;
                let mut stmts = page
                    .items
                    .iter()
                    .map(|i| upsert(&db, &integration.id, &entity, i, &log.id, &now))
                    .collect::<worker::Result<Vec<_>>>()?;
                if page.next.is_none() {
                    // The entity type is done: deletions (full runs) and the next checkpoint.
                    if full {
                        stmts.push(crate::q!(
                            &db,
                            "UPDATE synced_entities SET deleted_at = ?1 WHERE integration_id = ?2 AND entity_type = ?3
                               AND deleted_at IS NULL AND (seen_run IS NULL OR seen_run <> ?4)",
                            &now,
                            &integration.id,
                            &entity,
                            &log.id
                        )?);
                    }
                    if let Some(cp) = &next_pos.max_modified {
                        stmts.push(crate::q!(
                            &db,
                            "INSERT INTO sync_checkpoints (integration_id, entity_type, cursor, updated_at) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT(integration_id, entity_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                            &integration.id,
                            &entity,
                            &json!({ "since": cp }).to_string(),
                            &now
                        )?);
                    }
                    state.index += 1;
                    state.position = None;
                } else {
                    state.position = Some(next_pos);
                }
                stmts.push(crate::q!(
                    &db,
                    "UPDATE sync_logs SET state = ?1, records_synced = ?2, requests_made = ?3, current_entity = ?4, heartbeat_at = ?5 WHERE id = ?6",
                    &serde_json::to_string(&state)?,
                    &records,
                    &requests,
                    &entity,
                    &now,
                    &log.id
                )?);
                db.batch(stmts).await?;
            }
            Err(SyncError::RateLimited(secs)) => {
                let resume = iso(now_ms() + secs as i64 * 1000);
                crate::q!(&db, "UPDATE sync_logs SET state = ?1, requests_made = ?2, heartbeat_at = ?3, resume_at = ?4 WHERE id = ?5",
                    &serde_json::to_string(&state)?, &requests, &now, &resume, &log.id)?
                .run()
                .await?;
                return Ok(());
            }
            Err(e) => {
                crate::q!(&db, "UPDATE sync_logs SET requests_made = ?1 WHERE id = ?2", &requests, &log.id)?
                    .run()
                    .await?;
                let e = match e {
                    SyncError::Auth(m) => SyncError::Auth(format!("{entity}: {m}")),
                    other => SyncError::Failed(format!("{entity}: {}", other.message())),
                };
                return finish(&db, &log.id, &integration.id, Err(e), &now).await;
            }
        }
    }
    finish(&db, &log.id, &integration.id, Ok(()), &iso(now_ms())).await
}

/// Where an entity type starts: its checkpoint (incremental) and, for repository-scoped types,
/// the repositories currently stored for the integration.
async fn start_position(db: &D1Database, integration: &str, entity: &str, full: bool) -> ApiResult<Position> {
    #[derive(Deserialize)]
    struct Cp {
        cursor: String,
    }
    #[derive(Deserialize)]
    struct Repo {
        full_name: Option<String>,
    }
    let since = if full {
        None
    } else {
        let cp: Option<Cp> = crate::q!(
            db,
            "SELECT cursor FROM sync_checkpoints WHERE integration_id = ?1 AND entity_type = ?2",
            &integration,
            &entity
        )?
        .first(None)
        .await?;
        cp.and_then(|c| serde_json::from_str::<Value>(&c.cursor).ok())
            .and_then(|v| v["since"].as_str().map(str::to_string))
    };
    let parents = if entity == "repositories" {
        Vec::new()
    } else {
        let rows: Vec<Repo> = crate::q!(
            db,
            "SELECT json_extract(data, '$.full_name') AS full_name FROM synced_entities
              WHERE integration_id = ?1 AND entity_type = 'repositories' AND deleted_at IS NULL ORDER BY external_id",
            &integration
        )?
        .all()
        .await?
        .results()?;
        rows.into_iter().filter_map(|r| r.full_name).collect()
    };
    Ok(Position { cursor: None, since: since.clone(), max_modified: since, parents })
}

/// Starts a run: one unfinished run per integration (the partial unique index turns a second
/// start into a conflict). Returns the log id.
pub async fn start(
    db: &D1Database,
    integration: &IntegrationRow,
    entities: Vec<String>,
    full: bool,
    now: i64,
) -> ApiResult<String> {
    fail_stuck(db, now).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let state = RunState { entities, index: 0, position: None };
    let r = crate::q!(
        db,
        "INSERT INTO sync_logs (id, integration_id, status, full_sync, state, started_at, heartbeat_at) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?5)
         ON CONFLICT DO NOTHING",
        &id,
        &integration.id,
        &i32::from(full),
        &serde_json::to_string(&state)?,
        &iso(now)
    )?
    .run()
    .await?;
    if crate::db::changes(&r)? == 0 {
        return Err(ApiError::conflict("SYNC_IN_PROGRESS", "A sync of this integration is already running"));
    }
    Ok(id)
}

/// Fails runs whose invocation died (no heartbeat within the timeout and nothing scheduled).
pub async fn fail_stuck(db: &D1Database, now: i64) -> ApiResult<()> {
    let cutoff = iso(now - STUCK_AFTER_MS);
    let errors = json!([{ "entity": "sync", "message": "The sync stopped responding and was marked failed", "code": "SYNC_TIMEOUT" }]).to_string();
    crate::q!(
        db,
        "UPDATE sync_logs SET status = 'failed', errors = ?1, completed_at = ?2
          WHERE status IN ('pending', 'running') AND heartbeat_at < ?3 AND (resume_at IS NULL OR resume_at < ?3)",
        &errors,
        &iso(now),
        &cutoff
    )?
    .run()
    .await?;
    Ok(())
}

/// The cron tick: fail stuck runs, continue deferred ones, start due scheduled syncs.
pub async fn tick(env: &Env) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = now_ms();
    fail_stuck(&db, now).await?;
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let due: Vec<Id> = crate::q!(&db, "SELECT id FROM sync_logs WHERE status IN ('pending', 'running') AND resume_at IS NOT NULL AND resume_at <= ?1 LIMIT 5", &iso(now))?
        .all()
        .await?
        .results()?;
    for d in due {
        if let Err(e) = run(env, &d.id).await {
            log_error(&format!("sync {} continuation failed: {}", d.id, e.message));
        }
    }
    let hour_ago = iso(now - 3_600_000);
    let day_ago = iso(now - 86_400_000);
    let scheduled: Vec<IntegrationRow> = crate::q!(
        &db,
        "SELECT * FROM integrations i WHERE status = 'active'
           AND ((json_extract(config, '$.syncFrequency') = 'hourly' AND (last_synced_at IS NULL OR last_synced_at < ?1))
             OR (json_extract(config, '$.syncFrequency') = 'daily' AND (last_synced_at IS NULL OR last_synced_at < ?2)))
           AND NOT EXISTS (SELECT 1 FROM sync_logs l WHERE l.integration_id = i.id AND l.status IN ('pending', 'running'))
         ORDER BY last_synced_at LIMIT 10",
        &hour_ago,
        &day_ago
    )?
    .all()
    .await?
    .results()?;
    for integration in scheduled {
        let entities = super::configured_plan(&integration).unwrap_or_default();
        match start(&db, &integration, entities, false, now).await {
            Ok(log) => {
                if let Err(e) = run(env, &log).await {
                    log_error(&format!("scheduled sync {log} failed: {}", e.message));
                }
            }
            Err(e) if e.status == 409 => {}
            Err(e) => log_error(&format!("scheduled sync of {} could not start: {}", integration.id, e.message)),
        }
    }
    Ok(())
}
