//! Configuration read from the Worker environment (`[vars]`, secrets, `.dev.vars`).

use worker::Env;

/// A configured, non-empty string variable or secret.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|s| !s.trim().is_empty())
}

/// The credential keyring from `ENCRYPTION_KEY` / `ENCRYPTION_KEY_PREVIOUS`.
pub fn keyring(env: &Env) -> Result<crate::crypto::Keyring, crate::crypto::CryptoError> {
    crate::crypto::Keyring::new(var(env, "ENCRYPTION_KEY").as_deref(), var(env, "ENCRYPTION_KEY_PREVIOUS").as_deref())
}

/// Logs an error line (workerd's console on Workers, stderr natively).
pub fn log_error(message: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!("{}", message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}
