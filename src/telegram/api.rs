//! The Telegram Bot API client. Every URL embeds the bot token, so no URL, and no error that
//! could contain one, is ever logged or returned: errors carry only the method name and
//! Telegram's own description.

use std::time::Duration;

use serde_json::{json, Value};
use worker::{Delay, Method};

use super::markdown::{html_to_plain, split_html, to_telegram_html, CAPTION_LIMIT, MESSAGE_LIMIT};
use crate::outbound::{Call, OutboundError};
use crate::sessions::prompt::MAX_URL_CHARS;

/// Largest file accepted: its data URL must fit the session's 12,000,000-character cap.
pub const MAX_FILE_BYTES: u64 = (MAX_URL_CHARS as u64 - 100) / 4 * 3;

/// Longest `retry_after` we wait for inside one request (Telegram asks for seconds to minutes).
const MAX_RETRY_WAIT_SECS: u64 = 5;

#[derive(Debug)]
pub struct TgError {
    pub method: &'static str,
    /// Telegram's `error_code` (0 for transport failures).
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for TgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Telegram {} failed ({}): {}", self.method, self.code, self.description)
    }
}

pub struct Bot {
    base: String,
    token: String,
}

/// The commands registered with `setMyCommands`, in order, with what they do.
pub const COMMANDS: [(&str, &str); 6] = [
    ("help", "List available commands"),
    ("stop", "Abort current agent work"),
    ("clear", "Clear prompt queue"),
    ("status", "Show session status + children"),
    ("refresh", "Restart orchestrator session"),
    ("sessions", "List child sessions with status"),
];

/// The update types the webhook handles.
pub const ALLOWED_UPDATES: [&str; 1] = ["message"];

/// Bot tokens look like `123456789:AA…` (bot id, colon, 35 characters).
pub fn valid_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            (3..=15).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_digit())
                && (20..=100).contains(&secret.len())
                && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

impl Bot {
    pub fn new(base: &str, token: &str) -> Self {
        Bot { base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    async fn send_once(&self, method: &'static str, call: Call) -> Result<Value, TgError> {
        let transport = |e: String| TgError { method, code: 0, description: e, retry_after: None };
        let r = call.send().await.map_err(|e| transport(e.to_string()))?;
        let body: Value = r.json().ok_or_else(|| transport(format!("unreadable answer (HTTP {})", r.status)))?;
        if body["ok"].as_bool() == Some(true) {
            return Ok(body["result"].clone());
        }
        Err(TgError {
            method,
            code: body["error_code"].as_u64().unwrap_or(u64::from(r.status)) as u16,
            description: body["description"].as_str().unwrap_or("unknown error").chars().take(300).collect(),
            retry_after: body["parameters"]["retry_after"].as_u64(),
        })
    }

    /// Calls a method, waiting out a short `429 retry_after` (at most twice).
    async fn call_with(&self, method: &'static str, make: impl Fn() -> Call) -> Result<Value, TgError> {
        let mut attempt = 0;
        loop {
            match self.send_once(method, make()).await {
                Err(e) if e.code == 429 && attempt < 2 && e.retry_after.unwrap_or(u64::MAX) <= MAX_RETRY_WAIT_SECS => {
                    attempt += 1;
                    Delay::from(Duration::from_secs(e.retry_after.unwrap_or(1).max(1))).await;
                }
                other => return other,
            }
        }
    }

    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, TgError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token);
        self.call_with(method, || Call::new(Method::Post, url.clone()).json_body(&params)).await
    }

    pub async fn get_me(&self) -> Result<Value, TgError> {
        self.call("getMe", json!({})).await
    }

    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<Value, TgError> {
        self.call(
            "setWebhook",
            json!({ "url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES, "max_connections": 40 }),
        )
        .await
    }

    pub async fn delete_webhook(&self) -> Result<Value, TgError> {
        self.call("deleteWebhook", json!({})).await
    }

    pub async fn set_commands(&self) -> Result<Value, TgError> {
        let commands: Vec<Value> = COMMANDS.iter().map(|(c, d)| json!({ "command": c, "description": d })).collect();
        self.call("setMyCommands", json!({ "commands": commands })).await
    }

    /// Downloads a file by id (`getFile`, then the file URL, which never leaves this function).
    /// Refused (code 413) when `getFile` announces more than `MAX_FILE_BYTES`, and capped
    /// while reading, since `file_size` may be absent.
    pub async fn download(&self, file_id: &str) -> Result<(String, Vec<u8>), TgError> {
        let too_large =
            || TgError { method: "getFile", code: 413, description: "file too large".into(), retry_after: None };
        let file = self.call("getFile", json!({ "file_id": file_id })).await?;
        if file["file_size"].as_u64().is_some_and(|n| n > MAX_FILE_BYTES) {
            return Err(too_large());
        }
        let path = file["file_path"]
            .as_str()
            .ok_or(TgError { method: "getFile", code: 0, description: "no file_path".into(), retry_after: None })?
            .to_string();
        let url = format!("{}/file/bot{}/{}", self.base, self.token, path);
        let r = Call::new(Method::Get, url)
            .timeout(Duration::from_secs(15))
            .max_bytes(MAX_FILE_BYTES)
            .send()
            .await
            .map_err(|e| match e {
                OutboundError::TooLarge(_) => too_large(),
                e => TgError { method: "file download", code: 0, description: e.to_string(), retry_after: None },
            })?;
        if !r.ok() {
            return Err(TgError {
                method: "file download",
                code: r.status,
                description: "download failed".into(),
                retry_after: None,
            });
        }
        Ok((path, r.body))
    }

    /// Sends plain text (no parse mode), split under the limit.
    pub async fn send_plain(&self, chat_id: &str, text: &str) -> Result<usize, TgError> {
        let mut parts = 0;
        for chunk in split_plain(text, MESSAGE_LIMIT) {
            self.call("sendMessage", json!({ "chat_id": chat_id, "text": chunk })).await?;
            parts += 1;
        }
        Ok(parts)
    }

    /// Sends Telegram HTML, split under the limit; a chunk whose entities Telegram rejects is
    /// resent as plain text. Returns the number of messages sent.
    pub async fn send_html(&self, chat_id: &str, html: &str) -> Result<usize, TgError> {
        let mut parts = 0;
        for chunk in split_html(html, MESSAGE_LIMIT) {
            match self.call("sendMessage", json!({ "chat_id": chat_id, "text": chunk, "parse_mode": "HTML" })).await {
                Ok(_) => parts += 1,
                Err(e) if e.code == 400 && e.description.to_ascii_lowercase().contains("can't parse entities") => {
                    parts += self.send_plain(chat_id, &html_to_plain(&chunk)).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parts)
    }

    /// Sends Markdown as Telegram HTML.
    pub async fn send_markdown(&self, chat_id: &str, markdown: &str) -> Result<usize, TgError> {
        self.send_html(chat_id, &to_telegram_html(markdown)).await
    }

    /// Sends a photo (multipart upload); a caption over 1024 characters is sent as follow-up
    /// messages instead.
    pub async fn send_photo(
        &self,
        chat_id: &str,
        bytes: &[u8],
        mime: &str,
        caption_md: Option<&str>,
    ) -> Result<usize, TgError> {
        let caption = caption_md.map(to_telegram_html).unwrap_or_default();
        let inline = !caption.is_empty() && caption.encode_utf16().count() <= CAPTION_LIMIT;
        let boundary = format!("----integrations{}", crate::crypto::hex(&crate::crypto::random_bytes::<12>()));
        let filename = if mime == "image/png" { "image.png" } else { "image.jpg" };
        let mut body = Vec::with_capacity(bytes.len() + 512);
        let mut field = |name: &str, value: &str| {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        };
        field("chat_id", chat_id);
        if inline {
            field("caption", &caption);
            field("parse_mode", "HTML");
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!("{}/bot{}/sendPhoto", self.base, self.token);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.call_with("sendPhoto", || {
            Call::new(Method::Post, url.clone()).raw_body(body.clone(), content_type.clone())
        })
        .await?;
        let mut parts = 1;
        if !inline && !caption.is_empty() {
            parts += self.send_html(chat_id, &caption).await?;
        }
        Ok(parts)
    }
}

/// Splits plain text under `limit` UTF-16 units, preferring line breaks.
pub fn split_plain(text: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_units = 0;
    for ch in text.chars() {
        let u = ch.len_utf16();
        if cur_units + u > limit {
            let cut = cur.rfind('\n').filter(|i| *i > cur.len() / 2).unwrap_or(cur.len());
            let rest = cur.split_off(cut);
            out.push(std::mem::take(&mut cur));
            cur = rest.trim_start_matches('\n').to_string();
            cur_units = cur.encode_utf16().count();
        }
        cur.push(ch);
        cur_units += u;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format() {
        assert!(valid_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        assert!(!valid_token("123456789"));
        assert!(!valid_token("abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        assert!(!valid_token("123:short"));
        assert!(!valid_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL/saw"));
    }

    #[test]
    fn plain_splitting() {
        let text = "line\n".repeat(2000);
        let parts = split_plain(&text, 4096);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
        assert_eq!(parts.concat().replace('\n', ""), text.replace('\n', ""));
        assert_eq!(split_plain("short", 4096), vec!["short"]);
    }
}
