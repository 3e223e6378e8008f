//! Webhook signature checks (HMAC-SHA256) for Slack, Xero, HubSpot, Notion and user triggers.
//!
//! Every check compares in constant time (hmac's `verify_slice` over the decoded signature
//! bytes), and a malformed header (missing prefix, bad hex or base64, wrong length, a timestamp
//! that isn't a number) is simply invalid.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Slack's and HubSpot's replay window.
const WINDOW_SECS: i64 = 300;

/// Whether `tag` is HMAC-SHA256(key, concatenated parts), compared in constant time.
fn hmac_ok(key: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else { return false };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| (b as char).to_digit(16);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes().chunks(2).map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8)).collect()
}

/// `timestamp` is a number within `window` of `now` (either direction).
fn fresh(timestamp: &str, now: i64, window: i64) -> bool {
    let ts = match timestamp.parse::<i64>() {
        Ok(ts) if timestamp.bytes().all(|b| b.is_ascii_digit()) => ts,
        _ => return false,
    };
    now.checked_sub(ts).is_some_and(|d| d.unsigned_abs() <= window as u64)
}

/// Slack: X-Slack-Signature = "v0=" + hex(HMAC-SHA256(signing_secret, "v0:" + timestamp + ":" +
/// raw_body)); the timestamp (X-Slack-Request-Timestamp, seconds) must be within 300 s of now.
pub fn slack_valid(signing_secret: &str, timestamp: &str, raw_body: &[u8], signature: &str, now_secs: i64) -> bool {
    let Some(tag) = signature.trim().strip_prefix("v0=").and_then(unhex) else { return false };
    fresh(timestamp, now_secs, WINDOW_SECS)
        && hmac_ok(signing_secret, &[b"v0:", timestamp.as_bytes(), b":", raw_body], &tag)
}

/// Xero: x-xero-signature = base64(HMAC-SHA256(webhook_key, raw_body)).
pub fn xero_valid(webhook_key: &str, raw_body: &[u8], signature: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature.trim()) else { return false };
    hmac_ok(webhook_key, &[raw_body], &tag)
}

/// HubSpot signs the URI with these percent-encodings decoded (its "validating requests" docs:
/// `%3A : %2F / %3F ? %40 @ %21 ! %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;`); every other
/// encoding, `%20` included, stays as sent. Hex digits are matched in either case.
fn hubspot_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.get(1..3).and_then(|h| u8::from_str_radix(h, 16).ok()).map(char::from);
        match decoded.filter(|c| ":/?@!$'()*,;".contains(*c)) {
            Some(c) => {
                out.push(c);
                rest = &rest[3..];
            }
            None => {
                out.push('%');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// HubSpot v3: X-HubSpot-Signature-v3 = base64(HMAC-SHA256(client_secret, method + uri +
/// raw_body + timestamp)), `uri` being the full URL HubSpot called (decoded as in
/// [`hubspot_uri`]) and the timestamp X-HubSpot-Request-Timestamp (milliseconds), which must
/// be no more than 5 minutes old nor 5 minutes in the future.
pub fn hubspot_v3_valid(
    client_secret: &str,
    method: &str,
    uri: &str,
    raw_body: &[u8],
    timestamp_ms: &str,
    signature: &str,
    now_ms: i64,
) -> bool {
    let Ok(tag) = STANDARD.decode(signature.trim()) else { return false };
    let uri = hubspot_uri(uri);
    fresh(timestamp_ms, now_ms, WINDOW_SECS * 1000)
        && hmac_ok(client_secret, &[method.as_bytes(), uri.as_bytes(), raw_body, timestamp_ms.as_bytes()], &tag)
}

/// Notion: X-Notion-Signature = "sha256=" + hex(HMAC-SHA256(verification_token, raw_body)).
pub fn notion_valid(verification_token: &str, raw_body: &[u8], signature: &str) -> bool {
    sha256_hex_signature_valid(verification_token, raw_body, signature)
}

/// Generic user webhook triggers: "sha256=" + hex(HMAC-SHA256(secret, raw_body)).
pub fn sha256_hex_signature_valid(secret: &str, raw_body: &[u8], header: &str) -> bool {
    let Some(tag) = header.trim().strip_prefix("sha256=").and_then(unhex) else { return false };
    hmac_ok(secret, &[raw_body], &tag)
}

/// A user trigger with `signQuery`: "sha256=" + hex(HMAC-SHA256(secret, target + "\n" +
/// raw_body)), `target` being the request's path and query as sent (`/webhooks/<path>?<query>`).
pub fn target_signature_valid(secret: &str, target: &str, raw_body: &[u8], header: &str) -> bool {
    let Some(tag) = header.trim().strip_prefix("sha256=").and_then(unhex) else { return false };
    hmac_ok(secret, &[target.as_bytes(), b"\n", raw_body], &tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example ("Verifying requests from Slack").
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// An independent HMAC over a message assembled by hand.
    fn mac(key: &str, msg: &str) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        m.update(msg.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn slack_documented_example() {
        let now = 1531420618;
        assert!(slack_valid(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), SLACK_SIG, now));
        assert!(slack_valid(
            SLACK_SECRET,
            SLACK_TS,
            SLACK_BODY.as_bytes(),
            &SLACK_SIG.to_uppercase().replace("V0", "v0"),
            now + 300
        ));
        assert!(slack_valid(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), SLACK_SIG, now - 300));
        // Stale, future, wrong secret, tampered body.
        assert!(!slack_valid(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), SLACK_SIG, now + 301));
        assert!(!slack_valid(SLACK_SECRET, SLACK_TS, SLACK_BODY.as_bytes(), SLACK_SIG, now - 301));
        assert!(!slack_valid("8f742231b10e8888abcd99yyyzzz85a6", SLACK_TS, SLACK_BODY.as_bytes(), SLACK_SIG, now));
        assert!(!slack_valid(
            SLACK_SECRET,
            SLACK_TS,
            SLACK_BODY.replace("foobar", "foobaz").as_bytes(),
            SLACK_SIG,
            now
        ));
        // The timestamp is signed: another one within the window fails.
        assert!(!slack_valid(SLACK_SECRET, "1531420619", SLACK_BODY.as_bytes(), SLACK_SIG, now));
    }

    #[test]
    fn slack_malformed() {
        let (body, now) = (SLACK_BODY.as_bytes(), 1531420618);
        for sig in [
            "",
            "v0=",
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b5",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50300",
            "v0=g2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=é2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50",
        ] {
            assert!(!slack_valid(SLACK_SECRET, SLACK_TS, body, sig, now), "{sig}");
        }
        for ts in ["", "abc", "+1531420618", "-1", "1531420618.5", "99999999999999999999"] {
            assert!(!slack_valid(SLACK_SECRET, ts, body, SLACK_SIG, now), "{ts}");
        }
        assert!(!slack_valid(SLACK_SECRET, SLACK_TS, body, SLACK_SIG, i64::MIN));
        assert!(!slack_valid(SLACK_SECRET, "0", body, SLACK_SIG, i64::MAX));
    }

    #[test]
    fn slack_independent_vector() {
        let (ts, body) = ("1700000000", r#"{"type":"url_verification","challenge":"x"}"#);
        let sig = format!("v0={}", hex(&mac("s3cret", &format!("v0:{ts}:{body}"))));
        assert!(slack_valid("s3cret", ts, body.as_bytes(), &sig, 1700000123));
        assert!(!slack_valid("s3cret", ts, body.as_bytes(), &sig, 1700000301));
    }

    #[test]
    fn xero() {
        // openssl dgst -sha256 -hmac 'xero-webhook-key-123' -binary | base64
        let body = br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
        let sig = "srKsghr2zumXkBW7bO37TOg4MFJRJp49FY3ewVnS824=";
        assert!(xero_valid("xero-webhook-key-123", body, sig));
        assert!(!xero_valid("xero-webhook-key-124", body, sig));
        assert!(!xero_valid("xero-webhook-key-123", &body[1..], sig));
        for bad in [
            "",
            "srKsghr2zumXkBW7bO37TOg4MFJRJp49FY3ewVnS824",
            "srKsghr2zumXkBW7bO37TOg4MFJRJp49FY3ewVnS8==",
            "!!!!",
            "c3JL",
        ] {
            assert!(!xero_valid("xero-webhook-key-123", body, bad), "{bad}");
        }
    }

    #[test]
    fn hubspot_v3() {
        // openssl over "POSThttps://example.com/hooks/hubspot?a=b:c@d!$'()*,;" + body + timestamp.
        let sig = "A8Fzqk8uYMDD7FtIl2tLXXJvbWly8sVrjsQXKK8vPds=";
        let (secret, ts, body) = ("hs-client-secret", "1700000000000", br#"[{"eventId":1}]"#);
        let uri = "https://example.com/hooks/hubspot?a=b%3Ac%40d%21%24%27%28%29%2a%2C%3B";
        let now = 1700000000000;
        assert!(hubspot_v3_valid(secret, "POST", uri, body, ts, sig, now));
        assert!(hubspot_v3_valid(secret, "POST", uri, body, ts, sig, now + 300_000));
        assert!(hubspot_v3_valid(secret, "POST", uri, body, ts, sig, now - 300_000));
        assert!(!hubspot_v3_valid(secret, "POST", uri, body, ts, sig, now + 300_001), "stale");
        assert!(!hubspot_v3_valid(secret, "POST", uri, body, ts, sig, now - 300_001), "future");
        assert!(!hubspot_v3_valid("other", "POST", uri, body, ts, sig, now));
        assert!(!hubspot_v3_valid(secret, "GET", uri, body, ts, sig, now));
        assert!(!hubspot_v3_valid(secret, "POST", "https://example.com/hooks/hubspot", body, ts, sig, now));
        assert!(!hubspot_v3_valid(secret, "POST", uri, br#"[{"eventId":2}]"#, ts, sig, now));
        assert!(!hubspot_v3_valid(secret, "POST", uri, body, "1700000000001", sig, now));
        for bad in ["", "A8Fzqk8uYMDD7FtIl2tLXXJvbWly8sVrjsQXKK8vPds", "not base64!", "QQ=="] {
            assert!(!hubspot_v3_valid(secret, "POST", uri, body, ts, bad, now), "{bad}");
        }
        for bad_ts in ["", "17e11", "-1700000000000"] {
            assert!(!hubspot_v3_valid(secret, "POST", uri, body, bad_ts, sig, now), "{bad_ts}");
        }
    }

    #[test]
    fn hubspot_uri_decoding() {
        assert_eq!(
            hubspot_uri("https%3A%2F%2Fx.com%2Fa%3Fq%3D1%20%26%25%2B%40%"),
            "https://x.com/a?q%3D1%20%26%25%2B@%"
        );
        assert_eq!(hubspot_uri("%2a%2A%zz%4%"), "**%zz%4%");
        assert_eq!(hubspot_uri("é%C3%A9"), "é%C3%A9");
        // Other encodings are signed as sent.
        let (secret, ts, uri) = ("k", "1000", "https://x.com/p?name=a%20b&t=c%3Ad");
        let sig = STANDARD.encode(mac(secret, "POSThttps://x.com/p?name=a%20b&t=c:d{}1000"));
        assert!(hubspot_v3_valid(secret, "POST", uri, b"{}", ts, &sig, 1000));
    }

    #[test]
    fn notion_and_generic() {
        // openssl dgst -sha256 -hmac 'secret_notion_token'
        let body = br#"{"type":"page.created","entity":{"id":"abc"}}"#;
        let sig = "sha256=1c9dae575a98592212c7d13966e8307e2998b7cebf78a3a37e5a3c621b60fffb";
        assert!(notion_valid("secret_notion_token", body, sig));
        assert!(notion_valid("secret_notion_token", body, &sig.to_uppercase().replace("SHA256", "sha256")));
        assert!(!notion_valid("secret_notion_tokem", body, sig));
        assert!(!notion_valid("secret_notion_token", b"{}", sig));
        // openssl dgst -sha256 -hmac 'trigger-secret' over "hello world"
        let sig = "sha256=46b14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf95";
        assert!(sha256_hex_signature_valid("trigger-secret", b"hello world", sig));
        assert!(!sha256_hex_signature_valid("trigger-secret", b"hello world!", sig));
        assert!(!sha256_hex_signature_valid("", b"hello world", sig));
        for bad in [
            "",
            "sha256=",
            "46b14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf95",
            "sha1=46b14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf95",
            "sha256=46b14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf",
            "sha256=46b14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf9",
            "sha256=xyb14153b9338eef348c1b5b47a8347bda028bc807876039592bbb93761caf95",
        ] {
            assert!(!sha256_hex_signature_valid("trigger-secret", b"hello world", bad), "{bad}");
        }
        // Empty body and empty secret still work when signed so.
        let sig = format!("sha256={}", hex(&mac("", "")));
        assert!(sha256_hex_signature_valid("", b"", &sig));
    }

    #[test]
    fn target_and_body() {
        // printf '/webhooks/deploy?env=prod\n{"sha":"abc"}' | openssl dgst -sha256 -hmac 'trigger-secret'
        let expected = "sha256=69fd6f7e00b5c68d2a3d6204484df773640d0488e230a99ecfb139f3940ab345";
        let body = br#"{"sha":"abc"}"#;
        assert!(target_signature_valid("trigger-secret", "/webhooks/deploy?env=prod", body, expected));
        assert!(!target_signature_valid("trigger-secret", "/webhooks/deploy?env=test", body, expected));
        assert!(!target_signature_valid("trigger-secret", "/webhooks/deploy?env=prod", b"{}", expected));
        // The body alone is not what is signed, nor the target and body run together.
        let body_only = format!("sha256={}", hex(&mac("trigger-secret", "{\"sha\":\"abc\"}")));
        assert!(!target_signature_valid("trigger-secret", "/webhooks/deploy?env=prod", body, &body_only));
        let no_newline =
            format!("sha256={}", hex(&mac("trigger-secret", "/webhooks/deploy?env=prod{\"sha\":\"abc\"}")));
        assert!(!target_signature_valid("trigger-secret", "/webhooks/deploy?env=prod", body, &no_newline));
    }
}
