//! JSON-RPC 2.0 as MCP's Streamable HTTP transport carries it, with plain JSON answers: what a
//! POST body is (request, notification, response, batch), version negotiation, and the
//! methods of a tools-only server. Independent of D1 and the Workers runtime: a `Backend` gives
//! the caller's tools and runs them, so the dispatch is tested natively.

use base64::Engine;
use futures::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

use super::tools::Tool;
use crate::http::ApiError;
use crate::integrations::schema;

/// Protocol versions spoken, newest first (`initialize` answers the client's own when listed).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Revisions of the stateless era (2026-07-28 on): no `initialize`; the version, client info
/// and capabilities travel in every request's `_meta`, mirrored by `MCP-Protocol-Version`,
/// `Mcp-Method` and `Mcp-Name` headers; `server/discover` says what the server speaks.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// 2026-07-28: the request's headers and body disagree.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the requested revision is not spoken here (`data.supported` lists ours).
pub const UNSUPPORTED_VERSION: i64 = -32022;
pub const LATEST_VERSION: &str = SUPPORTED_VERSIONS[0];
/// Versions whose JSON-RPC layer still has batches (2025-06-18 removed them).
const BATCH_VERSIONS: [&str; 2] = ["2025-03-26", "2024-11-05"];

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// The caller's tools and how to run them.
pub trait Backend {
    /// The tools over active integrations, or (`inactive`) over every visible one.
    fn tools(&self, inactive: bool) -> LocalBoxFuture<'_, Result<Vec<Tool>, ApiError>>;
    /// Runs a tool whose arguments passed its schema.
    fn call<'a>(&'a self, tool: &'a Tool, args: &'a Value) -> LocalBoxFuture<'a, Result<Value, ApiError>>;
    /// Whether the caller may run tools that change things (an OAuth token needs `mcp:write`).
    fn may_write(&self) -> bool {
        true
    }
}

/// What the transport's headers say about a POST (2026-07-28 mirrors the body in them).
#[derive(Debug, Default, Clone, Copy)]
pub struct Transport<'a> {
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What the HTTP transport answers.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// A JSON body with this status: a response (or an array of them), or an error response.
    Json(u16, Value),
    /// 202 without a body: the POST carried only notifications or responses.
    Accepted,
}

#[derive(Debug, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

fn error_response(id: Value, e: RpcError) -> Value {
    let mut error = json!({ "code": e.code, "message": e.message });
    if let Some(data) = e.data {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

fn invalid(id: Value, message: &str) -> Value {
    error_response(id, RpcError::new(INVALID_REQUEST, format!("Invalid Request: {message}")))
}

/// One message of a POST body.
enum Message {
    Request {
        id: Value,
        method: String,
        params: Result<Map<String, Value>, RpcError>,
    },
    /// Notifications and responses: acknowledged, nothing to answer (this server sends no
    /// requests, and has no use for the notifications clients send).
    Acknowledged,
}

fn valid_id(id: &Value) -> bool {
    // MCP: a string or a number, never null.
    id.is_string() || id.is_number()
}

/// Classifies a message; `Err` is the error response to send for it.
fn classify(v: &Value) -> Result<Message, Value> {
    let Some(m) = v.as_object() else { return Err(invalid(Value::Null, "expected a JSON-RPC 2.0 message object")) };
    let id = m.get("id").filter(|i| valid_id(i)).cloned().unwrap_or(Value::Null);
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    match m.get("method") {
        Some(Value::String(method)) => match m.get("id") {
            None => Ok(Message::Acknowledged),
            Some(raw) if !valid_id(raw) => Err(invalid(Value::Null, "\"id\" must be a string or a number")),
            Some(_) => {
                let params = match m.get("params") {
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(Value::Object(p)) => Ok(p.clone()),
                    Some(_) => Err(RpcError::params("Invalid params: \"params\" must be an object")),
                };
                Ok(Message::Request { id, method: method.clone(), params })
            }
        },
        Some(_) => Err(invalid(id, "\"method\" must be a string")),
        None if m.contains_key("id") && (m.contains_key("result") || m.contains_key("error")) => {
            Ok(Message::Acknowledged)
        }
        None => Err(invalid(id, "neither a request, a notification nor a response")),
    }
}

/// Handles one POST body. `header` is the `MCP-Protocol-Version` header, if sent; `page` the
/// number of tools per `tools/list` page.
pub async fn handle(b: &dyn Backend, body: &[u8], header: Option<&str>, page: usize) -> Answer {
    handle_request(b, body, &Transport { version: header, ..Transport::default() }, page).await
}

/// The envelope's protocol version of a single request or notification, if it has one.
fn envelope_version(v: &Value) -> Option<&str> {
    v.get("params")?.get("_meta")?.get(META_VERSION)?.as_str()
}

/// Handles one POST body with all the transport's headers: a 2026-07-28 request (by its
/// header or its envelope) goes to [`modern`], everything else to the negotiated versions.
pub async fn handle_request(b: &dyn Backend, body: &[u8], t: &Transport<'_>, page: usize) -> Answer {
    let header = t.version;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let envelope = parsed.as_ref().and_then(envelope_version);
    if header.is_some_and(|v| MODERN_VERSIONS.contains(&v)) || envelope.is_some() {
        if let Some(v) = parsed {
            return modern(b, v, t, page).await;
        }
    }
    if let Some(v) = header {
        if !SUPPORTED_VERSIONS.contains(&v) {
            let message = format!(
                "Bad Request: unsupported MCP-Protocol-Version {v:?} (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            );
            return Answer::Json(400, error_response(Value::Null, RpcError::new(INVALID_REQUEST, message)));
        }
    }
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return Answer::Json(
                400,
                error_response(Value::Null, RpcError::new(PARSE_ERROR, "Parse error: the body is not JSON")),
            )
        }
    };
    let Value::Array(batch) = parsed else {
        return match classify(&parsed) {
            Err(e) => Answer::Json(400, e),
            Ok(Message::Acknowledged) => Answer::Accepted,
            Ok(Message::Request { id, method, params }) => {
                Answer::Json(200, respond(b, id, &method, params, page).await)
            }
        };
    };
    // Batches: only in the versions that have them, and only when the client said it speaks one.
    if !header.is_some_and(|v| BATCH_VERSIONS.contains(&v)) {
        let message =
            format!("batch requests are not supported in protocol version {LATEST_VERSION}; send one message per POST");
        return Answer::Json(400, invalid(Value::Null, &message));
    }
    if batch.is_empty() {
        return Answer::Json(400, invalid(Value::Null, "empty batch"));
    }
    let mut out = Vec::new();
    for item in &batch {
        match classify(item) {
            Err(e) => out.push(e),
            Ok(Message::Acknowledged) => {}
            Ok(Message::Request { id, method, .. }) if method == "initialize" => {
                out.push(invalid(id, "initialize must not be part of a batch"))
            }
            Ok(Message::Request { id, method, params }) => out.push(respond(b, id, &method, params, page).await),
        }
    }
    if out.is_empty() {
        Answer::Accepted
    } else {
        Answer::Json(200, Value::Array(out))
    }
}

async fn respond(
    b: &dyn Backend,
    id: Value,
    method: &str,
    params: Result<Map<String, Value>, RpcError>,
    page: usize,
) -> Value {
    let outcome = match params {
        Err(e) => Err(e),
        Ok(params) => dispatch(b, method, &params, page).await,
    };
    match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => error_response(id, e),
    }
}

async fn dispatch(b: &dyn Backend, method: &str, params: &Map<String, Value>, page: usize) -> Result<Value, RpcError> {
    match method {
        "initialize" => initialize(params),
        "ping" => Ok(json!({})),
        "tools/list" => list(b, params, page).await,
        "tools/call" => call(b, params).await,
        _ => Err(RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))),
    }
}

/// The version to speak: the client's when supported, else the newest this server has.
pub fn negotiate(requested: &str) -> &'static str {
    SUPPORTED_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(LATEST_VERSION)
}

fn initialize(params: &Map<String, Value>) -> Result<Value, RpcError> {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::params("Invalid params: \"protocolVersion\" is required"))?;
    Ok(json!({
        "protocolVersion": negotiate(requested),
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

const INSTRUCTIONS: &str =
    "Each tool is an action of one of your connected integrations (GitHub, Gmail, Google Calendar), \
    named <service>_<action>; integrations_list shows the integrations and their tools, entities_search \
    searches the data they synced. The server is stateless: no session id is issued, and the tool list \
    is read afresh on every tools/list.";

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("t{offset}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix('t')?.parse().ok()
}

fn internal(e: &ApiError) -> RpcError {
    crate::config::log_error(&format!("mcp: {} {}", e.status, e.internal.as_deref().unwrap_or(&e.message)));
    RpcError::new(INTERNAL_ERROR, "Internal error")
}

async fn list(b: &dyn Backend, params: &Map<String, Value>, page: usize) -> Result<Value, RpcError> {
    let offset = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => decode_cursor(c).ok_or_else(|| RpcError::params("Invalid params: unknown cursor"))?,
        Some(_) => return Err(RpcError::params("Invalid params: \"cursor\" must be a string")),
    };
    let mut tools = b.tools(false).await.map_err(|e| internal(&e))?;
    // A read-only grant (`mcp:read`) sees only the tools that read.
    if !b.may_write() {
        tools.retain(|t| t.read_only);
    }
    let page = page.max(1);
    let shown: Vec<Value> = tools.iter().skip(offset).take(page).map(Tool::to_json).collect();
    let mut result = json!({ "tools": shown });
    if offset + page < tools.len() {
        result["nextCursor"] = json!(encode_cursor(offset + page));
    }
    Ok(result)
}

async fn call(b: &dyn Backend, params: &Map<String, Value>) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::params("Invalid params: \"name\" is required"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err(RpcError::params("Invalid params: \"arguments\" must be an object")),
    };
    let mut tool = b.tools(false).await.map_err(|e| internal(&e))?.into_iter().find(|t| t.name == name);
    if tool.is_none() {
        // An integration that left `active` since the client listed its tools: the call says why.
        tool = b.tools(true).await.map_err(|e| internal(&e))?.into_iter().find(|t| t.name == name);
    }
    let tool = tool.ok_or_else(|| RpcError::params(format!("Unknown tool: {name}")))?;
    if !tool.read_only && !b.may_write() {
        let e = ApiError::new(
            403,
            "INSUFFICIENT_SCOPE",
            format!(
                "The tool {name} changes data and needs the mcp:write scope; this client was granted mcp:read only"
            ),
        )
        .with_details(json!([{ "field": "scope", "message": "mcp:write is missing" }]));
        return Ok(tool_error(&e));
    }
    // Arguments that do not fit the tool's schema are a protocol error (2025-06-18, "Error
    // Handling": invalid arguments); nothing runs.
    let schema: Value =
        serde_json::from_str(tool.schema).map_err(|_| RpcError::new(INTERNAL_ERROR, "Internal error"))?;
    let violations = schema::validate(&schema, &args);
    if !violations.is_empty() {
        let text: Vec<String> = violations
            .iter()
            .map(|v| if v.field.is_empty() { v.message.clone() } else { format!("{}: {}", v.field, v.message) })
            .collect();
        let details: Vec<Value> =
            violations.iter().map(|v| json!({ "field": v.field, "message": v.message })).collect();
        return Err(RpcError {
            code: INVALID_PARAMS,
            message: format!("Invalid arguments for tool {name}: {}", text.join("; ")),
            data: Some(json!({ "details": details })),
        });
    }
    match b.call(&tool, &args).await {
        Ok(result) => Ok(tool_result(result)),
        // The server's own failure is a protocol error; everything else the action met (the
        // provider's refusals, rate limits, reconnection needed, …) is the tool's result.
        Err(e) if e.status >= 500 && e.code == "INTERNAL_ERROR" => Err(internal(&e)),
        Err(e) => Ok(tool_error(&e)),
    }
}

fn mismatch(id: Value, detail: String) -> Answer {
    let e = RpcError {
        code: HEADER_MISMATCH,
        message: format!("Bad Request: the request headers and body disagree: {detail}"),
        data: Some(json!({ "mismatch": { "body": detail } })),
    };
    Answer::Json(400, error_response(id, e))
}

fn server_info() -> Value {
    json!({ "name": "integrations-service", "title": "Integrations", "version": env!("CARGO_PKG_VERSION") })
}

/// A 2026-07-28 result: complete (no input required), with the server's identity; lists may
/// be cached by the client for `ttlMs` (0: they follow the user's integrations).
fn complete(mut result: Value, cacheable: bool) -> Value {
    result["resultType"] = json!("complete");
    if cacheable {
        result["ttlMs"] = json!(0);
        result["cacheScope"] = json!("private");
    }
    result["_meta"] = json!({ META_SERVER_INFO: server_info() });
    result
}

/// The 2026-07-28 revision: one message per POST, each request carrying its envelope, the
/// headers agreeing with the body, no `initialize` or `ping`.
async fn modern(b: &dyn Backend, parsed: Value, t: &Transport<'_>, page: usize) -> Answer {
    if parsed.is_array() {
        return Answer::Json(400, invalid(Value::Null, "batches are not part of protocol version 2026-07-28"));
    }
    let (id, method, params) = match classify(&parsed) {
        Err(e) => return Answer::Json(400, e),
        Ok(Message::Acknowledged) => return Answer::Accepted,
        Ok(Message::Request { id, method, params }) => (id, method, params),
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => return Answer::Json(400, error_response(id, e)),
    };
    let Some(meta) = params.get("_meta").and_then(Value::as_object) else {
        let e = RpcError {
            code: INVALID_PARAMS,
            message: "Invalid params: protocol revision 2026-07-28 requires the per-request envelope (_meta)".into(),
            data: Some(json!({ "envelope": { "missing": ["_meta"] } })),
        };
        return Answer::Json(400, error_response(id, e));
    };
    let Some(version) = meta.get(META_VERSION).and_then(Value::as_str) else {
        let e = RpcError {
            code: INVALID_PARAMS,
            message: format!("Invalid params: the envelope lacks {META_VERSION}"),
            data: Some(json!({ "envelope": { "missing": [META_VERSION] } })),
        };
        return Answer::Json(400, error_response(id, e));
    };
    match t.version {
        None => {
            return mismatch(id, format!("the body envelope names protocol version {version} but the required MCP-Protocol-Version header is absent"))
        }
        Some(h) if h != version => {
            return mismatch(id, format!("the body envelope names protocol version {version} but the MCP-Protocol-Version header names {h}"))
        }
        Some(_) => {}
    }
    if !MODERN_VERSIONS.contains(&version) {
        let e = RpcError {
            code: UNSUPPORTED_VERSION,
            message: format!("Unsupported protocol version: {version}"),
            data: Some(json!({ "supported": MODERN_VERSIONS, "requested": version })),
        };
        return Answer::Json(400, error_response(id, e));
    }
    match t.method {
        Some(m) if m == method => {}
        Some(m) => return mismatch(id, format!("the body names method {method} but the Mcp-Method header names {m}")),
        None => {
            return mismatch(id, format!("the body names method {method} but the required Mcp-Method header is absent"))
        }
    }
    if method == "tools/call" {
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            if t.name != Some(name) {
                return mismatch(
                    id,
                    format!("the body carries params.name={name:?} but the Mcp-Name header does not match"),
                );
            }
        }
    }
    let outcome = match method.as_str() {
        "server/discover" => Ok(complete(
            json!({
                "supportedVersions": MODERN_VERSIONS,
                "capabilities": { "tools": { "listChanged": false } },
                "instructions": INSTRUCTIONS,
            }),
            true,
        )),
        "tools/list" => list(b, &params, page).await.map(|r| complete(r, true)),
        "tools/call" => call(b, &params).await.map(|r| complete(r, false)),
        _ => {
            let e = RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"));
            return Answer::Json(404, error_response(id, e));
        }
    };
    match outcome {
        Ok(result) => Answer::Json(200, json!({ "jsonrpc": "2.0", "id": id, "result": result })),
        Err(e) => Answer::Json(200, error_response(id, e)),
    }
}

/// A successful result: the JSON as text (for every client) and as structured content.
pub fn tool_result(result: Value) -> Value {
    let text = serde_json::to_string(&result).unwrap_or_default();
    let mut out = json!({ "content": [{ "type": "text", "text": text }], "isError": false });
    if result.is_object() {
        out["structuredContent"] = result;
    }
    out
}

/// An action's failure: its message first, then its code and details.
pub fn tool_error(e: &ApiError) -> Value {
    let mut info = json!({ "error": e.message, "code": e.code });
    if let Some(d) = &e.details {
        info["details"] = d.clone();
    }
    json!({
        "content": [{ "type": "text", "text": e.message }, { "type": "text", "text": info.to_string() }],
        "structuredContent": info,
        "isError": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::tools::{build, tests::row};
    use futures::executor::block_on;
    use std::cell::RefCell;

    /// Tools over fixed rows; calls are recorded and answered from a script.
    struct Fake {
        rows: Vec<crate::integrations::store::IntegrationRow>,
        calls: RefCell<Vec<(String, Value)>>,
        answer: RefCell<Option<Result<Value, ApiError>>>,
        read_only: bool,
    }

    impl Fake {
        fn new() -> Self {
            Fake {
                rows: vec![
                    row("aaaaaaaa-1111-4000-8000-000000000001", "me", "github", "active", "user"),
                    row("bbbbbbbb-1111-4000-8000-000000000001", "me", "gmail", "error", "user"),
                ],
                calls: RefCell::new(Vec::new()),
                answer: RefCell::new(None),
                read_only: false,
            }
        }
    }

    impl Backend for Fake {
        fn tools(&self, inactive: bool) -> LocalBoxFuture<'_, Result<Vec<Tool>, ApiError>> {
            Box::pin(async move { Ok(build(&self.rows, "me", inactive)) })
        }
        fn call<'a>(&'a self, tool: &'a Tool, args: &'a Value) -> LocalBoxFuture<'a, Result<Value, ApiError>> {
            self.calls.borrow_mut().push((tool.name.clone(), args.clone()));
            let answer = self.answer.borrow_mut().take().unwrap_or_else(|| Ok(json!({ "ok": true })));
            Box::pin(async move { answer })
        }
        fn may_write(&self) -> bool {
            !self.read_only
        }
    }

    fn post(b: &Fake, body: &str, header: Option<&str>) -> Answer {
        block_on(handle(b, body.as_bytes(), header, 5))
    }

    fn ok(b: &Fake, body: &str) -> Value {
        match post(b, body, Some("2025-06-18")) {
            Answer::Json(200, v) => v,
            other => panic!("{body}: {other:?}"),
        }
    }

    fn req(method: &str, params: Value) -> String {
        json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params }).to_string()
    }

    #[test]
    fn initialize_negotiates_the_version() {
        let b = Fake::new();
        for (asked, answered) in [
            ("2025-06-18", "2025-06-18"),
            ("2025-03-26", "2025-03-26"),
            ("2025-11-25", "2025-11-25"),
            ("2026-07-28", "2025-11-25"),
            ("1999-01-01", "2025-11-25"),
        ] {
            let r = match post(
                &b,
                &req(
                    "initialize",
                    json!({ "protocolVersion": asked, "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }),
                ),
                None,
            ) {
                Answer::Json(200, v) => v,
                other => panic!("{other:?}"),
            };
            assert_eq!((r["id"].clone(), r["result"]["protocolVersion"].as_str()), (json!(7), Some(answered)));
            assert_eq!(r["result"]["capabilities"], json!({ "tools": { "listChanged": false } }));
            assert_eq!(r["result"]["serverInfo"]["name"], "integrations-service");
        }
        let r = ok(&b, &req("initialize", json!({})));
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[test]
    fn notifications_and_responses_are_accepted_without_a_body() {
        let b = Fake::new();
        assert_eq!(post(&b, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, None), Answer::Accepted);
        assert_eq!(
            post(&b, r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#, None),
            Answer::Accepted
        );
        assert_eq!(post(&b, r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, None), Answer::Accepted);
        assert_eq!(post(&b, r#"{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}"#, None), Answer::Accepted);
    }

    #[test]
    fn protocol_faults_use_json_rpc_codes() {
        let b = Fake::new();
        let code = |a: Answer| match a {
            Answer::Json(status, v) => (status, v["error"]["code"].as_i64().unwrap_or(0), v["id"].clone()),
            Answer::Accepted => (202, 0, Value::Null),
        };
        assert_eq!(code(post(&b, "{oops", None)), (400, PARSE_ERROR, Value::Null));
        assert_eq!(code(post(&b, "", None)), (400, PARSE_ERROR, Value::Null));
        assert_eq!(code(post(&b, "42", None)), (400, INVALID_REQUEST, Value::Null));
        assert_eq!(code(post(&b, "{}", None)), (400, INVALID_REQUEST, Value::Null));
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, None)),
            (400, INVALID_REQUEST, json!(1))
        );
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, None)),
            (400, INVALID_REQUEST, Value::Null)
        );
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, None)),
            (400, INVALID_REQUEST, Value::Null)
        );
        assert_eq!(code(post(&b, r#"{"jsonrpc":"2.0","id":2,"method":5}"#, None)), (400, INVALID_REQUEST, json!(2)));
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"2.0","id":"a","method":"resources/list"}"#, None)),
            (200, METHOD_NOT_FOUND, json!("a"))
        );
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#, None)),
            (200, INVALID_PARAMS, json!(1))
        );
        assert_eq!(
            code(post(&b, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, Some("2024-01-01"))),
            (400, INVALID_REQUEST, Value::Null)
        );
        let pong = ok(&b, r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#);
        assert_eq!((pong["id"].clone(), pong["result"].clone()), (json!(1.5), json!({})));
    }

    #[test]
    fn batches_only_where_the_version_has_them() {
        let b = Fake::new();
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#;
        for header in [None, Some("2025-06-18")] {
            match post(&b, batch, header) {
                Answer::Json(400, v) => assert_eq!(v["error"]["code"], INVALID_REQUEST),
                other => panic!("{other:?}"),
            }
        }
        match post(&b, batch, Some("2025-03-26")) {
            Answer::Json(200, Value::Array(out)) => {
                assert_eq!(out.len(), 2);
                assert_eq!((out[0]["id"].clone(), out[0]["result"].clone()), (json!(1), json!({})));
                assert_eq!(out[1]["error"]["code"], METHOD_NOT_FOUND);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(post(&b, r#"[{"jsonrpc":"2.0","method":"notifications/x"}]"#, Some("2025-03-26")), Answer::Accepted);
        assert!(matches!(post(&b, "[]", Some("2025-03-26")), Answer::Json(400, _)));
        match post(
            &b,
            &format!("[{}]", req("initialize", json!({ "protocolVersion": "2025-03-26" }))),
            Some("2025-03-26"),
        ) {
            Answer::Json(200, Value::Array(out)) => assert_eq!(out[0]["error"]["code"], INVALID_REQUEST),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tools_are_listed_a_page_at_a_time() {
        let b = Fake::new();
        let mut names = Vec::new();
        let mut cursor = Value::Null;
        let mut pages = 0;
        loop {
            let r = ok(&b, &req("tools/list", json!({ "cursor": cursor })));
            let tools = r["result"]["tools"].as_array().unwrap();
            assert!(tools.len() <= 5);
            names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_string()));
            pages += 1;
            match r["result"].get("nextCursor") {
                Some(c) => cursor = c.clone(),
                None => break,
            }
        }
        // Two built-ins and GitHub's five actions; the errored Gmail offers nothing.
        assert_eq!(pages, 2);
        assert_eq!(names.len(), 7);
        assert!(names.iter().all(|n| !n.starts_with("gmail_")));
        let bad = ok(&b, &req("tools/list", json!({ "cursor": "not-a-cursor" })));
        assert_eq!(bad["error"]["code"], INVALID_PARAMS);
        let tool = &ok(&b, &req("tools/list", json!({})))["result"]["tools"][2];
        assert_eq!(tool["inputSchema"]["type"], "object");
        assert!(tool["description"].as_str().unwrap().len() > 10);
    }

    #[test]
    fn calls_are_validated_then_run() {
        let b = Fake::new();
        let r = ok(
            &b,
            &req(
                "tools/call",
                json!({ "name": "github_get_issue", "arguments": { "repository": "a/b", "number": 3 } }),
            ),
        );
        assert_eq!(r["result"]["isError"], false);
        assert_eq!(r["result"]["structuredContent"], json!({ "ok": true }));
        assert_eq!(r["result"]["content"][0], json!({ "type": "text", "text": "{\"ok\":true}" }));
        assert_eq!(b.calls.borrow().len(), 1);

        // Unknown tools and arguments against the schema: -32602, nothing runs.
        let unknown = ok(&b, &req("tools/call", json!({ "name": "github_delete_everything", "arguments": {} })));
        assert_eq!(
            (unknown["error"]["code"].as_i64(), unknown["error"]["message"].as_str()),
            (Some(INVALID_PARAMS), Some("Unknown tool: github_delete_everything"))
        );
        let bad = ok(
            &b,
            &req("tools/call", json!({ "name": "github_get_issue", "arguments": { "repository": 5, "extra": 1 } })),
        );
        assert_eq!(bad["error"]["code"], INVALID_PARAMS);
        let mut fields: Vec<&str> =
            bad["error"]["data"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["extra", "number", "repository"]);
        for params in [json!({}), json!({ "name": 3 }), json!({ "name": "github_get_issue", "arguments": [1] })] {
            assert_eq!(ok(&b, &req("tools/call", params))["error"]["code"], INVALID_PARAMS);
        }
        assert_eq!(b.calls.borrow().len(), 1);

        // A tool of an integration no longer active is still found, so the call can say why it fails.
        *b.answer.borrow_mut() =
            Some(Err(ApiError::new(409, "RECONNECT_REQUIRED", "Google access was revoked; reconnect the account")));
        let r = ok(&b, &req("tools/call", json!({ "name": "gmail_get_message", "arguments": { "id": "m1" } })));
        assert_eq!(r["result"]["isError"], true);
        assert_eq!(r["result"]["content"][0]["text"], "Google access was revoked; reconnect the account");
        assert_eq!(r["result"]["structuredContent"]["code"], "RECONNECT_REQUIRED");

        // Upstream failures are results too; the server's own failure is a protocol error.
        *b.answer.borrow_mut() =
            Some(Err(ApiError::upstream("GitHub: unavailable").with_details(json!({ "status": 503 }))));
        let r = ok(
            &b,
            &req("tools/call", json!({ "name": "github_get_repository", "arguments": { "repository": "a/b" } })),
        );
        assert_eq!(
            (r["result"]["isError"].clone(), r["result"]["structuredContent"]["details"]["status"].clone()),
            (json!(true), json!(503))
        );
        *b.answer.borrow_mut() = Some(Err(ApiError::internal("D1 went away")));
        let r = ok(&b, &req("tools/call", json!({ "name": "integrations_list" })));
        assert_eq!(
            (r["error"]["code"].as_i64(), r["error"]["message"].as_str()),
            (Some(INTERNAL_ERROR), Some("Internal error"))
        );
        assert!(!r.to_string().contains("D1"));
    }

    fn modern(b: &Fake, method: &str, params: Value, headers: (Option<&str>, Option<&str>, Option<&str>)) -> Answer {
        let mut p = params;
        p["_meta"] = json!({ META_VERSION: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
        let body = json!({ "jsonrpc": "2.0", "id": 9, "method": method, "params": p }).to_string();
        let t = Transport { version: headers.0, method: headers.1, name: headers.2 };
        block_on(handle_request(b, body.as_bytes(), &t, 5))
    }

    #[test]
    fn revision_2026_07_28_is_stateless_and_checks_its_headers() {
        let b = Fake::new();
        let v = Some("2026-07-28");
        match modern(&b, "server/discover", json!({}), (v, Some("server/discover"), None)) {
            Answer::Json(200, r) => {
                assert_eq!(r["result"]["supportedVersions"], json!(["2026-07-28"]));
                assert_eq!(r["result"]["resultType"], "complete");
                assert_eq!(r["result"]["_meta"][META_SERVER_INFO]["name"], "integrations-service");
            }
            other => panic!("{other:?}"),
        }
        match modern(&b, "tools/list", json!({}), (v, Some("tools/list"), None)) {
            Answer::Json(200, r) => assert!(r["result"]["tools"].as_array().is_some_and(|t| !t.is_empty())),
            other => panic!("{other:?}"),
        }
        let code = |a: Answer| match a {
            Answer::Json(status, r) => (status, r["error"]["code"].as_i64()),
            Answer::Accepted => (202, None),
        };
        assert_eq!(
            code(modern(&b, "tools/list", json!({}), (v, Some("tools/call"), None))),
            (400, Some(HEADER_MISMATCH))
        );
        assert_eq!(
            code(modern(&b, "tools/list", json!({}), (None, Some("tools/list"), None))),
            (400, Some(HEADER_MISMATCH))
        );
        assert_eq!(
            code(modern(&b, "tools/call", json!({ "name": "integrations_list" }), (v, Some("tools/call"), Some("x")))),
            (400, Some(HEADER_MISMATCH))
        );
        assert_eq!(
            code(modern(&b, "initialize", json!({}), (v, Some("initialize"), None))),
            (404, Some(METHOD_NOT_FOUND))
        );
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2027-01-01"}}}"#;
        let t = Transport { version: Some("2027-01-01"), method: Some("tools/list"), name: None };
        assert_eq!(code(block_on(handle_request(&b, body, &t, 5))), (400, Some(UNSUPPORTED_VERSION)));
        let bare = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let t = Transport { version: v, method: Some("tools/list"), name: None };
        assert_eq!(code(block_on(handle_request(&b, bare, &t, 5))), (400, Some(INVALID_PARAMS)));
    }

    #[test]
    fn a_read_only_grant_lists_and_runs_only_tools_that_read() {
        let mut b = Fake::new();
        b.read_only = true;
        let r = ok(&b, &req("tools/list", json!({})));
        let tools = r["result"]["tools"].as_array().unwrap();
        assert!(!tools.is_empty() && tools.iter().all(|t| t["annotations"]["readOnlyHint"] == true));
        let write = build(&b.rows, "me", false).into_iter().find(|t| !t.read_only).expect("a write tool");
        let r = ok(&b, &req("tools/call", json!({ "name": write.name, "arguments": {} })));
        assert_eq!(r["result"]["isError"], true);
        assert_eq!(r["result"]["structuredContent"]["code"], "INSUFFICIENT_SCOPE");
        assert!(b.calls.borrow().is_empty(), "nothing ran");
    }
}
