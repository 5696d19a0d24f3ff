//! kubesim's simulation layer: builds the simulated cluster on madsim nodes, runs a
//! scenario's workload, records the history, checks it, and reports. The `kubesim` binary
//! (src/main.rs) is its command line.
//!
//! The simulated system never reads anything from here back: the recorder only listens,
//! checkers only read the finished history.

pub mod bench;
pub mod bugs;
pub mod campaign;
pub mod cancel;
pub mod cli;
pub mod cli_regress;
pub mod cluster;
pub mod control_plane;
pub mod corpus;
pub mod determinism;
pub mod explain;
pub mod export;
pub mod html;
pub mod junit;
pub mod knobs;
pub mod merge;
pub mod operator;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod signature;
pub mod strategies;
pub mod world;

// The judgement of a run lives in the `verdict` crate, free of the simulator; re-exported
// here so that the harness and its users name it where they name the rest.
pub use verdict::{checkers, history};
