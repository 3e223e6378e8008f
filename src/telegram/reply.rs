//! Replies from sessions back to chats: `POST /api/sessions/:id/reply`, and the result of a
//! completed prompt that came from Telegram.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use worker::d1::D1Database;
use worker::Env;

use super::{bot_for, load_config};
use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{ApiError, ApiResult, Reply};
use crate::sessions::owned_session;

/// Sends Markdown text to a chat through the user's bot; the number of messages sent.
pub async fn deliver_text(env: &Env, db: &D1Database, user_id: &str, chat: &str, markdown: &str) -> ApiResult<usize> {
    let row = load_config(db, user_id)
        .await?
        .ok_or_else(|| ApiError::new(409, "TELEGRAM_NOT_CONFIGURED", "Telegram is not set up"))?;
    let bot = bot_for(env, db, &row).await?;
    bot.send_markdown(chat, markdown)
        .await
        .map_err(|e| ApiError::upstream(format!("Telegram refused the message: {}", e.description)))
}

/// `POST /api/sessions/:id/reply` `{channelType, channelId, text?, photo?: {data, mimeType}, caption?}`
/// → 202 `{delivered, parts}`.
pub async fn reply(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let channel = input.str("channelType", 1, 20);
    let chat = input.str("channelId", 1, 32);
    let text = input.opt_text("text", 100_000).filter(|t| !t.trim().is_empty());
    let caption = input.opt_text("caption", 10_000);
    let photo = input.opt_object("photo").and_then(|p| {
        let data = p.get("data").and_then(|v| v.as_str()).unwrap_or("");
        let mime = p.get("mimeType").and_then(|v| v.as_str()).unwrap_or("").to_ascii_lowercase();
        let decoded = decode_photo(data, &mime);
        if decoded.is_none() {
            input.error("photo", "Expected {data: base64, mimeType: image/png|jpeg|webp|gif} of at most 10 MB");
        }
        decoded
    });
    if !channel.is_empty() && channel != "telegram" {
        input.error("channelType", "Expected telegram or slack");
    }
    if !chat.is_empty() && crate::channels::scope::ChannelType::Telegram.check_id(&chat).is_err() {
        input.error("channelId", "A Telegram chat id is an integer");
    }
    if text.is_none() && photo.is_none() {
        input.error("text", "Give text or a photo");
    }
    input.finish()?;
    let db = ctx.db()?;
    owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let row = load_config(&db, &caller.id)
        .await?
        .ok_or_else(|| ApiError::new(409, "TELEGRAM_NOT_CONFIGURED", "Telegram is not set up"))?;
    let bot = bot_for(&ctx.env, &db, &row).await?;
    let refused =
        |e: super::api::TgError| ApiError::upstream(format!("Telegram refused the message: {}", e.description));
    let mut parts = 0;
    if let Some((bytes, mime)) = photo {
        parts += bot.send_photo(&chat, &bytes, &mime, caption.as_deref()).await.map_err(refused)?;
    }
    if let Some(t) = text {
        parts += bot.send_markdown(&chat, &t).await.map_err(refused)?;
    }
    Reply::json(202, &json!({ "delivered": true, "parts": parts }))
}

/// Telegram accepts photos up to 10 MB.
const MAX_PHOTO_BYTES: usize = 10_000_000;

fn decode_photo(data: &str, mime: &str) -> Option<(Vec<u8>, String)> {
    let raw = data.split_once(";base64,").map(|(_, d)| d).unwrap_or(data);
    let bytes = STANDARD.decode(raw.trim()).ok()?;
    (!bytes.is_empty()
        && bytes.len() <= MAX_PHOTO_BYTES
        && matches!(mime, "image/png" | "image/jpeg" | "image/webp" | "image/gif"))
    .then(|| (bytes, mime.to_string()))
}
