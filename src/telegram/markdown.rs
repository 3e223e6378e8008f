//! Markdown → Telegram HTML, and splitting under Telegram's length limits.
//!
//! A CommonMark parser (pulldown-cmark) reads the model's Markdown, so `snake_case`, URLs with
//! underscores and `***x***` come out right; only tags Telegram's HTML mode accepts are
//! produced (b, i, s, code, pre, a, blockquote), text and attributes are escaped, and raw HTML
//! in the source is shown as text. The splitter cuts between tags, closing and reopening them.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// Telegram's limit for message text, and for captions.
pub const MESSAGE_LIMIT: usize = 4096;
pub const CAPTION_LIMIT: usize = 1024;

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Only links Telegram will open (and no `javascript:`).
fn safe_href(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"].iter().any(|p| lower.starts_with(p))
}

/// Converts Markdown to Telegram HTML.
pub fn to_telegram_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 32);
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut quote_depth = 0usize;
    let mut links: Vec<bool> = Vec::new(); // whether each open link emitted an <a>
    let block_gap = |out: &mut String| {
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        if !out.is_empty() && !out.ends_with("\n\n") && !out.ends_with("<blockquote>") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
    };
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph if lists.is_empty() => block_gap(&mut out),
                Tag::Heading { .. } => {
                    block_gap(&mut out);
                    out.push_str("<b>");
                }
                Tag::BlockQuote(_) => {
                    block_gap(&mut out);
                    // Telegram does not nest blockquotes: only the outermost is a tag.
                    if quote_depth == 0 {
                        out.push_str("<blockquote>");
                    }
                    quote_depth += 1;
                }
                Tag::CodeBlock(kind) => {
                    block_gap(&mut out);
                    match kind {
                        CodeBlockKind::Fenced(lang) if !lang.is_empty() => {
                            let lang: String = lang
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(*c))
                                .collect();
                            out.push_str("<pre><code class=\"language-");
                            escape(&lang, &mut out);
                            out.push_str("\">");
                        }
                        _ => out.push_str("<pre><code>"),
                    }
                }
                Tag::List(start) => {
                    if lists.is_empty() {
                        block_gap(&mut out);
                    } else if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    lists.push(start);
                }
                Tag::Item => {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            out.push_str(&format!("{n}. "));
                            *n += 1;
                        }
                        _ => out.push_str("• "),
                    }
                }
                Tag::Emphasis => out.push_str("<i>"),
                Tag::Strong => out.push_str("<b>"),
                Tag::Strikethrough => out.push_str("<s>"),
                Tag::Link { dest_url, .. } => {
                    let ok = safe_href(&dest_url);
                    if ok {
                        out.push_str("<a href=\"");
                        escape(&dest_url, &mut out);
                        out.push_str("\">");
                    }
                    links.push(ok);
                }
                Tag::Image { dest_url, .. } => {
                    // Images cannot be inlined in a message: show their alt text as a link.
                    let ok = safe_href(&dest_url);
                    if ok {
                        out.push_str("<a href=\"");
                        escape(&dest_url, &mut out);
                        out.push_str("\">");
                    }
                    links.push(ok);
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => {}
                TagEnd::Heading(_) => out.push_str("</b>"),
                TagEnd::BlockQuote(_) => {
                    quote_depth -= 1;
                    if quote_depth == 0 {
                        let trimmed = out.trim_end().len();
                        out.truncate(trimmed);
                        out.push_str("</blockquote>");
                    }
                }
                TagEnd::CodeBlock => {
                    let trimmed = out.trim_end_matches('\n').len();
                    out.truncate(trimmed);
                    out.push_str("</code></pre>");
                }
                TagEnd::List(_) => {
                    lists.pop();
                }
                TagEnd::Emphasis => out.push_str("</i>"),
                TagEnd::Strong => out.push_str("</b>"),
                TagEnd::Strikethrough => out.push_str("</s>"),
                TagEnd::Link | TagEnd::Image if links.pop() == Some(true) => out.push_str("</a>"),
                _ => {}
            },
            Event::Text(t) => escape(&t, &mut out),
            Event::Code(t) => {
                out.push_str("<code>");
                escape(&t, &mut out);
                out.push_str("</code>");
            }
            // Raw HTML from the model is shown, never interpreted.
            Event::Html(t) | Event::InlineHtml(t) => escape(&t, &mut out),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => {
                block_gap(&mut out);
                out.push_str("———");
            }
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => escape(&t, &mut out),
        }
    }
    out.trim().to_string()
}

/// Plain text of Telegram HTML (tags dropped, entities decoded): the fallback when
/// Telegram rejects the entities.
pub fn html_to_plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => {
                    out.push_str(rest);
                    break;
                }
            }
        } else if c == '&' {
            let (text, len) = decode_entity(rest);
            out.push_str(&text);
            rest = &rest[len..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn decode_entity(s: &str) -> (String, usize) {
    for (name, ch) in [("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\"")] {
        if s.starts_with(name) {
            return (ch.to_string(), name.len());
        }
    }
    if let Some(end) = s.find(';').filter(|e| *e < 12) {
        let body = &s[1..end];
        let code = body
            .strip_prefix("#x")
            .map(|h| u32::from_str_radix(h, 16))
            .or_else(|| body.strip_prefix('#').map(str::parse));
        if let Some(Ok(c)) = code {
            if let Some(ch) = char::from_u32(c) {
                return (ch.to_string(), end + 1);
            }
        }
    }
    ("&".to_string(), 1)
}

/// Open tags as (name, raw opening tag).
type OpenTags<'a> = Vec<(&'a str, &'a str)>;

/// One piece of HTML: a tag or an atomic run of text (a character or an entity).
enum Tok<'a> {
    Open(&'a str, &'a str), // (name, raw)
    Close(&'a str),
    Text(&'a str),
}

fn tokenize(html: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut i = 0;
    let b = html.as_bytes();
    while i < html.len() {
        if b[i] == b'<' {
            if let Some(len) = html[i..].find('>') {
                let raw = &html[i..i + len + 1];
                let inner = &raw[1..raw.len() - 1];
                if let Some(name) = inner.strip_prefix('/') {
                    toks.push(Tok::Close(&html[i + 2..i + 2 + name.len()]));
                } else {
                    let name_len = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
                    toks.push(Tok::Open(&html[i + 1..i + 1 + name_len], raw));
                }
                i += len + 1;
                continue;
            }
        }
        let len = if b[i] == b'&' {
            html[i..].find(';').filter(|e| *e < 12).map(|e| e + 1).unwrap_or(1)
        } else {
            html[i..].chars().next().map(char::len_utf8).unwrap_or(1)
        };
        toks.push(Tok::Text(&html[i..i + len]));
        i += len;
    }
    toks
}

/// UTF-16 length (Telegram counts in UTF-16 code units).
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits Telegram HTML into pieces of at most `limit` UTF-16 units each (counting markup,
/// which over-counts and so stays safe), preferring line breaks, never inside a tag or an
/// entity; tags open at a cut are closed and reopened in the next piece.
pub fn split_html(html: &str, limit: usize) -> Vec<String> {
    if units(html) <= limit {
        return if html.is_empty() { vec![] } else { vec![html.to_string()] };
    }
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0usize;
    let mut stack: OpenTags = Vec::new();
    // Where the last line break was: (byte length of `cur`, its UTF-16 length, open tags then).
    let mut last_break: Option<(usize, usize, OpenTags)> = None;
    let closing = |stack: &[(&str, &str)]| -> String { stack.iter().rev().map(|(n, _)| format!("</{n}>")).collect() };
    let reopen = |stack: &[(&str, &str)]| -> String { stack.iter().map(|(_, raw)| *raw).collect() };
    for tok in tokenize(html) {
        let (piece, is_text) = match &tok {
            Tok::Open(_, raw) => (*raw, false),
            Tok::Close(_) => ("", false),
            Tok::Text(t) => (*t, true),
        };
        let close_len: usize = stack.iter().map(|(n, _)| n.len() + 3).sum();
        let extra = match &tok {
            Tok::Open(n, raw) => units(raw) + n.len() + 3,
            Tok::Close(n) => n.len() + 3,
            Tok::Text(t) => units(t),
        };
        if is_text && cur_len + extra + close_len > limit && cur_len > reopen(&stack).len() {
            // Cut at the last line break if it keeps at least half a piece, else here.
            let (cut_at, cut_len, cut_stack) = match last_break.take() {
                Some((at, len, st)) if len > limit / 2 => (at, len, st),
                _ => (cur.len(), cur_len, stack.clone()),
            };
            let tail = cur[cut_at..].to_string();
            let _ = cut_len;
            let mut done = cur[..cut_at].to_string();
            done.push_str(&closing(&cut_stack));
            chunks.push(done);
            cur = reopen(&cut_stack);
            cur.push_str(&tail);
            cur_len = units(&cur);
        }
        match tok {
            Tok::Open(n, raw) => {
                stack.push((n, raw));
                cur.push_str(raw);
                cur_len += units(raw);
            }
            Tok::Close(n) => {
                if let Some(pos) = stack.iter().rposition(|(o, _)| *o == n) {
                    stack.remove(pos);
                }
                cur.push_str("</");
                cur.push_str(n);
                cur.push('>');
                cur_len += n.len() + 3;
            }
            Tok::Text(t) => {
                cur.push_str(t);
                cur_len += units(t);
                if t == "\n" {
                    last_break = Some((cur.len(), cur_len, stack.clone()));
                }
            }
        }
        let _ = piece;
    }
    if !html_to_plain(&cur).trim().is_empty() {
        chunks.push(cur);
    }
    chunks.retain(|c| !html_to_plain(c).trim().is_empty());
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emphasis_and_nesting() {
        assert_eq!(to_telegram_html("**bold** and *it* and __b__"), "<b>bold</b> and <i>it</i> and <b>b</b>");
        let bi = to_telegram_html("***x***");
        assert!(bi == "<i><b>x</b></i>" || bi == "<b><i>x</i></b>", "{bi}");
        assert_eq!(to_telegram_html("**bold *nested* bold**"), "<b>bold <i>nested</i> bold</b>");
        assert_eq!(to_telegram_html("~~gone~~"), "<s>gone</s>");
    }

    #[test]
    fn underscores_and_links() {
        assert_eq!(to_telegram_html("use snake_case_name here"), "use snake_case_name here");
        assert_eq!(
            to_telegram_html("[docs](https://x.com/a_b_c?x=1&y=\"2\")"),
            "<a href=\"https://x.com/a_b_c?x=1&amp;y=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(to_telegram_html("[bad](javascript:alert(1))"), "bad");
        assert_eq!(to_telegram_html("2 * 3 * 4"), "2 * 3 * 4");
    }

    #[test]
    fn html_in_source_is_text() {
        assert_eq!(to_telegram_html("a <b>not bold</b> & co"), "a &lt;b&gt;not bold&lt;/b&gt; &amp; co");
        assert_eq!(to_telegram_html("<script>x</script>"), "&lt;script&gt;x&lt;/script&gt;");
    }

    #[test]
    fn code_kept() {
        assert_eq!(to_telegram_html("run `a_b <c>`"), "run <code>a_b &lt;c&gt;</code>");
        assert_eq!(
            to_telegram_html("```rust\nfn main() { *x* }\n```"),
            "<pre><code class=\"language-rust\">fn main() { *x* }</code></pre>"
        );
    }

    #[test]
    fn unclosed_markers_stay_literal() {
        assert_eq!(to_telegram_html("**unclosed and *also"), "**unclosed and *also");
        assert_eq!(to_telegram_html("`tick"), "`tick");
    }

    #[test]
    fn blocks() {
        assert_eq!(to_telegram_html("# Title\n\ntext"), "<b>Title</b>\n\ntext");
        assert_eq!(to_telegram_html("- a\n- b\n\n1. x\n2. y"), "• a\n• b\n\n1. x\n2. y");
        assert_eq!(to_telegram_html("> quoted\n> > deeper"), "<blockquote>quoted\n\ndeeper</blockquote>");
        assert_eq!(to_telegram_html("- [x] done"), "• ☑ done");
    }

    #[test]
    fn plain_fallback() {
        assert_eq!(html_to_plain("<b>a &amp; b</b> &lt;3 &#x1F600;"), "a & b <3 😀");
    }

    fn balanced(chunk: &str) -> bool {
        let mut stack = Vec::new();
        for t in tokenize(chunk) {
            match t {
                Tok::Open(n, _) => stack.push(n),
                Tok::Close(n) => {
                    if stack.pop() != Some(n) {
                        return false;
                    }
                }
                Tok::Text(_) => {}
            }
        }
        stack.is_empty()
    }

    #[test]
    fn splits_keep_tags_balanced_and_under_the_limit() {
        let md = (0..400)
            .map(|i| format!("Paragraph **{i}** with `code_{i}` and [a link](https://e.com/{i})."))
            .collect::<Vec<_>>()
            .join("\n\n");
        let html = to_telegram_html(&md);
        let chunks = split_html(&html, MESSAGE_LIMIT);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(units(c) <= MESSAGE_LIMIT, "{}", units(c));
            assert!(balanced(c), "{c}");
        }
        assert_eq!(
            chunks.iter().map(|c| html_to_plain(c)).collect::<String>().replace('\n', ""),
            html_to_plain(&html).replace('\n', "")
        );
        // A single long code block is split inside, reopening <pre><code>.
        let code = format!("```\n{}\n```", "x".repeat(9000));
        let chunks = split_html(&to_telegram_html(&code), MESSAGE_LIMIT);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.starts_with("<pre><code>") && c.ends_with("</code></pre>") && balanced(c)));
        // Entities are never cut.
        let amp = "&amp;".repeat(1000);
        for c in split_html(&amp, 97) {
            assert!(c.len() % 5 == 0 && units(&c) <= 97);
        }
    }
}
