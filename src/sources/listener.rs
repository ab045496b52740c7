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
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::telemetry as m;

/// What the handler may know about the connection a request came on.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The client presented a certificate that chains to `--client-ca`.
    pub client_cert_verified: bool,
    /// Set on a connection that has yet to authenticate: the handler
    /// notifies it once a request on it did (a bearer token), and the
    /// listener stops counting it against the unauthenticated cap.
    pub pending_auth: Option<Arc<Notify>>,
}

impl ConnectionInfo {
    /// A request on this connection was authenticated.
    pub fn authenticated(&self) {
        if let Some(pending) = &self.pending_auth {
            pending.notify_one();
        }
    }
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
    /// Limits on connections without a verified client certificate, until a
    /// request on them authenticates; `None` where nothing needs to
    /// authenticate (the ops listener, `--insecure-no-auth`).
    pub unauthenticated: Option<UnauthenticatedLimits>,
}

/// A connection that presented no verified client certificate is only a
/// socket until a request on it carries a valid token: bounded in number,
/// and closed if it does not authenticate in time, so idle or anonymous
/// connections cannot hold the descriptors the apiserver needs.
#[derive(Debug, Clone, Copy)]
pub struct UnauthenticatedLimits {
    /// Such connections open at once; one more is closed at once.
    pub max_connections: usize,
    /// A request on the connection must authenticate within this of the handshake.
    pub within: Duration,
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
    let unauthenticated =
        Arc::new(tokio::sync::Semaphore::new(limits.unauthenticated.map_or(0, |l| l.max_connections.max(1))));
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
            metrics::counter!(m::CONNECTIONS_REFUSED, "reason" => "max_connections").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            app: app.clone(),
            builder: builder.clone(),
            watcher: graceful.watcher(),
            unauthenticated: limits.unauthenticated.map(|l| (l, unauthenticated.clone())),
        };
        let acceptor = acceptor.clone();
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
                    let verified = tls.get_ref().1.peer_certificates().is_some();
                    connection.run(tls, verified).await;
                }
                None => connection.run(stream, false).await,
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {:?}; closing them", limits.drain_timeout);
    }
}

/// One accepted connection, after its TLS handshake.
struct Connection {
    peer: std::net::SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    unauthenticated: Option<(UnauthenticatedLimits, Arc<tokio::sync::Semaphore>)>,
}

impl Connection {
    /// Serves the connection until it ends. One without a verified
    /// certificate (where authentication is required) holds an
    /// unauthenticated slot until a request on it authenticates, and is
    /// closed if none does in time.
    async fn run<I>(self, io: I, client_cert_verified: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let pending = match self.unauthenticated.filter(|_| !client_cert_verified) {
            Some((limits, slots)) => match slots.try_acquire_owned() {
                Ok(permit) => Some((limits.within, permit, Arc::new(Notify::new()))),
                Err(_) => {
                    tracing::warn!(
                        %peer,
                        limit = limits.max_connections,
                        "too many connections that have not authenticated; closing this one"
                    );
                    metrics::counter!(m::CONNECTIONS_REFUSED, "reason" => "max_unauthenticated").increment(1);
                    return;
                }
            },
            None => None,
        };
        let info = ConnectionInfo { client_cert_verified, pending_auth: pending.as_ref().map(|(_, _, n)| n.clone()) };
        let service = TowerToHyperService::new(self.app.layer(axum::Extension(info)));
        let conn = self.watcher.watch(self.builder.serve_connection(TokioIo::new(io), service).into_owned());
        tokio::pin!(conn);
        if let Some((within, permit, authenticated)) = pending {
            tokio::select! {
                ended = &mut conn => return log_end(peer, ended),
                in_time = tokio::time::timeout(within, authenticated.notified()) => match in_time {
                    Ok(()) => drop(permit),
                    Err(_) => {
                        tracing::info!(%peer, ?within, "closing a connection on which no request authenticated in time");
                        metrics::counter!(m::CONNECTIONS_REFUSED, "reason" => "not_authenticated").increment(1);
                        return;
                    }
                },
            }
        }
        log_end(peer, conn.await);
    }
}

fn log_end(peer: std::net::SocketAddr, ended: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
