//! The session registry (D1) and the routes that read and drive a session's `SessionAgent`.

pub mod agent;
pub mod prompt;
pub mod repo;

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

use crate::channels::scope::{scope_key, ChannelType};
use crate::github::access::{self, Access};
use crate::http::input::Input;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};
use agent::{CompleteRequest, SessionAgent};
use repo::RepoRef;

/// Statuses in which a session no longer takes work.
/// Live (unfinished) sessions one user may have.
pub const MAX_LIVE_SESSIONS: i64 = 1_000;

pub const FINISHED_STATUSES: [&str; 3] = ["terminated", "archived", "error"];

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
struct GitStateRow {
    source_type: Option<String>,
    source_pr_number: Option<i64>,
    source_issue_number: Option<i64>,
    source_repo_full_name: Option<String>,
    source_repo_url: Option<String>,
    branch: Option<String>,
    base_branch: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    commit_count: Option<i64>,
    pr_number: Option<i64>,
    pr_title: Option<String>,
    pr_state: Option<String>,
    pr_url: Option<String>,
    pr_created_at: Option<String>,
    pr_merged_at: Option<String>,
    agent_authored: Option<i64>,
    source_pr_state: Option<String>,
    source_pr_title: Option<String>,
    source_pr_url: Option<String>,
    repo_verified: i64,
    updated_at: String,
}

impl GitStateRow {
    fn view(&self) -> Value {
        json!({
            "sourceType": self.source_type, "sourcePrNumber": self.source_pr_number,
            "sourceIssueNumber": self.source_issue_number, "sourceRepoFullName": self.source_repo_full_name,
            "sourceRepoUrl": self.source_repo_url, "branch": self.branch, "baseBranch": self.base_branch,
            "ref": self.git_ref, "commitCount": self.commit_count.unwrap_or(0), "prNumber": self.pr_number,
            "prTitle": self.pr_title, "prState": self.pr_state, "prUrl": self.pr_url,
            "prCreatedAt": self.pr_created_at, "prMergedAt": self.pr_merged_at,
            "sourcePrState": self.source_pr_state, "sourcePrTitle": self.source_pr_title,
            "sourcePrUrl": self.source_pr_url,
            // PR and push data reach a session only once its owner's token has shown GitHub's
            // repository to us (`pending` until then, `denied` when GitHub refused).
            "repoVerified": self.repo_verified == access::VERIFIED,
            "repoAccess": self.source_repo_full_name.as_ref().map(|_| access::label(self.repo_verified)),
            "agentAuthored": self.agent_authored.unwrap_or(1) != 0, "updatedAt": normalize(&self.updated_at),
        })
    }
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

async fn git_state(db: &D1Database, session_id: &str) -> ApiResult<Option<Value>> {
    let row: Option<GitStateRow> =
        crate::q!(db, "SELECT * FROM session_git_state WHERE session_id = ?1", &session_id)?.one().await?;
    Ok(row.map(|r| r.view()))
}

/// `POST /api/sessions` → 201 `{session}`: the session, its git state and its `web` binding,
/// written in one batch (all or nothing).
pub async fn create(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let workspace = input.str("workspace", 1, 100);
    let title = input.opt_str("title", 1, 200);
    let repo_url = input.opt_str("repoUrl", 1, 500);
    let branch = input.opt_str("branch", 1, 255);
    let git_ref = input.opt_str("ref", 1, 255);
    let parent = input.opt_str("parentSessionId", 1, 100);
    let source_type = input.opt_enum("sourceType", &["pr", "issue", "branch", "manual"], |s| {
        ["pr", "issue", "branch", "manual"].contains(&s).then(|| s.to_string())
    });
    let source_pr = input.opt_int("sourcePrNumber", 1, 1_000_000_000);
    let source_issue = input.opt_int("sourceIssueNumber", 1, 1_000_000_000);
    let explicit_repo = input.opt_str("sourceRepoFullName", 3, 140);
    let mut repo = None;
    if let Some(url) = &repo_url {
        match RepoRef::parse(url) {
            Some(r) => repo = Some(r),
            None => input.error("repoUrl", "Expected a repository URL or owner/name"),
        }
    }
    if let Some(full) = &explicit_repo {
        match RepoRef::parse_full_name(full) {
            Some(r) => repo = Some(r),
            None => input.error("sourceRepoFullName", "Expected owner/name"),
        }
    }
    input.finish()?;

    let db = ctx.db()?;
    if let Some(p) = &parent {
        owned_session(&db, &caller.id, p)
            .await
            .map_err(|_| ApiError::invalid_field("parentSessionId", "No such session"))?;
    }
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let live: Option<Count> = crate::q!(
        &db,
        &format!(
            "SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1 AND status NOT IN ('{}')",
            FINISHED_STATUSES.join("', '")
        ),
        &caller.id
    )?
    .one()
    .await?;
    if live.is_some_and(|c| c.n >= MAX_LIVE_SESSIONS) {
        return Err(crate::http::limit_reached("live sessions", MAX_LIVE_SESSIONS));
    }
    // The repository is checked with the owner's token now; without one (or while GitHub is
    // unreachable) the check stays pending and the PR reconciler repeats it.
    let access = match &repo {
        Some(r) => verify_repo(ctx, &caller.id, r).await,
        None => Access::Pending,
    };
    let (repo_id, repo_verified) = access.columns();
    let id = uuid::Uuid::new_v4().to_string();
    let now = iso(ctx.now);
    let mut batch = vec![crate::q!(
        &db,
        "INSERT INTO sessions (id, user_id, workspace, status, title, parent_session_id, is_orchestrator, purpose, created_at, last_active_at)
         VALUES (?1, ?2, ?3, 'idle', ?4, ?5, 0, 'interactive', ?6, ?6)",
        &id,
        &caller.id,
        &workspace,
        &title,
        &parent,
        &now
    )?];
    let has_git = repo.is_some()
        || branch.is_some()
        || git_ref.is_some()
        || source_type.is_some()
        || source_pr.is_some()
        || source_issue.is_some();
    if has_git {
        let full_name = repo.as_ref().map(RepoRef::full_name);
        let url = repo_url.clone().or_else(|| full_name.as_ref().map(|f| format!("https://github.com/{f}")));
        let source_type = source_type.or_else(|| {
            Some(
                if source_pr.is_some() {
                    "pr"
                } else if source_issue.is_some() {
                    "issue"
                } else if branch.is_some() {
                    "branch"
                } else {
                    "manual"
                }
                .to_string(),
            )
        });
        batch.push(crate::q!(
            &db,
            "INSERT INTO session_git_state (id, session_id, source_type, source_pr_number, source_issue_number,
               source_repo_full_name, source_repo_url, branch, ref, repo_id, repo_verified, repo_checked_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?12, CASE WHEN ?12 = 0 THEN NULL ELSE ?10 END, ?10, ?10)",
            &uuid::Uuid::new_v4().to_string(),
            &id,
            &source_type,
            &source_pr,
            &source_issue,
            &full_name,
            &url,
            &branch,
            &git_ref,
            &now,
            &repo_id,
            &repo_verified
        )?);
    }
    batch.push(crate::q!(
        &db,
        "INSERT INTO channel_bindings (id, session_id, channel_type, channel_id, scope_key, user_id, queue_mode, collect_debounce_ms, created_at, updated_at)
         VALUES (?1, ?2, 'web', ?2, ?3, ?4, 'followup', 3000, ?5, ?5)",
        &uuid::Uuid::new_v4().to_string(),
        &id,
        &scope_key(&caller.id, ChannelType::Web, &id),
        &caller.id,
        &now
    )?);
    db.batch_rows(batch).await?;
    let session = owned_session(&db, &caller.id, &id).await?;
    let mut view = session.view();
    view["gitState"] = git_state(&db, &id).await?.unwrap_or(Value::Null);
    Reply::json(201, &json!({ "session": view }))
}

/// Whether the owner's GitHub token can read `repo` (pending when there is no token or GitHub
/// cannot be asked now).
async fn verify_repo(ctx: &Ctx, user_id: &str, repo: &RepoRef) -> Access {
    let token = match crate::github::token::load(ctx, user_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return Access::Pending,
        Err(e) => {
            crate::config::log_error(&format!("session repository check: {}", e.message));
            return Access::Pending;
        }
    };
    let api = crate::github::api_url(&ctx.env);
    access::check(&crate::outbound::Net, &api, &token, repo).await.unwrap_or(Access::Pending)
}

/// `GET /api/sessions?limit&cursor` → `{sessions, cursor?, hasMore}` (newest first).
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let page = PageQuery::parse(&ctx.query, 50)?;
    let db = ctx.db()?;
    let select = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1");
    let rows: Vec<SessionRow> = crate::db::newest_first(&db, &select, &caller.id, &page).await?;
    Reply::ok(&page_body("sessions", &rows, page.limit, SessionRow::view))
}

/// `GET /api/sessions/:id` → `{session: {…, gitState}}`.
pub async fn get(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let mut view = session.view();
    view["gitState"] = git_state(&db, &session.id).await?.unwrap_or(Value::Null);
    Reply::ok(&json!({ "session": view }))
}

/// `GET /api/sessions/:id/git-state` → `{gitState}` (null when the session has no repository).
pub async fn get_git_state(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    Reply::ok(&json!({ "gitState": git_state(&db, &session.id).await? }))
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

/// `PUT /api/sessions/:id/git-state` `{branch?, prNumber?, prUrl?, commitCount?}` → `{gitState}`:
/// the runner reports what it did (owner only; a finished session takes no reports).
pub async fn put_git_state(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let branch = input.opt_str("branch", 1, 255);
    let pr_number = input.opt_int("prNumber", 1, 1_000_000_000);
    let pr_url = input.opt_str("prUrl", 1, 500);
    let commit_count = input.opt_int("commitCount", 0, 1_000_000_000);
    if let Some(u) = &pr_url {
        if crate::http::parse_url(u).map(|u| u.scheme() != "https").unwrap_or(true) {
            input.error("prUrl", "Must be an https URL");
        }
    }
    if pr_url.is_some() && pr_number.is_none() {
        input.error("prNumber", "Required with prUrl");
    }
    if branch.is_none() && pr_number.is_none() && commit_count.is_none() {
        input.error("", "Give at least one of branch, prNumber, prUrl, commitCount");
    }
    input.finish()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    if session.is_finished() {
        return Err(ApiError::conflict("SESSION_FINISHED", format!("Session is {}", session.status)));
    }
    let now = iso(ctx.now);
    if let Some(number) = pr_number {
        let pr =
            PrLink { repo_full_name: None, number, url: pr_url.as_deref(), title: None, state: None, repo_id: None };
        link_pr(&db, &session.id, &pr, &now).await?;
    }
    if branch.is_some() || commit_count.is_some() {
        crate::q!(
            &db,
            "INSERT INTO session_git_state (id, session_id, source_type, branch, commit_count, created_at, updated_at)
             VALUES (?1, ?2, 'branch', ?3, COALESCE(?4, 0), ?5, ?5)
             ON CONFLICT (session_id) DO UPDATE SET branch = COALESCE(?3, branch),
               commit_count = COALESCE(?4, commit_count), updated_at = ?5",
            &uuid::Uuid::new_v4().to_string(),
            &session.id,
            &branch,
            &commit_count,
            &now
        )?
        .exec()
        .await?;
    }
    Reply::ok(&json!({ "gitState": git_state(&db, &session.id).await? }))
}

/// `GET /api/sessions/:id/children` → `{sessions}` (oldest first).
pub async fn children(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let rows: Vec<SessionRow> = crate::q!(
        &db,
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = ?1 AND user_id = ?2 ORDER BY created_at, id"),
        &session.id,
        &caller.id
    )?
    .rows()
    .await?
    .results()?;
    Reply::ok(&json!({ "sessions": rows.iter().map(SessionRow::view).collect::<Vec<_>>() }))
}

/// The caller's live orchestrator session, if any.
pub async fn find_orchestrator(db: &D1Database, user_id: &str) -> ApiResult<Option<SessionRow>> {
    Ok(crate::q!(
        db,
        &format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND is_orchestrator = 1
             ORDER BY CASE WHEN status IN ('terminated', 'archived', 'error') THEN 1 ELSE 0 END, created_at DESC LIMIT 1"
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

/// `POST /api/me/orchestrator` → `{session}`: 201 when created, 200 when it already exists.
pub async fn orchestrator(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let (s, created) = ensure_orchestrator(&ctx.db()?, &caller.id, ctx.now).await?;
    Reply::json(if created { 201 } else { 200 }, &json!({ "session": s.view() }))
}

/// `GET /api/sessions/:id/{messages,queue,events}?limit&cursor`: the session object's logs,
/// owner only, a page at a time (`{<items>, hasMore, cursor?}`).
pub async fn read(ctx: &Ctx, what: &str) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let limit = ctx.query.limit(100)?;
    let cursor = ctx.query.get("cursor").unwrap_or("");
    if cursor.len() > 40 || !cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::invalid_field("cursor", "Invalid cursor"));
    }
    let session = owned_session(&ctx.db()?, &caller.id, ctx.params.get("id")).await?;
    let r = SessionAgent::new(&ctx.env, &session.id).get(&format!("/{what}?limit={limit}&cursor={cursor}")).await?;
    match r.status {
        200 => Ok(Reply::raw_json(r.text)),
        400 => Err(ApiError::invalid_field("cursor", "Invalid cursor")),
        s => Err(ApiError::internal(format!("SessionAgent /{what} answered {s}"))),
    }
}

/// A prompt id from the path, checked before it becomes part of a Durable Object path.
fn prompt_id(ctx: &Ctx) -> ApiResult<String> {
    let id = ctx.params.get("promptId");
    if crate::http::input::is_uuid(id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::not_found("Prompt not found"))
    }
}

/// `POST /api/sessions/:id/queue/:promptId/heartbeat`: the runner is still working on a claimed
/// prompt; its lease (15 minutes by default) is renewed.
pub async fn heartbeat(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let id = prompt_id(ctx)?;
    let session = owned_session(&ctx.db()?, &caller.id, ctx.params.get("id")).await?;
    let r = SessionAgent::new(&ctx.env, &session.id).post(&format!("/heartbeat/{id}"), &json!({})).await?;
    match r.status {
        200 => Ok(Reply::raw_json(r.text)),
        409 => Err(ApiError::conflict("PROMPT_NOT_PROCESSING", r.message())),
        s => Err(ApiError::internal(format!("heartbeat answered {s}"))),
    }
}

/// `POST /api/sessions/:id/queue/claim` → 200 `{prompt}` (with attachment data), 204 when the
/// queue is empty, 409 `PROMPT_IN_PROGRESS` while one is being processed.
pub async fn claim(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let session = owned_session(&ctx.db()?, &caller.id, ctx.params.get("id")).await?;
    let r = SessionAgent::new(&ctx.env, &session.id).post("/claim", &json!({})).await?;
    match r.status {
        200 => Ok(Reply::raw_json(r.text)),
        204 => Ok(Reply::no_content()),
        409 => Err(ApiError::conflict("PROMPT_IN_PROGRESS", "A prompt is already being processed")
            .with_details(r.json::<Value>()?["details"].clone())),
        s => Err(ApiError::internal(format!("claim answered {s}"))),
    }
}

/// `POST /api/sessions/:id/queue/:promptId/complete` with `{result?, error?}`.
pub async fn complete(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let result = input.opt_str("result", 0, 1_000_000);
    let error = input.opt_str("error", 1, 2_000);
    input.finish()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let path = format!("/complete/{}", prompt_id(ctx)?);
    let r = SessionAgent::new(&ctx.env, &session.id)
        .post(&path, &CompleteRequest { result: result.clone(), error })
        .await?;
    match r.status {
        200 => {
            let done: Value = r.json()?;
            let mut body = json!({ "success": true });
            // A prompt from a Telegram chat or a Slack thread gets its result back there.
            if let (Some(kind @ ("telegram" | "slack")), Some(chat), Some(text)) = (
                done["channelType"].as_str(),
                done["channelId"].as_str(),
                result.as_deref().filter(|t| !t.trim().is_empty()),
            ) {
                let sent = if kind == "slack" {
                    crate::slack::reply::deliver_text(&ctx.env, &db, &caller.id, chat, text).await
                } else {
                    crate::telegram::reply::deliver_text(&ctx.env, &db, &caller.id, chat, text).await
                };
                body["reply"] = match sent {
                    Ok(parts) => json!({ "channelType": kind, "channelId": chat, "delivered": true, "parts": parts }),
                    Err(e) => {
                        crate::config::log_error(&format!("reply to {kind} failed: {}", e.message));
                        json!({ "channelType": kind, "channelId": chat, "delivered": false, "error": e.message })
                    }
                };
            }
            Reply::ok(&body)
        }
        404 => Err(ApiError::not_found("Prompt not found")),
        409 => {
            let code: &'static str = match r.code().as_str() {
                "PROMPT_ABORTED" => "PROMPT_ABORTED",
                "PROMPT_NOT_CLAIMED" => "PROMPT_NOT_CLAIMED",
                _ => "PROMPT_ALREADY_COMPLETED",
            };
            let message = r.json::<Value>()?["error"].as_str().unwrap_or("Conflict").to_string();
            Err(ApiError::conflict(code, message))
        }
        s => Err(ApiError::internal(format!("complete answered {s}"))),
    }
}

/// `POST /api/sessions/:id/queue/clear` and `POST /api/sessions/:id/stop`.
pub async fn clear(ctx: &Ctx, stop: bool) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let session = owned_session(&ctx.db()?, &caller.id, ctx.params.get("id")).await?;
    let r =
        SessionAgent::new(&ctx.env, &session.id).post(if stop { "/stop" } else { "/clear-queue" }, &json!({})).await?;
    if r.status == 200 {
        Ok(Reply::raw_json(r.text))
    } else {
        Err(ApiError::internal(format!("clear answered {}", r.status)))
    }
}
