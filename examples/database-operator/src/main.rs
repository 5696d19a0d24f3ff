//! `database-kubesim`: kubesim's command line with the example's scenarios registered, as
//! a user's own binary would be. `database-kubesim run --scenario database-buggy --seed N`,
//! `campaign`, `shrink`, `corpus` and `merge` work on them as on the built-in scenarios.

fn main() -> std::process::ExitCode {
    database_operator::register();
    kubesim::main()
}
