//! kubesim's command line and what it does with finished runs: `run`, `campaign` (with
//! shards and its guard against panics and overruns), `merge`, `shrink`, `corpus`,
//! `bench`, `bugs`, and the reports — the explanation of a failure, the HTML page, JUnit,
//! failure signatures and the history export. The `kubesim` binary (src/main.rs) parses
//! and maps errors to exit codes; the harness that runs a seed is the `sim` crate, the
//! judgement the `verdict` crate.

pub mod bench;
pub mod campaign;
pub mod cli;
pub mod cli_regress;
pub mod corpus;
pub mod determinism;
pub mod explain;
pub mod export;
pub mod html;
pub mod junit;
pub mod merge;
pub mod shrink;
pub mod signature;
