//! Scenarios: a cluster shape plus a workload, each a function from a seed's runtime to a
//! [`ScenarioOutcome`](crate::report::ScenarioOutcome).

pub mod deploy_nginx;
pub mod store_smoke;

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Scenario {
    /// The default: the whole control plane runs `kubectl create deployment
    /// nginx-deployment --replicas=3`, then scales it to 5.
    DeployNginx,
    /// Three store members, a client workload, one leader crash.
    StoreSmoke,
}

/// A scenario was asked to run faults it cannot judge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{scenario} does not support the fault kind {kind}: {reason}; use --scenario deploy-nginx or leave {kind} out")]
pub struct UnsupportedFault {
    pub scenario: Scenario,
    pub kind: faults::FaultKind,
    pub reason: &'static str,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::DeployNginx, Scenario::StoreSmoke];

    /// Whether the scenario can run and judge faults of `kind`, and why not. store-smoke
    /// checks its members against the addresses they started with and its acknowledged
    /// writes against the one store they went to: it follows no member replacement and no
    /// restore, so the kinds that wipe disks (and the snapshot corruption that only
    /// matters to a restore) would be reported as violations of the store when they are
    /// the scenario's own blind spot. deploy-nginx follows the operator through both.
    pub fn supports(self, kind: faults::FaultKind) -> Result<(), UnsupportedFault> {
        match self {
            Scenario::StoreSmoke if kind.loses_disks() => Err(UnsupportedFault {
                scenario: self,
                kind,
                reason: "it does not follow the operator's member replacements and restores",
            }),
            _ => Ok(()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::DeployNginx => "deploy-nginx",
            Scenario::StoreSmoke => "store-smoke",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that names no scenario.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario '{0}' (known: {known})", known = Scenario::ALL.map(Scenario::name).join(", "))]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL.into_iter().find(|sc| sc.name() == s).ok_or_else(|| UnknownScenario(s.to_string()))
    }
}
