//! Sessions: the registry (D1) of a user's agent sessions and the client of each session's
//! `SessionAgent` object.
//!
//! - `store`: every query of the registry, the finished statuses, the orchestrator.
//! - `agent`: the Worker ↔ `SessionAgent` protocol and client.
//! - `prompt`: prompts as they travel to a session (queue modes, attachments, collect merges).
//! - `routes`: the sessions API (handlers).

pub mod agent;
pub mod prompt;
pub mod routes;
pub mod store;
