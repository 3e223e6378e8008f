//! The GitHub production path: token connection, the `/api/repos` proxy, org
//! repositories and personas, and `POST /webhooks/github`.

pub mod access;
pub mod client;
pub mod org_repos;
pub mod proxy;
pub mod reconcile;
pub mod repo;
pub mod token;
pub mod webhooks;

use worker::Env;

use crate::config::var;

/// REST base (`GITHUB_API_URL`; `https://HOST/api/v3` for GitHub Enterprise Server).
pub fn api_url(env: &Env) -> String {
    var(env, "GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()).trim_end_matches('/').to_string()
}

/// Web base for OAuth authorize and token exchange (`GITHUB_WEB_URL`).
pub fn web_url(env: &Env) -> String {
    var(env, "GITHUB_WEB_URL").unwrap_or_else(|| "https://github.com".into()).trim_end_matches('/').to_string()
}

/// Hosts whose repository URLs are accepted: github.com and the configured web host.
pub fn repo_hosts(env: &Env) -> Vec<String> {
    let mut hosts = vec!["github.com".to_string(), "www.github.com".to_string()];
    if let Some(h) = crate::http::parse_url(&web_url(env)).ok().and_then(|u| u.host_str().map(str::to_string)) {
        hosts.push(h);
    }
    hosts
}
