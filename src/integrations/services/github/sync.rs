//! GitHub's entities as stored (repositories, issues, pull requests, commits), one sync page
//! (one request) at a time, and one entity fetched live.

use serde_json::{json, Value};

use super::{client, repo_path, unreadable, PER_PAGE};
use crate::github::client::next_page;
use crate::integrations::service::{Conn, Item, Page, PageRequest, ServiceError};
use crate::outbound::segment;

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
pub(super) fn newer_than(items: &mut Vec<Item>, since: Option<&str>) -> bool {
    let Some(since) = since else { return false };
    let before = items.len();
    items.retain(|i| i.modified_at.as_str() > since);
    items.len() < before
}

/// Repositories an allow-list names (`filters.repositories`), read one by one (a listing of
/// every repository the account sees would cost a request per hundred of them); one GitHub no
/// longer shows (404) is left out, so a full pass marks it deleted.
async fn listed_repositories(c: &Conn<'_>, req: &PageRequest<'_>, listed: &[Value]) -> Result<Page, ServiceError> {
    let gh = client(c);
    let mut at = req.cursor.and_then(|v| v["index"].as_u64()).unwrap_or(0) as usize;
    let mut items = Vec::new();
    let mut used = 0;
    while at < listed.len() && used < req.max_requests.clamp(1, 20) {
        used += 1;
        let name = listed[at].as_str().unwrap_or("");
        match gh.get(&repo_path(name)).await {
            Ok(r) => items.push(repo_item(&r.json::<Value>().ok_or_else(|| unreadable("repository"))?)),
            Err(ServiceError::NotFound(_)) => {}
            Err(e) if items.is_empty() => return Err(e),
            // Keep what was read; the next page starts with this one again.
            Err(_) => break,
        }
        at += 1;
    }
    Ok(Page { items, next: (at < listed.len()).then(|| json!({ "index": at })), checkpoint: None })
}

pub(super) async fn sync_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let gh = client(c);
    let page = req.cursor.and_then(|v| v["page"].as_u64()).unwrap_or(1);
    let next = |more: bool| more.then(|| json!({ "page": page + 1 }));
    if req.entity == "repositories" {
        if let Some(listed) = req.filter("repositories").and_then(Value::as_array) {
            return listed_repositories(c, req, listed).await;
        }
        let r = gh
            .get(&format!("/user/repos?per_page={PER_PAGE}&page={page}&sort=updated&direction=desc&type=all"))
            .await?;
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
        Err(ServiceError::NotFound(_) | ServiceError::Upstream { status: 409, .. }) => return Ok(Page::default()),
        Err(e) => return Err(e),
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
/// `owner/name#123`, its repository checked as a repository name (no `..` or other path
/// tricks reach a URL).
pub(super) fn numbered(id: &str) -> Option<(&str, u64)> {
    let (repo, n) = id.rsplit_once('#')?;
    crate::github::repo::RepoRef::parse_full_name(repo)?;
    Some((repo, n.parse().ok()?))
}

pub(super) async fn fetch(c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
    let gh = client(c);
    let bad = || {
        ServiceError::Invalid(format!(
            "Expected an id like owner/repo{}",
            if entity == "repositories" { "" } else { "#123" }
        ))
    };
    match entity {
        "repositories" => {
            crate::github::repo::RepoRef::parse_full_name(id).ok_or_else(bad)?;
            let r = gh.get(&repo_path(id)).await?;
            Ok(("repositories", repo_item(&r.json::<Value>().ok_or_else(|| unreadable("repository"))?)))
        }
        "issues" | "pull_requests" => {
            let (repo, n) = numbered(id).ok_or_else(bad)?;
            let kind = if entity == "issues" { "issues" } else { "pulls" };
            let r = gh.get(&format!("{}/{kind}/{n}", repo_path(repo))).await?;
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
