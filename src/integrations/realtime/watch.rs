//! The provider side of push: a queue job (`Job::Realtime`) looks at one integration and makes
//! its subscriptions match what it syncs — Gmail's `users.watch` (renewed daily), a Calendar
//! `events.watch` channel per selected calendar (replaced before it expires, `channels.stop`
//! when the calendar leaves the sync), a GitHub repository webhook per repository the token
//! administers — then records the mode and when to look again. The same calls undo everything
//! when realtime is turned off or the integration is deleted (`stop_all`, while its
//! credentials still exist).

use std::cell::RefCell;

use serde_json::{json, Value};
use worker::{Env, Method};

use super::store::{self, NewWatch, Outcome, State, WatchRow};
use super::{next_check, plan, wants_realtime, CHANNEL_RENEW_BEFORE_MS, CHANNEL_TTL_SECS, MAX_CHANGES, RECHECK_MS};
use crate::config::{base_url, log_error, var};
use crate::crypto::{random_token, sha256_hex};
use crate::github::client::{GhError, GitHub};
use crate::http::{ApiError, ApiResult};
use crate::integrations::data::{DataPlane, EntitiesRequest};
use crate::integrations::service::{Conn, ServiceError};
use crate::integrations::services::google::Api;
use crate::integrations::store::{load_credentials, IntegrationRow};
use crate::integrations::tokens::Stored;
use crate::outbound::{segment, Net};
use crate::time::{now_ms, parse_stored, Millis};

pub const GMAIL: &str = "gmail";
pub const CALENDAR: &str = "calendar";
pub const GITHUB: &str = "github";

fn gmail_api<'a>(c: &'a Conn<'a>) -> Api<'a> {
    Api::new(c, "GMAIL_API_URL", "https://gmail.googleapis.com", "/gmail/v1")
}

fn calendar_api<'a>(c: &'a Conn<'a>) -> Api<'a> {
    Api::new(c, "GOOGLE_CALENDAR_API_URL", "https://www.googleapis.com", "/calendar/v3")
}

/// Where providers deliver: `PUBLIC_URL`, else the origin recorded when realtime was turned on.
fn origin(env: &Env, state: &State) -> Option<String> {
    var(env, "PUBLIC_URL").or_else(|| state.origin.clone()).map(|o| o.trim_end_matches('/').to_string())
}

/// Google's `expiration`: epoch milliseconds as a string (or a number).
fn expiration(v: &Value) -> Option<Millis> {
    v["expiration"].as_str().and_then(|s| s.parse().ok()).or_else(|| v["expiration"].as_i64())
}

/// The job: one look at `integration`.
pub async fn reconcile(env: &Env, integration: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let row = store::integration(&db, integration).await?;
    let (Some(row), Some(state)) = (row, store::state(&db, integration).await?) else { return Ok(()) };
    let id = row.id.clone();
    let poll = |note: String, next: Millis| {
        let id = id.clone();
        async move {
            let o = Outcome { mode: "poll", account: None, expires_at: None, note: Some(&note), next_check: next };
            store::save(&env.d1("DB")?, &id, &o, now).await
        }
    };
    let creds = match load_credentials(env, &row).await {
        Ok(c) => c,
        Err(e) => return poll(format!("credentials unavailable ({})", e.code), now + RECHECK_MS).await,
    };
    let service = row.service()?;
    let current = RefCell::new(None);
    let tokens = Stored::new(env, &row, service, &creds, None, &current, now);
    let conn = Conn { http: &Net, vars: env, creds: &creds, tokens: &tokens, now };
    if !wants_realtime(&row.config()) {
        stop_all(env, &conn, &row).await;
        return store::forget(&db, &row.id).await;
    }
    if row.status != "active" {
        return poll(format!("the integration is {}", row.status), now + RECHECK_MS).await;
    }
    let done = match row.service.as_str() {
        "gmail" => gmail(env, &conn, &row, &state, now).await,
        "google_calendar" => calendar(env, &conn, &row, &state, now).await,
        "github" => github(env, &conn, &row, &state, now).await,
        other => Err(Why::Config(format!("{other} has no push notifications; it is polled hourly"))),
    };
    match done {
        Ok(()) => Ok(()),
        Err(Why::Config(note)) => poll(note, now + RECHECK_MS).await,
        Err(Why::Upstream(e)) => {
            log_error(&format!("realtime {}: {}", row.id, e.message()));
            // The safety-net poll goes on; the next look retries sooner than an hour.
            poll(format!("push subscription failed: {}", e.message()), now + 15 * 60_000).await
        }
        Err(Why::Api(e)) => Err(e),
    }
}

/// Why a look ended without push.
enum Why {
    /// Push is not configured for this deployment or service (polling stays on).
    Config(String),
    /// The provider refused or failed.
    Upstream(ServiceError),
    Api(ApiError),
}

impl From<ServiceError> for Why {
    fn from(e: ServiceError) -> Self {
        Why::Upstream(e)
    }
}

impl From<ApiError> for Why {
    fn from(e: ApiError) -> Self {
        Why::Api(e)
    }
}

impl From<worker::Error> for Why {
    fn from(e: worker::Error) -> Self {
        Why::Api(e.into())
    }
}

/// Gmail: one `users.watch` on `GMAIL_PUBSUB_TOPIC` for the mailbox, renewed daily.
async fn gmail(env: &Env, c: &Conn<'_>, row: &IntegrationRow, state: &State, now: Millis) -> Result<(), Why> {
    let topic = var(env, "GMAIL_PUBSUB_TOPIC")
        .ok_or_else(|| Why::Config("GMAIL_PUBSUB_TOPIC is not set: polled hourly".into()))?;
    let db = env.d1("DB")?;
    let existing = store::watches(&db, &row.id, GMAIL).await?;
    let w = existing.first();
    let created = w.and_then(|w| parse_stored(&w.created_at));
    let expires = w.and_then(|w| w.expires_at.as_deref().and_then(parse_stored));
    let (account, expires) = if super::gmail_due(created, expires, now) || state.account.is_none() {
        let api = gmail_api(c);
        let profile = api.get("/users/me/profile").await?;
        let account = profile["emailAddress"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| ServiceError::Transport("Gmail's profile has no address".into()))?;
        let answer = api.send(Method::Post, "/users/me/watch", Some(&json!({ "topicName": topic }))).await?;
        let expires = expiration(&answer).unwrap_or(now + 7 * 24 * 3600 * 1000);
        let id = format!("gmail:{}", row.id);
        let w = NewWatch {
            id: &id,
            integration: &row.id,
            kind: GMAIL,
            resource: &account,
            resource_id: answer["historyId"].as_str(),
            token_hash: None,
            expires_at: Some(expires),
        };
        store::add_watch(&db, &w, now).await?;
        (account, expires)
    } else {
        (state.account.clone().unwrap_or_default(), expires.unwrap_or(now))
    };
    let o = Outcome {
        mode: "push",
        account: Some(&account),
        expires_at: Some(expires),
        note: None,
        next_check: now + RECHECK_MS,
    };
    store::save(&db, &row.id, &o, now).await?;
    Ok(())
}

/// What `pick` finds in each stored entity of `entity` (first 500): e.g. a selected calendar's id.
async fn stored_keys(
    env: &Env,
    integration: &str,
    entity: &str,
    pick: impl Fn(&Value, &str) -> Option<String>,
) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    let mut after = String::new();
    for _ in 0..5 {
        let req = EntitiesRequest {
            entity: entity.into(),
            after: after.clone(),
            modified_after: None,
            include_deleted: false,
            limit: 100,
        };
        let page = DataPlane::new(env, integration).entities(&req).await?;
        let n = page.rows.len();
        for r in &page.rows {
            let data: Value = serde_json::from_str(&r.data).unwrap_or(Value::Null);
            out.extend(pick(&data, &r.external_id));
        }
        match page.rows.last() {
            Some(last) if n == 100 => after.clone_from(&last.external_id),
            _ => break,
        }
    }
    Ok(out)
}

/// Calendar: a channel per selected calendar, replaced a day before it expires.
async fn calendar(env: &Env, c: &Conn<'_>, row: &IntegrationRow, state: &State, now: Millis) -> Result<(), Why> {
    let origin = origin(env, state).ok_or_else(|| Why::Config("PUBLIC_URL is not set: polled hourly".into()))?;
    let db = env.d1("DB")?;
    let wanted =
        stored_keys(env, &row.id, "calendars", |d, id| (d["selected"].as_bool() == Some(true)).then(|| id.to_string()))
            .await?;
    let existing = store::watches(&db, &row.id, CALENDAR).await?;
    let p = plan(&wanted, &existing.iter().map(WatchRow::planned).collect::<Vec<_>>(), now, CHANNEL_RENEW_BEFORE_MS);
    let api = calendar_api(c);
    let mut failed = None;
    for cal in p.create.iter().take(MAX_CHANGES) {
        let id = uuid::Uuid::new_v4().to_string();
        let token = random_token::<24>();
        let body = json!({
            "id": id, "type": "web_hook", "address": format!("{origin}/webhooks/google/calendar"), "token": token,
            "params": { "ttl": CHANNEL_TTL_SECS.to_string() },
        });
        // Recorded before it exists at Google: its first message (`sync`) may arrive before
        // the answer does.
        let hash = sha256_hex(token.as_bytes());
        let mut w = NewWatch {
            id: &id,
            integration: &row.id,
            kind: CALENDAR,
            resource: cal,
            resource_id: None,
            token_hash: Some(&hash),
            expires_at: Some(now + CHANNEL_TTL_SECS * 1000),
        };
        store::add_watch(&db, &w, now).await?;
        match api.send(Method::Post, &format!("/calendars/{}/events/watch", segment(cal)), Some(&body)).await {
            Ok(answer) => {
                w.resource_id = answer["resourceId"].as_str();
                w.expires_at = Some(expiration(&answer).unwrap_or(now + CHANNEL_TTL_SECS * 1000));
                store::add_watch(&db, &w, now).await?;
            }
            Err(e) => {
                store::remove_watch(&db, &id).await?;
                failed = Some(e);
            }
        }
    }
    // Expiring channels go only once their calendar has a fresh one (or left the sync).
    let created: Vec<String> = store::watches(&db, &row.id, CALENDAR).await?.into_iter().map(|w| w.resource).collect();
    for w in p.stop.iter().take(MAX_CHANGES) {
        let replaced = !wanted.contains(&w.resource) || created.iter().filter(|r| **r == w.resource).count() > 1;
        if replaced {
            stop_channel(c, &w.id, w.resource_id.as_deref()).await;
            store::remove_watch(&db, &w.id).await?;
        }
    }
    let live = store::watches(&db, &row.id, CALENDAR).await?;
    let expiries: Vec<Millis> = live.iter().filter_map(|w| w.expires_at.as_deref().and_then(parse_stored)).collect();
    let covered = wanted.iter().all(|r| live.iter().any(|w| &w.resource == r));
    let note = match (&failed, wanted.is_empty()) {
        (Some(e), _) => Some(format!("some calendars are polled: {}", e.message())),
        (None, true) => Some("no calendar is synced yet".to_string()),
        _ => None,
    };
    let o = Outcome {
        mode: if covered && !wanted.is_empty() { "push" } else { "poll" },
        account: None,
        expires_at: expiries.iter().min().copied(),
        note: note.as_deref(),
        next_check: next_check(&expiries, now, CHANNEL_RENEW_BEFORE_MS).min(if failed.is_some() {
            now + 15 * 60_000
        } else {
            i64::MAX
        }),
    };
    store::save(&db, &row.id, &o, now).await?;
    Ok(())
}

/// `channels.stop`; a channel Google no longer knows counts as stopped.
async fn stop_channel(c: &Conn<'_>, id: &str, resource_id: Option<&str>) {
    let body = json!({ "id": id, "resourceId": resource_id.unwrap_or_default() });
    match calendar_api(c).send(Method::Post, "/channels/stop", Some(&body)).await {
        Ok(_) | Err(ServiceError::NotFound(_)) => {}
        Err(e) => log_error(&format!("calendar channel {id}: not stopped ({}); it expires on its own", e.message())),
    }
}

/// The integration's GitHub token (refreshed when it expires).
async fn github_client<'a>(c: &'a Conn<'a>) -> Result<GitHub<'a>, ServiceError> {
    let token = c.tokens.access().await?;
    Ok(GitHub::over(c.http, &base_url(c.vars, "GITHUB_API_URL", "https://api.github.com"), &token))
}

fn gh_err(e: GhError) -> ServiceError {
    match e {
        GhError::RateLimited(s) => ServiceError::RateLimited(s),
        GhError::Status(401, m) => ServiceError::Auth(format!("GitHub rejected the credentials: {m}")),
        GhError::Status(404, _) => ServiceError::NotFound("Not found on GitHub".into()),
        GhError::Status(status, message) => ServiceError::Upstream { status, message: format!("GitHub: {message}") },
        GhError::Transport(m) => ServiceError::Transport(format!("GitHub unreachable: {m}")),
    }
}

fn repo_path(full_name: &str) -> Option<String> {
    crate::github::repo::RepoRef::parse_full_name(full_name)?;
    let (o, n) = full_name.split_once('/')?;
    Some(format!("/repos/{}/{}", segment(o), segment(n)))
}

/// GitHub: a webhook (issues, pull_request, push) on every synced repository the token
/// administers; the others are polled every 15 minutes.
async fn github(env: &Env, c: &Conn<'_>, row: &IntegrationRow, state: &State, now: Millis) -> Result<(), Why> {
    let secret = var(env, "GITHUB_WEBHOOK_SECRET")
        .ok_or_else(|| Why::Config("GITHUB_WEBHOOK_SECRET is not set: polled every 15 minutes".into()))?;
    let origin =
        origin(env, state).ok_or_else(|| Why::Config("PUBLIC_URL is not set: polled every 15 minutes".into()))?;
    let db = env.d1("DB")?;
    let synced = stored_keys(env, &row.id, "repositories", |d, _| d["full_name"].as_str().map(str::to_string)).await?;
    let gh = github_client(c).await?;
    // Which repositories the token administers (GitHub's `permissions.admin`).
    let mut admin = Vec::new();
    for page in 1..=5 {
        let r = gh.get(&format!("/user/repos?per_page=100&page={page}")).await.map_err(gh_err)?;
        let repos: Vec<Value> = r.json().unwrap_or_default();
        admin.extend(
            repos
                .iter()
                .filter(|r| r["permissions"]["admin"].as_bool() == Some(true))
                .filter_map(|r| r["full_name"].as_str().map(str::to_string)),
        );
        if repos.len() < 100 {
            break;
        }
    }
    let wanted: Vec<String> =
        synced.iter().filter(|s| admin.iter().any(|a| a.eq_ignore_ascii_case(s))).cloned().collect();
    let existing = store::watches(&db, &row.id, GITHUB).await?;
    let p = plan(&wanted, &existing.iter().map(WatchRow::planned).collect::<Vec<_>>(), now, 0);
    let mut failed = None;
    for repo in p.create.iter().take(MAX_CHANGES) {
        let Some(path) = repo_path(repo) else { continue };
        let url = format!("{origin}/webhooks/github");
        let body = json!({
            "name": "web", "active": true, "events": ["issues", "pull_request", "push"],
            "config": { "url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0" },
        });
        let created = match gh.post(&format!("{path}/hooks"), &body).await {
            Ok(r) => Ok(r.json::<Value>().and_then(|v| v["id"].as_i64())),
            // "Hook already exists on this repository": ours, from before (its record was lost).
            Err(GhError::Status(422, m)) => match existing_hook(&gh, &path, &url).await {
                Some(id) => Ok(Some(id)),
                None => Err(GhError::Status(422, m)),
            },
            Err(e) => Err(e),
        };
        match created {
            Ok(hook) => {
                let hook = hook.map(|i| i.to_string());
                let id = uuid::Uuid::new_v4().to_string();
                let w = NewWatch {
                    id: &id,
                    integration: &row.id,
                    kind: GITHUB,
                    resource: repo,
                    resource_id: hook.as_deref(),
                    token_hash: None,
                    expires_at: None,
                };
                store::add_watch(&db, &w, now).await?;
            }
            Err(e) => failed = Some(gh_err(e)),
        }
    }
    for w in p.stop.iter().take(MAX_CHANGES) {
        delete_hook(&gh, &w.resource, w.resource_id.as_deref()).await;
        store::remove_watch(&db, &w.id).await?;
    }
    let hooked = store::watches(&db, &row.id, GITHUB).await?;
    let all = !synced.is_empty() && synced.iter().all(|s| hooked.iter().any(|h| h.resource.eq_ignore_ascii_case(s)));
    let polled = synced.len().saturating_sub(hooked.len());
    let note = match &failed {
        Some(e) => Some(format!("some repositories are polled every 15 minutes: {}", e.message())),
        None if polled > 0 => Some(format!("{polled} repositories without admin access are polled every 15 minutes")),
        None => None,
    };
    let o = Outcome {
        mode: if all { "push" } else { "poll" },
        account: None,
        expires_at: None,
        note: note.as_deref(),
        next_check: now + RECHECK_MS,
    };
    store::save(&db, &row.id, &o, now).await?;
    Ok(())
}

/// The id of the repository's hook delivering to `url`, if there is one.
async fn existing_hook(gh: &GitHub<'_>, path: &str, url: &str) -> Option<i64> {
    let hooks: Vec<Value> = gh.get(&format!("{path}/hooks?per_page=100")).await.ok()?.json()?;
    hooks.iter().find(|h| h["config"]["url"] == url).and_then(|h| h["id"].as_i64())
}

async fn delete_hook(gh: &GitHub<'_>, repo: &str, hook: Option<&str>) {
    let (Some(path), Some(hook)) = (repo_path(repo), hook.filter(|h| h.bytes().all(|b| b.is_ascii_digit()))) else {
        return;
    };
    match gh.delete(&format!("{path}/hooks/{hook}")).await {
        Ok(_) | Err(GhError::Status(404, _)) => {}
        Err(e) => log_error(&format!("github hook {hook} on {repo}: not removed ({})", gh_err(e).message())),
    }
}

/// Stops every subscription of the integration (realtime turned off, or the integration is
/// being deleted while its credentials still exist). Failures are logged: Google's channels
/// and watches expire on their own, and a hook GitHub keeps delivering to is refused by
/// nobody's repository (its deliveries match no integration).
pub async fn stop_all(env: &Env, c: &Conn<'_>, row: &IntegrationRow) {
    let Ok(db) = env.d1("DB") else { return };
    let watches = match store::all_watches(&db, &row.id).await {
        Ok(w) => w,
        Err(e) => {
            log_error(&format!("realtime {}: subscriptions not listed ({})", row.id, e.code));
            return;
        }
    };
    let mut gh = None;
    for w in watches.iter().take(MAX_CHANGES * 2) {
        match w.kind.as_str() {
            GMAIL => {
                if let Err(e) = gmail_api(c).send(Method::Post, "/users/me/stop", None).await {
                    log_error(&format!(
                        "gmail watch of {}: not stopped ({}); it expires on its own",
                        row.id,
                        e.message()
                    ));
                }
            }
            CALENDAR => stop_channel(c, &w.id, w.resource_id.as_deref()).await,
            GITHUB => {
                if gh.is_none() {
                    gh = github_client(c).await.ok();
                }
                if let Some(gh) = &gh {
                    delete_hook(gh, &w.resource, w.resource_id.as_deref()).await;
                }
            }
            _ => {}
        }
    }
}

/// Stops the subscriptions of an integration about to be deleted (from the delete route,
/// before its credentials go).
pub async fn stop_before_delete(env: &Env, row: &IntegrationRow, now: Millis) {
    let Ok(db) = env.d1("DB") else { return };
    match store::all_watches(&db, &row.id).await {
        Ok(w) if w.is_empty() => return,
        Err(_) => return,
        Ok(_) => {}
    }
    let (Ok(creds), Ok(service)) = (load_credentials(env, row).await, row.service()) else { return };
    let current = RefCell::new(None);
    let tokens = Stored::new(env, row, service, &creds, None, &current, now);
    let conn = Conn { http: &Net, vars: env, creds: &creds, tokens: &tokens, now };
    stop_all(env, &conn, row).await;
}
