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
    use serde_json::Value;

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
            for e in s.entities() {
                if let Some(p) = s.parent(e) {
                    let at = |n: &str| s.entities().iter().position(|x| *x == n);
                    assert!(at(p.entity) < at(e), "{}: parent {} must sync before {e}", s.name(), p.entity);
                }
            }
        }
    }
}
