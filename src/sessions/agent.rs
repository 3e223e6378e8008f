//! The Worker ↔ `SessionAgent` protocol: typed requests and answers, and the client.

use serde::{Deserialize, Serialize};
use worker::{Env, Method};

use super::prompt::{Attachment, QueueMode};
use crate::do_client::{self, DoResponse};
use crate::http::{ApiError, ApiResult};

pub const BINDING: &str = "SESSIONS";

/// `POST /prompt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptRequest {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub queue_mode: Option<QueueMode>,
    /// The original's `interrupt: true` = steer.
    #[serde(default)]
    pub interrupt: bool,
    pub channel_type: Option<String>,
    pub channel_id: Option<String>,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    /// The binding's debounce for `collect`.
    pub collect_debounce_ms: Option<u32>,
    /// A delivery id: a repeated key is acknowledged without storing the prompt again.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptAccepted {
    pub success: bool,
    pub message_id: String,
    /// The queued prompt (absent while a `collect` buffer waits for its debounce).
    pub prompt_id: Option<String>,
    /// `queued` or `buffered`.
    pub status: String,
    pub queue_mode: QueueMode,
    pub attachments_dropped: usize,
    #[serde(default)]
    pub duplicate: bool,
}

/// `POST /complete/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub result: Option<String>,
    pub error: Option<String>,
}

/// `POST /webhook-update`: git-state changes pushed to a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitUpdate {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_merged_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The outbox row that carries this update (deliveries are at-least-once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A handle on one session's object.
pub struct SessionAgent<'a> {
    env: &'a Env,
    session_id: &'a str,
}

impl<'a> SessionAgent<'a> {
    pub fn new(env: &'a Env, session_id: &'a str) -> Self {
        SessionAgent { env, session_id }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> ApiResult<DoResponse> {
        do_client::call(self.env, BINDING, self.session_id, method, path, body).await
    }

    pub async fn prompt(&self, req: &PromptRequest) -> ApiResult<PromptAccepted> {
        // Sized up front: attachments can be 25 MB, and a growing buffer would briefly hold
        // one and a half copies of them.
        // (A character escapes to at most six bytes; data URLs are base64 and never escape.)
        let size = 6 * req.content.len()
            + req
                .attachments
                .iter()
                .map(|a| a.url.len() + 6 * (a.mime.len() + a.filename.as_ref().map_or(0, String::len)) + 64)
                .sum::<usize>()
            + 4096;
        let mut text = Vec::with_capacity(size);
        serde_json::to_writer(&mut text, req)?;
        let text = String::from_utf8(text).map_err(|_| ApiError::internal("prompt JSON is not UTF-8"))?;
        let r = do_client::call_text(self.env, BINDING, self.session_id, Method::Post, "/prompt", Some(text)).await?;
        match r.status {
            200 => r.json(),
            400 => Err(ApiError::new(400, "VALIDATION_ERROR", "Missing content or attachments")),
            s => Err(ApiError::upstream(format!("Session refused the prompt ({s})"))),
        }
    }

    /// GET endpoints whose JSON is passed through (`/messages`, `/queue`, `/events`, `/status`).
    pub async fn read(&self, path: &str) -> ApiResult<serde_json::Value> {
        let r = self.call(Method::Get, path, None::<&()>).await?;
        if r.status == 200 {
            r.json()
        } else {
            Err(ApiError::internal(format!("SessionAgent {path} answered {}", r.status)))
        }
    }

    /// A GET whose answer (status and body) the caller maps.
    pub async fn get(&self, path: &str) -> ApiResult<DoResponse> {
        self.call(Method::Get, path, None::<&()>).await
    }

    /// POST endpoints; non-2xx answers are returned for the caller to map.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> ApiResult<DoResponse> {
        self.call(Method::Post, path, Some(body)).await
    }
}
