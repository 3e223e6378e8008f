//! The engine's platform edge: `D1Store` keeps runs, checkpoints and entities in D1 (each
//! method one round trip; every write of a slice guarded by its lease), and `ServiceSource`
//! is a registered service reached through a counting transport with the integration's
//! credentials from the `API_KEYS` object.

use crate::db::{Batch as _, Query as _};
use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::d1::{D1Database, D1PreparedStatement};
use worker::Env;

use super::engine::{Commit, Ending, Position, Run, StoreError, SyncStore};
use super::service::{Conn, Credentials, Item, Page, PageRequest, Parent, Service, ServiceError};
use super::store::IntegrationRow;
use crate::db::Bind;
use crate::http::ApiResult;
use crate::outbound::{Counting, Net};
use crate::time::{iso, Millis};

/// Upserted items go in statements of at most this much JSON (D1 caps a row and a bound value
/// at 2 MB; a page of GitHub issues with long bodies can exceed one statement's worth).
const CHUNK_BYTES: usize = 512 * 1024;

/// The condition every write of a slice carries: the run is still leased to this worker.
const GUARD: &str = "EXISTS (SELECT 1 FROM sync_logs WHERE id = ?90 AND lease_owner = ?91)";

pub struct D1Store {
    db: D1Database,
    /// The claimed run's integration (read in the claim's round trip).
    pub integration: RefCell<Option<IntegrationRow>>,
}

#[derive(Deserialize)]
struct ClaimRow {
    id: String,
    integration_id: String,
    full_sync: i64,
    state: String,
    records_synced: i64,
    requests_made: i64,
}

/// Binds `args` then the guard's two parameters at ?90 and ?91.
fn guarded(
    db: &D1Database,
    sql: &str,
    mut args: Vec<JsValue>,
    run: &str,
    owner: &str,
) -> worker::Result<D1PreparedStatement> {
    args.resize(89, JsValue::NULL);
    args.push(run.js());
    args.push(owner.js());
    crate::db::prepare(db, sql, &args)
}

/// The upsert of a page of items: one statement per chunk, items as one JSON array. An older
/// version never overwrites a newer one (a late webhook or a slow page), but a run still
/// records that it saw the entity.
pub fn upsert_statements(
    db: &D1Database,
    integration: &str,
    entity: &str,
    items: &[&Item],
    run: &str,
    now: &str,
    guard: Option<(&str, &str)>,
) -> worker::Result<Vec<D1PreparedStatement>> {
    let mut out = Vec::new();
    let mut chunk: Vec<Value> = Vec::new();
    let mut size = 0;
    let sql = format!(
        "INSERT INTO synced_entities (id, integration_id, entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, seen_run, parent)
         SELECT ?1 || ':' || ?2 || ':' || json_extract(j.value, '$.e'), ?1, ?2, json_extract(j.value, '$.e'), json_extract(j.value, '$.d'),
                ?3, COALESCE(NULLIF(json_extract(j.value, '$.m'), ''), ?3), ?3, ?4, json_extract(j.value, '$.p')
           FROM json_each(?5) j WHERE {}
         ON CONFLICT(integration_id, entity_type, external_id) DO UPDATE SET
           data = CASE WHEN excluded.last_modified_at >= synced_entities.last_modified_at THEN excluded.data ELSE synced_entities.data END,
           last_modified_at = MAX(excluded.last_modified_at, synced_entities.last_modified_at),
           synced_at = excluded.synced_at, deleted_at = NULL, seen_run = COALESCE(excluded.seen_run, synced_entities.seen_run),
           parent = excluded.parent",
        if guard.is_some() { GUARD } else { "true" }
    );
    let mut flush = |chunk: &mut Vec<Value>| -> worker::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let run = if run.is_empty() { JsValue::NULL } else { run.js() };
        let args =
            vec![integration.js(), entity.js(), now.js(), run, Value::Array(std::mem::take(chunk)).to_string().js()];
        out.push(match guard {
            Some((r, o)) => guarded(db, &sql, args, r, o)?,
            None => crate::db::prepare(db, &sql, &args)?,
        });
        Ok(())
    };
    for i in items {
        let data = i.data.to_string();
        size += data.len() + i.external_id.len() + 64;
        chunk.push(json!({ "e": i.external_id, "d": data, "m": i.modified_at, "p": i.parent }));
        if size >= CHUNK_BYTES {
            flush(&mut chunk)?;
            size = 0;
        }
    }
    flush(&mut chunk)?;
    Ok(out)
}

impl D1Store {
    pub fn new(env: &Env) -> worker::Result<Self> {
        Ok(D1Store { db: env.d1("DB")?, integration: RefCell::new(None) })
    }

    async fn store(&self, c: &Commit<'_>) -> worker::Result<bool> {
        let db = &self.db;
        let (run, owner) = (c.run.id.as_str(), c.owner);
        let now = iso(c.now);
        let mut stmts = vec![guarded(
            db,
            "UPDATE sync_logs SET state = ?1, records_synced = ?2, requests_made = ?3, current_entity = ?4, heartbeat_at = ?5,
               lease_until = ?6, failures = 0, last_error = NULL,
               notes = CASE WHEN ?7 IS NULL THEN notes ELSE json_insert(COALESCE(notes, '[]'), '$[#]', ?7) END
             WHERE id = ?90 AND lease_owner = ?91 RETURNING id",
            vec![
                serde_json::to_string(&c.run.state)?.js(),
                c.run.records.js(),
                c.run.requests.js(),
                c.entity.js(),
                now.js(),
                iso(c.lease_until).js(),
                c.note.js(),
            ],
            run,
            owner,
        )?];
        let integration = c.run.integration_id.as_str();
        let (gone, live): (Vec<&Item>, Vec<&Item>) = c.items.iter().partition(|i| i.deleted);
        stmts.extend(upsert_statements(db, integration, c.entity, &live, run, &now, Some((run, owner)))?);
        if !gone.is_empty() {
            let ids = Value::from(gone.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>()).to_string();
            stmts.push(guarded(
                db,
                &format!(
                    "UPDATE synced_entities SET deleted_at = ?1 WHERE integration_id = ?2 AND entity_type = ?3
                       AND external_id IN (SELECT value FROM json_each(?4)) AND deleted_at IS NULL AND {GUARD}"
                ),
                vec![now.js(), integration.js(), c.entity.js(), ids.js()],
                run,
                owner,
            )?);
        }
        if let Some((parent, cp)) = c.checkpoint {
            stmts.push(guarded(
                db,
                &format!(
                    "INSERT INTO sync_checkpoints (integration_id, entity_type, parent, cursor, updated_at)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE {GUARD}
                     ON CONFLICT(integration_id, entity_type, parent) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
                ),
                vec![integration.js(), c.entity.js(), parent.js(), cp.js(), now.js()],
                run,
                owner,
            )?);
        }
        if let Some(parent) = c.sweep_parent {
            stmts.push(guarded(
                db,
                &format!(
                    "UPDATE synced_entities SET deleted_at = ?1 WHERE integration_id = ?2 AND entity_type = ?3 AND parent = ?4
                       AND deleted_at IS NULL AND (seen_run IS NULL OR seen_run <> ?90) AND {GUARD}"
                ),
                vec![now.js(), integration.js(), c.entity.js(), parent.js()],
                run,
                owner,
            )?);
        }
        if let Some(parents) = c.sweep_orphans {
            stmts.push(guarded(
                db,
                &format!(
                    "UPDATE synced_entities SET deleted_at = ?1 WHERE integration_id = ?2 AND entity_type = ?3
                       AND parent NOT IN (SELECT value FROM json_each(?4)) AND deleted_at IS NULL AND {GUARD}"
                ),
                vec![now.js(), integration.js(), c.entity.js(), Value::from(parents.to_vec()).to_string().js()],
                run,
                owner,
            )?);
        }
        let results = db.batch_rows(stmts).await?;
        let held = results.first().is_some_and(|r| r.count() > 0);
        Ok(held)
    }
}

/// D1 could not run a statement.
fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// D1's rows did not decode as expected.
fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unreadable(e.to_string())
}

impl SyncStore for D1Store {
    async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Run>, StoreError> {
        let db = &self.db;
        let results = db
            .batch_rows(vec![
                crate::q!(
                    db,
                    "UPDATE sync_logs SET status = 'running', lease_owner = ?2, lease_until = ?4, invocations = invocations + 1, resume_at = NULL
                     WHERE id = ?1 AND status IN ('pending', 'running') AND (lease_owner = ?2 OR lease_until IS NULL OR lease_until <= ?3)
                     RETURNING id, integration_id, full_sync, state, records_synced, requests_made",
                    &run_id,
                    &owner,
                    &iso(now),
                    &iso(lease_until)
                )
                .map_err(err)?,
                crate::q!(
                    db,
                    "SELECT i.* FROM integrations i JOIN sync_logs l ON l.integration_id = i.id WHERE l.id = ?1",
                    &run_id
                )
                .map_err(err)?,
            ])
            .await
            .map_err(err)?;
        let claimed: Vec<ClaimRow> = results[0].results().map_err(unreadable)?;
        let integration: Vec<IntegrationRow> = results[1].results().map_err(unreadable)?;
        let (Some(row), Some(integration)) = (claimed.into_iter().next(), integration.into_iter().next()) else {
            return Ok(None);
        };
        *self.integration.borrow_mut() = Some(integration);
        Ok(Some(Run {
            id: row.id,
            integration_id: row.integration_id,
            full: row.full_sync != 0,
            state: serde_json::from_str(&row.state).unwrap_or_default(),
            records: row.records_synced,
            requests: row.requests_made,
        }))
    }

    async fn start_entity(
        &self,
        integration_id: &str,
        entity: &str,
        parent: Option<Parent>,
        full: bool,
    ) -> Result<Position, StoreError> {
        #[derive(Deserialize)]
        struct Key {
            k: Option<String>,
        }
        #[derive(Deserialize)]
        struct Cp {
            parent: String,
            cursor: String,
        }
        let db = &self.db;
        let mut stmts = vec![crate::q!(
            db,
            "SELECT parent, cursor FROM sync_checkpoints WHERE integration_id = ?1 AND entity_type = ?2",
            &integration_id,
            &entity
        )
        .map_err(err)?];
        if let Some(p) = parent {
            stmts.push(
                crate::q!(
                    db,
                    "SELECT json_extract(data, ?3) AS k FROM synced_entities
                      WHERE integration_id = ?1 AND entity_type = ?2 AND deleted_at IS NULL
                        AND (?4 IS NULL OR json_extract(data, ?4) = 1) ORDER BY external_id",
                    &integration_id,
                    &p.entity,
                    &p.key,
                    &p.only_if
                )
                .map_err(err)?,
            );
        }
        let results = db.batch_rows(stmts).await.map_err(err)?;
        let cps: Vec<Cp> = results[0].results().map_err(unreadable)?;
        let parents: Vec<String> = match results.get(1) {
            Some(r) => r.results::<Key>().map_err(err)?.into_iter().filter_map(|k| k.k).collect(),
            None => vec![String::new()],
        };
        let since = parents
            .iter()
            .map(|p| if full { None } else { cps.iter().find(|c| &c.parent == p).map(|c| c.cursor.clone()) })
            .collect();
        Ok(Position { parents, since, ..Position::default() })
    }

    async fn commit(&self, c: Commit<'_>) -> Result<bool, StoreError> {
        let held = self.store(&c).await.map_err(err)?;
        #[cfg(feature = "fault-injection")]
        crate::faults::after_commit();
        Ok(held)
    }

    async fn release(
        &self,
        run: &Run,
        owner: &str,
        _now: Millis,
        resume_at: Millis,
        error: Option<&str>,
    ) -> Result<u32, StoreError> {
        #[derive(Deserialize)]
        struct F {
            failures: u32,
        }
        let row: Option<F> = crate::q!(
            &self.db,
            "UPDATE sync_logs SET state = ?1, requests_made = ?2, lease_owner = NULL, lease_until = NULL, resume_at = ?3,
               last_error = COALESCE(?4, last_error), failures = failures + (?4 IS NOT NULL)
             WHERE id = ?5 AND lease_owner = ?6 RETURNING failures",
            &serde_json::to_string(&run.state).map_err(err)?,
            &run.requests,
            &iso(resume_at),
            &error,
            &run.id,
            &owner
        )
        .map_err(err)?
        .one()
        .await
        .map_err(err)?;
        Ok(row.map_or(1, |r| r.failures))
    }

    async fn finish(&self, run: &Run, owner: &str, now: Millis, ending: &Ending) -> Result<(), StoreError> {
        let db = &self.db;
        let now = iso(now);
        let (status, errors, message, auth) = match ending {
            Ending::Completed => ("completed", "[]".to_string(), None, false),
            Ending::Failed { message, auth } => (
                "failed",
                json!([{ "entity": "sync", "message": message, "code": if *auth { "AUTH_FAILED" } else { "SYNC_ERROR" } }])
                    .to_string(),
                Some(message.as_str()),
                *auth,
            ),
        };
        let stmts = vec![
            // The integration first: the run's update below gives up the lease the guard checks.
            guarded(
                db,
                &format!(
                    "UPDATE integrations SET updated_at = ?1,
                       last_synced_at = CASE WHEN ?2 IS NULL THEN ?1 ELSE last_synced_at END,
                       last_full_sync_at = CASE WHEN ?2 IS NULL AND ?3 THEN ?1 ELSE last_full_sync_at END,
                       status = CASE WHEN ?4 THEN 'error' ELSE status END, error_message = ?2
                     WHERE id = ?5 AND {GUARD}"
                ),
                vec![now.js(), message.js(), run.full.js(), auth.js(), run.integration_id.js()],
                &run.id,
                owner,
            )
            .map_err(err)?,
            guarded(
                db,
                "UPDATE sync_logs SET status = ?1, errors = ?2, completed_at = ?3, heartbeat_at = ?3, resume_at = NULL,
                   lease_owner = NULL, lease_until = NULL, state = ?4, records_synced = ?5, requests_made = ?6,
                   current_entity = CASE WHEN ?1 = 'completed' THEN NULL ELSE current_entity END
                 WHERE id = ?90 AND lease_owner = ?91",
                vec![
                    status.js(),
                    errors.js(),
                    now.js(),
                    serde_json::to_string(&run.state).map_err(err)?.js(),
                    run.records.js(),
                    run.requests.js(),
                ],
                &run.id,
                owner,
            )
            .map_err(err)?,
        ];
        db.batch_rows(stmts).await.map_err(err)?;
        Ok(())
    }
}

/// A registered service as the engine's source: credentials opened on demand, requests
/// counted against the slice's budget.
pub struct ServiceSource<'a> {
    /// Known once the run is claimed (the claim reads the integration).
    service: Option<&'static dyn Service>,
    env: &'a Env,
    store: &'a D1Store,
    http: Counting<'a>,
    creds: Option<Credentials>,
    row: Option<IntegrationRow>,
    token: RefCell<Option<String>>,
}

impl<'a> ServiceSource<'a> {
    pub fn new(env: &'a Env, store: &'a D1Store) -> Self {
        ServiceSource {
            service: None,
            env,
            store,
            http: Counting::new(&Net),
            creds: None,
            row: None,
            token: RefCell::new(None),
        }
    }
}

impl super::engine::Source for ServiceSource<'_> {
    fn parent(&self, entity: &str) -> Option<Parent> {
        self.service.and_then(|s| s.parent(entity))
    }

    async fn open(&mut self) -> Result<(), ServiceError> {
        let row = self
            .store
            .integration
            .borrow()
            .clone()
            .ok_or_else(|| ServiceError::Invalid("integration vanished".into()))?;
        self.service = Some(
            super::service::find(&row.service)
                .ok_or_else(|| ServiceError::Invalid(format!("service {} is not registered", row.service)))?,
        );
        if row.status != "active" {
            return Err(ServiceError::Invalid(format!(
                "the integration is {}; no sync runs until it is active",
                row.status
            )));
        }
        self.http.count_other();
        let creds = super::store::load_credentials(self.env, &row)
            .await
            .map_err(|e| ServiceError::Auth(format!("credentials unavailable: {}", e.message)))?;
        self.creds = Some(creds);
        self.row = Some(row);
        Ok(())
    }

    async fn page(&self, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
        let (Some(service), Some(row), Some(creds)) = (self.service, &self.row, &self.creds) else {
            return Err(ServiceError::Invalid("the source was not opened".into()));
        };
        let now = crate::time::now_ms();
        let tokens = super::tokens::Stored::new(self.env, row, service, creds, Some(&self.http), &self.token, now);
        let conn = Conn { http: &self.http, vars: self.env, creds, tokens: &tokens, now };
        service.sync_page(&conn, req).await
    }

    fn requests(&self) -> u32 {
        self.http.sent()
    }
}

/// Statements that apply a webhook delivery's items to every active integration of `service`
/// holding `holder` (an entity it synced, e.g. the delivery's repository). `/*GUARD*/` is left
/// in the SQL for the caller's delivery guard; parameters are `?1…?6`.
pub fn webhook_upserts(
    service: &dyn Service,
    event: &str,
    payload: &Value,
    now: &str,
) -> Vec<(String, Vec<wasm_bindgen::JsValue>)> {
    let Some((holder_type, holder_id)) = service.webhook_holder(payload) else { return Vec::new() };
    let mut by_entity: Vec<(&str, Vec<Value>)> = Vec::new();
    for (entity, item) in service.webhook_items(event, payload) {
        let row = json!({ "e": item.external_id, "d": item.data.to_string(), "m": item.modified_at, "p": item.parent });
        match by_entity.iter_mut().find(|(e, _)| *e == entity) {
            Some((_, list)) => list.push(row),
            None => by_entity.push((entity, vec![row])),
        }
    }
    by_entity
        .into_iter()
        .map(|(entity, items)| {
            let sql = "INSERT INTO synced_entities (id, integration_id, entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, seen_run, parent)
                 SELECT h.integration_id || ':' || ?1 || ':' || json_extract(j.value, '$.e'), h.integration_id, ?1, json_extract(j.value, '$.e'),
                        json_extract(j.value, '$.d'), ?2, COALESCE(NULLIF(json_extract(j.value, '$.m'), ''), ?2), ?2, NULL, json_extract(j.value, '$.p')
                   FROM json_each(?3) j,
                        (SELECT e.integration_id FROM synced_entities e JOIN integrations i ON i.id = e.integration_id
                          WHERE e.entity_type = ?4 AND e.external_id = ?5 AND e.deleted_at IS NULL AND i.service = ?6 AND i.status = 'active') h
                  WHERE true /*GUARD*/
                 ON CONFLICT(integration_id, entity_type, external_id) DO UPDATE SET
                   data = CASE WHEN excluded.last_modified_at >= synced_entities.last_modified_at THEN excluded.data ELSE synced_entities.data END,
                   last_modified_at = MAX(excluded.last_modified_at, synced_entities.last_modified_at),
                   synced_at = excluded.synced_at, deleted_at = NULL, parent = excluded.parent"
                .to_string();
            let args = vec![
                entity.js(),
                now.js(),
                Value::Array(items).to_string().js(),
                holder_type.js(),
                holder_id.js(),
                service.name().js(),
            ];
            (sql, args)
        })
        .collect()
}

/// Stores items outside a run (fetch, actions): newer data wins, as in runs; `Item::gone`
/// marks an entity deleted (e.g. a deleted draft).
pub async fn store_items(env: &Env, integration: &str, items: &[(&'static str, Item)]) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = iso(crate::time::now_ms());
    let mut stmts = Vec::new();
    let mut entities: Vec<&str> = items.iter().map(|(e, _)| *e).collect();
    entities.sort_unstable();
    entities.dedup();
    for entity in entities {
        let (gone, live): (Vec<&Item>, Vec<&Item>) =
            items.iter().filter(|(e, _)| *e == entity).map(|(_, i)| i).partition(|i| i.deleted);
        stmts.extend(upsert_statements(&db, integration, entity, &live, "", &now, None)?);
        if !gone.is_empty() {
            let ids = Value::from(gone.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>()).to_string();
            stmts.push(crate::q!(
                &db,
                "UPDATE synced_entities SET deleted_at = ?1 WHERE integration_id = ?2 AND entity_type = ?3
                   AND external_id IN (SELECT value FROM json_each(?4)) AND deleted_at IS NULL",
                &now,
                &integration,
                &entity,
                &ids
            )?);
        }
    }
    if !stmts.is_empty() {
        db.batch_rows(stmts).await?;
    }
    Ok(())
}

/// A stored entity as the entities API reads it.
#[derive(Deserialize)]
pub struct EntityRow {
    pub external_id: String,
    pub data: String,
    pub first_seen_at: String,
    pub last_modified_at: String,
    pub deleted_at: Option<String>,
}

/// One page of an integration's entities of one type, in `external_id` order after `after`
/// (`limit + 1` rows, so the caller knows whether more exist).
pub async fn entities_page(
    db: &D1Database,
    integration: &str,
    entity: &str,
    after: &str,
    modified_after: Option<&str>,
    include_deleted: bool,
    limit: u32,
) -> Result<Vec<EntityRow>, worker::Error> {
    crate::q!(
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
        &(limit + 1)
    )?
    .rows()
    .await?
    .results()
}
