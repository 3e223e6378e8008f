//! The PR reconciler: a webhook that never arrived is made up for within
//! minutes. Every minute the cron enqueues one `Job::Reconcile`; the consumer claims the live
//! sessions that are due — a repository not verified yet, or an open own/source PR — and not
//! looked at for `PR_RECONCILE_INTERVAL_SECONDS` (default 5 minutes, so one PR costs its owner
//! at most 12 GitHub calls an hour, where the original spent up to 100 a minute). Access once
//! verified or denied is confirmed again daily. Each PR is
//! fetched once per run with an owner's token and applied exactly as a `pull_request`
//! delivery would be (same ordering rule, same notifications through the outbox). A run stays
//! inside its subrequest budget, skips the owners whose token hit GitHub's rate limit, and
//! enqueues its continuation when it filled its batch.

use crate::db::Batch as _;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::json;
use worker::Env;

use super::access::{self, Access};
use super::client::{GhError, GitHub};
use super::repo::RepoRef;
use crate::config::{log_error, var};
use crate::http::ApiResult;
use crate::outbound::{segment, Net};
use crate::sessions::store::FINISHED_SQL;
use crate::time::{iso, now_ms};

const DEFAULT_INTERVAL_SECS: i64 = 300;
/// Verified access is confirmed again after this long (access can be taken away).
const RECHECK_MS: i64 = 24 * 3600 * 1000;
/// Rows one run claims at most.
const MAX_ROWS: u32 = 25;
/// Subrequests a row may cost: a token read, a repository check, two PR fetches, and the
/// D1 batch, outbox message and row update that apply them.
const ROW_COST: u32 = 5;

/// PR states that can still change.
fn open(state: &Option<String>) -> bool {
    matches!(state.as_deref(), None | Some("open" | "draft"))
}

#[derive(Deserialize)]
struct Due {
    session_id: String,
    user_id: String,
    full_name: String,
    repo_id: Option<String>,
    repo_verified: i64,
    repo_checked_at: Option<String>,
    pr_number: Option<i64>,
    pr_state: Option<String>,
    source_pr_number: Option<i64>,
    source_pr_state: Option<String>,
}

impl Due {
    /// The PR numbers of this session that may be stale.
    fn wanted(&self) -> Vec<i64> {
        let mut n = Vec::new();
        if let Some(p) = self.pr_number.filter(|_| open(&self.pr_state)) {
            n.push(p);
        }
        if let Some(p) = self.source_pr_number.filter(|s| open(&self.source_pr_state) && Some(*s) != self.pr_number) {
            n.push(p);
        }
        n
    }
}

/// What a run did: subrequests used and whether more rows are probably due.
pub struct Outcome {
    pub used: u32,
    pub more: bool,
}

/// One run within `budget` subrequests.
pub async fn run(env: &Env, budget: u32) -> ApiResult<Outcome> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let interval =
        var(env, "PR_RECONCILE_INTERVAL_SECONDS").and_then(|v| v.parse::<i64>().ok()).unwrap_or(DEFAULT_INTERVAL_SECS);
    let limit = (budget.saturating_sub(2) / ROW_COST).clamp(1, MAX_ROWS);
    let claim = uuid::Uuid::new_v4().to_string();
    // Claim the due rows (marking them looked-at) and read them back in one round trip; a
    // concurrent run claims others.
    let results = db
        .batch_rows(vec![
            crate::q!(
                &db,
                &format!(
                    "UPDATE session_git_state SET reconciled_at = ?1, reconcile_claim = ?2
                 WHERE session_id IN (
                   SELECT g.session_id FROM session_git_state g JOIN sessions s ON s.id = g.session_id
                   WHERE s.status NOT IN {FINISHED_SQL} AND g.source_repo_full_name IS NOT NULL
                     AND (g.reconciled_at IS NULL OR g.reconciled_at <= ?3)
                     AND (g.repo_verified = 0 OR g.repo_checked_at IS NULL OR g.repo_checked_at <= ?5
                          OR (g.pr_number IS NOT NULL AND (g.pr_state IS NULL OR g.pr_state IN ('open', 'draft')))
                          OR (g.source_pr_number IS NOT NULL AND (g.source_pr_state IS NULL OR g.source_pr_state IN ('open', 'draft'))))
                     AND EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.user_id = s.user_id AND t.provider = 'github')
                   ORDER BY g.reconciled_at IS NOT NULL, g.reconciled_at LIMIT ?4)"
                ),
                &iso(now),
                &claim,
                &iso(now - interval * 1000),
                &limit,
                &iso(now - RECHECK_MS)
            )?,
            crate::q!(
                &db,
                "SELECT g.session_id, s.user_id, g.source_repo_full_name AS full_name, g.repo_id, g.repo_verified,
                   g.repo_checked_at, g.pr_number, g.pr_state, g.source_pr_number, g.source_pr_state
                 FROM session_git_state g JOIN sessions s ON s.id = g.session_id
                 WHERE g.reconcile_claim = ?1 ORDER BY g.session_id",
                &claim
            )?,
        ])
        .await?;
    let rows: Vec<Due> = results.get(1).map(|r| r.results()).transpose()?.unwrap_or_default();
    let mut used = 1;
    if rows.is_empty() {
        return Ok(Outcome { used, more: false });
    }
    let keys = crate::config::keyring(env)?;
    let api = super::api_url(env);
    let mut tokens: HashMap<String, Option<String>> = HashMap::new();
    let mut fetched: HashSet<(String, i64)> = HashSet::new();
    let mut verdicts = Vec::new();
    let mut deliveries = Vec::new();
    let mut stopped = false;
    // Owners whose token hit GitHub's rate limit in this run: their rows wait for their next
    // turn (one interval), everyone else's go on (one user's exhausted quota must not starve the others).
    let mut limited = 0u32;
    for row in &rows {
        if used + ROW_COST > budget {
            stopped = true;
            break;
        }
        if !tokens.contains_key(&row.user_id) {
            used += 1;
            let token = super::token::load_with(&db, &keys, &row.user_id).await?;
            tokens.insert(row.user_id.clone(), token);
        }
        let Some(token) = tokens[&row.user_id].clone() else { continue };
        let Some(repo) = RepoRef::parse_full_name(&row.full_name) else { continue };
        let mut repo_id = row.repo_id.clone().filter(|_| row.repo_verified == access::VERIFIED);
        let recheck = row.repo_checked_at.as_deref().is_none_or(|at| at <= iso(now - RECHECK_MS).as_str());
        if repo_id.is_none() || recheck {
            used += 1;
            match access::check(&Net, &api, &token, &repo).await {
                Err(_) => {
                    tokens.insert(row.user_id.clone(), None);
                    limited += 1;
                    continue;
                }
                // GitHub could not say: a verified repository stays verified until it refuses.
                Ok(Access::Pending) if repo_id.is_some() => {}
                Ok(verdict) => {
                    repo_id = match &verdict {
                        Access::Verified(id) => Some(id.clone()),
                        _ => None,
                    };
                    verdicts.push((row.session_id.clone(), verdict));
                }
            }
        }
        let Some(repo_id) = repo_id else { continue };
        let gh = GitHub::over(&Net, &api, &token);
        for number in row.wanted() {
            if !fetched.insert((repo_id.clone(), number)) {
                continue;
            }
            used += 1;
            let path = format!("/repos/{}/{}/pulls/{number}", segment(&repo.owner), segment(&repo.name));
            let pr = match gh.get(&path).await {
                Ok(r) => match r.json::<serde_json::Value>() {
                    Some(pr) => pr,
                    None => continue,
                },
                Err(GhError::RateLimited(_)) => {
                    // Another owner's token may still fetch it in this run.
                    fetched.remove(&(repo_id.clone(), number));
                    tokens.insert(row.user_id.clone(), None);
                    limited += 1;
                    break;
                }
                // Access lost or the PR gone: the next run tries again.
                Err(_) => continue,
            };
            // Applied as a delivery of its own: the same rules, notifications and idempotency. The
            // repository is the PR's own (`base.repo`): a name can now belong to another repository
            // (renamed, transferred, recreated), and sessions match on GitHub's id alone.
            let Some(base_id) = pr["base"]["repo"]["id"].as_i64() else { continue };
            if base_id.to_string() != repo_id {
                continue;
            }
            let payload = json!({
                "action": "reconciled",
                "repository": { "id": base_id, "full_name": pr["base"]["repo"]["full_name"] },
                "pull_request": pr,
            });
            let delivery = format!("reconcile:{}", uuid::Uuid::new_v4());
            used += 2;
            super::webhooks::apply(env, &db, "pull_request", &delivery, &payload, now_ms(), false).await?;
            deliveries.push(delivery);
        }
    }
    // The run's own delivery records guarded only its batches: they need not wait for the purge.
    let mut stmts = Vec::with_capacity(verdicts.len() + deliveries.len());
    for delivery in &deliveries {
        stmts.push(crate::q!(
            &db,
            "DELETE FROM webhook_deliveries WHERE provider = 'github' AND delivery_id = ?1",
            delivery
        )?);
    }
    for (session, verdict) in &verdicts {
        let (id, verified) = verdict.columns();
        stmts.push(crate::q!(
            &db,
            "UPDATE session_git_state SET repo_id = ?1, repo_verified = ?2,
               repo_checked_at = CASE WHEN ?2 = 0 THEN repo_checked_at ELSE ?4 END WHERE session_id = ?3",
            &id,
            &verified,
            session,
            &iso(now)
        )?);
    }
    if !stmts.is_empty() {
        db.batch_rows(stmts).await?;
        used += 1;
    }
    if stopped || limited > 0 {
        log_error(&format!(
            "pr reconciler: {} (rate-limited owners: {limited}); the next run continues",
            if stopped { "stopped at its subrequest budget" } else { "done" }
        ));
    }
    Ok(Outcome { used, more: !stopped && rows.len() as u32 == limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(pr: Option<i64>, state: Option<&str>, source: Option<i64>, source_state: Option<&str>) -> Due {
        Due {
            session_id: "s".into(),
            user_id: "u".into(),
            full_name: "o/r".into(),
            repo_id: Some("1".into()),
            repo_verified: 1,
            repo_checked_at: None,
            pr_number: pr,
            pr_state: state.map(str::to_string),
            source_pr_number: source,
            source_pr_state: source_state.map(str::to_string),
        }
    }

    #[test]
    fn only_prs_that_can_change_are_fetched() {
        assert_eq!(due(Some(7), Some("open"), None, None).wanted(), vec![7]);
        assert_eq!(due(Some(7), None, Some(9), Some("draft")).wanted(), vec![7, 9]);
        assert_eq!(due(Some(7), Some("merged"), Some(9), Some("closed")).wanted(), Vec::<i64>::new());
        // A session's own PR that is also its source is fetched once.
        assert_eq!(due(Some(7), Some("open"), Some(7), Some("open")).wanted(), vec![7]);
        assert_eq!(due(None, None, None, None).wanted(), Vec::<i64>::new());
    }
}
