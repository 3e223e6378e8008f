//! Google Calendar (README, "What it does today"): the calendars of the account and the events of every
//! calendar the user selected, synced in full once and then from Google's `nextSyncToken`
//! (a token Google no longer honours, 410, restarts that calendar's pass in full); ten
//! actions, among them `find_slots`, which reads busy times with `freeBusy` and searches the
//! working hours of a time zone (`slots`). Time zones come from the runtime's
//! `Intl.DateTimeFormat` (workerd has the full ICU data), so no tz database is in our Wasm.

pub mod events;
pub mod recurrence;
pub mod slots;
pub mod sync;
pub mod zone;

use serde_json::{json, Map, Value};
use worker::Method;

use crate::integrations::service::{
    string_list, Action, Conn, Credentials, Filter, Item, OAuth, Outcome, Page, PageRequest, Parent, Scopes,
    ServiceError, ServiceImpl,
};
use crate::integrations::services::google::Api;
use crate::time::{iso, parse_iso, Millis};
use events::{
    account, calendar, create_event, delete_event, event_path, events_path, list_calendars, list_events, respond,
    stored, update_event,
};
use slots::{find_free_slots, free_busy};
use sync::{fetch, sync_page};

pub struct CalendarService;

const ENTITIES: [&str; 2] = ["calendars", "events"];
/// Items per list page (Google's maximum for calendarList; events allow 2500, but a page's
/// entities are written in one commit, so smaller pages keep commits small).
const PAGE_SIZE: u32 = 250;
/// `find_slots` reads busy times for at most this many days.
const MAX_SLOT_RANGE_DAYS: i64 = 62;
/// Default length of a timed event created without an `end`.
const DEFAULT_EVENT_MINUTES: i64 = 60;
/// Pages `list_calendars` follows at most (250 calendars each).
const MAX_CALENDAR_PAGES: usize = 8;

/// A Calendar scope's URL (`""`: the full calendar scope).
macro_rules! calendar_scope {
    ($name:literal) => {
        concat!("https://www.googleapis.com/auth/calendar", $name)
    };
}
// What each kind of call needs, narrowest scope first (Google's scope table for each method).
const LIST_CALENDARS: &[&str] = &[
    calendar_scope!(".calendarlist.readonly"),
    calendar_scope!(".calendarlist"),
    calendar_scope!(".readonly"),
    calendar_scope!(""),
];
const READ_EVENTS: &[&str] = &[
    calendar_scope!(".events.readonly"),
    calendar_scope!(".events"),
    calendar_scope!(".readonly"),
    calendar_scope!(""),
];
const WRITE_EVENTS: &[&str] = &[calendar_scope!(".events"), calendar_scope!("")];
const FREE_BUSY: &[&str] = &[
    calendar_scope!(".freebusy"),
    calendar_scope!(".events.freebusy"),
    calendar_scope!(".readonly"),
    calendar_scope!(""),
];

/// `filters.calendars`: the calendar ids whose events are synced (instead of the selected ones).
static FILTERS: [Filter; 1] = [Filter { name: "calendars", check: check_calendars }];

fn check_calendars(v: &Value) -> Result<(), String> {
    string_list(v, 50, 255, |_| true, "calendar ids").map(|_| ())
}

/// The scopes a Calendar action needs.
fn required_scopes(action: &str) -> Scopes {
    match action {
        "list_calendars" => &[LIST_CALENDARS],
        "list_events" | "get_event" => &[READ_EVENTS],
        "create_event" | "update_event" | "delete_event" | "quick_add" | "respond" => &[WRITE_EVENTS],
        "free_busy" | "find_slots" => &[FREE_BUSY],
        _ => &[],
    }
}

static OAUTH: OAuth = crate::integrations::services::google::oauth(&[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
]);

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

fn unreadable(what: &str) -> ServiceError {
    ServiceError::Transport(format!("Google Calendar answered an unreadable {what}"))
}

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

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
        "find_slots" => find_free_slots(c, p).await,
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

impl ServiceImpl for CalendarService {
    fn name(&self) -> &'static str {
        "google_calendar"
    }

    fn entities(&self) -> &'static [&'static str] {
        &ENTITIES
    }

    fn parent(&self, entity: &str) -> Option<Parent> {
        (entity == "events").then_some(Parent {
            entity: "calendars",
            key: "$.id",
            only_if: Some("$.selected"),
            filter: Some("calendars"),
        })
    }

    fn actions(&self) -> &'static [Action] {
        &ACTIONS
    }

    fn filters(&self) -> &'static [Filter] {
        &FILTERS
    }

    fn required_scopes(&self, action: &str) -> Scopes {
        required_scopes(action)
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

    async fn check(&self, c: &Conn<'_>) -> Result<Value, ServiceError> {
        account(c).await
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
        (entity == "events").then_some("create_event")
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::events::*;
    #[allow(unused_imports)]
    use super::recurrence::*;
    #[allow(unused_imports)]
    use super::slots::*;
    #[allow(unused_imports)]
    use super::sync::*;
    #[allow(unused_imports)]
    use super::zone::*;
    use super::*;
    use crate::integrations::service::Fixed;
    use crate::outbound::{Call, Http, OutboundError, Upstream};
    use chrono::{Datelike, TimeZone, Timelike};
    use futures::future::LocalBoxFuture;
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
                let req = PageRequest {
                    entity,
                    parent,
                    cursor: None,
                    since: since.as_deref(),
                    max_requests: 10,
                    filters: None,
                };
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
    fn one_event_on_two_calendars_is_two_entities() {
        let e = serde_json::json!({ "id": "ev1", "updated": "2026-01-01T00:00:00Z", "summary": "Standup", "status": "confirmed",
            "start": { "dateTime": "2026-01-02T09:00:00Z" }, "end": { "dateTime": "2026-01-02T09:15:00Z" } });
        let mine = event_item("me@example.com", &e);
        let shared = event_item("team@group.calendar.google.com", &e);
        assert_eq!(mine.external_id, "me@example.com/ev1");
        assert_eq!(shared.external_id, "team@group.calendar.google.com/ev1");
        assert_eq!((mine.parent.as_str(), mine.data["id"].as_str()), ("me@example.com", Some("ev1")));
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
        assert_eq!(
            (p.items[0].external_id.as_str(), p.items[0].parent.as_str()),
            ("me@example.com/ev1", "me@example.com")
        );
        assert_eq!(p.items[0].modified_at, "2026-01-02T00:00:00.000Z");
        assert!(p.items[1].deleted && p.items[1].external_id == "me@example.com/gone1");
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
        // (The fake's answer names no organizer, so the calendar stays as it was asked for.)
        assert_eq!(out.items[0].1.external_id, "primary/new1");
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
            let fake = FakeCalendar::new(vec![
                ("DELETE", "/calendars/primary/events/ev1", status, Value::Null),
                ("GET", "/users/me/calendarList/primary", 200, json!({ "id": "me@example.com" })),
            ]);
            let out = act_on(&fake, "delete_event", json!({ "eventId": "ev1", "sendUpdates": "none" })).unwrap();
            assert_eq!(out.result, json!({ "deleted": true }));
            // Marked deleted under the primary calendar's real id, as syncs store it.
            assert!(out.items[0].1.deleted && out.items[0].1.external_id == "me@example.com/ev1");
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

#[cfg(test)]
mod logic_tests {
    #[allow(unused_imports)]
    use super::events::*;
    #[allow(unused_imports)]
    use super::recurrence::*;
    #[allow(unused_imports)]
    use super::slots::*;
    #[allow(unused_imports)]
    use super::sync::*;
    #[allow(unused_imports)]
    use super::zone::*;

    fn err(line: &str) -> String {
        validate_recurrence_line(line).expect_err(line)
    }

    #[test]
    fn valid_recurrence_lines() {
        for line in [
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
            "rrule:freq=monthly;byday=-1fr;count=3",
            "RRULE:FREQ=MONTHLY;BYDAY=+2TU,53SU,-53MO",
            "RRULE:FREQ=YEARLY;BYWEEKNO=20,-1,+53;BYDAY=MO",
            "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29,-1;UNTIL=20280229",
            "RRULE:FREQ=DAILY;UNTIL=20261231T235959Z;INTERVAL=2;BYHOUR=0,23;BYMINUTE=0,59;BYSECOND=0,60",
            "RRULE:FREQ=DAILY;UNTIL=20261231T235959",
            "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1,366",
            "RRULE:FREQ=YEARLY;BYYEARDAY=1,-366,+100",
            "RRULE:FREQ=HOURLY;BYYEARDAY=1",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=31,-31",
            "RRULE:FREQ=WEEKLY;WKST=su;BYDAY=TU,TH;COUNT=10",
            "RRULE:FREQ=SECONDLY",
            "RRULE:FREQ=MINUTELY;INTERVAL=15",
            "  RRULE:FREQ=DAILY\r\n",
            "EXRULE:FREQ=WEEKLY;COUNT=4",
            "EXDATE;TZID=Europe/Berlin:20260105T090000",
            "EXDATE;TZID=\"America/New_York\":20260105T090000,20260112T090000",
            "exdate;tzid=America/Argentina/Buenos_Aires;value=date-time:20260105t090000",
            "RDATE;VALUE=DATE:20260110,20260111,20240229",
            "EXDATE;VALUE=DATE:20260110",
            "EXDATE:20260105T090000Z",
            "RDATE:20261231T235960Z",
            "RDATE;VALUE=PERIOD:20260105T090000Z/20260105T100000Z,20260106T090000Z/PT1H30M",
            "RDATE;VALUE=PERIOD;TZID=Europe/Berlin:20260105T090000/P1DT2H",
            "RDATE;VALUE=PERIOD:20260105T090000Z/P2W",
            "RDATE;VALUE=PERIOD:20260105T090000Z/+PT15M",
            "RDATE;VALUE=PERIOD:20260105T090000Z/PT1M30S",
            "RDATE;VALUE=PERIOD:20260105T090000/PT1H0M0S",
        ] {
            assert_eq!(validate_recurrence_line(line), Ok(()), "{line}");
        }
    }

    #[test]
    fn invalid_rule_structure() {
        for (line, msg) in [
            ("", "empty recurrence line"),
            ("FOO:BAR", "unknown property 'FOO' (expected RRULE, EXRULE, RDATE or EXDATE)"),
            (":FREQ=DAILY", "unknown property '' (expected RRULE, EXRULE, RDATE or EXDATE)"),
            ("RRULE", "RRULE: expected ':' right after the property name"),
            ("RRULE;X-A=1:FREQ=DAILY", "RRULE: expected ':' right after the property name"),
            ("RRULE:", "RRULE: FREQ is required"),
            ("RRULE:COUNT=5", "RRULE: FREQ is required"),
            ("RRULE:FREQ=DAILY;", "RRULE: empty part (stray ';')"),
            ("RRULE:FREQ=DAILY;;COUNT=1", "RRULE: empty part (stray ';')"),
            ("RRULE:FREQ=DAILY;COUNT", "RRULE: part 'COUNT' is not NAME=VALUE"),
            ("RRULE:FREQ=DAILY;FREQ=WEEKLY", "RRULE: FREQ is given more than once"),
            ("RRULE:FREQ=DAILY;BYHOUR=1;byhour=2", "RRULE: BYHOUR is given more than once"),
            ("RRULE:FREQ=DAILY;FOO=1", "RRULE: unknown part 'FOO'"),
            ("RRULE:FREQ=DAILY;COUNT=", "RRULE: COUNT has no value"),
            (
                "RRULE:FREQ=FORTNIGHTLY",
                "RRULE: FREQ value 'FORTNIGHTLY' is not one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY",
            ),
            ("EXRULE:FREQ=DAILY;COUNT=0", "EXRULE: COUNT value '0' is not a positive integer"),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
    }

    #[test]
    fn invalid_rule_values() {
        for (line, msg) in [
            ("RRULE:FREQ=DAILY;COUNT=0", "RRULE: COUNT value '0' is not a positive integer"),
            ("RRULE:FREQ=DAILY;COUNT=-1", "RRULE: COUNT value '-1' is not a positive integer"),
            ("RRULE:FREQ=DAILY;COUNT=+1", "RRULE: COUNT value '+1' is not a positive integer"),
            ("RRULE:FREQ=DAILY;COUNT=x", "RRULE: COUNT value 'x' is not a positive integer"),
            ("RRULE:FREQ=DAILY;INTERVAL=0", "RRULE: INTERVAL value '0' is not a positive integer"),
            ("RRULE:FREQ=DAILY;BYSECOND=61", "RRULE: BYSECOND value '61' is not an integer from 0 to 60"),
            ("RRULE:FREQ=DAILY;BYMINUTE=60", "RRULE: BYMINUTE value '60' is not an integer from 0 to 59"),
            ("RRULE:FREQ=DAILY;BYHOUR=24", "RRULE: BYHOUR value '24' is not an integer from 0 to 23"),
            ("RRULE:FREQ=DAILY;BYHOUR=-1", "RRULE: BYHOUR value '-1' is not an integer from 0 to 23"),
            ("RRULE:FREQ=DAILY;BYHOUR=+1", "RRULE: BYHOUR value '+1' is not an integer from 0 to 23"),
            ("RRULE:FREQ=DAILY;BYHOUR=1,,2", "RRULE: BYHOUR value '' is not an integer from 0 to 23"),
            ("RRULE:FREQ=DAILY;BYHOUR=1a", "RRULE: BYHOUR value '1a' is not an integer from 0 to 23"),
            ("RRULE:FREQ=DAILY;BYMONTH=0", "RRULE: BYMONTH value '0' is not an integer from 1 to 12"),
            ("RRULE:FREQ=DAILY;BYMONTH=13", "RRULE: BYMONTH value '13' is not an integer from 1 to 12"),
            (
                "RRULE:FREQ=DAILY;BYMONTHDAY=0",
                "RRULE: BYMONTHDAY value '0' is not an integer from 1 to 31 or -31 to -1",
            ),
            (
                "RRULE:FREQ=DAILY;BYMONTHDAY=-32",
                "RRULE: BYMONTHDAY value '-32' is not an integer from 1 to 31 or -31 to -1",
            ),
            (
                "RRULE:FREQ=YEARLY;BYYEARDAY=367",
                "RRULE: BYYEARDAY value '367' is not an integer from 1 to 366 or -366 to -1",
            ),
            ("RRULE:FREQ=YEARLY;BYWEEKNO=54", "RRULE: BYWEEKNO value '54' is not an integer from 1 to 53 or -53 to -1"),
            (
                "RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0",
                "RRULE: BYSETPOS value '0' is not an integer from 1 to 366 or -366 to -1",
            ),
            ("RRULE:FREQ=WEEKLY;BYDAY=XX", "RRULE: BYDAY value 'XX' is not a weekday"),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO,,TU", "RRULE: BYDAY value '' is not a weekday"),
            ("RRULE:FREQ=MONTHLY;BYDAY=1XX", "RRULE: BYDAY value '1XX' is not a weekday"),
            ("RRULE:FREQ=MONTHLY;BYDAY=+MO", "RRULE: BYDAY value '+MO' is not a weekday"),
            ("RRULE:FREQ=MONTHLY;BYDAY=1éO", "RRULE: BYDAY value '1éO' is not a weekday"),
            ("RRULE:FREQ=MONTHLY;BYDAY=54MO", "RRULE: BYDAY value '54MO' has an ordinal outside 1 to 53 or -53 to -1"),
            ("RRULE:FREQ=MONTHLY;BYDAY=0MO", "RRULE: BYDAY value '0MO' has an ordinal outside 1 to 53 or -53 to -1"),
            ("RRULE:FREQ=WEEKLY;WKST=XX", "RRULE: WKST value 'XX' is not a weekday"),
            (
                "RRULE:FREQ=DAILY;UNTIL=2026",
                "RRULE: UNTIL value '2026' is not a DATE (YYYYMMDD) or DATE-TIME (YYYYMMDDTHHMMSS[Z])",
            ),
            (
                "RRULE:FREQ=DAILY;UNTIL=2026-01-05",
                "RRULE: UNTIL value '2026-01-05' is not a DATE (YYYYMMDD) or DATE-TIME (YYYYMMDDTHHMMSS[Z])",
            ),
            ("RRULE:FREQ=DAILY;UNTIL=20260230", "RRULE: UNTIL value '20260230' is not a real calendar date"),
            (
                "RRULE:FREQ=DAILY;UNTIL=20270229T000000Z",
                "RRULE: UNTIL value '20270229T000000Z' is not a real calendar date",
            ),
            ("RRULE:FREQ=DAILY;UNTIL=21001301", "RRULE: UNTIL value '21001301' is not a real calendar date"),
            (
                "RRULE:FREQ=DAILY;UNTIL=20260101T240000Z",
                "RRULE: UNTIL value '20260101T240000Z' is not a valid time of day",
            ),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
    }

    #[test]
    fn invalid_rule_combinations() {
        for (line, msg) in [
            ("RRULE:FREQ=DAILY;COUNT=3;UNTIL=20261231", "RRULE: COUNT and UNTIL cannot both be given"),
            ("RRULE:FREQ=MONTHLY;BYWEEKNO=1", "RRULE: BYWEEKNO is only allowed with FREQ=YEARLY"),
            ("RRULE:FREQ=DAILY;BYYEARDAY=1", "RRULE: BYYEARDAY is not allowed with FREQ=DAILY"),
            ("RRULE:FREQ=WEEKLY;BYYEARDAY=1", "RRULE: BYYEARDAY is not allowed with FREQ=WEEKLY"),
            ("RRULE:FREQ=MONTHLY;BYYEARDAY=1", "RRULE: BYYEARDAY is not allowed with FREQ=MONTHLY"),
            ("RRULE:FREQ=WEEKLY;BYMONTHDAY=1", "RRULE: BYMONTHDAY is not allowed with FREQ=WEEKLY"),
            (
                "RRULE:FREQ=WEEKLY;BYDAY=1MO",
                "RRULE: BYDAY value '1MO' has an ordinal, which needs FREQ=MONTHLY or YEARLY",
            ),
            (
                "RRULE:FREQ=DAILY;BYDAY=MO,-1FR",
                "RRULE: BYDAY value '-1FR' has an ordinal, which needs FREQ=MONTHLY or YEARLY",
            ),
            (
                "RRULE:FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO",
                "RRULE: BYDAY value '1MO' has an ordinal, which cannot be combined with BYWEEKNO",
            ),
            ("RRULE:FREQ=DAILY;BYSETPOS=1", "RRULE: BYSETPOS requires another BYxxx part"),
            ("RRULE:FREQ=DAILY;BYSETPOS=1;COUNT=2;WKST=MO", "RRULE: BYSETPOS requires another BYxxx part"),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
    }

    #[test]
    fn invalid_date_lists() {
        for (line, msg) in [
            ("EXDATE:2026-01-05", "EXDATE: '2026-01-05' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])"),
            ("EXDATE:20260105", "EXDATE: '20260105' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z]); use VALUE=DATE for dates"),
            ("EXDATE:20260105T0900", "EXDATE: '20260105T0900' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])"),
            ("EXDATE:20260105T090000Z,", "EXDATE: '' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])"),
            ("EXDATE:20261305T090000", "EXDATE: '20261305T090000' is not a real calendar date"),
            ("EXDATE:20260105T096000", "EXDATE: '20260105T096000' is not a valid time of day"),
            ("EXDATE;VALUE=DATE:20260105T090000", "EXDATE: '20260105T090000' is not a DATE (YYYYMMDD)"),
            ("RDATE;VALUE=DATE:20260230", "RDATE: '20260230' is not a real calendar date"),
            (
                "EXDATE;TZID=Europe/Berlin:20260105T090000Z",
                "EXDATE: '20260105T090000Z' is in UTC (ends in Z) but TZID is given",
            ),
            ("EXDATE;VALUE=PERIOD:20260105T090000Z/PT1H", "EXDATE: VALUE=PERIOD is only allowed in RDATE"),
            ("RDATE;VALUE=TEXT:x", "RDATE: VALUE 'TEXT' is not DATE, DATE-TIME or PERIOD"),
            ("RDATE;FOO=bar:20260105T090000Z", "RDATE: unknown parameter 'FOO' (expected TZID or VALUE)"),
            ("RDATE;TZID=:20260105T090000", "RDATE: TZID is empty"),
            ("RDATE;TZID=A;tzid=B:20260105T090000", "RDATE: TZID is given more than once"),
            ("RDATE;VALUE=DATE;VALUE=DATE:20260105", "RDATE: VALUE is given more than once"),
            ("RDATE;TZID:20260105T090000", "RDATE: parameter 'TZID' has no value"),
            ("RDATE;TZID=\"Europe/Berlin:20260105T090000", "RDATE: parameter 'TZID' has an unterminated quote"),
            ("RDATE;TZID=\"Europe/Berlin\"x:20260105T090000", "RDATE: expected ':' before the values"),
            ("RDATE", "RDATE: expected ':' before the values"),
            ("RDATE:", "RDATE: no values after ':'"),
            ("RDATE;TZID=Europe/Berlin;VALUE=DATE:20260105", "RDATE: TZID cannot be used with VALUE=DATE"),
            (
                "RDATE;VALUE=PERIOD:20260105T090000Z",
                "RDATE: '20260105T090000Z' is not a PERIOD (start/end or start/duration)",
            ),
            (
                "RDATE;VALUE=PERIOD:20260105T090000Z/20260105T080000Z",
                "RDATE: '20260105T090000Z/20260105T080000Z' does not end after it starts",
            ),
            (
                "RDATE;VALUE=PERIOD:20260105T090000/20260105T090000",
                "RDATE: '20260105T090000/20260105T090000' does not end after it starts",
            ),
            ("RDATE;VALUE=PERIOD:2026-01-05/PT1H", "RDATE: '2026-01-05' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])"),
            ("RDATE;VALUE=PERIOD:20260105T090000Z/2026", "RDATE: '2026' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])"),
            (
                "RDATE;VALUE=PERIOD;TZID=Europe/Berlin:20260105T090000/20260105T100000Z",
                "RDATE: '20260105T100000Z' is in UTC (ends in Z) but TZID is given",
            ),
        ] {
            assert_eq!(err(line), msg, "{line}");
        }
        for duration in ["PT0S", "P0D", "-PT1H", "P", "PT", "P1DT", "P1H", "PT1S1H", "PT1H1S", "PT1HM", "P1W2D", "PTx"]
        {
            let line = format!("RDATE;VALUE=PERIOD:20260105T090000Z/{duration}");
            assert_eq!(err(&line), format!("RDATE: '{duration}' is not a positive duration (e.g. PT1H30M)"), "{line}");
        }
    }

    #[test]
    fn recurrence_arrays() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(validate_recurrence(&[]), Ok(()));
        let ok = lines(&[
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
            "EXDATE;TZID=Europe/Berlin:20260105T090000",
            "RDATE;VALUE=DATE:20260110,20260111",
            "EXRULE:FREQ=MONTHLY;BYMONTHDAY=1",
            "EXRULE:FREQ=MONTHLY;BYMONTHDAY=2",
        ]);
        assert_eq!(validate_recurrence(&ok), Ok(()));
        let two = lines(&["RRULE:FREQ=DAILY", "EXDATE:20260105T090000Z", "rrule:FREQ=WEEKLY"]);
        assert_eq!(validate_recurrence(&two), Err((2, "only one RRULE is allowed per event".into())));
        let bad = lines(&["RRULE:FREQ=DAILY", "EXDATE:x", "FOO"]);
        assert_eq!(validate_recurrence(&bad), Err((1, "EXDATE: 'x' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])".into())));
    }

    /// UTC ms of a wall-clock time read as UTC.
    fn at(year: i32, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        (days_from_civil(year, month, day) * 1440 + hour * 60 + minute) * MINUTE_MS
    }

    /// Slot starts as (day of month, hour, minute) of the given offset, for readable assertions.
    fn starts(slots: &[(i64, i64)], offset_min: i64, duration_min: i64) -> Vec<(i64, i64, i64)> {
        slots
            .iter()
            .map(|&(s, e)| {
                assert_eq!(e - s, duration_min * MINUTE_MS);
                let local = (s + offset_min * MINUTE_MS) / MINUTE_MS;
                let day = local.div_euclid(1440) - days_from_civil(2026, 1, 1) + 1; // day of January 2026
                (day, local.rem_euclid(1440) / 60, local % 60)
            })
            .collect()
    }

    fn query(time_min: i64, time_max: i64, duration: u32, granularity: u32) -> SlotQuery {
        SlotQuery { granularity_min: granularity, ..SlotQuery::new(time_min, time_max, duration) }
    }

    #[test]
    fn civil_days_and_fixed_zones() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2026, 1, 5) * DAY_MS, 1_767_571_200_000);
        let utc = FixedZone(0);
        assert_eq!(local_to_utc(&utc, 2026, 1, 5, 540), at(2026, 1, 5, 9, 0));
        assert_eq!(local_to_utc(&utc, 2026, 1, 5, 1440), at(2026, 1, 6, 0, 0));
        assert_eq!(local_to_utc(&FixedZone(330), 2026, 1, 5, 540), at(2026, 1, 5, 3, 30));
        assert_eq!(local_to_utc(&FixedZone(-300), 2026, 1, 5, 0), at(2026, 1, 5, 5, 0));
    }

    #[test]
    fn merge_busy_sorts_and_merges() {
        let b = |s, e| Busy { start: s, end: e };
        let mut busy = vec![b(50, 60), b(10, 20), b(15, 30), b(30, 35), b(12, 14), b(40, 40), b(45, 44), b(36, 37)];
        merge_busy(&mut busy);
        assert_eq!(busy, vec![b(10, 35), b(36, 37), b(50, 60)]);
        let mut empty = vec![];
        merge_busy(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn slots_basic_busy_and_buffer() {
        // Monday 2026-01-05, UTC.
        let q = query(at(2026, 1, 5, 9, 0), at(2026, 1, 5, 11, 0), 30, 30);
        let zone = FixedZone(0);
        assert_eq!(starts(&find_slots(&q, &zone, &[]), 0, 30), [(5, 9, 0), (5, 9, 30), (5, 10, 0), (5, 10, 30)]);
        let busy = [Busy { start: at(2026, 1, 5, 9, 30), end: at(2026, 1, 5, 10, 0) }];
        assert_eq!(starts(&find_slots(&q, &zone, &busy), 0, 30), [(5, 9, 0), (5, 10, 0), (5, 10, 30)]);
        let buffered = SlotQuery { buffer_min: 15, ..q.clone() };
        assert_eq!(starts(&find_slots(&buffered, &zone, &busy), 0, 30), [(5, 10, 30)]);
        // A buffer exactly reaching the busy interval is fine (half-open intervals).
        let buffered = SlotQuery { buffer_min: 30, ..q };
        assert_eq!(starts(&find_slots(&buffered, &zone, &busy), 0, 30), [(5, 10, 30)]);
    }

    #[test]
    fn slots_with_overlapping_busy_from_several_calendars() {
        let q = query(at(2026, 1, 5, 9, 0), at(2026, 1, 5, 13, 0), 30, 15);
        let busy = [
            Busy { start: at(2026, 1, 5, 9, 15), end: at(2026, 1, 5, 10, 0) }, // calendar B
            Busy { start: at(2026, 1, 5, 12, 0), end: at(2026, 1, 5, 12, 30) }, // calendar A
            Busy { start: at(2026, 1, 5, 9, 0), end: at(2026, 1, 5, 9, 30) },  // calendar A
            Busy { start: at(2026, 1, 5, 10, 0), end: at(2026, 1, 5, 10, 15) }, // calendar C, adjacent
        ];
        assert_eq!(
            starts(&find_slots(&q, &FixedZone(0), &busy), 0, 30),
            [(5, 10, 15), (5, 10, 30), (5, 10, 45), (5, 11, 0), (5, 11, 15), (5, 11, 30), (5, 12, 30)]
        );
    }

    #[test]
    fn slots_off_grid_time_min_and_overlapping_slots() {
        let zone = FixedZone(0);
        let q = query(at(2026, 1, 5, 9, 7), at(2026, 1, 5, 10, 0), 30, 15);
        assert_eq!(starts(&find_slots(&q, &zone, &[]), 0, 30), [(5, 9, 15), (5, 9, 30)]);
        let q = query(at(2026, 1, 5, 9, 0), at(2026, 1, 5, 11, 0), 45, 30);
        assert_eq!(starts(&find_slots(&q, &zone, &[]), 0, 45), [(5, 9, 0), (5, 9, 30), (5, 10, 0)]);
        // Granularity 0 falls back to the default 15.
        let q = query(at(2026, 1, 5, 9, 0), at(2026, 1, 5, 9, 40), 10, 0);
        assert_eq!(starts(&find_slots(&q, &zone, &[]), 0, 10), [(5, 9, 0), (5, 9, 15), (5, 9, 30)]);
    }

    #[test]
    fn slots_weekdays_weekends_and_max() {
        let zone = FixedZone(0);
        // Friday 2026-01-09 16:00 to Monday 2026-01-12 10:00.
        let q = query(at(2026, 1, 9, 16, 0), at(2026, 1, 12, 10, 0), 60, 60);
        assert_eq!(starts(&find_slots(&q, &zone, &[]), 0, 60), [(9, 16, 0), (12, 9, 0)]);
        let weekend = SlotQuery { days: vec![6, 7], ..q.clone() };
        let all: Vec<_> = (10..=11).flat_map(|d| (9..17).map(move |h| (d, h, 0))).collect();
        assert_eq!(starts(&find_slots(&weekend, &zone, &[]), 0, 60), all);
        let cut = SlotQuery { max_slots: 10, ..weekend };
        assert_eq!(starts(&find_slots(&cut, &zone, &[]), 0, 60), all[..10]);
        assert_eq!(find_slots(&q, &zone, &[]).len(), 2);
    }

    #[test]
    fn slots_until_midnight() {
        let zone = FixedZone(0);
        let late = SlotQuery {
            work_start_min: 1320,
            work_end_min: 1440,
            days: (1..=7).collect(),
            ..query(at(2026, 1, 5, 0, 0), at(2026, 1, 7, 0, 0), 60, 60)
        };
        assert_eq!(starts(&find_slots(&late, &zone, &[]), 0, 60), [(5, 22, 0), (5, 23, 0), (6, 22, 0), (6, 23, 0)]);
        // A whole-day window: no slot crosses midnight, since it would span two windows.
        let whole = SlotQuery {
            work_start_min: 0,
            duration_min: 120,
            ..query(at(2026, 1, 5, 20, 0), at(2026, 1, 6, 3, 0), 0, 60)
        };
        let whole = SlotQuery { days: late.days, work_end_min: 1440, ..whole };
        assert_eq!(
            starts(&find_slots(&whole, &zone, &[]), 0, 120),
            [(5, 20, 0), (5, 21, 0), (5, 22, 0), (6, 0, 0), (6, 1, 0)]
        );
    }

    #[test]
    fn slots_in_offset_zones_use_the_local_grid_and_weekday() {
        // India (+05:30): local 09:00..12:00 is 03:30Z..06:30Z, hourly local grid.
        let q = query(at(2026, 1, 5, 0, 0), at(2026, 1, 5, 6, 30), 60, 60);
        let slots = find_slots(&q, &FixedZone(330), &[]);
        assert_eq!(starts(&slots, 0, 60), [(5, 3, 30), (5, 4, 30), (5, 5, 30)]);
        // Nepal (+05:45): a 15-minute local grid is :00/:15/:30/:45 local.
        let q = query(at(2026, 1, 5, 3, 20), at(2026, 1, 5, 4, 15), 30, 15);
        let slots = find_slots(&q, &FixedZone(345), &[]);
        assert_eq!(starts(&slots, 345, 30), [(5, 9, 15), (5, 9, 30)]);
        // UTC-5: Tuesday 00:00Z..05:00Z is still Monday locally.
        let monday = SlotQuery {
            days: vec![1],
            work_start_min: 0,
            work_end_min: 1440,
            ..query(at(2026, 1, 6, 0, 0), at(2026, 1, 6, 5, 0), 60, 60)
        };
        let slots = find_slots(&monday, &FixedZone(-300), &[]);
        assert_eq!(starts(&slots, -300, 60), [(5, 19, 0), (5, 20, 0), (5, 21, 0), (5, 22, 0), (5, 23, 0)]);
        assert!(find_slots(&SlotQuery { days: vec![2], ..monday }, &FixedZone(-300), &[]).is_empty());
    }

    #[test]
    fn slots_empty_results() {
        let zone = FixedZone(0);
        let q = query(at(2026, 1, 5, 0, 0), at(2026, 1, 10, 0, 0), 30, 15);
        assert_eq!(find_slots(&q, &zone, &[]).len(), 50); // default max_slots
        let none = |q: SlotQuery, busy: &[Busy]| assert_eq!(find_slots(&q, &zone, busy), []);
        none(SlotQuery { duration_min: 481, ..q.clone() }, &[]);
        none(SlotQuery { duration_min: 0, ..q.clone() }, &[]);
        none(SlotQuery { days: vec![], ..q.clone() }, &[]);
        none(SlotQuery { days: vec![6, 7], ..q.clone() }, &[]); // Mon..Fri range
        none(SlotQuery { max_slots: 0, ..q.clone() }, &[]);
        none(SlotQuery { work_start_min: 1020, work_end_min: 540, ..q.clone() }, &[]);
        none(SlotQuery { time_max: q.time_min, ..q.clone() }, &[]);
        none(q.clone(), &[Busy { start: q.time_min, end: q.time_max }]);
    }
}

/// `local_to_utc` and `find_slots` against real zones, with chrono-tz as the oracle (test-only:
/// chrono and chrono-tz are dev-dependencies and never reach the Worker).
#[cfg(test)]
mod zones {
    #[allow(unused_imports)]
    use super::events::*;
    #[allow(unused_imports)]
    use super::recurrence::*;
    #[allow(unused_imports)]
    use super::slots::*;
    #[allow(unused_imports)]
    use super::sync::*;
    #[allow(unused_imports)]
    use super::zone::*;
    use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
    use chrono_tz::Tz;
    use std::cell::Cell;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    /// A `Zone` backed by chrono-tz that counts its `offset_at` calls.
    struct TzZone(Tz, Cell<usize>);

    impl TzZone {
        fn new(name: &str) -> Self {
            TzZone(name.parse().unwrap(), Cell::new(0))
        }
        fn calls(&self) -> usize {
            self.1.replace(0)
        }
    }

    impl Zone for TzZone {
        fn offset_at(&self, utc_ms: i64) -> i32 {
            self.1.set(self.1.get() + 1);
            let utc = DateTime::from_timestamp_millis(utc_ms).unwrap().naive_utc();
            self.0.offset_from_utc_datetime(&utc).fix().local_minus_utc() / 60
        }
    }

    fn naive(y: i32, m: u32, d: u32, minute: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap() + Duration::minutes(minute.into())
    }

    /// The oracle: chrono's own answer, with a gap resolved by shifting forward by the gap's length.
    fn oracle_local_to_utc(tz: Tz, y: i32, m: u32, d: u32, minute: u32) -> i64 {
        let wall = naive(y, m, d, minute);
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.timestamp_millis(),
            LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
            LocalResult::None => {
                let first_valid = (1..)
                    .find_map(|k| tz.from_local_datetime(&(wall + Duration::minutes(k))).earliest())
                    .unwrap()
                    .timestamp_millis();
                let offset = |ms| i64::from(TzZone(tz, Cell::new(0)).offset_at(ms));
                let gap = offset(first_valid) - offset(first_valid - MIN);
                tz.from_local_datetime(&(wall + Duration::minutes(gap))).single().unwrap().timestamp_millis()
            }
        }
    }

    /// UTC ms of a UTC wall-clock time.
    fn utc(y: i32, m: u32, d: u32, h: i64, mi: i64) -> i64 {
        (days_from_civil(y, m, d) * 1440 + h * 60 + mi) * MIN
    }

    const ZONES: [&str; 10] = [
        "America/New_York",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Lord_Howe", // 30-minute DST
        "America/Santiago",    // changes at midnight
        "America/St_Johns",    // -03:30
        "Pacific/Chatham",     // +12:45
        "Pacific/Apia",        // +13, no DST since 2021
        "UTC",
    ];

    #[test]
    fn local_to_utc_known_transitions() {
        let ny = TzZone::new("America/New_York");
        let cases = [
            // Spring forward 2026-03-08 02:00 EST -> 03:00 EDT: the gap shifts forward by an hour.
            (&ny, (2026, 3, 8, 119), utc(2026, 3, 8, 6, 59)),
            (&ny, (2026, 3, 8, 120), utc(2026, 3, 8, 7, 0)),
            (&ny, (2026, 3, 8, 150), utc(2026, 3, 8, 7, 30)),
            (&ny, (2026, 3, 8, 180), utc(2026, 3, 8, 7, 0)),
            (&ny, (2026, 3, 8, 210), utc(2026, 3, 8, 7, 30)),
            // Fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:xx is ambiguous, the earlier (EDT) wins.
            (&ny, (2026, 11, 1, 59), utc(2026, 11, 1, 4, 59)),
            (&ny, (2026, 11, 1, 90), utc(2026, 11, 1, 5, 30)),
            (&ny, (2026, 11, 1, 120), utc(2026, 11, 1, 7, 0)),
            (&ny, (2026, 11, 1, 1440), utc(2026, 11, 2, 5, 0)),
        ];
        for (zone, (y, m, d, minute), want) in cases {
            assert_eq!(local_to_utc(zone, y, m, d, minute), want, "{y}-{m}-{d} {minute}");
        }
        let berlin = TzZone::new("Europe/Berlin");
        assert_eq!(local_to_utc(&berlin, 2026, 3, 29, 150), utc(2026, 3, 29, 1, 30)); // 03:30 CEST
        assert_eq!(local_to_utc(&berlin, 2026, 10, 25, 150), utc(2026, 10, 25, 0, 30)); // 02:30 CEST
        assert_eq!(local_to_utc(&berlin, 2026, 7, 1, 540), utc(2026, 7, 1, 7, 0));
        assert_eq!(local_to_utc(&TzZone::new("Asia/Kolkata"), 2026, 1, 5, 540), utc(2026, 1, 5, 3, 30));
        assert_eq!(local_to_utc(&TzZone::new("Asia/Kathmandu"), 2026, 1, 5, 540), utc(2026, 1, 5, 3, 15));
        // Lord Howe 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:15 becomes 02:45.
        let lord_howe = TzZone::new("Australia/Lord_Howe");
        assert_eq!(local_to_utc(&lord_howe, 2026, 10, 4, 135), utc(2026, 10, 3, 15, 45));
    }

    #[test]
    fn local_to_utc_matches_chrono_all_year() {
        for name in ZONES {
            let zone = TzZone::new(name);
            for day in days_from_civil(2026, 1, 1)..days_from_civil(2027, 1, 1) {
                let date = DateTime::from_timestamp_millis(day * DAY).unwrap().date_naive();
                let (y, m, d) = (date.year(), date.month(), date.day());
                for minute in (0..=1440).step_by(15) {
                    zone.calls();
                    let got = local_to_utc(&zone, y, m, d, minute);
                    assert!(zone.calls() <= 4, "{name} {date} {minute}");
                    assert_eq!(got, oracle_local_to_utc(zone.0, y, m, d, minute), "{name} {date} {minute}");
                }
            }
        }
    }

    /// A brute-force reading of the `find_slots` rules, minute by minute through chrono.
    fn oracle_slots(q: &SlotQuery, tz: Tz, busy: &[Busy]) -> Vec<(i64, i64)> {
        let (duration, buffer) = (i64::from(q.duration_min) * MIN, i64::from(q.buffer_min) * MIN);
        let granularity = if q.granularity_min == 0 { 15 } else { q.granularity_min };
        let mut slots = vec![];
        let mut start = q.time_min.div_euclid(MIN) * MIN;
        start += if start < q.time_min { MIN } else { 0 };
        while start + duration <= q.time_max && q.duration_min > 0 {
            let local = tz.timestamp_millis_opt(start).unwrap().naive_local();
            let date = local.date();
            let (y, m, d) = (date.year(), date.month(), date.day());
            let on_grid = (local.hour() * 60 + local.minute()).is_multiple_of(granularity);
            let weekday = date.weekday().number_from_monday() as u8;
            if on_grid && q.days.contains(&weekday) && q.work_start_min < q.work_end_min.min(1440) {
                let window_start = oracle_local_to_utc(tz, y, m, d, q.work_start_min);
                let window_end = oracle_local_to_utc(tz, y, m, d, q.work_end_min.min(1440));
                let free = !busy
                    .iter()
                    .any(|b| b.start < b.end && b.start < start + duration + buffer && start - buffer < b.end);
                if start >= window_start && start + duration <= window_end && free {
                    slots.push((start, start + duration));
                }
            }
            start += MIN;
        }
        slots.truncate(q.max_slots);
        slots
    }

    /// Slots as local "MM-DD HH:MM+offset" strings, for readable assertions.
    fn show(slots: &[(i64, i64)], tz: Tz) -> Vec<String> {
        slots.iter().map(|&(s, _)| tz.timestamp_millis_opt(s).unwrap().format("%m-%d %H:%M%:z").to_string()).collect()
    }

    fn all_days(time_min: i64, time_max: i64, duration: u32, granularity: u32, work: (u32, u32)) -> SlotQuery {
        SlotQuery {
            granularity_min: granularity,
            work_start_min: work.0,
            work_end_min: work.1,
            days: (1..=7).collect(),
            ..SlotQuery::new(time_min, time_max, duration)
        }
    }

    #[test]
    fn slots_across_new_york_spring_forward() {
        let zone = TzZone::new("America/New_York");
        let q = all_days(utc(2026, 3, 8, 0, 0), utc(2026, 3, 9, 0, 0), 30, 30, (60, 240));
        let slots = find_slots(&q, &zone, &[]);
        // 02:00 and 02:30 do not exist; the 01:00–04:00 window is two real hours.
        assert_eq!(
            show(&slots, zone.0),
            ["03-08 01:00-05:00", "03-08 01:30-05:00", "03-08 03:00-04:00", "03-08 03:30-04:00"]
        );
        assert_eq!(slots, oracle_slots(&q, zone.0, &[]));
        // The 09:00–17:00 window is still 8 hours of local time, i.e. 13:00Z–21:00Z.
        let q = all_days(utc(2026, 3, 8, 0, 0), utc(2026, 3, 9, 0, 0), 480, 60, (540, 1020));
        assert_eq!(find_slots(&q, &zone, &[]), [(utc(2026, 3, 8, 13, 0), utc(2026, 3, 8, 21, 0))]);
    }

    #[test]
    fn slots_across_new_york_fall_back() {
        let zone = TzZone::new("America/New_York");
        let q = all_days(utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0), 30, 30, (0, 180));
        let slots = find_slots(&q, &zone, &[]);
        // 01:00 and 01:30 happen twice: both real instants, once each, in time order; 4 real hours.
        let want = [
            "11-01 00:00-04:00",
            "11-01 00:30-04:00",
            "11-01 01:00-04:00",
            "11-01 01:30-04:00",
            "11-01 01:00-05:00",
            "11-01 01:30-05:00",
            "11-01 02:00-05:00",
            "11-01 02:30-05:00",
        ];
        assert_eq!(show(&slots, zone.0), want);
        assert_eq!(slots, oracle_slots(&q, zone.0, &[]));
        // A window starting inside the overlap starts at its first instant, so the second 01:00 is inside it.
        let q = all_days(utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0), 30, 30, (90, 120));
        let slots = find_slots(&q, &zone, &[]);
        assert_eq!(show(&slots, zone.0), ["11-01 01:30-04:00", "11-01 01:00-05:00", "11-01 01:30-05:00"]);
        assert_eq!(slots, oracle_slots(&q, zone.0, &[]));
        // Busy during the first 01:xx (EDT) leaves the second one (EST) free.
        let busy = [Busy { start: utc(2026, 11, 1, 5, 0), end: utc(2026, 11, 1, 6, 0) }];
        let q = all_days(utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0), 60, 60, (0, 240));
        let slots = find_slots(&q, &zone, &busy);
        assert_eq!(
            show(&slots, zone.0),
            ["11-01 00:00-04:00", "11-01 01:00-05:00", "11-01 02:00-05:00", "11-01 03:00-05:00"]
        );
    }

    #[test]
    fn slots_across_berlin_and_lord_howe_changes() {
        let berlin = TzZone::new("Europe/Berlin");
        let q = all_days(utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0), 60, 60, (60, 240));
        let slots = find_slots(&q, &berlin, &[]);
        assert_eq!(
            show(&slots, berlin.0),
            [
                "03-28 01:00+01:00",
                "03-28 02:00+01:00",
                "03-28 03:00+01:00",
                "03-29 01:00+01:00",
                "03-29 03:00+02:00",
                "03-30 01:00+02:00"
            ]
        );
        assert_eq!(slots, oracle_slots(&q, berlin.0, &[]));

        let lord_howe = TzZone::new("Australia/Lord_Howe");
        let q = all_days(utc(2026, 10, 3, 0, 0), utc(2026, 10, 4, 12, 0), 30, 30, (60, 240));
        let slots = find_slots(&q, &lord_howe, &[]);
        assert_eq!(
            show(&slots, lord_howe.0),
            ["10-04 01:00+10:30", "10-04 01:30+10:30", "10-04 02:30+11:00", "10-04 03:00+11:00", "10-04 03:30+11:00"]
        );
        assert_eq!(slots, oracle_slots(&q, lord_howe.0, &[]));
        // Fall back 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:30 happens twice.
        let q = all_days(utc(2026, 4, 4, 0, 0), utc(2026, 4, 5, 12, 0), 30, 30, (60, 180));
        let slots = find_slots(&q, &lord_howe, &[]);
        assert_eq!(
            show(&slots, lord_howe.0),
            ["04-05 01:00+11:00", "04-05 01:30+11:00", "04-05 01:30+10:30", "04-05 02:00+10:30", "04-05 02:30+10:30"]
        );
        assert_eq!(slots, oracle_slots(&q, lord_howe.0, &[]));
    }

    #[test]
    fn slots_in_half_hour_zone_with_buffer() {
        let kolkata = TzZone::new("Asia/Kolkata");
        // Monday 2026-01-05, busy 10:00–10:30 IST (04:30Z–05:00Z), 15-minute buffer, 15-minute grid.
        let busy = [Busy { start: utc(2026, 1, 5, 4, 30), end: utc(2026, 1, 5, 5, 0) }];
        let q = SlotQuery { buffer_min: 15, ..SlotQuery::new(utc(2026, 1, 5, 3, 0), utc(2026, 1, 5, 6, 0), 30) };
        let slots = find_slots(&q, &kolkata, &busy);
        assert_eq!(
            show(&slots, kolkata.0),
            ["01-05 09:00+05:30", "01-05 09:15+05:30", "01-05 10:45+05:30", "01-05 11:00+05:30"]
        );
        assert_eq!(slots, oracle_slots(&q, kolkata.0, &busy));
    }

    #[test]
    fn find_slots_calls_offset_at_sparingly() {
        let zone = TzZone::new("America/New_York");
        // Four weeks without a change: two calls per weekday plus two for the date range.
        let q = SlotQuery { max_slots: 10_000, ..SlotQuery::new(utc(2026, 1, 5, 0, 0), utc(2026, 2, 2, 0, 0), 30) };
        assert_eq!(find_slots(&q, &zone, &[]).len(), 20 * 31);
        assert!(zone.calls() <= 2 + 2 * 21);
        // Around a change, a binary search of ~13 calls for each of the three days that see it.
        let q = all_days(utc(2026, 3, 5, 0, 0), utc(2026, 3, 12, 0, 0), 30, 15, (540, 1020));
        find_slots(&q, &zone, &[]);
        assert!(zone.calls() <= 2 + 2 * 9 + 3 * 13, "{}", zone.calls());
    }

    /// Small deterministic PRNG (xorshift) for the randomized comparison.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.next(items.len() as u64) as usize]
        }
    }

    #[test]
    fn find_slots_matches_brute_force_oracle() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..1500 {
            let name = rng.pick(&ZONES);
            let zone = TzZone::new(name);
            // Start near one of this zone's 2026 offset changes (or anywhere if it has none).
            let changes: Vec<i64> = (days_from_civil(2026, 1, 1)..days_from_civil(2027, 1, 1))
                .filter(|&d| zone.offset_at(d * DAY) != zone.offset_at((d + 1) * DAY))
                .collect();
            let base = if changes.is_empty() {
                days_from_civil(2026, 1, 1) + rng.next(365) as i64
            } else {
                rng.pick(&changes)
            };
            let time_min = (base - 1) * DAY + rng.next(2 * DAY as u64) as i64; // not on any grid
            let time_max = time_min + rng.next(3 * DAY as u64) as i64;
            let work_start = rng.pick(&[0, 0, 30, 60, 90, 120, 150, 540, 1380]);
            let work_end = work_start + rng.pick(&[60u32, 120, 180, 240, 480, 1440]).min(1440 - work_start);
            let days: Vec<u8> = (1..=7).filter(|_| rng.next(4) != 0).collect();
            let busy: Vec<Busy> = (0..rng.next(6))
                .map(|_| {
                    let start = time_min - 2 * 3_600_000 + rng.next(4 * DAY as u64) as i64 / MIN * MIN;
                    Busy { start, end: start + rng.pick(&[0, 15, 30, 60, 90, 240]) * MIN }
                })
                .collect();
            let q = SlotQuery {
                time_min,
                time_max,
                duration_min: rng.pick(&[15, 30, 45, 60, 90, 120]),
                granularity_min: rng.pick(&[0, 5, 15, 20, 30, 45, 60]),
                buffer_min: rng.pick(&[0, 0, 10, 15, 30]),
                work_start_min: work_start,
                work_end_min: work_end,
                days,
                max_slots: rng.pick(&[1, 5, 50, 1000]),
            };
            let got = find_slots(&q, &zone, &busy);
            assert_eq!(got, oracle_slots(&q, zone.0, &busy), "round {round} {name} {q:?} {busy:?}");
        }
    }
}
