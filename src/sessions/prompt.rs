//! Prompts as they travel to a session: queue modes, attachments and their caps, and the merge
//! of a `collect` buffer. Plain Rust, unit-tested natively.

use serde::{Deserialize, Serialize};

use crate::http::input::Input;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// FIFO behind whatever is queued.
    Followup,
    /// Buffer per channel; flush as one merged prompt after the debounce.
    Collect,
    /// Abort the prompt in progress, drop that channel's queued prompts, run this one first.
    Steer,
}

impl QueueMode {
    pub const ALL: [&'static str; 3] = ["followup", "collect", "steer"];

    pub fn parse(s: &str) -> Option<QueueMode> {
        match s {
            "followup" => Some(QueueMode::Followup),
            "collect" => Some(QueueMode::Collect),
            "steer" => Some(QueueMode::Steer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::Followup => "followup",
            QueueMode::Collect => "collect",
            QueueMode::Steer => "steer",
        }
    }
}

pub const MAX_ATTACHMENTS: usize = 8;
/// Longest accepted data URL (characters), per attachment.
pub const MAX_URL_CHARS: usize = 12_000_000;
/// Longest accepted total of data URLs in one prompt.
pub const MAX_TOTAL_URL_CHARS: usize = 25_000_000;
pub const MAX_CONTENT_CHARS: usize = 100_000;
pub const COLLECT_SEPARATOR: &str = "\n\n---\n\n";
pub const DEFAULT_COLLECT_DEBOUNCE_MS: u32 = 3_000;

/// An attachment in the session's shape: `{type: "file", mime, url: "data:…;base64,…", filename?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: String,
    pub mime: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl Attachment {
    /// Decoded size in bytes of the base64 payload.
    pub fn size(&self) -> usize {
        let data = self.url.split_once(";base64,").map(|(_, d)| d).unwrap_or("");
        let pad = data.bytes().rev().take_while(|b| *b == b'=').count();
        (data.len() / 4 * 3 + [0, 0, 1, 2][data.len() % 4]).saturating_sub(pad)
    }

    fn acceptable(&self) -> bool {
        let mime = self.mime.to_ascii_lowercase();
        self.kind == "file"
            && (mime.starts_with("image/") || mime.starts_with("audio/"))
            && self.url.starts_with("data:")
            && self.url.contains(";base64,")
            && self.url.len() <= MAX_URL_CHARS
    }
}

/// The session's own guard: keeps acceptable items within the caps, and says
/// how many were dropped. The API edge rejects such input with a clear error first.
pub fn sanitize(items: Vec<Attachment>) -> (Vec<Attachment>, usize) {
    let total = items.len();
    let mut kept = Vec::new();
    let mut budget = MAX_TOTAL_URL_CHARS;
    for mut a in items {
        if kept.len() == MAX_ATTACHMENTS || !a.acceptable() {
            continue;
        }
        if a.url.len() > budget {
            break;
        }
        budget -= a.url.len();
        a.mime = a.mime.to_ascii_lowercase();
        if let Some(f) = &mut a.filename {
            *f = f.chars().take(255).collect();
        }
        kept.push(a);
    }
    let dropped = total - kept.len();
    (kept, dropped)
}

/// Parses `attachments` of `/api/prompt`, accepting both shapes the platform sends:
/// `{type: "file", mime, url}` and `{type, name, data, mimeType}` (data = base64 or a data URL).
/// Problems are reported on `input` with the item's index.
pub fn parse_api_attachments(input: &mut Input, field: &str, items: Vec<serde_json::Value>) -> Vec<Attachment> {
    let mut out = Vec::new();
    if items.len() > MAX_ATTACHMENTS {
        input.error(field, format!("At most {MAX_ATTACHMENTS} attachments"));
        return out;
    }
    let mut total = 0usize;
    for (i, mut item) in items.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        let s = |item: &serde_json::Value, k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let is_url = item.get("url").is_some_and(|v| v.is_string()) && s(&item, "mime").is_some();
        // The data itself is moved out of the item, never copied.
        let (mime, url, filename) = if is_url {
            let url = take_str(&mut item, "url").unwrap_or_default();
            (s(&item, "mime").unwrap_or_default(), url, s(&item, "filename").or_else(|| s(&item, "name")))
        } else if let Some(data) = take_str(&mut item, "data") {
            let mime = s(&item, "mimeType").or_else(|| data_url_mime(&data)).unwrap_or_default();
            let url = if data.starts_with("data:") { data } else { format!("data:{mime};base64,{data}") };
            (mime, url, s(&item, "name"))
        } else {
            input.error(&at, "Expected {type, name, data, mimeType} or {type: \"file\", mime, url}");
            continue;
        };
        let mime = mime.to_ascii_lowercase();
        if !(mime.starts_with("image/") || mime.starts_with("audio/")) {
            input.error(&at, "Only image/* and audio/* attachments are supported");
            continue;
        }
        let Some((_, b64)) = url.split_once(";base64,").filter(|_| url.starts_with("data:")) else {
            input.error(&at, "Expected base64 data or a data: URL");
            continue;
        };
        if b64.is_empty() || !b64.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
            input.error(&at, "Attachment data is not valid base64");
            continue;
        }
        if url.len() > MAX_URL_CHARS {
            input.error(&at, format!("Attachment exceeds {MAX_URL_CHARS} characters"));
            continue;
        }
        total += url.len();
        if total > MAX_TOTAL_URL_CHARS {
            input.error(field, format!("Attachments exceed {MAX_TOTAL_URL_CHARS} characters in total"));
            return Vec::new();
        }
        out.push(Attachment {
            kind: "file".into(),
            mime,
            url,
            filename: filename.map(|f| f.chars().take(255).collect()),
        });
    }
    out
}

/// Moves a string field out of a JSON object.
fn take_str(item: &mut serde_json::Value, key: &str) -> Option<String> {
    match item.get_mut(key).map(serde_json::Value::take) {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

fn data_url_mime(s: &str) -> Option<String> {
    s.strip_prefix("data:")?.split_once(";base64,").map(|(m, _)| m.to_string())
}

/// One message waiting in a `collect` buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Buffered {
    pub content: String,
    #[serde(default)]
    pub attachment_ids: Vec<String>,
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
}

/// Merges a flushed buffer: contents joined by a `---` separator (empty ones skipped),
/// attachments concatenated, the last message's author kept.
pub fn merge(entries: &[Buffered]) -> Option<Buffered> {
    let last = entries.last()?;
    let content = entries
        .iter()
        .map(|e| e.content.as_str())
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(COLLECT_SEPARATOR);
    Some(Buffered {
        content,
        attachment_ids: entries.iter().flat_map(|e| e.attachment_ids.iter().cloned()).collect(),
        author_id: last.author_id.clone(),
        author_name: last.author_name.clone(),
        author_email: last.author_email.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn att(mime: &str, len: usize) -> Attachment {
        Attachment {
            kind: "file".into(),
            mime: mime.into(),
            url: format!("data:{mime};base64,{}", "A".repeat(len)),
            filename: None,
        }
    }

    #[test]
    fn sanitizer_caps() {
        let (kept, dropped) = sanitize(vec![att("image/png", 8), att("text/plain", 8), att("AUDIO/OGG", 4)]);
        assert_eq!((kept.len(), dropped), (2, 1));
        assert_eq!(kept[1].mime, "audio/ogg");
        let (kept, dropped) = sanitize((0..10).map(|_| att("image/png", 4)).collect());
        assert_eq!((kept.len(), dropped), (8, 2));
        let (kept, _) = sanitize(vec![att("image/png", MAX_URL_CHARS + 1)]);
        assert!(kept.is_empty());
        // The total budget stops at the first item that would exceed it.
        let big = || att("image/png", 10_000_000);
        let (kept, dropped) = sanitize(vec![big(), big(), big(), att("image/png", 4)]);
        assert_eq!((kept.len(), dropped), (2, 2));
    }

    #[test]
    fn sizes() {
        assert_eq!(att("image/png", 8).size(), 6);
        let a = Attachment {
            kind: "file".into(),
            mime: "image/png".into(),
            url: "data:image/png;base64,aGk=".into(),
            filename: None,
        };
        assert_eq!(a.size(), 2);
    }

    #[test]
    fn both_api_shapes() {
        let items = vec![
            json!({"type": "file", "mime": "image/png", "url": "data:image/png;base64,aGVsbG8=", "filename": "a.png"}),
            json!({"type": "file", "name": "v.ogg", "data": "aGVsbG8=", "mimeType": "audio/ogg"}),
            json!({"type": "url", "name": "p.jpg", "data": "data:image/jpeg;base64,aGVsbG8="}),
        ];
        let mut input = Input::parse(b"{}").unwrap();
        let out = parse_api_attachments(&mut input, "attachments", items);
        assert!(input.finish().is_ok());
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].url, "data:audio/ogg;base64,aGVsbG8=");
        assert_eq!(out[2].mime, "image/jpeg");
        assert_eq!(out[0].filename.as_deref(), Some("a.png"));
    }

    #[test]
    fn api_shape_errors_name_the_item() {
        let items = vec![
            json!({"type": "file", "name": "x.txt", "data": "aGk=", "mimeType": "text/plain"}),
            json!({"type": "file", "name": "x.png", "data": "not base64!", "mimeType": "image/png"}),
            json!({"nothing": true}),
        ];
        let mut input = Input::parse(b"{}").unwrap();
        parse_api_attachments(&mut input, "attachments", items);
        let err = input.finish().unwrap_err();
        let fields = err.fields();
        assert_eq!(fields, ["attachments[0]", "attachments[1]", "attachments[2]"]);
        let mut input = Input::parse(b"{}").unwrap();
        parse_api_attachments(&mut input, "attachments", vec![json!({}); 9]);
        assert!(input.finish().is_err());
    }

    #[test]
    fn collect_merge() {
        let e = |c: &str, a: &str| Buffered {
            content: c.into(),
            attachment_ids: vec![a.into()],
            author_id: Some(a.into()),
            author_name: None,
            author_email: None,
        };
        let m = merge(&[e("one", "a"), e("", "b"), e("three", "c")]).unwrap();
        assert_eq!(m.content, "one\n\n---\n\nthree");
        assert_eq!(m.attachment_ids, ["a", "b", "c"]);
        assert_eq!(m.author_id.as_deref(), Some("c"));
        assert!(merge(&[]).is_none());
    }
}
