//! A small GitHub REST client: configured base URL (github.com or a GHES `/api/v3`), the
//! headers GitHub asks for, percent-encoded path values, Link-header pagination, and rate
//! limits turned into a `429 RATE_LIMITED` with `retryAfter` instead of a generic failure.

use serde_json::Value;
use worker::Method;

use crate::http::upstream::UpstreamError;
use crate::http::ApiError;
use crate::outbound::{Call, Http, Net, Upstream};

pub struct GitHub<'a> {
    http: &'a dyn Http,
    api: String,
    token: String,
}

#[derive(Debug)]
pub enum GhError {
    /// Primary or secondary rate limit; seconds until a retry makes sense.
    RateLimited(u64),
    /// Any other non-2xx answer, with GitHub's `message`.
    Status(u16, String),
    /// Timeout or network failure.
    Transport(String),
}

impl GhError {
    /// The failure as an upstream error; `failure` is the route's message for other errors.
    pub fn upstream(self, failure: &str) -> UpstreamError {
        let failed = |message: String| UpstreamError::Failed { message, details: None };
        match self {
            GhError::RateLimited(secs) => UpstreamError::RateLimited {
                message: "GitHub rate limit exceeded; retry later".into(),
                retry_after: secs,
            },
            GhError::Status(401, _) => failed(format!("{failure}: GitHub rejected the stored token; reconnect GitHub")),
            GhError::Status(status, _) => failed(format!("{failure} (GitHub answered {status})")),
            GhError::Transport(m) if m.starts_with(crate::outbound::TOO_LARGE) => {
                failed(format!("{failure} ({m}; see UPSTREAM_MAX_RESPONSE_BYTES)"))
            }
            GhError::Transport(_) => failed(format!("{failure} (GitHub unreachable)")),
        }
    }

    /// The failure in the error envelope (see [`GhError::upstream`]).
    pub fn into_api(self, failure: &str) -> ApiError {
        self.upstream(failure).into()
    }
}

/// Seconds to wait when an answer is a rate limit (GitHub's documented rules, as
/// octokit/plugin-throttling applies them), else `None`.
pub fn rate_limit_wait(
    status: u16,
    remaining: Option<&str>,
    reset: Option<&str>,
    retry_after: Option<&str>,
    message: &str,
    now_secs: i64,
) -> Option<u64> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(secs) = retry_after.and_then(|r| r.trim().parse::<u64>().ok()) {
        return Some(secs.max(1));
    }
    if remaining.map(str::trim) == Some("0") {
        let reset = reset.and_then(|r| r.trim().parse::<i64>().ok()).unwrap_or(now_secs + 60);
        return Some((reset - now_secs + 1).max(1) as u64);
    }
    if status == 429 || message.to_ascii_lowercase().contains("secondary rate limit") {
        return Some(60);
    }
    None
}

/// The `page` of the `rel="next"` link in a `Link` header.
pub fn next_page(link: Option<&str>) -> Option<u32> {
    link?.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        if !rel.contains("rel=\"next\"") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        let query = url.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok())
    })
}

impl GitHub<'static> {
    /// A client over the runtime's `fetch`.
    pub fn new(api_base: &str, token: &str) -> Self {
        GitHub::over(&Net, api_base, token)
    }
}

impl<'a> GitHub<'a> {
    /// A client over any transport (a counting one in sync runs, a fake in unit tests).
    pub fn over(http: &'a dyn Http, api_base: &str, token: &str) -> Self {
        GitHub { http, api: api_base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Upstream, GhError> {
        let mut call = Call::new(method, format!("{}{path}", self.api))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(b) = body {
            call = call.json_body(b);
        }
        let r = self.http.send(call).await.map_err(|e| GhError::Transport(e.to_string()))?;
        if r.ok() {
            return Ok(r);
        }
        let message = r.json::<Value>().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_default();
        let now = crate::time::now_ms() / 1000;
        let wait = rate_limit_wait(
            r.status,
            r.header("x-ratelimit-remaining").as_deref(),
            r.header("x-ratelimit-reset").as_deref(),
            r.header("retry-after").as_deref(),
            &message,
            now,
        );
        Err(match wait {
            Some(secs) => GhError::RateLimited(secs),
            None => GhError::Status(r.status, message),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Upstream, GhError> {
        self.call(Method::Get, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Upstream, GhError> {
        self.call(Method::Post, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Upstream, GhError> {
        self.call(Method::Patch, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Upstream, GhError> {
        self.call(Method::Delete, path, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits() {
        let now = 1_000;
        assert_eq!(rate_limit_wait(403, Some("0"), Some("1030"), None, "API rate limit exceeded", now), Some(31));
        assert_eq!(rate_limit_wait(429, None, None, Some("7"), "", now), Some(7));
        assert_eq!(
            rate_limit_wait(403, Some("12"), None, None, "You have exceeded a secondary rate limit", now),
            Some(60)
        );
        assert_eq!(rate_limit_wait(403, Some("12"), None, None, "Resource not accessible by integration", now), None);
        assert_eq!(rate_limit_wait(404, Some("0"), None, None, "", now), None);
        assert_eq!(rate_limit_wait(429, None, None, None, "", now), Some(60));
    }

    #[test]
    fn link_headers() {
        let link = r#"<https://api.github.com/user/repos?page=3&per_page=2>; rel="next", <https://api.github.com/user/repos?page=9&per_page=2>; rel="last""#;
        assert_eq!(next_page(Some(link)), Some(3));
        assert_eq!(next_page(Some(r#"<https://x/y?page=1>; rel="prev""#)), None);
        assert_eq!(next_page(None), None);
    }
}
