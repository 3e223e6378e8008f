//! Validation of event `recurrence` lines (RFC 5545 §3.8.5): RRULE and EXRULE parts, RDATE and
//! EXDATE values (dates, date-times, periods), with a readable message for each refusal.

pub(super) const FREQS: [&str; 7] = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"];
pub(super) const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
/// Rule parts holding a list of integers: name, range, and whether the value is signed
/// (signed parts also count from the end with negative values).
pub(super) const INT_LISTS: [(&str, i64, i64, bool); 8] = [
    ("BYSECOND", 0, 60, false), // 60 = leap second
    ("BYMINUTE", 0, 59, false),
    ("BYHOUR", 0, 23, false),
    ("BYMONTH", 1, 12, false),
    ("BYMONTHDAY", 1, 31, true),
    ("BYYEARDAY", 1, 366, true),
    ("BYWEEKNO", 1, 53, true),
    ("BYSETPOS", 1, 366, true),
];
pub(super) const OTHER_PARTS: [&str; 6] = ["FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST"];
pub(super) const DATE_SHAPE: &str = "DATE (YYYYMMDD)";
pub(super) const DATE_TIME_SHAPE: &str = "DATE-TIME (YYYYMMDDTHHMMSS[Z])";

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

pub(super) fn validate_rule(body: &str) -> Result<(), String> {
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
pub(super) fn check_byday(item: &str) -> Result<bool, String> {
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
pub(super) fn validate_dates(rdate: bool, mut rest: &str) -> Result<(), String> {
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
pub(super) fn check_date_time(v: &str, original: &str, has_tzid: bool) -> Result<bool, String> {
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
pub(super) fn check_period(v: &str, original: &str, has_tzid: bool) -> Result<(), String> {
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
pub(super) fn duration_seconds(s: &str) -> Option<u64> {
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
pub(super) enum Bad {
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
pub(super) fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(if s.starts_with('-') { -n } else { n })
}

pub(super) fn digits_value(b: &[u8]) -> u32 {
    b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// YYYYMMDD, a real calendar date (upper-cased input).
pub(super) fn parse_date(v: &str) -> Result<(), Bad> {
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
pub(super) fn parse_date_time(v: &str) -> Result<bool, Bad> {
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

pub(super) fn days_in_month(year: i32, month: u32) -> u32 {
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
