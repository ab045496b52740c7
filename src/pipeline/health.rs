//! Whether the export side is keeping up, for `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared with `/readyz`: whether exports fail, and whether linking waits
/// for the exporter (the span channel is full, so the worker does not take
/// new records and the ingest queue fills towards 429).
#[derive(Debug)]
pub struct ExportHealth {
    healthy: AtomicBool,
    linking_paused: AtomicBool,
}

impl Default for ExportHealth {
    fn default() -> Self {
        ExportHealth { healthy: AtomicBool::new(true), linking_paused: AtomicBool::new(false) }
    }
}

impl ExportHealth {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub(super) fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
    pub fn linking_paused(&self) -> bool {
        self.linking_paused.load(Ordering::Relaxed)
    }
    pub(super) fn set_linking_paused(&self, paused: bool) {
        self.linking_paused.store(paused, Ordering::Relaxed);
    }
}
