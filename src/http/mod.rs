//! HTTP conventions shared by every route: replies, request ids, CORS and security headers.

pub mod ctx;
pub mod error;
pub mod input;
pub mod page;
pub mod router;
pub mod upstream;

use serde::Serialize;
use serde_json::Value;

pub use ctx::{Caller, Ctx, OAuthGrant, Role};
pub use error::{ApiError, ApiResult};

/// What a handler answers; `app.rs` turns it into a `worker::Response`.
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub headers: Vec<(&'static str, String)>,
}

pub enum ReplyBody {
    Json(String),
    /// A server-rendered page (the OAuth consent page): `text/html`.
    Html(String),
    Empty,
}

impl Reply {
    pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult<Reply> {
        Ok(Reply { status, body: ReplyBody::Json(serde_json::to_string(value)?), headers: Vec::new() })
    }

    pub fn ok<T: Serialize>(value: &T) -> ApiResult<Reply> {
        Self::json(200, value)
    }

    /// A 200 with a JSON document that is already serialized (e.g. the embedded OpenAPI file);
    /// a `String` is moved, not copied.
    pub fn raw_json(text: impl Into<String>) -> Reply {
        Reply { status: 200, body: ReplyBody::Json(text.into()), headers: Vec::new() }
    }

    /// A server-rendered page. Pages are never framed (`frame-ancestors 'none'`) and load
    /// nothing: their only style is inline.
    pub fn html(status: u16, page: String) -> Reply {
        Reply {
            status,
            body: ReplyBody::Html(page),
            headers: vec![
                ("X-Frame-Options", "DENY".to_string()),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                        .to_string(),
                ),
            ],
        }
    }

    /// A 302 to `location` (OAuth flows).
    pub fn redirect(location: &str) -> Reply {
        Reply { status: 302, body: ReplyBody::Empty, headers: vec![("Location", location.to_string())] }
    }

    /// A status with an empty body (providers such as Xero want exactly that).
    pub fn empty(status: u16) -> Reply {
        Reply { status, body: ReplyBody::Empty, headers: Vec::new() }
    }

    pub fn no_content() -> Reply {
        Reply { status: 204, body: ReplyBody::Empty, headers: Vec::new() }
    }

    pub fn error(err: &ApiError, request_id: &str) -> Reply {
        let body = err.body(request_id);
        Reply { status: err.status, body: ReplyBody::Json(body.to_string()), headers: err.headers.clone() }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// 409 `LIMIT_REACHED`: a per-user cap (sessions, bindings, credentials, integrations, triggers).
pub fn limit_reached(what: &str, max: i64) -> ApiError {
    ApiError::conflict("LIMIT_REACHED", format!("At most {max} {what} per user"))
        .with_details(serde_json::json!({ "limit": max }))
}

/// `{"success": true}`, the acknowledgement shape of the original worker.
pub fn success() -> Value {
    serde_json::json!({ "success": true })
}

/// Echo a well-formed inbound `X-Request-Id` (`[A-Za-z0-9_=-]{1,255}`, as Hono's
/// requestId middleware accepts), else mint a UUID.
pub fn request_id(inbound: Option<&str>) -> String {
    match inbound {
        Some(id)
            if !id.is_empty()
                && id.len() <= 255
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'=') =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// A request's URL in the parts the pipeline needs, cut from the runtime's own serialisation
/// (WHATWG `URL`: scheme and host already normalised, default port dropped, no fragment), so no
/// request pays for parsing it again.
#[derive(Debug, PartialEq)]
pub struct RequestUrl<'a> {
    /// `scheme://host[:port]`.
    pub origin: &'a str,
    /// The path (`/` at least).
    pub path: &'a str,
    /// The query string without its `?`, when there is one.
    pub query: Option<&'a str>,
    /// Path and query as received (`/a?b`).
    pub target: &'a str,
}

impl<'a> RequestUrl<'a> {
    pub fn split(href: &'a str) -> Self {
        let href = href.split('#').next().unwrap_or_default();
        let host_at = href.find("://").map_or(0, |i| i + 3);
        let path_at = href[host_at..].find(['/', '?']).map_or(href.len(), |i| host_at + i);
        let (origin, target) = href.split_at(path_at);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        // The runtime always serialises a path for http(s); `/` covers anything else.
        let path = if path.is_empty() { "/" } else { path };
        RequestUrl { origin, path, query, target }
    }
}

/// Parses an absolute URL. The `url` crate here is ASCII-only (`idna_adapter` 1.0, which keeps
/// about 50 KiB of Unicode tables out of the upload); a non-ASCII host is handed to the runtime's
/// own WHATWG `URL` (V8's IDNA, the same UTS #46 processing), and its ASCII (Punycode) form is
/// parsed again, so internationalized domain names keep working.
pub fn parse_url(input: &str) -> Result<url::Url, url::ParseError> {
    match url::Url::parse(input) {
        Err(url::ParseError::IdnaError) if !input.is_ascii() => match runtime_href(input) {
            Some(href) => url::Url::parse(&href),
            None => Err(url::ParseError::IdnaError),
        },
        other => other,
    }
}

#[cfg(target_arch = "wasm32")]
fn runtime_href(input: &str) -> Option<String> {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = URL)]
        type JsUrl;
        #[wasm_bindgen(constructor, js_class = "URL", catch)]
        fn new(input: &str) -> Result<JsUrl, JsValue>;
        #[wasm_bindgen(method, getter)]
        fn href(this: &JsUrl) -> String;
    }
    JsUrl::new(input).ok().map(|u| u.href()).filter(|h| h.is_ascii())
}

#[cfg(not(target_arch = "wasm32"))]
fn runtime_href(_input: &str) -> Option<String> {
    None
}

/// Local development origins allowed besides `FRONTEND_URL` (Vite dev server and preview).
const DEV_ORIGINS: [&str; 2] = ["http://localhost:5173", "http://localhost:4173"];

/// CORS: `FRONTEND_URL`, the dev origins, and `https://*.<frontend host>` (preview deploys).
pub fn cors_allows(origin: &str, frontend_url: Option<&str>) -> bool {
    // The local development frontends only while the deployment's own frontend is unset or
    // itself local (a production deployment does not trust whatever runs on a visitor's machine).
    let local = |u: &url::Url| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let frontend_local = frontend_url.is_none_or(|f| parse_url(f).is_ok_and(|u| local(&u)));
    if DEV_ORIGINS.contains(&origin) && frontend_local {
        return true;
    }
    let Some(frontend) = frontend_url.and_then(|f| parse_url(f).ok()) else {
        return false;
    };
    let Ok(o) = parse_url(origin) else {
        return false;
    };
    if o.origin() == frontend.origin() {
        return true;
    }
    match (o.scheme(), o.host_str(), frontend.host_str()) {
        ("https", Some(host), Some(fh)) => host.strip_suffix(fh).is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
        _ => false,
    }
}

pub const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
pub const CORS_HEADERS: &str = "Content-Type, Authorization, X-Request-Id, MCP-Protocol-Version, Mcp-Session-Id";

/// Security headers on every response (the set Hono's `secureHeaders()` sends, plus no-store,
/// since every API answer is per-user).
pub const SECURITY_HEADERS: [(&str, &str); 12] = [
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Origin-Agent-Cluster", "?1"),
    ("Referrer-Policy", "no-referrer"),
    ("Strict-Transport-Security", "max-age=15552000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-DNS-Prefetch-Control", "off"),
    ("X-Download-Options", "noopen"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("X-XSS-Protection", "0"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_url_parts_match_a_full_parse() {
        for href in [
            "http://127.0.0.1:8787/health",
            "https://api.example.com/api/integrations?limit=5&after=x%20y",
            "https://api.example.com/api/a%2Fb/c?",
            "http://localhost/",
            "https://h.example/p?q=1#frag",
        ] {
            let parsed = url::Url::parse(href).unwrap();
            let cut = RequestUrl::split(href);
            assert_eq!(cut.origin, parsed.origin().ascii_serialization(), "{href}");
            assert_eq!(cut.path, parsed.path(), "{href}");
            assert_eq!(cut.query, parsed.query(), "{href}");
            let target = match parsed.query() {
                Some(q) => format!("{}?{q}", parsed.path()),
                None => parsed.path().to_string(),
            };
            assert_eq!(cut.target, target, "{href}");
        }
    }

    #[test]
    fn request_id_echo_rules() {
        assert_eq!(request_id(Some("abc-DEF_1=")), "abc-DEF_1=");
        let minted = request_id(Some("has space"));
        assert_eq!(minted.len(), 36);
        assert_ne!(request_id(Some(&"a".repeat(256))), "a".repeat(256));
        assert_eq!(request_id(None).len(), 36);
    }

    #[test]
    fn cors_origins() {
        let fe = Some("https://app.example.com");
        assert!(cors_allows("https://app.example.com", fe));
        assert!(cors_allows("https://pr-12.app.example.com", fe));
        assert!(cors_allows("http://localhost:5173", None));
        assert!(!cors_allows("http://localhost:5173", fe), "not next to a production frontend");
        assert!(cors_allows("http://localhost:5173", Some("http://localhost:3000")));
        assert!(!cors_allows("http://pr-12.app.example.com", fe));
        assert!(!cors_allows("https://evilapp.example.com", fe));
        assert!(!cors_allows("https://app.example.com.evil.io", fe));
        assert!(!cors_allows("https://other.dev", fe));
        assert!(!cors_allows("null", fe));
    }
}
