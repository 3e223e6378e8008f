//! The channels store: every query of `channel_bindings`, so handlers read as steps. A binding
//! leads one of a user's channels (by its scope key) to one of their sessions.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::d1::{D1Database, D1PreparedStatement};

use crate::http::page::{Keyed, PageQuery};
use crate::http::{ApiError, ApiResult};
use crate::sessions::store::FINISHED_STATUSES;
use crate::time::normalize;

/// Channel bindings one user may have.
pub const MAX_BINDINGS: i64 = 200;

#[derive(Debug, Clone, Deserialize)]
pub struct BindingRow {
    pub id: String,
    pub session_id: String,
    pub channel_type: String,
    pub channel_id: String,
    pub scope_key: String,
    pub queue_mode: String,
    pub collect_debounce_ms: i64,
    pub created_at: String,
}

const BINDING_COLUMNS: &str =
    "id, session_id, channel_type, channel_id, scope_key, queue_mode, collect_debounce_ms, created_at";

impl Keyed for BindingRow {
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl BindingRow {
    pub fn view(&self) -> Value {
        json!({
            "id": self.id, "sessionId": self.session_id, "channelType": self.channel_type, "channelId": self.channel_id,
            "scopeKey": self.scope_key, "queueMode": self.queue_mode, "collectDebounceMs": self.collect_debounce_ms,
            "createdAt": normalize(&self.created_at),
        })
    }
}

/// The caller's binding, or 404 (another user's binding is indistinguishable from none).
pub async fn owned_binding(db: &D1Database, user_id: &str, id: &str) -> ApiResult<BindingRow> {
    let row: Option<BindingRow> = crate::q!(
        db,
        &format!("SELECT {BINDING_COLUMNS} FROM channel_bindings WHERE id = ?1 AND user_id = ?2"),
        &id,
        &user_id
    )?
    .one()
    .await?;
    row.ok_or_else(|| ApiError::not_found(format!("Binding with id '{id}' not found")))
}

/// The user's bindings, newest first, one page.
pub async fn list(db: &D1Database, user_id: &str, page: &PageQuery) -> ApiResult<Vec<BindingRow>> {
    let select = format!("SELECT {BINDING_COLUMNS} FROM channel_bindings WHERE user_id = ?1");
    Ok(crate::http::page::newest_first(db, &select, user_id, page).await?)
}

/// A new binding of one of the user's channels.
pub struct NewBinding<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub channel_type: &'a str,
    pub channel_id: &'a str,
    pub scope_key: &'a str,
    pub user_id: &'a str,
    pub queue_mode: &'a str,
    pub collect_debounce_ms: i64,
    pub now: &'a str,
}

/// Why a binding was not created.
pub enum NotCreated {
    /// The user already has [`MAX_BINDINGS`].
    Limit,
    /// That channel is already bound.
    Exists,
}

/// Creates a binding unless the user is at the limit or the channel is bound already.
pub async fn insert(db: &D1Database, b: &NewBinding<'_>) -> ApiResult<Result<(), NotCreated>> {
    let result = crate::q!(
        db,
        "INSERT INTO channel_bindings (id, session_id, channel_type, channel_id, scope_key, user_id, queue_mode, collect_debounce_ms, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9 WHERE (SELECT COUNT(*) FROM channel_bindings WHERE user_id = ?6) < ?10
         ON CONFLICT DO NOTHING",
        &b.id,
        &b.session_id,
        &b.channel_type,
        &b.channel_id,
        &b.scope_key,
        &b.user_id,
        &b.queue_mode,
        &b.collect_debounce_ms,
        &b.now,
        &MAX_BINDINGS
    )?
    .exec()
    .await?;
    if result.changes() > 0 {
        return Ok(Ok(()));
    }
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let count: Option<Count> =
        crate::q!(db, "SELECT COUNT(*) AS n FROM channel_bindings WHERE user_id = ?1", &b.user_id)?.one().await?;
    Ok(Err(if count.is_some_and(|c| c.n >= MAX_BINDINGS) { NotCreated::Limit } else { NotCreated::Exists }))
}

/// The statement that binds a new session's `web` channel (run in the session's own batch).
pub fn insert_web_binding(
    db: &D1Database,
    session_id: &str,
    scope_key: &str,
    user_id: &str,
    now: &str,
) -> ApiResult<D1PreparedStatement> {
    Ok(crate::q!(
        db,
        "INSERT INTO channel_bindings (id, session_id, channel_type, channel_id, scope_key, user_id, queue_mode, collect_debounce_ms, created_at, updated_at)
         VALUES (?1, ?2, 'web', ?2, ?3, ?4, 'followup', 3000, ?5, ?5)",
        &uuid::Uuid::new_v4().to_string(),
        &session_id,
        &scope_key,
        &user_id,
        &now
    )?)
}

/// What a binding update changes (each kept when `None`).
pub struct Change<'a> {
    pub queue_mode: Option<&'a str>,
    pub collect_debounce_ms: Option<i64>,
    pub session_id: Option<&'a str>,
}

pub async fn update(db: &D1Database, user_id: &str, id: &str, c: &Change<'_>, now: &str) -> ApiResult<()> {
    crate::q!(
        db,
        "UPDATE channel_bindings SET queue_mode = COALESCE(?1, queue_mode), collect_debounce_ms = COALESCE(?2, collect_debounce_ms),
           session_id = COALESCE(?3, session_id), updated_at = ?4 WHERE id = ?5 AND user_id = ?6",
        &c.queue_mode,
        &c.collect_debounce_ms,
        &c.session_id,
        &now,
        &id,
        &user_id
    )?
    .exec()
    .await?;
    Ok(())
}

pub async fn delete(db: &D1Database, user_id: &str, id: &str) -> ApiResult<()> {
    crate::q!(db, "DELETE FROM channel_bindings WHERE id = ?1 AND user_id = ?2", &id, &user_id)?.exec().await?;
    Ok(())
}

/// A channel's binding and its session's status: where a message on that channel goes.
#[derive(Debug, Clone, Deserialize)]
pub struct Bound {
    pub session_id: String,
    pub channel_type: String,
    pub channel_id: String,
    pub queue_mode: String,
    pub collect_debounce_ms: i64,
    pub status: String,
}

impl Bound {
    /// A binding to a finished session no longer routes (its prompts would wait forever).
    pub fn is_live(&self) -> bool {
        !FINISHED_STATUSES.contains(&self.status.as_str())
    }
}

/// The statement that finds the binding of the user's channel `scope_key` (channels run it in
/// one batch with their other reads); its rows are [`Bound`].
pub fn bound_query(db: &D1Database, scope_key: &str, user_id: &str) -> ApiResult<D1PreparedStatement> {
    Ok(crate::q!(
        db,
        "SELECT b.session_id, b.channel_type, b.channel_id, b.queue_mode, b.collect_debounce_ms, s.status
           FROM channel_bindings b JOIN sessions s ON s.id = b.session_id
          WHERE b.scope_key = ?1 AND b.user_id = ?2 AND s.user_id = ?2",
        &scope_key,
        &user_id
    )?)
}

/// The binding of the user's channel `scope_key`, if any.
pub async fn bound(db: &D1Database, scope_key: &str, user_id: &str) -> ApiResult<Option<Bound>> {
    Ok(bound_query(db, scope_key, user_id)?.one().await?)
}
