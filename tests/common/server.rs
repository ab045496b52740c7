//! Runs the real `kausal` binary: development certificates from `kausal cert`,
//! and `kausal serve` as a child process on loopback ports.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const KAUSAL: &str = env!("CARGO_BIN_EXE_kausal");

/// A directory of certificates written by `kausal cert`.
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(KAUSAL)
            .args(["cert", "--out"])
            .arg(dir.path())
            .args(["--san", "localhost,127.0.0.1", "--server-url", "https://127.0.0.1:8443/audit"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "kausal cert failed");
        Certs { dir }
    }

    /// `serve` flags for these certificates over mTLS, exporting to `otlp_endpoint`.
    #[allow(dead_code)] // not every test binary starts a server this way
    pub fn mtls_serve_args(&self, otlp_endpoint: &str) -> Vec<String> {
        let path = |name: &str| self.path(name).display().to_string();
        vec![
            "--tls-cert".into(),
            path("server.crt"),
            "--tls-key".into(),
            path("server.key"),
            "--client-ca".into(),
            path("ca.crt"),
            "--otlp-endpoint".into(),
            otlp_endpoint.into(),
        ]
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// An HTTPS client that trusts this CA and, if given, presents `identity`'s client certificate.
    pub fn client(&self, identity: Option<&Certs>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.read("ca.crt")).unwrap()])
            .timeout(Duration::from_secs(60));
        if let Some(who) = identity {
            let mut pem = who.read("client.crt");
            pem.extend(who.read("client.key"));
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `kausal serve`.
pub struct Kausal {
    child: Option<Child>,
    pub port: u16,
    pub ops_port: u16,
    /// The query API's port (`--query-listen`), unless the test chose it.
    pub query_port: u16,
    log: tempfile::NamedTempFile,
}

impl Kausal {
    /// Starts `kausal serve` with `args` plus loopback listeners, no Event
    /// watch, and JSON logs captured for [`Kausal::log`].
    pub fn start(args: &[&str]) -> Kausal {
        Kausal::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Kausal {
        Kausal::start_at(free_port(), free_port(), args, env)
    }

    /// Starts on given ports (for a client that must know the port in advance,
    /// like an apiserver's webhook kubeconfig).
    pub fn start_at(port: u16, ops_port: u16, args: &[&str], env: &[(&str, &str)]) -> Kausal {
        let log = tempfile::NamedTempFile::new().unwrap();
        let query_port = free_port();
        let query = format!("127.0.0.1:{query_port}");
        let child = Command::new(KAUSAL)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}"), "--ops-listen", &format!("127.0.0.1:{ops_port}")])
            // No Event watch unless a test asks for one.
            .args(if args.contains(&"--watch-events") { &[][..] } else { &["--watch-events", "off"][..] })
            .args(["--log-format", "json"])
            // Each server its own query port: parallel tests never meet on Jaeger's.
            .args(if args.contains(&"--query-listen") { vec![] } else { vec!["--query-listen", query.as_str()] })
            .args(args)
            .envs(env.iter().copied())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Kausal { child: Some(child), port, ops_port, query_port, log }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn query_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.query_port)
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops_port)
    }

    /// Waits until `/healthz` answers; fails with the server's log if it exits first.
    pub async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(self.ops_url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("kausal serve exited with {status} before becoming healthy:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "kausal serve not healthy after 60s:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.ops_url("/metrics")).await.unwrap().text().await.unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child's PID, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill -TERM {pid}");
        child.wait().unwrap()
    }

    /// SIGKILL: no shutdown, no flush, exactly a crash.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for a process that is expected to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Kausal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of a Prometheus sample line `name{labels} value`, summed over
/// every line whose name and labels contain all of `parts`.
pub fn metric_sum(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
