//! `kubesim`: deterministic simulation testing of a Kubernetes control plane's storage path.
//! The command line lives in `kubesim::cli`; this only parses and maps errors to exit codes.
//!
//! SIGPIPE stays ignored, as Rust sets it up: a reader that closes the pipe early
//! (`kubesim campaign ... | head -1`) must not kill the process before its verdict, which
//! is the exit code (`kubesim::cli::out` stops printing, `kubesim::cli::exit_code` keeps the
//! verdict).

use std::process::ExitCode;

use clap::Parser;
use kubesim::cli::{err, execute, exit_code, Cli, EXIT_BAD_INPUT, EXIT_PASS};

/// mimalloc: a simulation allocates and frees small objects (messages, futures, history
/// records) at a high rate; it runs the default campaign about 5% faster than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A seed that reaches its simulated-time limit ends through madsim's panic, an expected
    // outcome reported as `time-limit`: keep it off the terminal, and every other panic on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !sim::runner::is_time_limit_panic(info.payload()) {
            default_hook(info);
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let is_help =
                matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion);
            let _ = e.print();
            return ExitCode::from(exit_code(if is_help { EXIT_PASS } else { EXIT_BAD_INPUT }));
        }
    };
    let code = match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            err(&format!("error: {}", error.message()));
            error.exit_code()
        }
    };
    ExitCode::from(exit_code(code))
}
