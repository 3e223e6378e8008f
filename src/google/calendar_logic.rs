//! Google Calendar logic without I/O: validation of event `recurrence` lines (RFC 5545 §3.8.5)
//! and time-zone-aware free-slot search. Time zones come in through the [`Zone`] trait, so no tz
//! database is compiled into the Worker (it implements `Zone` with JS `Intl`).

// ---------------------------------------------------------------------------------------------
// Recurrence validation
// ---------------------------------------------------------------------------------------------

const FREQS: [&str; 7] = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"];
const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
/// Rule parts holding a list of integers: name, range, and whether the value is signed
/// (signed parts also count from the end with negative values).
const INT_LISTS: [(&str, i64, i64, bool); 8] = [
    ("BYSECOND", 0, 60, false), // 60 = leap second
    ("BYMINUTE", 0, 59, false),
    ("BYHOUR", 0, 23, false),
    ("BYMONTH", 1, 12, false),
    ("BYMONTHDAY", 1, 31, true),
    ("BYYEARDAY", 1, 366, true),
    ("BYWEEKNO", 1, 53, true),
    ("BYSETPOS", 1, 366, true),
];
const OTHER_PARTS: [&str; 6] = ["FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST"];
const DATE_SHAPE: &str = "DATE (YYYYMMDD)";
const DATE_TIME_SHAPE: &str = "DATE-TIME (YYYYMMDDTHHMMSS[Z])";

/// Validates one recurrence line (RFC 5545 §3.8.5 RRULE/EXRULE/RDATE/EXDATE). Err = a message naming
/// the bad part, e.g. "RRULE: BYDAY value 'XX' is not a weekday", "RRULE: COUNT and UNTIL cannot both
/// be given", "EXDATE: '2026-01-05' is not a DATE-TIME (YYYYMMDDTHHMMSS[Z])".
pub fn validate_recurrence_line(line: &str) -> Result<(), String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty recurrence line".into());
    }
    let (name, rest) = line.split_at(line.find([';', ':']).unwrap_or(line.len()));
    let upper = name.to_ascii_uppercase();
    let result = match upper.as_str() {
        // RFC 5545 allows only x-/iana-parameters on RRULE; Google sends none, so none are accepted.
        "RRULE" | "EXRULE" => match rest.strip_prefix(':') {
            Some(body) => validate_rule(body),
            None => Err("expected ':' right after the property name".into()),
        },
        "RDATE" | "EXDATE" => validate_dates(upper == "RDATE", rest),
        _ => return Err(format!("unknown property '{name}' (expected RRULE, EXRULE, RDATE or EXDATE)")),
    };
    result.map_err(|e| format!("{upper}: {e}"))
}

/// Validates an event's `recurrence` array; Err carries the index of the first bad line. An event may
/// have at most one RRULE (RFC 5545: it SHOULD NOT occur more than once).
pub fn validate_recurrence(lines: &[String]) -> Result<(), (usize, String)> {
    let mut seen_rrule = false;
    for (i, line) in lines.iter().enumerate() {
        validate_recurrence_line(line).map_err(|e| (i, e))?;
        if line.trim_start().get(..6).is_some_and(|p| p.eq_ignore_ascii_case("RRULE:")) {
            if seen_rrule {
                return Err((i, "only one RRULE is allowed per event".into()));
            }
            seen_rrule = true;
        }
    }
    Ok(())
}

fn validate_rule(body: &str) -> Result<(), String> {
    if body.is_empty() {
        return Err("FREQ is required".into());
    }
    let mut seen: Vec<String> = Vec::new();
    let mut freq = "";
    let mut ordinal_day = None; // first BYDAY value with an ordinal, for the messages below
    for part in body.split(';') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(if part.is_empty() {
                "empty part (stray ';')".into()
            } else {
                format!("part '{part}' is not NAME=VALUE")
            });
        };
        let key = key.to_ascii_uppercase();
        let int_list = INT_LISTS.iter().find(|p| p.0 == key);
        if int_list.is_none() && !OTHER_PARTS.contains(&key.as_str()) {
            return Err(format!("unknown part '{key}'"));
        }
        if seen.contains(&key) {
            return Err(format!("{key} is given more than once"));
        }
        if value.is_empty() {
            return Err(format!("{key} has no value"));
        }
        let v = value.to_ascii_uppercase();
        if let Some(&(_, min, max, signed)) = int_list {
            for item in value.split(',') {
                // Only the signed parts take a sign (RFC 5545 grammar); they count from the end with it.
                let in_range = |n: i64| (min..=max).contains(&if signed { n.abs() } else { n });
                if !parse_int(item).is_some_and(in_range) || (!signed && item.starts_with(['+', '-'])) {
                    let range =
                        if signed { format!("{min} to {max} or -{max} to -{min}") } else { format!("{min} to {max}") };
                    return Err(format!("{key} value '{item}' is not an integer from {range}"));
                }
            }
        }
        match key.as_str() {
            "FREQ" => {
                freq = FREQS
                    .iter()
                    .find(|f| **f == v)
                    .ok_or_else(|| format!("FREQ value '{value}' is not one of {}", FREQS.join(", ")))?;
            }
            "UNTIL" => {
                let parsed = if v.len() == 8 { parse_date(&v) } else { parse_date_time(&v).map(|_| ()) };
                parsed.map_err(|bad| {
                    let shape = format!("{DATE_SHAPE} or {DATE_TIME_SHAPE}");
                    format!("UNTIL value {}", bad.message(value, &shape))
                })?;
            }
            "COUNT" | "INTERVAL" if v.starts_with(['+', '-']) || parse_int(&v).is_none_or(|n| n < 1) => {
                return Err(format!("{key} value '{value}' is not a positive integer"));
            }
            "WKST" if !WEEKDAYS.contains(&v.as_str()) => return Err(format!("WKST value '{value}' is not a weekday")),
            "BYDAY" => {
                for item in value.split(',') {
                    if check_byday(item)? {
                        ordinal_day.get_or_insert(item);
                    }
                }
            }
            _ => {}
        }
        seen.push(key);
    }

    let has = |k: &str| seen.iter().any(|s| s == k);
    if freq.is_empty() {
        return Err("FREQ is required".into());
    }
    if has("COUNT") && has("UNTIL") {
        return Err("COUNT and UNTIL cannot both be given".into());
    }
    if has("BYWEEKNO") && freq != "YEARLY" {
        return Err("BYWEEKNO is only allowed with FREQ=YEARLY".into());
    }
    if has("BYYEARDAY") && matches!(freq, "DAILY" | "WEEKLY" | "MONTHLY") {
        return Err(format!("BYYEARDAY is not allowed with FREQ={freq}"));
    }
    if has("BYMONTHDAY") && freq == "WEEKLY" {
        return Err("BYMONTHDAY is not allowed with FREQ=WEEKLY".into());
    }
    if let Some(day) = ordinal_day {
        if !matches!(freq, "MONTHLY" | "YEARLY") {
            return Err(format!("BYDAY value '{day}' has an ordinal, which needs FREQ=MONTHLY or YEARLY"));
        }
        // RFC 5545: "MUST NOT be specified when the FREQ rule part is set to YEARLY with BYWEEKNO".
        if has("BYWEEKNO") {
            return Err(format!("BYDAY value '{day}' has an ordinal, which cannot be combined with BYWEEKNO"));
        }
    }
    if has("BYSETPOS") && !seen.iter().any(|k| k.starts_with("BY") && k != "BYSETPOS") {
        return Err("BYSETPOS requires another BYxxx part".into());
    }
    Ok(())
}

/// `[+-]?n?(MO|…|SU)`; Ok(true) when it carries an ordinal.
fn check_byday(item: &str) -> Result<bool, String> {
    let v = item.to_ascii_uppercase();
    let not_weekday = || format!("BYDAY value '{item}' is not a weekday");
    let split = v.len().checked_sub(2).filter(|&i| v.is_char_boundary(i)).ok_or_else(not_weekday)?;
    let (ordinal, day) = v.split_at(split);
    if !WEEKDAYS.contains(&day) {
        return Err(not_weekday());
    }
    if ordinal.is_empty() {
        return Ok(false);
    }
    match parse_int(ordinal) {
        None => Err(not_weekday()),
        Some(n) if n != 0 && n.abs() <= 53 => Ok(true),
        Some(_) => Err(format!("BYDAY value '{item}' has an ordinal outside 1 to 53 or -53 to -1")),
    }
}

/// RDATE/EXDATE after the name: `*(;TZID=zone / ;VALUE=type) ":" value *("," value)`.
fn validate_dates(rdate: bool, mut rest: &str) -> Result<(), String> {
    let (mut tzid, mut kind) = (None, None);
    while let Some(r) = rest.strip_prefix(';') {
        let (param, after) = r.split_at(r.find(['=', ';', ':']).unwrap_or(r.len()));
        let Some(after) = after.strip_prefix('=') else {
            return Err(format!("parameter '{param}' has no value"));
        };
        // Parameter values may be quoted (and may then contain ';' or ':').
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"').ok_or_else(|| format!("parameter '{param}' has an unterminated quote"))?;
                (&q[..end], &q[end + 1..])
            }
            None => after.split_at(after.find([';', ':']).unwrap_or(after.len())),
        };
        rest = next;
        let param = param.to_ascii_uppercase();
        if (param == "TZID" && tzid.is_some()) || (param == "VALUE" && kind.is_some()) {
            return Err(format!("{param} is given more than once"));
        }
        match param.as_str() {
            "TZID" if value.is_empty() => return Err("TZID is empty".into()),
            "TZID" => tzid = Some(value),
            "VALUE" => {
                let v = value.to_ascii_uppercase();
                match v.as_str() {
                    "DATE" | "DATE-TIME" => {}
                    "PERIOD" if rdate => {}
                    "PERIOD" => return Err("VALUE=PERIOD is only allowed in RDATE".into()),
                    _ => return Err(format!("VALUE '{value}' is not DATE, DATE-TIME or PERIOD")),
                }
                kind = Some(v);
            }
            _ => return Err(format!("unknown parameter '{param}' (expected TZID or VALUE)")),
        }
    }
    let Some(values) = rest.strip_prefix(':') else {
        return Err("expected ':' before the values".into());
    };
    if values.is_empty() {
        return Err("no values after ':'".into());
    }
    let kind = kind.as_deref().unwrap_or("DATE-TIME");
    // RFC 5545 §3.2.19: TZID MUST NOT be applied to DATE values.
    if tzid.is_some() && kind == "DATE" {
        return Err("TZID cannot be used with VALUE=DATE".into());
    }
    for value in values.split(',') {
        // to_ascii_uppercase keeps byte offsets, so slices of `v` map onto `value`.
        let v = value.to_ascii_uppercase();
        match kind {
            "DATE" => parse_date(&v).map_err(|bad| bad.message(value, DATE_SHAPE))?,
            "DATE-TIME" => {
                check_date_time(&v, value, tzid.is_some())?;
            }
            _ => check_period(&v, value, tzid.is_some())?,
        }
    }
    Ok(())
}

/// A DATE-TIME value of RDATE/EXDATE; Ok(true) when it is UTC.
fn check_date_time(v: &str, original: &str, has_tzid: bool) -> Result<bool, String> {
    match parse_date_time(v) {
        Ok(true) if has_tzid => Err(format!("'{original}' is in UTC (ends in Z) but TZID is given")),
        Ok(utc) => Ok(utc),
        Err(Bad::Shape) if parse_date(v).is_ok() => {
            Err(format!("'{original}' is not a {DATE_TIME_SHAPE}; use VALUE=DATE for dates"))
        }
        Err(bad) => Err(bad.message(original, DATE_TIME_SHAPE)),
    }
}

/// `start/end` or `start/duration`, the period being non-empty.
fn check_period(v: &str, original: &str, has_tzid: bool) -> Result<(), String> {
    let Some((start, end)) = v.split_once('/') else {
        return Err(format!("'{original}' is not a PERIOD (start/end or start/duration)"));
    };
    let start_utc = check_date_time(start, &original[..start.len()], has_tzid)?;
    let original_end = &original[start.len() + 1..];
    if end.starts_with(['P', '+', '-']) {
        if duration_seconds(end).is_none_or(|s| s == 0) {
            return Err(format!("'{original_end}' is not a positive duration (e.g. PT1H30M)"));
        }
    } else {
        let end_utc = check_date_time(end, original_end, has_tzid)?;
        // Both are validated YYYYMMDDTHHMMSS, which sort chronologically as text.
        if end_utc == start_utc && end[..15] <= start[..15] {
            return Err(format!("'{original}' does not end after it starts"));
        }
    }
    Ok(())
}

/// RFC 5545 dur-value without sign: `P` then `nW`, or `[nD][T[nH][nM][nS]]` where the time units are
/// contiguous (H then M then S, none skipped). Returns the length in seconds.
fn duration_seconds(s: &str) -> Option<u64> {
    let number = |d: &str| d.bytes().all(|b| b.is_ascii_digit()).then(|| d.parse::<u64>().ok()).flatten();
    let number = |d: &str| number(d).filter(|_| d.len() <= 12); // keeps the products below from overflowing
    let s = s.strip_prefix('+').unwrap_or(s).strip_prefix('P')?;
    if let Some(weeks) = s.strip_suffix('W') {
        return number(weeks).map(|w| w * 604_800);
    }
    let (days, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut total = 0;
    if !days.is_empty() {
        total += number(days.strip_suffix('D')?)? * 86_400;
    } else if time.is_none() {
        return None;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        let mut next_unit = None;
        while !t.is_empty() {
            let i = t.find(|c: char| !c.is_ascii_digit())?;
            let unit = b"HMS".iter().position(|&u| u == t.as_bytes()[i])?;
            if next_unit.is_some_and(|n| n != unit) {
                return None;
            }
            total += number(&t[..i])? * [3600, 60, 1][unit];
            next_unit = Some(unit + 1);
            t = &t[i + 1..];
        }
    }
    Some(total)
}

/// Why a date value is bad.
#[derive(Debug, PartialEq)]
enum Bad {
    Shape,
    Date,
    Time,
}

impl Bad {
    fn message(self, value: &str, shape: &str) -> String {
        match self {
            Bad::Shape => format!("'{value}' is not a {shape}"),
            Bad::Date => format!("'{value}' is not a real calendar date"),
            Bad::Time => format!("'{value}' is not a valid time of day"),
        }
    }
}

/// Optional sign, then 1..=9 digits.
fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(if s.starts_with('-') { -n } else { n })
}

fn digits_value(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// YYYYMMDD, a real calendar date (upper-cased input).
fn parse_date(v: &str) -> Result<(), Bad> {
    let b = v.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return Err(Bad::Shape);
    }
    let (year, month, day) = (digits_value(&b[..4]), digits_value(&b[4..6]), digits_value(&b[6..]));
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year as i32, month) {
        return Err(Bad::Date);
    }
    Ok(())
}

/// YYYYMMDDTHHMMSS[Z] (upper-cased input); Ok(true) when UTC.
fn parse_date_time(v: &str) -> Result<bool, Bad> {
    let (body, utc) = match v.strip_suffix('Z') {
        Some(body) => (body, true),
        None => (v, false),
    };
    let b = body.as_bytes();
    if b.len() != 15 || b[8] != b'T' || !b[9..].iter().all(u8::is_ascii_digit) {
        return Err(Bad::Shape);
    }
    parse_date(&body[..8])?; // byte 8 is the ASCII 'T', so 8 is a char boundary
    if digits_value(&b[9..11]) > 23 || digits_value(&b[11..13]) > 59 || digits_value(&b[13..]) > 60 {
        return Err(Bad::Time);
    }
    Ok(utc)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------------------------
// Free slots
// ---------------------------------------------------------------------------------------------

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Offsets of a time zone: the main project implements this with JS Intl.DateTimeFormat.
pub trait Zone {
    /// The UTC offset in minutes (east positive) in effect at the UTC instant `utc_ms`.
    fn offset_at(&self, utc_ms: i64) -> i32;
}

/// A zone with one constant offset in minutes; UTC = `FixedZone(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedZone(pub i32);

impl Zone for FixedZone {
    fn offset_at(&self, _utc_ms: i64) -> i32 {
        self.0
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    crate::time::days_from_civil(year.into(), month.into(), day.into())
}

/// The UTC instant of a local wall-clock time in `zone`: for a time skipped by a DST gap, the instant
/// the clocks jump to (i.e. shift forward by the gap); for an ambiguous time in a DST overlap, the
/// earlier instant. Compute with at most a few offset_at calls (2 normally, 4 near a change).
/// `minute_of_day` may be 1440 (24:00 = next midnight).
pub fn local_to_utc(zone: &dyn Zone, year: i32, month: u32, day: u32, minute_of_day: u32) -> i64 {
    let local = (days_from_civil(year, month, day) * 1440 + i64::from(minute_of_day)) * MINUTE_MS;
    // Offsets are within ±14 h, so a day either side brackets any change that affects `local`.
    let before = i64::from(zone.offset_at(local - DAY_MS)) * MINUTE_MS;
    let after = i64::from(zone.offset_at(local + DAY_MS)) * MINUTE_MS;
    let (early, late) = (local - before, local - after);
    if before == after || i64::from(zone.offset_at(early)) * MINUTE_MS == before {
        return early; // no change, still the old offset, or the earlier of an overlap
    }
    if i64::from(zone.offset_at(late)) * MINUTE_MS == after {
        return late;
    }
    early // in a gap: the old offset moves the time forward by the gap
}

/// How the wall-clock times of one local day map to instants. Assumes at most one offset change in
/// the three days around it (true for real zones). Costs 2 `offset_at` calls, ~15 on change days.
struct DayMap {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    use super::{days_from_civil, find_slots, local_to_utc, Busy, SlotQuery, Zone};
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
