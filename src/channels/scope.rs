//! Channels and scope keys (formats in the README, "Sessions and channels"). A scope key always starts with the owner's user id,
//! so it is computed by the server for the caller and can never name someone else's channel.

use serde::{Deserialize, Serialize};

use crate::slack::ids::slack_parts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    Web,
    Api,
    Telegram,
    Slack,
    Github,
}

impl ChannelType {
    pub const ALL: [&'static str; 5] = ["web", "api", "telegram", "slack", "github"];

    pub fn parse(s: &str) -> Option<ChannelType> {
        Some(match s {
            "web" => ChannelType::Web,
            "api" => ChannelType::Api,
            "telegram" => ChannelType::Telegram,
            "slack" => ChannelType::Slack,
            "github" => ChannelType::Github,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Web => "web",
            ChannelType::Api => "api",
            ChannelType::Telegram => "telegram",
            ChannelType::Slack => "slack",
            ChannelType::Github => "github",
        }
    }

    /// Why a channel id is not acceptable for this type, if it is not.
    pub fn check_id(self, id: &str) -> Result<(), &'static str> {
        if id.is_empty() || id.chars().count() > 500 || id.chars().any(char::is_control) {
            return Err("Must be 1 to 500 characters without control characters");
        }
        match self {
            ChannelType::Telegram => {
                let digits = id.strip_prefix('-').unwrap_or(id);
                if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("A Telegram chat id is an integer");
                }
            }
            ChannelType::Github => {
                // `<owner>/<repo>:pr:<number>`, as githubPrScopeKey builds it.
                let ok = id.rsplit_once(":pr:").is_some_and(|(repo, n)| {
                    crate::github::repo::RepoRef::parse_full_name(repo).is_some()
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                });
                if !ok {
                    return Err("A GitHub channel id is <owner>/<repo>:pr:<number>");
                }
            }
            ChannelType::Slack => {
                if slack_parts(id).is_none() {
                    return Err(
                        "A Slack channel id is <teamId>:<channelId>:<threadTs> (like T0123:C0456:1700000000.000100)",
                    );
                }
            }
            ChannelType::Web | ChannelType::Api => {}
        }
        Ok(())
    }
}

/// The scope key of a user's channel: `user:<userId>:manual:<sessionId>` for web,
/// `user:<userId>:<type>:<channelId>` otherwise (telegram, slack, github, api).
pub fn scope_key(user_id: &str, channel: ChannelType, channel_id: &str) -> String {
    let segment = if channel == ChannelType::Web { "manual" } else { channel.as_str() };
    format!("user:{user_id}:{segment}:{channel_id}")
}

/// The session DO's per-channel queue key (`<type>:<id>`, or `web:default` without a channel).
pub fn channel_key(channel_type: Option<&str>, channel_id: Option<&str>) -> String {
    match (channel_type, channel_id) {
        (Some(t), Some(i)) => format!("{t}:{i}"),
        _ => "web:default".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_original_helpers() {
        assert_eq!(scope_key("u1", ChannelType::Web, "s1"), "user:u1:manual:s1");
        assert_eq!(scope_key("u1", ChannelType::Telegram, "-100123"), "user:u1:telegram:-100123");
        assert_eq!(scope_key("u1", ChannelType::Slack, "T1:C1:1.2"), "user:u1:slack:T1:C1:1.2");
        assert_eq!(scope_key("u1", ChannelType::Github, "o/r.x:pr:7"), "user:u1:github:o/r.x:pr:7");
        assert_eq!(scope_key("u1", ChannelType::Api, "idem-1"), "user:u1:api:idem-1");
        assert_eq!(channel_key(Some("telegram"), Some("5")), "telegram:5");
        assert_eq!(channel_key(None, None), "web:default");
    }

    #[test]
    fn channel_ids_are_checked_per_type() {
        assert!(ChannelType::Telegram.check_id("-1001234").is_ok());
        assert!(ChannelType::Telegram.check_id("12a").is_err());
        assert!(ChannelType::Github.check_id("octo/my.repo:pr:12").is_ok());
        assert!(ChannelType::Github.check_id("octo:pr:12").is_err());
        assert!(ChannelType::Slack.check_id("T:C:1").is_ok());
        assert!(ChannelType::Slack.check_id("T:C").is_err());
        assert!(ChannelType::Slack.check_id("T0123:C0456:1700000000.000100").is_ok());
        assert!(ChannelType::Slack.check_id("T1:D1:1700").is_ok());
        for bad in ["T:C:1:2", "T:C:x", "T:C:1.", "T:C:.1", "T-1:C:1", ":C:1", "T:C:1.2.3", "T:C d:1"] {
            assert!(ChannelType::Slack.check_id(bad).is_err(), "{bad}");
        }
        assert_eq!(slack_parts("T1:C2:3.4"), Some(("T1", "C2", "3.4")));
        // Ids of every type are accepted up to 128 characters.
        let long = format!("T{}:C{}:1700000000.000100", "1".repeat(60), "2".repeat(47));
        assert_eq!(long.len(), 128);
        assert!(ChannelType::Slack.check_id(&long).is_ok());
        assert!(ChannelType::Slack.check_id(&format!("T1:C1:{}.1", "9".repeat(64))).is_ok());
        assert!(ChannelType::Api.check_id(&"a".repeat(128)).is_ok());
        assert!(ChannelType::Api.check_id("anything").is_ok());
        assert!(ChannelType::Web.check_id("").is_err());
        assert!(ChannelType::Web.check_id(&"x".repeat(501)).is_err());
        assert_eq!(ChannelType::parse("email"), None);
    }
}
