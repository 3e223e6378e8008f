//! Realtime integrations (contract §16): push notifications, with the hourly incremental poll
//! as the safety net. Gmail watches the mailbox through Pub/Sub (`users.watch`, renewed daily),
//! Calendar opens an `events.watch` channel per synced calendar (renewed before it expires,
//! stopped when the calendar leaves the sync), GitHub gets repository webhooks where the token
//! administers the repository (others are polled every 15 minutes). A notification never
//! syncs in the request: it enqueues one incremental run, and a flood of them still enqueues
//! one (the one-unfinished-run index decides; a notification during a running run asks the
//! cron for one more run afterwards).
//!
//! - this file: the decisions, as plain Rust (what to create, renew and stop; when to look
//!   again; what a Pub/Sub message says), natively tested;
//! - `store`: every query of `realtime_state` / `realtime_watches` / `integration_events`;
//! - `watch`: the provider calls that create, renew and stop subscriptions (a queue job);
//! - `push`: `POST /webhooks/google/pubsub` and `POST /webhooks/google/calendar`;
//! - `oidc`: Google's OIDC token on Pub/Sub deliveries;
//! - `health`: connection-health events, their list route and the owner's orchestrator told.

pub mod health;
pub mod oidc;
pub mod push;
pub mod store;
pub mod watch;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Env;

use crate::db::Query as _;
use crate::http::ApiResult;
use crate::jobs::{self, Job};
use crate::time::{iso, now_ms, Millis};

/// A Gmail watch lasts 7 days; Google asks for a renewal at least daily.
pub const GMAIL_RENEW_AFTER_MS: Millis = 24 * 3600 * 1000;
/// Channels are asked for a week (Google may give less).
pub const CHANNEL_TTL_SECS: i64 = 7 * 24 * 3600;
/// A channel expiring within this is replaced (a new one first, then the old one stopped).
pub const CHANNEL_RENEW_BEFORE_MS: Millis = 24 * 3600 * 1000;
/// How often a realtime integration is looked at without any other reason (new calendars,
/// repositories, a lost subscription).
pub const RECHECK_MS: Millis = 3600 * 1000;
/// The poll period of GitHub repositories without a webhook.
pub const GITHUB_POLL_MS: Millis = 15 * 60 * 1000;
/// At most this many subscriptions are created or stopped per integration in one job (a
/// budget of subrequests; the next check continues).
pub const MAX_CHANGES: usize = 10;

/// The frequency that turns push on.
pub const REALTIME: &str = "realtime";

/// Whether an integration's configuration asks for realtime.
pub fn wants_realtime(config: &Value) -> bool {
    config["syncFrequency"] == REALTIME
}

/// A subscription as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub id: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub expires_at: Option<Millis>,
}

/// What to do with one integration's channels (calendars or repositories).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Resources that need a new subscription.
    pub create: Vec<String>,
    /// Subscriptions to stop: for resources no longer synced, duplicates, and (once their
    /// replacement exists) those about to expire.
    pub stop: Vec<Watch>,
}

/// Plans the channels of `wanted` resources given the `existing` ones: a resource without a
/// channel that lives past the renewal margin gets a new one; channels of resources no longer
/// wanted, extra channels of one resource, and expiring channels (after their replacement) are
/// stopped. `expires_at: None` means "does not expire" (GitHub hooks).
pub fn plan(wanted: &[String], existing: &[Watch], now: Millis, renew_before: Millis) -> Plan {
    let mut p = Plan::default();
    let lives = |w: &Watch| w.expires_at.is_none_or(|e| e > now + renew_before);
    for r in wanted {
        let mut mine: Vec<&Watch> = existing.iter().filter(|w| &w.resource == r).collect();
        // The longest-lived first: it is the one kept.
        mine.sort_by_key(|w| std::cmp::Reverse(w.expires_at.unwrap_or(i64::MAX)));
        match mine.first() {
            Some(best) if lives(best) => p.stop.extend(mine[1..].iter().map(|w| (*w).clone())),
            _ => {
                if !p.create.contains(r) {
                    p.create.push(r.clone());
                }
                p.stop.extend(mine.iter().map(|w| (*w).clone()));
            }
        }
    }
    p.stop.extend(existing.iter().filter(|w| !wanted.contains(&w.resource)).cloned());
    p
}

/// When to look at an integration again: in an hour, or before the first subscription needs
/// renewing, whichever is sooner (never sooner than a minute).
pub fn next_check(expiries: &[Millis], now: Millis, renew_before: Millis) -> Millis {
    let renew = expiries.iter().map(|e| e - renew_before).min().unwrap_or(i64::MAX);
    renew.min(now + RECHECK_MS).max(now + 60_000)
}

/// Whether a Gmail watch created at `created` (if any) is due for its daily renewal.
pub fn gmail_due(created: Option<Millis>, expires: Option<Millis>, now: Millis) -> bool {
    match (created, expires) {
        (Some(c), Some(e)) => c + GMAIL_RENEW_AFTER_MS <= now || e <= now + 3600 * 1000,
        _ => true,
    }
}

/// What a Gmail Pub/Sub push delivery says.
#[derive(Debug, PartialEq)]
pub struct Notice {
    pub message_id: String,
    pub email: String,
    pub history_id: Option<String>,
}

/// Reads a Pub/Sub push body: `{message: {data: base64 JSON {emailAddress, historyId},
/// messageId}, subscription}`. The error names the field for the 400's `details`.
pub fn decode_push(body: &[u8]) -> Result<Notice, (&'static str, &'static str)> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ("", "Invalid JSON"))?;
    let m = &v["message"];
    if !m.is_object() {
        return Err(("message", "Required"));
    }
    let message_id = m["messageId"]
        .as_str()
        .or(m["message_id"].as_str())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or(("message.messageId", "Required"))?
        .to_string();
    let data = m["data"].as_str().ok_or(("message.data", "Required"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data.trim().trim_end_matches('=')))
        .map_err(|_| ("message.data", "Expected base64"))?;
    let d: Value = serde_json::from_slice(&raw).map_err(|_| ("message.data", "Expected base64 of a JSON object"))?;
    let email = d["emailAddress"]
        .as_str()
        .filter(|e| e.contains('@') && e.len() <= 320)
        .ok_or(("message.data.emailAddress", "Expected an email address"))?
        .to_ascii_lowercase();
    let history_id = match &d["historyId"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Some(s.clone()),
        Value::Null => None,
        _ => return Err(("message.data.historyId", "Expected a number")),
    };
    Ok(Notice { message_id, email, history_id })
}

/// Turns realtime on for a just-connected or reconfigured integration (or off, when its
/// configuration no longer asks for it): the job does the provider calls.
pub async fn configured(
    env: &Env,
    integration: &str,
    config: &Value,
    origin: Option<&str>,
    now: Millis,
) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let known = store::state(&db, integration).await?.is_some();
    if !wants_realtime(config) && !known {
        return Ok(());
    }
    store::enable(&db, integration, origin, now).await?;
    // A lost message is picked up by the cron (the state is due now).
    if let Err(e) = jobs::send(env, &Job::Realtime { integration: integration.to_string() }, 0).await {
        crate::config::log_error(&format!("realtime {integration}: not enqueued ({}); the cron will", e.message));
    }
    Ok(())
}

/// After a run completed: one more run if a notification came during it, and a look at the
/// subscriptions when the run may have changed what is synced (calendars, repositories), or
/// push is not on yet.
pub async fn after_run(env: &Env, run: &str) -> ApiResult<()> {
    let db = env.d1("DB")?;
    #[derive(Deserialize)]
    struct R {
        integration_id: String,
        resync_at: Option<String>,
        look: i64,
    }
    let Some(r) = crate::q!(
        &db,
        "SELECT s.integration_id, s.resync_at,
                (s.mode = 'poll' OR (i.service <> 'gmail' AND json_extract(l.state, '$.only_parent') IS NULL)) AS look
           FROM sync_logs l JOIN realtime_state s ON s.integration_id = l.integration_id JOIN integrations i ON i.id = l.integration_id
          WHERE l.id = ?1",
        &run
    )?
    .one::<R>()
    .await?
    else {
        return Ok(());
    };
    let now = now_ms();
    let mut next = Vec::new();
    if r.resync_at.is_some() {
        next.extend(owed_run(env, &db, &r.integration_id, now).await?);
    }
    if r.look != 0 {
        next.push(Job::Realtime { integration: r.integration_id });
    }
    jobs::send_all(env, &next).await
}

/// One more incremental run of an integration owed one (its resync request cleared).
async fn owed_run(env: &Env, db: &worker::d1::D1Database, integration: &str, now: Millis) -> ApiResult<Option<Job>> {
    store::clear_resync(db, integration).await?;
    let Some(row) = store::integration(db, integration).await? else { return Ok(None) };
    let Ok(plan) = row.plan() else { return Ok(None) };
    let id = crate::integrations::runs::create(env, db, &row, plan, false, now).await?;
    Ok(id.map(|run| Job::Sync { run, chain: 0 }))
}

/// The cron tick (every minute; it only enqueues): integrations due for a look, runs owed
/// (a notification during a run; GitHub's 15-minute poll), and untold health events.
pub async fn sweep(env: &Env) -> ApiResult<()> {
    let db = env.d1("DB")?;
    let now = now_ms();
    let mut next: Vec<Job> =
        store::claim_due(&db, now, 20).await?.into_iter().map(|integration| Job::Realtime { integration }).collect();
    for id in store::owed_runs(&db, now).await? {
        next.extend(owed_run(env, &db, &id, now).await?);
    }
    if health::untold(env).await? {
        next.push(Job::Health);
    }
    jobs::send_all(env, &next).await
}

/// `realtime` of an integration's view: `{mode, expiresAt?, lastNotificationAt?}`.
pub fn view(state: Option<&store::State>) -> Value {
    let Some(s) = state else { return json!({ "mode": "poll" }) };
    let mut v = json!({ "mode": if s.mode == "push" { "push" } else { "poll" } });
    if let Some(e) = s.expires_at.as_deref().and_then(crate::time::parse_stored) {
        v["expiresAt"] = json!(iso(e));
    }
    if let Some(n) = s.last_notification_at.as_deref().and_then(crate::time::parse_stored) {
        v["lastNotificationAt"] = json!(iso(n));
    }
    if let Some(note) = &s.note {
        v["note"] = json!(note);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;
    const DAY: Millis = 24 * 3600 * 1000;

    fn w(id: &str, r: &str, exp: Option<Millis>) -> Watch {
        Watch { id: id.into(), resource: r.into(), resource_id: Some(format!("res-{id}")), expires_at: exp }
    }

    #[test]
    fn new_calendars_get_channels_and_deselected_ones_are_stopped() {
        let wanted = vec!["a".to_string(), "b".to_string()];
        let existing = vec![w("1", "a", Some(NOW + 5 * DAY)), w("2", "c", Some(NOW + 5 * DAY))];
        let p = plan(&wanted, &existing, NOW, CHANNEL_RENEW_BEFORE_MS);
        assert_eq!(p.create, vec!["b".to_string()]);
        assert_eq!(p.stop, vec![existing[1].clone()]);
    }

    #[test]
    fn an_expiring_channel_is_replaced_then_stopped_and_duplicates_go() {
        let wanted = vec!["a".to_string(), "b".to_string()];
        let existing =
            vec![w("1", "a", Some(NOW + DAY / 2)), w("2", "b", Some(NOW + 6 * DAY)), w("3", "b", Some(NOW + 3 * DAY))];
        let p = plan(&wanted, &existing, NOW, CHANNEL_RENEW_BEFORE_MS);
        assert_eq!(p.create, vec!["a".to_string()]);
        assert_eq!(p.stop, vec![existing[0].clone(), existing[2].clone()]);
        // An expired one too.
        let p = plan(&wanted[..1], &[w("9", "a", Some(NOW - 1))], NOW, CHANNEL_RENEW_BEFORE_MS);
        assert_eq!((p.create.len(), p.stop.len()), (1, 1));
    }

    #[test]
    fn hooks_without_expiry_live_forever_and_nothing_wanted_stops_everything() {
        let existing = vec![w("h", "o/r", None)];
        assert_eq!(plan(&["o/r".to_string()], &existing, NOW, 0), Plan::default());
        assert_eq!(plan(&[], &existing, NOW, 0).stop, existing);
    }

    #[test]
    fn the_next_check_comes_before_the_first_renewal_and_at_most_in_an_hour() {
        assert_eq!(next_check(&[], NOW, CHANNEL_RENEW_BEFORE_MS), NOW + RECHECK_MS);
        assert_eq!(next_check(&[NOW + DAY + 600_000], NOW, CHANNEL_RENEW_BEFORE_MS), NOW + 600_000);
        assert_eq!(next_check(&[NOW], NOW, CHANNEL_RENEW_BEFORE_MS), NOW + 60_000);
    }

    #[test]
    fn gmail_watches_are_renewed_daily() {
        assert!(gmail_due(None, None, NOW));
        assert!(!gmail_due(Some(NOW - 3_600_000), Some(NOW + 6 * DAY), NOW));
        assert!(gmail_due(Some(NOW - DAY), Some(NOW + 6 * DAY), NOW));
        assert!(gmail_due(Some(NOW - 3_600_000), Some(NOW + 60_000), NOW));
    }

    #[test]
    fn pubsub_messages_are_read_and_bad_ones_name_their_field() {
        let data = base64::engine::general_purpose::STANDARD
            .encode(r#"{"emailAddress":"Alice@Example.com","historyId":9876543210}"#);
        let body = json!({ "message": { "data": data, "messageId": "m1", "publishTime": "2026-01-01T00:00:00Z" }, "subscription": "projects/p/subscriptions/s" });
        let n = decode_push(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            n,
            Notice {
                message_id: "m1".into(),
                email: "alice@example.com".into(),
                history_id: Some("9876543210".into())
            }
        );
        assert_eq!(decode_push(b"{").unwrap_err().1, "Invalid JSON");
        assert_eq!(decode_push(b"{}").unwrap_err().0, "message");
        let no_id = json!({ "message": { "data": "e30=" } });
        assert_eq!(decode_push(no_id.to_string().as_bytes()).unwrap_err().0, "message.messageId");
        let not_b64 = json!({ "message": { "data": "***", "messageId": "x" } });
        assert_eq!(decode_push(not_b64.to_string().as_bytes()).unwrap_err().0, "message.data");
        let no_email = json!({ "message": { "data": "e30=", "messageId": "x" } });
        assert_eq!(decode_push(no_email.to_string().as_bytes()).unwrap_err().0, "message.data.emailAddress");
    }

    #[test]
    fn the_view_says_push_only_when_pushing() {
        assert_eq!(view(None), json!({ "mode": "poll" }));
        let s = store::State {
            integration_id: "i".into(),
            mode: "push".into(),
            account: None,
            expires_at: Some("2026-01-08T00:00:00.000Z".into()),
            last_notification_at: None,
            next_check_at: String::new(),
            resync_at: None,
            note: None,
            origin: None,
        };
        assert_eq!(view(Some(&s)), json!({ "mode": "push", "expiresAt": "2026-01-08T00:00:00.000Z" }));
    }
}
