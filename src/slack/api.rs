//! The Slack Web API client: `<SLACK_API_URL>/<method>`, the bot token in the Authorization
//! header (never in a URL), Slack's `{ok, error}` answers, and 429 `Retry-After`. Errors carry
//! only the method and Slack's error code, so nothing secret can reach a log line.

use std::time::Duration;

use serde_json::{json, Value};
use worker::{Delay, Method};

use super::mrkdwn::{split, to_mrkdwn, MESSAGE_LIMIT};
use crate::outbound::Call;

/// Longest `Retry-After` waited out inside one request; a longer one is the caller's to honour.
const MAX_RETRY_WAIT_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct SlackError {
    pub method: &'static str,
    /// Slack's error code (`channel_not_found`, `ratelimited`, …) or a transport failure.
    pub error: String,
    /// Seconds to wait before retrying (HTTP 429).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for SlackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slack {} failed: {}", self.method, self.error)
    }
}

pub struct Slack {
    base: String,
    token: String,
}

impl Slack {
    /// A client for `base` (SLACK_API_URL) with a bot token (empty for `oauth.v2.access`).
    pub fn new(base: &str, token: &str) -> Self {
        Slack { base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.base)
    }

    fn authorized(&self, call: Call) -> Call {
        if self.token.is_empty() {
            call
        } else {
            call.header("Authorization", format!("Bearer {}", self.token))
        }
    }

    async fn send_once(&self, method: &'static str, call: Call) -> Result<Value, SlackError> {
        let fail = |error: String, retry_after| SlackError { method, error, retry_after };
        let r = call.send().await.map_err(|e| fail(e.to_string(), None))?;
        if r.status == 429 {
            let wait = r.header("Retry-After").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(1);
            return Err(fail("ratelimited".into(), Some(wait)));
        }
        let body: Value = r.json().ok_or_else(|| fail(format!("unreadable answer (HTTP {})", r.status), None))?;
        if body["ok"].as_bool() == Some(true) {
            return Ok(body);
        }
        let error = body["error"].as_str().unwrap_or("unknown_error").chars().take(100).collect();
        Err(fail(error, None))
    }

    /// Calls a method, waiting out a short `Retry-After` (at most twice).
    async fn call_with(&self, method: &'static str, make: impl Fn() -> Call) -> Result<Value, SlackError> {
        let mut attempt = 0;
        loop {
            match self.send_once(method, self.authorized(make())).await {
                Err(e) if attempt < 2 && e.retry_after.is_some_and(|s| s <= MAX_RETRY_WAIT_SECS) => {
                    attempt += 1;
                    Delay::from(Duration::from_secs(e.retry_after.unwrap_or(1).max(1))).await;
                }
                other => return other,
            }
        }
    }

    /// A method taking a JSON body (Slack's write methods).
    pub async fn post(&self, method: &'static str, params: Value) -> Result<Value, SlackError> {
        let url = self.url(method);
        self.call_with(method, || {
            Call::new(Method::Post, url.clone())
                .raw_body(params.to_string().into_bytes(), "application/json; charset=utf-8")
        })
        .await
    }

    /// A method taking form fields (`oauth.v2.access`, read methods).
    pub async fn form(&self, method: &'static str, fields: &[(&str, &str)]) -> Result<Value, SlackError> {
        let url = self.url(method);
        self.call_with(method, || Call::new(Method::Post, url.clone()).form_body(fields)).await
    }

    /// `oauth.v2.access`: exchanges an install's code for the workspace's bot token.
    pub async fn oauth_access(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Value, SlackError> {
        self.form(
            "oauth.v2.access",
            &[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    /// `users.info`: a person's display name (display name, else real name, else handle).
    pub async fn user_name(&self, user: &str) -> Result<Option<String>, SlackError> {
        let v = self.form("users.info", &[("user", user)]).await?;
        let u = &v["user"];
        let name = [&u["profile"]["display_name"], &u["real_name"], &u["profile"]["real_name"], &u["name"]]
            .into_iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(|s| s.chars().take(100).collect());
        Ok(name)
    }

    /// `chat.postMessage` of mrkdwn text in a thread.
    pub async fn post_message(&self, channel: &str, thread_ts: Option<&str>, text: &str) -> Result<Value, SlackError> {
        let mut params = json!({ "channel": channel, "text": text, "mrkdwn": true, "unfurl_links": false });
        if let Some(ts) = thread_ts {
            params["thread_ts"] = json!(ts);
        }
        self.post("chat.postMessage", params).await
    }

    /// `chat.postEphemeral`: a message only `user` sees (in a channel, where others must not).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Result<Value, SlackError> {
        let mut params = json!({ "channel": channel, "user": user, "text": text });
        if let Some(ts) = thread_ts {
            params["thread_ts"] = json!(ts);
        }
        self.post("chat.postEphemeral", params).await
    }

    /// Sends Markdown as mrkdwn into a thread, split under the limit; the number of messages.
    pub async fn send_markdown(&self, channel: &str, thread_ts: &str, markdown: &str) -> Result<usize, SlackError> {
        let chunks = chunks(markdown);
        for chunk in &chunks {
            self.post_message(channel, Some(thread_ts), chunk).await?;
        }
        Ok(chunks.len())
    }

    /// `auth.revoke`: the bot token stops working (an uninstall from this side).
    pub async fn revoke(&self) -> Result<Value, SlackError> {
        self.form("auth.revoke", &[]).await
    }
}

/// Markdown → mrkdwn messages of at most 40,000 characters, counted both as Unicode scalar
/// values and as UTF-16 units (whichever Slack counts, every chunk fits).
pub fn chunks(markdown: &str) -> Vec<String> {
    let units = |s: &str| s.encode_utf16().count();
    let mut out = Vec::new();
    for chunk in split(&to_mrkdwn(markdown), MESSAGE_LIMIT) {
        let mut limit = MESSAGE_LIMIT;
        let mut pieces = vec![chunk];
        // Characters outside the BMP count twice in UTF-16: split those chunks finer.
        while pieces.iter().any(|p| units(p) > MESSAGE_LIMIT) && limit > 1000 {
            limit = limit * 9 / 10;
            pieces = pieces
                .into_iter()
                .flat_map(|p| if units(&p) > MESSAGE_LIMIT { split(&p, limit) } else { vec![p] })
                .collect();
        }
        out.extend(pieces);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_in_characters_and_utf16() {
        let md = "😀 wide characters count twice in UTF-16\n".repeat(2_500);
        let parts = chunks(&md);
        assert!(parts.len() >= 3, "{}", parts.len());
        for p in &parts {
            assert!(p.chars().count() <= MESSAGE_LIMIT);
            assert!(p.encode_utf16().count() <= MESSAGE_LIMIT);
        }
        assert_eq!(parts.concat().matches('😀').count(), 2_500);
        assert_eq!(chunks("**hi** & <you>"), vec!["*hi* &amp; &lt;you&gt;"]);
        assert!(chunks("  \n").is_empty());
    }
}
