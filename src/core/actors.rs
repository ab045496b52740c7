//! Who acted: recognising controllers, naming actors, and mapping an Event's
//! reporting component to the audit users that component writes as.

/// Users whose writes are controllers' writes, not intents. A pattern is an
/// exact user name or a prefix ending in `*`. Two classes: the control
/// plane's own identities and the patterns a person adds (whose uncaused
/// writes are background, hidden by default), and automation (any other
/// service account: an operator, Argo CD, a CI job's token), whose writes
/// hang under a cause when one exists and otherwise start a trace shown like
/// an intent, marked as automation.
#[derive(Debug, Clone)]
pub struct ControllerPatterns {
    patterns: Vec<String>,
    automation: Vec<String>,
}

/// The default controller users: the control plane's own identities.
pub const DEFAULT_CONTROLLER_PATTERNS: &[&str] = &[
    "system:serviceaccount:kube-system:*",
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:node:*",
    "system:apiserver",
];

/// Automation by default: every service account outside the control plane.
pub const DEFAULT_AUTOMATION_PATTERNS: &[&str] = &["system:serviceaccount:*"];

impl Default for ControllerPatterns {
    fn default() -> Self {
        ControllerPatterns::with_defaults(Vec::new())
    }
}

impl ControllerPatterns {
    /// Only these patterns: no control-plane defaults and no automation.
    pub fn new(patterns: Vec<String>) -> Self {
        ControllerPatterns { patterns, automation: Vec::new() }
    }

    /// The defaults, plus `extra` controller patterns.
    pub fn with_defaults(extra: Vec<String>) -> Self {
        let mut patterns: Vec<String> = DEFAULT_CONTROLLER_PATTERNS.iter().map(|s| s.to_string()).collect();
        patterns.extend(extra);
        ControllerPatterns { patterns, automation: DEFAULT_AUTOMATION_PATTERNS.iter().map(|s| s.to_string()).collect() }
    }

    pub fn is_controller(&self, user: &str) -> bool {
        matches_any(&self.patterns, user) || matches_any(&self.automation, user)
    }

    /// A controller that is automation rather than the control plane (see the type).
    pub fn is_automation(&self, user: &str) -> bool {
        matches_any(&self.automation, user) && !matches_any(&self.patterns, user)
    }
}

fn matches_any(patterns: &[String], user: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => user.starts_with(prefix),
        None => user == p,
    })
}

const SA_KUBE_SYSTEM: &str = "system:serviceaccount:kube-system:";
pub const SHARED_CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";

/// One kube-controller-manager controller: the source its Events name, and
/// the service account it writes as (`--use-service-account-credentials`).
///
/// The two differ for some controllers, so an Event's reporter cannot be
/// compared with a write's user by name. Checked against the 1.20 sources:
/// `EventSource{Component: ...}` in `pkg/controller/**` and the
/// `ClientOrDie("...")` names in `cmd/kube-controller-manager/app`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerIdentity {
    /// The controller's name in `--controllers`.
    pub controller: &'static str,
    /// What its Events give as `source.component` / `reportingController`.
    pub event_sources: &'static [&'static str],
    /// Its service account in `kube-system`. With shared credentials the
    /// same name is the last segment of its user agent.
    pub service_account: &'static str,
}

const fn id(
    controller: &'static str,
    event_sources: &'static [&'static str],
    service_account: &'static str,
) -> ControllerIdentity {
    ControllerIdentity { controller, event_sources, service_account }
}

/// The pod garbage collector, which deletes the pods of deleted nodes.
pub const POD_GC_SERVICE_ACCOUNT: &str = "pod-garbage-collector";

/// The garbage collector, which deletes the dependents of deleted owners.
pub const GC_SERVICE_ACCOUNT: &str = "generic-garbage-collector";

/// The node lifecycle controller, which taints and untaints nodes by the
/// conditions their kubelets report.
pub const NODE_LIFECYCLE_SERVICE_ACCOUNT: &str = "node-controller";

/// Controllers that act on a namespace's arrival: each new namespace gets a
/// `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap from them.
/// (kube-controller-manager's own client, which creates its controllers'
/// ServiceAccounts in kube-system at start-up, is not one of them.)
pub const NAMESPACE_WATCHERS: &[&str] = &["service-account-controller", "root-ca-cert-publisher"];

/// Every kube-controller-manager controller that writes objects kausal links.
pub const CONTROLLER_IDENTITIES: &[ControllerIdentity] = &[
    id("deployment", &["deployment-controller"], "deployment-controller"),
    id("replicaset", &["replicaset-controller"], "replicaset-controller"),
    id("replicationcontroller", &["replication-controller"], "replication-controller"),
    id("statefulset", &["statefulset-controller"], "statefulset-controller"),
    id("daemonset", &["daemonset-controller"], "daemon-set-controller"),
    id("job", &["job-controller"], "job-controller"),
    id("cronjob", &["cronjob-controller"], "cronjob-controller"),
    id("ttl-after-finished", &["ttl-after-finished-controller"], "ttl-after-finished-controller"),
    id("endpoint", &["endpoint-controller"], "endpoint-controller"),
    id("endpointslice", &["endpoint-slice-controller"], "endpointslice-controller"),
    id("endpointslicemirroring", &["endpoint-slice-mirroring-controller"], "endpointslicemirroring-controller"),
    // The taint manager runs inside the node lifecycle controller and shares its credentials.
    id("nodelifecycle", &["node-controller", "taint-controller"], NODE_LIFECYCLE_SERVICE_ACCOUNT),
    id("garbagecollector", &["garbage-collector-controller"], GC_SERVICE_ACCOUNT),
    // The pod garbage collector records no Events; it is here for its writes.
    id("podgc", &[], POD_GC_SERVICE_ACCOUNT),
    id("persistentvolume-binder", &["persistentvolume-controller"], "persistent-volume-binder"),
    id("attachdetach", &["attachdetach-controller"], "attachdetach-controller"),
    id("persistentvolume-expander", &["volume_expand"], "expand-controller"),
    id("horizontalpodautoscaling", &["horizontal-pod-autoscaler"], "horizontal-pod-autoscaler"),
    id("disruption", &["controllermanager"], "disruption-controller"),
    id("service", &["service-controller"], "service-controller"),
    id("namespace", &[], "namespace-controller"),
    id("serviceaccount", &[], "service-account-controller"),
    id("ttl", &[], "ttl-controller"),
    id("root-ca-cert-publisher", &[], "root-ca-cert-publisher"),
];

/// The controller whose Events name `source`, if it is a kube-controller-manager one.
pub fn controller_for_event_source(source: &str) -> Option<&'static ControllerIdentity> {
    CONTROLLER_IDENTITIES.iter().find(|c| c.event_sources.contains(&source))
}

/// The controller that writes as service account `sa` in kube-system.
pub fn controller_for_service_account(sa: &str) -> Option<&'static ControllerIdentity> {
    CONTROLLER_IDENTITIES.iter().find(|c| c.service_account == sa)
}

/// Who made a write, as the linker compares it with Event reporters.
///
/// This is the audit user, except when kube-controller-manager runs every
/// controller under its own shared identity (`system:kube-controller-manager`,
/// without `--use-service-account-credentials`): its client then appends the
/// controller's service-account name to the user agent
/// (`kube-controller-manager/v1.20.2 (linux/amd64) kubernetes/faecb19/deployment-controller`),
/// and that tells the controllers apart. Such a write is attributed to
/// `system:kube-controller-manager/<service account>`.
pub fn acting_user<'a>(user: &'a str, user_agent: Option<&str>) -> std::borrow::Cow<'a, str> {
    if user == SHARED_CONTROLLER_MANAGER_USER
        && let Some(sa) = user_agent.and_then(shared_credentials_controller)
    {
        return format!("{SHARED_CONTROLLER_MANAGER_USER}/{sa}").into();
    }
    user.into()
}

/// The controller a shared-credentials kube-controller-manager user agent names.
fn shared_credentials_controller(user_agent: &str) -> Option<&str> {
    let rest = user_agent.strip_prefix("kube-controller-manager/")?;
    // `<version> (<os>/<arch>) kubernetes/<commit>/<name>`: the name is the fourth segment.
    let name = rest.splitn(4, '/').nth(3)?;
    controller_for_service_account(name).map(|c| c.service_account)
}

/// The short name of an actor, used as `service.name` so that Jaeger's service
/// list reads as "who acted".
/// The node a kubelet's user names (`system:node:<node>`), for a kubelet.
pub fn kubelet_node(user: &str) -> Option<&str> {
    user.strip_prefix("system:node:")
}

pub fn actor_name(user: &str) -> String {
    if let Some(sa) = user.strip_prefix(SA_KUBE_SYSTEM) {
        return sa.to_owned();
    }
    if let Some(rest) = user.strip_prefix("system:serviceaccount:") {
        return rest.replacen(':', "/", 1);
    }
    if let Some(sa) = user.strip_prefix("system:kube-controller-manager/") {
        return sa.to_owned();
    }
    if kubelet_node(user).is_some() {
        return "kubelet".to_owned();
    }
    match user {
        "system:kube-scheduler" => "kube-scheduler".to_owned(),
        "system:kube-controller-manager" => "kube-controller-manager".to_owned(),
        "system:apiserver" => "kube-apiserver".to_owned(),
        "" => "unknown".to_owned(),
        other => other.to_owned(),
    }
}

/// Which acting users (see [`acting_user`]) count as the Event's reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReporterUsers {
    Scheduler,
    Kubelet {
        node: Option<String>,
    },
    /// A kube-controller-manager controller: its own service account, or the
    /// shared identity with its name in the user agent, or the shared
    /// identity alone (a user agent that names nothing cannot rule it out).
    ControllerManager {
        service_account: std::borrow::Cow<'static, str>,
    },
    /// Anything else: its name is taken as the user name itself.
    Other(String),
}

impl ReporterUsers {
    pub fn for_reporter(reporter: &str, host: Option<&str>) -> ReporterUsers {
        match reporter {
            "default-scheduler" | "kube-scheduler" => ReporterUsers::Scheduler,
            "kubelet" => ReporterUsers::Kubelet { node: host.map(|h| h.to_owned()) },
            r => match controller_for_event_source(r) {
                Some(c) => ReporterUsers::ControllerManager { service_account: c.service_account.into() },
                // A controller not in the table (a newer release's): assume
                // its service account is named like its Event source.
                None if r.ends_with("-controller") => {
                    ReporterUsers::ControllerManager { service_account: r.to_owned().into() }
                }
                None => ReporterUsers::Other(r.to_owned()),
            },
        }
    }

    pub fn matches(&self, user: &str) -> bool {
        match self {
            ReporterUsers::Scheduler => user == "system:kube-scheduler",
            ReporterUsers::Kubelet { node: Some(n) } => kubelet_node(user) == Some(n.as_str()),
            ReporterUsers::Kubelet { node: None } => kubelet_node(user).is_some(),
            ReporterUsers::ControllerManager { service_account } => {
                let sa = Some(service_account.as_ref());
                user.strip_prefix(SA_KUBE_SYSTEM) == sa
                    || user == SHARED_CONTROLLER_MANAGER_USER
                    || user.strip_prefix(SHARED_CONTROLLER_MANAGER_USER).and_then(|rest| rest.strip_prefix('/')) == sa
            }
            ReporterUsers::Other(name) => user == name,
        }
    }

    /// The actor name of the reporter, consistent with [`actor_name`] of its writes.
    pub fn actor(&self) -> String {
        match self {
            ReporterUsers::Scheduler => "kube-scheduler".to_owned(),
            ReporterUsers::Kubelet { .. } => "kubelet".to_owned(),
            ReporterUsers::ControllerManager { service_account } => service_account.to_string(),
            ReporterUsers::Other(name) => name.clone(),
        }
    }
}

/// The audit users that count as an Event's reporter; an Event without one
/// matches no writer and falls back to the triggers on its object.
pub fn reporter_of(e: &super::record::EventRecord) -> ReporterUsers {
    match e.reporter.as_deref() {
        Some(r) => ReporterUsers::for_reporter(r, e.reporter_host.as_deref()),
        None => ReporterUsers::Other("unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_patterns_recognise_the_control_plane_and_not_people() {
        let p = ControllerPatterns::default();
        assert!(p.is_controller("system:serviceaccount:kube-system:deployment-controller"));
        assert!(p.is_controller("system:kube-scheduler"));
        assert!(p.is_controller("system:node:fake-node-1"));
        assert!(p.is_controller("system:apiserver"));
        assert!(!p.is_controller("admin"));
        assert!(!p.is_controller("system:kube-scheduler-impostor"));
        assert!(!p.is_automation("system:serviceaccount:kube-system:deployment-controller"));
    }

    #[test]
    fn every_other_service_account_is_automation_and_added_patterns_keep_the_defaults() {
        let p = ControllerPatterns::default();
        for sa in
            ["system:serviceaccount:ci:deployer", "system:serviceaccount:openshift-operator-lifecycle-manager:olm"]
        {
            assert!(p.is_controller(sa) && p.is_automation(sa), "{sa}");
        }
        let added = ControllerPatterns::with_defaults(vec!["ci-bot".into()]);
        assert!(added.is_controller("ci-bot") && !added.is_automation("ci-bot"));
        assert!(added.is_controller("system:kube-scheduler"), "added patterns keep the defaults");
        let only = ControllerPatterns::new(vec!["ci-bot".into()]);
        assert!(
            !only.is_controller("system:kube-scheduler") && !only.is_controller("system:serviceaccount:ci:deployer")
        );
    }

    #[test]
    fn actor_names_read_as_who_acted() {
        assert_eq!(actor_name("system:serviceaccount:kube-system:replicaset-controller"), "replicaset-controller");
        assert_eq!(actor_name("system:kube-scheduler"), "kube-scheduler");
        assert_eq!(actor_name("system:node:fake-node-1"), "kubelet");
        assert_eq!(actor_name("system:serviceaccount:ci:deployer"), "ci/deployer");
        assert_eq!(actor_name("admin"), "admin");
    }

    #[test]
    fn reporters_map_to_their_audit_users() {
        let sched = ReporterUsers::for_reporter("default-scheduler", None);
        assert!(sched.matches("system:kube-scheduler"));
        assert_eq!(sched.actor(), "kube-scheduler");

        let deploy = ReporterUsers::for_reporter("deployment-controller", None);
        assert!(deploy.matches("system:serviceaccount:kube-system:deployment-controller"));
        assert!(deploy.matches("system:kube-controller-manager"));
        assert!(!deploy.matches("system:serviceaccount:kube-system:replicaset-controller"));

        let ds = ReporterUsers::for_reporter("daemonset-controller", None);
        assert!(ds.matches("system:serviceaccount:kube-system:daemon-set-controller"));
        assert!(!ds.matches("system:serviceaccount:kube-system:daemonset-controller"));
        assert_eq!(ds.actor(), "daemon-set-controller");

        let kubelet = ReporterUsers::for_reporter("kubelet", Some("node-a"));
        assert!(kubelet.matches("system:node:node-a"));
        assert!(!kubelet.matches("system:node:node-b"));
    }

    /// Every controller the coverage table promises, by its Event source, with
    /// the service account the 1.20 controller manager gives it.
    #[test]
    fn every_covered_controller_maps_its_event_source_to_its_audit_user() {
        let expected = [
            ("deployment-controller", "deployment-controller"),
            ("replicaset-controller", "replicaset-controller"),
            ("statefulset-controller", "statefulset-controller"),
            ("daemonset-controller", "daemon-set-controller"),
            ("job-controller", "job-controller"),
            ("cronjob-controller", "cronjob-controller"),
            ("endpoint-controller", "endpoint-controller"),
            ("endpoint-slice-controller", "endpointslice-controller"),
            ("node-controller", "node-controller"),
            ("taint-controller", "node-controller"),
            ("garbage-collector-controller", "generic-garbage-collector"),
            ("persistentvolume-controller", "persistent-volume-binder"),
            ("attachdetach-controller", "attachdetach-controller"),
            ("horizontal-pod-autoscaler", "horizontal-pod-autoscaler"),
        ];
        for (source, sa) in expected {
            let reporter = ReporterUsers::for_reporter(source, None);
            assert_eq!(
                reporter,
                ReporterUsers::ControllerManager {
                    service_account: controller_for_service_account(sa).unwrap().service_account.into()
                },
                "{source}"
            );
            assert!(reporter.matches(&format!("system:serviceaccount:kube-system:{sa}")), "{source} writes as {sa}");
            assert!(reporter.matches("system:kube-controller-manager"), "{source} under shared credentials");
            assert_eq!(reporter.actor(), actor_name(&format!("system:serviceaccount:kube-system:{sa}")));
        }
        // The pod garbage collector records no Events but is known by its writes.
        assert!(controller_for_service_account("pod-garbage-collector").is_some());
        // Each service account and each Event source appears once.
        let mut sas: Vec<_> = CONTROLLER_IDENTITIES.iter().map(|c| c.service_account).collect();
        sas.sort();
        sas.dedup();
        assert_eq!(sas.len(), CONTROLLER_IDENTITIES.len());
        let mut sources: Vec<_> = CONTROLLER_IDENTITIES.iter().flat_map(|c| c.event_sources.iter()).collect();
        let n = sources.len();
        sources.sort();
        sources.dedup();
        assert_eq!(sources.len(), n);
    }

    #[test]
    fn shared_credentials_are_told_apart_by_user_agent() {
        // What SimpleControllerClientBuilder sends (client-go's AddUserAgent with the controller's name).
        let ua = "kube-controller-manager/v1.20.2 (linux/amd64) kubernetes/faecb19/daemon-set-controller";
        let acting = acting_user("system:kube-controller-manager", Some(ua));
        assert_eq!(acting, "system:kube-controller-manager/daemon-set-controller");
        assert_eq!(actor_name(&acting), "daemon-set-controller");
        let ds = ReporterUsers::for_reporter("daemonset-controller", None);
        let deploy = ReporterUsers::for_reporter("deployment-controller", None);
        assert!(ds.matches(&acting));
        assert!(!deploy.matches(&acting), "another controller's write under the same credentials");
        // The service-account form (what the e2e control plane sends) and unknown names change nothing.
        let sa_ua = "kube-controller-manager/v1.20.2 (linux/amd64) kubernetes/faecb19/system:serviceaccount:kube-system:job-controller";
        assert_eq!(
            acting_user("system:serviceaccount:kube-system:job-controller", Some(sa_ua)),
            "system:serviceaccount:kube-system:job-controller"
        );
        let own = "kube-controller-manager/v1.20.0+bd9e442 (linux/amd64) kubernetes/bd9e442/kube-controller-manager";
        assert_eq!(acting_user("system:kube-controller-manager", Some(own)), "system:kube-controller-manager");
        assert_eq!(acting_user("system:kube-controller-manager", None), "system:kube-controller-manager");
        assert_eq!(acting_user("admin", Some(ua)), "admin");
    }
}
