//! The trace store under `--data-dir` survives a SIGKILL: every span of a
//! batch that was answered 200 is in the store after the restart (the
//! write-ahead log replays what was not yet stored), and exactly once
//! (a span stored before the kill and again after is one row).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::server::{Kausal, free_port};
use common::workload::{CORE_FLAGS, SendStats, expected_spans, send_until_accepted, workload};
use kausal::core::span::SpanKind;
use serde_json::Value;

/// Every span ID the query API holds, with how many traces hold it.
async fn stored_span_ids(query_port: u16) -> BTreeMap<String, usize> {
    let url = format!("http://127.0.0.1:{query_port}/api/traces?limit=1500&start=0&end=4102444800000000");
    let Ok(response) = reqwest::get(url).await else { return BTreeMap::new() };
    let body: Value = response.json().await.unwrap_or_default();
    let mut ids = BTreeMap::new();
    for trace in body["data"].as_array().into_iter().flatten() {
        for span in trace["spans"].as_array().unwrap() {
            *ids.entry(span["spanID"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    ids
}

async fn wait_for_all(query_port: u16, wanted: &BTreeSet<String>, server: &Kausal) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored = stored_span_ids(query_port).await;
        if wanted.iter().all(|id| stored.contains_key(id)) {
            return stored;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = wanted.iter().filter(|id| !stored.contains_key(*id)).take(10).collect();
            panic!(
                "{} of {} spans missing after the restart, e.g. {missing:?}\n{}",
                missing.len(),
                wanted.len(),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_sigkill_loses_no_acknowledged_span_from_the_store_and_duplicates_none() {
    let data = tempfile::tempdir().unwrap();
    let (port, ops, query) = (free_port(), free_port(), free_port());
    let query_listen = format!("127.0.0.1:{query}");
    let data_dir = data.path().display().to_string();
    // The capture's records are from November 2026: a retention of ten
    // years keeps them (retention counts from a span's start).
    let mut args = vec![
        "--insecure-http",
        "--insecure-no-auth",
        "--data-dir",
        &data_dir,
        "--query-listen",
        &query_listen,
        "--retention",
        "3650d",
    ];
    args.extend(CORE_FLAGS);
    let bodies = workload(2);
    let wanted: BTreeSet<String> =
        expected_spans(&bodies).iter().filter(|s| s.kind == SpanKind::Write).map(|s| hex::encode(s.span_id)).collect();
    assert!(wanted.len() > 100, "the workload has {} writes", wanted.len());

    let mut first = Kausal::start_at(port, ops, &args, &[]);
    first.wait_healthy().await;
    let client = reqwest::Client::new();
    let stats = SendStats::default();
    let url = first.url("http", "/audit");
    for body in &bodies {
        send_until_accepted(
            &client,
            &url,
            body,
            &stats,
            Duration::from_millis(200),
            Instant::now() + Duration::from_secs(60),
        )
        .await;
    }
    // Every batch was answered 200; some spans are stored, most are not yet
    // linked (the settle window). Now a crash.
    first.kill();

    let mut second = Kausal::start_at(port, ops, &args, &[]);
    second.wait_healthy().await;
    let stored = wait_for_all(query, &wanted, &second).await;
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "spans stored in more than one trace: {twice:?}");

    // A clean stop and a third start: the log's context replay adds no row.
    let before = stored.len();
    assert!(second.terminate().success(), "{}", second.log());
    let mut third = Kausal::start_at(port, ops, &args, &[]);
    third.wait_healthy().await;
    let again = wait_for_all(query, &wanted, &third).await;
    assert_eq!(again.len(), before, "the span count changed across a clean restart");
    assert!(again.values().all(|n| *n == 1));
    assert!(third.terminate().success(), "{}", third.log());
}
