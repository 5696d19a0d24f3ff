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

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::DeployNginx, Scenario::StoreSmoke];

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

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL.into_iter().find(|sc| sc.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            format!("unknown scenario '{s}' (known: {})", names.join(", "))
        })
    }
}
