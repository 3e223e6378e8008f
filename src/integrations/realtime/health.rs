//! Connection health. Every change of an integration's status to `error` (its owner must
//! reconnect: `RECONNECT_REQUIRED`) or from `error` back to `active` is recorded by a D1
//! trigger (migration 0021), whichever code path made it: the sync engine, an action, a token
//! refresh, a PATCH or an OAuth round trip. The owner reads them at
//! `GET /api/integrations/:id/events`, and a queue job (`Job::Health`, enqueued by the cron
//! while any is untold) tells the owner's orchestrator session, once per event (the prompt's
//! idempotency key is the event's id).

use serde::Deserialize;
use serde_json::{json, Value};
use worker::Env;

use crate::channels::routing::dispatch_to_orchestrator;
use crate::config::log_error;
use crate::db::Query as _;
use crate::http::page::{newest_first, page_body, Keyed, PageQuery};
use crate::http::{ApiResult, Ctx, Reply};
use crate::integrations::store;
use crate::sessions::agent::PromptRequest;
use crate::time::{iso, normalize, now_ms};

/// Events told per job run (each is a call to a session object).
const PER_JOB: u32 = 10;

#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    pub integration_id: String,
    pub user_id: String,
    pub kind: String,
    pub status: String,
    pub previous_status: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub created_at: String,
    pub notified_at: Option<String>,
    pub notify_result: Option<String>,
    /// Its integration's service (only where a query joins it).
    #[serde(default)]
    pub service: Option<String>,
}

impl Keyed for Event {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

fn view(e: &Event) -> Value {
    let mut v = json!({
        "id": e.id, "integrationId": e.integration_id, "kind": e.kind, "status": e.status,
        "previousStatus": e.previous_status, "createdAt": normalize(&e.created_at),
        "notifiedAt": e.notified_at.as_deref().map(normalize),
    });
    if let Some(c) = &e.code {
        v["code"] = json!(c);
    }
    if let Some(m) = &e.message {
        v["message"] = json!(m);
    }
    v
}

/// `GET /api/integrations/:id/events?limit&cursor` (the owner's) → `{events, hasMore, cursor?}`,
/// newest first.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let db = ctx.db()?;
    let row = store::find(&db, &caller.id, ctx.params.get("id"), true).await?;
    let page = PageQuery::parse(&ctx.query, 50)?;
    let rows: Vec<Event> =
        newest_first(&db, "SELECT * FROM integration_events WHERE integration_id = ?1", &row.id, &page).await?;
    Reply::ok(&page_body("events", &rows, page.limit, view))
}

/// What the orchestrator is told.
pub fn message(service: &str, e: &Event) -> String {
    match e.status.as_str() {
        "error" => format!(
            "Your {service} integration ({}) lost its connection: {}. It must be reconnected (RECONNECT_REQUIRED); until then it does not sync and its actions answer 409.",
            e.integration_id,
            e.message.as_deref().unwrap_or("the provider refused its credentials")
        ),
        _ => format!("Your {service} integration ({}) is connected again and syncing.", e.integration_id),
    }
}

/// Whether any event waits to be told (the cron then enqueues the job).
pub async fn untold(env: &Env) -> ApiResult<bool> {
    let db = env.d1("DB")?;
    #[derive(Deserialize)]
    struct One {
        #[allow(dead_code)]
        id: String,
    }
    Ok(crate::q!(&db, "SELECT id FROM integration_events WHERE notified_at IS NULL LIMIT 1")?
        .one::<One>()
        .await?
        .is_some())
}

/// The job: tells the owners' orchestrators of untold events, oldest first; answers whether
/// more remain.
pub async fn tell(env: &Env) -> ApiResult<bool> {
    let db = env.d1("DB")?;
    let rows: Vec<Event> = crate::q!(
        &db,
        "SELECT e.*, i.service FROM integration_events e LEFT JOIN integrations i ON i.id = e.integration_id
          WHERE e.notified_at IS NULL ORDER BY e.created_at LIMIT ?1",
        &PER_JOB
    )?
    .rows()
    .await?
    .results()?;
    for e in &rows {
        let service = e.service.as_deref().unwrap_or("integration");
        let req = PromptRequest {
            content: message(service, e),
            channel_type: Some("api".into()),
            channel_id: Some(format!("integration:{}", e.integration_id)),
            author_id: Some(e.user_id.clone()),
            author_name: Some("integrations".into()),
            idempotency_key: Some(format!("integration-event:{}", e.id)),
            ..Default::default()
        };
        let result = match dispatch_to_orchestrator(env, &db, &e.user_id, &req).await {
            Ok(d) if d.dispatched => "told".to_string(),
            Ok(d) => d.reason.unwrap_or_else(|| "not told".into()),
            Err(err) => {
                log_error(&format!("integration event {}: not told ({}); retried", e.id, err.code));
                continue;
            }
        };
        crate::q!(
            &db,
            "UPDATE integration_events SET notified_at = ?1, notify_result = ?2 WHERE id = ?3",
            &iso(now_ms()),
            &result,
            &e.id
        )?
        .exec()
        .await?;
    }
    Ok(rows.len() as u32 == PER_JOB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: &str, message: Option<&str>) -> Event {
        Event {
            id: "e".into(),
            integration_id: "i1".into(),
            user_id: "u".into(),
            kind: "k".into(),
            status: status.into(),
            previous_status: "active".into(),
            code: None,
            message: message.map(str::to_string),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            notified_at: None,
            notify_result: None,
            service: None,
        }
    }

    #[test]
    fn the_orchestrator_hears_what_broke_and_what_recovered() {
        let lost = message("gmail", &event("error", Some("Google refused the refresh token; reconnect the account")));
        assert!(lost.contains("gmail integration (i1) lost its connection: Google refused"), "{lost}");
        assert!(lost.contains("RECONNECT_REQUIRED"));
        assert!(message("github", &event("active", None)).contains("connected again"));
    }

    #[test]
    fn the_view_leaves_out_what_is_absent() {
        let v = view(&event("active", None));
        assert!(v.get("code").is_none() && v.get("message").is_none());
        assert_eq!(v["integrationId"], "i1");
    }
}
