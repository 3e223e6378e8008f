//! The one interface every integration service implements: its entity types, a credential
//! check, one sync page from a position, fetch, actions, webhook items and its OAuth parameters.
//! The engine, the routes, the cron and the entities API only speak to [`Service`]; the services
//! themselves (in `services/`) implement [`ServiceImpl`] with plain `async fn`s, and one blanket
//! implementation boxes their futures, so the registry can hold `&dyn Service` (async trait
//! objects need boxed futures; the cost is one small allocation per call).

use std::collections::BTreeMap;

use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::config::Vars;
use crate::outbound::Http;
use crate::time::Millis;

/// Credentials as stored in the `API_KEYS` DO (`access_token`, `refresh_token`, …).
pub type Credentials = BTreeMap<String, String>;

/// What a service call gets: the network, the configuration and the opened credentials.
pub struct Conn<'a> {
    pub http: &'a dyn Http,
    pub vars: &'a dyn Vars,
    pub creds: &'a Credentials,
    /// The access token, kept fresh (services whose tokens expire use this, not `creds`).
    pub tokens: &'a dyn Tokens,
    pub now: Millis,
}

/// Access tokens of an OAuth credential.
pub trait Tokens {
    /// A usable token (refreshed first when it expires within 5 minutes).
    fn access(&self) -> LocalBoxFuture<'_, Result<String, ServiceError>>;
    /// A new token after the provider refused `rejected` (401); `Auth` when none can be had.
    fn refreshed<'a>(&'a self, rejected: &'a str) -> LocalBoxFuture<'a, Result<String, ServiceError>>;
}

/// Tokens that never change (a personal access token, or a test).
pub struct Fixed<'a>(pub &'a Credentials);

impl Tokens for Fixed<'_> {
    fn access(&self) -> LocalBoxFuture<'_, Result<String, ServiceError>> {
        let t = self.0.get("access_token").or_else(|| self.0.get("token")).cloned().unwrap_or_default();
        Box::pin(async move {
            if t.is_empty() {
                Err(ServiceError::Auth("no access token is stored".into()))
            } else {
                Ok(t)
            }
        })
    }

    fn refreshed<'a>(&'a self, _rejected: &'a str) -> LocalBoxFuture<'a, Result<String, ServiceError>> {
        Box::pin(async { Err(ServiceError::Auth("the token was refused".into())) })
    }
}

/// One entity to persist (or, with `deleted`, to mark deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub external_id: String,
    pub data: Value,
    /// The service's last-modified time (ISO); drives incremental cursors and stale-write checks.
    pub modified_at: String,
    /// The parent entity's key (e.g. the repository of an issue); `""` when there is none.
    pub parent: String,
    pub deleted: bool,
}

impl Item {
    pub fn new(external_id: impl Into<String>, modified_at: impl Into<String>, data: Value) -> Self {
        Item {
            external_id: external_id.into(),
            data,
            modified_at: modified_at.into(),
            parent: String::new(),
            deleted: false,
        }
    }

    pub fn under(mut self, parent: impl Into<String>) -> Self {
        self.parent = parent.into();
        self
    }

    /// A deletion seen by an incremental run (e.g. a cancelled event).
    pub fn gone(external_id: impl Into<String>) -> Self {
        Item { deleted: true, ..Item::new(external_id, "", Value::Null) }
    }
}

/// One page request of a sync run.
pub struct PageRequest<'a> {
    pub entity: &'a str,
    /// The current parent's key (`""` for entity types without parents).
    pub parent: &'a str,
    /// The service's own cursor for the next page; `None` on the first page.
    pub cursor: Option<&'a Value>,
    /// The stored checkpoint of this entity type (and parent); `None` on a full pass.
    pub since: Option<&'a str>,
    /// Upstream requests this page may make (the invocation's subrequest budget).
    pub max_requests: u32,
    /// The integration's `config.filters` when the run started (checked by [`Filter`]s).
    pub filters: Option<&'a Value>,
}

impl PageRequest<'_> {
    /// One filter's value, if it is set.
    pub fn filter(&self, name: &str) -> Option<&Value> {
        self.filters.and_then(|f| f.get(name)).filter(|v| !v.is_null())
    }
}

/// A `config.filters` entry a service honours, and the check of its value (the message says
/// what is wrong).
pub struct Filter {
    pub name: &'static str,
    pub check: fn(&Value) -> Result<(), String>,
}

/// A filter's value as a list of strings: `min..=max` items, each `1..=max_len` characters
/// and accepted by `valid`.
pub fn string_list(
    v: &Value,
    max: usize,
    max_len: usize,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or_else(|| format!("Expected an array of {what}"))?;
    if list.is_empty() || list.len() > max {
        return Err(format!("Expected 1 to {max} {what}"));
    }
    list.iter()
        .enumerate()
        .map(|(i, x)| match x.as_str() {
            Some(s) if !s.is_empty() && s.len() <= max_len && valid(s) => Ok(s.to_string()),
            _ => Err(format!("Item {i} is not one of the {what}")),
        })
        .collect()
}

/// The answer to one page request.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next request starts; `None` when this parent (or entity type) is done.
    pub next: Option<Value>,
    /// The checkpoint to store when the pass ends, if the service has its own (a Gmail
    /// `historyId`, a Calendar `syncToken`); else the engine keeps the latest `modified_at`.
    pub checkpoint: Option<String>,
}

/// How an entity type iterates: over the stored entities of a parent type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parent {
    pub entity: &'static str,
    /// JSON path of the parent's key in its stored data (e.g. `$.full_name`).
    pub key: &'static str,
    /// JSON path that must be true for a parent to be walked (e.g. a calendar's `$.selected`).
    pub only_if: Option<&'static str>,
    /// The `config.filters` entry that, when set, lists the parent keys to walk instead.
    pub filter: Option<&'static str>,
}

/// Failures of a service call, by what the caller should do about them.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceError {
    /// Retry after this many seconds.
    RateLimited(u64),
    /// The provider refused the credentials and they cannot be refreshed: the user must reconnect.
    Auth(String),
    NotFound(String),
    /// Parameters the provider (or the service) found invalid, naming no field.
    Invalid(String),
    /// One parameter the service found invalid beyond its schema (`field` is its path, as in
    /// `VALIDATION_ERROR` details: `recurrence.1`, `timeZone`): the only way a bad field is said.
    InvalidField {
        field: String,
        message: String,
    },
    /// The stored incremental checkpoint is no longer valid: start this pass over.
    CheckpointExpired(String),
    /// A precondition of the action failed (e.g. not an attendee): `code` for the envelope.
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
    /// Any other non-2xx answer.
    Upstream {
        status: u16,
        message: String,
    },
    /// Timeout, network failure or an unreadable answer.
    Transport(String),
}

impl ServiceError {
    pub fn message(&self) -> String {
        match self {
            ServiceError::RateLimited(s) => format!("rate limited; retry in {s} s"),
            ServiceError::Upstream { status, message } => format!("upstream answered {status}: {message}"),
            ServiceError::Refused { message, .. } => message.clone(),
            ServiceError::InvalidField { field, message } if !field.is_empty() => format!("{field}: {message}"),
            ServiceError::InvalidField { message, .. } => message.clone(),
            ServiceError::Auth(m)
            | ServiceError::NotFound(m)
            | ServiceError::Invalid(m)
            | ServiceError::CheckpointExpired(m)
            | ServiceError::Transport(m) => m.clone(),
        }
    }

    /// Worth retrying later (server errors, timeouts); everything else is final.
    pub fn transient(&self) -> bool {
        match self {
            ServiceError::Upstream { status, .. } => *status >= 500 || *status == 408,
            ServiceError::Transport(_) => true,
            _ => false,
        }
    }
}

/// What an action is: its JSON Schema (draft 2020-12) and whether it changes anything.
pub struct Action {
    pub name: &'static str,
    pub description: &'static str,
    /// The parameters' JSON Schema, as JSON text (parsed when listed or validated).
    pub params: &'static str,
    /// Write actions on org-scope integrations are for their owner only.
    pub write: bool,
}

/// What an action returns, and the entities it touched (stored as a sync would).
#[derive(Debug, Default)]
pub struct Outcome {
    pub result: Value,
    pub items: Vec<(&'static str, Item)>,
}

impl Outcome {
    pub fn of(result: Value) -> Self {
        Outcome { result, items: Vec::new() }
    }

    pub fn storing(mut self, entity: &'static str, item: Item) -> Self {
        self.items.push((entity, item));
        self
    }
}

/// The scopes an action needs: every group must be met, a group by any one of its scopes (the
/// narrowest first, then the broader ones that include it).
pub type Scopes = &'static [&'static [&'static str]];

/// The groups of `required` that `granted` does not meet (empty: the action may run).
pub fn missing_scopes(required: Scopes, granted: &[String]) -> Vec<&'static [&'static str]> {
    required.iter().copied().filter(|any| !any.iter().any(|s| granted.iter().any(|g| g == s))).collect()
}

/// A service's OAuth 2 parameters; the flow itself is generic (`integrations::oauth`).
pub struct OAuth {
    /// The provider's name in messages ("Google access was revoked or expired").
    pub display: &'static str,
    /// Configuration variable and default of the authorization server's origin, and the path.
    pub authorize_base: (&'static str, &'static str),
    pub authorize_path: &'static str,
    /// Configuration variable and default of the token endpoint's base, and the path on it.
    pub token_url: (&'static str, &'static str),
    pub token_path: &'static str,
    pub client_id_var: &'static str,
    pub client_secret_var: &'static str,
    pub scopes: &'static [&'static str],
    pub scope_separator: &'static str,
    /// Extra authorization parameters (`access_type=offline`, `prompt=consent`).
    pub extra: &'static [(&'static str, &'static str)],
    /// Whether the provider issues refresh tokens worth keeping.
    pub refresh: bool,
    /// How a grant obtained through this flow is revoked when its integration is deleted.
    pub revoke: Option<Revocation>,
}

/// How a provider revokes an OAuth grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Revocation {
    /// RFC 7009: a form post `token=…` to the configured URL (Google's `/revoke`); the refresh
    /// token when there is one (it takes the whole grant with it), else the access token.
    TokenForm { url: (&'static str, &'static str) },
    /// GitHub: `DELETE {api}/applications/{client_id}/grant` with the OAuth app's client id and
    /// secret as basic auth and `{"access_token": …}`: the user's authorization of the app goes.
    GitHubGrant { api: (&'static str, &'static str) },
}

/// The credential key that marks a grant this service obtained through its OAuth flow (only
/// those are revoked at the provider; a token given directly is the user's own to keep).
pub const OBTAINED_VIA: &str = "obtained_via";

/// The interface. See the module comment.
pub trait Service: Sync {
    fn name(&self) -> &'static str;
    /// Entity types, in sync order (parents before their children).
    fn entities(&self) -> &'static [&'static str];
    fn parent(&self, _entity: &str) -> Option<Parent> {
        None
    }
    fn actions(&self) -> &'static [Action];
    /// The `config.filters` entries it honours (any other is refused at create and update).
    fn filters(&self) -> &'static [Filter] {
        &[]
    }
    /// The OAuth scopes `action` needs (checked against the granted ones before it runs).
    fn required_scopes(&self, _action: &str) -> Scopes {
        &[]
    }
    fn oauth(&self) -> Option<&'static OAuth> {
        None
    }
    /// Checks (and normalises) credentials given directly, before any request.
    fn prepare_credentials(&self, creds: Credentials, now: Millis) -> Result<Credentials, String>;
    /// Proves the credentials work; answers the account (e.g. a login or an address).
    fn check<'a>(&'a self, c: &'a Conn<'a>) -> LocalBoxFuture<'a, Result<Value, ServiceError>>;
    fn sync_page<'a>(
        &'a self,
        c: &'a Conn<'a>,
        req: &'a PageRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Page, ServiceError>>;
    /// One entity, live: `(entity type to store it under, item)`.
    fn fetch<'a>(
        &'a self,
        c: &'a Conn<'a>,
        entity: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, Result<(&'static str, Item), ServiceError>>;
    /// Runs an action whose parameters already passed its schema.
    fn act<'a>(
        &'a self,
        c: &'a Conn<'a>,
        action: &'a str,
        params: &'a Value,
    ) -> LocalBoxFuture<'a, Result<Outcome, ServiceError>>;
    /// The action behind the legacy `push` route for an entity type.
    fn push_action(&self, _entity: &str) -> Option<&'static str> {
        None
    }
    /// Entities a webhook delivery of this service changes: `(entity type, item)`.
    fn webhook_items(&self, _event: &str, _payload: &Value) -> Vec<(&'static str, Item)> {
        Vec::new()
    }
    /// The account a webhook delivery concerns, to find the integrations it updates: a parent
    /// key (`(parent entity type, key)`) held by the integration.
    fn webhook_holder(&self, _payload: &Value) -> Option<(&'static str, String)> {
        None
    }
    /// Whether the account can still see the holder `key` of `holder_type` (a repository by its
    /// id): `Ok(false)` when the provider says it cannot. Webhook data reaches an integration
    /// only while this holds.
    fn holds<'a>(
        &'a self,
        _c: &'a Conn<'a>,
        _holder_type: &'a str,
        _key: &'a str,
    ) -> LocalBoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(async { Ok(true) })
    }
}

/// What a service implements: [`Service`] with plain `async fn`s. Every `ServiceImpl` is a
/// `Service` through the blanket implementation below.
#[allow(async_fn_in_trait)] // single-threaded Workers runtime: no Send bound wanted
pub trait ServiceImpl: Sync {
    fn name(&self) -> &'static str;
    /// Entity types, in sync order (parents before their children).
    fn entities(&self) -> &'static [&'static str];
    fn parent(&self, _entity: &str) -> Option<Parent> {
        None
    }
    fn actions(&self) -> &'static [Action];
    /// The `config.filters` entries it honours (see [`Service::filters`]).
    fn filters(&self) -> &'static [Filter] {
        &[]
    }
    /// The OAuth scopes `action` needs (see [`Service::required_scopes`]).
    fn required_scopes(&self, _action: &str) -> Scopes {
        &[]
    }
    fn oauth(&self) -> Option<&'static OAuth> {
        None
    }
    /// Checks (and normalises) credentials given directly, before any request.
    fn prepare_credentials(&self, creds: Credentials, now: Millis) -> Result<Credentials, String>;
    /// Proves the credentials work; answers the account (e.g. a login or an address).
    async fn check(&self, c: &Conn<'_>) -> Result<Value, ServiceError>;
    async fn sync_page(&self, c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError>;
    /// One entity, live: `(entity type to store it under, item)`.
    async fn fetch(&self, c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError>;
    /// Runs an action whose parameters already passed its schema.
    async fn act(&self, c: &Conn<'_>, action: &str, params: &Value) -> Result<Outcome, ServiceError>;
    /// The action behind the legacy `push` route for an entity type.
    fn push_action(&self, _entity: &str) -> Option<&'static str> {
        None
    }
    /// Entities a webhook delivery of this service changes: `(entity type, item)`.
    fn webhook_items(&self, _event: &str, _payload: &Value) -> Vec<(&'static str, Item)> {
        Vec::new()
    }
    /// The account a webhook delivery concerns (see [`Service::webhook_holder`]).
    fn webhook_holder(&self, _payload: &Value) -> Option<(&'static str, String)> {
        None
    }
    /// Whether the account can still see a holder (see [`Service::holds`]).
    async fn holds(&self, _c: &Conn<'_>, _holder_type: &str, _key: &str) -> Result<bool, ServiceError> {
        Ok(true)
    }
}

impl<T: ServiceImpl> Service for T {
    fn name(&self) -> &'static str {
        ServiceImpl::name(self)
    }
    fn entities(&self) -> &'static [&'static str] {
        ServiceImpl::entities(self)
    }
    fn parent(&self, entity: &str) -> Option<Parent> {
        ServiceImpl::parent(self, entity)
    }
    fn actions(&self) -> &'static [Action] {
        ServiceImpl::actions(self)
    }
    fn filters(&self) -> &'static [Filter] {
        ServiceImpl::filters(self)
    }
    fn required_scopes(&self, action: &str) -> Scopes {
        ServiceImpl::required_scopes(self, action)
    }
    fn oauth(&self) -> Option<&'static OAuth> {
        ServiceImpl::oauth(self)
    }
    fn prepare_credentials(&self, creds: Credentials, now: Millis) -> Result<Credentials, String> {
        ServiceImpl::prepare_credentials(self, creds, now)
    }
    fn check<'a>(&'a self, c: &'a Conn<'a>) -> LocalBoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(ServiceImpl::check(self, c))
    }
    fn sync_page<'a>(
        &'a self,
        c: &'a Conn<'a>,
        req: &'a PageRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Page, ServiceError>> {
        Box::pin(ServiceImpl::sync_page(self, c, req))
    }
    fn fetch<'a>(
        &'a self,
        c: &'a Conn<'a>,
        entity: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, Result<(&'static str, Item), ServiceError>> {
        Box::pin(ServiceImpl::fetch(self, c, entity, id))
    }
    fn act<'a>(
        &'a self,
        c: &'a Conn<'a>,
        action: &'a str,
        params: &'a Value,
    ) -> LocalBoxFuture<'a, Result<Outcome, ServiceError>> {
        Box::pin(ServiceImpl::act(self, c, action, params))
    }
    fn push_action(&self, entity: &str) -> Option<&'static str> {
        ServiceImpl::push_action(self, entity)
    }
    fn webhook_items(&self, event: &str, payload: &Value) -> Vec<(&'static str, Item)> {
        ServiceImpl::webhook_items(self, event, payload)
    }
    fn webhook_holder(&self, payload: &Value) -> Option<(&'static str, String)> {
        ServiceImpl::webhook_holder(self, payload)
    }
    fn holds<'a>(
        &'a self,
        c: &'a Conn<'a>,
        holder_type: &'a str,
        key: &'a str,
    ) -> LocalBoxFuture<'a, Result<bool, ServiceError>> {
        Box::pin(ServiceImpl::holds(self, c, holder_type, key))
    }
}
