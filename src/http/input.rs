//! Request input: JSON bodies and query strings parsed into validated values at the edge.
//!
//! A handler asks for each field with its rules; every problem is collected, and
//! [`Input::finish`] turns them into one `VALIDATION_ERROR` with `details`. Required getters
//! return a placeholder when invalid — it is never used, because `finish` fails first.

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult, FieldError};
use crate::time::{parse_iso, Millis};

/// A JSON object body being validated.
pub struct Input {
    obj: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Input {
    /// Parses a body. An empty body is `{}`; malformed JSON is `INVALID_JSON`;
    /// anything but an object is a validation error.
    pub fn parse(body: &[u8]) -> ApiResult<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::from_map(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(obj)) => Ok(Self::from_map(obj)),
            Ok(_) => Err(ApiError::invalid_field("", "Expected a JSON object")),
            Err(_) => Err(ApiError::invalid_json()),
        }
    }

    pub fn from_map(obj: Map<String, Value>) -> Self {
        Input { obj, errors: Vec::new() }
    }

    /// Records a problem with a field (also usable for cross-field rules).
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.to_string(), message: message.into() });
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    /// Fails with every collected problem, if any.
    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }

    /// An optional string, trimmed, `min..=max` characters after trimming.
    pub fn opt_str(&mut self, field: &str, min: usize, max: usize) -> Option<String> {
        match self.present(field) {
            None => None,
            Some(Value::String(s)) => {
                let s = s.trim();
                let n = s.chars().count();
                if n < min || n > max {
                    self.error(field, format!("Must be between {min} and {max} characters"));
                    None
                } else {
                    Some(s.to_string())
                }
            }
            Some(_) => {
                self.error(field, "Expected a string");
                None
            }
        }
    }

    /// An optional string kept exactly as sent (no trimming), at most `max` characters.
    pub fn opt_text(&mut self, field: &str, max: usize) -> Option<String> {
        match self.present(field) {
            None => None,
            Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
            Some(Value::String(_)) => {
                self.error(field, format!("At most {max} characters"));
                None
            }
            Some(_) => {
                self.error(field, "Expected a string");
                None
            }
        }
    }

    /// A required string (see [`Input::opt_str`]).
    pub fn str(&mut self, field: &str, min: usize, max: usize) -> String {
        if self.present(field).is_none() {
            self.error(field, "Required");
            return String::new();
        }
        self.opt_str(field, min, max).unwrap_or_default()
    }

    /// An optional RFC 3339 timestamp that must lie in the future of `now`.
    pub fn opt_future_time(&mut self, field: &str, now: Millis) -> Option<Millis> {
        let raw = self.opt_str(field, 1, 64)?;
        match parse_iso(&raw) {
            Some(t) if t > now => Some(t),
            Some(_) => {
                self.error(field, "Must be in the future");
                None
            }
            None => {
                self.error(field, "Expected an ISO 8601 timestamp, e.g. 2030-01-01T00:00:00Z");
                None
            }
        }
    }

    /// An optional integer in `min..=max`.
    pub fn opt_int(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        match self.present(field) {
            None => None,
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    self.error(field, format!("Expected an integer between {min} and {max}"));
                    None
                }
            },
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, field: &str) -> Option<bool> {
        match self.present(field) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(field, "Expected a boolean");
                None
            }
        }
    }

    /// An optional value from a fixed set, parsed by `parse`.
    pub fn opt_enum<T>(&mut self, field: &str, allowed: &[&str], parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        match self.present(field) {
            None => None,
            Some(Value::String(s)) if parse(s).is_some() => parse(s),
            Some(_) => {
                self.error(field, format!("Expected one of: {}", allowed.join(", ")));
                None
            }
        }
    }

    /// Takes an optional array out of the input (its items are moved, not copied: prompts
    /// carry megabytes of attachments).
    pub fn take_array(&mut self, field: &str) -> Option<Vec<Value>> {
        match self.obj.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                self.error(field, "Expected an array");
                None
            }
        }
    }

    /// An optional array of arbitrary values (for nested shapes parsed by the caller).
    pub fn opt_array(&mut self, field: &str) -> Option<Vec<Value>> {
        match self.present(field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(_) => {
                self.error(field, "Expected an array");
                None
            }
        }
    }

    /// An optional nested object (parsed further by the caller).
    pub fn opt_object(&mut self, field: &str) -> Option<Map<String, Value>> {
        match self.present(field) {
            None => None,
            Some(Value::Object(o)) => Some(o.clone()),
            Some(_) => {
                self.error(field, "Expected an object");
                None
            }
        }
    }

    /// Whether the body has this field (with a non-null value).
    /// Whether the field is present with an explicit `null`.
    pub fn is_null(&self, field: &str) -> bool {
        self.obj.get(field).is_some_and(Value::is_null)
    }

    pub fn has(&self, field: &str) -> bool {
        self.present(field).is_some()
    }

    /// An optional array of strings (each 1..=max_len characters, at most max_items).
    pub fn opt_str_list(&mut self, field: &str, max_items: usize, max_len: usize) -> Option<Vec<String>> {
        match self.present(field) {
            None => None,
            Some(Value::Array(items)) if items.len() <= max_items => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if !s.is_empty() && s.chars().count() <= max_len => out.push(s.to_string()),
                        _ => {
                            self.errors.push(FieldError {
                                field: format!("{field}[{i}]"),
                                message: format!("Expected a string of 1 to {max_len} characters"),
                            });
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(Value::Array(_)) => {
                self.error(field, format!("At most {max_items} items"));
                None
            }
            Some(_) => {
                self.error(field, "Expected an array of strings");
                None
            }
        }
    }

    /// A required object whose values are all strings (1..=max_entries entries).
    pub fn str_map(&mut self, field: &str, max_entries: usize, max_value_len: usize) -> Vec<(String, String)> {
        self.map_of(field, max_entries, max_value_len, false)
    }

    /// As `str_map`, with integers taken as their decimal text (`expires_at: 1767225600`).
    pub fn str_or_int_map(&mut self, field: &str, max_entries: usize, max_value_len: usize) -> Vec<(String, String)> {
        self.map_of(field, max_entries, max_value_len, true)
    }

    fn map_of(&mut self, field: &str, max_entries: usize, max_value_len: usize, ints: bool) -> Vec<(String, String)> {
        match self.present(field) {
            None => {
                self.error(field, "Required");
                Vec::new()
            }
            Some(Value::Object(map)) if !map.is_empty() && map.len() <= max_entries => {
                let mut out = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let text =
                        v.as_str().map(str::to_string).or_else(|| v.as_i64().filter(|_| ints).map(|n| n.to_string()));
                    match text {
                        Some(s) if s.len() <= max_value_len => out.push((k.clone(), s)),
                        _ => {
                            self.errors.push(FieldError {
                                field: format!("{field}.{k}"),
                                message: format!("Expected a string of at most {max_value_len} bytes"),
                            });
                            return Vec::new();
                        }
                    }
                }
                out
            }
            Some(Value::Object(_)) => {
                self.error(field, format!("Expected 1 to {max_entries} entries"));
                Vec::new()
            }
            Some(_) => {
                self.error(field, "Expected an object of strings");
                Vec::new()
            }
        }
    }
}

/// A UUID in its canonical text form (ids we generate), before it reaches a path or a key.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// Query-string parameters.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default();
        Query(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// `limit` in 1..=100 (default `default`).
    pub fn limit(&self, default: u32) -> ApiResult<u32> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_field("limit", "Must be an integer between 1 and 100")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_is_empty_object_and_bad_json_is_invalid_json() {
        assert!(Input::parse(b"").unwrap().finish().is_ok());
        assert!(Input::parse(b"  \n").unwrap().finish().is_ok());
        assert_eq!(Input::parse(b"{\"a\":").err().unwrap().code, "INVALID_JSON");
        assert_eq!(Input::parse(b"[1]").err().unwrap().code, "VALIDATION_ERROR");
    }

    #[test]
    fn collects_every_field_error() {
        let mut input = Input::parse(br#"{"name":"  ","expiresAt":"2000-01-01T00:00:00Z","scopes":[1]}"#).unwrap();
        let _ = input.str("name", 1, 100);
        let _ = input.opt_future_time("expiresAt", 1_000_000_000_000);
        let _ = input.opt_str_list("scopes", 10, 10);
        let _ = input.str("missing", 1, 5);
        let err = input.finish().unwrap_err();
        let fields = err.fields();
        assert_eq!(fields, ["name", "expiresAt", "scopes[0]", "missing"]);
    }

    #[test]
    fn valid_values_pass() {
        let mut input = Input::parse(br#"{"name":" ci ","credentials":{"api_key":"x"},"expiresAt":null}"#).unwrap();
        assert_eq!(input.str("name", 1, 100), "ci");
        assert_eq!(input.str_map("credentials", 5, 10), vec![("api_key".to_string(), "x".to_string())]);
        assert_eq!(input.opt_future_time("expiresAt", 0), None);
        assert!(input.finish().is_ok());
    }

    #[test]
    fn query_limit() {
        assert_eq!(Query::parse(Some("limit=5&x=1")).limit(20).unwrap(), 5);
        assert_eq!(Query::parse(None).limit(20).unwrap(), 20);
        assert!(Query::parse(Some("limit=0")).limit(20).is_err());
        assert!(Query::parse(Some("limit=abc")).limit(20).is_err());
    }
}
