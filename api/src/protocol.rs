//! The apiserver's request/response protocol: what a component (controller, scheduler,
//! kubelet, the user's kubectl) may ask and the typed errors it gets back, with Kubernetes'
//! HTTP status codes.
//!
//! Watches are long polls: "give me every event after resourceVersion X, waiting up to W
//! ms for one". That is Kubernetes' resumable watch (a client reconnecting with the last
//! resourceVersion it saw) with the stream cut into requests, which survives apiserver
//! restarts and partitions without any connection state.

use serde::{Deserialize, Serialize};

use crate::objects::{Object, Resource, ResourceVersion};

/// A bearer token credential. Every component has its own (authentication).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub user: String,
    pub token: String,
}

/// kubesim's fencing precondition: the write succeeds only if the named Lease still has
/// this resourceVersion (the apiserver folds the compare into the same store transaction).
/// Kubernetes' own leader election has no such fence (docs/design.md §4, invariant 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFence {
    pub namespace: String,
    pub name: String,
    pub resource_version: ResourceVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    Get {
        resource: Resource,
        namespace: String,
        name: String,
    },
    /// A consistent (quorum) list; `namespace` empty lists across namespaces.
    List {
        resource: Resource,
        namespace: String,
    },
    Create {
        object: Object,
        fence: Option<LeaseFence>,
    },
    /// Replaces spec and metadata; the object's resourceVersion is the precondition
    /// (409 Conflict when stale). Status is left as stored.
    Update {
        object: Object,
        fence: Option<LeaseFence>,
    },
    /// The status subresource: replaces status only, same precondition.
    UpdateStatus {
        object: Object,
        fence: Option<LeaseFence>,
    },
    Delete {
        resource: Resource,
        namespace: String,
        name: String,
        /// Delete only if the object still has this resourceVersion.
        precondition: Option<ResourceVersion>,
        /// Propagation policy and UID precondition ([`DeleteOptions`]).
        options: DeleteOptions,
        fence: Option<LeaseFence>,
    },
    /// pods/binding: sets `spec.nodeName` once (409 when already set).
    Bind {
        namespace: String,
        pod: String,
        node: String,
        fence: Option<LeaseFence>,
    },
    /// Events with resourceVersion > `since`, waiting up to `wait_ms` for the first one.
    Watch {
        resource: Resource,
        namespace: String,
        since: ResourceVersion,
        wait_ms: u64,
    },
}

impl Operation {
    pub fn verb(&self) -> Verb {
        match self {
            Operation::Get { .. } => Verb::Get,
            Operation::List { .. } => Verb::List,
            Operation::Create { .. } => Verb::Create,
            Operation::Update { .. } => Verb::Update,
            Operation::UpdateStatus { .. } => Verb::UpdateStatus,
            Operation::Delete { .. } => Verb::Delete,
            Operation::Bind { .. } => Verb::Bind,
            Operation::Watch { .. } => Verb::Watch,
        }
    }

    pub fn resource(&self) -> Resource {
        match self {
            Operation::Get { resource, .. }
            | Operation::List { resource, .. }
            | Operation::Delete { resource, .. }
            | Operation::Watch { resource, .. } => *resource,
            Operation::Create { object, .. }
            | Operation::Update { object, .. }
            | Operation::UpdateStatus { object, .. } => object.resource(),
            Operation::Bind { .. } => Resource::Pods,
        }
    }

    pub fn fence(&self) -> Option<&LeaseFence> {
        match self {
            Operation::Create { fence, .. }
            | Operation::Update { fence, .. }
            | Operation::UpdateStatus { fence, .. }
            | Operation::Delete { fence, .. }
            | Operation::Bind { fence, .. } => fence.as_ref(),
            Operation::Get { .. } | Operation::List { .. } | Operation::Watch { .. } => None,
        }
    }
}

/// What happens to an object's dependents when it is deleted (Kubernetes
/// `metav1.DeletionPropagation`; `k8s.io/apiserver/pkg/registry/generic/registry/store.go`,
/// `deletionFinalizersForGarbageCollection`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PropagationPolicy {
    /// The object goes at once (unless it has finalizers); the garbage collector deletes
    /// its dependents afterwards. The default of every kind here, as of apps/v1's.
    #[default]
    Background,
    /// The object is marked with the `foregroundDeletion` finalizer and stays until the
    /// garbage collector has deleted its blocking dependents.
    Foreground,
    /// The object is marked with the `orphan` finalizer; the garbage collector removes
    /// the owner references to it from its dependents, which stay.
    Orphan,
}

/// Kubernetes' `metav1.DeleteOptions`, the parts kubesim models.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOptions {
    /// `None`: the default, or what the object's garbage-collection finalizers already
    /// ask for when it is being deleted.
    pub propagation_policy: Option<PropagationPolicy>,
    /// `preconditions.uid`: delete only the object with this uid (404-like Conflict when
    /// the name now holds another object), as the garbage collector deletes.
    pub uid_precondition: Option<String>,
}

impl DeleteOptions {
    /// Options with `policy` and nothing else.
    pub fn propagation(policy: PropagationPolicy) -> Self {
        Self { propagation_policy: Some(policy), uid_precondition: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    UpdateStatus,
    Delete,
    Bind,
}

impl Verb {
    pub fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRequest {
    pub credential: Credential,
    /// Chosen by the client, unique per client; lets the history pair invoke and return.
    pub request_id: u64,
    pub operation: Operation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEventKind {
    Added,
    Modified,
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// For Deleted, the last state of the object before deletion, with the deletion's
    /// resourceVersion.
    pub object: Object,
    pub resource_version: ResourceVersion,
}

// A response is built once and moved once per request; boxing the object would cost an
// allocation on the hot path to save stack space nobody is short of.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiResponse {
    Object(Object),
    List {
        items: Vec<Object>,
        resource_version: ResourceVersion,
    },
    /// `resource_version` is the revision the watch has covered up to (a bookmark) even
    /// when `events` is empty.
    Watch {
        events: Vec<WatchEvent>,
        resource_version: ResourceVersion,
    },
}

/// The apiserver's errors, each with its HTTP status. A rejected request changes nothing,
/// except `Timeout`, whose outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApiError {
    #[error("401 Unauthorized: {reason}")]
    Unauthorized { reason: String },
    #[error("403 Forbidden: user {user} cannot {verb:?} {resource}: {reason}")]
    Forbidden { user: String, verb: Verb, resource: Resource, reason: String },
    #[error("404 NotFound: {resource} {namespace}/{name}")]
    NotFound { resource: Resource, namespace: String, name: String },
    #[error("409 AlreadyExists: {resource} {namespace}/{name}")]
    AlreadyExists { resource: Resource, namespace: String, name: String },
    #[error("409 Conflict: {reason}")]
    Conflict { reason: String },
    /// The write carried a lease fence and the lease has moved on: the writer is deposed.
    #[error("409 Conflict: fenced out, lease {namespace}/{name} is no longer at resourceVersion {resource_version}")]
    Fenced { namespace: String, name: String, resource_version: ResourceVersion },
    #[error("410 Gone: resourceVersion {requested} is too old (compacted at {compacted})")]
    Gone { requested: ResourceVersion, compacted: ResourceVersion },
    #[error("413 RequestEntityTooLarge: {reason}")]
    TooLarge { reason: String },
    #[error("422 Invalid: {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("503 ServiceUnavailable: {reason}")]
    Unavailable { reason: String },
    /// The request may or may not have taken effect.
    #[error("504 Timeout: {reason}")]
    Timeout { reason: String },
    #[error("500 InternalError: {reason}")]
    Internal { reason: String },
    /// The apiserver does not serve this resource: a custom kind it was not started with,
    /// or one whose definition differs from the one it serves (Kubernetes answers 404 "the
    /// server could not find the requested resource").
    #[error("404 NotFound: the server could not find the requested resource {resource}: {reason}")]
    UnknownResource { resource: Resource, reason: String },
}

impl ApiError {
    pub fn status_code(&self) -> u16 {
        match self {
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } | ApiError::UnknownResource { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } | ApiError::Fenced { .. } => 409,
            ApiError::Gone { .. } => 410,
            ApiError::TooLarge { .. } => 413,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal { .. } => 500,
            ApiError::Unavailable { .. } => 503,
            ApiError::Timeout { .. } => 504,
        }
    }

    /// Whether retrying the same request later may succeed without changing it.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. } | ApiError::Timeout { .. } | ApiError::Internal { .. })
    }
}

pub type ApiResult = Result<ApiResponse, ApiError>;

#[cfg(feature = "runtime")]
impl madsim::net::rpc::Request for ApiRequest {
    type Response = ApiResult;
    const ID: u64 = madsim::net::rpc::hash_str("kubesim.apiserver.v1");
}
