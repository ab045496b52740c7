//! The `kausal` command line.

use std::process::ExitCode;

/// mimalloc: the pipeline allocates many small strings per record, and the
/// system allocator's free-list upkeep was a fifth of its time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use kausal::cert::{self, CertArgs};
use kausal::config_file::{self, Settable};
use kausal::replay::{self, ReplayArgs};
use kausal::serve::{self, ServeArgs};
use kausal::view::why::WhyArgs;
use kausal::view::{self, ViewArgs};

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
    /// Replay recordings and look at their traces in the built-in viewer (and Jaeger's API), on 127.0.0.1.
    View(ViewArgs),
    /// Why does an object exist, or why is it gone: its chain of causes up to the intent.
    Why(Box<WhyArgs>),
}

fn main() -> ExitCode {
    let cli = match parse_with_config_file() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("kausal: {e:#}");
            return ExitCode::from(2);
        }
    };
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
                eprintln!(
                    "kausal cert: next, put webhook-kubeconfig.yaml and audit-policy/policy.yaml on the control-plane \
                     nodes and set the apiserver's flags (README, \"Wire a real cluster\"); to link your operators' \
                     custom resources, list their API groups in the policy's \"Custom resources kausal links\" rule"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kausal cert: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::View(args) => match view::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kausal view: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Why(args) => match view::why::run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kausal why: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Replay(args) => match replay::main(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("kausal replay: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Parses the command line; for `serve --config FILE`, the file's entries
/// become the flags' default values first, so clap itself applies one
/// precedence everywhere: flag > environment > file > built-in default.
fn parse_with_config_file() -> anyhow::Result<Cli> {
    let args: Vec<String> = std::env::args().collect();
    let mut command = Cli::command();
    let path = (args.get(1).map(String::as_str) == Some("serve")).then(|| config_file::path_from(&args)).flatten();
    if let Some(path) = path {
        let serve = command.find_subcommand("serve").expect("serve subcommand");
        let settable: Vec<Settable> = serve
            .get_arguments()
            .filter(|a| a.get_long().is_some_and(|l| l != "config"))
            .map(|a| Settable {
                id: a.get_id().to_string(),
                long: a.get_long().expect("filtered").to_owned(),
                takes_many: a.get_num_args().is_some_and(|n| n.max_values() > 1) || a.get_value_delimiter().is_some(),
            })
            .collect();
        let defaults = config_file::defaults(std::path::Path::new(&path), &settable)?;
        command = command.mut_subcommand("serve", |mut serve| {
            for default in defaults {
                serve = serve.mut_arg(default.id, |arg| arg.default_values(default.values));
            }
            serve
        });
    }
    Ok(Cli::from_arg_matches(&command.get_matches_from(args))?)
}
