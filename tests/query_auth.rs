//! The query API names the cluster's users and objects: on an address other
//! than loopback it takes the webhook's TLS and authentication. (The
//! listener binds the wildcard address, which is not loopback; the test's
//! requests still go to 127.0.0.1.)

mod common;

use std::io::Write as _;

use common::server::{Certs, Kausal};

#[tokio::test]
async fn off_loopback_the_query_api_needs_a_token_or_a_client_certificate() {
    let certs = Certs::generate();
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    writeln!(tokens, "query-s3cret").unwrap();
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let query = format!("0.0.0.0:{port}");
    let path = |n: &str| certs.path(n).display().to_string();
    let args = [
        "--tls-cert",
        &path("server.crt"),
        "--tls-key",
        &path("server.key"),
        "--client-ca",
        &path("ca.crt"),
        "--token-file",
        &tokens.path().display().to_string(),
        "--query-listen",
        &query,
    ]
    .map(str::to_owned);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Kausal::start(&refs);
    server.wait_healthy().await;
    let url = format!("https://127.0.0.1:{port}/api/services");

    let anonymous = certs.client(None);
    let refused = anonymous.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let viewer = anonymous.get(format!("https://127.0.0.1:{port}/viewer/")).send().await.unwrap();
    assert_eq!(viewer.status(), 401, "the viewer's page is behind the same check");
    let wrong = anonymous.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let with_token = anonymous.get(&url).bearer_auth("query-s3cret").send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    let body: serde_json::Value = with_token.json().await.unwrap();
    assert!(body["data"].is_array(), "{body}");
    let with_certificate = certs.client(Some(&certs)).get(&url).send().await.unwrap();
    assert_eq!(with_certificate.status(), 200);

    // Plain HTTP is not served there at all.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/api/services")).await.map(|r| r.status() != 200).unwrap_or(true)
    );
    assert!(server.terminate().success(), "{}", server.log());
}

#[tokio::test]
async fn on_loopback_the_query_api_answers_without_credentials() {
    let mut tokens = tempfile::NamedTempFile::new().unwrap();
    writeln!(tokens, "webhook-s3cret").unwrap();
    let token_file = tokens.path().display().to_string();
    // The webhook needs the token; the loopback query listener does not.
    let mut server = Kausal::start(&["--insecure-http", "--token-file", &token_file]);
    server.wait_healthy().await;
    let webhook = reqwest::Client::new().post(server.url("http", "/audit")).body("{}").send().await.unwrap();
    assert_eq!(webhook.status(), 401);
    let answer = reqwest::get(server.query_url("/api/services")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(server.terminate().success(), "{}", server.log());
    // No OTLP endpoint: said once, at start-up.
    let log = server.log();
    assert_eq!(log.matches("spans are stored only").count(), 1, "{log}");
}
