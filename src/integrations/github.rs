//! The GitHub integration: repositories, issues, pull requests and commits of the user's
//! repositories, synced one page (one request) at a time; fetch; push of issues and comments;
//! entity updates from webhook deliveries.

use serde_json::{json, Value};

use super::framework::{Credentials, Item, Page, Position, SyncError};
use crate::github::client::{next_page, GhError, GitHub};
use crate::outbound::segment;

pub const ENTITIES: [&str; 4] = ["repositories", "issues", "pull_requests", "commits"];
const PER_PAGE: u32 = 100;

pub fn token(creds: &Credentials) -> Option<&str> {
    creds.get("access_token").or_else(|| creds.get("token")).map(String::as_str).filter(|t| !t.is_empty())
}

pub fn validate_credentials(creds: &Credentials) -> Result<(), String> {
    token(creds).map(|_| ()).ok_or_else(|| "credentials.access_token is required".to_string())
}

fn map_err(e: GhError) -> SyncError {
    match e {
        GhError::RateLimited(s) => SyncError::RateLimited(s),
        GhError::Status(401, m) => SyncError::Auth(format!("GitHub rejected the credentials: {m}")),
        GhError::Status(s, m) => SyncError::Failed(format!("GitHub answered {s}: {m}")),
        GhError::Transport(m) => SyncError::Failed(format!("GitHub unreachable: {m}")),
    }
}

pub async fn test_connection(gh: &GitHub) -> Result<Value, SyncError> {
    let r = gh.get("/user").await.map_err(map_err)?;
    r.json().ok_or_else(|| SyncError::Failed("GitHub answered an unreadable profile".into()))
}

fn repo_path(full_name: &str) -> String {
    match full_name.split_once('/') {
        Some((o, r)) => format!("/repos/{}/{}", segment(o), segment(r)),
        None => format!("/repos/{}", segment(full_name)),
    }
}

pub fn repo_item(r: &Value) -> Item {
    Item {
        external_id: r["id"].as_i64().map(|i| i.to_string()).unwrap_or_default(),
        modified_at: r["updated_at"].as_str().unwrap_or("").to_string(),
        data: json!({
            "full_name": r["full_name"], "name": r["name"], "private": r["private"], "description": r["description"],
            "html_url": r["html_url"], "default_branch": r["default_branch"], "language": r["language"],
            "archived": r["archived"], "updated_at": r["updated_at"], "pushed_at": r["pushed_at"],
        }),
    }
}

pub fn issue_item(repo: &str, i: &Value) -> Item {
    Item {
        external_id: format!("{repo}#{}", i["number"].as_i64().unwrap_or(0)),
        modified_at: i["updated_at"].as_str().unwrap_or("").to_string(),
        data: json!({
            "repository": repo, "number": i["number"], "title": i["title"], "state": i["state"], "body": i["body"],
            "html_url": i["html_url"], "user": i["user"]["login"], "labels": i["labels"].as_array().map(|l| l.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()),
            "comments": i["comments"], "created_at": i["created_at"], "updated_at": i["updated_at"], "closed_at": i["closed_at"],
        }),
    }
}

pub fn pull_item(repo: &str, p: &Value) -> Item {
    Item {
        external_id: format!("{repo}#{}", p["number"].as_i64().unwrap_or(0)),
        modified_at: p["updated_at"].as_str().unwrap_or("").to_string(),
        data: json!({
            "repository": repo, "number": p["number"], "title": p["title"], "state": p["state"], "draft": p["draft"],
            "html_url": p["html_url"], "user": p["user"]["login"], "head": p["head"]["ref"], "base": p["base"]["ref"],
            "merged_at": p["merged_at"], "created_at": p["created_at"], "updated_at": p["updated_at"], "closed_at": p["closed_at"],
        }),
    }
}

pub fn commit_item(repo: &str, c: &Value) -> Item {
    let date =
        c["commit"]["committer"]["date"].as_str().or(c["commit"]["author"]["date"].as_str()).unwrap_or("").to_string();
    Item {
        external_id: format!("{repo}@{}", c["sha"].as_str().unwrap_or("")),
        modified_at: date.clone(),
        data: json!({
            "repository": repo, "sha": c["sha"], "message": c["commit"]["message"], "html_url": c["html_url"],
            "author": c["commit"]["author"]["name"], "author_login": c["author"]["login"], "date": date,
        }),
    }
}

/// One request of a sync: the next page of `entity` from `pos`.
pub async fn sync_page(gh: &GitHub, entity: &str, pos: &Position) -> Result<Page, SyncError> {
    let cursor = pos.cursor.clone().unwrap_or(json!({}));
    let page = cursor["page"].as_u64().unwrap_or(1);
    if entity == "repositories" {
        let r = gh
            .get(&format!("/user/repos?per_page={PER_PAGE}&page={page}&sort=updated&direction=desc&type=all"))
            .await
            .map_err(map_err)?;
        let list: Vec<Value> =
            r.json().ok_or_else(|| SyncError::Failed("GitHub answered an unreadable repository page".into()))?;
        let mut items: Vec<Item> = list.iter().map(repo_item).collect();
        // Newest first: an incremental run stops at the first repository older than the checkpoint.
        let mut stop = false;
        if let Some(since) = &pos.since {
            let before = items.len();
            items.retain(|i| i.modified_at.as_str() > since.as_str());
            stop = items.len() < before;
        }
        let next = next_page(r.header("link").as_deref()).filter(|_| !stop).map(|p| json!({ "page": p }));
        return Ok(Page { items, next });
    }
    // Repository-scoped types walk the repositories fixed at the start of the entity type.
    let idx = cursor["repo"].as_u64().unwrap_or(0) as usize;
    let Some(repo) = pos.parents.get(idx) else { return Ok(Page { items: vec![], next: None }) };
    let base = repo_path(repo);
    let since_q = pos.since.as_ref().map(|s| format!("&since={}", segment(s))).unwrap_or_default();
    let path = match entity {
        "issues" => {
            format!("{base}/issues?state=all&sort=updated&direction=asc&per_page={PER_PAGE}&page={page}{since_q}")
        }
        "pull_requests" => {
            format!("{base}/pulls?state=all&sort=updated&direction=desc&per_page={PER_PAGE}&page={page}")
        }
        "commits" => format!("{base}/commits?per_page={PER_PAGE}&page={page}{since_q}"),
        other => return Err(SyncError::Failed(format!("unsupported entity type {other}"))),
    };
    let advance = |more: bool| -> Option<Value> {
        if more {
            Some(json!({ "repo": idx, "page": page + 1 }))
        } else if idx + 1 < pos.parents.len() {
            Some(json!({ "repo": idx + 1, "page": 1 }))
        } else {
            None
        }
    };
    let r = match gh.get(&path).await {
        Ok(r) => r,
        // An empty repository has no commits (409); a vanished one is skipped.
        Err(GhError::Status(409 | 404, _)) => return Ok(Page { items: vec![], next: advance(false) }),
        Err(e) => return Err(map_err(e)),
    };
    let list: Vec<Value> =
        r.json().ok_or_else(|| SyncError::Failed(format!("GitHub answered an unreadable {entity} page")))?;
    let more = next_page(r.header("link").as_deref()).is_some();
    let mut items: Vec<Item> = match entity {
        "issues" => list.iter().filter(|i| i.get("pull_request").is_none()).map(|i| issue_item(repo, i)).collect(),
        "pull_requests" => list.iter().map(|p| pull_item(repo, p)).collect(),
        _ => list.iter().map(|c| commit_item(repo, c)).collect(),
    };
    let mut stop = false;
    if entity == "pull_requests" {
        if let Some(since) = &pos.since {
            let before = items.len();
            items.retain(|i| i.modified_at.as_str() > since.as_str());
            stop = items.len() < before;
        }
    }
    Ok(Page { items, next: advance(more && !stop) })
}

/// Fetches one entity live: `repositories` by full name, `issues`/`pull_requests` by `owner/repo#n`.
pub async fn fetch(gh: &GitHub, entity: &str, id: &str) -> Result<Item, SyncError> {
    let bad = || {
        SyncError::Failed(format!(
            "Expected an id like owner/repo{}",
            if entity == "repositories" { "" } else { "#123" }
        ))
    };
    match entity {
        "repositories" => {
            let r = gh.get(&repo_path(id)).await.map_err(map_err)?;
            Ok(repo_item(&r.json::<Value>().ok_or_else(bad)?))
        }
        "issues" | "pull_requests" => {
            let (repo, n) = id.rsplit_once('#').ok_or_else(bad)?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            let kind = if entity == "issues" { "issues" } else { "pulls" };
            let r = gh.get(&format!("{}/{kind}/{n}", repo_path(repo))).await.map_err(map_err)?;
            let v: Value = r.json().ok_or_else(bad)?;
            Ok(if entity == "issues" { issue_item(repo, &v) } else { pull_item(repo, &v) })
        }
        _ => Err(SyncError::Failed(format!("fetch is not supported for {entity}"))),
    }
}

/// Pushes to GitHub: `issues` `{repository, title, body?}` creates an issue; `comments`
/// `{repository, number, body}` comments on an issue or PR. Returns the created entity.
pub async fn push(gh: &GitHub, entity: &str, data: &Value) -> Result<(String, Option<Item>, Value), SyncError> {
    let repo = data["repository"]
        .as_str()
        .filter(|r| r.contains('/'))
        .ok_or_else(|| SyncError::Failed("data.repository (owner/repo) is required".into()))?;
    match entity {
        "issues" => {
            let title = data["title"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| SyncError::Failed("data.title is required".into()))?;
            let r = gh
                .post(
                    &format!("{}/issues", repo_path(repo)),
                    &json!({ "title": title, "body": data["body"].as_str().unwrap_or("") }),
                )
                .await
                .map_err(map_err)?;
            let v: Value = r.json().unwrap_or_default();
            let item = issue_item(repo, &v);
            Ok(("issues".into(), Some(item), json!({ "number": v["number"], "url": v["html_url"] })))
        }
        "comments" => {
            let n = data["number"].as_u64().ok_or_else(|| SyncError::Failed("data.number is required".into()))?;
            let body = data["body"]
                .as_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| SyncError::Failed("data.body is required".into()))?;
            let r = gh
                .post(&format!("{}/issues/{n}/comments", repo_path(repo)), &json!({ "body": body }))
                .await
                .map_err(map_err)?;
            let v: Value = r.json().unwrap_or_default();
            Ok(("comments".into(), None, json!({ "id": v["id"], "url": v["html_url"] })))
        }
        _ => Err(SyncError::Failed(format!("push is not supported for {entity}; use issues or comments"))),
    }
}

/// Entities a webhook delivery changes: `(entity type, item)`.
pub fn webhook_items(event: &str, payload: &Value) -> Vec<(&'static str, Item)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_webhooks() {
        let i = issue_item(
            "o/r.js",
            &json!({ "number": 5, "title": "T", "updated_at": "2026-01-01T00:00:00Z", "user": { "login": "u" }, "labels": [{ "name": "bug" }] }),
        );
        assert_eq!(i.external_id, "o/r.js#5");
        assert_eq!(i.data["labels"], json!(["bug"]));
        let c = commit_item(
            "o/r",
            &json!({ "sha": "abc", "commit": { "message": "m", "committer": { "date": "2026-01-02T00:00:00Z" }, "author": { "name": "A" } } }),
        );
        assert_eq!((c.external_id.as_str(), c.modified_at.as_str()), ("o/r@abc", "2026-01-02T00:00:00Z"));
        let w = webhook_items(
            "issues",
            &json!({ "action": "edited", "repository": { "full_name": "o/r" }, "issue": { "number": 1, "title": "new", "updated_at": "x", "user": {} } }),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].1.data["title"], "new");
        assert!(webhook_items("ping", &json!({})).is_empty());
        assert!(validate_credentials(&Credentials::new()).is_err());
    }
}
