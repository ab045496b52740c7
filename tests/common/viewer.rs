//! Runs the real `kausal view` over recordings, on a loopback port it
//! chooses and announces, for the query API and browser tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::KAUSAL;

pub struct View {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl View {
    /// Starts `kausal view PATHS --listen 127.0.0.1:0` and waits for the line
    /// that names its address.
    pub fn start(paths: &[&Path]) -> View {
        let mut child = Command::new(KAUSAL)
            .arg("view")
            .args(paths)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(at) = line.find("open http://") {
                let url = &line[at + 5..];
                let base = url.split("/viewer/").next().unwrap().to_owned();
                return View { child, base };
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("kausal view announced no address:\n{}", seen.join("\n"));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::get(self.url(path)).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, body)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
