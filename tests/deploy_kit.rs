//! The deploy kit is real configuration, so it is tested like code: every
//! manifest parses, the audit policy gives each kind of request the level the
//! README promises, and names, ports and paths agree across files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML document in a file.
fn documents(rel: &str) -> Vec<Value> {
    let source = text(rel);
    serde_yaml_ng::Deserializer::from_str(&source)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel} does not parse: {e}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// An overlay as `kubectl kustomize` renders it (kubectl ships kustomize);
/// `None`, reported, where kubectl is not installed.
fn rendered(overlay: &str) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl").args(["kustomize", &repo(overlay).display().to_string()]).output() {
        Ok(out) => out,
        Err(_) => {
            eprintln!("SKIPPED: kubectl is not installed, so {overlay} is not rendered");
            return None;
        }
    };
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &Value| !v.is_null())
            .collect(),
    )
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

fn one(rel: &str, kind: &str) -> Value {
    let found: Vec<Value> = documents(rel).into_iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{rel}: expected one {kind}");
    found.into_iter().next().unwrap()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

#[test]
fn every_manifest_parses() {
    let mut files = vec![];
    for dir in [
        "deploy/base",
        "deploy/overlays/host-network",
        "deploy/overlays/fixed-ip",
        "deploy/overlays/kind",
        "deploy/overlays/events-only",
        "deploy/components/jaeger",
        "deploy/components/monitoring",
        "deploy/kind",
        "audit-policy",
    ] {
        for entry in std::fs::read_dir(repo(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path.strip_prefix(repo("")).unwrap().display().to_string());
            }
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        let docs = documents(&file);
        assert!(!docs.is_empty(), "{file} is empty");
        for d in docs {
            // Strategic-merge patches name their target; everything has a kind.
            assert!(d["kind"].is_string() && d["apiVersion"].is_string(), "{file}: a document without kind/apiVersion");
        }
    }
}

// ---- the audit policy ------------------------------------------------------

struct Request<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    url: Option<&'a str>,
    /// The requester's groups (`system:nodes` for a kubelet).
    groups: &'a [&'a str],
}

fn matches_pattern(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// The level of the first matching rule, as the apiserver decides it.
fn level(policy: &Value, r: &Request) -> String {
    for rule in policy["rules"].as_sequence().unwrap() {
        if let Some(verbs) = rule["verbs"].as_sequence()
            && !verbs.iter().any(|v| v == r.verb)
        {
            continue;
        }
        if let Some(groups) = rule["userGroups"].as_sequence()
            && !groups.iter().any(|g| r.groups.iter().any(|mine| g == *mine))
        {
            continue;
        }
        if let Some(urls) = rule["nonResourceURLs"].as_sequence() {
            if !r.url.is_some_and(|u| urls.iter().any(|p| matches_pattern(str_of(p, "url"), u))) {
                continue;
            }
        } else if r.url.is_some() && rule["resources"].is_sequence() {
            continue;
        }
        if let Some(groups) = rule["resources"].as_sequence() {
            let hit = groups.iter().any(|g| {
                str_of(&g["group"], "group") == r.group
                    && g["resources"].as_sequence().is_none_or(|rs| {
                        rs.iter().any(|p| {
                            let p = str_of(p, "resource");
                            // `pods/*` matches every subresource of pods, not pods itself.
                            match p.strip_suffix("/*") {
                                Some(parent) => r.resource.starts_with(&format!("{parent}/")),
                                None => p == r.resource,
                            }
                        })
                    })
            });
            if !hit {
                continue;
            }
        }
        return str_of(&rule["level"], "level").to_owned();
    }
    "None".to_owned()
}

#[test]
fn the_audit_policy_gives_each_request_the_level_kausal_needs() {
    let policy = one("audit-policy/policy.yaml", "Policy");
    assert_eq!(policy["apiVersion"], "audit.k8s.io/v1");
    assert!(policy["omitStages"].as_sequence().unwrap().iter().any(|s| s == "RequestReceived"));
    assert_eq!(policy["omitManagedFields"], true, "kausal reads no managedFields: the policy drops them");
    let cases = [
        ("get", "", "pods", None, "None"),
        ("watch", "apps", "deployments", None, "None"),
        ("update", "coordination.k8s.io", "leases", None, "None"),
        ("get", "", "", Some("/healthz/etcd"), "None"),
        ("create", "apps", "deployments", None, "RequestResponse"),
        ("patch", "apps", "deployments/scale", None, "RequestResponse"),
        ("update", "apps", "replicasets/status", None, "RequestResponse"),
        ("create", "", "pods/binding", None, "RequestResponse"),
        ("delete", "", "pods", None, "RequestResponse"),
        ("delete", "", "nodes", None, "RequestResponse"),
        ("create", "batch", "jobs", None, "RequestResponse"),
        ("update", "discovery.k8s.io", "endpointslices", None, "RequestResponse"),
        ("create", "", "events", None, "Request"),
        ("patch", "events.k8s.io", "events", None, "Request"),
        ("update", "", "secrets", None, "Metadata"),
        ("create", "", "configmaps", None, "Metadata"),
        ("create", "", "serviceaccounts/token", None, "Metadata"),
        ("create", "authentication.k8s.io", "tokenreviews", None, "Metadata"),
        ("create", "rbac.authorization.k8s.io", "clusterroles", None, "Metadata"),
        // The custom-resource knob: a listed group's writes with their
        // objects, its reads not at all, any other group's at Metadata.
        ("create", "operators.example.com", "heads", None, "RequestResponse"),
        ("patch", "operators.example.com", "heads/status", None, "RequestResponse"),
        ("get", "operators.example.com", "heads", None, "None"),
        ("create", "other.example.org", "things", None, "Metadata"),
    ];
    let person: &[&str] = &["system:authenticated"];
    for (verb, group, resource, url, want) in cases {
        let got = level(&policy, &Request { verb, group, resource, url, groups: person });
        assert_eq!(got, want, "{verb} {group}/{resource}{}", url.unwrap_or(""));
    }
    // A kubelet's pod status writes at Request (measured in tests/ground_truth.rs);
    // anyone else's, and a kubelet's other writes, with their objects.
    let kubelet: &[&str] = &["system:nodes", "system:authenticated"];
    let at = |verb, resource, groups| level(&policy, &Request { verb, group: "", resource, url: None, groups });
    assert_eq!(at("patch", "pods/status", kubelet), "Request");
    assert_eq!(at("update", "pods/status", kubelet), "Request");
    assert_eq!(at("patch", "pods/status", person), "RequestResponse");
    assert_eq!(at("delete", "pods", kubelet), "RequestResponse");
    assert_eq!(at("patch", "nodes/status", kubelet), "RequestResponse");
    // The node's CSINode: its owner reference puts it under the node's registration.
    let csinode = level(
        &policy,
        &Request { verb: "create", group: "storage.k8s.io", resource: "csinodes", url: None, groups: kubelet },
    );
    assert_eq!(csinode, "RequestResponse");
}

#[test]
fn every_kind_logged_with_its_objects_is_one_kausal_links() {
    let policy = one("audit-policy/policy.yaml", "Policy");
    for rule in policy["rules"].as_sequence().unwrap() {
        if rule["level"] != "RequestResponse" {
            continue;
        }
        for group in rule["resources"].as_sequence().unwrap() {
            // A group without a resource list is the custom-resource knob:
            // its kinds are the operators', not kausal's built-in ones.
            let Some(resources) = group["resources"].as_sequence() else {
                assert!(str_of(&group["group"], "group").contains('.'), "a built-in group logged whole: {group:?}");
                continue;
            };
            for r in resources {
                let resource = str_of(r, "resource").trim_end_matches("/*");
                assert!(
                    kausal::core::kinds::kind_for_resource(resource).is_some(),
                    "RequestResponse for `{resource}`, which kausal does not know: a typo, or a missing kind"
                );
            }
        }
    }
}

// ---- cross-file consistency ------------------------------------------------

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(container: &'a Value, name: &str) -> &'a str {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| str_of(&e["value"], name))
        .unwrap_or_else(|| panic!("env {name} not set"))
}

fn port_named(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

/// The kind overlay, as up.sh applies it: host network, the Jaeger demo.
#[test]
fn names_ports_and_paths_agree_across_the_kit() {
    let Some(docs) = rendered("deploy/overlays/kind") else { return };
    let namespace = of_kind(&docs, "Namespace");
    let ns = str_of(&namespace["metadata"]["name"], "namespace");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "kausal").unwrap();
    let service = docs.iter().find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "kausal").unwrap();
    let c = container(deployment);
    for doc in &docs {
        if !["Namespace", "ClusterRole", "ClusterRoleBinding"].contains(&doc["kind"].as_str().unwrap()) {
            assert_eq!(doc["metadata"]["namespace"], ns, "{:?} is not in namespace {ns}", doc["metadata"]["name"]);
        }
        for label in ["app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"] {
            assert!(doc["metadata"]["labels"][label].is_string(), "{:?} lacks {label}", doc["metadata"]["name"]);
        }
    }

    // The service account exists and is bound to the role.
    let sa = of_kind(&docs, "ServiceAccount");
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    let binding = of_kind(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], ns);
    assert_eq!(binding["roleRef"]["name"], of_kind(&docs, "ClusterRole")["metadata"]["name"]);

    // The --config file is the ConfigMap's, mounted where KAUSAL_CONFIG points.
    let config_map = of_kind(&docs, "ConfigMap");
    let config_path = env(c, "KAUSAL_CONFIG");
    let (config_dir, config_file) = config_path.rsplit_once('/').unwrap();
    assert!(config_map["data"][config_file].is_string(), "the ConfigMap has no {config_file}");
    let config_mount = c["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["mountPath"] == config_dir).unwrap();
    let config_volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .unwrap();
    assert_eq!(config_volume["configMap"]["name"], config_map["metadata"]["name"]);

    // Listen addresses, container ports, Service ports and probes line up.
    let webhook_port = port_named(c, "webhook");
    let metrics_port = port_named(c, "metrics");
    assert!(env(c, "KAUSAL_LISTEN").ends_with(&format!(":{webhook_port}")));
    assert!(env(c, "KAUSAL_OPS_LISTEN").ends_with(&format!(":{metrics_port}")));
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let port = &c[probe]["httpGet"]["port"];
        assert!(port == "metrics", "{probe} must use the plain-HTTP ops port (no client certificate there)");
    }
    let service_ports: Vec<&str> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["targetPort"], "targetPort"))
        .collect();
    assert_eq!(service_ports, ["webhook", "metrics"]);
    let dockerfile = text("Dockerfile");
    assert!(dockerfile.contains(&format!("EXPOSE {webhook_port} {metrics_port}")), "Dockerfile EXPOSE disagrees");

    let liveness = &c["livenessProbe"];
    let gives_up = liveness["periodSeconds"].as_u64().unwrap() * liveness["failureThreshold"].as_u64().unwrap();
    assert!((50..=70).contains(&gives_up), "liveness gives up after {gives_up}s, not about 60 s");

    // TLS files come from the mounted Secret that up.sh creates.
    let mount = str_of(&c["volumeMounts"][0]["mountPath"], "mountPath");
    for var in ["KAUSAL_TLS_CERT", "KAUSAL_TLS_KEY", "KAUSAL_CLIENT_CA"] {
        let path = env(c, var);
        assert!(path.starts_with(mount), "{var}={path} is outside the Secret mount {mount}");
        let key = path.rsplit('/').next().unwrap();
        assert!(
            text("deploy/kind/up.sh").contains(&format!("--from-file={key}=")),
            "up.sh does not put {key} in the Secret"
        );
    }
    let secret = str_of(&deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"], "secretName");
    assert!(text("deploy/kind/up.sh").contains(&format!("create secret generic {secret}")));

    // The write-ahead log lives on a writable volume larger than its budget
    // (the root filesystem is read-only).
    let data_dir = env(c, "KAUSAL_DATA_DIR");
    let data_mount = c["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["mountPath"] == data_dir);
    let data_mount = data_mount.unwrap_or_else(|| panic!("KAUSAL_DATA_DIR={data_dir} is not a mounted volume"));
    assert!(data_mount["readOnly"] != true, "the data volume is read-only");
    let volume_name = &data_mount["name"];
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| &v["name"] == volume_name)
        .unwrap();
    let limit = kausal::serve::parse_bytes(str_of(&volume["emptyDir"]["sizeLimit"], "sizeLimit")).unwrap();
    let wal = kausal::serve::parse_bytes(env(c, "KAUSAL_MAX_WAL_BYTES")).unwrap();
    assert!(wal < limit, "KAUSAL_MAX_WAL_BYTES {wal} does not fit the volume's sizeLimit {limit}");

    // kausal exports to the Jaeger Service's OTLP/gRPC port.
    let jaeger_service = docs.iter().find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "jaeger").unwrap();
    let otlp_port = jaeger_service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "otlp-grpc")
        .unwrap()["port"]
        .as_u64()
        .unwrap();
    let jaeger_name = str_of(&jaeger_service["metadata"]["name"], "jaeger service");
    assert_eq!(env(c, "KAUSAL_OTLP_ENDPOINT"), format!("http://{jaeger_name}.{ns}.svc:{otlp_port}"));

    // The image up.sh builds is the one the Deployment runs.
    let image = str_of(&c["image"], "image");
    assert!(text("deploy/kind/up.sh").contains(&format!("KAUSAL_IMAGE:-{image}")));

    // The webhook kubeconfig template posts to the webhook port, under the cluster name kausal uses.
    let kubeconfig = one("audit-policy/webhook-kubeconfig.yaml", "Config");
    let server = str_of(&kubeconfig["clusters"][0]["cluster"]["server"], "server");
    let cluster_name = env(c, "KAUSAL_CLUSTER_NAME");
    assert_eq!(server, format!("https://127.0.0.1:{webhook_port}/audit/{cluster_name}"));
    assert!(deployment["spec"]["template"]["spec"]["hostNetwork"] == true, "127.0.0.1 needs hostNetwork");
}

#[test]
fn kind_mounts_the_real_policy_and_kubeconfig_where_the_apiserver_flags_point() {
    let config = one("deploy/kind/kind-config.yaml", "Cluster");
    let node = &config["nodes"][0];
    let mount = &node["extraMounts"][0];
    assert_eq!(mount["hostPath"], "__AUDIT_DIR__");
    let node_dir = str_of(&mount["containerPath"], "containerPath");
    let patch: Value = serde_yaml_ng::from_str(str_of(&node["kubeadmConfigPatches"][0], "patch")).unwrap();
    let api_server = &patch["apiServer"];
    let volume = &api_server["extraVolumes"][0];
    assert_eq!(volume["hostPath"], node_dir, "the apiserver pod must mount the node directory kind filled");
    let pod_dir = str_of(&volume["mountPath"], "mountPath");
    let up = text("deploy/kind/up.sh");
    for (flag, file, source) in [
        ("audit-policy-file", "policy.yaml", "audit-policy/policy.yaml"),
        ("audit-webhook-config-file", "webhook-kubeconfig.yaml", "webhook-kubeconfig.yaml"),
    ] {
        let path = str_of(&api_server["extraArgs"][flag], flag);
        assert_eq!(path, format!("{pod_dir}/{file}"));
        assert!(up.contains(source) && up.contains(&format!("$state/audit/{file}")), "up.sh does not place {file}");
    }
    assert_eq!(api_server["extraArgs"]["audit-webhook-mode"], "batch");
    assert!(up.contains("__AUDIT_DIR__") && up.contains("kind create cluster"));
    // up.sh's cluster label is what the Deployment is told to call the cluster.
    assert!(up.contains("KAUSAL_CLUSTER_NAME=\"$cluster_label\"") && up.contains("/audit/$cluster_label"));
}

#[test]
fn the_cluster_role_is_least_privilege() {
    let role = one("deploy/base/rbac.yaml", "ClusterRole");
    let rules = role["rules"].as_sequence().unwrap();
    let mut watches_events = false;
    for rule in rules {
        let verbs: Vec<&str> = rule["verbs"].as_sequence().unwrap().iter().map(|v| str_of(v, "verb")).collect();
        let resources: Vec<&str> =
            rule["resources"].as_sequence().unwrap().iter().map(|v| str_of(v, "resource")).collect();
        assert!(!verbs.contains(&"*") && !resources.contains(&"*"), "wildcards in {rule:?}");
        assert!(verbs.iter().all(|v| ["get", "list", "watch"].contains(v)), "write verbs in {rule:?}");
        assert!(!resources.iter().any(|r| ["secrets", "configmaps"].contains(r)), "kausal never reads {resources:?}");
        if resources == ["events"] && verbs.contains(&"watch") {
            watches_events = true;
        } else {
            assert_eq!(verbs, ["get"], "only Events are listed and watched; other kinds are only looked up");
        }
    }
    assert!(watches_events);
}

/// The events-only overlay turns the owner watches on and grants exactly
/// what they ask for: list and watch of each kind `src/sources/owner_watch.rs`
/// watches (read from its table, so a kind added there without its RBAC
/// fails here), and nothing else.
#[test]
fn the_events_only_overlay_grants_list_and_watch_on_the_watched_kinds_only() {
    let Some(docs) = rendered("deploy/overlays/events-only") else { return };
    let env = container(docs.iter().find(|d| d["kind"] == "Deployment").unwrap())["env"].clone();
    let value = |name: &str| {
        env.as_sequence().unwrap().iter().find(|e| e["name"] == name).map(|e| str_of(&e["value"], name).to_owned())
    };
    assert_eq!(value("KAUSAL_WATCH_OWNERS").as_deref(), Some("on"));
    assert_eq!(value("KAUSAL_WATCH_EVENTS").as_deref(), Some("on"));
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "kausal-owners").unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let verbs: Vec<&str> = rule["verbs"].as_sequence().unwrap().iter().map(|v| str_of(v, "verb")).collect();
        assert_eq!(verbs, ["list", "watch"], "{rule:?}");
        for group in rule["apiGroups"].as_sequence().unwrap() {
            for r in rule["resources"].as_sequence().unwrap() {
                granted.insert(format!("{}/{}", str_of(group, "group"), str_of(r, "resource")));
            }
        }
    }
    let source = text("src/sources/owner_watch.rs");
    let table = &source[source.find("const KINDS").unwrap()..];
    let table = &table[..table.find("];").unwrap()];
    let watched: std::collections::BTreeSet<String> = table
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.trim().strip_prefix("(\"")?.split('"').collect();
            // ("apps", "v1", "ReplicaSet", "replicasets", true)
            Some(format!("{}/{}", fields[0], fields[6]))
        })
        .collect();
    assert_eq!(watched.len(), 8, "{watched:?}");
    assert_eq!(granted, watched, "the owner watches' RBAC differs from the kinds they watch");
    let binding = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding" && d["metadata"]["name"] == "kausal-owners");
    assert_eq!(binding.unwrap()["subjects"][0]["name"], "kausal");
}

#[test]
fn every_kausal_variable_in_the_manifests_is_a_real_flag() {
    let help = Command::new(common::server::KAUSAL).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let deployment = documents("deploy/base/kausal.yaml").into_iter().find(|d| d["kind"] == "Deployment").unwrap();
    for e in container(&deployment)["env"].as_sequence().unwrap() {
        let name = str_of(&e["name"], "env name");
        assert!(help.contains(&format!("[env: {name}=")), "{name} is not a `kausal serve` variable");
    }
    // And every key of the --config file is a flag of `kausal serve`.
    let config: toml::Table = text("deploy/base/kausal.toml").parse().unwrap();
    for key in config.keys() {
        assert!(help.contains(&format!("--{key} ")), "deploy/base/kausal.toml: `{key}` is not a `kausal serve` flag");
    }
}

/// Each wiring renders, and says what it promises: the host network on the
/// control-plane node, or a pinned Service IP behind a NetworkPolicy.
#[test]
fn every_overlay_renders_with_its_wiring() {
    let Some(host) = rendered("deploy/overlays/host-network") else { return };
    let pod = &host.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert!(pod["nodeSelector"]["node-role.kubernetes.io/control-plane"].is_string());
    assert!(!host.iter().any(|d| d["metadata"]["name"] == "jaeger"), "no demo without the component");

    let fixed = rendered("deploy/overlays/fixed-ip").unwrap();
    let service = fixed.iter().find(|d| d["kind"] == "Service").unwrap();
    assert!(service["spec"]["clusterIP"].is_string());
    let policy = of_kind(&fixed, "NetworkPolicy");
    let pod = &fixed.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"];
    assert!(pod["hostNetwork"].is_null(), "the fixed-IP wiring needs no host network");
    let selects = &policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"];
    assert_eq!(selects, &pod_labels(&fixed)["app.kubernetes.io/name"], "the NetworkPolicy selects kausal's pod");

    let monitoring = rendered("deploy/components/monitoring").unwrap();
    let kinds: Vec<&str> = monitoring.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"ServiceMonitor") && kinds.contains(&"PrometheusRule"), "{kinds:?}");
    let rules = text("deploy/components/monitoring/prometheus-rule.yaml");
    for series in [
        "kausal_queue_depth_records",
        "kausal_wal_unacknowledged_bytes",
        "kausal_spans_export_failed_total",
        "kausal_late_records_total",
        "kausal_linking_paused",
    ] {
        assert!(rules.contains(series), "no alert on {series}");
    }
}

fn pod_labels(docs: &[Value]) -> &Value {
    &docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["metadata"]["labels"]
}

#[test]
fn kausal_cert_writes_a_kubeconfig_shaped_like_the_template() {
    let certs = common::server::Certs::generate();
    let written: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(certs.path("webhook-kubeconfig.yaml")).unwrap()).unwrap();
    let template = one("audit-policy/webhook-kubeconfig.yaml", "Config");
    for path in [["clusters", "cluster"], ["users", "user"], ["contexts", "context"]] {
        let keys = |v: &Value| -> Vec<String> {
            v[path[0]][0][path[1]].as_mapping().unwrap().keys().map(|k| str_of(k, "key").to_owned()).collect()
        };
        assert_eq!(keys(&written), keys(&template), "{path:?}");
    }
    assert_eq!(written["current-context"], template["current-context"]);
}
