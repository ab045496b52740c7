//! Keeping the store within `--retention` and `--max-store-bytes`: the
//! oldest spans go first, in chunks, each chunk its own transaction so a
//! search waits for at most one chunk.

use rusqlite::params;

use super::{Store, StoreError, database_bytes, lock};

/// Spans deleted per transaction.
const CHUNK: i64 = 5_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub expired: u64,
    pub over_size: u64,
}

impl Store {
    /// Drops spans older than the retention at `now_us`, then the oldest
    /// spans until the database is within its size bound, and gives the
    /// freed pages back to the file system.
    pub fn prune(&self, now_us: i64) -> Result<Pruned, StoreError> {
        self.prune_with(Some(now_us))
    }

    /// Only the size bound (after an insert went over it).
    pub(super) fn prune_to_size(&self) -> Result<Pruned, StoreError> {
        self.prune_with(None)
    }

    fn prune_with(&self, now_us: Option<i64>) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let conn = lock(&self.write);
        if let (Some(retention), Some(now_us)) = (self.config.retention_us, now_us) {
            let cutoff = now_us.saturating_sub(retention);
            loop {
                let n = conn.execute(
                    "DELETE FROM spans WHERE rowid IN
                        (SELECT rowid FROM spans WHERE start_us < ?1 ORDER BY start_us LIMIT ?2)",
                    params![cutoff, CHUNK],
                )?;
                pruned.expired += n as u64;
                if (n as i64) < CHUNK {
                    break;
                }
            }
        }
        if let Some(max) = self.config.max_bytes {
            // Down to 90 % of the bound, so the next inserts do not prune again at once.
            let target = max / 10 * 9;
            let mut bytes = database_bytes(&conn)?;
            while bytes > max || (pruned.over_size > 0 && bytes > target) {
                let spans: i64 = conn.query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))?;
                let per_span = (bytes / spans.max(1) as u64).max(1);
                let n = ((bytes - target) / per_span + 1).clamp(100, CHUNK as u64);
                let n = conn.execute(
                    "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY start_us LIMIT ?1)",
                    params![n as i64],
                )?;
                bytes = database_bytes(&conn)?;
                pruned.over_size += n as u64;
                if n == 0 {
                    break;
                }
            }
        }
        if pruned != Pruned::default() {
            // The pragma frees pages one result row at a time: step it to the end.
            let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = vacuum.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            drop(vacuum);
            // Fold the log back into the database so the file on disk is
            // the size that was bounded.
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
        Ok(pruned)
    }
}
