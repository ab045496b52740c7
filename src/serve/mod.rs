//! `kausal serve`: the audit webhook and Event watcher in front of the live pipeline.
//!
//! Wiring only: [`args`] are checked into a [`ServeConfig`] first, then
//! sources (webhook, watcher) → [`pipeline`] → export loop, with [`recovery`]
//! from the write-ahead log before the webhook opens and the [`ops`]
//! endpoints beside it. Shutdown runs in the same order: stop accepting,
//! drain the queue through the core, flush every open span, export, all
//! within `--shutdown-timeout`.

mod args;
mod config;
mod ops;
mod recovery;
mod series;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use args::{ServeArgs, parse_bytes};
pub use config::{ConfigError, ServeConfig};

use crate::pipeline::otlp_exporter::OtlpExporter;
use crate::pipeline::{self, ClusterSlots, ExportHealth, IngestQueue, WorkerConfig, export_loop};
use crate::query::{self, api::QueryState};
use crate::sinks::otel::SharedResource;
use crate::sources::listener;
use crate::sources::recorder::Recorder;
use crate::sources::watcher::{self, WatchSettings};
use crate::sources::webhook::{self, WebhookState};
use crate::store::Store;
use crate::telemetry;

/// Runs the server until SIGTERM or Ctrl-C, then drains. Errors are start-up
/// problems or a shutdown that missed its deadline.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging(args.log_format, &args.log_level);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = ServeConfig::from_args(&args)?;
    let metrics = telemetry::install_metrics().context("installing the metrics recorder")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("kausal-io").build()?;
    runtime.block_on(serve(config, Some(metrics)))
}

async fn serve(
    config: ServeConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    if metrics.is_some() {
        series::register_at_zero(&config.default_cluster, config.wal.is_some());
    }
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let ops_listener = match config.ops_listen {
        Some(addr) => {
            Some(TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} (--ops-listen)"))?)
        }
        None => None,
    };

    let exporter = if config.otlp_export {
        Some(OtlpExporter::new(config.otlp_endpoint.as_deref(), config.otlp_protocol, SharedResource::default())?)
    } else {
        None
    };
    let health = Arc::new(ExportHealth::default());
    // Where spans go, as the logs name it.
    let otlp_endpoint = exporter.as_ref().map_or_else(|| "the trace store".to_owned(), |e| e.endpoint.clone());
    let query = match config.query {
        Some(q) => match TcpListener::bind(q.addr).await {
            Ok(l) => Some(l),
            Err(e) if q.default => {
                tracing::warn!(
                    address = %q.addr,
                    error = %e,
                    "the query API and viewer are off: their default address is taken (by a Jaeger?); \
                     choose one with --query-listen"
                );
                None
            }
            Err(e) => return Err(e).with_context(|| format!("listening on {} (--query-listen)", q.addr)),
        },
        None => None,
    };
    let (span_sender, span_receiver) = tokio::sync::mpsc::channel(config.export_queue_batches);
    let data_dir = config.wal.as_ref().and_then(|w| w.dir.parent()).map(|d| d.display().to_string());
    let (wal, recovered) = match config.wal.clone() {
        Some(wal_config) => {
            let (wal, recovered) = recovery::open_wal(wal_config, config.max_body_bytes)?;
            (Some(Arc::new(wal)), Some(recovered))
        }
        None => (None, None),
    };
    // After the log: what acknowledgements depend on opens first.
    let store = match &config.store {
        Some(c) => Some(Arc::new(Store::open(c.clone()).context("opening the trace store")?)),
        None => None,
    };
    let pruning = store.clone().map(|s| tokio::spawn(prune_periodically(s)));
    let exporting = tokio::spawn(export_loop::run(
        span_receiver,
        exporter,
        store.clone(),
        config.export.clone(),
        health.clone(),
        wal.clone(),
    ));

    let recorder = match &config.record_dir {
        Some(dir) => {
            Some(Arc::new(Recorder::new(dir).with_context(|| format!("creating --record-dir {}", dir.display()))?))
        }
        None => None,
    };
    let (queue, receiver) = IngestQueue::new(config.queue_capacity);
    let watch_settings = WatchSettings { recorder: recorder.clone(), ..config.watch.clone() };
    let watch =
        watcher::start(config.watch_mode, watch_settings, queue.clone(), config.default_cluster.clone()).await?;
    if watch.is_some() && config.default_cluster.is_empty() {
        tracing::warn!(
            "watched Events go to the unnamed cluster: set --cluster-name to the name in the webhook's \
             /audit/{{cluster}} path, or post to /audit, so they meet that cluster's writes"
        );
    }
    // The worker also wakes when a buffered record comes due; the tick only
    // bounds how often it checks otherwise (idle input, new clusters).
    let clusters =
        Arc::new(ClusterSlots::new(config.max_clusters, config.cluster_idle, config.default_cluster.clone()));
    let worker_config = WorkerConfig {
        core: config.core.clone(),
        tick: std::time::Duration::from_millis(20),
        health: health.clone(),
        clusters: clusters.clone(),
        wal: wal.clone(),
    };
    let lookups = watch.as_ref().map(|w| w.lookups.clone());
    let worker = std::thread::Builder::new()
        .name("kausal-core".into())
        .spawn(move || pipeline::run_worker(receiver, worker_config, span_sender, lookups))?;

    let state = Arc::new(WebhookState {
        queue: queue.clone(),
        auth: config.auth.clone(),
        decode: config.decode,
        default_cluster: config.default_cluster.clone(),
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
        clusters: clusters.clone(),
        bad_records_logged_per_batch: 5,
        recorder,
        wal: wal.clone(),
        inflight: webhook::inflight_budget(config.max_inflight_bytes),
    });
    if let Some(recovered) = recovered {
        // Consumed (and its segment files closed) here, even when empty.
        recovery::replay_recovered(&state, recovered).await?;
    }
    let ops_state = Arc::new(ops::OpsState {
        queue: queue.clone(),
        export_health: health,
        otlp_endpoint: config.otlp_export.then(|| otlp_endpoint.clone()),
        wal: wal.clone(),
        metrics,
    });
    let limits = config.connections;
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let wait_stop = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let ops = ops_listener.map(|l| {
        tracing::info!(address = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ops endpoints on plain HTTP");
        // Nothing on the ops listener authenticates.
        let ops_limits = listener::ConnectionLimits { unauthenticated: None, ..limits };
        tokio::spawn(listener::serve(l, None, ops::router(ops_state.clone()), ops_limits, wait_stop(stop.clone())))
    });
    tracing::info!(
        address = %listener.local_addr()?,
        tls = config.tls.is_some(),
        mtls = state.auth.mtls,
        tokens = state.auth.tokens.len(),
        otlp = %config.otlp_protocol,
        otlp_endpoint = %otlp_endpoint,
        data_dir = %data_dir.unwrap_or_default(),
        "kausal serve listening"
    );
    if wal.is_none() {
        tracing::warn!("no --data-dir: acknowledged batches are held in memory until exported, and a crash loses them");
    }
    warn_if_few_file_descriptors(config.connections.max_connections, ops.is_some());
    if config.tls.is_none() {
        tracing::warn!("--insecure-http: audit data travels unencrypted");
    }
    if state.auth.insecure_no_auth {
        tracing::warn!("--insecure-no-auth: anyone who can connect may POST audit data");
    }
    if !config.otlp_export {
        tracing::info!(
            "no OTLP endpoint (--otlp-endpoint or OTEL_EXPORTER_OTLP_*): spans are stored only, for the query API \
             and the viewer"
        );
    }
    let query = query.zip(store.clone()).map(|(l, store)| {
        let addr = l.local_addr().ok();
        let loopback = addr.is_some_and(|a| a.ip().is_loopback());
        // The answers name the cluster's users and objects: off loopback
        // they take the webhook's TLS and authentication.
        let (tls, auth, query_limits) = if loopback {
            (None, None, listener::ConnectionLimits { unauthenticated: None, ..limits })
        } else {
            (config.tls.clone(), Some(state.auth.clone()), limits)
        };
        tracing::info!(
            address = %addr.map(|a| a.to_string()).unwrap_or_default(),
            tls = tls.is_some(),
            authenticated = auth.as_ref().is_some_and(|a| !a.insecure_no_auth),
            "query API (Jaeger's) and viewer at /viewer/"
        );
        let query_state = Arc::new(QueryState { store, auth, now_us: Arc::new(pipeline::wall_clock_micros) });
        tokio::spawn(listener::serve(l, tls, query::api::router(query_state), query_limits, wait_stop(stop.clone())))
    });
    let app = webhook::router(state.clone()).merge(ops::router(ops_state));
    let server = tokio::spawn(listener::serve(listener, config.tls.clone(), app, limits, wait_stop(stop.clone())));

    shutdown_signal().await;
    tracing::info!(deadline = ?config.shutdown_timeout, "shutting down: no new connections; draining");
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
        if let Some(query) = query {
            query.abort();
        }
        if let Some(pruning) = pruning {
            pruning.abort();
        }
    };
    match tokio::time::timeout(config.shutdown_timeout, drain).await {
        Ok(()) => {
            tracing::info!("shutdown complete: queue drained and spans exported");
            Ok(())
        }
        Err(_) if wal.is_some() => anyhow::bail!(
            "shutdown did not finish within {:?}: spans not yet exported to {otlp_endpoint} stay in the write-ahead \
             log and are linked and exported again on the next start",
            config.shutdown_timeout
        ),
        Err(_) => anyhow::bail!(
            "shutdown did not finish within {:?}: spans not yet exported to {otlp_endpoint} are lost (without \
             --data-dir nothing keeps them)",
            config.shutdown_timeout
        ),
    }
}

/// How often the store is brought within --retention and --max-store-bytes.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

async fn prune_periodically(store: Arc<Store>) {
    loop {
        let store = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let pruned = store.prune(pipeline::wall_clock_micros());
            (pruned, store.size())
        })
        .await;
        match done {
            Ok((Ok(pruned), size)) => {
                metrics::counter!(telemetry::STORE_PRUNED, "reason" => "retention").increment(pruned.expired);
                metrics::counter!(telemetry::STORE_PRUNED, "reason" => "size").increment(pruned.over_size);
                if let Ok((spans, bytes)) = size {
                    metrics::gauge!(telemetry::STORE_SPANS).set(spans as f64);
                    metrics::gauge!(telemetry::STORE_BYTES).set(bytes as f64);
                }
            }
            Ok((Err(e), _)) => tracing::warn!(error = %e, "pruning the trace store failed; will try again"),
            Err(e) => tracing::warn!(error = %e, "pruning the trace store failed; will try again"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// File descriptors the process may open (the soft `RLIMIT_NOFILE`, read
/// from /proc on Linux), against what the connection caps can take: if they
/// cannot all be open at once, the apiserver's handshakes would time out
/// when the limit is hit instead of being refused by the cap.
fn warn_if_few_file_descriptors(max_connections: usize, ops_listener: bool) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    // Both listeners, plus room for the log, the exporter, the watch and the runtime.
    let needed = max_connections * if ops_listener { 2 } else { 1 } + 128;
    match soft {
        Some(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below what --max-connections can use: raise `ulimit -n` or lower --max-connections"
        ),
        _ => {}
    }
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
