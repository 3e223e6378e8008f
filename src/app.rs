//! The request pipeline: request id → CORS preflight → route → size limit → auth → handler →
//! envelope and headers. Auth happens here, once, before any handler runs.

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use futures::StreamExt;
use wasm_bindgen::prelude::*;
use worker::{web_sys, Context, Env};

use crate::auth;
use crate::http::input::Query;
use crate::http::router::{self, Access, Match, Route};
use crate::http::Role;
use crate::http::{self as h, ApiError, ApiResult, Ctx, Reply, ReplyBody};
use crate::limits::{self, Limit};
use crate::time::now_ms;
use crate::{
    access, account, channels, config, credentials, github, integrations, maintenance, mcp, providers, sessions,
    signin, slack, telegram, webhooks,
};

/// Each handler's future is boxed: one small state machine per route instead of one enum
/// holding all of them (which made a single 165 KB function in the Wasm binary).
fn dispatch<'a>(route: Route, ctx: &'a Ctx) -> LocalBoxFuture<'a, ApiResult<Reply>> {
    match route {
        Route::Health => Box::pin(async move {
            Reply::ok(&serde_json::json!({ "status": "ok", "timestamp": crate::time::iso(ctx.now) }))
        }),
        Route::OpenApi => Box::pin(async { Ok(Reply::raw_json(crate::openapi::DOCUMENT)) }),
        Route::Me => Box::pin(account::me(ctx)),
        Route::ListApiTokens => Box::pin(account::list_tokens(ctx)),
        Route::CreateApiToken => Box::pin(account::create_token(ctx)),
        Route::RevokeApiToken => Box::pin(account::revoke_token(ctx)),
        Route::ListCredentials => Box::pin(credentials::list(ctx)),
        Route::PutCredential => Box::pin(credentials::put(ctx)),
        Route::DeleteCredential => Box::pin(credentials::delete(ctx)),
        Route::AdminListUsers => Box::pin(account::list_users(ctx)),
        Route::CreateSession => Box::pin(sessions::routes::create(ctx)),
        Route::ListSessions => Box::pin(sessions::routes::list(ctx)),
        Route::GetSession => Box::pin(sessions::routes::get(ctx)),
        Route::GetGitState => Box::pin(sessions::routes::get_git_state(ctx)),
        Route::PutGitState => Box::pin(sessions::routes::put_git_state(ctx)),
        Route::SessionChildren => Box::pin(sessions::routes::children(ctx)),
        Route::Orchestrator => Box::pin(sessions::routes::orchestrator(ctx)),
        Route::SessionMessages => Box::pin(sessions::routes::read(ctx, "messages")),
        Route::SessionQueue => Box::pin(sessions::routes::read(ctx, "queue")),
        Route::SessionEvents => Box::pin(sessions::routes::read(ctx, "events")),
        Route::ClaimPrompt => Box::pin(sessions::routes::claim(ctx)),
        Route::CompletePrompt => Box::pin(sessions::routes::complete(ctx)),
        Route::ClearQueue => Box::pin(sessions::routes::clear(ctx, false)),
        Route::StopSession => Box::pin(sessions::routes::clear(ctx, true)),
        Route::ListBindings => Box::pin(channels::routes::list_bindings(ctx)),
        Route::CreateBinding => Box::pin(channels::routes::create_binding(ctx)),
        Route::UpdateBinding => Box::pin(channels::routes::update_binding(ctx)),
        Route::DeleteBinding => Box::pin(channels::routes::delete_binding(ctx)),
        Route::Prompt => Box::pin(channels::routes::prompt(ctx)),
        Route::GithubLogin | Route::GoogleLogin => Box::pin(signin::start(ctx)),
        Route::GithubCallback | Route::GoogleCallback => Box::pin(signin::callback(ctx)),
        Route::AuthExchange => Box::pin(signin::exchange(ctx)),
        Route::AuthLogout => Box::pin(signin::logout(ctx)),
        Route::ListMySessions => Box::pin(signin::sessions(ctx)),
        Route::RevokeMySession => Box::pin(signin::revoke_session(ctx)),
        Route::AdminGetOrgSettings => Box::pin(access::get_settings(ctx)),
        Route::AdminPutOrgSettings => Box::pin(access::put_settings(ctx)),
        Route::AdminCreateInvite => Box::pin(access::create_invite(ctx)),
        Route::AdminListInvites => Box::pin(access::list_invites(ctx)),
        Route::AdminDeleteInvite => Box::pin(access::delete_invite(ctx)),
        Route::AdminStartReseal => Box::pin(maintenance::start_reseal(ctx)),
        Route::AdminResealStatus => Box::pin(maintenance::reseal_status(ctx)),
        Route::PromptHeartbeat => Box::pin(sessions::routes::heartbeat(ctx)),
        Route::PutGithubToken => Box::pin(github::token::put(ctx)),
        Route::DeleteGithubToken => Box::pin(github::token::delete(ctx)),
        Route::ListRepos => Box::pin(github::proxy::list(ctx)),
        Route::ValidateRepo => Box::pin(github::proxy::validate(ctx)),
        Route::RepoPulls => Box::pin(github::proxy::pulls(ctx)),
        Route::RepoIssues => Box::pin(github::proxy::issues(ctx)),
        Route::CreatePullRequest => Box::pin(github::proxy::create_pr(ctx)),
        Route::OrgRepos => Box::pin(github::org_repos::list(ctx)),
        Route::AdminListRepos => Box::pin(github::org_repos::admin_list(ctx)),
        Route::AdminCreateRepo => Box::pin(github::org_repos::create(ctx)),
        Route::AdminUpdateRepo => Box::pin(github::org_repos::update(ctx)),
        Route::AdminDeleteRepo => Box::pin(github::org_repos::delete(ctx)),
        Route::AdminSetPersonaDefault => Box::pin(github::org_repos::set_persona(ctx)),
        Route::AdminClearPersonaDefault => Box::pin(github::org_repos::clear_persona(ctx)),
        Route::AdminListPersonas => Box::pin(github::org_repos::list_personas(ctx)),
        Route::AdminCreatePersona => Box::pin(github::org_repos::create_persona(ctx)),
        Route::AdminDeletePersona => Box::pin(github::org_repos::delete_persona(ctx)),
        Route::GithubWebhook => Box::pin(github::webhooks::handle(ctx)),
        Route::TelegramSetup => Box::pin(telegram::setup(ctx)),
        Route::TelegramGet => Box::pin(telegram::get(ctx)),
        Route::TelegramDisconnect => Box::pin(telegram::disconnect(ctx)),
        Route::TelegramWebhook => Box::pin(telegram::webhook::handle(ctx)),
        Route::SessionReply => Box::pin(channels::delivery::reply(ctx)),
        Route::ListIntegrations => Box::pin(integrations::routes::list(ctx)),
        Route::AvailableIntegrations => Box::pin(integrations::routes::available(ctx)),
        Route::ConfigureIntegration => Box::pin(integrations::routes::configure(ctx)),
        Route::GetIntegration => Box::pin(integrations::routes::get(ctx)),
        Route::PatchIntegration => Box::pin(integrations::routes::patch(ctx)),
        Route::DeleteIntegration => Box::pin(integrations::routes::delete(ctx)),
        Route::SyncIntegration => Box::pin(integrations::routes::sync(ctx)),
        Route::SyncStatus => Box::pin(integrations::routes::sync_status(ctx)),
        Route::SignInProviders => Box::pin(async { crate::signin::providers(ctx) }),
        Route::SyncHistory => Box::pin(integrations::routes::sync_history(ctx)),
        Route::IntegrationEntities => Box::pin(integrations::routes::entities(ctx)),
        Route::IntegrationFetch => Box::pin(integrations::routes::fetch(ctx)),
        Route::IntegrationPush => Box::pin(integrations::routes::push(ctx)),
        Route::IntegrationOauth => Box::pin(integrations::routes::oauth_start(ctx)),
        Route::IntegrationOauthCallback => Box::pin(integrations::routes::oauth_callback(ctx)),
        Route::IntegrationActions => Box::pin(integrations::routes::actions(ctx)),
        Route::IntegrationAct => Box::pin(integrations::routes::act(ctx)),
        Route::IntegrationSearch => Box::pin(integrations::routes::search(ctx)),
        Route::Search => Box::pin(integrations::routes::search_all(ctx)),
        Route::AdminDataPlane => Box::pin(integrations::routes::data_plane(ctx)),
        Route::MyAudit => Box::pin(integrations::audit::mine(ctx)),
        Route::AdminAudit => Box::pin(integrations::audit::all(ctx)),
        Route::Mcp => Box::pin(mcp::handle(ctx)),
        Route::OAuthProtectedResource => Box::pin(mcp::oauth::protected_resource(ctx)),
        Route::OAuthAuthorizationServer => Box::pin(mcp::oauth::authorization_server(ctx)),
        Route::OAuthRegister => Box::pin(mcp::oauth::register(ctx)),
        Route::OAuthAuthorize => Box::pin(mcp::oauth::authorize(ctx)),
        Route::OAuthDecide => Box::pin(mcp::oauth::decide(ctx)),
        Route::OAuthToken => Box::pin(mcp::oauth::token(ctx)),
        Route::OAuthRevoke => Box::pin(mcp::oauth::revoke(ctx)),
        Route::ListMcpClients => Box::pin(mcp::oauth::list_clients(ctx)),
        Route::RevokeMcpClient => Box::pin(mcp::oauth::revoke_client(ctx)),
        Route::GooglePubsubWebhook => Box::pin(integrations::realtime::push::pubsub(ctx)),
        Route::GoogleCalendarWebhook => Box::pin(integrations::realtime::push::calendar(ctx)),
        Route::IntegrationEvents => Box::pin(integrations::realtime::health::list(ctx)),
        Route::AdminListProviders => Box::pin(providers::list(ctx)),
        Route::AdminPutProvider => Box::pin(providers::upsert(ctx)),
        Route::AdminDeleteProvider => Box::pin(providers::delete(ctx)),
        Route::AdminTestProvider => Box::pin(providers::test(ctx)),
        Route::DiscordWebhook => Box::pin(webhooks::discord(ctx)),
        Route::XeroWebhook => Box::pin(webhooks::xero(ctx)),
        Route::HubspotWebhook => Box::pin(webhooks::hubspot(ctx)),
        Route::NotionWebhook => Box::pin(webhooks::notion::webhook(ctx)),
        Route::AdminWebhookInbox => Box::pin(webhooks::inbox(ctx)),
        Route::AdminOpenNotionWindow => Box::pin(webhooks::notion::open_window(ctx)),
        Route::AdminNotionVerification => Box::pin(webhooks::notion::verification(ctx)),
        Route::AdminConfirmNotionToken => Box::pin(webhooks::notion::confirm(ctx)),
        Route::AdminForgetNotionToken => Box::pin(webhooks::notion::forget(ctx)),
        Route::CreateTrigger => Box::pin(webhooks::triggers::create(ctx)),
        Route::ListTriggers => Box::pin(webhooks::triggers::list(ctx)),
        Route::DeleteTrigger => Box::pin(webhooks::triggers::delete(ctx)),
        Route::TriggerDelivery => Box::pin(webhooks::triggers::deliver(ctx)),
        Route::SlackInstall => Box::pin(slack::install(ctx)),
        Route::SlackOauthCallback => Box::pin(slack::oauth_callback(ctx)),
        Route::SlackListWorkspaces => Box::pin(slack::list_workspaces(ctx)),
        Route::SlackDeleteWorkspace => Box::pin(slack::delete_workspace(ctx)),
        Route::SlackEvents => Box::pin(slack::events::handle(ctx)),
        Route::SlackLink => Box::pin(slack::link(ctx)),
        Route::SlackLinks => Box::pin(slack::links(ctx)),
        Route::SlackUnlink => Box::pin(slack::unlink(ctx)),
    }
}

/// A route's first query that runs in the same D1 batch as authentication (one round trip
/// instead of two): SQL over the token hash `?1` and the time `?2` that selects from
/// `WITH caller AS (caller_sql!())`.
fn prefetch_sql(route: Route) -> Option<&'static str> {
    match route {
        Route::ListIntegrations => Some(integrations::store::LIST_WITH_CALLER),
        _ => None,
    }
}

/// Bodies up to this size are read in one `arrayBuffer()` call; larger ones stream, so a 32 MiB
/// prompt never sits whole in the JS heap beside its copy in Wasm memory (128 MB per isolate).
const WHOLE_BODY_MAX: usize = 1 << 20;

/// Reads the body, refusing more than `limit` bytes without buffering the excess.
async fn read_body(req: &web_sys::Request, headers: &worker::Headers, limit: usize) -> ApiResult<Vec<u8>> {
    let declared = headers.get("Content-Length")?.and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared {
        if len > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        if len <= WHOLE_BODY_MAX {
            // The runtime delivers exactly Content-Length bytes: one call and one copy (measured:
            // a 7.5 KB webhook read chunk by chunk spent 0.25 ms in reader calls).
            let read = req.array_buffer().map_err(worker::Error::from)?;
            let buffer = worker::wasm_bindgen_futures::JsFuture::from(read).await.map_err(worker::Error::from)?;
            return Ok(worker::js_sys::Uint8Array::new(&buffer).to_vec());
        }
    }
    // A large or chunked body: read as it comes, refused once past the limit.
    let Some(stream) = req.body() else {
        return Ok(Vec::new());
    };
    let mut stream = worker::ByteStream::from(stream);
    // Sized from Content-Length up front: growing by doubling would briefly hold 1.5 times a
    // large body.
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn run(
    req: web_sys::Request,
    headers: worker::Headers,
    env: Env,
    wctx: Rc<Context>,
    request_id: &str,
) -> ApiResult<Reply> {
    // The runtime's Request as it is: workers-rs's own `Request` would also read `cf` (an
    // object built per access) and copy the URL and method, on every request.
    let href = req.url();
    let url = h::RequestUrl::split(&href);
    let method = req.method();
    let (def, params) = match router::find(&method, url.path) {
        Match::Found(def, params) => (def, params),
        Match::MethodNotAllowed(allowed) => return Err(ApiError::method_not_allowed(&allowed)),
        Match::NotFound => return Err(ApiError::route_not_found()),
    };
    if let Some(len) = headers.get("Content-Length")?.and_then(|v| v.parse::<usize>().ok()) {
        if len > def.body_limit {
            return Err(ApiError::payload_too_large(def.body_limit));
        }
    }
    if def.route == Route::Mcp {
        // DNS-rebinding guard of the MCP transport: a browser's Origin must be one we trust.
        if let Some(origin) = headers.get("Origin")? {
            let (frontend, public) = (config::var(&env, "FRONTEND_URL"), config::var(&env, "PUBLIC_URL"));
            if !mcp::origin_allowed(&origin, frontend.as_deref(), public.as_deref()) {
                return Err(ApiError::new(403, "ORIGIN_NOT_ALLOWED", "Requests from this Origin are not allowed"));
            }
        }
    }
    let now = now_ms();
    let mut caller = None;
    let mut prefetched = None;
    if def.access != Access::Public {
        // RFC 9110 §11.6.1: a 401 names the scheme; `/mcp`'s also points to its resource
        // metadata (RFC 9728 §5.1), where MCP clients find how to get a token.
        let public = config::var(&env, "PUBLIC_URL").unwrap_or_else(|| url.origin.to_string());
        let public = public.trim_end_matches('/');
        let header = headers.get("Authorization")?;
        let given = header.is_some();
        let challenge = |e: ApiError| {
            let value =
                if def.route == Route::Mcp { mcp::oauth::challenge(public, given) } else { "Bearer".to_string() };
            e.with_header("WWW-Authenticate", value)
        };
        let token = auth::bearer_token(header.as_deref()).ok_or_else(|| challenge(ApiError::unauthorized()))?;
        // Failed bearer authentications are limited per client IP; an IP over the limit is
        // refused here for a while, before it costs a D1 query.
        let ip = headers.get("CF-Connecting-IP")?.unwrap_or_else(|| "unknown".into());
        if limits::blocked(&ip, now) {
            return Err(limits::too_many(Limit::AuthFailures));
        }
        let db = env.d1("DB")?;
        let found = if def.route == Route::Mcp {
            // OAuth access tokens issued for this resource count here, and nowhere else.
            auth::authenticate_mcp(&db, token, now, &format!("{public}/mcp")).await.map(|c| (c, None))
        } else {
            auth::authenticate_with(&db, token, now, prefetch_sql(def.route)).await
        };
        let who = match found {
            Ok((who, first)) => {
                prefetched = first;
                who
            }
            Err(e) if e.status == 401 => {
                if !limits::allow(&env, Limit::AuthFailures, &ip).await {
                    limits::block(&ip, now);
                    return Err(limits::too_many(Limit::AuthFailures));
                }
                return Err(challenge(e));
            }
            Err(e) => return Err(e),
        };
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
        _ => read_body(&req, &headers, def.body_limit).await?,
    };
    let ctx = Ctx {
        env,
        request_id: request_id.to_string(),
        origin: url.origin.to_string(),
        method: method.clone(),
        target: url.target.to_string(),
        params,
        query: Query::parse(url.query),
        // The request's own (immutable) Headers object, shared: `Headers::clone` would copy
        // every header through JS.
        headers,
        body: std::cell::RefCell::new(body),
        now,
        wctx,
        caller,
        prefetched: std::cell::RefCell::new(prefetched),
    };
    dispatch(def.route, &ctx).await
}

/// Paths answered to any origin (see `handle`).
fn open_cors(href: &str) -> bool {
    let path = h::RequestUrl::split(href).path;
    path.starts_with("/.well-known/oauth-") || matches!(path, "/oauth/token" | "/oauth/register" | "/oauth/revoke")
}

fn preflight(req: &web_sys::Request, headers: &web_sys::Headers) -> bool {
    req.method() == "OPTIONS"
        && headers.has("Origin").unwrap_or(false)
        && headers.has("Access-Control-Request-Method").unwrap_or(false)
}

/// The Worker's `fetch` handler.
pub async fn handle(req: web_sys::Request, env: Env, wctx: Context) -> worker::Result<web_sys::Response> {
    let headers = req.headers();
    let request_id = h::request_id(headers.get("X-Request-Id").ok().flatten().as_deref());
    // FRONTEND_URL is read only when there is an Origin to check (most API calls have none).
    let origin = headers.get("Origin").ok().flatten();
    // The OAuth server's metadata, registration, token and revocation endpoints take no cookie
    // and answer any origin (browser-based MCP clients call them cross-origin): `*`.
    let open = open_cors(&req.url());
    let cors_origin = origin.filter(|o| !open && h::cors_allows(o, config::var(&env, "FRONTEND_URL").as_deref()));

    // The console's pages (its other files are static assets, answered before the worker).
    let method = req.method();
    if matches!(method.as_str(), "GET" | "HEAD") && crate::console::is_page(h::RequestUrl::split(&req.url()).path) {
        match crate::console::page(&env, method == "HEAD").await {
            Ok(page) => return Ok(page),
            Err(e) => config::log_error(&format!("request {request_id}: the console page failed: {e}")),
        }
    }
    let reply = if preflight(&req, &headers) {
        let reply = Reply::no_content()
            .with_header("Access-Control-Allow-Methods", h::CORS_METHODS)
            .with_header("Access-Control-Allow-Headers", h::CORS_HEADERS)
            .with_header("Access-Control-Max-Age", "86400");
        if open {
            reply.with_header("Access-Control-Allow-Origin", "*")
        } else {
            reply
        }
    } else {
        match run(req, worker::Headers(headers), env, Rc::new(wctx), &request_id).await {
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
    // Test builds report the Wasm memory, which never shrinks: its size is this instance's peak
    // so far, and the tests measure the largest prompt's footprint with it.
    #[cfg(feature = "fault-injection")]
    let reply = reply.with_header("X-Test-Wasm-Memory", crate::faults::wasm_memory().to_string());
    respond(reply, &request_id, cors_origin.as_deref())
}

// The response in one boundary crossing: status, body text and the reply's headers as one
// NUL-separated string (NUL cannot occur in a header name or value), instead of a JS call per
// header, a Uint8Array copy and a ResponseInit built field by field. The security headers every
// answer carries are parsed into a `Headers` once per isolate and copied natively
// (`new Headers(base)`); `base` is the same JS string on every call, so the check is one
// pointer comparison.
#[wasm_bindgen(inline_js = "let baseText, base;
function parse(h, text) {
  const p = text.split('\\0');
  for (let i = 0; i + 1 < p.length; i += 2) h.set(p[i], p[i + 1]);
  return h;
}
export function respond_js(status, body, baseBlock, headers) {
  if (baseBlock !== baseText) { base = parse(new Headers(), baseBlock); baseText = baseBlock; }
  return new Response(body, { status, headers: parse(new Headers(base), headers) });
}")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn respond_js(
        status: u16,
        body: Option<String>,
        base: &JsValue,
        headers: &str,
    ) -> Result<web_sys::Response, JsValue>;
}

/// `h::SECURITY_HEADERS` as `name\0value\0…`.
fn security_block() -> String {
    h::SECURITY_HEADERS.iter().flat_map(|(n, v)| [*n, "\0", *v, "\0"]).collect()
}

thread_local! {
    /// The security block as one JS string, made once per isolate.
    static SECURITY_BLOCK: JsValue = JsValue::from_str(&security_block());
}

/// The headers of an answer after the security headers, in order (a later name replaces an
/// earlier one, as `Headers.set` does), as `name\0value\0…`.
fn header_block(reply: &Reply, request_id: &str, cors_origin: Option<&str>) -> worker::Result<String> {
    let mut block = String::with_capacity(256);
    let mut add = |name: &str, value: &str| -> worker::Result<()> {
        if value.contains('\0') {
            return Err(worker::Error::RustError(format!("invalid value for header {name}")));
        }
        block.push_str(name);
        block.push('\0');
        block.push_str(value);
        block.push('\0');
        Ok(())
    };
    add("X-Request-Id", request_id)?;
    add("Vary", "Origin")?;
    if let Some(origin) = cors_origin {
        add("Access-Control-Allow-Origin", origin)?;
        add("Access-Control-Allow-Credentials", "true")?;
        add("Access-Control-Expose-Headers", "X-Request-Id")?;
    }
    for (name, value) in &reply.headers {
        add(name, value)?;
    }
    match reply.body {
        ReplyBody::Json(_) => add("Content-Type", "application/json; charset=utf-8")?,
        ReplyBody::Html(_) => add("Content-Type", "text/html; charset=utf-8")?,
        ReplyBody::Empty => {}
    }
    Ok(block)
}

fn respond(reply: Reply, request_id: &str, cors_origin: Option<&str>) -> worker::Result<web_sys::Response> {
    let headers = header_block(&reply, request_id, cors_origin)?;
    let body = match reply.body {
        ReplyBody::Json(text) | ReplyBody::Html(text) => Some(text),
        ReplyBody::Empty => None,
    };
    Ok(SECURITY_BLOCK.with(|base| respond_js(reply.status, body, base, &headers))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(block: &str) -> Vec<(&str, &str)> {
        let parts: Vec<&str> = block.split('\0').collect();
        assert_eq!(parts.last(), Some(&""), "ends with a separator");
        parts[..parts.len() - 1].chunks(2).map(|c| (c[0], c[1])).collect()
    }

    #[test]
    fn one_header_block_per_answer() {
        let reply = Reply::ok(&serde_json::json!({ "a": 1 })).unwrap().with_header("Cache-Control", "max-age=5");
        // The security headers come first (the copied base), the reply's after them.
        assert_eq!(pairs(&security_block()), &h::SECURITY_HEADERS[..]);
        let block = header_block(&reply, "req-1", Some("https://app.example.com")).unwrap();
        assert_eq!(
            pairs(&block),
            [
                ("X-Request-Id", "req-1"),
                ("Vary", "Origin"),
                ("Access-Control-Allow-Origin", "https://app.example.com"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Expose-Headers", "X-Request-Id"),
                // After the defaults, so `Headers.set` lets the reply's own value win.
                ("Cache-Control", "max-age=5"),
                ("Content-Type", "application/json; charset=utf-8"),
            ]
        );
        let empty = header_block(&Reply::no_content(), "r", None).unwrap();
        assert!(pairs(&empty).iter().all(|(name, _)| *name != "Content-Type" && !name.starts_with("Access-Control")));
        assert!(header_block(&Reply::no_content().with_header("Location", "a\0b"), "r", None).is_err());
    }
}
