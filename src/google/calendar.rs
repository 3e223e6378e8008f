//! Google Calendar (contract §9): the calendars of the account and the events of every
//! calendar the user selected, synced in full once and then from Google's `nextSyncToken`
//! (a token Google no longer honours, 410, restarts that calendar's pass in full); ten
//! actions, among them `find_slots`, which reads busy times with `freeBusy` and searches the
//! working hours of a time zone with `calendar_logic`. Time zones come from the runtime's
//! `Intl.DateTimeFormat` (workerd has the full ICU data), so no tz database is in our Wasm.

use futures::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use worker::Method;

use super::calendar_logic::{self as logic, Busy, FixedZone, SlotQuery, Zone};
use super::Api;
use crate::integrations::service::{
    Action, Conn, Credentials, Item, OAuth, Outcome, Page, PageRequest, Parent, Service, ServiceError,
};
use crate::outbound::segment;
use crate::time::{iso, parse_iso, Millis};

pub struct CalendarService;

const ENTITIES: [&str; 2] = ["calendars", "events"];
/// Items per list page (Google's maximum for calendarList; events allow 2500, but a page's
/// entities are written in one commit, so smaller pages keep commits small).
const PAGE_SIZE: u32 = 250;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// `find_slots` reads busy times for at most this many days.
const MAX_SLOT_RANGE_DAYS: i64 = 62;
/// Default length of a timed event created without an `end`.
const DEFAULT_EVENT_MINUTES: i64 = 60;
/// Pages `list_calendars` follows at most (250 calendars each).
const MAX_CALENDAR_PAGES: usize = 8;

static OAUTH: OAuth =
    super::oauth(&["https://www.googleapis.com/auth/calendar", "https://www.googleapis.com/auth/calendar.events"]);

/// Schema fragments shared by several actions (macros, so `concat!` can join them).
macro_rules! calendar_id {
    () => {
        r#""calendarId": {"type": "string", "minLength": 1, "maxLength": 255, "default": "primary", "description": "A calendar id from list_calendars, or \"primary\""}"#
    };
}
macro_rules! event_id {
    () => {
        r#""eventId": {"type": "string", "minLength": 1, "maxLength": 1024}"#
    };
}
macro_rules! send_updates {
    () => {
        r#""sendUpdates": {"enum": ["all", "externalOnly", "none"], "description": "Who Google notifies of the change"}"#
    };
}
macro_rules! event_fields {
    () => {
        concat!(
            r#""description": {"type": "string", "maxLength": 8192}, "location": {"type": "string", "maxLength": 1024}, "#,
            r#""start": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}], "description": "RFC 3339 date-time, or YYYY-MM-DD for an all-day event"}, "#,
            r#""end": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}], "description": "Exclusive; all-day: the day after the last day (default: the next day); timed: default one hour after start"}, "#,
            r#""timeZone": {"type": "string", "minLength": 1, "maxLength": 64, "description": "IANA time zone, e.g. Europe/Berlin"}, "#,
            r#""allDay": {"type": "boolean"}, "#,
            r#""attendees": {"type": "array", "maxItems": 100, "items": {"anyOf": [{"type": "string", "format": "email"}, {"type": "object", "properties": {"email": {"type": "string", "format": "email"}, "name": {"type": "string", "maxLength": 200}, "optional": {"type": "boolean"}}, "required": ["email"], "additionalProperties": false}]}}, "#,
            r#""recurrence": {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 2000}, "description": "RRULE, EXRULE, RDATE or EXDATE lines (RFC 5545)"}, "#,
            r#""meet": {"type": "boolean", "description": "true: add a Google Meet; false (update only): remove the conference"}, "#,
            r#""reminders": {"type": "object", "properties": {"useDefault": {"type": "boolean"}, "overrides": {"type": "array", "maxItems": 5, "items": {"type": "object", "properties": {"method": {"enum": ["email", "popup"]}, "minutes": {"type": "integer", "minimum": 0, "maximum": 40320}}, "required": ["method", "minutes"], "additionalProperties": false}}}, "additionalProperties": false}, "#,
            send_updates!()
        )
    };
}
macro_rules! time_range {
    () => {
        r#""timeMin": {"type": "string", "format": "date-time"}, "timeMax": {"type": "string", "format": "date-time"}"#
    };
}
macro_rules! calendars_list {
    () => {
        r#""calendars": {"type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": true, "items": {"type": "string", "minLength": 1, "maxLength": 255}, "description": "Calendar ids (default: [\"primary\"])"}"#
    };
}

static ACTIONS: [Action; 10] = [
    Action {
        name: "list_calendars",
        description: "List the account's calendars (id, summary, timeZone, primary, selected, accessRole).",
        params: r#"{"type": "object", "properties": {}, "additionalProperties": false}"#,
        write: false,
    },
    Action {
        name: "list_events",
        description: "List events of a calendar, by time range or text; recurring events expanded into instances unless singleEvents is false.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            ", ",
            time_range!(),
            r#", "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Free text search"}"#,
            r#", "maxResults": {"type": "integer", "minimum": 1, "maximum": 2500, "default": 50}"#,
            r#", "pageToken": {"type": "string", "minLength": 1, "maxLength": 2048}"#,
            r#", "singleEvents": {"type": "boolean", "default": true}"#,
            r#"}, "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "get_event",
        description: "Read one event.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            ", ",
            event_id!(),
            r#"}, "required": ["eventId"], "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "create_event",
        description: "Create an event (timed or all-day), optionally with attendees, recurrence, reminders and a Google Meet.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            r#", "summary": {"type": "string", "minLength": 1, "maxLength": 1024}, "#,
            event_fields!(),
            r#"}, "required": ["summary", "start"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "update_event",
        description: "Change only the given fields of an event (conference data, reminders and attendees' responses are kept).",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            ", ",
            event_id!(),
            r#", "summary": {"type": "string", "maxLength": 1024}, "#,
            event_fields!(),
            r#"}, "required": ["eventId"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "delete_event",
        description: "Delete an event; an event already gone counts as deleted.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            ", ",
            event_id!(),
            ", ",
            send_updates!(),
            r#"}, "required": ["eventId"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "quick_add",
        description: "Create an event from a sentence, as Google Calendar's quick add reads it (\"Lunch with Ana tomorrow 12:30\").",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            r#", "text": {"type": "string", "minLength": 1, "maxLength": 1024}"#,
            r#"}, "required": ["text"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "respond",
        description: "Answer an invitation as the connected account (only its own attendee entry changes).",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            calendar_id!(),
            ", ",
            event_id!(),
            r#", "response": {"enum": ["accepted", "declined", "tentative"]}"#,
            r#"}, "required": ["eventId", "response"], "additionalProperties": false}"#
        ),
        write: true,
    },
    Action {
        name: "free_busy",
        description: "Busy intervals of calendars between timeMin and timeMax.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            time_range!(),
            ", ",
            calendars_list!(),
            r#"}, "required": ["timeMin", "timeMax"], "additionalProperties": false}"#
        ),
        write: false,
    },
    Action {
        name: "find_slots",
        description: "Free slots of durationMinutes on every given calendar, on a granularity grid inside working hours of a time zone (daylight-saving days included), bufferMinutes away from busy times; in time order, possibly overlapping.",
        params: concat!(
            r#"{"type": "object", "properties": {"#,
            r#""durationMinutes": {"type": "integer", "minimum": 1, "maximum": 1440}, "#,
            time_range!(),
            ", ",
            calendars_list!(),
            r#", "timeZone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC", "description": "IANA time zone of the working hours"}"#,
            r#", "workingHours": {"type": "object", "properties": {"start": {"type": "string", "format": "time-hhmm", "default": "09:00"}, "end": {"type": "string", "format": "time-hhmm", "default": "17:00"}, "days": {"type": "array", "minItems": 1, "maxItems": 7, "uniqueItems": true, "items": {"type": "integer", "minimum": 1, "maximum": 7}, "default": [1, 2, 3, 4, 5], "description": "ISO weekdays, 1 = Monday … 7 = Sunday"}}, "additionalProperties": false}"#,
            r#", "granularityMinutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 15}"#,
            r#", "bufferMinutes": {"type": "integer", "minimum": 0, "maximum": 1440, "default": 0}"#,
            r#", "maxSlots": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}"#,
            r#"}, "required": ["durationMinutes", "timeMin", "timeMax"], "additionalProperties": false}"#
        ),
        write: false,
    },
];

fn api<'a>(c: &'a Conn<'a>) -> Api<'a> {
    Api::new(c, "GOOGLE_CALENDAR_API_URL", "https://www.googleapis.com", "/calendar/v3")
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidField { field: field.into(), message: message.into() }
}

/// `?a=b&c=d` of the pairs that have a value ("" when none do).
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", q.finish())
    } else {
        String::new()
    }
}

/// An instant as RFC 3339 UTC, without milliseconds when there are none.
fn rfc3339(ms: Millis) -> String {
    let s = iso(ms);
    if ms.rem_euclid(1000) == 0 {
        format!("{}Z", &s[..19])
    } else {
        s
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn put(m: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.into(), json!(v));
    }
}

// ---------------------------------------------------------------------------------------------
// What the API shows
// ---------------------------------------------------------------------------------------------

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

fn calendar_item(c: &Value) -> Item {
    let view = calendar_view(c);
    let id = view["id"].as_str().unwrap_or("").to_string();
    Item::new(id, "", view)
}

/// The calendar an event copy belongs to: `primary` is resolved through the entry Google marks
/// `self` ("this entry represents the calendar on which this copy of the event appears").
fn calendar_of(given: &str, e: &Value) -> String {
    if given != "primary" {
        return given.to_string();
    }
    let own = |p: &Value| p["self"].as_bool() == Some(true);
    let organizer = Some(&e["organizer"]).filter(|o| own(o));
    let attendee = e["attendees"].as_array().and_then(|a| a.iter().find(|p| own(p)));
    organizer.or(attendee).and_then(|p| str_of(p, "email")).unwrap_or(given).to_string()
}

/// The video entry point of the conference, else the classic Hangouts/Meet link.
fn meeting_link(e: &Value) -> Option<&str> {
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

fn event_item(calendar_id: &str, e: &Value) -> Item {
    let view = event_view(calendar_id, e);
    let parent = view["calendarId"].as_str().unwrap_or(calendar_id).to_string();
    Item::new(str_of(e, "id").unwrap_or(""), str_of(e, "updated").unwrap_or(""), view).under(parent)
}

fn unreadable(what: &str) -> ServiceError {
    ServiceError::Transport(format!("Google Calendar answered an unreadable {what}"))
}

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

/// An IANA time zone read through the runtime's `Intl.DateTimeFormat`: the offset at an instant
/// is the wall-clock time it formats to, read as UTC, minus the instant.
#[cfg(target_arch = "wasm32")]
pub struct IntlZone {
    formatter: worker::wasm_bindgen::JsValue,
    format_to_parts: worker::js_sys::Function,
}

#[cfg(target_arch = "wasm32")]
impl IntlZone {
    /// `None` when the runtime does not know the zone (`Intl` throws a RangeError).
    pub fn new(name: &str) -> Option<Self> {
        use worker::js_sys::{Array, Function, Object, Reflect};
        use worker::wasm_bindgen::{JsCast, JsValue};
        let intl = Reflect::get(&worker::js_sys::global(), &"Intl".into()).ok()?;
        let ctor: Function = Reflect::get(&intl, &"DateTimeFormat".into()).ok()?.dyn_into().ok()?;
        let options = Object::new();
        let numeric = [("year", "numeric"), ("month", "numeric"), ("day", "numeric")];
        let clock = [("hour", "numeric"), ("minute", "numeric"), ("second", "numeric"), ("hourCycle", "h23")];
        for (k, v) in [("timeZone", name)].into_iter().chain(numeric).chain(clock) {
            Reflect::set(&options, &k.into(), &v.into()).ok()?;
        }
        let formatter = Reflect::construct(&ctor, &Array::of2(&JsValue::from_str("en-US"), &options)).ok()?;
        let format_to_parts: Function = Reflect::get(&formatter, &"formatToParts".into()).ok()?.dyn_into().ok()?;
        Some(IntlZone { formatter, format_to_parts })
    }
}

#[cfg(target_arch = "wasm32")]
impl Zone for IntlZone {
    fn offset_at(&self, utc_ms: i64) -> i32 {
        use worker::js_sys::{Array, Date, Reflect};
        use worker::wasm_bindgen::{JsCast, JsValue};
        let second = utc_ms.div_euclid(1000) * 1000;
        let date = Date::new(&JsValue::from_f64(second as f64));
        let Some(parts) =
            self.format_to_parts.call1(&self.formatter, &date).ok().and_then(|p| p.dyn_into::<Array>().ok())
        else {
            return 0;
        };
        let mut f = [1970i64, 1, 1, 0, 0, 0];
        for part in parts.iter() {
            let field = Reflect::get(&part, &"type".into()).ok().and_then(|t| t.as_string()).unwrap_or_default();
            let slot = ["year", "month", "day", "hour", "minute", "second"].iter().position(|n| *n == field);
            let value = Reflect::get(&part, &"value".into()).ok().and_then(|v| v.as_string());
            if let (Some(i), Some(n)) = (slot, value.and_then(|v| v.parse::<i64>().ok())) {
                f[i] = n;
            }
        }
        let day = logic::days_from_civil(f[0] as i32, f[1] as u32, f[2] as u32);
        let local = (day * 86_400 + f[3] * 3600 + f[4] * 60 + f[5]) * 1000;
        ((local - second) as f64 / MINUTE_MS as f64).round() as i32
    }
}

/// A zone by IANA name (`UTC` without asking the runtime). Natively only unit tests have zones
/// (chrono-tz as the oracle); the Worker asks `Intl`.
pub fn zone(name: &str) -> Result<Box<dyn Zone>, ServiceError> {
    let unknown = || invalid("timeZone", format!("'{name}' is not a known IANA time zone (e.g. Europe/Berlin)"));
    if matches!(name, "UTC" | "Etc/UTC") {
        return Ok(Box::new(FixedZone(0)));
    }
    #[cfg(target_arch = "wasm32")]
    {
        IntlZone::new(name).map(|z| Box::new(z) as Box<dyn Zone>).ok_or_else(unknown)
    }
    #[cfg(all(test, not(target_arch = "wasm32")))]
    {
        name.parse::<chrono_tz::Tz>().map(|tz| Box::new(tests::TzZone(tz)) as Box<dyn Zone>).map_err(|_| unknown())
    }
    #[cfg(all(not(test), not(target_arch = "wasm32")))]
    {
        Err(unknown())
    }
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

fn next_page(r: &Value) -> Option<Value> {
    str_of(r, "nextPageToken").map(|t| json!({ "pageToken": t }))
}

async fn sync_page(c: &Conn<'_>, req: &PageRequest<'_>) -> Result<Page, ServiceError> {
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
                                Item::gone(id).under(calendar)
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

async fn fetch(c: &Conn<'_>, entity: &str, id: &str) -> Result<(&'static str, Item), ServiceError> {
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

/// A start or end as given: a date (its day number), or an instant with the text it came as.
#[derive(Debug, Clone, PartialEq)]
enum When {
    Date(i64),
    Time(Millis, String),
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn day_of(date: &str) -> Option<i64> {
    (date.len() == 10).then(|| parse_iso(&format!("{date}T00:00:00Z")))?.map(|ms| ms.div_euclid(DAY_MS))
}

fn date_text(day: i64) -> String {
    iso(day * DAY_MS)[..10].to_string()
}

fn parse_when(s: &str) -> Option<When> {
    if s.len() == 10 {
        day_of(s).map(When::Date)
    } else {
        parse_iso(s).map(|ms| When::Time(ms, s.to_string()))
    }
}

fn when_param(p: &Value, key: &str) -> Result<Option<When>, ServiceError> {
    match p.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => {
            parse_when(s).map(Some).ok_or_else(|| invalid(key, "Must be an RFC 3339 date-time or a date (YYYY-MM-DD)"))
        }
    }
}

/// The start or end of a stored event (`{date}` or `{dateTime}`).
fn when_of(t: &Value) -> Option<When> {
    str_of(t, "date").or(str_of(t, "dateTime")).and_then(parse_when)
}

/// The local day of a start or end, and whether it falls on that day's midnight: in `zone`
/// when there is one, else the wall-clock date the date-time was written in.
fn local_day(w: &When, zone: Option<&dyn Zone>) -> (i64, bool) {
    let local = match w {
        When::Date(day) => return (*day, true),
        When::Time(ms, text) => match zone {
            Some(z) => ms + i64::from(z.offset_at(*ms)) * MINUTE_MS,
            None => text.get(..19).and_then(|t| parse_iso(&format!("{t}Z"))).unwrap_or(*ms),
        },
    };
    (local.div_euclid(DAY_MS), local.rem_euclid(DAY_MS) == 0)
}

/// What an event's times default to when only a start is given.
struct Length {
    days: i64,
    ms: i64,
}

/// Google's `start` and `end` objects. All-day: dates as given (a date-time's date in the time
/// zone, or as written), the end exclusive and after the start. Timed: date-times, the end after
/// the start. `replace` also clears the other kind's field (a PATCH that changes the kind).
#[allow(clippy::too_many_arguments)]
fn event_times(
    all_day: bool,
    start: &When,
    end: Option<&When>,
    length: Length,
    tz: Option<&str>,
    zone: Option<&dyn Zone>,
    recurring: bool,
    replace: bool,
) -> Result<(Value, Value), ServiceError> {
    let object = |key: &str, value: String, other: &str, tz: Option<&str>| {
        let mut m = Map::new();
        m.insert(key.into(), json!(value));
        if replace {
            m.insert(other.into(), Value::Null);
        }
        if let Some(tz) = tz {
            m.insert("timeZone".into(), json!(tz));
        }
        Value::Object(m)
    };
    if all_day {
        let (first, _) = local_day(start, zone);
        let last = match end {
            Some(e) => match local_day(e, zone) {
                // A date-time end inside a day keeps that day (exclusive end: the next one).
                (day, false) => day + 1,
                (day, true) => day,
            },
            None => first + length.days,
        };
        if last <= first {
            return Err(invalid("end", "Must be after start (the end date of an all-day event is exclusive)"));
        }
        return Ok((object("date", date_text(first), "dateTime", tz), object("date", date_text(last), "dateTime", tz)));
    }
    let When::Time(from, from_text) = start else {
        return Err(invalid("start", "Must be a date-time (RFC 3339) unless allDay is true"));
    };
    let (to, to_text) = match end {
        Some(When::Time(ms, text)) => (*ms, text.clone()),
        Some(When::Date(_)) => return Err(invalid("end", "Must be a date-time (RFC 3339) like start")),
        None => (from + length.ms, rfc3339(from + length.ms)),
    };
    if to <= *from {
        return Err(invalid("end", "Must be after start"));
    }
    // Google needs the zone of a recurring event to expand it.
    let tz = tz.or(recurring.then_some("UTC"));
    Ok((object("dateTime", from_text.clone(), "date", tz), object("dateTime", to_text, "date", tz)))
}

/// Recurrence lines, each a valid RRULE/EXRULE/RDATE/EXDATE (the bad one named).
fn recurrence(p: &Value) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(list) = p.get("recurrence").and_then(Value::as_array) else { return Ok(None) };
    let lines: Vec<String> = list.iter().filter_map(Value::as_str).map(|l| l.trim().to_string()).collect();
    logic::validate_recurrence(&lines).map_err(|(i, message)| invalid(format!("recurrence.{i}"), message))?;
    Ok(Some(lines))
}

/// Google's attendee entries for the given ones: an entry of the current event with the same
/// address is kept whole (its response, its flags), with the given name and optional flag.
fn attendees_body(given: &[Value], current: &[Value]) -> Vec<Value> {
    given
        .iter()
        .filter_map(|a| {
            let email = a.as_str().or(a["email"].as_str())?;
            let known = current.iter().find(|c| c["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)));
            let mut entry = known.cloned().unwrap_or_else(|| json!({ "email": email }));
            if let Some(name) = a["name"].as_str() {
                entry["displayName"] = json!(name);
            }
            if let Some(optional) = a["optional"].as_bool() {
                entry["optional"] = json!(optional);
            }
            Some(entry)
        })
        .collect()
}

fn reminders(r: &Value) -> Result<Value, ServiceError> {
    let use_default = r["useDefault"].as_bool();
    match r.get("overrides") {
        Some(_) if use_default == Some(true) => {
            Err(invalid("reminders.useDefault", "Cannot be true together with overrides"))
        }
        Some(overrides) => Ok(json!({ "useDefault": false, "overrides": overrides })),
        None => Ok(json!({ "useDefault": use_default.unwrap_or(true) })),
    }
}

/// A request for a new Google Meet (the id makes Google's creation idempotent per request).
fn meet_request() -> Value {
    json!({ "createRequest": { "requestId": uuid::Uuid::new_v4().to_string(), "conferenceSolutionKey": { "type": "hangoutsMeet" } } })
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

fn calendar(p: &Value) -> &str {
    p["calendarId"].as_str().unwrap_or("primary")
}

fn events_path(calendar: &str) -> String {
    format!("/calendars/{}/events", segment(calendar))
}

fn event_path(calendar: &str, event: &str) -> String {
    format!("{}/{}", events_path(calendar), segment(event))
}

fn stored(calendar: &str, e: &Value) -> Outcome {
    let item = event_item(calendar, e);
    Outcome::of(item.data.clone()).storing("events", item)
}

/// The account's address (its primary calendar's id).
async fn account(c: &Conn<'_>) -> Result<Value, ServiceError> {
    let api = api(c);
    let primary = match api.get("/users/me/calendarList/primary").await {
        Ok(p) => p,
        Err(ServiceError::NotFound(_)) => {
            let list = api.get("/users/me/calendarList?maxResults=250").await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            items.iter().find(|c| c["primary"] == true).or(items.first()).cloned().unwrap_or(Value::Null)
        }
        Err(e) => return Err(e),
    };
    let email = str_of(&primary, "id").ok_or_else(|| unreadable("calendar list"))?;
    Ok(json!({ "email": email, "timeZone": primary["timeZone"] }))
}

async fn list_calendars(c: &Conn<'_>) -> Result<Outcome, ServiceError> {
    let api = api(c);
    let mut out = Outcome::default();
    let mut calendars = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_CALENDAR_PAGES {
        let size = PAGE_SIZE.to_string();
        let q = query(&[("maxResults", Some(&size)), ("pageToken", token.as_deref())]);
        let r = api.get(&format!("/users/me/calendarList{q}")).await?;
        for entry in r["items"].as_array().into_iter().flatten() {
            let item = calendar_item(entry);
            calendars.push(item.data.clone());
            out.items.push(("calendars", item));
        }
        token = str_of(&r, "nextPageToken").map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.result = json!({ "calendars": calendars });
    Ok(out)
}

fn range(p: &Value) -> Result<(Option<Millis>, Option<Millis>), ServiceError> {
    let at = |k: &str| p.get(k).and_then(Value::as_str).and_then(parse_iso);
    let (from, to) = (at("timeMin"), at("timeMax"));
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            return Err(invalid("timeMax", "Must be after timeMin"));
        }
    }
    Ok((from, to))
}

async fn list_events(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    range(p)?;
    let cal = calendar(p);
    let single = p["singleEvents"].as_bool().unwrap_or(true);
    let max = p["maxResults"].as_u64().unwrap_or(50).to_string();
    let q = query(&[
        ("singleEvents", Some(if single { "true" } else { "false" })),
        // Google orders by start time only for expanded instances.
        ("orderBy", single.then_some("startTime")),
        ("timeMin", p["timeMin"].as_str()),
        ("timeMax", p["timeMax"].as_str()),
        ("q", p["query"].as_str()),
        ("maxResults", Some(&max)),
        ("pageToken", p["pageToken"].as_str()),
    ]);
    let r = api(c).get(&format!("{}{q}", events_path(cal))).await?;
    let events: Vec<Value> = r["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] != "cancelled")
        .map(|e| event_view(cal, e))
        .collect();
    let mut result = json!({ "events": events });
    if let Some(t) = str_of(&r, "nextPageToken") {
        result["nextPageToken"] = json!(t);
    }
    Ok(Outcome::of(result))
}

async fn create_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let cal = calendar(p);
    let tz = str_of(p, "timeZone");
    let zone = tz.map(zone).transpose()?;
    let start = when_param(p, "start")?.ok_or_else(|| invalid("start", "Required"))?;
    let end = when_param(p, "end")?;
    let all_day = p["allDay"].as_bool().unwrap_or(matches!(start, When::Date(_)));
    let lines = recurrence(p)?;
    let recurring = lines.as_ref().is_some_and(|l| !l.is_empty());
    let length = Length { days: 1, ms: DEFAULT_EVENT_MINUTES * MINUTE_MS };
    let (s, e) = event_times(all_day, &start, end.as_ref(), length, tz, zone.as_deref(), recurring, false)?;
    let mut body = json!({ "summary": p["summary"], "start": s, "end": e });
    for key in ["description", "location"] {
        if let Some(v) = p[key].as_str() {
            body[key] = json!(v);
        }
    }
    if let Some(list) = p["attendees"].as_array() {
        body["attendees"] = json!(attendees_body(list, &[]));
    }
    if let Some(lines) = lines {
        body["recurrence"] = json!(lines);
    }
    if let Some(r) = p.get("reminders") {
        body["reminders"] = reminders(r)?;
    }
    let meet = p["meet"].as_bool() == Some(true);
    if meet {
        body["conferenceData"] = meet_request();
    }
    let q = query(&[("conferenceDataVersion", meet.then_some("1")), ("sendUpdates", p["sendUpdates"].as_str())]);
    let r = api(c).send(Method::Post, &format!("{}{q}", events_path(cal)), Some(&body)).await?;
    Ok(stored(cal, &r))
}

const UPDATABLE: [&str; 11] = [
    "summary",
    "description",
    "location",
    "start",
    "end",
    "timeZone",
    "allDay",
    "attendees",
    "recurrence",
    "meet",
    "reminders",
];

/// The PATCH body of `update_event`: only the fields given (times and attendees are completed
/// from the `current` event, read only when they change).
fn patch_body(p: &Value, current: Option<&Value>) -> Result<Value, ServiceError> {
    let mut body = Map::new();
    for key in ["summary", "description", "location"] {
        if let Some(v) = p[key].as_str() {
            body.insert(key.into(), json!(v));
        }
    }
    let lines = recurrence(p)?;
    if ["start", "end", "timeZone", "allDay"].iter().any(|k| p.get(*k).is_some()) {
        let cur = current.ok_or_else(|| unreadable("event"))?;
        let (cur_start, cur_end) =
            when_of(&cur["start"]).zip(when_of(&cur["end"])).ok_or_else(|| unreadable("event time"))?;
        let cur_all_day = matches!(cur_start, When::Date(_));
        let tz = str_of(p, "timeZone").or(str_of(&cur["start"], "timeZone"));
        let zone = match str_of(p, "timeZone") {
            Some(name) => Some(zone(name)?),
            None => tz.and_then(|name| zone(name).ok()),
        };
        let start_given = when_param(p, "start")?;
        let end_given = when_param(p, "end")?;
        let all_day = p["allDay"].as_bool().unwrap_or(match &start_given {
            Some(w) => matches!(w, When::Date(_)),
            None => cur_all_day,
        });
        if !all_day && cur_all_day && start_given.is_none() {
            return Err(invalid("start", "Give a date-time start to make an all-day event timed"));
        }
        // Moving the start keeps the event's length; the end stays where only other things change.
        let length = match (&cur_start, &cur_end) {
            (When::Date(a), When::Date(b)) => Length { days: (b - a).max(1), ms: DEFAULT_EVENT_MINUTES * MINUTE_MS },
            (When::Time(a, _), When::Time(b, _)) => Length { days: 1, ms: (b - a).max(MINUTE_MS) },
            _ => Length { days: 1, ms: DEFAULT_EVENT_MINUTES * MINUTE_MS },
        };
        let end = match end_given {
            Some(e) => Some(e),
            None if start_given.is_none() && all_day == cur_all_day => Some(cur_end),
            None => None,
        };
        let start = start_given.unwrap_or(cur_start);
        let recurring = lines.as_ref().map_or(cur["recurrence"].is_array(), |l| !l.is_empty());
        let (s, e) = event_times(all_day, &start, end.as_ref(), length, tz, zone.as_deref(), recurring, true)?;
        body.insert("start".into(), s);
        body.insert("end".into(), e);
    }
    if let Some(list) = p["attendees"].as_array() {
        let known = current.and_then(|c| c["attendees"].as_array()).map(Vec::as_slice).unwrap_or(&[]);
        body.insert("attendees".into(), json!(attendees_body(list, known)));
    }
    if let Some(lines) = lines {
        body.insert("recurrence".into(), json!(lines));
    }
    if let Some(r) = p.get("reminders") {
        body.insert("reminders".into(), reminders(r)?);
    }
    match p["meet"].as_bool() {
        Some(true) => {
            body.insert("conferenceData".into(), meet_request());
        }
        Some(false) => {
            body.insert("conferenceData".into(), Value::Null);
        }
        None => {}
    }
    Ok(Value::Object(body))
}

async fn update_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    if !UPDATABLE.iter().any(|k| p.get(*k).is_some()) {
        return Err(invalid("", format!("Nothing to update: give at least one of {}", UPDATABLE.join(", "))));
    }
    let (cal, id) = (calendar(p), p["eventId"].as_str().unwrap_or(""));
    let api = api(c);
    let reads = ["start", "end", "timeZone", "allDay", "attendees"].iter().any(|k| p.get(*k).is_some());
    let current = if reads { Some(api.get(&event_path(cal, id)).await?) } else { None };
    let body = patch_body(p, current.as_ref())?;
    let q = query(&[("conferenceDataVersion", p.get("meet").map(|_| "1")), ("sendUpdates", p["sendUpdates"].as_str())]);
    let r = api.send(Method::Patch, &format!("{}{q}", event_path(cal, id)), Some(&body)).await?;
    Ok(stored(cal, &r))
}

async fn delete_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let (cal, id) = (calendar(p), p["eventId"].as_str().unwrap_or(""));
    let q = query(&[("sendUpdates", p["sendUpdates"].as_str())]);
    match api(c).send(Method::Delete, &format!("{}{q}", event_path(cal, id)), None).await {
        // Already gone (404) or deleted before (410): the caller's wish holds either way.
        Ok(_) | Err(ServiceError::NotFound(_)) | Err(ServiceError::Upstream { status: 410, .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(Outcome::of(json!({ "deleted": true })).storing("events", Item::gone(id)))
}

async fn respond(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let (cal, id) = (calendar(p), p["eventId"].as_str().unwrap_or(""));
    let api = api(c);
    let event = api.get(&event_path(cal, id)).await?;
    let mut attendees = event["attendees"].as_array().cloned().unwrap_or_default();
    let mut mine = attendees.iter().position(|a| a["self"] == true);
    if mine.is_none() && !attendees.is_empty() {
        let me = account(c).await?;
        let email = me["email"].as_str().unwrap_or("");
        mine = attendees.iter().position(|a| a["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)));
    }
    let Some(i) = mine else {
        return Err(ServiceError::Refused {
            status: 400,
            code: "NOT_AN_ATTENDEE",
            message: "The connected account is not an attendee of this event".into(),
        });
    };
    attendees[i]["responseStatus"] = p["response"].clone();
    let r = api.send(Method::Patch, &event_path(cal, id), Some(&json!({ "attendees": attendees }))).await?;
    Ok(stored(cal, &r))
}

/// Busy intervals per calendar, in the order asked; a calendar Google cannot read is an error
/// (treating it as free would offer slots that are not).
async fn busy_times(
    c: &Conn<'_>,
    from: &str,
    to: &str,
    ids: &[String],
    given: bool,
) -> Result<Vec<(String, Vec<Value>)>, ServiceError> {
    let items: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    let body = json!({ "timeMin": from, "timeMax": to, "items": items });
    let r = api(c).send(Method::Post, "/freeBusy", Some(&body)).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let entry = &r["calendars"][id.as_str()];
        let here = if given { format!("calendars.{i}") } else { "calendars".to_string() };
        if let Some(reason) = entry["errors"].as_array().and_then(|e| e.first()).map(|e| e["reason"].clone()) {
            let reason = reason.as_str().unwrap_or("unknown").to_string();
            return Err(invalid(here, format!("Google cannot read the busy times of '{id}' ({reason})")));
        }
        let Some(busy) = entry["busy"].as_array() else {
            return Err(invalid(here, format!("Google answered no busy times for '{id}'")));
        };
        out.push((id.clone(), busy.iter().map(|b| json!({ "start": b["start"], "end": b["end"] })).collect()));
    }
    Ok(out)
}

/// The calendars asked for (`primary` when none are), and whether they were given.
fn calendar_ids(p: &Value) -> (Vec<String>, bool) {
    match p["calendars"].as_array() {
        Some(list) => (list.iter().filter_map(Value::as_str).map(str::to_string).collect(), true),
        None => (vec!["primary".to_string()], false),
    }
}

async fn free_busy(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    range(p)?;
    let (ids, given) = calendar_ids(p);
    let (from, to) = (p["timeMin"].as_str().unwrap_or(""), p["timeMax"].as_str().unwrap_or(""));
    let calendars: Vec<Value> = busy_times(c, from, to, &ids, given)
        .await?
        .into_iter()
        .map(|(id, busy)| json!({ "id": id, "busy": busy }))
        .collect();
    Ok(Outcome::of(json!({ "calendars": calendars })))
}

/// `HH:MM` → minutes of the day (`24:00` = 1440).
fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `find_slots`' query from its parameters (checked beyond the schema) and the zone it needs.
fn slot_query(p: &Value) -> Result<(SlotQuery, Box<dyn Zone>), ServiceError> {
    let (from, to) = match range(p)? {
        (Some(from), Some(to)) => (from, to),
        _ => return Err(invalid("timeMin", "Required")),
    };
    if to - from > MAX_SLOT_RANGE_DAYS * DAY_MS {
        return Err(invalid("timeMax", format!("Must be at most {MAX_SLOT_RANGE_DAYS} days after timeMin")));
    }
    let zone = zone(p["timeZone"].as_str().unwrap_or("UTC"))?;
    let hours = &p["workingHours"];
    let at = |key: &str, default: u32| match hours[key].as_str() {
        Some(t) => minutes_of(t).ok_or_else(|| invalid(format!("workingHours.{key}"), "Must be a time (HH:MM)")),
        None => Ok(default),
    };
    let (start, end) = (at("start", 540)?, at("end", 1020)?);
    if start >= end {
        return Err(invalid("workingHours.end", "Must be after workingHours.start"));
    }
    let days: Vec<u8> = match hours["days"].as_array() {
        Some(d) => d.iter().filter_map(Value::as_u64).filter(|d| (1..=7).contains(d)).map(|d| d as u8).collect(),
        None => vec![1, 2, 3, 4, 5],
    };
    let minutes = |key: &str, default: u64| p[key].as_u64().unwrap_or(default).min(1440) as u32;
    let q = SlotQuery {
        granularity_min: minutes("granularityMinutes", 15),
        buffer_min: minutes("bufferMinutes", 0),
        work_start_min: start,
        work_end_min: end,
        days,
        max_slots: p["maxSlots"].as_u64().unwrap_or(50).min(500) as usize,
        ..SlotQuery::new(from, to, minutes("durationMinutes", 30))
    };
    Ok((q, zone))
}

async fn find_slots(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let (q, zone) = slot_query(p)?;
    let (ids, given) = calendar_ids(p);
    // Busy times just outside the range still keep slots at its edges a buffer away.
    let buffer = i64::from(q.buffer_min) * MINUTE_MS;
    let calendars = busy_times(c, &rfc3339(q.time_min - buffer), &rfc3339(q.time_max + buffer), &ids, given).await?;
    let busy: Vec<Busy> = calendars
        .iter()
        .flat_map(|(_, list)| list.iter())
        .filter_map(|b| {
            let at = |k: &str| b[k].as_str().and_then(parse_iso);
            Some(Busy { start: at("start")?, end: at("end")? })
        })
        .collect();
    let slots: Vec<Value> = logic::find_slots(&q, zone.as_ref(), &busy)
        .into_iter()
        .map(|(s, e)| json!({ "start": rfc3339(s), "end": rfc3339(e) }))
        .collect();
    Ok(Outcome::of(json!({ "slots": slots })))
}

async fn act(c: &Conn<'_>, action: &str, p: &Value) -> Result<Outcome, ServiceError> {
    match action {
        "list_calendars" => list_calendars(c).await,
        "list_events" => list_events(c, p).await,
        "get_event" => {
            let cal = calendar(p);
            let r = api(c).get(&event_path(cal, p["eventId"].as_str().unwrap_or(""))).await?;
            Ok(stored(cal, &r))
        }
        "create_event" => create_event(c, p).await,
        "update_event" => update_event(c, p).await,
        "delete_event" => delete_event(c, p).await,
        "quick_add" => {
            let cal = calendar(p);
            let q = query(&[("text", p["text"].as_str())]);
            let r = api(c).send(Method::Post, &format!("{}/quickAdd{q}", events_path(cal)), None).await?;
            Ok(stored(cal, &r))
        }
        "respond" => respond(c, p).await,
        "free_busy" => free_busy(c, p).await,
        "find_slots" => find_slots(c, p).await,
        other => Err(ServiceError::Invalid(format!("unknown action {other}"))),
    }
}

/// `expires_at` given directly as epoch seconds, epoch milliseconds or an ISO 8601 time →
/// epoch seconds (what the token refresh reads).
fn expires_at_secs(v: &str) -> Option<i64> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = v.parse().ok()?;
        // Seconds reach 10^11 only in the year 5138; milliseconds passed it in 1973.
        return Some(if n >= 100_000_000_000 { n / 1000 } else { n });
    }
    parse_iso(v).map(|ms| ms.div_euclid(1000))
}

impl Service for CalendarService {
    fn name(&self) -> &'static str {
        "google_calendar"
    }

    fn entities(&self) -> &'static [&'static str] {
        &ENTITIES
    }

    fn parent(&self, entity: &str) -> Option<Parent> {
        (entity == "events").then_some(Parent { entity: "calendars", key: "$.id", only_if: Some("$.selected") })
    }

    fn actions(&self) -> &'static [Action] {
        &ACTIONS
    }

    fn oauth(&self) -> Option<&'static OAuth> {
        Some(&OAUTH)
    }

    fn prepare_credentials(&self, creds: Credentials, _now: Millis) -> Result<Credentials, String> {
        let mut out = Credentials::new();
        let token = creds.get("access_token").map(|t| t.trim()).filter(|t| !t.is_empty());
        out.insert("access_token".into(), token.ok_or("credentials.access_token is required")?.to_string());
        if let Some(r) = creds.get("refresh_token").map(|t| t.trim()).filter(|t| !t.is_empty()) {
            out.insert("refresh_token".into(), r.to_string());
        }
        if let Some(e) = creds.get("expires_at").filter(|e| !e.trim().is_empty()) {
            let secs = expires_at_secs(e)
                .ok_or("credentials.expires_at must be epoch seconds, epoch milliseconds or an ISO 8601 time")?;
            out.insert("expires_at".into(), secs.to_string());
        }
        for key in ["scope", "token_type"] {
            if let Some(v) = creds.get(key).filter(|v| !v.is_empty()) {
                out.insert(key.into(), v.clone());
            }
        }
        Ok(out)
    }

    fn check<'a>(&'a self, c: &'a Conn<'a>) -> LocalBoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(account(c))
    }

    fn sync_page<'a>(
        &'a self,
        c: &'a Conn<'a>,
        req: &'a PageRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Page, ServiceError>> {
        Box::pin(sync_page(c, req))
    }

    fn fetch<'a>(
        &'a self,
        c: &'a Conn<'a>,
        entity: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, Result<(&'static str, Item), ServiceError>> {
        Box::pin(fetch(c, entity, id))
    }

    fn act<'a>(
        &'a self,
        c: &'a Conn<'a>,
        action: &'a str,
        params: &'a Value,
    ) -> LocalBoxFuture<'a, Result<Outcome, ServiceError>> {
        Box::pin(act(c, action, params))
    }

    fn push_action(&self, entity: &str) -> Option<&'static str> {
        (entity == "events").then_some("create_event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::service::Fixed;
    use crate::outbound::{Call, Http, OutboundError, Upstream};
    use chrono::{Datelike, TimeZone, Timelike};
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// chrono-tz as the native stand-in for the runtime's `Intl`.
    pub struct TzZone(pub chrono_tz::Tz);

    impl Zone for TzZone {
        fn offset_at(&self, utc_ms: i64) -> i32 {
            use chrono::Offset;
            let utc = chrono::DateTime::from_timestamp_millis(utc_ms).unwrap().naive_utc();
            self.0.offset_from_utc_datetime(&utc).fix().local_minus_utc() / 60
        }
    }

    /// Answers from (method, path prefix, status, body) routes, first match, and records calls.
    struct FakeCalendar {
        routes: Vec<(&'static str, &'static str, u16, Value)>,
        seen: RefCell<Vec<Call>>,
    }

    impl FakeCalendar {
        fn new(routes: Vec<(&'static str, &'static str, u16, Value)>) -> Self {
            FakeCalendar { routes, seen: RefCell::new(vec![]) }
        }
        /// (method, path with query, JSON body) of every request.
        fn calls(&self) -> Vec<(String, String, Value)> {
            self.seen
                .borrow()
                .iter()
                .map(|c| {
                    let body = c.body.as_deref().map(|b| serde_json::from_slice(b).unwrap()).unwrap_or(Value::Null);
                    (c.method.to_string(), c.url.trim_start_matches("https://cal.test/calendar/v3").to_string(), body)
                })
                .collect()
        }
    }

    impl Http for FakeCalendar {
        fn send(&self, call: Call) -> LocalBoxFuture<'_, Result<Upstream, OutboundError>> {
            let path = call.url.trim_start_matches("https://cal.test/calendar/v3").to_string();
            let method = call.method.to_string();
            self.seen.borrow_mut().push(call);
            let hit = self.routes.iter().find(|(m, p, _, _)| *m == method && path.starts_with(p));
            let answer = match hit {
                Some((_, _, status, body)) => Upstream {
                    status: *status,
                    headers: vec![],
                    body: if body.is_null() { vec![] } else { body.to_string().into_bytes() },
                },
                None => Upstream {
                    status: 404,
                    headers: vec![],
                    body: br#"{"error":{"code":404,"message":"Not Found"}}"#.to_vec(),
                },
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    fn run<T>(fake: &FakeCalendar, f: impl for<'c> FnOnce(&'c Conn<'c>) -> LocalBoxFuture<'c, T>) -> T {
        let vars = BTreeMap::from([("GOOGLE_CALENDAR_API_URL".to_string(), "https://cal.test".to_string())]);
        let creds = Credentials::from([("access_token".to_string(), "ya29.t0k".to_string())]);
        let tokens = Fixed(&creds);
        let conn = Conn { http: fake, vars: &vars, creds: &creds, tokens: &tokens, now: 0 };
        futures::executor::block_on(f(&conn))
    }

    fn act_on(fake: &FakeCalendar, action: &'static str, params: Value) -> Result<Outcome, ServiceError> {
        run(fake, |c| Box::pin(async move { act(c, action, &params).await }))
    }

    fn page(
        fake: &FakeCalendar,
        entity: &'static str,
        parent: &'static str,
        since: Option<&str>,
    ) -> Result<Page, ServiceError> {
        let since = since.map(str::to_string);
        run(fake, |c| {
            Box::pin(async move {
                let req = PageRequest { entity, parent, cursor: None, since: since.as_deref(), max_requests: 10 };
                sync_page(c, &req).await
            })
        })
    }

    fn timed_event() -> Value {
        json!({
            "id": "ev1", "status": "confirmed", "summary": "Standup", "htmlLink": "https://calendar.test/ev1",
            "created": "2026-01-01T00:00:00.000Z", "updated": "2026-01-02T00:00:00.000Z",
            "start": { "dateTime": "2026-03-10T09:00:00-04:00", "timeZone": "America/New_York" },
            "end": { "dateTime": "2026-03-10T09:30:00-04:00", "timeZone": "America/New_York" },
            "organizer": { "email": "boss@example.com", "displayName": "Boss" },
            "attendees": [
                { "email": "boss@example.com", "organizer": true, "responseStatus": "accepted" },
                { "email": "me@example.com", "self": true, "displayName": "Me", "optional": true },
            ],
            "conferenceData": { "entryPoints": [
                { "entryPointType": "phone", "uri": "tel:+1-555" },
                { "entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij" },
            ] },
            "hangoutLink": "https://meet.google.com/old-link",
            "reminders": { "useDefault": false, "overrides": [{ "method": "popup", "minutes": 5 }] },
        })
    }

    #[test]
    fn timed_events_map_to_the_contract_shape() {
        let v = event_view("primary", &timed_event());
        assert_eq!(
            v,
            json!({
                "id": "ev1", "calendarId": "me@example.com", "summary": "Standup",
                "start": "2026-03-10T09:00:00-04:00", "end": "2026-03-10T09:30:00-04:00", "allDay": false,
                "timeZone": "America/New_York",
                "attendees": [
                    { "email": "boss@example.com", "responseStatus": "accepted", "organizer": true, "self": false, "optional": false },
                    { "email": "me@example.com", "name": "Me", "responseStatus": "needsAction", "organizer": false, "self": true, "optional": true },
                ],
                "organizer": { "email": "boss@example.com", "name": "Boss", "self": false },
                "status": "confirmed", "htmlLink": "https://calendar.test/ev1",
                "meetingLink": "https://meet.google.com/abc-defg-hij",
                "created": "2026-01-01T00:00:00.000Z", "updated": "2026-01-02T00:00:00.000Z",
            })
        );
        // A named calendar stays as given; the classic link is the fallback.
        let mut e = timed_event();
        e.as_object_mut().unwrap().remove("conferenceData");
        let v = event_view("team@group.calendar.google.com", &e);
        assert_eq!(v["calendarId"], "team@group.calendar.google.com");
        assert_eq!(v["meetingLink"], "https://meet.google.com/old-link");
    }

    #[test]
    fn all_day_events_keep_their_dates_and_optional_fields_are_left_out() {
        let e = json!({
            "id": "d1", "start": { "date": "2026-06-15" }, "end": { "date": "2026-06-17" },
            "organizer": { "email": "me@example.com", "self": true }, "recurrence": ["RRULE:FREQ=YEARLY"],
        });
        let v = event_view("primary", &e);
        assert_eq!(
            v,
            json!({
                "id": "d1", "calendarId": "me@example.com", "summary": "", "start": "2026-06-15", "end": "2026-06-17",
                "allDay": true, "attendees": [], "organizer": { "email": "me@example.com", "self": true },
                "recurrence": ["RRULE:FREQ=YEARLY"], "status": "confirmed",
            })
        );
        let c = calendar_view(
            &json!({ "id": "c1", "summary": "Team", "summaryOverride": "Mine", "selected": true, "accessRole": "owner" }),
        );
        assert_eq!(
            c,
            json!({ "id": "c1", "summary": "Mine", "primary": false, "selected": true, "accessRole": "owner" })
        );
    }

    #[test]
    fn a_full_events_pass_lists_deleted_ones_and_ends_with_the_sync_token() {
        let body = json!({
            "items": [timed_event(), { "id": "gone1", "status": "cancelled" }],
            "nextPageToken": "p2",
        });
        let fake = FakeCalendar::new(vec![("GET", "/calendars/me%40example.com/events", 200, body)]);
        let p = page(&fake, "events", "me@example.com", None).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!((p.items[0].external_id.as_str(), p.items[0].parent.as_str()), ("ev1", "me@example.com"));
        assert_eq!(p.items[0].modified_at, "2026-01-02T00:00:00.000Z");
        assert!(p.items[1].deleted && p.items[1].external_id == "gone1");
        assert_eq!((p.next, p.checkpoint), (Some(json!({ "pageToken": "p2" })), None));
        let (_, path, _) = &fake.calls()[0];
        assert_eq!(path, "/calendars/me%40example.com/events?maxResults=250&singleEvents=false&showDeleted=true");

        let last = json!({ "items": [], "nextSyncToken": "sync-2" });
        let fake = FakeCalendar::new(vec![("GET", "/calendars/", 200, last)]);
        let p = page(&fake, "events", "me@example.com", Some("sync-1")).unwrap();
        assert_eq!((p.next, p.checkpoint.as_deref()), (None, Some("sync-2")));
        assert!(fake.calls()[0].1.ends_with("&syncToken=sync-1"));
    }

    #[test]
    fn an_expired_sync_token_asks_for_a_full_pass_and_a_vanished_calendar_is_empty() {
        let gone = json!({ "error": { "code": 410, "message": "Sync token is no longer valid", "errors": [{ "reason": "fullSyncRequired" }] } });
        let fake = FakeCalendar::new(vec![("GET", "/calendars/", 410, gone)]);
        assert_eq!(
            page(&fake, "events", "me@example.com", Some("old")).unwrap_err(),
            ServiceError::CheckpointExpired("Google Calendar invalidated the sync token".into())
        );
        let fake = FakeCalendar::new(vec![]);
        let p = page(&fake, "events", "removed@example.com", None).unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
        let list = json!({ "items": [{ "id": "me@example.com", "summary": "Me", "primary": true, "selected": true }] });
        let fake = FakeCalendar::new(vec![("GET", "/users/me/calendarList", 200, list)]);
        let p = page(&fake, "calendars", "", None).unwrap();
        assert_eq!(p.items[0].data["id"], "me@example.com");
        assert_eq!(p.items[0].data["selected"], true);
        assert_eq!(CalendarService.parent("events").unwrap().only_if, Some("$.selected"));
    }

    #[test]
    fn create_event_all_day_dates_stay_and_meet_is_requested() {
        let created = json!({ "id": "new1", "start": { "date": "2026-06-15" }, "end": { "date": "2026-06-16" } });
        let fake = FakeCalendar::new(vec![("POST", "/calendars/primary/events", 200, created)]);
        // 2026-06-15 00:30 in Kiritimati (+14:00) is still 2026-06-14 in UTC.
        let params = json!({ "summary": "Holiday", "start": "2026-06-14T10:30:00Z", "allDay": true, "timeZone": "Pacific/Kiritimati", "meet": true });
        let out = act_on(&fake, "create_event", params).unwrap();
        assert_eq!(out.items[0].1.external_id, "new1");
        let (_, path, body) = &fake.calls()[0];
        assert_eq!(path, "/calendars/primary/events?conferenceDataVersion=1");
        assert_eq!(body["start"], json!({ "date": "2026-06-15", "timeZone": "Pacific/Kiritimati" }));
        assert_eq!(body["end"], json!({ "date": "2026-06-16", "timeZone": "Pacific/Kiritimati" }));
        assert_eq!(body["conferenceData"]["createRequest"]["conferenceSolutionKey"], json!({ "type": "hangoutsMeet" }));
        // Dates given as dates stay those dates; each Meet request has its own id.
        act_on(
            &fake,
            "create_event",
            json!({ "summary": "Trip", "start": "2026-12-31", "end": "2027-01-03", "meet": true }),
        )
        .unwrap();
        let calls = fake.calls();
        assert_eq!(
            (calls[1].2["start"]["date"].as_str(), calls[1].2["end"]["date"].as_str()),
            (Some("2026-12-31"), Some("2027-01-03"))
        );
        assert_ne!(
            calls[0].2["conferenceData"]["createRequest"]["requestId"],
            calls[1].2["conferenceData"]["createRequest"]["requestId"]
        );
        // A date-time written in its own offset keeps its written date without a time zone.
        act_on(&fake, "create_event", json!({ "summary": "x", "start": "2026-06-15T00:30:00+14:00", "allDay": true }))
            .unwrap();
        assert_eq!(fake.calls()[2].2["start"], json!({ "date": "2026-06-15" }));
    }

    #[test]
    fn create_event_timed_defaults_and_errors_name_the_bad_part() {
        let fake = FakeCalendar::new(vec![("POST", "/calendars/", 200, json!({ "id": "t1" }))]);
        let params = json!({
            "summary": "Sync", "start": "2026-03-10T09:00:00-04:00", "timeZone": "America/New_York",
            "attendees": ["a@example.com", { "email": "b@example.com", "name": "B", "optional": true }],
            "reminders": { "overrides": [{ "method": "popup", "minutes": 10 }] }, "sendUpdates": "all",
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=TU"],
        });
        act_on(&fake, "create_event", params).unwrap();
        let (_, path, body) = &fake.calls()[0];
        assert_eq!(path, "/calendars/primary/events?sendUpdates=all");
        assert_eq!(body["start"], json!({ "dateTime": "2026-03-10T09:00:00-04:00", "timeZone": "America/New_York" }));
        assert_eq!(body["end"], json!({ "dateTime": "2026-03-10T14:00:00Z", "timeZone": "America/New_York" }));
        assert_eq!(
            body["attendees"],
            json!([{ "email": "a@example.com" }, { "email": "b@example.com", "displayName": "B", "optional": true }])
        );
        assert_eq!(
            body["reminders"],
            json!({ "useDefault": false, "overrides": [{ "method": "popup", "minutes": 10 }] })
        );
        assert!(body.get("conferenceData").is_none());
        let bad = |params: Value| act_on(&fake, "create_event", params).unwrap_err();
        let e = bad(
            json!({ "summary": "x", "start": "2026-03-10T09:00:00Z", "recurrence": ["RRULE:FREQ=DAILY", "RRULE:FREQ=SOMETIMES"] }),
        );
        assert_eq!(
            e,
            invalid("recurrence.1", "RRULE: FREQ value 'SOMETIMES' is not one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY")
        );
        let e = bad(json!({ "summary": "x", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T08:00:00Z" }));
        assert_eq!(e, invalid("end", "Must be after start"));
        let e = bad(json!({ "summary": "x", "start": "2026-03-10", "end": "2026-03-10" }));
        assert!(matches!(e, ServiceError::InvalidField { ref field, .. } if field == "end"));
        let e = bad(json!({ "summary": "x", "start": "2026-03-10", "allDay": false }));
        assert!(matches!(e, ServiceError::InvalidField { ref field, .. } if field == "start"));
        let e = bad(json!({ "summary": "x", "start": "2026-03-10", "timeZone": "Mars/Olympus_Mons" }));
        assert!(matches!(e, ServiceError::InvalidField { ref field, .. } if field == "timeZone"));
        let e =
            bad(json!({ "summary": "x", "start": "2026-03-10", "reminders": { "useDefault": true, "overrides": [] } }));
        assert!(matches!(e, ServiceError::InvalidField { ref field, .. } if field == "reminders.useDefault"));
        assert_eq!(fake.calls().len(), 1, "nothing invalid reached Google");
        // Recurring timed events without a zone get UTC (Google needs one to expand them).
        act_on(
            &fake,
            "create_event",
            json!({ "summary": "x", "start": "2026-03-10T09:00:00Z", "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"] }),
        )
        .unwrap();
        assert_eq!(fake.calls()[1].2["start"]["timeZone"], "UTC");
    }

    #[test]
    fn update_event_patches_only_the_fields_given() {
        let fake = FakeCalendar::new(vec![
            ("GET", "/calendars/primary/events/ev1", 200, timed_event()),
            ("PATCH", "/calendars/primary/events/ev1", 200, timed_event()),
        ]);
        let out = act_on(&fake, "update_event", json!({ "eventId": "ev1", "summary": "Renamed" })).unwrap();
        assert_eq!(out.result["meetingLink"], "https://meet.google.com/abc-defg-hij");
        assert_eq!(
            fake.calls(),
            vec![("PATCH".into(), "/calendars/primary/events/ev1".into(), json!({ "summary": "Renamed" }))]
        );

        // Moving the start keeps the 30-minute length; the kind is replaced whole.
        act_on(&fake, "update_event", json!({ "eventId": "ev1", "start": "2026-03-11T10:00:00-04:00" })).unwrap();
        let calls = fake.calls();
        assert_eq!(calls[1].0, "GET");
        assert_eq!(
            calls[2].2,
            json!({
                "start": { "dateTime": "2026-03-11T10:00:00-04:00", "date": null, "timeZone": "America/New_York" },
                "end": { "dateTime": "2026-03-11T14:30:00Z", "date": null, "timeZone": "America/New_York" },
            })
        );
        // To all day: the event's date in its own zone, one day, the time fields cleared.
        act_on(&fake, "update_event", json!({ "eventId": "ev1", "allDay": true })).unwrap();
        assert_eq!(
            fake.calls()[4].2,
            json!({
                "start": { "date": "2026-03-10", "dateTime": null, "timeZone": "America/New_York" },
                "end": { "date": "2026-03-11", "dateTime": null, "timeZone": "America/New_York" },
            })
        );
        // Attendees given again keep the responses Google has; meet: false drops the conference.
        let params = json!({ "eventId": "ev1", "attendees": ["BOSS@example.com", "new@example.com"], "meet": false });
        act_on(&fake, "update_event", params).unwrap();
        let (_, path, body) = &fake.calls()[6];
        assert_eq!(path, "/calendars/primary/events/ev1?conferenceDataVersion=1");
        assert_eq!(
            body["attendees"][0],
            json!({ "email": "boss@example.com", "organizer": true, "responseStatus": "accepted" })
        );
        assert_eq!(body["attendees"][1], json!({ "email": "new@example.com" }));
        assert_eq!(body["conferenceData"], Value::Null);
        assert!(body.as_object().unwrap().contains_key("conferenceData"));
        let e = act_on(&fake, "update_event", json!({ "eventId": "ev1", "calendarId": "primary" })).unwrap_err();
        assert!(matches!(e, ServiceError::InvalidField { ref field, .. } if field.is_empty()));
    }

    #[test]
    fn respond_changes_only_the_callers_entry() {
        let fake = FakeCalendar::new(vec![
            ("GET", "/calendars/primary/events/ev1", 200, timed_event()),
            ("PATCH", "/calendars/primary/events/ev1", 200, timed_event()),
        ]);
        act_on(&fake, "respond", json!({ "eventId": "ev1", "response": "tentative" })).unwrap();
        let body = &fake.calls()[1].2;
        let mut want = timed_event()["attendees"].clone();
        want[1]["responseStatus"] = json!("tentative");
        assert_eq!(body, &json!({ "attendees": want }));

        // Without a `self` entry the account's address decides.
        let mut e = timed_event();
        e["attendees"][1].as_object_mut().unwrap().remove("self");
        let fake = FakeCalendar::new(vec![
            ("GET", "/users/me/calendarList/primary", 200, json!({ "id": "me@example.com" })),
            ("GET", "/calendars/work/events/ev1", 200, e.clone()),
            ("PATCH", "/calendars/work/events/ev1", 200, e),
        ]);
        act_on(&fake, "respond", json!({ "calendarId": "work", "eventId": "ev1", "response": "declined" })).unwrap();
        assert_eq!(fake.calls()[2].2["attendees"][1]["responseStatus"], "declined");
        assert_eq!(fake.calls()[2].2["attendees"][0]["responseStatus"], "accepted");

        let mut e = timed_event();
        e["attendees"] = json!([{ "email": "other@example.com" }]);
        let fake = FakeCalendar::new(vec![
            ("GET", "/users/me/calendarList/primary", 200, json!({ "id": "me@example.com" })),
            ("GET", "/calendars/primary/events/ev1", 200, e),
        ]);
        let err = act_on(&fake, "respond", json!({ "eventId": "ev1", "response": "accepted" })).unwrap_err();
        assert!(matches!(err, ServiceError::Refused { status: 400, code: "NOT_AN_ATTENDEE", .. }));
        assert!(fake.calls().iter().all(|(m, _, _)| m == "GET"), "nothing was changed");
    }

    #[test]
    fn deleting_an_event_already_gone_counts_as_deleted() {
        for status in [204, 404, 410] {
            let fake = FakeCalendar::new(vec![("DELETE", "/calendars/primary/events/ev1", status, Value::Null)]);
            let out = act_on(&fake, "delete_event", json!({ "eventId": "ev1", "sendUpdates": "none" })).unwrap();
            assert_eq!(out.result, json!({ "deleted": true }));
            assert!(out.items[0].1.deleted);
            assert_eq!(fake.calls()[0].1, "/calendars/primary/events/ev1?sendUpdates=none");
        }
        let fake = FakeCalendar::new(vec![("DELETE", "/calendars/", 500, json!({ "error": { "message": "x" } }))]);
        assert!(act_on(&fake, "delete_event", json!({ "eventId": "ev1" })).unwrap_err().transient());
    }

    #[test]
    fn find_slots_across_the_new_york_spring_forward_with_busy_times_on_two_calendars() {
        // Friday 2026-03-06 to Tuesday 2026-03-10 in New York; DST starts Sunday 03-08.
        let free_busy = json!({ "calendars": {
            "primary": { "busy": [{ "start": "2026-03-09T13:00:00Z", "end": "2026-03-09T14:30:00Z" }] },
            "team": { "busy": [
                { "start": "2026-03-09T14:00:00Z", "end": "2026-03-09T15:00:00Z" },
                { "start": "2026-03-06T20:15:00Z", "end": "2026-03-06T22:00:00Z" },
            ] },
        } });
        let fake = FakeCalendar::new(vec![("POST", "/freeBusy", 200, free_busy)]);
        let params = json!({
            "durationMinutes": 60, "timeMin": "2026-03-06T19:00:00Z", "timeMax": "2026-03-09T17:00:00Z",
            "calendars": ["primary", "team"], "timeZone": "America/New_York", "granularityMinutes": 30,
            "bufferMinutes": 15, "workingHours": { "start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5, 7] },
        });
        let out = act_on(&fake, "find_slots", params).unwrap();
        let (_, _, sent) = &fake.calls()[0];
        assert_eq!(sent["items"], json!([{ "id": "primary" }, { "id": "team" }]));
        assert_eq!(
            (sent["timeMin"].as_str(), sent["timeMax"].as_str()),
            (Some("2026-03-06T18:45:00Z"), Some("2026-03-09T17:15:00Z"))
        );
        let ny = chrono_tz::America::New_York;
        let local: Vec<String> = out.result["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let start = parse_iso(s["start"].as_str().unwrap()).unwrap();
                assert_eq!(parse_iso(s["end"].as_str().unwrap()).unwrap() - start, 3_600_000);
                let t = ny.timestamp_millis_opt(start).unwrap();
                format!("{:02}-{:02} {:02}:{:02}", t.month(), t.day(), t.hour(), t.minute())
            })
            .collect();
        // Friday 14:00–15:00 EST is free (busy from 15:15, the buffer just fits); Saturday is not a
        // working day; Sunday (EDT) 09:00–17:00; Monday the calendars are busy 09:00–11:00 EDT.
        let mut want = vec!["03-06 14:00".to_string()];
        want.extend((0..15).map(|i| format!("03-08 {:02}:{:02}", 9 + i / 2, i % 2 * 30)));
        want.extend(["03-09 11:30", "03-09 12:00"].map(String::from));
        assert_eq!(local, want);
        assert_eq!(out.result["slots"][1]["start"], "2026-03-08T13:00:00Z");
    }

    #[test]
    fn find_slots_refuses_what_it_cannot_answer() {
        let errors = json!({ "calendars": { "primary": { "busy": [] }, "nope": { "errors": [{ "domain": "global", "reason": "notFound" }] } } });
        let fake = FakeCalendar::new(vec![("POST", "/freeBusy", 200, errors)]);
        let base =
            json!({ "durationMinutes": 30, "timeMin": "2026-03-02T00:00:00Z", "timeMax": "2026-03-03T00:00:00Z" });
        let with = |extra: Value| {
            let mut p = base.clone();
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            act_on(&fake, "find_slots", p)
        };
        let field = |r: Result<Outcome, ServiceError>| match r {
            Err(ServiceError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(with(json!({ "calendars": ["primary", "nope"] }))), "calendars.1");
        assert_eq!(field(with(json!({ "timeMax": "2026-05-10T00:00:00Z" }))), "timeMax");
        assert_eq!(field(with(json!({ "timeMax": "2026-03-01T00:00:00Z" }))), "timeMax");
        assert_eq!(field(with(json!({ "timeZone": "Europe/Atlantis" }))), "timeZone");
        assert_eq!(field(with(json!({ "workingHours": { "start": "17:00", "end": "09:00" } }))), "workingHours.end");
        assert_eq!(fake.calls().len(), 1);
        // Defaults: 09:00–17:00 UTC on a Monday, 15-minute grid, 30 minutes: 31 slots.
        let slots = with(json!({})).unwrap().result["slots"].as_array().unwrap().clone();
        assert_eq!(slots.len(), 31);
        assert_eq!(slots[0], json!({ "start": "2026-03-02T09:00:00Z", "end": "2026-03-02T09:30:00Z" }));
        assert_eq!(slots[30]["end"], "2026-03-02T17:00:00Z");
    }

    #[test]
    fn free_busy_answers_each_calendar_in_the_order_asked() {
        let answer = json!({ "calendars": {
            "b@example.com": { "busy": [{ "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:00:00Z" }] },
            "primary": { "busy": [] },
        } });
        let fake = FakeCalendar::new(vec![("POST", "/freeBusy", 200, answer)]);
        let params = json!({ "timeMin": "2026-03-02T00:00:00Z", "timeMax": "2026-03-03T00:00:00Z", "calendars": ["primary", "b@example.com"] });
        let out = act_on(&fake, "free_busy", params).unwrap();
        assert_eq!(
            out.result,
            json!({ "calendars": [
                { "id": "primary", "busy": [] },
                { "id": "b@example.com", "busy": [{ "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:00:00Z" }] },
            ] })
        );
    }

    #[test]
    fn direct_credentials_are_normalised() {
        let creds = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let prepared = |pairs: &[(&str, &str)]| CalendarService.prepare_credentials(creds(pairs), 0);
        for given in ["1767225600", "1767225600000", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"] {
            let out = prepared(&[("access_token", "a"), ("refresh_token", "r"), ("expires_at", given), ("junk", "x")])
                .unwrap();
            assert_eq!(
                out,
                creds(&[("access_token", "a"), ("refresh_token", "r"), ("expires_at", "1767225600")]),
                "{given}"
            );
        }
        assert!(prepared(&[("access_token", "a"), ("expires_at", "tomorrow")]).is_err());
        assert!(prepared(&[("refresh_token", "r")]).is_err());
        assert_eq!(
            OAUTH.scopes,
            ["https://www.googleapis.com/auth/calendar", "https://www.googleapis.com/auth/calendar.events"]
        );
    }

    #[test]
    fn the_account_is_the_primary_calendar() {
        let fake = FakeCalendar::new(vec![(
            "GET",
            "/users/me/calendarList/primary",
            200,
            json!({ "id": "me@example.com", "timeZone": "Europe/Berlin" }),
        )]);
        let account = run(&fake, |c| Box::pin(async move { CalendarService.check(c).await })).unwrap();
        assert_eq!(account, json!({ "email": "me@example.com", "timeZone": "Europe/Berlin" }));
        assert_eq!(fake.seen.borrow()[0].header_value("Authorization"), Some("Bearer ya29.t0k"));
    }
}
