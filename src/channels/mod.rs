//! Channels: where a user's chats and threads lead. Inbound, a message on a channel becomes a
//! prompt to the session its binding names, else to the user's orchestrator; outbound, a
//! session's reply reaches Telegram or Slack through one module.
//!
//! - `scope`: channel types and scope keys (computed by the server, never taken from a client).
//! - `store`: every query of `channel_bindings`, and the `Bound` row channels route by.
//! - `routing`: the one path to a user's orchestrator.
//! - `delivery`: how a reply reaches Telegram or Slack.
//! - `routes`: binding management and `POST /api/prompt` (handlers).

pub mod delivery;
pub mod routes;
pub mod routing;
pub mod scope;
pub mod store;
