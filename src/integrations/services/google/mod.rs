//! What Google services share: their OAuth parameters (offline access, consent, PKCE; refresh
//! inside `API_KEYS`), a small REST client that authenticates with a fresh token and retries
//! once after a 401 with a refreshed one, Google's error shapes, the batch endpoint (many
//! reads in one subrequest), and charset decoding through the runtime's `TextDecoder`.

pub mod mime;

use base64::Engine;
use serde_json::Value;
use worker::Method;

use crate::config::base_url;
use crate::integrations::service::{Conn, OAuth, Revocation, ServiceError};
use crate::outbound::{Call, Work};

/// Parts per batch request: Google advises at most 50 (a batch's parts run concurrently, and
/// larger batches get per-part 429s); more parts go in further batches, one after another.
pub const BATCH_PARTS_MAX: usize = 50;
/// A request body above this is bulk work (a message with attachments, a large draft).
const BULK_BODY_BYTES: usize = 64 * 1024;

/// OAuth parameters of a Google service with its scopes.
pub const fn oauth(scopes: &'static [&'static str]) -> OAuth {
    OAuth {
        display: "Google",
        authorize_base: ("GOOGLE_ACCOUNTS_URL", "https://accounts.google.com"),
        authorize_path: "/o/oauth2/v2/auth",
        token_url: ("GOOGLE_OAUTH_TOKEN_URL", "https://oauth2.googleapis.com/token"),
        token_path: "",
        client_id_var: "GOOGLE_CLIENT_ID",
        client_secret_var: "GOOGLE_CLIENT_SECRET",
        scopes,
        scope_separator: " ",
        // A refresh token is only issued with offline access, and again only with consent.
        extra: &[("access_type", "offline"), ("prompt", "consent"), ("include_granted_scopes", "true")],
        refresh: true,
        revoke: Some(Revocation::TokenForm {
            url: ("GOOGLE_OAUTH_REVOKE_URL", "https://oauth2.googleapis.com/revoke"),
        }),
    }
}

/// A Google API reached at a configured base URL (`GMAIL_API_URL`, `GOOGLE_CALENDAR_API_URL`).
pub struct Api<'a> {
    conn: &'a Conn<'a>,
    base: String,
    /// The work the caller declared (a download, a send with attachments); else it is read
    /// from the request (batches are bulk, and so are large bodies).
    work: Option<Work>,
}

/// A request of a batch: method, path (with query) and an optional JSON body.
pub struct Part {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

/// Google's error body: `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`.
fn error_of(status: u16, body: &[u8], retry_after: Option<&str>) -> ServiceError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["error"]["message"].as_str().or(v["error_description"].as_str()).unwrap_or("").to_string();
    let reason = v["error"]["errors"][0]["reason"].as_str().unwrap_or("");
    let wait = || retry_after.and_then(|r| r.trim().parse::<u64>().ok()).map(|s| s.max(1));
    match status {
        401 => ServiceError::Auth("Google refused the access token".into()),
        429 => ServiceError::RateLimited(wait().unwrap_or(30)),
        403 if matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded") => {
            ServiceError::RateLimited(wait().unwrap_or(60))
        }
        404 => ServiceError::NotFound(if message.is_empty() { "Not found at Google".into() } else { message }),
        400 | 422 => ServiceError::Invalid(format!("Google refused the request: {message}")),
        _ => ServiceError::Upstream { status, message: format!("Google: {message}") },
    }
}

impl<'a> Api<'a> {
    pub fn new(conn: &'a Conn<'a>, var: &str, default: &str, prefix: &str) -> Self {
        Api { conn, base: format!("{}{prefix}", base_url(conn.vars, var, default)), work: None }
    }

    /// Declares the requests' work (their timeout): e.g. `Work::Download` for attachments.
    pub fn work(mut self, work: Work) -> Self {
        self.work = Some(work);
        self
    }

    /// The work of one request: the declared one, or bulk for a large body, else a read.
    fn work_of(&self, body: &Option<(Vec<u8>, String)>, batch: bool) -> Work {
        let large = batch || body.as_ref().is_some_and(|(b, _)| b.len() > BULK_BODY_BYTES);
        match self.work {
            Some(w) => w,
            None if large => Work::Bulk,
            None => Work::Read,
        }
    }

    /// One request with `token`.
    async fn once(
        &self,
        method: &Method,
        url: &str,
        body: &Option<(Vec<u8>, String)>,
        token: &str,
        work: Work,
    ) -> Result<crate::outbound::Upstream, ServiceError> {
        let mut call = Call::new(method.clone(), url)
            .work(work)
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json");
        if let Some((bytes, ct)) = body {
            call = call.raw_body(bytes.clone(), ct.clone());
        }
        self.conn.http.send(call).await.map_err(|e| ServiceError::Transport(format!("Google unreachable: {e}")))
    }

    /// The raw answer (status, retry-after, body) of one authenticated request; a 401 is
    /// retried once with a refreshed token.
    async fn raw(
        &self,
        method: Method,
        url: &str,
        body: Option<(Vec<u8>, String)>,
    ) -> Result<crate::outbound::Upstream, ServiceError> {
        let work = self.work_of(&body, false);
        let token = self.conn.tokens.access().await?;
        let r = self.once(&method, url, &body, &token, work).await?;
        if r.status != 401 {
            return Ok(r);
        }
        let token = self.conn.tokens.refreshed(&token).await?;
        self.once(&method, url, &body, &token, work).await
    }

    /// A JSON request to `path` (relative to the API's base); `Value::Null` for an empty answer.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ServiceError> {
        let url = format!("{}{path}", self.base);
        let r =
            self.raw(method, &url, body.map(|b| (b.to_string().into_bytes(), "application/json".to_string()))).await?;
        if !r.ok() {
            return Err(error_of(r.status, &r.body, r.header("retry-after").as_deref()));
        }
        if r.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&r.body)
            .map_err(|_| ServiceError::Transport("Google answered an unreadable body".into()))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ServiceError> {
        self.send(Method::Get, path, None).await
    }

    /// Many requests through Google's batch endpoint (`multipart/mixed`), at most
    /// [`BATCH_PARTS_MAX`] per subrequest: each part's outcome in order. `batch_url` is e.g.
    /// `…/batch/gmail/v1`; part paths are absolute API paths (`/gmail/v1/users/me/messages/…`).
    pub async fn batch(
        &self,
        batch_url: &str,
        parts: &[Part],
    ) -> Result<Vec<Result<Value, ServiceError>>, ServiceError> {
        let mut out = Vec::with_capacity(parts.len());
        for chunk in parts.chunks(BATCH_PARTS_MAX) {
            out.extend(self.batch_once(batch_url, chunk).await?);
        }
        Ok(out)
    }

    /// One batch request of at most [`BATCH_PARTS_MAX`] parts.
    async fn batch_once(
        &self,
        batch_url: &str,
        parts: &[Part],
    ) -> Result<Vec<Result<Value, ServiceError>>, ServiceError> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let boundary = format!("batch_{}", crate::crypto::random_token::<12>());
        let mut body = String::new();
        for (i, p) in parts.iter().enumerate() {
            body.push_str(&format!("--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item{i}>\r\n\r\n"));
            body.push_str(&format!("{} {}\r\n", p.method, p.path));
            match &p.body {
                Some(b) => {
                    let text = b.to_string();
                    body.push_str(&format!(
                        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}\r\n",
                        text.len()
                    ));
                }
                None => body.push_str("\r\n"),
            }
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let payload = Some((body.into_bytes(), format!("multipart/mixed; boundary={boundary}")));
        let work = self.work_of(&payload, true);
        // Google answers a refused token in each part of a 200 batch: refresh once, send again.
        let mut token = self.conn.tokens.access().await?;
        let mut attempt = 0;
        let answers = loop {
            let r = self.once(&Method::Post, batch_url, &payload, &token, work).await?;
            let answers = if r.ok() {
                let ct = r.header("content-type").unwrap_or_default();
                Some(
                    parse_batch(&ct, &r.body)
                        .ok_or_else(|| ServiceError::Transport("Google answered an unreadable batch".into()))?,
                )
            } else {
                None
            };
            let refused = r.status == 401 || answers.as_ref().is_some_and(|a| a.iter().any(|a| a.status == 401));
            if refused && attempt == 0 {
                attempt += 1;
                token = self.conn.tokens.refreshed(&token).await?;
                continue;
            }
            match answers {
                Some(a) => break a,
                None => return Err(error_of(r.status, &r.body, r.header("retry-after").as_deref())),
            }
        };
        let mut out: Vec<Result<Value, ServiceError>> = (0..parts.len())
            .map(|_| Err(ServiceError::Transport("missing from Google's batch answer".into())))
            .collect();
        for (i, a) in answers.into_iter().enumerate() {
            let index = a.id.unwrap_or(i);
            if let Some(slot) = out.get_mut(index) {
                *slot = if (200..300).contains(&a.status) {
                    Ok(serde_json::from_slice(&a.body).unwrap_or(Value::Null))
                } else {
                    Err(error_of(a.status, &a.body, a.retry_after.as_deref()))
                };
            }
        }
        Ok(out)
    }
}

/// One response of a batch answer.
#[derive(Debug, PartialEq)]
pub struct BatchAnswer {
    /// From `Content-ID: <response-itemN>`.
    pub id: Option<usize>,
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Splits a `multipart/mixed` batch answer into its HTTP responses.
pub fn parse_batch(content_type: &str, body: &[u8]) -> Option<Vec<BatchAnswer>> {
    let boundary = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    for part in text.split(&delimiter).skip(1) {
        if part.starts_with("--") {
            break;
        }
        // Part headers, a blank line, then the embedded HTTP response.
        let (headers, rest) = split_blank(part.trim_start_matches(['\r', '\n']))?;
        let id = headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-id") {
                return None;
            }
            v.trim().trim_matches(['<', '>']).rsplit("item").next()?.parse().ok()
        });
        let (head, payload) = split_blank(rest)?;
        let mut lines = head.lines();
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let retry_after = lines.find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("retry-after").then(|| v.trim().to_string())
        });
        out.push(BatchAnswer {
            id,
            status,
            retry_after,
            body: payload.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        });
    }
    Some(out)
}

fn split_blank(s: &str) -> Option<(&str, &str)> {
    s.split_once("\r\n\r\n").or_else(|| s.split_once("\n\n"))
}

/// Gmail and Calendar send binary data as base64url, with or without padding.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let trimmed = s.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed).ok()
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Charset decoding by the runtime's `TextDecoder` (every WHATWG encoding, no tables in our
/// Wasm); natively, UTF-8 and Latin-1 for unit tests.
pub struct Charsets;

impl mime::headers::Charsets for Charsets {
    fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        {
            use worker::js_sys::{Function, Reflect, Uint8Array};
            use worker::wasm_bindgen::{JsCast, JsValue};
            let global = worker::js_sys::global();
            let ctor: Function = Reflect::get(&global, &"TextDecoder".into()).ok()?.dyn_into().ok()?;
            // An unknown label throws a RangeError: answer None and let the caller fall back.
            let decoder =
                Reflect::construct(&ctor, &worker::js_sys::Array::of1(&JsValue::from_str(charset.trim()))).ok()?;
            let decode: Function = Reflect::get(&decoder, &"decode".into()).ok()?.dyn_into().ok()?;
            decode.call1(&decoder, &Uint8Array::from(bytes)).ok()?.as_string()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            mime::headers::Charsets::decode(&mime::headers::Utf8Latin1, charset, bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn google_errors_map_to_what_callers_do() {
        let body = |reason: &str| {
            json!({ "error": { "code": 403, "message": "m", "errors": [{ "reason": reason }] } }).to_string()
        };
        assert_eq!(error_of(403, body("userRateLimitExceeded").as_bytes(), None), ServiceError::RateLimited(60));
        assert_eq!(error_of(429, b"{}", Some("7")), ServiceError::RateLimited(7));
        assert!(matches!(
            error_of(403, body("insufficientPermissions").as_bytes(), None),
            ServiceError::Upstream { status: 403, .. }
        ));
        assert!(matches!(error_of(401, b"", None), ServiceError::Auth(_)));
        assert!(matches!(error_of(404, b"", None), ServiceError::NotFound(_)));
        assert!(matches!(error_of(400, body("invalid").as_bytes(), None), ServiceError::Invalid(_)));
        assert!(error_of(503, b"", None).transient());
    }

    #[test]
    fn batch_answers_are_split_and_matched_by_content_id() {
        let body = "--batch_x\r\nContent-Type: application/http\r\nContent-ID: <response-item1>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":404,\"message\":\"gone\"}}\r\n--batch_x\r\nContent-Type: application/http\r\nContent-ID: <response-item0>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"id\":\"m1\"}\r\n--batch_x--\r\n";
        let answers = parse_batch("multipart/mixed; boundary=batch_x", body.as_bytes()).unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!((answers[0].id, answers[0].status), (Some(1), 404));
        assert_eq!(
            (answers[1].id, answers[1].status, answers[1].body.as_slice()),
            (Some(0), 200, &b"{\"id\":\"m1\"}"[..])
        );
        assert!(parse_batch("multipart/mixed", body.as_bytes()).is_none());
    }

    #[test]
    fn base64url_with_or_without_padding() {
        assert_eq!(b64url_decode("aGk=").unwrap(), b"hi");
        assert_eq!(b64url_decode("aGk").unwrap(), b"hi");
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
    }
}
