//! `ServeArgs → ServeConfig`: every flag checked, every file named by a flag
//! read, before anything starts. `serve()` then only wires.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::ServeArgs;
use crate::core::CoreConfig;
use crate::core::time;
use crate::decode::DecodeOptions;
use crate::pipeline::export_loop::ExportSettings;
use crate::pipeline::otlp_exporter::OtlpProtocol;
use crate::sources::auth::Auth;
use crate::sources::listener::{self, ConnectionLimits, TlsError, TlsFiles, UnauthenticatedLimits};
use crate::sources::watcher::{WatchMode, WatchSettings};
use crate::sources::webhook;
use crate::store::StoreConfig;
use crate::wal::WalConfig;

/// What `kausal serve` runs with.
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// `None`: `--ops-listen off`.
    pub ops_listen: Option<SocketAddr>,
    pub auth: Auth,
    /// `None`: plain HTTP (`--insecure-http`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The cluster of `/audit`, `/events` and the watcher (empty: unnamed).
    pub default_cluster: Arc<str>,
    pub max_clusters: usize,
    /// A cluster without a batch this long gives its slot to a new one
    /// (`--wal-context`, the same period the log keeps context for).
    pub cluster_idle: Duration,
    pub max_body_bytes: usize,
    pub max_inflight_bytes: usize,
    pub request_timeout: Duration,
    pub connections: ConnectionLimits,
    pub shutdown_timeout: Duration,
    pub queue_capacity: usize,
    pub core: CoreConfig,
    pub decode: DecodeOptions,
    pub otlp_endpoint: Option<String>,
    /// Whether to export over OTLP at all: an endpoint was given, by flag
    /// or by an `OTEL_EXPORTER_OTLP_*` variable.
    pub otlp_export: bool,
    pub otlp_protocol: OtlpProtocol,
    /// `None`: `--no-store`.
    pub store: Option<StoreConfig>,
    pub query: Option<QueryListen>,
    pub export: ExportSettings,
    pub export_queue_batches: usize,
    pub watch_mode: WatchMode,
    /// The watcher's settings, less the recorder (made when serving starts).
    pub watch: WatchSettings,
    pub wal: Option<WalConfig>,
    pub record_dir: Option<PathBuf>,
}

/// Where the query API listens, and whether the address was chosen.
#[derive(Debug, Clone, Copy)]
pub struct QueryListen {
    pub addr: SocketAddr,
    /// The default address: taken by another program, kausal runs without
    /// the query listener instead of refusing to start.
    pub default: bool,
}

/// Jaeger's query port, on loopback.
pub const DEFAULT_QUERY_LISTEN: &str = "127.0.0.1:16686";

/// A flag, or a file a flag names, that `kausal serve` cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--cluster-name `{0}`: use 1-63 letters, digits, '-', '_' or '.'")]
    ClusterName(String),
    #[error("--ops-listen `{0}` is not an address or `off`")]
    OpsListen(String),
    #[error("reading --token-file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: std::io::Error },
    #[error("--token-file {} holds no token", path.display())]
    NoToken { path: PathBuf },
    #[error(
        "no way to authenticate the apiserver: pass --client-ca (mTLS) and/or --token-file, \
         or --insecure-no-auth to accept anyone (development only)"
    )]
    NoAuthentication,
    #[error("--client-ca needs TLS; drop --insecure-http")]
    ClientCaWithoutTls,
    #[error(
        "HTTPS needs --tls-cert and --tls-key (for development: `kausal cert --out DIR`), \
         or pass --insecure-http for plain HTTP"
    )]
    NoCertificate,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{0}")]
    OtlpProtocol(String),
    #[error(
        "--no-store with no OTLP endpoint would keep spans nowhere: give --otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT), or drop --no-store"
    )]
    NoSink,
    #[error("--query-listen `{0}` is not an address or `off`")]
    QueryListen(String),
    #[error("--watch-owners=on needs the Event watch: drop --watch-events=off")]
    WatchOwnersWithoutWatch,
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        if let Some(name) = args.cluster_name.as_deref().filter(|n| !webhook::valid_cluster_name(n)) {
            return Err(ConfigError::ClusterName(name.to_owned()));
        }
        let ops_listen = match args.ops_listen.as_str() {
            "off" | "" => None,
            addr => Some(addr.parse().map_err(|_| ConfigError::OpsListen(addr.to_owned()))?),
        };
        if args.watch_owners == super::args::OwnerWatchMode::On && args.watch_events == WatchMode::Off {
            return Err(ConfigError::WatchOwnersWithoutWatch);
        }
        let auth = auth(args)?;
        let tls = tls(args, &auth)?;
        let core = CoreConfig {
            settle: time::from_duration(args.settle),
            event_linger: time::from_duration(args.event_linger),
            report_unknown_objects: true,
            ..args.linking.core_config()
        };
        let decode = args.linking.decode_options();
        let otlp_protocol = OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref())
            .map_err(ConfigError::OtlpProtocol)?;
        let query = match args.query_listen.as_deref() {
            Some("off") => None,
            Some(addr) => Some(QueryListen {
                addr: addr.parse().map_err(|_| ConfigError::QueryListen(addr.to_owned()))?,
                default: false,
            }),
            None => Some(QueryListen { addr: DEFAULT_QUERY_LISTEN.parse().expect("a valid address"), default: true }),
        };
        let store = StoreConfig {
            path: args.data_dir.as_ref().map(|d| d.join("traces.sqlite")),
            retention_us: Some(time::from_duration(args.retention)),
            max_bytes: Some(
                args.max_store_bytes.map_or_else(|| default_store_bytes(args.data_dir.as_deref()), |b| b as u64),
            ),
        };
        let otlp_export = args.otlp_endpoint.is_some()
            || std::env::vars_os()
                .any(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("OTEL_EXPORTER_OTLP_")) && !v.is_empty());
        if args.no_store && !otlp_export {
            return Err(ConfigError::NoSink);
        }
        let store = (!args.no_store).then_some(store);
        // Without a store there is nothing to query.
        let query = if args.no_store { None } else { query };
        let wal = args.data_dir.as_ref().map(|dir| WalConfig {
            dir: dir.join("wal"),
            max_bytes: args.max_wal_bytes as u64,
            context: time::from_duration(args.wal_context),
        });
        Ok(ServeConfig {
            listen: args.listen,
            ops_listen,
            auth,
            tls,
            default_cluster: args.cluster_name.as_deref().unwrap_or("").into(),
            max_clusters: args.max_clusters,
            cluster_idle: args.wal_context,
            max_body_bytes: args.max_body_bytes,
            max_inflight_bytes: args.max_inflight_bytes.max(args.max_body_bytes),
            request_timeout: args.request_timeout,
            connections: ConnectionLimits {
                header_timeout: args.header_timeout,
                drain_timeout: args.shutdown_timeout / 2,
                max_connections: args.max_connections.max(1),
                unauthenticated: (!args.insecure_no_auth).then_some(UnauthenticatedLimits {
                    max_connections: args.max_unauthenticated_connections.max(1),
                    within: args.header_timeout,
                }),
            },
            shutdown_timeout: args.shutdown_timeout,
            queue_capacity: args.queue_capacity,
            core,
            decode,
            otlp_endpoint: args.otlp_endpoint.clone(),
            otlp_export,
            otlp_protocol,
            store,
            query,
            export: ExportSettings { give_up_after: args.export_give_up_after },
            export_queue_batches: args.export_queue_batches.max(1),
            watch_mode: args.watch_events,
            watch: WatchSettings {
                namespaces: args.watch_namespaces.clone(),
                lookup_rate: args.lookup_rate,
                decode,
                recorder: None,
                list_max_age: args.linking.window,
                owners: args.watch_owners == super::args::OwnerWatchMode::On,
            },
            wal,
            record_dir: args.record_dir.clone(),
        })
    }
}

/// The store's bound when `--max-store-bytes` is not given: 2 GiB on disk,
/// but never more than a quarter of the data directory's file system (the
/// write-ahead log, which acknowledgements depend on, shares it); 256 MiB
/// in memory.
fn default_store_bytes(data_dir: Option<&std::path::Path>) -> u64 {
    const ON_DISK: u64 = 2 << 30;
    let Some(dir) = data_dir else { return 256 << 20 };
    // The directory may not exist yet: its nearest existing ancestor is on
    // the same file system.
    let existing = dir.ancestors().find(|p| p.exists());
    match existing.map(fs4::total_space) {
        Some(Ok(total)) => ON_DISK.min(total / 4),
        _ => ON_DISK,
    }
}

/// Who may POST: a client certificate, tokens from `--token-file`, or anyone.
fn auth(args: &ServeArgs) -> Result<Auth, ConfigError> {
    let tokens = match &args.token_file {
        Some(path) => read_tokens(path)?,
        None => Vec::new(),
    };
    let auth = Auth { mtls: args.client_ca.is_some(), tokens, insecure_no_auth: args.insecure_no_auth };
    if !auth.mtls && auth.tokens.is_empty() && !auth.insecure_no_auth {
        return Err(ConfigError::NoAuthentication);
    }
    Ok(auth)
}

/// One token per line; blank lines and `#` comments are skipped.
fn read_tokens(path: &std::path::Path) -> Result<Vec<Vec<u8>>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile { path: path.to_owned(), source })?;
    let tokens: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if tokens.is_empty() {
        return Err(ConfigError::NoToken { path: path.to_owned() });
    }
    Ok(tokens)
}

/// The server's TLS, or `None` for `--insecure-http`.
fn tls(args: &ServeArgs, auth: &Auth) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    if args.insecure_http {
        return if args.client_ca.is_some() { Err(ConfigError::ClientCaWithoutTls) } else { Ok(None) };
    }
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Err(ConfigError::NoCertificate);
    };
    let files = TlsFiles {
        cert,
        key,
        client_ca: args.client_ca.as_deref(),
        client_cert_optional: !auth.tokens.is_empty() || auth.insecure_no_auth,
    };
    Ok(Some(listener::server_config(&files)?))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(flags: &[&str]) -> Result<ServeConfig, ConfigError> {
        let args = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).unwrap().serve;
        ServeConfig::from_args(&args)
    }

    fn error(flags: &[&str]) -> String {
        match config(flags) {
            Ok(_) => panic!("{flags:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_to_start_without_a_way_to_authenticate_or_without_tls() {
        assert!(error(&["--insecure-http"]).starts_with("no way to authenticate"));
        assert!(error(&["--insecure-no-auth"]).starts_with("HTTPS needs --tls-cert"));
        let ca = ["--insecure-http", "--client-ca", "/nonexistent/ca.pem"];
        assert_eq!(error(&ca), "--client-ca needs TLS; drop --insecure-http");
        let missing = ["--insecure-no-auth", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"];
        assert!(error(&missing).starts_with("reading TLS certificate /nonexistent/c.pem"), "{}", error(&missing));
    }

    #[test]
    fn owners_are_watched_only_beside_the_event_watch() {
        let flags = ["--insecure-http", "--insecure-no-auth", "--watch-owners", "on", "--watch-events", "off"];
        assert_eq!(error(&flags), "--watch-owners=on needs the Event watch: drop --watch-events=off");
        assert!(config(&flags[..4]).is_ok(), "with the default --watch-events=auto");
    }

    #[test]
    fn token_files_must_exist_and_hold_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "# only a comment\n\n").unwrap();
        let flags = |p: &std::path::Path| {
            vec!["--insecure-http".to_owned(), "--token-file".to_owned(), p.display().to_string()]
        };
        let run = |p: &std::path::Path| config(&flags(p).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(matches!(run(&empty), Err(ConfigError::NoToken { .. })));
        assert!(matches!(run(&dir.path().join("absent")), Err(ConfigError::TokenFile { .. })));
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "old-token\n  new-token  \n").unwrap();
        let config = run(&tokens).unwrap();
        assert_eq!(config.auth.tokens, [b"old-token".to_vec(), b"new-token".to_vec()]);
        assert!(config.tls.is_none() && !config.auth.mtls);
    }

    #[test]
    fn names_and_addresses_are_checked() {
        let open = ["--insecure-http", "--insecure-no-auth"];
        fn with<'a>(open: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            [open, extra].concat()
        }
        let with = |extra: &[&'static str]| with(&open, extra);
        assert!(error(&with(&["--cluster-name", "a/b"])).starts_with("--cluster-name `a/b`"));
        assert_eq!(error(&with(&["--ops-listen", "nowhere"])), "--ops-listen `nowhere` is not an address or `off`");
        assert!(config(&with(&["--ops-listen", "off"])).unwrap().ops_listen.is_none());
    }

    #[test]
    fn durations_and_limits_reach_the_core_the_log_and_the_connections() {
        let flags = [
            "--insecure-http",
            "--insecure-no-auth",
            "--settle",
            "3s",
            "--event-linger",
            "5s",
            "--window",
            "1m",
            "--controller-user",
            "ci-bot,system:serviceaccount:argocd:*",
            "--data-dir",
            "/var/lib/kausal",
            "--wal-context",
            "2m",
            "--shutdown-timeout",
            "10s",
            "--cluster-name",
            "prod",
        ];
        let config = config(&flags).unwrap();
        assert_eq!(
            (config.core.settle, config.core.event_linger, config.core.window),
            (3_000_000, 5_000_000, 60_000_000)
        );
        assert!(config.core.report_unknown_objects);
        assert!(config.core.controllers.is_controller("ci-bot"));
        assert!(config.core.controllers.is_controller("system:serviceaccount:argocd:application-controller"));
        assert!(
            config.core.controllers.is_controller("system:kube-controller-manager"),
            "the list adds to the defaults"
        );
        assert!(!config.core.controllers.is_controller("alice"), "people stay people");
        let wal = config.wal.unwrap();
        assert_eq!((wal.dir, wal.context), (PathBuf::from("/var/lib/kausal/wal"), 120_000_000));
        assert_eq!(config.connections.drain_timeout, Duration::from_secs(5));
        assert_eq!(&*config.default_cluster, "prod");
        assert_eq!(config.watch.list_max_age, Duration::from_secs(60));
    }
}
