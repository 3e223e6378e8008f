//! The console (contract §15): the service's own web interface. Its files are Workers static
//! assets (`console/dist`, built by `scripts/build.mjs`, bound as `ASSETS`), which Cloudflare
//! serves before this worker runs. What reaches the worker are the console's page addresses,
//! the ones a redirect lands on (`/login`, `/auth/callback`, `/slack/link`, `/settings/slack`)
//! and every `/console/…` page: each is the console's one HTML document, fetched here from the
//! assets binding and answered with the console's Content-Security-Policy.

use worker::{Env, Headers, Response};

/// Everything the console loads comes from this origin; nothing inline, nothing framed.
pub const CSP: &str =
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'";

/// Whether `path` is one of the console's pages.
pub fn is_page(path: &str) -> bool {
    matches!(path, "/login" | "/auth/callback" | "/slack/link" | "/settings/slack" | "/console")
        || path.starts_with("/console/")
}

/// The console's HTML document (`index.html` of the assets), with the security headers every
/// answer carries and the console's CSP.
///
/// # Errors
/// No `ASSETS` binding (a build without the console), or the binding failing.
pub async fn page(env: &Env, head: bool) -> worker::Result<worker::web_sys::Response> {
    let mut asset = env.assets("ASSETS")?.fetch("https://console.internal/", None).await?;
    if asset.status_code() != 200 {
        return Err(worker::Error::RustError(format!("console index.html answered {}", asset.status_code())));
    }
    let html = asset.text().await?;
    let headers = Headers::new();
    for (name, value) in crate::http::SECURITY_HEADERS {
        headers.set(name, value)?;
    }
    headers.set("Content-Type", "text/html; charset=utf-8")?;
    headers.set("Content-Security-Policy", CSP)?;
    headers.set("X-Frame-Options", "DENY")?;
    let response = if head { Response::empty()? } else { Response::from_html(html)? };
    Ok(response.with_headers(headers).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_pages_and_nothing_else() {
        for p in ["/login", "/auth/callback", "/slack/link", "/settings/slack", "/console", "/console/tokens"] {
            assert!(is_page(p), "{p}");
        }
        for p in ["/", "/auth/github", "/auth/github/callback", "/slack/events", "/api/me", "/consoles", "/mcp"] {
            assert!(!is_page(p), "{p}");
        }
    }
}
