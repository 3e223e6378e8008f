//! RFC 5322 dates: written for `Date:` headers, read back (with the obsolete zone names)
//! from received messages.

use crate::time::{civil_from_days, days_from_civil};

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------

pub(super) const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
pub(super) const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// "Tue, 14 Nov 2023 22:13:20 +0000".
pub(super) fn rfc5322_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let s = ms.rem_euclid(86_400_000) / 1000;
    let (y, m, d) = civil_from_days(days);
    let wd = DAYS[(days + 4).rem_euclid(7) as usize];
    format!("{wd}, {d} {} {y:04} {:02}:{:02}:{:02} +0000", MONTHS[m as usize - 1], s / 3600, s / 60 % 60, s % 60)
}

/// "2023-11-14T22:13:20.000Z".
pub(super) fn iso8601(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let r = ms.rem_euclid(86_400_000);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", r / 3_600_000, r / 60_000 % 60, r / 1000 % 60, r % 1000)
}

/// RFC 5322 date-time (with the obsolete forms: 2/3-digit years, zone names, no seconds, comments) to
/// epoch milliseconds.
pub(super) fn parse_date(s: &str) -> Option<i64> {
    let (mut clean, mut depth) = (String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => clean.push(' '),
            c => clean.push(c),
        }
    }
    let mut t: Vec<&str> = clean.split_whitespace().collect();
    if t.first()?.starts_with(|c: char| c.is_ascii_alphabetic()) {
        t.remove(0); // day of week
    }
    let [day, mon, year, time, rest @ ..] = t.as_slice() else { return None };
    let day: i64 = day.parse().ok()?;
    let mon = MONTHS.iter().position(|m| mon.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(m)))? as i64 + 1;
    let mut y: i64 = year.parse().ok()?;
    y += match year.len() {
        1 | 2 if y < 50 => 2000,
        1..=3 => 1900,
        _ => 0,
    };
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next().unwrap_or(Some(0))?);
    let off = rest.first().map_or(Some(0), |z| zone_offset(z))?;
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some((days_from_civil(y, mon, day) * 86_400 + h * 3600 + mi * 60 + sec - off) * 1000)
}

/// Zone offset in seconds: "+hhmm"/"-hhmm" or an obsolete name; unknown alphabetic zones (military
/// letters included) count as +0000, as RFC 5322 §4.3 says.
pub(super) fn zone_offset(z: &str) -> Option<i64> {
    let sign = match z.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => 0,
    };
    if sign != 0 {
        let n = &z[1..];
        if n.len() != 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = n.parse().ok()?;
        return Some(sign * (v / 100 * 3600 + v % 100 * 60));
    }
    if !z.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let hours = match z.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    Some(hours * 3600)
}

// ---------------------------------------------------------------------------------------------------------
// Reading Gmail API messages
// ---------------------------------------------------------------------------------------------------------
