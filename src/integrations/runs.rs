//! Sync runs as durable background work. A run is a `sync_logs` row and a chain of queue
//! messages: each message is one slice (`engine::run_slice`) under the run's lease, and ends by
//! enqueuing the next (now, or at a rate limit's reset). Nothing depends on `waitUntil`: a lost
//! message or a dead worker is found by the cron's sweep, which only enqueues.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::json;
use worker::{D1Database, Env};

use super::engine::{self, Limits, Slice};
use super::store::IntegrationRow;
use super::sync_store::{DataStore, ServiceSource};
use crate::config::{log_error, var};
use crate::http::{ApiError, ApiResult};
use crate::jobs::{self, Job};
use crate::time::{iso, now_ms, parse_stored, Millis};

/// Subrequests one queue invocation may make (Workers: 50 on the free plan, 1000 paid).
pub const DEFAULT_BUDGET: u32 = 45;
/// A run that has made no progress for this long, with nothing scheduled, is failed.
pub const STUCK_AFTER_MS: Millis = 60 * 60 * 1000;
/// A run without a live lease on which no slice has run for this long (or for its lease's
/// length, when that is shorter) has lost its chain of messages.
const ORPHANED_AFTER_MS: Millis = 60 * 1000;

/// The fewest subrequests a slice can commit a page with: the claim, the credentials, the
/// entity's start (its object and D1), one page request, its commit (object and D1), the release
/// and the continuation message.
pub const MIN_BUDGET: u32 = 10;

/// The subrequest budget of one queue invocation (`SYNC_REQUEST_BUDGET`); a value that is not
/// a number, or below what one page needs, is refused (logged) and the default used.
pub fn budget(env: &Env) -> u32 {
    match budget_problem(var(env, "SYNC_REQUEST_BUDGET").as_deref()) {
        Ok(b) => b,
        Err(problem) => {
            log_error(&problem);
            DEFAULT_BUDGET
        }
    }
}

/// The configured budget, or why it cannot be used.
fn budget_problem(configured: Option<&str>) -> Result<u32, String> {
    let Some(text) = configured.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(DEFAULT_BUDGET) };
    match text.parse::<u32>() {
        Ok(b) if b >= MIN_BUDGET => Ok(b),
        Ok(b) => Err(format!(
            "SYNC_REQUEST_BUDGET={b} is below the {MIN_BUDGET} subrequests a slice needs to commit one page; the default {DEFAULT_BUDGET} is used"
        )),
        Err(_) => Err(format!("SYNC_REQUEST_BUDGET={text:?} is not a number; the default {DEFAULT_BUDGET} is used")),
    }
}

fn lease_ms(env: &Env) -> Millis {
    var(env, "SYNC_LEASE_SECONDS")
        .and_then(|v| v.parse::<Millis>().ok())
        .filter(|s| *s > 0)
        .map_or(engine::DEFAULT_LEASE_MS, |s| s * 1000)
}

/// Creates a run of `row` with its configured filters; `None` when one is already unfinished
/// (the partial unique index decides).
pub async fn create(
    env: &Env,
    db: &D1Database,
    row: &IntegrationRow,
    entities: Vec<String>,
    full: bool,
    now: Millis,
) -> ApiResult<Option<String>> {
    create_scoped(env, db, row, entities, None, full, now).await
}

/// Creates a run walking only the parent `only_parent` (when given) of its entity types.
pub async fn create_scoped(
    env: &Env,
    db: &D1Database,
    row: &IntegrationRow,
    entities: Vec<String>,
    only_parent: Option<String>,
    full: bool,
    now: Millis,
) -> ApiResult<Option<String>> {
    let id = uuid::Uuid::new_v4().to_string();
    let integration_id = &row.id;
    let filters = row.config().get("filters").filter(|f| f.as_object().is_some_and(|o| !o.is_empty())).cloned();
    let state = engine::RunState { entities, index: 0, position: None, filters, only_parent };
    // A refused budget is said on the run too, where its owner looks.
    let notes = budget_problem(crate::config::var(env, "SYNC_REQUEST_BUDGET").as_deref())
        .err()
        .map(|p| serde_json::to_string(&[p]))
        .transpose()?;
    let r = crate::q!(
        db,
        "INSERT INTO sync_logs (id, integration_id, status, full_sync, state, started_at, heartbeat_at, notes) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?5, ?6)
         ON CONFLICT DO NOTHING",
        &id,
        &integration_id,
        &i32::from(full),
        &serde_json::to_string(&state)?,
        &iso(now),
        &notes
    )?
    .exec()
    .await?;
    Ok((r.changes() > 0).then_some(id))
}

/// Starts a run now (`POST /sync`): 409 while another is unfinished.
pub async fn start(
    env: &Env,
    row: &IntegrationRow,
    entities: Vec<String>,
    full: bool,
    now: Millis,
) -> ApiResult<String> {
    let db = env.d1("DB")?;
    let Some(id) = create(env, &db, row, entities, full, now).await? else {
        return Err(ApiError::conflict("SYNC_IN_PROGRESS", "A sync of this integration is already running"));
    };
    // If this send is lost, the sweep enqueues the run a minute later.
    if let Err(e) = jobs::send(env, &Job::Sync { run: id.clone(), chain: 0 }, 0).await {
        log_error(&format!("sync {id}: could not enqueue ({}); the cron will", e.message));
    }
    Ok(id)
}

/// One slice of a run for the queue consumer (a message of chain `chain`), with `budget`
/// subrequests.
pub async fn slice(env: &Env, run: &str, owner: &str, chain: i64, budget: u32) -> Slice {
    let store = match DataStore::new(env) {
        Ok(s) => s,
        Err(e) => return Slice::Retry { error: e.to_string(), failures: 1 },
    };
    let mut source = ServiceSource::new(env, &store);
    let limits = Limits { now: now_ms, budget, lease_ms: lease_ms(env) };
    engine::run_slice(&store, &mut source, run, owner, chain, &limits).await
}

/// The dead-letter queue's verdict: retries are exhausted, the run fails with its last error.
pub async fn give_up(env: &Env, run: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    #[derive(Deserialize)]
    struct L {
        last_error: Option<String>,
        integration_id: String,
    }
    let Some(l) = crate::q!(
        &db,
        "SELECT last_error, integration_id FROM sync_logs WHERE id = ?1 AND status IN ('pending', 'running')",
        &run
    )?
    .one::<L>()
    .await?
    else {
        return Ok(());
    };
    let reason =
        format!("Gave up after repeated failures: {}", l.last_error.as_deref().unwrap_or("the worker kept failing"));
    let errors = json!([{ "entity": "sync", "message": reason, "code": "SYNC_RETRIES_EXHAUSTED" }]).to_string();
    let now = iso(now_ms());
    db.batch_rows(vec![
        crate::q!(&db, "UPDATE sync_logs SET status = 'failed', errors = ?1, completed_at = ?2, lease_owner = NULL, lease_until = NULL, resume_at = NULL WHERE id = ?3", &errors, &now, &run)?,
        crate::q!(&db, "UPDATE integrations SET error_message = ?1, updated_at = ?2 WHERE id = ?3", &reason, &now, &l.integration_id)?,
    ])
    .await?;
    Ok(())
}

/// The cron tick: fail runs stuck for an hour, enqueue runs whose message was lost or whose
/// worker died, and start due scheduled syncs. It never runs a slice itself.
pub async fn sweep(env: &Env) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let errors = json!([{ "entity": "sync", "message": "The sync made no progress for an hour and was marked failed", "code": "SYNC_TIMEOUT" }]).to_string();
    let stuck = iso(now - STUCK_AFTER_MS);
    #[derive(Deserialize)]
    struct Orphan {
        id: String,
        chain: i64,
    }
    let results = db
        .batch_rows(vec![
            crate::q!(
                &db,
                "UPDATE sync_logs SET status = 'failed', errors = ?1, completed_at = ?2, lease_owner = NULL, lease_until = NULL
                  WHERE status IN ('pending', 'running') AND heartbeat_at < ?3 AND (resume_at IS NULL OR resume_at < ?3)
                    AND (lease_until IS NULL OR lease_until < ?3)",
                &errors,
                &iso(now),
                &stuck
            )?,
            // A run whose chain of messages is gone: no lease held, nothing scheduled, and no slice
            // has run for a minute (whether or not slices made progress). Its next chain starts
            // here; a message of the old chain that turns up later stops at its claim.
            crate::q!(
                &db,
                "UPDATE sync_logs SET chain = chain + 1, slice_at = ?1
                  WHERE id IN (SELECT id FROM sync_logs WHERE status IN ('pending', 'running')
                                 AND (lease_until IS NULL OR lease_until <= ?1)
                                 AND COALESCE(resume_at, slice_at, started_at) <= ?2 ORDER BY started_at LIMIT 20)
                  RETURNING id, chain",
                &iso(now),
                &iso(now - ORPHANED_AFTER_MS.min(lease_ms(env)))
            )?,
            // Candidates for a scheduled run: active, scheduled, nothing unfinished, nothing
            // started within the last hour (the exact period is decided by `engine::due`).
            crate::q!(
                &db,
                "SELECT i.*, (SELECT MAX(started_at) FROM sync_logs l WHERE l.integration_id = i.id) AS last_started
                   FROM integrations i WHERE status = 'active' AND json_extract(config, '$.syncFrequency') IN ('hourly', 'daily', 'realtime')
                    AND NOT EXISTS (SELECT 1 FROM sync_logs l WHERE l.integration_id = i.id AND (l.status IN ('pending', 'running') OR l.started_at > ?1))
                  ORDER BY last_synced_at LIMIT 10",
                &iso(now - 3_600_000)
            )?,
        ])
        .await?;
    let mut jobs: Vec<Job> =
        results[1].results::<Orphan>()?.into_iter().map(|r| Job::Sync { run: r.id, chain: r.chain }).collect();
    #[derive(Deserialize)]
    struct Due {
        #[serde(flatten)]
        row: IntegrationRow,
        last_started: Option<String>,
    }
    for d in results[2].results::<Due>()? {
        let freq = d.row.config()["syncFrequency"].as_str().unwrap_or("manual").to_string();
        let Some(full) = engine::due(
            &freq,
            d.last_started.as_deref().and_then(parse_stored),
            d.row.last_full_sync_at.as_deref().and_then(parse_stored),
            now,
        ) else {
            continue;
        };
        let Ok(plan) = d.row.plan() else { continue };
        if let Some(id) = create(env, &db, &d.row, plan, full, now).await? {
            jobs.push(Job::Sync { run: id, chain: 0 });
        }
    }
    jobs::send_all(env, &jobs).await
}

/// A run as its status route shows it.
#[derive(Deserialize)]
pub struct LogView {
    pub id: String,
    pub integration_id: String,
    pub status: String,
    pub full_sync: i64,
    pub current_entity: Option<String>,
    pub records_synced: i64,
    pub requests_made: i64,
    pub invocations: i64,
    pub errors: Option<String>,
    pub notes: Option<String>,
    pub last_error: Option<String>,
    pub started_at: String,
    pub resume_at: Option<String>,
    pub completed_at: Option<String>,
}

impl crate::http::page::Keyed for LogView {
    fn created_at(&self) -> &str {
        &self.started_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// One page of the integration's runs, newest first (keyset on `started_at, id`; served by
/// `idx_sync_logs_integration`).
pub async fn list_logs(
    db: &worker::d1::D1Database,
    integration: &str,
    page: &crate::http::page::PageQuery,
) -> ApiResult<Vec<LogView>> {
    Ok(crate::q!(
        db,
        "SELECT * FROM sync_logs WHERE integration_id = ?1
           AND (started_at < ?2 OR (started_at = ?2 AND ?3 <> '' AND id < ?3))
         ORDER BY started_at DESC, id DESC LIMIT ?4",
        &integration,
        &page.after_created,
        &page.after_id,
        &page.fetch()
    )?
    .rows()
    .await?
    .results()?)
}

/// The run `id` of the integration, if it exists.
pub async fn find_log(db: &worker::d1::D1Database, integration: &str, id: &str) -> ApiResult<Option<LogView>> {
    Ok(crate::q!(db, "SELECT * FROM sync_logs WHERE id = ?1 AND integration_id = ?2", &id, &integration)?.one().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_below_one_page_is_refused_with_the_reason() {
        assert_eq!(budget_problem(None), Ok(DEFAULT_BUDGET));
        assert_eq!(budget_problem(Some("1000")), Ok(1000));
        assert_eq!(budget_problem(Some(" 10 ")), Ok(MIN_BUDGET));
        let low = budget_problem(Some("6")).unwrap_err();
        assert!(low.contains("SYNC_REQUEST_BUDGET=6 is below the 10 subrequests"), "{low}");
        assert!(budget_problem(Some("lots")).unwrap_err().contains("not a number"));
        assert!(budget_problem(Some("0")).is_err());
    }
}
