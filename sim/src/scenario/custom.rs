//! Scenarios a user writes: their own custom resources, their own controllers (operators)
//! with their own credentials, their own workload and their own invariants, run on
//! kubesim's control plane under kubesim's faults, and judged by kubesim's checkers and
//! theirs.
//!
//! A user implements [`CustomScenario`] and registers it ([`register`]) before handing
//! control to kubesim's command line (`kubesim::main`) or to the test entry point
//! (`kubesim::testing`). From then on the scenario is a name like `deploy-nginx`:
//! `kubesim run --scenario NAME --seed N`, `campaign`, `shrink`, `corpus` and `merge` work
//! on it unchanged, and its invariants are judged and named like the built-in ones.
//!
//! What a seed of a custom scenario runs:
//! 1. the control plane of the default scenario (store members, apiservers,
//!    controller-managers, scheduler, kubelets), shaped by the seed's knobs, with the
//!    scenario's [`CustomScenario::configure`] applied: custom resource definitions the
//!    apiservers serve, users they authenticate, and [`Operator`]s;
//! 2. each operator's replicas, replica `r` on worker machine `kubelet-r` (an operator is
//!    deployed as pods on worker nodes): a crash, pause, partition or clock skew of that
//!    machine hits the replica too;
//! 3. the scenario's [`CustomScenario::workload`] as the cluster admin (kubectl), while the
//!    nemesis works through the seed's fault plan; the seed ends when the workload returns
//!    (it should outlast the plan's liveness phase, see [`Session::phases`]);
//! 4. every built-in checker, then the scenario's own ([`CustomScenario::checkers`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::ApiClient;
use futures::future::BoxFuture;
use verdict::checkers::{Checker, Invariant};

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
pub use crate::control_plane::{Operator, OperatorProcess};
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::ScenarioOutcome;
use crate::world::SimWorld;
use faults::{FaultKind, FaultPlan};

/// A user's scenario. See the [module documentation](self).
///
/// Everything it does must be a function of the seed: randomness from `madsim::rand`,
/// time from `madsim::time` or the node's [`Clock`](api::Clock), `BTreeMap` where order matters.
pub trait CustomScenario: Send + Sync + 'static {
    /// Its name on the command line and in reports: lower-case kebab-case, not a built-in
    /// scenario's.
    fn name(&self) -> &'static str;

    /// One line saying what it runs (for `--help` and the scenario list).
    fn about(&self) -> &'static str;

    /// Adds what the scenario brings to the control plane: custom resources
    /// ([`ControlPlaneOptions::custom_resources`]), users ([`ControlPlaneOptions::users`])
    /// and operators ([`ControlPlaneOptions::operators`]). The cluster's shape (members,
    /// kubelets) comes from the command line and the seed's knobs.
    fn configure(&self, cluster: &mut ControlPlaneOptions);

    /// What the cluster's admin does, as kubectl would: apply the operator's RBAC objects,
    /// create the custom objects, change them. Returns when the scenario is over.
    fn workload(&self, session: Session) -> BoxFuture<'static, ()>;

    /// The scenario's own invariants, judged after every built-in one.
    fn checkers(&self) -> Vec<Arc<dyn Checker>> {
        Vec::new()
    }

    /// Whether the scenario can run and judge faults of `kind`; `Err` says why not.
    fn supports(&self, kind: FaultKind) -> Result<(), &'static str> {
        let _ = kind;
        Ok(())
    }
}

/// What the workload gets: the admin's client, the seed's phases, and a way to say what
/// it is doing in the timeline.
pub struct Session {
    /// A client with the cluster admin's credential (user `admin`, group
    /// `system:masters`), on its own node.
    pub kubectl: ApiClient,
    recorder: Recorder,
    phases: Option<Phases>,
    apiservers: Vec<std::net::SocketAddr>,
}

/// When the seed's faults happen: during the safety phase, from the start; then every
/// fault is healed and the liveness phase gives the cluster time to converge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    pub safety: Duration,
    pub liveness: Duration,
}

impl Session {
    /// The seed's fault phases; `None` when it runs without faults.
    pub fn phases(&self) -> Option<Phases> {
        self.phases
    }

    /// How long the workload should go on so that the seed covers every fault and the
    /// convergence after them: the safety and liveness phases, or `without_faults` when
    /// the seed runs none.
    pub fn run_for(&self, without_faults: Duration) -> Duration {
        self.phases.map_or(without_faults, |p| p.safety + p.liveness)
    }

    /// A line in the seed's timeline (a user action: "kubectl apply -f database.yaml").
    pub fn note(&self, text: impl Into<String>) {
        self.recorder.note(text);
    }

    /// A client authenticated as `user` (one of [`ControlPlaneOptions::users`] or an
    /// operator's user), on the workload's node: to try what that user may do. Its
    /// requests are recorded under the client name `as:USER`.
    ///
    /// # Panics
    /// If the client's endpoint cannot be bound (the simulated node is gone).
    pub async fn client_as(&self, user: &str) -> ApiClient {
        let credential = crate::control_plane::credential(user);
        let observer = crate::control_plane::api_observer(&format!("as:{user}"), &self.recorder);
        ApiClient::connect(self.apiservers.clone(), credential, api::ClientConfig::default(), observer)
            .await
            .expect("bind a client endpoint")
    }
}

/// The scenarios registered in this process, by name.
static REGISTRY: RwLock<BTreeMap<&'static str, Arc<dyn CustomScenario>>> = RwLock::new(BTreeMap::new());

/// Why a scenario could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("scenario '{0}': a name is lower-case kebab-case (a-z, 0-9, '-')")]
    BadName(&'static str),
    #[error("scenario '{0}' is one of kubesim's own")]
    BuiltIn(&'static str),
    #[error("a different scenario is already registered as '{0}'")]
    Taken(&'static str),
    #[error(transparent)]
    Invariant(#[from] verdict::checkers::InvariantNameError),
}

/// Registers `scenario` for this process, with its checkers' invariants. Registering the
/// same scenario (the same name) again does nothing, so a test may call it each time.
pub fn register(scenario: impl CustomScenario) -> Result<(), RegisterError> {
    let name = scenario.name();
    let well_formed = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !well_formed {
        return Err(RegisterError::BadName(name));
    }
    if super::Scenario::BUILT_IN.iter().any(|s| s.name() == name) {
        return Err(RegisterError::BuiltIn(name));
    }
    for checker in scenario.checkers() {
        if let Invariant::Custom(custom) = checker.invariant() {
            custom.declare().map_err(RegisterError::Invariant)?;
        }
    }
    let mut registry = REGISTRY.write().expect("scenario registry");
    match registry.get(name) {
        Some(existing) if existing.about() != scenario.about() => Err(RegisterError::Taken(name)),
        Some(_) => Ok(()),
        None => {
            registry.insert(name, Arc::new(scenario));
            Ok(())
        }
    }
}

/// The registered scenario called `name`.
pub fn lookup(name: &str) -> Option<Arc<dyn CustomScenario>> {
    REGISTRY.read().expect("scenario registry").get(name).cloned()
}

/// Every registered scenario, by name.
pub fn registered() -> Vec<Arc<dyn CustomScenario>> {
    REGISTRY.read().expect("scenario registry").values().cloned().collect()
}

/// Runs one seed of `scenario` (see the module documentation).
pub(crate) async fn run(
    scenario: Arc<dyn CustomScenario>,
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    scenario.configure(&mut options);
    let traffic_ms = plan.as_ref().map_or(20_000, |p| p.safety_phase_ms);
    options.store_traffic_until.get_or_insert(Duration::from_millis(traffic_ms));
    let plane = ControlPlane::start(&options, &recorder, nodes);
    let (kubectl_node, kubectl) = plane.kubectl(&recorder).await;
    let phases = plan.as_ref().map(|plan| Phases {
        safety: Duration::from_millis(plan.safety_phase_ms),
        liveness: Duration::from_millis(plan.liveness_phase_ms),
    });
    let session = Session { kubectl, recorder: recorder.clone(), phases, apiservers: plane.apiserver_addrs.clone() };
    let workload = kubectl_node.spawn(scenario.workload(session));
    if let Some(plan) = plan {
        faults::run(&plan, SimWorld::for_control_plane(&plane, &recorder)).await;
    }
    workload.await.expect("the scenario's workload");
    let store_endpoints = plane.store.endpoints().lock().expect("endpoints lock").clone();
    // The workload's notes, the faults and the operator's recoveries: a user's scenario
    // has no stages of its own to show.
    let timeline = recorder.with_records(|records| {
        records
            .iter()
            .filter_map(|record| {
                super::control_plane_line(&record.event).map(|text| super::timeline_entry(record.at_ns, &text))
            })
            .collect()
    });
    ScenarioOutcome { timeline, checks: Vec::new(), stats: Default::default(), store_endpoints }
}
