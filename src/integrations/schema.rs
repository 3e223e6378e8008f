//! Validation of action parameters against our own JSON Schemas (a known subset of draft 2020-12).
//!
//! Hand-written rather than a schema crate to keep the wasm upload small, and so messages read well in
//! `VALIDATION_ERROR` details. `check_schema` guards (in tests) that schemas only use what is implemented here.

use serde_json::{Map, Number, Value};

/// One violation: `field` is a dotted path from the root ("to", "attendees.0.email", "" for the root), `message` a short English sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// Validates `value` against `schema`; an empty vector means valid. Stops descending into a value after its first type error.
pub fn validate(schema: &Value, value: &Value) -> Vec<Violation> {
    validate_at(schema, value, "")
}

/// Checks that a schema only uses the supported keywords and is well-formed (used by a unit test in the main project over every action schema): returns the first problem found.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    check_schema_at(schema, "")
}

const TYPES: [&str; 7] = ["object", "array", "string", "integer", "number", "boolean", "null"];
const FORMATS: [&str; 6] = ["date-time", "date", "email", "uri", "time-hhmm", "base64"];

fn push(out: &mut Vec<Violation>, field: &str, message: impl Into<String>) {
    out.push(Violation { field: field.to_string(), message: message.into() });
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let s = match schema {
        Value::Object(s) => s,
        Value::Bool(false) => return push(out, path, "Not allowed"),
        _ => return,
    };
    if let Some(types) = s.get("type").and_then(type_names) {
        if !types.iter().any(|t| has_type(value, t)) {
            // Anything deeper would only be noise once the shape is wrong.
            return push(out, path, expected(&types));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.iter().any(|o| json_eq(o, value)) {
            let list: Vec<String> = options.iter().map(show).collect();
            push(out, path, format!("Expected one of: {}", list.join(", ")));
        }
    }
    if let Some(c) = s.get("const") {
        if !json_eq(c, value) {
            push(out, path, format!("Must be {}", show(c)));
        }
    }
    match value {
        Value::Object(o) => check_object(s, o, path, out),
        Value::Array(a) => check_array(s, a, path, out),
        Value::String(st) => check_string(s, st, path, out),
        Value::Number(n) => check_number(s, n.as_f64().unwrap_or(f64::NAN), path, out),
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        let Some(alts) = s.get(key).and_then(Value::as_array) else { continue };
        let results: Vec<Vec<Violation>> = alts.iter().map(|a| validate_at(a, value, path)).collect();
        match results.iter().filter(|r| r.is_empty()).count() {
            1 => {}
            n if n > 1 && key == "anyOf" => {}
            0 => {
                // Explain via the alternative the caller most likely meant: the closest one of the right type.
                let fitting = alts.iter().zip(results).filter(|(a, _)| type_fits(a, value));
                match fitting.min_by_key(|(_, r)| r.len()) {
                    Some((_, r)) => out.extend(r),
                    None => {
                        let types: Vec<&str> =
                            alts.iter().filter_map(|a| a.get("type").and_then(type_names)).flatten().collect();
                        push(out, path, expected(&types));
                    }
                }
            }
            _ => push(out, path, "Matches more than one allowed form"),
        }
    }
}

fn validate_at(schema: &Value, value: &Value, path: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    check(schema, value, path, &mut out);
    out
}

fn check_object(s: &Map<String, Value>, o: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str).filter(|n| !o.contains_key(*n)) {
            push(out, &join(path, name), "Required");
        }
    }
    if let Some(min) = uint(s, "minProperties").filter(|&m| (o.len() as u64) < m) {
        push(out, path, format!("Must have at least {}", plural(min, "field")));
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, v) in o {
        let field = join(path, k);
        match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
            (Some(p), _) => check(p, v, &field, out),
            (None, Some(Value::Bool(false))) => push(out, &field, "Unknown field"),
            (None, Some(extra)) => check(extra, v, &field, out),
            (None, None) => {}
        }
    }
}

fn check_array(s: &Map<String, Value>, a: &[Value], path: &str, out: &mut Vec<Violation>) {
    if let Some(min) = uint(s, "minItems").filter(|&m| (a.len() as u64) < m) {
        push(out, path, format!("Must have at least {}", plural(min, "item")));
    }
    if let Some(max) = uint(s, "maxItems").filter(|&m| (a.len() as u64) > m) {
        push(out, path, format!("Must have at most {}", plural(max, "item")));
    }
    if s.get("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, x) in a.iter().enumerate() {
            if let Some(j) = a[..i].iter().position(|y| json_eq(x, y)) {
                push(out, &join(path, &i.to_string()), format!("Duplicate of item {j}"));
            }
        }
    }
    if let Some(items) = s.get("items") {
        for (i, x) in a.iter().enumerate() {
            check(items, x, &join(path, &i.to_string()), out);
        }
    }
}

fn check_string(s: &Map<String, Value>, st: &str, path: &str, out: &mut Vec<Violation>) {
    let len = st.chars().count() as u64;
    if let Some(min) = uint(s, "minLength").filter(|&m| len < m) {
        push(out, path, format!("Must be at least {} long", plural(min, "character")));
    }
    if let Some(max) = uint(s, "maxLength").filter(|&m| len > m) {
        push(out, path, format!("Must be at most {} long", plural(max, "character")));
    }
    let message = match s.get("format").and_then(Value::as_str).unwrap_or("") {
        "date-time" if !is_date_time(st) => "Must be an RFC 3339 date-time (e.g. 2026-01-02T09:00:00Z)",
        "date" if !is_date(st.as_bytes()) => "Must be a date (YYYY-MM-DD)",
        "email" if !is_email(st) => "Must be an email address",
        "uri" if !is_uri(st) => "Must be an absolute URI (e.g. https://example.com)",
        "time-hhmm" if !(st == "24:00" || is_hhmm(st.as_bytes())) => "Must be a time (HH:MM)",
        "base64" if !is_base64(st) => "Must be base64-encoded",
        _ => return,
    };
    push(out, path, message);
}

fn check_number(s: &Map<String, Value>, x: f64, path: &str, out: &mut Vec<Violation>) {
    for (k, words) in [
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("exclusiveMinimum", "greater than"),
        ("exclusiveMaximum", "less than"),
    ] {
        let Some((bound, limit)) = s.get(k).and_then(|b| Some((b, b.as_f64()?))) else { continue };
        let ok = match k {
            "minimum" => x >= limit,
            "maximum" => x <= limit,
            "exclusiveMinimum" => x > limit,
            _ => x < limit,
        };
        if !ok {
            push(out, path, format!("Must be {words} {bound}"));
        }
    }
}

fn uint(s: &Map<String, Value>, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Strings unquoted so enum/const messages read naturally.
fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn type_names(t: &Value) -> Option<Vec<&str>> {
    match t {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => a.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.as_number().is_some_and(is_integer),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// An alternative without `type` fits any value.
fn type_fits(alt: &Value, v: &Value) -> bool {
    alt.get("type").and_then(type_names).is_none_or(|ts| ts.iter().any(|t| has_type(v, t)))
}

/// JSON Schema counts 5.0 as an integer.
fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// "Expected a string", "Expected a string or null", "Expected a string, an array or null".
fn expected(types: &[&str]) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for t in types {
        let label = match *t {
            "object" => "an object",
            "array" => "an array",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "a boolean",
            "null" => "null",
            _ => "a valid value",
        };
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    match labels.split_last() {
        Some((last, [])) => format!("Expected {last}"),
        Some((last, rest)) => format!("Expected {} or {last}", rest.join(", ")),
        None => "Expected a valid value".to_string(),
    }
}

/// Like `==`, but 1 and 1.0 are equal as JSON Schema requires (serde_json keeps them apart).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A fixed-width run of ASCII digits (at most 4 here, so no overflow).
fn digits(b: &[u8]) -> Option<u32> {
    (!b.is_empty() && b.iter().all(u8::is_ascii_digit)).then(|| b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// YYYY-MM-DD that exists in the proleptic Gregorian calendar.
fn is_date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&b[..4]), digits(&b[5..7]), digits(&b[8..])) else { return false };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        2 => 28 + u32::from(leap),
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// HH:MM, 00:00-23:59.
fn is_hhmm(b: &[u8]) -> bool {
    b.len() == 5 && b[2] == b':' && digits(&b[..2]).is_some_and(|h| h < 24) && digits(&b[3..]).is_some_and(|m| m < 60)
}

/// RFC 3339: YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM). Leap seconds (:60) are rejected because downstream
/// calendar APIs do not take them.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20
        || !is_date(&b[..10])
        || !matches!(b[10], b'T' | b't')
        || !is_hhmm(&b[11..16])
        || b[16] != b':'
        || digits(&b[17..19]).is_none_or(|sec| sec >= 60)
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    matches!(rest, b"Z" | b"z") || (rest.len() == 6 && matches!(rest[0], b'+' | b'-') && is_hhmm(&rest[1..]))
}

fn no_blanks(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Pragmatic on purpose: full RFC 5322 accepts addresses no mail provider does.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|p| !p.is_empty())
        && no_blanks(s)
}

/// Absolute URI: scheme ":" something.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    let mut cs = scheme.bytes();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c))
        && !rest.is_empty()
        && no_blanks(s)
}

/// Standard or URL-safe alphabet (not mixed), padding optional but consistent with the length when present.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    let standard = body.bytes().any(|c| c == b'+' || c == b'/');
    let url_safe = body.bytes().any(|c| c == b'-' || c == b'_');
    body.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/-_".contains(&c))
        && !(standard && url_safe)
        && body.len() % 4 != 1
        && (pad == 0 || (pad <= 2 && s.len().is_multiple_of(4)))
}

fn check_schema_at(schema: &Value, at: &str) -> Result<(), String> {
    let here = if at.is_empty() { "(root)" } else { at };
    let s = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(s) => s,
        _ => return Err(format!("{here}: a schema must be an object or a boolean")),
    };
    let props = s.get("properties").and_then(Value::as_object);
    for (k, v) in s {
        let sub = join(at, k);
        let ok = match k.as_str() {
            "type" => type_names(v).is_some_and(|t| !t.is_empty() && t.iter().all(|n| TYPES.contains(n))),
            "properties" => match props {
                Some(p) => {
                    for (name, p) in p {
                        check_schema_at(p, &join(&sub, name))?;
                    }
                    true
                }
                None => false,
            },
            "required" => {
                let names = v.as_array().and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>());
                if let Some(n) = names.iter().flatten().find(|n| !props.is_some_and(|p| p.contains_key(**n))) {
                    return Err(format!("{here}: required field \"{n}\" is not in \"properties\""));
                }
                names.is_some()
            }
            "additionalProperties" | "items" => {
                check_schema_at(v, &sub)?;
                true
            }
            "anyOf" | "oneOf" => match v.as_array() {
                Some(alts) if !alts.is_empty() => {
                    for (i, alt) in alts.iter().enumerate() {
                        check_schema_at(alt, &join(&sub, &i.to_string()))?;
                    }
                    true
                }
                _ => false,
            },
            "minProperties" | "minLength" | "maxLength" | "minItems" | "maxItems" => v.is_u64(),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => v.is_number(),
            "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" => v.is_boolean(),
            "enum" => v.as_array().is_some_and(|a| !a.is_empty()),
            "format" => v.as_str().is_some_and(|f| FORMATS.contains(&f)),
            "description" | "title" | "$comment" | "$schema" => v.is_string(),
            "examples" => v.is_array(),
            "const" | "default" => true,
            _ => return Err(format!("{here}: unsupported keyword \"{k}\"")),
        };
        if !ok {
            return Err(format!("{here}: invalid value for \"{k}\": {v}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, value: Value) -> Vec<(String, String)> {
        validate(&schema, &value).into_iter().map(|v| (v.field, v.message)).collect()
    }

    fn one(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_string(), message.to_string())]
    }

    fn format_ok(format: &str, s: &str) -> bool {
        validate(&json!({"type": "string", "format": format}), &json!(s)).is_empty()
    }

    #[test]
    fn type_messages() {
        let cases = [
            ("string", json!(1), "Expected a string"),
            ("integer", json!("1"), "Expected an integer"),
            ("number", json!(true), "Expected a number"),
            ("boolean", json!(null), "Expected a boolean"),
            ("null", json!(0), "Expected null"),
            ("object", json!([]), "Expected an object"),
            ("array", json!({}), "Expected an array"),
        ];
        for (t, value, message) in cases {
            assert_eq!(errs(json!({"type": t}), value), one("", message), "{t}");
        }
        assert!(errs(json!({"type": "object"}), json!({})).is_empty());
        assert!(errs(json!({}), json!([1, "x"])).is_empty());
    }

    #[test]
    fn type_array() {
        let s = json!({"type": ["string", "null"]});
        assert!(errs(s.clone(), json!(null)).is_empty());
        assert!(errs(s.clone(), json!("x")).is_empty());
        assert_eq!(errs(s, json!(1)), one("", "Expected a string or null"));
        let s = json!({"type": ["string", "integer", "null"]});
        assert_eq!(errs(s, json!(1.5)), one("", "Expected a string, an integer or null"));
    }

    #[test]
    fn integer_vs_number() {
        let int = json!({"type": "integer"});
        for ok in [json!(5), json!(5.0), json!(-3), json!(0), json!(u64::MAX)] {
            assert!(errs(int.clone(), ok.clone()).is_empty(), "{ok}");
        }
        assert_eq!(errs(int.clone(), json!(5.5)), one("", "Expected an integer"));
        assert_eq!(errs(int, json!("5")), one("", "Expected an integer"));
        let num = json!({"type": "number"});
        assert!(errs(num.clone(), json!(5.5)).is_empty());
        assert!(errs(num.clone(), json!(5)).is_empty());
        assert_eq!(errs(num, json!("5.5")), one("", "Expected a number"));
    }

    #[test]
    fn stops_after_type_error() {
        let s = json!({"type": "string", "minLength": 3, "enum": ["abc"], "format": "email"});
        assert_eq!(errs(s, json!(5)), one("", "Expected a string"));
        let s = json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}});
        assert_eq!(errs(s.clone(), json!([1])), one("", "Expected an object"));
        assert_eq!(errs(s, json!({"a": {"b": 1}})), one("a", "Expected a string"));
    }

    #[test]
    fn required_and_nested_paths() {
        let s = json!({
            "type": "object",
            "required": ["to", "meta"],
            "properties": {
                "to": {"type": "string"},
                "meta": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}
                }
            }
        });
        assert_eq!(
            errs(s.clone(), json!({})),
            vec![("to".into(), "Required".into()), ("meta".into(), "Required".into())]
        );
        assert_eq!(
            errs(s.clone(), json!({"meta": {"tags": ["a", 2]}, "to": "x"})),
            vec![("meta.id".into(), "Required".into()), ("meta.tags.1".into(), "Expected a string".into())]
        );
        // null is present, so it is a type error rather than "Required"
        assert_eq!(errs(s, json!({"meta": {"id": 1}, "to": null})), one("to", "Expected a string"));
    }

    #[test]
    fn additional_properties() {
        let props = json!({"a": {"type": "string"}});
        let closed = json!({"type": "object", "properties": props, "additionalProperties": false});
        assert!(errs(closed.clone(), json!({"a": "x"})).is_empty());
        assert_eq!(
            errs(closed, json!({"a": "x", "b": 1, "c": 2})),
            vec![("b".into(), "Unknown field".into()), ("c".into(), "Unknown field".into())]
        );
        let open = json!({"type": "object", "properties": props, "additionalProperties": true});
        assert!(errs(open, json!({"a": "x", "b": 1})).is_empty());
        let absent = json!({"type": "object", "properties": props});
        assert!(errs(absent, json!({"b": 1})).is_empty());
        let typed = json!({"type": "object", "properties": props, "additionalProperties": {"type": "integer"}});
        assert_eq!(errs(typed, json!({"a": "x", "b": 1, "c": "y"})), one("c", "Expected an integer"));
        let nested = json!({"properties": {"o": {"type": "object", "additionalProperties": false}}});
        assert_eq!(errs(nested, json!({"o": {"x": 1}})), one("o.x", "Unknown field"));
    }

    #[test]
    fn min_properties() {
        let s = json!({"type": "object", "minProperties": 1});
        assert_eq!(errs(s.clone(), json!({})), one("", "Must have at least 1 field"));
        assert!(errs(s, json!({"a": 1})).is_empty());
        assert_eq!(errs(json!({"minProperties": 2}), json!({"a": 1})), one("", "Must have at least 2 fields"));
    }

    #[test]
    fn string_lengths_count_chars() {
        let s = json!({"type": "string", "minLength": 1, "maxLength": 3});
        assert_eq!(errs(s.clone(), json!("")), one("", "Must be at least 1 character long"));
        assert_eq!(errs(s.clone(), json!("abcd")), one("", "Must be at most 3 characters long"));
        assert!(errs(s.clone(), json!("héé")).is_empty());
        assert!(errs(s, json!("🦀🦀🦀")).is_empty());
        assert_eq!(errs(json!({"minLength": 2}), json!("a")), one("", "Must be at least 2 characters long"));
        assert_eq!(errs(json!({"maxLength": 1}), json!("ab")), one("", "Must be at most 1 character long"));
        // length keywords only apply to strings
        assert!(errs(json!({"minLength": 2}), json!(1)).is_empty());
    }

    #[test]
    fn enum_and_const() {
        let s = json!({"type": "string", "enum": ["low", "normal", "high"]});
        assert!(errs(s.clone(), json!("high")).is_empty());
        assert_eq!(errs(s, json!("urgent")), one("", "Expected one of: low, normal, high"));
        let mixed = json!({"enum": [1, "a", null, true, [1]]});
        assert!(errs(mixed.clone(), json!(null)).is_empty());
        assert!(errs(mixed.clone(), json!(1.0)).is_empty());
        assert!(errs(mixed.clone(), json!([1.0])).is_empty());
        assert_eq!(errs(mixed, json!(2)), one("", "Expected one of: 1, a, null, true, [1]"));
        assert!(errs(json!({"const": "v1"}), json!("v1")).is_empty());
        assert_eq!(errs(json!({"const": "v1"}), json!("v2")), one("", "Must be v1"));
        assert_eq!(errs(json!({"const": {"a": 1}}), json!({"a": 2})), one("", "Must be {\"a\":1}"));
        assert!(errs(json!({"const": {"a": 1, "b": [2]}}), json!({"b": [2.0], "a": 1})).is_empty());
    }

    #[test]
    fn number_bounds() {
        let s = json!({"type": "number", "minimum": 1, "maximum": 100});
        assert!(errs(s.clone(), json!(1)).is_empty());
        assert!(errs(s.clone(), json!(100.0)).is_empty());
        assert_eq!(errs(s.clone(), json!(0.5)), one("", "Must be at least 1"));
        assert_eq!(errs(s, json!(101)), one("", "Must be at most 100"));
        let s = json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1.5});
        assert!(errs(s.clone(), json!(1)).is_empty());
        assert_eq!(errs(s.clone(), json!(0)), one("", "Must be greater than 0"));
        assert_eq!(errs(s.clone(), json!(1.5)), one("", "Must be less than 1.5"));
        assert_eq!(errs(json!({"type": "integer", "minimum": -5}), json!(-6)), one("", "Must be at least -5"));
        // bounds only apply to numbers
        assert!(errs(s, json!("0")).is_empty());
    }

    #[test]
    fn arrays() {
        let s = json!({"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer"}});
        assert!(errs(s.clone(), json!([1, 2, 3])).is_empty());
        assert_eq!(errs(s.clone(), json!([])), one("", "Must have at least 1 item"));
        assert_eq!(errs(s.clone(), json!([1, 2, 3, 4])), one("", "Must have at most 3 items"));
        assert_eq!(
            errs(s, json!([1, "a", 2.5])),
            vec![("1".into(), "Expected an integer".into()), ("2".into(), "Expected an integer".into())]
        );
        let u = json!({"uniqueItems": true});
        assert!(errs(u.clone(), json!([1, "1", [1], {"a": 1}])).is_empty());
        assert_eq!(
            errs(u.clone(), json!(["a", "b", "a", 1, 1.0])),
            vec![("2".into(), "Duplicate of item 0".into()), ("4".into(), "Duplicate of item 3".into())]
        );
        assert_eq!(errs(u, json!([{"a": 1, "b": 2}, {"b": 2, "a": 1}])), one("1", "Duplicate of item 0"));
        assert!(errs(json!({"uniqueItems": false}), json!([1, 1])).is_empty());
        assert_eq!(errs(json!({"minItems": 2}), json!([1])), one("", "Must have at least 2 items"));
    }

    #[test]
    fn nested_array_of_objects_paths() {
        let s = json!({"properties": {"attachments": {"type": "array", "items": {
            "type": "object",
            "required": ["filename", "content"],
            "properties": {"filename": {"type": "string", "minLength": 1}, "content": {"type": "string", "format": "base64"}}
        }}}});
        let v = json!({"attachments": [
            {"content": "aGk=", "filename": "a.txt"},
            {"content": "aGk", "filename": "b.txt"},
            {"content": "!!", "filename": ""},
        ]});
        assert_eq!(
            errs(s, v),
            vec![
                ("attachments.2.content".into(), "Must be base64-encoded".into()),
                ("attachments.2.filename".into(), "Must be at least 1 character long".into())
            ]
        );
    }

    fn recipients() -> Value {
        json!({"properties": {"to": {"anyOf": [
            {"type": "string", "format": "email"},
            {"type": "array", "minItems": 1, "items": {"type": "string", "format": "email"}}
        ]}}})
    }

    #[test]
    fn any_of_string_or_array() {
        let s = recipients();
        assert!(errs(s.clone(), json!({"to": "a@example.com"})).is_empty());
        assert!(errs(s.clone(), json!({"to": ["a@example.com", "b@example.org"]})).is_empty());
        assert_eq!(errs(s.clone(), json!({"to": "nope"})), one("to", "Must be an email address"));
        assert_eq!(errs(s.clone(), json!({"to": ["a@example.com", "nope"]})), one("to.1", "Must be an email address"));
        assert_eq!(errs(s.clone(), json!({"to": []})), one("to", "Must have at least 1 item"));
        assert_eq!(errs(s.clone(), json!({"to": 5})), one("to", "Expected a string or an array"));
        assert_eq!(errs(s, json!({"to": [5]})), one("to.0", "Expected a string"));
    }

    #[test]
    fn any_of_picks_closest_alternative() {
        let s = json!({"anyOf": [
            {"type": "object", "required": ["a", "b"], "properties": {"a": {}, "b": {}}},
            {"type": "object", "required": ["c"], "properties": {"c": {"type": "integer"}}}
        ]});
        assert_eq!(errs(s.clone(), json!({"c": "x"})), one("c", "Expected an integer"));
        assert_eq!(errs(s, json!({"a": 1})), one("b", "Required"));
        // alternatives without `type` fit any value
        let s = json!({"anyOf": [{"type": "integer"}, {"const": "auto"}]});
        assert!(errs(s.clone(), json!("auto")).is_empty());
        assert_eq!(errs(s, json!("manual")), one("", "Must be auto"));
    }

    #[test]
    fn one_of() {
        let s = json!({"oneOf": [{"type": "integer"}, {"type": "number", "maximum": 10}]});
        assert!(errs(s.clone(), json!(20)).is_empty());
        assert!(errs(s.clone(), json!(2.5)).is_empty());
        assert_eq!(errs(s.clone(), json!(5)), one("", "Matches more than one allowed form"));
        assert_eq!(errs(s.clone(), json!(10.5)), one("", "Must be at most 10"));
        assert_eq!(errs(s, json!("x")), one("", "Expected an integer or a number"));
        let s = json!({"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]});
        assert!(errs(s.clone(), json!("2026-01-02")).is_empty());
        assert_eq!(errs(s, json!("x")), one("", "Must be a date (YYYY-MM-DD)"));
    }

    #[test]
    fn boolean_schemas() {
        assert!(errs(json!(true), json!({"a": 1})).is_empty());
        assert_eq!(errs(json!(false), json!(1)), one("", "Not allowed"));
        assert_eq!(errs(json!({"items": false}), json!([1])), one("0", "Not allowed"));
    }

    #[test]
    fn date_time_format() {
        for ok in [
            "2026-01-02T09:00:00Z",
            "2024-02-29T12:30:45Z",
            "2000-02-29T00:00:00Z",
            "2026-12-31T23:59:59.999Z",
            "2026-01-02T09:00:00.1+02:00",
            "2026-01-02T09:00:00-05:30",
            "2026-01-02t09:00:00z",
            "2026-01-02T09:00:00+23:59",
        ] {
            assert!(format_ok("date-time", ok), "{ok}");
        }
        for bad in [
            "2023-02-29T12:00:00Z",
            "1900-02-29T12:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-00-01T12:00:00Z",
            "2026-01-00T12:00:00Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T23:60:00Z",
            "2026-01-02T23:59:60Z",
            "2026-01-02T09:00:00",
            "2026-01-02 09:00:00Z",
            "2026-01-02T09:00Z",
            "2026-01-02T09:00:00.Z",
            "2026-01-02T09:00:00+0200",
            "2026-01-02T09:00:00+24:00",
            "2026-01-02T09:00:00+02:60",
            "2026-01-02T09:00:00Z ",
            "2026-1-02T09:00:00Z",
            "2026-01-02",
            "",
            "２０２６-01-02T09:00:00Z",
        ] {
            assert!(!format_ok("date-time", bad), "{bad}");
        }
        let e = errs(json!({"format": "date-time"}), json!("tomorrow"));
        assert_eq!(e, one("", "Must be an RFC 3339 date-time (e.g. 2026-01-02T09:00:00Z)"));
    }

    #[test]
    fn date_format() {
        for ok in ["2024-02-29", "2026-01-31", "2026-04-30", "0001-01-01", "2000-02-29"] {
            assert!(format_ok("date", ok), "{ok}");
        }
        for bad in ["2023-02-29", "2100-02-29", "2026-04-31", "2026-1-01", "2026/01/01", "2026-01-01T00:00:00Z", ""] {
            assert!(!format_ok("date", bad), "{bad}");
        }
        assert_eq!(errs(json!({"format": "date"}), json!("x")), one("", "Must be a date (YYYY-MM-DD)"));
    }

    #[test]
    fn email_format() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "x@ex-ample.io", "ü@exämple.de"] {
            assert!(format_ok("email", ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.co", "a@", "a@b", "a@@b.co", "a@b@c.co", "a b@c.co", "a@b .co", "a@.b.co", "a@b.co.",
            "a@b..co",
        ] {
            assert!(!format_ok("email", bad), "{bad}");
        }
        assert_eq!(errs(json!({"format": "email"}), json!("x")), one("", "Must be an email address"));
    }

    #[test]
    fn uri_format() {
        for ok in ["https://example.com/a?b=c#d", "mailto:a@b.co", "urn:isbn:123", "web+app.x-y:z"] {
            assert!(format_ok("uri", ok), "{ok}");
        }
        for bad in
            ["", "example.com", "/relative/path", "https:", "1http://x", "ht tp://x", "https://exa mple.com", ":x"]
        {
            assert!(!format_ok("uri", bad), "{bad}");
        }
    }

    #[test]
    fn time_hhmm_format() {
        for ok in ["00:00", "09:30", "23:59", "24:00"] {
            assert!(format_ok("time-hhmm", ok), "{ok}");
        }
        for bad in ["24:01", "25:00", "12:60", "9:30", "09:3", "0930", "09:30:00", "ab:cd", ""] {
            assert!(!format_ok("time-hhmm", bad), "{bad}");
        }
        assert_eq!(errs(json!({"format": "time-hhmm"}), json!("9am")), one("", "Must be a time (HH:MM)"));
    }

    #[test]
    fn base64_format() {
        for ok in ["", "aGk=", "aGk", "aGVsbG8=", "aGVsbG8", "aA==", "aA", "YWJj", "+/+/", "-_-_", "-_8="] {
            assert!(format_ok("base64", ok), "{ok}");
        }
        for bad in ["a", "aGk==", "aA=", "a===", "=", "====", "aG k=", "aGk=\n", "+/-_", "aG=k", "aGVsbG8*"] {
            assert!(!format_ok("base64", bad), "{bad}");
        }
    }

    #[test]
    fn unknown_format_and_annotations_ignored() {
        assert!(format_ok("uuid", "not-a-uuid"));
        let s = json!({"type": "string", "description": "d", "title": "t", "default": "x", "examples": ["y"]});
        assert!(errs(s, json!("z")).is_empty());
        // format only applies to strings
        assert!(errs(json!({"format": "email"}), json!(1)).is_empty());
    }

    fn send_email() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "send_email",
            "type": "object",
            "required": ["to", "subject"],
            "additionalProperties": false,
            "properties": {
                "to": {"anyOf": [
                    {"type": "string", "format": "email"},
                    {"type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": true,
                     "items": {"type": "string", "format": "email"}}
                ], "description": "One address or a list"},
                "subject": {"type": "string", "minLength": 1, "maxLength": 200},
                "send_at": {"type": "string", "format": "date-time"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
                "retries": {"type": "integer", "minimum": 0, "maximum": 5},
                "reply_to": {"type": ["string", "null"], "format": "email"},
                "attachments": {"type": "array", "items": {
                    "type": "object",
                    "required": ["filename", "content"],
                    "additionalProperties": false,
                    "properties": {
                        "filename": {"type": "string", "minLength": 1},
                        "content": {"type": "string", "format": "base64"},
                        "url": {"type": "string", "format": "uri"}
                    }
                }},
                "quiet_hours": {"type": "object", "minProperties": 1, "properties": {
                    "start": {"type": "string", "format": "time-hhmm"},
                    "end": {"type": "string", "format": "time-hhmm"}
                }},
                "version": {"const": 1, "readOnly": true, "$comment": "bumped on breaking changes"}
            }
        })
    }

    #[test]
    fn collects_every_violation_in_one_pass() {
        let v = json!({
            "attachments": [{"content": "aGk=", "filename": "a.txt"}, {"content": 1, "extra": true}],
            "bcc": ["x@y.z"],
            "priority": "urgent",
            "quiet_hours": {},
            "reply_to": null,
            "retries": 6,
            "send_at": "2026-02-30T09:00:00Z",
            "to": ["a@example.com", "a@example.com", "bad"]
        });
        let expected: Vec<(String, String)> = [
            ("subject", "Required"),
            ("attachments.1.filename", "Required"),
            ("attachments.1.content", "Expected a string"),
            ("attachments.1.extra", "Unknown field"),
            ("bcc", "Unknown field"),
            ("priority", "Expected one of: low, normal, high"),
            ("quiet_hours", "Must have at least 1 field"),
            ("retries", "Must be at most 5"),
            ("send_at", "Must be an RFC 3339 date-time (e.g. 2026-01-02T09:00:00Z)"),
            ("to.1", "Duplicate of item 0"),
            ("to.2", "Must be an email address"),
        ]
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
        assert_eq!(errs(send_email(), v), expected);
        let valid = json!({"subject": "Hi", "to": "a@example.com", "version": 1.0, "reply_to": "r@example.com"});
        assert!(errs(send_email(), valid).is_empty());
    }

    #[test]
    fn check_schema_accepts_realistic_schemas() {
        assert_eq!(check_schema(&send_email()), Ok(()));
        assert_eq!(check_schema(&recipients()), Ok(()));
        assert_eq!(check_schema(&json!(true)), Ok(()));
        assert_eq!(
            check_schema(&json!({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}})),
            Ok(())
        );
    }

    #[test]
    fn check_schema_rejects_bad_schemas() {
        let bad = [
            (json!({"type": "string", "pattern": "^a"}), "(root): unsupported keyword \"pattern\""),
            (json!({"type": "strng"}), "(root): invalid value for \"type\": \"strng\""),
            (json!({"type": []}), "(root): invalid value for \"type\": []"),
            (json!({"type": ["string", 1]}), "(root): invalid value for \"type\": [\"string\",1]"),
            (json!({"minLength": "3"}), "(root): invalid value for \"minLength\": \"3\""),
            (json!({"maxItems": -1}), "(root): invalid value for \"maxItems\": -1"),
            (json!({"minimum": "0"}), "(root): invalid value for \"minimum\": \"0\""),
            (json!({"uniqueItems": 1}), "(root): invalid value for \"uniqueItems\": 1"),
            (json!({"enum": []}), "(root): invalid value for \"enum\": []"),
            (json!({"anyOf": []}), "(root): invalid value for \"anyOf\": []"),
            (json!({"oneOf": {}}), "(root): invalid value for \"oneOf\": {}"),
            (json!({"properties": []}), "(root): invalid value for \"properties\": []"),
            (json!({"required": "a", "properties": {"a": {}}}), "(root): invalid value for \"required\": \"a\""),
            (json!({"required": ["a"]}), "(root): required field \"a\" is not in \"properties\""),
            (
                json!({"required": ["b"], "properties": {"a": {}}}),
                "(root): required field \"b\" is not in \"properties\"",
            ),
            (json!({"format": "uuid"}), "(root): invalid value for \"format\": \"uuid\""),
            (json!({"description": 1}), "(root): invalid value for \"description\": 1"),
            (json!({"items": 3}), "items: a schema must be an object or a boolean"),
            (json!({"additionalProperties": "no"}), "additionalProperties: a schema must be an object or a boolean"),
            (json!([]), "(root): a schema must be an object or a boolean"),
            (
                json!({"properties": {"to": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"minimum": "x"}}]}}}),
                "properties.to.anyOf.1.items: invalid value for \"minimum\": \"x\"",
            ),
            (
                json!({"properties": {"a": {"properties": {"b": {"$ref": "#"}}}}}),
                "properties.a.properties.b: unsupported keyword \"$ref\"",
            ),
        ];
        for (schema, message) in bad {
            assert_eq!(check_schema(&schema), Err(message.to_string()), "{schema}");
        }
    }
}
