//! Gmail's entities as stored (messages, threads, labels, drafts): messages in full once — a list
//! page, then its messages in one batch request — then from the stored `historyId`
//! (`users.history.list`); a forgotten `historyId` means a full pass. Also one entity fetched live.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    after_date, api, batch, full_message, message_path, query, str_list, BATCH_MAX, HISTORY_MAX, LIST_MAX, MESSAGE_PAGE,
};
use crate::integrations::service::{Conn, Item, Page, PageRequest, ServiceError};
use crate::integrations::services::google::mime::{self};
use crate::integrations::services::google::{Charsets, Part};
use crate::outbound::segment;

/// A `format=full` message in the contract's shape.
pub fn message_view(m: &Value) -> Value {
    mime::read::message_from_gmail(m, &Charsets)
}

/// Bodies kept per stored message (a page of 100 messages is committed in one D1 batch);
/// actions answer them whole, and a stored message that was cut says so (`truncated`).
pub(super) const STORED_BODY_MAX: usize = 100 * 1024;

pub(super) fn message_item(mut view: Value) -> Item {
    for key in ["body", "bodyHtml"] {
        let Some(s) = view[key].as_str().filter(|s| s.len() > STORED_BODY_MAX) else { continue };
        let mut end = STORED_BODY_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        view[key] = json!(s[..end]);
        view["truncated"] = json!(true);
    }
    let id = view["id"].as_str().unwrap_or("").to_string();
    let date = view["date"].as_str().unwrap_or("").to_string();
    Item::new(id, date, view)
}

/// How a message is stored: spam and trash are not part of the synced mailbox (a full run
/// does not list them), so a message moved there counts as deleted.
pub(super) fn message_entity(view: Value) -> Item {
    let hidden = view["labelIds"].as_array().is_some_and(|l| l.iter().any(|x| x == "TRASH" || x == "SPAM"));
    if hidden {
        Item::gone(view["id"].as_str().unwrap_or(""))
    } else {
        message_item(view)
    }
}

/// A thread as stored: its subject (the first message's), who wrote in it (`from`, as the
/// search index reads it) and everyone on it (`participants`), its last message's date, its
/// size, snippet and `historyId`. No modification time: a full pass sweeps what is gone.
pub(super) fn thread_item(view: Value) -> Item {
    Item::new(view["id"].as_str().unwrap_or("").to_string(), "", view)
}

/// A batch part that failed in a way worth trying again on the next page (the rest of the batch
/// is kept): the provider was busy, limited us, or the token needs a refresh.
fn retry_later(e: &ServiceError) -> bool {
    e.transient() || matches!(e, ServiceError::RateLimited(_) | ServiceError::Auth(_))
}

/// Adds an address entry unless its address is already in `list`.
fn add_once(list: &mut Vec<String>, entry: &str) {
    // The address part decides (compose reads addresses the same way; sync must not import it).
    let key = |e: &str| {
        crate::integrations::services::google::mime::headers::parse_address(e)
            .map_or_else(|_| e.to_ascii_lowercase(), |(_, a)| a.to_ascii_lowercase())
    };
    if !entry.is_empty() && !list.iter().any(|e| key(e) == key(entry)) {
        list.push(entry.to_string());
    }
}

/// The stored view of a `threads.get` answer (`format=metadata` with its headers, or `full`).
pub(super) fn thread_view(t: &Value) -> Value {
    let views: Vec<Value> = t["messages"].as_array().into_iter().flatten().map(message_view).collect();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let subject = views.iter().map(|v| text(v, "subject")).find(|s| !s.is_empty()).unwrap_or_default();
    // Each person once (by address, as first written), senders in the order they wrote.
    let (mut senders, mut people) = (Vec::new(), Vec::new());
    for v in &views {
        // The view's `from` is already rendered (a display name may hold a comma): one entry.
        let from = v["from"].as_str().unwrap_or("").trim();
        add_once(&mut senders, from);
        add_once(&mut people, from);
        for to in str_list(&v["to"]).iter().chain(str_list(&v["cc"]).iter()) {
            add_once(&mut people, to);
        }
    }
    let last = views.last();
    let snippet = match t["snippet"].as_str() {
        Some(s) if !s.is_empty() => mime::read::snippet_text(s),
        _ => last.map(|v| text(v, "snippet")).unwrap_or_default(),
    };
    json!({
        "id": t["id"], "subject": subject, "from": senders.join(", "), "participants": people,
        "date": last.map(|v| text(v, "date")).unwrap_or_default(), "messageCount": views.len(),
        "snippet": snippet, "historyId": t["historyId"],
    })
}

pub(super) fn draft_item(d: &Value) -> Item {
    Item::new(
        d["id"].as_str().unwrap_or(""),
        "",
        json!({ "id": d["id"], "messageId": d["message"]["id"], "threadId": d["message"]["threadId"] }),
    )
}

pub(super) fn label_item(l: &Value) -> Item {
    Item::new(l["id"].as_str().unwrap_or(""), "", l.clone())
}

/// The larger of two numeric history ids.
pub(super) fn bump(hid: &mut Option<String>, seen: &Value) {
    let seen = match seen {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return,
    };
    let Ok(n) = seen.parse::<u64>() else { return };
    if hid.as_deref().and_then(|h| h.parse::<u64>().ok()).is_none_or(|h| n > h) {
        *hid = Some(seen);
    }
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

/// The integration's message filters (`filters.labels`, `filters.after`).
#[derive(Default)]
pub(super) struct Filters {
    labels: Vec<String>,
    /// (`YYYY/MM/DD`, its midnight UTC in ms).
    after: Option<(String, crate::time::Millis)>,
}

impl Filters {
    pub(super) fn of(req: &PageRequest<'_>) -> Self {
        Filters {
            labels: req.filter("labels").map(str_list).unwrap_or_default(),
            after: req.filter("after").and_then(Value::as_str).and_then(after_date),
        }
    }

    /// The listing's query parameters: `labelIds` (all of them must be on a message) and `q`.
    pub(super) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q: Vec<(&'static str, String)> = self.labels.iter().map(|l| ("labelIds", l.clone())).collect();
        if let Some((day, _)) = &self.after {
            q.push(("q", format!("after:{day}")));
        }
        q
    }

    /// Whether a message read in an incremental pass is in the filtered mailbox.
    pub(super) fn keep(&self, m: &Value) -> bool {
        let labels = str_list(&m["labelIds"]);
        let date =
            m["internalDate"].as_str().and_then(|d| d.parse::<i64>().ok()).or_else(|| m["internalDate"].as_i64());
        self.labels.iter().all(|l| labels.contains(l))
            && self.after.as_ref().is_none_or(|(_, ms)| date.is_none_or(|d| d >= *ms))
    }
}

/// Where a messages pass stands between pages.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct Cursor {
    /// The next list (or history) page's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// Every list (or history) page has been read.
    #[serde(default)]
    listed: bool,
    /// Message ids listed but not fetched yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<String>,
    /// The highest `historyId` seen in this pass: the checkpoint it stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hid: Option<String>,
}

/// One page of messages: a list (or history) page, then its messages in batches of
/// `BATCH_MAX`, each step only while the page's share of requests lasts.
pub(super) async fn messages_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let mut cur: Cursor = req.cursor.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let budget = req.max_requests.max(1);
    let filters = Filters::of(req);
    let mut used = 0;
    let mut items = Vec::new();
    if cur.pending.is_empty() && !cur.listed {
        used += 1;
        let token = cur.page.clone().map(|t| ("pageToken", t));
        match req.since {
            None => {
                let mut q = vec![("maxResults", MESSAGE_PAGE.to_string())];
                q.extend(filters.query());
                q.extend(token);
                let v = api(c).get(&format!("/users/me/messages?{}", query(&q))).await?;
                cur.pending = v["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["id"].as_str())
                    .map(str::to_string)
                    .collect();
                cur.page = v["nextPageToken"].as_str().map(str::to_string);
            }
            Some(since) => {
                let mut q = vec![("startHistoryId", since.to_string()), ("maxResults", HISTORY_MAX.to_string())];
                for t in ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"] {
                    q.push(("historyTypes", t.to_string()));
                }
                q.extend(token);
                let v = match api(c).get(&format!("/users/me/history?{}", query(&q))).await {
                    Err(ServiceError::NotFound(_)) => {
                        return Err(ServiceError::CheckpointExpired(format!(
                            "Gmail no longer has history from {since}"
                        )))
                    }
                    other => other?,
                };
                let (changed, gone) = history_changes(&v);
                items.extend(gone.into_iter().map(Item::gone));
                cur.pending = changed;
                bump(&mut cur.hid, &v["historyId"]);
                cur.page = v["nextPageToken"].as_str().map(str::to_string);
            }
        }
        cur.listed = cur.page.is_none();
    }
    // Whether a message was read in this page: a failure before that fails the page (retried
    // whole); a failure after it keeps what was read and leaves the rest pending.
    let mut fetched_any = false;
    while !cur.pending.is_empty() && used < budget {
        used += 1;
        let ids: Vec<String> = cur.pending.drain(..cur.pending.len().min(BATCH_MAX)).collect();
        let parts: Vec<Part> = ids.iter().map(|id| full_message(id)).collect();
        let answers = match batch(c, &parts).await {
            Ok(a) => a,
            Err(e) if !fetched_any => return Err(e),
            Err(_) => {
                cur.pending.splice(0..0, ids);
                break;
            }
        };
        let (mut retry, mut failure) = (Vec::new(), None);
        for (id, answer) in ids.into_iter().zip(answers) {
            match answer {
                Ok(m) => {
                    fetched_any = true;
                    bump(&mut cur.hid, &m["historyId"]);
                    // A change took it out of the filtered mailbox (a label removed): it goes.
                    if filters.keep(&m) {
                        items.push(message_entity(message_view(&m)));
                    } else {
                        items.push(Item::gone(id));
                    }
                }
                // Gone between the listing and the read.
                Err(ServiceError::NotFound(_)) => {
                    if req.since.is_some() {
                        items.push(Item::gone(id));
                    }
                }
                Err(e) if retry_later(&e) => {
                    failure.get_or_insert(e);
                    retry.push(id);
                }
                // A message Gmail refuses to serve (e.g. 400) is skipped rather than failing the run.
                Err(_) => {}
            }
        }
        if let Some(e) = failure {
            if !fetched_any {
                return Err(e);
            }
            retry.append(&mut cur.pending);
            cur.pending = retry;
            break;
        }
    }
    // An empty mailbox has no message to take a history id from: the profile has one.
    if cur.listed && cur.pending.is_empty() && cur.hid.is_none() && used < budget {
        let profile = api(c).get("/users/me/profile").await?;
        bump(&mut cur.hid, &profile["historyId"]);
    }
    let done = cur.listed && cur.pending.is_empty();
    let checkpoint = cur.hid.clone();
    Ok(Page { items, next: if done { None } else { serde_json::to_value(&cur).ok() }, checkpoint })
}

/// The messages a history page changed (in order, once each) and the ones it deleted.
pub(super) fn history_changes(v: &Value) -> (Vec<String>, Vec<String>) {
    let (mut changed, mut gone): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for h in v["history"].as_array().into_iter().flatten() {
        for (key, deleted) in
            [("messagesAdded", false), ("labelsAdded", false), ("labelsRemoved", false), ("messagesDeleted", true)]
        {
            for e in h[key].as_array().into_iter().flatten() {
                let Some(id) = e["message"]["id"].as_str() else { continue };
                if deleted {
                    changed.retain(|c| c != id);
                    if !gone.iter().any(|g| g == id) {
                        gone.push(id.to_string());
                    }
                } else if !gone.iter().any(|g| g == id) && !changed.iter().any(|c| c == id) {
                    changed.push(id.to_string());
                }
            }
        }
    }
    (changed, gone)
}

/// A full listing of drafts: one request per page.
pub(super) async fn drafts_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let mut q = vec![("maxResults", LIST_MAX.to_string())];
    if let Some(t) = req.cursor.and_then(|v| v["pageToken"].as_str()) {
        q.push(("pageToken", t.to_string()));
    }
    let v = api(c).get(&format!("/users/me/drafts?{}", query(&q))).await?;
    let items = v["drafts"].as_array().into_iter().flatten().map(draft_item).collect();
    let next = v["nextPageToken"].as_str().map(|t| json!({ "pageToken": t }));
    Ok(Page { items, next, checkpoint: None })
}

/// `threads.get` with the headers a thread's view needs (no bodies).
pub(super) fn thread_metadata(id: &str) -> String {
    let headers: String =
        ["Subject", "From", "To", "Cc", "Date"].iter().map(|h| format!("&metadataHeaders={h}")).collect();
    format!("/users/me/threads/{}?format=metadata{headers}", segment(id))
}

/// One page of threads: a listing page (`threads.list` has ids, snippets and history ids
/// only), then the threads' headers in batches of `BATCH_MAX`. Every run is a full pass that
/// sweeps what is gone (a thread leaves no trace in the history Gmail keeps for messages).
pub(super) async fn threads_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let mut cur: Cursor = req.cursor.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let budget = req.max_requests.max(1);
    let mut used = 0;
    let mut items = Vec::new();
    if cur.pending.is_empty() && !cur.listed {
        used += 1;
        let mut q = vec![("maxResults", LIST_MAX.to_string())];
        q.extend(Filters::of(req).query());
        q.extend(cur.page.clone().map(|t| ("pageToken", t)));
        let v = api(c).get(&format!("/users/me/threads?{}", query(&q))).await?;
        let listed = v["threads"].as_array().into_iter().flatten().filter_map(|t| t["id"].as_str());
        cur.pending.extend(listed.map(str::to_string));
        cur.page = v["nextPageToken"].as_str().map(str::to_string);
        cur.listed = cur.page.is_none();
    }
    let mut read_any = false;
    while !cur.pending.is_empty() && used < budget {
        used += 1;
        let ids: Vec<String> = cur.pending.drain(..cur.pending.len().min(BATCH_MAX)).collect();
        let parts: Vec<Part> = ids
            .iter()
            .map(|id| Part { method: "GET", path: format!("{}{}", super::V1, thread_metadata(id)), body: None })
            .collect();
        let answers = match batch(c, &parts).await {
            Ok(a) => a,
            Err(e) if !read_any => return Err(e),
            Err(_) => {
                cur.pending.splice(0..0, ids);
                break;
            }
        };
        let (mut retry, mut failure) = (Vec::new(), None);
        for (id, answer) in ids.into_iter().zip(answers) {
            match answer {
                Ok(t) => {
                    read_any = true;
                    items.push(thread_item(thread_view(&t)));
                }
                // Gone since the listing: a full pass sweeps it.
                Err(ServiceError::NotFound(_)) => {}
                Err(e) if retry_later(&e) => {
                    failure.get_or_insert(e);
                    retry.push(id);
                }
                Err(_) => {}
            }
        }
        if let Some(e) = failure {
            if !read_any {
                return Err(e);
            }
            retry.append(&mut cur.pending);
            cur.pending = retry;
            break;
        }
    }
    let done = cur.listed && cur.pending.is_empty();
    Ok(Page { items, next: if done { None } else { serde_json::to_value(&cur).ok() }, checkpoint: None })
}

pub(super) async fn sync_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    match req.entity {
        "labels" => {
            let v = api(c).get("/users/me/labels").await?;
            let items = v["labels"].as_array().into_iter().flatten().map(label_item).collect();
            Ok(Page { items, next: None, checkpoint: None })
        }
        "messages" => messages_page(c, req).await,
        "threads" => threads_page(c, req).await,
        "drafts" => drafts_page(c, req).await,
        other => Err(ServiceError::Invalid(format!("unsupported entity type {other}"))),
    }
}

pub(super) async fn fetch(c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
    let api = api(c);
    match entity {
        "messages" => {
            let m = api.get(&format!("{}?format=full", message_path(id))).await?;
            Ok(("messages", message_item(message_view(&m))))
        }
        "threads" => {
            let t = api.get(&thread_metadata(id)).await?;
            Ok(("threads", thread_item(thread_view(&t))))
        }
        "drafts" => {
            let d = api.get(&format!("/users/me/drafts/{}?format=minimal", segment(id))).await?;
            Ok(("drafts", draft_item(&d)))
        }
        "labels" => {
            let l = api.get(&format!("/users/me/labels/{}", segment(id))).await?;
            Ok(("labels", label_item(&l)))
        }
        _ => Err(ServiceError::Invalid(format!("fetch is not supported for {entity}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------
