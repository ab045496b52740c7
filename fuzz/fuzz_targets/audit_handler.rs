//! The real `POST /audit` handler (axum router, decompression, decoding,
//! queueing) on arbitrary bodies, plain and declared as gzip. Whatever the
//! body, the answer is 200, 400 or 413, never a 5xx or a panic, and a 200
//! says how many records were accepted: exactly the number queued.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kausal::decode::DecodeOptions;
use kausal::pipeline::{ClusterSlots, IngestQueue, QueueReceiver};
use kausal::sources::auth::Auth;
use kausal::sources::webhook::{self, WebhookState};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    queue: Mutex<QueueReceiver>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let (queue, receiver) = IngestQueue::new(1 << 20);
        let state = Arc::new(WebhookState {
            queue,
            auth: Auth { insecure_no_auth: true, ..Auth::default() },
            decode: DecodeOptions::default(),
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            default_cluster: "".into(),
            clusters: Arc::new(ClusterSlots::new(4, Duration::from_secs(600), "".into())),
            bad_records_logged_per_batch: 0,
            recorder: None,
            wal: None,
            inflight: webhook::inflight_budget(64 << 20),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        Harness { runtime, router: webhook::router(state), queue: Mutex::new(receiver) }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let Some((&flags, body)) = data.split_first() else { return };
    let mut request = Request::post("/audit").header("content-type", "application/json");
    if flags & 1 == 1 {
        request = request.header("content-encoding", "gzip");
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let response = h.runtime.block_on(h.router.clone().oneshot(request)).unwrap();
    let status = response.status();
    let text = h.runtime.block_on(axum::body::to_bytes(response.into_body(), usize::MAX)).unwrap();
    assert!(
        matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE),
        "answer {status} to a {}-byte body: {}",
        body.len(),
        String::from_utf8_lossy(&text)
    );
    let mut queued = 0;
    let queue = h.queue.lock().unwrap();
    while let Some(batch) = queue.recv_batch_timeout(Duration::ZERO) {
        queued += batch.records.len();
    }
    if status == StatusCode::OK {
        let answer: serde_json::Value = serde_json::from_slice(&text).expect("a 200 answers JSON");
        assert_eq!(answer["accepted"].as_u64(), Some(queued as u64), "{answer}");
    } else {
        assert_eq!(queued, 0, "an error answer queued records");
    }
});
