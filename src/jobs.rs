//! Background work on Cloudflare Queues: the one queue (`JOBS`) carries sync slices, outbox
//! deliveries, re-seal batches, Slack messages and PR reconciler runs; its dead-letter queue
//! receives what failed `max_retries` times. Everything a response promises happens through here (or a cron sweep that re-enqueues), never through
//! `waitUntil` alone, which the runtime may cut 30 s after the response.
//!
//! One consumer invocation shares one subrequest budget (`SYNC_REQUEST_BUDGET`) across its
//! messages: Workers count every fetch, D1 and Durable Object call against 50 (free) or
//! 1000 (paid) per invocation, and the local runtime does not enforce it.

use serde::{Deserialize, Serialize};
use worker::{Env, MessageBatch, MessageBuilder, MessageExt, QueueRetryOptionsBuilder};

use crate::config::{log_error, var};
use crate::http::ApiResult;
use crate::integrations::engine::{backoff_secs, Slice};
use crate::integrations::runs;
use crate::time::now_ms;

pub const BINDING: &str = "JOBS";
/// Queues allow a delivery delay of at most 12 hours.
const MAX_DELAY_SECS: u32 = 12 * 3600;
/// A message that cannot get this many subrequests is passed on to a fresh invocation.
const MIN_SLICE_BUDGET: u32 = 6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// The next slice of a sync run.
    Sync { run: String },
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
}

fn retry_base(env: &Env) -> u32 {
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

/// The queue handler: `JOBS` messages are worked, dead letters are given up on.
pub async fn consume(batch: MessageBatch<String>, env: Env) -> worker::Result<()> {
    #[cfg(feature = "fault-injection")]
    faults::arm(&env);
    let dead = batch.queue().ends_with("-dlq");
    let messages = batch.messages()?;
    let mut budget = runs::budget(&env);
    let count = messages.len() as u32;
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
        // Keep one subrequest for each message after this one, to pass it on if need be.
        let left_after = count - i as u32 - 1;
        let mine = budget.saturating_sub(left_after);
        if mine < MIN_SLICE_BUDGET {
            pass_on(&env, &job, msg).await;
            budget = budget.saturating_sub(1);
            continue;
        }
        let used = match &job {
            Job::Sync { run } => work_sync(&env, run, &msg.id(), mine, msg).await,
            Job::Outbox { batch } => crate::outbox::deliver(&env, batch, mine, msg, retry_base(&env)).await,
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
        };
        budget = budget.saturating_sub(used);
    }
    Ok(())
}

/// Subrequests a Slack message may use: D1 reads and writes, the session, and Slack calls.
const SLACK_SUBREQUESTS: u32 = 10;

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

/// One slice; answers the subrequests it may have used (its whole share, to be safe).
async fn work_sync<M: MessageExt>(env: &Env, run: &str, owner: &str, budget: u32, msg: &M) -> u32 {
    // The slice keeps one subrequest for the continuation message.
    let outcome = runs::slice(env, run, owner, budget - 1).await;
    let next = |delay: u32| async move {
        if let Err(e) = send(env, &Job::Sync { run: run.to_string() }, delay).await {
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
        Slice::NotClaimed | Slice::LeaseLost | Slice::Done(_) => msg.ack(),
    }
    budget
}

/// One re-seal batch (at most about a dozen subrequests), then the next message.
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
    14
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

async fn dead_letter(env: &Env, job: &Job) {
    let result = match job {
        Job::Sync { run } => runs::give_up(env, run).await,
        Job::Outbox { batch } => crate::outbox::give_up(env, batch).await,
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
    };
    if let Err(e) = result {
        log_error(&format!("dead letter {job:?} not recorded: {}", e.message));
    }
}

/// A test-only switch (the `fault-injection` feature, never in production builds): the
/// consumer dies (the Wasm instance traps) right after its N-th committed page, once per
/// isolate, so tests can watch a redelivered message finish the run.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::cell::Cell;

    /// Bytes of Wasm linear memory (it only grows: the instance's peak).
    pub fn wasm_memory() -> usize {
        #[cfg(target_arch = "wasm32")]
        return core::arch::wasm32::memory_size(0) * 65536;
        #[cfg(not(target_arch = "wasm32"))]
        0
    }

    thread_local! {
        static DIE_AFTER: Cell<u32> = const { Cell::new(0) };
        static COMMITS: Cell<u32> = const { Cell::new(0) };
        static OUTBOX_FAILURES: Cell<u32> = const { Cell::new(0) };
        static ARMED: Cell<bool> = const { Cell::new(false) };
    }

    const FIRED: &str = "__integrationsFaultFired";

    /// Reads the switches once per instance (counters then run down across invocations).
    pub fn arm(env: &worker::Env) {
        if ARMED.with(|a| a.replace(true)) {
            return;
        }
        let n = |name: &str| crate::config::var(env, name).and_then(|v| v.parse().ok()).unwrap_or(0);
        DIE_AFTER.with(|d| d.set(n("FAULT_DIE_AFTER_COMMITS")));
        OUTBOX_FAILURES.with(|d| d.set(n("FAULT_OUTBOX_FAILURES")));
    }

    /// `<name>=1`: the request dies (the Wasm instance traps) here, once per isolate.
    pub fn die_once(env: &worker::Env, name: &str) {
        if crate::config::var(env, name).is_none() {
            return;
        }
        let flag = format!("__fault_{name}");
        let global = worker::js_sys::global();
        if worker::js_sys::Reflect::get(&global, &flag.as_str().into()).map(|v| v.is_truthy()).unwrap_or(false) {
            return;
        }
        let _ = worker::js_sys::Reflect::set(&global, &flag.as_str().into(), &true.into());
        panic!("fault injection: {name}");
    }

    /// `FAULT_OUTBOX_FAILURES=n`: the first n outbox deliveries of this isolate fail.
    pub fn outbox_should_fail() -> bool {
        OUTBOX_FAILURES.with(|f| {
            let left = f.get();
            f.set(left.saturating_sub(1));
            left > 0
        })
    }

    /// The flag lives on the JS global object, which outlives the Wasm instance a trap resets.
    fn fired() -> bool {
        let global = worker::js_sys::global();
        worker::js_sys::Reflect::get(&global, &FIRED.into()).map(|v| v.is_truthy()).unwrap_or(false)
    }

    pub fn after_commit() {
        let n = DIE_AFTER.with(Cell::get);
        if n == 0 || fired() {
            return;
        }
        let c = COMMITS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        if c >= n {
            let _ = worker::js_sys::Reflect::set(&worker::js_sys::global(), &FIRED.into(), &true.into());
            panic!("fault injection: the consumer dies after {c} committed pages");
        }
    }
}
