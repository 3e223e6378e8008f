//! Credential storage: the typed client of the per-user `API_KEYS` Durable Object and the
//! user-facing routes (`/api/me/credentials`), which show metadata, never values.

pub mod protocol;
pub mod vault;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use worker::{Env, Method};

use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use protocol::*;
use vault::{valid_service, Meta, Secret};

pub const BINDING: &str = "API_KEYS";

/// A handle on one user's `API_KEYS` object.
pub struct ApiKeys {
    env: Env,
    user_id: String,
}

impl ApiKeys {
    pub fn for_user(env: &Env, user_id: &str) -> Self {
        ApiKeys { env: env.clone(), user_id: user_id.to_string() }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> ApiResult<T> {
        let r = crate::do_client::call(&self.env, BINDING, &self.user_id, Method::Post, path, Some(body)).await?;
        if r.status == 200 {
            return r.json();
        }
        Err(match (r.status, r.code().as_str()) {
            (404, _) => ApiError::not_found("Credentials not found"),
            (409, "RECONNECT_REQUIRED") => ApiError::new(409, "RECONNECT_REQUIRED", r.message()),
            (503, "OAUTH_NOT_CONFIGURED") => ApiError::new(503, "OAUTH_NOT_CONFIGURED", r.message()),
            (502, _) => ApiError::upstream(r.message()),
            (410, _) => ApiError::new(410, "CREDENTIALS_EXPIRED", "Credentials expired"),
            (503, "ENCRYPTION_NOT_CONFIGURED") => ApiError::encryption_not_configured(),
            (503, "ENCRYPTION_KEY_TOO_WEAK") => crate::crypto::CryptoError::WeakKey.into(),
            (400, _) => ApiError::new(400, "VALIDATION_ERROR", "Invalid credential request"),
            (status, code) => ApiError::internal(format!("API_KEYS {path} answered {status} {code}")),
        })
    }

    pub async fn store(
        &self,
        service: &str,
        credentials: BTreeMap<String, String>,
        scopes: Vec<String>,
        expires_at: Option<String>,
    ) -> ApiResult<Meta> {
        let req =
            StoreRequest { user_id: self.user_id.clone(), service: service.into(), credentials, scopes, expires_at };
        let resp: StoreResponse = self.call(STORE, &req).await?;
        Ok(resp.credential)
    }

    /// Opens a credential for internal use. Never put the result in a response.
    pub async fn retrieve(&self, service: &str) -> ApiResult<Secret> {
        self.call(RETRIEVE, &ServiceRequest { user_id: self.user_id.clone(), service: service.into() }).await
    }

    pub async fn list(&self) -> ApiResult<Vec<Meta>> {
        let resp: ListResponse = self.call(LIST, &ListRequest { user_id: self.user_id.clone() }).await?;
        Ok(resp.credentials)
    }

    /// A usable access token for an OAuth credential, refreshed inside the object when due
    /// (or when `rejected` is the token the provider just refused).
    pub async fn token(&self, key: &str, provider: &str, rejected: Option<&str>) -> ApiResult<TokenResponse> {
        let req = TokenRequest {
            user_id: self.user_id.clone(),
            service: key.into(),
            provider: provider.into(),
            rejected: rejected.map(str::to_string),
        };
        self.call(TOKEN, &req).await
    }

    /// Re-seals every stale value of this user: `(scanned, resealed)`.
    pub async fn reseal(&self) -> ApiResult<(usize, usize)> {
        let r: ResealResponse = self.call(RESEAL, &ListRequest { user_id: self.user_id.clone() }).await?;
        Ok((r.scanned, r.resealed))
    }

    /// Removes a credential; says whether one existed.
    pub async fn revoke(&self, service: &str) -> ApiResult<bool> {
        let resp: RevokeResponse =
            self.call(REVOKE, &ServiceRequest { user_id: self.user_id.clone(), service: service.into() }).await?;
        Ok(resp.existed)
    }
}

fn service_param(ctx: &Ctx) -> ApiResult<String> {
    let service = ctx.params.get("service");
    if valid_service(service) {
        Ok(service.to_string())
    } else {
        Err(ApiError::invalid_field("service", "Must match [a-z0-9][a-z0-9_.-]{0,63}"))
    }
}

/// `GET /api/me/credentials` → `{credentials: [{service, scopes, createdAt, expiresAt?}]}`.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    // Integrations' own credentials are managed through their integration, not listed here.
    let mut credentials = ApiKeys::for_user(&ctx.env, &caller.id).list().await?;
    credentials.retain(|m| !m.service.starts_with(vault::INTEGRATION_PREFIX));
    Reply::ok(&json!({ "credentials": credentials }))
}

/// `PUT /api/me/credentials/:service` with `{credentials: {k: v}, scopes?, expiresAt?}`:
/// stores a secret (an LLM API key, say) for the caller. The answer is metadata only.
pub async fn put(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let service = service_param(ctx)?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let credentials = input.str_map("credentials", 32, 16 * 1024);
    let scopes = input.opt_str_list("scopes", 64, 128).unwrap_or_default();
    let expires_at = input.opt_future_time("expiresAt", ctx.now);
    input.finish()?;
    let meta = ApiKeys::for_user(&ctx.env, &caller.id)
        .store(&service, credentials.into_iter().collect(), scopes, expires_at.map(crate::time::iso))
        .await?;
    Reply::ok(&json!({ "credential": meta }))
}

/// `DELETE /api/me/credentials/:service` → `{success: true}`, 404 when none is stored.
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let service = service_param(ctx)?;
    if ApiKeys::for_user(&ctx.env, &caller.id).revoke(&service).await? {
        Reply::ok(&crate::http::success())
    } else {
        Err(ApiError::not_found("Credentials not found"))
    }
}
