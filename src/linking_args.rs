//! The flags `replay` and `serve` share: how records are linked.

use std::time::Duration;

use crate::core::CoreConfig;
use crate::core::actors::ControllerPatterns;
use crate::core::time;
use crate::decode::DecodeOptions;

/// Flattened into both commands, so each flag has one name, one environment
/// variable and one delimiter behaviour everywhere.
#[derive(clap::Args, Debug, Clone)]
pub struct LinkingArgs {
    /// How far back a trigger may be and still cause a controller's write.
    #[arg(long, env = "KAUSAL_WINDOW", default_value = "30s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// More user patterns whose writes are controllers' (exact, or a prefix
    /// ending in `*`), added to the defaults. Repeatable or comma-separated.
    #[arg(long = "controller-user", env = "KAUSAL_CONTROLLER_USER", value_name = "PATTERN", value_delimiter = ',')]
    pub controller_users: Vec<String>,
    /// Drop the default patterns (the control plane's identities, and every
    /// other service account as automation): only `--controller-user` counts.
    #[arg(long, env = "KAUSAL_NO_DEFAULT_CONTROLLER_USERS")]
    pub no_default_controller_users: bool,
    /// Keep Lease and leader-election writes (dropped by default as heartbeat noise).
    #[arg(long, env = "KAUSAL_KEEP_LEADER_ELECTION")]
    pub keep_leader_election: bool,
    /// Annotations that carry a trace context, in order (the first present
    /// wins), each read as W3C traceparent, Tekton's JSON, Jaeger's
    /// uber-trace-id or KEP-650's base64 binary. Replaces the default list.
    #[arg(
        long = "trace-context-annotation",
        env = "KAUSAL_TRACE_CONTEXT_ANNOTATION",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub trace_context_annotations: Vec<String>,
    /// Make the span a trace-context annotation names the intent's parent
    /// (the rollout appears inside the CI run's trace) instead of a link.
    #[arg(long, env = "KAUSAL_ADOPT_TRACE_CONTEXT")]
    pub adopt_trace_context: bool,
}

impl LinkingArgs {
    /// The core's settings these flags decide; the rest stay at their defaults.
    pub fn core_config(&self) -> CoreConfig {
        let mut core = CoreConfig {
            window: time::from_duration(self.window),
            adopt_trace_context: self.adopt_trace_context,
            ..CoreConfig::default()
        };
        core.controllers = if self.no_default_controller_users {
            ControllerPatterns::new(self.controller_users.clone())
        } else {
            ControllerPatterns::with_defaults(self.controller_users.clone())
        };
        core
    }

    pub fn decode_options(&self) -> DecodeOptions {
        // Leaked once per process (the options are `Copy` and live as long).
        let keys: Option<&'static [&'static str]> = (!self.trace_context_annotations.is_empty()).then(|| {
            let keys: Vec<&'static str> =
                self.trace_context_annotations.iter().map(|k| &*Box::leak(k.clone().into_boxed_str())).collect();
            &*Box::leak(keys.into_boxed_slice())
        });
        DecodeOptions {
            keep_leader_election: self.keep_leader_election,
            trace_context_keys: keys,
            ..DecodeOptions::default()
        }
    }
}
