//! Borrowed, typed views of the input formats.
//!
//! Objects inside audit records stay as `&RawValue` until a field is needed; the
//! helpers here read only the few fields kausal links on (mostly `metadata`).

pub(crate) mod audit;
pub(crate) mod kube_event;
pub(crate) mod object;
