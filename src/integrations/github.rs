//! The GitHub integration: repositories, and the issues, pull requests and commits of each
//! repository, synced one page (one request) at a time; fetch; five actions; entity updates
//! from webhook deliveries.

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::service::{
    Action, Conn, Credentials, Item, OAuth, Outcome, Page, PageRequest, Parent, Service, ServiceError,
};
use crate::config::base_url;
use crate::github::client::{next_page, GhError, GitHub};
use crate::outbound::segment;

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
    refresh: false,
};

fn token(creds: &Credentials) -> Option<&str> {
    creds.get("access_token").or_else(|| creds.get("token")).map(String::as_str).filter(|t| !t.is_empty())
}

fn client<'a>(c: &'a Conn<'a>) -> Result<GitHub<'a>, ServiceError> {
    let token = token(c.creds).ok_or_else(|| ServiceError::Auth("stored credentials have no access token".into()))?;
    Ok(GitHub::over(c.http, &base_url(c.vars, "GITHUB_API_URL", "https://api.github.com"), token))
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

pub fn repo_item(r: &Value) -> Item {
    Item::new(
        r["id"].as_i64().map(|i| i.to_string()).unwrap_or_default(),
        r["updated_at"].as_str().unwrap_or(""),
        json!({
            "full_name": r["full_name"], "name": r["name"], "private": r["private"], "description": r["description"],
            "html_url": r["html_url"], "default_branch": r["default_branch"], "language": r["language"],
            "archived": r["archived"], "updated_at": r["updated_at"], "pushed_at": r["pushed_at"],
        }),
    )
}

pub fn issue_item(repo: &str, i: &Value) -> Item {
    Item::new(
        format!("{repo}#{}", i["number"].as_i64().unwrap_or(0)),
        i["updated_at"].as_str().unwrap_or(""),
        json!({
            "repository": repo, "number": i["number"], "title": i["title"], "state": i["state"], "body": i["body"],
            "html_url": i["html_url"], "user": i["user"]["login"], "labels": i["labels"].as_array().map(|l| l.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()),
            "comments": i["comments"], "created_at": i["created_at"], "updated_at": i["updated_at"], "closed_at": i["closed_at"],
        }),
    )
    .under(repo)
}

pub fn pull_item(repo: &str, p: &Value) -> Item {
    Item::new(
        format!("{repo}#{}", p["number"].as_i64().unwrap_or(0)),
        p["updated_at"].as_str().unwrap_or(""),
        json!({
            "repository": repo, "number": p["number"], "title": p["title"], "state": p["state"], "draft": p["draft"],
            "html_url": p["html_url"], "user": p["user"]["login"], "head": p["head"]["ref"], "base": p["base"]["ref"],
            "merged_at": p["merged_at"], "created_at": p["created_at"], "updated_at": p["updated_at"], "closed_at": p["closed_at"],
            "body": p["body"],
        }),
    )
    .under(repo)
}

pub fn commit_item(repo: &str, c: &Value) -> Item {
    let date =
        c["commit"]["committer"]["date"].as_str().or(c["commit"]["author"]["date"].as_str()).unwrap_or("").to_string();
    Item::new(
        format!("{repo}@{}", c["sha"].as_str().unwrap_or("")),
        date.clone(),
        json!({
            "repository": repo, "sha": c["sha"], "message": c["commit"]["message"], "html_url": c["html_url"],
            "author": c["commit"]["author"]["name"], "author_login": c["author"]["login"], "date": date,
        }),
    )
    .under(repo)
}

/// Keeps only items newer than the checkpoint; says whether any were older (list sorted newest first).
fn newer_than(items: &mut Vec<Item>, since: Option<&str>) -> bool {
    let Some(since) = since else { return false };
    let before = items.len();
    items.retain(|i| i.modified_at.as_str() > since);
    items.len() < before
}

async fn sync_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let gh = client(c)?;
    let page = req.cursor.and_then(|v| v["page"].as_u64()).unwrap_or(1);
    let next = |more: bool| more.then(|| json!({ "page": page + 1 }));
    if req.entity == "repositories" {
        let r = gh
            .get(&format!("/user/repos?per_page={PER_PAGE}&page={page}&sort=updated&direction=desc&type=all"))
            .await
            .map_err(map_err)?;
        let list: Vec<Value> = r.json().ok_or_else(|| unreadable("repository page"))?;
        let mut items: Vec<Item> = list.iter().map(repo_item).collect();
        // Newest first: an incremental run stops at the first repository older than the checkpoint.
        let stop = newer_than(&mut items, req.since);
        return Ok(Page {
            items,
            next: next(next_page(r.header("link").as_deref()).is_some() && !stop),
            checkpoint: None,
        });
    }
    let repo = req.parent;
    let base = repo_path(repo);
    let since_q = req.since.map(|s| format!("&since={}", segment(s))).unwrap_or_default();
    let path = match req.entity {
        "issues" => {
            format!("{base}/issues?state=all&sort=updated&direction=asc&per_page={PER_PAGE}&page={page}{since_q}")
        }
        "pull_requests" => {
            format!("{base}/pulls?state=all&sort=updated&direction=desc&per_page={PER_PAGE}&page={page}")
        }
        "commits" => format!("{base}/commits?per_page={PER_PAGE}&page={page}{since_q}"),
        other => return Err(ServiceError::Invalid(format!("unsupported entity type {other}"))),
    };
    let r = match gh.get(&path).await {
        Ok(r) => r,
        // An empty repository has no commits (409); a vanished one is skipped.
        Err(GhError::Status(409 | 404, _)) => return Ok(Page::default()),
        Err(e) => return Err(map_err(e)),
    };
    let list: Vec<Value> = r.json().ok_or_else(|| unreadable(&format!("{} page", req.entity)))?;
    let more = next_page(r.header("link").as_deref()).is_some();
    let mut items: Vec<Item> = match req.entity {
        "issues" => list.iter().filter(|i| i.get("pull_request").is_none()).map(|i| issue_item(repo, i)).collect(),
        "pull_requests" => list.iter().map(|p| pull_item(repo, p)).collect(),
        _ => list.iter().map(|c| commit_item(repo, c)).collect(),
    };
    let stop = req.entity == "pull_requests" && newer_than(&mut items, req.since);
    Ok(Page { items, next: next(more && !stop), checkpoint: None })
}

/// `owner/repo#n` → (`owner/repo`, n).
fn numbered(id: &str) -> Option<(&str, u64)> {
    let (repo, n) = id.rsplit_once('#')?;
    Some((repo, n.parse().ok()?))
}

async fn fetch(c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
    let gh = client(c)?;
    let bad = || {
        ServiceError::Invalid(format!(
            "Expected an id like owner/repo{}",
            if entity == "repositories" { "" } else { "#123" }
        ))
    };
    match entity {
        "repositories" => {
            let r = gh.get(&repo_path(id)).await.map_err(map_err)?;
            Ok(("repositories", repo_item(&r.json::<Value>().ok_or_else(|| unreadable("repository"))?)))
        }
        "issues" | "pull_requests" => {
            let (repo, n) = numbered(id).ok_or_else(bad)?;
            let kind = if entity == "issues" { "issues" } else { "pulls" };
            let r = gh.get(&format!("{}/{kind}/{n}", repo_path(repo))).await.map_err(map_err)?;
            let v: Value = r.json().ok_or_else(|| unreadable(entity))?;
            Ok(if entity == "issues" {
                ("issues", issue_item(repo, &v))
            } else {
                ("pull_requests", pull_item(repo, &v))
            })
        }
        _ => Err(ServiceError::Invalid(format!("fetch is not supported for {entity}"))),
    }
}

/// The entity's data with its id, as the entities API shows it.
fn view(item: &Item) -> Value {
    let mut v = item.data.clone();
    v["id"] = json!(item.external_id);
    v
}

fn repository(p: &Value) -> Result<&str, ServiceError> {
    // Parsed, not pattern-matched: `..` and other path tricks never reach a URL.
    p["repository"]
        .as_str()
        .filter(|r| crate::github::repo::RepoRef::parse_full_name(r).is_some())
        .ok_or_else(|| ServiceError::Invalid("repository must be \"owner/name\"".into()))
}

async fn act(c: &Conn<'_>, action: &str, p: &Value) -> Result<Outcome, ServiceError> {
    let repo = repository(p)?;
    let number = p["number"].as_u64().unwrap_or(0);
    match action {
        "get_repository" => {
            let (entity, item) = fetch(c, "repositories", repo).await?;
            Ok(Outcome::of(view(&item)).storing(entity, item))
        }
        "get_issue" | "get_pull_request" => {
            let kind = if action == "get_issue" { "issues" } else { "pull_requests" };
            let (entity, item) = fetch(c, kind, &format!("{repo}#{number}")).await?;
            Ok(Outcome::of(view(&item)).storing(entity, item))
        }
        "create_issue" => {
            let mut body = json!({ "title": p["title"], "body": p["body"].as_str().unwrap_or("") });
            for key in ["labels", "assignees"] {
                if p[key].is_array() {
                    body[key] = p[key].clone();
                }
            }
            let r = client(c)?.post(&format!("{}/issues", repo_path(repo)), &body).await.map_err(map_err)?;
            let v: Value = r.json().ok_or_else(|| unreadable("issue"))?;
            let result =
                json!({ "number": v["number"], "title": v["title"], "url": v["html_url"], "state": v["state"] });
            Ok(Outcome::of(result).storing("issues", issue_item(repo, &v)))
        }
        "comment" => {
            let r = client(c)?
                .post(&format!("{}/issues/{number}/comments", repo_path(repo)), &json!({ "body": p["body"] }))
                .await
                .map_err(map_err)?;
            let v: Value = r.json().ok_or_else(|| unreadable("comment"))?;
            Ok(Outcome::of(json!({ "id": v["id"], "url": v["html_url"] })))
        }
        other => Err(ServiceError::Invalid(format!("unknown action {other}"))),
    }
}

impl Service for GitHubService {
    fn name(&self) -> &'static str {
        "github"
    }

    fn entities(&self) -> &'static [&'static str] {
        &ENTITIES
    }

    fn parent(&self, entity: &str) -> Option<Parent> {
        (entity != "repositories").then_some(Parent { entity: "repositories", key: "$.full_name", only_if: None })
    }

    fn actions(&self) -> &'static [Action] {
        &ACTIONS
    }

    fn oauth(&self) -> Option<&'static OAuth> {
        Some(&OAUTH)
    }

    fn prepare_credentials(&self, creds: Credentials, _now: crate::time::Millis) -> Result<Credentials, String> {
        token(&creds).ok_or_else(|| "credentials.access_token is required".to_string())?;
        Ok(creds)
    }

    fn check<'a>(&'a self, c: &'a Conn<'a>) -> LocalBoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(async move {
            let r = client(c)?.get("/user").await.map_err(map_err)?;
            let me: Value = r.json().ok_or_else(|| unreadable("profile"))?;
            Ok(json!({ "login": me["login"], "id": me["id"] }))
        })
    }

    fn sync_page<'a>(
        &'a self,
        c: &'a Conn<'a>,
        req: &'a PageRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Page, ServiceError>> {
        Box::pin(sync_page(c, req))
    }

    fn fetch<'a>(
        &'a self,
        c: &'a Conn<'a>,
        entity: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, Result<(&'static str, Item), ServiceError>> {
        Box::pin(fetch(c, entity, id))
    }

    fn act<'a>(
        &'a self,
        c: &'a Conn<'a>,
        action: &'a str,
        params: &'a Value,
    ) -> LocalBoxFuture<'a, Result<Outcome, ServiceError>> {
        Box::pin(act(c, action, params))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{Call, Http, OutboundError, Upstream};
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
        };
        let page = futures::executor::block_on(GitHubService.sync_page(&c, &req)).unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.next.is_none());
    }
}
