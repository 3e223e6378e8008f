//! The engine's platform edge. `DataStore` keeps a run's bookkeeping in D1 (`sync_logs`: the
//! lease, its epoch, the progress) and the integration's data in its `IntegrationData` object:
//! a page goes to the object first (with the lease epoch as its fencing token), then the run's
//! progress to D1 under the lease. A crash between the two leaves the page applied and the
//! progress behind; the retried slice fetches that page again and its second commit changes
//! nothing. `ServiceSource` is a registered service reached through a counting transport with
//! the integration's credentials from the `API_KEYS` object.

use crate::db::{Batch as _, Query as _};
use std::cell::{Cell, RefCell};

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::d1::{D1Database, D1PreparedStatement};
use worker::Env;

use super::data::{self, CommitOutcome, CommitRequest, DataPlane, StartRequest, UpsertRequest, WireItem};
use super::engine::{Commit, Ending, Position, Released, Run, StoreError, SyncStore};
use super::service::{Conn, Credentials, Item, Page, PageRequest, Parent, Service, ServiceError};
use super::store::IntegrationRow;
use crate::db::Bind;
use crate::http::ApiResult;
use crate::outbound::{Counting, Net};
use crate::time::{iso, Millis};

/// How long a run waits while its integration's data is being moved into its object.
const MOVE_WAIT_SECS: u64 = 15;

pub struct DataStore {
    db: D1Database,
    env: Env,
    /// The claimed run's integration (read in the claim's round trip).
    pub integration: RefCell<Option<IntegrationRow>>,
    calls: Cell<u32>,
}

#[derive(Deserialize)]
struct ClaimRow {
    id: String,
    integration_id: String,
    full_sync: i64,
    state: String,
    records_synced: i64,
    requests_made: i64,
    lease_epoch: i64,
    idle_slices: i64,
}

/// Binds `args` then the lease guard's two parameters (run id, owner) at ?90 and ?91.
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

/// The condition every D1 write of a slice carries: the run is still leased to this worker.
const GUARD: &str = "EXISTS (SELECT 1 FROM sync_logs WHERE id = ?90 AND lease_owner = ?91)";

/// D1 (or the object) could not run a statement.
fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The rows or the answer did not decode as expected.
fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unreadable(e.to_string())
}

impl DataStore {
    pub fn new(env: &Env) -> worker::Result<Self> {
        Ok(DataStore { db: env.d1("DB")?, env: env.clone(), integration: RefCell::new(None), calls: Cell::new(0) })
    }

    fn count(&self, n: u32) {
        self.calls.set(self.calls.get() + n);
    }

    /// The run's progress, written after its page reached the object; `false` when the lease
    /// was lost meanwhile. A page of parents (repositories) also verifies the integration's
    /// holder rows: the provider has just listed them to the owner's credentials.
    async fn progress(&self, c: &Commit<'_>) -> worker::Result<bool> {
        let progress = guarded(
            &self.db,
            "UPDATE sync_logs SET state = ?1, records_synced = ?2, requests_made = ?3, current_entity = ?4, heartbeat_at = ?5,
               lease_until = ?6, failures = 0, last_error = NULL, idle_slices = 0,
               notes = CASE WHEN ?7 IS NULL THEN notes ELSE json_insert(COALESCE(notes, '[]'), '$[#]', ?7) END
             WHERE id = ?90 AND lease_owner = ?91 RETURNING id",
            vec![
                serde_json::to_string(&c.run.state)?.js(),
                c.run.records.js(),
                c.run.requests.js(),
                c.entity.js(),
                iso(c.now).js(),
                iso(c.lease_until).js(),
                c.note.js(),
            ],
            &c.run.id,
            c.owner,
        )?;
        let mut stmts = vec![progress];
        if self.holds_parents(c.entity) {
            let (gone, live): (Vec<&Item>, Vec<&Item>) = c.items.iter().partition(|i| i.deleted);
            fn ids<'a>(v: &[&'a Item]) -> Vec<&'a str> {
                v.iter().map(|i| i.external_id.as_str()).collect()
            }
            stmts.extend(super::holders::verified_statements(
                &self.db,
                &c.run.integration_id,
                c.entity,
                &ids(&live),
                &ids(&gone),
                c.now,
            )?);
        }
        let results = self.db.batch_rows(stmts).await?;
        Ok(results.first().is_some_and(|r| r.count() > 0))
    }

    /// Whether `entity` is a parent type of the claimed integration's service (what webhook
    /// deliveries are matched on).
    fn holds_parents(&self, entity: &str) -> bool {
        let integration = self.integration.borrow();
        let Some(service) = integration.as_ref().and_then(|row| super::registry::find(&row.service)) else {
            return false;
        };
        service.entities().iter().any(|e| service.parent(e).is_some_and(|p| p.entity == entity))
    }
}

impl SyncStore for DataStore {
    async fn claim(
        &self,
        run_id: &str,
        owner: &str,
        chain: i64,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Run>, StoreError> {
        let db = &self.db;
        self.count(1);
        // The integration's epoch grows with every claim (in the same transaction), so each
        // lease fences off every earlier one, across runs too.
        let claimable =
            "status IN ('pending', 'running') AND chain = ?5 AND (lease_owner = ?2 OR lease_until IS NULL OR lease_until <= ?3)";
        let results = db
            .batch_rows(vec![
                crate::q!(
                    db,
                    &format!(
                        "UPDATE integrations SET sync_epoch = sync_epoch + 1
                          WHERE id = (SELECT integration_id FROM sync_logs WHERE id = ?1 AND {claimable})"
                    ),
                    &run_id,
                    &owner,
                    &iso(now),
                    &Option::<String>::None,
                    &chain
                )
                .map_err(err)?,
                crate::q!(
                    db,
                    &format!(
                        "UPDATE sync_logs SET status = 'running', lease_owner = ?2, lease_until = ?4, invocations = invocations + 1,
                           resume_at = NULL, slice_at = ?3,
                           lease_epoch = (SELECT sync_epoch FROM integrations i WHERE i.id = sync_logs.integration_id)
                         WHERE id = ?1 AND {claimable}
                         RETURNING id, integration_id, full_sync, state, records_synced, requests_made, lease_epoch, idle_slices"
                    ),
                    &run_id,
                    &owner,
                    &iso(now),
                    &iso(lease_until),
                    &chain
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
        let claimed: Vec<ClaimRow> = results[1].results().map_err(unreadable)?;
        let integration: Vec<IntegrationRow> = results[2].results().map_err(unreadable)?;
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
            epoch: row.lease_epoch,
            idle_slices: u32::try_from(row.idle_slices).unwrap_or(0),
        }))
    }

    /// Checkpoints and parents come from the object; the parents' ids are also kept in D1
    /// (`integration_holders`), where webhook deliveries find the integrations they concern.
    async fn start_entity(
        &self,
        integration_id: &str,
        entity: &str,
        parent: Option<Parent>,
        full: bool,
    ) -> Result<Position, StoreError> {
        let req = StartRequest { entity: entity.to_string(), parent: parent.map(Into::into) };
        self.count(1);
        let started = DataPlane::new(&self.env, integration_id).start(&req).await.map_err(|e| err(&e.message))?;
        let parents: Vec<String> = match &started.parents {
            Some(rows) => {
                let holder_type = parent.map_or("", |p| p.entity);
                let ids =
                    serde_json::to_string(&rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()).map_err(err)?;
                self.count(1);
                self.db
                    .batch_rows(vec![
                        crate::q!(
                            &self.db,
                            "DELETE FROM integration_holders WHERE integration_id = ?1 AND holder_type = ?2
                               AND holder_key NOT IN (SELECT value FROM json_each(?3))",
                            &integration_id,
                            &holder_type,
                            &ids
                        )
                        .map_err(err)?,
                        crate::q!(
                            &self.db,
                            "INSERT INTO integration_holders (integration_id, holder_type, holder_key)
                             SELECT ?1, ?2, value FROM json_each(?3) WHERE true ON CONFLICT DO NOTHING",
                            &integration_id,
                            &holder_type,
                            &ids
                        )
                        .map_err(err)?,
                    ])
                    .await
                    .map_err(err)?;
                rows.iter().filter_map(|r| r.k.clone()).collect()
            }
            None => vec![String::new()],
        };
        let since = parents
            .iter()
            .map(|p| {
                if full {
                    None
                } else {
                    started.checkpoints.iter().find(|c| &c.parent == p).map(|c| c.cursor.clone())
                }
            })
            .collect();
        Ok(Position { parents, since, ..Position::default() })
    }

    async fn commit(&self, c: Commit<'_>) -> Result<bool, StoreError> {
        let req = CommitRequest {
            run: c.run.id.clone(),
            epoch: c.run.epoch,
            entity: c.entity.to_string(),
            items: c.items.iter().map(WireItem::of).collect(),
            checkpoint: c.checkpoint.map(|(p, cursor)| data::Checkpoint { parent: p.into(), cursor: cursor.into() }),
            sweep_parent: c.sweep_parent.map(str::to_string),
            sweep_orphans: c.sweep_orphans.map(<[String]>::to_vec),
            now: iso(c.now),
        };
        self.count(1);
        let outcome =
            DataPlane::new(&self.env, &c.run.integration_id).commit(&req).await.map_err(|e| err(&e.message))?;
        if outcome != CommitOutcome::Applied {
            return Ok(false);
        }
        #[cfg(feature = "fault-injection")]
        crate::faults::die_once(&self.env, "FAULT_DIE_AFTER_OBJECT_COMMIT");
        self.count(1);
        let held = self.progress(&c).await.map_err(err)?;
        #[cfg(feature = "fault-injection")]
        crate::faults::after_commit();
        Ok(held)
    }

    fn calls(&self) -> u32 {
        self.calls.get()
    }

    fn commit_calls(&self) -> u32 {
        2
    }

    async fn release(
        &self,
        run: &Run,
        owner: &str,
        _now: Millis,
        resume_at: Millis,
        error: Option<&str>,
        idle: bool,
    ) -> Result<Released, StoreError> {
        #[derive(Deserialize)]
        struct F {
            failures: u32,
        }
        let row: Option<F> = crate::q!(
            &self.db,
            "UPDATE sync_logs SET state = ?1, requests_made = ?2, lease_owner = NULL, lease_until = NULL, resume_at = ?3,
               last_error = COALESCE(?4, last_error), failures = failures + (?4 IS NOT NULL),
               idle_slices = CASE WHEN ?7 THEN idle_slices + 1 ELSE idle_slices END
             WHERE id = ?5 AND lease_owner = ?6 RETURNING failures",
            &serde_json::to_string(&run.state).map_err(err)?,
            &run.requests,
            &iso(resume_at),
            &error,
            &run.id,
            &owner,
            &idle
        )
        .map_err(err)?
        .one()
        .await
        .map_err(err)?;
        Ok(Released { failures: row.map_or(1, |r| r.failures) })
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
            Ending::NoProgress(message) => (
                "failed",
                json!([{ "entity": "sync", "message": message, "code": "SYNC_NO_PROGRESS" }]).to_string(),
                Some(message.as_str()),
                false,
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
    store: &'a DataStore,
    http: Counting<'a>,
    creds: Option<Credentials>,
    row: Option<IntegrationRow>,
    token: RefCell<Option<String>>,
}

impl<'a> ServiceSource<'a> {
    pub fn new(env: &'a Env, store: &'a DataStore) -> Self {
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
            super::registry::find(&row.service)
                .ok_or_else(|| ServiceError::Invalid(format!("service {} is not registered", row.service)))?,
        );
        if row.status != "active" {
            return Err(ServiceError::Invalid(format!(
                "the integration is {}; no sync runs until it is active",
                row.status
            )));
        }
        if row.data_home != "object" {
            // Its data is still being copied out of D1 (see `moving`): the run waits, as for a
            // rate limit, and continues once the copy is complete.
            return Err(ServiceError::RateLimited(MOVE_WAIT_SECS));
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

/// Stores items outside a run (fetch, actions) in the integration's object: newer data wins,
/// as in runs; `Item::gone` marks an entity deleted (e.g. a deleted draft).
pub async fn store_items(env: &Env, integration: &str, items: &[(&'static str, Item)]) -> ApiResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let req = UpsertRequest { groups: data::groups(items), now: iso(crate::time::now_ms()) };
    DataPlane::new(env, integration).upsert(&req).await.map(|_| ())
}

/// The outbox rows that apply a webhook delivery's items to every active integration of
/// `service` holding the delivery's holder (e.g. its repository), one row per integration:
/// `(sql, args)` with `/*GUARD*/` left for the caller's delivery guard, the outbox batch at
/// `?91` (the delivery's claim).
pub fn webhook_upserts(
    service: &dyn Service,
    event: &str,
    payload: &Value,
    now: &str,
) -> serde_json::Result<Option<(String, Vec<JsValue>)>> {
    let Some((holder_type, holder_key)) = service.webhook_holder(payload) else { return Ok(None) };
    let items = service.webhook_items(event, payload);
    if items.is_empty() {
        return Ok(None);
    }
    let groups = serde_json::to_string(&data::groups(&items))?;
    let sql = format!(
        "INSERT INTO outbox (id, batch, kind, target, payload, created_at)
         SELECT lower(hex(randomblob(16))), ?91, '{}', h.integration_id, ?1, ?2
           FROM integration_holders h JOIN integrations i ON i.id = h.integration_id
          WHERE h.holder_type = ?3 AND h.holder_key = ?4 AND i.service = ?5 AND i.status = 'active'
            AND h.verified_at >= ?6 /*GUARD*/",
        crate::outbox::ENTITY_UPSERT
    );
    // Only integrations whose owner's credentials showed the holder within a day: access lost
    // since (a collaborator removed) stops the data.
    let verified_since = iso(crate::time::parse_iso(now).unwrap_or(0) - super::holders::VERIFIED_FOR_MS);
    Ok(Some((
        sql,
        vec![groups.js(), now.js(), holder_type.js(), holder_key.js(), service.name().js(), verified_since.js()],
    )))
}
