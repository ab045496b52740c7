//! Start-up recovery: open the write-ahead log and feed what a previous run
//! left through the pipeline before the webhook opens.

use anyhow::Context as _;

use crate::decode;
use crate::pipeline;
use crate::sources::webhook::{self, WebhookState};
use crate::telemetry;
use crate::wal::{RecoveredEntries, Wal, WalConfig};

/// Opens the write-ahead log and reports what a previous run left.
pub(super) fn open_wal(config: WalConfig, max_body_bytes: usize) -> anyhow::Result<(Wal, RecoveredEntries)> {
    if config.max_bytes < max_body_bytes as u64 {
        tracing::warn!(
            max_wal_bytes = config.max_bytes,
            max_body_bytes,
            "--max-wal-bytes is below --max-body-bytes: bodies larger than the log get 413"
        );
    }
    let dir = config.dir.clone();
    let (wal, recovered, report) =
        Wal::open(config).with_context(|| format!("opening the write-ahead log in {}", dir.display()))?;
    metrics::counter!(telemetry::WAL_RECOVERED, "state" => "acknowledged").increment(report.acknowledged as u64);
    metrics::counter!(telemetry::WAL_RECOVERED, "state" => "unacknowledged").increment(report.unacknowledged as u64);
    tracing::info!(
        dir = %dir.parent().unwrap_or(&dir).display(),
        segments = report.segments,
        bytes = report.bytes,
        acknowledged = report.acknowledged,
        unacknowledged = report.unacknowledged,
        torn_tail_bytes = report.torn_tail_bytes,
        "write-ahead log opened: accepted bodies are synced before the 200"
    );
    for problem in &report.corrupt_segments {
        tracing::error!(problem = %problem, "write-ahead log records lost to corruption");
    }
    Ok((wal, recovered))
}

/// Feeds what the write-ahead log kept through the pipeline: exported entries
/// as context (graph state, no spans), the rest as new input with their
/// acknowledgement tokens, in the order they were accepted. The log is read a
/// segment at a time as the queue takes the entries, so memory stays bounded
/// by the queue and one segment, not by the size of the log.
pub(super) async fn replay_recovered(state: &WebhookState, recovered: RecoveredEntries) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (entries, mut records) = (recovered.len(), 0);
    for item in recovered {
        let entry = &item.entry;
        // Beyond --max-clusters too: nothing accepted before the restart is skipped.
        let cluster = state.clusters.admit_recovered(&entry.cluster, std::time::Instant::now());
        let decoded = decode::decode(&entry.body, &webhook::body_decode_options(state.decode, entry.accepted_at));
        records += decoded.records.len();
        let batch = pipeline::Batch {
            cluster,
            records: decoded.records,
            ack: item.ack_token(),
            replayed: item.acknowledged,
            ..Default::default()
        };
        state.queue.enqueue(batch).await.map_err(|e| anyhow::anyhow!("replaying the write-ahead log: {e:?}"))?;
    }
    tracing::info!(entries, records, took = ?started.elapsed(), "write-ahead log replayed");
    Ok(())
}
