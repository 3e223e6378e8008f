//! Sending to a Slack thread as the workspace's bot. A user's session may only write where that
//! user talks to the bot (a DM or channel they used). Which channel a reply goes to is decided
//! in `channels::delivery`.

use crate::db::Query as _;
use worker::d1::D1Database;
use worker::Env;

use super::api::SlackError;
use super::ids::slack_parts;
use super::{load_workspace, open_workspace};
use crate::http::upstream::UpstreamError;
use crate::http::{ApiError, ApiResult};

fn refused(e: SlackError) -> ApiError {
    match e.retry_after {
        Some(secs) => UpstreamError::RateLimited {
            message: "Slack is rate limiting this bot; retry later".into(),
            retry_after: secs,
        },
        None => UpstreamError::Failed { message: format!("Slack refused the message: {}", e.error), details: None },
    }
    .into()
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
