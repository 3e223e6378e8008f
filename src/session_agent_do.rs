//! `SessionAgent`: one SQLite-backed Durable Object per session (named by session id). It
//! stores every message it receives, keeps the prompt queue (followup / collect / steer), a
//! log of notifications, and lets a runner claim and complete prompts.
//!
//! Each request runs its SQL without an `await` in between, so the runtime commits it as one
//! unit and concurrent prompts queue in a consistent order (DO requests are serialised by
//! the input gate; `BEGIN` is not available on DO SQLite).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State};

use crate::channels::scope::channel_key;
use crate::db::atomically;
use crate::sessions::agent::{CompleteRequest, GitUpdate, PromptAccepted, PromptRequest};
use crate::sessions::prompt::{merge, sanitize, Attachment, Buffered, QueueMode, DEFAULT_COLLECT_DEBOUNCE_MS};
use crate::time::{iso, now_ms, Millis};

/// DO SQLite rows are limited to 2 MB, so attachment data is stored in chunks.
const CHUNK_CHARS: usize = 1_000_000;

/// An attachment as a claim returns it (the data URL reassembled from its chunks).
#[derive(Serialize)]
struct StoredAttachment {
    #[serde(rename = "type")]
    kind: &'static str,
    mime: String,
    url: String,
    filename: Option<String>,
    size: i64,
}

/// Longest accepted runner result (stored as the assistant's message).
const MAX_RESULT_CHARS: usize = 1_000_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, role TEXT NOT NULL, content TEXT NOT NULL,
  author_id TEXT, author_name TEXT, author_email TEXT, channel_type TEXT, channel_id TEXT,
  attachments TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (
  id TEXT PRIMARY KEY, mime TEXT NOT NULL, filename TEXT, size INTEGER NOT NULL, chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attachment_chunks (
  attachment_id TEXT NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (attachment_id, idx));
CREATE TABLE IF NOT EXISTS prompts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL DEFAULT 0,
  content TEXT NOT NULL, status TEXT NOT NULL, queue_mode TEXT NOT NULL,
  channel_type TEXT, channel_id TEXT, channel_key TEXT NOT NULL,
  author_id TEXT, author_name TEXT, author_email TEXT,
  attachment_ids TEXT NOT NULL DEFAULT '[]', message_ids TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, result TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS idx_prompts_status ON prompts(status, priority, seq);
CREATE TABLE IF NOT EXISTS collect_buffer (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, channel_key TEXT NOT NULL, channel_type TEXT, channel_id TEXT,
  entry TEXT NOT NULL, message_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collect_flush (channel_key TEXT PRIMARY KEY, flush_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created_at TEXT NOT NULL);
";

#[durable_object]
pub struct SessionAgent {
    state: State,
    env: Env,
}

type Sql = SqlStorage;

fn rows<T: DeserializeOwned>(sql: &Sql, query: &str, args: Vec<SqlStorageValue>) -> Result<Vec<T>> {
    crate::db::sql_rows(sql, query, args)
}

fn exec(sql: &Sql, query: &str, args: Vec<SqlStorageValue>) -> Result<()> {
    crate::db::sql_run(sql, query, args).map(|_| ())
}

/// Runs an UPDATE/DELETE ending in `RETURNING 1` and counts the rows it touched
/// (`rows_written` also counts index entries, so it is not a row count).
fn changed(sql: &Sql, query: &str, args: Vec<SqlStorageValue>) -> Result<usize> {
    Ok(crate::db::sql_run(sql, query, args)?.length() as usize)
}

/// Retention and lease defaults, in seconds (each overridable by `SESSION_<NAME>_SECONDS`).
const DAY: i64 = 86_400;
const DEFAULT_EVENT_RETENTION: i64 = 30 * DAY;
const DEFAULT_ATTACHMENT_RETENTION: i64 = 7 * DAY;
const DEFAULT_DELIVERY_RETENTION: i64 = 7 * DAY;
const DEFAULT_CLAIM_LEASE: i64 = 15 * 60;
/// How often the alarm runs retention.
const DEFAULT_RETENTION_INTERVAL: i64 = DAY;

/// One page of an oldest-first list: `limit` 1–100 and an opaque cursor (the last `seq`).
struct Paging {
    limit: i64,
    after: i64,
}

fn paging(url: &worker::Url) -> std::result::Result<Paging, &'static str> {
    use base64::Engine;
    let mut p = Paging { limit: 100, after: 0 };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "limit" => p.limit = v.parse().ok().filter(|n| (1..=100).contains(n)).ok_or("limit must be 1 to 100")?,
            "cursor" if !v.is_empty() => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v.as_bytes())
                    .map_err(|_| "Invalid cursor")?;
                p.after = std::str::from_utf8(&raw).ok().and_then(|s| s.parse().ok()).ok_or("Invalid cursor")?;
            }
            _ => {}
        }
    }
    Ok(p)
}

fn cursor_of(seq: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seq.to_string())
}

/// `{<key>: items, hasMore, cursor?}` from up to `limit + 1` rows carrying their `seq`.
fn page(key: &str, mut items: Vec<(i64, Value)>, limit: i64) -> Result<Response> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let mut body = json!({ key: items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), "hasMore": more });
    if let (true, Some((seq, _))) = (more, items.last()) {
        body["cursor"] = json!(cursor_of(*seq));
    }
    Response::from_json(&body)
}

fn opt(v: &Option<String>) -> SqlStorageValue {
    v.clone().into()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json_error(status: u16, code: &str, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": message, "code": code }))?.with_status(status))
}

#[derive(Deserialize)]
struct PromptRow {
    id: String,
    content: String,
    status: String,
    queue_mode: String,
    channel_type: Option<String>,
    channel_id: Option<String>,
    author_id: Option<String>,
    author_name: Option<String>,
    author_email: Option<String>,
    attachment_ids: String,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    error: Option<String>,
}

impl PromptRow {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "content": self.content, "status": self.status, "queueMode": self.queue_mode,
            "channelType": self.channel_type, "channelId": self.channel_id,
            "authorId": self.author_id, "authorName": self.author_name,
            "attachmentCount": serde_json::from_str::<Vec<String>>(&self.attachment_ids).map(|v| v.len()).unwrap_or(0),
            "createdAt": self.created_at, "startedAt": self.started_at, "finishedAt": self.finished_at, "error": self.error,
        })
    }
}

const PROMPT_COLUMNS: &str = "id, content, status, queue_mode, channel_type, channel_id, author_id, author_name, \
     author_email, attachment_ids, created_at, started_at, finished_at, error";

impl SessionAgent {
    fn sql(&self) -> Sql {
        self.state.storage().sql()
    }

    fn event(sql: &Sql, kind: &str, data: Value, now: Millis) -> Result<()> {
        exec(
            sql,
            "INSERT INTO events (id, type, data, created_at) VALUES (?, ?, ?, ?)",
            vec![uuid().into(), kind.into(), data.to_string().into(), iso(now).into()],
        )?;
        Ok(())
    }

    /// Stores attachment data in chunks; returns the ids and the metadata for the message.
    fn store_attachments(sql: &Sql, items: &[Attachment]) -> Result<(Vec<String>, Vec<Value>)> {
        let mut ids = Vec::new();
        let mut meta = Vec::new();
        for a in items {
            let id = uuid();
            let chunks: Vec<&str> = a
                .url
                .as_bytes()
                .chunks(CHUNK_CHARS)
                .map(|c| std::str::from_utf8(c).unwrap_or_default()) // data URLs are ASCII
                .collect();
            exec(
                sql,
                "INSERT INTO attachments (id, mime, filename, size, chunks) VALUES (?, ?, ?, ?, ?)",
                vec![
                    id.as_str().into(),
                    a.mime.as_str().into(),
                    opt(&a.filename),
                    (a.size() as i64).into(),
                    (chunks.len() as i64).into(),
                ],
            )?;
            for (i, chunk) in chunks.iter().enumerate() {
                exec(
                    sql,
                    "INSERT INTO attachment_chunks (attachment_id, idx, data) VALUES (?, ?, ?)",
                    vec![id.as_str().into(), (i as i64).into(), (*chunk).into()],
                )?;
            }
            let mut m = json!({ "mime": a.mime, "size": a.size() });
            if let Some(f) = &a.filename {
                m["filename"] = json!(f);
            }
            meta.push(m);
            ids.push(id);
        }
        Ok((ids, meta))
    }

    fn load_attachments(sql: &Sql, ids: &[String]) -> Result<Vec<StoredAttachment>> {
        #[derive(Deserialize)]
        struct A {
            mime: String,
            filename: Option<String>,
            size: i64,
        }
        #[derive(Deserialize)]
        struct C {
            data: String,
        }
        let mut out = Vec::new();
        for id in ids {
            let Some(a) =
                rows::<A>(sql, "SELECT mime, filename, size FROM attachments WHERE id = ?", vec![id.as_str().into()])?
                    .pop()
            else {
                continue;
            };
            let chunks = rows::<C>(
                sql,
                "SELECT data FROM attachment_chunks WHERE attachment_id = ? ORDER BY idx",
                vec![id.as_str().into()],
            )?;
            let mut url = String::with_capacity(chunks.iter().map(|c| c.data.len()).sum());
            for c in chunks {
                url.push_str(&c.data);
            }
            out.push(StoredAttachment { kind: "file", mime: a.mime, url, filename: a.filename, size: a.size });
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_prompt(
        sql: &Sql,
        priority: i64,
        content: &str,
        mode: QueueMode,
        channel_type: &Option<String>,
        channel_id: &Option<String>,
        author: (&Option<String>, &Option<String>, &Option<String>),
        attachment_ids: &[String],
        message_ids: &[String],
        now: Millis,
    ) -> Result<String> {
        let id = uuid();
        exec(
            sql,
            "INSERT INTO prompts (id, priority, content, status, queue_mode, channel_type, channel_id, channel_key,
               author_id, author_name, author_email, attachment_ids, message_ids, created_at)
             VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                id.as_str().into(),
                priority.into(),
                content.into(),
                mode.as_str().into(),
                opt(channel_type),
                opt(channel_id),
                channel_key(channel_type.as_deref(), channel_id.as_deref()).into(),
                opt(author.0),
                opt(author.1),
                opt(author.2),
                json!(attachment_ids).to_string().into(),
                json!(message_ids).to_string().into(),
                iso(now).into(),
            ],
        )?;
        Ok(id)
    }

    /// Stores the message and queues (or buffers) the prompt; also answers the alarm time a
    /// collect buffer needs.
    fn prompt(sql: &Sql, req: PromptRequest, now: Millis) -> Result<(Response, Option<Millis>)> {
        let sql = sql.clone();
        if let Some(key) = &req.idempotency_key {
            #[derive(Deserialize)]
            struct D {
                answer: String,
            }
            if let Some(d) =
                rows::<D>(&sql, "SELECT answer FROM deliveries WHERE key = ?", vec![key.as_str().into()])?.pop()
            {
                let mut answer: PromptAccepted = serde_json::from_str(&d.answer)?;
                answer.duplicate = true;
                return Ok((Response::from_json(&answer)?, None));
            }
        }
        let (attachments, dropped) = sanitize(req.attachments);
        if req.content.trim().is_empty() && attachments.is_empty() {
            return Ok((json_error(400, "VALIDATION_ERROR", "Missing content or attachments")?, None));
        }
        let mode = if req.interrupt { QueueMode::Steer } else { req.queue_mode.unwrap_or(QueueMode::Followup) };
        let (attachment_ids, attachment_meta) = Self::store_attachments(&sql, &attachments)?;
        let message_id = uuid();
        exec(
            &sql,
            "INSERT INTO messages (id, role, content, author_id, author_name, author_email, channel_type, channel_id, attachments, created_at)
             VALUES (?, 'user', ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                message_id.as_str().into(),
                req.content.as_str().into(),
                opt(&req.author_id),
                opt(&req.author_name),
                opt(&req.author_email),
                opt(&req.channel_type),
                opt(&req.channel_id),
                Value::Array(attachment_meta).to_string().into(),
                iso(now).into(),
            ],
        )?;
        let key = channel_key(req.channel_type.as_deref(), req.channel_id.as_deref());
        let author = (&req.author_id, &req.author_name, &req.author_email);
        let mut alarm_at = None;
        let (prompt_id, status) = match mode {
            QueueMode::Followup | QueueMode::Steer => {
                let mut priority = 0;
                if mode == QueueMode::Steer {
                    let aborted = changed(
                        &sql,
                        "UPDATE prompts SET status = 'aborted', finished_at = ?, error = 'steered'
                          WHERE status = 'processing' OR (status = 'queued' AND channel_key = ?) RETURNING 1",
                        vec![iso(now).into(), key.as_str().into()],
                    )?;
                    Self::event(&sql, "prompt.steer", json!({ "channelKey": key, "aborted": aborted }), now)?;
                    priority = 1;
                }
                let ids = [message_id.clone()];
                let id = Self::insert_prompt(
                    &sql,
                    priority,
                    &req.content,
                    mode,
                    &req.channel_type,
                    &req.channel_id,
                    author,
                    &attachment_ids,
                    &ids,
                    now,
                )?;
                Self::event(&sql, "prompt.queued", json!({ "promptId": id, "queueMode": mode.as_str() }), now)?;
                (Some(id), "queued")
            }
            QueueMode::Collect => {
                let entry = Buffered {
                    content: req.content.clone(),
                    attachment_ids,
                    author_id: req.author_id.clone(),
                    author_name: req.author_name.clone(),
                    author_email: req.author_email.clone(),
                };
                exec(
                    &sql,
                    "INSERT INTO collect_buffer (channel_key, channel_type, channel_id, entry, message_id) VALUES (?, ?, ?, ?, ?)",
                    vec![
                        key.as_str().into(),
                        opt(&req.channel_type),
                        opt(&req.channel_id),
                        serde_json::to_string(&entry)?.into(),
                        message_id.as_str().into(),
                    ],
                )?;
                // Debounce: every message pushes the flush back.
                let flush_at = now + i64::from(req.collect_debounce_ms.unwrap_or(DEFAULT_COLLECT_DEBOUNCE_MS));
                exec(
                    &sql,
                    "INSERT INTO collect_flush (channel_key, flush_at) VALUES (?, ?)
                     ON CONFLICT(channel_key) DO UPDATE SET flush_at = excluded.flush_at",
                    vec![key.as_str().into(), flush_at.into()],
                )?;
                alarm_at = Some(Self::next_flush(&sql)?.unwrap_or(flush_at));
                (None, "buffered")
            }
        };
        let answer = PromptAccepted {
            success: true,
            message_id,
            prompt_id,
            status: status.into(),
            queue_mode: mode,
            attachments_dropped: dropped,
            duplicate: false,
        };
        if let Some(key) = &req.idempotency_key {
            exec(
                &sql,
                "INSERT INTO deliveries (key, answer, created_at) VALUES (?, ?, ?)",
                vec![key.as_str().into(), serde_json::to_string(&answer)?.into(), iso(now).into()],
            )?;
        }
        Ok((Response::from_json(&answer)?, alarm_at))
    }

    fn next_flush(sql: &Sql) -> Result<Option<Millis>> {
        #[derive(Deserialize)]
        struct F {
            at: Option<i64>,
        }
        Ok(rows::<F>(sql, "SELECT MIN(flush_at) AS at FROM collect_flush", vec![])?.pop().and_then(|f| f.at))
    }

    /// Turns every collect buffer whose debounce has passed into one queued prompt.
    fn flush_due(sql: &Sql, now: Millis) -> Result<usize> {
        #[derive(Deserialize)]
        struct F {
            channel_key: String,
        }
        #[derive(Deserialize)]
        struct B {
            channel_type: Option<String>,
            channel_id: Option<String>,
            entry: String,
            message_id: String,
        }
        let due = rows::<F>(sql, "SELECT channel_key FROM collect_flush WHERE flush_at <= ?", vec![now.into()])?;
        for f in &due {
            let buffered = rows::<B>(
                sql,
                "SELECT channel_type, channel_id, entry, message_id FROM collect_buffer WHERE channel_key = ? ORDER BY seq",
                vec![f.channel_key.as_str().into()],
            )?;
            let entries: Vec<Buffered> = buffered.iter().filter_map(|b| serde_json::from_str(&b.entry).ok()).collect();
            if let (Some(merged), Some(last)) = (merge(&entries), buffered.last()) {
                let message_ids: Vec<String> = buffered.iter().map(|b| b.message_id.clone()).collect();
                let id = Self::insert_prompt(
                    sql,
                    0,
                    &merged.content,
                    QueueMode::Collect,
                    &last.channel_type,
                    &last.channel_id,
                    (&merged.author_id, &merged.author_name, &merged.author_email),
                    &merged.attachment_ids,
                    &message_ids,
                    now,
                )?;
                Self::event(sql, "prompt.collected", json!({ "promptId": id, "messages": message_ids.len() }), now)?;
            }
            exec(sql, "DELETE FROM collect_buffer WHERE channel_key = ?", vec![f.channel_key.as_str().into()])?;
            exec(sql, "DELETE FROM collect_flush WHERE channel_key = ?", vec![f.channel_key.as_str().into()])?;
        }
        Ok(due.len())
    }

    /// The queue in its order (processing, queued by priority, then finished ones), paged by
    /// position (the cursor is the offset).
    fn queue(&self, p: &Paging) -> Result<Response> {
        let prompts = rows::<PromptRow>(
            &self.sql(),
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompts ORDER BY
                   CASE status WHEN 'processing' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END,
                   CASE status WHEN 'queued' THEN -priority ELSE 0 END, seq LIMIT ? OFFSET ?"
            ),
            vec![(p.limit + 1).into(), p.after.into()],
        )?;
        let items = prompts.iter().enumerate().map(|(i, r)| (p.after + i as i64 + 1, r.view())).collect();
        page("prompts", items, p.limit)
    }

    fn messages(&self, p: &Paging) -> Result<Response> {
        #[derive(Deserialize)]
        struct M {
            seq: i64,
            id: String,
            role: String,
            content: String,
            author_id: Option<String>,
            author_name: Option<String>,
            author_email: Option<String>,
            channel_type: Option<String>,
            channel_id: Option<String>,
            attachments: String,
            created_at: String,
        }
        let all = rows::<M>(
            &self.sql(),
            "SELECT seq, id, role, content, author_id, author_name, author_email, channel_type, channel_id, attachments, created_at
               FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![p.after.into(), (p.limit + 1).into()],
        )?;
        let messages: Vec<(i64, Value)> = all
            .into_iter()
            .map(|m| {
                let mut v = json!({
                    "id": m.id, "role": m.role, "content": m.content, "createdAt": m.created_at,
                    "attachments": serde_json::from_str::<Value>(&m.attachments).unwrap_or(json!([])),
                });
                for (k, val) in [
                    ("authorId", m.author_id),
                    ("authorName", m.author_name),
                    ("authorEmail", m.author_email),
                    ("channelType", m.channel_type),
                    ("channelId", m.channel_id),
                ] {
                    if let Some(val) = val {
                        v[k] = json!(val);
                    }
                }
                (m.seq, v)
            })
            .collect();
        page("messages", messages, p.limit)
    }

    fn events(&self, p: &Paging) -> Result<Response> {
        #[derive(Deserialize)]
        struct E {
            seq: i64,
            id: String,
            #[serde(rename = "type")]
            kind: String,
            data: String,
            created_at: String,
        }
        let all = rows::<E>(
            &self.sql(),
            "SELECT seq, id, type, data, created_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            vec![p.after.into(), (p.limit + 1).into()],
        )?;
        let events: Vec<(i64, Value)> = all
            .into_iter()
            .map(|e| {
                (e.seq, json!({ "id": e.id, "type": e.kind, "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null), "createdAt": e.created_at }))
            })
            .collect();
        page("events", events, p.limit)
    }

    fn setting(&self, name: &str, default: i64) -> i64 {
        crate::config::var(&self.env, name).and_then(|v| v.parse().ok()).filter(|n: &i64| *n > 0).unwrap_or(default)
    }

    /// A claimed prompt whose runner stopped renewing its lease goes back to the queue.
    fn requeue_expired(sql: &Sql, now: Millis) -> Result<()> {
        #[derive(Deserialize)]
        struct P {
            id: String,
        }
        let expired = rows::<P>(
            sql,
            "UPDATE prompts SET status = 'queued', started_at = NULL, lease_until = NULL
              WHERE status = 'processing' AND lease_until IS NOT NULL AND lease_until <= ? RETURNING id",
            vec![now.into()],
        )?;
        for p in expired {
            Self::event(sql, "prompt.lease_expired", json!({ "promptId": p.id }), now)?;
        }
        Ok(())
    }

    /// `POST /heartbeat/<id>`: the runner still works on it; the lease is renewed.
    fn heartbeat(&self, prompt_id: &str, now: Millis) -> Result<Response> {
        let lease = self.setting("SESSION_CLAIM_LEASE_SECONDS", DEFAULT_CLAIM_LEASE) * 1000;
        let renewed = changed(
            &self.sql(),
            "UPDATE prompts SET lease_until = ? WHERE id = ? AND status = 'processing' RETURNING 1",
            vec![(now + lease).into(), prompt_id.into()],
        )?;
        if renewed == 0 {
            return json_error(
                409,
                "PROMPT_NOT_PROCESSING",
                "The prompt is not being processed (completed, aborted or re-queued)",
            );
        }
        Response::from_json(&json!({ "ok": true, "leaseUntil": iso(now + lease) }))
    }

    fn claim(&self, now: Millis) -> Result<Response> {
        let sql = self.sql();
        Self::requeue_expired(&sql, now)?;
        let lease = self.setting("SESSION_CLAIM_LEASE_SECONDS", DEFAULT_CLAIM_LEASE) * 1000;
        #[derive(Deserialize)]
        struct P {
            id: String,
        }
        if let Some(p) = rows::<P>(&sql, "SELECT id FROM prompts WHERE status = 'processing' LIMIT 1", vec![])?.pop() {
            return Ok(Response::from_json(&json!({
                "error": "A prompt is already being processed", "code": "PROMPT_IN_PROGRESS", "details": { "promptId": p.id }
            }))?
            .with_status(409));
        }
        let Some(next) = rows::<PromptRow>(
            &sql,
            &format!(
                "SELECT {PROMPT_COLUMNS} FROM prompts WHERE status = 'queued' ORDER BY priority DESC, seq LIMIT 1"
            ),
            vec![],
        )?
        .pop() else {
            return Ok(Response::empty()?.with_status(204));
        };
        exec(
            &sql,
            "UPDATE prompts SET status = 'processing', started_at = ?, lease_until = ? WHERE id = ?",
            vec![iso(now).into(), (now + lease).into(), next.id.as_str().into()],
        )?;
        let ids: Vec<String> = serde_json::from_str(&next.attachment_ids).unwrap_or_default();
        let mut prompt = next.view();
        prompt["status"] = json!("processing");
        prompt["startedAt"] = json!(iso(now));
        prompt["authorEmail"] = json!(next.author_email);
        prompt["leaseUntil"] = json!(iso(now + lease));
        let attachments = Self::load_attachments(&sql, &ids)?;
        // `{"prompt": {…, "attachments": […]}}` written once into a buffer of its final size:
        // the attachment data (up to 25 MB) is never copied into a JSON value first.
        let head = serde_json::to_vec(&prompt)?;
        let size = head.len()
            + attachments
                .iter()
                .map(|a| a.url.len() + 6 * (a.mime.len() + a.filename.as_ref().map_or(0, String::len)) + 64)
                .sum::<usize>()
            + 64;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(b"{\"prompt\":");
        out.extend_from_slice(&head[..head.len() - 1]); // without the object's closing brace
        drop(head);
        out.extend_from_slice(b",\"attachments\":");
        serde_json::to_writer(&mut out, &attachments)?;
        out.extend_from_slice(b"}}");
        let resp = Response::from_bytes(out)?;
        resp.headers().set("Content-Type", "application/json")?;
        Ok(resp)
    }

    fn complete(&self, prompt_id: &str, req: CompleteRequest, now: Millis) -> Result<Response> {
        let sql = self.sql();
        if req.result.as_ref().is_some_and(|r| r.chars().count() > MAX_RESULT_CHARS) {
            return json_error(400, "VALIDATION_ERROR", "result is too long");
        }
        let Some(p) = rows::<PromptRow>(
            &sql,
            &format!("SELECT {PROMPT_COLUMNS} FROM prompts WHERE id = ?"),
            vec![prompt_id.into()],
        )?
        .pop() else {
            return json_error(404, "NOT_FOUND", "Prompt not found");
        };
        match p.status.as_str() {
            "processing" => {}
            "aborted" => {
                return json_error(409, "PROMPT_ABORTED", "The prompt was aborted (steered, cleared or stopped)")
            }
            "queued" => return json_error(409, "PROMPT_NOT_CLAIMED", "The prompt has not been claimed"),
            _ => return json_error(409, "PROMPT_ALREADY_COMPLETED", "The prompt was already completed"),
        }
        exec(
            &sql,
            "UPDATE prompts SET status = 'completed', finished_at = ?, result = ?, error = ? WHERE id = ?",
            vec![iso(now).into(), opt(&req.result), opt(&req.error), prompt_id.into()],
        )?;
        if let Some(result) = req.result.as_ref().filter(|r| !r.is_empty()) {
            exec(
                &sql,
                "INSERT INTO messages (id, role, content, channel_type, channel_id, created_at) VALUES (?, 'assistant', ?, ?, ?, ?)",
                vec![uuid().into(), result.as_str().into(), opt(&p.channel_type), opt(&p.channel_id), iso(now).into()],
            )?;
        }
        Self::event(&sql, "prompt.completed", json!({ "promptId": prompt_id, "error": req.error }), now)?;
        // The channel lets the Worker deliver the result back to where the prompt came from.
        Response::from_json(&json!({ "success": true, "channelType": p.channel_type, "channelId": p.channel_id }))
    }

    /// Aborts queued prompts (and collect buffers); with `stop`, also the one in progress.
    fn clear(&self, stop: bool, now: Millis) -> Result<Response> {
        let sql = self.sql();
        let cleared = changed(
            &sql,
            "UPDATE prompts SET status = 'aborted', finished_at = ?, error = 'cleared' WHERE status = 'queued' RETURNING 1",
            vec![iso(now).into()],
        )?;
        let buffered = changed(&sql, "DELETE FROM collect_buffer RETURNING 1", vec![])?;
        exec(&sql, "DELETE FROM collect_flush", vec![])?;
        let mut interrupted = 0;
        if stop {
            interrupted = changed(
                &sql,
                "UPDATE prompts SET status = 'aborted', finished_at = ?, error = 'stopped' WHERE status = 'processing' RETURNING 1",
                vec![iso(now).into()],
            )?;
        }
        let kind = if stop { "session.stopped" } else { "queue.cleared" };
        Self::event(&sql, kind, json!({ "cleared": cleared, "buffered": buffered, "interrupted": interrupted }), now)?;
        Response::from_json(&json!({ "success": true, "cleared": cleared, "interrupted": interrupted }))
    }

    fn status(&self) -> Result<Response> {
        #[derive(Deserialize)]
        struct S {
            messages: i64,
            queued: i64,
            processing: Option<String>,
            buffered: i64,
        }
        let s = rows::<S>(
            &self.sql(),
            "SELECT (SELECT COUNT(*) FROM messages) AS messages,
                    (SELECT COUNT(*) FROM prompts WHERE status = 'queued') AS queued,
                    (SELECT id FROM prompts WHERE status = 'processing' LIMIT 1) AS processing,
                    (SELECT COUNT(*) FROM collect_buffer) AS buffered",
            vec![],
        )?
        .pop();
        let s = s.unwrap_or(S { messages: 0, queued: 0, processing: None, buffered: 0 });
        Response::from_json(&json!({
            "status": if s.processing.is_some() { "running" } else { "idle" },
            "messageCount": s.messages, "queuedPrompts": s.queued, "processingPromptId": s.processing,
            "bufferedMessages": s.buffered,
        }))
    }

    /// Retention (run by the alarm): finished prompts and events after 30 days, attachment bytes
    /// 7 days after their prompt finished, delivery ids after 7 days (each configurable in
    /// seconds: `SESSION_EVENT_RETENTION_SECONDS`, `…_ATTACHMENT_…`, `…_DELIVERY_…`).
    fn retain(&self, sql: &Sql, now: Millis) -> Result<()> {
        let before = |name: &str, default: i64| iso(now - self.setting(name, default) * 1000);
        let events_before = before("SESSION_EVENT_RETENTION_SECONDS", DEFAULT_EVENT_RETENTION);
        let bytes_before = before("SESSION_ATTACHMENT_RETENTION_SECONDS", DEFAULT_ATTACHMENT_RETENTION);
        let deliveries_before = before("SESSION_DELIVERY_RETENTION_SECONDS", DEFAULT_DELIVERY_RETENTION);
        exec(sql, "DELETE FROM events WHERE created_at < ?", vec![events_before.as_str().into()])?;
        exec(
            sql,
            "DELETE FROM prompts WHERE status IN ('completed', 'aborted') AND COALESCE(finished_at, created_at) < ?",
            vec![events_before.as_str().into()],
        )?;
        // Attachment bytes of prompts finished long enough ago (their metadata stays on messages).
        exec(
            sql,
            "DELETE FROM attachment_chunks WHERE attachment_id IN (
               SELECT a.id FROM attachments a WHERE NOT EXISTS (
                 SELECT 1 FROM prompts p, json_each(p.attachment_ids) j
                  WHERE j.value = a.id AND (p.status IN ('queued', 'processing') OR COALESCE(p.finished_at, p.created_at) >= ?))
               AND NOT EXISTS (SELECT 1 FROM collect_buffer b WHERE instr(b.entry, a.id) > 0))",
            vec![bytes_before.as_str().into()],
        )?;
        exec(
            sql,
            "DELETE FROM attachments WHERE id NOT IN (SELECT DISTINCT attachment_id FROM attachment_chunks)",
            vec![],
        )?;
        exec(sql, "DELETE FROM deliveries WHERE created_at < ?", vec![deliveries_before.as_str().into()])?;
        Ok(())
    }

    async fn handle(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let now = now_ms();
        // Overdue collect buffers are flushed before anything reads or claims the queue,
        // so a late alarm never reorders work.
        Self::flush_due(&self.sql(), now)?;
        let body = |text: &[u8]| -> std::result::Result<Value, ()> {
            if text.iter().all(u8::is_ascii_whitespace) {
                Ok(json!({}))
            } else {
                serde_json::from_slice(text).map_err(|_| ())
            }
        };
        // Bytes, not text: a JS string converted to Rust reserves three bytes per character
        // once it meets a non-ASCII one (a 75 MB transient for a 25 MB prompt).
        let text = if req.method() == worker::Method::Post { req.bytes().await? } else { Vec::new() };
        let parsed = body(&text);
        // A prompt's text can be 25 MB: freed as soon as it is parsed.
        drop(text);
        let Ok(value) = parsed else {
            return json_error(400, "INVALID_JSON", "Invalid request");
        };
        macro_rules! parse {
            ($t:ty) => {
                match serde_json::from_value::<$t>(value) {
                    Ok(v) => v,
                    Err(e) => return json_error(400, "VALIDATION_ERROR", &e.to_string()),
                }
            };
        }
        let resp = match (req.method(), path.as_str()) {
            (worker::Method::Post, "/prompt") => {
                let (req, sql) = (parse!(PromptRequest), self.sql());
                // Message, prompt and idempotency key commit together or not at all.
                let (resp, alarm_at) = atomically(&self.state, move || Self::prompt(&sql, req, now))?;
                // The alarm is set after the synchronous SQL above, which is already committed
                // as one unit; a collect buffer flushes at its debounce.
                if let Some(at) = alarm_at {
                    self.state.storage().set_alarm((at - now_ms()).max(1)).await?;
                } else if self.state.storage().get_alarm().await?.is_none() {
                    // Retention runs on the alarm: make sure one is set.
                    let interval =
                        self.setting("SESSION_RETENTION_INTERVAL_SECONDS", DEFAULT_RETENTION_INTERVAL) * 1000;
                    self.state.storage().set_alarm(interval).await?;
                }
                resp
            }
            (worker::Method::Get, "/messages" | "/queue" | "/events") => {
                let p = match paging(&req.url()?) {
                    Ok(p) => p,
                    Err(m) => return json_error(400, "VALIDATION_ERROR", m),
                };
                match path.as_str() {
                    "/messages" => self.messages(&p)?,
                    "/queue" => {
                        Self::requeue_expired(&self.sql(), now)?;
                        self.queue(&p)?
                    }
                    _ => self.events(&p)?,
                }
            }
            (worker::Method::Get, "/status") => self.status()?,
            (worker::Method::Post, "/claim") => self.claim(now)?,
            (worker::Method::Post, "/clear-queue") => self.clear(false, now)?,
            (worker::Method::Post, "/stop") => self.clear(true, now)?,
            (worker::Method::Post, "/webhook-update") => {
                let update = parse!(GitUpdate);
                let sql = self.sql();
                // Outbox deliveries are at-least-once: a repeated key records nothing new.
                if let Some(key) = &update.idempotency_key {
                    let seen: Vec<Value> =
                        rows(&sql, "SELECT 1 AS x FROM deliveries WHERE key = ?", vec![key.as_str().into()])?;
                    if !seen.is_empty() {
                        return Response::from_json(&json!({ "ok": true, "duplicate": true }));
                    }
                    exec(
                        &sql,
                        "INSERT INTO deliveries (key, answer, created_at) VALUES (?, '{}', ?)",
                        vec![key.as_str().into(), iso(now).into()],
                    )?;
                }
                let mut data = serde_json::to_value(&update)?;
                if let Some(o) = data.as_object_mut() {
                    o.remove("type");
                    o.remove("idempotencyKey");
                }
                Self::event(&sql, "git-state", data, now)?;
                Response::from_json(&json!({ "ok": true }))?
            }
            (worker::Method::Post, p) if p.starts_with("/heartbeat/") => {
                self.heartbeat(p.trim_start_matches("/heartbeat/"), now)?
            }
            (worker::Method::Post, p) if p.starts_with("/complete/") => {
                let id = p.trim_start_matches("/complete/").to_string();
                self.complete(&id, parse!(CompleteRequest), now)?
            }
            _ => return json_error(404, "NOT_FOUND", "Unknown SessionAgent operation"),
        };
        Ok(resp)
    }
}

impl DurableObject for SessionAgent {
    fn new(state: State, env: Env) -> Self {
        // `exec` is synchronous, so the schema exists before the first request is served.
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            crate::config::log_error(&format!("SessionAgent schema setup failed: {e}"));
        }
        // Columns added after the first release (objects created before them get them here).
        #[derive(Deserialize)]
        struct Col {
            name: String,
        }
        let has_lease = rows::<Col>(&sql, "SELECT name FROM pragma_table_info('prompts')", vec![])
            .map(|cols| cols.iter().any(|c| c.name == "lease_until"))
            .unwrap_or(true);
        if !has_lease {
            if let Err(e) = sql.exec("ALTER TABLE prompts ADD COLUMN lease_until INTEGER", None) {
                crate::config::log_error(&format!("SessionAgent schema upgrade failed: {e}"));
            }
        }
        SessionAgent { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = self.handle(req).await;
        #[cfg(feature = "fault-injection")]
        worker::console_log!("[test] SessionAgent wasm memory {}", crate::faults::wasm_memory());
        match result {
            Ok(resp) => Ok(resp),
            Err(e) => {
                crate::config::log_error(&format!("SessionAgent failure: {e}"));
                json_error(500, "INTERNAL_ERROR", "Internal error")
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let sql = self.sql();
        let now = now_ms();
        Self::flush_due(&sql, now)?;
        self.retain(&sql, now)?;
        // The next collect flush, or the next retention pass.
        let interval = self.setting("SESSION_RETENTION_INTERVAL_SECONDS", DEFAULT_RETENTION_INTERVAL) * 1000;
        let next = Self::next_flush(&sql)?.unwrap_or(now + interval).min(now + interval);
        self.state.storage().set_alarm((next - now).max(1)).await?;
        Response::ok("ok")
    }
}
