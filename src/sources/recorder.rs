//! `--record-dir`: keeps the raw input as fixtures. Every accepted webhook body
//! is written as it arrived (after gzip decoding), one file per request, and
//! every watched Event as a watch line, so that `kausal replay DIR/<cluster>`
//! reproduces what the server saw.
//!
//! Recording is a diagnostic aid: a failed write is logged and counted, never
//! a reason to refuse a batch.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::cluster_label;

#[derive(Debug)]
pub struct Recorder {
    root: PathBuf,
    sequence: AtomicU64,
    watch_lines: Mutex<()>,
}

impl Recorder {
    pub fn new(root: &Path) -> std::io::Result<Recorder> {
        fs::create_dir_all(root)?;
        Ok(Recorder { root: root.to_owned(), sequence: AtomicU64::new(0), watch_lines: Mutex::new(()) })
    }

    /// `DIR/<cluster>/<endpoint>-batches/batch-000001.json`, numbered in arrival order.
    pub fn body(&self, cluster: &str, endpoint: &str, body: &[u8]) {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.root.join(cluster_label(cluster)).join(format!("{endpoint}-batches"));
        let result = fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join(format!("batch-{n:06}.json")), body));
        report(result, &dir);
    }

    /// Appends `{"type": ..., "object": ...}` to `DIR/<cluster>/events/watch.jsonl`.
    pub fn watch_line(&self, cluster: &str, kind: &str, object_json: &str) {
        let dir = self.root.join(cluster_label(cluster)).join("events");
        let _guard = self.watch_lines.lock().unwrap_or_else(|e| e.into_inner());
        let result = fs::create_dir_all(&dir).and_then(|()| {
            let mut file = OpenOptions::new().create(true).append(true).open(dir.join("watch.jsonl"))?;
            writeln!(file, "{{\"type\":\"{kind}\",\"object\":{object_json}}}")
        });
        report(result, &dir);
    }
}

fn report(result: std::io::Result<()>, dir: &Path) {
    if let Err(e) = result {
        metrics::counter!(crate::telemetry::RECORD_FAILURES).increment(1);
        tracing::warn!(dir = %dir.display(), error = %e, "could not record input");
    }
}
