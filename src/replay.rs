//! `kausal replay`: recorded files → decode → core → tree, OTLP/JSON or OTLP.
//!
//! A replay reads all its inputs before linking: audit logs and Event files are
//! separate streams over the same time span, so only the whole input can be put
//! in timestamp order. The core then runs exactly as it does behind the server.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use crate::core::{CoreConfig, Engine, EngineStats, Span};
use crate::decode::{BadRecord, DecodeOptions, DecodeStats};
use crate::linking_args::LinkingArgs;
use crate::pipeline::otlp_exporter::{OtlpExporter, OtlpProtocol};
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
}

/// `kausal replay`: reads, links, writes the output, and exports when asked.
pub fn main(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let inputs = files::expand_paths(&args.paths)?;
    if inputs.is_empty() {
        anyhow::bail!("no input files found in {}", args.paths.join(" "));
    }
    let core = args.linking.core_config();
    let decode = args.linking.decode_options();
    let (result, elapsed) = timed(|| run(&inputs, decode, core, !args.quiet));
    match &args.out {
        Some(path) => {
            let mut out = BufWriter::new(File::create(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?);
            write_output(&mut out, &result.spans, args.format, args.all)?;
            out.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            match write_output(&mut out, &result.spans, args.format, args.all).and_then(|()| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    let env_endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if args.otlp_endpoint.is_some() || env_endpoint {
        let protocol =
            OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref()).map_err(anyhow::Error::msg)?;
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(export(&result.spans, args.otlp_endpoint.as_deref(), protocol))?;
        if !args.quiet {
            eprintln!("kausal replay: exported {} spans over OTLP ({protocol})", result.spans.len());
        }
    }
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
    /// One OTLP/JSON ExportTraceServiceRequest per line, one line per trace.
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
    pub inputs: usize,
    pub bytes: u64,
    pub decode: DecodeStats,
    pub bad: Vec<LocatedBadRecord>,
    pub engine: EngineStats,
    /// Objects of a dump read after Events had been linked: the Events before
    /// them could not use their owners (give object dumps first).
    pub objects_after_events: usize,
}

/// Decodes every input and runs the core over the lot. Pure apart from reading
/// the inputs: the same files give the same spans, byte for byte.
pub fn run(inputs: &[Input], decode: DecodeOptions, core: CoreConfig, progress: bool) -> ReplayResult {
    let sizes: Vec<u64> = inputs.iter().map(input_size).collect();
    let bar = progress_bar(sizes.iter().sum(), progress);
    let mut engine = Engine::new(core);
    let mut stats = DecodeStats::default();
    let mut bad = Vec::new();
    let mut bytes = 0u64;
    let (mut objects_after_events, mut ingested) = (0, 0);
    for (input, size) in inputs.iter().zip(sizes) {
        let decoded = files::decode_input(input, &decode);
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
        bytes += size;
        if let Some(bar) = &bar {
            bar.inc(size);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    engine.flush();
    ReplayResult {
        spans: engine.drain_spans(),
        inputs: inputs.len(),
        bytes,
        decode: stats,
        bad,
        engine: engine.stats(),
        objects_after_events,
    }
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
        OutputFormat::OtlpJson => {
            let resource = SharedResource::from_env(None);
            for trace in tree::group_traces(spans) {
                let owned: Vec<Span> = trace.spans.into_iter().cloned().collect();
                otlp_json::write_line(out, &owned, &resource)?;
            }
            Ok(())
        }
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

/// Sends the spans to an OTLP endpoint.
pub async fn export(spans: &[Span], endpoint: Option<&str>, protocol: OtlpProtocol) -> anyhow::Result<()> {
    let mut exporter = OtlpExporter::new(endpoint, protocol, SharedResource::from_env(None))?;
    let result = exporter.export(spans).await;
    exporter.shutdown();
    Ok(result?)
}

/// The stderr summary: what was read, what came out, and what was wrong.
pub fn summary(result: &ReplayResult, elapsed: std::time::Duration) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let e = &result.engine;
    let traces = tree::group_traces(&result.spans).len();
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
