//! Free time: busy intervals merged across calendars, and slot search inside working hours in a
//! time zone (daylight-saving days included), as the `free_busy` and `find_slots` actions.

use serde_json::{json, Value};
use worker::Method;

use super::events::range;
use super::zone::{zone, Zone, DAY_MS, MINUTE_MS};
use super::{api, invalid, rfc3339, MAX_SLOT_RANGE_DAYS};
use crate::integrations::service::{Conn, Outcome, ServiceError};
use crate::time::parse_iso;

/// Busy intervals per calendar, in the order asked; a calendar Google cannot read is an error
/// (treating it as free would offer slots that are not).
pub(super) async fn busy_times(
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
pub(super) fn calendar_ids(p: &Value) -> (Vec<String>, bool) {
    match p["calendars"].as_array() {
        Some(list) => (list.iter().filter_map(Value::as_str).map(str::to_string).collect(), true),
        None => (vec!["primary".to_string()], false),
    }
}

pub(super) async fn free_busy(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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
pub(super) fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `find_slots`' query from its parameters (checked beyond the schema) and the zone it needs.
pub(super) fn slot_query(p: &Value) -> Result<(SlotQuery, Box<dyn Zone>), ServiceError> {
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

pub(super) async fn find_free_slots(c: &Conn<'_>, p: &Value) -> Result<Outcome, ServiceError> {
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
    let slots: Vec<Value> = find_slots(&q, zone.as_ref(), &busy)
        .into_iter()
        .map(|(s, e)| json!({ "start": rfc3339(s), "end": rfc3339(e) }))
        .collect();
    Ok(Outcome::of(json!({ "slots": slots })))
}

/// How the wall-clock times of one local day map to instants. Assumes at most one offset change in
/// the three days around it (true for real zones). Costs 2 `offset_at` calls, ~15 on change days.
pub(super) struct DayMap {
    before: i64, // offset in ms before the change
    after: i64,
    change: i64, // first instant with the `after` offset (i64::MAX: no change)
}

impl DayMap {
    fn new(zone: &dyn Zone, day: i64) -> Self {
        // Instants of this wall-clock day lie within (midnight - 1 day, midnight + 2 days).
        let (mut lo, mut hi) = ((day - 1) * DAY_MS, (day + 2) * DAY_MS);
        let before = zone.offset_at(lo);
        let after = zone.offset_at(hi);
        if before != after {
            // Binary search on whole minutes: offsets are in minutes, so changes happen on minutes.
            while hi - lo > MINUTE_MS {
                let mid = lo + (hi - lo) / MINUTE_MS / 2 * MINUTE_MS;
                if zone.offset_at(mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
        }
        let change = if before == after { i64::MAX } else { hi };
        DayMap { before: i64::from(before) * MINUTE_MS, after: i64::from(after) * MINUTE_MS, change }
    }

    /// The instants showing wall-clock `local` (ms, read as if UTC): none in a gap, two in an overlap.
    fn instants(&self, local: i64) -> [Option<i64>; 2] {
        let (early, late) = (local - self.before, local - self.after);
        [(early < self.change).then_some(early), (late >= self.change).then_some(late)]
    }

    /// Same result as `local_to_utc`, without further `offset_at` calls.
    fn to_utc(&self, local: i64) -> i64 {
        match self.instants(local) {
            [None, Some(late)] => late,
            _ => local - self.before, // valid, the earlier of two, or shifted forward out of a gap
        }
    }
}

/// A busy interval in UTC ms, half-open `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub start: i64,
    pub end: i64,
}

/// What `find_slots` looks for. Times are UTC ms; minutes are wall-clock minutes in the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotQuery {
    pub time_min: i64,
    pub time_max: i64,
    pub duration_min: u32,
    /// Slot starts are local wall-clock minutes of the day divisible by this (0 is taken as 15).
    pub granularity_min: u32,
    pub buffer_min: u32,
    /// Minutes of the local day, e.g. 540..1020 for 09:00–17:00; the end may be 1440 ("24:00").
    pub work_start_min: u32,
    pub work_end_min: u32,
    /// ISO weekdays allowed, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    pub max_slots: usize,
}

impl SlotQuery {
    /// Defaults: granularity 15, buffer 0, max 50 slots, and (the caller's usual choice) 09:00–17:00
    /// Monday to Friday.
    pub fn new(time_min: i64, time_max: i64, duration_min: u32) -> Self {
        SlotQuery {
            time_min,
            time_max,
            duration_min,
            granularity_min: 15,
            buffer_min: 0,
            work_start_min: 540,
            work_end_min: 1020,
            days: vec![1, 2, 3, 4, 5],
            max_slots: 50,
        }
    }
}

/// Sorts and merges overlapping or adjacent intervals; empty ones (end <= start) are dropped since
/// they block nothing.
pub fn merge_busy(busy: &mut Vec<Busy>) {
    busy.retain(|b| b.start < b.end);
    busy.sort_unstable_by_key(|b| b.start);
    let mut merged: Vec<Busy> = Vec::with_capacity(busy.len());
    for b in busy.drain(..) {
        match merged.last_mut() {
            Some(last) if b.start <= last.end => last.end = last.end.max(b.end),
            _ => merged.push(b),
        }
    }
    *busy = merged;
}

/// Free slots `(start, end)` in UTC ms, in time order, at most `max_slots`. Each is exactly
/// `duration_min` long, starts on the local wall-clock grid of `granularity_min` (counted from local
/// midnight), lies within `[time_min, time_max]` and within the working window
/// `[local_to_utc(day, work_start), local_to_utc(day, work_end))` of a local day whose ISO weekday is
/// in `days`, and keeps `buffer_min` away from every busy interval. One slot per grid start, so
/// slots may overlap; grid times inside a DST gap are skipped, those in an overlap give both instants.
pub fn find_slots(q: &SlotQuery, zone: &dyn Zone, busy: &[Busy]) -> Vec<(i64, i64)> {
    let mut slots = Vec::new();
    let work_end = q.work_end_min.min(1440);
    if q.duration_min == 0 || q.max_slots == 0 || q.work_start_min >= work_end || q.time_min >= q.time_max {
        return slots;
    }
    let duration = i64::from(q.duration_min) * MINUTE_MS;
    let buffer = i64::from(q.buffer_min) * MINUTE_MS;
    let step = if q.granularity_min == 0 { 15 } else { q.granularity_min as usize };
    let mut busy = busy.to_vec();
    merge_busy(&mut busy);
    let local_day = |t: i64| (t + i64::from(zone.offset_at(t)) * MINUTE_MS).div_euclid(DAY_MS);

    for day in local_day(q.time_min)..=local_day(q.time_max) {
        let iso_weekday = (day + 3).rem_euclid(7) as u8 + 1; // 1970-01-01 was a Thursday
        if !q.days.contains(&iso_weekday) {
            continue;
        }
        let map = DayMap::new(zone, day);
        let midnight = day * DAY_MS;
        // The window is in wall-clock time, so it is 7 or 9 hours long on DST-change days.
        let first = q.time_min.max(map.to_utc(midnight + i64::from(q.work_start_min) * MINUTE_MS));
        let last = q.time_max.min(map.to_utc(midnight + i64::from(work_end) * MINUTE_MS)) - duration;
        if first > last {
            continue;
        }
        let mut starts: Vec<i64> = (0..1440)
            .step_by(step)
            .flat_map(|minute| map.instants(midnight + minute * MINUTE_MS))
            .flatten()
            .filter(|s| (first..=last).contains(s))
            .collect();
        starts.sort_unstable(); // in an overlap, a later wall-clock minute can be an earlier instant
        for start in starts {
            // Merged intervals have sorted ends: the first one ending after the buffered start is the
            // only candidate for an overlap.
            let i = busy.partition_point(|b| b.end <= start - buffer);
            if busy.get(i).is_some_and(|b| b.start < start + duration + buffer) {
                continue;
            }
            slots.push((start, start + duration));
            if slots.len() == q.max_slots {
                return slots;
            }
        }
    }
    slots
}
