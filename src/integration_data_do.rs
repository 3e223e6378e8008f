//! `IntegrationData`: one SQLite-backed Durable Object per integration (named by its id) holding
//! that integration's synced entities, their FTS5 index, its sync checkpoints and the fencing
//! epoch of its runs. Each object has its own database (10 GB on Cloudflare), so storage and
//! write throughput grow with the number of integrations instead of sharing one D1 primary.
//! The protocol is `integrations::data`.
//!
//! Every write of a request runs inside `transactionSync` (`db::atomically`): a page is applied
//! whole or not at all. The index is kept by triggers in the same transaction as the entities.

use serde::Deserialize;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State};

use crate::db::{atomically, sql_rows, sql_run};
use crate::integrations::data::{
    Checkpoint, CommitRequest, Committed, EntitiesPage, EntitiesRequest, EntityRow, ForgetRequest, Forgotten, Hit,
    Hits, ImportRequest, ParentRow, RawItem, SearchRequest, StartRequest, Started, Stats, UpsertRequest, COMMIT, DROP,
    ENTITIES, FORGET, IMPORT, SEARCH, START, STATS, UPSERT,
};

/// Entities marked deleted are kept this long (so clients that page with `includeDeleted` see
/// deletions), then purged by the object's alarm.
const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// How often the alarm looks for deleted entities to purge.
const PURGE_EVERY_MS: i64 = 24 * 3600 * 1000;

/// Items go into one statement as a JSON array of at most this much text (a bound value and a
/// row are limited to 2 MB on Durable Object SQLite).
const CHUNK_BYTES: usize = 512 * 1024;

/// The schema. What is searchable is read from an entity's JSON by field name, for every
/// service alike: the title is the first non-empty of title, subject, summary, full_name, the
/// first line of message, name; the body joins from, description, location, body (or snippet)
/// and message, at most 32,768 characters. `\x02`/`\x03` are the snippets' highlight markers.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
  doc INTEGER PRIMARY KEY,
  entity_type TEXT NOT NULL, external_id TEXT NOT NULL, data TEXT NOT NULL,
  first_seen_at TEXT NOT NULL, last_modified_at TEXT NOT NULL, synced_at TEXT NOT NULL,
  deleted_at TEXT, seen_run TEXT, parent TEXT NOT NULL DEFAULT '',
  UNIQUE (entity_type, external_id));
CREATE INDEX IF NOT EXISTS idx_entities_parent ON entities(entity_type, parent);
CREATE INDEX IF NOT EXISTS idx_entities_modified ON entities(entity_type, last_modified_at);
CREATE TABLE IF NOT EXISTS checkpoints (
  entity_type TEXT NOT NULL, parent TEXT NOT NULL DEFAULT '', cursor TEXT NOT NULL, updated_at TEXT NOT NULL,
  PRIMARY KEY (entity_type, parent));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIEW IF NOT EXISTS search_text AS
SELECT doc, deleted_at,
       substr(trim(replace(replace(COALESCE(
         NULLIF(CAST(json_extract(j, '$.title') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.subject') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.summary') AS TEXT), ''),
         NULLIF(CAST(json_extract(j, '$.full_name') AS TEXT), ''),
         NULLIF(substr(CAST(json_extract(j, '$.message') AS TEXT), 1,
                       instr(CAST(json_extract(j, '$.message') AS TEXT) || char(10), char(10)) - 1), ''),
         NULLIF(CAST(json_extract(j, '$.name') AS TEXT), ''),
         ''), char(2), ''), char(3), '')), 1, 1000) AS title,
       substr(trim(replace(replace(
         COALESCE(CAST(json_extract(j, '$.from') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.description') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.location') AS TEXT) || ' ', '') ||
         COALESCE(NULLIF(CAST(json_extract(j, '$.body') AS TEXT), '') || ' ', CAST(json_extract(j, '$.snippet') AS TEXT) || ' ', '') ||
         COALESCE(CAST(json_extract(j, '$.message') AS TEXT), ''),
         char(2), ''), char(3), '')), 1, 32768) AS body
  FROM (SELECT doc, deleted_at,
               CASE WHEN NOT json_valid(data) THEN '{}' WHEN json_type(data) = 'object' THEN data ELSE '{}' END AS j
          FROM entities);
CREATE TRIGGER IF NOT EXISTS entities_indexed AFTER INSERT ON entities
BEGIN
  INSERT INTO search (rowid, title, body) SELECT doc, title, body FROM search_text
   WHERE doc = new.doc AND deleted_at IS NULL AND (title <> '' OR body <> '');
END;
CREATE TRIGGER IF NOT EXISTS entities_reindexed AFTER UPDATE OF data, deleted_at ON entities
WHEN old.data IS NOT new.data OR (old.deleted_at IS NULL) <> (new.deleted_at IS NULL)
BEGIN
  DELETE FROM search WHERE rowid = old.doc;
  INSERT INTO search (rowid, title, body) SELECT doc, title, body FROM search_text
   WHERE doc = new.doc AND deleted_at IS NULL AND (title <> '' OR body <> '');
END;
CREATE TRIGGER IF NOT EXISTS entities_unindexed AFTER DELETE ON entities
BEGIN
  DELETE FROM search WHERE rowid = old.doc;
END;
";

/// The upsert of a chunk of items (`?4`, a JSON array of `{e, d, m, p}`): an older version
/// never overwrites a newer one, but a run still records that it saw the entity.
const UPSERT_SQL: &str = "
INSERT INTO entities (entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, seen_run, parent)
SELECT ?1, json_extract(j.value, '$.e'), json_extract(j.value, '$.d'), ?2,
       COALESCE(NULLIF(json_extract(j.value, '$.m'), ''), ?2), ?2, ?3, COALESCE(json_extract(j.value, '$.p'), '')
  FROM json_each(?4) j WHERE true
ON CONFLICT(entity_type, external_id) DO UPDATE SET
  data = CASE WHEN excluded.last_modified_at >= entities.last_modified_at THEN excluded.data ELSE entities.data END,
  last_modified_at = MAX(excluded.last_modified_at, entities.last_modified_at),
  synced_at = excluded.synced_at, deleted_at = NULL, seen_run = COALESCE(excluded.seen_run, entities.seen_run),
  parent = excluded.parent";

#[durable_object]
pub struct IntegrationData {
    state: State,
}

type Sql = SqlStorage;

fn exec(sql: &Sql, query: &str, args: Vec<SqlStorageValue>) -> Result<()> {
    sql_run(sql, query, args).map(|_| ())
}

fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": message, "code": code }))?.with_status(status))
}

/// A meta value (the epoch, the dropped mark).
fn meta(sql: &Sql, key: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct V {
        value: i64,
    }
    let rows: Vec<V> = sql_rows(sql, "SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
    Ok(rows.first().map_or(0, |v| v.value))
}

fn set_meta(sql: &Sql, key: &str, value: i64) -> Result<()> {
    exec(
        sql,
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        vec![key.into(), value.into()],
    )
}

fn live_entities(sql: &Sql) -> Result<i64> {
    #[derive(Deserialize)]
    struct N {
        n: i64,
    }
    let rows: Vec<N> = sql_rows(sql, "SELECT COUNT(*) AS n FROM entities WHERE deleted_at IS NULL", vec![])?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// Upserts live items and marks deleted ones, in chunks under the bound-value limit.
fn apply_items(sql: &Sql, entity: &str, items: &[RawItem], run: Option<&str>, now: &str) -> Result<()> {
    let (gone, live): (Vec<&RawItem>, Vec<&RawItem>) = items.iter().partition(|i| i.x);
    let mut chunk = String::from("[");
    let flush = |chunk: &mut String| -> Result<()> {
        if chunk.len() > 1 {
            chunk.push(']');
            let run: SqlStorageValue = run.map_or(SqlStorageValue::Null, Into::into);
            exec(sql, UPSERT_SQL, vec![entity.into(), now.into(), run, std::mem::take(chunk).into()])?;
        }
        chunk.clear();
        chunk.push('[');
        Ok(())
    };
    for i in live {
        if chunk.len() > 1 {
            chunk.push(',');
        }
        chunk.push_str(&serde_json::to_string(i)?);
        if chunk.len() >= CHUNK_BYTES {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    if !gone.is_empty() {
        let ids = serde_json::to_string(&gone.iter().map(|i| i.e.as_str()).collect::<Vec<_>>())?;
        exec(
            sql,
            "UPDATE entities SET deleted_at = ? WHERE entity_type = ? AND deleted_at IS NULL
               AND external_id IN (SELECT value FROM json_each(?))",
            vec![now.into(), entity.into(), ids.into()],
        )?;
    }
    Ok(())
}

/// What a request asks, decoded; `Err` is answered as 400.
fn body<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid request: {e}"))
}

impl IntegrationData {
    fn sql(&self) -> Sql {
        self.state.storage().sql()
    }

    fn dropped(&self) -> Result<bool> {
        Ok(meta(&self.sql(), "dropped")? != 0)
    }

    /// A page of a run: refused when its epoch is older than the newest accepted.
    fn commit(&self, req: CommitRequest<Box<serde_json::value::RawValue>>) -> Result<Response> {
        let sql = self.sql();
        let outcome = atomically(&self.state, move || {
            if meta(&sql, "epoch")? > req.epoch {
                return Ok(None);
            }
            set_meta(&sql, "epoch", req.epoch)?;
            apply_items(&sql, &req.entity, &req.items, Some(&req.run), &req.now)?;
            if let Some(Checkpoint { parent, cursor }) = &req.checkpoint {
                exec(
                    &sql,
                    "INSERT INTO checkpoints (entity_type, parent, cursor, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT(entity_type, parent) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    vec![req.entity.as_str().into(), parent.as_str().into(), cursor.as_str().into(), req.now.as_str().into()],
                )?;
            }
            if let Some(parent) = &req.sweep_parent {
                exec(
                    &sql,
                    "UPDATE entities SET deleted_at = ? WHERE entity_type = ? AND parent = ? AND deleted_at IS NULL
                       AND (seen_run IS NULL OR seen_run <> ?)",
                    vec![
                        req.now.as_str().into(),
                        req.entity.as_str().into(),
                        parent.as_str().into(),
                        req.run.as_str().into(),
                    ],
                )?;
            }
            if let Some(parents) = &req.sweep_orphans {
                exec(
                    &sql,
                    "UPDATE entities SET deleted_at = ? WHERE entity_type = ? AND deleted_at IS NULL
                       AND parent NOT IN (SELECT value FROM json_each(?))",
                    vec![req.now.as_str().into(), req.entity.as_str().into(), serde_json::to_string(parents)?.into()],
                )?;
            }
            Ok(Some(()))
        })?;
        match outcome {
            Some(()) => Response::from_json(&Committed {}),
            None => json_error(409, "STALE_EPOCH", "A newer lease has committed to this integration"),
        }
    }

    fn start(&self, req: StartRequest) -> Result<Response> {
        let sql = self.sql();
        let checkpoints: Vec<Checkpoint> = sql_rows(
            &sql,
            "SELECT parent, cursor FROM checkpoints WHERE entity_type = ?",
            vec![req.entity.as_str().into()],
        )?;
        let parents = match req.parent {
            None => None,
            Some(p) => {
                let only_if: SqlStorageValue = p.only_if.map_or(SqlStorageValue::Null, Into::into);
                Some(sql_rows::<ParentRow>(
                    &sql,
                    "SELECT json_extract(data, ?1) AS k, external_id AS id FROM entities WHERE entity_type = ?2
                       AND deleted_at IS NULL AND (?3 IS NULL OR json_extract(data, ?3) = 1) ORDER BY external_id",
                    vec![p.key.into(), p.entity.into(), only_if],
                )?)
            }
        };
        Response::from_json(&Started { checkpoints, parents })
    }

    fn upsert(&self, req: UpsertRequest<Box<serde_json::value::RawValue>>) -> Result<Response> {
        let sql = self.sql();
        atomically(&self.state, move || {
            for g in &req.groups {
                apply_items(&sql, &g.entity, &g.items, None, &req.now)?;
            }
            Ok(())
        })?;
        Response::from_json(&Committed {})
    }

    /// Rows from D1: each one kept unless the object already holds a newer version (a webhook
    /// or action that wrote here during the move), so importing twice changes nothing.
    fn import(&self, req: ImportRequest) -> Result<Response> {
        let sql = self.sql();
        atomically(&self.state, move || {
            let rows = serde_json::to_string(&req.rows)?;
            exec(
                &sql,
                "INSERT INTO entities (entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, deleted_at, seen_run, parent)
                 SELECT json_extract(j.value, '$.entity_type'), json_extract(j.value, '$.external_id'), json_extract(j.value, '$.data'),
                        json_extract(j.value, '$.first_seen_at'), json_extract(j.value, '$.last_modified_at'),
                        json_extract(j.value, '$.synced_at'), json_extract(j.value, '$.deleted_at'),
                        json_extract(j.value, '$.seen_run'), COALESCE(json_extract(j.value, '$.parent'), '')
                   FROM json_each(?) j WHERE true
                 ON CONFLICT(entity_type, external_id) DO UPDATE SET
                   data = excluded.data, last_modified_at = excluded.last_modified_at, synced_at = excluded.synced_at,
                   deleted_at = excluded.deleted_at, seen_run = excluded.seen_run, parent = excluded.parent,
                   first_seen_at = MIN(entities.first_seen_at, excluded.first_seen_at)
                 WHERE excluded.last_modified_at > entities.last_modified_at",
                vec![rows.into()],
            )?;
            for c in &req.checkpoints {
                exec(
                    &sql,
                    "INSERT INTO checkpoints (entity_type, parent, cursor, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT(entity_type, parent) DO NOTHING",
                    vec![
                        c.entity_type.as_str().into(),
                        c.parent.as_str().into(),
                        c.cursor.as_str().into(),
                        c.updated_at.as_str().into(),
                    ],
                )?;
            }
            Ok(())
        })?;
        Response::from_json(&Committed {})
    }

    fn entities(&self, req: EntitiesRequest) -> Result<Response> {
        let modified_after: SqlStorageValue = req.modified_after.map_or(SqlStorageValue::Null, Into::into);
        let rows: Vec<EntityRow> = sql_rows(
            &self.sql(),
            "SELECT external_id, data, first_seen_at, last_modified_at, deleted_at FROM entities
              WHERE entity_type = ?1 AND external_id > ?2 AND (?3 IS NULL OR last_modified_at > ?3)
                AND (?4 OR deleted_at IS NULL)
              ORDER BY external_id LIMIT ?5",
            vec![
                req.entity.into(),
                req.after.into(),
                modified_after,
                i64::from(req.include_deleted).into(),
                i64::from(req.limit.min(1001)).into(),
            ],
        )?;
        Response::from_json(&EntitiesPage { rows })
    }

    /// Best first: bm25 with a title match weighing four times a body match; equal ranks in
    /// key order, so a page can start exactly after the last one.
    fn search(&self, req: SearchRequest) -> Result<Response> {
        let (rank, ties, key) = match &req.after {
            Some(a) => {
                (SqlStorageValue::Float(a.rank), a.ties, a.key.clone().map_or(SqlStorageValue::Null, Into::into))
            }
            None => (SqlStorageValue::Null, true, SqlStorageValue::Null),
        };
        let entity_type: SqlStorageValue = req.entity_type.map_or(SqlStorageValue::Null, Into::into);
        let result = sql_rows::<Hit>(
            &self.sql(),
            "SELECT entity_type, external_id, last_modified_at, title, body_snippet, title_snippet, r AS rank FROM (
               SELECT e.entity_type, e.external_id, e.last_modified_at, f.title,
                      snippet(search, 1, char(2), char(3), '…', 24) AS body_snippet,
                      snippet(search, 0, char(2), char(3), '…', 24) AS title_snippet,
                      bm25(search, 4.0, 1.0) AS r,
                      e.entity_type || char(31) || e.external_id AS k
                 FROM search f JOIN entities e ON e.doc = f.rowid
                WHERE search MATCH ?1 AND e.deleted_at IS NULL AND (?2 IS NULL OR e.entity_type = ?2))
             WHERE ?3 IS NULL OR r > ?3 OR (?4 AND r = ?3 AND (?5 IS NULL OR k > ?5))
             ORDER BY r, k LIMIT ?6",
            vec![
                req.query.into(),
                entity_type,
                rank,
                i64::from(ties).into(),
                key,
                i64::from(req.limit.min(101)).into(),
            ],
        );
        match result {
            Ok(hits) => Response::from_json(&Hits { hits }),
            // `fts_query` only builds valid expressions; should FTS5 still refuse one, that is
            // the query's fault.
            Err(e) if e.to_string().contains("fts5") => {
                json_error(400, "INVALID_QUERY", "This query cannot be searched")
            }
            Err(e) => Err(e),
        }
    }

    /// A parent and every entity under it, deleted outright (with their index rows).
    fn forget(&self, req: ForgetRequest) -> Result<Response> {
        let sql = self.sql();
        let deleted = atomically(&self.state, move || {
            #[derive(Deserialize)]
            struct K {
                k: Option<String>,
            }
            let keys: Vec<K> = sql_rows(
                &sql,
                "SELECT json_extract(data, ?1) AS k FROM entities WHERE entity_type = ?2 AND external_id = ?3",
                vec![req.key.as_str().into(), req.entity.as_str().into(), req.id.as_str().into()],
            )?;
            let mut n = 0;
            if let Some(key) = keys.into_iter().next().and_then(|k| k.k) {
                n += sql_run(
                    &sql,
                    "DELETE FROM entities WHERE parent = ?1 AND entity_type <> ?2 RETURNING 1",
                    vec![key.into(), req.entity.as_str().into()],
                )?
                .length();
            }
            n += sql_run(
                &sql,
                "DELETE FROM entities WHERE entity_type = ?1 AND external_id = ?2 RETURNING 1",
                vec![req.entity.as_str().into(), req.id.as_str().into()],
            )?
            .length();
            Ok(i64::from(n))
        })?;
        Response::from_json(&Forgotten { deleted })
    }

    fn stats(&self) -> Result<Response> {
        let sql = self.sql();
        let stats = Stats { bytes: sql.database_size() as u64, entities: live_entities(&sql)? };
        Response::from_json(&stats)
    }

    /// Deletes the integration's data; the object keeps only a mark that refuses later writes
    /// (a late queue message of a deleted integration).
    async fn drop_all(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        let sql = self.sql();
        sql.exec(SCHEMA, None)?;
        set_meta(&sql, "dropped", 1)?;
        Response::from_json(&json!({ "dropped": true }))
    }

    /// Deletions are purged after the retention: an alarm is set when none is.
    async fn schedule_purge(&self) -> Result<()> {
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(std::time::Duration::from_millis(PURGE_EVERY_MS as u64)).await?;
        }
        Ok(())
    }

    async fn handle(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let text = req.text().await?;
        let writes = [COMMIT, UPSERT, IMPORT, FORGET];
        if writes.contains(&path.as_str()) && self.dropped()? {
            return json_error(410, "DROPPED", "This integration was deleted");
        }
        macro_rules! parse {
            () => {
                match body(&text) {
                    Ok(b) => b,
                    Err(m) => return json_error(400, "INVALID_REQUEST", &m),
                }
            };
        }
        if writes.contains(&path.as_str()) {
            self.schedule_purge().await?;
        }
        match path.as_str() {
            COMMIT => self.commit(parse!()),
            START => self.start(parse!()),
            UPSERT => self.upsert(parse!()),
            IMPORT => self.import(parse!()),
            ENTITIES => self.entities(parse!()),
            SEARCH => self.search(parse!()),
            STATS => self.stats(),
            FORGET => self.forget(parse!()),
            DROP => self.drop_all().await,
            _ => json_error(404, "NOT_FOUND", "Unknown operation"),
        }
    }
}

impl DurableObject for IntegrationData {
    fn new(state: State, _env: Env) -> Self {
        // `exec` is synchronous, so the schema exists before the first request is served.
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            crate::config::log_error(&format!("IntegrationData schema setup failed: {e}"));
        }
        IntegrationData { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.handle(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                crate::config::log_error(&format!("IntegrationData failure: {e}"));
                json_error(500, "INTERNAL_ERROR", "Internal error")
            }
        }
    }

    /// Purges entities deleted longer ago than the retention; comes back while deletions remain.
    async fn alarm(&self) -> Result<Response> {
        let sql = self.sql();
        let horizon = crate::time::iso(crate::time::now_ms() - RETENTION_MS);
        exec(&sql, "DELETE FROM entities WHERE deleted_at IS NOT NULL AND deleted_at <= ?", vec![horizon.into()])?;
        #[derive(Deserialize)]
        struct N {
            n: i64,
        }
        let left: Vec<N> = sql_rows(&sql, "SELECT COUNT(*) AS n FROM entities WHERE deleted_at IS NOT NULL", vec![])?;
        if left.first().is_some_and(|l| l.n > 0) {
            self.state.storage().set_alarm(std::time::Duration::from_millis(PURGE_EVERY_MS as u64)).await?;
        }
        Response::ok("")
    }
}
