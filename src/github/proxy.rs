//! `/api/repos`: the caller's GitHub, through their stored token (with real
//! pagination, encoded paths, anchored URL parsing, push-access reasons and idempotent PRs).

use serde_json::{json, Value};

use super::client::{next_page, GhError, GitHub};
use super::repo::RepoRef;
use super::{api_url, repo_hosts, token};
use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::outbound::segment;

fn client(ctx: &Ctx, token: &str) -> GitHub<'static> {
    GitHub::new(&api_url(&ctx.env), token)
}

/// `page` (1–10000) and `perPage`/`per_page` (1–100) query values.
fn paging(ctx: &Ctx, default_per_page: u32) -> ApiResult<(u32, u32)> {
    let page = match ctx.query.get("page") {
        None => 1,
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| ApiError::invalid_field("page", "Must be an integer between 1 and 10000"))?,
    };
    let per_page = match ctx.query.get("perPage").or_else(|| ctx.query.get("per_page")) {
        None => default_per_page,
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid_field("perPage", "Must be an integer between 1 and 100"))?,
    };
    Ok((page, per_page))
}

fn s(v: &Value) -> Value {
    if v.is_null() {
        Value::Null
    } else {
        v.clone()
    }
}

fn user_view(u: &Value) -> Value {
    json!({ "login": s(&u["login"]), "avatarUrl": s(&u["avatar_url"]) })
}

fn paginated(mut body: Value, page: u32, per_page: u32, link: Option<String>) -> Value {
    let next = next_page(link.as_deref());
    body["page"] = json!(page);
    body["perPage"] = json!(per_page);
    body["hasMore"] = json!(next.is_some());
    if let Some(n) = next {
        body["nextPage"] = json!(n);
    }
    body
}

/// `GET /api/repos?page&perPage&sort` → `{repos, page, perPage, hasMore, nextPage?}`.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let (page, per_page) = paging(ctx, 30)?;
    let sort = ctx.query.get("sort").unwrap_or("updated");
    if !["created", "updated", "pushed", "full_name"].contains(&sort) {
        return Err(ApiError::invalid_field("sort", "Expected one of: created, updated, pushed, full_name"));
    }
    let token = token::require(ctx).await?;
    let r = client(ctx, &token)
        .get(&format!("/user/repos?sort={sort}&per_page={per_page}&page={page}&type=all"))
        .await
        .map_err(|e| e.into_api("Failed to fetch repositories"))?;
    let items: Vec<Value> = r.json().ok_or_else(|| ApiError::upstream("Failed to fetch repositories"))?;
    let repos: Vec<Value> = items
        .iter()
        .map(|x| {
            json!({
                "id": s(&x["id"]), "name": s(&x["name"]), "fullName": s(&x["full_name"]), "private": s(&x["private"]),
                "description": s(&x["description"]), "url": s(&x["html_url"]), "cloneUrl": s(&x["clone_url"]),
                "defaultBranch": s(&x["default_branch"]), "updatedAt": s(&x["updated_at"]), "language": s(&x["language"]),
            })
        })
        .collect();
    Reply::ok(&paginated(json!({ "repos": repos }), page, per_page, r.header("link")))
}

/// `GET /api/repos/validate?url=` → `{valid: true, repo: {…, canPush}, pushDeniedReason?}` or
/// `{valid: false, error}`.
pub async fn validate(ctx: &Ctx) -> ApiResult<Reply> {
    let url = ctx
        .query
        .get("url")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", "Missing url parameter"))?;
    let hosts = repo_hosts(&ctx.env);
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let Some(repo) = RepoRef::parse_on_hosts(url, &hosts) else {
        return Reply::ok(&json!({ "valid": false, "error": "Not a valid GitHub repository URL" }));
    };
    let token = token::require(ctx).await?;
    let path = format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name));
    match client(ctx, &token).get(&path).await {
        Ok(r) => {
            let x: Value = r.json().ok_or_else(|| ApiError::upstream("Failed to validate repository"))?;
            let can_push = x["permissions"]["push"].as_bool().unwrap_or(false);
            let mut body = json!({
                "valid": true,
                "repo": { "fullName": s(&x["full_name"]), "defaultBranch": s(&x["default_branch"]), "private": s(&x["private"]),
                          "canPush": can_push, "cloneUrl": s(&x["clone_url"]) },
            });
            if !can_push {
                body["pushDeniedReason"] = json!(if x["archived"].as_bool() == Some(true) {
                    "The repository is archived"
                } else {
                    "Your GitHub account has read-only access to this repository"
                });
            }
            Reply::ok(&body)
        }
        Err(GhError::Status(404, _)) => {
            Reply::ok(&json!({ "valid": false, "error": "Repository not found or not accessible" }))
        }
        Err(e @ GhError::RateLimited(_)) => Err(e.into_api("Failed to validate repository")),
        Err(_) => Reply::ok(&json!({ "valid": false, "error": "Failed to validate repository" })),
    }
}

fn path_repo(ctx: &Ctx) -> ApiResult<RepoRef> {
    RepoRef::parse_full_name(&format!("{}/{}", ctx.params.get("owner"), ctx.params.get("repo")))
        .ok_or_else(|| ApiError::invalid_field("repo", "Expected a valid owner and repository name"))
}

/// `GET /api/repos/:owner/:repo/pulls?page&perPage` → `{pulls, page, perPage, hasMore}` (open, newest activity first).
pub async fn pulls(ctx: &Ctx) -> ApiResult<Reply> {
    let repo = path_repo(ctx)?;
    let (page, per_page) = paging(ctx, 30)?;
    let token = token::require(ctx).await?;
    let path = format!(
        "/repos/{}/{}/pulls?state=open&sort=updated&direction=desc&per_page={per_page}&page={page}",
        segment(&repo.owner),
        segment(&repo.name)
    );
    let r = client(ctx, &token).get(&path).await.map_err(|e| e.into_api("Failed to fetch pull requests"))?;
    let items: Vec<Value> = r.json().ok_or_else(|| ApiError::upstream("Failed to fetch pull requests"))?;
    let pulls: Vec<Value> = items
        .iter()
        .map(|p| {
            json!({
                "number": s(&p["number"]), "title": s(&p["title"]), "state": s(&p["state"]), "draft": p["draft"].as_bool().unwrap_or(false),
                "body": s(&p["body"]), "url": s(&p["html_url"]), "updatedAt": s(&p["updated_at"]), "author": user_view(&p["user"]),
                "headRef": s(&p["head"]["ref"]), "headSha": s(&p["head"]["sha"]), "baseRef": s(&p["base"]["ref"]),
                "repoFullName": s(&p["head"]["repo"]["full_name"]), "repoCloneUrl": s(&p["head"]["repo"]["clone_url"]),
            })
        })
        .collect();
    Reply::ok(&paginated(json!({ "pulls": pulls }), page, per_page, r.header("link")))
}

/// `GET /api/repos/:owner/:repo/issues?page&perPage` → `{issues, …}` (pull requests excluded).
pub async fn issues(ctx: &Ctx) -> ApiResult<Reply> {
    let repo = path_repo(ctx)?;
    let (page, per_page) = paging(ctx, 30)?;
    let token = token::require(ctx).await?;
    let path = format!(
        "/repos/{}/{}/issues?state=open&sort=updated&direction=desc&per_page={per_page}&page={page}",
        segment(&repo.owner),
        segment(&repo.name)
    );
    let r = client(ctx, &token).get(&path).await.map_err(|e| e.into_api("Failed to fetch issues"))?;
    let items: Vec<Value> = r.json().ok_or_else(|| ApiError::upstream("Failed to fetch issues"))?;
    let issues: Vec<Value> = items
        .iter()
        .filter(|i| i.get("pull_request").is_none())
        .map(|i| {
            let labels: Vec<Value> = i["labels"].as_array().map(|a| a.iter().map(|l| json!({ "name": s(&l["name"]), "color": s(&l["color"]) })).collect()).unwrap_or_default();
            let assignees: Vec<Value> = i["assignees"].as_array().map(|a| a.iter().map(user_view).collect()).unwrap_or_default();
            json!({
                "number": s(&i["number"]), "title": s(&i["title"]), "body": s(&i["body"]), "url": s(&i["html_url"]),
                "updatedAt": s(&i["updated_at"]), "author": user_view(&i["user"]), "labels": labels, "assignees": assignees,
            })
        })
        .collect();
    Reply::ok(&paginated(json!({ "issues": issues }), page, per_page, r.header("link")))
}

/// Links a PR GitHub just answered with as the session's own (`sessionId` on the request).
async fn link(
    ctx: &Ctx,
    session: Option<&crate::sessions::store::SessionRow>,
    repo: &RepoRef,
    p: &Value,
) -> ApiResult<()> {
    let (Some(session), Some(number)) = (session, p["number"].as_i64()) else { return Ok(()) };
    let full_name = repo.full_name();
    let state = crate::github::webhooks::pr_state("", p);
    // GitHub's own answer names the repository's id: the caller's token works there.
    let repo_id = p["base"]["repo"]["id"].as_i64().map(|i| i.to_string());
    let pr = crate::sessions::store::PrLink {
        repo_full_name: Some(&full_name),
        number,
        url: p["html_url"].as_str(),
        title: p["title"].as_str(),
        state: Some(state),
        repo_id: repo_id.as_deref(),
    };
    crate::sessions::store::link_pr(&ctx.db()?, &session.id, &pr, &crate::time::iso(ctx.now)).await
}

fn pr_view(p: &Value) -> Value {
    json!({ "number": s(&p["number"]), "url": s(&p["html_url"]), "title": s(&p["title"]), "state": s(&p["state"]) })
}

/// `POST /api/repos/pull-request?repo=<url>` `{branch, title, body?, base?}` → `{pr}`. When a
/// PR for that head already exists, that PR is returned (`existing: true`) instead of an error.
pub async fn create_pr(ctx: &Ctx) -> ApiResult<Reply> {
    let raw = ctx
        .query
        .get("repo")
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", "Missing repo query parameter"))?;
    let hosts = repo_hosts(&ctx.env);
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let repo = RepoRef::parse_on_hosts(raw, &hosts)
        .ok_or_else(|| ApiError::new(400, "VALIDATION_ERROR", "Invalid GitHub repository URL"))?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let branch = input.str("branch", 1, 255);
    let title = input.str("title", 1, 256);
    let body = input.opt_text("body", 65_536).unwrap_or_default();
    let base = input.opt_str("base", 1, 255);
    let session_id = input.opt_str("sessionId", 1, 64);
    if session_id.as_deref().is_some_and(|s| !crate::http::input::is_uuid(s)) {
        input.error("sessionId", "Must be a session id (UUID)");
    }
    input.finish()?;
    // The session to link the PR to must be the caller's and still live: checked before GitHub.
    let session = match &session_id {
        Some(id) => {
            let s = crate::sessions::store::owned_session(&ctx.db()?, &ctx.caller()?.id, id).await?;
            if s.is_finished() {
                return Err(ApiError::conflict("SESSION_FINISHED", format!("Session is {}", s.status)));
            }
            Some(s)
        }
        None => None,
    };
    let token = token::require(ctx).await?;
    let gh = client(ctx, &token);
    let repo_path = format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name));
    let base = match base {
        Some(b) => b,
        None => match gh.get(&repo_path).await {
            Ok(r) => r
                .json::<Value>()
                .and_then(|v| v["default_branch"].as_str().map(str::to_string))
                .unwrap_or_else(|| "main".into()),
            Err(e @ GhError::RateLimited(_)) => return Err(e.into_api("Failed to create pull request")),
            Err(_) => "main".into(),
        },
    };
    let created = gh
        .post(&format!("{repo_path}/pulls"), &json!({ "title": title, "body": body, "head": branch, "base": base }))
        .await;
    match created {
        Ok(r) => {
            let p: Value = r.json().ok_or_else(|| ApiError::upstream("Failed to create pull request"))?;
            link(ctx, session.as_ref(), &repo, &p).await?;
            Reply::ok(&json!({ "pr": pr_view(&p), "existing": false }))
        }
        Err(GhError::Status(422, message)) => {
            // "A pull request already exists for owner:branch." — answer with that PR.
            let head = if branch.contains(':') { branch.clone() } else { format!("{}:{branch}", repo.owner) };
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("head", &head)
                .append_pair("state", "open")
                .finish();
            let existing = gh
                .get(&format!("{repo_path}/pulls?{q}"))
                .await
                .ok()
                .and_then(|r| r.json::<Vec<Value>>())
                .and_then(|v| v.into_iter().next());
            match existing {
                Some(p) => {
                    link(ctx, session.as_ref(), &repo, &p).await?;
                    Reply::ok(&json!({ "pr": pr_view(&p), "existing": true }))
                }
                None => {
                    Err(ApiError::upstream("Failed to create pull request").with_details(json!({ "github": message })))
                }
            }
        }
        Err(e) => Err(e.into_api("Failed to create pull request")),
    }
}
