//! `faults`: kubesim's fault model and nemesis.
//!
//! It holds
//! - [`plan`]: [`FaultPlan`], the versioned JSON data describing which faults hit a seed
//!   and when (design §3), with validation against a [`Topology`];
//! - [`kinds`]: [`FaultKind`], the menu `kubesim campaign --faults KINDS` chooses from;
//! - [`generate`]: swarm generation of a plan from a seed alone (TigerBeetle VOPR-style),
//!   outside the simulation;
//! - [`strategies`]: proptest strategies producing valid plans that shrink well;
//! - [`nemesis`]: [`run`], which applies a plan in simulated time to a [`World`].
//!
//! Architecture invariants:
//! - `faults` knows nothing of the system under test: it does not depend on `store`,
//!   `apiserver`, `controllers` or `sim`, and reaches the cluster only through the
//!   [`World`] trait, which `sim` implements.
//! - Nothing in the system under test reads this crate: faults are done *to* the system,
//!   never announced to it.
//! - Plans are a pure function of their seed (ChaCha, never madsim's RNG); the nemesis
//!   takes time only from madsim and iterates only ordered collections.

pub mod generate;
pub mod kinds;
pub mod nemesis;
pub mod plan;
pub mod strategies;

pub use generate::{generate, GenerateOptions};
pub use kinds::{FaultKind, FaultKindError};
pub use nemesis::{bridge, majorities_ring, run, Grudge, Nemesis, NodeRef, SharedWorld, World};
pub use plan::{
    ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, PlanError, Target, TargetParseError, Topology, MAX_CHASE_STEPS,
    MAX_FAILPOINT_RESTART_MS, MAX_LIVENESS_PHASE_MS, MAX_PLAN_FILE_BYTES, MAX_SAFETY_PHASE_MS, MIN_LIVENESS_PHASE_MS,
    PLAN_VERSION,
};
