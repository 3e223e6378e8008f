//! Rate limits on what costs us without proving anything: failed bearer authentications per
//! client IP, sign-in starts per IP, and Telegram's "this bot is private" replies per sender.
//! They use the Workers Rate Limiting binding (counted at Cloudflare's edge, per location); a
//! deployment without the bindings is not limited (nothing breaks).

use std::cell::RefCell;
use std::collections::BTreeMap;

use worker::Env;

use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Failed bearer authentications per client IP.
    AuthFailures,
    /// `GET /auth/github` and `/auth/google` per client IP (each writes a state row).
    SignIn,
    /// Refusal replies of a personal Telegram bot per sender (each is a Bot API call).
    TelegramRefusals,
}

impl Limit {
    fn binding(self) -> &'static str {
        match self {
            Limit::AuthFailures => "AUTH_FAILURE_LIMITER",
            Limit::SignIn => "SIGNIN_LIMITER",
            Limit::TelegramRefusals => "TELEGRAM_REFUSAL_LIMITER",
        }
    }

    /// The Retry-After of a refusal: a retry sooner is refused again.
    pub fn period_secs(self) -> u64 {
        match self {
            Limit::AuthFailures => BLOCK_MS as u64 / 1000,
            _ => 60,
        }
    }
}

/// Whether one more event for `key` is within the limit.
pub async fn allow(env: &Env, limit: Limit, key: &str) -> bool {
    let Ok(limiter) = env.rate_limiter(limit.binding()) else { return true };
    match limiter.limit(format!("{}:{key}", limit.binding())).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            crate::config::log_error(&format!("rate limiter {} failed: {e}", limit.binding()));
            true
        }
    }
}

/// How long this isolate refuses an IP that went over the failed-authentication limit before
/// it asks the limiter again.
const BLOCK_MS: Millis = 10_000;

thread_local! {
    /// Client IPs over the failed-authentication limit, until when (this isolate's memory):
    /// their bearer tokens are refused without a D1 query.
    static BLOCKED: RefCell<BTreeMap<String, Millis>> = const { RefCell::new(BTreeMap::new()) };
}

/// Whether `ip` was recently over the failed-authentication limit.
pub fn blocked(ip: &str, now: Millis) -> bool {
    BLOCKED.with(|b| {
        let mut b = b.borrow_mut();
        b.retain(|_, until| *until > now);
        b.contains_key(ip)
    })
}

pub fn block(ip: &str, now: Millis) {
    BLOCKED.with(|b| {
        let mut b = b.borrow_mut();
        // Bounded: an isolate keeps at most this many entries.
        if b.len() >= 10_000 {
            b.clear();
        }
        b.insert(ip.to_string(), now + BLOCK_MS);
    });
}

pub fn too_many(limit: Limit) -> crate::http::ApiError {
    crate::http::ApiError::new(429, "RATE_LIMITED", "Too many requests; retry later")
        .with_details(serde_json::json!({ "retryAfter": limit.period_secs() }))
        .with_header("Retry-After", limit.period_secs().to_string())
}
