//! Timestamps. Stored and returned as fixed-width ISO 8601 UTC with milliseconds
//! (`2026-01-02T03:04:05.678Z`) so that string order equals time order in SQL.
//!
//! The calendar arithmetic is the classic days-from-civil algorithm (H. Hinnant), a few
//! lines instead of a date crate (which measured 43 KB of Wasm code: every byte is upload
//! size). The current instant is read at the edge (`Date.now()` on Workers), because
//! wasm32-unknown-unknown has no system clock.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Current time in milliseconds (JS `Date.now()` on Workers, the system clock natively).
pub fn now_ms() -> Millis {
    #[cfg(target_arch = "wasm32")]
    {
        worker::Date::now().as_millis() as Millis
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's civil-date algorithms).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats epoch millis as `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 0000–9999).
pub fn iso(ms: Millis) -> String {
    let ms = ms.clamp(-62_167_219_200_000, 253_402_300_799_999);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, b| n * 10 + i64::from(b - b'0')))
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fff…][Z|±HH:MM]`; `require_zone` rejects a missing zone.
fn parse(s: &str, require_zone: bool) -> Option<Millis> {
    let b = s.trim().as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let days_in_month = [
        31,
        if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month[(mo - 1) as usize] || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &b[start..i.min(start + 3)];
        millis = digits(frac)? * [100, 10, 1][frac.len() - 1];
    }
    let offset_min = match &b[i..] {
        [] if !require_zone => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ ..] if hh.len() == 5 && hh[2] == b':' => {
            let off = digits(&hh[0..2])? * 60 + digits(&hh[3..5])?;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Parses an RFC 3339 timestamp (any offset) into epoch millis.
pub fn parse_iso(s: &str) -> Option<Millis> {
    parse(s, true)
}

/// Parses a stored timestamp: our ISO form, or SQLite's `datetime('now')` form
/// (`YYYY-MM-DD HH:MM:SS`, UTC) found in rows migrated from the original worker.
pub fn parse_stored(s: &str) -> Option<Millis> {
    parse(s, false)
}

/// Normalises a stored timestamp to our ISO form (leaves unparseable text alone).
pub fn normalize(s: &str) -> String {
    parse_stored(s).map(iso).unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_offsets_and_sqlite_form() {
        assert_eq!(parse_iso("2026-01-02T04:04:05.678+01:00"), Some(1_767_323_045_678));
        assert_eq!(parse_iso("2026-01-02T03:04:05Z"), Some(1_767_323_045_000));
        assert_eq!(parse_iso("2026-01-02T03:04:05.6Z"), Some(1_767_323_045_600));
        assert_eq!(parse_iso("2026-01-02T03:04:05.123456789Z"), Some(1_767_323_045_123));
        assert_eq!(parse_iso("2026-01-02T03:04:05-05:30"), Some(1_767_323_045_000 + 5 * 3_600_000 + 30 * 60_000));
        assert_eq!(parse_stored("2026-01-02 03:04:05"), Some(1_767_323_045_000));
        assert_eq!(normalize("2026-01-02 03:04:05"), "2026-01-02T03:04:05.000Z");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:04:05+0100",
            "",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert!(parse_iso("2024-02-29T00:00:00Z").is_some());
        assert!(parse_iso("2023-02-29T00:00:00Z").is_none());
    }

    #[test]
    fn round_trips() {
        for ms in [0, 1, 999, 86_399_999, 1_700_000_000_123, 253_402_300_799_999] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms));
        }
    }
}
