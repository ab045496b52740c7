//! The `kausal` command line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use kausal::core::CoreConfig;
use kausal::core::actors::ControllerPatterns;
use kausal::model::time::Micros;
use kausal::replay::{self, OutputFormat};
use kausal::sinks::otlp_export::OtlpProtocol;
use kausal::sources::decode::DecodeOptions;
use kausal::sources::files;

#[derive(Parser)]
#[command(name = "kausal", version, about = "Kubernetes audit logs and Events as causal traces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded audit logs and Events and print or export the traces.
    Replay(ReplayArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Indented trace trees for a terminal.
    Tree,
    /// One OTLP/JSON ExportTraceServiceRequest per line, one line per trace.
    OtlpJson,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Files or directories (read recursively: .json, .jsonl, .log and .gz of
    /// those), or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "tree")]
    format: Format,
    /// Write the output here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Also export the spans over OTLP to this endpoint (e.g. http://127.0.0.1:4317).
    #[arg(long, value_name = "URL", env = "KAUSAL_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// OTLP protocol; default: OTEL_EXPORTER_OTLP_PROTOCOL, else guessed from the URL (4318 → HTTP), else gRPC.
    #[arg(long, value_name = "grpc|http/protobuf")]
    otlp_protocol: Option<OtlpProtocol>,
    /// Tree format: also show single-span traces started by controllers, and lone Events.
    #[arg(long)]
    all: bool,
    /// How far back a trigger may be and still cause a controller's write.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// User patterns whose writes are controllers' (exact, or a prefix ending in `*`). Repeatable; replaces the defaults.
    #[arg(long = "controller-user", value_name = "PATTERN")]
    controller_users: Vec<String>,
    /// Keep Lease and leader-election writes (dropped by default as heartbeat noise).
    #[arg(long)]
    keep_leader_election: bool,
    /// Print no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn micros(d: Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => match run_replay(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("kausal replay: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let inputs = files::expand_paths(&args.paths)?;
    if inputs.is_empty() {
        anyhow::bail!("no input files found in {}", args.paths.join(" "));
    }
    let mut core = CoreConfig { window: micros(args.window), ..CoreConfig::default() };
    if !args.controller_users.is_empty() {
        core.controllers = ControllerPatterns::new(args.controller_users.clone());
    }
    let decode = DecodeOptions { keep_leader_election: args.keep_leader_election };
    let (result, elapsed) = replay::timed(|| replay::run(&inputs, decode, core, !args.quiet));

    let format = match args.format {
        Format::Tree => OutputFormat::Tree,
        Format::OtlpJson => OutputFormat::OtlpJson,
    };
    match &args.out {
        Some(path) => {
            let mut out = BufWriter::new(File::create(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?);
            replay::write_output(&mut out, &result.spans, format, args.all)?;
            out.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            match replay::write_output(&mut out, &result.spans, format, args.all).and_then(|()| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }

    let env_endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if args.otlp_endpoint.is_some() || env_endpoint {
        let protocol = OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref()).map_err(anyhow::Error::msg)?;
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(replay::export(&result.spans, args.otlp_endpoint.as_deref(), protocol))?;
        if !args.quiet {
            eprintln!("kausal replay: exported {} spans over OTLP ({protocol})", result.spans.len());
        }
    }
    if !args.quiet {
        eprint!("{}", replay::summary(&result, elapsed));
    }
    Ok(ExitCode::SUCCESS)
}
