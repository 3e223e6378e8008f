//! The sessions API: create, read and drive a session (its git state, children, and the
//! `SessionAgent`'s messages, queue and events). Handlers read as steps over the sessions store;
//! a completed prompt that came from a chat gets its answer back through `channels::delivery`.

use crate::db::Batch as _;
use serde_json::{json, Value};

use super::agent::{CompleteRequest, SessionAgent};
use super::store::{self, owned_session, GitStateRow, NewGitState, NewSession, PrLink, SessionRow};
use crate::channels::scope::{scope_key, ChannelType};
use crate::github::access::{self, Access};
use crate::github::repo::RepoRef;
use crate::http::input::Input;
use crate::http::page::{page_body, PageQuery};
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};

/// The API shape of a session's git state.
fn git_view(g: &GitStateRow) -> Value {
    {
        json!({
            "sourceType": g.source_type, "sourcePrNumber": g.source_pr_number,
            "sourceIssueNumber": g.source_issue_number, "sourceRepoFullName": g.source_repo_full_name,
            "sourceRepoUrl": g.source_repo_url, "branch": g.branch, "baseBranch": g.base_branch,
            "ref": g.git_ref, "commitCount": g.commit_count.unwrap_or(0), "prNumber": g.pr_number,
            "prTitle": g.pr_title, "prState": g.pr_state, "prUrl": g.pr_url,
            "prCreatedAt": g.pr_created_at, "prMergedAt": g.pr_merged_at,
            "sourcePrState": g.source_pr_state, "sourcePrTitle": g.source_pr_title,
            "sourcePrUrl": g.source_pr_url,
            // PR and push data reach a session only once its owner's token has shown GitHub's
            // repository to us (`pending` until then, `denied` when GitHub refused).
            "repoVerified": g.repo_verified == access::VERIFIED,
            "repoAccess": g.source_repo_full_name.as_ref().map(|_| access::label(g.repo_verified)),
            "agentAuthored": g.agent_authored.unwrap_or(1) != 0, "updatedAt": normalize(&g.updated_at),
        })
    }
}

async fn git_state(db: &worker::d1::D1Database, session_id: &str) -> ApiResult<Option<Value>> {
    Ok(store::git_state(db, session_id).await?.as_ref().map(git_view))
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
    if store::count_live(&db, &caller.id).await? >= store::MAX_LIVE_SESSIONS {
        return Err(crate::http::limit_reached("live sessions", store::MAX_LIVE_SESSIONS));
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
    let has_git = repo.is_some()
        || branch.is_some()
        || git_ref.is_some()
        || source_type.is_some()
        || source_pr.is_some()
        || source_issue.is_some();
    let full_name = repo.as_ref().map(RepoRef::full_name);
    let url = repo_url.clone().or_else(|| full_name.as_ref().map(|f| format!("https://github.com/{f}")));
    let source_type = source_type.unwrap_or_else(|| {
        if source_pr.is_some() {
            "pr"
        } else if source_issue.is_some() {
            "issue"
        } else if branch.is_some() {
            "branch"
        } else {
            "manual"
        }
        .to_string()
    });
    let session = NewSession {
        id: &id,
        user_id: &caller.id,
        workspace: &workspace,
        title: title.as_deref(),
        parent: parent.as_deref(),
        now: &now,
        git: has_git.then(|| NewGitState {
            source_type: &source_type,
            source_pr,
            source_issue,
            repo_full_name: full_name.as_deref(),
            repo_url: url.as_deref(),
            branch: branch.as_deref(),
            git_ref: git_ref.as_deref(),
            repo_id,
            repo_verified,
        }),
    };
    let mut batch = store::insert(&db, &session)?;
    let web = scope_key(&caller.id, ChannelType::Web, &id);
    batch.push(crate::channels::store::insert_web_binding(&db, &id, &web, &caller.id, &now)?);
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
    let rows = store::list(&db, &caller.id, &page).await?;
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
        store::link_pr(&db, &session.id, &pr, &now).await?;
    }
    if branch.is_some() || commit_count.is_some() {
        store::report_progress(&db, &session.id, branch.as_deref(), commit_count, &now).await?;
    }
    Reply::ok(&json!({ "gitState": git_state(&db, &session.id).await? }))
}

/// `GET /api/sessions/:id/children` → `{sessions}` (oldest first).
pub async fn children(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let session = owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let rows = store::children(&db, &caller.id, &session.id).await?;
    Reply::ok(&json!({ "sessions": rows.iter().map(SessionRow::view).collect::<Vec<_>>() }))
}

/// `POST /api/me/orchestrator` → `{session}`: 201 when created, 200 when it already exists.
pub async fn orchestrator(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let (s, created) = store::ensure_orchestrator(&ctx.db()?, &caller.id, ctx.now).await?;
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
            if let (Some(kind), Some(chat), Some(text)) = (
                done["channelType"].as_str(),
                done["channelId"].as_str(),
                result.as_deref().filter(|t| !t.trim().is_empty()),
            ) {
                if let Some(sent) =
                    crate::channels::delivery::deliver_result(&ctx.env, &db, &caller.id, kind, chat, text).await
                {
                    body["reply"] = sent;
                }
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
