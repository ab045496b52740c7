//! A long audit stream made of the real capture, for fault tests: the
//! captured batches in their original order, repeated, each repetition made
//! new work by rewriting every UUID (auditIDs, object and Event UIDs), the
//! `default` namespace and every timestamp. Also the sender, which retries on
//! any error as the apiserver's webhook backend does, and the spans an
//! uninterrupted kausal makes of exactly what was sent.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kausal::core::ids::{self, SpanId};
use kausal::core::{CoreConfig, Engine, Record, Span};
use kausal::decode::{DecodeOptions, decode};
use kausal::sources::webhook::body_decode_options;
use serde_json::Value;

use super::fixture;

/// The capture's batches, as the apiserver POSTed them.
pub fn capture() -> Vec<Value> {
    let dir = fixture("rollout-basic/audit-batches");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()).collect()
}

/// `iterations` repetitions of the capture, each shifted in time past the
/// previous one and with its own UUIDs and namespace.
pub fn workload(iterations: u32) -> Vec<String> {
    let batches = capture();
    let times: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let mut found = Vec::new();
            collect_times(b, &mut found);
            found
        })
        .collect();
    let span = times.iter().max().unwrap() - times.iter().min().unwrap();
    // The next repetition starts two minutes after the previous one ended.
    let step = span + 120_000_000;
    let mut out = Vec::new();
    for i in 0..iterations {
        for batch in &batches {
            let mut b = batch.clone();
            rewrite(&mut b, i, step * i64::from(i));
            out.push(serde_json::to_string(&b).unwrap());
        }
    }
    out
}

/// Repetition `iteration` of the capture alone (its own UUIDs and
/// namespace), every timestamp moved by `shift` microseconds.
pub fn repetition(iteration: u32, shift: i64) -> Vec<String> {
    capture()
        .into_iter()
        .map(|mut b| {
            rewrite(&mut b, iteration, shift);
            serde_json::to_string(&b).unwrap()
        })
        .collect()
}

fn collect_times(v: &Value, out: &mut Vec<i64>) {
    match v {
        Value::String(s) => out.extend(parse_time(s).map(|(t, _)| t)),
        Value::Array(a) => a.iter().for_each(|x| collect_times(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_times(x, out)),
        _ => {}
    }
}

/// An RFC 3339 UTC timestamp (`2021-01-01T00:00:00.123456Z`) as Unix
/// microseconds and its number of fraction digits.
fn parse_time(s: &str) -> Option<(i64, usize)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let t: jiff::Timestamp = s.parse().ok()?;
    let digits = s.find('.').map_or(0, |dot| s.len() - dot - 2);
    Some((t.as_microsecond(), digits))
}

fn format_time(micros: i64, digits: usize) -> String {
    let t = jiff::Timestamp::from_microsecond(micros).unwrap();
    let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if digits == 0 {
        return format!("{whole}Z");
    }
    let fraction = format!("{:06}", micros.rem_euclid(1_000_000));
    format!("{whole}.{}Z", &fraction[..digits.min(6)])
}

fn rewrite(v: &mut Value, iteration: u32, shift: i64) {
    let namespace = format!("loop-{iteration}");
    match v {
        Value::String(s) => {
            if let Some((t, digits)) = parse_time(s) {
                *s = format_time(t + shift, digits);
            } else if ids::parse_uuid(s).is_some() {
                // A different first group per repetition: still a UUID, still unique.
                let first = u32::from_str_radix(&s[..8], 16).unwrap() ^ (0x9e37_79b1u32.wrapping_mul(iteration + 1));
                *s = format!("{first:08x}{}", &s[8..]);
            } else if s.contains("/namespaces/default") {
                *s = s.replace("/namespaces/default", &format!("/namespaces/{namespace}"));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, iteration, shift)),
        Value::Object(o) => {
            for (key, value) in o.iter_mut() {
                if key == "namespace" && value.as_str() == Some("default") {
                    *value = Value::String(namespace.clone());
                } else {
                    rewrite(value, iteration, shift);
                }
            }
        }
        _ => {}
    }
}

/// The core configuration matching `kausal serve --settle 1s --event-linger 2s`.
pub fn core_config() -> CoreConfig {
    CoreConfig { settle: 1_000_000, event_linger: 2_000_000, ..CoreConfig::default() }
}

/// The flags that go with [`core_config`].
pub const CORE_FLAGS: [&str; 4] = ["--settle", "1s", "--event-linger", "2s"];

pub fn records_of(bodies: &[String]) -> Vec<Record> {
    let now = jiff::Timestamp::now().as_microsecond();
    bodies
        .iter()
        .flat_map(|b| decode(b.as_bytes(), &body_decode_options(DecodeOptions::default(), now)).records)
        .collect()
}

/// What an uninterrupted kausal makes of these bodies, in this order.
pub fn expected_spans(bodies: &[String]) -> Vec<Span> {
    expected_spans_with(bodies, core_config())
}

/// The same under another core configuration.
pub fn expected_spans_with(bodies: &[String], config: CoreConfig) -> Vec<Span> {
    let mut engine = Engine::new(config);
    for record in records_of(bodies) {
        engine.ingest(record);
        engine.advance(None);
    }
    engine.flush();
    engine.drain_spans()
}

/// Every span ID a record can give rise to: a write's, an Event's (by UID or
/// by name), or a repeat's. Used where arrival order may decide between an
/// Event's repeat span and a span event on the original.
pub fn possible_span_ids(record: &Record) -> Vec<SpanId> {
    match record {
        Record::Write(w) => vec![ids::span_id_for_write(&w.audit_id)],
        Record::Event(e) => {
            let mut identities = vec![e.key_by_name()];
            identities.extend(e.uid.as_deref().map(str::to_owned));
            identities
                .iter()
                .flat_map(|id| [ids::span_id_for_event(id), ids::span_id_for_event_repeat(id, e.count)])
                .collect()
        }
    }
}

/// What the senders saw.
#[derive(Default)]
pub struct SendStats {
    pub accepted: AtomicUsize,
    pub attempts: AtomicUsize,
    /// Non-200 answers and connection errors, by `status reason` (or `connect`).
    pub refusals: Mutex<BTreeMap<String, usize>>,
    /// 429 answers that carried `Retry-After`, and those that did not.
    pub retry_after: AtomicUsize,
    pub no_retry_after: AtomicUsize,
}

impl SendStats {
    pub fn refused(&self, what: &str) -> usize {
        self.refusals.lock().unwrap().iter().filter(|(k, _)| k.contains(what)).map(|(_, n)| n).sum()
    }
}

/// POSTs `body` until it is answered 200, retrying on any error (connection
/// refused, 429, 503...) as the apiserver does, waiting `Retry-After` (capped
/// at `max_wait`) or `max_wait` when absent. Fails the test after `deadline`.
pub async fn send_until_accepted(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    stats: &SendStats,
    max_wait: Duration,
    deadline: Instant,
) {
    loop {
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let wait = match client.post(url).header("content-type", "application/json").body(body.to_owned()).send().await
        {
            Ok(r) if r.status().is_success() => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if status == 429 {
                    let counter = if retry_after.is_some() { &stats.retry_after } else { &stats.no_retry_after };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                let text = r.text().await.unwrap_or_default();
                let reason = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                assert!(matches!(status, 429 | 503), "answer {status} {reason}: {text}");
                *stats.refusals.lock().unwrap().entry(format!("{status} {reason}")).or_default() += 1;
                retry_after.map_or(max_wait, |s| Duration::from_secs(s).min(max_wait))
            }
            Err(_) => {
                *stats.refusals.lock().unwrap().entry("connect".to_owned()).or_default() += 1;
                max_wait
            }
        };
        assert!(Instant::now() < deadline, "a batch was still not accepted at the deadline");
        tokio::time::sleep(wait).await;
    }
}

/// Resident memory of a process, at its peak (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}
