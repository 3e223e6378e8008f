//! The services wing: one folder per integration service, each an implementation of
//! `integrations::service::ServiceImpl` over its provider's API. `google` holds what the Google
//! services share (OAuth parameters, the REST and batch client, MIME). Nothing here imports the
//! registry, the routes or the engine.

pub mod calendar;
pub mod github;
pub mod gmail;
pub mod google;
