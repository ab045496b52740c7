//! Searches: which traces match (Jaeger's `FindTraces`), the intents at the
//! top of them, and the objects spans are about.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoredSpan, id_bytes, lock, schema};

/// What a trace search asks for. Every field narrows; times are µs.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Exact matches on span tags (`error`, `k8s.namespace.name`, ...).
    pub tags: Vec<(String, String)>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub min_duration_us: Option<i64>,
    pub max_duration_us: Option<i64>,
    /// Only spans that start a trace with one of these `kausal.root`s
    /// (`intent`, `automation`, ...): the intent list. Empty: any span.
    pub roots: Vec<String>,
    /// Traces at most; newest first.
    pub limit: usize,
}

/// One trace as a list shows it: its root and its size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// The earliest span without a parent (the intent), when it is stored.
    pub root: Option<StoredSpan>,
    pub start_us: i64,
    pub end_us: i64,
    pub spans: u64,
    pub errors: u64,
    /// Distinct actors in the trace.
    pub actors: u64,
}

/// An object spans are about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub uid: String,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Store {
    /// IDs of the traces with at least one span matching `query`, the trace
    /// with the latest match first.
    pub fn find_traces(&self, query: &TraceQuery) -> Result<Vec<String>, StoreError> {
        let (condition, values) = conditions(query)?;
        let sql = format!(
            "SELECT trace_id FROM spans WHERE {condition} GROUP BY trace_id ORDER BY MAX(start_us) DESC LIMIT {}",
            query.limit.max(1)
        );
        let conn = lock(&self.read);
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(values), |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.map(|r| r.map(hex::encode)).collect::<Result<_, _>>()?)
    }

    /// The summary of each trace, in the order given.
    pub fn summaries(&self, trace_ids: &[String]) -> Result<Vec<TraceSummary>, StoreError> {
        let conn = lock(&self.read);
        let mut totals = conn.prepare_cached(
            "SELECT MIN(start_us), MAX(start_us + duration_us), COUNT(*), SUM(is_error), COUNT(DISTINCT service)
             FROM spans WHERE trace_id = ?1",
        )?;
        let mut root = conn.prepare_cached(
            "SELECT body FROM spans WHERE trace_id = ?1 AND has_parent = 0 ORDER BY start_us LIMIT 1",
        )?;
        let mut out = Vec::with_capacity(trace_ids.len());
        for id in trace_ids {
            let key = id_bytes(id);
            let (start, end, spans, errors, actors): (Option<i64>, Option<i64>, i64, Option<i64>, i64) =
                totals.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            if spans == 0 {
                continue;
            }
            let body: Option<String> = root.query_row([&key], |r| r.get(0)).ok();
            out.push(TraceSummary {
                trace_id: id.clone(),
                root: body.map(|b| serde_json::from_str(&b)).transpose()?,
                start_us: start.unwrap_or(0),
                end_us: end.unwrap_or(0),
                spans: spans as u64,
                errors: errors.unwrap_or(0) as u64,
                actors: actors as u64,
            });
        }
        Ok(out)
    }

    /// The objects named `name` (of `kind`, a kind like `Pod` or a resource
    /// like `pods`, any case) in `namespace`: more than one when the name
    /// was reused by a new object.
    pub fn objects_named(&self, kind: &str, namespace: Option<&str>, name: &str) -> Result<Vec<ObjectRef>, StoreError> {
        let conn = lock(&self.read);
        let mut statement = conn.prepare_cached(
            "SELECT object_uid, object_kind, namespace, object_name, MIN(start_us) FROM spans
             WHERE object_name = ?1 AND object_uid IS NOT NULL AND (?2 IS NULL OR namespace = ?2)
               AND (lower(object_kind) = lower(?3)
                    OR lower(json_extract(body, '$.attributes.\"k8s.resource\"')) = lower(?3))
             GROUP BY object_uid ORDER BY MIN(start_us)",
        )?;
        let rows = statement.query_map(rusqlite::params![name, namespace, kind], |r| {
            Ok(ObjectRef { uid: r.get(0)?, kind: r.get(1)?, namespace: r.get(2)?, name: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The earliest span about the object `uid`: what names it.
    pub fn first_object_span(&self, uid: &str) -> Result<Option<StoredSpan>, StoreError> {
        let conn = lock(&self.read);
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM spans WHERE object_uid = ?1 ORDER BY start_us, span_id LIMIT 1")?
            .query_row([uid], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(StoreError::from)).transpose()
    }

    /// Every span about the object `uid` (its writes and the Events about
    /// it), in time order.
    pub fn object_spans(&self, uid: &str) -> Result<Vec<StoredSpan>, StoreError> {
        let conn = lock(&self.read);
        let mut statement =
            conn.prepare_cached("SELECT body FROM spans WHERE object_uid = ?1 ORDER BY start_us, span_id")?;
        let rows = statement.query_map([uid], |r| r.get::<_, String>(0))?;
        rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
    }
}

/// The WHERE clause of a search and its values.
fn conditions(query: &TraceQuery) -> Result<(String, Vec<Value>), StoreError> {
    let mut clauses = vec!["1 = 1".to_owned()];
    let mut values: Vec<Value> = Vec::new();
    fn bind(clauses: &mut Vec<String>, values: &mut Vec<Value>, sql: &str, value: Value) {
        values.push(value);
        clauses.push(sql.replace('?', &format!("?{}", values.len())));
    }
    if let Some(s) = &query.service {
        bind(&mut clauses, &mut values, "service = ?", Value::Text(s.clone()));
    }
    if let Some(o) = &query.operation {
        bind(&mut clauses, &mut values, "operation = ?", Value::Text(o.clone()));
    }
    if let Some(t) = query.start_us {
        bind(&mut clauses, &mut values, "start_us >= ?", Value::Integer(t));
    }
    if let Some(t) = query.end_us {
        bind(&mut clauses, &mut values, "start_us <= ?", Value::Integer(t));
    }
    if let Some(d) = query.min_duration_us {
        bind(&mut clauses, &mut values, "duration_us >= ?", Value::Integer(d));
    }
    if let Some(d) = query.max_duration_us {
        bind(&mut clauses, &mut values, "duration_us <= ?", Value::Integer(d));
    }
    if !query.roots.is_empty() {
        let mut placeholders = Vec::new();
        for root in &query.roots {
            values.push(Value::Text(root.clone()));
            placeholders.push(format!("?{}", values.len()));
        }
        clauses.push(format!("root IN ({})", placeholders.join(", ")));
    }
    for (key, value) in &query.tags {
        match schema::tag_column(key) {
            Some("is_error") => {
                let truth = matches!(value.as_str(), "true" | "1");
                bind(&mut clauses, &mut values, "is_error = ?", Value::Integer(truth as i64));
            }
            Some(column) => bind(&mut clauses, &mut values, &format!("{column} = ?"), Value::Text(value.clone())),
            None => {
                if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')) {
                    return Err(StoreError::BadQuery(format!(
                        "tag key `{key}`: use letters, digits, '.', '_', '-' or '/'"
                    )));
                }
                // Booleans are stored as JSON true/false, read back as 1/0.
                let text = match value.as_str() {
                    "true" => "1".to_owned(),
                    "false" => "0".to_owned(),
                    v => v.to_owned(),
                };
                bind(
                    &mut clauses,
                    &mut values,
                    &format!("CAST(json_extract(body, '$.attributes.\"{key}\"') AS TEXT) = ?"),
                    Value::Text(text),
                );
            }
        }
    }
    Ok((clauses.join(" AND "), values))
}
