//! `ApiKeys`: one SQLite-backed Durable Object per user (named by user id) holding that
//! user's credentials. The vault logic lives in `credentials::vault`; this file is the
//! platform edge: SQL rows, the JSON protocol, and import of the original KV records.

use std::cell::Cell;

use serde::Deserialize;
use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, ListOptions, Request, Response, Result, SqlStorage, SqlStorageValue, State,
};

use crate::credentials::protocol::*;
use crate::credentials::vault::{valid_key, Record, Vault, VaultError, VaultRows};
use crate::crypto::CryptoError;
use crate::time::{now_ms, parse_iso};

/// The original worker kept each credential in KV storage under this prefix (anchor §5).
const LEGACY_PREFIX: &str = "credential:";

#[durable_object(fetch)]
pub struct ApiKeys {
    state: State,
    env: Env,
    legacy_checked: Cell<bool>,
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
        let rows: Vec<SqlRow> = self
            .0
            .exec(&format!("SELECT {COLUMNS} FROM credentials WHERE service = ?"), vec![service.into()])
            .and_then(|c| c.to_array())
            .map_err(|e| e.to_string())?;
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
        self.0
            .exec(&format!("INSERT OR REPLACE INTO credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"), values)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn delete(&self, service: &str) -> std::result::Result<bool, String> {
        let deleted: Vec<serde_json::Value> = self
            .0
            .exec("DELETE FROM credentials WHERE service = ? RETURNING 1", vec![service.into()])
            .and_then(|c| c.to_array())
            .map_err(|e| e.to_string())?;
        Ok(!deleted.is_empty())
    }

    fn list(&self) -> std::result::Result<Vec<Record>, String> {
        let rows: Vec<SqlRow> = self
            .0
            .exec(&format!("SELECT {COLUMNS} FROM credentials ORDER BY service"), None)
            .and_then(|c| c.to_array())
            .map_err(|e| e.to_string())?;
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
            match worker::d1::serde_wasm_bindgen::from_value::<LegacyRecord>(pair.get(1)) {
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
        ApiKeys { state, env, legacy_checked: Cell::new(false) }
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
