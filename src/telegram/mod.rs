//! The per-user Telegram bot: setup and disconnect (`/api/me/telegram`), the authenticated
//! webhook, commands, media, routing, and replies back to chats.

pub mod api;
pub mod markdown;
pub mod reply;
pub mod webhook;

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::D1Database;
use worker::Env;

use crate::config::{self, log_error, var};
use crate::crypto::{random_token, sha256_hex, Aad, Legacy};
use crate::http::input::Input;
use crate::http::Ctx;
use crate::http::{success, ApiError, ApiResult, Reply};
use crate::time::{iso, normalize};
use api::{valid_token, Bot};

pub const PURPOSE: &str = "telegram:bot";
/// A pairing code works for an hour after setup (a new setup issues a fresh one).
const PAIRING_TTL_MS: i64 = 3_600_000;

pub fn api_base(env: &Env) -> String {
    var(env, "TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into())
}

#[derive(Deserialize, Clone)]
pub struct ConfigRow {
    pub id: String,
    pub user_id: String,
    pub bot_token_encrypted: String,
    pub bot_username: String,
    pub bot_info: String,
    pub bot_id: Option<String>,
    pub webhook_active: i64,
    pub webhook_secret_hash: Option<String>,
    #[serde(default)]
    pub owner_telegram_id: Option<String>,
    #[serde(default)]
    pub pairing_code_hash: Option<String>,
    #[serde(default)]
    pub pairing_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ConfigRow {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "userId": self.user_id, "botUsername": self.bot_username, "botInfo": self.bot_info,
            "webhookActive": self.webhook_active != 0, "paired": self.owner_telegram_id.is_some(),
            "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at),
        })
    }
}

pub async fn load_config(db: &D1Database, user_id: &str) -> ApiResult<Option<ConfigRow>> {
    Ok(crate::q!(db, "SELECT * FROM user_telegram_config WHERE user_id = ?1", &user_id)?.one().await?)
}

/// The user's bot, with its token opened (and re-sealed when stale).
pub async fn bot_for(env: &Env, db: &D1Database, row: &ConfigRow) -> ApiResult<Bot> {
    let keys = config::keyring(env)?;
    let aad = Aad { purpose: PURPOSE, owner: &row.user_id };
    let (token, stale) = keys.open_str(&aad, &row.bot_token_encrypted, Legacy::D1Column)?;
    if stale {
        crate::q!(
            db,
            "UPDATE user_telegram_config SET bot_token_encrypted = ?1 WHERE user_id = ?2",
            &keys.seal_str(&aad, &token),
            &row.user_id
        )?
        .exec()
        .await?;
    }
    Ok(Bot::new(&api_base(env), &token))
}

/// `POST /api/me/telegram` `{botToken}` → `{config, webhookUrl}`.
pub async fn setup(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let token = input.str("botToken", 1, 200);
    if !token.is_empty() && !valid_token(&token) {
        input.error("botToken", "Expected a bot token like 123456789:AA… (from @BotFather)");
    }
    input.finish()?;
    let keys = config::keyring(&ctx.env)?;
    let bot = Bot::new(&api_base(&ctx.env), &token);
    let me = bot
        .get_me()
        .await
        .map_err(|_| ApiError::new(400, "INVALID_BOT_TOKEN", "Invalid bot token — could not reach Telegram API"))?;
    let bot_id = me["id"].as_i64().map(|i| i.to_string());
    let username = me["username"].as_str().or(me["first_name"].as_str()).unwrap_or("bot").to_string();
    let db = ctx.db()?;
    let existing = load_config(&db, &caller.id).await?;

    // A different bot replaces the old one: the old bot must stop delivering here.
    if let Some(old) = existing.as_ref().filter(|o| o.bot_id != bot_id) {
        match bot_for(&ctx.env, &db, old).await {
            Ok(old_bot) => {
                if let Err(e) = old_bot.delete_webhook().await {
                    log_error(&format!("telegram setup: removing the previous bot's webhook failed: {e}"));
                }
            }
            Err(_) => {
                log_error("telegram setup: the previous bot token could not be opened; its webhook was left as is")
            }
        }
    }

    let webhook_url = format!("{}/telegram/webhook/{}", ctx.public_origin(), caller.id);
    let secret = random_token::<32>();
    let now = iso(ctx.now);
    if let Err(e) = bot.set_webhook(&webhook_url, &secret).await {
        // Nothing new is saved; a previous configuration is kept but marked inactive,
        // since its webhook may no longer point here.
        if existing.is_some() {
            crate::q!(
                &db,
                "UPDATE user_telegram_config SET webhook_active = 0, updated_at = ?1 WHERE user_id = ?2",
                &now,
                &caller.id
            )?
            .exec()
            .await?;
        }
        return Err(ApiError::upstream(format!("Telegram refused the webhook: {}", e.description)));
    }
    let sealed = keys.seal_str(&Aad { purpose: PURPOSE, owner: &caller.id }, &token);
    let pairing = random_token::<6>();
    // The same bot keeps its paired owner; a different bot must be paired again.
    crate::q!(
        &db,
        "INSERT INTO user_telegram_config (id, user_id, bot_token_encrypted, bot_username, bot_info, bot_id, webhook_url,
           webhook_active, webhook_secret_hash, pairing_code_hash, pairing_expires_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?10, ?11, ?9, ?9)
         ON CONFLICT(user_id) DO UPDATE SET bot_token_encrypted = excluded.bot_token_encrypted, bot_username = excluded.bot_username,
           bot_info = excluded.bot_info, bot_id = excluded.bot_id, webhook_url = excluded.webhook_url, webhook_active = 1,
           webhook_secret_hash = excluded.webhook_secret_hash, updated_at = excluded.updated_at,
           owner_telegram_id = CASE WHEN user_telegram_config.bot_id IS excluded.bot_id THEN user_telegram_config.owner_telegram_id END,
           pairing_code_hash = CASE WHEN user_telegram_config.bot_id IS excluded.bot_id AND user_telegram_config.owner_telegram_id IS NOT NULL
                                    THEN NULL ELSE excluded.pairing_code_hash END,
           pairing_expires_at = CASE WHEN user_telegram_config.bot_id IS excluded.bot_id AND user_telegram_config.owner_telegram_id IS NOT NULL
                                    THEN NULL ELSE excluded.pairing_expires_at END",
        &uuid::Uuid::new_v4().to_string(),
        &caller.id,
        &sealed,
        &username,
        &me.to_string(),
        &bot_id,
        &webhook_url,
        &sha256_hex(secret.as_bytes()),
        &now,
        &sha256_hex(pairing.as_bytes()),
        &iso(ctx.now + PAIRING_TTL_MS)
    )?
    .exec()
    .await?;
    if let Err(e) = bot.set_commands().await {
        log_error(&format!("telegram setup: {e}"));
    }
    let row = load_config(&db, &caller.id).await?.ok_or_else(|| ApiError::internal("telegram config vanished"))?;
    let mut body = json!({ "config": row.view(), "webhookUrl": webhook_url });
    if row.owner_telegram_id.is_none() {
        // Shown once: the owner sends it to the bot (the link opens the chat with it).
        body["pairingCode"] = json!(pairing);
        body["pairingLink"] = json!(format!("https://t.me/{}?start={pairing}", row.bot_username));
    }
    Reply::ok(&body)
}

/// `GET /api/me/telegram` → `{config}` (null when not set up; never the token).
pub async fn get(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let row = load_config(&ctx.db()?, &caller.id).await?;
    Reply::ok(&json!({ "config": row.map(|r| r.view()) }))
}

/// `DELETE /api/me/telegram` → `{success: true}`: the webhook is removed when the token can be
/// opened (best effort), the configuration always.
pub async fn disconnect(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    if let Some(row) = load_config(&db, &caller.id).await? {
        match bot_for(&ctx.env, &db, &row).await {
            Ok(bot) => {
                if let Err(e) = bot.delete_webhook().await {
                    log_error(&format!("telegram disconnect: {e}"));
                }
            }
            Err(_) => log_error(
                "telegram disconnect: the stored bot token could not be opened; removing the configuration anyway",
            ),
        }
        crate::q!(&db, "DELETE FROM user_telegram_config WHERE user_id = ?1", &caller.id)?.exec().await?;
    }
    Reply::ok(&success())
}
