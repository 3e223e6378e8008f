//! User webhook triggers (the original's catch-all `/webhooks/*`, made safe): a user registers
//! a path and a prompt template; a delivery to `/webhooks/<path>` signed with the trigger's
//! secret (shown once, stored sealed) becomes a prompt to the trigger's session or the owner's
//! orchestrator, exactly once per delivery id.

use crate::db::Query as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crypto::{random_token, sha256_hex, Aad, Legacy};
use crate::http::input::Input;
use crate::http::{success, ApiError, ApiResult, Ctx, Reply};
use crate::sessions::agent::{PromptRequest, SessionAgent};
use crate::time::{iso, normalize};

const PURPOSE: &str = "webhook-trigger:secret";
/// Triggers one user may have.
const MAX_PER_USER: i64 = 100;
const METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];
const MAX_TEMPLATE: usize = 20_000;

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
}

impl Row {
    fn view(&self, origin: &str) -> Value {
        json!({
            "id": self.id, "path": self.path, "url": format!("{origin}/webhooks/{}", self.path), "method": self.method,
            "sessionId": self.session_id, "promptTemplate": self.prompt_template, "createdAt": normalize(&self.created_at),
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

/// Fills `{{payload.a.b}}`, `{{payload}}` and `{{query.x}}`; a missing value becomes empty.
pub fn render(template: &str, payload: &Value, query: &[(String, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = rest[start + 2..start + end].trim();
        let value = if name == "payload" {
            Some(payload.to_string())
        } else if let Some(path) = name.strip_prefix("payload.") {
            path.split('.')
                .try_fold(payload, |v, k| match v {
                    Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => v.get(k),
                })
                .filter(|v| !v.is_null())
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
        } else if let Some(key) = name.strip_prefix("query.") {
            query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        } else {
            None
        };
        out.push_str(&value.unwrap_or_default());
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// `POST /api/webhook-triggers` `{path, method?, sessionId?, promptTemplate}` → 201 `{trigger, secret}`.
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
    let template = input.str("promptTemplate", 1, MAX_TEMPLATE);
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
        "INSERT INTO webhook_triggers (id, user_id, path, method, session_id, prompt_template, secret_sealed, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE (SELECT COUNT(*) FROM webhook_triggers WHERE user_id = ?2) < ?9
         ON CONFLICT(path) DO NOTHING RETURNING *",
        &id,
        &caller.id,
        &path,
        &method,
        &session_id,
        &template,
        &sealed,
        &now,
        &MAX_PER_USER
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
    if !super::signatures::sha256_hex_signature_valid(&secret, &ctx.raw_body(), signature.trim()) {
        return Err(ApiError::new(401, "INVALID_SIGNATURE", "Invalid signature"));
    }
    let delivery = ctx
        .header("X-Webhook-Id")
        .or_else(|| ctx.header("X-GitHub-Delivery"))
        .filter(|d| !d.is_empty() && d.len() <= 200)
        .unwrap_or_else(|| sha256_hex(&ctx.raw_body()));
    let payload: Value = serde_json::from_slice(&ctx.raw_body()).unwrap_or(Value::Null);
    let content = render(&row.prompt_template, &payload, ctx.query.pairs());
    if content.trim().is_empty() {
        return Err(ApiError::invalid_field("", "The trigger's template produced an empty prompt"));
    }
    // Recorded first, forgotten if the prompt cannot be delivered (so a retry can succeed).
    let provider = format!("trigger:{}", row.id);
    let r = crate::q!(
        &db,
        "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at) VALUES (?1, ?2, 'trigger', ?3) ON CONFLICT DO NOTHING",
        &provider,
        &delivery,
        &iso(ctx.now)
    )?
    .exec()
    .await?;
    if r.changes() == 0 {
        return Reply::ok(&json!({ "received": true, "duplicate": true }));
    }
    let req = PromptRequest {
        content,
        channel_type: Some("api".into()),
        channel_id: Some(format!("webhook:{}", row.id)),
        author_id: Some(row.user_id.clone()),
        author_name: Some(format!("webhook {}", row.path)),
        idempotency_key: Some(format!("webhook:{}:{delivery}", row.id)),
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
                "DELETE FROM webhook_deliveries WHERE provider = ?1 AND delivery_id = ?2",
                &provider,
                &delivery
            )?
            .exec()
            .await?;
            Err(e)
        }
    }
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
        assert_eq!(
            render("Deploy {{payload.repo.name}} #{{ payload.n }} to {{query.env}}", &payload, &q),
            "Deploy app #3 to prod"
        );
        assert_eq!(
            render("{{payload.list.1}} {{payload.nested}} [{{payload.missing}}]", &payload, &q),
            "y {\"k\":true} []"
        );
        assert_eq!(render("{{unknown}}x{{", &payload, &q), "x{{");
    }
}
