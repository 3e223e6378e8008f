//! Markdown → Slack mrkdwn, and splitting under Slack's length limit.
//!
//! A CommonMark parser (pulldown-cmark) reads the model's Markdown, so `snake_case`, URLs with
//! underscores and `***x***` come out right. Slack's mrkdwn is not Markdown:
//! - bold `*x*`, italic `_x_`, strike `~x~`, code `` `x` `` and ```` ``` ```` blocks (a language
//!   tag would show as text, so it is dropped); headings become bold lines, rules "———".
//! - Links are `<url|text>`: only http(s) and mailto URLs stay links, others become their text.
//!   In the URL `&` is written `&amp;` (as Slack itself sends URLs) and `|`, `<`, `>` and spaces
//!   are percent-encoded; in the text `|` (which would end it) becomes `∣` (U+2223), and
//!   formatting inside link text is dropped (Slack would show the markers literally).
//! - Slack has no backslash escapes: only `&`, `<`, `>` are escaped (also in code), and raw HTML
//!   in the source is shown as text. A literal `*` or `_` in the text stays as it is; a literal
//!   run of three backticks gets a ZWSP so it can't open a code block, and a backtick inside a
//!   code span (which Slack can't hold) becomes `ˋ`.
//! - Slack ignores a marker that touches a letter or digit outside it (`foo*bar*baz`), so a
//!   zero-width space (U+200B) is put between such a marker and its neighbour.
//! - A marker can't nest in itself, so `**a *b* c**` keeps only the outer `*`; markers don't span
//!   lines, so they are closed before each line break and reopened after it.
//! - Lists are "• " or "1. " lines, nested ones indented 4 spaces a level; quotes are "> "
//!   lines (Slack doesn't nest them, and a blank line would end one, so blocks in a quote are
//!   separated by a single line break).

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

/// Slack's limit for the text of `chat.postMessage`.
pub const MESSAGE_LIMIT: usize = 40_000;

const ZWSP: char = '\u{200B}';

/// Escapes `&`, `<`, `>`, and breaks runs of three backticks (which would open or close a
/// code block in Slack) with a zero-width space.
fn escape(s: &str, out: &mut String) {
    let mut ticks = 0;
    for c in s.chars() {
        ticks = if c == '`' { ticks + 1 } else { 0 };
        if ticks == 3 {
            out.push(ZWSP);
            ticks = 1;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// Only links Slack will open (and no `javascript:`).
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:"].iter().any(|p| lower.starts_with(p))
}

/// A link target that can't end the `<url|text>` early (nor hold a ``` fence).
fn push_url(url: &str, out: &mut String) {
    for c in url.trim().chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '|' => out.push_str("%7C"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            ' ' => out.push_str("%20"),
            '`' => out.push_str("%60"),
            c => out.push(c),
        }
    }
}

/// An open emphasis marker ("" when it repeats an enclosing one) and where it was written.
struct Mark {
    m: &'static str,
    at: usize,
}

struct Writer {
    out: String,
    /// A line was begun: its quote marker and indent are still to be written.
    line_start: bool,
    /// A closing marker was just written: a letter right after it needs a ZWSP.
    glue: bool,
    /// The current list item has no content yet (its first paragraph stays on the bullet's line).
    fresh_item: bool,
    quote: usize,
    /// Per open list: the next number (ordered lists) and the indent of its current item's text.
    lists: Vec<(Option<u64>, usize)>,
    marks: Vec<Mark>,
    /// The last closed marker: (marker, where it opened, where it ended).
    closed: Option<(&'static str, usize, usize)>,
    /// Open links and images: (url, is a bare autolink); their text gathers in `label`.
    links: Vec<(String, bool)>,
    label: String,
}

impl Writer {
    /// Writes mrkdwn as is, beginning the line with its quote marker and indent if needed.
    fn push(&mut self, s: &str) {
        if self.line_start {
            self.line_start = false;
            if self.quote > 0 {
                self.out.push_str("> ");
            }
            let indent = self.lists.last().map_or(0, |l| l.1);
            self.out.extend(std::iter::repeat_n(' ', indent));
        }
        if s.is_empty() {
            return;
        }
        // Keep `*x*` from touching a letter, and backticks from adding up to a ``` across pieces.
        let ticks = |t: &str| t.len() - t.trim_start_matches('`').len();
        let tail = self.out.len() - self.out.trim_end_matches('`').len();
        if std::mem::take(&mut self.glue) && s.starts_with(char::is_alphanumeric) || tail > 0 && tail + ticks(s) >= 3 {
            self.out.push(ZWSP);
        }
        self.fresh_item = false;
        self.out.push_str(s);
    }

    /// Writes text escaped; its line breaks (code, raw HTML) begin new lines.
    fn text(&mut self, s: &str) {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.nl();
            }
            if !line.is_empty() {
                let mut e = String::with_capacity(line.len());
                escape(line, &mut e);
                self.push(&e);
            }
        }
    }

    fn nl(&mut self) {
        if self.line_start {
            self.push(""); // an empty line in a quote still needs its "> "
        }
        self.out.push('\n');
        self.line_start = true;
        self.glue = false;
    }

    /// Ends the current block with `n` line breaks (a blank line when 2).
    fn gap(&mut self, n: usize) {
        let n = if self.quote > 0 { 1 } else { n }; // a blank line would end the quote
        let trimmed = self.out.trim_end_matches(' ').len();
        self.out.truncate(trimmed);
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        if !self.out.is_empty() {
            self.out.extend(std::iter::repeat_n('\n', n.saturating_sub(have)));
        }
        self.line_start = true;
        self.glue = false;
    }

    fn open(&mut self, m: &'static str) {
        // Slack can't nest a marker in itself (`*a *b* c*`), and headings are bold already.
        let m = if self.marks.iter().any(|x| x.m == m) { "" } else { m };
        self.push("");
        self.glue = false;
        if !m.is_empty() && self.out.ends_with(char::is_alphanumeric) {
            self.out.push(ZWSP);
        }
        self.marks.push(Mark { m, at: self.out.len() });
        self.out.push_str(m);
    }

    fn close(&mut self) {
        let Some(Mark { m, at }) = self.marks.pop() else { return };
        if m.is_empty() {
            return;
        }
        if self.out.len() == at + m.len() {
            self.out.truncate(at); // nothing inside: `**` would show as text
            self.closed = None;
            return;
        }
        match self.closed {
            // `***x***` parses as em(strong(x)): when two markers wrap the same text, put bold
            // outermost (`*_x_*`), the usual Slack spelling.
            Some(("*", inner, end)) if end == self.out.len() && inner == at + m.len() => {
                self.out.insert_str(end - 1, m);
                self.out.replace_range(at..inner + 1, &format!("*{m}"));
            }
            _ => self.out.push_str(m),
        }
        self.closed = Some((if self.out.ends_with('*') { "*" } else { m }, at, self.out.len()));
        self.glue = true;
    }

    /// A line break: Slack's markers don't span lines, so close them and reopen on the next.
    fn line_break(&mut self) {
        let closers: String = self.marks.iter().rev().map(|x| x.m).collect();
        self.out.push_str(&closers);
        self.nl();
        self.push("");
        for x in &mut self.marks {
            x.at = self.out.len();
            self.out.push_str(x.m);
        }
    }

    fn link(&mut self, url: &str, bare: bool) {
        let label = std::mem::take(&mut self.label);
        if !safe_url(url) {
            self.text(&label);
            return;
        }
        let mut s = String::from("<");
        push_url(url, &mut s);
        if !bare && !label.is_empty() && label != url {
            s.push('|');
            escape(&label.replace('|', "∣").replace('\n', " "), &mut s);
        }
        s.push('>');
        self.push(&s);
    }
}

/// Converts Markdown (CommonMark with strikethrough and task lists) to Slack mrkdwn.
pub fn to_mrkdwn(markdown: &str) -> String {
    let mut w = Writer {
        out: String::with_capacity(markdown.len() + 32),
        line_start: true,
        glue: false,
        fresh_item: false,
        quote: 0,
        lists: Vec::new(),
        marks: Vec::new(),
        closed: None,
        links: Vec::new(),
        label: String::new(),
    };
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for event in Parser::new_ext(markdown, options) {
        let in_link = !w.links.is_empty();
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph if w.fresh_item => {}
                Tag::Paragraph => w.gap(if w.lists.is_empty() { 2 } else { 1 }),
                Tag::Heading { .. } => {
                    w.gap(2);
                    w.open("*");
                }
                Tag::BlockQuote(_) => {
                    w.gap(2);
                    w.quote += 1;
                }
                Tag::CodeBlock(_) => {
                    w.gap(2);
                    w.push("```");
                    w.nl();
                }
                Tag::HtmlBlock => w.gap(2),
                Tag::List(start) => {
                    w.gap(if w.lists.is_empty() { 2 } else { 1 });
                    w.lists.push((start, 0));
                }
                Tag::Item => {
                    w.gap(1);
                    let base = 4 * w.lists.len().saturating_sub(1);
                    let Some(list) = w.lists.last_mut() else { continue };
                    let bullet = match &mut list.0 {
                        Some(n) => {
                            *n += 1;
                            format!("{}. ", *n - 1)
                        }
                        None => "• ".to_string(),
                    };
                    list.1 = base;
                    w.push(&bullet);
                    if let Some(list) = w.lists.last_mut() {
                        list.1 = base + bullet.chars().count(); // continuation lines align with the text
                    }
                    w.fresh_item = true;
                }
                Tag::Emphasis | Tag::Strong | Tag::Strikethrough if in_link => {}
                Tag::Emphasis => w.open("_"),
                Tag::Strong => w.open("*"),
                Tag::Strikethrough => w.open("~"),
                Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                    let url = match link_type {
                        LinkType::Email => format!("mailto:{dest_url}"),
                        _ => dest_url.to_string(),
                    };
                    w.links.push((url, link_type == LinkType::Autolink));
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::BlockQuote(_) => w.quote -= 1,
                TagEnd::CodeBlock => {
                    if !w.line_start {
                        w.nl();
                    }
                    w.push("```");
                }
                TagEnd::List(_) => {
                    w.lists.pop();
                }
                TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough if in_link => {}
                TagEnd::Heading(_) | TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => w.close(),
                TagEnd::Link | TagEnd::Image => {
                    if let Some((url, bare)) = w.links.pop() {
                        if w.links.is_empty() {
                            w.link(&url, bare);
                        }
                    }
                }
                _ => {}
            },
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) if in_link => w.label.push_str(&t),
            Event::SoftBreak | Event::HardBreak if in_link => w.label.push(' '),
            // Raw HTML from the model is shown, never interpreted.
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) => w.text(&t),
            Event::Code(t) => {
                // Slack's code spans can't hold a backtick: show a look-alike.
                let mut s = String::from("`");
                escape(&t.replace('`', "ˋ"), &mut s);
                s.push('`');
                w.push(&s);
            }
            Event::SoftBreak | Event::HardBreak => w.line_break(),
            Event::Rule => {
                w.gap(2);
                w.push("———");
            }
            Event::TaskListMarker(done) => w.push(if done { "☑ " } else { "☐ " }),
            _ => {}
        }
    }
    w.out.trim().to_string()
}

/// One piece that must not be cut: an entity, a short `<link>`, a ``` fence, or a character.
fn atom(s: &str, max_link: usize) -> &str {
    let end = match s.as_bytes()[0] {
        b'&' => s[1..]
            .find(';')
            .filter(|&e| e > 0 && e < 10 && s[1..1 + e].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#'))
            .map(|e| e + 2),
        b'<' => s.find(['>', '\n']).filter(|&e| s.as_bytes()[e] == b'>' && e < max_link).map(|e| e + 1),
        b'`' if s.starts_with("```") => Some(3),
        _ => None,
    };
    &s[..end.unwrap_or_else(|| s.chars().next().map_or(1, char::len_utf8))]
}

/// A place to cut: (bytes of the chunk so far, its characters, the open fence there).
type Cut<'a> = Option<(usize, usize, Option<&'a str>)>;

/// Characters a cut adds to close a code block: "\n" + prefix + "```".
fn close_len(fence: Option<&str>) -> usize {
    fence.map_or(0, |p| p.chars().count() + 4)
}

/// Splits mrkdwn into chunks of at most `limit` characters (Unicode scalar values), cutting at
/// a line break if one keeps at least half a chunk, else at a space, else anywhere, but never
/// inside an entity or a link; a code block open at a cut (any ``` toggles one, as
/// [`to_mrkdwn`] writes no other) is closed there and reopened in the next chunk, with the
/// "> " or indent its fence had. Chunks are trimmed, and empty ones dropped. Meant for limits
/// of a hundred and up: with tiny ones a piece that can't fit is still emitted whole.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let text = text.trim_start_matches('\n').trim_end();
    if text.chars().count() <= limit {
        return if text.is_empty() { vec![] } else { vec![text.to_string()] };
    }
    let mut chunks = Vec::new();
    let mut keep = |chunk: &str| {
        // Skip what would show nothing, such as an empty reopened code block.
        if !chunk.trim_matches(|c: char| c.is_whitespace() || c == '>' || c == '`').is_empty() {
            chunks.push(chunk.trim_start_matches('\n').trim_end().to_string());
        }
    };
    let mut cur = String::new();
    // Characters in `cur`, and how many of them are a reopened fence (no progress to cut).
    let (mut len, mut base) = (0, 0);
    // While in a code block: what precedes its ``` on the line ("> " or indent), to reopen it alike.
    let mut fence: Option<&str> = None;
    // After the last line break, and after the last space: (bytes of `cur`, its characters, the fence then).
    let (mut brk, mut space): (Cut, Cut) = (None, None);
    let mut line_at = 0;
    let mut i = 0;
    while i < text.len() {
        let a = atom(&text[i..], limit / 2);
        let n = a.chars().count();
        let after = match (a, fence) {
            ("```", None) => {
                let p = &text[line_at..i];
                Some(if p.len() <= 16 && p.chars().all(|c| c == ' ' || c == '>') { p } else { "" })
            }
            ("```", Some(_)) => None,
            _ => fence,
        };
        while len + n + close_len(after) > limit && len > base {
            // Cut at the last line break if that keeps at least half a chunk, else at the last
            // space, else right here.
            let (at, _, open) = match (brk.take(), space.take()) {
                (Some(b), _) if b.1 > limit / 2 => b,
                (_, Some(b)) if b.1 > limit / 2 => b,
                _ => (cur.len(), len, fence),
            };
            let mut next = String::new();
            let mut head = cur[..at].trim_end_matches('\n').to_string();
            if let Some(p) = open {
                head.push('\n');
                head.push_str(p);
                head.push_str("```");
                next.push_str(p);
                next.push_str("```\n");
            }
            keep(&head);
            base = next.chars().count();
            next.push_str(&cur[at..]);
            cur = next;
            len = cur.chars().count();
        }
        cur.push_str(a);
        len += n;
        fence = after;
        i += a.len();
        if a == "\n" {
            brk = Some((cur.len(), len, fence));
            line_at = i;
        } else if a == " " {
            space = Some((cur.len(), len, fence));
        }
    }
    if len > base {
        keep(&cur);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emphasis_kinds() {
        assert_eq!(to_mrkdwn("**bold** and *it* and __b__ and _i_"), "*bold* and _it_ and *b* and _i_");
        assert_eq!(to_mrkdwn("~~gone~~ ~also~"), "~gone~ ~also~");
        assert_eq!(to_mrkdwn("`a_b` *x*"), "`a_b` _x_");
    }

    #[test]
    fn nesting() {
        assert_eq!(to_mrkdwn("***x***"), "*_x_*");
        assert_eq!(to_mrkdwn("**bold *nested* bold**"), "*bold _nested_ bold*");
        assert_eq!(to_mrkdwn("*it **b** it*"), "_it *b* it_");
        assert_eq!(to_mrkdwn("***a** b*"), "_*a* b_");
        assert_eq!(to_mrkdwn("~~***x***~~"), "*~_x_~*");
        // The same marker can't nest in Slack: only the outer one is kept.
        assert_eq!(to_mrkdwn("**a __b__ c**"), "*a b c*");
        assert_eq!(to_mrkdwn("# Title **bold**"), "*Title bold*");
    }

    #[test]
    fn word_adjacent_markers_get_a_zero_width_space() {
        assert_eq!(to_mrkdwn("foo*bar*baz"), "foo\u{200B}_bar_\u{200B}baz");
        assert_eq!(to_mrkdwn("foo**bar**baz"), "foo\u{200B}*bar*\u{200B}baz");
        assert_eq!(to_mrkdwn("x~~y~~z"), "x\u{200B}~y~\u{200B}z");
        assert_eq!(to_mrkdwn("café**x**"), "café\u{200B}*x*");
        // Not next to a letter: nothing added.
        assert_eq!(to_mrkdwn("(**x**), **y**."), "(*x*), *y*.");
        assert_eq!(to_mrkdwn("**a**_b_"), "*a*_b_");
        assert_eq!(to_mrkdwn("use snake_case_name here"), "use snake_case_name here");
        assert_eq!(to_mrkdwn("2 * 3 * 4"), "2 * 3 * 4");
    }

    #[test]
    fn markers_do_not_span_lines() {
        assert_eq!(to_mrkdwn("**one\ntwo**"), "*one*\n*two*");
        assert_eq!(to_mrkdwn("***a\nb***"), "_*a*_\n*_b_*");
        assert_eq!(to_mrkdwn("a  \nb"), "a\nb");
    }

    #[test]
    fn escaping_and_raw_html() {
        assert_eq!(to_mrkdwn("a <b>not bold</b> & co > 1"), "a &lt;b&gt;not bold&lt;/b&gt; &amp; co &gt; 1");
        assert_eq!(to_mrkdwn("<script>x</script>"), "&lt;script&gt;x&lt;/script&gt;");
        assert_eq!(to_mrkdwn("<div>\nhi & bye\n</div>\n\nafter"), "&lt;div&gt;\nhi &amp; bye\n&lt;/div&gt;\n\nafter");
        assert_eq!(to_mrkdwn("AT&amp;T &copy;"), "AT&amp;T ©");
        // No backslash escapes in Slack: the Markdown escape is resolved, the character kept.
        assert_eq!(to_mrkdwn(r"\*not em\* a\_b"), "*not em* a_b");
    }

    #[test]
    fn code() {
        assert_eq!(to_mrkdwn("run `a_b <c> & *d*`"), "run `a_b &lt;c&gt; &amp; *d*`");
        assert_eq!(to_mrkdwn("``a`b``"), "`aˋb`");
        assert_eq!(to_mrkdwn("```rust\nfn main() { *x* < &y }\n```"), "```\nfn main() { *x* &lt; &amp;y }\n```");
        assert_eq!(to_mrkdwn("text\n\n    indented\n    code\n\nmore"), "text\n\n```\nindented\ncode\n```\n\nmore");
        assert_eq!(to_mrkdwn("````\n```\n````"), "```\n``\u{200B}`\n```");
        assert_eq!(to_mrkdwn("`a```"), "`a``\u{200B}`");
        assert_eq!(to_mrkdwn("``````` ``````"), "``\u{200B}``\u{200B}``\u{200B}` ``\u{200B}``\u{200B}``");
        assert_eq!(to_mrkdwn("```\na\n\nb\n```"), "```\na\n\nb\n```");
    }

    #[test]
    fn links() {
        assert_eq!(to_mrkdwn("[docs](https://x.com/a_b?x=1&y=2)"), "<https://x.com/a_b?x=1&amp;y=2|docs>");
        assert_eq!(to_mrkdwn("[a|b > c & d](https://x.com/p|q>r)"), "<https://x.com/p%7Cq%3Er|a∣b &gt; c &amp; d>");
        assert_eq!(to_mrkdwn("[sp](<https://x.com/a b>)"), "<https://x.com/a%20b|sp>");
        assert_eq!(to_mrkdwn("<https://x.com/```>"), "<https://x.com/%60%60%60>");
        assert_eq!(to_mrkdwn("<https://example.com/x>"), "<https://example.com/x>");
        assert_eq!(to_mrkdwn("[https://e.com](https://e.com)"), "<https://e.com>");
        assert_eq!(to_mrkdwn("<me@example.com>"), "<mailto:me@example.com|me@example.com>");
        assert_eq!(to_mrkdwn("[mail](MAILTO:a@b.c)"), "<MAILTO:a@b.c|mail>");
        assert_eq!(to_mrkdwn("[**bold** `c`](http://e.com)"), "<http://e.com|bold c>");
        assert_eq!(to_mrkdwn("**[x](http://e.com)** y"), "*<http://e.com|x>* y");
        assert_eq!(to_mrkdwn("![a cat](https://e.com/cat.png)"), "<https://e.com/cat.png|a cat>");
        assert_eq!(to_mrkdwn("![](https://e.com/cat.png)"), "<https://e.com/cat.png>");
        assert_eq!(to_mrkdwn("[![logo](https://e.com/l.png)](https://e.com)"), "<https://e.com|logo>");
        assert_eq!(to_mrkdwn("[a\nb <i\nx>](https://e.com)"), "<https://e.com|a b &lt;i x&gt;>");
    }

    #[test]
    fn unsafe_links_become_text() {
        assert_eq!(to_mrkdwn("[bad](javascript:alert(1))"), "bad");
        assert_eq!(to_mrkdwn("[rel <x>](/path)"), "rel &lt;x&gt;");
        assert_eq!(to_mrkdwn("[f](ftp://x.org) [d](data:text/html,hi)"), "f d");
        assert_eq!(to_mrkdwn("[](javascript:x)"), "");
    }

    #[test]
    fn lists() {
        assert_eq!(to_mrkdwn("- a\n- b\n\n1. x\n2. y"), "• a\n• b\n\n1. x\n2. y");
        assert_eq!(to_mrkdwn("3. c\n4. d"), "3. c\n4. d");
        assert_eq!(to_mrkdwn("- a\n  - b\n    - c\n- d"), "• a\n    • b\n        • c\n• d");
        assert_eq!(to_mrkdwn("1. one\n   - sub\n2. two"), "1. one\n    • sub\n2. two");
        assert_eq!(to_mrkdwn("- [x] done\n- [ ] todo"), "• ☑ done\n• ☐ todo");
        // Loose items and continuation lines.
        assert_eq!(to_mrkdwn("- a\n\n  more\n- b\nc"), "• a\n  more\n• b\n  c");
        assert_eq!(to_mrkdwn("para\n- a\n\nafter"), "para\n\n• a\n\nafter");
        assert_eq!(to_mrkdwn("- **b** *i*"), "• *b* _i_");
    }

    #[test]
    fn quotes_headings_rules() {
        assert_eq!(to_mrkdwn("> quoted\n> line"), "> quoted\n> line");
        assert_eq!(to_mrkdwn("> one\n>\n> two\n\nout"), "> one\n> two\n\nout");
        assert_eq!(to_mrkdwn("> a\n> > deeper"), "> a\n> deeper");
        assert_eq!(to_mrkdwn("> - x\n> - y"), "> • x\n> • y");
        assert_eq!(to_mrkdwn("> ```\n> a\n> ```"), "> ```\n> a\n> ```");
        assert_eq!(to_mrkdwn("# Title\n\ntext\n\n## Sub *it*"), "*Title*\n\ntext\n\n*Sub _it_*");
        assert_eq!(to_mrkdwn("Setext\n===\nx"), "*Setext*\n\nx");
        assert_eq!(to_mrkdwn("#\n\nx"), "x");
        assert_eq!(to_mrkdwn("a\n\n---\n\nb"), "a\n\n———\n\nb");
    }

    #[test]
    fn unclosed_markers_stay_literal() {
        assert_eq!(to_mrkdwn("**unclosed and *also"), "**unclosed and *also");
        assert_eq!(to_mrkdwn("`tick"), "`tick");
        assert_eq!(to_mrkdwn(""), "");
    }

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    /// No chunk may end inside a code block, an entity or a link.
    fn well_formed(chunk: &str) -> bool {
        let fences = chunk.matches("```").count().is_multiple_of(2);
        let entities = chunk.match_indices('&').all(|(i, _)| atom(&chunk[i..], usize::MAX).len() > 1);
        // Quote markers aside, each line's `<` and `>` pair up.
        let links = chunk.lines().all(|l| {
            let body = l.trim_start_matches(['>', ' ']);
            let mut open = false;
            body.chars().all(|c| match c {
                '<' => !std::mem::replace(&mut open, true),
                '>' => std::mem::replace(&mut open, false),
                _ => true,
            }) && !open
        });
        fences && entities && links
    }

    #[test]
    fn random_markdown_keeps_the_rules() {
        let bits = [
            "*",
            "**",
            "_",
            "~~",
            "`",
            "```",
            "\n",
            "\n\n",
            "> ",
            "- ",
            "1. ",
            "    ",
            "# ",
            "[",
            "](",
            ")",
            "<",
            ">",
            "&",
            "&amp;",
            "<https://x.y>",
            "(https://e.com/a|b>c)",
            "<b>",
            "word",
            "é",
            " ",
            "|",
            "![",
            "---",
            "\\",
            "[ ] ",
            "😀",
            "\t",
            "\u{200B}",
        ];
        let mut seed = 7u64;
        let mut rnd = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for _ in 0..3000 {
            let md: String = (0..rnd(150)).map(|_| bits[rnd(bits.len())]).collect();
            let out = to_mrkdwn(&md);
            assert!(out.match_indices('&').all(|(i, _)| atom(&out[i..], usize::MAX).len() > 1), "{md:?}");
            assert!(well_formed(&out), "{md:?} → {out:?}");
            let limit = [64, 100, 150, 1000][rnd(4)];
            for c in split(&out, limit) {
                assert!(chars(&c) <= limit && well_formed(&c), "{limit} {md:?} → {c:?}");
            }
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(split("hello", MESSAGE_LIMIT), vec!["hello"]);
        assert!(split("  \n ", MESSAGE_LIMIT).is_empty());
    }

    #[test]
    fn splits_at_the_limit_on_line_breaks() {
        let md = (0..3000)
            .map(|i| format!("Paragraph **{i}** with `a<b>&c` and [a | link](https://e.com/{i}?a=1&b=2) & <more>."))
            .collect::<Vec<_>>()
            .join("\n\n");
        let text = to_mrkdwn(&md);
        assert!(chars(&text) > 3 * MESSAGE_LIMIT);
        let chunks = split(&text, MESSAGE_LIMIT);
        assert!(chunks.len() >= 4);
        for c in &chunks {
            assert!(chars(c) <= MESSAGE_LIMIT && chars(c) > MESSAGE_LIMIT / 2 || c == chunks.last().unwrap());
            assert!(c.starts_with("Paragraph") && c.ends_with('.'), "cut mid-line: {}", &c[c.len() - 40..]);
            assert!(well_formed(c));
        }
        let joined = chunks.join("\n\n");
        assert_eq!(joined, text);
    }

    #[test]
    fn long_lines_are_cut_between_words() {
        let text = (0..500).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
        let chunks = split(&text, 100);
        assert!(chunks.iter().all(|c| chars(c) <= 100 && c.starts_with("word") && !c.ends_with(' ')));
        assert_eq!(chunks.join(" "), text);
    }

    #[test]
    fn code_blocks_are_closed_and_reopened() {
        let code: String = (0..5000).map(|i| format!("let x{i} = a < b && c > d;\n")).collect();
        let text = to_mrkdwn(&format!("Intro\n\n```rust\n{code}```\n\nOutro"));
        let chunks = split(&text, MESSAGE_LIMIT);
        assert!(chunks.len() >= 4);
        for (i, c) in chunks.iter().enumerate() {
            assert!(chars(c) <= MESSAGE_LIMIT);
            assert!(well_formed(c), "chunk {i}");
            if i > 0 {
                assert!(c.starts_with("```\nlet x"), "chunk {i} starts {:?}", &c[..20]);
            }
            if i + 1 < chunks.len() {
                assert!(c.ends_with(";\n```"), "chunk {i}");
            }
        }
        assert!(chunks.last().unwrap().ends_with("```\n\nOutro"));
        // A single line longer than the limit is cut inside, still closing the block.
        let long = format!("```\n{}\n```", "&amp;x".repeat(30_000));
        let chunks = split(&long, MESSAGE_LIMIT);
        assert_eq!(chunks.len(), 5);
        assert!(chunks.iter().all(|c| chars(c) <= MESSAGE_LIMIT && well_formed(c) && c.starts_with("```\n")));
        let inner: String = chunks.iter().map(|c| &c[4..c.len() - 4]).collect();
        assert_eq!(inner, "&amp;x".repeat(30_000));
    }

    #[test]
    fn quoted_code_is_reopened_in_the_quote() {
        let text = format!("> ```\n{}> ```", "> line\n".repeat(100));
        for c in split(&text, 200) {
            assert!(chars(&c) <= 200 && well_formed(&c));
            assert!(c.starts_with("> ```\n> line") && c.ends_with("> line\n> ```"), "{c}");
        }
    }

    #[test]
    fn never_cuts_entities_or_links() {
        let text = "&amp;&lt;&gt;".repeat(500);
        for limit in [7, 31, 97, 1000] {
            for c in split(&text, limit) {
                assert!(chars(&c) <= limit && well_formed(&c), "{limit}: {c}");
            }
        }
        let links = "x <https://example.com/some/path|label ∣ text> y ".repeat(300);
        for limit in [200, 333, 1000] {
            let chunks = split(&links, limit);
            assert_eq!(chunks.concat().matches("<https").count(), 300);
            assert!(chunks.iter().all(|c| chars(c) <= limit && well_formed(c)));
        }
    }

    #[test]
    fn every_chunk_fits_whatever_the_limit() {
        let md = (0..200)
            .map(|i| match i % 5 {
                0 => format!("# Head {i}\n\n- item *{i}* & more\n  - nested <{i}>"),
                1 => format!("```py\nprint({i} < 2 and 'a|b')\n\nx = {i}\n```"),
                2 => format!("> quote {i} with [link](https://e.com/{i}|x)\n> ```\n> code {i}\n> ```"),
                3 => format!("word{}", "é".repeat(i)),
                _ => format!("long line {}", "w&ord ".repeat(i)),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let text = to_mrkdwn(&md);
        for limit in [64, 100, 257, 1000, 4096] {
            let chunks = split(&text, limit);
            for c in &chunks {
                assert!(chars(c) <= limit, "{limit}: {} {c}", chars(c));
                assert!(well_formed(c), "{limit}: {c}");
            }
            let squash = |s: &str| s.replace(['\n', ' ', '>'], "").replace("```", "");
            assert_eq!(squash(&chunks.concat()), squash(&text));
        }
    }
}
