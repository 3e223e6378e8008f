//! Header fields: encoded words (RFC 2047) both ways, addresses and display names (quoted when
//! they must be), Message-ID lists, reply subjects and references, and charsets beyond UTF-8.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------

/// Longest encoded-word we emit: "Reply-To: " (10) + 68 keeps even a first header line within 78 octets.
pub(super) const EW_MAX: usize = 68;
/// Writes `Name: value`, folding before existing spaces so lines stay within 78 octets where the value
/// has spaces to fold at. Inserting CRLF before a space is undone exactly by unfolding.
pub(super) fn push_header(out: &mut String, name: &str, value: &str) {
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
pub(super) fn needs_encoding(s: &str) -> bool {
    s.bytes().any(|b| b != b'\t' && !(32..127).contains(&b)) || s.contains("=?") || s.split(' ').any(|w| w.len() > 900)
}

/// Characters allowed unescaped in a Q encoded-word in any context (RFC 2047 §5 rule 3), so one encoder
/// serves both Subject and display names.
pub(super) fn q_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/".contains(&b)
}

/// RFC 2047 encoded-words (UTF-8) joined by spaces, each at most EW_MAX long and never splitting a
/// character; Q or B, whichever is shorter for this text.
pub(super) fn encode_words(s: &str) -> String {
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

pub(super) fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// RFC 2045 token characters (for MIME types and unquoted parameter values).
pub(super) fn is_token(b: u8) -> bool {
    b > 32 && b < 127 && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

pub(super) fn quote(s: &str) -> String {
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

pub(super) fn parse_address_cs(s: &str, cs: &dyn Charsets) -> Result<(Option<String>, String), String> {
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
pub(super) fn outside_quotes(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
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
pub(super) fn unquote(phrase: &str) -> String {
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
pub(super) fn valid_addr_spec(a: &str) -> bool {
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
pub(super) fn msg_ids(s: &str) -> Vec<String> {
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

/// Charset decoding supplied by the host (the main project wraps JS TextDecoder).
pub trait Charsets {
    fn decode(&self, charset: &str, bytes: &[u8]) -> Option<String>;
}

/// Native UTF-8, US-ASCII, ISO-8859-1 and windows-1252. Like WHATWG (and so TextDecoder), the Latin-1
/// and ASCII labels decode as windows-1252.
pub struct Utf8Latin1;

pub(super) const CP1252: [u16; 32] = [
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

pub(super) fn decode_bytes(charset: &str, bytes: &[u8], cs: &dyn Charsets) -> String {
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
pub(super) fn encoded_word(s: &str) -> Option<(&str, Vec<u8>, usize)> {
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
pub(super) fn render_address(entry: &str, cs: &dyn Charsets) -> String {
    match parse_address_cs(entry, cs) {
        Ok((Some(name), addr)) => format!("{name} <{addr}>"),
        Ok((None, addr)) => addr,
        Err(_) => decode_header_value(entry, cs).trim().to_string(),
    }
}
