//! Looking at traces without a server of one's own: `kausal view PATH...`
//! serves the viewer and the query API over recordings, and `kausal why`
//! answers why an object exists or is gone, from a running server or from
//! recordings.
//!
//! - [`load`]: recordings into an in-memory store.
//! - [`why`]: the `why` command.

pub mod load;
pub mod why;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::linking_args::LinkingArgs;
use crate::query::{self, api::QueryState};
use crate::sources::listener::{self, ConnectionLimits};

#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// Recorded audit logs and Event files or directories (as for `kausal replay`).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Where to serve the viewer and the query API; loopback only.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub linking: LinkingArgs,
}

/// Replays, then serves until Ctrl-C.
pub fn run(args: ViewArgs) -> anyhow::Result<()> {
    // What is served names the cluster's users and objects, and nothing
    // here authenticates: only this machine may ask.
    if !args.listen.ip().is_loopback() {
        anyhow::bail!("--listen {}: `kausal view` serves on loopback only (127.0.0.1 or ::1)", args.listen);
    }
    let (store, result) = load::recordings(&args.paths, &args.linking, true)?;
    let end = load::end_of(&result);
    let (spans, _) = store.size()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {} (choose another with --listen)", args.listen))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(QueryState { store: Arc::new(store), auth: None, now_us: Arc::new(move || end) });
        eprintln!(
            "kausal view: {spans} spans from {} input(s); open http://{addr}/viewer/ (Jaeger's API at http://{addr}/api/); Ctrl-C to stop",
            result.inputs
        );
        let limits = ConnectionLimits {
            header_timeout: std::time::Duration::from_secs(10),
            drain_timeout: std::time::Duration::from_secs(1),
            max_connections: 256,
            unauthenticated: None,
        };
        listener::serve(listener, None, query::api::router(state), limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}
