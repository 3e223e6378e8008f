//! Reading the Gmail API's `format=full` message JSON: headers decoded, the text and HTML bodies,
//! attachments' metadata, and HTML turned into plain text for search.

use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------
use super::dates::{iso8601, parse_date};
use super::headers::{b64_decode, decode_bytes, decode_header_value, render_address, split_addresses, Charsets};

pub(super) fn header<'a>(part: &'a Value, name: &str) -> Option<&'a str> {
    part["headers"].as_array()?.iter().find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?
        ["value"]
        .as_str()
}

/// A parameter of a MIME header value such as Content-Type (simple `name=value` / `name="value"` form).
pub(super) fn param(value: &str, name: &str) -> Option<String> {
    value
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

pub(super) fn is_attachment(p: &Value) -> bool {
    !p["filename"].as_str().unwrap_or("").is_empty()
        || header(p, "Content-Disposition")
            .is_some_and(|d| d.trim_start().to_ascii_lowercase().starts_with("attachment"))
}

pub(super) fn mime_type(p: &Value) -> String {
    match p["mimeType"].as_str().unwrap_or("").trim().to_ascii_lowercase() {
        t if t.is_empty() => "text/plain".into(), // RFC 2045 §5.2 default
        t => t,
    }
}

/// Decoded text of a leaf part: Gmail has already undone the transfer encoding, the charset is ours to do.
pub(super) fn part_text(p: &Value, cs: &dyn Charsets) -> String {
    let bytes = p["body"]["data"].as_str().and_then(b64_decode).unwrap_or_default();
    let charset = header(p, "Content-Type").and_then(|ct| param(ct, "charset")).unwrap_or_else(|| "utf-8".into());
    let text = decode_bytes(&charset, &bytes, cs);
    text.strip_prefix('\u{FEFF}').unwrap_or(&text).replace("\r\n", "\n")
}

/// (text/plain, text/html) body of a part: alternatives contribute one of each, other multiparts
/// (mixed, related, signed, nested messages) the first child that has a body.
pub(super) fn body_of(p: &Value, cs: &dyn Charsets) -> (Option<String>, Option<String>) {
    if is_attachment(p) {
        return (None, None);
    }
    let mime = mime_type(p);
    let parts = p["parts"].as_array().map(Vec::as_slice).unwrap_or_default();
    if mime == "multipart/alternative" {
        let (mut text, mut html) = (None, None);
        for child in parts {
            let (t, h) = body_of(child, cs);
            text = text.or(t);
            html = html.or(h);
        }
        (text, html)
    } else if !parts.is_empty() {
        parts.iter().map(|c| body_of(c, cs)).find(|(t, h)| t.is_some() || h.is_some()).unwrap_or_default()
    } else if mime == "text/plain" {
        (Some(part_text(p, cs)), None)
    } else if mime == "text/html" {
        (None, Some(part_text(p, cs)))
    } else {
        (None, None)
    }
}

pub(super) fn collect_attachments(p: &Value, cs: &dyn Charsets, out: &mut Vec<Value>) {
    if is_attachment(p) {
        out.push(json!({
            "id": p["body"]["attachmentId"].as_str().unwrap_or(""),
            "filename": decode_header_value(p["filename"].as_str().unwrap_or(""), cs),
            "mimeType": mime_type(p),
            "size": p["body"]["size"].as_u64().unwrap_or(0),
        }));
    } else {
        for child in p["parts"].as_array().map(Vec::as_slice).unwrap_or_default() {
            collect_attachments(child, cs, out);
        }
    }
}

/// Converts a Gmail API `users.messages.get?format=full` response into the service's message JSON.
/// The snippet has its HTML entities decoded (Gmail sends e.g. `&#39;`).
pub fn message_from_gmail(m: &Value, cs: &dyn Charsets) -> Value {
    let p = &m["payload"];
    let text = |name: &str| header(p, name).map(|v| decode_header_value(v, cs).trim().to_string());
    let list = |name: &str| -> Vec<String> {
        header(p, name)
            .map(|v| split_addresses(v).into_iter().map(|e| render_address(e, cs)).collect())
            .unwrap_or_default()
    };
    let labels: Vec<&str> = m["labelIds"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let internal =
        m["internalDate"].as_str().and_then(|s| s.trim().parse().ok()).or_else(|| m["internalDate"].as_i64());
    let date = internal.or_else(|| header(p, "Date").and_then(parse_date)).map(iso8601).unwrap_or_default();
    let (body, html) = body_of(p, cs);
    let mut attachments = Vec::new();
    collect_attachments(p, cs, &mut attachments);
    let mut snippet = String::new();
    push_text(&mut snippet, m["snippet"].as_str().unwrap_or(""));

    let mut out = json!({
        "id": m["id"].as_str().unwrap_or(""),
        "threadId": m["threadId"].as_str().unwrap_or(""),
        "messageId": header(p, "Message-ID").unwrap_or("").trim(),
        "from": list("From").join(", "),
        "to": list("To"),
        "cc": list("Cc"),
        "bcc": list("Bcc"),
        "subject": text("Subject").unwrap_or_default(),
        "date": date,
        "snippet": snippet.trim(),
        "body": body.or_else(|| html.as_deref().map(html_to_text)).unwrap_or_default(),
        "labelIds": labels,
        "unread": labels.contains(&"UNREAD"),
        "starred": labels.contains(&"STARRED"),
        "attachments": attachments,
    });
    if header(p, "Reply-To").is_some() {
        out["replyTo"] = list("Reply-To").join(", ").into();
    }
    if let Some(h) = html {
        out["bodyHtml"] = h.into();
    }
    out
}

/// A character entity at the start of `s` ("&amp;", "&#39;", "&#x20AC;"): (char, length).
pub(super) fn entity(s: &str) -> Option<(char, usize)> {
    let semi = s.get(..12.min(s.len()))?.find(';')?;
    let name = &s[1..semi];
    let c = if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(n).filter(|&c| c != '\0')?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" | "rsquo" | "lsquo" => '\'',
            "ldquo" | "rdquo" => '"',
            "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            "bull" => '•',
            "middot" => '·',
            "copy" => '©',
            "reg" => '®',
            "trade" => '™',
            "euro" => '€',
            "laquo" => '«',
            "raquo" => '»',
            _ => return None,
        }
    };
    Some((c, semi + 1))
}

/// A Gmail snippet as text (Gmail escapes HTML in it: `&#39;`, `&amp;`).
pub fn snippet_text(s: &str) -> String {
    let mut out = String::new();
    push_text(&mut out, s);
    out.trim().to_string()
}

/// Appends HTML text: source whitespace collapsed to single spaces, entities decoded.
pub(super) fn push_text(out: &mut String, seg: &str) {
    let mut rest = seg;
    while let Some(c) = rest.chars().next() {
        if let Some((e, len)) = (c == '&').then(|| entity(rest)).flatten() {
            out.push(e);
            rest = &rest[len..];
            continue;
        }
        if !c.is_ascii_whitespace() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
        rest = &rest[c.len_utf8()..];
    }
}

/// Elements that start a new line in the plain-text rendering (`p` gets a blank line, `br` always breaks).
pub(super) const BLOCKS: &[&str] =
    &["div", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "h1", "h2", "h3", "h4", "h5", "h6"];

/// Plain-text rendering of HTML for bodies that have no text/plain part: tags stripped, script/style/head
/// dropped, <br> and block elements to line breaks, entities decoded.
pub(super) fn html_to_text(html: &str) -> String {
    let (mut out, mut rest, mut skip) = (String::new(), html, None::<String>);
    while let Some(lt) = rest.find('<') {
        if skip.is_none() {
            push_text(&mut out, &rest[..lt]);
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        if !rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            if skip.is_none() {
                out.push('<'); // a bare '<' in text, not a tag
            }
            rest = &rest[1..];
            continue;
        }
        let end = rest.find('>').map_or(rest.len(), |e| e + 1);
        let tag = &rest[1..end];
        let closing = tag.starts_with('/');
        let name = tag.trim_start_matches('/').split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
        let name = name.to_ascii_lowercase();
        rest = &rest[end..];
        if let Some(s) = &skip {
            if closing && *s == name {
                skip = None;
            }
        } else if !closing && matches!(name.as_str(), "script" | "style" | "head" | "title") {
            skip = Some(name);
        } else if name == "p" {
            out.push_str("\n\n");
        } else if name == "br" || (BLOCKS.contains(&name.as_str()) && !out.ends_with('\n')) {
            out.push('\n');
        }
    }
    if skip.is_none() {
        push_text(&mut out, rest);
    }
    // Trim each line and keep at most one blank line between paragraphs.
    let (mut res, mut blank) = (String::new(), false);
    for line in out.split('\n').map(str::trim) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        if !res.is_empty() {
            res.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        res.push_str(line);
    }
    res
}
