//! The route table and a small matcher. The table is plain data, so a native test can
//! check it against the OpenAPI document (every routed path must be documented).

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    User,
    Admin,
}

/// Every handler the service has. `app.rs` maps each to its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    OpenApi,
    OAuthProtectedResource,
    OAuthAuthorizationServer,
    OAuthRegister,
    OAuthAuthorize,
    OAuthDecide,
    OAuthToken,
    OAuthRevoke,
    ListMcpClients,
    RevokeMcpClient,
    Me,
    ListApiTokens,
    CreateApiToken,
    RevokeApiToken,
    ListCredentials,
    PutCredential,
    DeleteCredential,
    AdminListUsers,
    CreateSession,
    ListSessions,
    GetSession,
    GetGitState,
    PutGitState,
    SessionChildren,
    Orchestrator,
    SessionMessages,
    SessionQueue,
    SessionEvents,
    ClaimPrompt,
    CompletePrompt,
    ClearQueue,
    StopSession,
    ListBindings,
    CreateBinding,
    UpdateBinding,
    DeleteBinding,
    Prompt,
    GithubLogin,
    GithubCallback,
    PutGithubToken,
    DeleteGithubToken,
    ListRepos,
    ValidateRepo,
    RepoPulls,
    RepoIssues,
    CreatePullRequest,
    OrgRepos,
    AdminListRepos,
    AdminCreateRepo,
    AdminUpdateRepo,
    AdminDeleteRepo,
    AdminSetPersonaDefault,
    AdminClearPersonaDefault,
    AdminListPersonas,
    AdminCreatePersona,
    AdminDeletePersona,
    GithubWebhook,
    TelegramSetup,
    TelegramGet,
    TelegramDisconnect,
    TelegramWebhook,
    SessionReply,
    ListIntegrations,
    AvailableIntegrations,
    ConfigureIntegration,
    GetIntegration,
    PatchIntegration,
    DeleteIntegration,
    SyncIntegration,
    SyncStatus,
    SyncHistory,
    SignInProviders,
    IntegrationEntities,
    IntegrationFetch,
    IntegrationPush,
    IntegrationOauth,
    IntegrationOauthCallback,
    IntegrationActions,
    IntegrationAct,
    AdminListProviders,
    AdminPutProvider,
    AdminDeleteProvider,
    AdminTestProvider,
    DiscordWebhook,
    XeroWebhook,
    HubspotWebhook,
    NotionWebhook,
    AdminWebhookInbox,
    AdminOpenNotionWindow,
    AdminNotionVerification,
    AdminConfirmNotionToken,
    AdminForgetNotionToken,
    CreateTrigger,
    ListTriggers,
    DeleteTrigger,
    TriggerDelivery,
    GoogleLogin,
    GoogleCallback,
    AuthExchange,
    AuthLogout,
    ListMySessions,
    RevokeMySession,
    AdminGetOrgSettings,
    AdminPutOrgSettings,
    AdminCreateInvite,
    AdminListInvites,
    AdminDeleteInvite,
    AdminStartReseal,
    AdminResealStatus,
    PromptHeartbeat,
    SlackInstall,
    SlackOauthCallback,
    SlackListWorkspaces,
    SlackDeleteWorkspace,
    SlackEvents,
    SlackLink,
    SlackLinks,
    SlackUnlink,
    IntegrationSearch,
    Search,
    AdminDataPlane,
    MyAudit,
    AdminAudit,
    Mcp,
    GooglePubsubWebhook,
    GoogleCalendarWebhook,
    IntegrationEvents,
}

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;
/// Default request body limit (README, "API").
pub const DEFAULT_BODY_LIMIT: usize = MIB;

pub struct RouteDef {
    pub method: &'static str,
    /// Segments separated by `/`; `:name` captures one segment.
    pub pattern: &'static str,
    pub route: Route,
    pub access: Access,
    pub body_limit: usize,
}

const fn def(method: &'static str, pattern: &'static str, route: Route, access: Access) -> RouteDef {
    RouteDef { method, pattern, route, access, body_limit: DEFAULT_BODY_LIMIT }
}

/// A public, signature-checked provider endpoint with its own body limit.
const fn webhook(pattern: &'static str, route: Route, body_limit: usize) -> RouteDef {
    RouteDef { method: "POST", pattern, route, access: Access::Public, body_limit }
}

/// A public route with any method (user webhook triggers).
const fn public(method: &'static str, pattern: &'static str, route: Route, body_limit: usize) -> RouteDef {
    RouteDef { method, pattern, route, access: Access::Public, body_limit }
}

/// A route whose bodies may be larger than the default (media, provider payloads).
const fn big(method: &'static str, pattern: &'static str, route: Route, body_limit: usize) -> RouteDef {
    RouteDef { method, pattern, route, access: Access::User, body_limit }
}

pub static ROUTES: &[RouteDef] = &[
    def("GET", "/health", Route::Health, Access::Public),
    def("GET", "/openapi.json", Route::OpenApi, Access::Public),
    def("GET", "/api/me", Route::Me, Access::User),
    def("GET", "/api/api-tokens", Route::ListApiTokens, Access::User),
    def("POST", "/api/api-tokens", Route::CreateApiToken, Access::User),
    def("DELETE", "/api/api-tokens/:id", Route::RevokeApiToken, Access::User),
    def("GET", "/api/me/credentials", Route::ListCredentials, Access::User),
    def("PUT", "/api/me/credentials/:service", Route::PutCredential, Access::User),
    def("DELETE", "/api/me/credentials/:service", Route::DeleteCredential, Access::User),
    def("GET", "/api/admin/users", Route::AdminListUsers, Access::Admin),
    def("POST", "/api/sessions", Route::CreateSession, Access::User),
    def("GET", "/api/sessions", Route::ListSessions, Access::User),
    def("GET", "/api/sessions/:id", Route::GetSession, Access::User),
    def("GET", "/api/sessions/:id/git-state", Route::GetGitState, Access::User),
    def("PUT", "/api/sessions/:id/git-state", Route::PutGitState, Access::User),
    def("GET", "/api/sessions/:id/children", Route::SessionChildren, Access::User),
    def("GET", "/api/sessions/:id/messages", Route::SessionMessages, Access::User),
    def("GET", "/api/sessions/:id/queue", Route::SessionQueue, Access::User),
    def("GET", "/api/sessions/:id/events", Route::SessionEvents, Access::User),
    def("POST", "/api/sessions/:id/queue/claim", Route::ClaimPrompt, Access::User),
    def("POST", "/api/sessions/:id/queue/clear", Route::ClearQueue, Access::User),
    big("POST", "/api/sessions/:id/queue/:promptId/complete", Route::CompletePrompt, 2 * MIB),
    def("POST", "/api/sessions/:id/stop", Route::StopSession, Access::User),
    def("POST", "/api/me/orchestrator", Route::Orchestrator, Access::User),
    def("GET", "/api/channels/bindings", Route::ListBindings, Access::User),
    def("POST", "/api/channels/bindings", Route::CreateBinding, Access::User),
    def("PATCH", "/api/channels/bindings/:id", Route::UpdateBinding, Access::User),
    def("DELETE", "/api/channels/bindings/:id", Route::DeleteBinding, Access::User),
    // Prompts may carry up to 25 MB of base64 attachments (a 32 MiB body limit).
    big("POST", "/api/prompt", Route::Prompt, 32 * MIB),
    def("GET", "/auth/github", Route::GithubLogin, Access::Public),
    def("GET", "/auth/github/callback", Route::GithubCallback, Access::Public),
    def("PUT", "/api/me/github-token", Route::PutGithubToken, Access::User),
    def("DELETE", "/api/me/github-token", Route::DeleteGithubToken, Access::User),
    def("GET", "/api/repos", Route::ListRepos, Access::User),
    def("GET", "/api/repos/validate", Route::ValidateRepo, Access::User),
    def("GET", "/api/repos/org", Route::OrgRepos, Access::User),
    def("POST", "/api/repos/pull-request", Route::CreatePullRequest, Access::User),
    def("GET", "/api/repos/:owner/:repo/pulls", Route::RepoPulls, Access::User),
    def("GET", "/api/repos/:owner/:repo/issues", Route::RepoIssues, Access::User),
    def("GET", "/api/admin/repos", Route::AdminListRepos, Access::Admin),
    def("POST", "/api/admin/repos", Route::AdminCreateRepo, Access::Admin),
    def("PUT", "/api/admin/repos/:id", Route::AdminUpdateRepo, Access::Admin),
    def("DELETE", "/api/admin/repos/:id", Route::AdminDeleteRepo, Access::Admin),
    def("PUT", "/api/admin/repos/:id/persona-default", Route::AdminSetPersonaDefault, Access::Admin),
    def("DELETE", "/api/admin/repos/:id/persona-default", Route::AdminClearPersonaDefault, Access::Admin),
    def("GET", "/api/admin/personas", Route::AdminListPersonas, Access::Admin),
    def("POST", "/api/admin/personas", Route::AdminCreatePersona, Access::Admin),
    def("DELETE", "/api/admin/personas/:id", Route::AdminDeletePersona, Access::Admin),
    // GitHub's own maximum payload is 25 MB.
    webhook("/webhooks/github", Route::GithubWebhook, 25 * MIB),
    def("POST", "/api/me/telegram", Route::TelegramSetup, Access::User),
    def("GET", "/api/me/telegram", Route::TelegramGet, Access::User),
    def("DELETE", "/api/me/telegram", Route::TelegramDisconnect, Access::User),
    webhook("/telegram/webhook/:userId", Route::TelegramWebhook, MIB),
    // A reply may carry a photo (Telegram's limit is 10 MB, base64 in JSON).
    big("POST", "/api/sessions/:id/reply", Route::SessionReply, 16 * MIB),
    def("GET", "/api/integrations", Route::ListIntegrations, Access::User),
    def("GET", "/api/integrations/available", Route::AvailableIntegrations, Access::User),
    def("POST", "/api/integrations", Route::ConfigureIntegration, Access::User),
    def("GET", "/api/integrations/:id", Route::GetIntegration, Access::User),
    def("PATCH", "/api/integrations/:id", Route::PatchIntegration, Access::User),
    def("DELETE", "/api/integrations/:id", Route::DeleteIntegration, Access::User),
    def("POST", "/api/integrations/:id/sync", Route::SyncIntegration, Access::User),
    def("GET", "/api/integrations/:id/sync/:syncId", Route::SyncStatus, Access::User),
    def("GET", "/api/integrations/:id/syncs", Route::SyncHistory, Access::User),
    def("GET", "/api/integrations/:id/entities/:type", Route::IntegrationEntities, Access::User),
    def("POST", "/api/integrations/:id/fetch", Route::IntegrationFetch, Access::User),
    def("POST", "/api/integrations/:id/push", Route::IntegrationPush, Access::User),
    def("GET", "/api/integrations/:service/oauth", Route::IntegrationOauth, Access::User),
    def("POST", "/api/integrations/:service/oauth/callback", Route::IntegrationOauthCallback, Access::User),
    def("GET", "/api/integrations/:id/actions", Route::IntegrationActions, Access::User),
    def("POST", "/api/integrations/:id/actions/:name", Route::IntegrationAct, Access::User),
    def("GET", "/api/integrations/:id/search", Route::IntegrationSearch, Access::User),
    def("GET", "/api/search", Route::Search, Access::User),
    def("GET", "/api/admin/data-plane", Route::AdminDataPlane, Access::Admin),
    def("GET", "/api/me/audit", Route::MyAudit, Access::User),
    def("GET", "/api/admin/audit", Route::AdminAudit, Access::Admin),
    // MCP over Streamable HTTP: POST only (no server-sent stream, so GET answers 405).
    def("POST", "/mcp", Route::Mcp, Access::User),
    def("GET", "/.well-known/oauth-protected-resource", Route::OAuthProtectedResource, Access::Public),
    def("GET", "/.well-known/oauth-protected-resource/mcp", Route::OAuthProtectedResource, Access::Public),
    def("GET", "/.well-known/oauth-authorization-server", Route::OAuthAuthorizationServer, Access::Public),
    public("POST", "/oauth/register", Route::OAuthRegister, 16 * 1024),
    def("GET", "/oauth/authorize", Route::OAuthAuthorize, Access::Public),
    public("POST", "/oauth/authorize", Route::OAuthDecide, 16 * 1024),
    public("POST", "/oauth/token", Route::OAuthToken, 16 * 1024),
    public("POST", "/oauth/revoke", Route::OAuthRevoke, 16 * 1024),
    def("GET", "/api/me/mcp-clients", Route::ListMcpClients, Access::User),
    def("DELETE", "/api/me/mcp-clients/:clientId", Route::RevokeMcpClient, Access::User),
    def("GET", "/api/admin/custom-providers", Route::AdminListProviders, Access::Admin),
    def("PUT", "/api/admin/custom-providers/:providerId", Route::AdminPutProvider, Access::Admin),
    def("DELETE", "/api/admin/custom-providers/:providerId", Route::AdminDeleteProvider, Access::Admin),
    def("POST", "/api/admin/custom-providers/:providerId/test", Route::AdminTestProvider, Access::Admin),
    // Realtime push (contract §16): Pub/Sub push bodies are small (a base64 JSON of two fields);
    // Calendar notifications have no body.
    webhook("/webhooks/google/pubsub", Route::GooglePubsubWebhook, 64 * KIB),
    webhook("/webhooks/google/calendar", Route::GoogleCalendarWebhook, 64 * KIB),
    def("GET", "/api/integrations/:id/events", Route::IntegrationEvents, Access::User),
    webhook("/webhooks/discord", Route::DiscordWebhook, MIB),
    webhook("/webhooks/xero", Route::XeroWebhook, MIB),
    webhook("/webhooks/hubspot", Route::HubspotWebhook, MIB),
    webhook("/webhooks/notion", Route::NotionWebhook, MIB),
    def("GET", "/api/admin/webhooks/inbox", Route::AdminWebhookInbox, Access::Admin),
    def("POST", "/api/admin/webhooks/notion/verification", Route::AdminOpenNotionWindow, Access::Admin),
    def("GET", "/api/admin/webhooks/notion/verification", Route::AdminNotionVerification, Access::Admin),
    def("POST", "/api/admin/webhooks/notion/verification/confirm", Route::AdminConfirmNotionToken, Access::Admin),
    def("DELETE", "/api/admin/webhooks/notion/verification-token", Route::AdminForgetNotionToken, Access::Admin),
    def("POST", "/api/webhook-triggers", Route::CreateTrigger, Access::User),
    def("GET", "/api/webhook-triggers", Route::ListTriggers, Access::User),
    def("DELETE", "/api/webhook-triggers/:id", Route::DeleteTrigger, Access::User),
    def("GET", "/auth/google", Route::GoogleLogin, Access::Public),
    def("GET", "/auth/providers", Route::SignInProviders, Access::Public),
    def("GET", "/auth/google/callback", Route::GoogleCallback, Access::Public),
    def("POST", "/auth/exchange", Route::AuthExchange, Access::Public),
    def("POST", "/auth/logout", Route::AuthLogout, Access::User),
    def("GET", "/api/me/sessions", Route::ListMySessions, Access::User),
    def("DELETE", "/api/me/sessions/:id", Route::RevokeMySession, Access::User),
    def("GET", "/api/admin/org-settings", Route::AdminGetOrgSettings, Access::Admin),
    def("PUT", "/api/admin/org-settings", Route::AdminPutOrgSettings, Access::Admin),
    def("POST", "/api/admin/invites", Route::AdminCreateInvite, Access::Admin),
    def("GET", "/api/admin/invites", Route::AdminListInvites, Access::Admin),
    def("DELETE", "/api/admin/invites/:id", Route::AdminDeleteInvite, Access::Admin),
    def("POST", "/api/admin/maintenance/reseal", Route::AdminStartReseal, Access::Admin),
    def("POST", "/api/sessions/:id/queue/:promptId/heartbeat", Route::PromptHeartbeat, Access::User),
    def("GET", "/api/admin/maintenance/reseal", Route::AdminResealStatus, Access::Admin),
    def("GET", "/api/slack/install", Route::SlackInstall, Access::Admin),
    def("GET", "/slack/oauth/callback", Route::SlackOauthCallback, Access::Public),
    def("GET", "/api/slack/workspaces", Route::SlackListWorkspaces, Access::Admin),
    def("DELETE", "/api/slack/workspaces/:teamId", Route::SlackDeleteWorkspace, Access::Admin),
    webhook("/slack/events", Route::SlackEvents, MIB),
    def("POST", "/api/me/slack/link", Route::SlackLink, Access::User),
    def("GET", "/api/me/slack", Route::SlackLinks, Access::User),
    def("DELETE", "/api/me/slack/:teamId", Route::SlackUnlink, Access::User),
    // User triggers: anything else under /webhooks/ (after the providers above).
    public("POST", "/webhooks/*path", Route::TriggerDelivery, MIB),
    public("PUT", "/webhooks/*path", Route::TriggerDelivery, MIB),
    public("PATCH", "/webhooks/*path", Route::TriggerDelivery, MIB),
];

/// Path parameters captured by a match, percent-decoded.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

pub enum Match {
    Found(&'static RouteDef, Params),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(Params(params)),
            (Some(p), Some(s)) => {
                // `*name` (last) captures the rest of the path, undecoded.
                if let Some(name) = p.strip_prefix('*') {
                    let rest: Vec<&str> = std::iter::once(s).chain(segs.by_ref()).collect();
                    if rest.iter().any(|r| r.is_empty()) {
                        return None;
                    }
                    params.push((name, rest.join("/")));
                    return Some(Params(params));
                }
                if let Some(name) = p.strip_prefix(':') {
                    if s.is_empty() {
                        return None;
                    }
                    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
                    params.push((name, decoded.into_owned()));
                } else if p != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path` (a trailing slash is ignored; HEAD is GET).
pub fn find(method: &str, path: &str) -> Match {
    let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
    let method = if method == "HEAD" { "GET" } else { method };
    let mut allowed = Vec::new();
    for def in ROUTES {
        if let Some(params) = match_pattern(def.pattern, path) {
            if def.method == method {
                return Match::Found(def, params);
            }
            allowed.push(def.method);
        }
    }
    if allowed.is_empty() {
        Match::NotFound
    } else {
        allowed.push("OPTIONS");
        Match::MethodNotAllowed(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn matches_params_and_methods() {
        match find("DELETE", "/api/api-tokens/abc%20d") {
            Match::Found(def, params) => {
                assert_eq!(def.route, Route::RevokeApiToken);
                assert_eq!(params.get("id"), "abc d");
            }
            _ => panic!("expected a match"),
        }
        assert!(matches!(find("GET", "/api/me/"), Match::Found(d, _) if d.route == Route::Me));
        assert!(matches!(find("HEAD", "/health"), Match::Found(d, _) if d.route == Route::Health));
        match find("PATCH", "/api/api-tokens") {
            Match::MethodNotAllowed(m) => assert_eq!(m, ["GET", "POST", "OPTIONS"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(find("GET", "/api/nope"), Match::NotFound));
        assert!(matches!(find("DELETE", "/api/api-tokens/"), Match::MethodNotAllowed(_)));
        assert!(matches!(find("GET", "/api/me/credentials/x/y"), Match::NotFound));
        // Providers win over the triggers' catch-all; the catch-all takes the rest of the path.
        assert!(matches!(find("POST", "/webhooks/discord"), Match::Found(d, _) if d.route == Route::DiscordWebhook));
        match find("POST", "/webhooks/deploys/prod-1") {
            Match::Found(def, params) => {
                assert_eq!((def.route, params.get("path")), (Route::TriggerDelivery, "deploys/prod-1"))
            }
            _ => panic!("expected the trigger route"),
        }
        assert!(matches!(find("POST", "/webhooks/a//b"), Match::NotFound));
    }

    fn openapi_path(pattern: &str) -> String {
        pattern
            .split('/')
            .map(|s| s.strip_prefix([':', '*']).map(|n| format!("{{{n}}}")).unwrap_or_else(|| s.to_string()))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Fails when a routed path is missing from `/openapi.json`, or documented but not routed.
    #[test]
    fn openapi_documents_every_route() {
        let doc: Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for def in ROUTES {
            let p = openapi_path(def.pattern);
            let op =
                &paths.get(&p).unwrap_or_else(|| panic!("{p} missing from openapi.json"))[def.method.to_lowercase()];
            assert!(op.is_object(), "{} {p} missing from openapi.json", def.method);
            assert!(op["responses"].is_object(), "{} {p} has no responses", def.method);
            let secured = op.get("security").map(|s| s.as_array().map(|a| !a.is_empty()).unwrap_or(false));
            match def.access {
                Access::Public => assert_eq!(secured, Some(false), "{} {p} must declare security: []", def.method),
                _ => assert_ne!(secured, Some(false), "{} {p} is authenticated", def.method),
            }
        }
        for (p, item) in paths {
            for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                let routed =
                    ROUTES.iter().any(|d| openapi_path(d.pattern) == *p && d.method.eq_ignore_ascii_case(method));
                assert!(routed, "{method} {p} is documented but not routed");
            }
        }
    }
}
