//! An example of testing your own controller with kubesim, written only against kubesim's
//! public API (README: "Test your own controller").
//!
//! - [`resource`]: the `Database` custom resource (`example.com/v1`, `databases`): how
//!   many members a database has, and in its status which pod is its primary;
//! - [`operator`]: its controller, on kubesim's controller runtime: one primary pod and
//!   `members - 1` replica pods per database, two replicas of the operator with leader
//!   election, its own credentials and exactly the RBAC rules its manifest grants — and,
//!   switchable, a buggy variant;
//! - [`invariant`]: what the operator must never do: let two primaries of one database
//!   exist at once, even across partitions, pauses, crashes and apiserver restarts;
//! - [`scenario`]: the cluster admin's workload (apply the operator's RBAC objects, create
//!   a database, scale it), tying it together as the scenarios `database` and
//!   `database-buggy`.
//!
//! `src/main.rs` is the `kubesim` command line with both scenarios registered
//! (`cargo run -p database-operator -- run --scenario database-buggy --seed N`);
//! `tests/seeds.rs` runs seeds from `cargo test`.

pub mod invariant;
pub mod operator;
pub mod resource;
pub mod scenario;

pub use scenario::DatabaseScenario;

/// Registers both variants of the scenario (`database` and `database-buggy`) in this
/// process.
///
/// # Panics
/// Never for these two names: they are well-formed and not kubesim's own.
pub fn register() {
    for scenario in [DatabaseScenario::correct(), DatabaseScenario::buggy()] {
        kubesim::sim::scenario::register(scenario).expect("the database scenarios register");
    }
}
