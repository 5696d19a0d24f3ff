//! kubesim's harness: builds the simulated world on madsim nodes (the store cluster, the
//! control plane, the operator, the nemesis's [`world`]), runs a scenario's workload,
//! records the history ([`recorder`]) and runs one seed to its report ([`runner`]). The
//! judgement of a run is the `verdict` crate's; the command line is the `kubesim` crate's.
//!
//! The simulated system never reads anything from here back: the recorder only listens,
//! checkers only read the finished history.
//!
//! The modules depend in one direction: the [`runner`] on the [`scenario`]s, the scenarios
//! on the infrastructure (the [`world`], the control plane, the store cluster, the
//! operator, the store's [`membership`], the seed's [`nodes`] and the [`addresses`]),
//! never back (ARCHITECTURE.md; `tests/tests/architecture.rs` checks it).

pub mod addresses;
pub mod bugs;
pub mod cancel;
pub mod cluster;
pub mod control_plane;
pub mod knobs;
pub mod membership;
pub mod nodes;
pub mod operator;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod store_traffic;
pub mod strategies;
pub mod workload;
pub mod world;

// The judgement of a run lives in the `verdict` crate, free of the simulator; re-exported
// here so that the harness and its users name it where they name the rest.
pub use verdict::{checkers, history};
