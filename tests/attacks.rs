//! Findings of the reliability attack run, each reproduced on the real
//! binary over real TLS: names that would leave `--record-dir`, recordings
//! replaced after a restart, cluster slots used up by rejected requests or
//! held by idle clusters, a body of unknown records answered 200, and the
//! bearer scheme's case.

mod common;

use std::io::Write as _;
use std::path::Path;

use reqwest::StatusCode;

use common::otlp_receiver::{self, Receiver};
use common::server::{Certs, Kausal, metric_sum};
use common::workload::{self, CORE_FLAGS};

fn first_batch() -> Vec<u8> {
    std::fs::read(common::fixture("rollout-basic/audit-batches/batch-000001.json")).unwrap()
}

fn mtls_args(certs: &Certs, receiver: &Receiver, extra: &[&str]) -> Vec<String> {
    let mut args = certs.mtls_serve_args(&receiver.endpoint());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn start(args: &[String]) -> Kausal {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Kausal::start(&refs);
    server.wait_healthy().await;
    server
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    client.post(url).header("content-type", "application/json").body(body).send().await.unwrap()
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cluster_name_leaves_the_record_directory_and_the_unnamed_cluster_has_its_own() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let outer = tempfile::tempdir().unwrap();
    let record = outer.path().join("record");
    let mut server = start(&mtls_args(&certs, &receiver, &["--record-dir", record.to_str().unwrap()])).await;
    let client = certs.client(Some(&certs));
    // What an HTTP client normalises away (`..`, `%2e%2e`) is sent as is by
    // curl --path-as-is, as a hostile client would.
    for name in ["%2e%2e", "%2E%2E", "..", "."] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "--http1.1", "--data-binary"])
            .arg(format!("@{}", common::fixture("rollout-basic/audit-batches/batch-000001.json").display()))
            .args([
                "--cacert",
                certs.path("ca.crt").to_str().unwrap(),
                "--cert",
                certs.path("client.crt").to_str().unwrap(),
            ])
            .args(["--key", certs.path("client.key").to_str().unwrap()])
            .arg(server.url("https", &format!("/audit/{name}")))
            .output();
        match out {
            Ok(out) => assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "400",
                "/audit/{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) => eprintln!("SKIPPED: curl is not installed, /audit/{name} is not sent"),
        }
    }
    for name in ["a.b", "a..b", "Prod", "_default"] {
        let response = post(&client, &server.url("https", &format!("/audit/{name}")), first_batch()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "/audit/{name}");
        let text = response.text().await.unwrap();
        assert!(text.contains("invalid_cluster_name"), "/audit/{name}: {text}");
    }
    for path in ["/audit", "/audit/default"] {
        assert_eq!(post(&client, &server.url("https", path), first_batch()).await.status(), StatusCode::OK, "{path}");
    }
    assert!(server.terminate().success(), "{}", server.log());
    let outside: Vec<String> = files_under(outer.path()).into_iter().filter(|f| !f.starts_with("record/")).collect();
    assert!(outside.is_empty(), "written outside --record-dir: {outside:?}");
    let recorded = files_under(&record);
    assert!(recorded.iter().any(|f| f.starts_with("_default/audit-batches/")), "{recorded:?}");
    assert!(recorded.iter().any(|f| f.starts_with("default/audit-batches/")), "{recorded:?}");
    assert_eq!(recorded.len(), 2, "the unnamed cluster and `default` are two clusters: {recorded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_the_recording_and_never_replaces_a_file() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let record = tempfile::tempdir().unwrap();
    let args =
        mtls_args(&certs, &receiver, &["--record-dir", record.path().to_str().unwrap(), "--cluster-name", "prod"]);
    let client = certs.client(Some(&certs));
    let batches: Vec<Vec<u8>> = (1..=3)
        .map(|n| std::fs::read(common::fixture(&format!("rollout-basic/audit-batches/batch-{n:06}.json"))).unwrap())
        .collect();

    let mut server = start(&args).await;
    for body in &batches[..2] {
        assert_eq!(post(&client, &server.url("https", "/audit"), body.clone()).await.status(), StatusCode::OK);
    }
    assert!(server.terminate().success(), "{}", server.log());
    let mut server = start(&args).await;
    assert_eq!(post(&client, &server.url("https", "/audit"), batches[2].clone()).await.status(), StatusCode::OK);
    assert!(server.terminate().success(), "{}", server.log());

    let dir = record.path().join("prod/audit-batches");
    let names = files_under(&dir);
    assert_eq!(names, ["batch-000001.json", "batch-000002.json", "batch-000003.json"]);
    for (name, body) in names.iter().zip(&batches) {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), body, "{name} was replaced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_take_no_cluster_slot() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut server = start(&mtls_args(&certs, &receiver, &["--max-clusters", "2"])).await;
    let client = certs.client(Some(&certs));
    for n in 0..8 {
        let url = server.url("https", &format!("/audit/empty-{n}"));
        assert_eq!(post(&client, &url, Vec::new()).await.status(), StatusCode::BAD_REQUEST);
        let unknown = br#"{"items": [{}, {}]}"#.to_vec();
        assert_eq!(post(&client, &url, unknown).await.status(), StatusCode::BAD_REQUEST);
    }
    for name in ["first", "second"] {
        let url = server.url("https", &format!("/audit/{name}"));
        assert_eq!(
            post(&client, &url, first_batch()).await.status(),
            StatusCode::OK,
            "a real cluster {name} gets a slot"
        );
    }
    let third = post(&client, &server.url("https", "/audit/third"), first_batch()).await;
    assert_eq!(third.status(), StatusCode::BAD_REQUEST);
    assert!(third.text().await.unwrap().contains("too_many_clusters"), "the limit still holds for accepted batches");
    assert!(server.terminate().success(), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_records_is_a_400_that_counts_them() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut server = start(&mtls_args(&certs, &receiver, &[])).await;
    let client = certs.client(Some(&certs));
    let items = vec!["{}"; 100_000].join(",");
    let body = format!(r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{items}]}}"#);
    let response = post(&client, &server.url("https", "/audit"), body.into_bytes()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["bad"], 100_000, "{answer}");
    assert!(server.terminate().success(), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    writeln!(tokens, "s3cret").unwrap();
    let args = vec![
        "--tls-cert".to_string(),
        certs.path("server.crt").display().to_string(),
        "--tls-key".into(),
        certs.path("server.key").display().to_string(),
        "--token-file".into(),
        tokens.path().display().to_string(),
        "--otlp-endpoint".into(),
        receiver.endpoint(),
    ];
    let mut server = start(&args).await;
    let client = certs.client(None);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = client
            .post(server.url("https", "/audit"))
            .header("authorization", format!("{scheme} s3cret"))
            .body(first_batch())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    assert!(server.terminate().success(), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_off_mid_body_keeps_its_complete_records() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut server = start(&mtls_args(&certs, &receiver, &[])).await;
    let client = certs.client(Some(&certs));
    let whole = first_batch();
    let complete: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    let items = complete["items"].as_array().unwrap().len();
    let cut = whole[..whole.len() / 2].to_vec();
    let response = post(&client, &server.url("https", "/audit"), cut).await;
    assert_eq!(response.status(), StatusCode::OK, "the complete records are kept, so the apiserver hears 200");
    let answer: serde_json::Value = response.json().await.unwrap();
    let accepted = answer["accepted"].as_u64().unwrap();
    assert!(accepted > 0 && (accepted as usize) < items, "{answer} of {items}");
    assert_eq!(answer["bad"], 1, "the cut-off tail is one bad record: {answer}");
    assert!(server.terminate().success(), "{}", server.log());
}

/// Bodies still arriving are bounded in bytes across the process: one slow
/// body holding most of `--max-inflight-bytes` makes the next one a 429
/// (which the apiserver retries), and its bytes come back when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_are_bounded_in_bytes() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let extra = ["--max-inflight-bytes", "1Mi", "--max-body-bytes", "1Mi", "--request-timeout", "60s"];
    let mut server = start(&mtls_args(&certs, &receiver, &extra)).await;
    let client = certs.client(Some(&certs));
    let url = server.url("https", "/audit");

    // 900 KiB declared, 1 KiB sent, then nothing: it holds its reservation.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![b' '; 1024])).await.unwrap();
    let slow = {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            client.post(&url).header("content-length", (900 * 1024).to_string()).body(body).send().await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = client
        .post(&url)
        .header("content-type", "application/json")
        .header("content-length", (900 * 1024).to_string())
        .body(vec![b' '; 900 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    assert!(second.text().await.unwrap().contains("inflight_bytes_full"));

    drop(tx); // the slow body ends (short of its declared length)
    let _ = slow.await;
    assert_eq!(post(&client, &url, first_batch()).await.status(), StatusCode::OK, "the budget came back");
    assert!(server.terminate().success(), "{}", server.log());
}

/// Connections beyond `--max-connections` are closed as soon as they are
/// accepted, instead of exhausting file descriptors; the slots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    use tokio::io::AsyncReadExt as _;
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut server = start(&mtls_args(&certs, &receiver, &["--max-connections", "2"])).await;
    let address = server.url("https", "").trim_start_matches("https://").trim_end_matches('/').to_owned();
    let idle: Vec<tokio::net::TcpStream> =
        futures::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(address.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the third connection is closed at once: {read:?}");
    drop(idle);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let client = certs.client(Some(&certs));
    assert_eq!(post(&client, &server.url("https", "/audit"), first_batch()).await.status(), StatusCode::OK);
    assert!(server.terminate().success(), "{}", server.log());
}

/// A process whose open-file limit cannot hold what `--max-connections`
/// allows says so at start-up (the attack used every descriptor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_file_descriptors_for_the_connection_cap_are_reported_at_start_up() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut args = mtls_args(&certs, &receiver, &["--max-connections", "1024", "--listen", "127.0.0.1:0"]);
    args.extend(["--ops-listen", "off", "--watch-events", "off"].map(String::from));
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" serve \"$@\"")
        .arg(common::server::KAUSAL)
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the open-file limit is below what --max-connections can use"), "{log}");
    assert!(log.contains("limit=256"), "{log}");
}

/// An answer that retrying cannot change (INVALID_ARGUMENT) gives the spans
/// up at once, counted and logged; UNAVAILABLE is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_otlp_answer_is_not_retried_for_ten_minutes() {
    use common::server::metric_sum;
    let certs = Certs::generate();
    let client = certs.client(Some(&certs));
    let rejecting = Receiver::start_failing(tonic::Code::InvalidArgument).await;
    let mut server = start(&mtls_args(&certs, &rejecting, &["--settle", "0s", "--event-linger", "0s"])).await;
    assert_eq!(post(&client, &server.url("https", "/audit"), first_batch()).await.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        let m = server.metrics().await;
        if metric_sum(&m, "kausal_spans_export_failed_total", &["reason=\"rejected\""]) > 0.0
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(metric_sum(&metrics, "kausal_spans_export_failed_total", &["reason=\"rejected\""]) > 0.0, "{metrics}");
    assert_eq!(metric_sum(&metrics, "kausal_export_retries_total", &[]), 0.0, "a final answer is not retried");
    assert!(server.log().contains("giving up on exporting spans: the endpoint's answer is final"), "{}", server.log());
    assert!(server.terminate().success(), "nothing is left to export: {}", server.log());

    let unavailable = Receiver::start_failing(tonic::Code::Unavailable).await;
    let mut server = start(&mtls_args(&certs, &unavailable, &["--settle", "0s", "--event-linger", "0s"])).await;
    assert_eq!(post(&client, &server.url("https", "/audit"), first_batch()).await.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let m = server.metrics().await;
        if metric_sum(&m, "kausal_export_retries_total", &[]) >= 2.0 {
            assert_eq!(metric_sum(&m, "kausal_spans_export_failed_total", &["reason=\"rejected\""]), 0.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "UNAVAILABLE was not retried: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill();
}

/// Cluster slots are given up by clusters idle past `--wal-context` when a
/// new one needs them, and a restart with fewer slots than the log has
/// clusters neither skips their entries nor keeps them in the log for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clusters_give_their_slots_up_and_a_restart_with_fewer_slots_skips_nothing() {
    let certs = Certs::generate();
    let client = certs.client(Some(&certs));
    // The first run exports nothing: every entry is still in the log at the kill.
    let receiver = Receiver::start(false).await;
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let mut flags = vec!["--data-dir", &data_dir];
    flags.extend(CORE_FLAGS);
    let bodies: Vec<Vec<String>> = (0..3).map(|i| workload::repetition(i, 0)[..30].to_vec()).collect();
    let mut expected = std::collections::BTreeMap::new();
    for cluster in &bodies {
        expected.extend(otlp_receiver::shape_of(&workload::expected_spans(cluster)));
    }

    // Two slots, and nobody is idle for an hour: a third cluster is refused.
    let mut first = flags.clone();
    first.extend(["--max-clusters", "2", "--wal-context", "1h"]);
    let mut server = start(&mtls_args(&certs, &receiver, &first)).await;
    let (port, ops) = (server.port, server.ops_port);
    for (name, cluster) in ["a", "b"].iter().zip(&bodies) {
        for body in cluster {
            let answer =
                post(&client, &server.url("https", &format!("/audit/{name}")), body.clone().into_bytes()).await;
            assert_eq!(answer.status(), StatusCode::OK, "{name}: {}", answer.text().await.unwrap());
        }
    }
    let refused = post(&client, &server.url("https", "/audit/c"), bodies[2][0].clone().into_bytes()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("too_many_clusters"));
    server.kill();

    // One slot now, and a short context period. Both recovered clusters are
    // replayed; once they are idle, c takes a slot.
    let mut second: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    second.extend(["--max-clusters", "1", "--wal-context", "2s"].map(String::from));
    let mut args = certs.mtls_serve_args(&receiver.endpoint());
    args.extend(second);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Kausal::start_at(port, ops, &refs, &[]);
    server.wait_healthy().await;
    receiver.open();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut c_bodies = bodies[2].iter();
    let mut body = c_bodies.next().unwrap();
    loop {
        let answer = post(&client, &server.url("https", "/audit/c"), body.clone().into_bytes()).await;
        match answer.status() {
            StatusCode::OK => match c_bodies.next() {
                Some(next) => body = next,
                None => break,
            },
            StatusCode::BAD_REQUEST => {
                assert!(answer.text().await.unwrap().contains("too_many_clusters"));
                assert!(std::time::Instant::now() < deadline, "no idle cluster ever gave its slot to c");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let metrics = server.metrics().await;
        let got = otlp_receiver::spans_by_id(&receiver.received);
        if got.len() >= expected.len() && metric_sum(&metrics, "kausal_wal_unacknowledged_entries", &[]) == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entries left in the log or spans missing: {}",
            otlp_receiver::describe_difference(&expected, &got)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = otlp_receiver::spans_by_id(&receiver.received);
    assert_eq!(got, expected, "{}", otlp_receiver::describe_difference(&expected, &got));
    assert!(server.terminate().success(), "{}", server.log());
}

/// Connections without a client certificate are capped apart from the rest
/// and closed when no request on them authenticates in time; a certificate
/// or a token that authenticates is not held to either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_capped_and_closed_in_time() {
    let certs = Certs::generate();
    let receiver = Receiver::start(true).await;
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    writeln!(tokens, "s3cret").unwrap();
    let token_file = tokens.path().display().to_string();
    let flags = ["--token-file", &token_file, "--max-unauthenticated-connections", "2", "--header-timeout", "2s"];
    let mut server = start(&mtls_args(&certs, &receiver, &flags)).await;
    let url = server.url("https", "/audit");
    let closed_early = |metrics: &str, reason: &str| {
        metric_sum(metrics, "kausal_connections_closed_early_total", &[&format!("reason=\"{reason}\"")])
    };

    // Two anonymous clients each keep a connection open (HTTP keep-alive)
    // after their 401: the cap is full.
    let anonymous: Vec<reqwest::Client> = (0..2).map(|_| certs.client(None)).collect();
    for client in &anonymous {
        assert_eq!(post(client, &url, first_batch()).await.status(), StatusCode::UNAUTHORIZED);
    }
    let third = certs.client(None).post(&url).body(first_batch()).send().await;
    assert!(third.is_err(), "a third anonymous connection is closed at once: {third:?}");
    // A client certificate is not held to the cap.
    let mtls = certs.client(Some(&certs));
    assert_eq!(post(&mtls, &url, first_batch()).await.status(), StatusCode::OK);

    // The anonymous connections never authenticate: they are closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while closed_early(&server.metrics().await, "not_authenticated") < 2.0 {
        assert!(std::time::Instant::now() < deadline, "the anonymous connections were never closed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // With room again, a token authenticates its connection, which then
    // outlives the deadline and keeps serving.
    let with_token = certs.client(None);
    let send = || with_token.post(&url).bearer_auth("s3cret").body(first_batch()).send();
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    let metrics = server.metrics().await;
    assert_eq!(closed_early(&metrics, "not_authenticated"), 2.0, "an authenticated connection was closed");
    assert_eq!(closed_early(&metrics, "max_unauthenticated"), 1.0);
    assert!(server.terminate().success(), "{}", server.log());
}

/// A batch goes out as several OTLP requests; when one is refused, the retry
/// sends only what was not accepted. The receiver accepts five requests,
/// then answers five UNAVAILABLE (more than the OTLP client's own three
/// retries, so kausal sees the failure), and so on; no span may arrive twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_retried_without_resending_what_was_accepted() {
    let certs = Certs::generate();
    let client = certs.client(Some(&certs));
    let failures = otlp_receiver::Failures { code: tonic::Code::Unavailable, accepted: 5, refused: 5 };
    let receiver = Receiver::start_failing_in_runs(failures).await;
    let mut server = start(&mtls_args(&certs, &receiver, &CORE_FLAGS)).await;
    let bodies = workload::workload(1);
    let expected = otlp_receiver::shape_of(&workload::expected_spans(&bodies));
    let stats = workload::SendStats::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let url = server.url("https", "/audit");
    for body in &bodies {
        workload::send_until_accepted(&client, &url, body, &stats, std::time::Duration::from_millis(200), deadline)
            .await;
    }
    loop {
        let got = otlp_receiver::spans_by_id(&receiver.received);
        if got.len() >= expected.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans missing: {}",
            otlp_receiver::describe_difference(&expected, &got)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = server.metrics().await;
    assert!(server.terminate().success(), "{}", server.log());
    let got = otlp_receiver::spans_by_id(&receiver.received);
    let arrived = otlp_receiver::span_count(&receiver.received);
    assert!(metric_sum(&metrics, "kausal_export_retries_total", &[]) > 0.0, "no request was refused");
    assert_eq!(arrived - got.len(), 0, "spans arrived twice");
    assert_eq!(got, expected, "{}", otlp_receiver::describe_difference(&expected, &got));
    assert_eq!(metric_sum(&metrics, "kausal_spans_exported_total", &[]), expected.len() as f64);
}
