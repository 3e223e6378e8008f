//! RFC 5322 / MIME for the Gmail integration: building messages for `users.messages.send` (`raw`) and
//! reading the Gmail API's `format=full` message JSON. Only std, serde_json and base64: no tables beyond
//! the 32 windows-1252 code points, so it stays small in wasm.
//!
//! Transfer encoding of text bodies: quoted-printable when the text is mostly ASCII (readable, compact),
//! base64 when more than a third of its bytes are non-ASCII (Cyrillic, Greek, CJK...), where QP's `=XX`
//! triples would make the body about twice as large as base64 and unreadable anyway.

use crate::time::{civil_from_days, days_from_civil};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub filename: String,
    pub mime_type: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// "Name <a@b>" or "a@b" (the account address).
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Kept in the raw message: Gmail delivers to it and strips the header.
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// An RFC Message-ID such as "<abc@mail.gmail.com>".
    pub in_reply_to: Option<String>,
    /// Space-separated Message-IDs.
    pub references: Option<String>,
    /// Epoch milliseconds for the Date header (written in UTC).
    pub date_ms: i64,
    /// Full "<random@domain>" value.
    pub message_id: String,
    /// Random bytes from the caller; multipart boundaries derive from them (no RNG in this wasm).
    pub boundary_seed: [u8; 16],
}

/// Longest encoded-word we emit: "Reply-To: " (10) + 68 keeps even a first header line within 78 octets.
const EW_MAX: usize = 68;
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

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
fn check_header(field: &str, v: &str) -> Result<(), String> {
    if v.contains(['\r', '\n', '\0']) {
        return Err(format!("{field}: line breaks are not allowed in header values: {v:?}"));
    }
    Ok(())
}

/// Writes `Name: value`, folding before existing spaces so lines stay within 78 octets where the value
/// has spaces to fold at. Inserting CRLF before a space is undone exactly by unfolding.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut len = name.len() + 1;
    for word in value.split(' ') {
        if len > name.len() + 1 && !word.is_empty() && len + 1 + word.len() > 78 {
            out.push_str("\r\n");
            len = 0;
        }
        out.push(' ');
        out.push_str(word);
        len += 1 + word.len();
    }
    out.push_str("\r\n");
}

/// Text that cannot go into a header verbatim: non-ASCII or control characters, something a reader would
/// take for an encoded-word, or a word so long that no folding keeps the line under 998 octets.
fn needs_encoding(s: &str) -> bool {
    s.bytes().any(|b| b != b'\t' && !(32..127).contains(&b)) || s.contains("=?") || s.split(' ').any(|w| w.len() > 900)
}

/// Characters allowed unescaped in a Q encoded-word in any context (RFC 2047 §5 rule 3), so one encoder
/// serves both Subject and display names.
fn q_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/".contains(&b)
}

/// RFC 2047 encoded-words (UTF-8) joined by spaces, each at most EW_MAX long and never splitting a
/// character; Q or B, whichever is shorter for this text.
fn encode_words(s: &str) -> String {
    let q_cost = |b: u8| if q_safe(b) || b == b' ' { 1 } else { 3 };
    let use_q = s.bytes().map(q_cost).sum::<usize>() <= s.len().div_ceil(3) * 4;
    let budget = EW_MAX - "=?UTF-8?Q??=".len();
    let mut out = String::new();
    let mut word = |chunk: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        if use_q {
            out.push_str("=?UTF-8?Q?");
            for b in chunk.bytes() {
                match b {
                    b' ' => out.push('_'),
                    b if q_safe(b) => out.push(b as char),
                    b => _ = write!(out, "={b:02X}"),
                }
            }
        } else {
            out.push_str("=?UTF-8?B?");
            out.push_str(&STANDARD.encode(chunk));
        }
        out.push_str("?=");
    };
    let (mut start, mut q_len) = (0, 0);
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        let cq: usize = s[i..end].bytes().map(q_cost).sum();
        let over = if use_q { q_len + cq > budget } else { (end - start).div_ceil(3) * 4 > budget };
        if over && i > start {
            word(&s[start..i]);
            start = i;
            q_len = 0;
        }
        q_len += cq;
    }
    word(&s[start..]);
    out
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// RFC 2045 token characters (for MIME types and unquoted parameter values).
fn is_token(b: u8) -> bool {
    b > 32 && b < 127 && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Header-ready mailbox: atoms stay as they are, names with specials are quoted, non-ASCII names become
/// RFC 2047 encoded-words. `addr` is expected to be a valid addr-spec (see [`parse_address`]).
pub fn format_address(name: Option<&str>, addr: &str) -> String {
    let name = name.unwrap_or("").trim();
    if name.is_empty() {
        return addr.to_string();
    }
    let phrase = if needs_encoding(name) {
        encode_words(name)
    } else if name.split(' ').all(|w| !w.is_empty() && w.bytes().all(is_atext)) {
        name.to_string()
    } else {
        quote(name)
    };
    format!("{phrase} <{addr}>")
}

/// Parses "Name <a@b>", "a@b", "\"Doe, Jane\" <j@x>", "<a@b>" or the legacy "a@b (Name)" into
/// (display name, addr-spec). Encoded-words in the name are decoded. The addr-spec must be ASCII.
pub fn parse_address(s: &str) -> Result<(Option<String>, String), String> {
    parse_address_cs(s, &Utf8Latin1)
}

fn parse_address_cs(s: &str, cs: &dyn Charsets) -> Result<(Option<String>, String), String> {
    let bad = || format!("invalid email address: {s:?}");
    if s.contains(['\r', '\n', '\0']) {
        return Err(bad());
    }
    let t = s.trim();
    let (mut name, mut addr) = (String::new(), t);
    if t.ends_with('>') {
        let lt = outside_quotes(t).filter(|&(_, c)| c == '<').last().ok_or_else(bad)?.0;
        (name, addr) = (unquote(&t[..lt]), t[lt + 1..t.len() - 1].trim());
    } else if let Some((open, _)) = outside_quotes(t).find(|&(_, c)| c == '(').filter(|_| t.ends_with(')')) {
        (name, addr) = (t[open + 1..t.len() - 1].trim().to_string(), t[..open].trim());
    }
    if !valid_addr_spec(addr) {
        return Err(bad());
    }
    if name.contains("=?") {
        name = decode_header_value(&name, cs);
    }
    let name = name.trim();
    Ok(((!name.is_empty()).then(|| name.to_string()), addr.to_string()))
}

/// Characters (with byte offsets) that are outside quoted strings, skipping backslash escapes inside them.
fn outside_quotes(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut quoted, mut escaped) = (false, false);
    s.char_indices().filter(move |&(_, c)| {
        let was_quoted = quoted;
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        !was_quoted && c != '"'
    })
}

/// A display-name phrase with quoted strings resolved (quotes dropped, escapes undone).
fn unquote(phrase: &str) -> String {
    let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
    for c in phrase.trim().chars() {
        match c {
            _ if escaped => {
                out.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => out.push(c),
        }
    }
    out
}

/// Pragmatic addr-spec check: dot-atom or quoted local part, and a dotted hostname or a domain literal.
fn valid_addr_spec(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    let dot_atom = |s: &str, ok: fn(u8) -> bool| s.split('.').all(|p| !p.is_empty() && p.bytes().all(ok));
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        let (mut it, mut ok) = (local[1..local.len() - 1].bytes(), true);
        while let Some(b) = it.next() {
            ok &= match b {
                b'\\' => it.next().is_some(),
                b'"' => false,
                b => (32..127).contains(&b),
            };
        }
        ok
    } else {
        dot_atom(local, is_atext)
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') && domain.len() > 2 {
        domain[1..domain.len() - 1].bytes().all(|b| (33..127).contains(&b) && !b"[]\\".contains(&b))
    } else {
        domain.contains('.')
            && dot_atom(domain, |b| b.is_ascii_alphanumeric() || b == b'-')
            && domain.split('.').all(|l| l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
    };
    local_ok && domain_ok && local.len() <= 64 && domain.len() <= 255
}

/// Message-IDs in a header value, normalised to "<id>"; bare ids (no brackets at all) are wrapped.
fn msg_ids(s: &str) -> Vec<String> {
    let ok = |id: &str| !id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c == '<' || c == '>');
    if s.contains('<') {
        s.split('<')
            .skip(1)
            .filter_map(|p| p.split_once('>'))
            .map(|(id, _)| id)
            .filter(|id| ok(id))
            .map(|id| format!("<{id}>"))
            .collect()
    } else {
        s.split_whitespace().filter(|id| ok(id)).map(|id| format!("<{id}>")).collect()
    }
}

/// "Re: " + subject, unless it already is a reply ("Re:", "RE :", "re[2]:").
pub fn reply_subject(original: &str) -> String {
    let s = original.trim();
    let is_re = s.len() >= 2 && s.as_bytes()[..2].eq_ignore_ascii_case(b"re") && {
        let r = s[2..].trim_start();
        let r = match r.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
            _ => r,
        };
        r.starts_with(':')
    };
    if is_re {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// The References value for a reply: the original's References followed by its Message-ID (RFC 5322 §3.6.4).
pub fn references_for_reply(original_references: Option<&str>, original_message_id: &str) -> String {
    let mut ids = msg_ids(original_references.unwrap_or(""));
    for id in msg_ids(original_message_id) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.join(" ")
}

enum Part {
    /// Header lines (each ending in CRLF) and the encoded body.
    Leaf(String, String),
    Multi(&'static str, Vec<Part>),
}

fn text_part(text: &str, subtype: &str) -> Part {
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
fn qp(text: &str) -> String {
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

fn base64_lines(data: &[u8]) -> String {
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

fn attachment_part(a: &Attachment) -> Result<Part, String> {
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
fn push_param(h: &mut String, attr: &str, v: &str) {
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
fn boundary(seed: &[u8; 16], level: u8) -> String {
    let mut b = format!("=_{}", (b'a' + level % 26) as char);
    for x in seed {
        _ = write!(b, "{:02x}", x ^ level.wrapping_mul(0x9d));
    }
    b
}

fn render(p: &Part, seed: &[u8; 16], level: &mut u8, out: &mut String) {
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

/// "Tue, 14 Nov 2023 22:13:20 +0000".
fn rfc5322_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let s = ms.rem_euclid(86_400_000) / 1000;
    let (y, m, d) = civil_from_days(days);
    let wd = DAYS[(days + 4).rem_euclid(7) as usize];
    format!("{wd}, {d} {} {y:04} {:02}:{:02}:{:02} +0000", MONTHS[m as usize - 1], s / 3600, s / 60 % 60, s % 60)
}

/// "2023-11-14T22:13:20.000Z".
fn iso8601(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let r = ms.rem_euclid(86_400_000);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", r / 3_600_000, r / 60_000 % 60, r / 1000 % 60, r % 1000)
}

/// RFC 5322 date-time (with the obsolete forms: 2/3-digit years, zone names, no seconds, comments) to
/// epoch milliseconds.
fn parse_date(s: &str) -> Option<i64> {
    let (mut clean, mut depth) = (String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ',' => clean.push(' '),
            c => clean.push(c),
        }
    }
    let mut t: Vec<&str> = clean.split_whitespace().collect();
    if t.first()?.starts_with(|c: char| c.is_ascii_alphabetic()) {
        t.remove(0); // day of week
    }
    let [day, mon, year, time, rest @ ..] = t.as_slice() else { return None };
    let day: i64 = day.parse().ok()?;
    let mon = MONTHS.iter().position(|m| mon.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(m)))? as i64 + 1;
    let mut y: i64 = year.parse().ok()?;
    y += match year.len() {
        1 | 2 if y < 50 => 2000,
        1..=3 => 1900,
        _ => 0,
    };
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next().unwrap_or(Some(0))?);
    let off = rest.first().map_or(Some(0), |z| zone_offset(z))?;
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some((days_from_civil(y, mon, day) * 86_400 + h * 3600 + mi * 60 + sec - off) * 1000)
}

/// Zone offset in seconds: "+hhmm"/"-hhmm" or an obsolete name; unknown alphabetic zones (military
/// letters included) count as +0000, as RFC 5322 §4.3 says.
fn zone_offset(z: &str) -> Option<i64> {
    let sign = match z.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => 0,
    };
    if sign != 0 {
        let n = &z[1..];
        if n.len() != 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = n.parse().ok()?;
        return Some(sign * (v / 100 * 3600 + v % 100 * 60));
    }
    if !z.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let hours = match z.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    Some(hours * 3600)
}

// ---------------------------------------------------------------------------------------------------------
// Reading Gmail API messages
// ---------------------------------------------------------------------------------------------------------

/// Charset decoding supplied by the host (the main project wraps JS TextDecoder).
pub trait Charsets {
    fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String>;
}

/// Native UTF-8, US-ASCII, ISO-8859-1 and windows-1252. Like WHATWG (and so TextDecoder), the Latin-1
/// and ASCII labels decode as windows-1252.
pub struct Utf8Latin1;

const CP1252: [u16; 32] = [
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D,
    0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,
    0x017E, 0x0178,
];

impl Charsets for Utf8Latin1 {
    fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String> {
        match charset.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "unicode-1-1-utf-8" => Some(String::from_utf8_lossy(bytes).into_owned()),
            "us-ascii" | "ascii" | "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "l1" | "windows-1252"
            | "cp1252" | "x-cp1252" => Some(
                bytes
                    .iter()
                    .map(|&b| match b {
                        0x80..=0x9F => char::from_u32(CP1252[b as usize - 0x80].into()).unwrap_or('\u{FFFD}'),
                        _ => b as char,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

fn decode_bytes(charset: &str, bytes: &[u8], cs: &dyn Charsets) -> String {
    cs.decode(charset, bytes).unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Base64 or base64url, padded or not, tolerant of whitespace.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let clean: String = s
        .chars()
        .filter_map(|c| match c {
            '-' => Some('+'),
            '_' => Some('/'),
            c if c.is_ascii_whitespace() || c == '=' => None,
            c => Some(c),
        })
        .collect();
    LENIENT.decode(clean).ok()
}

/// One encoded-word at the start of `s`: (charset, decoded bytes, length consumed).
fn encoded_word(s: &str) -> Option<(&str, Vec<u8>, usize)> {
    let r = s.strip_prefix("=?")?;
    let (charset, r) = r.split_once('?')?;
    let (enc, r) = r.split_once('?')?;
    let text = &r[..r.find("?=")?];
    if charset.is_empty() || !charset.bytes().all(is_token) || text.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => b64_decode(text)?,
        "Q" | "q" => {
            let (mut out, b) = (Vec::new(), text.as_bytes());
            let mut i = 0;
            while i < b.len() {
                let hex = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match (b[i], hex) {
                    (b'_', _) => out.push(b' '),
                    (b'=', Some(x)) => {
                        out.push(x);
                        i += 2;
                    }
                    (c, _) => out.push(c),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    // "charset*lang" (RFC 2231 §5): the language tag is dropped.
    let name = charset.split('*').next().unwrap_or(charset);
    Some((name, bytes, s.len() - r.len() + text.len() + 2))
}

/// Decodes RFC 2047 encoded-words (B and Q, any charset via `cs`). Whitespace between adjacent encoded-words
/// is dropped, and adjacent words in one charset are decoded together so that a character split across
/// words by a sloppy sender survives.
pub fn decode_header_value(raw: &str, cs: &dyn Charsets) -> String {
    let unfolded: String = raw.chars().filter(|&c| c != '\r' && c != '\n').collect();
    let (mut out, mut gap) = (String::new(), String::new());
    let mut pending: Option<(&str, Vec<u8>)> = None;
    let flush = |pending: &mut Option<(&str, Vec<u8>)>, out: &mut String| {
        if let Some((charset, bytes)) = pending.take() {
            out.push_str(&decode_bytes(charset, &bytes, cs));
        }
    };
    let mut rest = unfolded.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some((charset, bytes, len)) = encoded_word(rest) {
            gap.clear();
            match &mut pending {
                Some((c, b)) if c.eq_ignore_ascii_case(charset) => b.extend(bytes),
                _ => {
                    flush(&mut pending, &mut out);
                    pending = Some((charset, bytes));
                }
            }
            rest = &rest[len..];
            continue;
        }
        if pending.is_some() && (c == ' ' || c == '\t') {
            gap.push(c);
        } else {
            flush(&mut pending, &mut out);
            out.push_str(&gap);
            gap.clear();
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut pending, &mut out);
    out + &gap
}

/// Splits an address-list header on commas outside quotes, angle brackets and comments; group names
/// ("team: a@b, c@d;") are dropped so members come out as plain entries.
pub fn split_addresses(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut angle, mut paren) = (Vec::new(), 0, false, 0);
    for (i, c) in outside_quotes(s) {
        match c {
            '<' => angle = true,
            '>' => angle = false,
            '(' => paren += 1,
            ')' if paren > 0 => paren -= 1,
            ',' | ';' if !angle && paren == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            ':' if !angle && paren == 0 => start = i + 1,
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|e| !e.is_empty()).collect()
}

/// "Name <a@b>" or "a@b", with encoded-words decoded; unparsable entries are decoded as they are.
fn render_address(entry: &str, cs: &dyn Charsets) -> String {
    match parse_address_cs(entry, cs) {
        Ok((Some(name), addr)) => format!("{name} <{addr}>"),
        Ok((None, addr)) => addr,
        Err(_) => decode_header_value(entry, cs).trim().to_string(),
    }
}

fn header<'a>(part: &'a Value, name: &str) -> Option<&'a str> {
    part["headers"].as_array()?.iter().find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?
        ["value"]
        .as_str()
}

/// A parameter of a MIME header value such as Content-Type (simple `name=value` / `name="value"` form).
fn param(value: &str, name: &str) -> Option<String> {
    value
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

fn is_attachment(p: &Value) -> bool {
    !p["filename"].as_str().unwrap_or("").is_empty()
        || header(p, "Content-Disposition")
            .is_some_and(|d| d.trim_start().to_ascii_lowercase().starts_with("attachment"))
}

fn mime_type(p: &Value) -> String {
    match p["mimeType"].as_str().unwrap_or("").trim().to_ascii_lowercase() {
        t if t.is_empty() => "text/plain".into(), // RFC 2045 §5.2 default
        t => t,
    }
}

/// Decoded text of a leaf part: Gmail has already undone the transfer encoding, the charset is ours to do.
fn part_text(p: &Value, cs: &dyn Charsets) -> String {
    let bytes = p["body"]["data"].as_str().and_then(b64_decode).unwrap_or_default();
    let charset = header(p, "Content-Type").and_then(|ct| param(ct, "charset")).unwrap_or_else(|| "utf-8".into());
    let text = decode_bytes(&charset, &bytes, cs);
    text.strip_prefix('\u{FEFF}').unwrap_or(&text).replace("\r\n", "\n")
}

/// (text/plain, text/html) body of a part: alternatives contribute one of each, other multiparts
/// (mixed, related, signed, nested messages) the first child that has a body.
fn body_of(p: &Value, cs: &dyn Charsets) -> (Option<String>, Option<String>) {
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

fn collect_attachments(p: &Value, cs: &dyn Charsets, out: &mut Vec<Value>) {
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
fn entity(s: &str) -> Option<(char, usize)> {
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

/// Appends HTML text: source whitespace collapsed to single spaces, entities decoded.
fn push_text(out: &mut String, seg: &str) {
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
const BLOCKS: &[&str] =
    &["div", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "h1", "h2", "h3", "h4", "h5", "h6"];

/// Plain-text rendering of HTML for bodies that have no text/plain part: tags stripped, script/style/head
/// dropped, <br> and block elements to line breaks, entities decoded.
fn html_to_text(html: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

    fn base() -> Outgoing {
        Outgoing {
            from: "Me <me@example.com>".into(),
            to: vec!["you@example.com".into()],
            subject: "Hello".into(),
            text: Some("Hi".into()),
            date_ms: 1_700_000_000_000,
            message_id: "<m1@example.com>".into(),
            boundary_seed: *b"0123456789abcdef",
            ..Default::default()
        }
    }

    /// Every line CRLF-terminated and ≤ 78 octets (the values used in tests allow it; 998 is the hard limit);
    /// encoded-words ≤ 75 and each one decodable on its own (no split UTF-8 characters); boundaries appear
    /// only in their parameter and on delimiter lines.
    fn check_wire(raw: &[u8]) -> String {
        let s = String::from_utf8(raw.to_vec()).expect("7-bit output");
        assert!(s.is_ascii(), "non-ASCII output");
        assert!(!s.replace("\r\n", "").contains(['\r', '\n']), "bare CR or LF");
        for line in s.split("\r\n") {
            assert!(line.len() <= 78, "line too long: {line:?}");
        }
        for b in s.split("boundary=\"").skip(1).map(|r| &r[..r.find('"').unwrap()]) {
            assert!(s
                .split("\r\n")
                .filter(|l| l.contains(b))
                .all(|l| l.starts_with(" boundary=") || l.starts_with("--")));
            assert_eq!(s.matches(&format!("--{b}--\r\n")).count(), 1);
        }
        for w in s.split([' ', '"', '\r', '\n']).filter(|w| w.starts_with("=?")) {
            assert!(w.len() <= 75, "encoded-word too long: {w}");
            let (_, bytes, _) = encoded_word(w).expect("valid encoded-word");
            assert!(String::from_utf8(bytes).is_ok(), "split UTF-8 character in {w}");
        }
        s
    }

    fn parse(raw: &[u8]) -> Message<'_> {
        MessageParser::default().parse(raw).expect("mail-parser reads the message")
    }

    fn addrs(a: Option<&Address>) -> Vec<(Option<String>, String)> {
        a.map(|a| a.iter().map(|x| (x.name().map(String::from), x.address().unwrap_or("").to_string())).collect())
            .unwrap_or_default()
    }

    fn pair(name: Option<&str>, addr: &str) -> (Option<String>, String) {
        (name.map(String::from), addr.to_string())
    }

    fn lf(s: &str) -> String {
        s.replace("\r\n", "\n")
    }

    /// Gmail-style `format=full` JSON made from what mail-parser read: raw unfolded headers, decoded data.
    fn to_gmail(msg: &Message, id: u32) -> Value {
        let part = &msg.parts[id as usize];
        let head = &msg.raw_message()[part.raw_header_offset() as usize..part.raw_body_offset() as usize];
        let head = String::from_utf8_lossy(head).replace("\r\n ", " ").replace("\r\n\t", "\t");
        let headers: Vec<Value> = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| json!({"name": n, "value": v.trim()}))
            .collect();
        let mime =
            part.content_type().map_or("text/plain".into(), |c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")));
        let filename = part.attachment_name().unwrap_or("");
        let mut v = json!({"partId": id.to_string(), "mimeType": mime, "filename": filename, "headers": headers});
        match &part.body {
            PartType::Multipart(children) => {
                v["body"] = json!({"size": 0});
                v["parts"] = children.iter().map(|&c| to_gmail(msg, c)).collect();
            }
            _ if !filename.is_empty() => {
                v["body"] = json!({"attachmentId": format!("att{id}"), "size": part.contents().len()})
            }
            _ => v["body"] = json!({"size": part.contents().len(), "data": URL_SAFE_NO_PAD.encode(part.contents())}),
        }
        v
    }

    fn full() -> Outgoing {
        Outgoing {
            from: "Jörg Müller <joerg@example.de>".into(),
            to: vec![
                "\"Doe, Jane\" <jane@example.com>".into(),
                "plain@example.org".into(),
                "José Ñandú <jose@example.es>".into(),
            ],
            cc: vec!["Team (Ops) <ops@example.com>".into(), r#""Quote \"Q\" Man\\" <q@example.com>"#.into()],
            bcc: vec!["hidden@example.net".into()],
            reply_to: Some("Support Desk <support@example.com>".into()),
            subject: "Grüße aus Köln — 日本語のテキスト and a fairly long tail to force folding 🎉".into(),
            text: Some("Hello Jörg,\n\nTrailing spaces   \nand = signs, a tab\t\nBye".into()),
            html: Some("<p>Hello <b>Jörg</b></p><p>Second &amp; last</p>".into()),
            attachments: vec![
                Attachment {
                    filename: "€ report ünïcode with a rather long filename to force RFC 2231 continuations.pdf".into(),
                    mime_type: "application/pdf".into(),
                    data: (0..=255u8).cycle().take(1000).collect(),
                },
                Attachment {
                    filename: "notes (final), v2.txt".into(),
                    mime_type: "text/plain".into(),
                    data: b"plain text\r\nfile".to_vec(),
                },
            ],
            in_reply_to: Some("<orig@mail.gmail.com>".into()),
            references: Some("<a@x.com> <orig@mail.gmail.com>".into()),
            ..base()
        }
    }

    #[test]
    fn full_message_reads_back_in_mail_parser() {
        let m = full();
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        let msg = parse(&raw);
        assert_eq!(msg.subject(), Some(m.subject.as_str()));
        assert_eq!(addrs(msg.from()), [pair(Some("Jörg Müller"), "joerg@example.de")]);
        assert_eq!(
            addrs(msg.to()),
            [
                pair(Some("Doe, Jane"), "jane@example.com"),
                pair(None, "plain@example.org"),
                pair(Some("José Ñandú"), "jose@example.es")
            ]
        );
        assert_eq!(
            addrs(msg.cc()),
            [pair(Some("Team (Ops)"), "ops@example.com"), pair(Some(r#"Quote "Q" Man\"#), "q@example.com")]
        );
        assert_eq!(addrs(msg.bcc()), [pair(None, "hidden@example.net")]);
        assert_eq!(addrs(msg.reply_to()), [pair(Some("Support Desk"), "support@example.com")]);
        assert_eq!(msg.message_id(), Some("m1@example.com"));
        assert_eq!(msg.in_reply_to().as_text(), Some("orig@mail.gmail.com"));
        assert_eq!(msg.references().as_text_list().map(|l| l.len()), Some(2));
        assert_eq!(msg.date().unwrap().to_timestamp(), 1_700_000_000);
        assert_eq!(lf(&msg.body_text(0).unwrap()), m.text.unwrap());
        assert_eq!(lf(&msg.body_html(0).unwrap()), m.html.unwrap());
        let atts: Vec<_> =
            msg.attachments().map(|a| (a.attachment_name().unwrap().to_string(), a.contents().to_vec())).collect();
        let want: Vec<_> = m.attachments.iter().map(|a| (a.filename.clone(), a.data.clone())).collect();
        assert_eq!(atts, want);
        // Content-Type name= agrees with Content-Disposition filename=.
        for a in msg.attachments() {
            assert_eq!(a.content_type().unwrap().attribute("name"), a.attachment_name());
        }
        // Structure, encodings and boundaries.
        assert!(s.contains("Content-Type: multipart/mixed;\r\n boundary=\"=_a"));
        assert!(s.contains("Content-Type: multipart/alternative;\r\n boundary=\"=_b"));
        assert!(s.contains("filename*0*=UTF-8''%E2%82%AC%20report%20"));
        assert!(s.contains("filename=\"notes (final), v2.txt\""));
        assert!(s.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(s.contains("Trailing spaces  =20\r\n"));
        assert!(s.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(s.contains("MIME-Version: 1.0\r\n"));
        let mime_start = s.find("MIME-Version").unwrap();
        assert!(s.find("\r\n\r\n").unwrap() > mime_start, "Content-Type belongs to the top-level header");
    }

    #[test]
    fn roundtrip_through_gmail_json() {
        let m = full();
        let raw = build(&m).unwrap();
        let msg = parse(&raw);
        let gmail = json!({
            "id": "18c", "threadId": "18b", "labelIds": ["INBOX", "UNREAD"], "snippet": "Hello J&ouml;rg &amp; co",
            "historyId": "1", "internalDate": "1700000000123", "sizeEstimate": raw.len(), "payload": to_gmail(&msg, 0),
        });
        let out = message_from_gmail(&gmail, &Utf8Latin1);
        assert_eq!(out["id"], "18c");
        assert_eq!(out["threadId"], "18b");
        assert_eq!(out["messageId"], "<m1@example.com>");
        assert_eq!(out["from"], "Jörg Müller <joerg@example.de>");
        assert_eq!(
            out["to"],
            json!(["Doe, Jane <jane@example.com>", "plain@example.org", "José Ñandú <jose@example.es>"])
        );
        assert_eq!(out["cc"], json!(["Team (Ops) <ops@example.com>", r#"Quote "Q" Man\ <q@example.com>"#]));
        assert_eq!(out["bcc"], json!(["hidden@example.net"]));
        assert_eq!(out["replyTo"], "Support Desk <support@example.com>");
        assert_eq!(out["subject"], m.subject.as_str());
        assert_eq!(out["date"], "2023-11-14T22:13:20.123Z");
        assert_eq!(out["snippet"], "Hello J&ouml;rg & co"); // unknown entity left alone
        assert_eq!(out["body"], m.text.as_deref().unwrap());
        assert_eq!(out["bodyHtml"], m.html.as_deref().unwrap());
        assert_eq!(out["unread"], true);
        assert_eq!(out["starred"], false);
        assert_eq!(out["labelIds"], json!(["INBOX", "UNREAD"]));
        let atts = out["attachments"].as_array().unwrap();
        assert_eq!(atts.len(), 2);
        assert_eq!(atts[0]["filename"], m.attachments[0].filename.as_str());
        assert_eq!(atts[0]["mimeType"], "application/pdf");
        assert_eq!(atts[0]["size"], 1000);
        assert!(atts[0]["id"].as_str().unwrap().starts_with("att"));
        assert_eq!(atts[1]["filename"], "notes (final), v2.txt");
        assert_eq!(atts[1]["mimeType"], "text/plain");
        // Rendered addresses parse back to the same mailbox.
        assert_eq!(parse_address(out["to"][0].as_str().unwrap()).unwrap(), pair(Some("Doe, Jane"), "jane@example.com"));
    }

    #[test]
    fn body_structures() {
        let kinds = |m: &Outgoing| {
            let raw = build(m).unwrap();
            let s = check_wire(&raw);
            let head = s[..s.find("\r\n\r\n").unwrap()].to_string();
            let msg = parse(&raw);
            (head, msg.body_text(0).map(|t| lf(&t)), msg.body_html(0).map(|t| lf(&t)), msg.attachment_count())
        };
        let (h, t, _, n) = kinds(&base());
        assert!(h.contains("Content-Type: text/plain; charset=UTF-8") && !h.contains("multipart"));
        assert_eq!((t.as_deref(), n), (Some("Hi"), 0));

        let html = Outgoing { text: None, html: Some("<p>Only html</p>".into()), ..base() };
        let (h, _, hb, _) = kinds(&html);
        assert!(h.contains("Content-Type: text/html; charset=UTF-8") && !h.contains("multipart"));
        assert_eq!(hb.as_deref(), Some("<p>Only html</p>"));

        let empty = Outgoing { text: None, ..base() };
        let (h, t, _, _) = kinds(&empty);
        assert!(h.contains("Content-Type: text/plain; charset=UTF-8"));
        assert_eq!(t.as_deref().unwrap_or(""), "");

        let both = Outgoing { html: Some("<i>x</i>".into()), ..base() };
        let (h, t, hb, _) = kinds(&both);
        assert!(h.contains("multipart/alternative") && !h.contains("multipart/mixed"));
        assert_eq!((t.as_deref(), hb.as_deref()), (Some("Hi"), Some("<i>x</i>")));

        let att = |name: &str| Attachment { filename: name.into(), mime_type: "image/png".into(), data: vec![1, 2, 3] };
        let one = Outgoing { attachments: vec![att("a.png")], ..base() };
        let (h, t, _, n) = kinds(&one);
        assert!(h.contains("multipart/mixed"));
        assert_eq!((t.as_deref(), n), (Some("Hi"), 1));
        // Odd MIME types: parameters dropped, message/* sent as octets, garbage rejected.
        let a = Attachment { mime_type: "Text/Plain; charset=utf-8".into(), ..att("x.txt") };
        let s = String::from_utf8(build(&Outgoing { attachments: vec![a], ..base() }).unwrap()).unwrap();
        assert!(s.contains("Content-Type: text/plain;\r\n name=x.txt"));
        let a = Attachment { mime_type: "message/rfc822".into(), ..att("fwd.eml") };
        let s = String::from_utf8(build(&Outgoing { attachments: vec![a], ..base() }).unwrap()).unwrap();
        assert!(s.contains("Content-Type: application/octet-stream;\r\n name=fwd.eml"));
        let a = Attachment { mime_type: "not a type".into(), ..att("x") };
        assert!(build(&Outgoing { attachments: vec![a], ..base() }).unwrap_err().contains("not a type"));
    }

    #[test]
    fn long_lines_and_quoted_printable() {
        let text = format!(
            "{}\n{}\r\n{}   \r{}\n.\nFrom here\ntab at end\t",
            "x".repeat(3000),
            "word ".repeat(400),
            "=".repeat(100),
            "é".repeat(50)
        );
        let html = format!("<div>{}</div>", "y".repeat(2000));
        let m = Outgoing { text: Some(text.clone()), html: Some(html.clone()), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        let body = &s[s.find("\r\n\r\n").unwrap()..];
        assert!(body.split("\r\n").all(|l| l.len() <= 76), "QP/base64 lines are at most 76 octets");
        let msg = parse(&raw);
        let want = text.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(lf(&msg.body_text(0).unwrap()), want);
        assert_eq!(lf(&msg.body_html(0).unwrap()), html);
        // Direct QP checks.
        assert_eq!(qp("a=b \r\nc\t"), "a=3Db=20\r\nc=09");
        let soft = qp(&"a".repeat(80));
        assert_eq!(soft, format!("{}=\r\n{}", "a".repeat(75), "a".repeat(5)));
        assert_eq!(qp(&"é".repeat(30)).split("\r\n").map(str::len).max(), Some(76));
    }

    #[test]
    fn mostly_non_ascii_text_uses_base64() {
        let text = "Привет, мир! Это письмо почти целиком на русском языке.\n日本語も少し。";
        let m = Outgoing { text: Some(text.into()), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        assert!(s.contains("Content-Transfer-Encoding: base64"));
        assert_eq!(lf(&parse(&raw).body_text(0).unwrap()), text);
        // Mostly ASCII with a few accents stays quoted-printable.
        let m = Outgoing { text: Some("Café au lait, naïve résumé of the meeting.".into()), ..base() };
        assert!(String::from_utf8(build(&m).unwrap()).unwrap().contains("quoted-printable"));
    }

    #[test]
    fn header_encoding_and_folding() {
        let names = ["Zoë Ünïcødé-Long Name With Many Parts", "Plain Name", "\"Smith, J. (Jr.)\"", "李小龍"];
        let to: Vec<String> = (0..10).map(|i| format!("{} <user{i}@example.com>", names[i % 4])).collect();
        let subject = "🎉".repeat(40) + " " + &"ascii ".repeat(30) + &"ß".repeat(50);
        let m = Outgoing { to: to.clone(), subject: subject.clone(), ..base() };
        let raw = build(&m).unwrap();
        let s = check_wire(&raw);
        assert!(s.contains("\r\nSubject: =?UTF-8?"));
        let msg = parse(&raw);
        assert_eq!(msg.subject(), Some(subject.as_str()));
        let got = addrs(msg.to());
        assert_eq!(got.len(), 10);
        for (i, (name, addr)) in got.iter().enumerate() {
            assert_eq!(addr, &format!("user{i}@example.com"));
            assert_eq!(name.as_deref(), Some(names[i % 4].trim_matches('"')));
        }
        // ASCII subjects fold at spaces; a 950-char word is encoded instead of exceeding 998.
        let long = "word ".repeat(60);
        let msg_raw = build(&Outgoing { subject: long.trim().into(), ..base() }).unwrap();
        assert_eq!(parse(&msg_raw).subject(), Some(long.trim()));
        assert!(!String::from_utf8(msg_raw.clone()).unwrap().contains("=?"));
        let huge = "z".repeat(950);
        let raw = build(&Outgoing { subject: huge.clone(), ..base() }).unwrap();
        check_wire(&raw);
        assert_eq!(parse(&raw).subject(), Some(huge.as_str()));
        // Text that looks like an encoded-word is itself encoded, so it reads back literally.
        let tricky = "=?UTF-8?B?SGk=?= literally";
        assert_eq!(parse(&build(&Outgoing { subject: tricky.into(), ..base() }).unwrap()).subject(), Some(tricky));
        // Q for mostly-ASCII text, B for mostly non-ASCII.
        assert_eq!(encode_words("Hello wörld of text"), "=?UTF-8?Q?Hello_w=C3=B6rld_of_text?=");
        assert_eq!(encode_words("Café"), "=?UTF-8?B?Q2Fmw6k=?=");
        assert_eq!(encode_words("日本"), "=?UTF-8?B?5pel5pys?=");
        assert_eq!(decode_header_value(&encode_words(&subject), &Utf8Latin1), subject);
    }

    #[test]
    fn header_injection_rejected() {
        let cases: Vec<Outgoing> = vec![
            Outgoing { subject: "Hi\r\nBcc: victim@example.com".into(), ..base() },
            Outgoing { subject: "Hi\nX-Evil: 1".into(), ..base() },
            Outgoing { to: vec!["you@example.com\r\nBcc: v@example.com".into()], ..base() },
            Outgoing { cc: vec!["Name\n <a@example.com>".into()], ..base() },
            Outgoing { from: "Me <me@example.com>\r\nX: y".into(), ..base() },
            Outgoing { reply_to: Some("r@example.com\r\n".into()), ..base() },
            Outgoing { in_reply_to: Some("<a@b.com>\r\nX: y".into()), ..base() },
            Outgoing { references: Some("<a@b.com>\n<c@d.com>".into()), ..base() },
            Outgoing { message_id: "<m@x.com>\r\nX: y".into(), ..base() },
            Outgoing {
                attachments: vec![Attachment {
                    filename: "a\r\n.pdf".into(),
                    mime_type: "application/pdf".into(),
                    data: vec![],
                }],
                ..base()
            },
            Outgoing {
                attachments: vec![Attachment {
                    filename: "a.txt".into(),
                    mime_type: "text/plain\r\nX: y".into(),
                    data: vec![],
                }],
                ..base()
            },
        ];
        for m in cases {
            assert!(build(&m).is_err(), "accepted {m:?}");
        }
        // Control characters other than CR/LF/NUL in a subject are encoded, not passed through.
        let s = String::from_utf8(build(&Outgoing { subject: "a\u{7}b".into(), ..base() }).unwrap()).unwrap();
        assert!(s.contains("Subject: =?UTF-8?B?YQdi?="));
    }

    #[test]
    fn invalid_addresses_rejected() {
        for bad in [
            "foo",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@b..com",
            "a..b@c.com",
            ".a@c.com",
            "a@-b.com",
            "a@localhost",
            "Name <>",
            "Name <a@b.com",
            "a@b.com, c@d.com",
            "jörg@example.de",
            "\"unterminated@x.com",
            "\"a\\\"@x.com",
            "",
        ] {
            let m = Outgoing { to: vec![bad.into()], ..base() };
            let err = build(&m).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?} -> {err}");
        }
        assert!(build(&Outgoing { from: "nobody".into(), ..base() }).unwrap_err().contains("nobody"));
        assert!(build(&Outgoing { to: vec![], ..base() }).is_err());
        assert!(build(&Outgoing { message_id: "no-brackets@x.com".into(), ..base() }).is_err());
        // Bcc-only is fine.
        assert!(build(&Outgoing { to: vec![], bcc: vec!["b@x.com".into()], ..base() }).is_ok());
    }

    #[test]
    fn parse_and_format_addresses() {
        let ok = |s: &str, n: Option<&str>, a: &str| assert_eq!(parse_address(s).unwrap(), pair(n, a), "{s}");
        ok("a@b.com", None, "a@b.com");
        ok("  <a@b.com> ", None, "a@b.com");
        ok("Name <a@b.com>", Some("Name"), "a@b.com");
        ok("\"Doe, Jane\" <j@x.org>", Some("Doe, Jane"), "j@x.org");
        ok(r#""a \"b\" \\ c" <j@x.org>"#, Some(r#"a "b" \ c"#), "j@x.org");
        ok("\"<weird>\" <j@x.org>", Some("<weird>"), "j@x.org");
        ok("Doe, Jane <j@x.org>", Some("Doe, Jane"), "j@x.org");
        ok("=?ISO-8859-1?Q?Andr=E9?= Pirard <p@x.be>", Some("André Pirard"), "p@x.be");
        ok("a@b.com (Old Style)", Some("Old Style"), "a@b.com");
        ok("\"quoted local\"@x.com", None, "\"quoted local\"@x.com");
        ok("Lit <u@[192.168.0.1]>", Some("Lit"), "u@[192.168.0.1]");
        ok("o'brien+tag@sub.example.co.uk", None, "o'brien+tag@sub.example.co.uk");

        assert_eq!(format_address(None, "a@b.com"), "a@b.com");
        assert_eq!(format_address(Some("  "), "a@b.com"), "a@b.com");
        assert_eq!(format_address(Some("Jane Doe"), "a@b.com"), "Jane Doe <a@b.com>");
        assert_eq!(format_address(Some("Doe, Jane"), "a@b.com"), "\"Doe, Jane\" <a@b.com>");
        assert_eq!(format_address(Some("J. Doe (x)"), "a@b.com"), "\"J. Doe (x)\" <a@b.com>");
        assert_eq!(format_address(Some(r#"Say "hi" \o/"#), "a@b.com"), r#""Say \"hi\" \\o/" <a@b.com>"#);
        assert_eq!(format_address(Some("Zoë"), "a@b.com"), "=?UTF-8?Q?Zo=C3=AB?= <a@b.com>");
        assert_eq!(format_address(Some("a_b=c?"), "a@b.com"), "a_b=c? <a@b.com>");
        // Round trip through parse_address for awkward names.
        for name in ["Doe, Jane", r#"x "y" \ z"#, "Ünï, \"cødé\"", "a  b", "=?not?an=?word"] {
            let f = format_address(Some(name), "q@x.com");
            assert_eq!(parse_address(&f).unwrap(), pair(Some(name), "q@x.com"), "{f}");
        }
    }

    #[test]
    fn reply_helpers() {
        assert_eq!(reply_subject("Hello"), "Re: Hello");
        assert_eq!(reply_subject("Re: Hello"), "Re: Hello");
        assert_eq!(reply_subject("RE: Hello"), "RE: Hello");
        assert_eq!(reply_subject("re : Hello"), "re : Hello");
        assert_eq!(reply_subject("Re[2]: Hello"), "Re[2]: Hello");
        assert_eq!(reply_subject("Regarding it"), "Re: Regarding it");
        assert_eq!(reply_subject("Fwd: x"), "Re: Fwd: x");
        assert_eq!(reply_subject(" Ré: x"), "Re: Ré: x");
        assert_eq!(references_for_reply(None, "<a@x>"), "<a@x>");
        assert_eq!(references_for_reply(Some("<r1@x> <r2@x>"), "<a@x>"), "<r1@x> <r2@x> <a@x>");
        assert_eq!(references_for_reply(Some("<r1@x>\r\n <a@x>"), "<a@x>"), "<r1@x> <a@x>");
        assert_eq!(references_for_reply(Some(""), "bare@x"), "<bare@x>");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_700_000_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(rfc5322_date(-1), "Wed, 31 Dec 1969 23:59:59 +0000");
        assert_eq!(rfc5322_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        for z in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let p = |s: &str| parse_date(s).map(iso8601);
        let t = Some("2023-11-14T22:13:20.000Z".to_string());
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 +0000"), t);
        assert_eq!(p("14 Nov 2023 22:13:20 +0000"), t);
        assert_eq!(p("Tue, 14 Nov 2023 23:13:20 +0100 (CET)"), t);
        assert_eq!(p("Tue, 14 Nov 2023 17:13:20 EST"), t);
        assert_eq!(p("Tue, 14 Nov 2023 15:13:20 PDT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 GMT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 UT"), t);
        assert_eq!(p("Tue, 14 Nov 2023 22:13:20 Z"), t);
        assert_eq!(p("Tue, 14 Nov 23 22:13:20 +0000"), t);
        assert_eq!(p("Tuesday, 14 November 2023 22:13:20"), t);
        assert_eq!(p("Tue,14 Nov 2023 22:13:20 -0000"), t);
        assert_eq!(p("14 Nov 2023 16:43 -0530"), Some("2023-11-14T22:13:00.000Z".into()));
        assert_eq!(p("Fri, 21 Nov 97 09:55:06 -0600"), Some("1997-11-21T15:55:06.000Z".into()));
        assert_eq!(p("1 Jan 2024 00:00:00 +0100"), Some("2023-12-31T23:00:00.000Z".into()));
        for bad in [
            "",
            "yesterday",
            "Tue, 14 Foo 2023 22:13:20 +0000",
            "14 Nov 2023 25:00:00 +0000",
            "14 Nov 2023 22:13:20 +01",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_decoding() {
        let d = |s: &str| decode_header_value(s, &Utf8Latin1);
        assert_eq!(d("plain text"), "plain text");
        assert_eq!(d("=?ISO-8859-1?Q?Andr=E9?= Pirard"), "André Pirard");
        assert_eq!(d("=?iso-8859-1?q?this=20is=20some=20text?="), "this is some text");
        // RFC 2047 §8 examples.
        assert_eq!(d("(=?ISO-8859-1?Q?a?=)"), "(a)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= b)"), "(a b)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)"), "(ab)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=)"), "(ab)");
        assert_eq!(d("(=?ISO-8859-1?Q?a_b?=)"), "(a b)");
        assert_eq!(d("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)"), "(a b)");
        assert_eq!(d("=?UTF-8?B?SGVsbG8gV29ybGQ=?="), "Hello World");
        assert_eq!(d("=?utf-8?b?8J+OiQ?="), "🎉"); // unpadded
                                                   // A character split across two B-words (bad senders) survives.
        assert_eq!(d("=?UTF-8?B?w6k=?= =?UTF-8?B?4oI=?= =?UTF-8?B?rA==?="), "é€");
        assert_eq!(d("=?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?="), "€");
        assert_eq!(d("=?UTF-8*en?Q?Hi?="), "Hi");
        assert_eq!(d("=?windows-1252?Q?=80_=93q=94?="), "€ \u{201c}q\u{201d}");
        assert_eq!(d("=?koi8-r?B?8NLJ18XU?="), String::from_utf8_lossy(&[0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4]));
        // Not encoded-words: left as they are.
        assert_eq!(d("=?bad word?= and =?utf-8?X?abc?= 50%=?"), "=?bad word?= and =?utf-8?X?abc?= 50%=?");
        assert_eq!(d("a =?UTF-8?Q?b?= c"), "a b c");
        // A host charset decoder is used for charsets Utf8Latin1 does not know.
        struct Upper;
        impl Charsets for Upper {
            fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String> {
                (charset == "x-upper").then(|| String::from_utf8_lossy(bytes).to_uppercase())
            }
        }
        assert_eq!(decode_header_value("=?x-upper?Q?abc?=", &Upper), "ABC");
        assert_eq!(Utf8Latin1.decode("ISO-8859-1", &[0x41, 0xE9, 0x80]), Some("Aé€".into()));
        assert_eq!(Utf8Latin1.decode("shift_jis", b"x"), None);
    }

    fn leaf(mime: &str, headers: Value, data: &[u8]) -> Value {
        json!({"mimeType": mime, "filename": "", "headers": headers,
               "body": {"size": data.len(), "data": URL_SAFE_NO_PAD.encode(data)}})
    }

    #[test]
    fn gmail_json_by_hand() {
        let latin1 = b"Gr\xfc\xdfe aus K\xf6ln\r\nZeile 2";
        let m = json!({
            "id": "abc", "threadId": "thr", "labelIds": ["INBOX", "STARRED"], "snippet": "Gr&#252;&#xDF;e &quot;x&quot;",
            "internalDate": 1_700_000_000_000u64,
            "payload": {
                "mimeType": "multipart/mixed", "filename": "",
                "headers": [
                    {"name": "From", "value": "=?ISO-8859-1?Q?Andr=E9?= Pirard <andre@example.be>"},
                    {"name": "To", "value": "\"Doe, Jane\" <jane@x.com>, bob@x.com, =?UTF-8?B?5p2O?= <li@x.cn>"},
                    {"name": "CC", "value": "undisclosed-recipients:;"},
                    {"name": "Subject", "value": "=?ISO-8859-1?Q?Gr=FC=DFe?= =?UTF-8?B?IOKCrA==?="},
                    {"name": "Message-Id", "value": "<id1@x.com>"},
                    {"name": "Date", "value": "Mon, 1 Jan 2001 00:00:00 +0000"},
                ],
                "body": {"size": 0},
                "parts": [
                    {"mimeType": "multipart/alternative", "filename": "", "headers": [], "body": {"size": 0}, "parts": [
                        leaf("text/plain", json!([{"name": "Content-Type", "value": "text/plain; charset=\"ISO-8859-1\""}]), latin1),
                        leaf("text/html", json!([{"name": "Content-Type", "value": "text/html; charset=UTF-8"}]), "<b>Grüße</b>".as_bytes()),
                    ]},
                    {"mimeType": "application/pdf", "filename": "r€port.pdf",
                     "headers": [{"name": "Content-Disposition", "value": "attachment; filename*=UTF-8''r%E2%82%ACport.pdf"}],
                     "body": {"attachmentId": "ANGjdJ_1", "size": 12345}},
                    {"mimeType": "text/plain", "filename": "",
                     "headers": [{"name": "Content-Disposition", "value": "attachment"}],
                     "body": {"attachmentId": "ANGjdJ_2", "size": 5}},
                ]
            }
        });
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(
            out,
            json!({
                "id": "abc", "threadId": "thr", "messageId": "<id1@x.com>",
                "from": "André Pirard <andre@example.be>",
                "to": ["Doe, Jane <jane@x.com>", "bob@x.com", "李 <li@x.cn>"], "cc": [], "bcc": [],
                "subject": "Grüße €", "date": "2023-11-14T22:13:20.000Z", "snippet": "Grüße \"x\"",
                "body": "Grüße aus Köln\nZeile 2", "bodyHtml": "<b>Grüße</b>",
                "labelIds": ["INBOX", "STARRED"], "unread": false, "starred": true,
                "attachments": [
                    {"id": "ANGjdJ_1", "filename": "r€port.pdf", "mimeType": "application/pdf", "size": 12345},
                    {"id": "ANGjdJ_2", "filename": "", "mimeType": "text/plain", "size": 5},
                ],
            })
        );
    }

    #[test]
    fn gmail_html_only_nested_and_fallbacks() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body><p>Hi&nbsp;there,</p>\
                    <div>Line&amp;one<br>line &lt;two&gt;</div><!-- c --><script>x()</script><ul><li>a</li><li>b</li></ul>\
                    <p>5 < 6 &#8364; &unknown;</p></body></html>";
        let m = json!({
            "id": "1", "threadId": "1", "snippet": "",
            "payload": {"mimeType": "text/html", "filename": "",
                "headers": [{"name": "Date", "value": "Tue, 14 Nov 2023 17:13:20 EST"},
                            {"name": "Content-Type", "value": "text/html; charset=utf-8"},
                            {"name": "Reply-To", "value": "=?UTF-8?Q?Z=C3=B6e?= <z@x.com>"}],
                "body": {"size": html.len(), "data": URL_SAFE_NO_PAD.encode(html)}}
        });
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(out["body"], "Hi there,\n\nLine&one\nline <two>\na\nb\n\n5 < 6 € &unknown;");
        assert_eq!(out["bodyHtml"], html);
        assert_eq!(out["date"], "2023-11-14T22:13:20.000Z");
        assert_eq!(out["replyTo"], "Zöe <z@x.com>");
        assert_eq!(out["from"], "");
        assert_eq!(out["messageId"], "");
        assert_eq!(out["labelIds"], json!([]));
        assert_eq!(out["unread"], false);

        // Text only: no bodyHtml / replyTo keys; a forwarded message inside mixed; unknown charset → lossy UTF-8.
        let fwd = json!({"mimeType": "message/rfc822", "filename": "", "headers": [], "body": {"size": 0},
                         "parts": [leaf("text/plain", json!([]), b"inner")]});
        let m = json!({"id": "2", "threadId": "2", "labelIds": ["UNREAD"],
            "payload": {"mimeType": "multipart/mixed", "headers": [], "parts": [
                leaf("text/plain", json!([{"name": "Content-Type", "value": "text/plain; charset=x-unknown"}]), "outer ✓".as_bytes()),
                fwd.clone()]}});
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!(out["body"], "outer ✓");
        assert!(out.get("bodyHtml").is_none() && out.get("replyTo").is_none());
        assert_eq!(out["unread"], true);
        assert_eq!(out["date"], "");
        let m = json!({"id": "3", "payload": {"mimeType": "multipart/mixed", "headers": [], "parts": [fwd]}});
        assert_eq!(message_from_gmail(&m, &Utf8Latin1)["body"], "inner");
        // multipart/related with an inline image: html body, image listed as attachment.
        let m = json!({"id": "4", "payload": {"mimeType": "multipart/related", "headers": [], "parts": [
            leaf("text/html", json!([]), b"<p>x</p>"),
            {"mimeType": "image/png", "filename": "logo.png", "headers": [], "body": {"attachmentId": "img", "size": 3}}]}});
        let out = message_from_gmail(&m, &Utf8Latin1);
        assert_eq!((out["body"].as_str(), out["attachments"][0]["id"].as_str()), (Some("x"), Some("img")));
    }

    #[test]
    fn attachment_params_and_boundaries() {
        let param = |attr: &str, v: &str| {
            let mut h = String::new();
            push_param(&mut h, attr, v);
            h
        };
        assert_eq!(param("filename", "€.pdf"), ";\r\n filename*=UTF-8''%E2%82%AC.pdf");
        assert_eq!(param("filename", "report.pdf"), ";\r\n filename=report.pdf");
        assert_eq!(param("filename", "my report; v2.pdf"), ";\r\n filename=\"my report; v2.pdf\"");
        assert_eq!(param("filename", "100% 'quoted' *.txt"), ";\r\n filename=\"100% 'quoted' *.txt\"");
        assert_eq!(param("filename", "tab\there"), ";\r\n filename*=UTF-8''tab%09here");
        assert_eq!(param("filename", ""), "");
        // Continuations never split a character's %XX run.
        let long = param("filename", &"ü".repeat(40));
        assert!(long.contains("filename*0*=UTF-8''%C3%BC") && long.contains("filename*1*=%C3%BC"));
        // Boundaries: distinct per level, none a prefix of another, seed-dependent.
        let seed = [7u8; 16];
        let (a, b) = (boundary(&seed, 0), boundary(&seed, 1));
        assert!(a != b && !a.starts_with(&b) && !b.starts_with(&a) && a.len() == 35);
        assert_ne!(boundary(&[8u8; 16], 0), a);
        // Same input, same bytes (the caller's seed is the only randomness).
        let m =
            Outgoing { attachments: vec![Attachment { filename: "€.pdf".into(), ..Default::default() }], ..base() };
        assert_eq!(build(&m).unwrap(), build(&m).unwrap());
        let s = String::from_utf8(build(&m).unwrap()).unwrap();
        assert!(s.contains("Content-Disposition: attachment;\r\n filename*=UTF-8''%E2%82%AC.pdf\r\n"));
        assert!(s.contains("Content-Type: application/octet-stream;\r\n name*=UTF-8''%E2%82%AC.pdf\r\n"));
        assert!(s.contains("\r\nSubject: Hello\r\n"));
        let msg = parse(s.as_bytes());
        assert_eq!(msg.attachment(0).and_then(|a| a.attachment_name()), Some("€.pdf"));
    }
}
