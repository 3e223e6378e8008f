//! Which repository a session may receive data for. A repository a session declares is
//! checked with its owner's GitHub token (`GET /repos/{owner}/{repo}`) and GitHub's numeric id
//! kept; webhook deliveries and the PR reconciler match sessions on that id alone. A session on
//! a repository its owner cannot read therefore learns nothing about it, and a renamed
//! repository keeps its sessions.

use super::client::{GhError, GitHub};
use super::repo::RepoRef;
use crate::outbound::Http;

/// `session_git_state.repo_verified`: not checked yet (no token, GitHub unreachable) — the
/// reconciler tries again.
pub const PENDING: i64 = 0;
/// GitHub showed the owner the repository; `repo_id` is its id.
pub const VERIFIED: i64 = 1;
/// GitHub refused the owner (404/403): the session receives nothing until a later check passes.
pub const DENIED: i64 = 2;

/// The outcome of one check.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Verified(String),
    Denied,
    Pending,
}

impl Access {
    /// `(repo_id, repo_verified)` for the row.
    pub fn columns(&self) -> (Option<&str>, i64) {
        match self {
            Access::Verified(id) => (Some(id), VERIFIED),
            Access::Denied => (None, DENIED),
            Access::Pending => (None, PENDING),
        }
    }
}

/// What `git state` says about it (`repoAccess`).
pub fn label(verified: i64) -> &'static str {
    match verified {
        VERIFIED => "verified",
        DENIED => "denied",
        _ => "pending",
    }
}

/// Asks GitHub whether `token` can read `repo`. A rate limit is the caller's to handle (the
/// reconciler stops); any other failure leaves the check pending.
pub async fn check(http: &dyn Http, api: &str, token: &str, repo: &RepoRef) -> Result<Access, GhError> {
    let path = format!("/repos/{}/{}", crate::outbound::segment(&repo.owner), crate::outbound::segment(&repo.name));
    match GitHub::over(http, api, token).get(&path).await {
        Ok(r) => Ok(match r.json::<serde_json::Value>().and_then(|v| v["id"].as_i64()) {
            Some(id) => Access::Verified(id.to_string()),
            None => Access::Pending,
        }),
        Err(GhError::RateLimited(s)) => Err(GhError::RateLimited(s)),
        // 404 is GitHub's answer for a private repository one cannot see; 403 for one blocked
        // by an organisation's policy. 401 is the token's fault, not the repository's.
        Err(GhError::Status(403 | 404, _)) => Ok(Access::Denied),
        Err(_) => Ok(Access::Pending),
    }
}
