//! The `kausal` command line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc: the pipeline allocates many small strings per record, and the
/// system allocator's free-list upkeep was a fifth of its time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use kausal::cert::{self, CertArgs};
use kausal::config_file::{self, Settable};
use kausal::core::CoreConfig;
use kausal::core::actors::ControllerPatterns;
use kausal::core::time::Micros;
use kausal::decode::DecodeOptions;
use kausal::replay::{self, OutputFormat};
use kausal::serve::{self, ServeArgs};
use kausal::sinks::otlp_export::OtlpProtocol;
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
    /// Receive audit batches over HTTPS (and watch Events) and export traces over OTLP.
    Serve(Box<ServeArgs>),
    /// Write development certificates (CA, server, apiserver client) and a webhook kubeconfig.
    Cert(CertArgs),
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
    if let Err(e) = apply_config_file() {
        eprintln!("kausal: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match serve::run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kausal serve: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Cert(args) => match cert::run(&args) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kausal cert: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Replay(args) => match run_replay(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("kausal replay: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Turns `serve --config FILE` entries into environment defaults before clap
/// parses the command line (see `config_file`).
fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(());
    }
    let Some(path) = config_file::path_from(&args) else {
        return Ok(());
    };
    let command = Cli::command();
    let serve = command.find_subcommand("serve").expect("serve subcommand");
    let settable: Vec<Settable> = serve
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let env = a.get_env()?.to_str()?;
            (long != "config").then(|| Settable { long: long.to_owned(), env: env.to_owned() })
        })
        .collect();
    for (name, value) in config_file::env_defaults(std::path::Path::new(&path), &settable)? {
        // SAFETY: single-threaded here; nothing else reads the environment yet.
        unsafe { std::env::set_var(name, value) };
    }
    Ok(())
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
    let decode = DecodeOptions { keep_leader_election: args.keep_leader_election, ..DecodeOptions::default() };
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
        let protocol =
            OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref()).map_err(anyhow::Error::msg)?;
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
