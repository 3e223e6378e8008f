//! Access tokens of a stored integration credential. Tokens that expire (Google's after an
//! hour, a GitHub App's user tokens after eight) are refreshed inside the owner's `API_KEYS` object — one flight per credential,
//! persisted there — so a sync slice, an action and an MCP call never race each other into
//! two refreshes, and a refreshed token outlives the request that needed it.

use std::cell::RefCell;

use futures::future::LocalBoxFuture;
use worker::Env;

use super::service::{Credentials, Service, ServiceError, Tokens};
use super::store::{credentials_key, IntegrationRow};
use crate::credentials::vault::needs_refresh;
use crate::credentials::ApiKeys;
use crate::http::ApiError;
use crate::outbound::Counting;

pub struct Stored<'a> {
    env: &'a Env,
    user_id: String,
    key: String,
    provider: &'static str,
    refreshable: bool,
    creds: &'a Credentials,
    /// Counts the object calls against a slice's subrequest budget.
    counter: Option<&'a Counting<'a>>,
    now_secs: i64,
    /// A token obtained from the object during this call or slice, reused by later requests.
    current: &'a RefCell<Option<String>>,
}

impl<'a> Stored<'a> {
    pub fn new(
        env: &'a Env,
        row: &IntegrationRow,
        service: &'static dyn Service,
        creds: &'a Credentials,
        counter: Option<&'a Counting<'a>>,
        current: &'a RefCell<Option<String>>,
        now_ms: i64,
    ) -> Self {
        Stored {
            env,
            user_id: row.user_id.clone(),
            key: credentials_key(&row.id),
            provider: service.name(),
            refreshable: service.oauth().is_some_and(|o| o.refresh),
            creds,
            counter,
            now_secs: now_ms / 1000,
            current,
        }
    }

    async fn ask_object(&self, rejected: Option<&str>) -> Result<String, ServiceError> {
        if let Some(c) = self.counter {
            c.count_other();
        }
        let answer = ApiKeys::for_user(self.env, &self.user_id).token(&self.key, self.provider, rejected).await;
        let token = answer.map_err(to_service_error)?.access_token;
        *self.current.borrow_mut() = Some(token.clone());
        Ok(token)
    }

    /// The stored token (GitHub credentials given directly may call it `token`).
    fn stored(&self) -> Option<String> {
        self.creds.get("access_token").or_else(|| self.creds.get("token")).filter(|t| !t.is_empty()).cloned()
    }
}

fn to_service_error(e: ApiError) -> ServiceError {
    match (e.status, e.code) {
        (409, _) | (404, _) | (410, _) => ServiceError::Auth(e.message.clone()),
        (status, "OAUTH_NOT_CONFIGURED") => {
            ServiceError::Refused { status, code: "OAUTH_NOT_CONFIGURED", message: e.message.clone() }
        }
        _ => ServiceError::Transport(e.message.clone()),
    }
}

impl Tokens for Stored<'_> {
    fn access(&self) -> LocalBoxFuture<'_, Result<String, ServiceError>> {
        Box::pin(async move {
            if let Some(t) = self.current.borrow().clone() {
                return Ok(t);
            }
            if self.refreshable && (self.stored().is_none() || needs_refresh(self.creds, None, self.now_secs)) {
                return self.ask_object(None).await;
            }
            self.stored().ok_or_else(|| ServiceError::Auth("no access token is stored".into()))
        })
    }

    fn refreshed<'b>(&'b self, rejected: &'b str) -> LocalBoxFuture<'b, Result<String, ServiceError>> {
        Box::pin(async move {
            if !self.refreshable {
                return Err(ServiceError::Auth("the provider refused the stored token".into()));
            }
            self.ask_object(Some(rejected)).await
        })
    }
}
