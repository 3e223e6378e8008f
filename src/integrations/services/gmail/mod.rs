//! The Gmail integration (README, "What it does today"): labels, messages, threads and drafts synced
//! (messages in full once, then from the stored `historyId` through `users.history.list`),
//! fetch, and the mail actions. Several messages are always read through Google's batch
//! endpoint (50 per batch, as Google advises), so a page of up to 100 messages costs three
//! subrequests. Messages this service
//! sends are built by `mime::build::build`: From is the account's address, with a Date, a random
//! Message-ID and random boundaries; replies carry In-Reply-To and References.

pub mod actions;
pub mod compose;
pub mod drafts;
pub mod sync;

use serde_json::{json, Value};

use crate::config::base_url;
use crate::integrations::service::{
    string_list, Action, Conn, Credentials, Filter, Item, OAuth, Outcome, Page, PageRequest, Scopes, ServiceError,
    ServiceImpl,
};
use crate::integrations::services::google::{Api, Part};
use crate::outbound::segment;
use crate::time::Millis;
use actions::act;
use sync::{fetch, sync_page};

pub struct GmailService;

const ENTITIES: [&str; 4] = ["labels", "messages", "threads", "drafts"];
const API_VAR: &str = "GMAIL_API_URL";
const API_DEFAULT: &str = "https://gmail.googleapis.com";
/// Prefix of the API's paths, also the absolute paths of batch parts.
const V1: &str = "/gmail/v1";
/// Messages read per batch request (Google's advice; 100 gets per-part 429s).
const BATCH_MAX: usize = crate::integrations::services::google::BATCH_PARTS_MAX;
/// Message ids per listing page of a full pass (read in batches of `BATCH_MAX`).
const MESSAGE_PAGE: u32 = 100;
/// Threads and drafts per listing page (Gmail's maximum).
const LIST_MAX: u32 = 500;
/// History records per page of an incremental run.
const HISTORY_MAX: u32 = 500;

/// `filters.labels`: only messages (and threads) carrying every one of these label ids (Gmail's
/// `labelIds`); `filters.after`: only those after a date (Gmail's `after:YYYY/MM/DD`).
static FILTERS: [Filter; 2] =
    [Filter { name: "labels", check: check_labels }, Filter { name: "after", check: check_after }];

fn check_labels(v: &Value) -> Result<(), String> {
    string_list(v, 20, 225, |_| true, "label ids").map(|_| ())
}

fn check_after(v: &Value) -> Result<(), String> {
    v.as_str().and_then(after_date).map(|_| ()).ok_or_else(|| "Expected a date: YYYY-MM-DD or YYYY/MM/DD".to_string())
}

/// A filter date (`YYYY-MM-DD` or `YYYY/MM/DD`): (`YYYY/MM/DD` as Gmail's query wants it, its
/// midnight UTC in milliseconds).
pub(super) fn after_date(s: &str) -> Option<(String, crate::time::Millis)> {
    let parts: Vec<&str> = s.trim().split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else { return None };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let iso = format!("{y}-{m}-{d}T00:00:00.000Z");
    let ms = crate::time::parse_iso(&iso)?;
    // A day the calendar does not have (02-30) does not come back the same.
    (crate::time::iso(ms) == iso).then(|| (format!("{y}/{m}/{d}"), ms))
}

/// A Gmail scope's URL.
macro_rules! gmail_scope {
    ($name:literal) => {
        concat!("https://www.googleapis.com/auth/gmail.", $name)
    };
}
/// Full access to the mailbox: includes every other Gmail scope.
const FULL_ACCESS: &str = "https://mail.google.com/";
// What each kind of call needs, narrowest scope first (Google's scope table for each method).
const READ: &[&str] = &[gmail_scope!("readonly"), gmail_scope!("modify"), FULL_ACCESS];
const PROFILE: &[&str] =
    &[gmail_scope!("readonly"), gmail_scope!("compose"), gmail_scope!("modify"), gmail_scope!("metadata"), FULL_ACCESS];
const SEND: &[&str] = &[gmail_scope!("send"), gmail_scope!("compose"), gmail_scope!("modify"), FULL_ACCESS];
const COMPOSE: &[&str] = &[gmail_scope!("compose"), gmail_scope!("modify"), FULL_ACCESS];
const READ_DRAFTS: &[&str] = &[gmail_scope!("readonly"), gmail_scope!("compose"), gmail_scope!("modify"), FULL_ACCESS];
const MODIFY: &[&str] = &[gmail_scope!("modify"), FULL_ACCESS];
const LABELS: &[&str] = &[gmail_scope!("labels"), gmail_scope!("modify"), FULL_ACCESS];
const LIST_LABELS: &[&str] =
    &[gmail_scope!("labels"), gmail_scope!("readonly"), gmail_scope!("metadata"), gmail_scope!("modify"), FULL_ACCESS];

/// The scopes a Gmail action needs: a send reads the account's address (the profile) first, a
/// reply reads the message it answers.
fn required_scopes(action: &str) -> Scopes {
    match action {
        "search_messages" | "get_message" | "get_thread" | "get_attachment" => &[READ],
        "send_email" => &[SEND, PROFILE],
        "reply" => &[SEND, READ],
        "create_draft" | "update_draft" | "send_draft" | "delete_draft" => &[COMPOSE],
        "list_drafts" => &[READ_DRAFTS],
        "modify_labels" | "mark_read" | "mark_unread" | "archive" | "star" | "unstar" | "trash" | "untrash" => {
            &[MODIFY]
        }
        "list_labels" => &[LIST_LABELS],
        "create_label" | "delete_label" => &[LABELS],
        _ => &[],
    }
}

static OAUTH: OAuth = crate::integrations::services::google::oauth(&[
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/gmail.labels",
]);

// ---------------------------------------------------------------------------------------------
// Action schemas
// ---------------------------------------------------------------------------------------------

/// One address or a list of them (`"Name <a@b>"` or `a@b`).
macro_rules! addresses {
    ($min:literal) => {
        concat!(
            r#"{"anyOf": [{"type": "string", "minLength": 3, "maxLength": 2000}, "#,
            r#"{"type": "array", "items": {"type": "string", "minLength": 3, "maxLength": 500}, "minItems": "#,
            $min,
            r#", "maxItems": 100}], "description": "\"Name <a@b>\" or a@b, or a list of them"}"#
        )
    };
}

macro_rules! message_fields {
    ($to:expr) => {
        concat!(
            r#""to": "#,
            $to,
            r#", "cc": "#,
            addresses!("0"),
            r#", "bcc": "#,
            addresses!("0"),
            r#", "replyTo": "#,
            addresses!("1"),
            r#", "subject": {"type": "string", "maxLength": 2000}"#,
            r#", "body": {"type": "string", "description": "plain text"}"#,
            r#", "bodyHtml": {"type": "string"}"#,
            r#", "attachments": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {"#,
            r#""filename": {"type": "string", "minLength": 1, "maxLength": 255}, "#,
            r#""mimeType": {"type": "string", "minLength": 3, "maxLength": 255, "description": "e.g. application/pdf"}, "#,
            r#""data": {"type": "string", "format": "base64", "description": "the content, base64"}"#,
            r#"}, "required": ["filename", "mimeType", "data"], "additionalProperties": false}}"#
        )
    };
}

macro_rules! object {
    ($props:expr, $required:literal) => {
        concat!(
            r#"{"type": "object", "properties": {"#,
            $props,
            r#"}, "required": "#,
            $required,
            r#", "additionalProperties": false}"#
        )
    };
}

macro_rules! id_param {
    ($name:literal, $what:literal) => {
        concat!(
            r#"""#,
            $name,
            r#"": {"type": "string", "minLength": 1, "maxLength": 200, "description": ""#,
            $what,
            r#""}"#
        )
    };
}

macro_rules! label_list {
    () => {
        r#"{"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 225}, "maxItems": 100, "uniqueItems": true, "description": "label ids, or names of user labels"}"#
    };
}

static ACTIONS: [Action; 22] = [
    Action {
        name: "search_messages",
        description: "Search the mailbox with Gmail's query syntax (from:, subject:, is:unread, …) and/or label ids; answers full messages and nextPageToken.",
        params: object!(
            concat!(
                r#""query": {"type": "string", "maxLength": 2000}, "labelIds": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 225}, "maxItems": 20}, "#,
                r#""maxResults": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "pageToken": {"type": "string", "minLength": 1, "maxLength": 500}"#
            ),
            "[]"
        ),
        write: false,
    },
    Action {
        name: "get_message",
        description: "Read one message by its Gmail id.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: false,
    },
    Action {
        name: "get_thread",
        description: "Read a conversation: its id and every message in it.",
        params: object!(id_param!("id", "Gmail's thread id"), r#"["id"]"#),
        write: false,
    },
    Action {
        name: "send_email",
        description: "Send a message from the connected account (text and/or HTML, attachments); answers its id and threadId.",
        params: object!(message_fields!(addresses!("1")), r#"["to", "subject"]"#),
        write: true,
    },
    Action {
        name: "reply",
        description: "Reply in the thread of a message (Re: subject, In-Reply-To and References set); replyAll also addresses the original's other recipients.",
        params: object!(
            concat!(
                id_param!("messageId", "Gmail's id of the message replied to"),
                r#", "body": {"type": "string"}, "bodyHtml": {"type": "string"}, "replyAll": {"type": "boolean", "default": false}, "#,
                r#""attachments": {"type": "array", "maxItems": 50, "items": {"type": "object", "properties": {"#,
                r#""filename": {"type": "string", "minLength": 1, "maxLength": 255}, "mimeType": {"type": "string", "minLength": 3, "maxLength": 255}, "#,
                r#""data": {"type": "string", "format": "base64"}}, "required": ["filename", "mimeType", "data"], "additionalProperties": false}}"#
            ),
            r#"["messageId"]"#
        ),
        write: true,
    },
    Action {
        name: "create_draft",
        description: "Save a draft (send_email's fields, optionally in an existing thread); answers draftId and the draft's message id.",
        params: object!(
            concat!(message_fields!(addresses!("1")), r#", "threadId": {"type": "string", "minLength": 1, "maxLength": 200}"#),
            r#"["to", "subject"]"#
        ),
        write: true,
    },
    Action {
        name: "update_draft",
        description: "Change a draft: the fields given replace the draft's (body and bodyHtml together, attachments as a whole); the rest is kept.",
        params: object!(
            concat!(
                id_param!("draftId", "the draft's id"),
                ", ",
                message_fields!(addresses!("1")),
                r#", "threadId": {"type": "string", "minLength": 1, "maxLength": 200}"#
            ),
            r#"["draftId"]"#
        ),
        write: true,
    },
    Action {
        name: "send_draft",
        description: "Send a draft; answers the sent message's id and threadId.",
        params: object!(id_param!("draftId", "the draft's id"), r#"["draftId"]"#),
        write: true,
    },
    Action {
        name: "delete_draft",
        description: "Delete a draft for good.",
        params: object!(id_param!("draftId", "the draft's id"), r#"["draftId"]"#),
        write: true,
    },
    Action {
        name: "list_drafts",
        description: "List drafts with their messages.",
        params: object!(
            r#""query": {"type": "string", "maxLength": 2000}, "maxResults": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "pageToken": {"type": "string", "minLength": 1, "maxLength": 500}"#,
            "[]"
        ),
        write: false,
    },
    Action {
        name: "modify_labels",
        description: "Add and/or remove labels of a message (label ids, or names of user labels); answers the message.",
        params: object!(
            concat!(id_param!("id", "Gmail's message id"), r#", "add": "#, label_list!(), r#", "remove": "#, label_list!()),
            r#"["id"]"#
        ),
        write: true,
    },
    Action {
        name: "mark_read",
        description: "Mark a message read; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "mark_unread",
        description: "Mark a message unread; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "archive",
        description: "Archive a message (remove it from the inbox); answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "star",
        description: "Star a message; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "unstar",
        description: "Remove a message's star; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "trash",
        description: "Move a message to the trash; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "untrash",
        description: "Take a message out of the trash; answers the message.",
        params: object!(id_param!("id", "Gmail's message id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "list_labels",
        description: "Every label of the mailbox (system and user labels).",
        params: r#"{"type": "object", "properties": {}, "additionalProperties": false}"#,
        write: false,
    },
    Action {
        name: "create_label",
        description: "Create a user label; answers it.",
        params: object!(r#""name": {"type": "string", "minLength": 1, "maxLength": 225}"#, r#"["name"]"#),
        write: true,
    },
    Action {
        name: "delete_label",
        description: "Delete a user label (messages keep existing, without it).",
        params: object!(id_param!("id", "the label's id"), r#"["id"]"#),
        write: true,
    },
    Action {
        name: "get_attachment",
        description: "Download an attachment of a message; answers its size and data (base64).",
        params: object!(
            concat!(id_param!("messageId", "Gmail's message id"), ", ", id_param!("attachmentId", "from the message's attachments")),
            r#"["messageId", "attachmentId"]"#
        ),
        write: false,
    },
];

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn api<'a>(c: &'a Conn<'a>) -> Api<'a> {
    Api::new(c, API_VAR, API_DEFAULT, V1)
}

async fn batch(c: &Conn<'_>, parts: &[Part]) -> Result<Vec<Result<Value, ServiceError>>, ServiceError> {
    let url = format!("{}/batch/gmail/v1", base_url(c.vars, API_VAR, API_DEFAULT));
    api(c).batch(&url, parts).await
}

/// A batch of attachment reads: large answers, so the download's timeout.
async fn download_batch(c: &Conn<'_>, parts: &[Part]) -> Result<Vec<Result<Value, ServiceError>>, ServiceError> {
    let url = format!("{}/batch/gmail/v1", base_url(c.vars, API_VAR, API_DEFAULT));
    api(c).work(crate::outbound::Work::Download).batch(&url, parts).await
}

fn get(path: String) -> Part {
    Part { method: "GET", path: format!("{V1}{path}"), body: None }
}

fn message_path(id: &str) -> String {
    format!("/users/me/messages/{}", segment(id))
}

fn full_message(id: &str) -> Part {
    get(format!("{}?format=full", message_path(id)))
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

fn unreadable(what: &str) -> ServiceError {
    ServiceError::Transport(format!("Gmail answered an unreadable {what}"))
}

/// The account's address (`users.getProfile`).
fn address_of(profile: &Value) -> Result<String, ServiceError> {
    profile["emailAddress"].as_str().map(str::to_string).ok_or_else(|| unreadable("profile"))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

/// The profile (and what else is asked) in one batch.
async fn with_profile(c: &Conn<'_>, other: Part) -> Result<(String, Value), ServiceError> {
    let mut answers = batch(c, &[get("/users/me/profile".into()), other]).await?.into_iter();
    let profile = answers.next().unwrap_or_else(|| Err(unreadable("batch")))?;
    let other = answers.next().unwrap_or_else(|| Err(unreadable("batch")))?;
    Ok((address_of(&profile)?, other))
}

async fn profile_address(c: &Conn<'_>) -> Result<String, ServiceError> {
    address_of(&api(c).get("/users/me/profile").await?)
}

/// `expires_at` as epoch seconds: from epoch seconds, epoch milliseconds or an ISO timestamp.
fn expiry_secs(v: &str) -> Option<i64> {
    let v = v.trim();
    // A fraction of a second is dropped (no float parsing: it would weigh on the upload size).
    let whole = match v.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => w,
        _ => v,
    };
    if let Ok(n) = whole.parse::<i64>() {
        // Epoch milliseconds are 13 digits today; seconds stay under 10^11 until the year 5138.
        return (n > 0).then_some(if n >= 100_000_000_000 { n / 1000 } else { n });
    }
    crate::time::parse_iso(v).map(|ms| ms / 1000)
}

fn prepare(creds: Credentials) -> Result<Credentials, String> {
    let mut out = Credentials::new();
    let access = creds.get("access_token").map(|t| t.trim()).filter(|t| !t.is_empty());
    out.insert("access_token".into(), access.ok_or("credentials.access_token is required")?.to_string());
    if let Some(r) = creds.get("refresh_token").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        out.insert("refresh_token".into(), r.to_string());
    }
    if let Some(e) = creds.get("expires_at").filter(|e| !e.trim().is_empty()) {
        let secs = expiry_secs(e)
            .ok_or("credentials.expires_at must be epoch seconds, epoch milliseconds or an ISO timestamp")?;
        out.insert("expires_at".into(), secs.to_string());
    }
    for k in ["scope", "token_type"] {
        if let Some(v) = creds.get(k).filter(|v| !v.is_empty()) {
            out.insert(k.into(), v.clone());
        }
    }
    Ok(out)
}

impl ServiceImpl for GmailService {
    fn name(&self) -> &'static str {
        "gmail"
    }

    fn entities(&self) -> &'static [&'static str] {
        &ENTITIES
    }

    fn actions(&self) -> &'static [Action] {
        &ACTIONS
    }

    fn required_scopes(&self, action: &str) -> Scopes {
        required_scopes(action)
    }

    fn filters(&self) -> &'static [Filter] {
        &FILTERS
    }

    fn oauth(&self) -> Option<&'static OAuth> {
        Some(&OAUTH)
    }

    fn prepare_credentials(&self, creds: Credentials, _now: Millis) -> Result<Credentials, String> {
        prepare(creds)
    }

    async fn check(&self, c: &Conn<'_>) -> Result<Value, ServiceError> {
        Ok(json!({ "emailAddress": profile_address(c).await? }))
    }

    async fn sync_page(&self, c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
        sync_page(c, req).await
    }

    async fn fetch(&self, c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
        fetch(c, entity, id).await
    }

    async fn act(&self, c: &Conn<'_>, action: &str, params: &Value) -> Result<Outcome, ServiceError> {
        act(c, action, params).await
    }

    fn push_action(&self, entity: &str) -> Option<&'static str> {
        match entity {
            "messages" | "message" => Some("send_email"),
            "drafts" | "draft" => Some("create_draft"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::actions::*;
    #[allow(unused_imports)]
    use super::compose::*;
    #[allow(unused_imports)]
    use super::drafts::*;
    #[allow(unused_imports)]
    use super::sync::*;
    use super::*;
    use crate::integrations::service::Tokens;
    use crate::outbound::{Call, Http, OutboundError, Upstream};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use futures::future::LocalBoxFuture;

    /// The field and message of an `InvalidField` error.
    fn field(e: &ServiceError) -> (&str, &str) {
        match e {
            ServiceError::InvalidField { field, message } => (field, message),
            other => panic!("not a field error: {other:?}"),
        }
    }
    use mail_parser::{MessageParser, MimeHeaders};
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    type Handler = Box<dyn Fn(&str, &str, Option<&Value>) -> (u16, Value)>;

    /// A fake Gmail: `handler(method, path with query, JSON body)` answers each request,
    /// including every part of a batch (answered as Google's batch endpoint does). Requests
    /// whose token is not `valid_token` are refused with 401, part by part in a batch.
    struct Fake {
        handler: Handler,
        valid_token: RefCell<String>,
        /// (method, path, body) of every request, batch parts included (marked "BATCH GET").
        seen: RefCell<Vec<(String, String, Option<Value>)>>,
        subrequests: Cell<u32>,
        /// (method and path, timeout) of every outer request; the parts of every batch.
        timeouts: RefCell<Vec<(String, std::time::Duration)>>,
        batch_sizes: RefCell<Vec<usize>>,
    }

    impl Fake {
        fn new(handler: impl Fn(&str, &str, Option<&Value>) -> (u16, Value) + 'static) -> Self {
            Fake {
                handler: Box::new(handler),
                valid_token: RefCell::new("t1".into()),
                seen: RefCell::new(vec![]),
                subrequests: Cell::new(0),
                timeouts: RefCell::new(vec![]),
                batch_sizes: RefCell::new(vec![]),
            }
        }

        fn answer(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
            if token != *self.valid_token.borrow() {
                return (401, json!({ "error": { "code": 401, "message": "Invalid Credentials" } }));
            }
            (self.handler)(method, path, body)
        }

        fn paths(&self) -> Vec<String> {
            self.seen.borrow().iter().map(|(m, p, _)| format!("{m} {p}")).collect()
        }
    }

    impl Http for Fake {
        fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
            self.subrequests.set(self.subrequests.get() + 1);
            let path = call.url.trim_start_matches("https://gm.test").to_string();
            let token = call.header_value("Authorization").unwrap_or("").trim_start_matches("Bearer ").to_string();
            let body = call.body.clone().unwrap_or_default();
            let what = format!("{} {}", call.method.as_ref(), path.split('?').next().unwrap_or(""));
            self.timeouts.borrow_mut().push((what, call.time_limit()));
            let answer = if path == "/batch/gmail/v1" {
                let ct = call.header_value("Content-Type").unwrap_or("").to_string();
                let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
                let text = String::from_utf8(body).unwrap();
                let mut out = String::new();
                let parts: Vec<&str> =
                    text.split(&format!("--{boundary}")).skip(1).filter(|p| !p.starts_with("--")).collect();
                self.batch_sizes.borrow_mut().push(parts.len());
                for (i, part) in parts.into_iter().enumerate() {
                    let http = part.split_once("\r\n\r\n").unwrap().1;
                    let (line, rest) = http.split_once("\r\n").unwrap();
                    let (method, target) = line.split_once(' ').unwrap();
                    let json: Option<Value> =
                        rest.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b.trim()).ok());
                    self.seen.borrow_mut().push((format!("BATCH {method}"), target.to_string(), json.clone()));
                    let (status, v) = self.answer(&token, method, target, json.as_ref());
                    out.push_str(&format!(
                        "--resp\r\nContent-Type: application/http\r\nContent-ID: <response-item{i}>\r\n\r\nHTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\r\n{v}\r\n"
                    ));
                }
                out.push_str("--resp--\r\n");
                Upstream {
                    status: 200,
                    headers: vec![("content-type".into(), "multipart/mixed; boundary=resp".into())],
                    body: out.into_bytes(),
                }
            } else {
                let json: Option<Value> = serde_json::from_slice(&body).ok();
                self.seen.borrow_mut().push((call.method.as_ref().to_string(), path.clone(), json.clone()));
                let (status, v) = self.answer(&token, call.method.as_ref(), &path, json.as_ref());
                let body = if v.is_null() { vec![] } else { v.to_string().into_bytes() };
                Upstream { status, headers: vec![], body }
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    /// Tokens that count refreshes: `t1`, then `t2`.
    #[derive(Default)]
    struct Counted {
        refreshes: Cell<u32>,
    }

    impl Tokens for Counted {
        fn access(&self) -> LocalBoxFuture<'_, Result<String, ServiceError>> {
            let t = if self.refreshes.get() == 0 { "t1" } else { "t2" };
            Box::pin(async move { Ok(t.to_string()) })
        }
        fn refreshed<'a>(&'a self, _rejected: &'a str) -> LocalBoxFuture<'a, Result<String, ServiceError>> {
            self.refreshes.set(self.refreshes.get() + 1);
            Box::pin(async { Ok("t2".to_string()) })
        }
    }

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("GMAIL_API_URL".to_string(), "https://gm.test".to_string())])
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    fn with_conn<T>(fake: &Fake, tokens: &Counted, f: impl FnOnce(&Conn<'_>) -> T) -> T {
        let (vars, creds) = (vars(), Credentials::new());
        let c = Conn { http: fake, vars: &vars, creds: &creds, tokens, now: 1_700_000_000_000 };
        f(&c)
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s.as_bytes())
    }

    fn headers(list: &[(&str, &str)]) -> Value {
        list.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect()
    }

    /// A simple `format=full` message.
    fn gmail_message(id: &str, history: u64, labels: &[&str]) -> Value {
        json!({
            "id": id, "threadId": format!("t-{id}"), "historyId": history.to_string(), "labelIds": labels,
            "internalDate": "1700000000000", "snippet": "Hi &amp; bye",
            "payload": { "mimeType": "text/plain", "headers": headers(&[("Subject", "Hello"), ("From", "A <a@x.com>")]),
                         "body": { "size": 2, "data": b64("Hi") } },
        })
    }

    fn path_id(path: &str) -> String {
        path.split('/').nth(6).unwrap_or("").split('?').next().unwrap_or("").to_string()
    }

    #[test]
    fn payloads_nested_multiparts_latin1_and_missing_bodies() {
        let latin1 = URL_SAFE_NO_PAD.encode(b"Caf\xe9 \x80 cr\xe8me");
        let m = json!({
            "id": "m1", "threadId": "t1", "labelIds": ["INBOX", "UNREAD", "STARRED"], "internalDate": "1700000000000",
            "snippet": "Caf&#233;",
            "payload": {
                "mimeType": "multipart/mixed",
                "headers": headers(&[
                    ("Subject", "=?ISO-8859-1?Q?Caf=E9?= news"), ("From", "\"Doe, Jane\" <jane@x.com>"),
                    ("To", "a@x.com, =?UTF-8?B?SsO8cmdlbg==?= <j@y.com>"), ("Message-ID", "<abc@x.com>"), ("Reply-To", "r@x.com"),
                ]),
                "body": { "size": 0 },
                "parts": [
                    { "mimeType": "multipart/related", "headers": [], "body": { "size": 0 }, "parts": [
                        { "mimeType": "multipart/alternative", "headers": [], "body": { "size": 0 }, "parts": [
                            { "mimeType": "text/plain", "headers": headers(&[("Content-Type", "text/plain; charset=windows-1252")]),
                              "body": { "size": 12, "data": latin1 } },
                            { "mimeType": "text/html", "headers": headers(&[("Content-Type", "text/html; charset=\"iso-8859-1\"")]),
                              "body": { "size": 12, "data": URL_SAFE_NO_PAD.encode(b"<p>Caf\xe9</p>") } },
                        ]},
                        { "mimeType": "image/png", "filename": "logo.png", "headers": headers(&[("Content-Disposition", "inline; filename=logo.png")]),
                          "body": { "attachmentId": "img1", "size": 10 } },
                    ]},
                    { "mimeType": "application/pdf", "filename": "=?UTF-8?Q?=C3=A9t=C3=A9?=.pdf", "headers": headers(&[("Content-Disposition", "attachment")]),
                      "body": { "attachmentId": "att1", "size": 1234 } },
                ],
            },
        });
        let v = message_view(&m);
        assert_eq!(v["subject"], "Café news");
        assert_eq!(v["from"], "Doe, Jane <jane@x.com>");
        assert_eq!(v["to"], json!(["a@x.com", "Jürgen <j@y.com>"]));
        assert_eq!(v["replyTo"], "r@x.com");
        assert_eq!(v["messageId"], "<abc@x.com>");
        assert_eq!(v["body"], "Café € crème");
        assert_eq!(v["bodyHtml"], "<p>Café</p>");
        assert_eq!(v["snippet"], "Café");
        assert_eq!(v["date"], "2023-11-14T22:13:20.000Z");
        assert_eq!((v["unread"].as_bool(), v["starred"].as_bool()), (Some(true), Some(true)));
        let names: Vec<&str> =
            v["attachments"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
        assert_eq!(names, ["logo.png", "été.pdf"]);
        assert_eq!(
            v["attachments"][1],
            json!({ "id": "att1", "filename": "été.pdf", "mimeType": "application/pdf", "size": 1234 })
        );
        let item = message_entity(v);
        assert_eq!(
            (item.external_id.as_str(), item.modified_at.as_str(), item.deleted),
            ("m1", "2023-11-14T22:13:20.000Z", false)
        );

        // No body data at all (a message whose only part is an attachment), and no headers.
        let bare = json!({ "id": "m2", "threadId": "t2", "labelIds": ["TRASH"], "internalDate": "0",
            "payload": { "mimeType": "multipart/mixed", "parts": [
                { "mimeType": "application/zip", "filename": "a.zip", "body": { "attachmentId": "z", "size": 3 } }] } });
        let v = message_view(&bare);
        assert_eq!((v["body"].as_str(), v["subject"].as_str(), v["bodyHtml"].is_null()), (Some(""), Some(""), true));
        assert_eq!(v["to"], json!([]));
        assert!(message_entity(v).deleted, "trash is not part of the synced mailbox");
        // Stored bodies are capped at a character boundary.
        let long = json!({ "id": "big", "payload": { "mimeType": "text/plain", "headers": [], "body": { "data": b64(&"é".repeat(60_000)) } } });
        let stored = message_item(message_view(&long));
        assert_eq!(
            (stored.data["body"].as_str().unwrap().len(), &stored.data["truncated"]),
            (STORED_BODY_MAX, &json!(true))
        );
        assert!(message_view(&long).get("truncated").is_none());
        // An HTML-only message still has a text body.
        let html = json!({ "id": "m3", "payload": { "mimeType": "text/html", "headers": [], "body": { "data": b64("<p>One</p><p>Two &amp; three</p>") } } });
        assert_eq!(message_view(&html)["body"].as_str().map(|s| s.contains("Two & three")), Some(true));
    }

    #[test]
    fn a_full_pass_lists_then_reads_each_page_in_one_batch() {
        let fake = Fake::new(|_, path, _| {
            if path.starts_with("/gmail/v1/users/me/messages?") {
                let second = path.contains("pageToken=p2");
                let ids: Vec<Value> = if second {
                    vec![json!({ "id": "m3" })]
                } else {
                    vec![json!({ "id": "m1" }), json!({ "id": "m2" })]
                };
                let mut v = json!({ "messages": ids });
                if !second {
                    v["nextPageToken"] = json!("p2");
                }
                (200, v)
            } else if path.starts_with("/gmail/v1/users/me/messages/") {
                let id = path_id(path);
                let hid = match id.as_str() {
                    "m1" => 90,
                    "m2" => 120,
                    "m3" => 100,
                    _ => return (404, json!({ "error": { "code": 404, "message": "gone" } })),
                };
                (200, gmail_message(&id, hid, &["INBOX"]))
            } else {
                (404, json!({}))
            }
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: None,
                max_requests: 10,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert_eq!(page.items.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
            assert_eq!(page.checkpoint.as_deref(), Some("120"));
            assert_eq!(fake.subrequests.get(), 2, "a list and one batch");
            let next = page.next.unwrap();
            // A page allowed one request only lists; the next one reads what was listed.
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: Some(&next),
                since: None,
                max_requests: 1,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert!(page.items.is_empty());
            let pending = page.next.unwrap();
            assert_eq!(pending["pending"], json!(["m3"]));
            assert_eq!(page.checkpoint.as_deref(), Some("120"), "carried in the cursor");
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: Some(&pending),
                since: None,
                max_requests: 1,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert_eq!(page.items.len(), 1);
            assert!(page.next.is_none());
            assert_eq!(page.checkpoint.as_deref(), Some("120"));
        });
        let seen = fake.paths();
        assert!(seen[0].starts_with("GET /gmail/v1/users/me/messages?maxResults=100"), "{seen:?}");
        assert!(seen.iter().any(|p| p == "BATCH GET /gmail/v1/users/me/messages/m1?format=full"));
    }

    #[test]
    fn parts_refused_for_rate_are_read_again_later_and_a_fully_refused_batch_defers() {
        let fake = Fake::new(|_, path, _| {
            if path.starts_with("/gmail/v1/users/me/messages?") {
                return (200, json!({ "messages": [{ "id": "a" }, { "id": "b" }, { "id": "c" }] }));
            }
            match path_id(path).as_str() {
                "b" => (429, json!({ "error": { "code": 429, "message": "Too many concurrent requests for user" } })),
                id => (200, gmail_message(id, 7, &["INBOX"])),
            }
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: None,
                max_requests: 5,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert_eq!(page.items.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
            let next = page.next.expect("b is still to read");
            assert_eq!(next["pending"], json!(["b"]));
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: Some(&next),
                since: None,
                max_requests: 5,
                filters: None,
            };
            assert!(matches!(run(GmailService.sync_page(c, &req)), Err(ServiceError::RateLimited(_))));
        });
    }

    #[test]
    fn batches_hold_at_most_50_parts_and_each_call_gets_the_timeout_of_its_work() {
        use std::time::Duration;
        let fake = Fake::new(|method, path, _| match (method, path.split('?').next().unwrap()) {
            ("GET", "/gmail/v1/users/me/messages") => {
                let ids: Vec<Value> = (0..100).map(|i| json!({ "id": format!("m{i}") })).collect();
                (200, json!({ "messages": ids }))
            }
            ("GET", "/gmail/v1/users/me/profile") => (200, json!({ "emailAddress": "me@example.com" })),
            ("GET", p) if p.contains("/attachments/") => (200, json!({ "size": 2, "data": b64("hi") })),
            ("GET", p) if p.starts_with("/gmail/v1/users/me/messages/") => (200, gmail_message(&path_id(p), 5, &[])),
            ("POST", "/gmail/v1/users/me/messages/send") => (200, json!({ "id": "s1", "threadId": "t" })),
            _ => (404, json!({ "error": { "code": 404, "message": "Not Found" } })),
        });
        let tokens = Counted::default();
        let timeout_of = |what: &str| {
            let t = fake.timeouts.borrow();
            t.iter().rev().find(|(w, _)| w == what).map(|(_, d)| *d).unwrap_or_else(|| panic!("no {what}: {t:?}"))
        };
        with_conn(&fake, &tokens, |c| {
            // A search of 100 messages reads them in two batches of 50.
            let out = run(GmailService.act(c, "search_messages", &json!({ "maxResults": 100 }))).unwrap();
            assert_eq!(out.result["messages"].as_array().unwrap().len(), 100);
            assert_eq!(*fake.batch_sizes.borrow(), [50, 50]);
            assert_eq!(timeout_of("GET /gmail/v1/users/me/messages"), Duration::from_secs(10), "a plain read");
            assert_eq!(timeout_of("POST /batch/gmail/v1"), Duration::from_secs(30), "a batch is bulk work");
            // A full sync page lists 100 and reads them 50 at a time.
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: None,
                max_requests: 10,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert_eq!((page.items.len(), page.next.is_none()), (100, true));
            assert_eq!(*fake.batch_sizes.borrow(), [50, 50, 50, 50]);
            // With room for one batch only, the rest waits for the next page.
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: None,
                max_requests: 2,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            assert_eq!(page.items.len(), 50);
            assert_eq!(page.next.unwrap()["pending"].as_array().unwrap().len(), 50);

            run(GmailService.act(c, "get_attachment", &json!({ "messageId": "m1", "attachmentId": "a1" }))).unwrap();
            assert_eq!(timeout_of("GET /gmail/v1/users/me/messages/m1/attachments/a1"), Duration::from_secs(60));
            run(GmailService.act(c, "send_email", &json!({ "to": "a@x.com", "subject": "s", "body": "b" }))).unwrap();
            assert_eq!(timeout_of("POST /gmail/v1/users/me/messages/send"), Duration::from_secs(10));
            let with_file = json!({ "to": "a@x.com", "subject": "s", "attachments": [{ "filename": "f.txt", "mimeType": "text/plain", "data": "aGk=" }] });
            run(GmailService.act(c, "send_email", &with_file)).unwrap();
            assert_eq!(timeout_of("POST /gmail/v1/users/me/messages/send"), Duration::from_secs(30));
        });
    }

    #[test]
    fn incremental_pages_follow_the_history() {
        let fake = Fake::new(|_, path, _| {
            if path.starts_with("/gmail/v1/users/me/history?") {
                if path.contains("startHistoryId=5&") {
                    return (404, json!({ "error": { "code": 404, "message": "Requested entity was not found." } }));
                }
                let history = json!([
                    { "id": "501", "messagesAdded": [{ "message": { "id": "new1" } }] },
                    { "id": "502", "labelsAdded": [{ "message": { "id": "old1" }, "labelIds": ["STARRED"] }] },
                    { "id": "503", "messagesAdded": [{ "message": { "id": "brief" } }] },
                    { "id": "504", "messagesDeleted": [{ "message": { "id": "brief" } }, { "message": { "id": "old2" } }] },
                    { "id": "505", "labelsRemoved": [{ "message": { "id": "new1" }, "labelIds": ["UNREAD"] }] },
                    { "id": "506", "labelsAdded": [{ "message": { "id": "binned" }, "labelIds": ["TRASH"] }] },
                    { "id": "507", "labelsAdded": [{ "message": { "id": "vanished" }, "labelIds": ["STARRED"] }] },
                ]);
                (200, json!({ "history": history, "historyId": "510" }))
            } else if path.starts_with("/gmail/v1/users/me/messages/") {
                match path_id(path).as_str() {
                    "vanished" => (404, json!({ "error": { "code": 404, "message": "Not Found" } })),
                    "binned" => (200, gmail_message("binned", 506, &["TRASH"])),
                    id => (200, gmail_message(id, 505, &["INBOX"])),
                }
            } else {
                (404, json!({}))
            }
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: Some("500"),
                max_requests: 10,
                filters: None,
            };
            let page = run(GmailService.sync_page(c, &req)).unwrap();
            let mut live: Vec<&str> =
                page.items.iter().filter(|i| !i.deleted).map(|i| i.external_id.as_str()).collect();
            let mut gone: Vec<&str> = page.items.iter().filter(|i| i.deleted).map(|i| i.external_id.as_str()).collect();
            live.sort_unstable();
            gone.sort_unstable();
            assert_eq!(live, ["new1", "old1"]);
            assert_eq!(gone, ["binned", "brief", "old2", "vanished"]);
            assert_eq!(page.checkpoint.as_deref(), Some("510"));
            assert!(page.next.is_none());
            let req = PageRequest {
                entity: "messages",
                parent: "",
                cursor: None,
                since: Some("5"),
                max_requests: 10,
                filters: None,
            };
            let expired = run(GmailService.sync_page(c, &req));
            assert_eq!(
                expired.unwrap_err(),
                ServiceError::CheckpointExpired("Gmail no longer has history from 5".into())
            );
        });
        let seen = fake.paths();
        assert!(seen[0].contains("historyTypes=messageAdded&historyTypes=messageDeleted&historyTypes=labelAdded&historyTypes=labelRemoved"), "{seen:?}");
        let batched = seen.iter().filter(|p| p.starts_with("BATCH")).count();
        assert_eq!(batched, 4, "new1, old1, binned, vanished: once each, in one batch: {seen:?}");
        assert_eq!(fake.subrequests.get(), 2 + 1);
    }

    #[test]
    fn threads_keep_their_subject_participants_and_last_date() {
        let msg = |id: &str, from: &str, to: &str, subject: &str, ms: i64| {
            json!({
                "id": id, "threadId": "t1", "internalDate": ms.to_string(), "snippet": "s", "labelIds": ["INBOX"],
                "payload": { "mimeType": "text/plain", "headers": headers(&[("Subject", subject), ("From", from), ("To", to), ("Cc", "Bob <BOB@x.com>")]) },
            })
        };
        let fake = Fake::new(move |_, path, _| match path.split('?').next().unwrap() {
            "/gmail/v1/users/me/threads" if path.contains("pageToken=n") => {
                (200, json!({ "threads": [{ "id": "t2", "snippet": "b", "historyId": "3" }] }))
            }
            "/gmail/v1/users/me/threads" => (
                200,
                json!({ "threads": [{ "id": "t1", "snippet": "It&#39;s done", "historyId": "9" }], "nextPageToken": "n" }),
            ),
            "/gmail/v1/users/me/threads/t1" => (
                200,
                json!({ "id": "t1", "snippet": "It&#39;s done", "historyId": "9", "messages": [
                    msg("m1", "\"Doe, Jane\" <jane@x.com>", "me@x.com", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", 1_700_000_000_000),
                    msg("m2", "Me <ME@x.com>", "jane@x.com", "Re: Grüße", 1_700_000_600_000),
                ] }),
            ),
            "/gmail/v1/users/me/threads/t2" => (404, json!({ "error": { "code": 404, "message": "Not Found" } })),
            _ => (404, json!({})),
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let page = |cursor: Option<&Value>, since: Option<&str>| {
                let req = PageRequest { entity: "threads", parent: "", cursor, since, max_requests: 5, filters: None };
                run(GmailService.sync_page(c, &req)).unwrap()
            };
            let t = page(None, None);
            assert_eq!(
                t.items[0].data,
                json!({
                    "id": "t1", "subject": "Grüße", "from": "Doe, Jane <jane@x.com>, Me <ME@x.com>",
                    "participants": ["Doe, Jane <jane@x.com>", "me@x.com", "Bob <BOB@x.com>"],
                    "date": "2023-11-14T22:23:20.000Z", "messageCount": 2, "snippet": "It's done", "historyId": "9",
                })
            );
            assert_eq!(t.items[0].modified_at, "", "no modification time: a full pass sweeps");
            let t2 = page(t.next.as_ref(), None);
            assert!(t2.items.is_empty() && t2.next.is_none(), "t2 vanished after the listing");
            assert!(t.checkpoint.is_none() && t2.checkpoint.is_none(), "every run is a full, sweeping pass");
        });
        let batches = fake
            .paths()
            .iter()
            .filter(|p| p.starts_with("BATCH GET /gmail/v1/users/me/threads/"))
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(batches.len(), 2, "t1, then t2: {batches:?}");
        assert!(batches[0].contains("format=metadata&metadataHeaders=Subject&metadataHeaders=From"), "{batches:?}");
    }

    #[test]
    fn an_empty_mailbox_takes_its_checkpoint_from_the_profile_and_listings_page() {
        let fake = Fake::new(|_, path, _| match path.split('?').next().unwrap() {
            "/gmail/v1/users/me/messages" => (200, json!({ "resultSizeEstimate": 0 })),
            "/gmail/v1/users/me/profile" => (200, json!({ "emailAddress": "me@x.com", "historyId": "77" })),
            "/gmail/v1/users/me/drafts" => {
                (200, json!({ "drafts": [{ "id": "d1", "message": { "id": "m9", "threadId": "t9" } }] }))
            }
            "/gmail/v1/users/me/labels" => (
                200,
                json!({ "labels": [{ "id": "INBOX", "name": "INBOX", "type": "system" }, { "id": "Label_1", "name": "Work", "type": "user" }] }),
            ),
            _ => (404, json!({})),
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let page = |entity: &'static str, cursor: Option<&Value>| {
                let req = PageRequest { entity, parent: "", cursor, since: None, max_requests: 5, filters: None };
                run(GmailService.sync_page(c, &req)).unwrap()
            };
            let m = page("messages", None);
            assert!(m.items.is_empty() && m.next.is_none());
            assert_eq!(m.checkpoint.as_deref(), Some("77"));
            let d = page("drafts", None);
            assert_eq!(d.items[0].data, json!({ "id": "d1", "messageId": "m9", "threadId": "t9" }));
            let l = page("labels", None);
            assert_eq!(l.items.iter().map(|i| i.external_id.as_str()).collect::<Vec<_>>(), ["INBOX", "Label_1"]);
            assert!(l.checkpoint.is_none() && d.checkpoint.is_none());
        });
        assert!(fake.paths()[2].contains("maxResults=500"), "{:?}", fake.paths());
    }

    /// Answers a profile, one original message, and records what was sent.
    fn mail_fake(original: Value) -> Fake {
        Fake::new(move |method, path, body| match (method, path.split('?').next().unwrap()) {
            ("GET", "/gmail/v1/users/me/profile") => {
                (200, json!({ "emailAddress": "me@example.com", "historyId": "1" }))
            }
            ("GET", "/gmail/v1/users/me/messages/orig") => (200, original.clone()),
            ("POST", "/gmail/v1/users/me/messages/send") => (
                200,
                json!({ "id": "sent1", "threadId": body.unwrap()["threadId"].as_str().unwrap_or("newthread"), "labelIds": ["SENT"] }),
            ),
            ("GET", "/gmail/v1/users/me/messages/sent1") => (200, gmail_message("sent1", 9, &["SENT"])),
            _ => (404, json!({ "error": { "code": 404, "message": "Not Found" } })),
        })
    }

    fn sent_raw(fake: &Fake) -> (Value, Vec<u8>) {
        let seen = fake.seen.borrow();
        let (_, _, body) = seen.iter().find(|(m, p, _)| m == "POST" && p.ends_with("/messages/send")).expect("a send");
        let body = body.clone().unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body["raw"].as_str().unwrap()).unwrap();
        (body, raw)
    }

    fn original() -> Value {
        json!({
            "id": "orig", "threadId": "thread-9", "labelIds": ["INBOX"], "internalDate": "1700000000000",
            "payload": { "mimeType": "text/plain", "body": { "data": b64("question") }, "headers": headers(&[
                ("From", "\"Doe, Jane\" <jane@example.com>"), ("To", "Me <ME@example.com>, bob@example.com"),
                ("Cc", "=?UTF-8?B?SsO8cmdlbg==?= <j@example.de>, jane@example.com"), ("Subject", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="),
                ("Message-ID", "<orig-1@mail.example.com>"), ("References", "<root@x.com>"),
            ]) },
        })
    }

    #[test]
    fn replies_thread_and_address_the_right_people() {
        let fake = mail_fake(original());
        let tokens = Counted::default();
        let out = with_conn(&fake, &tokens, |c| {
            run(GmailService.act(c, "reply", &json!({ "messageId": "orig", "body": "Answer", "replyAll": true })))
                .unwrap()
        });
        assert_eq!(out.result, json!({ "id": "sent1", "threadId": "thread-9" }));
        assert_eq!(out.items[0].0, "messages");
        let (body, raw) = sent_raw(&fake);
        assert_eq!(body["threadId"], "thread-9");
        let msg = MessageParser::default().parse(&raw[..]).unwrap();
        assert_eq!(msg.subject(), Some("Re: Grüße"));
        assert_eq!(msg.in_reply_to().as_text(), Some("orig-1@mail.example.com"));
        assert_eq!(msg.references().as_text_list().unwrap(), ["root@x.com", "orig-1@mail.example.com"]);
        let addrs = |a: Option<&mail_parser::Address>| -> Vec<String> {
            a.map(|a| a.iter().map(|x| x.address().unwrap().to_string()).collect()).unwrap_or_default()
        };
        assert_eq!(addrs(msg.from()), ["me@example.com"]);
        assert_eq!(addrs(msg.to()), ["jane@example.com"]);
        assert_eq!(addrs(msg.cc()), ["bob@example.com", "j@example.de"], "the account and duplicates left out");
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some("Doe, Jane"));
        assert!(msg.message_id().unwrap().ends_with("@example.com"));
        // The profile and the original came in one batch; then the send and the read-back.
        assert_eq!(fake.subrequests.get(), 3);

        // A plain reply goes to Reply-To; a subject that is already a reply keeps its one "Re:".
        let mut o = original();
        o["payload"]["headers"] = headers(&[
            ("From", "jane@example.com"),
            ("Reply-To", "List <list@example.org>"),
            ("To", "me@example.com"),
            ("Subject", "RE: Status"),
            ("Message-ID", "<x@y>"),
        ]);
        let fake = mail_fake(o);
        with_conn(&fake, &tokens, |c| {
            run(GmailService.act(c, "reply", &json!({ "messageId": "orig", "bodyHtml": "<b>ok</b>" }))).unwrap()
        });
        let msg_raw = sent_raw(&fake).1;
        let msg = MessageParser::default().parse(&msg_raw[..]).unwrap();
        assert_eq!(msg.subject(), Some("RE: Status"));
        assert_eq!(addrs(msg.to()), ["list@example.org"]);
        assert!(msg.cc().is_none());
        assert_eq!(msg.references().as_text(), Some("x@y"));

        // Replying to one's own message addresses its recipients.
        let mut o = original();
        o["payload"]["headers"] =
            headers(&[("From", "Me <me@example.com>"), ("To", "bob@example.com"), ("Subject", "Plan")]);
        let fake = mail_fake(o);
        with_conn(&fake, &tokens, |c| {
            run(GmailService.act(c, "reply", &json!({ "messageId": "orig", "body": "more" }))).unwrap()
        });
        let msg_raw = sent_raw(&fake).1;
        let msg = MessageParser::default().parse(&msg_raw[..]).unwrap();
        assert_eq!(addrs(msg.to()), ["bob@example.com"]);
        assert_eq!(msg.subject(), Some("Re: Plan"));
        assert!(msg.in_reply_to().is_empty(), "no Message-ID to answer");
    }

    #[test]
    fn send_email_builds_a_complete_message_and_refreshes_a_refused_token_once() {
        let fake = mail_fake(json!({}));
        *fake.valid_token.borrow_mut() = "t2".into();
        let tokens = Counted::default();
        let params = json!({
            "to": "\"Doe, Jane\" <jane@example.com>, bob@example.com", "bcc": ["hidden@example.net"],
            "subject": "Grüße", "body": "Hallo", "bodyHtml": "<p>Hallo</p>", "replyTo": "Desk <desk@example.com>",
            "attachments": [{ "filename": "résumé.pdf", "mimeType": "application/pdf", "data": "JVBERi0xLjQK" }],
        });
        let out = with_conn(&fake, &tokens, |c| run(GmailService.act(c, "send_email", &params))).unwrap();
        assert_eq!(out.result, json!({ "id": "sent1", "threadId": "newthread" }));
        assert_eq!(tokens.refreshes.get(), 1);
        let (body, raw) = sent_raw(&fake);
        assert!(body.get("threadId").is_none());
        let msg = MessageParser::default().parse(&raw[..]).unwrap();
        assert_eq!(msg.subject(), Some("Grüße"));
        assert_eq!(
            msg.to().unwrap().iter().map(|a| a.address().unwrap()).collect::<Vec<_>>(),
            ["jane@example.com", "bob@example.com"]
        );
        assert_eq!(msg.bcc().unwrap().first().unwrap().address(), Some("hidden@example.net"));
        assert_eq!(msg.reply_to().unwrap().first().unwrap().address(), Some("desk@example.com"));
        assert_eq!(msg.date().unwrap().to_timestamp(), 1_700_000_000);
        assert_eq!(msg.attachment(0).unwrap().attachment_name(), Some("résumé.pdf"));
        assert_eq!(msg.attachment(0).unwrap().contents(), b"%PDF-1.4\n");
        assert!(raw.split(|&b| b == b'\n').all(|l| l.len() <= 998));

        // A batch refused part by part is sent again once with a refreshed token.
        let fake = mail_fake(original());
        *fake.valid_token.borrow_mut() = "t2".into();
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| run(GmailService.act(c, "reply", &json!({ "messageId": "orig", "body": "x" }))))
            .unwrap();
        assert_eq!(tokens.refreshes.get(), 1);
    }

    #[test]
    fn parameters_are_normalised_or_refused_with_their_field() {
        let p = json!({
            "to": "Doe, Jane <jane@x.com>", "cc": "a@x.com, \"B, b\" <b@x.com>", "bcc": ["ok@x.com", "nope"],
        });
        assert_eq!(addresses(&p, "to").unwrap(), ["Doe, Jane <jane@x.com>"]);
        assert_eq!(addresses(&p, "cc").unwrap(), ["a@x.com", "\"B, b\" <b@x.com>"]);
        let e = addresses(&p, "bcc").unwrap_err();
        assert_eq!(field(&e), ("bcc.1", "Not an email address: nope"));
        assert_eq!(addresses(&json!({}), "to").unwrap(), Vec::<String>::new());
        assert!(addresses(&json!({ "to": "a@x.com, nope" }), "to").is_err());
        let e = reply_to(&json!({ "replyTo": ["a@x.com", "b@x.com"] })).unwrap_err();
        assert_eq!(field(&e).0, "replyTo");
        let e = attachments(&json!({ "attachments": [{ "filename": "a", "mimeType": "text/plain", "data": "@@" }] }))
            .unwrap_err();
        assert_eq!(field(&e).0, "attachments.0.data");

        let creds = |e: &str| {
            Credentials::from([
                ("access_token".to_string(), " ya29.x ".to_string()),
                ("expires_at".to_string(), e.to_string()),
                ("client_secret".to_string(), "never stored".to_string()),
            ])
        };
        for given in ["1800000000", "1800000000000", "1800000000.25", "2027-01-15T08:00:00Z"] {
            let c = GmailService.prepare_credentials(creds(given), 0).unwrap();
            assert_eq!(c["expires_at"], "1800000000", "{given}");
            assert_eq!(c["access_token"], "ya29.x");
            assert!(!c.contains_key("client_secret"));
        }
        assert!(GmailService.prepare_credentials(creds("next tuesday"), 0).is_err());
        assert!(GmailService.prepare_credentials(Credentials::new(), 0).is_err());
    }

    #[test]
    fn label_actions_resolve_names_and_answer_the_message() {
        let fake = Fake::new(|method, path, _| match (method, path.split('?').next().unwrap()) {
            ("GET", "/gmail/v1/users/me/labels") => (200, json!({ "labels": [{ "id": "Label_7", "name": "Work" }] })),
            ("POST", "/gmail/v1/users/me/messages/m1/modify") => (200, json!({ "id": "m1", "labelIds": ["Label_7"] })),
            ("POST", "/gmail/v1/users/me/messages/m1/trash") => (200, json!({ "id": "m1" })),
            ("GET", "/gmail/v1/users/me/messages/m1") => (200, gmail_message("m1", 3, &["Label_7", "STARRED"])),
            ("POST", "/gmail/v1/users/me/labels") => {
                (409, json!({ "error": { "code": 409, "message": "Label name exists or conflicts" } }))
            }
            _ => (404, json!({ "error": { "code": 404, "message": "Not Found" } })),
        });
        let tokens = Counted::default();
        with_conn(&fake, &tokens, |c| {
            let out = run(GmailService.act(
                c,
                "modify_labels",
                &json!({ "id": "m1", "add": ["work", "starred"], "remove": ["inbox"] }),
            ))
            .unwrap();
            assert_eq!(out.result["labelIds"], json!(["Label_7", "STARRED"]));
            assert_eq!(out.result["starred"], true);
            let e = run(GmailService.act(c, "modify_labels", &json!({ "id": "m1", "add": ["Nope"] }))).unwrap_err();
            assert_eq!(field(&e), ("add.0", "Unknown label: Nope"));
            let e = run(GmailService.act(c, "modify_labels", &json!({ "id": "m1" }))).unwrap_err();
            assert_eq!(field(&e).0, "add");
            let e = run(GmailService.act(c, "create_label", &json!({ "name": "Work" }))).unwrap_err();
            assert!(matches!(e, ServiceError::Refused { status: 409, code: "LABEL_EXISTS", .. }));
            let e = run(GmailService.act(c, "get_message", &json!({ "id": "zz" }))).unwrap_err();
            assert!(matches!(e, ServiceError::NotFound(_)));
        });
        let seen = fake.seen.borrow();
        let modify = seen.iter().find(|(_, p, _)| p.ends_with("/modify")).unwrap();
        assert_eq!(modify.2, Some(json!({ "addLabelIds": ["Label_7", "STARRED"], "removeLabelIds": ["INBOX"] })));
    }

    #[test]
    fn schemas_take_one_address_or_a_list() {
        let schema = |name: &str| -> Value {
            serde_json::from_str(ACTIONS.iter().find(|a| a.name == name).unwrap().params).unwrap()
        };
        let v = |name: &str, p: Value| crate::integrations::schema::validate(&schema(name), &p);
        assert!(v("send_email", json!({ "to": "a@x.com", "subject": "s" })).is_empty());
        assert!(v("send_email", json!({ "to": ["a@x.com", "B <b@x.com>"], "subject": "s", "cc": [] })).is_empty());
        let fields =
            |e: Vec<crate::integrations::schema::Violation>| e.into_iter().map(|x| x.field).collect::<Vec<_>>();
        assert_eq!(fields(v("send_email", json!({ "to": 5, "subject": "s" }))), ["to"]);
        assert_eq!(fields(v("send_email", json!({ "to": [], "subject": "s" }))), ["to"]);
        assert_eq!(fields(v("send_email", json!({ "subject": "s", "attachments": [{ "filename": "a" }] }))).len(), 3);
        assert_eq!(fields(v("search_messages", json!({ "maxResults": 101 }))), ["maxResults"]);
        assert_eq!(fields(v("reply", json!({ "messageId": "m", "subject": "x" }))), ["subject"]);
        assert!(v("update_draft", json!({ "draftId": "d" })).is_empty());
        assert!(v("list_labels", json!({})).is_empty());
        let write: Vec<&str> = ACTIONS.iter().filter(|a| !a.write).map(|a| a.name).collect();
        assert_eq!(
            write,
            ["search_messages", "get_message", "get_thread", "list_drafts", "list_labels", "get_attachment"]
        );
    }
}
