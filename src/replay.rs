//! `kausal replay`: recorded files → decode → core → tree, OTLP/JSON or OTLP.
//!
//! One audit stream (recorded batches, an audit log) is linked as it is read,
//! exactly as the server links it; inputs that are separate streams over the
//! same time span (audit logs and Event files) are all read before linking, so
//! that the whole input can be put in timestamp order (see [`run_into`]).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use crate::core::{CoreConfig, Engine, EngineStats, Span};
use crate::decode::{self, BadRecord, DecodeOptions, DecodeStats, FloorCount};
use crate::linking_args::LinkingArgs;
use crate::pipeline::otlp_exporter::{IN_FLIGHT, MAX_REQUEST_SPANS, OtlpExporter, OtlpProtocol};
use crate::query::jaeger;
use crate::sinks::otel::SharedResource;
use crate::sinks::otlp_json;
use crate::sinks::tree::{self, TreeOptions};
use crate::sources::files::{self, Input};
use crate::store::StoredSpan;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Files or directories (read recursively: .json, .jsonl, .log and .gz of
    /// those), or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "tree")]
    pub format: OutputFormat,
    /// Write the output here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Also export the spans over OTLP to this endpoint (e.g. http://127.0.0.1:4317).
    #[arg(long, value_name = "URL", env = "KAUSAL_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol; default: OTEL_EXPORTER_OTLP_PROTOCOL, else guessed from the URL (4318 → HTTP), else gRPC.
    #[arg(long, value_name = "grpc|http/protobuf")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Tree format: also show the traces started by controllers, and Events with no known cause (after the intents).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub linking: LinkingArgs,
    /// Print no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Diagnostic: only read the inputs and parse their records into the views
    /// the decoder reads (the floor a replay's speed is measured against),
    /// print the rate, and output nothing.
    #[arg(long)]
    pub parse_only: bool,
}

/// `kausal replay`: reads, links, writes the output, and exports when asked.
///
/// otlp-json and the OTLP export are streamed: spans are written and sent as
/// they are linked, so a replay of any length holds no more than the graph
/// (see [`run_into`]). The tree and Jaeger's JSON need whole traces, so those
/// formats keep every span until the end.
pub fn main(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let inputs = files::expand_paths(&args.paths)?;
    if inputs.is_empty() {
        anyhow::bail!("no input files found in {}", args.paths.join(" "));
    }
    if args.parse_only {
        return parse_only(&inputs, !args.quiet);
    }
    let core = args.linking.core_config();
    let decode = args.linking.decode_options();
    let env_endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    let export = if args.otlp_endpoint.is_some() || env_endpoint {
        let protocol =
            OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref()).map_err(anyhow::Error::msg)?;
        Some(ExportThread::start(args.otlp_endpoint.clone(), protocol)?)
    } else {
        None
    };
    // Opened before any reading, so that a path that cannot be written fails at once.
    let file = match &args.out {
        Some(path) => Some(File::create(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?),
        None => None,
    };
    let mut out: Box<dyn Write + Send> = match file {
        Some(file) => Box::new(BufWriter::new(file)),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let (mut result, elapsed, written, export) = if args.format == OutputFormat::OtlpJson {
        // The lines are written, and the spans handed to the exporter, on a
        // thread of their own: encoding JSON runs beside reading and linking.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Span>>(8);
        let writer = std::thread::spawn(move || {
            let resource = SharedResource::from_env(None);
            let mut written = Ok(());
            for spans in rx {
                if written.is_ok() {
                    written = otlp_json_lines(&mut out, &spans, &resource);
                }
                if let Some(export) = &export {
                    export.send(spans);
                }
            }
            (written.and_then(|()| out.flush()), export)
        });
        let (result, elapsed) = timed(|| {
            run_into(&inputs, decode, core, !args.quiet, &mut |spans| {
                let _ = tx.send(spans);
            })
        });
        drop(tx);
        let (written, export) = writer.join().map_err(|_| anyhow::anyhow!("the output thread panicked"))?;
        (result, elapsed, written, export)
    } else {
        let mut kept = Vec::new();
        let (result, elapsed) = timed(|| run_into(&inputs, decode, core, !args.quiet, &mut |spans| kept.extend(spans)));
        let written = write_output(&mut out, &kept, args.format, args.all).and_then(|()| out.flush());
        if let Some(export) = &export {
            export.send(kept);
        }
        (result, elapsed, written, export)
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    if let Some(export) = export {
        let (protocol, spans) = export.finish()?;
        if !args.quiet {
            eprintln!("kausal replay: exported {spans} spans over OTLP ({protocol})");
        }
    }
    result.spans = Vec::new();
    if !args.quiet {
        eprint!("{}", summary(&result, elapsed));
    }
    if nothing_read(&result) {
        eprintln!(
            "kausal replay: nothing could be read: {} bad records and no audit event or Event in {} input{}",
            result.decode.bad_total(),
            result.inputs,
            if result.inputs == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--parse-only`: the read+parse floor over the inputs, and its rate.
fn parse_only(inputs: &[Input], progress: bool) -> anyhow::Result<ExitCode> {
    let sizes: Vec<u64> = inputs.iter().map(input_size).collect();
    let bar = progress_bar(sizes.iter().sum(), progress);
    let start = Instant::now();
    let (mut count, mut bytes) = (FloorCount::default(), 0u64);
    for (input, size) in inputs.iter().zip(sizes) {
        let failed = |e: std::io::Error| anyhow::anyhow!("{}: {e}", input.display());
        let mut credited = 0;
        for piece in files::read_pieces(input).map_err(failed)? {
            let piece = piece.map_err(failed)?;
            bytes += piece.bytes.len() as u64;
            let parsed = decode::parse_floor(&piece.bytes);
            count.audit_events += parsed.audit_events;
            count.kube_events += parsed.kube_events;
            count.other += parsed.other;
            let step = (piece.bytes.len() as u64).min(size - credited);
            credited += step;
            if let Some(bar) = &bar {
                bar.inc(step);
            }
        }
        if let Some(bar) = &bar {
            bar.inc(size - credited);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "kausal replay --parse-only: {} input{} ({:.1} MB) in {seconds:.2}s: {} audit events, {} Events, {} other values; \
         {:.1} MB/s, {:.0} audit events/s",
        inputs.len(),
        if inputs.len() == 1 { "" } else { "s" },
        bytes as f64 / 1e6,
        count.audit_events,
        count.kube_events,
        count.other,
        bytes as f64 / 1e6 / seconds,
        count.audit_events as f64 / seconds,
    );
    Ok(if count.audit_events + count.kube_events == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The OTLP export of a replay, on its own thread and runtime so that
/// sending overlaps reading: spans arrive as they are linked, go out in
/// requests of [`MAX_REQUEST_SPANS`], [`IN_FLIGHT`] at a time.
struct ExportThread {
    spans: Option<tokio::sync::mpsc::Sender<Vec<Span>>>,
    thread: std::thread::JoinHandle<anyhow::Result<usize>>,
    protocol: OtlpProtocol,
}

impl ExportThread {
    fn start(endpoint: Option<String>, protocol: OtlpProtocol) -> anyhow::Result<ExportThread> {
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        // Built here, so that a setting that cannot be used fails before any reading.
        let exporter = runtime
            .block_on(async { OtlpExporter::new(endpoint.as_deref(), protocol, SharedResource::from_env(None)) })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Span>>(16);
        let thread = std::thread::spawn(move || runtime.block_on(export_stream(rx, exporter)));
        Ok(ExportThread { spans: Some(tx), thread, protocol })
    }

    /// Hands spans to the exporter; after a failure they are dropped (the
    /// failure is reported by [`finish`](Self::finish)).
    fn send(&self, spans: Vec<Span>) {
        if let Some(tx) = &self.spans
            && !spans.is_empty()
        {
            let _ = tx.blocking_send(spans);
        }
    }

    /// Waits for every request to be answered: the protocol and the span count.
    fn finish(mut self) -> anyhow::Result<(OtlpProtocol, usize)> {
        drop(self.spans.take());
        let spans = self.thread.join().map_err(|_| anyhow::anyhow!("the OTLP export thread panicked"))??;
        Ok((self.protocol, spans))
    }
}

async fn export_stream(
    mut rx: tokio::sync::mpsc::Receiver<Vec<Span>>,
    exporter: OtlpExporter,
) -> anyhow::Result<usize> {
    let mut pending: Vec<Span> = Vec::new();
    let mut sending = tokio::task::JoinSet::new();
    let mut sent = 0;
    loop {
        let received = rx.recv().await;
        let done = received.is_none();
        pending.extend(received.unwrap_or_default());
        if pending.len() >= MAX_REQUEST_SPANS || (done && !pending.is_empty()) {
            while sending.len() >= IN_FLIGHT {
                sent += sending.join_next().await.expect("tasks in flight")??;
            }
            let spans = std::mem::take(&mut pending);
            let exporter = exporter.clone();
            sending.spawn(async move { exporter.export(&spans).await.map(|()| spans.len()) });
        }
        if done {
            break;
        }
    }
    while let Some(result) = sending.join_next().await {
        sent += result??;
    }
    Ok(sent)
}

/// No record of any kind came out of the inputs (every record rejected, or
/// files that hold none): a failure, not an empty success.
pub fn nothing_read(result: &ReplayResult) -> bool {
    result.decode.audit_events == 0 && result.decode.kube_events == 0
}

/// How many bad records are printed in full; the rest are only counted.
pub const BAD_RECORDS_SHOWN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Indented trace trees for a terminal.
    Tree,
    /// One OTLP/JSON ExportTraceServiceRequest per line, one line per trace
    /// (streamed: a trace linked across several input files of one audit
    /// stream may take several lines, each a valid request).
    OtlpJson,
    /// Jaeger's trace JSON (`{"data": [trace, ...]}`), as `/api/traces`
    /// answers: Jaeger UI and Grafana's Jaeger data source open the file.
    JaegerJson,
}

/// A bad record and the input it came from.
#[derive(Debug, Clone)]
pub struct LocatedBadRecord {
    pub input: String,
    pub record: BadRecord,
}

/// Everything a replay produced.
pub struct ReplayResult {
    pub spans: Vec<Span>,
    /// Traces the spans belong to.
    pub traces: usize,
    pub inputs: usize,
    pub bytes: u64,
    pub decode: DecodeStats,
    pub bad: Vec<LocatedBadRecord>,
    pub engine: EngineStats,
    /// Objects of a dump read after Events had been linked: the Events before
    /// them could not use their owners (give object dumps first).
    pub objects_after_events: usize,
}

/// Decodes every input and runs the core over the lot, keeping every span.
/// Pure apart from reading the inputs: the same files give the same spans,
/// byte for byte.
pub fn run(inputs: &[Input], decode: DecodeOptions, core: CoreConfig, progress: bool) -> ReplayResult {
    let mut spans = Vec::new();
    let mut result = run_into(inputs, decode, core, progress, &mut |more| spans.extend(more));
    result.spans = spans;
    result
}

/// Like [`run`], handing spans to `sink` as they are linked instead of
/// keeping them (the result's `spans` is empty).
///
/// When every input is part of one audit stream (each file's start names
/// `audit.k8s.io`: batches the server recorded, an audit log and its
/// rotations), the core runs behind the reading as it does behind the
/// server: records wait the settle delay, are linked, and their spans go to
/// `sink` after each input, so memory does not grow with the length of the
/// stream. Anything else (Event dumps, object dumps, stdin) is a separate
/// stream over the same time span, and only the whole input can be put in
/// timestamp order: then nothing is linked before the last input is read.
pub fn run_into(
    inputs: &[Input],
    decode: DecodeOptions,
    core: CoreConfig,
    progress: bool,
    sink: &mut dyn FnMut(Vec<Span>),
) -> ReplayResult {
    let sizes: Vec<u64> = inputs.iter().map(input_size).collect();
    let bar = progress_bar(sizes.iter().sum(), progress);
    // Looking at every input's start costs an open and a read per file: it
    // runs beside the decoding, and linking starts once it has answered.
    let owned = inputs.to_vec();
    let mut sniff = Some(std::thread::spawn(move || owned.iter().all(is_audit_input)));
    let mut streaming = false;
    let mut engine = Engine::new(core);
    let mut stats = DecodeStats::default();
    let mut bad = Vec::new();
    let mut bytes = 0u64;
    let mut traces = TraceCount::default();
    let (mut objects_after_events, mut ingested) = (0, 0);
    for (input, size) in inputs.iter().zip(sizes) {
        // A long log is read and decoded a piece at a time (files::read_pieces).
        let pieces: Box<dyn Iterator<Item = std::io::Result<files::Piece>>> = match files::read_pieces(input) {
            Ok(pieces) => Box::new(pieces),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        let mut credited = 0;
        for piece in pieces {
            let (decoded, length) = match piece {
                Ok(piece) => {
                    let mut decoded = decode::decode(&piece.bytes, &decode);
                    for record in &mut decoded.bad {
                        record.line += piece.lines_before;
                    }
                    (decoded, piece.bytes.len() as u64)
                }
                Err(e) => (decode::Decoded::unreadable(e.to_string()), 0),
            };
            stats.merge(&decoded.stats);
            bad.extend(decoded.bad.into_iter().map(|record| LocatedBadRecord { input: input.display(), record }));
            // An object dump's owners take effect at once: given before the
            // Events (the inputs are read in order), every Event can use them.
            if ingested > 0 {
                objects_after_events += decoded.observed.len();
            }
            ingested += decoded.records.len();
            for object in decoded.observed {
                engine.observe(object);
            }
            for record in decoded.records {
                engine.ingest(record);
            }
            if let Some(done) = sniff.take_if(|s| s.is_finished()) {
                streaming = done.join().unwrap_or(false);
            }
            if streaming {
                engine.advance(None);
                traces.hand_over(engine.drain_spans(), sink);
            }
            // The bar counts file bytes; a gzip input's pieces are larger.
            let step = length.min(size - credited);
            credited += step;
            if let Some(bar) = &bar {
                bar.inc(step);
            }
        }
        bytes += size;
        if let Some(bar) = &bar {
            bar.inc(size - credited);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    engine.flush();
    traces.hand_over(engine.drain_spans(), sink);
    ReplayResult {
        spans: Vec::new(),
        traces: traces.ids.len(),
        inputs: inputs.len(),
        bytes,
        decode: stats,
        bad,
        engine: engine.stats(),
        objects_after_events,
    }
}

/// The traces spans belong to, counted as the spans pass by.
#[derive(Default)]
struct TraceCount {
    ids: std::collections::HashSet<[u8; 16]>,
}

impl TraceCount {
    fn hand_over(&mut self, spans: Vec<Span>, sink: &mut dyn FnMut(Vec<Span>)) {
        if spans.is_empty() {
            return;
        }
        self.ids.extend(spans.iter().map(|s| s.trace_id));
        sink(spans);
    }
}

/// Whether an input is part of an audit stream: its first 4 KiB (after
/// gzip) name `audit.k8s.io`, as every audit event and `EventList` does
/// within its first line's first fields.
fn is_audit_input(input: &Input) -> bool {
    const HEAD: u64 = 4 << 10;
    let Input::File(path) = input else { return false };
    let Ok(file) = File::open(path) else { return false };
    let mut head = Vec::new();
    let mut raw = std::io::Read::take(file, HEAD);
    if std::io::Read::read_to_end(&mut raw, &mut head).is_err() {
        return false;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let Ok(file) = File::open(path) else { return false };
        let mut plain = Vec::new();
        let decoder = flate2::read::MultiGzDecoder::new(file);
        // A cut-off head is fine: only its start is looked at.
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(decoder, HEAD), &mut plain);
        head = plain;
    }
    head.windows(13).any(|w| w == b"audit.k8s.io/")
}

fn input_size(input: &Input) -> u64 {
    match input {
        Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        Input::Stdin => 0,
    }
}

/// A progress bar over input bytes, only for large inputs on a terminal.
fn progress_bar(total: u64, wanted: bool) -> Option<indicatif::ProgressBar> {
    const LARGE: u64 = 16 << 20;
    if !wanted || total < LARGE || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Writes the spans in the chosen format: trees, or one OTLP/JSON request per
/// trace (traces in order of their first span).
pub fn write_output(out: &mut impl Write, spans: &[Span], format: OutputFormat, show_all: bool) -> std::io::Result<()> {
    match format {
        OutputFormat::Tree => out.write_all(tree::render(spans, TreeOptions { show_all }).as_bytes()),
        OutputFormat::OtlpJson => otlp_json_lines(out, spans, &SharedResource::from_env(None)),
        OutputFormat::JaegerJson => {
            let traces: Vec<jaeger::Trace> = tree::group_traces(spans)
                .into_iter()
                .map(|trace| {
                    let stored: Vec<StoredSpan> = trace.spans.iter().map(|s| StoredSpan::from_span(s, "")).collect();
                    jaeger::trace(&stored[0].trace_id, &stored)
                })
                .collect();
            let total = traces.len();
            serde_json::to_writer(&mut *out, &jaeger::Response::new(traces, total)).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}

/// One OTLP/JSON line per trace of `spans`, traces in order of their first span.
fn otlp_json_lines(out: &mut impl Write, spans: &[Span], resource: &SharedResource) -> std::io::Result<()> {
    for trace in tree::group_traces(spans) {
        otlp_json::write_line(out, trace.spans, resource)?;
    }
    Ok(())
}

/// Sends the spans to an OTLP endpoint.
pub async fn export(spans: &[Span], endpoint: Option<&str>, protocol: OtlpProtocol) -> anyhow::Result<()> {
    let exporter = OtlpExporter::new(endpoint, protocol, SharedResource::from_env(None))?;
    Ok(exporter.export(spans).await?)
}

/// The stderr summary: what was read, what came out, and what was wrong.
pub fn summary(result: &ReplayResult, elapsed: std::time::Duration) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let e = &result.engine;
    let traces = result.traces;
    let _ = writeln!(
        s,
        "kausal replay: {} input{} ({:.1} MB) in {:.2}s: {} audit events, {} Event objects → {} writes and {} Events linked",
        result.inputs,
        if result.inputs == 1 { "" } else { "s" },
        result.bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        result.decode.audit_events,
        result.decode.kube_events,
        e.writes,
        e.events,
    );
    let _ = writeln!(
        s,
        "  {} spans in {} traces: {} intents, {} by automation, {} started by controllers, {} Events with no cause; {} runner-up links",
        e.spans_out, traces, e.intent_roots, e.automation_roots, e.controller_roots, e.orphan_events, e.runner_up_links
    );
    if result.decode.audit_events == 0 && result.decode.kube_events > 0 {
        let _ = writeln!(
            s,
            "  this input holds only Events, no audit records: the Events-only linker joined {} of them by the \
             objects other Events announce (\"Created pod: X\", \"Scaled up replica set X\"); without the audit \
             log, who started each chain is not known, and lone Events are shown with --all",
            e.events_only_links
        );
    }
    if result.decode.objects > 0 {
        let _ = writeln!(
            s,
            "  objects beside the Events (an object dump): {}, their owners followed where no Event announced an object",
            result.decode.objects
        );
    }
    if result.objects_after_events > 0 {
        let _ = writeln!(
            s,
            "  warning: {} objects came after Events in the inputs, too late for the Events before them: \
             give object dumps first (kausal replay objects.json events.json)",
            result.objects_after_events
        );
    }
    if result.decode.trace_contexts_invalid > 0 {
        let _ = writeln!(
            s,
            "  trace-context annotations that parsed in no format, ignored: {}",
            result.decode.trace_contexts_invalid
        );
    }
    let _ = writeln!(
        s,
        "  duplicates dropped: {} writes, {} Events; Event repeats: {}",
        e.duplicate_writes, e.duplicate_events, e.event_repeats
    );
    let _ = writeln!(
        s,
        "  graph: {} objects tracked, {} forgotten after their TTL, {} evicted by the cap; {} late records",
        e.graph.objects, e.graph.evicted_ttl, e.graph.evicted_cap, e.late_records
    );
    if !result.decode.skipped.is_empty() {
        let parts: Vec<String> = result.decode.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  not traced (by design): {}", parts.join(", "));
    }
    let bad_total = result.decode.bad_total();
    if bad_total > 0 {
        let parts: Vec<String> = result.decode.bad.iter().map(|(k, v)| format!("{} {v}", k.as_str())).collect();
        let _ = writeln!(s, "  bad records: {bad_total} ({})", parts.join(", "));
        for bad in result.bad.iter().take(BAD_RECORDS_SHOWN) {
            let _ = writeln!(
                s,
                "    {}:{}: {}: {}",
                bad.input,
                bad.record.line,
                bad.record.reason.as_str(),
                bad.record.detail
            );
        }
        if result.bad.len() > BAD_RECORDS_SHOWN {
            let _ = writeln!(s, "    … and {} more; bad records by input:", result.bad.len() - BAD_RECORDS_SHOWN);
            let mut by_input: Vec<(&str, usize)> = Vec::new();
            for bad in &result.bad {
                match by_input.last_mut() {
                    Some((input, n)) if *input == bad.input => *n += 1,
                    _ => by_input.push((&bad.input, 1)),
                }
            }
            by_input.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            for (input, n) in by_input.iter().take(BAD_RECORDS_SHOWN) {
                let _ = writeln!(s, "    {n:>6}  {input}");
            }
        }
    }
    s
}

/// Times a closure, for the summary line.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}
