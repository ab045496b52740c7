//! Sources: where records come from. They parse, bound and hand records to the
//! core; they never link.

pub mod auth;
pub mod files;
pub mod listener;
mod owner_watch;
pub(crate) mod recorder;
pub mod watcher;
pub mod webhook;
