//! `kausal serve`: the audit webhook and Event watcher in front of the live pipeline.
//!
//! Wiring only: sources (webhook, watcher) → [`pipeline`] → sinks (export task).
//! Shutdown runs in the same order: stop accepting, drain the queue through
//! the core, flush every open span, export, all within `--shutdown-timeout`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::core::CoreConfig;
use crate::core::actors::ControllerPatterns;
use crate::core::time::Micros;
use crate::decode::{self, DecodeOptions};
use crate::pipeline::{self, IngestQueue, WorkerConfig};
use crate::sinks::export_task::{self, ExportHealth, ExportSettings};
use crate::sinks::otel::SharedResource;
use crate::sinks::otlp_export::{OtlpExporter, OtlpProtocol};
use crate::sources::listener::{self, ConnectionLimits, TlsFiles};
use crate::sources::recorder::Recorder;
use crate::sources::watcher::{self, WatchMode, WatchSettings};
use crate::sources::webhook::{self, Auth, WebhookState};
use crate::telemetry::{self, LogFormat};
use crate::wal::{Recovered, Wal, WalConfig};

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
    /// Most distinct clusters accepted (each one has its own graph).
    #[arg(long, env = "KAUSAL_MAX_CLUSTERS", default_value_t = 16)]
    pub max_clusters: usize,
    /// Largest request body, after gzip decompression (suffixes Ki, Mi, Gi).
    /// The default holds a 400-event batch of large objects with room to spare.
    #[arg(long, env = "KAUSAL_MAX_BODY_BYTES", default_value = "64Mi", value_parser = parse_bytes)]
    pub max_body_bytes: usize,
    /// Records accepted but not yet linked, at most; beyond it POSTs get 429.
    #[arg(long, env = "KAUSAL_QUEUE_CAPACITY", default_value_t = 200_000)]
    pub queue_capacity: usize,
    /// A request must arrive completely within this (slow bodies get 408).
    #[arg(long, env = "KAUSAL_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// The TLS handshake and the request headers must each arrive within this.
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
    /// How far back a trigger may be and still cause a controller's write.
    #[arg(long, env = "KAUSAL_WINDOW", default_value = "30s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// User patterns whose writes are controllers' (exact, or a prefix ending in `*`); replaces the defaults.
    #[arg(long = "controller-user", env = "KAUSAL_CONTROLLER_USER", value_name = "PATTERN", value_delimiter = ',')]
    pub controller_users: Vec<String>,
    /// Keep Lease and leader-election writes (dropped by default as heartbeat noise).
    #[arg(long, env = "KAUSAL_KEEP_LEADER_ELECTION")]
    pub keep_leader_election: bool,
    /// OTLP endpoint; default: the `OTEL_EXPORTER_OTLP_*` variables, else http://localhost:4317.
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
    /// Namespaces to watch Events in (repeatable or comma-separated); default all.
    #[arg(long = "watch-namespace", env = "KAUSAL_WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Metadata lookups per second, at most, for objects seen only in Events.
    #[arg(long, env = "KAUSAL_LOOKUP_RATE", default_value_t = 20)]
    pub lookup_rate: u32,
    /// Directory for the write-ahead log: every accepted body is synced here
    /// before the 200 and replayed after a crash. Without it, a 200 means
    /// "in memory" and a crash loses what was not yet exported.
    #[arg(long, env = "KAUSAL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Disk the write-ahead log may use (suffixes Ki, Mi, Gi); when bodies not
    /// yet exported fill it, POSTs get 429.
    #[arg(long, env = "KAUSAL_MAX_WAL_BYTES", default_value = "1Gi", value_parser = parse_bytes)]
    pub max_wal_bytes: usize,
    /// How long exported bodies stay in the log (in record time), so a restart
    /// rebuilds the graph that later writes link to. Removed sooner when room is needed.
    #[arg(long, env = "KAUSAL_WAL_CONTEXT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub wal_context: Duration,
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

fn micros(d: Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX)
}

/// What authentication and transport the flags ask for, checked before anything starts.
fn auth_and_tls(args: &ServeArgs) -> anyhow::Result<(Auth, Option<Arc<rustls::ServerConfig>>)> {
    let tokens = match &args.token_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading --token-file {}", path.display()))?;
            let tokens: Vec<Vec<u8>> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.as_bytes().to_vec())
                .collect();
            if tokens.is_empty() {
                anyhow::bail!("--token-file {} holds no token", path.display());
            }
            tokens
        }
        None => Vec::new(),
    };
    let auth = Auth { mtls: args.client_ca.is_some(), tokens, insecure_no_auth: args.insecure_no_auth };
    if !auth.mtls && auth.tokens.is_empty() && !auth.insecure_no_auth {
        anyhow::bail!(
            "no way to authenticate the apiserver: pass --client-ca (mTLS) and/or --token-file, \
             or --insecure-no-auth to accept anyone (development only)"
        );
    }
    if args.insecure_http {
        if args.client_ca.is_some() {
            anyhow::bail!("--client-ca needs TLS; drop --insecure-http");
        }
        return Ok((auth, None));
    }
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        anyhow::bail!(
            "HTTPS needs --tls-cert and --tls-key (for development: `kausal cert --out DIR`), \
             or pass --insecure-http for plain HTTP"
        );
    };
    let files = TlsFiles {
        cert,
        key,
        client_ca: args.client_ca.as_deref(),
        client_cert_optional: !auth.tokens.is_empty() || auth.insecure_no_auth,
    };
    Ok((auth, Some(listener::server_config(&files)?)))
}

/// Runs the server until SIGTERM or Ctrl-C, then drains. Errors are start-up
/// problems or a shutdown that missed its deadline.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging(args.log_format, &args.log_level);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let metrics = telemetry::install_metrics().context("installing the metrics recorder")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("kausal-io").build()?;
    runtime.block_on(serve(args, Some(metrics)))
}

async fn serve(args: ServeArgs, metrics: Option<metrics_exporter_prometheus::PrometheusHandle>) -> anyhow::Result<()> {
    if let Some(name) = &args.cluster_name
        && !webhook::valid_cluster_name(name)
    {
        anyhow::bail!("--cluster-name `{name}`: use 1-63 letters, digits, '-', '_' or '.'");
    }
    let (auth, tls) = auth_and_tls(&args)?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let ops_listener = match args.ops_listen.as_str() {
        "off" | "" => None,
        addr => {
            let addr: SocketAddr =
                addr.parse().with_context(|| format!("--ops-listen `{addr}` is not an address or `off`"))?;
            Some(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} (--ops-listen)"))?)
        }
    };

    let mut core = CoreConfig {
        window: micros(args.window),
        settle: micros(args.settle),
        event_linger: micros(args.event_linger),
        report_unknown_objects: true,
        ..CoreConfig::default()
    };
    if !args.controller_users.is_empty() {
        core.controllers = ControllerPatterns::new(args.controller_users.clone());
    }
    let decode = DecodeOptions { keep_leader_election: args.keep_leader_election, ..DecodeOptions::default() };

    let protocol =
        OtlpProtocol::choose(args.otlp_protocol, args.otlp_endpoint.as_deref()).map_err(anyhow::Error::msg)?;
    let exporter = OtlpExporter::new(args.otlp_endpoint.as_deref(), protocol, SharedResource::default())?;
    let health = Arc::new(ExportHealth::default());
    let (span_sender, span_receiver) = tokio::sync::mpsc::channel(args.export_queue_batches.max(1));
    let export_settings = ExportSettings { give_up_after: args.export_give_up_after };
    let (wal, recovered) = match &args.data_dir {
        Some(dir) => {
            let (wal, recovered) = open_wal(&args, dir)?;
            (Some(Arc::new(wal)), recovered)
        }
        None => (None, Vec::new()),
    };
    let exporting =
        tokio::spawn(export_task::run(span_receiver, exporter, export_settings, health.clone(), wal.clone()));

    let recorder = match &args.record_dir {
        Some(dir) => {
            Some(Arc::new(Recorder::new(dir).with_context(|| format!("creating --record-dir {}", dir.display()))?))
        }
        None => None,
    };
    let (queue, receiver) = IngestQueue::new(args.queue_capacity);
    let default_cluster: Arc<str> = args.cluster_name.as_deref().unwrap_or("").into();
    let watch = watcher::start(
        args.watch_events,
        WatchSettings {
            namespaces: args.watch_namespaces.clone(),
            lookup_rate: args.lookup_rate,
            decode,
            recorder: recorder.clone(),
            list_max_age: args.window,
        },
        queue.clone(),
        default_cluster.clone(),
    )
    .await?;
    if watch.is_some() && args.cluster_name.is_none() {
        tracing::warn!(
            "watched Events go to the unnamed cluster: set --cluster-name to the name in the webhook's \
             /audit/{{cluster}} path, or post to /audit, so they meet that cluster's writes"
        );
    }
    // The worker also wakes when a buffered record comes due; the tick only
    // bounds how often it checks otherwise (idle input, new clusters).
    let worker_config = WorkerConfig { core, tick: Duration::from_millis(20) };
    let lookups = watch.as_ref().map(|w| w.lookups.clone());
    let worker = std::thread::Builder::new()
        .name("kausal-core".into())
        .spawn(move || pipeline::run_worker(receiver, worker_config, span_sender, lookups))?;

    let state = Arc::new(WebhookState {
        queue: queue.clone(),
        auth,
        decode,
        default_cluster,
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        max_clusters: args.max_clusters,
        clusters: Default::default(),
        bad_records_logged_per_batch: 5,
        metrics,
        export_health: health,
        recorder,
        wal: wal.clone(),
    });
    if !recovered.is_empty() {
        replay_recovered(&state, recovered).await?;
    }
    let limits = ConnectionLimits { header_timeout: args.header_timeout, drain_timeout: args.shutdown_timeout / 2 };
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let wait_stop = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let ops = ops_listener.map(|l| {
        tracing::info!(address = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ops endpoints on plain HTTP");
        let app = webhook::ops_router().with_state(state.clone());
        tokio::spawn(listener::serve(l, None, app, limits, wait_stop(stop.clone())))
    });
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        mtls = state.auth.mtls,
        tokens = state.auth.tokens.len(),
        otlp = %protocol,
        data_dir = %args.data_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
        "kausal serve listening"
    );
    if wal.is_none() {
        tracing::warn!("no --data-dir: acknowledged batches are held in memory until exported, and a crash loses them");
    }
    if tls.is_none() {
        tracing::warn!("--insecure-http: audit data travels unencrypted");
    }
    if state.auth.insecure_no_auth {
        tracing::warn!("--insecure-no-auth: anyone who can connect may POST audit data");
    }
    let server =
        tokio::spawn(listener::serve(listener, tls, webhook::router(state.clone()), limits, wait_stop(stop.clone())));

    shutdown_signal().await;
    tracing::info!(deadline = ?args.shutdown_timeout, "shutting down: no new connections; draining");
    let _ = stop_sender.send(true);
    let drain = async {
        let _ = server.await;
        queue.close();
        if let Some(w) = watch {
            w.stop();
        }
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        let _ = exporting.await;
        if let Some(wal) = &wal {
            let wal = wal.clone();
            let _ = tokio::task::spawn_blocking(move || wal.close()).await;
        }
        if let Some(ops) = ops {
            ops.abort();
        }
    };
    match tokio::time::timeout(args.shutdown_timeout, drain).await {
        Ok(()) => {
            tracing::info!("shutdown complete: queue drained and spans exported");
            Ok(())
        }
        Err(_) => {
            anyhow::bail!("shutdown did not finish within {:?}; unexported spans are lost", args.shutdown_timeout)
        }
    }
}

/// Opens the write-ahead log under `DIR/wal` and reports what a previous run left.
fn open_wal(args: &ServeArgs, dir: &std::path::Path) -> anyhow::Result<(Wal, Vec<Recovered>)> {
    if args.max_wal_bytes < args.max_body_bytes {
        tracing::warn!(
            max_wal_bytes = args.max_wal_bytes,
            max_body_bytes = args.max_body_bytes,
            "--max-wal-bytes is below --max-body-bytes: bodies larger than the log get 413"
        );
    }
    let config =
        WalConfig { dir: dir.join("wal"), max_bytes: args.max_wal_bytes as u64, context: micros(args.wal_context) };
    let (wal, recovered, report) =
        Wal::open(config).with_context(|| format!("opening the write-ahead log in {}", dir.join("wal").display()))?;
    metrics::counter!(telemetry::WAL_RECOVERED, "state" => "acknowledged").increment(report.acknowledged as u64);
    metrics::counter!(telemetry::WAL_RECOVERED, "state" => "unacknowledged").increment(report.unacknowledged as u64);
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        bytes = report.bytes,
        acknowledged = report.acknowledged,
        unacknowledged = report.unacknowledged,
        torn_tail_bytes = report.torn_tail_bytes,
        "write-ahead log opened: accepted bodies are synced before the 200"
    );
    for problem in &report.corrupt_segments {
        tracing::error!(problem = %problem, "write-ahead log records lost to corruption");
    }
    Ok((wal, recovered))
}

/// Feeds what the write-ahead log kept through the pipeline before the
/// webhook opens: exported entries as context (graph state, no spans), the
/// rest as new input, in the order they were accepted.
async fn replay_recovered(state: &WebhookState, recovered: Vec<Recovered>) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (entries, mut records) = (recovered.len(), 0);
    for Recovered { entry, acknowledged } in recovered {
        let Some(cluster) = state.cluster_key(&entry.cluster) else {
            tracing::error!(cluster = %entry.cluster, seq = entry.seq, "recovered entry for a cluster beyond --max-clusters; skipped");
            continue;
        };
        let decoded = decode::decode(&entry.body, &webhook::body_decode_options(state.decode, entry.accepted_at));
        records += decoded.records.len();
        let batch = pipeline::Batch {
            cluster,
            records: decoded.records,
            wal_seq: (!acknowledged).then_some(entry.seq),
            replayed: acknowledged,
            ..Default::default()
        };
        state.queue.enqueue(batch).await.map_err(|e| anyhow::anyhow!("replaying the write-ahead log: {e:?}"))?;
    }
    tracing::info!(entries, records, took = ?started.elapsed(), "write-ahead log replayed");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
