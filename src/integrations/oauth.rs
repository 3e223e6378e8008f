//! The OAuth 2 authorization-code flow for any service that declares `OAuth` parameters:
//! the authorize URL (server-side state, PKCE S256), and the code exchange / refresh at the
//! service's token endpoint. Answers of both GitHub (200 with an `error` field) and Google
//! (4xx with `error`) are understood.

use base64::Engine;
use serde_json::Value;
use worker::Method;

use super::service::{Credentials, OAuth, Revocation, OBTAINED_VIA};
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
/// `expires_at` as epoch seconds, `scope`, `token_type`; GitHub's expiring user tokens also
/// `refresh_token_expires_at`).
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
    let secs = |k: &str| v[k].as_i64().or_else(|| text(k).and_then(|s| s.parse().ok()));
    if let Some(s) = secs("expires_in") {
        creds.insert("expires_at".into(), (now_secs + s).to_string());
    }
    if let Some(s) = secs("refresh_token_expires_in") {
        creds.insert("refresh_token_expires_at".into(), (now_secs + s).to_string());
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

/// Whether two services' grants come from the same OAuth client (Gmail and Calendar share
/// Google's): revoking one's grant would take the other's with it.
pub fn same_client(a: &OAuth, b: &OAuth) -> bool {
    a.client_id_var == b.client_id_var
}

/// Whether a GitHub token is a personal access token (`ghp_…`, `github_pat_…`): one that no
/// OAuth app's grant holds, so deleting a grant leaves it working.
pub fn personal_token(token: &str) -> bool {
    token.starts_with("ghp_") || token.starts_with("github_pat_")
}

/// Whether `creds` hold a grant this service obtained through its OAuth flow.
pub fn obtained_here(creds: &Credentials) -> bool {
    creds.get(OBTAINED_VIA).is_some_and(|v| v == "oauth")
}

/// The request that revokes the grant held in `creds`, if the provider has one and there is a
/// token to revoke. Never logged: its body carries the token.
pub fn revocation(spec: &OAuth, vars: &dyn Vars, creds: &Credentials) -> Result<Option<Call>, GrantError> {
    let token = |k: &str| creds.get(k).filter(|t| !t.is_empty());
    match spec.revoke {
        None => Ok(None),
        Some(Revocation::TokenForm { url }) => {
            let Some(t) = token("refresh_token").or_else(|| token("access_token")) else { return Ok(None) };
            let call = Call::new(Method::Post, base_url(vars, url.0, url.1)).form_body(&[("token", t)]);
            Ok(Some(call))
        }
        Some(Revocation::GitHubGrant { api }) => {
            let Some(t) = token("access_token") else { return Ok(None) };
            let id = client_id(spec, vars)?;
            let secret =
                vars.setting(spec.client_secret_var).ok_or(GrantError::NotConfigured(spec.client_secret_var))?;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            let url = format!("{}/applications/{}/grant", base_url(vars, api.0, api.1), crate::outbound::segment(&id));
            let call = Call::new(Method::Delete, url)
                .header("Authorization", format!("Basic {basic}"))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json_body(&serde_json::json!({ "access_token": t }));
            Ok(Some(call))
        }
    }
}

/// Revokes the grant held in `creds` at the provider. The error says what happened without
/// the token.
pub async fn revoke(http: &dyn Http, spec: &OAuth, vars: &dyn Vars, creds: &Credentials) -> Result<(), String> {
    let Some(call) = revocation(spec, vars, creds).map_err(|e| match e {
        GrantError::NotConfigured(v) => format!("{v} is not configured"),
        _ => "not revocable".to_string(),
    })?
    else {
        return Ok(());
    };
    let r = http.send(call).await.map_err(|e| e.to_string())?;
    // Already revoked or unknown (Google 400 invalid_token, GitHub 404) counts as done.
    match r.status {
        200..=299 | 404 => Ok(()),
        400 if r.json::<Value>().is_some_and(|v| v["error"] == "invalid_token") => Ok(()),
        status => Err(format!("{} answered {status}", spec.display)),
    }
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
        // A GitHub App's expiring user token (numbers as GitHub sends them).
        let g = read_grant(
            200,
            br#"{"access_token":"ghu_a","expires_in":28800,"refresh_token":"ghr_r","refresh_token_expires_in":15897600,"token_type":"bearer","scope":""}"#,
            1000,
        )
        .unwrap();
        assert_eq!(
            (g["expires_at"].as_str(), g["refresh_token"].as_str(), g["refresh_token_expires_at"].as_str()),
            ("29800", "ghr_r", "15898600")
        );
        let e = read_grant(
            200,
            br#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
            0,
        );
        assert!(matches!(e, Err(GrantError::Refused { error, .. }) if error == "bad_refresh_token"));
    }

    #[test]
    fn revocations_of_google_and_github() {
        let creds = |pairs: &[(&str, &str)]| -> Credentials {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let vars = std::collections::BTreeMap::from([
            ("GITHUB_CLIENT_ID".to_string(), "cid".to_string()),
            ("GITHUB_CLIENT_SECRET".to_string(), "sec".to_string()),
            ("GITHUB_API_URL".to_string(), "https://ghe.test/api/v3/".to_string()),
            ("GOOGLE_OAUTH_REVOKE_URL".to_string(), "https://g.test/revoke".to_string()),
        ]);
        let gmail = super::super::registry::find("gmail").unwrap().oauth().unwrap();
        let call =
            revocation(gmail, &vars, &creds(&[("access_token", "ya29"), ("refresh_token", "1//r")])).unwrap().unwrap();
        assert_eq!((call.method.clone(), call.url.as_str()), (Method::Post, "https://g.test/revoke"));
        assert_eq!(call.body.as_deref(), Some(&b"token=1%2F%2Fr"[..]), "the refresh token takes the grant with it");
        let only_access = revocation(gmail, &vars, &creds(&[("access_token", "ya29")])).unwrap().unwrap();
        assert_eq!(only_access.body.as_deref(), Some(&b"token=ya29"[..]));
        assert!(revocation(gmail, &vars, &Credentials::new()).unwrap().is_none());
        let github = super::super::registry::find("github").unwrap().oauth().unwrap();
        let call = revocation(github, &vars, &creds(&[("access_token", "gho_x")])).unwrap().unwrap();
        assert_eq!(
            (call.method.clone(), call.url.as_str()),
            (Method::Delete, "https://ghe.test/api/v3/applications/cid/grant")
        );
        assert_eq!(call.header_value("Authorization"), Some("Basic Y2lkOnNlYw=="));
        assert_eq!(call.body.as_deref(), Some(&br#"{"access_token":"gho_x"}"#[..]));
        assert_eq!(
            revocation(github, &std::collections::BTreeMap::new(), &creds(&[("access_token", "t")])).unwrap_err(),
            GrantError::NotConfigured("GITHUB_CLIENT_ID")
        );
        assert!(obtained_here(&creds(&[(OBTAINED_VIA, "oauth")])) && !obtained_here(&creds(&[("access_token", "t")])));
        let calendar = super::super::registry::find("google_calendar").unwrap().oauth().unwrap();
        assert!(same_client(gmail, calendar) && !same_client(gmail, github));
        assert!(personal_token("ghp_abc") && personal_token("github_pat_11A") && !personal_token("gho_abc"));
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
