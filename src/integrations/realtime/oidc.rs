//! Google's OIDC tokens on Pub/Sub push deliveries (`Authorization: Bearer <JWT>`): the token's
//! parts and claims checked in plain Rust (natively tested), the RS256 signature checked by the
//! runtime's WebCrypto (RSASSA-PKCS1-v1_5 over the JWK: no RSA code in our Wasm), and Google's
//! keys (`GOOGLE_CERTS_URL`, a JWKS) fetched once and kept per isolate for as long as the
//! response's `Cache-Control: max-age` allows (a token naming an unknown key refetches them, at
//! most every 30 s: Google rotates its keys).

use std::cell::RefCell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::time::Millis;

/// Google's JWKS for the tokens it signs.
pub const DEFAULT_CERTS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The issuers Google writes in `iss`.
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECS: i64 = 30;
/// Keys are kept at most this long whatever the cache header says, and this long without one.
const MAX_CACHE_MS: Millis = 24 * 3600 * 1000;
const DEFAULT_CACHE_MS: Millis = 3600 * 1000;
/// An unknown `kid` refetches the keys at most this often.
const REFETCH_MS: Millis = 30_000;

/// Why a token was refused (said in the log, never in detail to the caller).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Malformed(&'static str),
    Algorithm,
    UnknownKey,
    Signature,
    Issuer,
    Audience,
    Email,
    Expired,
    Keys(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "malformed token ({what})"),
            Refusal::Algorithm => write!(f, "not an RS256 token"),
            Refusal::UnknownKey => write!(f, "signed with a key Google does not publish"),
            Refusal::Signature => write!(f, "bad signature"),
            Refusal::Issuer => write!(f, "wrong issuer"),
            Refusal::Audience => write!(f, "wrong audience"),
            Refusal::Email => write!(f, "wrong or unverified service account"),
            Refusal::Expired => write!(f, "expired"),
            Refusal::Keys(m) => write!(f, "Google's keys unavailable: {m}"),
        }
    }
}

/// A compact JWT split into what verification needs.
#[derive(Debug)]
pub struct Token {
    pub kid: String,
    pub claims: Value,
    /// `base64url(header) . base64url(payload)`: the signed bytes.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

/// Splits and decodes a token; only RS256 is accepted (no `none`, no HMAC confusion).
pub fn parse(token: &str) -> Result<Token, Refusal> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed("not three parts"));
    };
    let decode = |x: &str| URL_SAFE_NO_PAD.decode(x.trim_end_matches('='));
    let header: Header =
        decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(Refusal::Malformed("header"))?;
    if header.alg != "RS256" {
        return Err(Refusal::Algorithm);
    }
    let claims: Value =
        decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(Refusal::Malformed("payload"))?;
    if !claims.is_object() {
        return Err(Refusal::Malformed("payload"));
    }
    let signature = decode(s).map_err(|_| Refusal::Malformed("signature"))?;
    if signature.is_empty() {
        return Err(Refusal::Malformed("signature"));
    }
    Ok(Token { kid: header.kid, claims, signing_input: format!("{h}.{p}"), signature })
}

/// What the claims must say: Google issued it, for this audience, about the configured
/// service account (verified), and it has not expired.
pub fn check_claims(claims: &Value, audience: &str, email: &str, now: Millis) -> Result<(), Refusal> {
    let iss = claims["iss"].as_str().unwrap_or("");
    if !ISSUERS.contains(&iss) {
        return Err(Refusal::Issuer);
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == audience,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(Refusal::Audience);
    }
    let verified = claims["email_verified"].as_bool() == Some(true) || claims["email_verified"] == "true";
    if claims["email"].as_str().map(str::to_ascii_lowercase) != Some(email.trim().to_ascii_lowercase()) || !verified {
        return Err(Refusal::Email);
    }
    let now_secs = now / 1000;
    let exp = claims["exp"].as_i64().ok_or(Refusal::Malformed("exp"))?;
    if exp + LEEWAY_SECS <= now_secs {
        return Err(Refusal::Expired);
    }
    if claims["iat"].as_i64().is_some_and(|iat| iat > now_secs + LEEWAY_SECS) {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// One RSA signing key of a JWKS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Jwk {
    #[serde(default)]
    pub kid: String,
    pub kty: String,
    pub n: String,
    pub e: String,
}

/// The RSA keys of a JWKS document (others are skipped).
pub fn parse_jwks(body: &[u8]) -> Option<Vec<Jwk>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let keys = v["keys"].as_array()?;
    Some(
        keys.iter()
            .filter(|k| k["kty"] == "RSA" && (k["alg"].is_null() || k["alg"] == "RS256"))
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect(),
    )
}

/// How long a response may be cached: `max-age` of `Cache-Control` (`no-store`/`no-cache`: not
/// at all), capped at a day; an hour without the header.
pub fn cache_ms(cache_control: Option<&str>) -> Millis {
    let Some(cc) = cache_control else { return DEFAULT_CACHE_MS };
    let mut max_age = None;
    for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if d == "no-store" || d == "no-cache" {
            return 0;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<i64>().ok();
        }
    }
    max_age.map_or(DEFAULT_CACHE_MS, |s| (s.max(0) * 1000).min(MAX_CACHE_MS))
}

/// The keys cached in this isolate: from which URL, fetched when, good until when.
struct Cached {
    url: String,
    keys: Vec<Jwk>,
    fetched: Millis,
    until: Millis,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The cached key `kid` of `url`: `Ok(Some)` found, `Ok(None)` the cache is fresh but lacks it
/// (refetch if allowed), `Err(())` nothing fresh cached.
fn cached(url: &str, kid: &str, now: Millis) -> Result<Option<Jwk>, bool> {
    CACHE.with(|c| match &*c.borrow() {
        Some(k) if k.url == url && k.until > now => match k.keys.iter().find(|j| j.kid == kid) {
            Some(j) => Ok(Some(j.clone())),
            None => Err(now - k.fetched >= REFETCH_MS),
        },
        _ => Err(true),
    })
}

/// Where Google's keys are fetched from and how the signature is checked: the runtime in
/// production, fixed answers in unit tests.
#[allow(async_fn_in_trait)]
pub trait KeySource {
    /// `GET url` → (body, Cache-Control).
    async fn fetch(&self, url: &str) -> Result<(Vec<u8>, Option<String>), String>;
    async fn verify(&self, key: &Jwk, signing_input: &[u8], signature: &[u8]) -> bool;
}

/// The key a token names, from the cache or freshly fetched.
async fn key_for<K: KeySource>(src: &K, url: &str, kid: &str, now: Millis) -> Result<Jwk, Refusal> {
    match cached(url, kid, now) {
        Ok(Some(k)) => return Ok(k),
        Err(false) => return Err(Refusal::UnknownKey),
        Ok(None) | Err(true) => {}
    }
    let (body, cache_control) = src.fetch(url).await.map_err(Refusal::Keys)?;
    let keys = parse_jwks(&body).ok_or_else(|| Refusal::Keys("not a JWKS document".into()))?;
    let found = keys.iter().find(|j| j.kid == kid).cloned();
    let until = now + cache_ms(cache_control.as_deref());
    CACHE.with(|c| *c.borrow_mut() = Some(Cached { url: url.to_string(), keys, fetched: now, until }));
    found.ok_or(Refusal::UnknownKey)
}

/// The whole check of a bearer token: shape, claims, then the signature over Google's key.
pub async fn verify<K: KeySource>(
    src: &K,
    certs_url: &str,
    bearer: &str,
    audience: &str,
    email: &str,
    now: Millis,
) -> Result<Value, Refusal> {
    let token = parse(bearer)?;
    check_claims(&token.claims, audience, email, now)?;
    let key = key_for(src, certs_url, &token.kid, now).await?;
    if !src.verify(&key, token.signing_input.as_bytes(), &token.signature).await {
        return Err(Refusal::Signature);
    }
    Ok(token.claims)
}

/// Forgets the cached keys (tests of rotation).
#[cfg(test)]
fn forget() {
    CACHE.with(|c| *c.borrow_mut() = None);
}

/// The runtime: outbound fetch and WebCrypto's RSASSA-PKCS1-v1_5 / SHA-256 over the JWK.
pub struct Runtime;

impl KeySource for Runtime {
    async fn fetch(&self, url: &str) -> Result<(Vec<u8>, Option<String>), String> {
        let r = crate::outbound::Call::new(worker::Method::Get, url)
            .work(crate::outbound::Work::Read)
            .header("Accept", "application/json")
            .max_bytes(256 * 1024)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.ok() {
            return Err(format!("HTTP {}", r.status));
        }
        let cc = r.header("cache-control");
        Ok((r.body, cc))
    }

    async fn verify(&self, key: &Jwk, signing_input: &[u8], signature: &[u8]) -> bool {
        rs256_verify(key, signing_input, signature).await
    }
}

/// RS256 through the runtime's WebCrypto.
async fn rs256_verify(key: &Jwk, message: &[u8], signature: &[u8]) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        use worker::js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
        use worker::wasm_bindgen::{JsCast, JsValue};
        use worker::wasm_bindgen_futures::JsFuture;
        async fn run(key: &Jwk, message: &[u8], signature: &[u8]) -> Result<bool, JsValue> {
            let subtle = Reflect::get(&Reflect::get(&worker::js_sys::global(), &"crypto".into())?, &"subtle".into())?;
            let method = |name: &str| -> Result<Function, JsValue> { Reflect::get(&subtle, &name.into())?.dyn_into() };
            let jwk = Object::new();
            for (k, v) in [("kty", "RSA"), ("n", key.n.as_str()), ("e", key.e.as_str()), ("alg", "RS256")] {
                Reflect::set(&jwk, &k.into(), &v.into())?;
            }
            Reflect::set(&jwk, &"ext".into(), &true.into())?;
            let algorithm = Object::new();
            Reflect::set(&algorithm, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
            Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())?;
            let args = Array::of5(&"jwk".into(), &jwk, &algorithm, &false.into(), &Array::of1(&"verify".into()));
            let imported = JsFuture::from(method("importKey")?.apply(&subtle, &args)?.dyn_into::<Promise>()?).await?;
            let args = Array::of4(&algorithm, &imported, &Uint8Array::from(signature), &Uint8Array::from(message));
            Ok(JsFuture::from(method("verify")?.apply(&subtle, &args)?.dyn_into::<Promise>()?).await?.is_truthy())
        }
        run(key, message, signature).await.unwrap_or(false)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (key, message, signature);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    const NOW: Millis = 1_800_000_000_000;
    const AUD: &str = "https://svc.example.com/webhooks/google/pubsub";
    const SA: &str = "push@proj.iam.gserviceaccount.com";

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.{}", b64(&header), b64(&claims), URL_SAFE_NO_PAD.encode(b"sig"))
    }

    fn good_claims() -> Value {
        json!({ "iss": "https://accounts.google.com", "aud": AUD, "email": SA, "email_verified": true,
                "exp": NOW / 1000 + 600, "iat": NOW / 1000 - 10, "sub": "1" })
    }

    struct Fake {
        fetches: Cell<u32>,
        keys: Value,
        cache: Option<&'static str>,
        valid: bool,
    }

    impl KeySource for Fake {
        async fn fetch(&self, _url: &str) -> Result<(Vec<u8>, Option<String>), String> {
            self.fetches.set(self.fetches.get() + 1);
            Ok((self.keys.to_string().into_bytes(), self.cache.map(str::to_string)))
        }
        async fn verify(&self, key: &Jwk, _m: &[u8], sig: &[u8]) -> bool {
            self.valid && key.kid == "k1" && sig == b"sig"
        }
    }

    fn fake(cache: Option<&'static str>) -> Fake {
        Fake {
            fetches: Cell::new(0),
            keys: json!({ "keys": [{ "kid": "k1", "kty": "RSA", "alg": "RS256", "n": "AQAB", "e": "AQAB", "use": "sig" },
                                   { "kid": "ec", "kty": "EC", "crv": "P-256", "x": "a", "y": "b" }] }),
            cache,
            valid: true,
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_good_token_passes_and_keys_are_cached_per_max_age() {
        forget();
        let src = fake(Some("public, max-age=120, must-revalidate, no-transform"));
        let t = token(json!({ "alg": "RS256", "kid": "k1", "typ": "JWT" }), good_claims());
        assert!(run(verify(&src, "u", &t, AUD, SA, NOW)).is_ok());
        assert!(run(verify(&src, "u", &t, AUD, SA, NOW + 60_000)).is_ok());
        assert_eq!(src.fetches.get(), 1, "the second check used the cache");
        let later = NOW + 121_000;
        let mut c = good_claims();
        c["exp"] = json!(later / 1000 + 600);
        let t2 = token(json!({ "alg": "RS256", "kid": "k1" }), c);
        assert!(run(verify(&src, "u", &t2, AUD, SA, later)).is_ok());
        assert_eq!(src.fetches.get(), 2, "max-age passed: fetched again");
    }

    #[test]
    fn an_unknown_key_refetches_at_most_every_30_seconds() {
        forget();
        let src = fake(Some("max-age=3600"));
        let t = token(json!({ "alg": "RS256", "kid": "k1" }), good_claims());
        assert!(run(verify(&src, "u", &t, AUD, SA, NOW)).is_ok());
        let other = token(json!({ "alg": "RS256", "kid": "rotated" }), good_claims());
        assert_eq!(run(verify(&src, "u", &other, AUD, SA, NOW + 1000)), Err(Refusal::UnknownKey));
        assert_eq!(src.fetches.get(), 1);
        assert_eq!(run(verify(&src, "u", &other, AUD, SA, NOW + 31_000)), Err(Refusal::UnknownKey));
        assert_eq!(src.fetches.get(), 2);
    }

    #[test]
    fn each_bad_claim_is_refused() {
        let check = |f: &dyn Fn(&mut Value)| {
            let mut c = good_claims();
            f(&mut c);
            check_claims(&c, AUD, SA, NOW)
        };
        assert_eq!(check(&|_| {}), Ok(()));
        assert_eq!(check(&|c| c["iss"] = json!("https://evil.example")), Err(Refusal::Issuer));
        assert_eq!(check(&|c| c["aud"] = json!("https://other")), Err(Refusal::Audience));
        assert_eq!(check(&|c| c["aud"] = json!(["x", AUD])), Ok(()));
        assert_eq!(check(&|c| c["email"] = json!("someone@else.com")), Err(Refusal::Email));
        assert_eq!(check(&|c| c["email_verified"] = json!(false)), Err(Refusal::Email));
        assert_eq!(check(&|c| c["exp"] = json!(NOW / 1000 - 3600)), Err(Refusal::Expired));
        assert_eq!(check(&|c| c["exp"] = json!(NOW / 1000 - 10)), Ok(()), "inside the leeway");
        assert_eq!(check(&|c| c["iat"] = json!(NOW / 1000 + 3600)), Err(Refusal::Expired));
        assert_eq!(
            check(&|c| c.as_object_mut().unwrap().remove("exp").map(|_| ()).unwrap()),
            Err(Refusal::Malformed("exp"))
        );
    }

    #[test]
    fn malformed_and_other_algorithms_are_refused() {
        assert!(matches!(parse("a.b"), Err(Refusal::Malformed(_))));
        assert!(matches!(parse("a.b.c.d"), Err(Refusal::Malformed(_))));
        assert!(matches!(parse("!!.b.c"), Err(Refusal::Malformed(_))));
        let none = token(json!({ "alg": "none" }), good_claims());
        assert_eq!(parse(&none).unwrap_err(), Refusal::Algorithm);
        let hs = token(json!({ "alg": "HS256" }), good_claims());
        assert_eq!(parse(&hs).unwrap_err(), Refusal::Algorithm);
        let t = parse(&token(json!({ "alg": "RS256", "kid": "k1" }), good_claims())).unwrap();
        assert_eq!(t.kid, "k1");
        assert_eq!(t.signature, b"sig");
        assert!(t.signing_input.split('.').count() == 2);
    }

    #[test]
    fn a_bad_signature_is_refused_after_the_claims() {
        forget();
        let mut src = fake(None);
        src.valid = false;
        let t = token(json!({ "alg": "RS256", "kid": "k1" }), good_claims());
        assert_eq!(run(verify(&src, "u", &t, AUD, SA, NOW)), Err(Refusal::Signature));
    }

    #[test]
    fn jwks_and_cache_headers() {
        let keys = parse_jwks(br#"{"keys":[{"kid":"a","kty":"RSA","n":"x","e":"AQAB"},{"kty":"EC"}]}"#).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(parse_jwks(b"[]").is_none());
        assert_eq!(cache_ms(Some("public, max-age=19857, must-revalidate")), 19_857_000);
        assert_eq!(cache_ms(Some("no-store")), 0);
        assert_eq!(cache_ms(Some("max-age=99999999")), MAX_CACHE_MS);
        assert_eq!(cache_ms(None), DEFAULT_CACHE_MS);
        assert_eq!(cache_ms(Some("public")), DEFAULT_CACHE_MS);
    }
}
