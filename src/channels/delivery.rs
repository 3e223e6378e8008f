//! How a session's reply reaches a chat: the one place that decides between Telegram and Slack,
//! for `POST /api/sessions/:id/reply` and for the result of a completed prompt that came from a
//! chat. Each channel's own module only knows how to send to it.

use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use super::scope::ChannelType;
use crate::config::log_error;
use crate::http::input::Input;
use crate::http::{ApiResult, Ctx, Reply};
use crate::sessions::store::owned_session;
use crate::slack::ids::slack_parts;

/// Sends Markdown text to a chat of `kind`; the number of messages sent.
pub async fn deliver_text(
    env: &Env,
    db: &D1Database,
    user_id: &str,
    kind: ChannelType,
    channel_id: &str,
    markdown: &str,
) -> Option<ApiResult<usize>> {
    Some(match kind {
        ChannelType::Telegram => crate::telegram::reply::deliver_text(env, db, user_id, channel_id, markdown).await,
        ChannelType::Slack => crate::slack::reply::deliver_text(env, db, user_id, channel_id, markdown).await,
        ChannelType::Web | ChannelType::Api | ChannelType::Github => return None,
    })
}

/// The result of a completed prompt, back to the chat it came from (Telegram or Slack): the
/// `reply` field of the completion's answer, `None` for other channels.
pub async fn deliver_result(
    env: &Env,
    db: &D1Database,
    user_id: &str,
    kind: &str,
    channel_id: &str,
    text: &str,
) -> Option<Value> {
    let channel = ChannelType::parse(kind)?;
    let sent = deliver_text(env, db, user_id, channel, channel_id, text).await?;
    Some(match sent {
        Ok(parts) => json!({ "channelType": kind, "channelId": channel_id, "delivered": true, "parts": parts }),
        Err(e) => {
            log_error(&format!("reply to {kind} failed: {}", e.message));
            json!({ "channelType": kind, "channelId": channel_id, "delivered": false, "error": e.message })
        }
    })
}

/// `POST /api/sessions/:id/reply` `{channelType, channelId, text?, photo?: {data, mimeType}, caption?}`
/// → 202 `{delivered, parts}`: to a Slack thread or a Telegram chat, by `channelType`.
pub async fn reply(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let channel = input.str("channelType", 1, 20);
    let parts = if channel == "slack" {
        let channel_id = input.str("channelId", 1, 128);
        let text = input.opt_text("text", 100_000).filter(|t| !t.trim().is_empty());
        if input.has("photo") {
            input.error("photo", "Photos are sent to Telegram chats only");
        }
        if !channel_id.is_empty() && slack_parts(&channel_id).is_none() {
            input.error("channelId", "A Slack channel id is <teamId>:<channelId>:<threadTs>");
        }
        if text.is_none() {
            input.error("text", "Required");
        }
        input.finish()?;
        let db = ctx.db()?;
        owned_session(&db, &caller.id, ctx.params.get("id")).await?;
        crate::slack::reply::deliver_text(&ctx.env, &db, &caller.id, &channel_id, &text.unwrap_or_default()).await?
    } else {
        let chat = input.str("channelId", 1, 32);
        let text = input.opt_text("text", 100_000).filter(|t| !t.trim().is_empty());
        let caption = input.opt_text("caption", 10_000);
        let photo = input.opt_object("photo").and_then(|p| {
            let data = p.get("data").and_then(|v| v.as_str()).unwrap_or("");
            let mime = p.get("mimeType").and_then(|v| v.as_str()).unwrap_or("").to_ascii_lowercase();
            let decoded = crate::telegram::reply::decode_photo(data, &mime);
            if decoded.is_none() {
                input.error("photo", "Expected {data: base64, mimeType: image/png|jpeg|webp|gif} of at most 10 MB");
            }
            decoded
        });
        if !channel.is_empty() && channel != "telegram" {
            input.error("channelType", "Expected telegram or slack");
        }
        if !chat.is_empty() && ChannelType::Telegram.check_id(&chat).is_err() {
            input.error("channelId", "A Telegram chat id is an integer");
        }
        if text.is_none() && photo.is_none() {
            input.error("text", "Give text or a photo");
        }
        input.finish()?;
        let db = ctx.db()?;
        owned_session(&db, &caller.id, ctx.params.get("id")).await?;
        let reply = crate::telegram::reply::Outgoing { photo, caption, text };
        crate::telegram::reply::send(&ctx.env, &db, &caller.id, &chat, reply).await?
    };
    Reply::json(202, &json!({ "delivered": true, "parts": parts }))
}
