//! Slack's identifiers as this service accepts them: team, user and channel ids, message
//! timestamps, and the `<teamId>:<channelId>:<threadTs>` channel id of a Slack thread.

/// A Slack id (team, user, channel): letters and digits, as Slack writes them.
pub fn slack_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A Slack message timestamp: `<seconds>.<micros>` (digits, one optional dot).
pub fn slack_ts(s: &str) -> bool {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    (1..=64).contains(&secs.len())
        && (1..=64).contains(&frac.len())
        && secs.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

/// A Slack channel id `<teamId>:<channelId>:<threadTs>` (slackScopeKey's parts), split.
pub fn slack_parts(id: &str) -> Option<(&str, &str, &str)> {
    let mut parts = id.split(':');
    let (team, channel, ts) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && slack_id(team) && slack_id(channel) && slack_ts(ts)).then_some((team, channel, ts))
}
