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
    /// Numbering goes on after the highest batch already in `root` (a
    /// restart never starts again at `batch-000001.json`).
    pub fn new(root: &Path) -> std::io::Result<Recorder> {
        fs::create_dir_all(root)?;
        let highest = highest_batch_number(root);
        Ok(Recorder { root: root.to_owned(), sequence: AtomicU64::new(highest), watch_lines: Mutex::new(()) })
    }

    /// `DIR/<cluster>/<endpoint>-batches/batch-000001.json`, numbered in
    /// arrival order. Each file is created new: a recording is never replaced
    /// (a number some other writer took is skipped).
    pub fn body(&self, cluster: &str, endpoint: &str, body: &[u8]) {
        let dir = self.root.join(cluster_dir(cluster)).join(format!("{endpoint}-batches"));
        let result = fs::create_dir_all(&dir).and_then(|()| {
            for _ in 0..1000 {
                let n = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
                match OpenOptions::new().write(true).create_new(true).open(dir.join(format!("batch-{n:06}.json"))) {
                    Ok(mut file) => return file.write_all(body),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(std::io::Error::other("no free batch number after 1000 tries"))
        });
        report(result, &dir);
    }

    /// Appends `{"type": ..., "object": ...}` to `DIR/<cluster>/events/watch.jsonl`.
    pub fn watch_line(&self, cluster: &str, kind: &str, object_json: &str) {
        let dir = self.root.join(cluster_dir(cluster)).join("events");
        let _guard = self.watch_lines.lock().unwrap_or_else(|e| e.into_inner());
        let result = fs::create_dir_all(&dir).and_then(|()| {
            let mut file = OpenOptions::new().create(true).append(true).open(dir.join("watch.jsonl"))?;
            writeln!(file, "{{\"type\":\"{kind}\",\"object\":{object_json}}}")
        });
        report(result, &dir);
    }
}

/// The directory a cluster records into: its label, which the webhook only
/// accepts as a DNS-1123 label (or the unnamed cluster's `_default`); any
/// other character is replaced, so no name can leave the record directory.
fn cluster_dir(cluster: &str) -> String {
    let label = cluster_label(cluster);
    let safe: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if safe.is_empty() { "_".to_owned() } else { safe }
}

/// The highest `batch-NNNNNN.json` under `root/*/*-batches/`, or 0.
fn highest_batch_number(root: &Path) -> u64 {
    let numbers = |dir: &Path| -> Vec<u64> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("batch-")?.strip_suffix(".json")?.parse().ok()
            })
            .collect()
    };
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|cluster| fs::read_dir(cluster.path()).into_iter().flatten().flatten())
        .filter(|d| d.file_name().to_string_lossy().ends_with("-batches"))
        .flat_map(|d| numbers(&d.path()))
        .max()
        .unwrap_or(0)
}

fn report(result: std::io::Result<()>, dir: &Path) {
    if let Err(e) = result {
        metrics::counter!(crate::telemetry::RECORD_FAILURES).increment(1);
        tracing::warn!(dir = %dir.display(), error = %e, "could not record input");
    }
}
