//! Configuration read from the Worker environment (`[vars]`, secrets, `.dev.vars`).

use worker::Env;

/// A configured, non-empty string variable or secret.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|s| !s.trim().is_empty())
}

/// The credential keyring from `ENCRYPTION_KEY` / `ENCRYPTION_KEY_PREVIOUS`.
pub fn keyring(env: &Env) -> Result<crate::crypto::Keyring, crate::crypto::CryptoError> {
    crate::crypto::Keyring::configured(
        var(env, "ENCRYPTION_KEY").as_deref(),
        var(env, "ENCRYPTION_KEY_PREVIOUS").as_deref(),
        var(env, "LEGACY_CIPHERTEXT").is_some_and(|v| v.eq_ignore_ascii_case("reject")),
    )
}

/// Logs an error line (workerd's console on Workers, stderr natively).
pub fn log_error(message: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!("{}", message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}

/// Configuration as services see it: the Worker environment in production, a map in tests.
pub trait Vars {
    /// A configured, non-empty value.
    fn setting(&self, name: &str) -> Option<String>;
}

impl Vars for Env {
    fn setting(&self, name: &str) -> Option<String> {
        var(self, name)
    }
}

impl Vars for std::collections::BTreeMap<String, String> {
    fn setting(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// A base URL setting without its trailing slash, or the default.
pub fn base_url(vars: &dyn Vars, name: &str, default: &str) -> String {
    vars.setting(name).unwrap_or_else(|| default.to_string()).trim_end_matches('/').to_string()
}
