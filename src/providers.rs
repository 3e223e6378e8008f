//! Custom OpenAI-compatible LLM providers (admin; the README's "API" table):
//! the original's validation messages and reserved ids, a base URL that really is an absolute
//! http(s) URL and not a loopback or private host (unless `ALLOW_PRIVATE_PROVIDER_URLS`),
//! validated models, and an API key sealed by the credential module (bound to the provider id)
//! that an update without `apiKey` keeps while the base URL's origin stays, `null`/`""` removes,
//! and no answer shows.

use crate::db::Query as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use worker::Method;

use crate::config::var;
use crate::crypto::{Aad, Legacy};
use crate::http::error::FieldError;
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::outbound::Call;
use crate::time::{iso, normalize};

const RESERVED: [&str; 4] = ["anthropic", "openai", "google", "parallel"];
const PURPOSE: &str = "custom-provider:api-key";
/// `test` gives up on a provider's `/models` after this long.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Row {
    id: String,
    provider_id: String,
    display_name: String,
    base_url: String,
    encrypted_key: Option<String>,
    models: String,
    set_by: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Row {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "providerId": self.provider_id, "displayName": self.display_name, "baseUrl": self.base_url,
            "hasKey": self.encrypted_key.is_some(), "models": serde_json::from_str::<Value>(&self.models).unwrap_or(json!([])),
            "setBy": self.set_by, "createdAt": normalize(&self.created_at), "updatedAt": normalize(&self.updated_at),
        })
    }
}

/// The original's message in the envelope's `error`, and the field in `details`.
fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut e = ApiError::validation(vec![FieldError { field: field.into(), message: message.clone() }]);
    e.message = message;
    e
}

/// The provider id of the path, checked as the original did (rules 1 and 2).
fn provider_id(ctx: &Ctx) -> ApiResult<String> {
    let id = ctx.params.get("providerId");
    let valid = !id.is_empty()
        && id.len() <= 50
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(invalid("providerId", "Provider ID must be 1-50 characters, lowercase alphanumeric with hyphens"));
    }
    if RESERVED.contains(&id) {
        return Err(invalid("providerId", format!("Provider ID \"{id}\" is reserved for a built-in provider")));
    }
    Ok(id.to_string())
}

fn http_url(s: &str) -> bool {
    crate::http::parse_url(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// Refuses a private base URL unless `ALLOW_PRIVATE_PROVIDER_URLS=true` (local development).
fn allowed_host(ctx: &Ctx, base_url: &str) -> ApiResult<()> {
    let allowed =
        || var(&ctx.env, "ALLOW_PRIVATE_PROVIDER_URLS").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if crate::outbound::private_host(base_url) && !allowed() {
        return Err(invalid(
            "baseUrl",
            "Base URL must not be a loopback, private or link-local address (ALLOW_PRIVATE_PROVIDER_URLS=true allows them for local development)",
        ));
    }
    Ok(())
}

/// Whether two base URLs have the same origin (scheme, host and port, default ports included).
fn same_origin(a: &str, b: &str) -> bool {
    match (crate::http::parse_url(a), crate::http::parse_url(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn positive_int(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n > 0) || v.as_f64().is_some_and(|f| f > 0.0 && f.fract() == 0.0 && f < 1e15)
}

/// Models: a non-empty array of `{id, name?, contextWindow?, maxOutputTokens?}` with unique ids
/// and positive integer limits; unknown fields are dropped.
fn parse_models(v: Option<&Value>) -> ApiResult<Vec<Value>> {
    let Some(list) = v.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return Err(invalid("models", "At least one model is required"));
    };
    if list.len() > 200 {
        return Err(invalid("models", "At most 200 models"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Some(id) = m["id"].as_str().map(str::trim).filter(|s| !s.is_empty() && s.len() <= 200) else {
            return Err(invalid(&format!("models.{i}.id"), "Each model must have an id"));
        };
        if out.iter().any(|o: &Value| o["id"] == id) {
            return Err(invalid(&format!("models.{i}.id"), format!("Model ids must be unique (\"{id}\" is repeated)")));
        }
        let mut model = Map::new();
        model.insert("id".into(), json!(id));
        match &m["name"] {
            Value::Null => {}
            Value::String(n) if n.len() <= 200 => {
                model.insert("name".into(), json!(n.trim()));
            }
            _ => return Err(invalid(&format!("models.{i}.name"), "Model name must be a string")),
        }
        for limit in ["contextWindow", "maxOutputTokens"] {
            match &m[limit] {
                Value::Null => {}
                v if positive_int(v) => {
                    model.insert(limit.into(), json!(v.as_f64().unwrap_or(0.0) as u64));
                }
                _ => {
                    return Err(invalid(&format!("models.{i}.{limit}"), format!("{limit} must be a positive integer")))
                }
            }
        }
        out.push(Value::Object(model));
    }
    Ok(out)
}

async fn load(ctx: &Ctx, provider: &str) -> ApiResult<Option<Row>> {
    Ok(crate::q!(&ctx.db()?, "SELECT * FROM custom_providers WHERE provider_id = ?1", &provider)?.one().await?)
}

/// `GET /api/admin/custom-providers` → `{providers}` by display name.
pub async fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let rows: Vec<Row> =
        crate::q!(&ctx.db()?, "SELECT * FROM custom_providers ORDER BY display_name COLLATE NOCASE, provider_id")?
            .rows()
            .await?
            .results()?;
    Reply::ok(&json!({ "providers": rows.iter().map(Row::view).collect::<Vec<_>>() }))
}

/// `PUT /api/admin/custom-providers/:providerId` → `{provider}`.
pub async fn upsert(ctx: &Ctx) -> ApiResult<Reply> {
    let caller = ctx.caller()?;
    let id = provider_id(ctx)?;
    let body: Value = if ctx.raw_body().iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&ctx.raw_body()).map_err(|_| ApiError::invalid_json())?
    };
    if !body.is_object() {
        return Err(invalid("", "Expected a JSON object"));
    }
    let text = |k: &str| body[k].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let display = text("displayName")
        .filter(|d| d.chars().count() <= 100)
        .ok_or_else(|| invalid("displayName", "Display name is required"))?;
    let base = text("baseUrl").ok_or_else(|| invalid("baseUrl", "Base URL is required"))?;
    if base.len() > 2000 || !http_url(&base) {
        return Err(invalid("baseUrl", "Base URL must be an absolute http(s) URL"));
    }
    allowed_host(ctx, &base)?;
    let base = base.trim_end_matches('/');
    let models = parse_models(body.get("models"))?;
    // `apiKey`: absent keeps the stored key, null or "" removes it, a string replaces it.
    let key_change: Option<Option<String>> = match body.get("apiKey") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(k)) if k.trim().is_empty() => Some(None),
        Some(Value::String(k)) if k.len() <= 4096 => Some(Some(k.trim().to_string())),
        Some(_) => return Err(invalid("apiKey", "API key must be a string (or null to remove it)")),
    };
    let sealed = match &key_change {
        Some(Some(k)) => Some(crate::config::keyring(&ctx.env)?.seal_str(&Aad { purpose: PURPOSE, owner: &id }, k)),
        _ => None,
    };
    // The stored key was given for the stored base URL's origin: it stays only while the origin
    // does (and the row is still the one read here), unless apiKey comes with the new one.
    let stored_base = load(ctx, &id).await?.map(|r| r.base_url);
    let keep_key = stored_base.as_deref().is_some_and(|b| same_origin(b, base));
    let now = iso(ctx.now);
    let row: Option<Row> = crate::q!(
        &ctx.db()?,
        "INSERT INTO custom_providers (id, provider_id, display_name, base_url, encrypted_key, models, set_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT(provider_id) DO UPDATE SET display_name = excluded.display_name, base_url = excluded.base_url,
           encrypted_key = CASE WHEN ?9 THEN excluded.encrypted_key
                                WHEN ?10 AND custom_providers.base_url = ?11 THEN custom_providers.encrypted_key
                                ELSE NULL END,
           models = excluded.models, set_by = excluded.set_by, updated_at = excluded.updated_at
         RETURNING *",
        &uuid::Uuid::new_v4().to_string(),
        &id,
        &display,
        &base,
        &sealed,
        &Value::Array(models).to_string(),
        &caller.id,
        &now,
        &key_change.is_some(),
        &keep_key,
        &stored_base
    )?
    .one()
    .await?;
    let row = row.ok_or_else(|| ApiError::internal("provider upsert returned nothing"))?;
    Reply::ok(&json!({ "provider": row.view() }))
}

/// `DELETE /api/admin/custom-providers/:providerId` → `{ok: true}`; 404 when absent.
pub async fn delete(ctx: &Ctx) -> ApiResult<Reply> {
    let id = provider_id(ctx)?;
    let r = crate::q!(&ctx.db()?, "DELETE FROM custom_providers WHERE provider_id = ?1", &id)?.exec().await?;
    if r.changes() == 0 {
        return Err(ApiError::not_found(format!("Custom provider '{id}' not found")));
    }
    Reply::ok(&json!({ "ok": true }))
}

/// `POST /api/admin/custom-providers/:providerId/test` → `{ok, status, models}`: `GET
/// {baseUrl}/models` with the key. Reaching the endpoint answers 200 even when it refuses the
/// key (`ok: false, status: 401`); an unreachable one is a 502.
pub async fn test(ctx: &Ctx) -> ApiResult<Reply> {
    let id = provider_id(ctx)?;
    let row = load(ctx, &id).await?.ok_or_else(|| ApiError::not_found(format!("Custom provider '{id}' not found")))?;
    // One stored while private hosts were allowed is not called once they are not.
    allowed_host(ctx, &row.base_url)?;
    let mut call = Call::new(Method::Get, format!("{}/models", row.base_url))
        .header("Accept", "application/json")
        .timeout(TEST_TIMEOUT)
        .no_redirects();
    if let Some(sealed) = &row.encrypted_key {
        let (key, _) = crate::config::keyring(&ctx.env)?
            .open_str(&Aad { purpose: PURPOSE, owner: &id }, sealed, Legacy::D1Column)
            .map_err(|_| ApiError::internal("the stored provider key could not be decrypted"))?;
        call = call.header("Authorization", format!("Bearer {key}"));
    }
    let r = call.send().await.map_err(|e| {
        ApiError::upstream(format!("The provider's /models endpoint could not be reached: {e}"))
            .with_details(json!({ "status": Value::Null }))
    })?;
    let body: Value = r.json().unwrap_or(Value::Null);
    // OpenAI's shape is {data: [{id}]}; some servers answer a bare array.
    let list = body["data"].as_array().or(body.as_array()).cloned().unwrap_or_default();
    let models: Vec<Value> = list.iter().filter_map(|m| m["id"].as_str().or(m.as_str()).map(|s| json!(s))).collect();
    Reply::ok(&json!({ "ok": r.ok(), "status": r.status, "models": models }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_validated_and_cleaned() {
        let ok = parse_models(Some(
            &json!([{ "id": " gpt-x ", "name": "X", "contextWindow": 128000, "maxOutputTokens": 4096.0, "extra": 1 }]),
        ))
        .unwrap();
        assert_eq!(ok, vec![json!({ "id": "gpt-x", "name": "X", "contextWindow": 128000, "maxOutputTokens": 4096 })]);
        let msg = |v: Value| parse_models(Some(&v)).unwrap_err().message.clone();
        assert_eq!(msg(json!([])), "At least one model is required");
        assert_eq!(msg(json!([{ "name": "no id" }])), "Each model must have an id");
        assert_eq!(msg(json!([{ "id": "a" }, { "id": "a" }])), "Model ids must be unique (\"a\" is repeated)");
        assert_eq!(msg(json!([{ "id": "a", "contextWindow": 0 }])), "contextWindow must be a positive integer");
        assert_eq!(msg(json!([{ "id": "a", "maxOutputTokens": 1.5 }])), "maxOutputTokens must be a positive integer");
        assert!(parse_models(None).is_err());
    }

    #[test]
    fn private_hosts() {
        use crate::outbound::private_host;
        for private in [
            "http://127.0.0.1:8080/v1",
            "http://127.255.0.9",
            "http://0.0.0.0",
            "http://2130706433/v1",
            "http://0x7f.1",
            "http://10.1.2.3",
            "http://172.16.0.1",
            "http://172.31.255.254",
            "http://192.168.0.1",
            "http://169.254.169.254/latest",
            "http://[::1]:8080",
            "http://[::]",
            "http://[::ffff:10.0.0.1]",
            "http://[::ffff:7f00:1]",
            "http://[fc00::1]",
            "http://[fdff:ffff::1]",
            "http://[fe80::1]",
            "http://[febf::1]",
            "http://localhost:11434",
            "http://LocalHost./v1",
            "http://ollama.localhost",
        ] {
            assert!(private_host(private), "{private}");
        }
        for public in [
            "https://llm.example.com/v1",
            "http://172.15.0.1",
            "http://172.32.0.1",
            "http://192.169.0.1",
            "http://169.253.0.1",
            "http://11.0.0.1",
            "http://[2001:db8::1]",
            "http://[fec0::1]",
            "http://[::ffff:8.8.8.8]",
            "https://localhost.example.com",
            "https://notlocalhost",
        ] {
            assert!(!private_host(public), "{public}");
        }
    }

    #[test]
    fn origins() {
        assert!(same_origin("https://llm.example.com/v1", "https://LLM.example.com:443/v2"));
        assert!(same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080/other"));
        assert!(!same_origin("https://llm.example.com", "http://llm.example.com"));
        assert!(!same_origin("https://llm.example.com", "https://llm.example.com:8443"));
        assert!(!same_origin("https://llm.example.com", "https://evil.example.com"));
        assert!(!same_origin("http://127.0.0.1:8080", "http://localhost:8080"));
        assert!(!same_origin("not a url", "not a url"));
    }

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert!(http_url("https://llm.example.com/v1"));
        assert!(http_url("http://127.0.0.1:8080"));
        for bad in ["ftp://x.example", "llm.example.com", "javascript:alert(1)", "/v1", "https://"] {
            assert!(!http_url(bad), "{bad}");
        }
    }
}
