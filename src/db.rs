//! D1 without serde-wasm-bindgen, both ways.
//!
//! In: `q!(db, sql, a, b, …)` turns each argument into a JS value directly (`worker::query!`
//! serializes every argument through serde-wasm-bindgen, which monomorphizes per type).
//!
//! Out: [`Query::rows`]/[`Query::one`]/[`Batch::batch_rows`] keep a D1 answer as the JS value it
//! is and decode rows only when asked ([`Rows::results`]); counting `RETURNING` rows or reading
//! `meta.changes` decodes nothing. Rows are decoded by serde-wasm-bindgen, one instance per row
//! type: measured against the alternatives, it is the smallest. `JSON.stringify` + serde_json
//! (one crossing per result instead of several per field) made the Wasm 37 KiB gzip larger
//! with `from_str::<T>`, 26 KiB through a `Value`; the crossings it saves are microseconds.

use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use worker::d1::serde_wasm_bindgen;
use worker::d1::{D1Database, D1PreparedStatement};
use worker::js_sys::{Array, Reflect};
use worker::wasm_bindgen_futures::JsFuture;

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

/// Decodes one JS value (a D1 or DO SQLite row, or `null`) into `T`.
pub fn decode<T: DeserializeOwned>(value: &JsValue) -> worker::Result<T> {
    Ok(serde_wasm_bindgen::from_value(value.clone())?)
}

/// Decodes every row of a JS array.
fn decode_all<T: DeserializeOwned>(rows: &Array) -> worker::Result<Vec<T>> {
    rows.iter().map(|r| decode(&r)).collect()
}

/// One statement's answer: its rows (decoded on demand) and what it changed.
pub struct Rows(JsValue);

impl Rows {
    fn rows(&self) -> Option<Array> {
        Reflect::get(&self.0, &JsValue::from_str("results")).ok().and_then(|r| r.dyn_into::<Array>().ok())
    }

    /// The rows as `T`s.
    pub fn results<T: DeserializeOwned>(&self) -> worker::Result<Vec<T>> {
        match self.rows() {
            Some(rows) => decode_all(&rows),
            None => Ok(Vec::new()),
        }
    }

    /// How many rows the statement returned (`RETURNING` rows of a write), without decoding them.
    pub fn count(&self) -> usize {
        self.rows().map_or(0, |r| r.length() as usize)
    }

    /// How many rows the statement changed (0 when D1 reports no metadata).
    pub fn changes(&self) -> usize {
        Reflect::get(&self.0, &JsValue::from_str("meta"))
            .and_then(|m| Reflect::get(&m, &JsValue::from_str("changes")))
            .ok()
            .and_then(|c| c.as_f64())
            .map_or(0, |c| c as usize)
    }
}

async fn settle(promise: Result<worker::js_sys::Promise, JsValue>) -> worker::Result<JsValue> {
    Ok(JsFuture::from(promise?).await?)
}

/// Running a statement with its rows decoded by [`decode`].
#[allow(async_fn_in_trait)]
pub trait Query {
    /// Every row (`all()`).
    async fn rows(&self) -> worker::Result<Rows>;
    /// The first row, if any (`first()`).
    async fn one<T: DeserializeOwned>(&self) -> worker::Result<Option<T>>;
    /// Runs a write (`run()`): what it changed.
    async fn exec(&self) -> worker::Result<Rows>;
}

impl Query for D1PreparedStatement {
    async fn rows(&self) -> worker::Result<Rows> {
        Ok(Rows(settle(self.inner().all()).await?))
    }

    async fn one<T: DeserializeOwned>(&self) -> worker::Result<Option<T>> {
        decode(&settle(self.inner().first(None)).await?)
    }

    async fn exec(&self) -> worker::Result<Rows> {
        Ok(Rows(settle(self.inner().run()).await?))
    }
}

/// Batches with their rows decoded by [`decode`].
#[allow(async_fn_in_trait)]
pub trait Batch {
    /// Runs statements in one D1 batch (one round trip, one transaction): one [`Rows`] each.
    async fn batch_rows(&self, statements: Vec<D1PreparedStatement>) -> worker::Result<Vec<Rows>>;
}

impl Batch for D1Database {
    async fn batch_rows(&self, statements: Vec<D1PreparedStatement>) -> worker::Result<Vec<Rows>> {
        let list: Array = statements.iter().map(|s| JsValue::from(s.inner().clone())).collect();
        let db: &worker::worker_sys::D1Database = AsRef::<JsValue>::as_ref(self).unchecked_ref();
        let answer = settle(db.batch(list)).await?;
        Ok(answer.dyn_into::<Array>()?.iter().map(Rows).collect())
    }
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

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A Durable Object's `ctx.storage.sql`.
    type SqlJs;
    #[wasm_bindgen(method, catch, variadic, js_name = exec)]
    fn exec(this: &SqlJs, query: &str, args: Array) -> Result<SqlCursorJs, JsValue>;
    type SqlCursorJs;
    #[wasm_bindgen(method, catch, js_name = toArray)]
    fn to_array(this: &SqlCursorJs) -> Result<Array, JsValue>;
}

/// Runs a Durable Object SQLite statement to its end: its rows, still in JS.
pub fn sql_run(sql: &worker::SqlStorage, query: &str, args: Vec<worker::SqlStorageValue>) -> worker::Result<Array> {
    let sql: &SqlJs = sql.as_ref().unchecked_ref();
    let args: Array = args.into_iter().map(JsValue::from).collect();
    Ok(sql.exec(query, args)?.to_array()?)
}

/// A Durable Object SQLite statement's rows as `T`s (decoded by [`decode`]).
pub fn sql_rows<T: DeserializeOwned>(
    sql: &worker::SqlStorage,
    query: &str,
    args: Vec<worker::SqlStorageValue>,
) -> worker::Result<Vec<T>> {
    decode_all(&sql_run(sql, query, args)?)
}

/// Runs `f` inside the storage's `transactionSync`: its SQL commits together, or not at all when
/// it fails (`BEGIN` is refused on DO SQLite, and workers-rs 0.8 does not wrap this call).
pub fn atomically<T: 'static>(
    state: &worker::State,
    f: impl FnOnce() -> worker::Result<T> + 'static,
) -> worker::Result<T> {
    use std::cell::RefCell;
    use std::rc::Rc;
    use worker::js_sys::{Function, Reflect};
    use worker::wasm_bindgen::{closure::Closure, JsCast, JsValue};
    let raw: &JsValue = state.as_raw().as_ref();
    let storage = Reflect::get(raw, &"storage".into())?;
    let tx: Function = Reflect::get(&storage, &"transactionSync".into())?.dyn_into()?;
    let out: Rc<RefCell<Option<worker::Result<T>>>> = Rc::default();
    let slot = out.clone();
    let cb = Closure::once(move || -> std::result::Result<JsValue, JsValue> {
        let r = f();
        // Throwing makes the runtime roll the transaction back.
        let failed = r.as_ref().err().map(|e| e.to_string());
        *slot.borrow_mut() = Some(r);
        match failed {
            Some(m) => Err(JsValue::from_str(&m)),
            None => Ok(JsValue::UNDEFINED),
        }
    });
    let called = tx.call1(&storage, cb.as_ref().unchecked_ref());
    let result = out.borrow_mut().take();
    match (result, called) {
        (Some(r), _) => r,
        (None, Err(e)) => Err(worker::Error::JsError(format!("transaction failed: {e:?}"))),
        (None, Ok(_)) => Err(worker::Error::RustError("transaction callback did not run".into())),
    }
}
