//! Third-party webhooks (README, "Webhooks from other services"): Discord, Xero, HubSpot and Notion deliveries, each
//! verified over the raw body before it has any effect, failing closed without its secret
//! (503), recorded once in the webhook inbox (the inbox's unique key is the deduplication);
//! the inbox's admin read route; Notion's verification window (`notion`); and user webhook
//! triggers (`triggers`).

pub mod notion;
pub mod signatures;
pub mod triggers;

use crate::db::{Batch as _, Query as _};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::var;
use crate::crypto::sha256_hex;
use crate::http::page::{page_body, Keyed, PageQuery};
use crate::http::{ApiError, ApiResult, Ctx, Reply};
use crate::time::{iso, normalize};

/// First path segments the webhook endpoints own (user triggers may not start with them).
pub const PROVIDERS: [&str; 7] = ["github", "discord", "xero", "hubspot", "notion", "slack", "google"];

fn not_configured(what: &str) -> ApiError {
    ApiError::new(503, "WEBHOOK_NOT_CONFIGURED", format!("{what} webhooks are not configured"))
}

fn bad_signature() -> ApiError {
    ApiError::new(401, "INVALID_SIGNATURE", "Invalid signature")
}

/// Records deliveries in the inbox; answers how many were new (0: all seen before).
async fn record(ctx: &Ctx, provider: &str, deliveries: &[(String, Option<String>)]) -> ApiResult<usize> {
    let db = ctx.db()?;
    let now = iso(ctx.now);
    let stmts = deliveries
        .iter()
        .map(|(id, event)| {
            crate::q!(
                &db,
                "INSERT INTO webhook_inbox (id, provider, delivery_id, event_type, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(provider, delivery_id) DO NOTHING",
                &uuid::Uuid::new_v4().to_string(),
                &provider,
                &id.chars().take(200).collect::<String>(),
                event,
                &now
            )
        })
        .collect::<worker::Result<Vec<_>>>()?;
    if stmts.is_empty() {
        return Ok(0);
    }
    let results = db.batch_rows(stmts).await?;
    Ok(results.iter().map(crate::db::Rows::changes).sum())
}

fn json_body(ctx: &Ctx) -> ApiResult<Value> {
    serde_json::from_slice(&ctx.raw_body()).map_err(|_| ApiError::invalid_json())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Ed25519 through the runtime's WebCrypto (no curve code in our Wasm).
pub async fn ed25519_verify(public_key: &[u8], signature: &[u8], message: &[u8]) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        use worker::js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
        use worker::wasm_bindgen::{JsCast, JsValue};
        use worker::wasm_bindgen_futures::JsFuture;
        async fn run(public_key: &[u8], signature: &[u8], message: &[u8]) -> Result<bool, JsValue> {
            let subtle = Reflect::get(&Reflect::get(&worker::js_sys::global(), &"crypto".into())?, &"subtle".into())?;
            let method = |name: &str| -> Result<Function, JsValue> { Reflect::get(&subtle, &name.into())?.dyn_into() };
            let algorithm = Object::new();
            Reflect::set(&algorithm, &"name".into(), &"Ed25519".into())?;
            let args = Array::of5(
                &"raw".into(),
                &Uint8Array::from(public_key),
                &algorithm,
                &false.into(),
                &Array::of1(&"verify".into()),
            );
            let key = JsFuture::from(method("importKey")?.apply(&subtle, &args)?.dyn_into::<Promise>()?).await?;
            let args = Array::of4(&algorithm, &key, &Uint8Array::from(signature), &Uint8Array::from(message));
            Ok(JsFuture::from(method("verify")?.apply(&subtle, &args)?.dyn_into::<Promise>()?).await?.is_truthy())
        }
        run(public_key, signature, message).await.unwrap_or(false)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (public_key, signature, message);
        false
    }
}

/// `POST /webhooks/discord`: interactions, signed with Ed25519 over timestamp + body.
pub async fn discord(ctx: &Ctx) -> ApiResult<Reply> {
    let key = var(&ctx.env, "DISCORD_PUBLIC_KEY").ok_or_else(|| not_configured("Discord (DISCORD_PUBLIC_KEY)"))?;
    let signature = ctx.header("X-Signature-Ed25519").and_then(|s| hex_decode(s.trim()));
    let timestamp = ctx.header("X-Signature-Timestamp").unwrap_or_default();
    let (Some(signature), Some(key)) = (signature, hex_decode(key.trim())) else { return Err(bad_signature()) };
    let mut message = timestamp.into_bytes();
    message.extend_from_slice(&ctx.raw_body());
    if signature.len() != 64 || key.len() != 32 || !ed25519_verify(&key, &signature, &message).await {
        return Err(bad_signature());
    }
    let v = json_body(ctx)?;
    if v["type"] == 1 {
        return Reply::ok(&json!({ "type": 1 }));
    }
    let id = v["id"].as_str().map(str::to_string).unwrap_or_else(|| sha256_hex(&ctx.raw_body()));
    let event = v["data"]["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["type"].as_i64().map(|t| format!("interaction:{t}")));
    record(ctx, "discord", &[(id, event)]).await?;
    Reply::ok(&discord_answer(&v))
}

/// Discord's answer to an interaction, complete in itself: nothing here sends a follow-up, so
/// a deferred answer (type 5) would leave the user looking at "thinking…" until Discord gives
/// up. Commands and modal submits get a message only their user sees (type 4, ephemeral, no
/// mentions), a component an acknowledgement that changes nothing (type 6), and autocomplete
/// an empty list of choices (type 8).
fn discord_answer(v: &Value) -> Value {
    match v["type"].as_i64() {
        Some(3) => json!({ "type": 6 }),
        Some(4) => json!({ "type": 8, "data": { "choices": [] } }),
        _ => {
            let content = match v["data"]["name"].as_str() {
                Some(name) => format!("Received `/{}`.", name.replace('`', "")),
                None => "Received.".to_string(),
            };
            json!({ "type": 4, "data": { "content": content, "flags": 64, "allowed_mentions": { "parse": [] } } })
        }
    }
}

/// `POST /webhooks/xero`: base64 HMAC-SHA256 of the body. Xero's intent-to-receive handshake
/// wants an empty 200 for a valid signature and an empty 401 otherwise, so every answer here
/// has an empty body.
pub async fn xero(ctx: &Ctx) -> ApiResult<Reply> {
    let key = var(&ctx.env, "XERO_WEBHOOK_KEY").ok_or_else(|| not_configured("Xero (XERO_WEBHOOK_KEY)"))?;
    let signature = ctx.header("x-xero-signature").unwrap_or_default();
    if !signatures::xero_valid(&key, &ctx.raw_body(), signature.trim()) {
        return Ok(Reply::empty(401));
    }
    let Ok(v) = json_body(ctx) else { return Ok(Reply::empty(400)) };
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if !events.is_empty() {
        let delivery = format!(
            "{}-{}-{}",
            v["firstEventSequence"].as_i64().unwrap_or(0),
            v["lastEventSequence"].as_i64().unwrap_or(0),
            v["entropy"].as_str().map(str::to_string).unwrap_or_else(|| sha256_hex(&ctx.raw_body()))
        );
        let kind =
            events[0]["eventCategory"].as_str().zip(events[0]["eventType"].as_str()).map(|(c, t)| format!("{c}.{t}"));
        record(ctx, "xero", &[(delivery, kind)]).await?;
    }
    Ok(Reply::empty(200))
}

/// `POST /webhooks/hubspot`: signature v3 over method + URI + body + timestamp, 5 minutes;
/// each event is recorded (and deduplicated) by its `eventId`.
pub async fn hubspot(ctx: &Ctx) -> ApiResult<Reply> {
    let secret =
        var(&ctx.env, "HUBSPOT_CLIENT_SECRET").ok_or_else(|| not_configured("HubSpot (HUBSPOT_CLIENT_SECRET)"))?;
    let signature = ctx.header("X-HubSpot-Signature-v3").unwrap_or_default();
    let timestamp = ctx.header("X-HubSpot-Request-Timestamp").unwrap_or_default();
    // HubSpot signs the URL it called, which is this request's URL (or PUBLIC_URL's).
    let uri = format!("{}{}", ctx.public_origin(), ctx.path_and_query());
    if !signatures::hubspot_v3_valid(&secret, "POST", &uri, &ctx.raw_body(), &timestamp, signature.trim(), ctx.now) {
        return Err(bad_signature());
    }
    let v = json_body(ctx)?;
    let events = match &v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let deliveries: Vec<(String, Option<String>)> = events
        .iter()
        .map(|e| {
            let id = e["eventId"].as_i64().map(|n| n.to_string()).or_else(|| e["eventId"].as_str().map(str::to_string));
            (
                id.unwrap_or_else(|| sha256_hex(e.to_string().as_bytes())),
                e["subscriptionType"].as_str().map(str::to_string),
            )
        })
        .collect();
    let new = record(ctx, "hubspot", &deliveries).await?;
    let mut body = json!({ "received": true, "events": deliveries.len() });
    if new == 0 {
        body["duplicate"] = json!(true);
    }
    Reply::ok(&body)
}

#[derive(Deserialize)]
struct InboxRow {
    id: String,
    provider: String,
    delivery_id: String,
    event_type: Option<String>,
    received_at: String,
}

impl Keyed for InboxRow {
    fn created_at(&self) -> &str {
        &self.received_at
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// `GET /api/admin/webhooks/inbox?provider=&limit=&cursor=` → `{deliveries, cursor?, hasMore}`.
pub async fn inbox(ctx: &Ctx) -> ApiResult<Reply> {
    let provider = ctx.query.get("provider").unwrap_or("");
    if !provider.is_empty() && !PROVIDERS.contains(&provider) {
        return Err(ApiError::invalid_field("provider", &format!("Expected one of: {}", PROVIDERS.join(", "))));
    }
    let page = PageQuery::parse(&ctx.query, 50)?;
    let rows: Vec<InboxRow> = crate::q!(
        &ctx.db()?,
        "SELECT id, provider, delivery_id, event_type, received_at FROM webhook_inbox
          WHERE (?1 = '' OR provider = ?1) AND (received_at < ?2 OR (received_at = ?2 AND ?3 <> '' AND id < ?3))
          ORDER BY received_at DESC, id DESC LIMIT ?4",
        &provider,
        &page.after_created,
        &page.after_id,
        &page.fetch()
    )?
    .rows()
    .await?
    .results()?;
    Reply::ok(&page_body(
        "deliveries",
        &rows,
        page.limit,
        |r| json!({ "id": r.id, "provider": r.provider, "deliveryId": r.delivery_id, "eventType": r.event_type, "receivedAt": normalize(&r.received_at) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_interactions_get_answers_that_end_them() {
        let command = discord_answer(&json!({ "type": 2, "data": { "name": "deploy" } }));
        assert_eq!(command["type"], 4);
        assert_eq!(command["data"]["content"], "Received `/deploy`.");
        assert_eq!(command["data"]["flags"], 64, "only the user who asked sees it");
        assert_eq!(command["data"]["allowed_mentions"], json!({ "parse": [] }));
        assert_eq!(discord_answer(&json!({ "type": 5, "data": { "custom_id": "m" } }))["type"], 4);
        assert_eq!(discord_answer(&json!({ "type": 3, "data": { "custom_id": "b" } })), json!({ "type": 6 }));
        assert_eq!(
            discord_answer(&json!({ "type": 4, "data": { "name": "x" } })),
            json!({ "type": 8, "data": { "choices": [] } })
        );
    }

    #[test]
    fn hex() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}
