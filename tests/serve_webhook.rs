//! `kausal serve` as a real process over real TLS, driven by a real HTTP client,
//! exporting to a real OTLP/gRPC receiver (opentelemetry-proto's service).
//!
//! The real capture's audit batches are POSTed in the order the apiserver sent
//! them; what arrives at the receiver must equal what `replay` makes of the
//! same batches, whose causal shape the replay tests pin down.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use common::otlp_receiver::{self, Receiver};
use common::server::{Certs, KAUSAL, Kausal, metric_sum};

fn capture_batches() -> Vec<Vec<u8>> {
    let dir = common::fixture("rollout-basic/audit-batches");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn tls_args(certs: &Certs) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        certs.path("server.crt").display().to_string(),
        "--tls-key".into(),
        certs.path("server.key").display().to_string(),
    ]
}

fn args_ref(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// What replay makes of the capture, keyed like the receiver's view.
fn replayed_capture() -> std::collections::BTreeMap<otlp_receiver::SpanKey, otlp_receiver::SpanShape> {
    otlp_receiver::shape_of(&common::rollout_audit().spans)
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    client.post(url).header("content-type", "application/json").body(body).send().await.expect("request sent")
}

/// POSTs until the answer is not 429 (as the apiserver's webhook does), for at most a minute.
async fn post_retrying(client: &reqwest::Client, url: &str, body: &[u8]) -> StatusCode {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(client, url, body.to_vec()).await.status();
        if status != StatusCode::TOO_MANY_REQUESTS || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_posted_over_mtls_arrives_with_the_replayed_causal_shape_and_sigterm_drains_it() {
    let receiver = Receiver::start(true).await;
    let certs = Certs::generate();
    let mut args = tls_args(&certs);
    args.extend(["--client-ca".into(), certs.path("ca.crt").display().to_string()]);
    args.extend(["--otlp-endpoint".into(), receiver.endpoint()]);
    let record = tempfile::tempdir().unwrap();
    args.extend(["--record-dir".into(), record.path().display().to_string()]);
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;

    let client = certs.client(Some(&certs));
    let url = server.url("https", "/audit/rollout");
    for body in capture_batches() {
        let response = post(&client, &url, body).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    }
    let metrics = server.metrics().await;
    assert_eq!(metric_sum(&metrics, "kausal_webhook_batches_total", &["cluster=\"rollout\""]), 186.0);
    assert!(
        metric_sum(&metrics, "kausal_audit_events_received_total", &["verb=\"create\"", "stage=\"ResponseComplete\""])
            > 0.0
    );

    // SIGTERM right away: everything acknowledged must still be linked and exported.
    let status = server.terminate();
    assert!(status.success(), "exit {status}:\n{}", server.log());

    let expected = replayed_capture();
    let received = otlp_receiver::spans_by_id(&receiver.received);
    assert!(
        received == expected,
        "the served traces differ from the replayed ones: {}",
        otlp_receiver::describe_difference(&expected, &received)
    );
    let clusters = otlp_receiver::resource_values(&receiver.received, "k8s.cluster.name");
    assert!(!clusters.is_empty() && clusters.iter().all(|c| c == "rollout"), "{clusters:?}");

    // --record-dir kept every body as it arrived: replaying it gives the same traces.
    let recorded = record.path().join("rollout/audit-batches");
    assert_eq!(std::fs::read_dir(&recorded).unwrap().count(), 186);
    let replayed = otlp_receiver::shape_of(&common::replay_paths(&[recorded]).spans);
    assert!(replayed == expected, "{}", otlp_receiver::describe_difference(&expected, &replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_must_chain_to_the_client_ca() {
    let receiver = Receiver::start(true).await;
    let certs = Certs::generate();
    let stranger = Certs::generate();
    let mut args = tls_args(&certs);
    args.extend(["--client-ca".into(), certs.path("ca.crt").display().to_string()]);
    args.extend(["--otlp-endpoint".into(), receiver.endpoint()]);
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;
    let url = server.url("https", "/audit");
    let body = capture_batches().remove(0);

    let ok = post(&certs.client(Some(&certs)), &url, body.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);

    // No certificate, and a certificate from another CA: the handshake fails.
    let none = certs.client(None).post(&url).body(body.clone()).send().await;
    assert!(none.is_err(), "a client without a certificate got {:?}", none.map(|r| r.status()));
    let other = certs.client(Some(&stranger)).post(&url).body(body).send().await;
    assert!(other.is_err(), "a certificate from another CA got {:?}", other.map(|r| r.status()));
    assert!(server.log().contains("TLS handshake failed"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_checked() {
    let receiver = Receiver::start(true).await;
    let certs = Certs::generate();
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    writeln!(tokens, "# rotated tokens\nold-token\nnew-token").unwrap();
    let mut args = tls_args(&certs);
    args.extend(["--token-file".into(), tokens.path().display().to_string()]);
    args.extend(["--otlp-endpoint".into(), receiver.endpoint()]);
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;
    let url = server.url("https", "/audit");
    let body = capture_batches().remove(0);
    let client = certs.client(None);

    let good = client.post(&url).bearer_auth("new-token").body(body.clone()).send().await.unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let bad = client.post(&url).bearer_auth("guess").body(body.clone()).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers().get("www-authenticate").unwrap(), "Bearer");
    let missing = client.post(&url).body(body).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let metrics = server.metrics().await;
    assert_eq!(metric_sum(&metrics, "kausal_rejected_requests_total", &["status=\"401\""]), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_answers_and_good_records_survive_bad_neighbours() {
    let receiver = Receiver::start(true).await;
    let certs = Certs::generate();
    let mut args = tls_args(&certs);
    args.extend(["--client-ca".into(), certs.path("ca.crt").display().to_string()]);
    args.extend(["--otlp-endpoint".into(), receiver.endpoint(), "--max-body-bytes".into(), "100Ki".into()]);
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;
    let client = certs.client(Some(&certs));
    let url = server.url("https", "/audit/mixed");

    // Not JSON at all: 400 with a JSON error naming the problem.
    let garbage = post(&client, &url, b"<html>not an audit batch</html>".to_vec()).await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = garbage.json().await.unwrap();
    assert_eq!(error["reason"], "invalid_json", "{error}");

    // Over the limit, declared or after decompression: 413.
    let batches = capture_batches();
    let big = batches.iter().find(|b| b.len() > 100 * 1024).expect("a capture batch over 100 KiB").clone();
    assert_eq!(post(&client, &url, big.clone()).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&big).unwrap();
    let compressed_big = gz.finish().unwrap();
    assert!(compressed_big.len() < 100 * 1024);
    let response = client.post(&url).header("content-encoding", "gzip").body(compressed_big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "a gzip bomb must not get past the limit");

    // A batch with one broken item among good ones: 200, the good ones kept.
    let small = batches.iter().find(|b| b.len() < 60 * 1024 && b.len() > 10 * 1024).unwrap();
    let mut list: serde_json::Value = serde_json::from_slice(small).unwrap();
    let items = list["items"].as_array_mut().unwrap();
    let good_items = items.len();
    items.insert(1, serde_json::json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "x", "verb": 42}));
    let response = post(&client, &url, serde_json::to_vec(&list).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["bad"], 1, "{answer}");

    // gzip-compressed bodies are accepted.
    let gzipped_source = batches.iter().find(|b| b.len() < 100 * 1024 && *b != small).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(gzipped_source).unwrap();
    let response =
        client.post(&url).header("content-encoding", "gzip").body(gz.finish().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());

    let metrics = server.metrics().await;
    assert_eq!(metric_sum(&metrics, "kausal_bad_records_total", &["reason=\"invalid_audit_event\""]), 1.0);
    assert_eq!(metric_sum(&metrics, "kausal_rejected_requests_total", &["status=\"400\""]), 1.0);
    assert_eq!(metric_sum(&metrics, "kausal_rejected_requests_total", &["status=\"413\""]), 2.0);
    let received_events = metric_sum(&metrics, "kausal_audit_events_received_total", &["cluster=\"mixed\""]);
    assert!(received_events >= good_items as f64, "{received_events} < {good_items}");
    assert!(server.log().contains("bad record skipped"), "the bad record is logged:\n{}", server.log());

    assert!(server.terminate().success(), "{}", server.log());
    // The good neighbours of the bad record were linked and exported.
    let expected: Vec<String> = {
        let decoded = kausal::decode::decode(small, &Default::default());
        let mut engine = kausal::core::Engine::new(Default::default());
        decoded.records.into_iter().for_each(|r| engine.ingest(r));
        engine.flush();
        engine.drain_spans().into_iter().map(|s| s.name).collect()
    };
    assert!(!expected.is_empty());
    let received: Vec<String> = otlp_receiver::spans_by_id(&receiver.received).into_values().map(|v| v.1).collect();
    for name in &expected {
        assert!(received.contains(name), "span {name} of the mixed batch was not exported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_accepts_again_once_drained_losing_nothing() {
    // The receiver holds every export, so the exporter falls behind, linking
    // pauses, and the small ingest queue fills.
    let receiver = Receiver::start(false).await;
    let certs = Certs::generate();
    let mut args = tls_args(&certs);
    args.extend(["--client-ca".into(), certs.path("ca.crt").display().to_string()]);
    args.extend(["--otlp-endpoint".into(), receiver.endpoint()]);
    args.extend(["--queue-capacity", "100", "--export-queue-batches", "1", "--settle", "0s"].map(String::from));
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;
    let client = certs.client(Some(&certs));
    let url = server.url("https", "/audit");
    let batches = capture_batches();

    let mut sent = 0;
    let mut saw_429 = None;
    for body in &batches {
        let response = post(&client, &url, body.clone()).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            saw_429 = Some(body.clone());
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        sent += 1;
        // Give the worker a tick to link and block on the held exporter.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let rejected = saw_429.expect("the queue never filled");
    let ready = reqwest::get(server.ops_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "a saturated server is not ready");
    let why = ready.text().await.unwrap();
    assert!(why.contains("linking is paused behind the exporter"), "/readyz says why: {why}");
    assert_eq!(metric_sum(&server.metrics().await, "kausal_linking_paused", &[]), 1.0);

    receiver.open();
    assert_eq!(post_retrying(&client, &url, &rejected).await, StatusCode::OK);
    for body in &batches[sent + 1..] {
        assert_eq!(post_retrying(&client, &url, body).await, StatusCode::OK);
    }
    assert_eq!(metric_sum(&server.metrics().await, "kausal_linking_paused", &[]), 0.0, "linking resumed");
    assert!(server.terminate().success(), "{}", server.log());
    // With no settle delay, records are linked in arrival order, so parents may
    // differ from a replay's; what must hold is that nothing acknowledged is lost.
    let expected = replayed_capture();
    let received = otlp_receiver::spans_by_id(&receiver.received);
    assert!(
        otlp_receiver::span_ids(&received) == otlp_receiver::span_ids(&expected),
        "acknowledged records were lost: {}",
        otlp_receiver::describe_difference(&expected, &received)
    );
}

#[test]
fn serve_refuses_to_start_without_authentication_or_certificates() {
    let out = std::process::Command::new(KAUSAL)
        .args(["serve", "--listen", "127.0.0.1:0", "--ops-listen", "off", "--watch-events", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--client-ca") && stderr.contains("--insecure-no-auth"), "{stderr}");

    let out = std::process::Command::new(KAUSAL)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "off",
            "--watch-events",
            "off",
            "--insecure-no-auth",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert") && stderr.contains("kausal cert"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_defaults_that_flags_override() {
    let receiver = Receiver::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kausal.toml");
    std::fs::write(
        &config,
        format!(
            "insecure-http = true\ninsecure_no_auth = true\notlp-endpoint = \"{}\"\nmax-body-bytes = \"1Ki\"\n",
            receiver.endpoint()
        ),
    )
    .unwrap();
    let mut server = Kausal::start(&["--config", config.to_str().unwrap(), "--max-body-bytes", "2Ki"]);
    server.wait_healthy().await;
    let client = reqwest::Client::new();
    let url = server.url("http", "/events");
    let event = serde_json::json!({
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": "web-1.17f", "namespace": "default", "uid": "0b8a4a7e-63cf-4b0e-a8a0-1f7f0f3c2a11"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
        "reason": "Scheduled", "message": "Successfully assigned default/web-1 to node-1",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-11-22T10:00:00Z", "lastTimestamp": "2026-11-22T10:00:00Z", "count": 1
    });
    // 1.5 KiB: over the file's 1Ki, under the flag's 2Ki.
    let mut body = serde_json::to_vec(&event).unwrap();
    body.resize(1536, b' ');
    let response = post(&client, &url, body).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    assert!(server.terminate().success(), "{}", server.log());
    let received = otlp_receiver::spans_by_id(&receiver.received);
    assert!(received.values().any(|v| v.1.contains("Scheduled")), "{received:?}");
}

/// A first `serve` with no trace backend listening: it names the endpoint it
/// exports to at start-up, in every export error and in `/readyz`; every
/// documented series is on `/metrics` at 0 before anything happened; and
/// the shutdown message says where unexported spans went (with a data dir:
/// the write-ahead log keeps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trace_backend_serve_says_where_it_exports_and_what_happens() {
    let certs = Certs::generate();
    let data = tempfile::tempdir().unwrap();
    let dead = "http://127.0.0.1:9"; // the discard port: nothing listens on loopback
    let mut args = tls_args(&certs);
    args.extend(["--client-ca".into(), certs.path("ca.crt").display().to_string()]);
    args.extend(["--otlp-endpoint".into(), dead.into(), "--data-dir".into(), data.path().display().to_string()]);
    args.extend(["--settle", "0s", "--event-linger", "0s", "--shutdown-timeout", "2s"].map(String::from));
    let mut server = Kausal::start(&args_ref(&args));
    server.wait_healthy().await;

    let metrics = server.metrics().await;
    for series in [
        "kausal_linking_paused 0",
        "kausal_bad_records_total{reason=\"invalid_json\"} 0",
        "kausal_wal_refused_appends_total{reason=\"full\"} 0",
        "kausal_trace_roots_total{cluster=\"_default\",kind=\"automation\"} 0",
        "kausal_spans_export_failed_total{reason=\"retries_exhausted\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == series), "/metrics lacks `{series}` at start-up:\n{metrics}");
    }
    assert!(server.log().contains(dead), "the start-up log names the OTLP endpoint: {}", server.log());

    let client = certs.client(Some(&certs));
    let body = capture_batches().into_iter().next().unwrap();
    assert_eq!(post(&client, &server.url("https", "/audit"), body).await.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    let why = loop {
        let ready = reqwest::get(server.ops_url("/readyz")).await.unwrap();
        let text = ready.text().await.unwrap();
        if text.contains("OTLP exports to") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(why.contains(&format!("OTLP exports to {dead} are failing")), "/readyz: {why}");
    let failed = server.log().lines().any(|l| l.contains("OTLP export failed") && l.contains(dead));
    assert!(failed, "export errors name the endpoint: {}", server.log());

    let status = server.terminate();
    assert!(!status.success(), "spans left unexported make the shutdown fail");
    assert!(
        server.log().contains("stay in the write-ahead log"),
        "with --data-dir the message says the spans are kept: {}",
        server.log()
    );
}
