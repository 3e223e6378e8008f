//! `ApiKeys`: one SQLite-backed Durable Object per user (named by user id) holding that
//! user's credentials. The vault logic lives in `credentials::vault`; this file is the
//! platform edge: SQL rows, the JSON protocol, and import of the original KV records.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use futures::future::{FutureExt, LocalBoxFuture, Shared};

use serde::Deserialize;
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, ListOptions, Request, Response, Result, SqlStorage, SqlStorageValue, State,
};

use crate::credentials::protocol::*;
use crate::credentials::vault::{merge_grant, needs_refresh, valid_key, Record, Vault, VaultError, VaultRows};
use crate::crypto::CryptoError;
use crate::integrations::oauth::{self, GrantError};
use crate::time::{now_ms, parse_iso};

/// The original worker kept each credential in KV storage under this prefix.
const LEGACY_PREFIX: &str = "credential:";

/// A refresh in progress, shared by every request for the same credential.
type Flight = Shared<LocalBoxFuture<'static, std::result::Result<BTreeMap<String, String>, GrantError>>>;

#[durable_object(fetch)]
pub struct ApiKeys {
    state: State,
    env: Env,
    legacy_checked: Cell<bool>,
    /// Requests interleave at every await (an outbound fetch opens the input gate), so
    /// concurrent refreshes of one credential join the first one's flight instead of starting
    /// their own.
    flights: RefCell<BTreeMap<String, Flight>>,
}

struct SqlRows(SqlStorage);

#[derive(Deserialize)]
struct SqlRow {
    service: String,
    user_id: String,
    encrypted_data: String,
    scopes: String,
    created_at: String,
    expires_at: Option<String>,
}

impl From<SqlRow> for Record {
    fn from(r: SqlRow) -> Record {
        Record {
            service: r.service,
            user_id: r.user_id,
            encrypted_data: r.encrypted_data,
            scopes: serde_json::from_str(&r.scopes).unwrap_or_default(),
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

const COLUMNS: &str = "service, user_id, encrypted_data, scopes, created_at, expires_at";

impl VaultRows for SqlRows {
    fn get(&self, service: &str) -> std::result::Result<Option<Record>, String> {
        let sql = format!("SELECT {COLUMNS} FROM credentials WHERE service = ?");
        let rows: Vec<SqlRow> = crate::db::sql_rows(&self.0, &sql, vec![service.into()]).map_err(|e| e.to_string())?;
        Ok(rows.into_iter().next().map(Record::from))
    }

    fn put(&self, r: &Record) -> std::result::Result<(), String> {
        let scopes = serde_json::to_string(&r.scopes).map_err(|e| e.to_string())?;
        let values: Vec<SqlStorageValue> = vec![
            r.service.as_str().into(),
            r.user_id.as_str().into(),
            r.encrypted_data.as_str().into(),
            scopes.into(),
            r.created_at.as_str().into(),
            r.expires_at.clone().into(),
        ];
        crate::db::sql_run(
            &self.0,
            &format!("INSERT OR REPLACE INTO credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
            values,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn delete(&self, service: &str) -> std::result::Result<bool, String> {
        let deleted =
            crate::db::sql_run(&self.0, "DELETE FROM credentials WHERE service = ? RETURNING 1", vec![service.into()])
                .map_err(|e| e.to_string())?;
        Ok(deleted.length() > 0)
    }

    fn list(&self) -> std::result::Result<Vec<Record>, String> {
        let sql = format!("SELECT {COLUMNS} FROM credentials ORDER BY service");
        let rows: Vec<SqlRow> = crate::db::sql_rows(&self.0, &sql, Vec::new()).map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(Record::from).collect())
    }
}

/// A record as the original worker stored it in KV.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRecord {
    user_id: String,
    service: String,
    encrypted_data: String,
    #[serde(default)]
    scopes: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
}

fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": message, "code": code }))?.with_status(status))
}

fn vault_error(e: VaultError) -> Result<Response> {
    match e {
        VaultError::NotFound => json_error(404, "NOT_FOUND", "Credentials not found"),
        VaultError::Expired => json_error(410, "CREDENTIALS_EXPIRED", "Credentials expired"),
        VaultError::Crypto(CryptoError::NotConfigured) => {
            json_error(503, "ENCRYPTION_NOT_CONFIGURED", "ENCRYPTION_KEY is not configured")
        }
        VaultError::Crypto(CryptoError::WeakKey) => {
            json_error(503, "ENCRYPTION_KEY_TOO_WEAK", "ENCRYPTION_KEY must carry at least 256 bits")
        }
        VaultError::Crypto(CryptoError::Undecryptable) => {
            crate::config::log_error("API_KEYS: a stored credential could not be decrypted with the configured keys");
            json_error(500, "UNDECRYPTABLE", "Stored credentials could not be decrypted")
        }
        VaultError::Storage(cause) => {
            crate::config::log_error(&format!("API_KEYS storage failure: {cause}"));
            json_error(500, "STORAGE_ERROR", "Credential storage failed")
        }
    }
}

fn check_ids(user_id: &str, service: Option<&str>) -> Option<&'static str> {
    if user_id.is_empty() || user_id.len() > 128 {
        return Some("userId is required");
    }
    match service {
        Some(s) if !valid_key(s) => Some("service must match [a-z0-9][a-z0-9_.-]{0,63}"),
        _ => None,
    }
}

impl ApiKeys {
    fn rows(&self) -> SqlRows {
        SqlRows(self.state.storage().sql())
    }

    /// Moves records the original worker left in KV storage into the SQL table, verbatim:
    /// they stay in the legacy format until first read, when the vault re-seals them.
    async fn import_legacy(&self) -> Result<()> {
        if self.legacy_checked.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        let found = storage.list_with_options(ListOptions::new().prefix(LEGACY_PREFIX)).await?;
        let mut imported = Vec::new();
        let rows = self.rows();
        for entry in found.entries() {
            let pair: worker::js_sys::Array = entry?.into();
            let key = pair.get(0).as_string().unwrap_or_default();
            match crate::db::decode::<LegacyRecord>(&pair.get(1)) {
                Ok(old) => {
                    let record = Record {
                        service: old.service,
                        user_id: old.user_id,
                        encrypted_data: old.encrypted_data,
                        scopes: old.scopes,
                        created_at: crate::time::normalize(&old.created_at),
                        expires_at: old.expires_at.map(|e| crate::time::normalize(&e)),
                    };
                    if rows.get(&record.service).map_err(worker::Error::RustError)?.is_none() {
                        rows.put(&record).map_err(worker::Error::RustError)?;
                    }
                    imported.push(key);
                }
                Err(_) => crate::config::log_error("API_KEYS: skipped an unreadable legacy record"),
            }
        }
        if !imported.is_empty() {
            storage.delete_multiple(imported).await?;
        }
        self.legacy_checked.set(true);
        Ok(())
    }

    async fn handle(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let body: serde_json::Value = match req.json().await {
            Ok(v) => v,
            Err(_) => return json_error(400, "INVALID_JSON", "Request body is not valid JSON"),
        };
        self.import_legacy().await?;
        let keys = match crate::config::keyring(&self.env) {
            Ok(k) => k,
            Err(e) => return vault_error(e.into()),
        };
        let rows = self.rows();
        let now = now_ms();
        macro_rules! parse {
            ($t:ty) => {
                match serde_json::from_value::<$t>(body) {
                    Ok(v) => v,
                    Err(e) => return json_error(400, "VALIDATION_ERROR", &e.to_string()),
                }
            };
        }
        if path == TOKEN {
            return self.token(parse!(TokenRequest), &keys, now).await;
        }
        let result = match path.as_str() {
            STORE => {
                let r = parse!(StoreRequest);
                if let Some(msg) = check_ids(&r.user_id, Some(&r.service)) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                let expires_at = match r.expires_at.as_deref().map(parse_iso) {
                    Some(None) => return json_error(400, "VALIDATION_ERROR", "expiresAt must be ISO 8601"),
                    other => other.flatten(),
                };
                let vault = Vault { rows: &rows, keys: &keys, user_id: &r.user_id };
                vault
                    .store(&r.service, &r.credentials, r.scopes, expires_at, now)
                    .map(|meta| json!(StoreResponse { success: true, id: r.service.clone(), credential: meta }))
            }
            RETRIEVE => {
                let r = parse!(ServiceRequest);
                if let Some(msg) = check_ids(&r.user_id, Some(&r.service)) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                Vault { rows: &rows, keys: &keys, user_id: &r.user_id }.retrieve(&r.service, now).map(|s| json!(s))
            }
            LIST => {
                let r = parse!(ListRequest);
                if let Some(msg) = check_ids(&r.user_id, None) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                Vault { rows: &rows, keys: &keys, user_id: &r.user_id }
                    .list()
                    .map(|credentials| json!(ListResponse { credentials }))
            }
            ROTATE => {
                let r = parse!(RotateRequest);
                if let Some(msg) = check_ids(&r.user_id, Some(&r.service)) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                Vault { rows: &rows, keys: &keys, user_id: &r.user_id }
                    .rotate(&r.service, &r.new_credentials, now)
                    .map(|meta| json!(StoreResponse { success: true, id: r.service.clone(), credential: meta }))
            }
            RESEAL => {
                let r = parse!(ListRequest);
                if let Some(msg) = check_ids(&r.user_id, None) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                Vault { rows: &rows, keys: &keys, user_id: &r.user_id }
                    .reseal_all()
                    .map(|(scanned, resealed)| json!(ResealResponse { scanned, resealed }))
            }
            REVOKE => {
                let r = parse!(ServiceRequest);
                if let Some(msg) = check_ids(&r.user_id, Some(&r.service)) {
                    return json_error(400, "VALIDATION_ERROR", msg);
                }
                Vault { rows: &rows, keys: &keys, user_id: &r.user_id }
                    .revoke(&r.service)
                    .map(|existed| json!(RevokeResponse { success: true, existed }))
            }
            _ => return json_error(404, "NOT_FOUND", "Unknown API_KEYS operation"),
        };
        match result {
            Ok(v) => Response::from_json(&v),
            Err(e) => vault_error(e),
        }
    }
}

impl ApiKeys {
    /// `POST /token`: the stored access token, or a refreshed one (see `TokenRequest`).
    async fn token(
        &self,
        r: TokenRequest,
        keys: &crate::crypto::Keyring,
        now: crate::time::Millis,
    ) -> Result<Response> {
        if let Some(msg) = check_ids(&r.user_id, Some(&r.service)) {
            return json_error(400, "VALIDATION_ERROR", msg);
        }
        let Some(spec) = crate::integrations::registry::find(&r.provider).and_then(|s| s.oauth()).filter(|o| o.refresh)
        else {
            return json_error(400, "VALIDATION_ERROR", "provider has no refreshable OAuth");
        };
        let rows = self.rows();
        let vault = Vault { rows: &rows, keys, user_id: &r.user_id };
        let secret = match vault.retrieve(&r.service, now) {
            Ok(s) => s,
            Err(e) => return vault_error(e),
        };
        let answer = |creds: &BTreeMap<String, String>, refreshed: bool| {
            Response::from_json(&TokenResponse {
                access_token: creds.get("access_token").cloned().unwrap_or_default(),
                expires_at: creds.get("expires_at").and_then(|e| e.parse().ok()),
                refreshed,
            })
        };
        let now_secs = now / 1000;
        if !needs_refresh(&secret.credentials, r.rejected.as_deref(), now_secs) {
            if r.rejected.is_some() && secret.credentials.get("refresh_token").is_none_or(|t| t.is_empty()) {
                return json_error(
                    409,
                    "RECONNECT_REQUIRED",
                    &format!("{} refused the token and there is no refresh token", spec.display),
                );
            }
            return answer(&secret.credentials, false);
        }
        // One flight per credential: join a refresh in progress, or start it.
        let existing = self.flights.borrow().get(&r.service).cloned();
        let (flight, mine) = match existing {
            Some(f) => (f, false),
            None => {
                let env = self.env.clone();
                let refresh_token = secret.credentials.get("refresh_token").cloned().unwrap_or_default();
                let f: Flight =
                    async move { oauth::refresh(&crate::outbound::Net, spec, &env, &refresh_token, now_secs).await }
                        .boxed_local()
                        .shared();
                self.flights.borrow_mut().insert(r.service.clone(), f.clone());
                (f, true)
            }
        };
        let outcome = flight.await;
        if mine {
            // Persist before the flight is forgotten, so later callers read the new token.
            let persisted = outcome.as_ref().map(|grant| {
                let merged = merge_grant(&secret.credentials, grant.clone());
                let expires = secret.expires_at.as_deref().and_then(crate::time::parse_stored);
                vault.store(&r.service, &merged, secret.scopes.clone(), expires, now).map(|_| merged)
            });
            self.flights.borrow_mut().remove(&r.service);
            return match persisted {
                Ok(Ok(merged)) => answer(&merged, true),
                Ok(Err(e)) => vault_error(e),
                Err(e) => grant_error(spec, e.clone()),
            };
        }
        match outcome {
            Ok(grant) => answer(&merge_grant(&secret.credentials, grant), true),
            Err(e) => grant_error(spec, e),
        }
    }
}

/// A failed refresh as the Worker reads it: 409 when the user must reconnect.
fn grant_error(spec: &crate::integrations::service::OAuth, e: GrantError) -> Result<Response> {
    match e {
        GrantError::Refused { error, .. } if error == "invalid_client" || error == "unauthorized_client" => {
            crate::config::log_error(&format!("{} refused this deployment's OAuth client ({error})", spec.display));
            json_error(503, "OAUTH_NOT_CONFIGURED", &format!("{} OAuth client credentials were refused", spec.display))
        }
        GrantError::Refused { .. } => {
            json_error(409, "RECONNECT_REQUIRED", &format!("{} access was revoked or expired", spec.display))
        }
        GrantError::NotConfigured(var) => json_error(503, "OAUTH_NOT_CONFIGURED", &format!("{var} is not configured")),
        GrantError::Unavailable(m) => json_error(502, "UPSTREAM_ERROR", &format!("token refresh failed: {m}")),
    }
}

impl DurableObject for ApiKeys {
    fn new(state: State, env: Env) -> Self {
        // `exec` is synchronous, so the table exists before the first request is served.
        if let Err(e) = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS credentials (
               service TEXT PRIMARY KEY,
               user_id TEXT NOT NULL,
               encrypted_data TEXT NOT NULL,
               scopes TEXT NOT NULL DEFAULT '[]',
               created_at TEXT NOT NULL,
               expires_at TEXT
             )",
            None,
        ) {
            crate::config::log_error(&format!("API_KEYS schema setup failed: {e}"));
        }
        ApiKeys { state, env, legacy_checked: Cell::new(false), flights: RefCell::new(BTreeMap::new()) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.handle(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                crate::config::log_error(&format!("API_KEYS failure: {e}"));
                json_error(500, "INTERNAL_ERROR", "Internal error")
            }
        }
    }
}
