//! Kubernetes object types: the subset of fields the simulated controllers read and write.
//!
//! Field names follow the Kubernetes API (`spec.nodeName` is `spec.node_name`). Times are
//! simulated milliseconds since the start of the run, as read through a component's
//! (possibly skewed) clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::custom::{CustomResourceDefinition, DynamicObject};
use crate::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

/// Simulated wall time in milliseconds, as a component's clock reports it.
pub type TimestampMs = u64;

/// A resourceVersion: the store's mod_revision of the object's key (or, for a list, the
/// store revision it was read at). Kubernetes treats it as opaque; kubesim keeps it numeric
/// so that checkers can compare it.
pub type ResourceVersion = i64;

pub type Labels = BTreeMap<String, String>;

/// A reference from a dependent to its owner (Kubernetes `metav1.OwnerReference`). The
/// owner is identified by its `uid`: a new object of the same kind and name is another
/// owner, and the garbage collector treats the old one as gone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// True for the managing controller (Kubernetes: `controller: true`).
    pub controller: bool,
    /// Kubernetes' `blockOwnerDeletion`: while the owner is deleted in the foreground, it
    /// stays (with its `foregroundDeletion` finalizer) until this dependent is gone.
    /// Left out of the stored JSON when false, so objects that never set it are stored
    /// exactly as before the field existed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub block_owner_deletion: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The identity Kubernetes' garbage collector writes as: kube-controller-manager's
/// service account for it (`generic-garbage-collector`, with
/// `--use-service-account-credentials`). kubesim's collector uses it too, so that the
/// history tells its deletes from the other controllers'.
pub const GARBAGE_COLLECTOR_USER: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// The finalizer with which the apiserver marks an object deleted with
/// [`crate::PropagationPolicy::Orphan`]: the garbage collector removes the owner references to it
/// from its dependents, then this finalizer (Kubernetes `metav1.FinalizerOrphanDependents`).
pub const FINALIZER_ORPHAN: &str = "orphan";

/// The finalizer with which the apiserver marks an object deleted with
/// [`crate::PropagationPolicy::Foreground`]: the garbage collector deletes its dependents, waits
/// for those with `blockOwnerDeletion` to be gone, then removes this finalizer
/// (Kubernetes `metav1.FinalizerDeleteDependents`).
pub const FINALIZER_FOREGROUND_DELETION: &str = "foregroundDeletion";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    /// Empty for cluster-scoped objects (Node, Namespace).
    pub namespace: String,
    /// Assigned by the apiserver on create; never changes.
    pub uid: String,
    /// Set by the apiserver from the store on every read; 0 on an object not yet created.
    /// It is not part of the stored value.
    pub resource_version: ResourceVersion,
    /// Incremented by the apiserver on every spec change.
    pub generation: i64,
    pub labels: Labels,
    pub owner_references: Vec<OwnerReference>,
    pub creation_timestamp_ms: TimestampMs,
    /// Set by the apiserver when a delete found the object with finalizers (Kubernetes
    /// `deletionTimestamp`): the object is marked for deletion, not removed, and is
    /// removed by the update that empties its finalizers. Clients cannot set or clear it.
    pub deletion_timestamp_ms: Option<TimestampMs>,
    /// What must happen before the object may be removed (Kubernetes `finalizers`): the
    /// garbage collector's [`FINALIZER_ORPHAN`] and [`FINALIZER_FOREGROUND_DELETION`], or
    /// a user's own. Every kind has it, custom kinds too. Left out of the stored JSON when
    /// empty, so objects without finalizers are stored exactly as before the field
    /// existed (a JSON reader takes its absence as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Kubernetes `annotations`: what the deployment controller keeps on a ReplicaSet
    /// ([`REVISION_ANNOTATION`]). Left out of the stored JSON when empty, so objects
    /// without annotations are stored exactly as before the field existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The annotation with which the deployment controller numbers the ReplicaSets of a
/// deployment in the order their templates were rolled out (Kubernetes
/// `deployment.kubernetes.io/revision`): `kubectl rollout history` lists them, `kubectl
/// rollout undo --to-revision=N` finds the template to go back to by it.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

impl ObjectMeta {
    pub fn named(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { name: name.into(), namespace: namespace.into(), ..Self::default() }
    }

    /// The owner reference marked `controller: true`, if any.
    pub fn controller_owner(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|r| r.controller)
    }

    /// Whether a delete has marked the object (its `deletionTimestamp` is set).
    pub fn is_being_deleted(&self) -> bool {
        self.deletion_timestamp_ms.is_some()
    }

    /// Whether the object carries finalizer `name`.
    pub fn has_finalizer(&self, name: &str) -> bool {
        self.finalizers.iter().any(|f| f == name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub metadata: ObjectMeta,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// Requested CPU in millicores (for least-allocated scheduling).
    pub cpu_millis: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    /// Set once, by a binding; never changes afterwards (invariant 12).
    pub node_name: Option<String>,
    pub containers: Vec<Container>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodStatus {
    pub phase: PodPhase,
    /// When the kubelet reported the pod's containers started.
    pub start_time_ms: Option<TimestampMs>,
    /// Why the pod is in its phase (for example `NodeLost` after eviction).
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTemplateSpec {
    /// Only labels are used from the template's metadata.
    pub labels: Labels,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetSpec {
    pub replicas: i32,
    /// Match-labels selector.
    pub selector: Labels,
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetStatus {
    pub replicas: i32,
    pub ready_replicas: i32,
    pub observed_generation: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSet {
    pub metadata: ObjectMeta,
    pub spec: ReplicaSetSpec,
    pub status: ReplicaSetStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub replicas: i32,
    pub selector: Labels,
    pub template: PodTemplateSpec,
    /// How a new template replaces the old one (Kubernetes `spec.strategy`). `None`: the
    /// field was not written, and kubesim's deployment controller rolls out as it always
    /// did (every old ReplicaSet to zero at once, the new one to `replicas`, no revision
    /// annotations) so that scenarios written before it existed store and do exactly what
    /// they did; Kubernetes would default it to RollingUpdate 25%/25%
    /// (docs/design.md §4.16). Left out of the stored JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// How many old ReplicaSets (scaled to zero) to keep for rollback (Kubernetes
    /// `spec.revisionHistoryLimit`, default 10); only a deployment with a `strategy`
    /// has its history cleaned. Left out of the stored JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

/// Kubernetes `apps/v1.DeploymentStrategy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentStrategy {
    /// Every old pod is gone before a new one is created (Kubernetes `Recreate`).
    Recreate,
    /// New pods replace old ones within a budget (Kubernetes `RollingUpdate`).
    RollingUpdate(RollingUpdateDeployment),
}

/// Kubernetes `apps/v1.RollingUpdateDeployment`: the budget of a rolling update, each an
/// absolute number or a percentage of `replicas` (Kubernetes' defaults, when unset, are
/// 25% and 25%).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingUpdateDeployment {
    /// How many pods above `replicas` the deployment may have during the update
    /// (a percentage rounds up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// How many pods below `replicas` may be unavailable during the update (a percentage
    /// rounds down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// Kubernetes' `intstr.IntOrString` as the rolling-update budget uses it: `1` or `"25%"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    /// Kubernetes `intstr.GetScaledValueFromIntOrPercent`: an int as it is, a percentage
    /// of `total`, rounded up or down.
    pub fn scaled(self, total: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let product = i64::from(p) * i64::from(total);
                let scaled = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
                scaled as i32
            }
        }
    }

    /// The number written, whichever kind it is (Kubernetes' validation
    /// `getIntOrPercentValue`).
    pub fn value(self) -> i32 {
        match self {
            IntOrPercent::Int(n) | IntOrPercent::Percent(n) => n,
        }
    }
}

impl std::fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    pub replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub observed_generation: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
    pub status: DeploymentStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub unschedulable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The NodeReady condition: set True by the kubelet, False/Unknown by the node
    /// lifecycle controller when the kubelet's heartbeat lapses.
    pub ready: bool,
    /// CPU capacity in millicores.
    pub cpu_capacity_millis: u32,
    pub last_heartbeat_ms: TimestampMs,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub metadata: ObjectMeta,
    pub spec: NodeSpec,
    pub status: NodeStatus,
}

/// coordination.k8s.io/v1 Lease: used for node heartbeats (kube-node-lease namespace) and
/// controller leader election (kube-system namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseSpec {
    pub holder_identity: Option<String>,
    pub lease_duration_seconds: u32,
    pub acquire_time_ms: Option<TimestampMs>,
    pub renew_time_ms: Option<TimestampMs>,
    /// Incremented each time the holder changes.
    pub lease_transitions: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub metadata: ObjectMeta,
    pub spec: LeaseSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMap {
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
}

/// The object an [`Event`] is about (Kubernetes `ObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReference {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Kubernetes' `Normal` and `Warning` event types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[default]
    Normal,
    Warning,
}

/// core/v1 Event: a report of something that happened to an object ("Scheduled",
/// "SuccessfulCreate", "NodeNotReady"), written by the component that saw it. The
/// apiserver stores Events under store leases, so they expire `--event-ttl` after their
/// last write (one hour by default; kube-apiserver `registry/core/event/storage`). A
/// repeated event is one object whose `count` and `last_timestamp_ms` grow (client-go's
/// `EventCorrelator`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub metadata: ObjectMeta,
    pub involved_object: ObjectReference,
    /// A short CamelCase reason ("Scheduled").
    pub reason: String,
    pub message: String,
    pub type_: EventType,
    /// The component that reported it ("default-scheduler", "kubelet").
    pub source: String,
    /// How many times it happened; 1 when first written.
    pub count: i32,
    pub first_timestamp_ms: TimestampMs,
    pub last_timestamp_ms: TimestampMs,
}

/// One port a Service exposes (core/v1 `ServicePort`): `port` on the ClusterIP, forwarded
/// to `target_port` on the backing pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target_port: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Match-labels selector of the pods that back the Service (an empty selector selects
    /// none: kubesim has no Services without selectors).
    pub selector: Labels,
    /// The virtual IP (`spec.clusterIP`), dotted IPv4. Empty on a create asks the apiserver
    /// to allocate one from its `--service-cluster-ip-range`; a value asks for that IP,
    /// refused (422) when it is out of range or taken. Set by the apiserver on create and
    /// immutable afterwards (Kubernetes `ValidateServiceUpdate`).
    pub cluster_ip: String,
    pub ports: Vec<ServicePort>,
}

/// core/v1 Service (type ClusterIP): a stable virtual IP in front of the pods its selector
/// picks. The apiserver allocates the IP from a range whose bitmap lives in the store
/// (Kubernetes `pkg/registry/core/service/ipallocator`), releases it on delete, and
/// repairs the bitmap from the Services that exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

/// One backend of a Service: a Ready pod and the node it runs on (core/v1
/// `EndpointAddress` with its `targetRef`; kubesim's pods have no IPs of their own).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointAddress {
    pub pod: String,
    pub node: String,
}

/// core/v1 Endpoints: the Ready pods behind the Service of the same namespace and name,
/// kept by the endpoints controller (`pkg/controller/endpoint`). `addresses` is sorted by
/// pod name; the ports are the Service's target ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub metadata: ObjectMeta,
    pub addresses: Vec<EndpointAddress>,
    pub ports: Vec<ServicePort>,
}

/// The resource types the apiserver serves: the built-in kinds, and custom kinds defined
/// outside kubesim ([`Resource::Custom`], see [`crate::custom`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Resource {
    Namespaces,
    Nodes,
    Pods,
    ReplicaSets,
    Deployments,
    Leases,
    ConfigMaps,
    Secrets,
    Events,
    /// rbac.authorization.k8s.io Roles (namespaced), stored under `/registry/roles/`.
    Roles,
    /// rbac.authorization.k8s.io RoleBindings (namespaced), under `/registry/rolebindings/`.
    RoleBindings,
    /// rbac.authorization.k8s.io ClusterRoles (cluster-scoped), under `/registry/clusterroles/`.
    ClusterRoles,
    /// rbac.authorization.k8s.io ClusterRoleBindings (cluster-scoped), under
    /// `/registry/clusterrolebindings/`.
    ClusterRoleBindings,
    /// A custom kind (CustomResourceDefinition). Compared by the definition's value; the
    /// apiserver serves it only if it was started with the same definition registered.
    Custom(#[serde(deserialize_with = "crate::custom::deserialize_definition")] &'static CustomResourceDefinition),
    /// core/v1 Services (namespaced), under `/registry/services/specs/` as kube-apiserver
    /// stores them. (Declared after `Custom` so that every older variant keeps its index
    /// in the history's encoding.)
    Services,
    /// core/v1 Endpoints (namespaced), under `/registry/services/endpoints/`.
    Endpoints,
}

impl Resource {
    /// Every built-in resource (custom ones are whatever the apiserver registered).
    pub const ALL: [Resource; 15] = [
        Resource::Namespaces,
        Resource::Nodes,
        Resource::Pods,
        Resource::ReplicaSets,
        Resource::Deployments,
        Resource::Leases,
        Resource::ConfigMaps,
        Resource::Secrets,
        Resource::Events,
        Resource::Roles,
        Resource::RoleBindings,
        Resource::ClusterRoles,
        Resource::ClusterRoleBindings,
        Resource::Services,
        Resource::Endpoints,
    ];

    /// The RBAC kinds, which the apiserver's authorizer watches.
    pub const RBAC: [Resource; 4] =
        [Resource::Roles, Resource::RoleBindings, Resource::ClusterRoles, Resource::ClusterRoleBindings];

    /// The plural name used in store keys (`/registry/<plural>/...`). Kubernetes stores
    /// leases under `leases`, replicasets under `replicasets`, and so on.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Namespaces => "namespaces",
            Resource::Nodes => "minions", // Kubernetes' historical storage prefix for nodes
            Resource::Pods => "pods",
            Resource::ReplicaSets => "replicasets",
            Resource::Deployments => "deployments",
            Resource::Leases => "leases",
            Resource::ConfigMaps => "configmaps",
            Resource::Secrets => "secrets",
            Resource::Events => "events",
            Resource::Roles => "roles",
            Resource::RoleBindings => "rolebindings",
            Resource::ClusterRoles => "clusterroles",
            Resource::ClusterRoleBindings => "clusterrolebindings",
            Resource::Services => "services",
            Resource::Endpoints => "endpoints",
            Resource::Custom(definition) => definition.plural,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Namespaces => "Namespace",
            Resource::Nodes => "Node",
            Resource::Pods => "Pod",
            Resource::ReplicaSets => "ReplicaSet",
            Resource::Deployments => "Deployment",
            Resource::Leases => "Lease",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Secrets => "Secret",
            Resource::Events => "Event",
            Resource::Roles => "Role",
            Resource::RoleBindings => "RoleBinding",
            Resource::ClusterRoles => "ClusterRole",
            Resource::ClusterRoleBindings => "ClusterRoleBinding",
            Resource::Services => "Service",
            Resource::Endpoints => "Endpoints",
            Resource::Custom(definition) => definition.kind,
        }
    }

    pub fn namespaced(self) -> bool {
        match self {
            Resource::Namespaces | Resource::Nodes | Resource::ClusterRoles | Resource::ClusterRoleBindings => false,
            Resource::Custom(definition) => definition.namespaced_scope(),
            _ => true,
        }
    }

    /// The custom kind's definition, `None` for a built-in.
    pub fn custom_definition(self) -> Option<&'static CustomResourceDefinition> {
        match self {
            Resource::Custom(definition) => Some(definition),
            _ => None,
        }
    }

    /// `/registry/<plural>/` : the prefix under which every object of this type lives
    /// (`/registry/<group>/<plural>/` for a custom kind, as apiextensions-apiserver stores
    /// custom resources).
    pub fn key_prefix(self) -> String {
        match self {
            Resource::Custom(definition) => format!("/registry/{}/{}/", definition.group, definition.plural),
            // kube-apiserver's storage prefixes for the two (`registry/core/service/storage`
            // and `registry/core/endpoint/storage`).
            Resource::Services => "/registry/services/specs/".to_string(),
            Resource::Endpoints => "/registry/services/endpoints/".to_string(),
            _ => format!("/registry/{}/", self.plural()),
        }
    }

    /// The store key of one object: `/registry/<plural>/<namespace>/<name>`, or
    /// `/registry/<plural>/<name>` for cluster-scoped resources (`<group>/<plural>` in
    /// place of `<plural>` for a custom kind).
    pub fn key(self, namespace: &str, name: &str) -> String {
        if self.namespaced() {
            format!("{}{}/{}", self.key_prefix(), namespace, name)
        } else {
            format!("{}{}", self.key_prefix(), name)
        }
    }

    /// The prefix of a namespace's objects of this type (or all of them when `namespace`
    /// is empty or the resource is cluster-scoped).
    pub fn namespace_prefix(self, namespace: &str) -> String {
        if self.namespaced() && !namespace.is_empty() {
            format!("{}{}/", self.key_prefix(), namespace)
        } else {
            self.key_prefix()
        }
    }

    /// Which built-in resource a store key belongs to, if any. A custom kind's keys are
    /// known only to whoever registered its definition: see [`Resource::from_key_among`].
    pub fn from_key(key: &str) -> Option<Resource> {
        let rest = key.strip_prefix("/registry/")?;
        if rest.starts_with("services/") {
            return [Resource::Services, Resource::Endpoints].into_iter().find(|r| key.starts_with(&r.key_prefix()));
        }
        let plural = rest.split('/').next()?;
        Resource::ALL.into_iter().find(|r| r.plural() == plural)
    }

    /// Which resource a store key belongs to: a built-in, or one of the custom kinds given.
    pub fn from_key_among(key: &str, custom: &[&'static CustomResourceDefinition]) -> Option<Resource> {
        Resource::from_key(key).or_else(|| {
            custom.iter().map(|d| Resource::Custom(d)).find(|resource| key.starts_with(&resource.key_prefix()))
        })
    }
}

impl std::fmt::Display for Resource {
    /// The plural; for a custom kind `<plural>.<group>`, as kubectl names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Custom(definition) => write!(f, "{}.{}", definition.plural, definition.group),
            _ => f.write_str(self.plural()),
        }
    }
}

/// Any object the apiserver serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Object {
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    ReplicaSet(ReplicaSet),
    Deployment(Deployment),
    Lease(Lease),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Event(Event),
    Role(Role),
    RoleBinding(RoleBinding),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    /// An object of a custom kind ([`crate::custom`]).
    Custom(DynamicObject),
    Service(Service),
    Endpoints(Endpoints),
}

macro_rules! object_accessors {
    ($($variant:ident => $resource:ident, $as_ref:ident, $into:ident;)*) => {
        impl Object {
            pub fn resource(&self) -> Resource {
                match self {
                    $(Object::$variant(_) => Resource::$resource,)*
                    Object::Custom(o) => o.resource(),
                }
            }
            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(Object::$variant(o) => &o.metadata,)* Object::Custom(o) => &o.metadata }
            }
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Object::$variant(o) => &mut o.metadata,)* Object::Custom(o) => &mut o.metadata }
            }
            $(
                pub fn $as_ref(&self) -> Option<&$variant> {
                    match self { Object::$variant(o) => Some(o), _ => None }
                }
                pub fn $into(self) -> Option<$variant> {
                    match self { Object::$variant(o) => Some(o), _ => None }
                }
            )*
        }
        $(
            impl From<$variant> for Object {
                fn from(o: $variant) -> Self { Object::$variant(o) }
            }
        )*
    };
}

object_accessors! {
    Namespace => Namespaces, as_namespace, into_namespace;
    Node => Nodes, as_node, into_node;
    Pod => Pods, as_pod, into_pod;
    ReplicaSet => ReplicaSets, as_replica_set, into_replica_set;
    Deployment => Deployments, as_deployment, into_deployment;
    Lease => Leases, as_lease, into_lease;
    ConfigMap => ConfigMaps, as_config_map, into_config_map;
    Secret => Secrets, as_secret, into_secret;
    Event => Events, as_event, into_event;
    Role => Roles, as_role, into_role;
    RoleBinding => RoleBindings, as_role_binding, into_role_binding;
    ClusterRole => ClusterRoles, as_cluster_role, into_cluster_role;
    ClusterRoleBinding => ClusterRoleBindings, as_cluster_role_binding, into_cluster_role_binding;
    Service => Services, as_service, into_service;
    Endpoints => Endpoints, as_endpoints, into_endpoints;
}

impl Object {
    pub fn as_custom(&self) -> Option<&DynamicObject> {
        match self {
            Object::Custom(o) => Some(o),
            _ => None,
        }
    }
    pub fn into_custom(self) -> Option<DynamicObject> {
        match self {
            Object::Custom(o) => Some(o),
            _ => None,
        }
    }
}

impl From<DynamicObject> for Object {
    fn from(o: DynamicObject) -> Self {
        Object::Custom(o)
    }
}

impl Object {
    /// The store key of this object.
    pub fn key(&self) -> String {
        let m = self.metadata();
        self.resource().key(&m.namespace, &m.name)
    }
}

/// Whether `labels` satisfies a match-labels `selector` (every selector pair present).
/// An empty selector matches nothing, as for ReplicaSets (Kubernetes rejects empty
/// selectors on apps/v1 workloads, so matching everything would be a bug).
pub fn selector_matches(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kubernetes_registry_layout() {
        assert_eq!(
            Resource::Deployments.key("default", "nginx-deployment"),
            "/registry/deployments/default/nginx-deployment"
        );
        assert_eq!(Resource::Nodes.key("", "worker-1"), "/registry/minions/worker-1");
        assert_eq!(Resource::from_key("/registry/pods/default/p"), Some(Resource::Pods));
        assert_eq!(Resource::from_key("/elsewhere/pods/default/p"), None);
        assert_eq!(Resource::Pods.namespace_prefix("default"), "/registry/pods/default/");
        assert_eq!(Resource::Nodes.namespace_prefix("default"), "/registry/minions/");
        // RBAC objects, as kube-apiserver stores them (no group in the prefix).
        assert_eq!(Resource::Roles.key("kube-system", "r"), "/registry/roles/kube-system/r");
        assert_eq!(Resource::RoleBindings.key("kube-system", "b"), "/registry/rolebindings/kube-system/b");
        assert_eq!(Resource::ClusterRoles.key("", "cluster-admin"), "/registry/clusterroles/cluster-admin");
        assert_eq!(
            Resource::ClusterRoleBindings.key("", "cluster-admin"),
            "/registry/clusterrolebindings/cluster-admin"
        );
        assert_eq!(Resource::from_key("/registry/rolebindings/ns/b"), Some(Resource::RoleBindings));
        assert_eq!(Resource::from_key("/registry/roles/ns/r"), Some(Resource::Roles));
        // Services and Endpoints share kube-apiserver's `services` prefix.
        assert_eq!(Resource::Services.key("default", "web"), "/registry/services/specs/default/web");
        assert_eq!(Resource::Endpoints.key("default", "web"), "/registry/services/endpoints/default/web");
        assert_eq!(Resource::from_key("/registry/services/specs/default/web"), Some(Resource::Services));
        assert_eq!(Resource::from_key("/registry/services/endpoints/default/web"), Some(Resource::Endpoints));
        assert_eq!(Resource::from_key("/registry/ranges/serviceips"), None);
    }

    #[test]
    fn empty_selector_matches_nothing() {
        let labels: Labels = [("app".to_string(), "nginx".to_string())].into();
        assert!(!selector_matches(&Labels::new(), &labels));
        assert!(selector_matches(&labels, &labels));
    }
}
