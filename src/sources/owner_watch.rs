//! `--watch-owners`: metadata-only watches of the kinds Events name, so the
//! Events-only linker knows whose each object is (a pod's ReplicaSet, its
//! Deployment) even where no Event announced it.
//!
//! kube-runtime's watcher on `PartialObjectMeta` lists and watches metadata
//! only (no specs, no statuses) and relists on 410 Gone. kausal does not keep
//! a reflector store beside it: a store holds every object's whole metadata
//! (labels, annotations, managed fields), while the linker needs only kind,
//! name, UID and controller owner. Each object goes to the core as an
//! [`ObservedObject`], into the graph, which `--max-objects` bounds.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind, PartialObjectMeta};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use serde_json::json;

use super::recorder::Recorder;
use crate::core::ids::{Uid, fingerprint};
use crate::core::record::{ObservedObject, Owner};
use crate::pipeline::{Batch, IngestQueue};
use crate::telemetry as m;

/// The kinds Events name whose owners matter: (group, version, kind, plural, namespaced).
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Pod", "pods", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("", "v1", "Node", "nodes", false),
];

/// How many objects' (UID, owner) fingerprints one watch remembers before it
/// starts again (about 16 MB at most): every status write of a pod changes its
/// metadata's resourceVersion, and only a new object or a new owner is news.
const MAX_REMEMBERED: usize = 1_000_000;

/// Objects of a list handed on together, so a relist of a big cluster is a
/// few hundred batches, not one per object.
const LIST_CHUNK: usize = 500;

/// Runs one watch per kind and namespace scope, all in the calling task
/// (aborting it stops them all).
pub(super) async fn run(
    client: kube::Client,
    namespaces: Vec<String>,
    queue: IngestQueue,
    cluster: Arc<str>,
    recorder: Option<Arc<Recorder>>,
) {
    let mut watches = Vec::new();
    let cronjob_version = cronjob_version(&client).await;
    for &(group, version, kind, plural, namespaced) in KINDS {
        let version = if kind == "CronJob" { cronjob_version } else { version };
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let scopes: Vec<Option<&str>> = if namespaced && !namespaces.is_empty() {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        };
        for scope in scopes {
            let api: Api<PartialObjectMeta<DynamicObject>> = match scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let watch = OwnerWatch {
                kind,
                plural,
                api_version: resource.api_version.clone(),
                queue: queue.clone(),
                cluster: cluster.clone(),
                recorder: recorder.clone(),
            };
            watches.push(watch.run(api));
        }
    }
    tracing::info!(kinds = KINDS.len(), "watching owners (metadata only)");
    futures::future::join_all(watches).await;
}

/// CronJobs are `batch/v1` from Kubernetes 1.21, `batch/v1beta1` before.
async fn cronjob_version(client: &kube::Client) -> &'static str {
    match client.list_api_group_resources("/apis/batch/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => "v1",
        Ok(_) => "v1beta1",
        Err(e) => {
            tracing::debug!(error = %e, "could not discover batch/v1; watching CronJobs as batch/v1");
            "v1"
        }
    }
}

struct OwnerWatch {
    kind: &'static str,
    plural: &'static str,
    api_version: String,
    queue: IngestQueue,
    cluster: Arc<str>,
    recorder: Option<Arc<Recorder>>,
}

impl OwnerWatch {
    async fn run(self, api: Api<PartialObjectMeta<DynamicObject>>) {
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut listed = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        while let Some(item) = stream.next().await {
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            let sent = match item {
                Ok(watcher::Event::Apply(o)) if seen.insert(identity(&o)) => {
                    self.hand_on(self.observed(&o).into_iter().collect()).await
                }
                Ok(watcher::Event::InitApply(o)) if seen.insert(identity(&o)) => {
                    listed.extend(self.observed(&o));
                    if listed.len() < LIST_CHUNK {
                        continue;
                    }
                    self.hand_on(std::mem::take(&mut listed)).await
                }
                Ok(watcher::Event::InitDone) => self.hand_on(std::mem::take(&mut listed)).await,
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&identity(&o));
                    continue;
                }
                Ok(_) => continue, // Init, or an object already handed on with this owner
                Err(e) => {
                    metrics::counter!(m::WATCH_RESTARTS).increment(1);
                    tracing::warn!(kind = self.kind, error = %e, "owner watch failed; retrying with backoff");
                    continue;
                }
            };
            if !sent {
                return; // shutting down
            }
        }
    }

    fn observed(&self, o: &PartialObjectMeta<DynamicObject>) -> Option<ObservedObject> {
        let meta = &o.metadata;
        let (uid, name) = (meta.uid.as_deref()?, meta.name.as_deref()?);
        let owner = meta.owner_references.iter().flatten().find(|r| r.controller == Some(true));
        if let Some(recorder) = &self.recorder {
            // As an object dump would hold it, so a replay of the recording
            // follows the same owners.
            let object = json!({
                "apiVersion": self.api_version, "kind": self.kind,
                "metadata": {"name": name, "namespace": meta.namespace, "uid": uid,
                             "ownerReferences": owner.map(|r| vec![r])},
            });
            recorder.watch_line(&self.cluster, "ADDED", &object.to_string());
        }
        metrics::counter!(m::OWNERS_WATCHED, "kind" => self.kind).increment(1);
        Some(ObservedObject {
            uid: uid.into(),
            resource: self.plural.into(),
            kind: Some(self.kind.into()),
            namespace: meta.namespace.as_deref().unwrap_or("").into(),
            name: name.into(),
            controller_owner: owner.map(|r| Owner {
                kind: r.kind.as_str().into(),
                name: r.name.as_str().into(),
                uid: Uid::from_text(&r.uid),
                controller: true,
            }),
        })
    }

    /// False when the queue is closed (shutting down).
    async fn hand_on(&self, observed: Vec<ObservedObject>) -> bool {
        if observed.is_empty() {
            return true;
        }
        let batch = Batch { cluster: self.cluster.clone(), observed, ..Batch::default() };
        self.queue.enqueue(batch).await.is_ok()
    }
}

/// An object and its controller owner, as one fingerprint.
fn identity(o: &PartialObjectMeta<DynamicObject>) -> u64 {
    let owner = o.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true));
    let uid = o.metadata.uid.as_deref().unwrap_or("");
    fingerprint(&format!("{uid}/{}", owner.map_or("", |r| r.uid.as_str())))
}
