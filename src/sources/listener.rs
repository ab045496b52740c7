//! The HTTPS (or, explicitly, plain HTTP) listener in front of the webhook.
//!
//! An own accept loop rather than a ready-made server, for three reasons: the
//! handler must know whether *this connection* presented a verified client
//! certificate (mTLS and tokens may both be allowed); slow clients need a TLS
//! handshake timeout and a header-read timeout; and shutdown must stop
//! accepting and then wait, within a deadline, for requests in flight.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the handler may know about the connection a request came on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionInfo {
    /// The client presented a certificate that chains to `--client-ca`.
    pub client_cert_verified: bool,
}

/// Where the server's certificate and the trusted client CA are.
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub client_ca: Option<&'a Path>,
    /// Allow connections without a client certificate (a token may
    /// authenticate them instead). A certificate that *is* presented must
    /// still verify, or the handshake fails.
    pub client_cert_optional: bool,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: rustls_pki_types::pem::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("client CA {}: {source}", path.display())]
    ClientCa { path: PathBuf, source: rustls::Error },
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS certificate and key do not match: {0}")]
    KeyMismatch(rustls::Error),
}

fn read_error(what: &'static str, path: &Path) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Read { what, path, source }
}

/// Builds the rustls server configuration (HTTP/2 and HTTP/1.1 via ALPN).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.cert)
        .map_err(read_error("TLS certificate", files.cert))?
        .collect::<Result<_, _>>()
        .map_err(read_error("TLS certificate", files.cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: files.cert.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_file(files.key).map_err(read_error("TLS private key", files.key))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(read_error("client CA", ca))? {
                let cert = cert.map_err(read_error("client CA", ca))?;
                roots.add(cert).map_err(|source| TlsError::ClientCa { path: ca.to_owned(), source })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate { path: ca.to_owned() });
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = if files.client_cert_optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build()?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(TlsError::KeyMismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Timeouts against slow or stuck clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// TLS handshake, and then the request line and headers, must each arrive within this.
    pub header_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is
    /// accepted, so file descriptors never run out.
    pub max_connections: usize,
}

/// Concurrent HTTP/2 streams per connection: an apiserver sends one batch
/// at a time per connection; a few more allow for retries.
const MAX_STREAMS_PER_CONNECTION: u32 = 16;
/// How long an HTTP/2 keep-alive ping may go unanswered before the
/// connection is closed (a peer that vanished).
const PING_DEADLINE: Duration = Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting
/// and waits up to `drain_timeout` for connections in flight.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(PING_DEADLINE)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let builder = Arc::new(builder);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "too many open connections; closing this one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let info = ConnectionInfo { client_cert_verified: tls.get_ref().1.peer_certificates().is_some() };
                    let service = TowerToHyperService::new(app.layer(axum::Extension(info)));
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                None => {
                    let service = TowerToHyperService::new(app.layer(axum::Extension(ConnectionInfo::default())));
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {:?}; closing them", limits.drain_timeout);
    }
}
