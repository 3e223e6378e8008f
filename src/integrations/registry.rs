//! The registry: every service this deployment offers, and the only file that names them.
//! Adding a service is a folder under `services/`, one line here, its fake and its tests
//! (README, "Adding a service").

use super::service::Service;
use super::services::calendar::CalendarService;
use super::services::github::GitHubService;
use super::services::gmail::GmailService;

/// Every registered service. Adding a service = its module + one line here.
pub static REGISTRY: &[&dyn Service] = &[&GitHubService, &GmailService, &CalendarService];

pub fn find(name: &str) -> Option<&'static dyn Service> {
    REGISTRY.iter().copied().find(|s| s.name() == name)
}

/// Every service name of the platform's type union; only registered ones can be configured.
pub const KNOWN_SERVICES: [&str; 9] =
    ["github", "gmail", "google_calendar", "google_drive", "notion", "hubspot", "ashby", "discord", "xero"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::service::missing_scopes;
    use serde_json::Value;

    #[test]
    fn each_service_checks_its_own_filters() {
        let check = |service: &str, name: &str, v: Value| -> Option<Result<(), String>> {
            find(service).unwrap().filters().iter().find(|f| f.name == name).map(|f| (f.check)(&v))
        };
        use serde_json::json;
        assert_eq!(check("github", "repositories", json!(["octo/app", "Octo/lib.js"])), Some(Ok(())));
        assert!(check("github", "repositories", json!(["no-slash"])).unwrap().is_err());
        assert!(check("github", "repositories", json!("octo/app")).unwrap().is_err());
        assert!(check("github", "repositories", json!([])).unwrap().is_err());
        assert!(check("github", "labels", json!(["INBOX"])).is_none(), "another service's filter");
        assert_eq!(check("gmail", "labels", json!(["INBOX", "Label_3"])), Some(Ok(())));
        assert_eq!(check("gmail", "after", json!("2026-01-31")), Some(Ok(())));
        assert_eq!(check("gmail", "after", json!("2026/01/31")), Some(Ok(())));
        for bad in [json!("2026-02-30"), json!("yesterday"), json!("2026-1-5"), json!(20260101)] {
            assert!(check("gmail", "after", bad.clone()).unwrap().is_err(), "{bad}");
        }
        assert_eq!(
            check("google_calendar", "calendars", json!(["primary", "team@group.calendar.google.com"])),
            Some(Ok(()))
        );
        assert!(check("google_calendar", "calendars", json!([""])).unwrap().is_err());
    }

    #[test]
    fn a_consent_without_a_scope_misses_it_for_the_actions_that_need_it() {
        let gmail = find("gmail").unwrap();
        let auth = |s: &str| format!("https://www.googleapis.com/auth/{s}");
        let granted: Vec<String> = ["gmail.readonly", "gmail.labels"].iter().map(|s| auth(s)).collect();
        let missing = |action: &str| -> Vec<&str> {
            missing_scopes(gmail.required_scopes(action), &granted).iter().map(|g| g[0]).collect()
        };
        assert_eq!(missing("send_email"), [auth("gmail.send")]);
        assert_eq!(missing("reply"), [auth("gmail.send")]);
        assert_eq!(missing("create_draft"), [auth("gmail.compose")]);
        assert_eq!(missing("mark_read"), [auth("gmail.modify")]);
        assert!(missing("get_message").is_empty() && missing("create_label").is_empty());
        // A broader scope meets a narrower requirement.
        let full = vec!["https://mail.google.com/".to_string()];
        assert!(missing_scopes(gmail.required_scopes("send_email"), &full).is_empty());
        let calendar = find("google_calendar").unwrap();
        let read_only = vec![auth("calendar.readonly")];
        let missing: Vec<&str> =
            missing_scopes(calendar.required_scopes("create_event"), &read_only).iter().map(|g| g[0]).collect();
        assert_eq!(missing, [auth("calendar.events")]);
        assert!(missing_scopes(calendar.required_scopes("list_events"), &read_only).is_empty());
        assert!(find("github").unwrap().required_scopes("create_issue").is_empty());
    }

    #[test]
    fn every_action_schema_is_supported_and_names_are_unique() {
        for s in REGISTRY {
            let mut names = std::collections::BTreeSet::new();
            for a in s.actions() {
                assert!(names.insert(a.name), "{}: duplicate action {}", s.name(), a.name);
                let schema: Value = serde_json::from_str(a.params).unwrap_or_else(|e| panic!("{}: {e}", a.name));
                super::super::schema::check_schema(&schema).unwrap_or_else(|e| panic!("{}.{}: {e}", s.name(), a.name));
                assert_eq!(schema["type"], "object", "{}", a.name);
                assert!(!a.description.is_empty());
            }
            // Every action of a Google service says which scopes it needs.
            if s.oauth().is_some_and(|o| o.display == "Google") {
                for a in s.actions() {
                    assert!(!s.required_scopes(a.name).is_empty(), "{}.{} names no scope", s.name(), a.name);
                    for group in s.required_scopes(a.name) {
                        let offered = s.oauth().unwrap().scopes;
                        assert!(
                            group.iter().any(|x| offered.contains(x)),
                            "{}.{}: no requested scope meets {group:?}",
                            s.name(),
                            a.name
                        );
                    }
                }
            }
            for e in s.entities() {
                if let Some(p) = s.parent(e) {
                    let at = |n: &str| s.entities().iter().position(|x| *x == n);
                    assert!(at(p.entity) < at(e), "{}: parent {} must sync before {e}", s.name(), p.entity);
                }
            }
        }
    }
}
