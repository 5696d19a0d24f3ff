//! Running the `kubesim` binary from the CLI tests.

use std::process::Command;

/// What one run of the binary gave.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kubesim ARGS...` to its end.
pub fn kubesim(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kubesim")).args(args).output().expect("kubesim runs");
    Output {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
