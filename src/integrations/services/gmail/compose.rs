//! Composing mail: recipients and attachments from action parameters, the RFC 5322 message
//! (From the account, Date, Message-ID, encoded words), reply recipients and thread headers
//! (In-Reply-To, References), and sending it.

use serde_json::{json, Value};
use worker::Method;

use super::sync::{message_entity, message_view};
use super::{api, message_path, unreadable};
use crate::integrations::service::{Conn, Outcome, ServiceError};
use crate::integrations::services::google::b64url;
use crate::integrations::services::google::mime::{self, Outgoing};
use crate::outbound::Work;
use crate::time::Millis;

/// A parameter problem the schema cannot express.
pub(super) fn bad(field: &str, message: impl Into<String>) -> ServiceError {
    let message = message.into();
    if field.is_empty() {
        ServiceError::Invalid(message)
    } else {
        ServiceError::InvalidField { field: field.to_string(), message }
    }
}

/// The addresses of a parameter: one string (which may list several, comma-separated, when
/// each of them is an address) or an array of strings. Each is checked; they are kept as given.
pub fn addresses(p: &Value, field: &str) -> Result<Vec<String>, ServiceError> {
    let entries: Vec<(String, String)> = match &p[field] {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) => {
            let parts = mime::headers::split_addresses(s);
            if parts.len() > 1 && parts.iter().all(|x| mime::headers::parse_address(x).is_ok()) {
                parts.into_iter().map(|x| (field.to_string(), x.to_string())).collect()
            } else {
                vec![(field.to_string(), s.trim().to_string())]
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{field}.{i}"), v.as_str().unwrap_or("").trim().to_string()))
            .collect(),
        _ => return Err(bad(field, "Expected an address or a list of addresses")),
    };
    entries
        .into_iter()
        .map(|(f, s)| match mime::headers::parse_address(&s) {
            Ok(_) => Ok(s),
            Err(_) => Err(bad(&f, format!("Not an email address: {s}"))),
        })
        .collect()
}

pub(super) fn attachments(p: &Value) -> Result<Vec<mime::Attachment>, ServiceError> {
    let list = p["attachments"].as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let data = mime::headers::b64_decode(a["data"].as_str().unwrap_or(""))
                .ok_or_else(|| bad(&format!("attachments.{i}.data"), "Must be base64-encoded"))?;
            Ok(mime::Attachment {
                filename: a["filename"].as_str().unwrap_or("").to_string(),
                mime_type: a["mimeType"].as_str().unwrap_or("").to_string(),
                data,
            })
        })
        .collect()
}

/// The text of an optional string parameter.
pub(super) fn text(p: &Value, key: &str) -> Option<String> {
    p[key].as_str().map(str::to_string)
}

/// A message as the caller described it (send_email, create_draft, update_draft).
#[derive(Debug, Default, Clone)]
pub(super) struct Content {
    pub(super) to: Vec<String>,
    pub(super) cc: Vec<String>,
    pub(super) bcc: Vec<String>,
    pub(super) reply_to: Option<String>,
    pub(super) subject: String,
    pub(super) text: Option<String>,
    pub(super) html: Option<String>,
    pub(super) attachments: Vec<mime::Attachment>,
    pub(super) in_reply_to: Option<String>,
    pub(super) references: Option<String>,
}

pub(super) fn reply_to(p: &Value) -> Result<Option<String>, ServiceError> {
    let mut list = addresses(p, "replyTo")?;
    if list.len() > 1 {
        return Err(bad("replyTo", "Give one address"));
    }
    Ok(list.pop())
}

pub(super) fn content(p: &Value) -> Result<Content, ServiceError> {
    Ok(Content {
        to: addresses(p, "to")?,
        cc: addresses(p, "cc")?,
        bcc: addresses(p, "bcc")?,
        reply_to: reply_to(p)?,
        subject: text(p, "subject").unwrap_or_default(),
        text: text(p, "body"),
        html: text(p, "bodyHtml"),
        attachments: attachments(p)?,
        in_reply_to: None,
        references: None,
    })
}

/// The raw message (base64url, as `raw` wants it) from the account `from`.
pub(super) fn raw_message(from: &str, m: &Content, now: Millis) -> Result<String, ServiceError> {
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let out = Outgoing {
        from: from.to_string(),
        to: m.to.clone(),
        cc: m.cc.clone(),
        bcc: m.bcc.clone(),
        reply_to: m.reply_to.clone(),
        subject: m.subject.clone(),
        text: m.text.clone(),
        html: m.html.clone(),
        attachments: m.attachments.clone(),
        in_reply_to: m.in_reply_to.clone(),
        references: m.references.clone(),
        date_ms: now,
        message_id: format!("<{}@{domain}>", crate::crypto::hex(&crate::crypto::random_bytes::<16>())),
        boundary_seed: crate::crypto::random_bytes::<16>(),
    };
    let raw = mime::build::build(&out).map_err(ServiceError::Invalid)?;
    Ok(b64url(&raw))
}

/// A header of a `format=full` (or metadata) message's top part.
pub(super) fn header<'a>(m: &'a Value, name: &str) -> Option<&'a str> {
    m["payload"]["headers"]
        .as_array()?
        .iter()
        .find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?["value"]
        .as_str()
}

/// The addr-spec of an address entry, lower-cased (for comparisons).
pub(super) fn addr_of(entry: &str) -> Option<String> {
    mime::headers::parse_address(entry).ok().map(|(_, a)| a.to_ascii_lowercase())
}

pub(super) fn header_addresses(m: &Value, name: &str) -> Vec<String> {
    header(m, name)
        .map(|v| mime::headers::split_addresses(v).into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Recipients of a reply to `original` from `me`: (to, cc). A plain reply goes to Reply-To (or
/// From); a reply to one's own message goes to its recipients; `all` adds the original's other
/// recipients in Cc. The account itself is never among them (unless it wrote only to itself).
pub(super) fn reply_recipients(original: &Value, me: &str, all: bool) -> (Vec<String>, Vec<String>) {
    let me = me.to_ascii_lowercase();
    let reply_to = header_addresses(original, "Reply-To");
    let from = header_addresses(original, "From");
    let own = reply_to.is_empty() && from.iter().any(|f| addr_of(f).as_deref() == Some(me.as_str()));
    let primary = if own {
        header_addresses(original, "To")
    } else if !reply_to.is_empty() {
        reply_to
    } else {
        from
    };
    let mut seen: Vec<String> = vec![me.clone()];
    let mut keep = |list: Vec<String>| -> Vec<String> {
        list.into_iter()
            .filter(|e| match addr_of(e) {
                Some(a) if !seen.contains(&a) => {
                    seen.push(a);
                    true
                }
                _ => false,
            })
            .collect()
    };
    let mut to = keep(primary);
    let cc = if all {
        let mut others = header_addresses(original, "To");
        others.extend(header_addresses(original, "Cc"));
        keep(others)
    } else {
        Vec::new()
    };
    if to.is_empty() && cc.is_empty() {
        to.push(me);
    }
    (to, cc)
}

/// Threading headers for a message answering `original`: (In-Reply-To, References).
pub(super) fn thread_headers(original: &Value) -> (Option<String>, Option<String>) {
    let id = header(original, "Message-ID").or_else(|| header(original, "Message-Id")).map(str::trim);
    let refs = header(original, "References");
    match id.filter(|i| !i.is_empty()) {
        Some(id) => (Some(id.to_string()), Some(mime::headers::references_for_reply(refs, id))),
        None => (None, refs.map(str::to_string)),
    }
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

/// The work of sending or saving `m`: attachments make it bulk.
pub(super) fn message_work(m: &Content) -> Work {
    if m.attachments.is_empty() {
        Work::Read
    } else {
        Work::Bulk
    }
}

/// Sends `raw` (in `thread`); answers `{id, threadId}` and stores the sent message.
pub(super) async fn send_raw(
    c: &Conn<'_>,
    raw: String,
    thread: Option<&str>,
    work: Work,
) -> Result<Outcome, ServiceError> {
    let mut body = json!({ "raw": raw });
    if let Some(t) = thread {
        body["threadId"] = json!(t);
    }
    let sent = api(c).work(work).send(Method::Post, "/users/me/messages/send", Some(&body)).await?;
    sent_outcome(c, &sent).await
}

pub(super) async fn sent_outcome(c: &Conn<'_>, sent: &Value) -> Result<Outcome, ServiceError> {
    let id = sent["id"].as_str().ok_or_else(|| unreadable("answer to a send"))?;
    let mut out = Outcome::of(json!({ "id": id, "threadId": sent["threadId"] }));
    // The message is sent whatever happens now; reading it back only keeps the entities current.
    if let Ok(m) = api(c).get(&format!("{}?format=full", message_path(id))).await {
        out = out.storing("messages", message_entity(message_view(&m)));
    }
    Ok(out)
}
