//! Drafts (create, update with their attachments kept, list) and labels (system and user labels
//! by name or id; add, remove).

use serde_json::{json, Value};
use worker::Method;

use super::compose::{
    bad, content, header, header_addresses, message_work, raw_message, text, thread_headers, Content,
};
use super::sync::{draft_item, message_entity, message_item, message_view};
use super::{
    api, batch, download_batch, get, message_path, profile_address, query, str_list, unreadable, with_profile,
};
use crate::integrations::service::{Conn, Outcome, ServiceError};
use crate::integrations::services::google::mime::{self};
use crate::integrations::services::google::Part;
use crate::outbound::segment;

pub(super) const SYSTEM_LABELS: [&str; 14] = [
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

/// Label ids for `add`/`remove` entries: system labels by id (any case), user labels by id
/// (`Label_…`) or by name (looked up once).
pub(super) async fn label_ids(c: &Conn<'_>, p: &Value, fields: &[&str]) -> Result<Vec<Vec<String>>, ServiceError> {
    let lists: Vec<Vec<String>> = fields.iter().map(|f| str_list(&p[*f])).collect();
    let system = |l: &str| SYSTEM_LABELS.iter().find(|s| s.eq_ignore_ascii_case(l)).map(|s| s.to_string());
    let needs_lookup = lists.iter().flatten().any(|l| system(l).is_none() && !l.starts_with("Label_"));
    let known: Vec<Value> = if needs_lookup {
        let v = api(c).get("/users/me/labels").await?;
        v["labels"].as_array().cloned().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for (field, list) in fields.iter().zip(lists) {
        let mut ids = Vec::new();
        for (i, l) in list.iter().enumerate() {
            let id = system(l).or_else(|| (l.starts_with("Label_")).then(|| l.clone())).or_else(|| {
                known
                    .iter()
                    .find(|k| k["id"] == l.as_str() || k["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(l)))
                    .and_then(|k| k["id"].as_str().map(str::to_string))
            });
            ids.push(id.ok_or_else(|| bad(&format!("{field}.{i}"), format!("Unknown label: {l}")))?);
        }
        out.push(ids);
    }
    Ok(out)
}

/// Changes a message's labels, then answers (and stores) the message as it now is.
pub(super) async fn relabel(
    c: &Conn<'_>,
    id: &str,
    add: &[String],
    remove: &[String],
) -> Result<Outcome, ServiceError> {
    let body = json!({ "addLabelIds": add, "removeLabelIds": remove });
    api(c).send(Method::Post, &format!("{}/modify", message_path(id)), Some(&body)).await?;
    current(c, id).await
}

/// The message as it now is, answered and stored.
pub(super) async fn current(c: &Conn<'_>, id: &str) -> Result<Outcome, ServiceError> {
    let m = api(c).get(&format!("{}?format=full", message_path(id))).await?;
    let view = message_view(&m);
    Ok(Outcome::of(view.clone()).storing("messages", message_entity(view)))
}

pub(super) fn draft_result(d: &Value) -> Value {
    json!({ "draftId": d["id"], "messageId": d["message"]["id"] })
}

/// `{id, draftId, messageId, threadId, message}` of a `drafts.get?format=full` answer.
pub(super) fn draft_view(d: &Value) -> Value {
    json!({
        "id": d["id"], "draftId": d["id"], "messageId": d["message"]["id"], "threadId": d["message"]["threadId"],
        "message": message_view(&d["message"]),
    })
}

/// create_draft / update_draft: saves `content` (in `thread`) as a new draft or over `draft`.
pub(super) async fn save_draft(
    c: &Conn<'_>,
    from: &str,
    content: &Content,
    thread: Option<&str>,
    draft: Option<&str>,
) -> Result<Outcome, ServiceError> {
    let raw = raw_message(from, content, c.now)?;
    let mut message = json!({ "raw": raw });
    if let Some(t) = thread {
        message["threadId"] = json!(t);
    }
    let api = api(c).work(message_work(content));
    let d = match draft {
        None => api.send(Method::Post, "/users/me/drafts", Some(&json!({ "message": message }))).await?,
        Some(id) => {
            let body = json!({ "id": id, "message": message });
            api.send(Method::Put, &format!("/users/me/drafts/{}", segment(id)), Some(&body)).await?
        }
    };
    if d["id"].as_str().is_none() {
        return Err(unreadable("draft"));
    }
    Ok(Outcome::of(draft_result(&d)).storing("drafts", draft_item(&d)))
}

pub(super) async fn create_draft(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let mut m = content(p)?;
    let thread = p["threadId"].as_str();
    let from = match thread {
        // A draft in a thread answers its last message, so that Gmail (and every other reader) threads it.
        Some(t) => {
            let (from, thread) =
                with_profile(c, get(format!("/users/me/threads/{}?format=metadata", segment(t)))).await?;
            if let Some(last) = thread["messages"].as_array().and_then(|l| l.last()) {
                (m.in_reply_to, m.references) = thread_headers(last);
            }
            from
        }
        None => profile_address(c).await?,
    };
    save_draft(c, &from, &m, thread, None).await
}

pub(super) async fn update_draft(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let id = p["draftId"].as_str().unwrap_or("");
    let (from, existing) = with_profile(c, get(format!("/users/me/drafts/{}?format=full", segment(id)))).await?;
    let old = &existing["message"];
    let view = message_view(old);
    let given = content(p)?;
    let has = |k: &str| !p[k].is_null();
    let mut m = Content {
        to: if has("to") { given.to } else { header_addresses(old, "To") },
        cc: if has("cc") { given.cc } else { header_addresses(old, "Cc") },
        bcc: if has("bcc") { given.bcc } else { header_addresses(old, "Bcc") },
        reply_to: if has("replyTo") { given.reply_to } else { header_addresses(old, "Reply-To").pop() },
        subject: if has("subject") { given.subject } else { view["subject"].as_str().unwrap_or("").to_string() },
        ..Content::default()
    };
    (m.text, m.html) = if has("body") || has("bodyHtml") {
        (given.text, given.html)
    } else {
        (text(&view, "body"), text(&view, "bodyHtml"))
    };
    m.in_reply_to = header(old, "In-Reply-To").map(str::to_string);
    m.references = header(old, "References").map(str::to_string);
    m.attachments = if has("attachments") { given.attachments } else { kept_attachments(c, old, &view).await? };
    let thread = p["threadId"].as_str().or(old["threadId"].as_str());
    save_draft(c, &from, &m, thread, Some(id)).await
}

/// A draft's attachments, downloaded (in one batch) to go into its new version.
pub(super) async fn kept_attachments(
    c: &Conn<'_>,
    old: &Value,
    view: &Value,
) -> Result<Vec<mime::Attachment>, ServiceError> {
    let list: Vec<&Value> = view["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["id"].as_str().is_some_and(|i| !i.is_empty()))
        .collect();
    let id = old["id"].as_str().unwrap_or("");
    let parts: Vec<Part> = list
        .iter()
        .map(|a| get(format!("{}/attachments/{}", message_path(id), segment(a["id"].as_str().unwrap_or("")))))
        .collect();
    let mut out = Vec::new();
    for (a, answer) in list.iter().zip(download_batch(c, &parts).await?) {
        let data = mime::headers::b64_decode(answer?["data"].as_str().unwrap_or(""))
            .ok_or_else(|| unreadable("attachment"))?;
        out.push(mime::Attachment {
            filename: a["filename"].as_str().unwrap_or("").to_string(),
            mime_type: a["mimeType"].as_str().unwrap_or("application/octet-stream").to_string(),
            data,
        });
    }
    Ok(out)
}

pub(super) async fn list_drafts(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let mut q = vec![("maxResults", p["maxResults"].as_u64().unwrap_or(20).to_string())];
    if let Some(s) = p["query"].as_str().filter(|s| !s.trim().is_empty()) {
        q.push(("q", s.to_string()));
    }
    if let Some(t) = p["pageToken"].as_str() {
        q.push(("pageToken", t.to_string()));
    }
    let list = api(c).get(&format!("/users/me/drafts?{}", query(&q))).await?;
    let ids: Vec<&str> = list["drafts"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str()).collect();
    let parts: Vec<Part> = ids.iter().map(|id| get(format!("/users/me/drafts/{}?format=full", segment(id)))).collect();
    let (mut drafts, mut items) = (Vec::new(), Vec::new());
    for answer in batch(c, &parts).await? {
        match answer {
            Ok(d) => {
                items.push(("drafts", draft_item(&d)));
                items.push(("messages", message_item(message_view(&d["message"]))));
                drafts.push(draft_view(&d));
            }
            Err(ServiceError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut result = json!({ "drafts": drafts });
    if let Some(t) = list["nextPageToken"].as_str() {
        result["nextPageToken"] = json!(t);
    }
    Ok(Outcome { result, items })
}
