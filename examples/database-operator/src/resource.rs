//! The `Database` custom resource: a user's kind, defined without editing kubesim.

use kubesim::api::{CustomResource, CustomResourceDefinition};
use serde::{Deserialize, Serialize};

/// The kind's marker type; objects are `CustomObject<Database>`.
pub struct Database;

impl CustomResource for Database {
    const DEFINITION: &'static CustomResourceDefinition =
        &CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
    type Spec = DatabaseSpec;
    type Status = DatabaseStatus;
}

/// What the user asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSpec {
    /// Members in all: one primary and `members - 1` replicas (at least 1).
    pub members: u32,
}

/// What the operator last observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    /// The pod that serves as primary.
    pub primary: Option<String>,
    /// Member pods the operator saw Running.
    pub running: u32,
}
