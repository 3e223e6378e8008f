//! The one path by which any channel (the API, Telegram, Slack, webhook triggers) reaches a
//! user's orchestrator when no binding names a session.

use worker::d1::D1Database;
use worker::Env;

use crate::http::ApiResult;
use crate::sessions::agent::{PromptAccepted, PromptRequest, SessionAgent};
use crate::sessions::store::find_orchestrator;

/// The outcome of handing a prompt to the caller's orchestrator.
pub struct Dispatch {
    pub dispatched: bool,
    pub session_id: Option<String>,
    pub reason: Option<String>,
    pub accepted: Option<PromptAccepted>,
}

/// The one path by which any channel reaches a user's orchestrator. The prompt is stored once,
/// by the session object; nothing is written when the orchestrator is missing or unavailable.
pub async fn dispatch_to_orchestrator(
    env: &Env,
    db: &D1Database,
    user_id: &str,
    req: &PromptRequest,
) -> ApiResult<Dispatch> {
    let fail = |session_id: Option<String>, reason: String| Dispatch {
        dispatched: false,
        session_id,
        reason: Some(reason),
        accepted: None,
    };
    if req.content.trim().is_empty() && req.attachments.is_empty() {
        return Ok(fail(None, "empty_prompt".into()));
    }
    let Some(session) = find_orchestrator(db, user_id).await? else {
        return Ok(fail(None, "orchestrator_not_configured".into()));
    };
    if session.is_finished() {
        return Ok(fail(Some(session.id), format!("orchestrator_unavailable:{}", session.status)));
    }
    match SessionAgent::new(env, &session.id).prompt(req).await {
        Ok(accepted) => {
            Ok(Dispatch { dispatched: true, session_id: Some(session.id), reason: None, accepted: Some(accepted) })
        }
        Err(e) => Ok(fail(Some(session.id), format!("orchestrator_dispatch_failed:{}", e.status))),
    }
}
