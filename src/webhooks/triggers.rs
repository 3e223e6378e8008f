//! User webhook triggers (the original's catch-all `/webhooks/*`, made safe): a user registers
//! a path and a prompt template; a delivery to `/webhooks/<path>` signed with the trigger's
//! secret (shown once, stored sealed) becomes a prompt to the trigger's session or the owner's
//! orchestrator, exactly once per delivery: a body seen before, or a delivery id seen before, is
//! a duplicate. The signature covers the body, and with `signQuery` the request target before
//! it, which is what lets a template read `{{query.*}}`.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crypto::{random_token, sha256_hex, Aad, Legacy};
use crate::http::input::Input;
use crate::http::{success, ApiError, ApiResult, Ctx, Reply};
use crate::sessions::agent::{PromptRequest, SessionAgent};
use crate::sessions::prompt::MAX_CONTENT_CHARS;
use crate::time::{iso, normalize};

const PURPOSE: &str = "webhook-trigger:secret";
/// Triggers one user may have.
const MAX_PER_USER: i64 = 100;
const METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];
/// A template's size: small, since each placeholder may repeat a payload of up to 1 MiB.
const MAX_TEMPLATE_BYTES: usize = 8 * 1024;

#[derive(Deserialize)]
struct Row {
    id: String,
    user_id: String,
    path: String,
    method: String,
    session_id: Option<String>,
    prompt_template: String,
    secret_sealed: String,
    created_at: String,
    /// 1: the signature covers the request target (and `{{query.*}}` may be filled).
    sign_query: i64,
}

impl Row {
    fn view(&self, origin: &str) -> Value {
        json!({
            "id": self.id, "path": self.path, "url": format!("{origin}/webhooks/{}", self.path), "method": self.method,
            "sessionId": self.session_id, "promptTemplate": self.prompt_template, "signQuery": self.sign_query == 1,
            "createdAt": normalize(&self.created_at),
        })
    }
}

/// `[a-z0-9-]+(/[a-z0-9-]+)*`, at most 200 characters, not under a built-in provider's name.
pub fn valid_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 200 {
        return Err("Must be 1 to 200 characters".into());
    }
    if !path
        .split('/')
        .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err("Must be lowercase letters, digits and hyphens, in segments separated by '/'".into());
    }
    let first = path.split('/').next().unwrap_or("");
    if super::PROVIDERS.contains(&first) {
        return Err(format!("'{first}' is reserved for a built-in webhook"));
    }
    Ok(())
}

/// A rendered prompt would pass the limit it was given.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong;

/// The prompt being rendered. It refuses a write that would take it past `left` characters, so
/// a template repeating a large payload stops at the limit instead of building it all first.
struct Prompt {
    buf: Vec<u8>,
    left: usize,
}

impl Prompt {
    fn text(&mut self, s: &str) -> Result<(), TooLong> {
        std::io::Write::write_all(self, s.as_bytes()).map_err(|_| TooLong)
    }

    fn json(&mut self, v: &Value) -> Result<(), TooLong> {
        serde_json::to_writer(self, v).map_err(|_| TooLong)
    }
}

impl std::io::Write for Prompt {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // Characters are counted by their first bytes (UTF-8 continuation bytes are 10xxxxxx).
        let chars = bytes.iter().filter(|b| **b & 0xC0 != 0x80).count();
        if chars > self.left {
            return Err(std::io::Error::other("the prompt limit"));
        }
        self.left -= chars;
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one placeholder becomes.
enum Fill<'a> {
    /// A value written as JSON.
    Json(&'a Value),
    Text(&'a str),
}

fn fill<'a>(name: &str, payload: &'a Value, query: &'a [(String, String)]) -> Fill<'a> {
    if name == "payload" {
        return Fill::Json(payload);
    }
    if let Some(path) = name.strip_prefix("payload.") {
        let found = path.split('.').try_fold(payload, |v, k| match v {
            Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => v.get(k),
        });
        return match found {
            Some(Value::String(s)) => Fill::Text(s),
            Some(Value::Null) | None => Fill::Text(""),
            Some(v) => Fill::Json(v),
        };
    }
    match name.strip_prefix("query.") {
        Some(key) => Fill::Text(query.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())),
        None => Fill::Text(""),
    }
}

/// Whether a template reads the query (`{{query.x}}`).
fn reads_query(template: &str) -> bool {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else { return false };
        if rest[start + 2..start + end].trim().starts_with("query.") {
            return true;
        }
        rest = &rest[start + end + 2..];
    }
    false
}

/// Fills `{{payload.a.b}}`, `{{payload}}` and `{{query.x}}` (a missing value becomes empty) into
/// at most `max_chars` characters.
pub fn render(
    template: &str,
    payload: &Value,
    query: &[(String, String)],
    max_chars: usize,
) -> Result<String, TooLong> {
    let mut out = Prompt { buf: Vec::with_capacity(template.len().min(max_chars)), left: max_chars };
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.text(&rest[..start])?;
        let Some(end) = rest[start..].find("}}") else {
            out.text(&rest[start..])?;
            rest = "";
            break;
        };
        match fill(rest[start + 2..start + end].trim(), payload, query) {
            Fill::Json(v) => out.json(v)?,
            Fill::Text(s) => out.text(s)?,
        }
        rest = &rest[start + end + 2..];
    }
    out.text(rest)?;
    // Only whole `str`s and serde_json's UTF-8 were written.
    String::from_utf8(out.buf).map_err(|_| TooLong)
}

/// `POST /api/webhook-triggers` `{path, method?, sessionId?, promptTemplate, signQuery?}` → 201 `{trigger, secret}`.
pub async fn create(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let mut input = Input::parse(&ctx.raw_body())?;
    let path = input.str("path", 1, 200);
    if !path.is_empty() {
        if let Err(m) = valid_path(&path) {
            input.error("path", m);
        }
    }
    let method = input.opt_enum("method", &METHODS, |m| METHODS.iter().find(|x| **x == m).copied()).unwrap_or("POST");
    let session_id = input.opt_str("sessionId", 1, 100);
    let template = input.str("promptTemplate", 1, MAX_TEMPLATE_BYTES);
    if template.len() > MAX_TEMPLATE_BYTES {
        input.error("promptTemplate", format!("At most {MAX_TEMPLATE_BYTES} bytes"));
    }
    let sign_query = input.opt_bool("signQuery").unwrap_or(false);
    // An unsigned query is anyone's to change on a captured delivery.
    if reads_query(&template) && !sign_query {
        input.error("promptTemplate", "{{query.*}} needs signQuery: true (the signature must cover the query)");
    }
    input.finish()?;
    let db = ctx.db()?;
    if let Some(s) = &session_id {
        let session = crate::sessions::store::owned_session(&db, &caller.id, s).await?;
        if session.is_finished() {
            return Err(ApiError::invalid_field("sessionId", "The session has finished"));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let secret = format!("whsec_{}", random_token::<32>());
    let sealed = crate::config::keyring(&ctx.env)?.seal_str(&Aad { purpose: PURPOSE, owner: &id }, &secret);
    let now = iso(ctx.now);
    let row: Option<Row> = crate::q!(
        &db,
        "INSERT INTO webhook_triggers (id, user_id, path, method, session_id, prompt_template, secret_sealed, created_at, sign_query)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10 WHERE (SELECT COUNT(*) FROM webhook_triggers WHERE user_id = ?2) < ?9
         ON CONFLICT(path) DO NOTHING RETURNING *",
        &id,
        &caller.id,
        &path,
        &method,
        &session_id,
        &template,
        &sealed,
        &now,
        &MAX_PER_USER,
        &i64::from(sign_query)
    )?
    .one()
    .await?;
    let Some(row) = row else {
        let taken: Option<Value> =
            crate::q!(&db, "SELECT 1 AS x FROM webhook_triggers WHERE path = ?1", &path)?.one().await?;
        return Err(if taken.is_some() {
            ApiError::conflict("TRIGGER_PATH_TAKEN", format!("The path '{path}' is already in use"))
        } else {
            crate::http::limit_reached("webhook triggers", MAX_PER_USER)
        });
    };
    Reply::json(201, &json!({ "trigger": row.view(&ctx.public_origin()), "secret": secret }))
}

/// `GET /api/webhook-triggers` → `{triggers}` (the caller's).
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let rows: Vec<Row> = crate::q!(
        &ctx.db()?,
        "SELECT * FROM webhook_triggers WHERE user_id = ?1 ORDER BY created_at DESC, id DESC",
        &caller.id
    )?
    .rows()
    .await?
    .results()?;
    let origin = ctx.public_origin();
    Reply::ok(&json!({ "triggers": rows.iter().map(|r| r.view(&origin)).collect::<Vec<_>>() }))
}

/// `DELETE /api/webhook-triggers/:id` (owner only).
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let id = ctx.params.get("id");
    let r = crate::q!(&ctx.db()?, "DELETE FROM webhook_triggers WHERE id = ?1 AND user_id = ?2", &id, &caller.id)?
        .exec()
        .await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found(format!("Webhook trigger '{id}' not found")));
    }
    Reply::ok(&success())
}

/// A delivery to `/webhooks/<path>`.
pub async fn deliver(ctx: &Ctx) -> ApiResult<Reply> {
    let path = ctx.params.get("path");
    let db = ctx.db()?;
    let row: Row = crate::q!(&db, "SELECT * FROM webhook_triggers WHERE path = ?1", &path)?
        .one()
        .await?
        .ok_or_else(|| ApiError::not_found("No webhook trigger at this path"))?;
    let method = ctx.method.as_str();
    if row.method != method {
        return Err(ApiError::method_not_allowed(&[row.method.as_str()]));
    }
    let secret = crate::config::keyring(&ctx.env)?
        .open_str(&Aad { purpose: PURPOSE, owner: &row.id }, &row.secret_sealed, Legacy::D1Column)
        .map(|(s, _)| s)
        .map_err(|_| ApiError::internal("a trigger secret could not be decrypted"))?;
    let signature = ctx.header("X-Webhook-Signature").or_else(|| ctx.header("X-Hub-Signature-256")).unwrap_or_default();
    let valid = if row.sign_query == 1 {
        super::signatures::target_signature_valid(&secret, ctx.path_and_query(), &ctx.raw_body(), &signature)
    } else {
        super::signatures::sha256_hex_signature_valid(&secret, &ctx.raw_body(), &signature)
    };
    if !valid {
        return Err(ApiError::new(401, "INVALID_SIGNATURE", "Invalid signature"));
    }
    // The body is the delivery (its HMAC is what was signed); an id header, which nothing
    // signs, can only add a key: a replay under a new id is still the same body.
    let body_hash = sha256_hex(&ctx.raw_body());
    let delivery_id = ctx
        .header("X-Webhook-Id")
        .or_else(|| ctx.header("X-GitHub-Delivery"))
        .filter(|d| !d.is_empty() && d.len() <= 200);
    let payload: Value = serde_json::from_slice(&ctx.raw_body()).unwrap_or(Value::Null);
    // The query only when it was signed; a trigger made before signQuery renders it empty.
    let query = if row.sign_query == 1 { ctx.query.pairs() } else { &[] };
    // Before the delivery is recorded: a refused one may be sent again once the trigger is fixed.
    let content = render(&row.prompt_template, &payload, query, MAX_CONTENT_CHARS).map_err(|_| {
        ApiError::new(
            413,
            "PAYLOAD_TOO_LARGE",
            format!("With this payload the trigger's template makes a prompt over the limit of {MAX_CONTENT_CHARS} characters"),
        )
        .with_details(json!({ "limitChars": MAX_CONTENT_CHARS }))
    })?;
    if content.trim().is_empty() {
        return Err(ApiError::invalid_field("", "The trigger's template produced an empty prompt"));
    }
    // Recorded first, forgotten if the prompt cannot be delivered (so a retry can succeed).
    let provider = format!("trigger:{}", row.id);
    let now = iso(ctx.now);
    if !record_delivery(&db, &provider, &body_hash, delivery_id.as_deref(), &now).await? {
        return Reply::ok(&json!({ "received": true, "duplicate": true }));
    }
    let req = PromptRequest {
        content,
        channel_type: Some("api".into()),
        channel_id: Some(format!("webhook:{}", row.id)),
        author_id: Some(row.user_id.clone()),
        author_name: Some(format!("webhook {}", row.path)),
        idempotency_key: Some(format!("webhook:{}:{body_hash}", row.id)),
        ..Default::default()
    };
    let routed = async {
        let live = match &row.session_id {
            Some(s) => {
                crate::sessions::store::owned_session(&db, &row.user_id, s).await.ok().filter(|s| !s.is_finished())
            }
            None => None,
        };
        let session = match live {
            Some(s) => s,
            None => crate::sessions::store::ensure_orchestrator(&db, &row.user_id, ctx.now).await?.0,
        };
        SessionAgent::new(&ctx.env, &session.id).prompt(&req).await
    }
    .await;
    match routed {
        Ok(accepted) => {
            crate::q!(&db, "UPDATE webhook_triggers SET last_delivery_at = ?1 WHERE id = ?2", &iso(ctx.now), &row.id)?
                .exec()
                .await?;
            Reply::json(202, &json!({ "received": true, "promptId": accepted.prompt_id }))
        }
        Err(e) => {
            crate::q!(
                &db,
                "DELETE FROM webhook_deliveries WHERE provider = ?1 AND delivery_id IN (?2, ?3)",
                &provider,
                &body_hash,
                &delivery_id
            )?
            .exec()
            .await?;
            Err(e)
        }
    }
}

/// Records a delivery under its body hash and, when it has one, its id, in one statement: both
/// or neither, and neither when either was seen before. Answers whether it is new.
async fn record_delivery(
    db: &worker::d1::D1Database,
    provider: &str,
    body_hash: &str,
    delivery_id: Option<&str>,
    now: &str,
) -> ApiResult<bool> {
    let r = crate::q!(
        db,
        "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at)
         SELECT ?1, k, 'trigger', ?4 FROM (SELECT ?2 AS k UNION ALL SELECT ?3 WHERE ?3 IS NOT NULL)
          WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE provider = ?1 AND delivery_id IN (?2, ?3))
         ON CONFLICT DO NOTHING",
        &provider,
        &body_hash,
        &delivery_id,
        &now
    )?
    .exec()
    .await?;
    Ok(r.changes() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(valid_path("deploys/prod-1").is_ok());
        assert!(valid_path("github-ish").is_ok(), "only whole first segments are reserved");
        for bad in ["", "Upper", "a//b", "/a", "a/", "a b", "github/x", "slack", &"a".repeat(201)] {
            assert!(valid_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates() {
        let payload = json!({ "repo": { "name": "app" }, "n": 3, "list": ["x", "y"], "nested": { "k": true } });
        let q = vec![("env".to_string(), "prod".to_string())];
        let r = |t: &str| render(t, &payload, &q, 1000).unwrap();
        assert_eq!(r("Deploy {{payload.repo.name}} #{{ payload.n }} to {{query.env}}"), "Deploy app #3 to prod");
        assert_eq!(r("{{payload.list.1}} {{payload.nested}} [{{payload.missing}}]"), "y {\"k\":true} []");
        assert_eq!(r("{{unknown}}x{{"), "x{{");
        assert_eq!(render("{{payload}}", &json!("s"), &q, 10), Ok("\"s\"".to_string()));
        assert_eq!(render("{{payload}}", &Value::Null, &q, 10), Ok("null".to_string()));
    }

    #[test]
    fn query_placeholders() {
        assert!(reads_query("Deploy to {{query.env}}"));
        assert!(reads_query("{{payload}} {{ query.x }}"));
        assert!(!reads_query("{{payload.query.env}} query.env {{payload}}"));
        assert!(!reads_query("{{ query.env"));
    }

    #[test]
    fn rendering_stops_at_the_limit() {
        let payload = json!({ "text": "é".repeat(10) });
        let q = vec![("env".to_string(), "ü".repeat(5))];
        // Characters, not bytes: `{"text":"éééééééééé"}` is 21 characters.
        assert_eq!(render("{{payload}}", &payload, &q, 21).map(|s| s.chars().count()), Ok(21));
        assert_eq!(render("{{payload}}", &payload, &q, 20), Err(TooLong));
        assert_eq!(render("{{payload.text}}{{query.env}}!", &payload, &q, 16).map(|s| s.len()), Ok(31));
        assert_eq!(render("{{payload.text}}{{query.env}}!", &payload, &q, 15), Err(TooLong));
        assert_eq!(render("abc{{", &payload, &q, 4), Err(TooLong));
        // A template repeating a large payload is refused without building it (1,500 × 1 MB).
        let big = json!({ "text": "a".repeat(1_000_000) });
        assert_eq!(render(&"{{payload}}".repeat(1500), &big, &q, 100_000), Err(TooLong));
        assert_eq!(render(&"{{payload.text}}".repeat(1500), &big, &q, 100_000), Err(TooLong));
    }
}
