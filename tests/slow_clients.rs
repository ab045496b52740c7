//! Slow clients against the real `kausal serve` over real TLS: a connection
//! that never starts the handshake, one that trickles its headers
//! (slowloris), and one that trickles its body are each cut off by the
//! server's timeouts, while a well-behaved client POSTing at the same time is
//! served. Bounds below are liveness limits (the test gives up rather than
//! hang), not timing assertions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use common::otlp_receiver::Receiver;
use common::server::{Certs, Kausal};

const TOKEN: &str = "slow-clients-token";
/// How long the test waits for the server to act before calling it a hang.
const GIVE_UP: Duration = Duration::from_secs(40);

fn tls_connector(certs: &Certs) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.path("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Writes `head` then `trickle` one byte at a time, slowly, until the server
/// closes the connection or answers. Returns what the server sent back.
async fn trickle(connector: TlsConnector, port: u16, head: String, trickle: &'static [u8]) -> String {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("handshake");
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    for byte in trickle.iter().cycle() {
        if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {} // nothing yet: keep trickling
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let receiver = Receiver::start(true).await;
    let certs = Certs::generate();
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut tokens, TOKEN.as_bytes()).unwrap();
    let args = [
        "--tls-cert".to_owned(),
        certs.path("server.crt").display().to_string(),
        "--tls-key".to_owned(),
        certs.path("server.key").display().to_string(),
        "--token-file".to_owned(),
        tokens.path().display().to_string(),
        "--otlp-endpoint".to_owned(),
        receiver.endpoint(),
        "--header-timeout".to_owned(),
        "1s".to_owned(),
        "--request-timeout".to_owned(),
        "3s".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Kausal::start(&args);
    server.wait_healthy().await;
    let port = server.port;
    let connector = tls_connector(&certs);

    // 1. A TCP connection that never sends a ClientHello.
    let silent = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 16];
        tcp.read(&mut buf).await
    });
    // 2. Slowloris: headers one byte at a time, never finished.
    let slow_headers = tokio::spawn(trickle(
        connector.clone(),
        port,
        "POST /audit HTTP/1.1\r\nHost: localhost\r\n".to_owned(),
        b"X-Slow: aaaaaaaaaaaaaaaaaaaa",
    ));
    // 3. Complete headers, then a body trickled far slower than the request timeout allows.
    let slow_body = tokio::spawn(trickle(
        connector.clone(),
        port,
        format!(
            "POST /audit HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        ),
        b"{\"kind\":\"EventList\",",
    ));

    // Meanwhile a well-behaved client is served.
    let body = std::fs::read(common::fixture("rollout-basic/audit-batches/batch-000024.json")).unwrap();
    let client = certs.client(None);
    let ok = client
        .post(server.url("https", "/audit"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), reqwest::StatusCode::OK, "{}", ok.text().await.unwrap_or_default());

    let silent = tokio::time::timeout(GIVE_UP, silent).await.expect("the silent connection was never closed").unwrap();
    assert!(matches!(silent, Ok(0) | Err(_)), "the silent connection got data: {silent:?}");
    let headers = tokio::time::timeout(GIVE_UP, slow_headers).await.expect("the slowloris was never cut off").unwrap();
    assert!(headers.is_empty() || headers.starts_with("HTTP/1.1 408"), "slowloris got: {headers}");
    let body = tokio::time::timeout(GIVE_UP, slow_body).await.expect("the slow body was never cut off").unwrap();
    assert!(body.is_empty() || body.starts_with("HTTP/1.1 408"), "slow body got: {body}");

    // And the server still serves after them.
    let after = client.get(server.url("https", "/healthz")).send().await.unwrap();
    assert!(after.status().is_success());
    assert!(server.terminate().success(), "{}", server.log());
}
