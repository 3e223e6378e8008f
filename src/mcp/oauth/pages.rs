//! The authorization server's pages: server-rendered HTML that works without JavaScript (the
//! consent form posts back to `/oauth/authorize`), loads nothing from anywhere (inline style
//! only, `default-src 'none'`) and is never framed (`Reply::html`).

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}\
main{max-width:30rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.12)}\
h1{font-size:1.35rem;margin:0 0 1rem}ul{padding-left:1.2rem}li{margin:.4rem 0}.muted{color:#5a6272;font-size:.92rem}\
.row{display:flex;gap:.75rem;margin-top:1.5rem;flex-wrap:wrap}\
button,a.button{font:inherit;padding:.6rem 1.2rem;border-radius:8px;border:1px solid #c4c9d4;background:#fff;color:#1d2330;cursor:pointer;text-decoration:none;display:inline-block}\
button.primary,a.primary{background:#2456d6;border-color:#2456d6;color:#fff}\
button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #f0b400;outline-offset:2px}\
code{background:#eef0f4;padding:.1rem .3rem;border-radius:4px;word-break:break-all}label{display:flex;gap:.5rem;align-items:flex-start}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    )
}

/// A request that cannot be sent back to the client (unknown client, unregistered redirect
/// URI, an expired form): shown here, never redirected.
pub fn error(title: &str, detail: &str) -> String {
    page(title, &format!("<h1>{}</h1><p role=\"alert\">{}</p><p class=\"muted\">You can close this window and start again from your MCP client.</p>", esc(title), esc(detail)))
}

/// A browser not signed in: the providers to sign in with, each coming back to `back`.
pub fn sign_in(client: &str, providers: &[(&str, String)]) -> String {
    let mut links = String::new();
    for (label, href) in providers {
        links.push_str(&format!("<a class=\"button primary\" href=\"{}\">Continue with {}</a>", esc(href), esc(label)));
    }
    if providers.is_empty() {
        links
            .push_str("<p role=\"alert\">No sign-in provider is configured on this deployment (GitHub or Google).</p>");
    }
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to connect {}</h1><p>{} wants to use your integrations through this service's MCP server. Sign in first; you will then be asked to approve it.</p><div class=\"row\">{links}</div>",
            esc(client),
            esc(client)
        ),
    )
}

/// What the consent page shows and posts back.
pub struct Consent<'a> {
    pub client: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub user_email: &'a str,
    pub scopes: &'a [&'a str],
    /// Hidden fields posted back as they came (the request being approved).
    pub fields: &'a [(&'a str, &'a str)],
    pub csrf: &'a str,
}

fn describe(scope: &str) -> &'static str {
    match scope {
        "mcp:read" => "See your connected integrations and the data they synced, and run actions that only read (search mail, list issues, read events).",
        _ => "Run actions that change things in your accounts: send and label mail, open and comment on issues and pull requests, create and edit calendar events.",
    }
}

pub fn consent(c: &Consent) -> String {
    let mut scopes = String::new();
    for s in c.scopes {
        if *s == "mcp:write" {
            scopes.push_str(&format!(
                "<li><label><input type=\"checkbox\" name=\"write\" value=\"1\" checked> <span><strong>Make changes</strong> (<code>mcp:write</code>): {}</span></label></li>",
                describe(s)
            ));
        } else {
            scopes.push_str(&format!("<li><strong>Read</strong> (<code>{}</code>): {}</li>", esc(s), describe(s)));
        }
    }
    let mut hidden = String::new();
    for (k, v) in c.fields {
        hidden.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)));
    }
    page(
        "Authorize access",
        &format!(
            "<h1>Allow {client} to use your integrations?</h1>\
             <p>Signed in as <strong>{email}</strong>.</p>\
             <p><strong>{client}</strong> (<code>{id}</code>) asks for:</p><ul>{scopes}</ul>\
             <p class=\"muted\">After you decide, you go back to <strong>{host}</strong>. You can revoke this access at any time from your account's list of authorized MCP clients.</p>\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <div class=\"row\"><button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></div></form>",
            client = esc(c.client),
            id = esc(c.client_id),
            email = esc(c.user_email),
            host = esc(c.redirect_host),
            csrf = esc(c.csrf),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        let evil = "<script>alert(\"x\")</script>";
        let html = consent(&Consent {
            client: evil,
            client_id: "id\"><img>",
            redirect_host: "a.example",
            user_email: "me@example.com",
            scopes: &["mcp:read", "mcp:write"],
            fields: &[("state", "\"><script>")],
            csrf: "t",
        });
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img>"));
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(html.contains("name=\"decision\" value=\"approve\""));
        assert!(error("t", "<b>").contains("&lt;b&gt;"));
    }
}
