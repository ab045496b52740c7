//! Whether the export side is keeping up, for `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared with `/readyz`: false while exports are failing.
#[derive(Debug)]
pub struct ExportHealth(AtomicBool);

impl Default for ExportHealth {
    fn default() -> Self {
        ExportHealth(AtomicBool::new(true))
    }
}

impl ExportHealth {
    pub fn healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub(super) fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}
