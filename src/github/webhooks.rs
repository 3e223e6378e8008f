//! `POST /webhooks/github`: verified over the raw bytes before anything happens, fails closed
//! without a secret, idempotent per `X-GitHub-Delivery` (required), and updates only the sessions
//! that track the repository — atomically, then tells each session's `SessionAgent`.
//!
//! Sessions match on the numeric `repository.id` their owner's token was shown by GitHub
//! (`repo_verified = 1`, see `access.rs`), never on a name a client typed: declaring someone
//! else's repository gets a session nothing.
//!
//! Replays: the delivery id is not covered by the signature, so a captured delivery can come
//! back under a fresh id. A PR update therefore applies only when its `pull_request.updated_at`
//! is newer than the stored one, and a push is counted once per (session, `after` SHA).

use crate::db::Batch as _;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;

use crate::config::{log_error, var};
use crate::crypto::verify_hmac_sha256_hex;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::jobs::{self, Job};
use crate::sessions::agent::GitUpdate;
use crate::sessions::store::FINISHED_SQL;
use crate::time::iso;

/// Checks `X-Hub-Signature-256: sha256=<hex>` over the exact body bytes, in constant time.
pub fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    match header.and_then(|h| h.trim().strip_prefix("sha256=")) {
        Some(hex) => verify_hmac_sha256_hex(secret.as_bytes(), body, hex),
        None => false,
    }
}

/// The PR state to record for a `pull_request` delivery (merged, closed or reopened; drafts stay drafts).
pub fn pr_state(action: &str, pr: &Value) -> &'static str {
    let merged = pr["merged_at"].as_str().is_some_and(|s| !s.is_empty())
        || (action == "closed" && pr["merged"].as_bool() == Some(true));
    let draft = pr["draft"].as_bool() == Some(true);
    if merged {
        "merged"
    } else if action == "closed" || pr["state"].as_str() == Some("closed") {
        "closed"
    } else if draft {
        "draft"
    } else {
        "open"
    }
}

/// The payload: JSON, or the `payload` field of a form-encoded delivery.
fn parse_payload(body: &[u8], content_type: Option<&str>) -> Option<Value> {
    if content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        let payload = url::form_urlencoded::parse(body).find(|(k, _)| k == "payload")?.1;
        return serde_json::from_str(&payload).ok();
    }
    serde_json::from_slice(body).ok()
}

pub async fn handle(ctx: &Ctx) -> ApiResult<Reply> {
    let Some(secret) = var(&ctx.env, "GITHUB_WEBHOOK_SECRET") else {
        return Err(ApiError::new(
            503,
            "WEBHOOK_NOT_CONFIGURED",
            "GitHub webhooks are not configured (GITHUB_WEBHOOK_SECRET)",
        ));
    };
    if !signature_valid(&secret, &ctx.raw_body(), ctx.header("X-Hub-Signature-256").as_deref()) {
        return Err(ApiError::new(401, "INVALID_SIGNATURE", "Invalid signature"));
    }
    let event =
        ctx.header("X-GitHub-Event").ok_or_else(|| ApiError::new(400, "MISSING_EVENT", "Missing event header"))?;
    let delivery = match ctx.header("X-GitHub-Delivery") {
        Some(d) if !d.is_empty() && d.len() <= 100 => d,
        _ => {
            return Err(ApiError::new(
                400,
                "MISSING_DELIVERY",
                "Missing or invalid X-GitHub-Delivery header (1-100 characters)",
            ))
        }
    };
    let payload =
        parse_payload(&ctx.raw_body(), ctx.header("Content-Type").as_deref()).ok_or_else(ApiError::invalid_json)?;
    let applied = apply(&ctx.env, &ctx.db()?, &event, &delivery, &payload, ctx.now, true).await?;
    if applied.duplicate {
        return Reply::ok(&json!({ "received": true, "event": event, "deliveryId": delivery, "duplicate": true }));
    }
    Reply::ok(&json!({ "received": true, "event": event, "sessionsUpdated": applied.updated, "deliveryId": delivery }))
}

/// What applying a delivery did.
pub struct Applied {
    /// The delivery id was already recorded: nothing changed.
    pub duplicate: bool,
    /// Sessions whose git state changed.
    pub updated: usize,
}

/// Applies a (verified) delivery: its effects on sessions, their notifications, and (with
/// `upserts`) the stored entities of integrations holding the repository. The PR reconciler
/// applies what it fetched through here too, under a delivery id of its own.
pub async fn apply(
    env: &worker::Env,
    db: &D1Database,
    event: &str,
    delivery: &str,
    payload: &Value,
    now_ms: i64,
    upserts: bool,
) -> ApiResult<Applied> {
    let now = iso(now_ms);

    // One D1 batch (one transaction, one round trip): record the delivery (its row comes back
    // only when this batch inserted it), and apply its effects only if this batch is the one
    // that recorded it. A redelivery changes nothing; a failure rolls everything back so a
    // redelivery can retry.
    let claim = uuid::Uuid::new_v4().to_string();
    let guard = |sql: &str| -> String {
        sql.replace(
            "/*GUARD*/",
            "AND EXISTS (SELECT 1 FROM webhook_deliveries WHERE provider = 'github' AND delivery_id = ?90 AND claim = ?91)",
        )
    };
    let plan = match event {
        "pull_request" => pull_request_plan(payload)?,
        "push" => push_plan(payload)?,
        _ => None,
    };
    let mut stmts = vec![crate::q!(
        db,
        "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at, claim) VALUES ('github', ?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING RETURNING claim",
        &delivery,
        &event,
        &now,
        &claim
    )?];
    // The effects: session rows, their notifications (outbox rows, delivered through the
    // queue), and the stored entities of integrations holding the repository.
    let mut effects: Vec<(String, Vec<wasm_bindgen::JsValue>)> = Vec::new();
    if let Some(p) = &plan {
        effects.extend(p.statements().into_iter().map(|sql| (sql, p.args(&now, &claim))));
    }
    // The entities it changes in the objects of integrations holding the repository: outbox
    // rows, one per integration, delivered through the queue like the notifications.
    let mut upsert_at = None;
    if let Some(service) = crate::integrations::registry::find("github").filter(|_| upserts) {
        if let Some(effect) = crate::integrations::sync_store::webhook_upserts(service, event, payload, &now)? {
            upsert_at = Some(effects.len());
            effects.push(effect);
        }
    }
    let effects_at = stmts.len();
    for (sql, mut args) in effects {
        // ?90 / ?91 are the guard's parameters; the positions in between stay unused.
        args.resize(89, wasm_bindgen::JsValue::NULL);
        args.push(crate::db::Bind::js(&delivery));
        args.push(crate::db::Bind::js(&claim));
        stmts.push(crate::db::prepare(db, &guard(&sql), &args)?);
    }
    let results = db.batch_rows(stmts).await?;
    #[derive(Deserialize)]
    struct Claim {
        claim: Option<String>,
    }
    let recorded: Vec<Claim> = results[0].results()?;
    if recorded.first().and_then(|c| c.claim.as_deref()) != Some(claim.as_str()) {
        return Ok(Applied { duplicate: true, updated: 0 });
    }
    let (mut updated, mut notifications) = (0, 0);
    let roles = plan.as_ref().map(Plan::roles).unwrap_or_default();
    for (role, r) in roles.iter().zip(&results[effects_at..]) {
        let n = r.count();
        if role.counts {
            updated += n;
        }
        if role.notifies {
            notifications += n;
        }
    }
    if let Some(at) = upsert_at {
        notifications += results[effects_at + at].changes();
    }
    if notifications > 0 {
        // Sent before answering; if it is lost, the cron's outbox sweep sends it again.
        if let Err(e) = jobs::send(env, &Job::Outbox { batch: claim.clone() }, 0).await {
            log_error(&format!("github webhook: notification job not enqueued ({}); the cron will", e.message));
        }
    }
    Ok(Applied { duplicate: false, updated })
}

/// What a statement of a plan's effects returns rows for: sessions whose git state it changed
/// (`counts`, the answer's `sessionsUpdated`) and outbox rows it wrote (`notifies`).
#[derive(Clone, Copy)]
struct Role {
    counts: bool,
    notifies: bool,
}

/// What a delivery changes: its SQL (with a `/*GUARD*/` slot), including the outbox rows that
/// tell each touched session.
enum Plan {
    /// A PR's state: sessions whose own PR it is are updated; sessions working on it are told.
    PullRequest {
        /// `repository.id`: sessions match on their verified repository id, never on a name.
        repo_id: Option<String>,
        number: i64,
        state: &'static str,
        title: Option<String>,
        url: Option<String>,
        merged_at: Option<String>,
        /// `pull_request.updated_at`, normalised: an update older than the stored one is stale.
        updated_at: Option<String>,
        /// On `opened`/`reopened` of a same-repository PR: (head branch, author's GitHub id), to
        /// link the PR to its author's live session on that branch.
        link: Option<(String, String)>,
    },
    /// Pushed commits, counted once per (session, `after` SHA) for the pusher's own sessions
    /// on that branch.
    Push { repo_id: Option<String>, branch: String, commits: i64, sender: String, after: String },
}

/// Outbox rows for the sessions a `FROM … WHERE …` selects (`g` is `session_git_state`);
/// `?8` is the batch, `payload` an SQL expression of the update.
fn outbox_insert(suffix: &str, payload: &str, from_where: &str) -> String {
    format!(
        "INSERT INTO outbox (id, batch, kind, target, payload, created_at)
         SELECT ?8 || ':' || g.session_id || ':{suffix}', ?8, '{}', g.session_id, {payload}, ?5 {from_where} /*GUARD*/
         RETURNING target",
        crate::outbox::SESSION_GIT
    )
}

impl Plan {
    fn statements(&self) -> Vec<String> {
        match self {
            Plan::PullRequest { .. } => {
                // The rows this batch's UPDATEs changed carry its claim (`?8`).
                let own = "FROM session_git_state g WHERE g.pr_claim = ?8".to_string();
                let source = "FROM session_git_state g WHERE g.source_pr_claim = ?8".to_string();
                vec![
                    // Link: the author's live session on the PR's head branch, without a PR yet.
                    format!(
                        "UPDATE session_git_state SET pr_number = ?7, pr_created_at = ?5, pr_state = NULL,
                           pr_merged_at = NULL, pr_updated_at = NULL
                         WHERE pr_number IS NULL AND ?12 IS NOT NULL AND repo_id = ?6 AND repo_verified = 1
                           AND branch = ?12
                           AND session_id IN (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
                                               WHERE s.status NOT IN {FINISHED_SQL} AND u.github_id = ?13) /*GUARD*/"
                    ),
                    format!(
                        "UPDATE session_git_state SET pr_state = ?1, pr_title = COALESCE(?2, pr_title), pr_url = COALESCE(?3, pr_url),
                           pr_merged_at = ?4, updated_at = ?5, pr_updated_at = ?11, pr_claim = ?8
                         WHERE repo_id = ?6 AND repo_verified = 1 AND pr_number = ?7
                           AND ?11 IS NOT NULL AND (pr_updated_at IS NULL OR pr_updated_at < ?11)
                           AND session_id IN (SELECT id FROM sessions WHERE status NOT IN {FINISHED_SQL}) /*GUARD*/
                         RETURNING session_id"
                    ),
                    outbox_insert("pr", "?9", &own),
                    // Sessions working on the PR keep its state as `sourcePr*`, in order too.
                    format!(
                        "UPDATE session_git_state SET source_pr_state = ?1, source_pr_title = COALESCE(?2, source_pr_title),
                           source_pr_url = COALESCE(?3, source_pr_url), source_pr_updated_at = ?11, source_pr_claim = ?8
                         WHERE repo_id = ?6 AND repo_verified = 1 AND source_pr_number = ?7
                           AND (pr_number IS NULL OR pr_number <> ?7)
                           AND ?11 IS NOT NULL AND (source_pr_updated_at IS NULL OR source_pr_updated_at < ?11)
                           AND session_id IN (SELECT id FROM sessions WHERE status NOT IN {FINISHED_SQL}) /*GUARD*/"
                    ),
                    outbox_insert("source-pr", "?10", &source),
                ]
            }
            Plan::Push { .. } => {
                // Sessions this batch claimed the (session, SHA) pair for.
                let claimed = "SELECT session_id FROM session_pushes WHERE sha = ?7 AND claim = ?8";
                let touched = format!("FROM session_git_state g WHERE g.session_id IN ({claimed})");
                vec![
                    format!(
                        "INSERT INTO session_pushes (session_id, sha, claim, created_at)
                         SELECT g.session_id, ?7, ?8, ?2 FROM session_git_state g
                         WHERE g.repo_id = ?3 AND g.repo_verified = 1 AND g.branch = ?4
                           AND g.session_id IN (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
                                                 WHERE s.status NOT IN {FINISHED_SQL} AND u.github_id = ?6) /*GUARD*/
                         ON CONFLICT DO NOTHING"
                    ),
                    format!(
                        "UPDATE session_git_state SET commit_count = commit_count + ?1, updated_at = ?2
                         WHERE session_id IN ({claimed}) /*GUARD*/
                         RETURNING session_id"
                    ),
                    // Read after the update in the same transaction: the new commit count.
                    outbox_insert(
                        "push",
                        "json_object('type', 'git-state-update', 'commitCount', g.commit_count, 'branch', ?4)",
                        &touched,
                    ),
                ]
            }
        }
    }

    fn roles(&self) -> Vec<Role> {
        let (none, update, notify, both) = (
            Role { counts: false, notifies: false },
            Role { counts: true, notifies: false },
            Role { counts: false, notifies: true },
            Role { counts: true, notifies: true },
        );
        match self {
            Plan::PullRequest { .. } => vec![none, update, notify, none, both],
            Plan::Push { .. } => vec![none, update, notify],
        }
    }

    /// Parameters `?1…?13` (`?8` the outbox batch and the batch's claim).
    fn args(&self, now: &str, batch: &str) -> Vec<wasm_bindgen::JsValue> {
        use crate::db::Bind;
        match self {
            Plan::PullRequest { repo_id, number, state, title, url, merged_at, updated_at, link } => {
                let update = GitUpdate {
                    kind: Some("git-state-update".into()),
                    pr_state: Some(state.to_string()),
                    pr_title: title.clone(),
                    pr_url: url.clone(),
                    pr_merged_at: merged_at.clone(),
                    ..Default::default()
                };
                let source = GitUpdate { kind: Some("source-pr-update".into()), ..update.clone() };
                let text = |u: &GitUpdate| serde_json::to_string(u).unwrap_or_default();
                vec![
                    state.js(),
                    title.js(),
                    url.js(),
                    merged_at.js(),
                    now.js(),
                    repo_id.js(),
                    number.js(),
                    batch.js(),
                    text(&update).js(),
                    text(&source).js(),
                    updated_at.js(),
                    link.as_ref().map(|l| l.0.as_str()).js(),
                    link.as_ref().map(|l| l.1.as_str()).js(),
                ]
            }
            Plan::Push { repo_id, branch, commits, sender, after } => {
                // ?5 is `now` for the outbox insert; ?2 for the update.
                vec![commits.js(), now.js(), repo_id.js(), branch.js(), now.js(), sender.js(), after.js(), batch.js()]
            }
        }
    }
}

fn pull_request_plan(p: &Value) -> ApiResult<Option<Plan>> {
    let (Some(repo), Some(number)) = (p["repository"]["full_name"].as_str(), p["pull_request"]["number"].as_i64())
    else {
        return Err(ApiError::invalid_field("pull_request", "Missing repository.full_name or pull_request.number"));
    };
    let repo_id = p["repository"]["id"].as_i64();
    let pr = &p["pull_request"];
    let action = p["action"].as_str().unwrap_or("");
    // Only same-repository PRs link: a fork's branch is not the session's repository.
    let head = &pr["head"]["repo"];
    let same_repo = match (head["id"].as_i64(), repo_id) {
        (Some(h), Some(r)) => h == r,
        _ => head["full_name"].as_str().is_some_and(|h| h.eq_ignore_ascii_case(repo)),
    };
    let link = match (pr["head"]["ref"].as_str(), pr["user"]["id"].as_i64()) {
        (Some(branch), Some(author)) if same_repo && matches!(action, "opened" | "reopened") => {
            Some((branch.to_string(), author.to_string()))
        }
        _ => None,
    };
    Ok(Some(Plan::PullRequest {
        repo_id: repo_id.map(|i| i.to_string()),
        number,
        state: pr_state(action, pr),
        title: pr["title"].as_str().map(str::to_string),
        url: pr["html_url"].as_str().map(str::to_string),
        merged_at: pr["merged_at"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        updated_at: pr["updated_at"].as_str().and_then(crate::time::parse_iso).map(iso),
        link,
    }))
}

fn push_plan(p: &Value) -> ApiResult<Option<Plan>> {
    let (Some(git_ref), Some(_)) = (p["ref"].as_str(), p["repository"]["full_name"].as_str()) else {
        return Err(ApiError::invalid_field("ref", "Missing ref or repository.full_name"));
    };
    let commits = p["commits"].as_array().map(Vec::len).unwrap_or(0) as i64;
    // Tags, branch deletions and empty pushes change no session.
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else { return Ok(None) };
    if commits == 0 || p["deleted"].as_bool() == Some(true) {
        return Ok(None);
    }
    let Some(sender) = p["sender"]["id"].as_i64().map(|i| i.to_string()) else { return Ok(None) };
    let after = p["after"]
        .as_str()
        .filter(|a| (7..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::invalid_field("after", "Missing or invalid head commit SHA"))?;
    Ok(Some(Plan::Push {
        repo_id: p["repository"]["id"].as_i64().map(|i| i.to_string()),
        branch: branch.to_string(),
        commits,
        sender,
        after: after.to_ascii_lowercase(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_states() {
        let pr = |state: &str, draft: bool, merged_at: Option<&str>| json!({ "state": state, "draft": draft, "merged_at": merged_at });
        assert_eq!(pr_state("opened", &pr("open", false, None)), "open");
        assert_eq!(pr_state("opened", &pr("open", true, None)), "draft");
        assert_eq!(pr_state("ready_for_review", &pr("open", false, None)), "open");
        assert_eq!(pr_state("converted_to_draft", &pr("open", true, None)), "draft");
        assert_eq!(pr_state("closed", &pr("closed", false, None)), "closed");
        assert_eq!(pr_state("closed", &pr("closed", false, Some("2026-01-01T00:00:00Z"))), "merged");
        assert_eq!(pr_state("closed", &json!({ "state": "closed", "merged": true })), "merged");
        assert_eq!(pr_state("edited", &pr("closed", false, None)), "closed");
        assert_eq!(pr_state("reopened", &pr("open", false, None)), "open");
    }

    #[test]
    fn signatures_over_raw_bytes() {
        let body = b"{\"zen\": \"caf\\u00e9\",\n  \"n\": 1.0}";
        let sig = format!("sha256={}", crate::crypto::hex(&crate::crypto::hmac_sha256(b"s3cret", body)));
        assert!(signature_valid("s3cret", body, Some(&sig)));
        assert!(!signature_valid("other", body, Some(&sig)));
        assert!(!signature_valid("s3cret", b"{\"zen\":\"caf\xc3\xa9\",\"n\":1}", Some(&sig)));
        assert!(!signature_valid("s3cret", body, None));
        assert!(!signature_valid("s3cret", body, Some(sig.trim_start_matches("sha256="))));
    }

    #[test]
    fn form_encoded_payloads() {
        let v = parse_payload(b"payload=%7B%22a%22%3A1%7D", Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(v["a"], 1);
        assert!(parse_payload(b"{oops", Some("application/json")).is_none());
    }
}
