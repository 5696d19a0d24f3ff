//! Stamps the binary with the git commit it was built from (`KUBESIM_GIT_COMMIT`), which
//! campaign results carry so that a seed is replayed at the commit that found it. Outside a
//! git checkout, or without git, the stamp is `unknown`; setting `KUBESIM_GIT_COMMIT` in
//! the build's environment overrides it (a build from a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KUBESIM_GIT_COMMIT");
    // Rebuild the stamp when HEAD moves: a checkout changes HEAD, a commit the branch's ref
    // (loose or packed).
    for path in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("KUBESIM_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=KUBESIM_GIT_COMMIT={commit}");
}
