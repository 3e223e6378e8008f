//! Timestamps. Stored and returned as fixed-width ISO 8601 UTC with milliseconds
//! (`2026-01-02T03:04:05.678Z`) so that string order equals time order in SQL.
//!
//! `time`'s `now_utc()` panics on wasm32-unknown-unknown (no system clock), so the
//! current instant is read at the edge (`worker::Date::now()`) and passed in as millis.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

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

/// Formats epoch millis as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso(ms: Millis) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

/// The current instant as ISO text.
pub fn now_iso() -> String {
    iso(now_ms())
}

/// Parses an RFC 3339 timestamp (any offset) into epoch millis.
pub fn parse_iso(s: &str) -> Option<Millis> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Parses a stored timestamp: our ISO form, or SQLite's `datetime('now')` form
/// (`YYYY-MM-DD HH:MM:SS`, UTC) found in rows migrated from the original worker.
pub fn parse_stored(s: &str) -> Option<Millis> {
    parse_iso(s).or_else(|| {
        let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        time::PrimitiveDateTime::parse(s, &fmt)
            .ok()
            .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as Millis)
    })
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
    }

    #[test]
    fn parses_offsets_and_sqlite_form() {
        assert_eq!(parse_iso("2026-01-02T04:04:05.678+01:00"), Some(1_767_323_045_678));
        assert_eq!(parse_stored("2026-01-02 03:04:05"), Some(1_767_323_045_000));
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(normalize("2026-01-02 03:04:05"), "2026-01-02T03:04:05.000Z");
    }
}
