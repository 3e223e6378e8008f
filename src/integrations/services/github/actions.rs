//! GitHub's actions: read a repository, an issue or a pull request; create an issue; comment.

use serde_json::{json, Value};

use super::sync::{fetch, issue_item};
use super::{client, repo_path, repository, unreadable};
use crate::integrations::service::{Conn, Item, Outcome, ServiceError};

/// The entity's data with its id, as the entities API shows it.
pub(super) fn view(item: &Item) -> Value {
    let mut v = item.data.clone();
    v["id"] = json!(item.external_id);
    v
}

pub(super) async fn act(c: &Conn<'_>, action: &str, p: &Value) -> Result<Outcome, ServiceError> {
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
            let r = client(c).post(&format!("{}/issues", repo_path(repo)), &body).await?;
            let v: Value = r.json().ok_or_else(|| unreadable("issue"))?;
            let result =
                json!({ "number": v["number"], "title": v["title"], "url": v["html_url"], "state": v["state"] });
            Ok(Outcome::of(result).storing("issues", issue_item(repo, &v)))
        }
        "comment" => {
            let r = client(c)
                .post(&format!("{}/issues/{number}/comments", repo_path(repo)), &json!({ "body": p["body"] }))
                .await?;
            let v: Value = r.json().ok_or_else(|| unreadable("comment"))?;
            Ok(Outcome::of(json!({ "id": v["id"], "url": v["html_url"] })))
        }
        other => Err(ServiceError::Invalid(format!("unknown action {other}"))),
    }
}
