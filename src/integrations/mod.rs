//! The generic integration framework: connect a service, keep its data with the sync engine,
//! read it page by page, act through it (README, "What it does today"). Nothing here names a
//! service: each one is an implementation of `service::Service` registered in one list.
//!
//! - `service`: the interface; `registry`: the services offered (the only file naming them);
//!   `services/`: the wing, one folder per service (GitHub, Gmail, Calendar; Google's shared
//!   client and MIME).
//! - `store`: the integration registry's queries (rows, OAuth states, credentials' key).
//! - `data`: the protocol and client of each integration's `IntegrationData` object (its
//!   entities, search index and checkpoints); `moving`: the copy of data kept in D1 before it.
//! - `engine`: the sync engine's decisions (plain Rust); `sync_store`: its platform edge.
//! - `runs`: starting runs, the queue's sync slices, the cron's sweep.
//! - `routes`: the HTTP API; `oauth`: the generic OAuth flow; `schema`: action parameters;
//!   `search`: full-text search of the synced entities.

pub mod audit;
pub mod data;
pub mod engine;
pub mod holders;
pub mod moving;
pub mod oauth;
pub mod realtime;
pub mod registry;
pub mod routes;
pub mod runs;
pub mod schema;
pub mod search;
pub mod service;
pub mod services;
pub mod store;
pub mod sync_store;
pub mod tokens;
