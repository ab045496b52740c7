//! Scenarios against a real control plane (kube-apiserver, kube-controller-manager,
//! kube-scheduler 1.20 and etcd on loopback), started by `tests/e2e/run.sh`.
//! These tests are `#[ignore]`d: `cargo test` alone has no cluster to talk to.
//!
//! Each test starts `kausal serve` on the port the apiserver's audit webhook
//! posts to, exports to a real OTLP/gRPC receiver in this process, drives the
//! cluster as a person would (the admin user, through the Kubernetes API), and
//! waits until the exported spans have the expected causal shape. A failure
//! prints what was expected beside the trace trees that arrived.
//!
//! Most scenarios have no kubelet: pods are bound by the scheduler to fake
//! Ready nodes but never run. The `kubelet_` scenarios run real pods on a real
//! node (`run.sh --node`), tainted so that no other scenario's pod lands there.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::{Value, json};

use common::otlp_receiver::{self, Receiver, string_attr};
use common::server::Kausal;

// ---- environment -----------------------------------------------------------

struct Env {
    dir: String,
    port: u16,
    ops_port: u16,
    record: Option<String>,
    phase: String,
}

/// The cluster run.sh started. Each test's name starts with its phase
/// (`bootstrap_`, `audit_`, `kubelet_`, `watch_`), and no other part of a
/// name holds a phase's prefix, since run.sh skips the other phases' tests by
/// substring. It runs only that phase's tests, so the
/// others are reported as filtered out, never as passed; a test run outside
/// run.sh, or in the other phase, fails instead of passing without a cluster.
fn env(phase: &str) -> Option<Env> {
    let Ok(dir) = std::env::var("KAUSAL_E2E_DIR") else {
        panic!("no control plane: run the e2e scenarios through tests/e2e/run.sh");
    };
    let current = std::env::var("KAUSAL_E2E_PHASE").unwrap_or_default();
    assert_eq!(current, phase, "this scenario runs in the `{phase}` phase of tests/e2e/run.sh");
    Some(Env {
        dir,
        port: std::env::var("KAUSAL_E2E_PORT").unwrap().parse().unwrap(),
        ops_port: std::env::var("KAUSAL_E2E_OPS_PORT").unwrap().parse().unwrap(),
        record: std::env::var("KAUSAL_E2E_RECORD").ok().filter(|r| !r.is_empty()),
        phase: current,
    })
}

/// Starts kausal where the apiserver's webhook points, exporting to `receiver`.
async fn start_kausal(env: &Env, receiver: &Receiver, scenario: &str, watch: bool) -> Kausal {
    let label = format!("{}-{scenario}", env.phase);
    start_kausal_at(env, receiver, &label, watch, false, (env.port, env.ops_port)).await
}

/// Starts kausal on `ports`, recording (with --record) and keeping its log
/// under `label`; `owners`: with `--watch-owners` (the Events-only run).
async fn start_kausal_at(
    env: &Env,
    receiver: &Receiver,
    label: &str,
    watch: bool,
    owners: bool,
    ports: (u16, u16),
) -> Kausal {
    let certs = format!("{}/kausal-certs", env.dir);
    let mut args: Vec<String> = vec![
        "--tls-cert".into(),
        format!("{certs}/server.crt"),
        "--tls-key".into(),
        format!("{certs}/server.key"),
        "--client-ca".into(),
        format!("{certs}/ca.crt"),
        "--otlp-endpoint".into(),
        receiver.endpoint(),
        "--cluster-name".into(),
        "e2e".into(),
        // The settle delay must cover the apiserver's batch wait (1s here) so
        // watched Events, which arrive at once, meet audit records that come
        // later; the short Event linger keeps the test from waiting a minute.
        "--settle".into(),
        "3s".into(),
        "--event-linger".into(),
        "3s".into(),
        "--watch-events".into(),
        if watch { "on" } else { "off" }.into(),
        // Each scenario has its own write-ahead log, so the apiserver's
        // batches go through it, and a restart under a new scenario name
        // still starts from an empty graph.
        "--data-dir".into(),
        format!("{}/kausal-data/{label}", env.dir),
    ];
    if owners {
        // Owner chains for the Events-only linker, from metadata watches.
        args.extend(["--watch-owners".into(), "on".into()]);
    }
    if let Some(record) = &env.record {
        args.extend(["--record-dir".into(), format!("{record}/{label}")]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut kausal = Kausal::start_at(ports.0, ports.1, &refs, &[]);
    kausal.wait_healthy().await;
    kausal
}

/// The start every audit-stream scenario shares: kausal exporting to a fresh
/// receiver (and recording with --record), the fake nodes, and the namespace.
/// `None` outside run.sh's audit phase.
async fn start_audit_scenario(scenario: &str, ns: &str) -> Option<(Receiver, Kausal, kube::Client)> {
    start_scenario("audit", scenario, ns, true).await
}

/// The same for the real node's scenarios, which need no fake nodes but the
/// real one: the first scenario to ask has run.sh start it.
async fn start_kubelet_scenario(scenario: &str, ns: &str) -> Option<(Receiver, Kausal, kube::Client)> {
    let started = start_scenario("kubelet", scenario, ns, false).await?;
    real_node_ready(&env("kubelet")?.dir).await;
    default_account_ready(&started.2, ns).await;
    Some(started)
}

/// Waits until the new namespace's `default` ServiceAccount has its token:
/// the apiserver refuses a pod before that ("No API token found for service
/// account"). A controller retries; a person's bare pod would fail.
async fn default_account_ready(client: &kube::Client, ns: &str) {
    let accounts = api(client, Some(ns), &resource("", "v1", "ServiceAccount", "serviceaccounts"));
    let deadline = Instant::now() + WAIT;
    loop {
        let account =
            accounts.get_opt("default").await.unwrap_or_else(|e| panic!("get serviceaccount {ns}/default: {e}"));
        if account.is_some_and(|a| a.data["secrets"].as_array().is_some_and(|s| !s.is_empty())) {
            return;
        }
        assert!(Instant::now() < deadline, "{ns}/default has no token after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks run.sh for the real node (`start-node`) and waits until it says the
/// node is Ready (`node-ready`); at once when it already is.
async fn real_node_ready(dir: &str) {
    let (ask, ready) = (format!("{dir}/start-node"), format!("{dir}/node-ready"));
    std::fs::write(&ask, b"").expect("ask run.sh for the node");
    // containerd, the images and the kubelet: about 20 s here, a minute at most.
    let deadline = Instant::now() + Duration::from_secs(240);
    while !std::path::Path::new(&ready).exists() {
        assert!(Instant::now() < deadline, "run.sh did not report the real node Ready (see its kubelet log)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_scenario(
    phase: &str,
    scenario: &str,
    ns: &str,
    fake_nodes: bool,
) -> Option<(Receiver, Kausal, kube::Client)> {
    let env = env(phase)?;
    let receiver = Receiver::start(true).await;
    let kausal = start_kausal(&env, &receiver, scenario, false).await;
    let client = client().await;
    if fake_nodes {
        ensure_nodes(&client).await;
    }
    namespace(&client, ns).await;
    Some((receiver, kausal, client))
}

/// The same scenario seen without the audit webhook: a second kausal on
/// other ports (the apiserver's webhook does not point at it) with only the
/// Event watch on, so its Events-only linker decides. Both see the very same
/// Events, which makes the comparison exact.
struct EventsOnly {
    receiver: Receiver,
    kausal: Kausal,
}

/// [`start_audit_scenario`] plus the run without the webhook beside it.
async fn start_compared_scenario(scenario: &str, ns: &str) -> Option<(Receiver, Kausal, kube::Client, EventsOnly)> {
    let (receiver, kausal, client) = start_audit_scenario(scenario, ns).await?;
    let env = env("audit")?;
    let twin_receiver = Receiver::start(true).await;
    let twin = start_kausal_at(
        &env,
        &twin_receiver,
        &format!("events-only-{scenario}"),
        true,
        true,
        (env.port + 1, env.ops_port + 1),
    )
    .await;
    Some((receiver, kausal, client, EventsOnly { receiver: twin_receiver, kausal: twin }))
}

/// The spans of `receiver` for the comparison; Events of namespace `ns`
/// keyed by their object's name (a repeat span is not the Event's span).
fn tree_spans(receiver: &Receiver, ns: &str) -> Vec<common::event_grouping::TreeSpan> {
    use common::event_grouping::{Seen, TreeSpan, keyed};
    let seen = received(receiver)
        .into_iter()
        .map(|g| Seen {
            start: g.start as i64,
            event_name: (g.attr("kausal.span.kind") == Some("event") && g.in_namespace(ns))
                .then(|| g.attr("k8s.event.name").unwrap_or("").to_owned()),
            tree: TreeSpan {
                label: format!("`{} {}` {:?}", g.service, g.name, g.attr("k8s.event.message").unwrap_or("")),
                found_by: g.attr("kausal.parent.found_by").map(str::to_owned),
                event: None,
                trace: g.trace,
                span: g.span,
                parent: g.parent,
            },
        })
        .collect();
    keyed(ns, seen)
}

/// Issue 19's proof: every Event of `ns` lands in the same trace grouping,
/// and in the same order of nesting, without the webhook as with it.
async fn compare_with_events_only(receiver: &Receiver, twin: EventsOnly, ns: &str) {
    let EventsOnly { receiver: twin_receiver, mut kausal } = twin;
    let deadline = Instant::now() + WAIT;
    // Both sides are complete when neither has received a span for longer
    // than the Event linger and the settle delay (3 s each): a comparison of
    // two equal but partial sets proves little.
    let (mut counts, mut since) = ((0, 0), Instant::now());
    loop {
        let (with, without) = (tree_spans(receiver, ns), tree_spans(&twin_receiver, ns));
        // The namespace's Events: the rest of the cluster never stops writing.
        let events = |spans: &[common::event_grouping::TreeSpan]| spans.iter().filter(|s| s.event.is_some()).count();
        if (events(&with), events(&without)) != counts {
            (counts, since) = ((events(&with), events(&without)), Instant::now());
        }
        let quiet = since.elapsed() > Duration::from_secs(8);
        match common::event_grouping::compare(&with, &without) {
            Ok(n) if quiet => {
                println!("{ns}: {n} Events in the same grouping and nesting with and without the webhook");
                break;
            }
            Ok(_) if Instant::now() > deadline => panic!("{ns}: the Events kept coming for {WAIT:?}"),
            Err(problem) if Instant::now() > deadline => panic!(
                "\nwithout the webhook, Events landed differently:\n{problem}\n\nwith the webhook:\n{}\nwithout it:\n{}",
                Spans(received(receiver)).render(ns),
                Spans(received(&twin_receiver)).render(ns)
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

// ---- the cluster -------------------------------------------------------------

async fn client() -> kube::Client {
    kube::Client::try_default().await.expect("KUBECONFIG from tests/e2e/run.sh")
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn deployments() -> ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

fn api(client: &kube::Client, namespace: Option<&str>, ar: &ApiResource) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

async fn create(client: &kube::Client, namespace: Option<&str>, ar: &ApiResource, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    let name = object.metadata.name.clone().unwrap_or_default();
    match api(client, namespace, ar).create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {} // a node from an earlier scenario
        Err(e) => panic!("create {} {name}: {e}", ar.plural),
    }
}

/// A fake Ready node: without a kubelet, `--node-monitor-grace-period=24h`
/// keeps it Ready, so the scheduler binds pods to it.
fn fake_node(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake node",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    })
}

/// The node the DaemonSet scenario adds and removes.
const EXTRA_NODE: &str = "e2e-node-c";

/// Two fake Ready nodes that stay for the whole run.
async fn ensure_nodes(client: &kube::Client) {
    for name in ["e2e-node-a", "e2e-node-b"] {
        create(client, None, &resource("", "v1", "Node", "nodes"), fake_node(name)).await;
    }
}

async fn namespace(client: &kube::Client, name: &str) {
    create(
        client,
        None,
        &resource("", "v1", "Namespace", "namespaces"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

fn pod_template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "main", "image": image}]
        }
    })
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name, "registry.k8s.io/pause:3.2")}
    })
}

async fn scale(client: &kube::Client, ns: &str, ar: &ApiResource, name: &str, replicas: i64) {
    api(client, Some(ns), ar)
        .patch_subresource(
            "scale",
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap_or_else(|e| panic!("scale {name}: {e}"));
}

// ---- what arrived ------------------------------------------------------------

/// A received span, flattened for assertions.
#[derive(Debug, Clone)]
struct Got {
    trace: String,
    span: String,
    parent: Option<String>,
    name: String,
    service: String,
    start: u64,
    attrs: BTreeMap<String, String>,
    /// Span events named `repeat`: an Event's later reports while its span was open.
    repeats: usize,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
    fn in_namespace(&self, ns: &str) -> bool {
        self.attr("k8s.namespace.name") == Some(ns)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn received(receiver: &Receiver) -> Vec<Got> {
    let mut by_id: BTreeMap<(String, String), Got> = BTreeMap::new();
    for request in receiver.received.lock().unwrap().iter() {
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default();
            let service = string_attr(resource, "service.name").unwrap_or_default();
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let attrs = s
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(AnyValue::StringValue(v)) => v.clone(),
                                Some(AnyValue::IntValue(v)) => v.to_string(),
                                Some(AnyValue::BoolValue(v)) => v.to_string(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    let got = Got {
                        trace: hex(&s.trace_id),
                        span: hex(&s.span_id),
                        parent: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
                        name: s.name.clone(),
                        service: service.clone(),
                        start: s.start_time_unix_nano,
                        attrs,
                        repeats: s.events.iter().filter(|e| e.name == "repeat").count(),
                    };
                    by_id.insert((got.trace.clone(), got.span.clone()), got);
                }
            }
        }
    }
    by_id.into_values().collect()
}

struct Spans(Vec<Got>);

impl Spans {
    fn all(&self, pred: impl Fn(&Got) -> bool) -> Vec<&Got> {
        self.0.iter().filter(|s| pred(s)).collect()
    }

    fn one(&self, what: &str, pred: impl Fn(&Got) -> bool) -> Result<&Got, String> {
        match self.all(pred).as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no span for {what}")),
            many => Err(format!("{} spans for {what}, expected one", many.len())),
        }
    }

    fn named(&self, what: &str, name: &str) -> Result<&Got, String> {
        self.one(what, |s| s.name == name)
    }

    fn parent(&self, child: &Got) -> Option<&Got> {
        let p = child.parent.as_ref()?;
        self.0.iter().find(|s| &s.span == p && s.trace == child.trace)
    }

    /// `child`'s direct parent must be `parent`.
    fn expect_parent(&self, child: &Got, parent: &Got) -> Result<(), String> {
        match self.parent(child) {
            Some(p) if p.span == parent.span && p.trace == parent.trace => Ok(()),
            Some(p) => {
                Err(format!("`{}` should hang under `{}`, but hangs under `{}`", child.name, parent.name, p.name))
            }
            None => Err(format!(
                "`{}` should hang under `{}`, but is a root ({:?})",
                child.name,
                parent.name,
                child.attr("kausal.root")
            )),
        }
    }

    /// `ancestor` must be somewhere above `span` in the same trace.
    fn expect_below(&self, span: &Got, ancestor: &Got) -> Result<(), String> {
        let mut at = span;
        while let Some(p) = self.parent(at) {
            if p.span == ancestor.span {
                return Ok(());
            }
            at = p;
        }
        Err(format!("`{}` should be below `{}` in its trace", span.name, ancestor.name))
    }

    fn expect_intent(&self, span: &Got, who: &str) -> Result<(), String> {
        if span.parent.is_some() || span.attr("kausal.root") != Some("intent") || span.service != who {
            return Err(format!(
                "`{}` should be an intent of {who}: root={:?}, service={}",
                span.name,
                span.attr("kausal.root"),
                span.service
            ));
        }
        Ok(())
    }

    /// The trees of every trace that has a span in `namespace`, or about the
    /// cluster-scoped object of that name, as text.
    fn render(&self, namespace: &str) -> String {
        // A cluster-scoped object (a node) is named instead of a namespace.
        let mut traces: Vec<&str> = self
            .all(|s| s.in_namespace(namespace) || s.attr("k8s.object.name") == Some(namespace))
            .iter()
            .map(|s| s.trace.as_str())
            .collect();
        traces.sort();
        traces.dedup();
        let mut out = String::new();
        for trace in traces {
            let mut spans: Vec<&Got> = self.all(|s| s.trace == trace);
            spans.sort_by_key(|s| s.start);
            let _ = writeln!(out, "trace {trace}");
            for root in spans.iter().filter(|s| s.parent.as_ref().is_none_or(|p| !spans.iter().any(|x| &x.span == p))) {
                self.render_subtree(&spans, root, 1, &mut out);
            }
        }
        out
    }

    fn render_subtree(&self, spans: &[&Got], span: &Got, depth: usize, out: &mut String) {
        let failed = span.attr("http.response.status_code").filter(|code| !code.starts_with('2'));
        let status = failed.map(|code| format!("  ✗ {code}")).unwrap_or_default();
        let _ = writeln!(out, "{}{}  {}{status}", "  ".repeat(depth), span.service, span.name);
        for child in spans.iter().filter(|s| s.parent.as_ref() == Some(&span.span)) {
            self.render_subtree(spans, child, depth + 1, out);
        }
    }
}

const ADMIN: &str = "e2e-admin";
const WAIT: Duration = Duration::from_secs(120);

/// Polls the receiver until `check` passes; on timeout, fails with what was
/// expected beside the trees that arrived for `namespace`.
async fn eventually<T>(
    receiver: &Receiver,
    namespace: &str,
    expected: &str,
    check: impl Fn(&Spans) -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let spans = Spans(received(receiver));
        match check(&spans) {
            Ok(value) => return value,
            Err(problem) if Instant::now() > deadline => {
                panic!(
                    "\nexpected: {expected}\nproblem:  {problem}\n\ngot, for namespace {namespace}:\n{}",
                    spans.render(namespace)
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A write that took effect. Failed attempts are left out: the deployment
/// controller, for one, sometimes creates a ReplicaSet its informer has not
/// seen yet and gets 409 AlreadyExists, and that attempt is not "the create".
fn is_write(s: &Got, verb: &str, resource: &str, ns: &str, name_prefix: &str) -> bool {
    s.attr("kausal.span.kind") == Some("write")
        && s.attr("http.response.status_code").is_none_or(|code| code.starts_with('2'))
        && s.attr("k8s.verb") == Some(verb)
        && s.name.split(' ').nth(1) == Some(resource)
        && s.in_namespace(ns)
        && s.attr("k8s.object.name").is_some_and(|n| n.starts_with(name_prefix))
}

fn is_event(s: &Got, reason: &str, ns: &str, message_contains: &str) -> bool {
    s.attr("kausal.span.kind") == Some("event")
        && s.attr("k8s.event.reason") == Some(reason)
        && s.in_namespace(ns)
        && s.attr("k8s.event.message").is_some_and(|m| m.contains(message_contains))
}

/// Creates Deployment `name` with two replicas and waits for its
/// ReplicaSet and both pods; returns the ReplicaSet's name.
async fn create_deployment_of_two(receiver: &Receiver, client: &kube::Client, ns: &str, name: &str) -> String {
    create(client, Some(ns), &deployments(), deployment(name, 2)).await;
    let prefix = format!("{name}-");
    eventually(receiver, ns, "the Deployment's ReplicaSet and two pods", |s| {
        let rs = s.one("the ReplicaSet create", |x| is_write(x, "create", "replicasets", ns, &prefix))?;
        let n = s.all(|x| is_write(x, "create", "pods", ns, &prefix)).len();
        if n != 2 {
            return Err(format!("{n} pods"));
        }
        Ok(rs.attr("k8s.object.name").unwrap().to_owned())
    })
    .await
}

// ---- scenarios: audit stream -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_deployment_create_scale_rollout_and_delete() {
    let ns = "e2e-deploy";
    let Some((receiver, mut kausal, client, events_only)) = start_compared_scenario("deployment", ns).await else {
        return;
    };
    let ar = deployments();

    // 1. create: Deployment → ReplicaSet → 3 pods → bindings, with their Events.
    create(&client, Some(ns), &ar, deployment("web", 3)).await;
    let first_rs = eventually(
        &receiver,
        ns,
        "create deployments → create replicasets → 3 × create pods → pods/binding, with Events",
        |s| {
            let deploy = s.named("the Deployment create", "create deployments e2e-deploy/web")?;
            s.expect_intent(deploy, ADMIN)?;
            let rs = s.one("the ReplicaSet create", |x| is_write(x, "create", "replicasets", ns, "web-"))?;
            s.expect_parent(rs, deploy)?;
            let pods = s.all(|x| is_write(x, "create", "pods", ns, "web-") && x.trace == deploy.trace);
            if pods.len() != 3 {
                return Err(format!("{} pod creates in the trace, expected 3", pods.len()));
            }
            for pod in &pods {
                s.expect_parent(pod, rs)?;
                let name = pod.attr("k8s.object.name").unwrap();
                let binding = s.one("a binding", |x| x.name == format!("create pods/binding {ns}/{name}"))?;
                s.expect_parent(binding, pod)?;
                let created = s.one("SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, name))?;
                s.expect_parent(created, pod)?;
                let scheduled = s.one("Scheduled", |x| is_event(x, "Scheduled", ns, name))?;
                s.expect_below(scheduled, deploy)?;
            }
            let scaled = s.one("ScalingReplicaSet", |x| is_event(x, "ScalingReplicaSet", ns, "Scaled up"))?;
            s.expect_parent(scaled, rs)?;
            Ok(rs.attr("k8s.object.name").unwrap().to_owned())
        },
    )
    .await;

    // 2. scale up 3 → 5: its own trace; the ReplicaSet update and two new pods under it.
    scale(&client, ns, &ar, "web", 5).await;
    eventually(&receiver, ns, "patch deployments/scale → update replicasets → 2 × create pods", |s| {
        let patch = s.one("the scale-up", |x| x.name == "patch deployments/scale e2e-deploy/web")?;
        s.expect_intent(patch, ADMIN)?;
        let update = s.one("the ReplicaSet scale-up", |x| {
            is_write(x, "update", "replicasets", ns, &first_rs) && x.trace == patch.trace
        })?;
        s.expect_parent(update, patch)?;
        let pods = s.all(|x| is_write(x, "create", "pods", ns, "web-") && x.trace == patch.trace);
        if pods.len() != 2 {
            return Err(format!("{} pod creates in the scale-up trace, expected 2", pods.len()));
        }
        pods.iter().try_for_each(|p| s.expect_parent(p, update))
    })
    .await;

    // 3. scale down 5 → 4: the pod delete and SuccessfulDelete under the ReplicaSet update.
    scale(&client, ns, &ar, "web", 4).await;
    eventually(
        &receiver,
        ns,
        "patch deployments/scale → update replicasets → delete pods + SuccessfulDelete",
        |s| {
            let patches = s.all(|x| x.name == "patch deployments/scale e2e-deploy/web");
            let patch = patches.iter().max_by_key(|x| x.start).ok_or("no scale patch")?;
            if patches.len() != 2 {
                return Err(format!("{} scale patches, expected 2", patches.len()));
            }
            let update = s.one("the ReplicaSet scale-down", |x| {
                is_write(x, "update", "replicasets", ns, &first_rs) && x.trace == patch.trace
            })?;
            s.expect_parent(update, patch)?;
            let delete =
                s.one("the pod delete", |x| is_write(x, "delete", "pods", ns, "web-") && x.trace == patch.trace)?;
            s.expect_parent(delete, update)?;
            if delete.service != "replicaset-controller" {
                return Err(format!("the pod delete is by {}, expected replicaset-controller", delete.service));
            }
            let event = s.one("SuccessfulDelete", |x| is_event(x, "SuccessfulDelete", ns, "Deleted pod"))?;
            s.expect_below(event, update)
        },
    )
    .await;

    // 4. image rollout: a new ReplicaSet, and the old one scaled down, in the patch's trace.
    api(&client, Some(ns), &ar)
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.4.1"}]}}}})))
        .await
        .unwrap();
    eventually(
        &receiver,
        ns,
        "patch deployments → create replicasets (new) + update replicasets (old, scaled down)",
        |s| {
            let patch = s.named("the rollout", "patch deployments e2e-deploy/web")?;
            s.expect_intent(patch, ADMIN)?;
            let new_rs = s.one("the new ReplicaSet", |x| {
                is_write(x, "create", "replicasets", ns, "web-") && x.trace == patch.trace
            })?;
            s.expect_parent(new_rs, patch)?;
            if new_rs.attr("k8s.object.name") == Some(first_rs.as_str()) {
                return Err("the rollout did not create a new ReplicaSet".into());
            }
            let old = s.all(|x| {
                is_write(x, "update", "replicasets", ns, &first_rs)
                    && x.trace == patch.trace
                    && x.attr("k8s.subresource").is_none()
            });
            let old = old.first().ok_or("the old ReplicaSet was not scaled down in the rollout's trace")?;
            s.expect_parent(old, patch)
        },
    )
    .await;

    // 5a. foreground delete: the garbage collector's deletes in the delete's trace.
    api(&client, Some(ns), &ar).delete("web", &DeleteParams::foreground()).await.unwrap();
    eventually(
        &receiver,
        ns,
        "delete deployments (foreground) → GC deletes of both ReplicaSets and their pods",
        |s| {
            let delete = s.named("the foreground delete", "delete deployments e2e-deploy/web")?;
            s.expect_intent(delete, ADMIN)?;
            let rs_deletes = s.all(|x| is_write(x, "delete", "replicasets", ns, "web-") && x.trace == delete.trace);
            if rs_deletes.len() != 2 {
                return Err(format!("{} ReplicaSet deletes in the trace, expected 2", rs_deletes.len()));
            }
            let pod_deletes = s.all(|x| is_write(x, "delete", "pods", ns, "web-") && x.trace == delete.trace);
            if pod_deletes.len() < 4 {
                return Err(format!("{} pod deletes in the trace, expected at least 4", pod_deletes.len()));
            }
            pod_deletes.iter().chain(&rs_deletes).try_for_each(|x| {
                if x.service == "generic-garbage-collector" {
                    Ok(())
                } else {
                    Err(format!("`{}` by {}", x.name, x.service))
                }
            })
        },
    )
    .await;

    // 5b. background delete of another Deployment.
    create(&client, Some(ns), &ar, deployment("api", 2)).await;
    eventually(&receiver, ns, "api's pods created", |s| {
        let n = s.all(|x| is_write(x, "create", "pods", ns, "api-")).len();
        if n == 2 { Ok(()) } else { Err(format!("{n} api pods")) }
    })
    .await;
    api(&client, Some(ns), &ar).delete("api", &DeleteParams::background()).await.unwrap();
    eventually(&receiver, ns, "delete deployments (background) → GC deletes the ReplicaSet and its pods", |s| {
        let delete = s.named("the background delete", "delete deployments e2e-deploy/api")?;
        s.expect_intent(delete, ADMIN)?;
        let rs = s.one("the ReplicaSet delete", |x| is_write(x, "delete", "replicasets", ns, "api-"))?;
        s.expect_parent(rs, delete)?;
        let pods = s.all(|x| is_write(x, "delete", "pods", ns, "api-"));
        if pods.len() != 2 {
            return Err(format!("{} api pod deletes", pods.len()));
        }
        pods.iter().try_for_each(|p| s.expect_below(p, delete))
    })
    .await;

    // kausal's own store, through its query API, holds every span the
    // backend received, in the same place.
    let received = otlp_receiver::spans_by_id(&receiver.received);
    let stored = otlp_receiver::stored_shapes(&kausal.query_url(""), &received).await;
    let missing: Vec<_> =
        received.iter().filter(|(k, v)| stored.get(*k) != Some(*v)).map(|(_, v)| v).take(10).collect();
    assert!(missing.is_empty(), "spans exported but not stored alike: {missing:?}");

    compare_with_events_only(&receiver, events_only, ns).await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// The StatefulSet controller's `verb` of `pod`, under `cause` (directly, or
/// further down), with the controller's Event about it directly under it.
fn expect_statefulset_pod(s: &Spans, ns: &str, verb: &str, pod: &str, cause: &Got, direct: bool) -> Result<(), String> {
    let write = s.named(pod, &format!("{verb} pods {ns}/{pod}"))?;
    if direct {
        s.expect_parent(write, cause)?
    } else {
        s.expect_below(write, cause)?
    }
    if write.service != "statefulset-controller" {
        return Err(format!("{pod}: {verb} by {}", write.service));
    }
    let reason = if verb == "create" { "SuccessfulCreate" } else { "SuccessfulDelete" };
    let event = s.one(reason, |x| is_event(x, reason, ns, &format!("{verb} Pod {pod} in StatefulSet db")))?;
    s.expect_parent(event, write)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_statefulset_create_scale_up_down_and_delete() {
    let ns = "e2e-sts";
    let Some((receiver, mut kausal, client, events_only)) = start_compared_scenario("statefulset", ns).await else {
        return;
    };
    create(
        &client,
        Some(ns),
        &resource("", "v1", "Service", "services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
    )
    .await;
    let ar = resource("apps", "v1", "StatefulSet", "statefulsets");
    // Parallel: with no kubelet, pods never become Ready, and OrderedReady would stop at db-0.
    create(
        &client,
        Some(ns),
        &ar,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"serviceName": "db", "replicas": 2, "podManagementPolicy": "Parallel",
                        "selector": {"matchLabels": {"app": "db"}}, "template": pod_template("db", "registry.k8s.io/pause:3.2")}}),
    )
    .await;
    eventually(
        &receiver,
        ns,
        "create statefulsets → create pods db-0, db-1 (statefulset-controller) with their Events",
        |s| {
            let sts = s.named("the StatefulSet create", "create statefulsets e2e-sts/db")?;
            s.expect_intent(sts, ADMIN)?;
            ["db-0", "db-1"].iter().try_for_each(|pod| expect_statefulset_pod(s, ns, "create", pod, sts, true))
        },
    )
    .await;
    eventually(&receiver, ns, "create services (headless) → create endpoints db (endpoint-controller)", |s| {
        let svc = s.named("the Service create", "create services e2e-sts/db")?;
        s.expect_intent(svc, ADMIN)?;
        let endpoints = s.named("the Endpoints create", "create endpoints e2e-sts/db")?;
        s.expect_parent(endpoints, svc)
    })
    .await;
    scale(&client, ns, &ar, "db", 3).await;
    eventually(&receiver, ns, "patch statefulsets/scale → create pods db-2", |s| {
        let patch = s.named("the scale-up", "patch statefulsets/scale e2e-sts/db")?;
        s.expect_intent(patch, ADMIN)?;
        let pod = s.named("db-2", "create pods e2e-sts/db-2")?;
        s.expect_parent(pod, patch)
    })
    .await;
    scale(&client, ns, &ar, "db", 1).await;
    eventually(
        &receiver,
        ns,
        "scale down 3 → 1: delete pods db-2 and db-1 (statefulset-controller), each with its SuccessfulDelete",
        |s| {
            let patches = s.all(|x| x.name == "patch statefulsets/scale e2e-sts/db");
            let patch = patches.iter().max_by_key(|x| x.start).ok_or("no scale patch")?;
            if patches.len() != 2 {
                return Err(format!("{} scale patches, expected 2", patches.len()));
            }
            ["db-2", "db-1"].iter().try_for_each(|pod| expect_statefulset_pod(s, ns, "delete", pod, patch, false))
        },
    )
    .await;
    api(&client, Some(ns), &ar).delete("db", &DeleteParams::background()).await.unwrap();
    eventually(
        &receiver,
        ns,
        "delete statefulsets → the garbage collector deletes db-0 in the delete's trace",
        |s| {
            let delete = s.named("the StatefulSet delete", "delete statefulsets e2e-sts/db")?;
            s.expect_intent(delete, ADMIN)?;
            let pod =
                s.one("db-0's delete", |x| is_write(x, "delete", "pods", ns, "db-0") && x.trace == delete.trace)?;
            if pod.service != "generic-garbage-collector" {
                return Err(format!("db-0 deleted by {}", pod.service));
            }
            s.expect_below(pod, delete)
        },
    )
    .await;
    compare_with_events_only(&receiver, events_only, ns).await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_daemonset_across_nodes_added_and_removed() {
    let ns = "e2e-ds";
    let Some((receiver, mut kausal, client, events_only)) = start_compared_scenario("daemonset", ns).await else {
        return;
    };
    create(
        &client,
        Some(ns),
        &resource("apps", "v1", "DaemonSet", "daemonsets"),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
               "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod_template("agent", "registry.k8s.io/pause:3.2")}}),
    )
    .await;
    eventually(
        &receiver,
        ns,
        "create daemonsets → one pod per node (daemon-set-controller), each with SuccessfulCreate",
        |s| {
            let ds = s.named("the DaemonSet create", "create daemonsets e2e-ds/agent")?;
            s.expect_intent(ds, ADMIN)?;
            let pods = s.all(|x| is_write(x, "create", "pods", ns, "agent-"));
            if pods.len() < 2 {
                return Err(format!("{} DaemonSet pods, expected one per node (at least 2)", pods.len()));
            }
            for pod in pods {
                s.expect_parent(pod, ds)?;
                let name = pod.attr("k8s.object.name").unwrap();
                let event = s.one("SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, name))?;
                s.expect_parent(event, pod)?;
            }
            Ok(())
        },
    )
    .await;

    // A node joins: the DaemonSet's pod for it belongs to the node's create.
    let nodes = resource("", "v1", "Node", "nodes");
    create(&client, None, &nodes, fake_node(EXTRA_NODE)).await;
    let pod_name = eventually(
        &receiver,
        ns,
        "create nodes e2e-node-c → create pods agent-… for that node (daemon-set-controller)",
        |s| {
            let node = s.named("the node create", &format!("create nodes {EXTRA_NODE}"))?;
            s.expect_intent(node, ADMIN)?;
            let pod =
                s.one("the new node's pod", |x| is_write(x, "create", "pods", ns, "agent-") && x.trace == node.trace)?;
            s.expect_parent(pod, node)?;
            let name = pod.attr("k8s.object.name").unwrap();
            let event = s.one("SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, name))?;
            s.expect_parent(event, pod)?;
            Ok(name.to_owned())
        },
    )
    .await;

    // The node leaves: the pod garbage collector deletes its orphaned pod
    // 40-60 s later (its quarantine), caused by the node's delete.
    api(&client, None, &nodes).delete(EXTRA_NODE, &DeleteParams::default()).await.unwrap();
    eventually(
        &receiver,
        ns,
        "delete nodes e2e-node-c → (40-60 s) pod-garbage-collector deletes its DaemonSet pod",
        |s| {
            let node_delete = s.named("the node delete", &format!("delete nodes {EXTRA_NODE}"))?;
            s.expect_intent(node_delete, ADMIN)?;
            let gc = s.one("the orphan's delete", |x| is_write(x, "delete", "pods", ns, &pod_name))?;
            if gc.service != "pod-garbage-collector" {
                return Err(format!("{pod_name} deleted by {}", gc.service));
            }
            s.expect_parent(gc, node_delete)
        },
    )
    .await;
    compare_with_events_only(&receiver, events_only, ns).await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_job_and_a_cronjob_that_fires() {
    let ns = "e2e-batch";
    let Some((receiver, mut kausal, client, events_only)) = start_compared_scenario("batch", ns).await else {
        return;
    };

    let mut job_template = pod_template("once", "registry.k8s.io/pause:3.2");
    job_template["spec"]["restartPolicy"] = json!("Never");
    create(
        &client,
        Some(ns),
        &resource("batch", "v1", "Job", "jobs"),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": {"template": job_template}}),
    )
    .await;
    eventually(&receiver, ns, "create jobs → create pods (job-controller) + SuccessfulCreate", |s| {
        let job = s.named("the Job create", "create jobs e2e-batch/once")?;
        s.expect_intent(job, ADMIN)?;
        let pod = s.one("the Job's pod", |x| is_write(x, "create", "pods", ns, "once-"))?;
        s.expect_parent(pod, job)?;
        let event = s.one("SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, "Created pod: once-"))?;
        s.expect_parent(event, pod)
    })
    .await;

    // The CronJob is created early in a minute, so it fires more than the 30 s
    // window later: the Job it creates is a controller-initiated root.
    loop {
        let second = kausal::pipeline::wall_clock_micros() / 1_000_000 % 60;
        if second <= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut cron_template = pod_template("tick", "registry.k8s.io/pause:3.2");
    cron_template["spec"]["restartPolicy"] = json!("Never");
    create(
        &client,
        Some(ns),
        &resource("batch", "v1beta1", "CronJob", "cronjobs"),
        json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "tick"},
               "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": cron_template}}}}),
    )
    .await;
    eventually(
        &receiver,
        ns,
        "the CronJob's Job: a controller-initiated root by cronjob-controller, with its pod under it",
        |s| {
            let cron = s.named("the CronJob create", "create cronjobs e2e-batch/tick")?;
            s.expect_intent(cron, ADMIN)?;
            let job = s.one("the fired Job", |x| is_write(x, "create", "jobs", ns, "tick-"))?;
            if job.service != "cronjob-controller"
                || job.parent.is_some()
                || job.attr("kausal.root") != Some("controller")
            {
                return Err(format!(
                    "the fired Job: service {}, root {:?}, parent {:?}",
                    job.service,
                    job.attr("kausal.root"),
                    job.parent
                ));
            }
            let pod = s.one("the fired Job's pod", |x| is_write(x, "create", "pods", ns, "tick-"))?;
            s.expect_parent(pod, job)
        },
    )
    .await;
    // Stop the CronJob before the comparison: its next firing's Events would
    // reach the watch a few seconds before the audit batches, for ever.
    api(&client, Some(ns), &resource("batch", "v1beta1", "CronJob", "cronjobs"))
        .delete("tick", &DeleteParams::background())
        .await
        .unwrap();
    compare_with_events_only(&receiver, events_only, ns).await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

async fn pods_named(client: &kube::Client, ns: &str, prefix: &str) -> Vec<DynamicObject> {
    let list = api(client, Some(ns), &resource("", "v1", "Pod", "pods")).list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|p| {
            p.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix)) && p.metadata.deletion_timestamp.is_none()
        })
        .collect()
}

/// Does what a kubelet would once the pod runs: report an IP and readiness.
/// There is no kubelet here, so the test patches the status itself.
async fn report_ready(client: &kube::Client, ns: &str, pod: &str, ip: &str) {
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]
    }});
    api(client, Some(ns), &resource("", "v1", "Pod", "pods"))
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap_or_else(|e| panic!("report {pod} ready: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_service_endpoints_and_slices_follow_their_pods() {
    let ns = "e2e-svc";
    let Some((receiver, mut kausal, client)) = start_audit_scenario("service", ns).await else { return };
    create(
        &client,
        Some(ns),
        &resource("", "v1", "Service", "services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    )
    .await;
    eventually(
        &receiver,
        ns,
        "create services → create endpoints (endpoint-controller) + create endpointslices (endpointslice-controller)",
        |s| {
            let svc = s.named("the Service create", "create services e2e-svc/web")?;
            s.expect_intent(svc, ADMIN)?;
            let endpoints = s.named("the Endpoints create", "create endpoints e2e-svc/web")?;
            s.expect_parent(endpoints, svc)?;
            let slice = s.one("the EndpointSlice create", |x| is_write(x, "create", "endpointslices", ns, "web-"))?;
            s.expect_parent(slice, svc)
        },
    )
    .await;
    create(&client, Some(ns), &deployments(), deployment("web", 2)).await;
    eventually(&receiver, ns, "two pods bound", |s| {
        let n = s.all(|x| x.name.starts_with("create pods/binding e2e-svc/web-")).len();
        if n == 2 { Ok(()) } else { Err(format!("{n} bindings")) }
    })
    .await;
    let pods = pods_named(&client, ns, "web-").await;
    let first = pods[0].metadata.name.clone().unwrap();

    // The pod gets an IP and becomes Ready: both lists add it, because of that status write.
    report_ready(&client, ns, &first, "10.244.0.10").await;
    eventually(&receiver, ns, "patch pods/status (ready, IP) → update endpoints + update endpointslices", |s| {
        let ready = s.one("the status patch", |x| is_write(x, "patch", "pods/status", ns, &first))?;
        s.expect_intent(ready, ADMIN)?;
        let endpoints =
            s.one("the Endpoints update", |x| is_write(x, "update", "endpoints", ns, "web") && x.trace == ready.trace)?;
        s.expect_parent(endpoints, ready)?;
        if endpoints.service != "endpoint-controller" {
            return Err(format!("the Endpoints update is by {}", endpoints.service));
        }
        let slice = s.one("the EndpointSlice update", |x| {
            is_write(x, "update", "endpointslices", ns, "web-") && x.trace == ready.trace
        })?;
        s.expect_parent(slice, ready)
    })
    .await;

    // A person deletes that pod: it leaves the lists because of the delete,
    // and its ReplicaSet's replacement and status land in the person's trace.
    // A list update that follows the replacement's create hangs under that
    // newer pod write instead (CAUSALITY.md: the newest write on a selected
    // pod); which of the two comes first is the controllers' timing.
    api(&client, Some(ns), &resource("", "v1", "Pod", "pods")).delete(&first, &DeleteParams::default()).await.unwrap();
    eventually(
        &receiver,
        ns,
        "delete pods → update endpoints + endpointslices, and the ReplicaSet's replacement pod",
        |s| {
            let delete = s.named("the pod delete", &format!("delete pods {ns}/{first}"))?;
            s.expect_intent(delete, ADMIN)?;
            let replacement =
                s.one("the replacement pod", |x| is_write(x, "create", "pods", ns, "web-") && x.trace == delete.trace)?;
            s.expect_parent(replacement, delete)?;
            for (what, resource, name) in
                [("Endpoints", "endpoints", "web"), ("EndpointSlice", "endpointslices", "web-")]
            {
                let updates = s.all(|x| is_write(x, "update", resource, ns, name) && x.trace == delete.trace);
                if updates.is_empty() {
                    return Err(format!("no {what} update in the delete's trace"));
                }
                for update in updates {
                    let under_delete = s.expect_parent(update, delete);
                    let under_pod_write = s.parent(update).is_some_and(|p| {
                        p.trace == delete.trace
                            && (p.span == replacement.span || s.parent(p).is_some_and(|g| g.span == replacement.span))
                    });
                    if under_delete.is_err() && !under_pod_write {
                        return under_delete;
                    }
                }
            }
            Ok(())
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_a_pod_replaced_then_a_rollout_and_its_undo() {
    let ns = "e2e-undo";
    let Some((receiver, mut kausal, client)) = start_audit_scenario("rollout-undo", ns).await else { return };
    let ar = deployments();
    let first_rs = create_deployment_of_two(&receiver, &client, ns, "app").await;

    // 1. A person deletes a pod: the replacement and the ReplicaSet's status
    //    update after it are in the person's trace, not the Deployment create's.
    let victim = pods_named(&client, ns, "app-").await[0].metadata.name.clone().unwrap();
    api(&client, Some(ns), &resource("", "v1", "Pod", "pods")).delete(&victim, &DeleteParams::default()).await.unwrap();
    eventually(
        &receiver,
        ns,
        "delete pods (person) → create pods (replicaset-controller) + update replicasets/status",
        |s| {
            let delete = s.named("the pod delete", &format!("delete pods {ns}/{victim}"))?;
            s.expect_intent(delete, ADMIN)?;
            let replacement =
                s.one("the replacement", |x| is_write(x, "create", "pods", ns, "app-") && x.trace == delete.trace)?;
            s.expect_parent(replacement, delete)?;
            let status = s.all(|x| is_write(x, "update", "replicasets/status", ns, &first_rs));
            let after: Vec<_> = status.iter().filter(|x| x.start >= delete.start).collect();
            if after.is_empty() {
                return Err("no ReplicaSet status update after the delete".into());
            }
            after.iter().try_for_each(|x| {
                if x.trace == delete.trace { Ok(()) } else { Err(format!("`{}` outside the person's trace", x.name)) }
            })
        },
    )
    .await;

    // 2. A rollout: a new ReplicaSet under the patch.
    let image_patch = |image: &str| {
        Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}))
    };
    api(&client, Some(ns), &ar)
        .patch("app", &PatchParams::default(), &image_patch("registry.k8s.io/pause:3.4.1"))
        .await
        .unwrap();
    eventually(&receiver, ns, "patch deployments → create replicasets (new)", |s| {
        let patch = s.named("the rollout", "patch deployments e2e-undo/app")?;
        let rs = s.one("the new ReplicaSet", |x| {
            is_write(x, "create", "replicasets", ns, "app-") && x.trace == patch.trace
        })?;
        s.expect_parent(rs, patch)
    })
    .await;

    // 3. `kubectl rollout undo` patches the template back to the previous
    //    ReplicaSet's: no new ReplicaSet; the first one becomes current again
    //    (the deployment controller updates it), in the undo's trace. (With no
    //    kubelet no pod is ever available, so the controller may not scale the
    //    second one down: that is the rollout strategy, not kausal.)
    let rs_api = api(&client, Some(ns), &resource("apps", "v1", "ReplicaSet", "replicasets"));
    let mut template = rs_api.get(&first_rs).await.unwrap().data["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    api(&client, Some(ns), &ar)
        .patch("app", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": template}})))
        .await
        .unwrap();
    eventually(
        &receiver,
        ns,
        "the undo patch → update replicasets (the first one, current again), no new ReplicaSet",
        |s| {
            let patches = s.all(|x| x.name == "patch deployments e2e-undo/app");
            if patches.len() != 2 {
                return Err(format!("{} Deployment patches, expected 2", patches.len()));
            }
            let undo = patches.iter().max_by_key(|x| x.start).unwrap();
            s.expect_intent(undo, ADMIN)?;
            let creates = s.all(|x| is_write(x, "create", "replicasets", ns, "app-"));
            if creates.len() != 2 || creates.iter().any(|c| c.trace == undo.trace) {
                return Err("the undo created a ReplicaSet".into());
            }
            let updates = s.all(|x| is_write(x, "update", "replicasets", ns, &first_rs) && x.trace == undo.trace);
            let update = updates.first().ok_or(format!("no update of {first_rs} in the undo's trace"))?;
            s.expect_parent(update, undo)?;
            Ok(())
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A client with the credentials run.sh wrote to `<dir>/<user>.kubeconfig`.
async fn client_as(dir: &str, user: &str) -> kube::Client {
    let path = format!("{dir}/{user}.kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_a_node_registering_with_a_kubelets_credentials() {
    let ns = "e2e-node";
    let Some((receiver, mut kausal, admin)) = start_audit_scenario("node-registering", ns).await else { return };
    let node_name = "e2e-node-reg";
    // The kubelet registers its node with its own credentials
    // (system:node:e2e-node-reg, group system:nodes), as kubelets do at start,
    // then takes its Lease and reports status, as on every heartbeat.
    let kubelet = client_as(&env("audit").unwrap().dir, "node-e2e-node-reg").await;
    let nodes = resource("", "v1", "Node", "nodes");
    create(&kubelet, None, &nodes, fake_node(node_name)).await;
    let leases = resource("coordination.k8s.io", "v1", "Lease", "leases");
    create(
        &kubelet,
        Some("kube-node-lease"),
        &leases,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": node_name},
               "spec": {"holderIdentity": node_name, "leaseDurationSeconds": 40}}),
    )
    .await;
    for heartbeat in ["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"] {
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "fake node", "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        api(&kubelet, None, &nodes)
            .patch_status(node_name, &PatchParams::default(), &Patch::Strategic(status))
            .await
            .unwrap_or_else(|e| panic!("heartbeat: {e}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eventually(
        &receiver,
        ns,
        "create nodes (kubelet, no cause in the window: a root) → RegisteredNode (node-controller) under it; \
         the kubelet's heartbeats and Lease are roots of their own",
        |s| {
            let register = s.named("the node's registration", &format!("create nodes {node_name}"))?;
            if register.parent.is_some() || register.service != "kubelet" {
                return Err(format!("the registration should be a root of the kubelet, is by {}", register.service));
            }
            let registered = s.one("RegisteredNode", |x| {
                x.attr("k8s.event.reason") == Some("RegisteredNode")
                    && x.attr("k8s.event.message").is_some_and(|m| m.contains(node_name))
            })?;
            s.expect_parent(registered, register)?;
            let heartbeats = s.all(|x| x.name == format!("patch nodes/status {node_name}"));
            if heartbeats.len() != 2 {
                return Err(format!("{} heartbeats, expected 2", heartbeats.len()));
            }
            for heartbeat in heartbeats {
                if heartbeat.trace == register.trace && s.parent(heartbeat).is_some() {
                    return Err("a heartbeat hangs in the registration's trace".into());
                }
            }
            Ok(())
        },
    )
    .await;

    // A person removes the node: RemovingNode observes that delete.
    api(&admin, None, &nodes).delete(node_name, &DeleteParams::default()).await.unwrap();
    eventually(&receiver, ns, "delete nodes (person) → RemovingNode (node-controller) under it", |s| {
        let delete = s.named("the node delete", &format!("delete nodes {node_name}"))?;
        s.expect_intent(delete, ADMIN)?;
        let removing = s.one("RemovingNode", |x| {
            x.attr("k8s.event.reason") == Some("RemovingNode")
                && x.attr("k8s.event.message").is_some_and(|m| m.contains(node_name))
        })?;
        s.expect_parent(removing, delete)
    })
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_a_service_whose_pods_never_get_an_ip() {
    let ns = "e2e-noip";
    let Some((receiver, mut kausal, client)) = start_audit_scenario("service-no-ip", ns).await else { return };
    create(
        &client,
        Some(ns),
        &resource("", "v1", "Service", "services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    )
    .await;
    eventually(&receiver, ns, "the Service's Endpoints and EndpointSlice", |s| {
        s.named("the Endpoints create", "create endpoints e2e-noip/web")?;
        s.one("the EndpointSlice create", |x| is_write(x, "create", "endpointslices", ns, "web-")).map(|_| ())
    })
    .await;
    // Pods are bound but never run (no kubelet): they never get an IP, so no
    // list changes, yet the controllers write their (no-op) lists after each pod event.
    let ar = deployments();
    create(&client, Some(ns), &ar, deployment("web", 2)).await;
    eventually(&receiver, ns, "two pods bound", |s| {
        let n = s.all(|x| x.name.starts_with("create pods/binding e2e-noip/web-")).len();
        if n == 2 { Ok(()) } else { Err(format!("{n} bindings")) }
    })
    .await;
    scale(&client, ns, &ar, "web", 3).await;
    eventually(&receiver, ns, "a third pod bound", |s| {
        let n = s.all(|x| x.name.starts_with("create pods/binding e2e-noip/web-")).len();
        if n == 3 { Ok(()) } else { Err(format!("{n} bindings")) }
    })
    .await;
    // Let the lists' last writes of the scale arrive before checking them all.
    tokio::time::sleep(Duration::from_secs(5)).await;
    eventually(
        &receiver,
        ns,
        "every Endpoints/EndpointSlice update after the first pod create hangs under a write on a selected pod, \
         never under the Service's create",
        |s| {
            let svc = s.named("the Service create", "create services e2e-noip/web")?;
            s.expect_intent(svc, ADMIN)?;
            let first_pod = s
                .all(|x| is_write(x, "create", "pods", ns, "web-"))
                .into_iter()
                .map(|x| x.start)
                .min()
                .ok_or("no pod create")?;
            let updates: Vec<_> = s
                .all(|x| {
                    (is_write(x, "update", "endpoints", ns, "web")
                        || is_write(x, "update", "endpointslices", ns, "web-"))
                        && x.start > first_pod
                })
                .into_iter()
                .collect();
            if updates.is_empty() {
                return Err("no list update after the pods".into());
            }
            for update in updates {
                let parent = s.parent(update).ok_or(format!("`{}` is a root", update.name))?;
                let on_pod = parent.in_namespace(ns)
                    && parent.name.split(' ').nth(1).is_some_and(|r| r == "pods" || r.starts_with("pods/"))
                    && parent.attr("k8s.object.name").is_some_and(|n| n.starts_with("web-"));
                if !on_pod {
                    return Err(format!(
                        "`{}` hangs under `{}`, not under a write on a selected pod",
                        update.name, parent.name
                    ));
                }
                if update.trace == svc.trace {
                    return Err(format!("`{}` is in the Service create's trace", update.name));
                }
            }
            Ok(())
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_two_controllers_write_one_replicaset_within_milliseconds() {
    let ns = "e2e-race";
    let Some((receiver, mut kausal, client)) = start_audit_scenario("two-writers", ns).await else { return };
    let ar = deployments();
    let rs = create_deployment_of_two(&receiver, &client, ns, "web").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Two scales back to back: the deployment controller rewrites the
    // ReplicaSet's spec while the replicaset controller writes its status and
    // pods, both on the same ReplicaSet within milliseconds (409s included).
    scale(&client, ns, &ar, "web", 5).await;
    scale(&client, ns, &ar, "web", 1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    eventually(
        &receiver,
        ns,
        "each scale's ReplicaSet update under that scale; the pods it makes or deletes in the same trace",
        |s| {
            let scales = s.all(|x| x.name == "patch deployments/scale e2e-race/web");
            if scales.len() != 2 {
                return Err(format!("{} scale patches", scales.len()));
            }
            let last = scales.iter().max_by_key(|x| x.start).unwrap();
            for patch in &scales {
                s.expect_intent(patch, ADMIN)?;
            }
            let updates =
                s.all(|x| is_write(x, "update", "replicasets", ns, &rs) && x.service == "deployment-controller");
            if updates.is_empty() {
                return Err("no ReplicaSet update by the deployment controller".into());
            }
            for update in &updates {
                let parent = s.parent(update).ok_or(format!("`{}` is a root", update.name))?;
                if !scales.iter().any(|p| p.span == parent.span) {
                    return Err(format!("`{}` hangs under `{}`, not under a scale", update.name, parent.name));
                }
            }
            if !updates.iter().any(|u| u.trace == last.trace) {
                return Err("no ReplicaSet update in the last scale's trace".into());
            }
            // Each ScalingReplicaSet names the count the controller wrote:
            // it belongs to the scale that asked for that count, whichever
            // of the two committed first (the first may be skipped if the
            // controller read both at once).
            let first = scales.iter().min_by_key(|x| x.start).unwrap();
            for (message, scale) in [("to 5", first), ("to 1", last)] {
                for event in s.all(|x| is_event(x, "ScalingReplicaSet", ns, message)) {
                    if event.trace != scale.trace {
                        return Err(format!(
                            "ScalingReplicaSet \"{message}\" is outside the trace of the scale {message}"
                        ));
                    }
                }
            }
            // Scaled to 1 in the end: 4 or 1 pods deleted, depending on how many the first scale made.
            let deletes = s.all(|x| is_write(x, "delete", "pods", ns, "web-"));
            if deletes.is_empty() {
                return Err("no pod deleted".into());
            }
            for delete in deletes {
                if delete.trace != last.trace {
                    return Err(format!("`{}` is outside the last scale's trace", delete.name));
                }
            }
            Ok(())
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

// ---- scenario: bootstrap (the controllers start inside it) -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn bootstrap_a_fresh_cluster_first_minute() {
    let ns = "e2e-fresh";
    let Some(env) = env("bootstrap") else { return };
    let receiver = Receiver::start(true).await;
    let mut kausal = start_kausal(&env, &receiver, "fresh-cluster", false).await;
    let client = client().await;
    // A person's first writes, while only the apiserver runs.
    ensure_nodes(&client).await;
    namespace(&client, ns).await;
    create(
        &client,
        Some(ns),
        &resource("", "v1", "ServiceAccount", "serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}}),
    )
    .await;
    create(&client, Some(ns), &deployments(), deployment("web", 1)).await;
    // Now kube-controller-manager and kube-scheduler start (run.sh waits for this file).
    std::fs::write(format!("{}/start-controllers", env.dir), b"").unwrap();
    eventually(
        &receiver,
        ns,
        "the controllers' start-up: TokenRequests are roots of their own, token secrets under their \
         ServiceAccount's create, the namespace's default ServiceAccount and root CA under its create, \
         the Deployment's ReplicaSet and pod under the person's create",
        |s| {
            let requests = s.all(|x| is_write(x, "create", "serviceaccounts/token", "kube-system", ""));
            if requests.len() < 10 {
                return Err(format!("{} TokenRequests so far", requests.len()));
            }
            for request in &requests {
                if request.parent.is_some() || request.attr("kausal.root") != Some("controller") {
                    return Err(format!("`{}` should be a root of its own", request.name));
                }
            }
            let secrets = s.all(|x| {
                is_write(x, "create", "secrets", "kube-system", "")
                    && x.attr("k8s.object.name").is_some_and(|n| n.contains("-token-"))
            });
            if secrets.len() < 10 {
                return Err(format!("{} token secrets in kube-system so far", secrets.len()));
            }
            for secret in secrets {
                let name = secret.attr("k8s.object.name").unwrap();
                let account = name.rsplit_once("-token-").map(|(a, _)| a).ok_or(format!("secret {name}"))?;
                let created =
                    s.named("the account's create", &format!("create serviceaccounts kube-system/{account}"))?;
                s.expect_parent(secret, created)?;
            }
            let ns_create = s.named("the namespace create", &format!("create namespaces {ns}"))?;
            s.expect_intent(ns_create, ADMIN)?;
            let default_sa = s.named("its default ServiceAccount", &format!("create serviceaccounts {ns}/default"))?;
            s.expect_parent(default_sa, ns_create)?;
            let root_ca = s.named("its root CA", &format!("create configmaps {ns}/kube-root-ca.crt"))?;
            s.expect_parent(root_ca, ns_create)?;
            // The node lifecycle controller registers the person's nodes as it starts.
            for node in ["e2e-node-a", "e2e-node-b"] {
                let created = s.named("the node create", &format!("create nodes {node}"))?;
                let registered = s.one("RegisteredNode", |x| {
                    x.attr("k8s.event.reason") == Some("RegisteredNode")
                        && x.attr("k8s.event.message").is_some_and(|m| m.contains(node))
                })?;
                s.expect_parent(registered, created)?;
            }
            let builder = s.named("the person's ServiceAccount", &format!("create serviceaccounts {ns}/builder"))?;
            s.expect_intent(builder, ADMIN)?;
            let token = s.one("its token secret", |x| is_write(x, "create", "secrets", ns, "builder-token-"))?;
            s.expect_parent(token, builder)?;
            let deployment = s.named("the Deployment create", &format!("create deployments {ns}/web"))?;
            s.expect_intent(deployment, ADMIN)?;
            let rs = s.one("its ReplicaSet", |x| is_write(x, "create", "replicasets", ns, "web-"))?;
            s.expect_parent(rs, deployment)?;
            let pod = s.one("its pod", |x| is_write(x, "create", "pods", ns, "web-"))?;
            s.expect_parent(pod, rs)
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

// ---- scenarios: a real node (run.sh --node: containerd and a kubelet) ------

/// The real node's name (run.sh exports it in the kubelet phase).
fn real_node() -> String {
    std::env::var("KAUSAL_E2E_NODE").expect("the kubelet phase names its node")
}

/// A pod template for the real node: the busybox image imported there,
/// never pulled (no registry), on the host's network (no pod network), with
/// the toleration of the node's taint that keeps the other scenarios' pods off it.
fn real_pod_template(app: &str, command: &str, readiness: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "hostNetwork": true,
            "nodeSelector": {"kubernetes.io/hostname": real_node()},
            "tolerations": [{"key": "kausal.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "main",
                "image": "localhost/kausal-e2e/busybox:1.35",
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", command],
                "readinessProbe": readiness,
            }]
        }
    })
}

/// Sleeps until told to stop, and stops at once when it is.
const SLEEPER: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

/// Deployment `web` of `replicas` sleepers on the real node, Ready at their
/// first probe.
fn real_deployment(replicas: i64) -> Value {
    let readiness = json!({"exec": {"command": ["true"]}, "periodSeconds": 2});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": real_pod_template("web", SLEEPER, readiness)}
    })
}

/// A `pods/status` write by the kubelet on a pod named `name_prefix…`.
fn is_kubelet_status(s: &Got, ns: &str, name_prefix: &str) -> bool {
    is_write(s, "patch", "pods/status", ns, name_prefix) && s.service == "kubelet"
}

fn is_kubelet_event(s: &Got, reason: &str, ns: &str, pod: &str) -> bool {
    s.attr("kausal.span.kind") == Some("event")
        && s.attr("k8s.event.reason") == Some(reason)
        && s.in_namespace(ns)
        && s.attr("k8s.object.name") == Some(pod)
}

/// Real pods start on the real node, become Ready, and join their Service.
/// CAUSALITY.md: the kubelet acts on a pod once it is bound to its node, so
/// its start-up Events (`Pulled`, `Created`, `Started`) and its first
/// `pods/status` write hang under the binding; an Endpoints or EndpointSlice
/// update that lists a pod hangs under the kubelet's status write that
/// changed how it is listed (its IP, its readiness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_pods_start_become_ready_and_join_their_service() {
    let ns = "e2e-kubelet";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("ready", ns).await else { return };
    create(
        &client,
        Some(ns),
        &resource("", "v1", "Service", "services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}]}}),
    )
    .await;
    create(&client, Some(ns), &deployments(), real_deployment(2)).await;
    eventually(
        &receiver,
        ns,
        "each pod's binding → the kubelet's Pulled, Created, Started and first status write",
        |s| {
            let pods = s.all(|x| is_write(x, "create", "pods", ns, "web-"));
            if pods.len() != 2 {
                return Err(format!("{} pods", pods.len()));
            }
            for pod in pods {
                let name = pod.attr("k8s.object.name").unwrap();
                let binding = s.named("the binding", &format!("create pods/binding {ns}/{name}"))?;
                s.expect_parent(binding, pod)?;
                for reason in ["Pulled", "Created", "Started"] {
                    let event = s.one(reason, |x| is_kubelet_event(x, reason, ns, name))?;
                    s.expect_parent(event, binding)?;
                    if event.attr("k8s.node.name") != Some(real_node().as_str()) {
                        return Err(format!("{reason} has k8s.node.name {:?}", event.attr("k8s.node.name")));
                    }
                }
                let first = s
                    .all(|x| is_kubelet_status(x, ns, name))
                    .into_iter()
                    .min_by_key(|x| x.start)
                    .ok_or("no status write by the kubelet")?;
                s.expect_parent(first, binding)?;
            }
            Ok(())
        },
    )
    .await;
    // Each pod changes the listings twice, both times by a kubelet status
    // write: its first reports the pod's IP (listed not ready), a later one
    // its readiness (listed ready). The controllers coalesce what they see
    // (one update can list both pods' changes, under the newer write), so
    // only the parents are asserted here; the recording's ground truth
    // (tests/fixtures/e2e/kubelet-ready) names each one. The EndpointSlice
    // controller also writes on a pod's other changes (its create, its
    // binding), under those.
    eventually(
        &receiver,
        ns,
        "the kubelet's status writes (IP, then Ready) → update endpoints + update endpointslices",
        |s| {
            let pods = s.all(|x| is_write(x, "create", "pods", ns, "web-"));
            for (resource, listing) in [("endpoints", "web"), ("endpointslices", "web-")] {
                let under_status = s.all(|x| {
                    is_write(x, "update", resource, ns, listing)
                        && s.parent(x).is_some_and(|p| is_kubelet_status(p, ns, "web-"))
                });
                if under_status.is_empty() {
                    return Err(format!("no {resource} update under a kubelet status write"));
                }
            }
            let selected = |x: &Got| {
                pods.iter().any(|p| x.attr("k8s.object.name") == p.attr("k8s.object.name"))
                    && (is_write(x, "create", "pods", ns, "web-")
                        || is_write(x, "create", "pods/binding", ns, "web-")
                        || is_kubelet_status(x, ns, "web-"))
            };
            for update in s.all(|x| is_write(x, "update", "endpoints", ns, "web")) {
                let parent = s.parent(update).ok_or("an Endpoints update is a root")?;
                if !(parent.service == "kubelet" && selected(parent)) {
                    return Err(format!("an Endpoints update hangs under `{}` by {}", parent.name, parent.service));
                }
            }
            for update in s.all(|x| is_write(x, "update", "endpointslices", ns, "web-")) {
                let parent = s.parent(update).ok_or("an EndpointSlice update is a root")?;
                if !selected(parent) {
                    return Err(format!("an EndpointSlice update hangs under `{}` by {}", parent.name, parent.service));
                }
            }
            Ok(())
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// Waits until `n` pods named `prefix…` in `ns` report Ready (the real kubelet's readiness).
async fn wait_pods_ready(client: &kube::Client, ns: &str, prefix: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = pods_named(client, ns, prefix)
            .await
            .iter()
            .filter(|p| {
                p.data["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        if ready >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{ready} of {n} pods {ns}/{prefix}… Ready after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A scale-down on the real node. CAUSALITY.md: the ReplicaSet's delete of a
/// pod starts its termination; the kubelet's `Killing`, its status write
/// reporting the container terminated, and its own final delete of the pod
/// (grace period 0, once the container is gone) hang under that delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_scale_down_ends_in_the_kubelets_killing_and_final_delete() {
    let ns = "e2e-kubelet-down";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("scale-down", ns).await else { return };
    let ar = deployments();
    create(&client, Some(ns), &ar, real_deployment(2)).await;
    wait_pods_ready(&client, ns, "web-", 2).await;
    scale(&client, ns, &ar, "web", 1).await;
    eventually(
        &receiver,
        ns,
        "patch deployments/scale → update replicasets → delete pods → the kubelet's Killing, terminated status and final delete",
        |s| {
            let patch = s.named("the scale-down", &format!("patch deployments/scale {ns}/web"))?;
            s.expect_intent(patch, ADMIN)?;
            let update = s.one("the ReplicaSet update", |x| {
                is_write(x, "update", "replicasets", ns, "web-") && s.parent(x).is_some_and(|p| p.span == patch.span)
            })?;
            let delete = s.one("the ReplicaSet's pod delete", |x| {
                is_write(x, "delete", "pods", ns, "web-") && x.service == "replicaset-controller"
            })?;
            s.expect_parent(delete, update)?;
            let name = delete.attr("k8s.object.name").unwrap();
            let killing = s.one("Killing", |x| is_kubelet_event(x, "Killing", ns, name))?;
            s.expect_parent(killing, delete)?;
            let last_status = s
                .all(|x| is_kubelet_status(x, ns, name))
                .into_iter()
                .max_by_key(|x| x.start)
                .ok_or("no kubelet status write")?;
            s.expect_parent(last_status, delete)?;
            let final_delete =
                s.one("the kubelet's final delete", |x| is_write(x, "delete", "pods", ns, name) && x.service == "kubelet")?;
            s.expect_parent(final_delete, delete)
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// The real node joins the cluster while kausal records: the kubelet
/// registers it (`create nodes` as `system:node:<name>`, a root: nothing in
/// the cluster asked for it), and its node-condition Events are
/// observations of the node. CAUSALITY.md: `NodeReady` goes under the node's
/// registration; the conditions the kubelet reports before the node exists
/// (`NodeHasSufficientMemory`, ...) have nothing that caused them and start
/// traces of their own. Its name sorts first among the kubelet scenarios
/// (libtest runs them in name order), so the node starts inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_0_the_real_node_registers_and_reports_ready() {
    let Some(env) = env("kubelet") else { return };
    let node = real_node();
    let ns = "e2e-kubelet-node";
    let (receiver, mut kausal, client) = start_scenario("kubelet", "node", ns, false).await.unwrap();
    let nodes = resource("", "v1", "Node", "nodes");
    assert!(
        api(&client, None, &nodes).get_opt(&node).await.unwrap().is_none(),
        "node {node} registered before this scenario: it must run first among the kubelet scenarios"
    );
    real_node_ready(&env.dir).await;
    eventually(
        &receiver,
        &node,
        "create nodes (the kubelet, a root) → NodeReady, RegisteredNode, create csinodes, the taints",
        |s| {
            let register = s.named("the registration", &format!("create nodes {node}"))?;
            if register.parent.is_some() || register.service != "kubelet" {
                return Err(format!("the registration should be a root of the kubelet, is by {}", register.service));
            }
            let on_node = |reason: &str| {
                s.all(|x| {
                    x.attr("kausal.span.kind") == Some("event")
                        && x.attr("k8s.event.reason") == Some(reason)
                        && x.attr("k8s.object.name") == Some(node.as_str())
                        && !x.name.ends_with("(repeat)")
                })
            };
            for reason in ["NodeReady", "RegisteredNode"] {
                let [event] = on_node(reason)[..] else {
                    return Err(format!("{} {reason} spans", on_node(reason).len()));
                };
                s.expect_parent(event, register)?;
            }
            // Read off the machine as the kubelet builds the node it registers:
            // a root when it reached the apiserver before the create was answered.
            for reason in ["NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID"] {
                for event in on_node(reason) {
                    if event.parent.is_some() {
                        s.expect_parent(event, register)?;
                    }
                }
            }
            // The kubelet's own start: nothing written caused it.
            for reason in ["Starting", "NodeAllocatableEnforced"] {
                if let Some(event) = on_node(reason).into_iter().find(|e| e.parent.is_some()) {
                    return Err(format!("{reason} hangs under a write: {:?}", s.parent(event).map(|p| &p.name)));
                }
            }
            // Its CSINode, owned by the node (the policy logs it with its object).
            let csinode = s.named("the CSINode", &format!("create csinodes {node}"))?;
            s.expect_parent(csinode, register)?;
            // The node lifecycle controller taints the new node not-ready (its
            // create) and lifts the taints on the kubelet's report of Ready.
            let kubelet_status = |x: &Got| x.name == format!("patch nodes/status {node}") && x.service == "kubelet";
            let taints = s.all(|x| x.name == format!("patch nodes {node}") && x.service == "node-controller");
            let lifted = taints.iter().filter(|t| s.parent(t).is_some_and(kubelet_status)).count();
            if lifted == 0 {
                return Err(format!("none of {} taint writes hangs under the kubelet's Ready report", taints.len()));
            }
            taints
                .iter()
                .filter(|t| !s.parent(t).is_some_and(kubelet_status))
                .try_for_each(|t| s.expect_parent(t, register))
        },
    )
    .await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A bare pod `name` (labels `app: name`) on the real node, of one container
/// `main` running `command` from the local busybox image, with `extra`
/// merged into the container (probes, limits) and `pod_extra` into the pod's spec.
fn real_pod(name: &str, command: &str, extra: Value, pod_extra: Value) -> Value {
    let mut template = real_pod_template(name, command, Value::Null);
    let spec = template["spec"].as_object_mut().unwrap();
    let container = spec["containers"][0].as_object_mut().unwrap();
    container.remove("readinessProbe");
    container.extend(extra.as_object().cloned().unwrap_or_default());
    spec.extend(pod_extra.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": template["metadata"]["labels"]},
           "spec": template["spec"]})
}

fn pods() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}

/// Polls pod `ns/name` until `check` holds for it; fails after [`WAIT`] with `what`.
async fn wait_pod(client: &kube::Client, ns: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let pod = api(client, Some(ns), &pods()).get_opt(name).await.unwrap_or_else(|e| panic!("get pod {name}: {e}"));
        let last = pod.as_ref().map(|p| p.data["status"].clone()).unwrap_or(Value::Null);
        if check(&last) {
            return;
        }
        assert!(Instant::now() < deadline, "pod {ns}/{name}: not {what} after {WAIT:?}; status: {last}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn pod_ready(status: &Value) -> bool {
    status["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn first_container(status: &Value) -> &Value {
    &status["containerStatuses"][0]
}

/// A person deletes the pod and it goes. Each scenario ends so: a pod that
/// keeps restarting would write into the next scenario's recording.
/// CAUSALITY.md: a running pod's termination ends in the kubelet's own final
/// delete, under the person's delete. A pod in a terminal phase (Failed,
/// Succeeded) has nothing left to stop: the apiserver removes it at once
/// (grace period 0), and the kubelet writes no delete.
async fn delete_pod_and_wait_gone(receiver: &Receiver, client: &kube::Client, ns: &str, name: &str) {
    let pod = api(client, Some(ns), &pods()).get(name).await.unwrap();
    let terminal = matches!(pod.data["status"]["phase"].as_str(), Some("Failed" | "Succeeded"));
    api(client, Some(ns), &pods()).delete(name, &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while api(client, Some(ns), &pods()).get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "pod {ns}/{name} still there {WAIT:?} after its delete");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eventually(receiver, ns, "delete pods (a person) → the kubelet's final delete, unless the pod had ended", |s| {
        let delete =
            s.one("the person's delete", |x| x.name == format!("delete pods {ns}/{name}") && x.service == ADMIN)?;
        s.expect_intent(delete, ADMIN)?;
        let by_kubelet = s.all(|x| is_write(x, "delete", "pods", ns, name) && x.service == "kubelet");
        match (terminal, by_kubelet.as_slice()) {
            (true, []) => Ok(()),
            (false, [last]) => s.expect_parent(last, delete),
            (_, found) => Err(format!("{} deletes by the kubelet (the pod was terminal: {terminal})", found.len())),
        }
    })
    .await;
}

/// A kubelet Event on pod `pod` whose message contains `text`: its first
/// span (with the Event linger of 3 s here, later reports are repeat spans).
fn kubelet_event_saying<'a>(s: &'a Spans, reason: &str, ns: &str, pod: &str, text: &str) -> Result<&'a Got, String> {
    s.one(&format!("{reason} ({text})"), |x| {
        is_kubelet_event(x, reason, ns, pod)
            && !x.name.ends_with("(repeat)")
            && x.attr("k8s.event.message").is_some_and(|m| m.contains(text))
    })
}

/// At least `at_least` kubelet status writes on pod `pod` (`what` they are),
/// every one under `parent`.
fn all_kubelet_statuses_under(
    s: &Spans,
    ns: &str,
    pod: &str,
    parent: &Got,
    at_least: usize,
    what: &str,
) -> Result<(), String> {
    let statuses = s.all(|x| is_kubelet_status(x, ns, pod));
    if statuses.len() < at_least {
        return Err(format!("{} kubelet status writes, expected {what}", statuses.len()));
    }
    statuses.iter().try_for_each(|x| s.expect_parent(x, parent))
}

/// The creating person's pod and its binding, the start of every bare-pod scenario.
fn pod_and_binding<'a>(s: &'a Spans, ns: &str, name: &str) -> Result<(&'a Got, &'a Got), String> {
    let create = s.named("the pod's create", &format!("create pods {ns}/{name}"))?;
    s.expect_intent(create, ADMIN)?;
    let binding = s.named("the binding", &format!("create pods/binding {ns}/{name}"))?;
    s.expect_parent(binding, create)?;
    Ok((create, binding))
}

/// A readiness probe that fails for a while and passes again. CAUSALITY.md:
/// a readiness change is the cause of the Endpoints and EndpointSlice
/// updates that follow it: each update that moves the pod between ready and
/// not ready hangs under the kubelet's status write that reported the change.
/// The probe's failures are one `Unhealthy` Event, its repeats on its span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_readiness_probe_flips_off_and_on() {
    let ns = "e2e-kubelet-flip";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("readiness-flip", ns).await else { return };
    create(
        &client,
        Some(ns),
        &resource("", "v1", "Service", "services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "flip"},
               "spec": {"selector": {"app": "flip"}, "ports": [{"port": 8080}]}}),
    )
    .await;
    // Ready at once; the probe fails from 12 s on, and passes again 6 s later.
    let command = "trap 'exit 0' TERM; touch /tmp/ready; (sleep 12; rm /tmp/ready; sleep 6; touch /tmp/ready) & \
                   sleep 3600 & wait";
    let probe = json!({"readinessProbe": {"exec": {"command": ["test", "-e", "/tmp/ready"]},
                                          "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1}});
    create(&client, Some(ns), &pods(), real_pod("flip", command, probe, json!({}))).await;
    wait_pod(&client, ns, "flip", "Ready", pod_ready).await;
    wait_pod(&client, ns, "flip", "not Ready after the probe fails", |st| !pod_ready(st)).await;
    wait_pod(&client, ns, "flip", "Ready again", pod_ready).await;
    eventually(
        &receiver,
        ns,
        "the kubelet's status writes (Ready, not Ready, Ready again) → update endpoints + endpointslices under each",
        |s| {
            let (_, binding) = pod_and_binding(s, ns, "flip")?;
            let mut statuses = s.all(|x| is_kubelet_status(x, ns, "flip"));
            statuses.sort_by_key(|x| x.start);
            if statuses.len() < 4 {
                return Err(format!(
                    "{} kubelet status writes, expected start-up, Ready, not Ready, Ready",
                    statuses.len()
                ));
            }
            // Start-up and both flips: the probe on the pod the binding gave the kubelet.
            statuses.iter().try_for_each(|x| s.expect_parent(x, binding))?;
            // The flip: Endpoints updated at least three times after the create
            // (listed not ready with the IP, ready, not ready, ready again), each
            // under a kubelet status write of the pod.
            for resource in ["endpoints", "endpointslices"] {
                let updates = s.all(|x| is_write(x, "update", resource, ns, "flip"));
                let under_status =
                    updates.iter().filter(|u| s.parent(u).is_some_and(|p| is_kubelet_status(p, ns, "flip"))).count();
                if under_status < 3 {
                    return Err(format!(
                        "{under_status} {resource} updates under a kubelet status write, expected ≥ 3"
                    ));
                }
            }
            // The probe's failure: an observation of the pod the binding gave the kubelet.
            s.expect_parent(kubelet_event_saying(s, "Unhealthy", ns, "flip", "Readiness probe failed")?, binding)
        },
    )
    .await;
    delete_pod_and_wait_gone(&receiver, &client, ns, "flip").await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A container that exits at once, again and again. CAUSALITY.md: the
/// kubelet's `BackOff` is one span however often it is reported, its repeats
/// span events on it (or, after its span closed, repeat spans linked to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_crash_looping_container_backs_off() {
    let ns = "e2e-kubelet-crash";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("crash-loop", ns).await else { return };
    create(&client, Some(ns), &pods(), real_pod("crash", "echo boom; sleep 1; exit 3", json!({}), json!({}))).await;
    // Two restarts: the second comes after a back-off, which the kubelet reports.
    wait_pod(&client, ns, "crash", "restarted twice", |st| first_container(st)["restartCount"].as_i64() >= Some(2))
        .await;
    eventually(&receiver, ns, "one BackOff span with its repeats, under the pod's start", |s| {
        let (create, binding) = pod_and_binding(s, ns, "crash")?;
        let backoff = s.all(|x| is_kubelet_event(x, "BackOff", ns, "crash") && !x.name.ends_with("(repeat)"));
        let [backoff] = backoff.as_slice() else {
            return Err(format!("{} BackOff spans, expected one", backoff.len()));
        };
        s.expect_below(backoff, create)?;
        // Reported again while its span was open: span events; after (the
        // Event linger here is 3 s): repeat spans beside it.
        let later = s.all(|x| is_kubelet_event(x, "BackOff", ns, "crash") && x.name.ends_with("(repeat)")).len();
        if backoff.repeats + later == 0 {
            return Err("BackOff was reported once: no repeat yet".into());
        }
        for reason in ["Created", "Started"] {
            let first = s.all(|x| is_kubelet_event(x, reason, ns, "crash") && !x.name.ends_with("(repeat)"));
            let [first] = first.as_slice() else { return Err(format!("{} {reason} spans, expected one", first.len())) };
            s.expect_parent(first, binding)?;
        }
        // Each restart hangs under the status write that reported the crash
        // it restarts from; the rest of the pod's run under its binding.
        let statuses = s.all(|x| is_kubelet_status(x, ns, "crash"));
        let restarts =
            statuses.iter().filter(|x| s.parent(x).is_some_and(|p| is_kubelet_status(p, ns, "crash"))).count();
        if restarts < 2 {
            return Err(format!("{restarts} status writes under another status write, expected the two restarts"));
        }
        for status in statuses.iter().filter(|x| !s.parent(x).is_some_and(|p| is_kubelet_status(p, ns, "crash"))) {
            s.expect_parent(status, binding)?;
        }
        Ok(())
    })
    .await;
    delete_pod_and_wait_gone(&receiver, &client, ns, "crash").await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A liveness probe that fails once: the kubelet kills the container and
/// starts it again. The container keeps a mark in an emptyDir (which
/// outlives the container) so that it fails only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_liveness_failure_restarts_the_container() {
    let ns = "e2e-kubelet-live";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("liveness", ns).await else { return };
    let command = "trap 'exit 0' TERM; touch /tmp/alive; \
                   if [ ! -e /data/restarted ]; then touch /data/restarted; sleep 6; rm /tmp/alive; fi; sleep 3600 & wait";
    let container = json!({
        "livenessProbe": {"exec": {"command": ["test", "-e", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    });
    let pod = json!({"volumes": [{"name": "data", "emptyDir": {}}], "terminationGracePeriodSeconds": 2});
    create(&client, Some(ns), &pods(), real_pod("live", command, container, pod)).await;
    wait_pod(&client, ns, "live", "restarted and running", |st| {
        first_container(st)["restartCount"].as_i64() >= Some(1) && first_container(st)["state"]["running"].is_object()
    })
    .await;
    // The kill and the restart are reported in one status write: no earlier
    // one reported the failure, so the pod's whole run stays under its binding.
    eventually(
        &receiver,
        ns,
        "Unhealthy (liveness), Killing (will be restarted), the restart: under the binding",
        |s| {
            let (_, binding) = pod_and_binding(s, ns, "live")?;
            s.expect_parent(kubelet_event_saying(s, "Unhealthy", ns, "live", "Liveness probe failed")?, binding)?;
            s.expect_parent(kubelet_event_saying(s, "Killing", ns, "live", "failed liveness probe")?, binding)?;
            all_kubelet_statuses_under(s, ns, "live", binding, 3, "the start, Running and the restart")
        },
    )
    .await;
    delete_pod_and_wait_gone(&receiver, &client, ns, "live").await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A container over its memory limit: the kernel kills it, and the kubelet
/// reports it terminated as `OOMKilled` (restartPolicy Never: the pod fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_container_over_its_memory_limit_is_oom_killed() {
    let ns = "e2e-kubelet-oom";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("oom", ns).await else { return };
    let limits = json!({"resources": {"limits": {"memory": "32Mi", "cpu": "200m"}}});
    create(&client, Some(ns), &pods(), real_pod("oom", "tail /dev/zero", limits, json!({"restartPolicy": "Never"})))
        .await;
    wait_pod(&client, ns, "oom", "OOMKilled", |st| first_container(st)["state"]["terminated"]["reason"] == "OOMKilled")
        .await;
    eventually(&receiver, ns, "the kubelet's status writes for the pod, from its start under the binding", |s| {
        let (_, binding) = pod_and_binding(s, ns, "oom")?;
        // The OOM kill is no write's doing: the whole run under the binding.
        all_kubelet_statuses_under(s, ns, "oom", binding, 2, "the start and the OOM kill")
    })
    .await;
    delete_pod_and_wait_gone(&receiver, &client, ns, "oom").await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// An image the node does not have, with pull policy Never: the kubelet
/// reports `ErrImageNeverPull` (and `Failed`) again and again, and the
/// container never starts. They hang under the binding that made the
/// kubelet try, their repeats on their spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane and the real node from tests/e2e/run.sh --node"]
async fn kubelet_a_missing_image_never_starts() {
    let ns = "e2e-kubelet-noimage";
    let Some((receiver, mut kausal, client)) = start_kubelet_scenario("missing-image", ns).await else { return };
    let image = json!({"image": "localhost/kausal-e2e/missing:1", "imagePullPolicy": "Never"});
    create(&client, Some(ns), &pods(), real_pod("noimage", "true", image, json!({}))).await;
    wait_pod(&client, ns, "noimage", "waiting with ErrImageNeverPull", |st| {
        first_container(st)["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    })
    .await;
    eventually(&receiver, ns, "ErrImageNeverPull and the first status write under the binding", |s| {
        let (_, binding) = pod_and_binding(s, ns, "noimage")?;
        let never = s.all(|x| is_kubelet_event(x, "ErrImageNeverPull", ns, "noimage") && !x.name.ends_with("(repeat)"));
        let [never] = never.as_slice() else { return Err(format!("{} ErrImageNeverPull spans", never.len())) };
        s.expect_parent(never, binding)?;
        let first = s
            .all(|x| is_kubelet_status(x, ns, "noimage"))
            .into_iter()
            .min_by_key(|x| x.start)
            .ok_or("no kubelet status write")?;
        s.expect_parent(first, binding)
    })
    .await;
    delete_pod_and_wait_gone(&receiver, &client, ns, "noimage").await;
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

// ---- scenarios: Event watch (Events excluded from the audit policy) ---------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn watch_events_arrive_through_the_watch_and_a_restart_keeps_linking() {
    let Some(env) = env("watch") else { return };
    let receiver = Receiver::start(true).await;
    let mut kausal = start_kausal(&env, &receiver, "watch", true).await;
    let client = client().await;
    let ns = "e2e-watch";
    ensure_nodes(&client).await;
    namespace(&client, ns).await;
    let ar = deployments();

    create(&client, Some(ns), &ar, deployment("web", 2)).await;
    let rs =
        eventually(&receiver, ns, "the same Event spans as through audit, but from the watch (no k8s.audit.id)", |s| {
            let deploy = s.named("the Deployment create", "create deployments e2e-watch/web")?;
            let rs = s.one("the ReplicaSet create", |x| is_write(x, "create", "replicasets", ns, "web-"))?;
            s.expect_parent(rs, deploy)?;
            let scaled = s.one("ScalingReplicaSet", |x| is_event(x, "ScalingReplicaSet", ns, "Scaled up"))?;
            s.expect_parent(scaled, rs)?;
            let pods = s.all(|x| is_write(x, "create", "pods", ns, "web-"));
            if pods.len() != 2 {
                return Err(format!("{} pods", pods.len()));
            }
            for pod in pods {
                let name = pod.attr("k8s.object.name").unwrap();
                let created = s.one("SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, name))?;
                s.expect_parent(created, pod)?;
                let scheduled = s.one("Scheduled", |x| is_event(x, "Scheduled", ns, name))?;
                s.expect_below(scheduled, deploy)?;
            }
            let events = s.all(|x| x.attr("kausal.span.kind") == Some("event") && x.in_namespace(ns));
            if let Some(e) = events.iter().find(|e| e.attr("k8s.audit.id").is_some()) {
                return Err(format!("`{}` came through the audit stream, which should not carry Events now", e.name));
            }
            Ok(rs.attr("k8s.object.name").unwrap().to_owned())
        })
        .await;

    // Restart kausal: its graph starts empty. Writes after the restart still
    // link to objects created before it (from the objects in the audit events
    // and, for Events about objects it has not seen, from metadata lookups).
    assert!(kausal.terminate().success(), "{}", kausal.log());
    let after = Receiver::start(true).await;
    let mut kausal = start_kausal(&env, &after, "watch-restarted", true).await;
    scale(&client, ns, &ar, "web", 3).await;
    eventually(
        &after,
        ns,
        "after the restart: patch deployments/scale → update replicasets → create pods → SuccessfulCreate",
        |s| {
            let patch = s.named("the scale-up", "patch deployments/scale e2e-watch/web")?;
            s.expect_intent(patch, ADMIN)?;
            let update = s.one("the ReplicaSet update", |x| {
                is_write(x, "update", "replicasets", ns, &rs) && x.trace == patch.trace
            })?;
            s.expect_parent(update, patch)?;
            let pod = s.one("the new pod", |x| is_write(x, "create", "pods", ns, "web-"))?;
            s.expect_parent(pod, update)?;
            let name = pod.attr("k8s.object.name").unwrap();
            let created = s.one("its SuccessfulCreate", |x| is_event(x, "SuccessfulCreate", ns, name))?;
            s.expect_parent(created, pod)
        },
    )
    .await;
    // The relisted Events about objects from before the restart (the
    // ReplicaSet, the first pods) made kausal look those objects up.
    let metrics = kausal.metrics().await;
    let found = common::server::metric_sum(&metrics, "kausal_object_lookups_total", &["result=\"found\""]);
    assert!(found > 0.0, "no metadata lookup found an object from before the restart:\n{metrics}");
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// A client authenticated as service account `ns/name` with its token, as an
/// operator running in the cluster would be.
async fn client_as_service_account(ns: &str, name: &str) -> kube::Client {
    let admin = client().await;
    let secrets = resource("", "v1", "Secret", "secrets");
    let token = loop {
        let list = api(&admin, Some(ns), &secrets).list(&Default::default()).await.unwrap();
        let found = list.items.into_iter().find(|s| {
            s.data["type"] == "kubernetes.io/service-account-token"
                && s.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"))
                    == Some(&name.to_owned())
        });
        match found.and_then(|s| s.data["data"]["token"].as_str().map(str::to_owned)) {
            Some(t) => break t,
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    use base64::Engine as _;
    let token = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(token).unwrap()).unwrap();
    let path = format!("{}/admin.kubeconfig", env("audit").unwrap().dir);
    let mut kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let auth: kube::config::AuthInfo = serde_json::from_value(json!({"token": token})).unwrap();
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(auth.clone());
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The kubevirt operator-tracing convention on the real apiserver: a
/// mutating webhook (here: the person's create) puts a Jaeger context on a
/// `Head`; the Head's operator creates a `ChildA` copying the annotation
/// (without an owner reference, as operators that track children by label
/// do); ChildA's operator creates a Deployment copying it again, owned by the
/// ChildA. The custom resources are logged with their objects because their
/// group is in the policy's "Custom resources kausal links" rule. Expected,
/// from the records: the Head's create is the intent and links to the
/// carried span; the ChildA's create hangs under it because it set the same
/// context the Head's create set (no owner reference says so); the
/// Deployment's create hangs under the ChildA's (its owner and its context
/// agree), and the rollout under that. A second chain without any context,
/// owned all the way down, must nest the same from the owner references alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the control plane from tests/e2e/run.sh"]
async fn audit_an_operator_chain_of_custom_resources_with_a_copied_trace_context() {
    let ns = "e2e-op";
    let Some((receiver, mut kausal, admin)) = start_audit_scenario("operator", ns).await else { return };
    let crds = resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions");
    for (kind, plural) in [("Head", "heads"), ("ChildA", "childas")] {
        create(&admin, None, &crds, json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.operators.example.com")},
            "spec": {"group": "operators.example.com", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .await;
    }
    let rbac = resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles");
    create(&admin, None, &rbac, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "e2e-operator"},
        "rules": [{"apiGroups": ["operators.example.com"], "resources": ["heads", "childas"], "verbs": ["get", "list", "create", "update", "patch"]},
                  {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create"]}]
    }))
    .await;
    let sas = resource("", "v1", "ServiceAccount", "serviceaccounts");
    let bindings = resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings");
    for sa in ["head-controller", "childa-controller"] {
        create(&admin, Some(ns), &sas, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}))
            .await;
        create(
            &admin,
            Some(ns),
            &bindings,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": sa},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-operator"},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
            }),
        )
        .await;
    }
    let (head_ctrl, child_ctrl) = (
        client_as_service_account(ns, "head-controller").await,
        client_as_service_account(ns, "childa-controller").await,
    );
    let heads = resource("operators.example.com", "v1", "Head", "heads");
    let childas = resource("operators.example.com", "v1", "ChildA", "childas");
    let context = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1";
    // Run 1 (`-1`): the context copied down, and no owner reference on the
    // ChildA, so only the copied context says whose it is. Run 2 (`-2`): no
    // context, owner references all the way down.
    for (run, with_context) in [(1, true), (2, false)] {
        let annotations = if with_context { json!({"uber-trace-id": context}) } else { json!({}) };
        let head = json!({"apiVersion": "operators.example.com/v1", "kind": "Head",
                          "metadata": {"name": format!("h{run}"), "annotations": annotations}, "spec": {"size": 1}});
        create_when_served(&admin, ns, &heads, head).await;
        let head = api(&head_ctrl, Some(ns), &heads).get(&format!("h{run}")).await.unwrap();
        // The Head's operator creates its ChildA...
        let mut child = json!({"apiVersion": "operators.example.com/v1", "kind": "ChildA",
            "metadata": {"name": format!("c{run}"), "labels": {"head": format!("h{run}")}, "annotations": annotations}});
        if !with_context {
            child["metadata"]["ownerReferences"] = owner_reference("Head", &head);
        }
        create_when_served(&head_ctrl, ns, &childas, child).await;
        // ...and ChildA's operator a Deployment it owns.
        let child = api(&child_ctrl, Some(ns), &childas).get(&format!("c{run}")).await.unwrap();
        let mut web = deployment(&format!("web-{run}"), 1);
        web["metadata"]["annotations"] = annotations.clone();
        web["metadata"]["ownerReferences"] = owner_reference("ChildA", &child);
        create(&child_ctrl, Some(ns), &deployments(), web).await;
    }

    for (run, with_context) in [(1, true), (2, false)] {
        let expected = if with_context {
            "create heads (intent, linked to the carried span) → create childas (found by its copied context) → \
             create deployments → create replicasets → create pods"
        } else {
            "the same chain from the owner references alone"
        };
        eventually(&receiver, ns, expected, |s| {
            let head = s.named("the Head create", &format!("create heads e2e-op/h{run}"))?;
            s.expect_intent(head, ADMIN)?;
            let carried = head.attr("kausal.trace_context.trace_id");
            if carried != with_context.then_some("4bf92f3577b34da6a3ce929d0e0e4736") {
                return Err(format!("run {run}: the Head's create carries {carried:?}"));
            }
            let child = s.named("the ChildA create", &format!("create childas e2e-op/c{run}"))?;
            s.expect_parent(child, head)?;
            let found_by = child.attr("kausal.parent.found_by");
            if found_by != with_context.then_some("trace-context") || child.service != "e2e-op/head-controller" {
                return Err(format!("run {run}: the ChildA create: found_by {found_by:?}, by {}", child.service));
            }
            let deploy = s.named("the Deployment create", &format!("create deployments e2e-op/web-{run}"))?;
            s.expect_parent(deploy, child)?;
            let prefix = format!("web-{run}-");
            let rs = s.one("the ReplicaSet create", |x| is_write(x, "create", "replicasets", ns, &prefix))?;
            s.expect_parent(rs, deploy)?;
            let pod = s.one("the pod create", |x| is_write(x, "create", "pods", ns, &prefix))?;
            s.expect_parent(pod, rs)
        })
        .await;
    }
    assert!(kausal.terminate().success(), "{}", kausal.log());
}

/// An owner reference to `owner`, as a controller sets it on what it creates.
fn owner_reference(kind: &str, owner: &DynamicObject) -> Value {
    json!([{"apiVersion": "operators.example.com/v1", "kind": kind, "name": owner.metadata.name.clone().unwrap(),
            "uid": owner.metadata.uid.clone().unwrap(), "controller": true}])
}

/// Creates a custom resource once its CRD is served (a new CRD takes a
/// moment: until then the apiserver answers 404).
async fn create_when_served(client: &kube::Client, ns: &str, ar: &ApiResource, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    for attempt in 0.. {
        match api(client, Some(ns), ar).create(&PostParams::default(), &object).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 && attempt < 100 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create {}: {e}", ar.plural),
        }
    }
}
