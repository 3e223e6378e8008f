//! Events as actions take and give them: times (date-times, all-day dates, durations), attendees,
//! reminders, Meet links and recurrence; create, update with PATCH semantics, delete, respond,
//! and the calendars and events lists.

use serde_json::{json, Map, Value};
use worker::Method;

use super::recurrence::validate_recurrence;
use super::sync::{calendar_item, event_item, event_key, event_view};
use super::zone::{zone, Zone, DAY_MS, MINUTE_MS};
use super::{api, invalid, query, rfc3339, str_of, unreadable, DEFAULT_EVENT_MINUTES, MAX_CALENDAR_PAGES, PAGE_SIZE};
use crate::integrations::service::{Conn, Item, Outcome, ServiceError};
use crate::outbound::segment;
use crate::time::{iso, parse_iso, Millis};

/// A start or end as given: a date (its day number), or an instant with the text it came as.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum When {
    Date(i64),
    Time(Millis, String),
}

/// `YYYY-MM-DD` → days since 1970-01-01.
pub(super) fn day_of(date: &str) -> Option<i64> {
    (date.len() == 10).then(|| parse_iso(&format!("{date}T00:00:00Z")))?.map(|ms| ms.div_euclid(DAY_MS))
}

pub(super) fn date_text(day: i64) -> String {
    iso(day * DAY_MS)[..10].to_string()
}

pub(super) fn parse_when(s: &str) -> Option<When> {
    if s.len() == 10 {
        day_of(s).map(When::Date)
    } else {
        parse_iso(s).map(|ms| When::Time(ms, s.to_string()))
    }
}

pub(super) fn when_param(p: &Value, key: &str) -> Result<Option<When>, ServiceError> {
    match p.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => {
            parse_when(s).map(Some).ok_or_else(|| invalid(key, "Must be an RFC 3339 date-time or a date (YYYY-MM-DD)"))
        }
    }
}

/// The start or end of a stored event (`{date}` or `{dateTime}`).
pub(super) fn when_of(t: &Value) -> Option<When> {
    str_of(t, "date").or(str_of(t, "dateTime")).and_then(parse_when)
}

/// The local day of a start or end, and whether it falls on that day's midnight: in `zone`
/// when there is one, else the wall-clock date the date-time was written in.
pub(super) fn local_day(w: &When, zone: Option<&dyn Zone>) -> (i64, bool) {
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
pub(super) struct Length {
    days: i64,
    ms: i64,
}

/// Google's `start` and `end` objects. All-day: dates as given (a date-time's date in the time
/// zone, or as written), the end exclusive and after the start. Timed: date-times, the end after
/// the start. `replace` also clears the other kind's field (a PATCH that changes the kind).
#[allow(clippy::too_many_arguments)]
pub(super) fn event_times(
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
pub(super) fn recurrence(p: &Value) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(list) = p.get("recurrence").and_then(Value::as_array) else { return Ok(None) };
    let lines: Vec<String> = list.iter().filter_map(Value::as_str).map(|l| l.trim().to_string()).collect();
    validate_recurrence(&lines).map_err(|(i, message)| invalid(format!("recurrence.{i}"), message))?;
    Ok(Some(lines))
}

/// Google's attendee entries for the given ones: an entry of the current event with the same
/// address is kept whole (its response, its flags), with the given name and optional flag.
pub(super) fn attendees_body(given: &[Value], current: &[Value]) -> Vec<Value> {
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

pub(super) fn reminders(r: &Value) -> Result<Value, ServiceError> {
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
pub(super) fn meet_request() -> Value {
    json!({ "createRequest": { "requestId": uuid::Uuid::new_v4().to_string(), "conferenceSolutionKey": { "type": "hangoutsMeet" } } })
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

pub(super) fn calendar(p: &Value) -> &str {
    p["calendarId"].as_str().unwrap_or("primary")
}

pub(super) fn events_path(calendar: &str) -> String {
    format!("/calendars/{}/events", segment(calendar))
}

pub(super) fn event_path(calendar: &str, event: &str) -> String {
    format!("{}/{}", events_path(calendar), segment(event))
}

pub(super) fn stored(calendar: &str, e: &Value) -> Outcome {
    let item = event_item(calendar, e);
    Outcome::of(item.data.clone()).storing("events", item)
}

/// The account's address (its primary calendar's id).
pub(super) async fn account(c: &Conn<'_>) -> Result<Value, ServiceError> {
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

pub(super) async fn list_calendars(c: &Conn<'_>) -> Result<Outcome, ServiceError> {
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

pub(super) fn range(p: &Value) -> Result<(Option<Millis>, Option<Millis>), ServiceError> {
    let at = |k: &str| p.get(k).and_then(Value::as_str).and_then(parse_iso);
    let (from, to) = (at("timeMin"), at("timeMax"));
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            return Err(invalid("timeMax", "Must be after timeMin"));
        }
    }
    Ok((from, to))
}

pub(super) async fn list_events(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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

pub(super) async fn create_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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

pub(super) const UPDATABLE: [&str; 11] = [
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
pub(super) fn patch_body(p: &Value, current: Option<&Value>) -> Result<Value, ServiceError> {
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

pub(super) async fn update_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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

pub(super) async fn delete_event(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
    let (cal, id) = (calendar(p), p["eventId"].as_str().unwrap_or(""));
    let q = query(&[("sendUpdates", p["sendUpdates"].as_str())]);
    match api(c).send(Method::Delete, &format!("{}{q}", event_path(cal, id)), None).await {
        // Already gone (404) or deleted before (410): the caller's wish holds either way.
        Ok(_) | Err(ServiceError::NotFound(_)) | Err(ServiceError::Upstream { status: 410, .. }) => {}
        Err(e) => return Err(e),
    }
    // Stored under the calendar's real id (`primary` is an alias of the account's calendar).
    let real =
        if cal == "primary" { str_of(&account(c).await?, "email").unwrap_or(cal).to_string() } else { cal.to_string() };
    Ok(Outcome::of(json!({ "deleted": true })).storing("events", Item::gone(event_key(&real, id))))
}

pub(super) async fn respond(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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
