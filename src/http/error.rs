//! The one error type of the HTTP layer, mapped once to the contract's envelope:
//! `{"error": "<message>", "code": "<UPPER_SNAKE>", "details"?: …}`.

use serde_json::{json, Value};

/// A client-visible failure. Internal causes are logged, never returned. Boxed so that
/// `Result<T, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<ErrorInfo>);

#[derive(Debug)]
pub struct ErrorInfo {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (`Allow` on 405, `Retry-After` on 429/503).
    pub headers: Vec<(&'static str, String)>,
    /// What went wrong inside, for the log line of a 5xx (never sent to the client).
    pub internal: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// One `details` entry of a `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorInfo {
            status,
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
            internal: None,
        }))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn invalid_json() -> Self {
        Self::new(400, "INVALID_JSON", "Request body is not valid JSON")
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        Self::new(400, "VALIDATION_ERROR", "Request validation failed")
            .with_details(serde_json::to_value(details).unwrap_or(Value::Null))
    }

    /// A single-field validation error.
    pub fn invalid_field(field: &str, message: &str) -> Self {
        Self::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "UNAUTHORIZED", "Missing or invalid authentication")
    }

    pub fn admin_required() -> Self {
        Self::new(403, "FORBIDDEN", "Admin access required")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }

    pub fn route_not_found() -> Self {
        Self::not_found("Not found")
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(405, "METHOD_NOT_ALLOWED", "Method not allowed").with_header("Allow", allowed.join(", "))
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(413, "PAYLOAD_TOO_LARGE", format!("Request body exceeds the limit of {limit} bytes"))
            .with_details(json!({ "limitBytes": limit }))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(502, "UPSTREAM_ERROR", message)
    }

    pub fn encryption_not_configured() -> Self {
        Self::new(503, "ENCRYPTION_NOT_CONFIGURED", "The service has no ENCRYPTION_KEY configured")
    }

    /// An unexpected failure: 500 with the generic body; `cause` goes to the log only.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(500, "INTERNAL_ERROR", "Internal server error");
        e.internal = Some(cause.into());
        e
    }

    /// The `field` of each validation detail (tests read them).
    #[cfg(test)]
    pub fn fields(&self) -> Vec<String> {
        self.details
            .as_ref()
            .and_then(|d| d.as_array())
            .map(|a| a.iter().filter_map(|d| d["field"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The JSON body. A 500 carries the request id so an operator can find the log line.
    pub fn body(&self, request_id: &str) -> Value {
        if self.status == 500 {
            return json!({ "error": "Internal server error", "code": "INTERNAL_ERROR", "requestId": request_id });
        }
        let mut body = json!({ "error": self.message, "code": self.code });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

impl std::ops::Deref for ApiError {
    type Target = ErrorInfo;
    fn deref(&self) -> &ErrorInfo {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorInfo {
        &mut self.0
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::internal(format!("serde_json: {e}"))
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        match e {
            crate::crypto::CryptoError::NotConfigured => ApiError::encryption_not_configured(),
            crate::crypto::CryptoError::WeakKey => ApiError::new(
                503,
                "ENCRYPTION_KEY_TOO_WEAK",
                "ENCRYPTION_KEY must carry at least 256 bits: 64 hex characters or 43+ base64 characters \
                 (generate one with `openssl rand -base64 32`; `npm start` writes one to .dev.vars)",
            ),
            crate::crypto::CryptoError::Undecryptable => ApiError::internal("stored secret could not be decrypted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shapes() {
        assert_eq!(
            ApiError::unauthorized().body("r"),
            json!({"error":"Missing or invalid authentication","code":"UNAUTHORIZED"})
        );
        assert_eq!(ApiError::admin_required().status, 403);
        let v = ApiError::invalid_field("name", "is required").body("r");
        assert_eq!(v["code"], "VALIDATION_ERROR");
        assert_eq!(v["details"], json!([{"field":"name","message":"is required"}]));
        let e = ApiError::method_not_allowed(&["GET", "POST"]);
        assert_eq!((e.status, e.headers[0].1.as_str()), (405, "GET, POST"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("D1_ERROR: no such table: users SELECT * FROM users");
        let body = e.body("req-1");
        assert_eq!(body, json!({"error":"Internal server error","code":"INTERNAL_ERROR","requestId":"req-1"}));
        assert!(!body.to_string().contains("SELECT"));
        let e: ApiError = crate::crypto::CryptoError::NotConfigured.into();
        assert_eq!((e.status, e.code), (503, "ENCRYPTION_NOT_CONFIGURED"));
    }
}
