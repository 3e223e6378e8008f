//! Calling a Durable Object from the Worker: one helper for every binding. The stub ignores
//! the host, but `Request` needs an absolute URL.

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit};

use crate::http::{ApiError, ApiResult};

/// A DO's answer: status and body text (its JSON errors are mapped by the caller).
pub struct DoResponse {
    pub status: u16,
    pub text: String,
}

impl DoResponse {
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        serde_json::from_str(&self.text).map_err(|e| ApiError::internal(format!("unexpected DO answer: {e}")))
    }

    /// The `error` message of a JSON error body, if any.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The `code` of a JSON error body, if any.
    pub fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

pub async fn call<B: Serialize>(
    env: &Env,
    binding: &str,
    name: &str,
    method: Method,
    path: &str,
    body: Option<&B>,
) -> ApiResult<DoResponse> {
    let text = body.map(serde_json::to_string).transpose()?;
    call_text(env, binding, name, method, path, text).await
}

/// `call` with the body already serialized (large bodies are written into a buffer of the
/// right size first).
pub async fn call_text(
    env: &Env,
    binding: &str,
    name: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> ApiResult<DoResponse> {
    let stub = env.durable_object(binding)?.get_by_name(name)?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(text) = body {
        // Copied into a JS string here; the Rust copy is freed at once.
        init.with_body(Some(text.into()));
    }
    let req = Request::new_with_init(&format!("https://do.internal{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    // Read as bytes: converting a JS string to Rust reserves three bytes per character once it
    // meets a non-ASCII one, which for a 25 MB claim answer is a 75 MB transient.
    let text = String::from_utf8(resp.bytes().await?).map_err(|_| ApiError::internal("DO answer is not UTF-8"))?;
    Ok(DoResponse { status: resp.status_code(), text })
}
