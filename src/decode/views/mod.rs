//! Borrowed, typed views of the input formats.
//!
//! Objects inside audit records stay as `&RawValue` until a field is needed; the
//! helpers here read only the few fields kausal links on (mostly `metadata`).

pub mod audit;
pub mod kube_event;
pub mod object;
