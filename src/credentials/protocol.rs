//! The Worker ↔ `API_KEYS` Durable Object protocol (the original worker's, done right): one POST JSON
//! endpoint per operation, every failure a JSON `{error, code}` with a status the caller checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::vault::Meta;

pub const STORE: &str = "/store";
pub const RETRIEVE: &str = "/retrieve";
pub const LIST: &str = "/list";
pub const ROTATE: &str = "/rotate";
pub const REVOKE: &str = "/revoke";
pub const TOKEN: &str = "/token";
pub const RESEAL: &str = "/reseal";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreRequest {
    pub user_id: String,
    pub service: String,
    pub credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub user_id: String,
    pub service: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    pub user_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateRequest {
    pub user_id: String,
    pub service: String,
    pub new_credentials: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoreResponse {
    pub success: bool,
    pub id: String,
    pub credential: Meta,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ListResponse {
    pub credentials: Vec<Meta>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeResponse {
    pub success: bool,
    /// Whether a credential existed (revoking an absent one still succeeds).
    pub existed: bool,
}

/// `POST /token`: a usable access token for an OAuth credential, refreshed inside the object
/// (one flight per credential) when it expires within 5 minutes or was just `rejected`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    pub user_id: String,
    pub service: String,
    /// The registered service whose OAuth parameters refresh it (e.g. `gmail`).
    pub provider: String,
    /// The access token the provider just answered 401 to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    /// Epoch seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub refreshed: bool,
}

/// `POST /reseal` answer: values looked at, and those re-sealed under the current key.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResealResponse {
    pub scanned: usize,
    pub resealed: usize,
}
