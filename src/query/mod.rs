//! Answers questions about stored traces: Jaeger's HTTP JSON API and its v3
//! (OTLP/JSON) API, kausal's object questions, and the built-in viewer.
//!
//! - [`api`]: the routes of the query listener (and their authentication).
//! - [`params`]: Jaeger's query strings.
//! - [`jaeger`]: Jaeger's JSON trace model.
//! - [`otlp_v3`]: OTLP/JSON for the v3 API.
//! - [`objects`]: an object's history, and why it exists or is gone.
//! - [`viewer`]: the page, compiled in.

pub mod api;
pub mod jaeger;
pub mod objects;
pub mod otlp_v3;
pub mod params;
pub mod viewer;
