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
    for dir in ["deploy", "deploy/kind", "audit-policy"] {
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
    ];
    for (verb, group, resource, url, want) in cases {
        let got = level(&policy, &Request { verb, group, resource, url });
        assert_eq!(got, want, "{verb} {group}/{resource}{}", url.unwrap_or(""));
    }
}

#[test]
fn every_kind_logged_with_its_objects_is_one_kausal_links() {
    let policy = one("audit-policy/policy.yaml", "Policy");
    for rule in policy["rules"].as_sequence().unwrap() {
        if rule["level"] != "RequestResponse" {
            continue;
        }
        for group in rule["resources"].as_sequence().unwrap() {
            for r in group["resources"].as_sequence().unwrap() {
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

#[test]
fn names_ports_and_paths_agree_across_the_kit() {
    let namespace = one("deploy/namespace.yaml", "Namespace");
    let ns = str_of(&namespace["metadata"]["name"], "namespace");
    let deployment = documents("deploy/kausal.yaml").into_iter().find(|d| d["kind"] == "Deployment").unwrap();
    let service = documents("deploy/kausal.yaml").into_iter().find(|d| d["kind"] == "Service").unwrap();
    let c = container(&deployment);
    for doc in documents("deploy/kausal.yaml")
        .iter()
        .chain(&documents("deploy/rbac.yaml"))
        .chain(&documents("deploy/jaeger.yaml"))
    {
        if doc["kind"] != "ClusterRole" && doc["kind"] != "ClusterRoleBinding" {
            assert_eq!(doc["metadata"]["namespace"], ns, "{:?} is not in namespace {ns}", doc["metadata"]["name"]);
        }
    }

    // The service account exists and is bound to the role.
    let sa = one("deploy/rbac.yaml", "ServiceAccount");
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    let binding = one("deploy/rbac.yaml", "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], ns);
    assert_eq!(binding["roleRef"]["name"], one("deploy/rbac.yaml", "ClusterRole")["metadata"]["name"]);

    // Listen addresses, container ports, Service ports and probes line up.
    let webhook_port = port_named(c, "webhook");
    let metrics_port = port_named(c, "metrics");
    assert!(env(c, "KAUSAL_LISTEN").ends_with(&format!(":{webhook_port}")));
    assert!(env(c, "KAUSAL_OPS_LISTEN").ends_with(&format!(":{metrics_port}")));
    for probe in ["readinessProbe", "livenessProbe"] {
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
    let jaeger_service = documents("deploy/jaeger.yaml").into_iter().find(|d| d["kind"] == "Service").unwrap();
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
    let role = one("deploy/rbac.yaml", "ClusterRole");
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

#[test]
fn every_kausal_variable_in_the_manifests_is_a_real_flag() {
    let help = Command::new(common::server::KAUSAL).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let deployment = documents("deploy/kausal.yaml").into_iter().find(|d| d["kind"] == "Deployment").unwrap();
    for e in container(&deployment)["env"].as_sequence().unwrap() {
        let name = str_of(&e["name"], "env name");
        assert!(help.contains(&format!("[env: {name}=")), "{name} is not a `kausal serve` variable");
    }
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
