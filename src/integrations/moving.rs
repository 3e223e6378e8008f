//! The move of data kept in D1 before the data plane into each integration's object: through
//! the queue (`Job::MoveData`), a page of entities per step, resumable from the position saved
//! after each step and idempotent (the object keeps the newer of two versions, so a step done
//! twice changes nothing). Until an integration's copy is complete its reads are served from
//! D1 (the `legacy_*` functions) and its runs wait; then `data_home` becomes `object` and no
//! entity, search row or checkpoint of it is read from D1 again. The next release's migration
//! (`migrations-next/`) drops the D1 tables.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::Value;
use worker::d1::D1Database;
use worker::Env;

use super::data::{DataPlane, EntityRow, ImportCheckpoint, ImportRequest, ImportRow, Stats};
use crate::http::ApiResult;
use crate::jobs::{self, Job};
use crate::time::{iso, now_ms};

/// Entities copied per step: Gmail messages keep bodies up to 100 KiB, so a step carries at
/// most about 5 MB.
const PAGE: u32 = 50;
/// A move whose last step is older than this lost its message: the cron enqueues it again.
const STALLED_AFTER_MS: i64 = 2 * 60 * 1000;
/// Moves the cron starts or restarts per tick.
const PER_TICK: u32 = 20;

#[derive(Deserialize)]
struct Moving {
    data_move_cursor: Option<String>,
    data_home: String,
}

/// The position after the last copied entity: `<entity_type>\u{1f}<external_id>`.
fn split(cursor: &str) -> (&str, &str) {
    cursor.split_once('\u{1f}').unwrap_or(("", ""))
}

/// One step of an integration's move; `Ok(true)` when more remain. Subrequests: 3 or 4.
pub async fn step(env: &Env, integration: &str) -> ApiResult<bool> {
    let db = env.d1("DB")?;
    let Some(m) = crate::q!(
        &db,
        "UPDATE integrations SET data_home = CASE WHEN data_home = 'd1' THEN 'moving' ELSE data_home END, data_move_at = ?2
          WHERE id = ?1 RETURNING data_move_cursor, data_home",
        &integration,
        &iso(now_ms())
    )?
    .one::<Moving>()
    .await?
    else {
        return Ok(false); // deleted meanwhile: nothing to do
    };
    if m.data_home == "object" {
        return Ok(false);
    }
    let cursor = m.data_move_cursor.unwrap_or_default();
    let (after_type, after_id) = split(&cursor);
    let rows: Vec<ImportRow> = crate::q!(
        &db,
        "SELECT entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, deleted_at, seen_run, parent
           FROM synced_entities WHERE integration_id = ?1 AND (entity_type > ?2 OR (entity_type = ?2 AND external_id > ?3))
          ORDER BY entity_type, external_id LIMIT ?4",
        &integration,
        &after_type,
        &after_id,
        &PAGE
    )?
    .rows()
    .await?
    .results()?;
    let plane = DataPlane::new(env, integration);
    if let Some(last) = rows.last() {
        let next = format!("{}\u{1f}{}", last.entity_type, last.external_id);
        if !plane.import(&ImportRequest { rows, checkpoints: Vec::new() }).await? {
            return Ok(false); // the integration was deleted and its object dropped
        }
        crate::q!(&db, "UPDATE integrations SET data_move_cursor = ?2 WHERE id = ?1", &integration, &next)?
            .exec()
            .await?;
        return Ok(true);
    }
    // Every entity is in the object: the checkpoints follow, then reads and runs switch over.
    let checkpoints: Vec<ImportCheckpoint> = crate::q!(
        &db,
        "SELECT entity_type, parent, cursor, updated_at FROM sync_checkpoints WHERE integration_id = ?1",
        &integration
    )?
    .rows()
    .await?
    .results()?;
    plane.import(&ImportRequest { rows: Vec::new(), checkpoints }).await?;
    crate::q!(
        &db,
        "UPDATE integrations SET data_home = 'object', data_move_cursor = NULL WHERE id = ?1",
        &integration
    )?
    .exec()
    .await?;
    Ok(false)
}

/// The queue's work: one step, and the next message while more remain.
pub async fn work(env: &Env, integration: &str) -> ApiResult<()> {
    if step(env, integration).await? {
        jobs::send(env, &Job::MoveData { integration: integration.to_string() }, 0).await?;
    }
    Ok(())
}

/// The cron's part: moves not started yet, and moves whose message was lost, are enqueued.
pub async fn sweep(env: &Env) -> ApiResult<()> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let db = env.d1("DB")?;
    let due: Vec<Id> = crate::q!(
        &db,
        "SELECT id FROM integrations WHERE data_home <> 'object' AND (data_move_at IS NULL OR data_move_at < ?1) LIMIT ?2",
        &iso(now_ms() - STALLED_AFTER_MS),
        &PER_TICK
    )?
    .rows()
    .await?
    .results()?;
    let jobs: Vec<Job> = due.into_iter().map(|d| Job::MoveData { integration: d.id }).collect();
    jobs::send_all(env, &jobs).await
}

/// `GET /api/admin/data-plane` → `{remaining, moving}`: integrations whose data is still in D1
/// (the next release's migration drops those tables once `remaining` is 0).
pub async fn remaining(db: &D1Database) -> ApiResult<Value> {
    #[derive(Deserialize)]
    struct R {
        remaining: i64,
        moving: i64,
    }
    let r: Option<R> = crate::q!(
        db,
        "SELECT COUNT(*) AS remaining, COALESCE(SUM(data_home = 'moving'), 0) AS moving FROM integrations WHERE data_home <> 'object'"
    )?
    .one()
    .await?;
    let r = r.unwrap_or(R { remaining: 0, moving: 0 });
    Ok(serde_json::json!({ "remaining": r.remaining, "moving": r.moving }))
}

/// A page of entities of an integration not moved yet (as its object would answer).
pub async fn legacy_entities(
    db: &D1Database,
    integration: &str,
    entity: &str,
    after: &str,
    modified_after: Option<&str>,
    include_deleted: bool,
    limit: u32,
) -> ApiResult<Vec<EntityRow>> {
    Ok(crate::q!(
        db,
        "SELECT external_id, data, first_seen_at, last_modified_at, deleted_at FROM synced_entities
          WHERE integration_id = ?1 AND entity_type = ?2 AND external_id > ?3
            AND (?4 IS NULL OR last_modified_at > ?4) AND (?5 OR deleted_at IS NULL)
          ORDER BY external_id LIMIT ?6",
        &integration,
        &entity,
        &after,
        &modified_after,
        &include_deleted,
        &limit
    )?
    .rows()
    .await?
    .results()?)
}

/// The storage of an integration not moved yet: its entities' text in D1 and their count.
pub async fn legacy_stats(db: &D1Database, integration: &str) -> ApiResult<Stats> {
    #[derive(Deserialize)]
    struct S {
        bytes: Option<f64>,
        entities: i64,
    }
    let s: Option<S> = crate::q!(
        db,
        "SELECT SUM(length(data) + length(external_id) + 64) AS bytes, COALESCE(SUM(deleted_at IS NULL), 0) AS entities
           FROM synced_entities WHERE integration_id = ?1",
        &integration
    )?
    .one()
    .await?;
    Ok(s.map_or(Stats { bytes: 0, entities: 0 }, |s| Stats {
        bytes: s.bytes.unwrap_or(0.0) as u64,
        entities: s.entities,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_names_the_last_entity_copied() {
        assert_eq!(split(""), ("", ""));
        assert_eq!(split("issues\u{1f}o/r#7"), ("issues", "o/r#7"));
        assert_eq!(split("messages\u{1f}a\u{1f}b"), ("messages", "a\u{1f}b"));
    }
}
