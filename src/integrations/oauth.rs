//! The OAuth 2 authorization-code flow for any service that declares `OAuth` parameters:
//! the authorize URL (server-side state, PKCE S256), and the code exchange / refresh at the
//! service's token endpoint. Answers of both GitHub (200 with an `error` field) and Google
//! (4xx with `error`) are understood.

use base64::Engine;
use serde_json::Value;
use worker::Method;

use super::service::{Credentials, OAuth};
use crate::config::{base_url, Vars};
use crate::crypto::{hmac_sha256, sha256};
use crate::outbound::{Call, Http};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The PKCE verifier of a state, derived from it with the deployment's key: nothing to store,
/// and only this service can compute it (RFC 7636 §4.1: 43 characters of base64url).
pub fn pkce_verifier(encryption_key: &str, state: &str) -> String {
    B64.encode(hmac_sha256(encryption_key.as_bytes(), format!("oauth-pkce-verifier:{state}").as_bytes()))
}

pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(sha256(verifier.as_bytes()))
}

/// Why an exchange or refresh failed.
#[derive(Debug, Clone, PartialEq)]
pub enum GrantError {
    NotConfigured(&'static str),
    /// The provider refused the grant (`invalid_grant`: revoked, expired, already used).
    Refused {
        error: String,
        description: String,
    },
    /// Unreachable, timed out, or answered something unreadable.
    Unavailable(String),
}

pub fn client_id(spec: &OAuth, vars: &dyn Vars) -> Result<String, GrantError> {
    vars.setting(spec.client_id_var).ok_or(GrantError::NotConfigured(spec.client_id_var))
}

/// The URL the user is sent to.
pub fn authorize_url(
    spec: &OAuth,
    vars: &dyn Vars,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String, GrantError> {
    let client_id = client_id(spec, vars)?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", &client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &spec.scopes.join(spec.scope_separator))
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in spec.extra {
        q.append_pair(k, v);
    }
    let base = base_url(vars, spec.authorize_base.0, spec.authorize_base.1);
    Ok(format!("{base}{}?{}", spec.authorize_path, q.finish()))
}

/// The token endpoint: its configured base and the service's path on it.
fn token_url(spec: &OAuth, vars: &dyn Vars) -> String {
    format!("{}{}", base_url(vars, spec.token_url.0, spec.token_url.1), spec.token_path)
}

/// Turns a token endpoint's answer into credentials (`access_token`, `refresh_token`,
/// `expires_at` as epoch seconds, `scope`, `token_type`).
pub fn read_grant(status: u16, body: &[u8], now_secs: i64) -> Result<Credentials, GrantError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        GrantError::Unavailable(format!("the token endpoint answered {status} with an unreadable body"))
    })?;
    let text = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(error) = text("error") {
        return Err(GrantError::Refused { error, description: text("error_description").unwrap_or_default() });
    }
    let Some(access) = text("access_token").filter(|_| (200..300).contains(&status)) else {
        return Err(GrantError::Unavailable(format!("the token endpoint answered {status} without an access token")));
    };
    let mut creds = Credentials::new();
    creds.insert("access_token".into(), access);
    for k in ["refresh_token", "scope", "token_type", "id_token"] {
        if let Some(v) = text(k) {
            creds.insert(k.into(), v);
        }
    }
    if let Some(secs) = v["expires_in"].as_i64().or_else(|| text("expires_in").and_then(|s| s.parse().ok())) {
        creds.insert("expires_at".into(), (now_secs + secs).to_string());
    }
    Ok(creds)
}

async fn token_request(
    http: &dyn Http,
    spec: &OAuth,
    vars: &dyn Vars,
    pairs: &[(&str, &str)],
    now_secs: i64,
) -> Result<Credentials, GrantError> {
    let id = client_id(spec, vars)?;
    let secret = vars.setting(spec.client_secret_var).ok_or(GrantError::NotConfigured(spec.client_secret_var))?;
    let mut form: Vec<(&str, &str)> = vec![("client_id", &id), ("client_secret", &secret)];
    form.extend_from_slice(pairs);
    let r = http
        .send(Call::new(Method::Post, token_url(spec, vars)).header("Accept", "application/json").form_body(&form))
        .await
        .map_err(|e| GrantError::Unavailable(e.to_string()))?;
    read_grant(r.status, &r.body, now_secs)
}

/// Exchanges an authorization code (with its PKCE verifier).
pub async fn exchange(
    http: &dyn Http,
    spec: &OAuth,
    vars: &dyn Vars,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    now_secs: i64,
) -> Result<Credentials, GrantError> {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    token_request(http, spec, vars, &pairs, now_secs).await
}

/// Uses a refresh token; the answer may omit a new refresh token (keep the old one).
pub async fn refresh(
    http: &dyn Http,
    spec: &OAuth,
    vars: &dyn Vars,
    refresh_token: &str,
    now_secs: i64,
) -> Result<Credentials, GrantError> {
    token_request(http, spec, vars, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], now_secs)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        // RFC 7636 Appendix B's verifier and challenge.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = pkce_verifier("k", "state");
        assert_eq!(v.len(), 43);
        assert_ne!(v, pkce_verifier("k", "other"));
    }

    #[test]
    fn grants_from_github_and_google() {
        let g = read_grant(200, br#"{"access_token":"gho_x","scope":"repo","token_type":"bearer"}"#, 100).unwrap();
        assert_eq!((g["access_token"].as_str(), g["scope"].as_str()), ("gho_x", "repo"));
        let e = read_grant(200, br#"{"error":"bad_verification_code","error_description":"The code is wrong"}"#, 0);
        assert!(matches!(e, Err(GrantError::Refused { error, .. }) if error == "bad_verification_code"));
        let g = read_grant(200, br#"{"access_token":"ya29","refresh_token":"1//r","expires_in":3599}"#, 1000).unwrap();
        assert_eq!((g["refresh_token"].as_str(), g["expires_at"].as_str()), ("1//r", "4599"));
        let e = read_grant(
            400,
            br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            0,
        );
        assert!(matches!(e, Err(GrantError::Refused { error, .. }) if error == "invalid_grant"));
        assert!(matches!(read_grant(502, b"<html>", 0), Err(GrantError::Unavailable(_))));
    }

    #[test]
    fn authorize_urls_carry_pkce_and_extras() {
        let vars = std::collections::BTreeMap::from([
            ("GITHUB_CLIENT_ID".to_string(), "cid".to_string()),
            ("GITHUB_WEB_URL".to_string(), "https://ghe.test/".to_string()),
        ]);
        let spec = super::super::registry::find("github").unwrap().oauth().unwrap();
        let u = authorize_url(spec, &vars, "https://app/cb", "st", "ch").unwrap();
        assert!(
            u.starts_with("https://ghe.test/login/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fapp%2Fcb")
        );
        assert!(u.contains("&code_challenge=ch&code_challenge_method=S256"));
        assert!(u.contains("scope=repo+read%3Auser+read%3Aorg"));
        assert_eq!(token_url(spec, &vars), "https://ghe.test/login/oauth/access_token");
        assert_eq!(
            authorize_url(spec, &std::collections::BTreeMap::new(), "x", "s", "c"),
            Err(GrantError::NotConfigured("GITHUB_CLIENT_ID"))
        );
    }
}
