//! What the user asks of the control plane in `deploy-nginx`: a deployment's replicas at
//! creation and after the scale. It is part of the cluster's options
//! (`ControlPlaneOptions::workload`), so that a corpus case or a property test can draw
//! another; the scenario (`crate::scenario::deploy_nginx`) plays it out.

/// The most store members a cluster may have (the address plan and the nemesis's
/// targets are sized for it); `Knobs::MAX_MEMBERS` is this.
pub const MAX_STORE_MEMBERS: usize = 7;

/// The replicas `kubectl create deployment` asks for in the scenario's documented flow.
pub const INITIAL_REPLICAS: i32 = 3;
/// The replicas `kubectl scale` asks for in the scenario's documented flow.
pub const SCALED_REPLICAS: i32 = 5;

/// What the user asks of the cluster: create the deployment with `initial_replicas`, then
/// scale it to `scaled_replicas`. The default is the scenario's documented flow (3, then
/// 5); property tests draw others (`sim::strategies::workload_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub initial_replicas: i32,
    pub scaled_replicas: i32,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { initial_replicas: INITIAL_REPLICAS, scaled_replicas: SCALED_REPLICAS }
    }
}

/// The size of the simulated cluster a user asks for (`kubesim --kubelets N --replicas N
/// --store-members N`), over the defaults (3 kubelets, 3 then 5 replicas) and over the
/// store size the seed draws. Each field left `None` keeps what it overrides.
///
/// ```
/// use sim::workload::Shape;
/// let shape = Shape { kubelets: Some(30), replicas: Some(100), store_members: None };
/// assert!(shape.validate().is_ok());
/// // 1000 nginx pods of 100 millicores need 25 kubelets of 4 CPUs.
/// let crowded = Shape { kubelets: Some(3), replicas: Some(1000), store_members: None };
/// assert!(crowded.validate().unwrap_err().to_string().contains("at least 25 kubelets"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Worker nodes, each a kubelet with [`Shape::KUBELET_CPU_MILLIS`] to give pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelets: Option<u32>,
    /// The replicas `kubectl scale` asks for; `kubectl create` asks for the lesser of
    /// this and [`INITIAL_REPLICAS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Store members, instead of the 3 or 5 the seed draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_members: Option<usize>,
}

/// A cluster shape no run could use, with the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("--kubelets {0}: expected 1 to {max}", max = Shape::MAX_KUBELETS)]
    Kubelets(u32),
    #[error("--replicas {0}: expected at least 1")]
    Replicas(i32),
    #[error("--store-members {0}: expected 1 to {max}", max = MAX_STORE_MEMBERS)]
    StoreMembers(usize),
    #[error(
        "--replicas {replicas} needs at least {needed} kubelets (each has {cpu} millicores, a pod asks {pod}), \
         not {kubelets}: the rest would stay Pending and never converge"
    )]
    NoRoom { replicas: i32, kubelets: u32, needed: u32, cpu: u32, pod: u32 },
}

impl Shape {
    /// The most kubelets a run may have (the address plan has room for more).
    pub const MAX_KUBELETS: u32 = 1000;
    /// What each kubelet offers pods (`controllers::kubelet::KubeletConfig`'s default).
    pub const KUBELET_CPU_MILLIS: u32 = 4_000;
    /// What each nginx pod of the scenario asks for.
    pub const POD_CPU_MILLIS: u32 = 100;

    /// Whether any field is set.
    pub fn is_default(&self) -> bool {
        *self == Shape::default()
    }

    /// Refuses a shape no run could use: out of range, or more pods than the kubelets
    /// have room for.
    pub fn validate(&self) -> Result<(), ShapeError> {
        if let Some(kubelets) = self.kubelets.filter(|k| !(1..=Self::MAX_KUBELETS).contains(k)) {
            return Err(ShapeError::Kubelets(kubelets));
        }
        if let Some(replicas) = self.replicas.filter(|r| *r < 1) {
            return Err(ShapeError::Replicas(replicas));
        }
        if let Some(members) = self.store_members.filter(|m| !(1..=MAX_STORE_MEMBERS).contains(m)) {
            return Err(ShapeError::StoreMembers(members));
        }
        let kubelets = self.kubelets.unwrap_or(3);
        let replicas = self.replicas.unwrap_or(SCALED_REPLICAS);
        let per_kubelet = Self::KUBELET_CPU_MILLIS / Self::POD_CPU_MILLIS;
        let needed = (replicas as u32).div_ceil(per_kubelet);
        if needed > kubelets {
            return Err(ShapeError::NoRoom {
                replicas,
                kubelets,
                needed,
                cpu: Self::KUBELET_CPU_MILLIS,
                pod: Self::POD_CPU_MILLIS,
            });
        }
        Ok(())
    }
}
