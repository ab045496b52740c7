//! The Kubernetes side: an Event watch, and metadata lookups of objects the
//! graph has never seen.
//!
//! The watch uses kube-runtime's watcher, which lists, watches, and relists
//! when the watch expires (410 Gone). A relist delivers every live Event again;
//! the `resourceVersion` of each Event already handed on is remembered (until
//! the Event is deleted), so a relist resumes where the watch was instead of
//! replaying everything.
//!
//! Lookups are what makes Events about old objects useful: an object created
//! before kausal started has no writes in the graph, so a metadata GET (served
//! from the apiserver's cache with `resourceVersion=0`) fills in its name, kind
//! and controller owner. Each UID is looked up once, at a bounded rate.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, DynamicObject, GetParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::owner_watch;
use super::recorder::Recorder;
use crate::core::ids::Uid;
use crate::core::kinds;
use crate::core::record::{ObservedObject, Owner, UnknownObject};
use crate::core::time;
use crate::decode::{self, DecodeOptions};
use crate::pipeline::{Batch, IngestQueue, LookupRequest, wall_clock_micros};
use crate::telemetry as m;

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--watch-events=on, but no Kubernetes credentials: {0}")]
    NoCredentials(kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Whether to watch Events through the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchMode {
    /// Watch when in-cluster credentials or a kubeconfig are found.
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    pub lookup_rate: u32,
    pub decode: DecodeOptions,
    pub recorder: Option<Arc<Recorder>>,
    /// Events in a (re)list whose latest observation is older than this are
    /// not handed on: their causes are older than any window, and a restarted
    /// kausal would otherwise re-export what the previous process had linked.
    pub list_max_age: Duration,
    /// Also watch the metadata of the kinds Events name (`--watch-owners`).
    pub owners: bool,
}

/// The running watch and lookup tasks.
pub struct Watch {
    /// Where the core worker sends objects to look up.
    pub lookups: mpsc::Sender<LookupRequest>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watch {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts watching Events if `mode` asks for it (and, for `auto`, if
/// credentials are found). `None` means no watch: the audit stream is the only source.
pub async fn start(
    mode: WatchMode,
    settings: WatchSettings,
    queue: IngestQueue,
    cluster: Arc<str>,
) -> Result<Option<Watch>, WatchError> {
    if mode == WatchMode::Off {
        return Ok(None);
    }
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) if mode == WatchMode::Auto => {
            let what = if settings.owners { "Events or owners" } else { "Events" };
            tracing::info!(reason = %e, "no Kubernetes credentials found; not watching {what} (--watch-events=auto)");
            return Ok(None);
        }
        Err(e) => return Err(WatchError::NoCredentials(e)),
    };
    let client = kube::Client::try_from(config)?;
    Ok(Some(spawn(client, settings, queue, cluster)))
}

/// Starts the watch and lookup tasks on an existing client.
pub fn spawn(client: kube::Client, settings: WatchSettings, queue: IngestQueue, cluster: Arc<str>) -> Watch {
    let (lookups, lookup_requests) = mpsc::channel(1024);
    let mut tasks = Vec::new();
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    for namespace in scopes {
        let api: Api<CoreEvent> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        tracing::info!(namespace = namespace.as_deref().unwrap_or("(all)"), "watching Events");
        tasks.push(tokio::spawn(watch_events(api, settings.clone(), queue.clone(), cluster.clone())));
    }
    if settings.owners {
        let run = owner_watch::run(
            client.clone(),
            settings.namespaces.clone(),
            queue.clone(),
            cluster.clone(),
            settings.recorder.clone(),
        );
        tasks.push(tokio::spawn(run));
    }
    tasks.push(tokio::spawn(look_up_objects(client, lookup_requests, settings.lookup_rate.max(1), queue)));
    Watch { lookups, tasks }
}

async fn watch_events(api: Api<CoreEvent>, settings: WatchSettings, queue: IngestQueue, cluster: Arc<str>) {
    // UID → resourceVersion of every live Event already handed on.
    let mut delivered: HashMap<String, String> = HashMap::new();
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        let (event, listed) = match item {
            Ok(watcher::Event::Apply(e)) => {
                metrics::counter!(m::WATCH_EVENTS, "type" => "apply").increment(1);
                (e, false)
            }
            Ok(watcher::Event::InitApply(e)) => {
                metrics::counter!(m::WATCH_EVENTS, "type" => "list").increment(1);
                (e, true)
            }
            Ok(watcher::Event::Delete(e)) => {
                if let Some(uid) = &e.metadata.uid {
                    delivered.remove(uid);
                }
                continue;
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
            Err(e) => {
                metrics::counter!(m::WATCH_RESTARTS).increment(1);
                tracing::warn!(error = %e, "Event watch failed; retrying with backoff (a 410 relists)");
                continue;
            }
        };
        let (Some(uid), Some(version)) = (event.metadata.uid.clone(), event.metadata.resource_version.clone()) else {
            continue;
        };
        if delivered.get(&uid) == Some(&version) {
            continue;
        }
        let text = match serde_json::to_string(&event) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-encode a watched Event");
                continue;
            }
        };
        let mut decoded = decode::decode(text.as_bytes(), &settings.decode);
        if listed {
            let oldest = wall_clock_micros().saturating_sub(time::from_duration(settings.list_max_age));
            let before = decoded.records.len();
            decoded.records.retain(|r| r.order_time() >= oldest);
            if decoded.records.len() < before {
                metrics::counter!(m::WATCH_EVENTS, "type" => "list_too_old").increment(1);
                delivered.insert(uid, version);
                continue;
            }
        }
        if let Some(recorder) = &settings.recorder {
            recorder.watch_line(&cluster, "ADDED", &text);
        }
        for bad in &decoded.bad {
            metrics::counter!(m::BAD_RECORDS, "reason" => bad.reason.as_str()).increment(1);
            tracing::warn!(reason = bad.reason.as_str(), detail = %bad.detail, "bad Event from the watch");
        }
        delivered.insert(uid, version);
        if decoded.records.is_empty() {
            continue;
        }
        let batch = Batch { cluster: cluster.clone(), records: decoded.records, ..Batch::default() };
        if queue.enqueue(batch).await.is_err() {
            return; // shutting down
        }
    }
}

/// How many looked-up UIDs are remembered before the memory is reset.
const MAX_REMEMBERED_LOOKUPS: usize = 100_000;

async fn look_up_objects(
    client: kube::Client,
    mut requests: mpsc::Receiver<LookupRequest>,
    rate: u32,
    queue: IngestQueue,
) {
    let mut done: HashSet<Box<str>> = HashSet::new();
    let mut pace = tokio::time::interval(Duration::from_secs(1) / rate);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(request) = requests.recv().await {
        if done.len() >= MAX_REMEMBERED_LOOKUPS {
            done.clear();
        }
        if !done.insert(request.object.uid.clone()) {
            metrics::counter!(m::LOOKUPS, "result" => "cached").increment(1);
            continue;
        }
        pace.tick().await;
        match look_up(&client, &request.object).await {
            Ok(Some(observed)) => {
                metrics::counter!(m::LOOKUPS, "result" => "found").increment(1);
                let batch = Batch { cluster: request.cluster, observed: vec![observed], ..Batch::default() };
                if queue.enqueue(batch).await.is_err() {
                    return;
                }
            }
            Ok(None) => metrics::counter!(m::LOOKUPS, "result" => "not_found").increment(1),
            Err(e) => {
                metrics::counter!(m::LOOKUPS, "result" => "error").increment(1);
                tracing::debug!(kind = %request.object.kind, name = %request.object.name, error = %e, "metadata lookup failed");
            }
        }
    }
}

async fn look_up(client: &kube::Client, object: &UnknownObject) -> Result<Option<ObservedObject>, kube::Error> {
    let api_version = object.api_version.as_deref().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = kinds::resource_for_kind(&object.kind);
    let gvk = GroupVersionKind::gvk(group, version, &object.kind);
    let api_resource = ApiResource::from_gvk_with_plural(&gvk, &resource);
    let api: Api<DynamicObject> = if object.namespace.is_empty() {
        Api::all_with(client.clone(), &api_resource)
    } else {
        Api::namespaced_with(client.clone(), &object.namespace, &api_resource)
    };
    let Some(found) = api.get_metadata_opt_with(&object.name, &GetParams::any()).await? else {
        return Ok(None);
    };
    let meta = found.metadata;
    // A different UID means the name was reused: the Event's object is gone.
    if meta.uid.as_deref() != Some(&*object.uid) {
        return Ok(None);
    }
    let controller_owner = meta
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.controller == Some(true))
        .map(|o| Owner { kind: o.kind.into(), name: o.name.into(), uid: Uid::from_text(&o.uid), controller: true });
    Ok(Some(ObservedObject {
        uid: object.uid.clone(),
        resource: resource.into(),
        kind: Some(object.kind.clone()),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        controller_owner,
    }))
}
