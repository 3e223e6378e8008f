//! The transactional outbox: side effects (telling a session its pull request changed, writing
//! a webhook's entities into an integration's object, dropping a deleted integration's data) are
//! written as rows in the same D1 batch as the change that causes them, then delivered by a
//! queue message (`background::outbox`). A lost message is made up for by the cron's sweep; a
//! repeated delivery is recognised by the receiver (the row id is its idempotency key). This
//! file is the producer's side: the kinds of rows and the sweep.

use crate::db::Batch as _;
use serde::Deserialize;
use worker::Env;

use crate::config::log_error;
use crate::http::ApiResult;
use crate::jobs::{self, Job};
use crate::time::{iso, now_ms};

/// A git-state update for a session (`target` = the session id, payload = a `GitUpdate`).
pub const SESSION_GIT: &str = "session-git";
/// Entities a webhook delivery changed, for an integration's object (`target` = the integration
/// id, payload = its upsert groups).
pub const ENTITY_UPSERT: &str = "entity-upsert";
/// A deleted integration's data, to drop from its object (`target` = the integration id).
pub const DROP_DATA: &str = "drop-data";
/// A deleted integration's OAuth grant, to revoke at the provider (`target` = the integration
/// id, payload = [`RevokeGrant`]: the service and its credentials, sealed).
pub const REVOKE_GRANT: &str = "revoke-grant";
/// The sealing purpose of a [`REVOKE_GRANT`] row's credentials (owner: the integration id).
pub const REVOKE_GRANT_PURPOSE: &str = "outbox:revoke-grant";

/// The payload of a [`REVOKE_GRANT`] row.
#[derive(serde::Serialize, Deserialize)]
pub struct RevokeGrant {
    pub service: String,
    pub sealed: String,
}

/// Rows older than this without a delivery have lost their message.
const ORPHANED_AFTER_MS: i64 = 2 * 60 * 1000;
/// Deliveries of one row before it is dropped.
pub const MAX_ATTEMPTS: i64 = 10;

/// The cron's part: batches whose message was lost are enqueued again; rows that failed
/// `MAX_ATTEMPTS` times are given up (each sweep would otherwise start them over).
pub async fn sweep(env: &Env) -> ApiResult<()> {
    #[derive(Deserialize)]
    struct B {
        batch: String,
    }
    let db = env.d1("DB")?;
    let results = db
        .batch_rows(vec![
            crate::q!(&db, "DELETE FROM outbox WHERE attempts >= ?1 RETURNING id", &MAX_ATTEMPTS)?,
            crate::q!(
                &db,
                "SELECT DISTINCT batch FROM outbox WHERE created_at <= ?1 LIMIT 20",
                &iso(now_ms() - ORPHANED_AFTER_MS)
            )?,
        ])
        .await?;
    let dropped = results[0].count();
    if dropped > 0 {
        log_error(&format!("outbox: gave up on {dropped} notification(s) after {MAX_ATTEMPTS} attempts"));
    }
    let batches: Vec<B> = results[1].results()?;
    let jobs: Vec<Job> = batches.into_iter().map(|b| Job::Outbox { batch: b.batch }).collect();
    jobs::send_all(env, &jobs).await
}
