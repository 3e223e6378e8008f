//! Failures of the APIs this service calls (GitHub, Google, Telegram, Slack, any integration
//! service), as the API answers them. Each client describes its own failure as an [`UpstreamError`];
//! this file is the one place that turns one into the error envelope.

use serde_json::{json, Value};

use super::ApiError;

/// What went wrong upstream, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamError {
    /// 429 `RATE_LIMITED` with `Retry-After`: try again in `retry_after` seconds.
    RateLimited { message: String, retry_after: u64 },
    /// 409 `RECONNECT_REQUIRED`: the provider refused the credentials and they cannot be refreshed.
    Reconnect(String),
    /// 404 `NOT_FOUND`.
    NotFound(String),
    /// 400 `VALIDATION_ERROR` naming the field the provider (or the service) refused (`""`: the
    /// parameters as a whole).
    Invalid { field: String, message: String },
    /// A precondition the provider refused, with its own status and code.
    Refused { status: u16, code: &'static str, message: String },
    /// 502 `UPSTREAM_ERROR`; `details` (the upstream status, when the route shows it).
    Failed { message: String, details: Option<Value> },
}

impl UpstreamError {
    /// A failure with the upstream's status in `details` (`null` when there was no answer).
    pub fn failed_with_status(message: impl Into<String>, status: Option<u16>) -> Self {
        UpstreamError::Failed { message: message.into(), details: Some(json!({ "status": status })) }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(u: UpstreamError) -> Self {
        match u {
            UpstreamError::RateLimited { message, retry_after } => ApiError::new(429, "RATE_LIMITED", message)
                .with_details(json!({ "retryAfter": retry_after }))
                .with_header("Retry-After", retry_after.to_string()),
            UpstreamError::Reconnect(m) => ApiError::new(409, "RECONNECT_REQUIRED", m),
            UpstreamError::NotFound(m) => ApiError::not_found(m),
            UpstreamError::Invalid { field, message } => {
                let text = if field.is_empty() { message.clone() } else { format!("{field}: {message}") };
                ApiError::new(400, "VALIDATION_ERROR", text)
                    .with_details(json!([{ "field": field, "message": message }]))
            }
            UpstreamError::Refused { status, code, message } => ApiError::new(status, code, message),
            UpstreamError::Failed { message, details } => match details {
                Some(d) => ApiError::upstream(message).with_details(d),
                None => ApiError::upstream(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_code_and_details() {
        let e = ApiError::from(UpstreamError::RateLimited { message: "slow down".into(), retry_after: 7 });
        assert_eq!((e.status, e.code), (429, "RATE_LIMITED"));
        assert_eq!(e.details, Some(json!({ "retryAfter": 7 })));
        assert_eq!(e.headers, vec![("Retry-After", "7".to_string())]);
        let e = ApiError::from(UpstreamError::Invalid { field: "timeZone".into(), message: "Unknown".into() });
        assert_eq!((e.status, e.message.as_str()), (400, "timeZone: Unknown"));
        let e = ApiError::from(UpstreamError::Invalid { field: String::new(), message: "Bad".into() });
        assert_eq!(e.message, "Bad");
        assert_eq!(e.details, Some(json!([{ "field": "", "message": "Bad" }])));
        let e = ApiError::from(UpstreamError::failed_with_status("boom", Some(503)));
        assert_eq!((e.status, e.code), (502, "UPSTREAM_ERROR"));
        assert_eq!(e.details, Some(json!({ "status": 503 })));
        assert_eq!(ApiError::from(UpstreamError::Reconnect("x".into())).code, "RECONNECT_REQUIRED");
    }
}
