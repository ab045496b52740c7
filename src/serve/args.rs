//! `kausal serve`'s flags, as clap reads them. [`super::config`] turns them
//! into a checked [`ServeConfig`](super::config::ServeConfig).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::linking_args::LinkingArgs;
use crate::pipeline::otlp_exporter::OtlpProtocol;
use crate::sources::watcher::WatchMode;
use crate::telemetry::LogFormat;

/// Every flag is also an environment variable (`KAUSAL_` + the flag in upper
/// snake case) and a key of the `--config` file; flags win over the
/// environment, which wins over the file.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML file of defaults: keys are these flags' long names (`listen = "0.0.0.0:8443"`).
    #[arg(long, env = "KAUSAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the webhook listener.
    #[arg(long, env = "KAUSAL_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address for /healthz, /readyz and /metrics (probes and
    /// Prometheus need no client certificate there), or `off`.
    #[arg(long, env = "KAUSAL_OPS_LISTEN", default_value = "0.0.0.0:9090")]
    pub ops_listen: String,
    /// PEM certificate chain of the server.
    #[arg(long, env = "KAUSAL_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server.
    #[arg(long, env = "KAUSAL_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients (the apiserver) presenting a certificate it signed may POST.
    #[arg(long, env = "KAUSAL_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line (several allow rotation).
    #[arg(long, env = "KAUSAL_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Accept POSTs from anyone who can connect. Never in production.
    #[arg(long, env = "KAUSAL_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Listen with plain HTTP instead of HTTPS. Never in production.
    #[arg(long, env = "KAUSAL_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// `k8s.cluster.name` for `/audit`, `/events` and the watcher (paths
    /// `/audit/{cluster}` name their own).
    #[arg(long, env = "KAUSAL_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Most distinct clusters accepted (each one has its own graph). When all
    /// are taken, a cluster without a batch for `--wal-context` gives its
    /// slot (and graph) to a new one.
    #[arg(long, env = "KAUSAL_MAX_CLUSTERS", default_value_t = 16)]
    pub max_clusters: usize,
    /// Largest request body, after gzip decompression (suffixes Ki, Mi, Gi).
    /// The default holds a 400-event batch of large objects with room to spare.
    #[arg(long, env = "KAUSAL_MAX_BODY_BYTES", default_value = "64Mi", value_parser = parse_bytes)]
    pub max_body_bytes: usize,
    /// Bytes of request bodies being received at once, across all
    /// connections (a body without Content-Length counts as
    /// --max-body-bytes); beyond it, 429 with Retry-After.
    #[arg(long, env = "KAUSAL_MAX_INFLIGHT_BYTES", default_value = "512Mi", value_parser = parse_bytes)]
    pub max_inflight_bytes: usize,
    /// Open connections at once, on each listener; more are closed at once.
    #[arg(long, env = "KAUSAL_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections without a verified client certificate open at once, until
    /// a request on them authenticates with a token (which it must within
    /// --header-timeout, or the connection is closed); more are closed at once.
    #[arg(long, env = "KAUSAL_MAX_UNAUTHENTICATED_CONNECTIONS", default_value_t = 64)]
    pub max_unauthenticated_connections: usize,
    /// Records accepted but not yet linked, at most; beyond it POSTs get 429.
    #[arg(long, env = "KAUSAL_QUEUE_CAPACITY", default_value_t = 200_000)]
    pub queue_capacity: usize,
    /// A request must arrive completely within this (slow bodies get 408).
    #[arg(long, env = "KAUSAL_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// The TLS handshake and the request headers must each arrive within
    /// this; so must, on a connection without a client certificate, the
    /// first request that authenticates.
    #[arg(long, env = "KAUSAL_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// On SIGTERM, everything (drain, flush, export) must finish within this.
    #[arg(long, env = "KAUSAL_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long records are held to be put in timestamp order before linking.
    #[arg(long, env = "KAUSAL_SETTLE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// How long an Event's span stays open to collect its repeats as span
    /// events before it is exported (later repeats get linked repeat spans).
    #[arg(long, env = "KAUSAL_EVENT_LINGER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub event_linger: Duration,
    #[command(flatten)]
    pub linking: LinkingArgs,
    /// OTLP endpoint; default: the `OTEL_EXPORTER_OTLP_*` variables. With
    /// neither, spans are only stored (and shown by the query API and viewer).
    #[arg(long, env = "KAUSAL_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol; default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else guessed from the URL, else gRPC.
    #[arg(long, env = "KAUSAL_OTLP_PROTOCOL", value_name = "grpc|http/protobuf")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Span batches waiting for the exporter; when they are all waiting, linking
    /// pauses and the queue fills (backpressure instead of loss).
    #[arg(long, env = "KAUSAL_EXPORT_QUEUE_BATCHES", default_value_t = 64)]
    pub export_queue_batches: usize,
    /// How long a failing export is retried before its spans are given up (and counted).
    #[arg(long, env = "KAUSAL_EXPORT_GIVE_UP_AFTER", default_value = "10m", value_parser = humantime::parse_duration)]
    pub export_give_up_after: Duration,
    /// Watch Events through the Kubernetes API (`auto`: when credentials are found).
    #[arg(long, env = "KAUSAL_WATCH_EVENTS", value_enum, default_value = "auto")]
    pub watch_events: WatchMode,
    /// Also watch the metadata (never specs or statuses) of pods, ReplicaSets,
    /// Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and nodes, so
    /// that on a cluster without the audit webhook each Event's owner chain
    /// is known. Needs list/watch on them (deploy/overlays/events-only).
    #[arg(long, env = "KAUSAL_WATCH_OWNERS", value_enum, default_value = "off")]
    pub watch_owners: OwnerWatchMode,
    /// Namespaces to watch Events in (repeatable or comma-separated); default all.
    #[arg(long = "watch-namespace", env = "KAUSAL_WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Metadata lookups per second, at most, for objects seen only in Events.
    #[arg(long, env = "KAUSAL_LOOKUP_RATE", default_value_t = 20)]
    pub lookup_rate: u32,
    /// Directory for the write-ahead log (every accepted body is synced here
    /// before the 200 and replayed after a crash) and the trace store.
    /// Without it, a 200 means "in memory", a crash loses what was not yet
    /// exported, and the store is in memory.
    #[arg(long, env = "KAUSAL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Disk the write-ahead log may use (suffixes Ki, Mi, Gi); when bodies not
    /// yet exported fill it, POSTs get 429.
    #[arg(long, env = "KAUSAL_MAX_WAL_BYTES", default_value = "1Gi", value_parser = parse_bytes)]
    pub max_wal_bytes: usize,
    /// How long exported bodies stay in the log (measured from when kausal
    /// accepted them, the same clock for every cluster), so a restart
    /// rebuilds the graph that later writes link to. Removed sooner when room
    /// is needed. Also how long a cluster is idle before its slot may go to a
    /// new one (`--max-clusters`).
    #[arg(long, env = "KAUSAL_WAL_CONTEXT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub wal_context: Duration,
    /// Keep no spans: export over OTLP only, with no query API or viewer.
    #[arg(long, env = "KAUSAL_NO_STORE")]
    pub no_store: bool,
    /// How long spans stay in the embedded trace store (under --data-dir, else in memory).
    #[arg(long, env = "KAUSAL_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// The trace store's size bound (suffixes Ki, Mi, Gi); the oldest spans
    /// go first. Default: 2Gi under --data-dir, 256Mi in memory.
    #[arg(long, env = "KAUSAL_MAX_STORE_BYTES", value_parser = parse_bytes)]
    pub max_store_bytes: Option<usize>,
    /// Where the query API (Jaeger's) and the viewer listen, or `off`.
    /// Default 127.0.0.1:16686 (Jaeger's port; if it is taken, kausal says
    /// so and runs without). Off loopback, the webhook's authentication is
    /// required there too.
    #[arg(long, env = "KAUSAL_QUERY_LISTEN", value_name = "ADDR|off")]
    pub query_listen: Option<String>,
    /// Keep every accepted body and watched Event under this directory, as
    /// fixtures that `kausal replay DIR/<cluster>` reproduces.
    #[arg(long, env = "KAUSAL_RECORD_DIR", value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "KAUSAL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level or filter (`RUST_LOG` syntax; `RUST_LOG` itself wins).
    #[arg(long, env = "KAUSAL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// `64Mi`, `10M`, `1048576`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: usize = digits.parse().map_err(|_| format!("`{text}` is not a size (e.g. 64Mi)"))?;
    let factor: usize = match suffix.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size suffix `{other}` (use Ki, Mi, Gi, K, M or G)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_suffixes() {
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes("10M"), Ok(10_000_000));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5Xi").is_err());
    }
}

/// Whether to watch owners' metadata (`--watch-owners`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OwnerWatchMode {
    On,
    Off,
}
