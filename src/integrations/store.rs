//! The integrations store: every query of the integration registry (`integrations`, and the
//! OAuth round trip's `oauth_states`), so handlers read as steps. Synced data is not here: it
//! lives behind the sync store.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use super::engine;
use super::registry;
use super::service::{Credentials, Service};
use crate::credentials::vault::INTEGRATION_PREFIX;
use crate::credentials::ApiKeys;
use crate::http::{ApiError, ApiResult};
use crate::time::{iso, normalize, Millis};

/// Integrations one user may have.
pub const MAX_INTEGRATIONS: i64 = 50;

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
    /// Where its synced data is read from: `object` (its `IntegrationData`), or `d1` / `moving`
    /// while data kept in D1 before the data plane is copied over (`moving`).
    #[serde(default = "object_home")]
    pub data_home: String,
    /// The scopes granted at connection, as a JSON array (`None`: given without a scope).
    #[serde(default)]
    pub granted_scopes: Option<String>,
}

fn object_home() -> String {
    "object".into()
}

impl IntegrationRow {
    pub fn config(&self) -> Value {
        serde_json::from_str(&self.config).unwrap_or(json!({}))
    }

    pub fn service(&self) -> ApiResult<&'static dyn Service> {
        registry::find(&self.service).ok_or_else(|| {
            ApiError::new(400, "UNSUPPORTED_INTEGRATION", format!("Unsupported integration: {}", self.service))
        })
    }

    pub fn view(&self, caller: &str) -> Value {
        json!({
            "id": self.id, "service": self.service, "status": self.status, "scope": self.scope, "config": self.config(),
            "errorMessage": self.error_message, "lastSyncedAt": self.last_synced_at.as_deref().map(normalize),
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at), "owned": self.user_id == caller,
            "grantedScopes": self.granted_scopes(),
        })
    }

    /// The scopes the provider granted (`None`: unknown, so nothing is checked).
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        self.granted_scopes.as_deref().and_then(|s| serde_json::from_str(s).ok())
    }

    /// The entity types this integration syncs (all supported ones when none are configured).
    pub fn plan(&self) -> Result<Vec<String>, String> {
        let requested: Vec<String> = self.config()["entities"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        engine::plan(&requested, registry::find(&self.service).map(|s| s.entities()).unwrap_or(&[]))
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

/// The caller's own integration (`write`), or also an org-scope one (read); else 404.
pub async fn find(db: &D1Database, user_id: &str, id: &str, write: bool) -> ApiResult<IntegrationRow> {
    let row: Option<IntegrationRow> = crate::q!(
        db,
        "SELECT * FROM integrations WHERE id = ?1 AND (user_id = ?2 OR (?3 AND scope = 'org'))",
        &id,
        &user_id,
        &!write
    )?
    .one()
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("Integration with id '{id}' not found")))
}

/// Puts an integration in `error` with a message its owner reads (they must reconnect).
pub async fn set_error(db: &D1Database, id: &str, message: &str, now: Millis) -> ApiResult<()> {
    crate::q!(
        db,
        "UPDATE integrations SET status = 'error', error_message = ?1, updated_at = ?2 WHERE id = ?3",
        &message,
        &iso(now),
        &id
    )?
    .exec()
    .await?;
    Ok(())
}

/// The caller's integrations and the organization's shared ones, own first (`?1`: user id).
const LIST_SQL: &str = "SELECT * FROM integrations WHERE user_id = ?1 OR scope = 'org'
  ORDER BY CASE WHEN user_id = ?1 THEN 0 ELSE 1 END, created_at DESC";

/// `LIST_SQL` over the authenticating token (`?1` hash, `?2` now): the pipeline runs it in the
/// same D1 batch as authentication (`app::prefetch_sql`), so the list costs no second round trip.
pub const LIST_WITH_CALLER: &str = concat!(
    "WITH caller AS (",
    crate::caller_sql!(),
    ") SELECT i.* FROM integrations i, caller c WHERE i.user_id = c.id OR i.scope = 'org'
  ORDER BY CASE WHEN i.user_id = c.id THEN 0 ELSE 1 END, i.created_at DESC"
);

/// The user's integrations and the organization's shared ones, own first.
pub async fn list(db: &D1Database, user_id: &str) -> ApiResult<crate::db::Rows> {
    Ok(crate::q!(db, LIST_SQL, &user_id)?.rows().await?)
}

/// Whether the user has an integration of `service`.
pub async fn exists(db: &D1Database, user_id: &str, service: &str) -> ApiResult<bool> {
    let row: Option<Value> =
        crate::q!(db, "SELECT id FROM integrations WHERE user_id = ?1 AND service = ?2", &user_id, &service)?
            .one()
            .await?;
    Ok(row.is_some())
}

/// Creates the user's integration of `service` (active), unless they are at the limit or have
/// one; with `upsert`, an existing one is reactivated instead (with the scopes of its new grant).
/// `granted_scopes` is a JSON array, or `None` when unknown. `None` when nothing was written.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    db: &D1Database,
    id: &str,
    user_id: &str,
    service: &str,
    config: &Value,
    granted_scopes: Option<&str>,
    now: Millis,
    upsert: bool,
) -> ApiResult<Option<IntegrationRow>> {
    let sql = if upsert {
        "INSERT INTO integrations (id, user_id, service, config, status, created_at, updated_at, granted_scopes)
         SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?5, ?7 WHERE (SELECT COUNT(*) FROM integrations WHERE user_id = ?2 AND service <> ?3) < ?6
         ON CONFLICT(user_id, service) DO UPDATE SET status = 'active', error_message = NULL, credentials_legacy = 0, updated_at = excluded.updated_at,
           granted_scopes = excluded.granted_scopes
         RETURNING *"
    } else {
        "INSERT INTO integrations (id, user_id, service, config, status, created_at, updated_at, granted_scopes)
         SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?5, ?7 WHERE (SELECT COUNT(*) FROM integrations WHERE user_id = ?2 AND service <> ?3) < ?6
         ON CONFLICT DO NOTHING RETURNING *"
    };
    Ok(crate::q!(db, sql, &id, &user_id, &service, &config.to_string(), &iso(now), &MAX_INTEGRATIONS, &granted_scopes)?
        .one()
        .await?)
}

/// What an update changes (each kept when `None`); a new `status` clears the error message.
pub struct Change<'a> {
    pub config: Option<String>,
    pub status: Option<&'a str>,
    pub scope: Option<&'a str>,
}

pub async fn update(db: &D1Database, id: &str, c: &Change<'_>, now: Millis) -> ApiResult<Option<IntegrationRow>> {
    Ok(crate::q!(
        db,
        "UPDATE integrations SET config = COALESCE(?1, config), status = COALESCE(?2, status),
           error_message = CASE WHEN ?2 IS NULL THEN error_message ELSE NULL END, scope = COALESCE(?3, scope), updated_at = ?4
         WHERE id = ?5 RETURNING *",
        &c.config,
        &c.status,
        &c.scope,
        &iso(now),
        &id
    )?
    .one()
    .await?)
}

/// Removes the integration row (its runs go with it).
pub async fn delete(db: &D1Database, id: &str) -> ApiResult<()> {
    crate::q!(db, "DELETE FROM integrations WHERE id = ?1", &id)?.exec().await?;
    Ok(())
}

/// Removes the integration row and, in the same batch, records in the outbox the drop of its
/// object's data and (`revoke`: a `RevokeGrant` payload) the revocation of its grant at the
/// provider; answers the outbox batch to deliver.
pub async fn delete_with_data(db: &D1Database, id: &str, revoke: Option<String>, now: Millis) -> ApiResult<String> {
    let batch = uuid::Uuid::new_v4().to_string();
    let outbox = |kind: &str, payload: &str| {
        crate::q!(
            db,
            "INSERT INTO outbox (id, batch, kind, target, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            &uuid::Uuid::new_v4().to_string(),
            &batch,
            &kind,
            &id,
            &payload,
            &iso(now)
        )
    };
    let mut statements =
        vec![crate::q!(db, "DELETE FROM integrations WHERE id = ?1", &id)?, outbox(crate::outbox::DROP_DATA, "{}")?];
    if let Some(payload) = revoke {
        statements.push(outbox(crate::outbox::REVOKE_GRANT, &payload)?);
    }
    db.batch_rows(statements).await?;
    Ok(batch)
}

/// Records an OAuth round trip's state (hashed), bound to the user, single use, until `expires`.
pub async fn save_oauth_state(
    db: &D1Database,
    state_hash: &str,
    purpose: &str,
    user_id: &str,
    redirect_uri: &str,
    expires: Millis,
    now: Millis,
) -> ApiResult<()> {
    crate::q!(
        db,
        "INSERT INTO oauth_states (state_hash, purpose, user_id, redirect_uri, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &state_hash,
        &purpose,
        &user_id,
        &redirect_uri,
        &iso(expires),
        &iso(now)
    )?
    .exec()
    .await?;
    Ok(())
}

/// Consumes an unexpired OAuth state of the user: its `redirect_uri`, once.
pub async fn take_oauth_state(
    db: &D1Database,
    state_hash: &str,
    purpose: &str,
    user_id: &str,
    now: Millis,
) -> ApiResult<Option<String>> {
    #[derive(Deserialize)]
    struct S {
        redirect_uri: String,
    }
    let consumed: Option<S> = crate::q!(
        db,
        "DELETE FROM oauth_states WHERE state_hash = ?1 AND purpose = ?2 AND user_id = ?3 AND expires_at > ?4 RETURNING redirect_uri",
        &state_hash,
        &purpose,
        &user_id,
        &iso(now)
    )?
    .one()
    .await?;
    Ok(consumed.map(|s| s.redirect_uri))
}
