//! What a handler gets: the parsed request, the caller and the environment. It lives with
//! the HTTP layer so features depend on it without depending on the pipeline that calls them.

use std::cell::{Ref, RefCell};
use std::rc::Rc;

use worker::d1::D1Database;
use worker::{Context, Env, Headers};

use super::input::Query;
use super::router::Params;
use super::{ApiError, ApiResult};
use crate::time::Millis;

/// What a caller may do: members use their own resources, admins also the organization's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// The authenticated caller of a request (found by `auth`, before any handler runs).
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    /// `api_tokens` or `auth_sessions`, and the row id, for `last_used_at`.
    pub token_table: &'static str,
    pub token_id: String,
    pub last_used_at: Option<String>,
    /// Set when the token is an OAuth access token of an MCP client (accepted by `/mcp` only).
    pub oauth: Option<OAuthGrant>,
}

/// What an OAuth access token grants: its client and scopes (`mcp:read`, `mcp:write`).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthGrant {
    pub client_id: String,
    pub scope: String,
}

impl Caller {
    /// Whether the caller may run write actions: API tokens and sign-in sessions may, an OAuth
    /// token only with `mcp:write`.
    pub fn may_write(&self) -> bool {
        self.oauth.as_ref().is_none_or(|g| g.scope.split(' ').any(|s| s == "mcp:write"))
    }
}

/// Everything a handler gets: the parsed request and the caller.
pub struct Ctx {
    pub env: Env,
    pub request_id: String,
    /// The request's own origin (`scheme://host[:port]`).
    pub origin: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The request's path and query string, as received (signatures cover it).
    pub target: String,
    pub params: Params,
    pub query: Query,
    pub headers: Headers,
    /// The body; a handler of a large one takes it (`take_body`) once it has parsed it.
    pub(crate) body: RefCell<Vec<u8>>,
    pub now: Millis,
    /// The invocation, for work that continues after the response (`wait_until`).
    pub wctx: Rc<Context>,
    pub(crate) caller: Option<Caller>,
    /// The route's first query, run in the authentication's D1 batch (`app::prefetch_sql`).
    pub(crate) prefetched: RefCell<Option<crate::db::Rows>>,
}

impl Ctx {
    /// The authenticated caller (always present on `Access::User`/`Admin` routes).
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The raw request body (webhook signatures are checked over these exact bytes).
    pub fn raw_body(&self) -> Ref<'_, [u8]> {
        Ref::map(self.body.borrow(), Vec::as_slice)
    }

    /// Takes the body out, so a large one is freed as soon as it has been parsed (a 32 MiB
    /// prompt would otherwise be held until the response, against a 128 MB isolate).
    pub fn take_body(&self) -> Vec<u8> {
        self.body.take()
    }

    /// A request header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    pub fn path_and_query(&self) -> &str {
        &self.target
    }

    /// The worker's public origin: `PUBLIC_URL`, else the request's own origin (webhook and
    /// OAuth callback URLs are built on it).
    pub fn public_origin(&self) -> String {
        crate::config::var(&self.env, "PUBLIC_URL")
            .unwrap_or_else(|| self.origin.clone())
            .trim_end_matches('/')
            .to_string()
    }

    /// Where the browser goes after a sign-in or an OAuth round trip: `FRONTEND_URL`, or else
    /// the console this worker serves itself (contract §15), at its public origin.
    pub fn frontend(&self) -> String {
        crate::config::var(&self.env, "FRONTEND_URL")
            .map_or_else(|| self.public_origin(), |f| f.trim_end_matches('/').to_string())
    }

    /// The result of the route's first query when the pipeline ran it with authentication
    /// (once; `None` after, or when it did not).
    pub fn take_prefetched(&self) -> Option<crate::db::Rows> {
        self.prefetched.borrow_mut().take()
    }

    pub fn db(&self) -> ApiResult<D1Database> {
        Ok(self.env.d1("DB")?)
    }
}
