//! The request pipeline: request id → CORS preflight → route → size limit → auth → handler →
//! envelope and headers. Auth happens here, once, before any handler runs.

use std::rc::Rc;

use futures::StreamExt;
use worker::d1::D1Database;
use worker::{Context, Env, Headers, Request, Response};

use crate::auth::{self, Caller, Role};
use crate::http::input::Query;
use crate::http::router::{self, Access, Match, Params, Route};
use crate::http::{self as h, ApiError, ApiResult, Reply, ReplyBody};
use crate::time::{now_ms, Millis};
use crate::{account, channels, config, credentials, github, integrations, sessions, telegram};

/// Everything a handler gets: the parsed request and the caller.
pub struct Ctx {
    pub env: Env,
    pub request_id: String,
    /// The request's own origin (`scheme://host[:port]`).
    pub origin: String,
    pub params: Params,
    pub query: Query,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub now: Millis,
    /// The invocation, for work that continues after the response (`wait_until`).
    pub wctx: Rc<Context>,
    caller: Option<Caller>,
}

impl Ctx {
    /// The authenticated caller (always present on `Access::User`/`Admin` routes).
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The raw request body (webhook signatures are checked over these exact bytes).
    pub fn raw_body(&self) -> &[u8] {
        &self.body
    }

    /// A request header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    pub fn db(&self) -> ApiResult<D1Database> {
        Ok(self.env.d1("DB")?)
    }
}

async fn dispatch(route: Route, ctx: &Ctx) -> ApiResult<Reply> {
    match route {
        Route::Health => Reply::ok(&serde_json::json!({ "status": "ok", "timestamp": crate::time::iso(ctx.now) })),
        Route::OpenApi => Ok(Reply::raw_json(crate::openapi::DOCUMENT)),
        Route::Me => account::me(ctx).await,
        Route::ListApiTokens => account::list_tokens(ctx).await,
        Route::CreateApiToken => account::create_token(ctx).await,
        Route::RevokeApiToken => account::revoke_token(ctx).await,
        Route::ListCredentials => credentials::list(ctx).await,
        Route::PutCredential => credentials::put(ctx).await,
        Route::DeleteCredential => credentials::delete(ctx).await,
        Route::AdminListUsers => account::list_users(ctx).await,
        Route::CreateSession => sessions::create(ctx).await,
        Route::ListSessions => sessions::list(ctx).await,
        Route::GetSession => sessions::get(ctx).await,
        Route::GetGitState => sessions::get_git_state(ctx).await,
        Route::SessionChildren => sessions::children(ctx).await,
        Route::Orchestrator => sessions::orchestrator(ctx).await,
        Route::SessionMessages => sessions::read(ctx, "messages").await,
        Route::SessionQueue => sessions::read(ctx, "queue").await,
        Route::SessionEvents => sessions::read(ctx, "events").await,
        Route::ClaimPrompt => sessions::claim(ctx).await,
        Route::CompletePrompt => sessions::complete(ctx).await,
        Route::ClearQueue => sessions::clear(ctx, false).await,
        Route::StopSession => sessions::clear(ctx, true).await,
        Route::ListBindings => channels::list_bindings(ctx).await,
        Route::CreateBinding => channels::create_binding(ctx).await,
        Route::UpdateBinding => channels::update_binding(ctx).await,
        Route::DeleteBinding => channels::delete_binding(ctx).await,
        Route::Prompt => channels::prompt(ctx).await,
        Route::GithubLogin => github::oauth::start(ctx).await,
        Route::GithubCallback => github::oauth::callback(ctx).await,
        Route::PutGithubToken => github::token::put(ctx).await,
        Route::DeleteGithubToken => github::token::delete(ctx).await,
        Route::ListRepos => github::proxy::list(ctx).await,
        Route::ValidateRepo => github::proxy::validate(ctx).await,
        Route::RepoPulls => github::proxy::pulls(ctx).await,
        Route::RepoIssues => github::proxy::issues(ctx).await,
        Route::CreatePullRequest => github::proxy::create_pr(ctx).await,
        Route::OrgRepos => github::org_repos::list(ctx).await,
        Route::AdminListRepos => github::org_repos::admin_list(ctx).await,
        Route::AdminCreateRepo => github::org_repos::create(ctx).await,
        Route::AdminUpdateRepo => github::org_repos::update(ctx).await,
        Route::AdminDeleteRepo => github::org_repos::delete(ctx).await,
        Route::AdminSetPersonaDefault => github::org_repos::set_persona(ctx).await,
        Route::AdminClearPersonaDefault => github::org_repos::clear_persona(ctx).await,
        Route::AdminListPersonas => github::org_repos::list_personas(ctx).await,
        Route::AdminCreatePersona => github::org_repos::create_persona(ctx).await,
        Route::AdminDeletePersona => github::org_repos::delete_persona(ctx).await,
        Route::GithubWebhook => github::webhooks::handle(ctx).await,
        Route::TelegramSetup => telegram::setup(ctx).await,
        Route::TelegramGet => telegram::get(ctx).await,
        Route::TelegramDisconnect => telegram::disconnect(ctx).await,
        Route::TelegramWebhook => telegram::webhook::handle(ctx).await,
        Route::SessionReply => telegram::reply::reply(ctx).await,
        Route::ListIntegrations => integrations::list(ctx).await,
        Route::AvailableIntegrations => integrations::available(ctx).await,
        Route::ConfigureIntegration => integrations::configure(ctx).await,
        Route::GetIntegration => integrations::get(ctx).await,
        Route::PatchIntegration => integrations::patch(ctx).await,
        Route::DeleteIntegration => integrations::delete(ctx).await,
        Route::SyncIntegration => integrations::sync(ctx).await,
        Route::SyncStatus => integrations::sync_status(ctx).await,
        Route::IntegrationEntities => integrations::entities(ctx).await,
        Route::IntegrationFetch => integrations::fetch(ctx).await,
        Route::IntegrationPush => integrations::push(ctx).await,
        Route::IntegrationOauth => integrations::oauth_start(ctx).await,
        Route::IntegrationOauthCallback => integrations::oauth_callback(ctx).await,
    }
}

/// Reads the body, refusing more than `limit` bytes without buffering the excess.
async fn read_body(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    if let Some(len) = req.headers().get("Content-Length")?.and_then(|v| v.parse::<usize>().ok()) {
        if len > limit {
            return Err(ApiError::payload_too_large(limit));
        }
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new()); // no body
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn run(mut req: Request, env: Env, wctx: Rc<Context>, request_id: &str) -> ApiResult<Reply> {
    let url = req.url()?;
    let method = req.method().to_string();
    let (def, params) = match router::find(&method, url.path()) {
        Match::Found(def, params) => (def, params),
        Match::MethodNotAllowed(allowed) => return Err(ApiError::method_not_allowed(&allowed)),
        Match::NotFound => return Err(ApiError::route_not_found()),
    };
    if let Some(len) = req.headers().get("Content-Length")?.and_then(|v| v.parse::<usize>().ok()) {
        if len > def.body_limit {
            return Err(ApiError::payload_too_large(def.body_limit));
        }
    }
    let now = now_ms();
    let mut caller = None;
    if def.access != Access::Public {
        let header = req.headers().get("Authorization")?;
        let token = auth::bearer_token(header.as_deref()).ok_or_else(ApiError::unauthorized)?;
        let db = env.d1("DB")?;
        let who = auth::authenticate(&db, token, now).await?;
        if def.access == Access::Admin && who.role != Role::Admin {
            return Err(ApiError::admin_required());
        }
        if auth::needs_touch(who.last_used_at.as_deref(), now) {
            wctx.wait_until(auth::touch(db, who.token_table, who.token_id.clone(), now));
        }
        caller = Some(who);
    }
    let body = match method.as_str() {
        "GET" | "HEAD" | "OPTIONS" => Vec::new(),
        _ => read_body(&mut req, def.body_limit).await?,
    };
    let ctx = Ctx {
        env,
        request_id: request_id.to_string(),
        origin: url.origin().ascii_serialization(),
        params,
        query: Query::parse(url.query()),
        headers: req.headers().clone(),
        body,
        now,
        wctx,
        caller,
    };
    dispatch(def.route, &ctx).await
}

fn preflight(req: &Request) -> bool {
    req.method() == worker::Method::Options
        && req.headers().has("Origin").unwrap_or(false)
        && req.headers().has("Access-Control-Request-Method").unwrap_or(false)
}

/// The Worker's `fetch` handler.
pub async fn handle(req: Request, env: Env, wctx: Context) -> worker::Result<Response> {
    let request_id = h::request_id(req.headers().get("X-Request-Id").ok().flatten().as_deref());
    let origin = req.headers().get("Origin").ok().flatten();
    let frontend = config::var(&env, "FRONTEND_URL");
    let cors_origin = origin.filter(|o| h::cors_allows(o, frontend.as_deref()));

    let reply = if preflight(&req) {
        Reply::no_content()
            .with_header("Access-Control-Allow-Methods", h::CORS_METHODS)
            .with_header("Access-Control-Allow-Headers", h::CORS_HEADERS)
            .with_header("Access-Control-Max-Age", "86400")
    } else {
        match run(req, env, Rc::new(wctx), &request_id).await {
            Ok(reply) => reply,
            Err(err) => {
                if err.status >= 500 {
                    let cause = err.internal.as_deref().unwrap_or(&err.message);
                    config::log_error(&format!("request {request_id} failed: {} {cause}", err.status));
                }
                Reply::error(&err, &request_id)
            }
        }
    };
    respond(reply, &request_id, cors_origin.as_deref())
}

fn respond(reply: Reply, request_id: &str, cors_origin: Option<&str>) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in h::SECURITY_HEADERS {
        headers.set(name, value)?;
    }
    headers.set("X-Request-Id", request_id)?;
    headers.set("Vary", "Origin")?;
    if let Some(origin) = cors_origin {
        headers.set("Access-Control-Allow-Origin", origin)?;
        headers.set("Access-Control-Allow-Credentials", "true")?;
        headers.set("Access-Control-Expose-Headers", "X-Request-Id")?;
    }
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    let resp = match reply.body {
        ReplyBody::Json(text) => {
            headers.set("Content-Type", "application/json; charset=utf-8")?;
            Response::from_bytes(text.into_bytes())?
        }
        ReplyBody::Empty => Response::empty()?,
    };
    Ok(resp.with_status(reply.status).with_headers(headers))
}
