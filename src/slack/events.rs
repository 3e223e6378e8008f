//! `POST /slack/events` and the queue work behind it. The endpoint only verifies the signature,
//! answers `url_verification`, records the `event_id` (a retried delivery is acknowledged and
//! dropped) and enqueues; so Slack gets its answer in milliseconds whatever a session or the
//! Slack API is doing. The queue consumer then links or routes the message.

use crate::db::{Batch as _, Query as _};
use serde::Serialize;

use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use super::api::Slack;
use super::ids::{slack_id, slack_ts};
use super::{open_workspace, WorkspaceRow, LINK_CODE_TTL_MS};
use crate::channels::routing::dispatch_to_orchestrator;
use crate::channels::scope::{scope_key, ChannelType};
use crate::channels::store::{bound_query, Bound};
use crate::config::{log_error, var};
use crate::crypto::{random_token, sha256_hex};
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::jobs::{self, Job};
use crate::sessions::agent::{PromptRequest, SessionAgent};
use crate::sessions::prompt::QueueMode;
use crate::sessions::store::FINISHED_STATUSES;
use crate::time::{iso, now_ms};
use crate::webhooks::signatures::slack_valid;

pub const PROVIDER: &str = "slack";
/// Longest message text carried through the queue (a queue message holds at most 128 KB).
const MAX_TEXT_CHARS: usize = 25_000;
const NOT_RUNNING: &str = "Your orchestrator is not running. Start it from the Agent-Ops dashboard.";

/// A message for the bot: a DM, or a mention in a channel. It travels through the queue as
/// JSON (read back through `serde_json::Value`, whose deserializer the Wasm has anyway).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackMessage {
    pub event_id: String,
    pub team: String,
    pub channel: String,
    pub user: String,
    /// As Slack sent it (mrkdwn, entities escaped).
    pub text: String,
    pub ts: String,
    /// The thread it belongs to: its own `ts` when it is a top-level message.
    pub thread_ts: String,
    /// A direct message (else a mention in a channel, answered only to its sender).
    pub direct: bool,
    /// Where the sender links their account: the frontend as the delivery's request saw it
    /// (`FRONTEND_URL`, else the console at this worker's origin); set when it is queued.
    pub frontend: Option<String>,
}

impl SlackMessage {
    /// `<teamId>:<channelId>:<threadTs>`, the channel id of its prompts.
    pub fn channel_id(&self) -> String {
        format!("{}:{}:{}", self.team, self.channel, self.thread_ts)
    }

    /// A message from its queued JSON.
    pub fn from_json(text: &str) -> Option<SlackMessage> {
        let v: Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v[k].as_str().map(str::to_string);
        Some(SlackMessage {
            event_id: s("event_id")?,
            team: s("team")?,
            channel: s("channel")?,
            user: s("user")?,
            text: s("text")?,
            ts: s("ts")?,
            thread_ts: s("thread_ts")?,
            direct: v["direct"].as_bool()?,
            frontend: s("frontend"),
        })
    }
}

/// What a verified delivery asks for.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    UrlVerification(String),
    Message(SlackMessage),
    /// The app was uninstalled from a workspace, or its bot token revoked.
    Uninstalled {
        event_id: String,
        team: String,
    },
    /// Not for us (bot messages, edits, channel chatter, other event types), with why.
    Ignore(&'static str),
}

/// Classifies an Events API payload.
pub fn classify(v: &Value) -> Incoming {
    match v["type"].as_str() {
        Some("url_verification") => {
            return match v["challenge"].as_str() {
                Some(c) if c.len() <= 500 => Incoming::UrlVerification(c.to_string()),
                _ => Incoming::Ignore("url_verification without a challenge"),
            }
        }
        Some("event_callback") => {}
        _ => return Incoming::Ignore("not an event callback"),
    }
    let e = &v["event"];
    let team = v["team_id"].as_str().or_else(|| v["authorizations"][0]["team_id"].as_str()).unwrap_or("").to_string();
    let event_id = v["event_id"].as_str().unwrap_or("").to_string();
    if !slack_id(&team) || event_id.is_empty() || event_id.len() > 100 {
        return Incoming::Ignore("no team or event id");
    }
    let kind = e["type"].as_str().unwrap_or("");
    let revoked_bot = kind == "tokens_revoked" && e["tokens"]["bot"].as_array().is_some_and(|b| !b.is_empty());
    if kind == "app_uninstalled" || revoked_bot {
        return Incoming::Uninstalled { event_id, team };
    }
    let direct = match kind {
        "message" => {
            if e["channel_type"].as_str() != Some("im") {
                return Incoming::Ignore("not a direct message");
            }
            if !matches!(e["subtype"].as_str(), None | Some("file_share") | Some("thread_broadcast")) {
                return Incoming::Ignore("an edit, a deletion or another message subtype");
            }
            true
        }
        "app_mention" => false,
        _ => return Incoming::Ignore("an event type the bot does not handle"),
    };
    if e.get("bot_id").is_some_and(|b| !b.is_null()) || e.get("edited").is_some_and(|x| !x.is_null()) {
        return Incoming::Ignore("a bot's message or an edit");
    }
    let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let (channel, user, ts) = (text("channel"), text("user"), text("ts"));
    let thread_ts = e["thread_ts"].as_str().unwrap_or(&ts).to_string();
    if !slack_id(&channel) || !slack_id(&user) || !slack_ts(&ts) || !slack_ts(&thread_ts) {
        return Incoming::Ignore("malformed ids");
    }
    // A mention inside a DM also arrives as the DM itself.
    if !direct && channel.starts_with('D') {
        return Incoming::Ignore("a mention in a direct message");
    }
    let body = text("text");
    if body.trim().is_empty() {
        return Incoming::Ignore("no text");
    }
    let mut body: String = body.chars().take(MAX_TEXT_CHARS).collect();
    if body.len() < e["text"].as_str().unwrap_or("").len() {
        body.push('…');
    }
    Incoming::Message(SlackMessage { event_id, team, channel, user, text: body, ts, thread_ts, direct, frontend: None })
}

/// Slack's message text as the Markdown a session reads: the bot's own mention removed,
/// `<url|label>` as `[label](url)`, `<@U1|name>` as `@name`, `<#C1|general>` as `#general`,
/// `<!here>` as `@here`, and `&amp;`, `&lt;`, `&gt;` unescaped.
pub fn from_slack(text: &str, bot_user: Option<&str>) -> String {
    let unescape = |s: &str| s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&unescape(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&unescape(&rest[open..]));
            rest = "";
            break;
        };
        let inner = &after[..close];
        rest = &after[close + 1..];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        if let Some(user) = target.strip_prefix('@') {
            if Some(user) == bot_user {
                rest = rest.strip_prefix(' ').unwrap_or(rest);
                continue;
            }
            out.push('@');
            out.push_str(&unescape(label.unwrap_or(user)));
        } else if let Some(channel) = target.strip_prefix('#') {
            out.push('#');
            out.push_str(&unescape(label.unwrap_or(channel)));
        } else if let Some(special) = target.strip_prefix('!') {
            let name = unescape(label.unwrap_or(special.split('^').next().unwrap_or(special)));
            if !name.starts_with('@') {
                out.push('@');
            }
            out.push_str(&name);
        } else {
            let url = unescape(target);
            match label {
                Some(l) if unescape(l) != url => out.push_str(&format!("[{}]({url})", unescape(l))),
                _ => out.push_str(&url),
            }
        }
    }
    out.push_str(&unescape(rest));
    out.trim().to_string()
}

fn not_configured() -> ApiError {
    ApiError::new(503, "WEBHOOK_NOT_CONFIGURED", "Slack events are not configured (SLACK_SIGNING_SECRET)")
}

/// `POST /slack/events`.
pub async fn handle(ctx: &Ctx) -> ApiResult<Reply> {
    let secret = var(&ctx.env, "SLACK_SIGNING_SECRET").ok_or_else(not_configured)?;
    let timestamp = ctx.header("X-Slack-Request-Timestamp").unwrap_or_default();
    let signature = ctx.header("X-Slack-Signature").unwrap_or_default();
    if !slack_valid(&secret, timestamp.trim(), &ctx.raw_body(), &signature, ctx.now.div_euclid(1000)) {
        return Err(ApiError::new(401, "INVALID_SIGNATURE", "Invalid or stale signature"));
    }
    let v: Value = serde_json::from_slice(&ctx.raw_body()).map_err(|_| ApiError::invalid_json())?;
    let (event_id, kind, job) = match classify(&v) {
        Incoming::UrlVerification(challenge) => return Reply::ok(&json!({ "challenge": challenge })),
        Incoming::Ignore(_) => return Reply::ok(&json!({ "ok": true })),
        Incoming::Uninstalled { event_id, team } => (event_id, "app_uninstalled", Job::SlackUninstalled { team }),
        Incoming::Message(mut m) => {
            m.frontend = Some(ctx.frontend());
            let kind = if m.direct { "message.im" } else { "app_mention" };
            (m.event_id.clone(), kind, Job::SlackMessage { message: serde_json::to_string(&m)? })
        }
    };
    // The inbox's unique (provider, delivery id) is the deduplication: Slack's retries
    // (X-Slack-Retry-Num) carry the same event_id.
    let db = ctx.db()?;
    let recorded = crate::q!(
        &db,
        "INSERT INTO webhook_inbox (id, provider, delivery_id, event_type, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(provider, delivery_id) DO NOTHING",
        &uuid::Uuid::new_v4().to_string(),
        &PROVIDER,
        &event_id,
        &kind,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    if recorded.changes() == 0 {
        return Reply::ok(&json!({ "ok": true, "duplicate": true }));
    }
    if let Err(e) = jobs::send(&ctx.env, &job, 0).await {
        // Not enqueued: forget the event so Slack's retry is taken.
        let forget =
            crate::q!(&db, "DELETE FROM webhook_inbox WHERE provider = ?1 AND delivery_id = ?2", &PROVIDER, &event_id)?;
        let _ = forget.exec().await;
        return Err(e);
    }
    Reply::ok(&json!({ "ok": true }))
}

/// The queue's side of a message (its JSON): link its sender, or route it.
pub async fn process(env: &Env, message: &str) -> ApiResult<()> {
    let Some(m) = SlackMessage::from_json(message) else {
        log_error("slack: dropping an unreadable queued message");
        return Ok(());
    };
    let m = &m;
    let db = env.d1("DB")?;
    let results = db
        .batch_rows(vec![
            crate::q!(
                &db,
                &format!("SELECT {} FROM slack_workspaces WHERE team_id = ?1", super::WORKSPACE_COLUMNS),
                &m.team
            )?,
            crate::q!(
                &db,
                "SELECT user_id, slack_user_name FROM slack_links WHERE team_id = ?1 AND slack_user_id = ?2",
                &m.team,
                &m.user
            )?,
        ])
        .await?;
    let Some(ws) = results[0].results::<Value>()?.first().and_then(WorkspaceRow::from_row) else {
        log_error(&format!("slack event {}: workspace {} is not installed; dropped", m.event_id, m.team));
        return Ok(());
    };
    if ws.bot_user_id.as_deref() == Some(m.user.as_str()) {
        return Ok(());
    }
    let slack = open_workspace(env, &db, &ws).await?;
    // (Rows read as JSON values: no deserializer per row type in the Wasm.)
    let Some(link) = results[1].results::<Value>()?.into_iter().next() else {
        return offer_link(env, &db, &slack, m).await;
    };
    let user_id = link["user_id"].as_str().unwrap_or_default().to_string();
    let content = from_slack(&m.text, ws.bot_user_id.as_deref());
    if content.is_empty() {
        return Ok(());
    }
    let channel_id = m.channel_id();
    let now = iso(now_ms());
    let results = db
        .batch_rows(vec![
            bound_query(&db, &scope_key(&user_id, ChannelType::Slack, &channel_id), &user_id)?,
            // Replies may go where the user talks to the bot.
            crate::q!(
                &db,
                "INSERT INTO slack_conversations (user_id, team_id, channel_id, last_seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user_id, team_id, channel_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                &user_id,
                &m.team,
                &m.channel,
                &now
            )?,
        ])
        .await?;
    let bound = results[0].results::<Bound>()?.into_iter().next();
    let author = match link["slack_user_name"].as_str() {
        Some(name) => Some(name.to_string()),
        None => author_name(&db, &slack, m).await,
    };
    let mut req = PromptRequest {
        content,
        channel_type: Some(ChannelType::Slack.as_str().into()),
        channel_id: Some(channel_id),
        author_id: Some(user_id.clone()),
        author_name: author,
        // Retries, and the rare second event for one message, store it once.
        idempotency_key: Some(format!("slack:{}:{}:{}", m.team, m.channel, m.ts)),
        ..Default::default()
    };
    if let Some(b) = bound.filter(|b| !FINISHED_STATUSES.contains(&b.status.as_str())) {
        req.queue_mode = QueueMode::parse(&b.queue_mode);
        req.collect_debounce_ms = u32::try_from(b.collect_debounce_ms).ok();
        SessionAgent::new(env, &b.session_id).prompt(&req).await?;
        return Ok(());
    }
    let d = dispatch_to_orchestrator(env, &db, &user_id, &req).await?;
    if !d.dispatched {
        if let Err(e) = say(&slack, m, NOT_RUNNING).await {
            log_error(&format!("slack reply failed: {e}"));
        }
    }
    Ok(())
}

/// The sender's Slack name (`users.info`), remembered on their link; none when Slack fails.
async fn author_name(db: &D1Database, slack: &Slack, m: &SlackMessage) -> Option<String> {
    match slack.user_name(&m.user).await {
        Ok(Some(name)) => {
            let saved = crate::q!(
                db,
                "UPDATE slack_links SET slack_user_name = ?1 WHERE team_id = ?2 AND slack_user_id = ?3",
                &name,
                &m.team,
                &m.user
            );
            if let Ok(stmt) = saved {
                let _ = stmt.exec().await;
            }
            Some(name)
        }
        Ok(None) => None,
        Err(e) => {
            log_error(&format!("slack users.info: {e}"));
            None
        }
    }
}

/// Answers a message in its thread: in a DM for everyone to see, in a channel only to its sender.
async fn say(slack: &Slack, m: &SlackMessage, text: &str) -> Result<Value, super::api::SlackError> {
    if m.direct {
        slack.post_message(&m.channel, Some(&m.thread_ts), text).await
    } else {
        slack.post_ephemeral(&m.channel, &m.user, Some(&m.thread_ts), text).await
    }
}

/// The message to an unlinked sender, with their one-time link.
pub fn link_text(frontend: &str, code: &str) -> String {
    format!(
        "Hi! Before I pass your messages on to your agents, please link your Slack account: <{frontend}/slack/link#code={code}|link your account> (the link works for 15 minutes). Messages sent before linking are not kept."
    )
}

/// An unlinked sender gets one reply with a one-time link code; while that code is valid
/// (15 minutes), their further messages get none.
async fn offer_link(env: &Env, db: &D1Database, slack: &Slack, m: &SlackMessage) -> ApiResult<()> {
    // Where people link accounts: FRONTEND_URL, else the console where the delivery came in
    // (a message queued by an older release carries none: PUBLIC_URL's console then).
    let configured = var(env, "FRONTEND_URL").or_else(|| m.frontend.clone()).or_else(|| var(env, "PUBLIC_URL"));
    let Some(frontend) = configured.map(|f| f.trim_end_matches('/').to_string()) else {
        log_error(
            "slack: an unlinked user wrote, but there is no frontend to link accounts on (FRONTEND_URL, PUBLIC_URL)",
        );
        return Ok(());
    };
    let now = now_ms();
    let code = random_token::<24>();
    let hash = sha256_hex(code.as_bytes());
    let issued = crate::q!(
        db,
        "INSERT INTO slack_link_codes (code_hash, team_id, slack_user_id, channel_id, thread_ts, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(team_id, slack_user_id) DO UPDATE SET code_hash = excluded.code_hash, channel_id = excluded.channel_id,
           thread_ts = excluded.thread_ts, expires_at = excluded.expires_at, created_at = excluded.created_at
         WHERE slack_link_codes.expires_at <= ?7",
        &hash,
        &m.team,
        &m.user,
        &m.channel,
        &m.thread_ts,
        &iso(now + LINK_CODE_TTL_MS),
        &iso(now)
    )?
    .exec()
    .await?;
    if issued.changes() == 0 {
        return Ok(()); // a valid link is already out
    }
    if let Err(e) = say(slack, m, &link_text(&frontend, &code)).await {
        // Take the code back so the retry sends a fresh one.
        crate::q!(db, "DELETE FROM slack_link_codes WHERE code_hash = ?1", &hash)?.exec().await?;
        return Err(ApiError::upstream(format!("the link reply failed: {e}")));
    }
    Ok(())
}

/// The app left a workspace: its install, people and pending codes are forgotten.
pub async fn uninstalled(env: &Env, team: &str) -> ApiResult<()> {
    super::forget_workspace(&env.d1("DB")?, team).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(event: Value) -> Value {
        json!({ "type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event })
    }

    #[test]
    fn verification_and_envelopes() {
        assert_eq!(
            classify(&json!({ "type": "url_verification", "challenge": "abc" })),
            Incoming::UrlVerification("abc".into())
        );
        assert!(matches!(classify(&json!({ "type": "app_rate_limited" })), Incoming::Ignore(_)));
        assert!(matches!(
            classify(&json!({ "type": "event_callback", "event": { "type": "app_mention" } })),
            Incoming::Ignore(_)
        ));
        assert_eq!(
            classify(&callback(json!({ "type": "app_uninstalled" }))),
            Incoming::Uninstalled { event_id: "Ev1".into(), team: "T1".into() }
        );
        assert!(matches!(
            classify(&callback(json!({ "type": "tokens_revoked", "tokens": { "oauth": ["U1"] } }))),
            Incoming::Ignore(_)
        ));
        assert!(matches!(
            classify(&callback(json!({ "type": "tokens_revoked", "tokens": { "bot": ["U9"] } }))),
            Incoming::Uninstalled { .. }
        ));
    }

    #[test]
    fn direct_messages_and_mentions() {
        let dm = json!({ "type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "hi", "ts": "1700000000.000100" });
        let Incoming::Message(m) = classify(&callback(dm.clone())) else { panic!() };
        assert_eq!((m.direct, m.thread_ts.as_str()), (true, "1700000000.000100"));
        assert_eq!(m.channel_id(), "T1:D1:1700000000.000100");
        let mut in_thread = dm.clone();
        in_thread["thread_ts"] = json!("1600000000.000001");
        let Incoming::Message(m) = classify(&callback(in_thread)) else { panic!() };
        assert_eq!(m.channel_id(), "T1:D1:1600000000.000001");
        let mention =
            json!({ "type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UB> do it", "ts": "1.2" });
        let Incoming::Message(m) = classify(&callback(mention)) else { panic!() };
        assert_eq!((m.direct, m.channel.as_str(), m.text.as_str()), (false, "C1", "<@UB> do it"));
        // Through the queue and back.
        assert_eq!(SlackMessage::from_json(&serde_json::to_string(&m).unwrap()), Some(m));
        assert_eq!(SlackMessage::from_json(r#"{"team":"T1"}"#), None);
    }

    #[test]
    fn bots_edits_and_chatter_are_ignored() {
        let base = json!({ "type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.2" });
        let with = |k: &str, v: Value| {
            let mut e = base.clone();
            e[k] = v;
            classify(&callback(e))
        };
        assert!(matches!(with("bot_id", json!("B1")), Incoming::Ignore(_)));
        assert!(matches!(with("subtype", json!("bot_message")), Incoming::Ignore(_)));
        assert!(matches!(with("subtype", json!("message_changed")), Incoming::Ignore(_)));
        assert!(matches!(with("subtype", json!("message_deleted")), Incoming::Ignore(_)));
        assert!(matches!(with("edited", json!({ "user": "U1", "ts": "1.3" })), Incoming::Ignore(_)));
        assert!(matches!(with("channel_type", json!("channel")), Incoming::Ignore(_)));
        assert!(matches!(with("text", json!("  ")), Incoming::Ignore(_)));
        assert!(matches!(with("user", json!("U-1")), Incoming::Ignore(_)));
        assert!(matches!(with("ts", json!("soon")), Incoming::Ignore(_)));
        assert!(matches!(with("subtype", json!("file_share")), Incoming::Message(_)));
        let dm_mention = json!({ "type": "app_mention", "channel": "D1", "user": "U1", "text": "<@UB>", "ts": "1.2" });
        assert!(matches!(classify(&callback(dm_mention)), Incoming::Ignore(_)));
        assert!(matches!(classify(&callback(json!({ "type": "reaction_added" }))), Incoming::Ignore(_)));
    }

    #[test]
    fn long_text_is_capped() {
        let e = json!({ "type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "é".repeat(30_000), "ts": "1.2" });
        let Incoming::Message(m) = classify(&callback(e)) else { panic!() };
        assert_eq!(m.text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(m.text.ends_with('…'));
    }

    #[test]
    fn slack_text_to_markdown() {
        assert_eq!(from_slack("<@UBOT> deploy it", Some("UBOT")), "deploy it");
        assert_eq!(from_slack("hey <@UBOT>", Some("UBOT")), "hey");
        assert_eq!(from_slack("ask <@U2|ada> in <#C1|general> <!here>", Some("UBOT")), "ask @ada in #general @here");
        assert_eq!(
            from_slack("see <https://x.io/a?b=1&amp;c=2|the docs> and <https://y.io>", None),
            "see [the docs](https://x.io/a?b=1&c=2) and https://y.io"
        );
        assert_eq!(from_slack("a &lt;b&gt; &amp;amp; c", None), "a <b> &amp; c");
        assert_eq!(from_slack("<@U7> hi", Some("UBOT")), "@U7 hi");
        assert_eq!(from_slack("broken < link", None), "broken < link");
        assert_eq!(from_slack("<!subteam^S1|@devs> go", None), "@devs go");
    }
}
