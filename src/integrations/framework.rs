//! The integration contract (anchor §10.1): what a service implements to be connected,
//! synced page by page from a checkpoint, fetched from, pushed to, and fed webhooks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Credentials as stored in the `API_KEYS` DO.
pub type Credentials = BTreeMap<String, String>;

/// One entity to persist.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub external_id: String,
    pub data: Value,
    /// The service's last-modified time (ISO); drives incremental cursors.
    pub modified_at: String,
}

/// The answer to one page request.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next request starts; `None` when the entity type is done.
    pub next: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyncError {
    /// Retry after this many seconds (the run is deferred, not failed).
    RateLimited(u64),
    /// The credentials no longer work: the integration needs the user.
    Auth(String),
    /// Anything else, with a readable reason.
    Failed(String),
}

impl SyncError {
    pub fn message(&self) -> String {
        match self {
            SyncError::RateLimited(s) => format!("rate limited; retry in {s} s"),
            SyncError::Auth(m) | SyncError::Failed(m) => m.clone(),
        }
    }
}

/// The position of a run inside one entity type (saved between invocations).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// The service's own cursor for the next page (e.g. `{"repo": 2, "page": 3}`).
    pub cursor: Option<Value>,
    /// Incremental lower bound (from the checkpoint); `None` on a full run.
    pub since: Option<String>,
    /// Highest `modified_at` seen in this run, saved as the next checkpoint.
    pub max_modified: Option<String>,
    /// Repositories (or other parents) this entity type iterates over, fixed at its start.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// A run's resumable state (stored in `sync_logs.state`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub entities: Vec<String>,
    pub index: usize,
    pub position: Option<Position>,
}

/// The sync plan: the requested entity types in the service's order, or all of them when
/// the list is empty or missing (contract §5, fix 12). Unknown names are an error.
pub fn plan(requested: &[String], supported: &[&str]) -> Result<Vec<String>, String> {
    if let Some(bad) = requested.iter().find(|r| !supported.contains(&r.as_str())) {
        return Err(format!("Unsupported entity type '{bad}'; supported: {}", supported.join(", ")));
    }
    Ok(supported
        .iter()
        .filter(|s| requested.is_empty() || requested.iter().any(|r| r == *s))
        .map(|s| s.to_string())
        .collect())
}

/// The later of two ISO timestamps.
pub fn later(a: Option<String>, b: &str) -> Option<String> {
    match a {
        Some(a) if a.as_str() >= b => Some(a),
        _ => Some(b.to_string()),
    }
}

/// Sync frequencies a configuration may ask for.
pub const FREQUENCIES: [&str; 4] = ["realtime", "hourly", "daily", "manual"];

/// Every service name of the platform's type union; only registered ones can be configured.
pub const KNOWN_SERVICES: [&str; 9] =
    ["github", "gmail", "google_calendar", "google_drive", "notion", "hubspot", "ashby", "discord", "xero"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let all = ["repositories", "issues", "pull_requests", "commits"];
        assert_eq!(plan(&[], &all).unwrap(), all);
        assert_eq!(plan(&["commits".into(), "repositories".into()], &all).unwrap(), ["repositories", "commits"]);
        assert!(plan(&["wiki".into()], &all).is_err());
    }

    #[test]
    fn later_times() {
        assert_eq!(later(None, "2026-01-01T00:00:00Z").as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            later(Some("2026-02-01T00:00:00Z".into()), "2026-01-01T00:00:00Z").as_deref(),
            Some("2026-02-01T00:00:00Z")
        );
    }
}
