//! The rules of the authorization server, without D1 or the runtime: scopes, redirect URIs,
//! PKCE, client registrations and client ID metadata documents, the consent form's CSRF token,
//! and the RFC 6749 error shape. Natively tested.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::crypto::{constant_time_eq, hmac_sha256, sha256};

pub const READ: &str = "mcp:read";
pub const WRITE: &str = "mcp:write";
pub const SCOPES: [&str; 2] = [READ, WRITE];

/// Access tokens live an hour; refresh tokens 30 days (each use rotates them).
pub const ACCESS_TTL_MS: i64 = 3600 * 1000;
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Authorization codes: single use, 60 seconds.
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// A browser signed in for the consent page only.
pub const BROWSER_TTL_MS: i64 = 15 * 60 * 1000;
/// Client ID metadata documents: at most this many bytes, re-read after a day.
pub const METADATA_MAX_BYTES: u64 = 5 * 1024;
pub const METADATA_TTL_MS: i64 = 24 * 3600 * 1000;

/// An error answered as RFC 6749 §5.2 JSON (`{error, error_description}`).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, error, description: description.into() }
    }
    pub fn request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub fn grant(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub fn client(d: impl Into<String>) -> Self {
        // RFC 6749 §5.2: 401 for a client the server does not know.
        Self::new(401, "invalid_client", d)
    }
    pub fn scope(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_scope", d)
    }
    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

/// The requested scopes, in canonical order; none requested means both. Unknown ones fail.
pub fn parse_scope(raw: Option<&str>) -> Result<Vec<&'static str>, OAuthError> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(SCOPES.to_vec());
    }
    let asked: Vec<&str> = raw.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(bad) = asked.iter().find(|s| !SCOPES.contains(s)) {
        return Err(OAuthError::scope(format!("Unknown scope {bad:?}; this server offers mcp:read and mcp:write")));
    }
    Ok(SCOPES.iter().copied().filter(|s| asked.contains(s)).collect())
}

pub fn scope_string(scopes: &[&str]) -> String {
    scopes.join(" ")
}

/// `scopes` of a stored grant, as the list the API shows.
pub fn scope_list(stored: &str) -> Vec<&str> {
    stored.split(' ').filter(|s| !s.is_empty()).collect()
}

fn loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A redirect URI a client may register: https, or http on a loopback host (native apps,
/// RFC 8252 §7.3); absolute, without a fragment or credentials.
pub fn redirect_uri_ok(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else { return false };
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() || u.host().is_none() {
        return false;
    }
    match u.scheme() {
        "https" => true,
        "http" => loopback_host(&u),
        _ => false,
    }
}

/// Whether `given` is one of the registered redirect URIs: exactly, or (a loopback http URI)
/// with any port (RFC 8252 §7.3: native apps listen on an ephemeral port).
pub fn redirect_matches(registered: &[String], given: &str) -> bool {
    if registered.iter().any(|r| r == given) {
        return true;
    }
    let Ok(g) = url::Url::parse(given) else { return false };
    if g.scheme() != "http" || !loopback_host(&g) {
        return false;
    }
    registered.iter().filter_map(|r| url::Url::parse(r).ok()).any(|r| {
        r.scheme() == "http"
            && r.host() == g.host()
            && r.path() == g.path()
            && r.query() == g.query()
            && g.fragment().is_none()
            && g.username().is_empty()
    })
}

/// The redirect with the answer's parameters appended (the URI's own query is kept).
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> String {
    let Ok(mut u) = url::Url::parse(uri) else { return uri.to_string() };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// A PKCE S256 challenge as RFC 7636 makes them: base64url of 32 bytes (43 characters).
pub fn challenge_ok(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1 verifier (43–128 unreserved characters) whose S256 is `challenge`.
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let shape = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    shape && constant_time_eq(URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes())).as_bytes(), challenge.as_bytes())
}

/// A client as the authorization server knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// What the consent page calls it: its name, else its id.
    pub fn display_name(&self) -> &str {
        self.client_name.as_deref().unwrap_or(&self.client_id)
    }
}

fn redirect_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    let list = v.and_then(Value::as_array).ok_or("redirect_uris must be a non-empty array of URIs")?;
    if list.is_empty() || list.len() > 20 {
        return Err("redirect_uris must hold 1 to 20 URIs".into());
    }
    list.iter()
        .map(|u| match u.as_str() {
            Some(s) if s.len() <= 2000 && redirect_uri_ok(s) => Ok(s.to_string()),
            _ => Err(format!(
                "redirect URI {u} is not allowed: use https, or http on a loopback host (127.0.0.1, [::1], localhost)"
            )),
        })
        .collect()
}

fn client_name(v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 200 => Ok(Some(s.trim().to_string())),
        Some(_) => Err("client_name must be a string of 1 to 200 characters".into()),
    }
}

/// Only public clients (PKCE, no secret): a declared method must be `none`.
fn auth_method_none(m: &Map<String, Value>) -> Result<(), String> {
    match m.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == "none" => Ok(()),
        Some(_) => Err("token_endpoint_auth_method must be \"none\" (public clients with PKCE)".into()),
    }
}

/// A dynamic registration (RFC 7591 §2): the redirect URIs and name; grant and response types,
/// when given, must be ones this server has.
pub fn parse_registration(body: &[u8]) -> Result<(Option<String>, Vec<String>), OAuthError> {
    let meta = |d: String| OAuthError::new(400, "invalid_client_metadata", d);
    let v: Value = serde_json::from_slice(body).map_err(|_| meta("The body must be a JSON object".into()))?;
    let m = v.as_object().ok_or_else(|| meta("The body must be a JSON object".into()))?;
    let uris = redirect_list(m.get("redirect_uris")).map_err(|d| OAuthError::new(400, "invalid_redirect_uri", d))?;
    let name = client_name(m.get("client_name")).map_err(meta)?;
    auth_method_none(m).map_err(meta)?;
    let subset = |key: &str, allowed: &[&str]| match m.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.iter().all(|x| x.as_str().is_some_and(|s| allowed.contains(&s))) => Ok(()),
        Some(_) => Err(meta(format!("{key} may hold only {}", allowed.join(", ")))),
    };
    subset("grant_types", &["authorization_code", "refresh_token"])?;
    subset("response_types", &["code"])?;
    if let Some(s) = m.get("scope") {
        let s = s.as_str().ok_or_else(|| meta("scope must be a string".into()))?;
        parse_scope(Some(s)).map_err(|e| meta(e.description))?;
    }
    Ok((name, uris))
}

/// Whether `client_id` names a client ID metadata document (an https URL) rather than a
/// registration.
pub fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Where a client ID metadata document may be fetched from: https, a public host, a path,
/// no fragment or credentials. `allow_loopback` (local development only) also lets http on a
/// loopback host through.
pub fn metadata_url_ok(url: &str, allow_loopback: bool) -> Result<(), &'static str> {
    let u = url::Url::parse(url).map_err(|_| "client_id is not a URL")?;
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err("a client ID URL carries no fragment or credentials");
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err("a client ID URL must have a path");
    }
    if allow_loopback && loopback_host(&u) {
        return Ok(());
    }
    if u.scheme() != "https" {
        return Err("a client ID URL must be https");
    }
    if crate::outbound::private_host(url) {
        return Err("a client ID URL must name a public host");
    }
    Ok(())
}

/// A fetched client ID metadata document: JSON whose `client_id` is the URL it came from.
pub fn parse_metadata_document(url: &str, body: &[u8]) -> Result<Client, String> {
    if body.len() as u64 > METADATA_MAX_BYTES {
        return Err(format!("the client's metadata document is over {METADATA_MAX_BYTES} bytes"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "the client's metadata document is not JSON")?;
    let m = v.as_object().ok_or("the client's metadata document is not a JSON object")?;
    if m.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err("the client's metadata document names another client_id".into());
    }
    auth_method_none(m)?;
    Ok(Client {
        client_id: url.to_string(),
        client_name: client_name(m.get("client_name"))?,
        redirect_uris: redirect_list(m.get("redirect_uris"))?,
    })
}

/// The consent form's CSRF token: bound to the browser's sign-in and to what is being approved,
/// so a form cannot be replayed by another browser or for another client.
pub fn csrf_token(key: &str, browser_hash: &str, fields: &[&str]) -> String {
    let mut msg = format!("mcp-consent\n{browser_hash}");
    for f in fields {
        msg.push('\n');
        msg.push_str(f);
    }
    URL_SAFE_NO_PAD.encode(hmac_sha256(key.as_bytes(), msg.as_bytes()))
}

pub fn csrf_ok(key: &str, browser_hash: &str, fields: &[&str], given: &str) -> bool {
    constant_time_eq(csrf_token(key, browser_hash, fields).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(parse_scope(None).unwrap(), vec![READ, WRITE]);
        assert_eq!(parse_scope(Some(" ")).unwrap(), vec![READ, WRITE]);
        assert_eq!(parse_scope(Some("mcp:write mcp:read")).unwrap(), vec![READ, WRITE]);
        assert_eq!(parse_scope(Some("mcp:read")).unwrap(), vec![READ]);
        assert_eq!(parse_scope(Some("mcp:read admin")).unwrap_err().error, "invalid_scope");
    }

    #[test]
    fn redirect_uris() {
        assert!(redirect_uri_ok("https://app.example/cb"));
        assert!(redirect_uri_ok("http://127.0.0.1:33418/callback"));
        assert!(redirect_uri_ok("http://[::1]/cb"));
        assert!(redirect_uri_ok("http://localhost:9/cb"));
        assert!(!redirect_uri_ok("http://app.example/cb"), "http only on loopback");
        assert!(!redirect_uri_ok("https://app.example/cb#x"));
        assert!(!redirect_uri_ok("https://u:p@app.example/cb"));
        assert!(!redirect_uri_ok("javascript:alert(1)"));
        assert!(!redirect_uri_ok("cb"));
        let reg = vec!["http://127.0.0.1/callback".to_string(), "https://a.example/cb".to_string()];
        assert!(redirect_matches(&reg, "http://127.0.0.1:5173/callback"), "any port on loopback");
        assert!(redirect_matches(&reg, "https://a.example/cb"));
        assert!(!redirect_matches(&reg, "https://a.example:444/cb"), "exact for https");
        assert!(!redirect_matches(&reg, "http://127.0.0.1:5173/other"));
        assert!(!redirect_matches(&reg, "http://localhost:5173/callback"), "same host");
        assert_eq!(
            redirect_with("https://a.example/cb?x=1", &[("code", "c d"), ("state", "s")]),
            "https://a.example/cb?x=1&code=c+d&state=s"
        );
    }

    #[test]
    fn pkce_s256() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(challenge_ok(challenge));
        assert!(pkce_ok(verifier, challenge));
        assert!(!pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_ok("short", challenge));
        assert!(!challenge_ok("plain-challenge"));
    }

    #[test]
    fn registrations() {
        let ok = parse_registration(br#"{"redirect_uris":["http://127.0.0.1/cb"],"client_name":"Desk","grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}"#).unwrap();
        assert_eq!(ok, (Some("Desk".into()), vec!["http://127.0.0.1/cb".into()]));
        let err = |b: &[u8]| parse_registration(b).unwrap_err().error;
        assert_eq!(err(b"[]"), "invalid_client_metadata");
        assert_eq!(err(br#"{"redirect_uris":[]}"#), "invalid_redirect_uri");
        assert_eq!(err(br#"{"redirect_uris":["http://evil.example/cb"]}"#), "invalid_redirect_uri");
        assert_eq!(
            err(br#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(br#"{"redirect_uris":["https://a.example/cb"],"grant_types":["password"]}"#),
            "invalid_client_metadata"
        );
    }

    #[test]
    fn metadata_documents() {
        assert!(metadata_url_ok("https://client.example/oauth/meta.json", false).is_ok());
        assert!(metadata_url_ok("http://client.example/meta.json", false).is_err());
        assert!(metadata_url_ok("https://127.0.0.1/meta.json", false).is_err());
        assert!(metadata_url_ok("https://10.0.0.7/meta.json", false).is_err());
        assert!(metadata_url_ok("https://localhost/meta.json", false).is_err());
        assert!(metadata_url_ok("https://client.example/", false).is_err(), "a path is required");
        assert!(metadata_url_ok("http://127.0.0.1:9/meta.json", true).is_ok(), "development only");
        let url = "https://client.example/meta.json";
        let doc = br#"{"client_id":"https://client.example/meta.json","client_name":"Editor","redirect_uris":["https://client.example/cb"]}"#;
        assert_eq!(parse_metadata_document(url, doc).unwrap().display_name(), "Editor");
        assert!(parse_metadata_document("https://other.example/meta.json", doc).is_err());
        let big = format!(
            r#"{{"client_id":"{url}","redirect_uris":["https://client.example/cb"],"pad":"{}"}}"#,
            "x".repeat(6000)
        );
        assert!(parse_metadata_document(url, big.as_bytes()).is_err());
    }

    #[test]
    fn csrf_is_bound_to_browser_and_fields() {
        let t = csrf_token("k", "browser", &["client", "https://a/cb"]);
        assert!(csrf_ok("k", "browser", &["client", "https://a/cb"], &t));
        assert!(!csrf_ok("k", "other-browser", &["client", "https://a/cb"], &t));
        assert!(!csrf_ok("k", "browser", &["client", "https://b/cb"], &t));
    }
}
