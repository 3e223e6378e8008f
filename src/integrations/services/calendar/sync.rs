//! Calendar's entities as stored: the account's calendars, and the events of every selected
//! calendar from Google's `nextSyncToken` (a token Google no longer honours, 410, restarts that
//! calendar's pass in full); one entity fetched live.

use serde_json::{json, Map, Value};

use super::{api, put, query, str_of, PAGE_SIZE};
use crate::integrations::service::{Conn, Item, Page, PageRequest, ServiceError};
use crate::outbound::segment;

/// A calendarList entry: `{id, summary, description?, timeZone?, primary, selected, accessRole?,
/// backgroundColor?}` (the summary the user gave it, if any).
pub fn calendar_view(c: &Value) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(str_of(c, "id").unwrap_or("")));
    m.insert("summary".into(), json!(str_of(c, "summaryOverride").or(str_of(c, "summary")).unwrap_or("")));
    put(&mut m, "description", str_of(c, "description"));
    put(&mut m, "timeZone", str_of(c, "timeZone"));
    m.insert("primary".into(), json!(c["primary"].as_bool().unwrap_or(false)));
    m.insert("selected".into(), json!(c["selected"].as_bool().unwrap_or(false)));
    put(&mut m, "accessRole", str_of(c, "accessRole"));
    put(&mut m, "backgroundColor", str_of(c, "backgroundColor"));
    Value::Object(m)
}

pub(super) fn calendar_item(c: &Value) -> Item {
    let view = calendar_view(c);
    let id = view["id"].as_str().unwrap_or("").to_string();
    Item::new(id, "", view)
}

/// The calendar an event copy belongs to: `primary` is resolved through the entry Google marks
/// `self` ("this entry represents the calendar on which this copy of the event appears").
pub(super) fn calendar_of(given: &str, e: &Value) -> String {
    if given != "primary" {
        return given.to_string();
    }
    let own = |p: &Value| p["self"].as_bool() == Some(true);
    let organizer = Some(&e["organizer"]).filter(|o| own(o));
    let attendee = e["attendees"].as_array().and_then(|a| a.iter().find(|p| own(p)));
    organizer.or(attendee).and_then(|p| str_of(p, "email")).unwrap_or(given).to_string()
}

/// The video entry point of the conference, else the classic Hangouts/Meet link.
pub(super) fn meeting_link(e: &Value) -> Option<&str> {
    let video = e["conferenceData"]["entryPoints"]
        .as_array()
        .and_then(|eps| eps.iter().find(|p| p["entryPointType"] == "video"))
        .and_then(|p| str_of(p, "uri"));
    video.or(str_of(e, "hangoutLink"))
}

/// An event in the contract's shape: `{id, calendarId, summary, description?, location?, start,
/// end, allDay, timeZone?, attendees, organizer?, recurrence?, status, htmlLink?, meetingLink?,
/// created?, updated?}`; `start`/`end` are RFC 3339 date-times, or `YYYY-MM-DD` all day (the
/// end exclusive, as Google stores it).
pub fn event_view(calendar_id: &str, e: &Value) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(str_of(e, "id").unwrap_or("")));
    m.insert("calendarId".into(), json!(calendar_of(calendar_id, e)));
    m.insert("summary".into(), json!(str_of(e, "summary").unwrap_or("")));
    put(&mut m, "description", str_of(e, "description"));
    put(&mut m, "location", str_of(e, "location"));
    let all_day = str_of(&e["start"], "date").is_some();
    let when = |t: &Value| json!(str_of(t, "date").or(str_of(t, "dateTime")).unwrap_or(""));
    m.insert("start".into(), when(&e["start"]));
    m.insert("end".into(), when(&e["end"]));
    m.insert("allDay".into(), json!(all_day));
    put(&mut m, "timeZone", str_of(&e["start"], "timeZone").or(str_of(&e["end"], "timeZone")));
    let attendees: Vec<Value> = e["attendees"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let mut p = Map::new();
                    p.insert("email".into(), json!(str_of(a, "email").unwrap_or("")));
                    put(&mut p, "name", str_of(a, "displayName"));
                    p.insert("responseStatus".into(), json!(str_of(a, "responseStatus").unwrap_or("needsAction")));
                    for flag in ["organizer", "self", "optional"] {
                        p.insert(flag.into(), json!(a[flag].as_bool().unwrap_or(false)));
                    }
                    Value::Object(p)
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert("attendees".into(), Value::Array(attendees));
    if let Some(email) = str_of(&e["organizer"], "email") {
        let mut o = Map::new();
        o.insert("email".into(), json!(email));
        put(&mut o, "name", str_of(&e["organizer"], "displayName"));
        o.insert("self".into(), json!(e["organizer"]["self"].as_bool().unwrap_or(false)));
        m.insert("organizer".into(), Value::Object(o));
    }
    if let Some(r) = e["recurrence"].as_array() {
        m.insert("recurrence".into(), Value::Array(r.clone()));
    }
    m.insert("status".into(), json!(str_of(e, "status").unwrap_or("confirmed")));
    put(&mut m, "htmlLink", str_of(e, "htmlLink"));
    put(&mut m, "meetingLink", meeting_link(e));
    put(&mut m, "created", str_of(e, "created"));
    put(&mut m, "updated", str_of(e, "updated"));
    Value::Object(m)
}

/// An event as stored: keyed by its calendar and its id (`calendarId/eventId`), since one event
/// (an invitation on a shared calendar) appears on several calendars with the same id.
pub(super) fn event_item(calendar_id: &str, e: &Value) -> Item {
    let view = event_view(calendar_id, e);
    let parent = view["calendarId"].as_str().unwrap_or(calendar_id).to_string();
    Item::new(event_key(&parent, str_of(e, "id").unwrap_or("")), str_of(e, "updated").unwrap_or(""), view).under(parent)
}

/// The stored key of an event of a calendar.
pub(super) fn event_key(calendar_id: &str, event_id: &str) -> String {
    format!("{calendar_id}/{event_id}")
}

pub(super) fn next_page(r: &Value) -> Option<Value> {
    str_of(r, "nextPageToken").map(|t| json!({ "pageToken": t }))
}

pub(super) async fn sync_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
    let api = api(c);
    let page_token = req.cursor.and_then(|v| v["pageToken"].as_str());
    let size = PAGE_SIZE.to_string();
    match req.entity {
        "calendars" => {
            // Always the whole list: the engine marks calendars no longer listed deleted.
            let q = query(&[("maxResults", Some(&size)), ("pageToken", page_token)]);
            let r = api.get(&format!("/users/me/calendarList{q}")).await?;
            let items = r["items"].as_array().map(|l| l.iter().map(calendar_item).collect()).unwrap_or_default();
            Ok(Page { items, next: next_page(&r), checkpoint: None })
        }
        "events" => {
            let calendar = req.parent;
            // Deleted events are listed too (as `cancelled`), so an incremental run sees them.
            let q = query(&[
                ("maxResults", Some(&size)),
                ("singleEvents", Some("false")),
                ("showDeleted", Some("true")),
                ("syncToken", req.since),
                ("pageToken", page_token),
            ]);
            let r = match api.get(&format!("/calendars/{}/events{q}", segment(calendar))).await {
                Ok(r) => r,
                Err(ServiceError::Upstream { status: 410, .. }) if req.since.is_some() => {
                    return Err(ServiceError::CheckpointExpired("Google Calendar invalidated the sync token".into()))
                }
                // A calendar removed since it was listed: nothing left to read.
                Err(ServiceError::NotFound(_)) => return Ok(Page::default()),
                Err(e) => return Err(e),
            };
            let items = r["items"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|e| {
                            let id = str_of(e, "id")?;
                            Some(if e["status"] == "cancelled" {
                                Item::gone(event_key(calendar, id)).under(calendar)
                            } else {
                                event_item(calendar, e)
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Google sends the token for the next incremental run with the last page only.
            Ok(Page { items, next: next_page(&r), checkpoint: str_of(&r, "nextSyncToken").map(str::to_string) })
        }
        other => Err(ServiceError::Invalid(format!("unsupported entity type {other}"))),
    }
}

pub(super) async fn fetch(c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
    match entity {
        "calendars" => {
            let r = api(c).get(&format!("/users/me/calendarList/{}", segment(id))).await?;
            Ok(("calendars", calendar_item(&r)))
        }
        "events" => {
            // `calendarId/eventId` (calendar ids hold no `/`), or an event of the primary calendar.
            let (calendar, event) = id.rsplit_once('/').unwrap_or(("primary", id));
            let r = api(c).get(&format!("/calendars/{}/events/{}", segment(calendar), segment(event))).await?;
            Ok(("events", event_item(calendar, &r)))
        }
        _ => Err(ServiceError::Invalid(format!("fetch is not supported for {entity}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Event times
// ---------------------------------------------------------------------------------------------
