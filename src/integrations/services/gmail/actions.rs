//! The Gmail actions: `act` dispatches each one; search, read and reply live here, the rest in
//! `compose` and `drafts`.

use serde_json::{json, Value};
use worker::Method;

use super::compose::{
    attachments, bad, content, header, message_work, raw_message, reply_recipients, send_raw, sent_outcome, text,
    thread_headers, Content,
};
use super::drafts::{create_draft, current, label_ids, list_drafts, relabel, update_draft};
use super::sync::{label_item, message_entity, message_view, thread_item, thread_view};
use super::{api, batch, full_message, message_path, profile_address, query, str_list, unreadable, with_profile};
use crate::integrations::service::{Conn, Item, Outcome, ServiceError};
use crate::integrations::services::google::mime::{self};
use crate::integrations::services::google::{Charsets, Part};
use crate::outbound::{segment, Work};

pub(super) async fn reply(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let id = p["messageId"].as_str().unwrap_or("");
    let (me, original) = with_profile(c, full_message(id)).await?;
    let (to, cc) = reply_recipients(&original, &me, p["replyAll"].as_bool().unwrap_or(false));
    let subject = mime::headers::decode_header_value(header(&original, "Subject").unwrap_or(""), &Charsets);
    let (in_reply_to, references) = thread_headers(&original);
    let m = Content {
        to,
        cc,
        subject: mime::headers::reply_subject(subject.trim()),
        text: text(p, "body"),
        html: text(p, "bodyHtml"),
        attachments: attachments(p)?,
        in_reply_to,
        references,
        ..Content::default()
    };
    let raw = raw_message(&me, &m, c.now)?;
    send_raw(c, raw, original["threadId"].as_str(), message_work(&m)).await
}

pub(super) async fn search(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let mut q = vec![("maxResults", p["maxResults"].as_u64().unwrap_or(20).to_string())];
    if let Some(s) = p["query"].as_str().filter(|s| !s.trim().is_empty()) {
        q.push(("q", s.to_string()));
    }
    for l in str_list(&p["labelIds"]) {
        q.push(("labelIds", l));
    }
    if let Some(t) = p["pageToken"].as_str() {
        q.push(("pageToken", t.to_string()));
    }
    let list = api(c).get(&format!("/users/me/messages?{}", query(&q))).await?;
    let ids: Vec<&str> = list["messages"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    let (views, stored) = read_messages(c, &ids).await?;
    let mut result = json!({ "messages": views });
    if let Some(t) = list["nextPageToken"].as_str() {
        result["nextPageToken"] = json!(t);
    }
    let mut out = Outcome::of(result);
    for i in stored {
        out = out.storing("messages", i);
    }
    Ok(out)
}

/// Messages by id in one batch: their views (in order; vanished ones left out) and entities.
pub(super) async fn read_messages(c: &Conn<'_>, ids: &[&str]) -> Result<(Vec<Value>, Vec<Item>), ServiceError> {
    let parts: Vec<Part> = ids.iter().map(|id| full_message(id)).collect();
    let (mut views, mut items) = (Vec::new(), Vec::new());
    for answer in batch(c, &parts).await? {
        match answer {
            Ok(m) => {
                let view = message_view(&m);
                items.push(message_entity(view.clone()));
                views.push(view);
            }
            Err(ServiceError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((views, items))
}

pub(super) async fn act(c: &Conn<'_>, action: &str, p: &Value) -> Result<Outcome, ServiceError> {
    let id = p["id"].as_str().unwrap_or("");
    let label = |add: &str, remove: &str| {
        let list = |l: &str| if l.is_empty() { vec![] } else { vec![l.to_string()] };
        (list(add), list(remove))
    };
    match action {
        "search_messages" => search(c, p).await,
        "get_message" => current(c, id).await,
        "get_thread" => {
            let t = api(c).get(&format!("/users/me/threads/{}?format=full", segment(id))).await?;
            let views: Vec<Value> = t["messages"].as_array().into_iter().flatten().map(message_view).collect();
            let mut out = Outcome::of(json!({ "id": t["id"], "messages": views }))
                .storing("threads", thread_item(thread_view(&t)));
            for v in views {
                out = out.storing("messages", message_entity(v));
            }
            Ok(out)
        }
        "send_email" => {
            let m = content(p)?;
            let from = profile_address(c).await?;
            send_raw(c, raw_message(&from, &m, c.now)?, None, message_work(&m)).await
        }
        "reply" => reply(c, p).await,
        "create_draft" => create_draft(c, p).await,
        "update_draft" => update_draft(c, p).await,
        "send_draft" => {
            let draft = p["draftId"].as_str().unwrap_or("");
            // A stored draft may carry attachments: sending it is bulk work.
            let body = json!({ "id": draft });
            let sent = api(c).work(Work::Bulk).send(Method::Post, "/users/me/drafts/send", Some(&body)).await?;
            Ok(sent_outcome(c, &sent).await?.storing("drafts", Item::gone(draft)))
        }
        "delete_draft" => {
            let draft = p["draftId"].as_str().unwrap_or("");
            api(c).send(Method::Delete, &format!("/users/me/drafts/{}", segment(draft)), None).await?;
            Ok(Outcome::of(json!({ "deleted": true })).storing("drafts", Item::gone(draft)))
        }
        "list_drafts" => list_drafts(c, p).await,
        "modify_labels" => {
            let mut lists = label_ids(c, p, &["add", "remove"]).await?.into_iter();
            let (add, remove) = (lists.next().unwrap_or_default(), lists.next().unwrap_or_default());
            if add.is_empty() && remove.is_empty() {
                return Err(bad("add", "Give labels to add and/or remove"));
            }
            relabel(c, id, &add, &remove).await
        }
        "mark_read" | "mark_unread" | "archive" | "star" | "unstar" => {
            let (add, remove) = match action {
                "mark_read" => label("", "UNREAD"),
                "mark_unread" => label("UNREAD", ""),
                "archive" => label("", "INBOX"),
                "star" => label("STARRED", ""),
                _ => label("", "STARRED"),
            };
            relabel(c, id, &add, &remove).await
        }
        "trash" | "untrash" => {
            api(c).send(Method::Post, &format!("{}/{action}", message_path(id)), None).await?;
            current(c, id).await
        }
        "list_labels" => {
            let v = api(c).get("/users/me/labels").await?;
            let labels = v["labels"].as_array().cloned().unwrap_or_default();
            let mut out = Outcome::of(json!({ "labels": labels }));
            for l in &labels {
                out = out.storing("labels", label_item(l));
            }
            Ok(out)
        }
        "create_label" => {
            let body =
                json!({ "name": p["name"], "labelListVisibility": "labelShow", "messageListVisibility": "show" });
            let l = match api(c).send(Method::Post, "/users/me/labels", Some(&body)).await {
                Err(ServiceError::Upstream { status: 409, .. }) => {
                    return Err(ServiceError::Refused {
                        status: 409,
                        code: "LABEL_EXISTS",
                        message: format!("A label named {} already exists", p["name"].as_str().unwrap_or("")),
                    })
                }
                other => other?,
            };
            Ok(Outcome::of(l.clone()).storing("labels", label_item(&l)))
        }
        "delete_label" => {
            api(c).send(Method::Delete, &format!("/users/me/labels/{}", segment(id)), None).await?;
            Ok(Outcome::of(json!({ "deleted": true })).storing("labels", Item::gone(id)))
        }
        "get_attachment" => {
            let (m, a) = (p["messageId"].as_str().unwrap_or(""), p["attachmentId"].as_str().unwrap_or(""));
            let v = api(c).work(Work::Download).get(&format!("{}/attachments/{}", message_path(m), segment(a))).await?;
            let data =
                mime::headers::b64_decode(v["data"].as_str().unwrap_or("")).ok_or_else(|| unreadable("attachment"))?;
            use base64::Engine;
            let size = v["size"].as_u64().unwrap_or(data.len() as u64);
            Ok(Outcome::of(json!({ "size": size, "data": base64::engine::general_purpose::STANDARD.encode(&data) })))
        }
        other => Err(ServiceError::Invalid(format!("unknown action {other}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------
