//! The sessions store: every query of the session registry (`sessions`, `session_git_state`)
//! lives here, so handlers read as steps. Also the one list of finished statuses, the caller's
//! session lookup (another user's session is indistinguishable from none) and the orchestrator.

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::{D1Database, D1PreparedStatement};

use super::agent::SessionAgent;
use crate::http::page::{Keyed, PageQuery};
use crate::http::{ApiError, ApiResult};
use crate::time::{iso, normalize};

/// Statuses in which a session no longer takes work (no prompts, no git updates).
pub const FINISHED_STATUSES: [&str; 3] = ["terminated", "archived", "error"];
/// [`FINISHED_STATUSES`] as an SQL list, for `status NOT IN …` (a test keeps the two equal).
pub const FINISHED_SQL: &str = "('terminated', 'archived', 'error')";

/// Live (unfinished) sessions one user may have.
pub const MAX_LIVE_SESSIONS: i64 = 1_000;

#[derive(Debug, Clone, Deserialize)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub workspace: String,
    pub status: String,
    pub title: Option<String>,
    pub parent_session_id: Option<String>,
    pub is_orchestrator: i64,
    pub purpose: String,
    pub created_at: String,
    pub last_active_at: String,
}

pub const SESSION_COLUMNS: &str =
    "id, user_id, workspace, status, title, parent_session_id, is_orchestrator, purpose, created_at, last_active_at";

impl Keyed for SessionRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl SessionRow {
    pub fn view(&self) -> Value {
        json!({
            "id": self.id, "userId": self.user_id, "workspace": self.workspace, "title": self.title,
            "status": self.status, "isOrchestrator": self.is_orchestrator != 0, "purpose": self.purpose,
            "parentSessionId": self.parent_session_id,
            "createdAt": normalize(&self.created_at), "lastActiveAt": normalize(&self.last_active_at),
        })
    }

    pub fn is_finished(&self) -> bool {
        FINISHED_STATUSES.contains(&self.status.as_str())
    }
}

#[derive(Deserialize)]
pub struct GitStateRow {
    pub source_type: Option<String>,
    pub source_pr_number: Option<i64>,
    pub source_issue_number: Option<i64>,
    pub source_repo_full_name: Option<String>,
    pub source_repo_url: Option<String>,
    pub branch: Option<String>,
    pub base_branch: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub commit_count: Option<i64>,
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
    pub pr_state: Option<String>,
    pub pr_url: Option<String>,
    pub pr_created_at: Option<String>,
    pub pr_merged_at: Option<String>,
    pub agent_authored: Option<i64>,
    pub source_pr_state: Option<String>,
    pub source_pr_title: Option<String>,
    pub source_pr_url: Option<String>,
    pub repo_verified: i64,
    pub updated_at: String,
}

/// The caller's session, or 404 (another user's session is indistinguishable from none).
pub async fn owned_session(db: &D1Database, user_id: &str, session_id: &str) -> ApiResult<SessionRow> {
    let row: Option<SessionRow> = crate::q!(
        db,
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1 AND user_id = ?2"),
        &session_id,
        &user_id
    )?
    .one()
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("Session with id '{session_id}' not found")))
}

/// A session's git state row, if it has one.
pub async fn git_state(db: &D1Database, session_id: &str) -> ApiResult<Option<GitStateRow>> {
    Ok(crate::q!(db, "SELECT * FROM session_git_state WHERE session_id = ?1", &session_id)?.one().await?)
}

/// A pull request to link as a session's own (`prNumber`).
pub struct PrLink<'a> {
    pub repo_full_name: Option<&'a str>,
    pub number: i64,
    pub url: Option<&'a str>,
    pub title: Option<&'a str>,
    pub state: Option<&'a str>,
    /// GitHub's id of the PR's repository, when GitHub itself answered with the PR (the
    /// caller's token created it there, which verifies the session's repository of that name).
    pub repo_id: Option<&'a str>,
}

/// Links `pr` as the session's own pull request, creating its git state when it has none.
/// A different PR than the linked one starts from a clean slate (its state comes from GitHub).
pub async fn link_pr(db: &D1Database, session_id: &str, pr: &PrLink<'_>, now: &str) -> ApiResult<()> {
    crate::q!(
        db,
        "INSERT INTO session_git_state (id, session_id, source_type, source_repo_full_name, source_repo_url,
           pr_number, pr_url, pr_title, pr_state, pr_created_at, repo_id, repo_verified, repo_checked_at, created_at, updated_at)
         VALUES (?1, ?2, 'manual', ?3, CASE WHEN ?3 IS NULL THEN NULL ELSE 'https://github.com/' || ?3 END,
           ?4, ?5, ?6, ?7, ?8, ?9, CASE WHEN ?9 IS NULL THEN 0 ELSE 1 END, CASE WHEN ?9 IS NULL THEN NULL ELSE ?8 END, ?8, ?8)
         ON CONFLICT (session_id) DO UPDATE SET
           repo_id = CASE WHEN ?9 IS NOT NULL AND lower(COALESCE(source_repo_full_name, ?3)) = lower(?3) THEN ?9 ELSE repo_id END,
           repo_verified = CASE WHEN ?9 IS NOT NULL AND lower(COALESCE(source_repo_full_name, ?3)) = lower(?3) THEN 1 ELSE repo_verified END,
           repo_checked_at = CASE WHEN ?9 IS NOT NULL AND lower(COALESCE(source_repo_full_name, ?3)) = lower(?3) THEN ?8 ELSE repo_checked_at END,
           pr_state = CASE WHEN pr_number IS ?4 THEN COALESCE(?7, pr_state) ELSE ?7 END,
           pr_title = CASE WHEN pr_number IS ?4 THEN COALESCE(?6, pr_title) ELSE ?6 END,
           pr_url = CASE WHEN pr_number IS ?4 THEN COALESCE(?5, pr_url) ELSE ?5 END,
           pr_merged_at = CASE WHEN pr_number IS ?4 THEN pr_merged_at ELSE NULL END,
           pr_updated_at = CASE WHEN pr_number IS ?4 THEN pr_updated_at ELSE NULL END,
           pr_created_at = CASE WHEN pr_number IS ?4 THEN pr_created_at ELSE ?8 END,
           source_repo_full_name = COALESCE(source_repo_full_name, ?3),
           source_repo_url = COALESCE(source_repo_url, excluded.source_repo_url),
           pr_number = ?4, updated_at = ?8",
        &uuid::Uuid::new_v4().to_string(),
        &session_id,
        &pr.repo_full_name,
        &pr.number,
        &pr.url,
        &pr.title,
        &pr.state,
        &now,
        &pr.repo_id
    )?
    .exec()
    .await?;
    Ok(())
}

/// The caller's live orchestrator session, if any.
pub async fn find_orchestrator(db: &D1Database, user_id: &str) -> ApiResult<Option<SessionRow>> {
    Ok(crate::q!(
        db,
        &format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND is_orchestrator = 1
             ORDER BY CASE WHEN status IN {FINISHED_SQL} THEN 1 ELSE 0 END, created_at DESC LIMIT 1"
        ),
        &user_id
    )?
    .one()
    .await?)
}

/// The caller's live orchestrator, created when missing; `true` when it was created now.
pub async fn ensure_orchestrator(db: &D1Database, user_id: &str, now: i64) -> ApiResult<(SessionRow, bool)> {
    if let Some(s) = find_orchestrator(db, user_id).await?.filter(|s| !s.is_finished()) {
        return Ok((s, false));
    }
    let id = uuid::Uuid::new_v4().to_string();
    // The partial unique index makes a concurrent second insert a no-op.
    crate::q!(
        db,
        "INSERT INTO sessions (id, user_id, workspace, status, title, is_orchestrator, purpose, created_at, last_active_at)
         VALUES (?1, ?2, 'orchestrator', 'idle', 'Orchestrator', 1, 'orchestrator', ?3, ?3) ON CONFLICT DO NOTHING",
        &id,
        &user_id,
        &iso(now)
    )?
    .exec()
    .await?;
    let s = find_orchestrator(db, user_id).await?.ok_or_else(|| ApiError::internal("orchestrator insert vanished"))?;
    let created = s.id == id;
    Ok((s, created))
}

/// Replaces the caller's orchestrator with a fresh one (Telegram `/refresh`): the old one is
/// terminated, its queue cleared, its children and every binding that led to it move to the
/// new one, so nothing the user set up stops working.
pub async fn replace_orchestrator(
    env: &worker::Env,
    db: &D1Database,
    user_id: &str,
    now: i64,
) -> ApiResult<SessionRow> {
    let old = find_orchestrator(db, user_id).await?.filter(|s| !s.is_finished());
    if let Some(old) = &old {
        crate::q!(
            db,
            "UPDATE sessions SET status = 'terminated', last_active_at = ?1 WHERE id = ?2",
            &iso(now),
            &old.id
        )?
        .exec()
        .await?;
        if let Err(e) = SessionAgent::new(env, &old.id).post("/stop", &json!({})).await {
            crate::config::log_error(&format!("orchestrator refresh: stopping the old one failed: {}", e.message));
        }
    }
    let (fresh, _) = ensure_orchestrator(db, user_id, now).await?;
    if let Some(old) = old {
        db.batch_rows(vec![
            crate::q!(
                db,
                "UPDATE channel_bindings SET session_id = ?1, updated_at = ?3 WHERE session_id = ?2 AND user_id = ?4",
                &fresh.id,
                &old.id,
                &iso(now),
                &user_id
            )?,
            crate::q!(
                db,
                "UPDATE sessions SET parent_session_id = ?1 WHERE parent_session_id = ?2 AND user_id = ?3",
                &fresh.id,
                &old.id,
                &user_id
            )?,
        ])
        .await?;
    }
    Ok(fresh)
}

/// The user's sessions, newest first, one page.
pub async fn list(db: &D1Database, user_id: &str, page: &PageQuery) -> ApiResult<Vec<SessionRow>> {
    let select = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1");
    Ok(crate::http::page::newest_first(db, &select, user_id, page).await?)
}

/// The children of a session, oldest first.
pub async fn children(db: &D1Database, user_id: &str, session_id: &str) -> ApiResult<Vec<SessionRow>> {
    Ok(crate::q!(
        db,
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = ?1 AND user_id = ?2 ORDER BY created_at, id"),
        &session_id,
        &user_id
    )?
    .rows()
    .await?
    .results()?)
}

/// How many unfinished sessions the user has.
pub async fn count_live(db: &D1Database, user_id: &str) -> ApiResult<i64> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let live: Option<Count> = crate::q!(
        db,
        &format!("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1 AND status NOT IN {FINISHED_SQL}"),
        &user_id
    )?
    .one()
    .await?;
    Ok(live.map_or(0, |c| c.n))
}

/// A new interactive session and, when it has one, its git state.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub workspace: &'a str,
    pub title: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub now: &'a str,
    pub git: Option<NewGitState<'a>>,
}

/// The repository and source a session starts from, with the outcome of the access check.
pub struct NewGitState<'a> {
    pub source_type: &'a str,
    pub source_pr: Option<i64>,
    pub source_issue: Option<i64>,
    pub repo_full_name: Option<&'a str>,
    pub repo_url: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub git_ref: Option<&'a str>,
    pub repo_id: Option<&'a str>,
    pub repo_verified: i64,
}

/// The statements that write a new session (to run in one batch with whatever else must
/// exist with it, such as its `web` binding).
pub fn insert(db: &D1Database, s: &NewSession<'_>) -> ApiResult<Vec<D1PreparedStatement>> {
    let mut batch = vec![crate::q!(
        db,
        "INSERT INTO sessions (id, user_id, workspace, status, title, parent_session_id, is_orchestrator, purpose, created_at, last_active_at)
         VALUES (?1, ?2, ?3, 'idle', ?4, ?5, 0, 'interactive', ?6, ?6)",
        &s.id,
        &s.user_id,
        &s.workspace,
        &s.title,
        &s.parent,
        &s.now
    )?];
    if let Some(g) = &s.git {
        batch.push(crate::q!(
            db,
            "INSERT INTO session_git_state (id, session_id, source_type, source_pr_number, source_issue_number,
               source_repo_full_name, source_repo_url, branch, ref, repo_id, repo_verified, repo_checked_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?12, CASE WHEN ?12 = 0 THEN NULL ELSE ?10 END, ?10, ?10)",
            &uuid::Uuid::new_v4().to_string(),
            &s.id,
            &g.source_type,
            &g.source_pr,
            &g.source_issue,
            &g.repo_full_name,
            &g.repo_url,
            &g.branch,
            &g.git_ref,
            &s.now,
            &g.repo_id,
            &g.repo_verified
        )?);
    }
    Ok(batch)
}

/// Records what a runner reported: its branch and commit count (each kept when not given).
pub async fn report_progress(
    db: &D1Database,
    session_id: &str,
    branch: Option<&str>,
    commit_count: Option<i64>,
    now: &str,
) -> ApiResult<()> {
    crate::q!(
        db,
        "INSERT INTO session_git_state (id, session_id, source_type, branch, commit_count, created_at, updated_at)
         VALUES (?1, ?2, 'branch', ?3, COALESCE(?4, 0), ?5, ?5)
         ON CONFLICT (session_id) DO UPDATE SET branch = COALESCE(?3, branch),
           commit_count = COALESCE(?4, commit_count), updated_at = ?5",
        &uuid::Uuid::new_v4().to_string(),
        &session_id,
        &branch,
        &commit_count,
        &now
    )?
    .exec()
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_list_of_finished_statuses_is_the_list() {
        let listed = format!("('{}')", FINISHED_STATUSES.join("', '"));
        assert_eq!(FINISHED_SQL, listed);
    }
}
