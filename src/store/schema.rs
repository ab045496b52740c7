//! The store's tables and indexes, and the settings its crash safety rests on.
//!
//! One table of spans: the span itself as JSON (`body`), beside the columns
//! people search by, each indexed with the start time so that a search
//! within a time range reads only its matches.

/// Bumped when the layout changes; a store of another version is refused
/// rather than misread.
pub const VERSION: i64 = 1;

/// Before any table exists: `auto_vacuum` can only be chosen then, and
/// incremental vacuum is what lets the size bound give disk back.
pub const PRAGMAS_BEFORE_TABLES: &str = "PRAGMA auto_vacuum = INCREMENTAL;";

/// Every connection: WAL journaling, so a reader never waits for the writer
/// and a commit is in the file (the OS's, not yet the disk's) before
/// `insert` returns: a SIGKILL loses no committed span. `synchronous =
/// NORMAL` is WAL's documented safe setting against application crashes; a
/// power cut may lose the last commits, which kausal's own write-ahead log
/// still holds and replays.
///
/// Sorts and groupings use memory, not temporary files: the deploy kit's
/// root file system is read-only.
pub const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;";

/// The writer's page cache, in KiB (negative: a size, not a page count).
pub const WRITER_CACHE: &str = "PRAGMA cache_size = -32768;";

pub const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS spans (
    trace_id     BLOB    NOT NULL,
    span_id      BLOB    NOT NULL,
    has_parent   INTEGER NOT NULL,
    start_us     INTEGER NOT NULL,
    duration_us  INTEGER NOT NULL,
    service      TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    cluster      TEXT    NOT NULL,
    namespace    TEXT,
    object_kind  TEXT,
    object_name  TEXT,
    object_uid   TEXT,
    user_name    TEXT,
    verb         TEXT,
    root         TEXT,
    is_error     INTEGER NOT NULL,
    body         TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_id ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_us);
CREATE INDEX IF NOT EXISTS spans_by_service ON spans (service, operation, start_us);
CREATE INDEX IF NOT EXISTS spans_by_namespace ON spans (namespace, start_us);
CREATE INDEX IF NOT EXISTS spans_by_object_name ON spans (object_name, start_us);
CREATE INDEX IF NOT EXISTS spans_by_object_uid ON spans (object_uid, start_us);
CREATE INDEX IF NOT EXISTS spans_by_user ON spans (user_name, start_us);
CREATE INDEX IF NOT EXISTS spans_by_root ON spans (root, start_us) WHERE root IS NOT NULL;
";

/// The column a Jaeger tag key is searched in, for the tags people ask
/// about most; any other key is read out of the span's JSON.
pub fn tag_column(key: &str) -> Option<&'static str> {
    Some(match key {
        "k8s.namespace.name" => "namespace",
        "k8s.object.kind" => "object_kind",
        "k8s.object.name" => "object_name",
        "k8s.object.uid" => "object_uid",
        "user.name" => "user_name",
        "k8s.verb" => "verb",
        "kausal.root" => "root",
        "k8s.cluster.name" => "cluster",
        "error" => "is_error",
        _ => return None,
    })
}
