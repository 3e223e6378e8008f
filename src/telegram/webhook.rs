//! `POST /telegram/webhook/:userId`: Telegram's `secret_token` checked in constant time,
//! each `update_id` acted on once, then the message is routed: commands to the orchestrator,
//! everything else through the chat's binding or to the orchestrator.

use crate::db::{Batch as _, Query as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::api::{Bot, COMMANDS, MAX_FILE_BYTES};
use super::{bot_for, ConfigRow};
use crate::channels::routing::dispatch_to_orchestrator;
use crate::channels::scope::{scope_key, ChannelType};
use crate::channels::store::{bound_query, Bound};
use crate::config::log_error;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::sessions::agent::{PromptRequest, SessionAgent};
use crate::sessions::prompt::{Attachment, QueueMode};
use crate::sessions::store::{find_orchestrator, replace_orchestrator, FINISHED_STATUSES};
use crate::time::iso;

const NOT_RUNNING: &str = "Your orchestrator is not running. Start it from the Agent-Ops dashboard.";

/// What a message asks for.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Command(String),
    Text(String),
    Media(Media),
    /// A message kind we do not handle yet (named for the reply).
    Unsupported(&'static str),
    Ignore,
}

#[derive(Debug, PartialEq)]
pub struct Media {
    pub kind: &'static str,
    pub file_id: String,
    pub mime: String,
    pub filename: Option<String>,
    pub size: Option<u64>,
    /// Caption, or a description when there is none (`[Voice note, 3s]`).
    pub content: String,
}

fn display_name(user: &Value) -> Option<String> {
    let parts: Vec<&str> = [user["first_name"].as_str(), user["last_name"].as_str()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The forward attribution line the original worker wrote (kept so runners read the same text).
pub fn forward_attribution(origin: &Value) -> String {
    match origin["type"].as_str() {
        Some("user") => match display_name(&origin["sender_user"]) {
            Some(name) => match origin["sender_user"]["username"].as_str() {
                Some(u) => format!("Forwarded from {name} (@{u})"),
                None => format!("Forwarded from {name}"),
            },
            None => "Forwarded message".into(),
        },
        Some("hidden_user") => origin["sender_user_name"]
            .as_str()
            .map(|n| format!("Forwarded from {n}"))
            .unwrap_or_else(|| "Forwarded message".into()),
        Some("chat") => origin["sender_chat"]["title"]
            .as_str()
            .map(|t| format!("Forwarded from {t}"))
            .unwrap_or_else(|| "Forwarded from a group chat".into()),
        Some("channel") => origin["chat"]["title"]
            .as_str()
            .map(|t| format!("Forwarded from {t}"))
            .unwrap_or_else(|| "Forwarded from a channel".into()),
        _ => "Forwarded message".into(),
    }
}

fn quote_forward(message: &Value, text: &str) -> String {
    match message.get("forward_origin") {
        Some(origin) if !origin.is_null() => {
            let quoted: Vec<String> = text.lines().map(|l| format!("> {l}")).collect();
            format!("**{}:**\n{}", forward_attribution(origin), quoted.join("\n"))
        }
        _ => text.to_string(),
    }
}

fn last_segment(path: &str) -> Option<String> {
    path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Classifies a message.
pub fn classify(message: &Value) -> Incoming {
    if let Some(text) = message["text"].as_str() {
        if let Some(cmd) = text.strip_prefix('/') {
            let name = cmd.split_whitespace().next().unwrap_or("").split('@').next().unwrap_or("").to_ascii_lowercase();
            if name == "start" || COMMANDS.iter().any(|(c, _)| *c == name) {
                return Incoming::Command(name);
            }
        }
        return Incoming::Text(quote_forward(message, text));
    }
    let caption = message["caption"].as_str().map(|c| quote_forward(message, c));
    let size = |v: &Value| v["file_size"].as_u64();
    if let Some(sizes) = message["photo"].as_array() {
        let Some(largest) = sizes.last() else { return Incoming::Ignore };
        return Incoming::Media(Media {
            kind: "image",
            file_id: largest["file_id"].as_str().unwrap_or_default().into(),
            mime: "image/jpeg".into(),
            filename: None,
            size: size(largest),
            content: caption.unwrap_or_else(|| "[Image]".into()),
        });
    }
    if message["voice"].is_object() {
        let v = &message["voice"];
        return Incoming::Media(Media {
            kind: "voice note",
            file_id: v["file_id"].as_str().unwrap_or_default().into(),
            mime: v["mime_type"].as_str().unwrap_or("audio/ogg").into(),
            filename: None,
            size: size(v),
            content: caption.unwrap_or_else(|| format!("[Voice note, {}s]", v["duration"].as_u64().unwrap_or(0))),
        });
    }
    if message["audio"].is_object() {
        let a = &message["audio"];
        let title = a["title"].as_str().or(a["file_name"].as_str()).unwrap_or("untitled");
        return Incoming::Media(Media {
            kind: "audio file",
            file_id: a["file_id"].as_str().unwrap_or_default().into(),
            mime: a["mime_type"].as_str().unwrap_or("audio/mpeg").into(),
            filename: a["file_name"].as_str().map(str::to_string),
            size: size(a),
            content: caption.unwrap_or_else(|| format!("[Audio: {title}, {}s]", a["duration"].as_u64().unwrap_or(0))),
        });
    }
    if message["document"].is_object() {
        let d = &message["document"];
        let mime = d["mime_type"].as_str().unwrap_or("").to_ascii_lowercase();
        if mime.starts_with("image/") || mime.starts_with("audio/") {
            let name = d["file_name"].as_str().unwrap_or("file");
            return Incoming::Media(Media {
                kind: if mime.starts_with("image/") { "image" } else { "audio file" },
                file_id: d["file_id"].as_str().unwrap_or_default().into(),
                mime,
                filename: Some(name.to_string()),
                size: size(d),
                content: caption.unwrap_or_else(|| format!("[File: {name}]")),
            });
        }
        return Incoming::Unsupported("document");
    }
    for (key, kind) in [
        ("video", "video"),
        ("video_note", "video note"),
        ("animation", "GIF"),
        ("sticker", "sticker"),
        ("location", "location"),
        ("venue", "venue"),
        ("contact", "contact"),
        ("poll", "poll"),
        ("dice", "dice"),
        ("story", "story"),
    ] {
        if !message[key].is_null() {
            return Incoming::Unsupported(kind);
        }
    }
    Incoming::Ignore
}

/// The webhook route.
pub async fn handle(ctx: &Ctx) -> ApiResult<Reply> {
    let user_id = ctx.params.get("userId").to_string();
    let db = ctx.db()?;
    // Read before the secret is checked, but only to pick the statements: nothing from an
    // unverified body is acted on or answered until the secret matches.
    let update: Option<Value> = serde_json::from_slice(&ctx.raw_body()).ok();
    let update_id = update.as_ref().and_then(|u| u["update_id"].as_i64()).filter(|u| *u >= 0);
    let message = update.as_ref().and_then(|u| u.get("message")).filter(|m| m.is_object());
    let chat = message.and_then(|m| m["chat"]["id"].as_i64()).map(|c| c.to_string());
    // One round trip: the bot's configuration, whether this update was already acted on, and
    // the chat's binding. Updates are deduplicated per bot (a bot moved to another account keeps
    // its update ids). The record is written only after the update has been processed, so an
    // isolate that dies halfway leaves no record and Telegram's retry is processed (the
    // prompt's idempotency key keeps it single).
    let mut stmts = vec![crate::q!(&db, "SELECT * FROM user_telegram_config WHERE user_id = ?1", &user_id)?];
    if let Some(id) = update_id {
        stmts.push(crate::q!(
            &db,
            "SELECT 1 AS seen FROM webhook_deliveries
              WHERE provider = 'telegram-bot:' || COALESCE((SELECT bot_id FROM user_telegram_config WHERE user_id = ?1), ?1)
                AND delivery_id = ?2",
            &user_id,
            &id.to_string()
        )?);
    }
    if let Some(chat) = &chat {
        stmts.push(bound_query(&db, &scope_key(&user_id, ChannelType::Telegram, chat), &user_id)?);
    }
    let mut results = db.batch_rows(stmts).await?.into_iter();
    let config: ConfigRow = results
        .next()
        .map(|r| r.results())
        .transpose()?
        .and_then(|rows: Vec<ConfigRow>| rows.into_iter().next())
        .ok_or_else(|| ApiError::not_found("No telegram config"))?;
    let expected = config.webhook_secret_hash.clone().unwrap_or_default();
    let given = ctx.header("X-Telegram-Bot-Api-Secret-Token").unwrap_or_default();
    if expected.is_empty()
        || given.is_empty()
        || !constant_time_eq(sha256_hex(given.as_bytes()).as_bytes(), expected.as_bytes())
    {
        return Err(ApiError::new(401, "INVALID_SECRET", "Invalid or missing secret token"));
    }
    if update.is_none() {
        return Err(ApiError::invalid_json());
    }
    let update_id = update_id.ok_or_else(|| ApiError::invalid_field("update_id", "Required"))?;
    let provider = format!("telegram-bot:{}", config.bot_id.as_deref().unwrap_or(&user_id));
    if results.next().is_some_and(|seen| seen.count() > 0) {
        return Reply::ok(&json!({ "ok": true, "duplicate": true }));
    }
    let record = || async {
        crate::q!(
            &db,
            "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at) VALUES (?1, ?2, 'update', ?3) ON CONFLICT DO NOTHING",
            &provider,
            &update_id.to_string(),
            &iso(ctx.now)
        )?
        .exec()
        .await
        .map(|_| ())
    };
    let Some(message) = message else {
        record().await?;
        return Reply::ok(&json!({ "ok": true }));
    };
    let bound: Option<Bound> = match results.next() {
        Some(r) => r.results::<Bound>()?.into_iter().next(),
        None => None,
    };
    let bot = bot_for(&ctx.env, &db, &config).await?;
    if owner_may_talk(ctx, &bot, &config, message).await? {
        // A failure answers 500 without a record: Telegram delivers the update again.
        let key = format!("telegram:{}:{update_id}", config.bot_id.as_deref().unwrap_or(&user_id));
        process(ctx, &bot, &user_id, &key, message, bound).await?;
        #[cfg(feature = "fault-injection")]
        crate::faults::die_once(&ctx.env, "FAULT_TELEGRAM_DIE_AFTER_PROCESSING");
    }
    record().await?;
    Reply::ok(&json!({ "ok": true }))
}

const PRIVATE: &str =
    "This bot is private. If it is yours, send /start followed by the pairing code shown when you connected it.";

/// A personal bot answers only its owner. Until paired, `/start <pairing code>` (shown once at
/// setup) claims it; anyone else gets a short refusal and nothing reaches a session.
async fn owner_may_talk(ctx: &Ctx, bot: &Bot, config: &super::ConfigRow, message: &Value) -> ApiResult<bool> {
    let chat = message["chat"]["id"].as_i64().map(|c| c.to_string()).unwrap_or_default();
    let Some(from) = message["from"]["id"].as_i64().map(|i| i.to_string()) else { return Ok(false) };
    // Refusals are Bot API calls: a stranger flooding the bot gets a few, then silence.
    let refuse = || async {
        if crate::limits::allow(&ctx.env, crate::limits::Limit::TelegramRefusals, &format!("{}:{from}", config.user_id))
            .await
        {
            say(bot, &chat, PRIVATE).await;
        }
    };
    match &config.owner_telegram_id {
        Some(owner) if *owner == from => Ok(true),
        Some(_) => {
            refuse().await;
            Ok(false)
        }
        None => {
            let code =
                message["text"].as_str().and_then(|t| t.strip_prefix("/start")).map(|rest| rest.trim()).unwrap_or("");
            // Only the owner's own private chat pairs: not a group (where an anonymous admin
            // would pair as the shared GroupAnonymousBot), not a bot, not after the hour.
            let private = message["chat"]["type"] == "private" && chat == from;
            let human = message["from"]["is_bot"].as_bool() != Some(true);
            let fresh =
                config.pairing_expires_at.as_deref().and_then(crate::time::parse_stored).is_some_and(|t| t > ctx.now);
            let matches = !code.is_empty()
                && private
                && human
                && fresh
                && config
                    .pairing_code_hash
                    .as_deref()
                    .is_some_and(|h| constant_time_eq(sha256_hex(code.as_bytes()).as_bytes(), h.as_bytes()));
            if !matches {
                refuse().await;
                return Ok(false);
            }
            let db = ctx.db()?;
            crate::q!(
                &db,
                "UPDATE user_telegram_config SET owner_telegram_id = ?1, pairing_code_hash = NULL, pairing_expires_at = NULL, updated_at = ?2
                  WHERE user_id = ?3 AND owner_telegram_id IS NULL",
                &from,
                &iso(ctx.now),
                &config.user_id
            )?
            .exec()
            .await?;
            say(
                bot,
                &chat,
                "Paired! This bot now answers only you. Send me a message and it will be routed to your orchestrator.",
            )
            .await;
            Ok(false)
        }
    }
}

async fn say(bot: &Bot, chat: &str, text: &str) {
    if let Err(e) = bot.send_plain(chat, text).await {
        log_error(&format!("telegram reply failed: {e}"));
    }
}

async fn process(
    ctx: &Ctx,
    bot: &Bot,
    user_id: &str,
    idempotency_key: &str,
    message: &Value,
    bound: Option<Bound>,
) -> ApiResult<()> {
    let Some(chat) = message["chat"]["id"].as_i64().map(|c| c.to_string()) else { return Ok(()) };
    let author = display_name(&message["from"]);
    match classify(message) {
        Incoming::Ignore => Ok(()),
        Incoming::Command(name) => command(ctx, bot, user_id, &chat, &name).await,
        Incoming::Unsupported(kind) => {
            say(
                bot,
                &chat,
                &format!(
                    "Sorry, {kind} messages are not supported yet. Send text, photos, voice notes or audio files."
                ),
            )
            .await;
            Ok(())
        }
        Incoming::Text(content) => {
            route(ctx, bot, user_id, &chat, idempotency_key, author, content, Vec::new(), bound).await
        }
        Incoming::Media(media) => {
            let too_large =
                format!("That {} is too large (the limit is {} MB).", media.kind, MAX_FILE_BYTES / 1_000_000);
            // Telegram's announced size first (no download), then the bytes actually received.
            if media.size.is_some_and(|s| s > MAX_FILE_BYTES) {
                say(bot, &chat, &too_large).await;
                return Ok(());
            }
            let (path, bytes) = match bot.download(&media.file_id).await {
                Ok(file) => file,
                Err(e) if e.code == 413 => {
                    say(bot, &chat, &too_large).await;
                    return Ok(());
                }
                Err(e) => {
                    log_error(&format!("telegram media: {e}"));
                    say(bot, &chat, &format!("Failed to download the {}.", media.kind)).await;
                    return Ok(());
                }
            };
            if bytes.len() as u64 > MAX_FILE_BYTES {
                say(bot, &chat, &too_large).await;
                return Ok(());
            }
            let mime =
                if media.kind == "image" && media.mime == "image/jpeg" && path.to_ascii_lowercase().ends_with(".png") {
                    "image/png".to_string()
                } else {
                    media.mime
                };
            let attachment = Attachment {
                kind: "file".into(),
                url: format!("data:{mime};base64,{}", STANDARD.encode(&bytes)),
                mime,
                filename: media.filename.or_else(|| last_segment(&path)),
            };
            route(ctx, bot, user_id, &chat, idempotency_key, author, media.content, vec![attachment], bound).await
        }
    }
}

/// Through the chat's binding (looked up with the delivery record), else to the orchestrator;
/// the prompt carries the update id, so a redelivery that slipped past the delivery log still
/// stores it once.
#[allow(clippy::too_many_arguments)]
async fn route(
    ctx: &Ctx,
    bot: &Bot,
    user_id: &str,
    chat: &str,
    idempotency_key: &str,
    author: Option<String>,
    content: String,
    attachments: Vec<Attachment>,
    bound: Option<Bound>,
) -> ApiResult<()> {
    let db = ctx.db()?;
    let mut req = PromptRequest {
        content,
        attachments,
        channel_type: Some("telegram".into()),
        channel_id: Some(chat.to_string()),
        author_id: Some(user_id.to_string()),
        author_name: author,
        idempotency_key: Some(idempotency_key.to_string()),
        ..Default::default()
    };
    if let Some(b) = bound.filter(|b| !FINISHED_STATUSES.contains(&b.status.as_str())) {
        req.queue_mode = QueueMode::parse(&b.queue_mode);
        req.collect_debounce_ms = u32::try_from(b.collect_debounce_ms).ok();
        SessionAgent::new(&ctx.env, &b.session_id).prompt(&req).await?;
        return Ok(());
    }
    let d = dispatch_to_orchestrator(&ctx.env, &db, user_id, &req).await?;
    if !d.dispatched {
        say(bot, chat, NOT_RUNNING).await;
    }
    Ok(())
}

async fn command(ctx: &Ctx, bot: &Bot, user_id: &str, chat: &str, name: &str) -> ApiResult<()> {
    let db = ctx.db()?;
    let orchestrator = find_orchestrator(&db, user_id).await?.filter(|s| !s.is_finished());
    let text = match name {
        "start" => "Connected to Agent-Ops! Send me a message and it will be routed to your orchestrator.".to_string(),
        "help" => {
            let lines: Vec<String> = COMMANDS.iter().map(|(c, d)| format!("/{c} — {d}")).collect();
            format!("Available commands:\n{}", lines.join("\n"))
        }
        "refresh" => {
            let fresh = replace_orchestrator(&ctx.env, &db, user_id, ctx.now).await?;
            format!(
                "Started a fresh orchestrator session ({}). Your chats stay connected.",
                fresh.id.get(..8).unwrap_or(&fresh.id)
            )
        }
        _ => {
            let Some(orch) = orchestrator else {
                say(bot, chat, "Orchestrator is not running.").await;
                return Ok(());
            };
            let agent = SessionAgent::new(&ctx.env, &orch.id);
            match name {
                "stop" => {
                    let r = agent.post("/stop", &json!({})).await?;
                    let v: Value = r.json().unwrap_or_default();
                    format!(
                        "Stopped current work and cleared queue ({} interrupted, {} cleared).",
                        v["interrupted"].as_u64().unwrap_or(0),
                        v["cleared"].as_u64().unwrap_or(0)
                    )
                }
                "clear" => {
                    let r = agent.post("/clear-queue", &json!({})).await?;
                    let v: Value = r.json().unwrap_or_default();
                    format!("Prompt queue cleared ({} removed).", v["cleared"].as_u64().unwrap_or(0))
                }
                "status" => {
                    let st = agent.read("/status").await?;
                    let children = children_lines(&db, &orch.id).await?;
                    let mut lines = vec![
                        "<b>Orchestrator Status</b>".to_string(),
                        format!("Status: {}", st["status"].as_str().unwrap_or("unknown")),
                        format!("Queued prompts: {}", st["queuedPrompts"].as_i64().unwrap_or(0)),
                        format!("Messages: {}", st["messageCount"].as_i64().unwrap_or(0)),
                    ];
                    lines.push(if children.is_empty() {
                        "Children: none".into()
                    } else {
                        format!("Children ({}):", children.len())
                    });
                    lines.extend(children);
                    if let Err(e) = bot.send_html(chat, &lines.join("\n")).await {
                        log_error(&format!("telegram reply failed: {e}"));
                    }
                    return Ok(());
                }
                "sessions" => {
                    let children = children_lines(&db, &orch.id).await?;
                    if children.is_empty() {
                        "No child sessions.".to_string()
                    } else {
                        let plain: Vec<String> = children.iter().map(|l| super::markdown::html_to_plain(l)).collect();
                        format!("Child sessions ({}):\n{}", plain.len(), plain.join("\n"))
                    }
                }
                _ => return Ok(()),
            }
        }
    };
    say(bot, chat, &text).await;
    Ok(())
}

/// `• <title or workspace or id> — <status>` for each child, HTML-escaped.
async fn children_lines(db: &worker::d1::D1Database, parent: &str) -> ApiResult<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct C {
        id: String,
        title: Option<String>,
        workspace: String,
        status: String,
    }
    let rows: Vec<C> = crate::q!(
        db,
        "SELECT id, title, workspace, status FROM sessions WHERE parent_session_id = ?1 ORDER BY created_at",
        &parent
    )?
    .rows()
    .await?
    .results()?;
    Ok(rows
        .into_iter()
        .map(|c| {
            let name = c.title.filter(|t| !t.is_empty()).unwrap_or(if c.workspace.is_empty() {
                c.id.get(..8).unwrap_or(&c.id).to_string()
            } else {
                c.workspace
            });
            let mut line = String::from("• ");
            for ch in format!("{name} — {}", c.status).chars() {
                match ch {
                    '<' => line.push_str("&lt;"),
                    '>' => line.push_str("&gt;"),
                    '&' => line.push_str("&amp;"),
                    c => line.push(c),
                }
            }
            line
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_text() {
        assert_eq!(classify(&json!({ "text": "/status@MyBot now" })), Incoming::Command("status".into()));
        assert_eq!(classify(&json!({ "text": "/start" })), Incoming::Command("start".into()));
        assert_eq!(classify(&json!({ "text": "/unknown x" })), Incoming::Text("/unknown x".into()));
        assert_eq!(classify(&json!({ "text": "hi" })), Incoming::Text("hi".into()));
    }

    #[test]
    fn forwards() {
        let m = json!({ "text": "line 1\nline 2", "forward_origin": { "type": "user", "sender_user": { "first_name": "Ada", "last_name": "L", "username": "ada" } } });
        assert_eq!(classify(&m), Incoming::Text("**Forwarded from Ada L (@ada):**\n> line 1\n> line 2".into()));
        assert_eq!(forward_attribution(&json!({ "type": "hidden_user", "sender_user_name": "X" })), "Forwarded from X");
        assert_eq!(
            forward_attribution(&json!({ "type": "channel", "chat": { "title": "News" } })),
            "Forwarded from News"
        );
        assert_eq!(forward_attribution(&json!({ "type": "chat" })), "Forwarded from a group chat");
    }

    #[test]
    fn media_kinds() {
        let photo = classify(&json!({ "photo": [{ "file_id": "small" }, { "file_id": "big", "file_size": 10 }] }));
        let Incoming::Media(p) = photo else { panic!() };
        assert_eq!((p.file_id.as_str(), p.content.as_str()), ("big", "[Image]"));
        let Incoming::Media(v) = classify(&json!({ "voice": { "file_id": "v", "duration": 3 } })) else { panic!() };
        assert_eq!((v.mime.as_str(), v.content.as_str()), ("audio/ogg", "[Voice note, 3s]"));
        let Incoming::Media(a) =
            classify(&json!({ "audio": { "file_id": "a", "duration": 5, "title": "Song" }, "caption": "listen" }))
        else {
            panic!()
        };
        assert_eq!((a.mime.as_str(), a.content.as_str()), ("audio/mpeg", "listen"));
        let Incoming::Media(d) =
            classify(&json!({ "document": { "file_id": "d", "mime_type": "image/png", "file_name": "s.png" } }))
        else {
            panic!()
        };
        assert_eq!(d.kind, "image");
        assert_eq!(
            classify(&json!({ "document": { "file_id": "d", "mime_type": "application/pdf" } })),
            Incoming::Unsupported("document")
        );
        assert_eq!(classify(&json!({ "sticker": { "file_id": "s" } })), Incoming::Unsupported("sticker"));
        assert_eq!(classify(&json!({ "new_chat_members": [] })), Incoming::Ignore);
    }
}
