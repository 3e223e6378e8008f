//! The credential vault kept by each user's `API_KEYS` Durable Object: one record per
//! service, its value sealed by the credential module with associated data = user + service.
//! Plain Rust over a small storage trait, so it is tested natively with an in-memory fake.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{Aad, CryptoError, Keyring, Legacy};
use crate::time::{iso, parse_stored, Millis};

/// A stored credential as it sits in the DO's SQLite table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub service: String,
    pub user_id: String,
    pub encrypted_data: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// Storage for records. The DO implements it over its SQLite storage.
pub trait VaultRows {
    fn get(&self, service: &str) -> Result<Option<Record>, String>;
    fn put(&self, record: &Record) -> Result<(), String>;
    fn delete(&self, service: &str) -> Result<bool, String>;
    fn list(&self) -> Result<Vec<Record>, String>;
}

#[derive(Debug, PartialEq, Eq)]
pub enum VaultError {
    NotFound,
    Expired,
    Crypto(CryptoError),
    Storage(String),
}

impl From<CryptoError> for VaultError {
    fn from(e: CryptoError) -> Self {
        VaultError::Crypto(e)
    }
}

/// What a user may see about a credential: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub service: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<String>,
}

/// A credential opened for internal use (sync jobs, proxies), never for a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub credentials: BTreeMap<String, String>,
    pub scopes: Vec<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<String>,
}

pub struct Vault<'a, R: VaultRows> {
    pub rows: &'a R,
    pub keys: &'a Keyring,
    pub user_id: &'a str,
}

fn purpose(service: &str) -> String {
    format!("api-keys:{service}")
}

impl<R: VaultRows> Vault<'_, R> {
    fn seal(&self, service: &str, credentials: &BTreeMap<String, String>) -> String {
        let purpose = purpose(service);
        let plaintext = serde_json::to_vec(credentials).expect("a string map always serializes");
        self.keys.seal(&Aad { purpose: &purpose, owner: self.user_id }, &plaintext)
    }

    fn load(&self, service: &str) -> Result<Record, VaultError> {
        match self.rows.get(service).map_err(VaultError::Storage)? {
            Some(r) if r.user_id == self.user_id => Ok(r),
            _ => Err(VaultError::NotFound),
        }
    }

    /// Stores (or replaces) the credential for `service`.
    pub fn store(
        &self,
        service: &str,
        credentials: &BTreeMap<String, String>,
        scopes: Vec<String>,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> Result<Meta, VaultError> {
        let record = Record {
            service: service.to_string(),
            user_id: self.user_id.to_string(),
            encrypted_data: self.seal(service, credentials),
            scopes,
            created_at: iso(now),
            expires_at: expires_at.map(iso),
        };
        self.rows.put(&record).map_err(VaultError::Storage)?;
        Ok(meta(record))
    }

    /// Opens the credential; 410-worthy when expired. A value sealed under a previous key
    /// or a legacy format is re-sealed under the current key on the way out.
    pub fn retrieve(&self, service: &str, now: Millis) -> Result<Secret, VaultError> {
        let mut record = self.load(service)?;
        if record.expires_at.as_deref().and_then(parse_stored).is_some_and(|t| t <= now) {
            return Err(VaultError::Expired);
        }
        let purpose = purpose(service);
        let aad = Aad { purpose: &purpose, owner: self.user_id };
        let opened = self.keys.open(&aad, &record.encrypted_data, Legacy::ApiKeysDo)?;
        let credentials: BTreeMap<String, String> =
            serde_json::from_slice(&opened.plaintext).map_err(|_| VaultError::Crypto(CryptoError::Undecryptable))?;
        if opened.stale {
            record.encrypted_data = self.seal(service, &credentials);
            self.rows.put(&record).map_err(VaultError::Storage)?;
        }
        Ok(Secret { credentials, scopes: record.scopes, created_at: record.created_at, expires_at: record.expires_at })
    }

    /// Replaces the value, keeping scopes and expiry; `createdAt` restarts.
    pub fn rotate(
        &self,
        service: &str,
        credentials: &BTreeMap<String, String>,
        now: Millis,
    ) -> Result<Meta, VaultError> {
        let mut record = self.load(service)?;
        record.encrypted_data = self.seal(service, credentials);
        record.created_at = iso(now);
        self.rows.put(&record).map_err(VaultError::Storage)?;
        Ok(meta(record))
    }

    /// Removes the credential; says whether there was one.
    pub fn revoke(&self, service: &str) -> Result<bool, VaultError> {
        match self.load(service) {
            Ok(_) => self.rows.delete(service).map_err(VaultError::Storage),
            Err(VaultError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Re-seals every value still in a legacy format or under the previous key; answers
    /// `(scanned, resealed)`. Values no key opens are left alone (and counted as scanned).
    pub fn reseal_all(&self) -> Result<(usize, usize), VaultError> {
        let records: Vec<Record> =
            self.rows.list().map_err(VaultError::Storage)?.into_iter().filter(|r| r.user_id == self.user_id).collect();
        let mut resealed = 0;
        for mut record in records.iter().cloned() {
            let purpose = purpose(&record.service);
            let aad = Aad { purpose: &purpose, owner: self.user_id };
            let Ok(opened) = self.keys.open(&aad, &record.encrypted_data, Legacy::ApiKeysDo) else { continue };
            if opened.stale {
                record.encrypted_data = self.keys.seal(&aad, &opened.plaintext);
                self.rows.put(&record).map_err(VaultError::Storage)?;
                resealed += 1;
            }
        }
        Ok((records.len(), resealed))
    }

    /// Every credential's metadata, by service name.
    pub fn list(&self) -> Result<Vec<Meta>, VaultError> {
        let mut all: Vec<Meta> = self
            .rows
            .list()
            .map_err(VaultError::Storage)?
            .into_iter()
            .filter(|r| r.user_id == self.user_id)
            .map(meta)
            .collect();
        all.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(all)
    }
}

/// Refresh this long before an access token expires.
pub const REFRESH_MARGIN_SECS: i64 = 5 * 60;

/// Whether an OAuth credential needs a refresh now: it has a refresh token, and its access
/// token expires within the margin, or is the one the provider just refused.
pub fn needs_refresh(creds: &BTreeMap<String, String>, rejected: Option<&str>, now_secs: i64) -> bool {
    if creds.get("refresh_token").is_none_or(|t| t.is_empty()) {
        return false;
    }
    let current = creds.get("access_token").map(String::as_str).unwrap_or("");
    if current.is_empty() {
        return true;
    }
    match rejected {
        // Someone else already refreshed: the stored token is newer than the refused one.
        Some(r) => r == current,
        None => creds
            .get("expires_at")
            .and_then(|e| e.parse::<i64>().ok())
            .is_some_and(|e| e - now_secs < REFRESH_MARGIN_SECS),
    }
}

/// The credential after a refresh: the new access token and expiry; the old refresh token kept
/// when the provider sent none (Google usually does not).
pub fn merge_grant(old: &BTreeMap<String, String>, grant: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut merged = old.clone();
    if !grant.contains_key("expires_at") {
        merged.remove("expires_at");
    }
    merged.extend(grant.into_iter().filter(|(_, v)| !v.is_empty()));
    merged
}

fn meta(r: Record) -> Meta {
    Meta { service: r.service, scopes: r.scopes, created_at: r.created_at, expires_at: r.expires_at }
}

/// Service names are path segments and table keys: `[a-z0-9][a-z0-9_.-]{0,63}`.
/// A name the `API_KEYS` object accepts: a user's service name, or the key of an integration's
/// own credentials (`integration:<uuid>`), which no user route can name.
pub fn valid_key(s: &str) -> bool {
    valid_service(s)
        || s.strip_prefix(INTEGRATION_PREFIX)
            .is_some_and(|id| id.len() == 36 && id.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
}

/// The prefix of integration credential keys.
pub const INTEGRATION_PREFIX: &str = "integration:";

pub fn valid_service(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
pub mod fake {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// In-memory rows with a switch that makes writes fail.
    #[derive(Default)]
    pub struct MemRows {
        pub rows: RefCell<BTreeMap<String, Record>>,
        pub fail_writes: Cell<bool>,
    }

    impl VaultRows for MemRows {
        fn get(&self, service: &str) -> Result<Option<Record>, String> {
            Ok(self.rows.borrow().get(service).cloned())
        }
        fn put(&self, record: &Record) -> Result<(), String> {
            if self.fail_writes.get() {
                return Err("disk full".into());
            }
            self.rows.borrow_mut().insert(record.service.clone(), record.clone());
            Ok(())
        }
        fn delete(&self, service: &str) -> Result<bool, String> {
            if self.fail_writes.get() {
                return Err("disk full".into());
            }
            Ok(self.rows.borrow_mut().remove(service).is_some())
        }
        fn list(&self) -> Result<Vec<Record>, String> {
            Ok(self.rows.borrow().values().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::MemRows;
    use super::*;

    const NOW: Millis = 1_767_323_045_678;

    fn creds(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("api_key".to_string(), v.to_string())])
    }

    #[test]
    fn store_retrieve_list_rotate_revoke() {
        let rows = MemRows::default();
        let keys = Keyring::new(Some("k"), None).unwrap();
        let v = Vault { rows: &rows, keys: &keys, user_id: "u1" };
        v.store("openai", &creds("sk-1"), vec!["chat".into()], None, NOW).unwrap();
        assert!(!rows.rows.borrow()["openai"].encrypted_data.contains("sk-1"));
        assert_eq!(v.retrieve("openai", NOW).unwrap().credentials, creds("sk-1"));
        let listed = v.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scopes, ["chat"]);
        v.rotate("openai", &creds("sk-2"), NOW + 5).unwrap();
        let s = v.retrieve("openai", NOW).unwrap();
        assert_eq!((s.credentials, s.scopes, s.created_at), (creds("sk-2"), vec!["chat".to_string()], iso(NOW + 5)));
        assert_eq!(v.rotate("nope", &creds("x"), NOW), Err(VaultError::NotFound));
        assert_eq!(v.revoke("openai"), Ok(true));
        assert_eq!(v.revoke("openai"), Ok(false));
        assert_eq!(v.retrieve("openai", NOW), Err(VaultError::NotFound));
    }

    #[test]
    fn reseal_all_moves_previous_key_values_to_the_current_key() {
        let rows = MemRows::default();
        let old = Keyring::new(Some("old"), None).unwrap();
        Vault { rows: &rows, keys: &old, user_id: "u1" }.store("a", &creds("1"), vec![], None, NOW).unwrap();
        Vault { rows: &rows, keys: &old, user_id: "u1" }.store("b", &creds("2"), vec![], None, NOW).unwrap();
        let new = Keyring::new(Some("new"), Some("old")).unwrap();
        let v = Vault { rows: &rows, keys: &new, user_id: "u1" };
        v.store("c", &creds("3"), vec![], None, NOW).unwrap();
        assert_eq!(v.reseal_all().unwrap(), (3, 2));
        assert_eq!(v.reseal_all().unwrap(), (3, 0), "nothing stale is left");
        let only_new = Keyring::new(Some("new"), None).unwrap();
        assert_eq!(
            Vault { rows: &rows, keys: &only_new, user_id: "u1" }.retrieve("a", NOW).unwrap().credentials,
            creds("1")
        );
    }

    #[test]
    fn expiry_is_410_worthy() {
        let rows = MemRows::default();
        let keys = Keyring::new(Some("k"), None).unwrap();
        let v = Vault { rows: &rows, keys: &keys, user_id: "u1" };
        v.store("svc", &creds("x"), vec![], Some(NOW + 1000), NOW).unwrap();
        assert!(v.retrieve("svc", NOW + 999).is_ok());
        assert_eq!(v.retrieve("svc", NOW + 1000), Err(VaultError::Expired));
    }

    #[test]
    fn another_users_row_is_not_found_and_does_not_open() {
        let rows = MemRows::default();
        let keys = Keyring::new(Some("k"), None).unwrap();
        Vault { rows: &rows, keys: &keys, user_id: "u1" }.store("svc", &creds("x"), vec![], None, NOW).unwrap();
        let other = Vault { rows: &rows, keys: &keys, user_id: "u2" };
        assert_eq!(other.retrieve("svc", NOW), Err(VaultError::NotFound));
        // Even with the owner column forged, the associated data keeps the value sealed.
        rows.rows.borrow_mut().get_mut("svc").unwrap().user_id = "u2".into();
        assert_eq!(other.retrieve("svc", NOW), Err(VaultError::Crypto(CryptoError::Undecryptable)));
    }

    #[test]
    fn rotation_reseals_lazily_and_failed_writes_lose_nothing() {
        let rows = MemRows::default();
        let old = Keyring::new(Some("old"), None).unwrap();
        Vault { rows: &rows, keys: &old, user_id: "u1" }.store("svc", &creds("x"), vec![], None, NOW).unwrap();
        let before = rows.rows.borrow()["svc"].clone();
        let rotated = Keyring::new(Some("new"), Some("old")).unwrap();
        let v = Vault { rows: &rows, keys: &rotated, user_id: "u1" };
        // A failing write surfaces as an error and leaves the old record intact.
        rows.fail_writes.set(true);
        assert!(matches!(v.retrieve("svc", NOW), Err(VaultError::Storage(_))));
        assert_eq!(rows.rows.borrow()["svc"], before);
        rows.fail_writes.set(false);
        assert_eq!(v.retrieve("svc", NOW).unwrap().credentials, creds("x"));
        let after = rows.rows.borrow()["svc"].clone();
        assert!(after.encrypted_data.starts_with(&format!("enc:v1:{}:", rotated.current_kid())));
        // The previous key is no longer needed.
        let only_new = Keyring::new(Some("new"), None).unwrap();
        assert!(Vault { rows: &rows, keys: &only_new, user_id: "u1" }.retrieve("svc", NOW).is_ok());
    }

    #[test]
    fn legacy_do_values_open_and_are_resealed() {
        let fixtures: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/legacy-ciphertexts.json")).unwrap();
        let case = fixtures["cases"].as_array().unwrap().iter().find(|c| c["format"] == "api-keys-do").unwrap();
        let rows = MemRows::default();
        rows.put(&Record {
            service: "legacy".into(),
            user_id: "u1".into(),
            encrypted_data: case["ciphertext"].as_str().unwrap().into(),
            scopes: vec![],
            created_at: "2025-01-01T00:00:00.000Z".into(),
            expires_at: None,
        })
        .unwrap();
        let keys = Keyring::new(Some(case["encryptionKey"].as_str().unwrap()), None).unwrap();
        let v = Vault { rows: &rows, keys: &keys, user_id: "u1" };
        let secret = v.retrieve("legacy", NOW).unwrap();
        let expected: BTreeMap<String, String> = serde_json::from_str(case["plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(secret.credentials, expected);
        assert!(rows.rows.borrow()["legacy"].encrypted_data.starts_with("enc:v1:"));
    }

    #[test]
    fn service_names() {
        assert!(valid_service("openai"));
        assert!(valid_service("google.calendar-2_x"));
        assert!(!valid_service(""));
        assert!(!valid_service("-x"));
        assert!(!valid_service("Upper"));
        assert!(!valid_service("a/b"));
        assert!(!valid_service(&"a".repeat(65)));
        assert!(valid_key("integration:0b7c7a0e-8f4e-4a57-9a59-5d5f6f0e2c11"));
        assert!(!valid_service("integration:0b7c7a0e-8f4e-4a57-9a59-5d5f6f0e2c11"));
        assert!(!valid_key("integration:../x"));
    }

    #[test]
    fn refresh_decisions() {
        let creds = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        };
        let live = creds(&[("access_token", "a1"), ("refresh_token", "r"), ("expires_at", "10000")]);
        assert!(!needs_refresh(&live, None, 10000 - 301));
        assert!(needs_refresh(&live, None, 10000 - 299), "inside the 5-minute margin");
        assert!(needs_refresh(&live, Some("a1"), 0), "the stored token was refused");
        assert!(!needs_refresh(&live, Some("a0"), 0), "an older token was refused: already refreshed");
        assert!(
            !needs_refresh(&creds(&[("access_token", "a1"), ("expires_at", "1")]), None, 10),
            "nothing to refresh with"
        );
        assert!(
            !needs_refresh(&creds(&[("access_token", "a1"), ("refresh_token", "r")]), None, 10),
            "no expiry known: use it until refused"
        );
        let merged = merge_grant(&live, creds(&[("access_token", "a2"), ("expires_at", "13600")]));
        assert_eq!(merged, creds(&[("access_token", "a2"), ("refresh_token", "r"), ("expires_at", "13600")]));
        let rotated = merge_grant(&live, creds(&[("access_token", "a3"), ("refresh_token", "r2")]));
        assert_eq!((rotated["refresh_token"].as_str(), rotated.get("expires_at")), ("r2", None));
    }
}
