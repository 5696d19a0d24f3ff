//! Kubernetes' RBAC authorizer over a set of RBAC objects (`plugin/pkg/auth/authorizer/rbac`),
//! and the bootstrap policy equivalent to kubesim's fixed rule table
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`).
//!
//! [`RbacPolicy`] holds Roles, ClusterRoles, RoleBindings and ClusterRoleBindings in
//! `BTreeMap`s (decisions never depend on hash order) and answers whether a user with its
//! groups may make a request: any ClusterRoleBinding naming the user or one of its groups
//! whose ClusterRole has a rule allowing it, or, for a namespaced request, any RoleBinding
//! of that namespace doing the same through its Role or ClusterRole. Rules only add.
//!
//! [`RbacPolicy::bootstrap`] is the default policy: `cluster-admin` for `system:masters`,
//! `system:kube-controller-manager`, `system:kube-scheduler` and the scheduler's
//! leader-locking Role in `kube-system`, each bound to the component's group. Kubelets are
//! not in it: as in Kubernetes, the Node authorizer and NodeRestriction (code in
//! [`crate::authz`]) decide for `system:nodes`, since "its own Node, pods bound to it" is
//! not expressible as a rule.
//!
//! The apiserver authorizes from an `RbacPolicy` built by its own informers of the four
//! kinds ([`crate::rbac_cache`]); the bootstrap policy is written to the store as default
//! objects at startup. There is no other table: [`crate::authz`] keeps only the superuser
//! group and the Node authorizer.

use std::collections::BTreeMap;

use api::rbac::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RequestAttributes, Role, RoleBinding, RoleRef, RoleRefKind, Subject,
};
use api::{Object, ObjectMeta, Resource};

use crate::authz::{GROUP_CONTROLLER_MANAGER, GROUP_MASTERS, GROUP_SCHEDULER};

/// The RBAC objects an authorizer decides from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RbacPolicy {
    /// By (namespace, name).
    roles: BTreeMap<(String, String), Role>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    /// By (namespace, name).
    role_bindings: BTreeMap<(String, String), RoleBinding>,
    cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
}

fn namespaced_key(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone(), meta.name.clone())
}

impl RbacPolicy {
    /// An empty policy: it allows nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a Role.
    pub fn put_role(&mut self, role: Role) {
        self.roles.insert(namespaced_key(&role.metadata), role);
    }

    /// Adds or replaces a ClusterRole.
    pub fn put_cluster_role(&mut self, role: ClusterRole) {
        self.cluster_roles.insert(role.metadata.name.clone(), role);
    }

    /// Adds or replaces a RoleBinding.
    pub fn put_role_binding(&mut self, binding: RoleBinding) {
        self.role_bindings.insert(namespaced_key(&binding.metadata), binding);
    }

    /// Adds or replaces a ClusterRoleBinding.
    pub fn put_cluster_role_binding(&mut self, binding: ClusterRoleBinding) {
        self.cluster_role_bindings.insert(binding.metadata.name.clone(), binding);
    }

    /// Adds or replaces an RBAC object of any of the four kinds; `false` (and nothing
    /// changed) for an object of another kind.
    pub fn put(&mut self, object: Object) -> bool {
        match object {
            Object::Role(role) => self.put_role(role),
            Object::ClusterRole(role) => self.put_cluster_role(role),
            Object::RoleBinding(binding) => self.put_role_binding(binding),
            Object::ClusterRoleBinding(binding) => self.put_cluster_role_binding(binding),
            _ => return false,
        }
        true
    }

    /// Removes the object of RBAC kind `resource` named `namespace`/`name` (the namespace
    /// is ignored for the cluster-scoped kinds); whether it was there.
    pub fn remove(&mut self, resource: Resource, namespace: &str, name: &str) -> bool {
        let namespaced = || (namespace.to_string(), name.to_string());
        match resource {
            Resource::Roles => self.roles.remove(&namespaced()).is_some(),
            Resource::RoleBindings => self.role_bindings.remove(&namespaced()).is_some(),
            Resource::ClusterRoles => self.cluster_roles.remove(name).is_some(),
            Resource::ClusterRoleBindings => self.cluster_role_bindings.remove(name).is_some(),
            _ => false,
        }
    }

    /// Replaces every object of RBAC kind `resource` with `objects` (an informer's relist).
    /// Objects of another kind are ignored.
    pub fn replace(&mut self, resource: Resource, objects: Vec<Object>) {
        match resource {
            Resource::Roles => self.roles.clear(),
            Resource::RoleBindings => self.role_bindings.clear(),
            Resource::ClusterRoles => self.cluster_roles.clear(),
            Resource::ClusterRoleBindings => self.cluster_role_bindings.clear(),
            _ => return,
        }
        for object in objects.into_iter().filter(|o| o.resource() == resource) {
            self.put(object);
        }
    }

    /// Every object of the policy as the apiserver stores it: roles before the bindings
    /// that name them, each kind in key order.
    pub fn objects(&self) -> Vec<Object> {
        let roles = self.cluster_roles.values().cloned().map(Object::from);
        let roles = roles.chain(self.roles.values().cloned().map(Object::from));
        let bindings = self.cluster_role_bindings.values().cloned().map(Object::from);
        let bindings = bindings.chain(self.role_bindings.values().cloned().map(Object::from));
        roles.chain(bindings).collect()
    }

    /// Whether an object of `object`'s kind, namespace and name is in the policy (its
    /// content is not compared).
    pub fn contains(&self, object: &Object) -> bool {
        let meta = object.metadata();
        let namespaced = (meta.namespace.clone(), meta.name.clone());
        match object.resource() {
            Resource::Roles => self.roles.contains_key(&namespaced),
            Resource::RoleBindings => self.role_bindings.contains_key(&namespaced),
            Resource::ClusterRoles => self.cluster_roles.contains_key(&meta.name),
            Resource::ClusterRoleBindings => self.cluster_role_bindings.contains_key(&meta.name),
            _ => false,
        }
    }

    /// Whether a binding grants `user` (or one of `groups`) a rule that allows the request
    /// (Kubernetes `RBACAuthorizer.Authorize` with `VisitRulesFor`).
    pub fn allows(&self, user: &str, groups: &[String], attributes: &RequestAttributes<'_>) -> bool {
        let granted = |subjects: &[Subject]| subjects.iter().any(|s| s.applies_to(user, groups));
        let any_rule = |rules: &[PolicyRule]| rules.iter().any(|rule| rule.allows(attributes));
        let cluster_wide = self.cluster_role_bindings.values().any(|binding| {
            granted(&binding.subjects)
                && binding.role_ref.kind == RoleRefKind::ClusterRole
                && self.cluster_roles.get(&binding.role_ref.name).is_some_and(|role| any_rule(&role.rules))
        });
        if cluster_wide || attributes.namespace.is_empty() {
            return cluster_wide;
        }
        self.role_bindings
            .values()
            .filter(|binding| binding.metadata.namespace == attributes.namespace && granted(&binding.subjects))
            .any(|binding| match binding.role_ref.kind {
                RoleRefKind::ClusterRole => {
                    self.cluster_roles.get(&binding.role_ref.name).is_some_and(|role| any_rule(&role.rules))
                }
                RoleRefKind::Role => self
                    .roles
                    .get(&(attributes.namespace.to_string(), binding.role_ref.name.clone()))
                    .is_some_and(|role| any_rule(&role.rules)),
            })
    }

    /// The default policy, the rules of the built-in components (every group but
    /// `system:nodes`, see the module doc), written as objects at apiserver startup. Its
    /// objects carry Kubernetes' bootstrap names.
    pub fn bootstrap() -> Self {
        let reads = ["get", "list", "watch"];
        let mut policy = Self::new();
        let cluster_role =
            |name: &str, rules: Vec<PolicyRule>| ClusterRole { metadata: ObjectMeta::named("", name), rules };
        let cluster_binding = |name: &str, group: &str| ClusterRoleBinding {
            metadata: ObjectMeta::named("", name),
            subjects: vec![Subject::group(group)],
            role_ref: RoleRef { kind: RoleRefKind::ClusterRole, name: name.to_string() },
        };

        policy.put_cluster_role(cluster_role(CLUSTER_ADMIN, vec![PolicyRule::new(&["*"], &["*"], &["*"])]));
        policy.put_cluster_role_binding(cluster_binding(CLUSTER_ADMIN, GROUP_MASTERS));

        policy.put_cluster_role(cluster_role(
            CONTROLLER_MANAGER_ROLE,
            vec![
                PolicyRule::new(&reads, &["*"], &["*"]),
                PolicyRule::new(
                    &["*"],
                    &["apps"],
                    &["deployments", "deployments/status", "replicasets", "replicasets/status"],
                ),
                // Every verb on pods and their status; pods/binding is the scheduler's.
                PolicyRule::new(&["*"], &[""], &["pods", "pods/status"]),
                PolicyRule::new(&["*"], &["coordination.k8s.io"], &["leases", "leases/status"]),
                PolicyRule::new(&["update"], &[""], &["nodes/status"]),
                PolicyRule::new(&["create", "update"], &[""], &["events"]),
            ],
        ));
        policy.put_cluster_role_binding(cluster_binding(CONTROLLER_MANAGER_ROLE, GROUP_CONTROLLER_MANAGER));

        // Reads of every built-in but secrets, listed: RBAC has no "all but".
        policy.put_cluster_role(cluster_role(
            SCHEDULER_ROLE,
            vec![
                PolicyRule::new(&reads, &[""], &["namespaces", "nodes", "pods", "configmaps", "events"]),
                PolicyRule::new(&reads, &["apps"], &["deployments", "replicasets"]),
                PolicyRule::new(&reads, &["coordination.k8s.io"], &["leases"]),
                PolicyRule::new(&["create"], &[""], &["pods/binding"]),
                PolicyRule::new(&["create", "update"], &[""], &["events"]),
            ],
        ));
        policy.put_cluster_role_binding(cluster_binding(SCHEDULER_ROLE, GROUP_SCHEDULER));
        // Kubernetes' `system::leader-locking-kube-scheduler` Role. Unlike Kubernetes,
        // kubesim's create carries the object's name, so resourceNames limits creates too.
        let lease_namespace = crate::authz::SCHEDULER_LEASE_NAMESPACE;
        policy.put_role(Role {
            metadata: ObjectMeta::named(lease_namespace, SCHEDULER_LEADER_LOCKING),
            rules: vec![PolicyRule::new(&["create", "update"], &["coordination.k8s.io"], &["leases"])
                .named(&[crate::authz::SCHEDULER_LEASE_NAME])],
        });
        policy.put_role_binding(RoleBinding {
            metadata: ObjectMeta::named(lease_namespace, SCHEDULER_LEADER_LOCKING),
            subjects: vec![Subject::group(GROUP_SCHEDULER)],
            role_ref: RoleRef { kind: RoleRefKind::Role, name: SCHEDULER_LEADER_LOCKING.to_string() },
        });
        policy
    }
}

impl RbacPolicy {
    /// This policy plus Kubernetes' `system:controller:generic-garbage-collector`
    /// ClusterRole (`bootstrappolicy/controller_policy.go`: get, list, watch, patch, update
    /// and delete of everything) bound to the collector's identity,
    /// [`api::GARBAGE_COLLECTOR_USER`], as kube-controller-manager with
    /// `--use-service-account-credentials` runs it.
    pub fn with_garbage_collector_role(mut self) -> Self {
        let rules = vec![PolicyRule::new(&["get", "list", "watch", "patch", "update", "delete"], &["*"], &["*"])];
        self.put_cluster_role(ClusterRole { metadata: ObjectMeta::named("", GARBAGE_COLLECTOR_ROLE), rules });
        self.put_cluster_role_binding(ClusterRoleBinding {
            metadata: ObjectMeta::named("", GARBAGE_COLLECTOR_ROLE),
            subjects: vec![Subject::user(api::GARBAGE_COLLECTOR_USER)],
            role_ref: RoleRef { kind: RoleRefKind::ClusterRole, name: GARBAGE_COLLECTOR_ROLE.to_string() },
        });
        self
    }

    /// [`RbacPolicy::bootstrap`], plus, when the cluster runs Services, the endpoints
    /// controller's ClusterRole and its binding (Kubernetes' `system:controller:endpoint-
    /// controller` from `bootstrappolicy/controller_policy.go`: read Services and Pods,
    /// write Endpoints), bound to the controller-manager's group since kubesim's
    /// controllers run under the controller-manager's identity. Without Services the
    /// policy is exactly the old one, so nothing more is written at start.
    pub fn bootstrap_for(services: bool) -> Self {
        let mut policy = Self::bootstrap();
        if services {
            policy.put_cluster_role(ClusterRole {
                metadata: ObjectMeta::named("", ENDPOINT_CONTROLLER_ROLE),
                rules: vec![
                    PolicyRule::new(&["get", "list", "watch"], &[""], &["services", "pods"]),
                    PolicyRule::new(&["get", "list", "watch", "create", "update", "delete"], &[""], &["endpoints"]),
                ],
            });
            policy.put_cluster_role_binding(ClusterRoleBinding {
                metadata: ObjectMeta::named("", ENDPOINT_CONTROLLER_ROLE),
                subjects: vec![Subject::group(GROUP_CONTROLLER_MANAGER)],
                role_ref: RoleRef { kind: RoleRefKind::ClusterRole, name: ENDPOINT_CONTROLLER_ROLE.to_string() },
            });
        }
        policy
    }
}

/// The garbage collector's ClusterRole and ClusterRoleBinding.
pub const GARBAGE_COLLECTOR_ROLE: &str = "system:controller:generic-garbage-collector";

/// The endpoints controller's ClusterRole and ClusterRoleBinding (only in a cluster that
/// runs Services: [`RbacPolicy::bootstrap_for`]).
pub const ENDPOINT_CONTROLLER_ROLE: &str = "system:controller:endpoint-controller";

/// Kubernetes' superuser ClusterRole, bound to `system:masters`.
pub const CLUSTER_ADMIN: &str = "cluster-admin";
/// The controller-manager's ClusterRole and ClusterRoleBinding.
pub const CONTROLLER_MANAGER_ROLE: &str = "system:kube-controller-manager";
/// The scheduler's ClusterRole and ClusterRoleBinding.
pub const SCHEDULER_ROLE: &str = "system:kube-scheduler";
/// The scheduler's Role and RoleBinding in `kube-system` for its leader-election lease.
pub const SCHEDULER_LEADER_LOCKING: &str = "system::leader-locking-kube-scheduler";

#[cfg(test)]
mod tests {
    use super::*;
    use api::Verb;

    /// The bootstrap objects round-trip through `objects` and `put`, roles before the
    /// bindings that name them; `replace` and `remove` keep the other kinds.
    #[test]
    fn bootstrap_objects_rebuild_the_policy() {
        let bootstrap = RbacPolicy::bootstrap();
        let objects = bootstrap.objects();
        let kinds: Vec<Resource> = objects.iter().map(Object::resource).collect();
        let first_binding =
            kinds.iter().position(|k| matches!(k, Resource::RoleBindings | Resource::ClusterRoleBindings));
        assert!(first_binding
            .is_some_and(|i| kinds[..i].iter().all(|k| matches!(k, Resource::Roles | Resource::ClusterRoles))));
        let mut rebuilt = RbacPolicy::new();
        for object in objects.clone() {
            assert!(rebuilt.put(object));
        }
        assert_eq!(rebuilt, bootstrap);
        assert!(objects.iter().all(|o| rebuilt.contains(o)));
        rebuilt.replace(Resource::ClusterRoleBindings, vec![]);
        for object in &objects {
            assert_eq!(
                rebuilt.contains(object),
                object.resource() != Resource::ClusterRoleBindings,
                "{}",
                object.key()
            );
        }
        assert!(rebuilt.remove(Resource::Roles, "kube-system", SCHEDULER_LEADER_LOCKING));
        assert!(!rebuilt.remove(Resource::Roles, "kube-system", SCHEDULER_LEADER_LOCKING));
    }

    fn binding(namespace: &str, subject: Subject, role_ref: RoleRef) -> RoleBinding {
        RoleBinding { metadata: ObjectMeta::named(namespace, "grant"), subjects: vec![subject], role_ref }
    }

    /// A user is denied until a RoleBinding grants it a role in a namespace, allowed there
    /// (and only there) after, denied again once the binding is removed.
    #[test]
    fn a_role_binding_grants_within_its_namespace_until_removed() {
        let mut policy = RbacPolicy::bootstrap();
        let (user, groups) = ("alice", vec!["developers".to_string()]);
        let get = |ns: &'static str| RequestAttributes::of(Verb::Get, Resource::ConfigMaps, ns, "settings");
        assert!(!policy.allows(user, &groups, &get("team-a")));
        policy.put_role(Role {
            metadata: ObjectMeta::named("team-a", "reader"),
            rules: vec![PolicyRule::new(&["get"], &[""], &["configmaps"])],
        });
        assert!(!policy.allows(user, &groups, &get("team-a")), "a role alone grants nothing");
        let to_role = RoleRef { kind: RoleRefKind::Role, name: "reader".into() };
        policy.put_role_binding(binding("team-a", Subject::user(user), to_role.clone()));
        assert!(policy.allows(user, &groups, &get("team-a")));
        assert!(!policy.allows(user, &groups, &get("team-b")), "a RoleBinding grants only in its namespace");
        assert!(!policy.allows("bob", &[], &get("team-a")));
        let update = RequestAttributes::of(Verb::Update, Resource::ConfigMaps, "team-a", "settings");
        assert!(!policy.allows(user, &groups, &update), "only the rule's verbs");
        assert!(policy.remove(Resource::RoleBindings, "team-a", "grant"));
        assert!(!policy.allows(user, &groups, &get("team-a")));

        // A group subject and a ClusterRole through a RoleBinding: still one namespace.
        policy.put_cluster_role(ClusterRole {
            metadata: ObjectMeta::named("", "configmap-reader"),
            rules: vec![PolicyRule::new(&["get"], &[""], &["configmaps"])],
        });
        let to_cluster_role = RoleRef { kind: RoleRefKind::ClusterRole, name: "configmap-reader".into() };
        policy.put_role_binding(binding("team-a", Subject::group("developers"), to_cluster_role.clone()));
        assert!(policy.allows(user, &groups, &get("team-a")));
        assert!(!policy.allows(user, &groups, &get("team-b")));
        // A ClusterRoleBinding grants everywhere; one naming a Role grants nothing.
        policy.put_cluster_role_binding(ClusterRoleBinding {
            metadata: ObjectMeta::named("", "everywhere"),
            subjects: vec![Subject::user(user)],
            role_ref: to_cluster_role,
        });
        assert!(policy.allows(user, &groups, &get("team-b")));
        policy.put_cluster_role_binding(ClusterRoleBinding {
            metadata: ObjectMeta::named("", "everywhere"),
            subjects: vec![Subject::user(user)],
            role_ref: to_role,
        });
        assert!(!policy.allows(user, &groups, &get("team-b")));
    }
}
