//! Building a message for `users.messages.send` (`raw`): headers, text and HTML parts
//! (quoted-printable), attachments (base64 in lines of 76, RFC 2231 filenames), random boundaries.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------
use super::dates::rfc5322_date;
use super::headers::{
    encode_words, format_address, is_token, msg_ids, needs_encoding, parse_address, push_header, quote,
};
use super::{Attachment, Outgoing};

/// Builds the raw RFC 5322 message (CRLF line endings) to be base64url-encoded into `raw`.
pub fn build(m: &Outgoing) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    let (name, addr) = parse_address(&m.from)?;
    push_header(&mut out, "From", &format_address(name.as_deref(), &addr));
    if m.to.is_empty() && m.cc.is_empty() && m.bcc.is_empty() {
        return Err("message has no recipients".into());
    }
    for (field, list) in [("To", &m.to), ("Cc", &m.cc), ("Bcc", &m.bcc)] {
        if !list.is_empty() {
            let addrs: Result<Vec<_>, _> =
                list.iter().map(|a| parse_address(a).map(|(n, a)| format_address(n.as_deref(), &a))).collect();
            push_header(&mut out, field, &addrs?.join(", "));
        }
    }
    if let Some(r) = &m.reply_to {
        let (name, addr) = parse_address(r)?;
        push_header(&mut out, "Reply-To", &format_address(name.as_deref(), &addr));
    }
    check_header("Subject", &m.subject)?;
    let subject = if needs_encoding(&m.subject) { encode_words(&m.subject) } else { m.subject.clone() };
    push_header(&mut out, "Subject", &subject);
    push_header(&mut out, "Date", &rfc5322_date(m.date_ms));
    check_header("Message-ID", &m.message_id)?;
    if msg_ids(&m.message_id) != [m.message_id.trim()] {
        return Err(format!("invalid Message-ID {:?}", m.message_id));
    }
    push_header(&mut out, "Message-ID", m.message_id.trim());
    for (field, v) in [("In-Reply-To", &m.in_reply_to), ("References", &m.references)] {
        if let Some(v) = v {
            check_header(field, v)?;
            let ids = msg_ids(v);
            if !ids.is_empty() {
                push_header(&mut out, field, &ids.join(" "));
            }
        }
    }
    out.push_str("MIME-Version: 1.0\r\n");

    let body = match (&m.text, &m.html) {
        (Some(t), Some(h)) => Part::Multi("alternative", vec![text_part(t, "plain"), text_part(h, "html")]),
        (None, Some(h)) => text_part(h, "html"),
        (t, None) => text_part(t.as_deref().unwrap_or(""), "plain"),
    };
    let root = if m.attachments.is_empty() {
        body
    } else {
        let mut parts = vec![body];
        for a in &m.attachments {
            parts.push(attachment_part(a)?);
        }
        Part::Multi("mixed", parts)
    };
    render(&root, &m.boundary_seed, &mut 0, &mut out);
    Ok(out.into_bytes())
}

/// Rejects what would let a value start a new header line (header injection).
pub(super) fn check_header(field: &str, v: &str) -> Result<(), String> {
    if v.contains(['\r', '\n', '\0']) {
        return Err(format!("{field}: line breaks are not allowed in header values: {v:?}"));
    }
    Ok(())
}

pub(super) enum Part {
    /// Header lines (each ending in CRLF) and the encoded body.
    Leaf(String, String),
    Multi(&'static str, Vec<Part>),
}

pub(super) fn text_part(text: &str, subtype: &str) -> Part {
    // Canonical text has CRLF line breaks; QP keeps them as hard breaks.
    let text = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
    let non_ascii = text.bytes().filter(|&b| b >= 128).count();
    let (cte, body) = if non_ascii * 3 > text.len() {
        ("base64", base64_lines(text.as_bytes()))
    } else {
        ("quoted-printable", qp(&text))
    };
    Part::Leaf(format!("Content-Type: text/{subtype}; charset=UTF-8\r\nContent-Transfer-Encoding: {cte}\r\n"), body)
}

/// Quoted-printable (RFC 2045 §6.7): '=' and non-printables escaped, whitespace escaped at line ends,
/// soft breaks keep every line at 76 octets or less including the trailing '='.
pub(super) fn qp(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut len = 0;
        for (j, &b) in line.as_bytes().iter().enumerate() {
            let literal = match b {
                b' ' | b'\t' => j + 1 < line.len(),
                b'=' => false,
                _ => (33..127).contains(&b),
            };
            let w = if literal { 1 } else { 3 };
            if len + w > 75 {
                out.push_str("=\r\n");
                len = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                _ = write!(out, "={b:02X}");
            }
            len += w;
        }
    }
    out
}

pub(super) fn base64_lines(data: &[u8]) -> String {
    let b64 = STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38);
    for (i, chunk) in b64.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

pub(super) fn attachment_part(a: &Attachment) -> Result<Part, String> {
    check_header("attachment filename", &a.filename)?;
    check_header("attachment MIME type", &a.mime_type)?;
    let ct = a.mime_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    // multipart/* and message/* may not be base64-encoded (RFC 2046 §5), so they travel as opaque bytes.
    let ct = if ct.is_empty() || ct.starts_with("multipart/") || ct.starts_with("message/") {
        "application/octet-stream".to_string()
    } else {
        ct
    };
    let valid = ct
        .split_once('/')
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && t.bytes().all(is_token) && s.bytes().all(is_token));
    if !valid {
        return Err(format!("invalid MIME type {:?} for attachment {:?}", a.mime_type, a.filename));
    }
    let mut h = format!("Content-Type: {ct}");
    push_param(&mut h, "name", &a.filename);
    h.push_str("\r\nContent-Disposition: attachment");
    push_param(&mut h, "filename", &a.filename);
    h.push_str("\r\nContent-Transfer-Encoding: base64\r\n");
    Ok(Part::Leaf(h, base64_lines(&a.data)))
}

/// Appends `;` + folded parameter: a token or quoted string when short ASCII, otherwise RFC 2231
/// `attr*=UTF-8''%XX` with `attr*0*=`, `attr*1*=` continuations split at character boundaries.
pub(super) fn push_param(h: &mut String, attr: &str, v: &str) {
    if v.is_empty() {
        return;
    }
    if v.bytes().all(|b| (32..127).contains(&b)) {
        let val = if v.bytes().all(is_token) { v.to_string() } else { quote(v) };
        if val.len() <= 64 {
            _ = write!(h, ";\r\n {attr}={val}");
            return;
        }
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut buf = [0; 4];
    for c in v.chars() {
        let mut enc = String::new();
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                enc.push(b as char);
            } else {
                _ = write!(enc, "%{b:02X}");
            }
        }
        match chunks.last_mut() {
            Some(last) if last.len() + enc.len() <= 56 => last.push_str(&enc),
            _ => chunks.push(enc),
        }
    }
    if chunks.len() == 1 {
        _ = write!(h, ";\r\n {attr}*=UTF-8''{}", chunks[0]);
    } else {
        for (i, c) in chunks.iter().enumerate() {
            _ = write!(h, ";\r\n {attr}*{i}*={}{c}", if i == 0 { "UTF-8''" } else { "" });
        }
    }
}

/// Boundary for the `level`-th multipart: "=_", a level letter, 32 hex digits from the seed. "=_" cannot
/// occur in our QP ('=' is always followed by two hex digits or a soft line break) nor in base64 (no '_',
/// '=' only as final padding), and part header lines start with a field name or a space, so no content line
/// can look like a delimiter. The level letter keeps any boundary from being a prefix of another.
pub(super) fn boundary(seed: &[u8; 16], level: u8) -> String {
    let mut b = format!("=_{}", (b'a' + level % 26) as char);
    for x in seed {
        _ = write!(b, "{:02x}", x ^ level.wrapping_mul(0x9d));
    }
    b
}

pub(super) fn render(p: &Part, seed: &[u8; 16], level: &mut u8, out: &mut String) {
    match p {
        Part::Leaf(headers, body) => {
            out.push_str(headers);
            out.push_str("\r\n");
            out.push_str(body);
        }
        Part::Multi(subtype, parts) => {
            let b = boundary(seed, *level);
            *level += 1;
            _ = write!(out, "Content-Type: multipart/{subtype};\r\n boundary=\"{b}\"\r\n\r\n");
            for part in parts {
                _ = write!(out, "--{b}\r\n");
                render(part, seed, level, out);
                out.push_str("\r\n"); // this CRLF belongs to the next delimiter (RFC 2046 §5.1.1)
            }
            _ = write!(out, "--{b}--\r\n");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Dates (the civil-date algorithms live in crate::time)
// ---------------------------------------------------------------------------------------------------------
