//! Full-text search of synced entities (README, "Search"): each integration's object keeps an
//! FTS5 index of its entities (by triggers, in the same transaction as every write); a search
//! over several integrations asks their objects in parallel and merges the answers by rank.
//! Used by the search routes and the MCP `entities_search` tool. A user's query never reaches
//! FTS5 as syntax: `fts_query` turns it into quoted strings joined by operators it chooses.

use std::cmp::Ordering;

use crate::db::Query as _;
use serde::Deserialize;
use worker::d1::D1Database;

use base64::Engine;
use serde_json::{json, Value};
use worker::Env;

use super::data::{hit_key, DataPlane, Hit, SearchAfter, SearchRequest};
use super::store::IntegrationRow;
use crate::http::{ApiError, ApiResult};
use crate::time::normalize;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Terms (words, phrases) used from one query; the rest are ignored.
pub const MAX_TERMS: usize = 32;
/// Results per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 20;
/// Highlight markers in the index's snippets (removed from indexed text by the migration),
/// and what a client sees around each match.
const OPEN: char = '\u{2}';
const CLOSE: char = '\u{3}';
pub const MARK: &str = "**";

/// One term of a query: a phrase (one or more words, as FTS5 tokenizes them), maybe a prefix.
#[derive(Debug, PartialEq)]
struct Term {
    text: String,
    prefix: bool,
}

/// A user's query as an FTS5 expression: each whitespace-separated chunk (or `"quoted
/// phrase"`) becomes one quoted string, which FTS5 tokenizes with the index's own tokenizer
/// (so `owner/repo` or `a@b.com` match as the adjacent words they were indexed as); a trailing
/// `*` asks for a prefix; a bare `OR` between two terms makes them alternatives; every other
/// term must match. Quotes, parentheses, column filters, `NEAR`, `NOT`, `^` and the like have
/// no effect beyond separating words. `Err` when nothing searchable is left.
pub fn fts_query(q: &str) -> Result<String, &'static str> {
    // Groups of alternatives, all of which must match.
    let mut groups: Vec<Vec<Term>> = Vec::new();
    let mut or_pending = false;
    let mut terms = 0;
    for (chunk, quoted) in chunks(q) {
        if !quoted && chunk == "OR" {
            or_pending = !groups.is_empty();
            continue;
        }
        let Some(term) = term(&chunk, quoted) else { continue };
        if terms == MAX_TERMS {
            break;
        }
        terms += 1;
        match groups.last_mut() {
            Some(g) if or_pending => g.push(term),
            _ => groups.push(vec![term]),
        }
        or_pending = false;
    }
    if groups.is_empty() {
        return Err("Must contain at least one letter or digit");
    }
    let phrase = |t: &Term| format!("\"{}\"{}", t.text, if t.prefix { "*" } else { "" });
    let parts: Vec<String> = groups
        .iter()
        .map(|g| match g.as_slice() {
            [one] => phrase(one),
            many => format!("({})", many.iter().map(phrase).collect::<Vec<_>>().join(" OR ")),
        })
        .collect();
    Ok(parts.join(" AND "))
}

/// Splits on whitespace, keeping `"…"` together (an unclosed quote runs to the end).
fn chunks(q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in q.chars() {
        if c == '"' {
            if !cur.is_empty() || in_quote {
                out.push((std::mem::take(&mut cur), in_quote));
            }
            in_quote = !in_quote;
        } else if c.is_whitespace() && !in_quote {
            if !cur.is_empty() {
                out.push((std::mem::take(&mut cur), false));
            }
        } else if !c.is_control() {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push((cur, in_quote));
    }
    out
}

/// A chunk as a term, `None` when it holds no letter or digit (it would be an empty phrase).
fn term(chunk: &str, quoted: bool) -> Option<Term> {
    let trimmed = chunk.trim();
    let (text, stars) = if quoted { (trimmed, false) } else { (trimmed.trim_end_matches('*'), trimmed.ends_with('*')) };
    if !text.chars().any(char::is_alphanumeric) {
        return None;
    }
    // A one-character prefix would expand to a large part of the vocabulary.
    let last_word = text.rsplit(|c: char| !c.is_alphanumeric()).next().unwrap_or("");
    let prefix = stars && last_word.chars().count() >= 2;
    // Inside an FTS5 string only `"` is special; chunks never contain one.
    Some(Term { text: text.to_string(), prefix })
}

/// The integration as the one token the index stores in its `k` column.
fn integration_token(id: &str) -> String {
    format!("i{}", id.chars().filter(|c| *c != '-' && *c != '"').collect::<String>())
}

/// The full MATCH expression: one of `integrations` (never empty), and the user's terms in
/// the title or body.
pub fn match_expr(integrations: &[String], query: &str) -> String {
    let ks: Vec<String> = integrations.iter().map(|i| format!("\"{}\"", integration_token(i))).collect();
    format!("k : ({}) AND {{title body}} : ({query})", ks.join(" OR "))
}

/// A validated search request.
#[derive(Debug, PartialEq)]
pub struct SearchParams {
    /// The FTS5 expression of the user's query (from `fts_query`).
    pub query: String,
    pub entity_type: Option<String>,
    pub limit: u32,
    /// Where this page starts: after the last result of the previous one.
    pub after: Option<Position>,
}

/// A result's place in search order: its rank (bm25, lower is better), then its integration,
/// then its entity; the cursor is the last result's place.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub rank: f64,
    pub integration: String,
    pub key: String,
}

impl Position {
    fn cmp(&self, other: &Position) -> Ordering {
        self.rank
            .total_cmp(&other.rank)
            .then_with(|| self.integration.cmp(&other.integration))
            .then_with(|| self.key.cmp(&other.key))
    }

    /// Where one integration's object starts for this page: its results after this place.
    fn for_integration(&self, integration: &str) -> SearchAfter {
        match integration.cmp(self.integration.as_str()) {
            Ordering::Less => SearchAfter { rank: self.rank, ties: false, key: None },
            Ordering::Greater => SearchAfter { rank: self.rank, ties: true, key: None },
            Ordering::Equal => SearchAfter { rank: self.rank, ties: true, key: Some(self.key.clone()) },
        }
    }
}

fn encode_cursor(p: &Position) -> String {
    let text = format!("k{:?}\t{}\t{}", p.rank, p.integration, p.key);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(c: &str) -> Option<Position> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let text = std::str::from_utf8(&raw).ok()?.strip_prefix('k')?;
    let mut parts = text.splitn(3, '\t');
    let rank: f64 = parts.next()?.parse().ok().filter(|r: &f64| r.is_finite())?;
    let integration = parts.next()?.to_string();
    let key = parts.next()?.to_string();
    (integration.len() <= 100 && key.len() <= 1000).then_some(Position { rank, integration, key })
}

/// Checks the parameters of a search (query string or tool arguments alike).
pub fn params(q: Option<&str>, entity_type: Option<&str>, limit: u32, cursor: Option<&str>) -> ApiResult<SearchParams> {
    let q = q.ok_or_else(|| ApiError::invalid_field("q", "Required"))?;
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid_field("q", &format!("Must be at most {MAX_QUERY_CHARS} characters long")));
    }
    let query = fts_query(q).map_err(|m| ApiError::invalid_field("q", m))?;
    if let Some(t) = entity_type {
        if t.is_empty() || t.len() > 40 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::invalid_field("type", "Unknown entity type"));
        }
    }
    let after = match cursor {
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::invalid_field("cursor", "Invalid cursor"))?),
        None => None,
    };
    Ok(SearchParams { query, entity_type: entity_type.map(str::to_string), limit: limit.clamp(1, 100), after })
}

/// The snippet shown for a hit: around the match in the body, else in the title, else the
/// body's beginning; matches wrapped in `MARK`.
pub fn snippet(body: &str, title: &str) -> String {
    let chosen = if body.contains(OPEN) || !title.contains(OPEN) { body } else { title };
    chosen.replace([OPEN, CLOSE], MARK)
}

/// Runs a search over `integrations` (the ones the caller may read): `{results: [{type,
/// externalId, title, snippet, modifiedAt}], cursor?, hasMore}`, best match first (bm25, a
/// title match weighing four times a body match). Each integration's object is asked in
/// parallel (one subrequest each) for its best `limit + 1` after the cursor; integrations whose
/// data is still being moved out of D1 are searched there. `with_integration` adds each
/// result's `integrationId` (searches over several integrations).
pub async fn run(
    env: &Env,
    integrations: &[IntegrationRow],
    p: &SearchParams,
    with_integration: bool,
) -> ApiResult<Value> {
    let want = p.limit as usize + 1;
    let (moved, legacy): (Vec<&IntegrationRow>, Vec<&IntegrationRow>) =
        integrations.iter().partition(|r| r.data_home == "object");
    let asks = moved.iter().map(|row| async move {
        let req = SearchRequest {
            query: p.query.clone(),
            entity_type: p.entity_type.clone(),
            limit: p.limit + 1,
            after: p.after.as_ref().map(|a| a.for_integration(&row.id)),
        };
        DataPlane::new(env, &row.id).search(&req).await.map(|h| (row.id.clone(), h.hits))
    });
    let mut hits: Vec<(Position, Hit)> = Vec::new();
    for answer in futures::future::join_all(asks).await {
        let (integration, found) = answer?;
        hits.extend(found.into_iter().map(|h| (place(&integration, &h), h)));
    }
    if !legacy.is_empty() {
        let ids: Vec<String> = legacy.iter().map(|r| r.id.clone()).collect();
        let found = legacy_search(&env.d1("DB")?, &ids, p).await?;
        hits.extend(
            found
                .into_iter()
                .map(|(integration, h)| (place(&integration, &h), h))
                .filter(|(pos, _)| p.after.as_ref().is_none_or(|a| pos.cmp(a) == Ordering::Greater)),
        );
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits.truncate(want);
    let has_more = hits.len() > p.limit as usize;
    let results: Vec<Value> = hits
        .iter()
        .take(p.limit as usize)
        .map(|(pos, h)| {
            let mut r = json!({
                "type": h.entity_type, "externalId": h.external_id, "title": h.title.as_deref().unwrap_or(""),
                "snippet": snippet(h.body_snippet.as_deref().unwrap_or(""), h.title_snippet.as_deref().unwrap_or("")),
                "modifiedAt": normalize(&h.last_modified_at),
            });
            if with_integration {
                r["integrationId"] = json!(pos.integration);
            }
            r
        })
        .collect();
    let mut body = json!({ "results": results, "hasMore": has_more });
    if has_more {
        if let Some((last, _)) = hits.get(p.limit as usize - 1) {
            body["cursor"] = json!(encode_cursor(last));
        }
    }
    Ok(body)
}

/// Search of integrations whose data is still being moved out of D1, over D1's index (the
/// hits as objects answer them; `integrations::moving` removes the need once every move ends).
async fn legacy_search(db: &D1Database, integrations: &[String], p: &SearchParams) -> ApiResult<Vec<(String, Hit)>> {
    if integrations.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    struct Row {
        integration_id: String,
        #[serde(flatten)]
        hit: Hit,
    }
    let ids = Value::from(integrations.to_vec()).to_string();
    let result = crate::q!(
        db,
        "SELECT e.integration_id, e.entity_type, e.external_id, e.last_modified_at, f.title,
                snippet(entity_search, 2, char(2), char(3), '…', 24) AS body_snippet,
                snippet(entity_search, 1, char(2), char(3), '…', 24) AS title_snippet,
                bm25(entity_search, 0.0, 4.0, 1.0) AS rank
           FROM entity_search f
           JOIN entity_search_docs d ON d.doc = f.rowid
           JOIN synced_entities e ON e.id = d.entity_id
          WHERE entity_search MATCH ?1 AND e.deleted_at IS NULL AND (?2 IS NULL OR e.entity_type = ?2)
            AND e.integration_id IN (SELECT value FROM json_each(?3))
          ORDER BY rank, e.entity_type, e.external_id
          LIMIT 1000",
        &match_expr(integrations, &p.query),
        &p.entity_type,
        &ids
    )?
    .rows()
    .await;
    let rows: Vec<Row> = match result {
        Ok(r) => r.results()?,
        Err(e) if e.to_string().contains("fts5") => {
            return Err(ApiError::invalid_field("q", "This query cannot be searched"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(rows.into_iter().map(|r| (r.integration_id, r.hit)).collect())
}

fn place(integration: &str, h: &Hit) -> Position {
    Position { rank: h.rank, integration: integration.to_string(), key: hit_key(&h.entity_type, &h.external_id) }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_strings_that_must_all_match() {
        assert_eq!(fts_query("parser crash").unwrap(), r#""parser" AND "crash""#);
        assert_eq!(fts_query("  Café   ").unwrap(), r#""Café""#);
        assert_eq!(fts_query("日本語 テキスト").unwrap(), r#""日本語" AND "テキスト""#);
        // Punctuated chunks stay one phrase: FTS5 splits them into adjacent words itself.
        assert_eq!(fts_query("alice/app.js a@b.com").unwrap(), r#""alice/app.js" AND "a@b.com""#);
    }

    #[test]
    fn phrases_prefixes_and_alternatives() {
        assert_eq!(fts_query(r#""exact phrase" other"#).unwrap(), r#""exact phrase" AND "other""#);
        assert_eq!(fts_query("pars* a*").unwrap(), r#""pars"* AND "a""#, "no one-letter prefixes");
        assert_eq!(fts_query("bug OR defect crash").unwrap(), r#"("bug" OR "defect") AND "crash""#);
        assert_eq!(fts_query("a OR b OR c").unwrap(), r#"("a" OR "b" OR "c")"#);
        assert_eq!(fts_query("or and").unwrap(), r#""or" AND "and""#, "lower-case words are words");
    }

    #[test]
    fn hostile_syntax_never_reaches_fts5() {
        let cases = [
            ("\"", None),
            ("\"unterminated phrase", Some(r#""unterminated phrase""#)),
            ("OR", None),
            ("OR x", Some(r#""x""#)),
            ("x OR", Some(r#""x""#)),
            ("NOT x", Some(r#""NOT" AND "x""#)),
            ("AND", Some(r#""AND""#)),
            ("(a", Some(r#""(a""#)),
            ("a)) OR ((b", Some(r#"("a))" OR "((b")"#)),
            ("title:secret", Some(r#""title:secret""#)),
            ("{k title}: x", Some(r#""{k" AND "title}:" AND "x""#)),
            ("NEAR(a b, 2)", Some(r#""NEAR(a" AND "b," AND "2)""#)),
            ("^start -minus +plus", Some(r#""^start" AND "-minus" AND "+plus""#)),
            ("***", None),
            ("* * *", None),
            ("\"\"", None),
            ("\u{0}\u{7}", None),
            ("a\u{0}b", Some(r#""ab""#)),
            ("'; DROP TABLE x; --", Some(r#""DROP" AND "TABLE" AND "x;""#)),
        ];
        for (input, want) in cases {
            assert_eq!(fts_query(input).ok().as_deref(), want, "{input:?}");
        }
        // Whatever comes in, the output is quoted strings with no quote inside, and our operators.
        for input in ["a\"b\"c", "\"\"\"x", "x\"", "\"a\" \"b", "\\\" OR \"\\"] {
            let out = fts_query(input).unwrap();
            let bare: String = out.split('"').step_by(2).collect();
            assert!(bare.chars().all(|c| " ()*ANDOR".contains(c)), "{input:?} → {out}");
        }
    }

    #[test]
    fn long_queries_keep_their_first_terms() {
        let q = (0..50).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(fts_query(&q).unwrap().matches(" AND ").count(), MAX_TERMS - 1);
    }

    #[test]
    fn the_integrations_are_part_of_the_expression() {
        let ids = vec!["3f2a9c1b-0000-4000-8000-000000000001".to_string(), "x\"y".to_string()];
        assert_eq!(
            match_expr(&ids, r#""a""#),
            r#"k : ("i3f2a9c1b000040008000000000000001" OR "ixy") AND {title body} : ("a")"#
        );
    }

    #[test]
    fn params_and_cursors() {
        let p = params(Some("hello"), Some("issues"), 500, None).unwrap();
        assert_eq!(
            (p.query.as_str(), p.entity_type.as_deref(), p.limit, p.after),
            ("\"hello\"", Some("issues"), 100, None)
        );
        let at = Position { rank: -1.25e-6, integration: "i-2".into(), key: "issues\u{1f}o/r#1".into() };
        let next = encode_cursor(&at);
        assert_eq!(params(Some("x"), None, 20, Some(&next)).unwrap().after, Some(at));
        assert_eq!(params(None, None, 20, None).unwrap_err().fields(), ["q"]);
        assert_eq!(params(Some("!!"), None, 20, None).unwrap_err().fields(), ["q"]);
        assert_eq!(params(Some(&"a".repeat(501)), None, 20, None).unwrap_err().fields(), ["q"]);
        assert_eq!(params(Some("x"), Some("is sues"), 20, None).unwrap_err().fields(), ["type"]);
        let nan = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("kNaN\ti\tk");
        for bad in ["", "zzz", &nan, "dDE"] {
            assert_eq!(params(Some("x"), None, 20, Some(bad)).unwrap_err().fields(), ["cursor"], "{bad:?}");
        }
    }

    #[test]
    fn each_integration_starts_after_the_cursor_in_merged_order() {
        let at = Position { rank: -2.0, integration: "b".into(), key: "k".into() };
        assert_eq!(at.for_integration("a"), SearchAfter { rank: -2.0, ties: false, key: None });
        assert_eq!(at.for_integration("c"), SearchAfter { rank: -2.0, ties: true, key: None });
        assert_eq!(at.for_integration("b"), SearchAfter { rank: -2.0, ties: true, key: Some("k".into()) });
        let p = |rank, i: &str, k: &str| Position { rank, integration: i.into(), key: k.into() };
        let mut order = vec![p(-1.0, "a", "x"), p(-2.0, "c", "a"), p(-2.0, "b", "z"), p(-2.0, "b", "a")];
        order.sort_by(|x, y| x.cmp(y));
        assert_eq!(order, vec![p(-2.0, "b", "a"), p(-2.0, "b", "z"), p(-2.0, "c", "a"), p(-1.0, "a", "x")]);
    }

    #[test]
    fn snippets_show_the_match() {
        assert_eq!(snippet("the \u{2}parser\u{3} fails", "Crash"), "the **parser** fails");
        assert_eq!(snippet("no match here", "\u{2}Parser\u{3} crash"), "**Parser** crash");
        assert_eq!(snippet("body start…", "title"), "body start…");
    }
}
