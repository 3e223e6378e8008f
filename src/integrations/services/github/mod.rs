//! The GitHub integration: repositories, and the issues, pull requests and commits of each
//! repository, synced one page (one request) at a time; fetch; five actions; entity updates
//! from webhook deliveries. Tokens come through `Conn::tokens`: a GitHub App's user tokens
//! expire (after eight hours) and are refreshed inside `API_KEYS` like Google's.

pub mod actions;
pub mod sync;

use serde_json::{json, Value};

use crate::config::base_url;
use crate::github::client::{GhError, GitHub};
use crate::integrations::service::{
    string_list, Action, Conn, Credentials, Filter, Item, OAuth, Outcome, Page, PageRequest, Parent, Revocation,
    ServiceError, ServiceImpl,
};
use crate::outbound::segment;
use crate::outbound::Upstream;
use actions::act;
use sync::{fetch, issue_item, pull_item, repo_item, sync_page};

pub struct GitHubService;

const ENTITIES: [&str; 4] = ["repositories", "issues", "pull_requests", "commits"];
const PER_PAGE: u32 = 100;

static ACTIONS: [Action; 5] = [
    Action {
        name: "get_repository",
        description: "Read a repository (owner/name) the connected account can see.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""repository": {"type": "string", "minLength": 3, "maxLength": 200, "description": "owner/name"}"#,
            r#"}, "required": ["repository"], "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "get_issue",
        description: "Read one issue of a repository by number.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""repository": {"type": "string", "minLength": 3, "maxLength": 200, "description": "owner/name"}"#,
            r#", "number": {"type": "integer", "minimum": 1}}, "required": ["repository", "number"], "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "get_pull_request",
        description: "Read one pull request of a repository by number.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""repository": {"type": "string", "minLength": 3, "maxLength": 200, "description": "owner/name"}"#,
            r#", "number": {"type": "integer", "minimum": 1}}, "required": ["repository", "number"], "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "create_issue",
        description: "Open an issue; answers its number, title, URL and state.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""repository": {"type": "string", "minLength": 3, "maxLength": 200, "description": "owner/name"}"#,
            r#", "title": {"type": "string", "minLength": 1, "maxLength": 256}, "body": {"type": "string", "maxLength": 65536}, "labels": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}, "maxItems": 100}, "assignees": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 39}, "maxItems": 10}}, "required": ["repository", "title"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "comment",
        description: "Comment on an issue or a pull request; answers the comment's id and URL.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""repository": {"type": "string", "minLength": 3, "maxLength": 200, "description": "owner/name"}"#,
            r#", "number": {"type": "integer", "minimum": 1}, "body": {"type": "string", "minLength": 1, "maxLength": 65536}}, "required": ["repository", "number", "body"], "additionalProperties": false}"#
        ),
        write: true,
    },
];

/// `filters.repositories`: an allow-list of `owner/name`; other repositories are not synced.
static FILTERS: [Filter; 1] = [Filter { name: "repositories", check: check_repositories }];

fn check_repositories(v: &Value) -> Result<(), String> {
    let valid = |r: &str| crate::github::repo::RepoRef::parse_full_name(r).is_some();
    string_list(v, 100, 200, valid, "repositories (owner/name)").map(|_| ())
}

static OAUTH: OAuth = OAuth {
    display: "GitHub",
    authorize_base: ("GITHUB_WEB_URL", "https://github.com"),
    authorize_path: "/login/oauth/authorize",
    token_url: ("GITHUB_WEB_URL", "https://github.com"),
    token_path: "/login/oauth/access_token",
    client_id_var: "GITHUB_CLIENT_ID",
    client_secret_var: "GITHUB_CLIENT_SECRET",
    scopes: &["repo", "read:user", "read:org"],
    scope_separator: " ",
    extra: &[],
    // GitHub Apps with expiring user tokens answer `expires_in` and a `refresh_token`; an
    // OAuth app's tokens do not expire and carry none (nothing is refreshed then).
    refresh: true,
    revoke: Some(Revocation::GitHubGrant { api: ("GITHUB_API_URL", "https://api.github.com") }),
};

fn token(creds: &Credentials) -> Option<&str> {
    creds.get("access_token").or_else(|| creds.get("token")).map(String::as_str).filter(|t| !t.is_empty())
}

/// GitHub with the integration's current token; a 401 is tried once more with a refreshed one
/// (an expiring user token GitHub refused early), and answers `Auth` when there is none.
pub(super) struct Client<'a> {
    c: &'a Conn<'a>,
    api: String,
}

fn client<'a>(c: &'a Conn<'a>) -> Client<'a> {
    Client { c, api: base_url(c.vars, "GITHUB_API_URL", "https://api.github.com") }
}

impl Client<'_> {
    async fn once(&self, token: &str, path: &str, body: Option<&Value>) -> Result<Upstream, GhError> {
        let gh = GitHub::over(self.c.http, &self.api, token);
        match body {
            Some(b) => gh.post(path, b).await,
            None => gh.get(path).await,
        }
    }

    async fn send(&self, path: &str, body: Option<&Value>) -> Result<Upstream, ServiceError> {
        let token = self.c.tokens.access().await?;
        match self.once(&token, path, body).await {
            Err(GhError::Status(401, _)) => {
                let fresh = self.c.tokens.refreshed(&token).await?;
                self.once(&fresh, path, body).await.map_err(map_err)
            }
            other => other.map_err(map_err),
        }
    }

    pub(super) async fn get(&self, path: &str) -> Result<Upstream, ServiceError> {
        self.send(path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: &Value) -> Result<Upstream, ServiceError> {
        self.send(path, Some(body)).await
    }
}

fn map_err(e: GhError) -> ServiceError {
    match e {
        GhError::RateLimited(s) => ServiceError::RateLimited(s),
        GhError::Status(401, m) => ServiceError::Auth(format!("GitHub rejected the credentials: {m}")),
        GhError::Status(404, _) => ServiceError::NotFound("Not found on GitHub".into()),
        GhError::Status(422, m) => ServiceError::Invalid(format!("GitHub refused the request: {m}")),
        GhError::Status(status, message) => ServiceError::Upstream { status, message: format!("GitHub: {message}") },
        GhError::Transport(m) => ServiceError::Transport(format!("GitHub unreachable: {m}")),
    }
}

fn unreadable(what: &str) -> ServiceError {
    ServiceError::Transport(format!("GitHub answered an unreadable {what}"))
}

fn repo_path(full_name: &str) -> String {
    match full_name.split_once('/') {
        Some((o, r)) => format!("/repos/{}/{}", segment(o), segment(r)),
        None => format!("/repos/{}", segment(full_name)),
    }
}

fn repository(p: &Value) -> Result<&str, ServiceError> {
    // Parsed, not pattern-matched: `..` and other path tricks never reach a URL.
    p["repository"]
        .as_str()
        .filter(|r| crate::github::repo::RepoRef::parse_full_name(r).is_some())
        .ok_or_else(|| ServiceError::Invalid("repository must be \"owner/name\"".into()))
}

impl ServiceImpl for GitHubService {
    fn name(&self) -> &'static str {
        "github"
    }

    fn entities(&self) -> &'static [&'static str] {
        &ENTITIES
    }

    fn parent(&self, entity: &str) -> Option<Parent> {
        (entity != "repositories").then_some(Parent {
            entity: "repositories",
            key: "$.full_name",
            only_if: None,
            filter: Some("repositories"),
        })
    }

    fn actions(&self) -> &'static [Action] {
        &ACTIONS
    }

    fn filters(&self) -> &'static [Filter] {
        &FILTERS
    }

    fn oauth(&self) -> Option<&'static OAuth> {
        Some(&OAUTH)
    }

    fn prepare_credentials(&self, creds: Credentials, _now: crate::time::Millis) -> Result<Credentials, String> {
        token(&creds).ok_or_else(|| "credentials.access_token is required".to_string())?;
        Ok(creds)
    }

    async fn check(&self, c: &Conn<'_>) -> Result<Value, ServiceError> {
        let r = client(c).get("/user").await?;
        let me: Value = r.json().ok_or_else(|| unreadable("profile"))?;
        Ok(json!({ "login": me["login"], "id": me["id"] }))
    }

    async fn sync_page(&self, c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
        sync_page(c, req).await
    }

    async fn fetch(&self, c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
        fetch(c, entity, id).await
    }

    async fn act(&self, c: &Conn<'_>, action: &str, params: &Value) -> Result<Outcome, ServiceError> {
        act(c, action, params).await
    }

    fn push_action(&self, entity: &str) -> Option<&'static str> {
        match entity {
            "issues" => Some("create_issue"),
            "comments" => Some("comment"),
            _ => None,
        }
    }

    fn webhook_items(&self, event: &str, payload: &Value) -> Vec<(&'static str, Item)> {
        let Some(repo) = payload["repository"]["full_name"].as_str() else { return vec![] };
        match event {
            "issues" if payload["issue"].is_object() => vec![("issues", issue_item(repo, &payload["issue"]))],
            "pull_request" if payload["pull_request"].is_object() => {
                vec![("pull_requests", pull_item(repo, &payload["pull_request"]))]
            }
            "repository" | "push"
                if payload["repository"]["id"].is_i64() && payload["repository"]["updated_at"].is_string() =>
            {
                vec![("repositories", repo_item(&payload["repository"]))]
            }
            _ => vec![],
        }
    }

    fn webhook_holder(&self, payload: &Value) -> Option<(&'static str, String)> {
        payload["repository"]["id"].as_i64().map(|id| ("repositories", id.to_string()))
    }

    /// `GET /repositories/{id}` with the owner's token: 404 (or 403 without a rate limit) means
    /// the repository is gone or no longer theirs to read.
    async fn holds(&self, c: &Conn<'_>, holder_type: &str, key: &str) -> Result<bool, ServiceError> {
        if holder_type != "repositories" || key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(false);
        }
        match client(c).get(&format!("/repositories/{key}")).await {
            Ok(_) => Ok(true),
            Err(ServiceError::NotFound(_) | ServiceError::Upstream { status: 403, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::actions::*;
    #[allow(unused_imports)]
    use super::sync::*;
    use super::*;
    use crate::outbound::{Call, Http, OutboundError, Upstream};
    use futures::future::LocalBoxFuture;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Answers from a list of (path prefix, status, body) and records what was asked.
    struct FakeGitHub {
        routes: Vec<(&'static str, u16, Value)>,
        seen: RefCell<Vec<Call>>,
    }

    impl Http for FakeGitHub {
        fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
            let path = call.url.trim_start_matches("https://gh.test").to_string();
            self.seen.borrow_mut().push(call);
            let hit = self.routes.iter().find(|(p, _, _)| path.starts_with(p));
            let answer = match hit {
                Some((_, status, body)) => {
                    Upstream { status: *status, headers: vec![], body: body.to_string().into_bytes() }
                }
                None => Upstream { status: 404, headers: vec![], body: b"{\"message\":\"Not Found\"}".to_vec() },
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    fn conn<'a>(http: &'a dyn Http, vars: &'a BTreeMap<String, String>, creds: &'a Credentials) -> Conn<'a> {
        Conn { http, vars, creds, tokens: Box::leak(Box::new(crate::integrations::service::Fixed(creds))), now: 0 }
    }

    fn setup() -> (BTreeMap<String, String>, Credentials) {
        let vars = BTreeMap::from([("GITHUB_API_URL".to_string(), "https://gh.test".to_string())]);
        let creds = Credentials::from([("access_token".to_string(), "t0k".to_string())]);
        (vars, creds)
    }

    #[test]
    fn items_and_webhooks() {
        let i = issue_item(
            "o/r.js",
            &json!({ "number": 5, "title": "T", "updated_at": "2026-01-01T00:00:00Z", "user": { "login": "u" }, "labels": [{ "name": "bug" }] }),
        );
        assert_eq!((i.external_id.as_str(), i.parent.as_str()), ("o/r.js#5", "o/r.js"));
        assert_eq!(i.data["labels"], json!(["bug"]));
        let c = commit_item(
            "o/r",
            &json!({ "sha": "abc", "commit": { "message": "m", "committer": { "date": "2026-01-02T00:00:00Z" }, "author": { "name": "A" } } }),
        );
        assert_eq!((c.external_id.as_str(), c.modified_at.as_str()), ("o/r@abc", "2026-01-02T00:00:00Z"));
        let payload = json!({ "action": "edited", "repository": { "id": 9, "full_name": "o/r" }, "issue": { "number": 1, "title": "new", "updated_at": "x", "user": {} } });
        let w = GitHubService.webhook_items("issues", &payload);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].1.data["title"], "new");
        assert_eq!(GitHubService.webhook_holder(&payload), Some(("repositories", "9".to_string())));
        assert!(GitHubService.webhook_items("ping", &json!({})).is_empty());
        assert!(GitHubService.prepare_credentials(Credentials::new(), 0).is_err());
    }

    #[test]
    fn create_issue_sends_labels_and_answers_the_contract_shape() {
        let fake = FakeGitHub {
            routes: vec![(
                "/repos/o/r.js/issues",
                201,
                json!({ "number": 7, "title": "Bug", "html_url": "https://gh/o/r.js/7", "state": "open", "updated_at": "2026-01-01T00:00:00Z", "user": { "login": "me" } }),
            )],
            seen: RefCell::new(vec![]),
        };
        let (vars, creds) = setup();
        let c = conn(&fake, &vars, &creds);
        let params = json!({ "repository": "o/r.js", "title": "Bug", "labels": ["x"] });
        let out = futures::executor::block_on(GitHubService.act(&c, "create_issue", &params)).unwrap();
        assert_eq!(out.result, json!({ "number": 7, "title": "Bug", "url": "https://gh/o/r.js/7", "state": "open" }));
        assert_eq!(out.items[0].1.external_id, "o/r.js#7");
        let seen = fake.seen.borrow();
        let sent: Value = serde_json::from_slice(seen[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(sent["labels"], json!(["x"]));
        assert_eq!(seen[0].header_value("Authorization"), Some("Bearer t0k"));
    }

    #[test]
    fn fetch_refuses_ids_that_are_not_repository_names() {
        // Anything that reached the URL would be answered by the fake (and by GitHub: `../user`).
        let fake =
            FakeGitHub { routes: vec![("/", 200, json!({ "id": 1, "login": "me" }))], seen: RefCell::new(vec![]) };
        let (vars, creds) = setup();
        let c = conn(&fake, &vars, &creds);
        for (entity, id) in [
            ("repositories", "../user"),
            ("repositories", "o/.."),
            ("issues", "../user#1"),
            ("pull_requests", "o/r/../x#2"),
        ] {
            let e = futures::executor::block_on(GitHubService.fetch(&c, entity, id)).unwrap_err();
            assert!(matches!(e, ServiceError::Invalid(_)), "{entity} {id}: {e:?}");
        }
        assert!(fake.seen.borrow().is_empty(), "no request was made");
    }

    #[test]
    fn errors_map_to_what_callers_do() {
        let fake = FakeGitHub {
            routes: vec![("/repos/o/r/issues/1", 401, json!({ "message": "Bad credentials" }))],
            seen: RefCell::new(vec![]),
        };
        let (vars, creds) = setup();
        let c = conn(&fake, &vars, &creds);
        let e = futures::executor::block_on(GitHubService.act(
            &c,
            "get_issue",
            &json!({ "repository": "o/r", "number": 1 }),
        ));
        assert!(matches!(e, Err(ServiceError::Auth(_))));
        let e = futures::executor::block_on(GitHubService.act(
            &c,
            "get_issue",
            &json!({ "repository": "o/r", "number": 2 }),
        ));
        assert!(matches!(e, Err(ServiceError::NotFound(_))));
        let e = futures::executor::block_on(GitHubService.act(
            &c,
            "get_issue",
            &json!({ "repository": "nope", "number": 2 }),
        ));
        assert!(matches!(e, Err(ServiceError::Invalid(_))));
    }

    /// Answers 401 to any token but `fresh`, and counts the requests.
    struct Expiring(std::cell::Cell<u32>);

    impl Http for Expiring {
        fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
            self.0.set(self.0.get() + 1);
            let ok = call.header_value("Authorization") == Some("Bearer fresh");
            let (status, body) = if ok {
                (200, json!({ "login": "carol", "id": 8 }))
            } else {
                (401, json!({ "message": "Bad credentials" }))
            };
            Box::pin(async move { Ok(Upstream { status, headers: vec![], body: body.to_string().into_bytes() }) })
        }
    }

    /// `stale` until refreshed, then `fresh`; a refusal when `refusing`.
    struct Refreshing {
        refreshed: std::cell::Cell<u32>,
        refusing: bool,
    }

    impl crate::integrations::service::Tokens for Refreshing {
        fn access(&self) -> LocalBoxFuture<'_, Result<String, ServiceError>> {
            let t = if self.refreshed.get() == 0 { "stale" } else { "fresh" };
            Box::pin(async move { Ok(t.to_string()) })
        }
        fn refreshed<'a>(&'a self, rejected: &'a str) -> LocalBoxFuture<'a, Result<String, ServiceError>> {
            assert_eq!(rejected, "stale");
            self.refreshed.set(self.refreshed.get() + 1);
            let refusing = self.refusing;
            Box::pin(async move {
                if refusing {
                    Err(ServiceError::Auth("GitHub access was revoked or expired".into()))
                } else {
                    Ok("fresh".to_string())
                }
            })
        }
    }

    #[test]
    fn an_expired_user_token_is_refreshed_once_and_a_refused_refresh_is_auth() {
        let (vars, creds) = setup();
        let http = Expiring(std::cell::Cell::new(0));
        let tokens = Refreshing { refreshed: std::cell::Cell::new(0), refusing: false };
        let c = Conn { http: &http, vars: &vars, creds: &creds, tokens: &tokens, now: 0 };
        let me = futures::executor::block_on(GitHubService.check(&c)).unwrap();
        assert_eq!(me["login"], "carol");
        assert_eq!((tokens.refreshed.get(), http.0.get()), (1, 2), "refused once, refreshed once, sent again");
        let refusing = Refreshing { refreshed: std::cell::Cell::new(0), refusing: true };
        let c = Conn { http: &http, vars: &vars, creds: &creds, tokens: &refusing, now: 0 };
        let e = futures::executor::block_on(GitHubService.act(&c, "get_repository", &json!({ "repository": "o/r" })));
        assert!(matches!(e, Err(ServiceError::Auth(_))), "{e:?}");
    }

    #[test]
    fn an_incremental_pull_request_page_stops_at_the_checkpoint() {
        let prs = json!([
            { "number": 3, "updated_at": "2026-01-03T00:00:00Z", "user": {}, "head": {}, "base": {} },
            { "number": 2, "updated_at": "2026-01-01T00:00:00Z", "user": {}, "head": {}, "base": {} },
        ]);
        let fake = FakeGitHub { routes: vec![("/repos/o/r/pulls", 200, prs)], seen: RefCell::new(vec![]) };
        let (vars, creds) = setup();
        let c = conn(&fake, &vars, &creds);
        let req = PageRequest {
            entity: "pull_requests",
            parent: "o/r",
            cursor: None,
            since: Some("2026-01-02T00:00:00Z"),
            max_requests: 10,
            filters: None,
        };
        let page = futures::executor::block_on(GitHubService.sync_page(&c, &req)).unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.next.is_none());
    }
}
