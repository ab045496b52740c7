//! Query strings as Jaeger's query service reads them: repeated keys
//! (`traceID`, `tag`), µs times, Go-style durations (`1.5s`, `300ms`).

use std::collections::BTreeMap;

use crate::store::TraceQuery;

/// Jaeger's default search window when `start` is absent: the last two days.
pub const DEFAULT_LOOKBACK_US: i64 = 2 * 24 * 3600 * 1_000_000;
/// Jaeger's default number of traces per search.
pub const DEFAULT_LIMIT: usize = 100;
/// No search returns more traces than this.
pub const MAX_LIMIT: usize = 1_500;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ParamError(pub String);

/// Every `key=value` of a query string, in order, repeated keys kept.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The first non-empty value of `key`.
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// A trace search from `/api/traces`' parameters, and the trace IDs it
/// names (which, as in Jaeger, replace the search).
pub fn jaeger_search(pairs: &[(String, String)], now_us: i64) -> Result<(TraceQuery, Vec<String>), ParamError> {
    let ids: Vec<String> = pairs.iter().filter(|(k, _)| k == "traceID").map(|(_, v)| v.to_ascii_lowercase()).collect();
    let end = first(pairs, "end").map(|v| micros(v, "end")).transpose()?.unwrap_or(now_us);
    let start = match (first(pairs, "start"), first(pairs, "lookback")) {
        (Some(v), _) => micros(v, "start")?,
        (None, Some(l)) if l != "custom" => end - duration_us(l, "lookback")?,
        _ => end - DEFAULT_LOOKBACK_US,
    };
    let mut tags = Vec::new();
    if let Some(json) = first(pairs, "tags") {
        let map: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| ParamError(format!("tags: not a JSON object of strings ({e})")))?;
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push((k, v));
        }
    }
    for (_, tag) in pairs.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = tag.split_once(':').ok_or_else(|| ParamError(format!("tag `{tag}`: expected key:value")))?;
        tags.push((k.to_owned(), v.to_owned()));
    }
    let limit = match first(pairs, "limit") {
        Some(v) => v.parse::<usize>().map_err(|_| ParamError(format!("limit `{v}`: not a number")))?,
        None => DEFAULT_LIMIT,
    };
    let query = TraceQuery {
        service: first(pairs, "service").map(str::to_owned),
        operation: first(pairs, "operation").map(str::to_owned),
        tags,
        start_us: Some(start),
        end_us: Some(end),
        min_duration_us: first(pairs, "minDuration").map(|v| duration_us(v, "minDuration")).transpose()?,
        max_duration_us: first(pairs, "maxDuration").map(|v| duration_us(v, "maxDuration")).transpose()?,
        roots: Vec::new(),
        limit: limit.clamp(1, MAX_LIMIT),
    };
    Ok((query, ids))
}

fn micros(v: &str, name: &str) -> Result<i64, ParamError> {
    v.parse().map_err(|_| ParamError(format!("{name} `{v}`: expected microseconds since the epoch")))
}

/// A Go duration (`1h30m`, `1.5s`, `300ms`, `20us`, `5µs`, `100ns`) in µs.
pub fn duration_us(text: &str, name: &str) -> Result<i64, ParamError> {
    let bad = || ParamError(format!("{name} `{text}`: expected a duration such as 300ms, 1.5s or 2h"));
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 0.001,
            "us" | "µs" | "μs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            _ => return Err(bad()),
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Ok(total.round() as i64)
}

/// A search from `/api/v3/traces`' `query.*` parameters (RFC 3339 times,
/// Go durations, `query.attributes` as a JSON object or repeated
/// `query.attributes.KEY=VALUE`).
pub fn v3_search(pairs: &[(String, String)], now_us: i64) -> Result<TraceQuery, ParamError> {
    let time = |key: &str| -> Result<Option<i64>, ParamError> {
        first(pairs, key)
            .map(|v| {
                v.parse::<jiff::Timestamp>()
                    .map(|t| t.as_microsecond())
                    .map_err(|_| ParamError(format!("{key} `{v}`: expected an RFC 3339 time")))
            })
            .transpose()
    };
    let end = time("query.start_time_max")?.unwrap_or(now_us);
    let start = time("query.start_time_min")?.unwrap_or(end - DEFAULT_LOOKBACK_US);
    let mut tags = Vec::new();
    if let Some(json) = first(pairs, "query.attributes") {
        let map: BTreeMap<String, String> = serde_json::from_str(json)
            .map_err(|e| ParamError(format!("query.attributes: not a JSON object of strings ({e})")))?;
        tags.extend(map);
    }
    for (k, v) in pairs {
        if let Some(key) = k.strip_prefix("query.attributes.") {
            tags.push((key.to_owned(), v.clone()));
        }
    }
    let limit = ["query.num_traces", "query.search_depth"]
        .iter()
        .find_map(|k| first(pairs, k))
        .map(|v| v.parse::<usize>().map_err(|_| ParamError(format!("query.num_traces `{v}`: not a number"))))
        .transpose()?
        .unwrap_or(DEFAULT_LIMIT);
    Ok(TraceQuery {
        service: first(pairs, "query.service_name").map(str::to_owned),
        operation: first(pairs, "query.operation_name").map(str::to_owned),
        tags,
        start_us: Some(start),
        end_us: Some(end),
        min_duration_us: first(pairs, "query.duration_min")
            .map(|v| duration_us(v, "query.duration_min"))
            .transpose()?,
        max_duration_us: first(pairs, "query.duration_max")
            .map(|v| duration_us(v, "query.duration_max"))
            .transpose()?,
        roots: Vec::new(),
        limit: limit.clamp(1, MAX_LIMIT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_jaeger_writes_them() {
        assert_eq!(duration_us("1.5s", "d"), Ok(1_500_000));
        assert_eq!(duration_us("300ms", "d"), Ok(300_000));
        assert_eq!(duration_us("1h30m", "d"), Ok(5_400_000_000));
        assert_eq!(duration_us("20us", "d"), Ok(20));
        assert_eq!(duration_us("5µs", "d"), Ok(5));
        assert!(duration_us("5 parsecs", "d").is_err());
        assert!(duration_us("", "d").is_err());
    }

    #[test]
    fn a_search_takes_repeated_tags_and_ids_and_defaults_to_two_days() {
        let p = pairs(Some(
            "service=kubectl&tag=k8s.verb:create&tag=error:true&tags=%7B%22user.name%22%3A%22alice%22%7D&traceID=AB&traceID=cd",
        ));
        let (q, ids) = jaeger_search(&p, 10 * DEFAULT_LOOKBACK_US).unwrap();
        assert_eq!(ids, ["ab", "cd"]);
        assert_eq!(q.service.as_deref(), Some("kubectl"));
        assert!(q.tags.contains(&("k8s.verb".into(), "create".into())));
        assert!(q.tags.contains(&("error".into(), "true".into())));
        assert!(q.tags.contains(&("user.name".into(), "alice".into())));
        assert_eq!(q.end_us, Some(10 * DEFAULT_LOOKBACK_US));
        assert_eq!(q.start_us, Some(9 * DEFAULT_LOOKBACK_US));
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(jaeger_search(&pairs(Some("tag=novalue")), 0).is_err());
    }
}
