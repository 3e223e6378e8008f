//! The Worker ↔ `API_KEYS` Durable Object protocol (anchor §5, done right): one POST JSON
//! endpoint per operation, every failure a JSON `{error, code}` with a status the caller checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::vault::Meta;

pub const STORE: &str = "/store";
pub const RETRIEVE: &str = "/retrieve";
pub const LIST: &str = "/list";
pub const ROTATE: &str = "/rotate";
pub const REVOKE: &str = "/revoke";

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
