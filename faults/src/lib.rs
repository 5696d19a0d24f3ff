//! `faults`: kubesim's fault model and nemesis.
//!
//! It holds
//! - [`plan`]: [`FaultPlan`], the versioned JSON data describing which faults hit a seed,
//!   when, and every choice the nemesis makes applying them (docs/design.md §3), with
//!   validation against a [`Topology`]; [`PlanFile`] reads both format versions;
//! - [`actions`]: the generated workload, the users' actions a plan carries beside its
//!   faults ([`actions::UserAction`]), drawn per seed from a menu of groups;
//! - [`kinds`]: [`FaultKind`], the menu `kubesim campaign --faults KINDS` chooses from;
//! - [`generate`](mod@generate): swarm generation of a plan from a seed alone (TigerBeetle VOPR-style),
//!   outside the simulation;
//! - [`strategies`]: proptest strategies producing valid plans that shrink well;
//! - [`nemesis`]: [`Nemesis`], a sans-IO state machine that turns a plan, time and
//!   reached failpoints into calls on a [`World`], and [`run`], its driver in simulated
//!   time.
//!
//! Architecture invariants:
//! - `faults` knows nothing of the system under test: it does not depend on `store`,
//!   `apiserver`, `controllers` or `sim`, and reaches the cluster only through the
//!   [`World`] trait, which `sim` implements.
//! - Nothing in the system under test reads this crate: faults are done *to* the system,
//!   never announced to it.
//! - Plans are a pure function of their seed (ChaCha, never madsim's RNG); the nemesis
//!   draws no random number at all, takes time only from madsim (in its driver) and
//!   iterates only ordered collections.

pub mod actions;
pub mod generate;
pub mod kinds;
pub mod menus;
pub mod nemesis;
pub mod plan;
pub mod seed;
pub mod strategies;

pub use generate::{generate, GenerateOptions};
pub use kinds::{FaultKind, FaultKindError};
pub use nemesis::{
    bridge, majorities_ring, perform, run, Call, Grudge, Nemesis, NodeRef, Reached, Refused, Reported, SharedWorld,
    View, World,
};
pub use plan::{
    BitFlip, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, InvalidFault, PlanError, PlanFile, Slot, Target,
    TargetParseError, Tear, Topology, Unsurvivable, MAX_CHASE_STEPS, MAX_FAILPOINT_RESTART_MS, MAX_LIVENESS_PHASE_MS,
    MAX_PLAN_FILE_BYTES, MAX_SAFETY_PHASE_MS, MIN_LIVENESS_PHASE_MS, PLAN_VERSION, PPM,
};
pub use seed::SeedStreams;
