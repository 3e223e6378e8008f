//! Replies from sessions to Slack threads: `POST /api/sessions/:id/reply` with
//! `channelType: slack`, and the result of a completed prompt that came from Slack. A user's
//! session may only write where that user talks to the bot (a DM or channel they used).

use crate::db::Query as _;
use serde_json::json;
use worker::d1::D1Database;
use worker::Env;

use super::api::SlackError;
use super::{load_workspace, open_workspace};
use crate::channels::scope::slack_parts;
use crate::http::input::Input;
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::sessions::owned_session;

fn refused(e: SlackError) -> ApiError {
    match e.retry_after {
        Some(secs) => ApiError::new(429, "RATE_LIMITED", "Slack is rate limiting this bot; retry later")
            .with_details(json!({ "retryAfter": secs }))
            .with_header("Retry-After", secs.to_string()),
        None => ApiError::upstream(format!("Slack refused the message: {}", e.error)),
    }
}

/// Sends Markdown to a Slack thread (`<teamId>:<channelId>:<threadTs>`) as the workspace's bot;
/// the number of messages sent.
pub async fn deliver_text(
    env: &Env,
    db: &D1Database,
    user_id: &str,
    channel_id: &str,
    markdown: &str,
) -> ApiResult<usize> {
    let (team, channel, thread) = slack_parts(channel_id)
        .ok_or_else(|| ApiError::invalid_field("channelId", "A Slack channel id is <teamId>:<channelId>:<threadTs>"))?;
    let seen: Option<serde_json::Value> = crate::q!(
        db,
        "SELECT 1 AS n FROM slack_conversations WHERE user_id = ?1 AND team_id = ?2 AND channel_id = ?3",
        &user_id,
        &team,
        &channel
    )?
    .one()
    .await?;
    let not_connected = || {
        ApiError::new(
            409,
            "SLACK_NOT_CONNECTED",
            "You have not talked to the Slack bot in this conversation (link your Slack account and message the bot there first)",
        )
    };
    if seen.is_none() {
        return Err(not_connected());
    }
    let ws = load_workspace(db, team).await?.ok_or_else(not_connected)?;
    let slack = open_workspace(env, db, &ws).await?;
    slack.send_markdown(channel, thread, markdown).await.map_err(refused)
}

/// `POST /api/sessions/:id/reply` `{channelType: "slack", channelId, text}` → 202 `{delivered, parts}`.
pub async fn reply(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    input.str("channelType", 1, 20);
    let channel = input.str("channelId", 1, 128);
    let text = input.opt_text("text", 100_000).filter(|t| !t.trim().is_empty());
    if input.has("photo") {
        input.error("photo", "Photos are sent to Telegram chats only");
    }
    if !channel.is_empty() && slack_parts(&channel).is_none() {
        input.error("channelId", "A Slack channel id is <teamId>:<channelId>:<threadTs>");
    }
    if text.is_none() {
        input.error("text", "Required");
    }
    input.finish()?;
    let db = ctx.db()?;
    owned_session(&db, &caller.id, ctx.params.get("id")).await?;
    let parts = deliver_text(&ctx.env, &db, &caller.id, &channel, &text.unwrap_or_default()).await?;
    Reply::json(202, &json!({ "delivered": true, "parts": parts }))
}
