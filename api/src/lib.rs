//! The Kubernetes API as kubesim's components see it: object types, the apiserver's
//! request/response protocol with typed errors, and the client every component uses.
//!
//! This crate knows nothing of the store. `controllers` depends on it and not on `store`,
//! so the compiler keeps every component other than the apiserver away from the store
//! (single-writer at the code level).

#[cfg(feature = "runtime")]
pub mod client;
#[cfg(feature = "runtime")]
pub mod clock;
pub mod custom;
pub mod objects;
pub mod protocol;
pub mod rbac;

#[cfg(feature = "runtime")]
pub use client::{ApiClient, ApiObserver, ClientConfig};
#[cfg(feature = "runtime")]
pub use clock::Clock;
pub use custom::{
    CustomDataError, CustomObject, CustomResource, CustomResourceDefinition, DefinitionError, DynamicObject, RawJson,
    Scope,
};
pub use objects::*;
pub use protocol::*;
