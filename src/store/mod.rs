//! The embedded trace store: every span kausal produces, kept in SQLite so
//! that the query API and the viewer answer without any other backend.
//!
//! - [`stored_span`]: the span as stored (owned, serialisable).
//! - [`schema`]: tables, indexes and the settings crash safety rests on.
//! - [`search`]: what a search asks for, as SQL.
//! - [`bounds`]: `--retention` and `--max-store-bytes`, oldest spans first.
//!
//! A span is stored under its (trace, span) ID: the write-ahead log's
//! replay after a crash, or a batch the apiserver sent again, yields the same
//! IDs and replaces the row instead of adding one.
//!
//! No clock is read here: retention takes "now" from the caller.

pub mod bounds;
pub mod schema;
pub mod search;
pub mod stored_span;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

pub use search::{ObjectRef, TraceQuery, TraceSummary};
pub use stored_span::{StoredSpan, StoredValue};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("trace store {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error(
        "trace store {path} was written by another version of kausal (layout {found}, this one reads {expected}); move it away or point --data-dir elsewhere"
    )]
    Version { path: String, found: i64, expected: i64 },
    #[error("trace store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("trace store: a stored span is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("{0}")]
    BadQuery(String),
}

/// Where and how much.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// The database file; `None`: in memory, gone when the process ends.
    pub path: Option<PathBuf>,
    /// Spans older than this (µs) are dropped; `None`: kept until the size bound.
    pub retention_us: Option<i64>,
    /// The database's size bound in bytes; `None`: unbounded.
    pub max_bytes: Option<u64>,
}

/// The store. Cheap to share (`Arc`); every method blocks on SQLite, so
/// async callers run them on a blocking thread.
pub struct Store {
    /// The one writer.
    write: Arc<Mutex<Connection>>,
    /// Readers use their own connection on a file (WAL lets them read while
    /// the writer commits); in memory both are the same connection.
    read: Arc<Mutex<Connection>>,
    config: StoreConfig,
}

impl Store {
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let (write, read) = match &config.path {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let open = |p: &Path| {
                    Connection::open(p).map_err(|source| StoreError::Open { path: p.display().to_string(), source })
                };
                let write = open(path)?;
                prepare(&write, path.display().to_string())?;
                limit_journal(&write, config.max_bytes)?;
                // Inserts touch every index at a random place (trace IDs are
                // hashes): a page cache of 32 MiB, not SQLite's 2 MiB, keeps
                // their upper levels in memory (BENCHMARKS.md, the store).
                write.execute_batch(schema::WRITER_CACHE)?;
                let read = open(path)?;
                read.execute_batch(schema::PRAGMAS)?;
                read.busy_timeout(std::time::Duration::from_secs(5))?;
                (Arc::new(Mutex::new(write)), Arc::new(Mutex::new(read)))
            }
            None => {
                let conn = Connection::open_in_memory()?;
                prepare(&conn, ":memory:".into())?;
                let shared = Arc::new(Mutex::new(conn));
                (shared.clone(), shared)
            }
        };
        Ok(Store { write, read, config })
    }

    /// Stores `spans` in one transaction: all of them or, on error, none.
    pub fn insert(&self, spans: &[StoredSpan]) -> Result<(), StoreError> {
        let mut conn = lock(&self.write);
        let tx = conn.transaction()?;
        {
            let mut statement = tx.prepare_cached(
                "INSERT INTO spans (trace_id, span_id, has_parent, start_us, duration_us, service, operation, cluster,
                                    namespace, object_kind, object_name, object_uid, user_name, verb, root, is_error, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                 ON CONFLICT (trace_id, span_id) DO UPDATE SET
                    has_parent = excluded.has_parent, start_us = excluded.start_us, duration_us = excluded.duration_us,
                    service = excluded.service, operation = excluded.operation, cluster = excluded.cluster,
                    namespace = excluded.namespace, object_kind = excluded.object_kind,
                    object_name = excluded.object_name, object_uid = excluded.object_uid,
                    user_name = excluded.user_name, verb = excluded.verb, root = excluded.root,
                    is_error = excluded.is_error, body = excluded.body",
            )?;
            for span in spans {
                let body = serde_json::to_string(span)?;
                statement.execute(params![
                    id_bytes(&span.trace_id),
                    id_bytes(&span.span_id),
                    span.parent_span_id.is_some(),
                    span.start_us,
                    span.duration_us(),
                    span.service,
                    span.name,
                    span.cluster,
                    span.attr_str("k8s.namespace.name"),
                    span.attr_str("k8s.object.kind"),
                    span.attr_str("k8s.object.name"),
                    span.attr_str("k8s.object.uid"),
                    span.attr_str("user.name"),
                    span.attr_str("k8s.verb"),
                    span.root(),
                    span.error.is_some(),
                    body,
                ])?;
            }
        }
        tx.commit()?;
        // Over the size bound, the oldest spans go now, not at the next
        // periodic prune: the bound is what keeps the disk for the log.
        if let Some(max) = self.config.max_bytes
            && database_bytes(&conn)? > max
        {
            drop(conn);
            self.prune_to_size()?;
        }
        Ok(())
    }

    /// Every span of one trace, in start order; empty when the trace is unknown.
    pub fn trace(&self, trace_id: &str) -> Result<Vec<StoredSpan>, StoreError> {
        let conn = lock(&self.read);
        let mut statement =
            conn.prepare_cached("SELECT body FROM spans WHERE trace_id = ?1 ORDER BY start_us, span_id")?;
        let rows = statement.query_map(params![id_bytes(trace_id)], |r| r.get::<_, String>(0))?;
        rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
    }

    /// One span, by its trace and span IDs.
    pub fn span(&self, trace_id: &str, span_id: &str) -> Result<Option<StoredSpan>, StoreError> {
        let conn = lock(&self.read);
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM spans WHERE trace_id = ?1 AND span_id = ?2")?
            .query_row(params![id_bytes(trace_id), id_bytes(span_id)], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(StoreError::from)).transpose()
    }

    /// Every actor that has a span, in name order.
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        let conn = lock(&self.read);
        // One index step per service (a skip scan by hand): DISTINCT would
        // read every span's index entry, and Jaeger UI and Grafana ask often.
        let mut statement = conn.prepare_cached(
            "WITH RECURSIVE s(service) AS (
                 SELECT MIN(service) FROM spans
                 UNION ALL
                 SELECT (SELECT MIN(service) FROM spans WHERE service > s.service) FROM s WHERE s.service IS NOT NULL
             )
             SELECT service FROM s WHERE service IS NOT NULL",
        )?;
        let rows = statement.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (service, operation) pairs, for one service or all.
    pub fn operations(&self, service: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let conn = lock(&self.read);
        let mut statement = conn.prepare_cached(
            "SELECT DISTINCT service, operation FROM spans WHERE ?1 IS NULL OR service = ?1 ORDER BY service, operation",
        )?;
        let rows = statement.query_map(params![service], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many spans are stored, and the database's size in bytes.
    pub fn size(&self) -> Result<(u64, u64), StoreError> {
        let conn = lock(&self.read);
        let spans: i64 = conn.query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))?;
        Ok((spans as u64, database_bytes(&conn)?))
    }
}

fn prepare(conn: &Connection, path: String) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(schema::PRAGMAS_BEFORE_TABLES)?;
    conn.execute_batch(schema::PRAGMAS)?;
    conn.execute_batch(schema::TABLES)?;
    let found: Option<i64> =
        conn.query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| r.get(0)).optional()?;
    match found {
        None => {
            conn.execute("INSERT INTO meta (key, value) VALUES ('version', ?1)", params![schema::VERSION])?;
        }
        Some(v) if v == schema::VERSION => {}
        Some(found) => return Err(StoreError::Version { path, found, expected: schema::VERSION }),
    }
    Ok(())
}

/// SQLite's own log (`-wal`) grows to 1000 pages (4 MiB) between
/// checkpoints by default: a small bound gets a small log, so the files
/// stay near the bound.
fn limit_journal(conn: &Connection, max_bytes: Option<u64>) -> Result<(), rusqlite::Error> {
    let Some(max) = max_bytes else { return Ok(()) };
    let pages = (max / 4 / 4096).clamp(16, 1000);
    conn.query_row(&format!("PRAGMA wal_autocheckpoint = {pages}"), [], |_| Ok(()))?;
    conn.query_row(&format!("PRAGMA journal_size_limit = {}", pages * 4096), [], |_| Ok(()))?;
    Ok(())
}

/// Pages in use times page size: what the file would be after a vacuum.
fn database_bytes(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// A poisoned lock only means another thread panicked mid-call; SQLite's
/// own transaction rolled back, so the connection is still sound.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hex IDs as the 8 or 16 bytes they name; text that is not hex is kept
/// as its bytes, which match nothing.
fn id_bytes(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).unwrap_or_else(|_| hex_id.as_bytes().to_vec())
}
