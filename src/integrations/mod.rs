//! The generic integration framework (README, "What it does today"): connect a service, keep its data in D1
//! with the sync engine, read it page by page, act through it. Nothing here names a service:
//! each one is an implementation of `service::Service` registered in `service::REGISTRY`.
//!
//! - `service`: the interface and the registry; `github`: the GitHub service.
//! - `engine`: the sync engine's decisions (plain Rust); `store`: its D1/`API_KEYS` edge.
//! - `runs`: starting runs, the queue's sync slices, the cron's sweep.
//! - `routes`: the HTTP API; `oauth`: the generic OAuth flow; `schema`: action parameters;
//!   `search`: full-text search of the synced entities.

pub mod engine;
pub mod github;
pub mod oauth;
pub mod routes;
pub mod runs;
pub mod schema;
pub mod search;
pub mod service;
pub mod store;
pub mod tokens;

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Env;

use crate::credentials::vault::INTEGRATION_PREFIX;
use crate::credentials::ApiKeys;
use crate::http::{ApiError, ApiResult};
use crate::time::{iso, normalize};
use service::{Credentials, Service};

#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationRow {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub config: String,
    pub status: String,
    pub error_message: Option<String>,
    pub last_synced_at: Option<String>,
    pub scope: String,
    pub created_at: String,
    pub updated_at: String,
    /// Set on rows whose credentials still sit under the bare service name (before 0008).
    #[serde(default)]
    pub credentials_legacy: i64,
    #[serde(default)]
    pub last_full_sync_at: Option<String>,
}

impl IntegrationRow {
    pub fn config(&self) -> Value {
        serde_json::from_str(&self.config).unwrap_or(json!({}))
    }

    pub fn service(&self) -> ApiResult<&'static dyn Service> {
        service::find(&self.service).ok_or_else(|| {
            ApiError::new(400, "UNSUPPORTED_INTEGRATION", format!("Unsupported integration: {}", self.service))
        })
    }

    pub fn view(&self, caller: &str) -> Value {
        json!({
            "id": self.id, "service": self.service, "status": self.status, "scope": self.scope, "config": self.config(),
            "errorMessage": self.error_message, "lastSyncedAt": self.last_synced_at.as_deref().map(normalize),
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at), "owned": self.user_id == caller,
        })
    }

    /// The entity types this integration syncs (all supported ones when none are configured).
    pub fn plan(&self) -> Result<Vec<String>, String> {
        let requested: Vec<String> = self.config()["entities"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        engine::plan(&requested, service::find(&self.service).map(|s| s.entities()).unwrap_or(&[]))
    }
}

/// Where an integration's credentials live in its owner's `API_KEYS` object: a key of its own,
/// which no `/api/me/credentials/:service` route can name.
pub fn credentials_key(integration_id: &str) -> String {
    format!("{INTEGRATION_PREFIX}{integration_id}")
}

/// The integration's credentials. Rows from before migration 0008 kept them under the bare
/// service name (shared with the user's own credential of that name): the first read copies
/// them to the integration's own key, leaving the user's entry alone.
pub async fn load_credentials(env: &Env, row: &IntegrationRow) -> ApiResult<Credentials> {
    let keys = ApiKeys::for_user(env, &row.user_id);
    let key = credentials_key(&row.id);
    match keys.retrieve(&key).await {
        Ok(secret) => Ok(secret.credentials),
        Err(e) if e.status == 404 && row.credentials_legacy != 0 => {
            let old = keys.retrieve(&row.service).await?;
            keys.store(&key, old.credentials.clone(), old.scopes, old.expires_at).await?;
            crate::q!(&env.d1("DB")?, "UPDATE integrations SET credentials_legacy = 0 WHERE id = ?1", &row.id)?
                .exec()
                .await?;
            Ok(old.credentials)
        }
        Err(e) => Err(e),
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
    use crate::db::Bind;
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
pub async fn store_items(env: &Env, integration: &str, items: &[(&'static str, service::Item)]) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = iso(crate::time::now_ms());
    let mut stmts = Vec::new();
    let mut entities: Vec<&str> = items.iter().map(|(e, _)| *e).collect();
    entities.sort_unstable();
    entities.dedup();
    for entity in entities {
        let (gone, live): (Vec<&service::Item>, Vec<&service::Item>) =
            items.iter().filter(|(e, _)| *e == entity).map(|(_, i)| i).partition(|i| i.deleted);
        stmts.extend(store::upsert_statements(&db, integration, entity, &live, "", &now, None)?);
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
