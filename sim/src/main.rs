//! `kubesim`: deterministic simulation testing of a Kubernetes control plane's storage path.
//!
//! Exit codes: 0 every check held; 1 a violation was found; 2 bad input; 3 internal error.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sim::runner::{run_seed, RunOptions};
use sim::scenario::Scenario;

#[derive(Parser, Debug)]
#[command(
    name = "kubesim",
    version,
    about = "Deterministic simulation testing for the storage path of a Kubernetes control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seed and print its timeline, checks and trace hash.
    Run {
        /// The seed: the whole run is a function of it.
        #[arg(long)]
        seed: u64,
        /// Which scenario to run.
        #[arg(long, default_value = "deploy-nginx")]
        scenario: Scenario,
        /// Print the detailed log (tracing, filtered by RUST_LOG, default "info").
        #[arg(long)]
        trace: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let is_help =
                matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion);
            let _ = e.print();
            return if is_help { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match cli.command {
        Command::Run { seed, scenario, trace } => {
            if trace {
                init_tracing();
            }
            out(&format!("kubesim run --seed {seed} --scenario {scenario}"));
            let options = RunOptions::new(seed, scenario);
            let wall = Instant::now();
            let report = run_seed(&options);
            let wall_secs = wall.elapsed().as_secs_f64();
            out(report.render().trim_end());
            out(&format!(
                "wall time {:.3}s ({:.0}x simulated time per wall second)",
                wall_secs,
                report.simulated_secs / wall_secs.max(1e-9)
            ));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                out(&format!("repro: kubesim run --seed {seed} --scenario {scenario}"));
                ExitCode::from(1)
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

/// Prints a line to stdout; a closed pipe (`kubesim ... | head`) ends output quietly
/// instead of panicking.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{text}").is_err() {
        std::process::exit(0);
    }
}
