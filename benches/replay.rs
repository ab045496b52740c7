//! `kausal replay` end to end, as a user runs it, against its read+parse floor.
//!
//!   cargo bench --bench replay                 the long stream: replay vs floor, alternating, one build
//!   cargo bench --bench replay -- big 10G      one audit log of that size: throughput and peak RSS,
//!                                              to /dev/null and to a loopback OTLP/gRPC receiver
//!   cargo bench --bench replay -- scaling      per-event cost from 10 k to 10 M events of stream
//!   cargo bench --bench replay -- --test       CI's smoke run: two rounds, once each
//!
//! The long stream is the real capture (`tests/fixtures/rollout-basic`)
//! repeated round after round as JSON text: every UUID (auditIDs, object
//! UIDs, owner references) gets the round in its first 8 hex digits and every
//! timestamp moves 10 minutes per round, so no two rounds share an identity
//! or a linking window. The floor is `kausal replay --parse-only` over the
//! same files: read, gunzip if needed, and parse each record into the
//! borrowed view the decoder reads, nothing else.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KAUSAL: &str = env!("CARGO_BIN_EXE_kausal");

/// How far each round is moved in time.
const ROUND_SECONDS: i64 = 600;

/// `text` with every UUID renumbered for `round` and every timestamp moved.
fn round_text(text: &str, round: u32) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if is_uuid(&bytes[i..]) && (i == 0 || !bytes[i - 1].is_ascii_hexdigit()) {
            out.push_str(&text[copied..i]);
            out.push_str(&format!("{round:08x}"));
            i += 8;
            copied = i;
            continue;
        }
        if let Some(len) = timestamp_len(&bytes[i..])
            && (i == 0 || bytes[i - 1] == b'"')
        {
            out.push_str(&text[copied..i]);
            let original = &text[i..i + len];
            let moved: jiff::Timestamp = original.parse::<jiff::Timestamp>().expect("RFC 3339")
                + jiff::SignedDuration::from_secs(i64::from(round) * ROUND_SECONDS);
            if original.contains('.') {
                let digits = original.split('.').nth(1).map_or(0, |f| f.len() - 1);
                out.push_str(&format!("{:.*}", digits, moved));
            } else {
                out.push_str(&format!("{moved:.0}"));
            }
            i += len;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() >= 36
        && b[..36]
            .iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// `2026-11-30T06:04:45.341948Z` or `2026-11-30T06:04:45Z`: its length.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < 20 || !shape.iter().zip(b).all(|(s, c)| if *s == b'd' { c.is_ascii_digit() } else { s == c }) {
        return None;
    }
    let mut len = 19;
    if b[len] == b'.' {
        len += 1;
        while len < b.len() && b[len].is_ascii_digit() {
            len += 1;
        }
    }
    (len < b.len() && b[len] == b'Z').then_some(len + 1)
}

/// Writes `rounds` rounds of the capture as batch files into `dir`.
fn write_stream(dir: &Path, rounds: u32) -> (u64, usize) {
    let batches = support::capture_batches();
    let mut bytes = 0;
    for round in 0..rounds {
        for (n, batch) in batches.iter().enumerate() {
            let text = round_text(batch, round);
            bytes += text.len() as u64;
            std::fs::write(dir.join(format!("batch-{round:04}-{n:06}.json")), text).unwrap();
        }
    }
    (bytes, batches.len() * rounds as usize)
}

/// Runs `kausal replay ARGS`, returning its wall time in seconds and its peak RSS.
fn timed_replay(args: &[&str], env: &[(&str, String)]) -> (f64, u64) {
    let start = Instant::now();
    let mut child = Command::new(KAUSAL)
        .arg("replay")
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // wait4 gives this child's own peak RSS.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let seconds = start.elapsed().as_secs_f64();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "kausal replay {args:?} failed");
    let _ = child.try_wait();
    (seconds, usage.ru_maxrss as u64 * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The long stream: replay to `--out /dev/null` against the floor, alternating.
fn long_stream(smoke: bool) {
    let dir = tempfile::tempdir().unwrap();
    let rounds = if smoke { 2 } else { 40 };
    let (bytes, files) = write_stream(dir.path(), rounds);
    let path = dir.path().to_str().unwrap();
    let repeats = if smoke { 1 } else { 3 };
    let (mut floor, mut replay, mut rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..repeats {
        floor.push(timed_replay(&["--parse-only", "-q", path], &[]).0);
        let (seconds, peak) = timed_replay(&["--format", "otlp-json", "--out", "/dev/null", "-q", path], &[]);
        replay.push(seconds);
        rss = rss.max(peak);
    }
    let (floor, replay) = (median(floor), median(replay));
    println!("long stream: {rounds} rounds of the capture, {files} files, {:.0} MB", bytes as f64 / 1e6);
    println!(
        "  floor (--parse-only):                          {floor:>6.2} s  {:>6.1} MB/s",
        bytes as f64 / 1e6 / floor
    );
    println!(
        "  replay --format otlp-json --out /dev/null:     {replay:>6.2} s  {:>6.1} MB/s  peak RSS {:.0} MiB",
        bytes as f64 / 1e6 / replay,
        rss as f64 / (1 << 20) as f64
    );
    println!("  replay / floor (throughput): {:.2}", floor / replay);
}

/// One audit log of about `size` bytes, as JSON lines, from rounds of the capture.
fn write_big_log(path: &Path, size: u64) -> (u64, u64) {
    let batches = support::capture_batches();
    let mut lines = Vec::new();
    for batch in &batches {
        let list: serde_json::Value = serde_json::from_str(batch).unwrap();
        for item in list["items"].as_array().unwrap() {
            lines.push(serde_json::to_string(item).unwrap());
        }
    }
    let template = lines.join("\n") + "\n";
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut written, mut events, mut round) = (0u64, 0u64, 0u32);
    while written < size {
        let text = round_text(&template, round);
        out.write_all(text.as_bytes()).unwrap();
        written += text.len() as u64;
        events += lines.len() as u64;
        round += 1;
    }
    out.flush().unwrap();
    (written, events)
}

fn parse_size(text: &str) -> u64 {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().expect("a size like 10G");
    n * match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        other => panic!("unknown unit {other}"),
    }
}

/// A big log, replayed to /dev/null and to a loopback OTLP receiver.
fn big(size: u64, dir: Option<PathBuf>) {
    let dir = dir.unwrap_or_else(std::env::temp_dir);
    let path = dir.join("kausal-bench-big-audit.log");
    let start = Instant::now();
    let (bytes, events) = write_big_log(&path, size);
    println!(
        "big log: {:.2} GB, {events} audit events, written in {:.0} s ({})",
        bytes as f64 / 1e9,
        start.elapsed().as_secs_f64(),
        path.display()
    );
    let file = path.to_str().unwrap();
    let (floor, floor_rss) = timed_replay(&["--parse-only", file], &[]);
    println!(
        "  floor (--parse-only):            {floor:>7.1} s  {:>6.1} MB/s  peak RSS {:>5.0} MiB",
        mb(bytes, floor),
        mib(floor_rss)
    );
    let (null, null_rss) = timed_replay(&["--format", "otlp-json", "--out", "/dev/null", file], &[]);
    println!(
        "  otlp-json to /dev/null:          {null:>7.1} s  {:>6.1} MB/s  peak RSS {:>5.0} MiB",
        mb(bytes, null),
        mib(null_rss)
    );
    // The floor again, now that the file has been read twice: the first
    // run may have read from the disk, not the page cache.
    let (again, _) = timed_replay(&["--parse-only", file], &[]);
    println!("  floor again:                     {again:>7.1} s  {:>6.1} MB/s", mb(bytes, again));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, received) = runtime.block_on(support::counting_receiver());
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))];
    let (otlp, otlp_rss) = timed_replay(&["--format", "otlp-json", "--out", "/dev/null", file], &env);
    println!(
        "  and OTLP/gRPC to loopback:       {otlp:>7.1} s  {:>6.1} MB/s  peak RSS {:>5.0} MiB  ({} spans received)",
        mb(bytes, otlp),
        mib(otlp_rss),
        received.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = std::fs::remove_file(&path);
}

fn mb(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Per-event cost as the stream grows: decode and link, in process, round
/// after round, timing each decade of events.
fn scaling(smoke: bool) {
    use kausal::core::{CoreConfig, Engine};
    use kausal::decode::{DecodeOptions, decode};
    let batches = support::capture_batches();
    let per_round: u64 = support::audit_event_count(&batches);
    let top: u64 = if smoke { 10_000 } else { 10_000_000 };
    let marks: Vec<u64> = [10_000u64, 100_000, 1_000_000, 10_000_000].into_iter().filter(|m| *m <= top).collect();
    let mut engine = Engine::new(CoreConfig::default());
    let (mut events, mut round, mut spans) = (0u64, 0u32, 0usize);
    // Only decoding and linking are timed; making each round's text is not.
    let (mut timed, mut last) = (std::time::Duration::ZERO, (std::time::Duration::ZERO, 0u64));
    let start = Instant::now();
    println!("per-event cost (decode and link, in process), by events of stream so far:");
    println!("  {:>12}  {:>14}  {:>12}  {:>10}", "events", "ns/event (decade)", "events/s", "RSS MiB");
    for mark in marks {
        while events < mark {
            let texts: Vec<String> = batches.iter().map(|batch| round_text(batch, round)).collect();
            let began = Instant::now();
            for text in &texts {
                for record in decode(text.as_bytes(), &DecodeOptions::default()).records {
                    engine.ingest(record);
                }
                engine.advance(None);
                spans += engine.drain_spans().len();
            }
            timed += began.elapsed();
            events += per_round;
            round += 1;
        }
        let decade = (timed - last.0).as_secs_f64();
        println!(
            "  {:>12}  {:>14.0}  {:>12.0}  {:>10.0}",
            events,
            decade * 1e9 / (events - last.1) as f64,
            (events - last.1) as f64 / decade,
            mib(support::rss_bytes())
        );
        last = (timed, events);
    }
    engine.flush();
    spans += engine.drain_spans().len();
    println!(
        "  ({spans} spans; {:.0} s decoding and linking, {:.0} s in all with making the rounds' text)",
        timed.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test" || a == "--quick");
    if let Some(at) = args.iter().position(|a| a == "big") {
        let size = args.get(at + 1).map_or(10 << 30, |s| parse_size(s));
        big(if smoke { 4 << 20 } else { size }, std::env::var_os("KAUSAL_BENCH_DIR").map(PathBuf::from));
        return;
    }
    if args.iter().any(|a| a == "scaling") {
        scaling(smoke);
        return;
    }
    long_stream(smoke);
    if smoke {
        big(4 << 20, None);
        scaling(true);
    }
}
