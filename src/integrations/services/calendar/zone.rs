//! Time zones without a tz database in the Worker: the [`Zone`] trait, a fixed offset (tests),
//! and `IntlZone`, which asks the runtime's `Intl` for each offset; civil dates to UTC.

use super::invalid;
use crate::integrations::service::ServiceError;

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
        let day = days_from_civil(f[0] as i32, f[1] as u32, f[2] as u32);
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
        name.parse::<chrono_tz::Tz>()
            .map(|tz| Box::new(super::tests::TzZone(tz)) as Box<dyn Zone>)
            .map_err(|_| unknown())
    }
    #[cfg(all(not(test), not(target_arch = "wasm32")))]
    {
        Err(unknown())
    }
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

pub(super) const MINUTE_MS: i64 = 60_000;
pub(super) const DAY_MS: i64 = 86_400_000;

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
