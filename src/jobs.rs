//! Background work on Cloudflare Queues, the producer side: the one queue (`JOBS`) carries sync
//! slices, outbox deliveries, re-seal batches, Slack messages and PR reconciler runs. Everything
//! a response promises is enqueued here (or by a cron sweep that re-enqueues), never left to
//! `waitUntil` alone, which the runtime may cut 30 s after the response. The consumer that works
//! these messages sits at the top of the tree, in `background`.

use serde::{Deserialize, Serialize};
use worker::{Env, MessageBuilder};

use crate::config::var;
use crate::http::ApiResult;

pub const BINDING: &str = "JOBS";
/// Queues allow a delivery delay of at most 12 hours.
const MAX_DELAY_SECS: u32 = 12 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// The next slice of a sync run, in the run's chain of messages `chain` (a message of a
    /// chain the cron has replaced stops at once).
    Sync {
        run: String,
        #[serde(default)]
        chain: i64,
    },
    /// Deliver the outbox rows of one batch (side effects of a webhook delivery).
    Outbox { batch: String },
    /// The next batch of the re-seal maintenance job.
    Reseal,
    /// A run of the PR reconciler (enqueued by the cron every minute).
    Reconcile,
    /// A Slack message for the bot (its sender is linked, or offered a link).
    /// (`message` is the JSON of a `slack::events::SlackMessage`: a string field keeps the
    /// tagged enum's deserializer small.)
    SlackMessage { message: String },
    /// The Slack app left a workspace.
    SlackUninstalled { team: String },
    /// The next step of copying an integration's data from D1 into its object.
    MoveData { integration: String },
    /// A run of the holders' re-check (enqueued by the cron every minute).
    RecheckHolders,
    /// A look at a realtime integration's push subscriptions (create, renew, stop).
    Realtime { integration: String },
    /// Tell owners' orchestrators of connection-health events.
    Health,
}

/// The base delay of a retried job (`JOB_RETRY_BASE_SECONDS`, 10 s by default).
pub fn retry_base(env: &Env) -> u32 {
    var(env, "JOB_RETRY_BASE_SECONDS").and_then(|v| v.parse().ok()).unwrap_or(10)
}

/// Enqueues a job, delivered after `delay_secs`.
pub async fn send(env: &Env, job: &Job, delay_secs: u32) -> ApiResult<()> {
    let body = serde_json::to_string(job)?;
    let queue = env.queue(BINDING)?;
    if delay_secs == 0 {
        queue.send(body).await?;
    } else {
        queue.send(MessageBuilder::new(body).delay_seconds(delay_secs.min(MAX_DELAY_SECS)).build()).await?;
    }
    Ok(())
}

/// Enqueues several jobs in one request.
pub async fn send_all(env: &Env, jobs: &[Job]) -> ApiResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let bodies = jobs.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
    env.queue(BINDING)?.send_batch(bodies).await?;
    Ok(())
}

/// Backoff before retry `attempt` (1-based) of a failed job: base·2^(attempt−1), capped at 15 minutes.
pub fn backoff_secs(base: u32, attempt: u32) -> u32 {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10)).min(15 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(5, 1), 5);
        assert_eq!(backoff_secs(5, 3), 20);
        assert_eq!(backoff_secs(60, 30), 900);
    }

    #[test]
    fn jobs_keep_their_wire_form() {
        let j = serde_json::to_string(&Job::Sync { run: "r1".into(), chain: 2 }).unwrap();
        assert_eq!(j, r#"{"kind":"sync","run":"r1","chain":2}"#);
        // Messages sent before chains existed belong to the first chain.
        assert_eq!(
            serde_json::from_str::<Job>(r#"{"kind":"sync","run":"r1"}"#).unwrap(),
            Job::Sync { run: "r1".into(), chain: 0 }
        );
        assert_eq!(serde_json::from_str::<Job>(r#"{"kind":"reseal"}"#).unwrap(), Job::Reseal);
    }
}
