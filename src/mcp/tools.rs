//! The caller's MCP tools: every action of each integration they may use, named
//! `<service>_<action>` (with a short integration id appended when two integrations of one
//! service are visible), plus `integrations_list` and `entities_search`. Plain data, built from
//! the integration rows; `mod.rs` runs them.

use serde_json::{json, Value};

use crate::integrations::service;
use crate::integrations::store::IntegrationRow;

/// What a tool runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    IntegrationsList,
    EntitiesSearch,
    Action { integration: String, action: &'static str },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub title: String,
    pub description: &'static str,
    /// The arguments' JSON Schema, as JSON text (an action's own `params`).
    pub schema: &'static str,
    pub read_only: bool,
    /// The MCP annotations' `destructiveHint` and `idempotentHint` (see [`WRITE_EFFECTS`]).
    pub destructive: bool,
    pub idempotent: bool,
    pub target: Target,
}

impl Tool {
    /// The `Tool` object of `tools/list`.
    pub fn to_json(&self) -> Value {
        let schema: Value = serde_json::from_str(self.schema).unwrap_or_else(|_| json!({ "type": "object" }));
        let mut t = json!({
            "name": self.name, "title": self.title, "description": self.description, "inputSchema": schema,
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                // Actions reach the provider's API; the built-ins read this service's own data.
                "openWorldHint": matches!(self.target, Target::Action { .. }),
            },
        });
        if let Target::Action { integration, action } = &self.target {
            t["_meta"] = json!({ "integrationId": integration, "action": action });
        }
        t
    }
}

/// What each write action does to the account, for clients that ask before running a tool:
/// `(service, action, destructive, idempotent)`. Destructive: it deletes or overwrites what
/// was there (not merely adds, or flips a reversible flag); idempotent: running it twice with
/// the same arguments leaves the account as running it once. Read-only actions are neither
/// destructive nor anything but idempotent. Every write action is named here (a test checks),
/// so a new one must be classified before it ships.
pub const WRITE_EFFECTS: &[(&str, &str, bool, bool)] = &[
    ("github", "create_issue", false, false),
    ("github", "comment", false, false),
    ("gmail", "send_email", false, false),
    ("gmail", "reply", false, false),
    ("gmail", "create_draft", false, false),
    ("gmail", "update_draft", true, true),
    // Sending consumes the draft.
    ("gmail", "send_draft", true, false),
    ("gmail", "delete_draft", true, true),
    // Can remove labels, as well as add them.
    ("gmail", "modify_labels", true, true),
    ("gmail", "mark_read", false, true),
    ("gmail", "mark_unread", false, true),
    ("gmail", "archive", false, true),
    ("gmail", "star", false, true),
    ("gmail", "unstar", false, true),
    // Trash is emptied by Gmail after 30 days.
    ("gmail", "trash", true, true),
    ("gmail", "untrash", false, true),
    ("gmail", "create_label", false, false),
    ("gmail", "delete_label", true, true),
    ("google_calendar", "create_event", false, false),
    ("google_calendar", "update_event", true, true),
    ("google_calendar", "delete_event", true, true),
    ("google_calendar", "quick_add", false, false),
    ("google_calendar", "respond", false, true),
];

/// `(destructive, idempotent)` of an action; an unclassified write action is taken as the
/// worst case (destructive, not idempotent).
fn effects(service: &str, action: &service::Action) -> (bool, bool) {
    if !action.write {
        return (false, true);
    }
    WRITE_EFFECTS
        .iter()
        .find(|(s, a, _, _)| *s == service && *a == action.name)
        .map_or((true, false), |&(_, _, d, i)| (d, i))
}

pub const INTEGRATIONS_LIST_SCHEMA: &str = r#"{"type": "object", "properties": {}, "additionalProperties": false}"#;

pub const ENTITIES_SEARCH_SCHEMA: &str = concat!(
    r#"{"type": "object", "properties": {"#,
    r#""q": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Words to find in titles and text; \"quoted phrase\", a trailing * for a prefix, OR between alternatives"}, "#,
    r#""integrationId": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Only this integration (default: every integration integrations_list shows)"}, "#,
    r#""type": {"type": "string", "minLength": 1, "maxLength": 40, "description": "Only this entity type: issues, pull_requests, commits, repositories, messages, threads, labels, calendars, events"}, "#,
    r#""limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Results per page (default 20)"}, "#,
    r#""cursor": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The cursor of the previous page"}"#,
    r#"}, "required": ["q"], "additionalProperties": false}"#
);

fn builtins() -> [Tool; 2] {
    [
        Tool {
            name: "integrations_list".into(),
            title: "List integrations".into(),
            description: "Your connected integrations (and those your organization shares): id, service, status, \
                          scope, last sync, and the names of the tools each one offers here.",
            schema: INTEGRATIONS_LIST_SCHEMA,
            read_only: true,
            destructive: false,
            idempotent: true,
            target: Target::IntegrationsList,
        },
        Tool {
            name: "entities_search".into(),
            title: "Search synced data".into(),
            description: "Full-text search of the data your integrations synced (GitHub issues, pull requests, \
                          commits and repositories; Gmail messages; Calendar events), best match first: type, \
                          externalId, title, a snippet with the match in **, modifiedAt.",
            schema: ENTITIES_SEARCH_SCHEMA,
            read_only: true,
            destructive: false,
            idempotent: true,
            target: Target::EntitiesSearch,
        },
    ]
}

/// The id without dashes, lower case: what suffixes are cut from.
fn compact(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// The caller's tools over `rows` (the integrations visible to them, own first). Only active
/// integrations count unless `inactive` (used to resolve a call to an integration that left
/// `active` after the client listed its tools, so the call can say why it fails). Write
/// actions of someone else's org-scope integration are not offered.
pub fn build(rows: &[IntegrationRow], caller: &str, inactive: bool) -> Vec<Tool> {
    let usable: Vec<(&IntegrationRow, &'static dyn service::Service)> = rows
        .iter()
        .filter(|r| inactive || r.status == "active")
        .filter_map(|r| crate::integrations::registry::find(&r.service).map(|s| (r, s)))
        .collect();
    let mut tools: Vec<Tool> = builtins().into();
    for (row, svc) in &usable {
        let same: Vec<String> =
            usable.iter().filter(|(r, _)| r.service == row.service).map(|(r, _)| compact(&r.id)).collect();
        let suffix = (same.len() > 1).then(|| {
            let own = compact(&row.id);
            // The shortest prefix that tells this integration apart from its namesakes.
            let len = [8, 12, 16, own.len()]
                .into_iter()
                .find(|&n| same.iter().filter(|o| o.get(..n.min(o.len())) == own.get(..n.min(own.len()))).count() == 1)
                .unwrap_or(own.len());
            own[..len.min(own.len())].to_string()
        });
        let shared = row.user_id != caller;
        for action in svc.actions().iter().filter(|a| !(a.write && shared)) {
            let name = match &suffix {
                Some(s) => format!("{}_{}_{s}", svc.name(), action.name),
                None => format!("{}_{}", svc.name(), action.name),
            };
            let whose = if shared { ", shared by your organization" } else { "" };
            let title = match &suffix {
                Some(s) => format!("{} {} ({s}{whose})", svc.name(), action.name),
                None => format!(
                    "{} {}{}",
                    svc.name(),
                    action.name,
                    if shared { " (shared by your organization)" } else { "" }
                ),
            };
            let (destructive, idempotent) = effects(svc.name(), action);
            tools.push(Tool {
                name,
                title,
                description: action.description,
                schema: action.params,
                read_only: !action.write,
                destructive,
                idempotent,
                target: Target::Action { integration: row.id.clone(), action: action.name },
            });
        }
    }
    tools
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(id: &str, user: &str, service: &str, status: &str, scope: &str) -> IntegrationRow {
        IntegrationRow {
            id: id.into(),
            user_id: user.into(),
            service: service.into(),
            config: "{}".into(),
            status: status.into(),
            error_message: None,
            last_synced_at: None,
            scope: scope.into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            credentials_legacy: 0,
            last_full_sync_at: None,
            data_home: "object".into(),
            granted_scopes: None,
        }
    }

    fn names(tools: &[Tool]) -> Vec<&str> {
        tools.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn every_write_action_is_classified_and_every_entry_is_a_write_action() {
        for svc in crate::integrations::registry::REGISTRY {
            for a in svc.actions() {
                let listed = WRITE_EFFECTS.iter().any(|(s, n, _, _)| *s == svc.name() && *n == a.name);
                assert_eq!(
                    listed,
                    a.write,
                    "{} {}: write = {}, in WRITE_EFFECTS = {listed}",
                    svc.name(),
                    a.name,
                    a.write
                );
            }
        }
        for (s, n, _, _) in WRITE_EFFECTS {
            assert!(
                crate::integrations::registry::find(s).is_some_and(|svc| svc.actions().iter().any(|a| a.name == *n))
            );
        }
        // Deleting actions are destructive; nothing that only reads is.
        for (_, n, d, _) in WRITE_EFFECTS {
            if n.starts_with("delete") || *n == "trash" {
                assert!(*d, "{n}");
            }
        }
    }

    #[test]
    fn one_integration_per_service_gives_plain_names() {
        let rows = [
            row("aaaaaaaa-1111-4000-8000-000000000001", "me", "github", "active", "user"),
            row("bbbbbbbb-2222-4000-8000-000000000002", "me", "gmail", "active", "user"),
        ];
        let tools = build(&rows, "me", false);
        let n = names(&tools);
        assert_eq!(&n[..2], ["integrations_list", "entities_search"]);
        assert_eq!(
            &n[2..7],
            [
                "github_get_repository",
                "github_get_issue",
                "github_get_pull_request",
                "github_create_issue",
                "github_comment"
            ]
        );
        assert!(n.contains(&"gmail_send_email") && n.contains(&"gmail_search_messages"));
        let gh = crate::integrations::registry::find("github").unwrap();
        assert_eq!(
            tools.len(),
            2 + gh.actions().len() + crate::integrations::registry::find("gmail").unwrap().actions().len()
        );
        let issue = tools.iter().find(|t| t.name == "github_get_issue").unwrap();
        assert_eq!(issue.description, gh.actions()[1].description);
        assert_eq!(issue.schema, gh.actions()[1].params);
        assert!(issue.read_only);
        assert_eq!(issue.target, Target::Action { integration: rows[0].id.clone(), action: "get_issue" });
        let json = tools.iter().find(|t| t.name == "github_create_issue").unwrap().to_json();
        assert_eq!(json["inputSchema"]["required"], json!(["repository", "title"]));
        assert_eq!(json["annotations"]["readOnlyHint"], false);
        assert_eq!(json["annotations"]["destructiveHint"], false);
        assert_eq!(json["annotations"]["idempotentHint"], false);
        assert_eq!(json["annotations"]["openWorldHint"], true);
        assert_eq!(json["_meta"]["integrationId"], rows[0].id);
    }

    #[test]
    fn two_of_a_service_are_told_apart_by_a_short_id() {
        let rows = [
            row("aaaaaaaa-1111-4000-8000-000000000001", "me", "github", "active", "user"),
            row("aaaaaaaa-2222-4000-8000-000000000002", "boss", "github", "active", "org"),
            row("cccccccc-3333-4000-8000-000000000003", "me", "gmail", "active", "user"),
        ];
        let tools = build(&rows, "me", false);
        let n = names(&tools);
        // The first 8 characters are the same: 12 tell them apart.
        assert!(n.contains(&"github_create_issue_aaaaaaaa1111"));
        assert!(n.contains(&"github_get_issue_aaaaaaaa2222"));
        assert!(!n.contains(&"github_create_issue_aaaaaaaa2222"), "no writes through someone else's integration");
        assert!(n.contains(&"gmail_send_email"), "a single gmail keeps plain names");
        assert!(n.iter().all(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
        let mut unique = n.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), n.len());
        let shared = tools.iter().find(|t| t.name == "github_get_issue_aaaaaaaa2222").unwrap();
        assert!(shared.title.contains("shared by your organization"), "{}", shared.title);
    }

    #[test]
    fn only_active_integrations_unless_resolving_a_call() {
        let rows = [
            row("aaaaaaaa-1111-4000-8000-000000000001", "me", "github", "error", "user"),
            row("dddddddd-1111-4000-8000-000000000001", "me", "gmail", "active", "user"),
            row("eeeeeeee-1111-4000-8000-000000000001", "me", "notion", "active", "user"),
        ];
        assert!(!names(&build(&rows, "me", false)).iter().any(|n| n.starts_with("github_")));
        assert!(names(&build(&rows, "me", true)).contains(&"github_get_issue"));
        assert!(
            !names(&build(&rows, "me", true)).iter().any(|n| n.starts_with("notion")),
            "unregistered services offer nothing"
        );
        assert_eq!(names(&build(&[], "me", false)), ["integrations_list", "entities_search"]);
    }

    #[test]
    fn builtin_schemas_are_supported_objects() {
        for t in builtins() {
            let schema: Value = serde_json::from_str(t.schema).unwrap();
            crate::integrations::schema::check_schema(&schema).unwrap();
            assert_eq!(schema["type"], "object");
        }
    }
}
