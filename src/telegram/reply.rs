//! Sending to a Telegram chat through the user's bot: Markdown text (converted and split) and
//! photos. Which channel a reply goes to is decided in `channels::delivery`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use worker::d1::D1Database;
use worker::Env;

use super::{bot_for, load_config};
use crate::http::upstream::UpstreamError;
use crate::http::{ApiError, ApiResult};

fn not_configured() -> ApiError {
    ApiError::new(409, "TELEGRAM_NOT_CONFIGURED", "Telegram is not set up")
}

fn refused(e: super::api::TgError) -> ApiError {
    UpstreamError::Failed { message: format!("Telegram refused the message: {}", e.description), details: None }.into()
}

/// Sends Markdown text to a chat through the user's bot; the number of messages sent.
pub async fn deliver_text(env: &Env, db: &D1Database, user_id: &str, chat: &str, markdown: &str) -> ApiResult<usize> {
    let row = load_config(db, user_id).await?.ok_or_else(not_configured)?;
    let bot = bot_for(env, db, &row).await?;
    bot.send_markdown(chat, markdown).await.map_err(refused)
}

/// A reply to a chat: a photo (with its caption), text, or both.
pub struct Outgoing {
    pub photo: Option<(Vec<u8>, String)>,
    pub caption: Option<String>,
    pub text: Option<String>,
}

/// Sends a reply (the photo first); the number of messages sent.
pub async fn send(env: &Env, db: &D1Database, user_id: &str, chat: &str, reply: Outgoing) -> ApiResult<usize> {
    let row = load_config(db, user_id).await?.ok_or_else(not_configured)?;
    let bot = bot_for(env, db, &row).await?;
    let mut parts = 0;
    if let Some((bytes, mime)) = reply.photo {
        parts += bot.send_photo(chat, &bytes, &mime, reply.caption.as_deref()).await.map_err(refused)?;
    }
    if let Some(t) = reply.text {
        parts += bot.send_markdown(chat, &t).await.map_err(refused)?;
    }
    Ok(parts)
}

/// Telegram accepts photos up to 10 MB.
const MAX_PHOTO_BYTES: usize = 10_000_000;

/// A photo given as base64 (or a `data:` URL) of an image type Telegram takes, at most 10 MB.
pub fn decode_photo(data: &str, mime: &str) -> Option<(Vec<u8>, String)> {
    let raw = data.split_once(";base64,").map(|(_, d)| d).unwrap_or(data);
    let bytes = STANDARD.decode(raw.trim()).ok()?;
    (!bytes.is_empty()
        && bytes.len() <= MAX_PHOTO_BYTES
        && matches!(mime, "image/png" | "image/jpeg" | "image/webp" | "image/gif"))
    .then(|| (bytes, mime.to_string()))
}
