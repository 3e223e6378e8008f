//! Keyset pagination: lists take `limit` (1–100) and an opaque `cursor`, and answer with
//! the items, `hasMore`, and `cursor` when more exist.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::{ApiError, ApiResult};

/// Opaque cursor: base64url of `<createdAt>|<id>` of the last item returned.
pub fn encode_cursor(created_at: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}|{id}"))
}

/// The `(createdAt, id)` position after which the next page starts.
pub fn decode_cursor(cursor: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::invalid_field("cursor", "Invalid cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (a, b) = text.split_once('|').ok_or_else(bad)?;
    Ok((a.to_string(), b.to_string()))
}

/// The keyset start for newest-first lists: the cursor's position, or "after the end of time".
pub fn start_after(cursor: Option<&str>) -> ApiResult<(String, String)> {
    match cursor {
        Some(c) => decode_cursor(c),
        None => Ok(("\u{10FFFF}".to_string(), String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor("2026-01-01T00:00:00.000Z", "abc");
        assert_eq!(decode_cursor(&c).unwrap(), ("2026-01-01T00:00:00.000Z".into(), "abc".into()));
        assert_eq!(decode_cursor("!!!").unwrap_err().code, "VALIDATION_ERROR");
        assert!(decode_cursor("bm9waXBl").is_err());
        assert_eq!(start_after(None).unwrap().1, "");
    }
}
