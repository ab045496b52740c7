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
}

impl LinkingArgs {
    /// The core's settings these flags decide; the rest stay at their defaults.
    pub fn core_config(&self) -> CoreConfig {
        let mut core = CoreConfig { window: time::from_duration(self.window), ..CoreConfig::default() };
        core.controllers = if self.no_default_controller_users {
            ControllerPatterns::new(self.controller_users.clone())
        } else {
            ControllerPatterns::with_defaults(self.controller_users.clone())
        };
        core
    }

    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions { keep_leader_election: self.keep_leader_election, ..DecodeOptions::default() }
    }
}
