//! The queue consumer: works the `JOBS` messages (sync slices, outbox deliveries, re-seal batches,
//! Slack messages, PR reconciler runs) and gives up on what reaches the dead-letter queue. It sits
//! at the top of the tree beside `app` and `maintenance`: it calls down into the features, and
//! nothing calls it but the Worker's `queue` event. Producers enqueue through `jobs`.
//!
//! One consumer invocation shares one subrequest budget (`SYNC_REQUEST_BUDGET`) across its
//! messages: Workers count every fetch, D1 and Durable Object call against 50 (free) or 1000
//! (paid) per invocation, and the local runtime does not enforce it. [`Budget`] is that
//! arithmetic, as plain data.

pub mod outbox;

use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::config::log_error;
use crate::http::ApiResult;
use crate::integrations::engine::Slice;
use crate::integrations::runs;
use crate::jobs::{backoff_secs, retry_base, send, Job};
use crate::time::now_ms;

/// A message that cannot get this many subrequests is passed on to a fresh invocation.
const MIN_SHARE: u32 = 6;
/// Subrequests a Slack message may use: D1 reads and writes, the session, and Slack calls.
const SLACK_SUBREQUESTS: u32 = 10;
/// Subrequests of one step of a data move (D1 claim, D1 read, the object's import, D1 cursor,
/// and the next message).
const MOVE_SUBREQUESTS: u32 = 5;
/// Subrequests of one holders' re-check: the claim, per integration its row, credentials and
/// writes, and one provider call per holder (10 at most).
const RECHECK_SUBREQUESTS: u32 = 30;
/// Subrequests of one re-seal batch (at most about a dozen).
const RESEAL_SUBREQUESTS: u32 = 14;
/// Subrequests of a look at an integration's subscriptions: D1 reads and writes, its object,
/// its credentials and one provider call per subscription created or stopped (10 at most each).
const REALTIME_SUBREQUESTS: u32 = 40;
/// Subrequests of telling health events: per event its session and the D1 writes (10 events).
const HEALTH_SUBREQUESTS: u32 = 40;

/// One invocation's subrequest budget, shared by the messages of its batch in order. Each
/// message's share keeps one subrequest back for every message after it, so a message left
/// without a share can still be passed on (one `send`).
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    left: u32,
    count: u32,
}

impl Budget {
    pub fn new(total: u32, count: usize) -> Self {
        Budget { left: total, count: u32::try_from(count).unwrap_or(u32::MAX) }
    }

    /// The share of message `i` (0-based), or `None` when it must be passed on instead.
    pub fn share(&self, i: usize) -> Option<u32> {
        let after = self.count.saturating_sub(u32::try_from(i).unwrap_or(u32::MAX)).saturating_sub(1);
        let mine = self.left.saturating_sub(after);
        (mine >= MIN_SHARE).then_some(mine)
    }

    /// Records what a message used (passing one on uses one).
    pub fn spend(&mut self, used: u32) {
        self.left = self.left.saturating_sub(used);
    }
}

/// The queue handler: `JOBS` messages are worked, dead letters are given up on.
pub async fn consume(batch: MessageBatch<String>, env: Env) -> worker::Result<()> {
    #[cfg(feature = "fault-injection")]
    crate::faults::arm(&env);
    let dead = batch.queue().ends_with("-dlq");
    let messages = batch.messages()?;
    let mut budget = Budget::new(runs::budget(&env), messages.len());
    for (i, msg) in messages.iter().enumerate() {
        let job: Job = match serde_json::from_str(msg.body()) {
            Ok(j) => j,
            Err(e) => {
                log_error(&format!("queue: dropping an unreadable message: {e}"));
                msg.ack();
                continue;
            }
        };
        if dead {
            dead_letter(&env, &job).await;
            msg.ack();
            continue;
        }
        let Some(mine) = budget.share(i) else {
            pass_on(&env, &job, msg).await;
            budget.spend(1);
            continue;
        };
        let used = match &job {
            Job::Sync { run, chain } => work_sync(&env, run, *chain, &msg.id(), mine, msg).await,
            Job::Outbox { batch } => outbox::deliver(&env, batch, mine, msg, retry_base(&env)).await,
            Job::Reseal => work_reseal(&env, msg).await,
            Job::Reconcile => work_reconcile(&env, mine, msg).await,
            Job::SlackMessage { message } => {
                let done = crate::slack::events::process(&env, message).await;
                finish(&env, msg, done, "slack message");
                SLACK_SUBREQUESTS
            }
            Job::SlackUninstalled { team } => {
                finish(&env, msg, crate::slack::events::uninstalled(&env, team).await, "slack uninstall");
                1
            }
            Job::MoveData { integration } => {
                finish(&env, msg, crate::integrations::moving::work(&env, integration).await, "data move");
                MOVE_SUBREQUESTS
            }
            Job::RecheckHolders => work_recheck(&env, msg).await,
            Job::Realtime { integration } => {
                let done = crate::integrations::realtime::watch::reconcile(&env, integration).await;
                finish(&env, msg, done, "realtime subscriptions");
                REALTIME_SUBREQUESTS
            }
            Job::Health => {
                match crate::integrations::realtime::health::tell(&env).await {
                    Ok(more) => {
                        if more {
                            pass_on(&env, &Job::Health, msg).await;
                        } else {
                            msg.ack();
                        }
                    }
                    Err(e) => finish(&env, msg, Err(e), "health events"),
                }
                HEALTH_SUBREQUESTS
            }
        };
        budget.spend(used);
    }
    Ok(())
}

/// Acknowledges a done job, or retries it after the base delay.
fn finish<M: MessageExt>(env: &Env, msg: &M, done: ApiResult<()>, what: &str) {
    match done {
        Ok(()) => msg.ack(),
        Err(e) => {
            log_error(&format!("{what}: {}; retrying", e.internal.as_deref().unwrap_or(&e.message)));
            msg.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(retry_base(env)).build());
        }
    }
}

/// Re-sends a job this invocation has no budget left for (a fresh message, not a retry, so it
/// does not count towards the dead-letter queue).
async fn pass_on<M: MessageExt>(env: &Env, job: &Job, msg: &M) {
    match send(env, job, 0).await {
        Ok(()) => msg.ack(),
        Err(_) => msg.retry(),
    }
}

/// One slice; answers the subrequests it may have used (its whole share, to be safe). The
/// continuation belongs to the same chain of messages.
async fn work_sync<M: MessageExt>(env: &Env, run: &str, chain: i64, owner: &str, budget: u32, msg: &M) -> u32 {
    // The slice keeps one subrequest for the continuation message.
    let outcome = runs::slice(env, run, owner, chain, budget - 1).await;
    // Test builds count the slices of each chain (the chaos test reads these lines).
    #[cfg(feature = "fault-injection")]
    worker::console_log!("[test] sync slice run={run} chain={chain} outcome={outcome:?}");
    let next = |delay: u32| async move {
        if let Err(e) = send(env, &Job::Sync { run: run.to_string(), chain }, delay).await {
            // The run is saved and unleased: the cron's sweep picks it up.
            log_error(&format!("sync {run}: continuation not enqueued: {}", e.message));
        }
    };
    match outcome {
        Slice::Continue => {
            next(0).await;
            msg.ack();
        }
        Slice::Deferred(at) => {
            next(((at - now_ms()).max(0) / 1000) as u32 + 1).await;
            msg.ack();
        }
        Slice::Retry { error, failures } => {
            log_error(&format!("sync {run}: slice failed ({error}); retrying"));
            let delay = backoff_secs(retry_base(env), failures);
            msg.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
        }
        Slice::Done(crate::integrations::engine::Ending::Completed) => {
            if let Err(e) = crate::integrations::realtime::after_run(env, run).await {
                log_error(&format!("sync {run}: realtime follow-up failed ({}); the cron will", e.message));
            }
            msg.ack();
        }
        Slice::NotClaimed | Slice::LeaseLost | Slice::Done(_) => msg.ack(),
    }
    budget
}

/// One re-seal batch, then the next message.
async fn work_reseal<M: MessageExt>(env: &Env, msg: &M) -> u32 {
    match crate::maintenance::reseal_batch(env).await {
        Ok(more) => {
            if more {
                if let Err(e) = send(env, &Job::Reseal, 0).await {
                    log_error(&format!("re-seal: next batch not enqueued ({}); the cron will", e.message));
                }
            }
            msg.ack();
        }
        Err(e) => {
            log_error(&format!("re-seal batch failed: {}", e.message));
            msg.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(retry_base(env)).build());
        }
    }
    RESEAL_SUBREQUESTS
}

/// One reconciler run; a full batch is continued by a fresh message. A failed run is not
/// retried: the next minute's cron starts another.
async fn work_reconcile<M: MessageExt>(env: &Env, budget: u32, msg: &M) -> u32 {
    let used = match crate::github::reconcile::run(env, budget - 1).await {
        Ok(outcome) => {
            if outcome.more {
                if let Err(e) = send(env, &Job::Reconcile, 0).await {
                    log_error(&format!("pr reconciler: continuation not enqueued ({}); the cron will", e.message));
                }
            }
            outcome.used + 1
        }
        Err(e) => {
            log_error(&format!("pr reconciler failed: {}", e.internal.as_deref().unwrap_or(&e.message)));
            budget
        }
    };
    msg.ack();
    used
}

/// One re-check of integrations' holders; a full batch is continued by a fresh message. A
/// failed run is not retried: the next minute's cron starts another.
async fn work_recheck<M: MessageExt>(env: &Env, msg: &M) -> u32 {
    match crate::integrations::holders::recheck(env).await {
        Ok(true) => {
            if let Err(e) = send(env, &Job::RecheckHolders, 0).await {
                log_error(&format!("holder re-check: continuation not enqueued ({}); the cron will", e.message));
            }
        }
        Ok(false) => {}
        Err(e) => log_error(&format!("holder re-check failed: {}", e.internal.as_deref().unwrap_or(&e.message))),
    }
    msg.ack();
    RECHECK_SUBREQUESTS
}

/// A job that failed `max_retries` times: its owner is told (a run fails with its reason, an
/// outbox batch is dropped, the re-seal job is marked failed).
async fn dead_letter(env: &Env, job: &Job) {
    let result = match job {
        Job::Sync { run, .. } => runs::give_up(env, run).await,
        Job::Outbox { batch } => outbox::give_up(env, batch).await,
        Job::Reseal => crate::maintenance::fail_reseal(env).await,
        Job::Reconcile => Ok(()),
        Job::SlackMessage { .. } => {
            log_error("a slack message was given up after retries");
            Ok(())
        }
        Job::SlackUninstalled { team } => {
            log_error(&format!("slack uninstall of {team} given up after retries"));
            Ok(())
        }
        Job::RecheckHolders | Job::Health => Ok(()),
        Job::Realtime { integration } => {
            log_error(&format!("realtime {integration}: a look was given up after retries; the cron looks again"));
            Ok(())
        }
        // The cron restarts a move whose messages stopped.
        Job::MoveData { integration } => {
            log_error(&format!("data move of {integration}: a step was given up after retries; the cron resumes it"));
            Ok(())
        }
    };
    if let Err(e) = result {
        log_error(&format!("dead letter {job:?} not recorded: {}", e.message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_keeps_one_subrequest_for_every_later_one() {
        let b = Budget::new(50, 3);
        assert_eq!(b.share(0), Some(48));
        assert_eq!(b.share(1), Some(49));
        assert_eq!(b.share(2), Some(50));
    }

    #[test]
    fn spending_shrinks_later_shares_and_a_small_share_passes_on() {
        let mut b = Budget::new(50, 3);
        b.spend(45);
        assert_eq!(b.share(1), None, "5 left minus 1 for the last message is below the minimum");
        b.spend(1);
        assert_eq!(b.share(2), None);
        let mut b = Budget::new(20, 2);
        b.spend(10);
        assert_eq!(b.share(1), Some(10));
    }

    #[test]
    fn a_batch_larger_than_the_budget_passes_everything_on() {
        let b = Budget::new(6, 10);
        assert!((0..9).all(|i| b.share(i).is_none()));
        assert_eq!(b.share(9), Some(6));
        assert_eq!(Budget::new(5, 1).share(0), None);
        assert_eq!(Budget::new(6, 1).share(0), Some(6));
    }
}
