//! Binding values to D1 statements without a serializer: `q!(db, sql, a, b, …)` turns each
//! argument into a JS value directly. (`worker::query!` serializes every argument through
//! serde-wasm-bindgen, which monomorphizes per type and was the largest dependency in the
//! Wasm binary.)

use wasm_bindgen::JsValue;
use worker::d1::{D1Database, D1PreparedStatement};

/// A value that can be bound to a `?N` placeholder.
pub trait Bind {
    fn js(&self) -> JsValue;
}

impl Bind for str {
    fn js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Bind for String {
    fn js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl Bind for bool {
    fn js(&self) -> JsValue {
        JsValue::from_bool(*self)
    }
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            // D1 numbers are JS numbers; every value bound here is far below 2^53.
            fn js(&self) -> JsValue {
                JsValue::from_f64(*self as f64)
            }
        }
    )*};
}
numbers!(i32, i64, u32, u64, usize);

impl<T: Bind + ?Sized> Bind for &T {
    fn js(&self) -> JsValue {
        (**self).js()
    }
}

impl<T: Bind> Bind for Option<T> {
    fn js(&self) -> JsValue {
        match self {
            Some(v) => v.js(),
            None => JsValue::NULL,
        }
    }
}

/// How many rows a `run()` changed (0 when D1 reports no metadata).
pub fn changes(result: &worker::d1::D1Result) -> worker::Result<usize> {
    Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// Prepares `sql` with its arguments bound in order.
pub fn prepare(db: &D1Database, sql: &str, args: &[JsValue]) -> worker::Result<D1PreparedStatement> {
    db.prepare(sql).bind(args)
}

/// `q!(&db, "… ?1 … ?2", &a, &b)` → `Result<D1PreparedStatement>`.
#[macro_export]
macro_rules! q {
    ($db:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::db::prepare($db, $sql, &[$($crate::db::Bind::js($arg)),*])
    };
}

/// One newest-first page (keyset on `created_at, id`): `select` is `SELECT … FROM … WHERE …`
/// whose condition uses `?1` (bound to `owner`); the page's position and size are added here.
pub async fn newest_first<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    select: &str,
    owner: &str,
    page: &crate::http::page::PageQuery,
) -> worker::Result<Vec<T>> {
    let sql = format!(
        "{select} AND (created_at < ?2 OR (created_at = ?2 AND ?3 <> '' AND id < ?3)) ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    crate::q!(db, &sql, &owner, &page.after_created, &page.after_id, &page.fetch())?.all().await?.results()
}
