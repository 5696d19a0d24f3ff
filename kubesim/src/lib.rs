//! kubesim's command line and what it does with finished runs: `run`, `campaign` (with
//! shards and its guard against panics and overruns), `merge`, `shrink`, `corpus`,
//! `bench`, `bugs`, and the reports — the explanation of a failure, the HTML page, JUnit,
//! failure signatures and the history export. The `kubesim` binary (src/main.rs) parses
//! and maps errors to exit codes; the harness that runs a seed is the `sim` crate, the
//! judgement the `verdict` crate.
//!
//! For a user's own scenarios (see `sim::scenario::custom`): [`main`] is the whole command
//! line, to call from the user's own binary once their scenarios are registered, and
//! [`testing`] runs seeds from `cargo test`.

/// The crates a user's scenario is written with, re-exported so that depending on
/// `kubesim` (and `madsim` for time and randomness) is enough: `api` (objects, custom
/// resources, RBAC objects, the client), `controllers` (informers, work queues, leader
/// election, the controller runtime), `sim` (scenarios, the control plane's options),
/// `verdict` (the history, checkers, outcomes), `faults` (fault kinds and plans), and
/// `apiserver` (its `UserInfo`), `madsim` (simulated time and randomness) and `futures`.
pub use {api, apiserver, controllers, faults, futures, madsim, sim, verdict};

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
pub mod testing;

use std::process::ExitCode;

/// The `kubesim` command line, parsed from this process's arguments, run, and its exit
/// code (0 pass, 1 violation, 2 bad input, 3 internal error; see [`cli`]). A user's binary
/// registers its scenarios first, then hands over:
///
/// ```no_run
/// # struct Database;
/// # impl sim::scenario::CustomScenario for Database {
/// #     fn name(&self) -> &'static str { "database" }
/// #     fn about(&self) -> &'static str { "" }
/// #     fn configure(&self, _: &mut sim::control_plane::ControlPlaneOptions) {}
/// #     fn workload(&self, _: sim::scenario::custom::Session) -> futures::future::BoxFuture<'static, ()> {
/// #         Box::pin(async {})
/// #     }
/// # }
/// fn main() -> std::process::ExitCode {
///     sim::scenario::register(Database).expect("register the scenario");
///     kubesim::main()
/// }
/// ```
/// after which `my-kubesim run --scenario database --seed 7`, `campaign`, `shrink`,
/// `corpus` and `merge` work on it as on the built-in scenarios.
pub fn main() -> ExitCode {
    use clap::Parser;
    if let Some(argv0) = std::env::args_os().next() {
        cli::set_program_from(&argv0);
    }
    // A seed that reaches its simulated-time limit ends through madsim's panic, an expected
    // outcome reported as `time-limit`: keep it off the terminal, and every other panic on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !sim::runner::is_time_limit_panic(info.payload()) {
            default_hook(info);
        }
    }));
    let parsed = match cli::Cli::try_parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            let is_help =
                matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion);
            let _ = e.print();
            return ExitCode::from(cli::exit_code(if is_help { cli::EXIT_PASS } else { cli::EXIT_BAD_INPUT }));
        }
    };
    let code = match cli::execute(parsed) {
        Ok(code) => code,
        Err(error) => {
            cli::err(&format!("error: {}", error.message()));
            error.exit_code()
        }
    };
    ExitCode::from(cli::exit_code(code))
}
