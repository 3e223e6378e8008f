//! Repository references: `https://host/owner/repo(.git)`, `git@host:owner/repo.git`, or
//! `owner/repo`. Dots in names are kept (`my.repo`); only a trailing `.git` is removed.

/// A validated `owner/name` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// Parses `owner/name` exactly (no URL forms).
    pub fn parse_full_name(s: &str) -> Option<RepoRef> {
        let (owner, name) = s.split_once('/')?;
        (valid_owner(owner) && valid_name(name)).then(|| RepoRef { owner: owner.to_string(), name: name.to_string() })
    }

    /// Parses a clone/web URL or an `owner/name` pair.
    pub fn parse(input: &str) -> Option<RepoRef> {
        Self::parse_with_host(input).map(|(_, r)| r)
    }

    /// Parses only references to one of `hosts` (or a bare `owner/name`): the whole input
    /// must be the reference, not merely contain one.
    pub fn parse_on_hosts(input: &str, hosts: &[&str]) -> Option<RepoRef> {
        match Self::parse_with_host(input)? {
            (Some(host), r) if hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) => Some(r),
            (None, r) => Some(r),
            _ => None,
        }
    }

    /// The host (for URL forms) and the repository.
    pub fn parse_with_host(input: &str) -> Option<(Option<String>, RepoRef)> {
        let s = input.trim();
        let (host, path) = if let Some(rest) = s.strip_prefix("git@") {
            let (host, path) = rest.split_once(':')?;
            (Some(host.to_string()), path.to_string())
        } else if s.contains("://") {
            let url = crate::http::parse_url(s).ok()?;
            if !matches!(url.scheme(), "https" | "http" | "ssh" | "git")
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return None;
            }
            (Some(url.host_str()?.to_string()), url.path().trim_start_matches('/').to_string())
        } else {
            (None, s.to_string())
        };
        let mut parts = path.trim_end_matches('/').splitn(3, '/');
        let owner = parts.next()?;
        let mut name = parts.next()?;
        // Web URLs may continue (`/tree/main`, `/pull/3`); clone URLs end in `.git`.
        name = name.strip_suffix(".git").unwrap_or(name);
        let repo = RepoRef { owner: owner.to_string(), name: name.to_string() };
        (valid_owner(owner) && valid_name(name)).then_some((host, repo))
    }
}

/// GitHub logins: alphanumerics and single hyphens, not at the ends, ≤ 39 characters.
fn valid_owner(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Repository names: alphanumerics, `.`, `_`, `-`, ≤ 100 characters, not `.` or `..`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> Option<String> {
        RepoRef::parse(s).map(|r| r.full_name())
    }

    #[test]
    fn parses_urls_and_pairs() {
        assert_eq!(full("https://github.com/octo/hello-world"), Some("octo/hello-world".into()));
        assert_eq!(full("https://github.com/octo/hello.world.git"), Some("octo/hello.world".into()));
        assert_eq!(full("https://github.com/octo/socket.io/tree/main/src"), Some("octo/socket.io".into()));
        assert_eq!(full("git@github.com:octo/my.repo.git"), Some("octo/my.repo".into()));
        assert_eq!(full("https://ghe.example.com/team/app/"), Some("team/app".into()));
        assert_eq!(full("octo/dots.in.name"), Some("octo/dots.in.name".into()));
        assert_eq!(full("  octo/x  "), Some("octo/x".into()));
    }

    #[test]
    fn rejects_garbage() {
        for bad in
            ["", "octo", "octo/", "/x", "-octo/x", "octo/..", "octo/a b", "ftp://h/o/r", "https://github.com/", "o/r?x"]
        {
            assert_eq!(full(bad), None, "{bad}");
        }
        assert_eq!(RepoRef::parse_full_name("o/r/x"), None);
        assert!(RepoRef::parse_full_name("o/r.x").is_some());
    }

    #[test]
    fn host_anchored() {
        let hosts = ["github.com", "ghe.example.com"];
        assert!(RepoRef::parse_on_hosts("https://github.com/o/r.js", &hosts).is_some());
        assert!(RepoRef::parse_on_hosts("git@GHE.example.com:o/r.git", &hosts).is_some());
        assert!(RepoRef::parse_on_hosts("o/r", &hosts).is_some());
        assert!(RepoRef::parse_on_hosts("https://evil.com/o/r", &hosts).is_none());
        assert!(RepoRef::parse_on_hosts("https://evil.com/x?u=https://github.com/o/r", &hosts).is_none());
        assert!(RepoRef::parse_on_hosts("https://github.com/o/r?tab=readme", &hosts).is_none());
    }
}
