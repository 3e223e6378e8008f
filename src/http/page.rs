//! Keyset pagination: lists take `limit` (1–100) and an opaque `cursor`, and answer with
//! the items, `hasMore`, and `cursor` when more exist.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::{ApiError, ApiResult};
use crate::db::Query as _;
use worker::d1::D1Database;

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

/// `limit` and `cursor` of a newest-first list, parsed once.
pub struct PageQuery {
    pub limit: u32,
    /// Rows strictly after this `(created_at, id)` position are returned.
    pub after_created: String,
    pub after_id: String,
}

impl PageQuery {
    pub fn parse(query: &super::input::Query, default_limit: u32) -> ApiResult<Self> {
        let limit = query.limit(default_limit)?;
        let (after_created, after_id) = start_after(query.get("cursor"))?;
        Ok(PageQuery { limit, after_created, after_id })
    }

    /// How many rows to fetch: one more than the page, to learn whether more exist.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }
}

/// A row of a keyset-paginated list.
pub trait Keyed {
    fn created_at(&self) -> &str;
    fn id(&self) -> &str;
}

/// `{<key>: [...], hasMore, cursor?}` from up to `limit + 1` fetched rows.
pub fn page_body<T: Keyed>(
    key: &str,
    rows: &[T],
    limit: u32,
    view: impl Fn(&T) -> serde_json::Value,
) -> serde_json::Value {
    let has_more = rows.len() > limit as usize;
    let items = &rows[..rows.len().min(limit as usize)];
    let mut body = serde_json::json!({ key: items.iter().map(view).collect::<Vec<_>>(), "hasMore": has_more });
    if let (true, Some(last)) = (has_more, items.last()) {
        body["cursor"] = serde_json::json!(encode_cursor(last.created_at(), last.id()));
    }
    body
}

/// One newest-first page (keyset on `created_at, id`): `select` is `SELECT … FROM … WHERE …`
/// whose condition uses `?1` (bound to `owner`); the page's position and size are added here.
pub async fn newest_first<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    select: &str,
    owner: &str,
    page: &PageQuery,
) -> worker::Result<Vec<T>> {
    let sql = format!(
        "{select} AND (created_at < ?2 OR (created_at = ?2 AND ?3 <> '' AND id < ?3)) ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    crate::q!(db, &sql, &owner, &page.after_created, &page.after_id, &page.fetch())?.rows().await?.results()
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

    struct R(&'static str, &'static str);
    impl Keyed for R {
        fn created_at(&self) -> &str {
            self.0
        }
        fn id(&self) -> &str {
            self.1
        }
    }

    #[test]
    fn page_bodies() {
        let rows = [R("t3", "c"), R("t2", "b"), R("t1", "a")];
        let body = page_body("items", &rows, 2, |r| serde_json::json!(r.1));
        assert_eq!(body["items"], serde_json::json!(["c", "b"]));
        assert_eq!(body["hasMore"], true);
        assert_eq!(decode_cursor(body["cursor"].as_str().unwrap()).unwrap(), ("t2".into(), "b".into()));
        let last = page_body("items", &rows[..1], 2, |r| serde_json::json!(r.1));
        assert_eq!((last["hasMore"].as_bool(), last.get("cursor")), (Some(false), None));
    }
}
