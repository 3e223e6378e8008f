//! The OpenAPI 3.1 document served at `/openapi.json`. It is hand-maintained in
//! `openapi.json` at the repository root; `http::router`'s tests fail when a routed
//! path is missing from it.

pub const DOCUMENT: &str = include_str!("../openapi.json");
