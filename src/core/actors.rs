//! Who acted: recognising controllers, naming actors, and mapping an Event's
//! reporting component to the audit users that component writes as.

/// Users whose writes are controllers' writes, not intents. A pattern is an
/// exact user name or a prefix ending in `*`.
#[derive(Debug, Clone)]
pub struct ControllerPatterns {
    patterns: Vec<String>,
}

/// The default controller users: the control plane's own identities.
pub const DEFAULT_CONTROLLER_PATTERNS: &[&str] = &[
    "system:serviceaccount:kube-system:*",
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:node:*",
    "system:apiserver",
];

impl Default for ControllerPatterns {
    fn default() -> Self {
        ControllerPatterns::new(DEFAULT_CONTROLLER_PATTERNS.iter().map(|s| s.to_string()).collect())
    }
}

impl ControllerPatterns {
    pub fn new(patterns: Vec<String>) -> Self {
        ControllerPatterns { patterns }
    }

    pub fn is_controller(&self, user: &str) -> bool {
        self.patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => user.starts_with(prefix),
            None => user == p,
        })
    }
}

const SA_KUBE_SYSTEM: &str = "system:serviceaccount:kube-system:";

/// The short name of an actor, used as `service.name` so that Jaeger's service
/// list reads as "who acted".
pub fn actor_name(user: &str) -> String {
    if let Some(sa) = user.strip_prefix(SA_KUBE_SYSTEM) {
        return sa.to_owned();
    }
    if let Some(rest) = user.strip_prefix("system:serviceaccount:") {
        return rest.replacen(':', "/", 1);
    }
    if user.starts_with("system:node:") {
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

/// Event reporting components whose service account is named differently.
const REPORTER_SERVICE_ACCOUNTS: &[(&str, &str)] = &[
    ("daemonset-controller", "daemon-set-controller"),
    ("persistentvolume-controller", "persistent-volume-binder"),
    ("garbage-collector-controller", "generic-garbage-collector"),
    ("statefulset-controller", "statefulset-controller"),
];

/// The service account a kube-controller-manager Event reporter writes as.
pub fn reporter_service_account(reporter: &str) -> &str {
    REPORTER_SERVICE_ACCOUNTS
        .iter()
        .find(|(r, _)| *r == reporter)
        .map_or(reporter, |(_, sa)| sa)
}

/// Which audit users count as the Event's reporter C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReporterUsers {
    Scheduler,
    Kubelet { node: Option<String> },
    /// A kube-controller-manager component: its own service account, or the
    /// shared `system:kube-controller-manager` identity.
    ControllerManager { service_account_user: String },
    /// Anything else: its name is taken as the user name itself.
    Other(String),
}

impl ReporterUsers {
    pub fn for_reporter(reporter: &str, host: Option<&str>) -> ReporterUsers {
        match reporter {
            "default-scheduler" | "kube-scheduler" => ReporterUsers::Scheduler,
            "kubelet" => ReporterUsers::Kubelet { node: host.map(|h| h.to_owned()) },
            r if r.ends_with("-controller") || r.contains("garbage-collector") || r == "node-lifecycle-controller" => {
                ReporterUsers::ControllerManager {
                    service_account_user: format!("{SA_KUBE_SYSTEM}{}", reporter_service_account(r)),
                }
            }
            other => ReporterUsers::Other(other.to_owned()),
        }
    }

    pub fn matches(&self, user: &str) -> bool {
        match self {
            ReporterUsers::Scheduler => user == "system:kube-scheduler",
            ReporterUsers::Kubelet { node: Some(n) } => user.strip_prefix("system:node:") == Some(n.as_str()),
            ReporterUsers::Kubelet { node: None } => user.starts_with("system:node:"),
            ReporterUsers::ControllerManager { service_account_user } => {
                user == service_account_user || user == "system:kube-controller-manager"
            }
            ReporterUsers::Other(name) => user == name,
        }
    }

    /// The actor name of the reporter, consistent with [`actor_name`] of its writes.
    pub fn actor(&self) -> String {
        match self {
            ReporterUsers::Scheduler => "kube-scheduler".to_owned(),
            ReporterUsers::Kubelet { .. } => "kubelet".to_owned(),
            ReporterUsers::ControllerManager { service_account_user } => actor_name(service_account_user),
            ReporterUsers::Other(name) => name.clone(),
        }
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
        assert!(!p.is_controller("system:serviceaccount:ci:deployer"));
        assert!(!p.is_controller("system:kube-scheduler-impostor"));
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

        let kubelet = ReporterUsers::for_reporter("kubelet", Some("node-a"));
        assert!(kubelet.matches("system:node:node-a"));
        assert!(!kubelet.matches("system:node:node-b"));
    }
}
