//! RBAC objects (Kubernetes `rbac.authorization.k8s.io/v1`): Role, ClusterRole,
//! RoleBinding, ClusterRoleBinding and their rules and subjects, with Kubernetes'
//! semantics: a rule allows verbs × apiGroups × resources (× resourceNames), rules only
//! add (there is no deny), a RoleBinding grants a Role or a ClusterRole within its
//! namespace, a ClusterRoleBinding grants a ClusterRole everywhere.
//!
//! The names in a rule are Kubernetes' request attributes, not kubesim's [`Verb`] enum:
//! an `UpdateStatus` is verb `update` on resource `pods/status`, a `Bind` is verb `create`
//! on `pods/binding`, and resources are named by their API plural (`nodes`, not the
//! storage prefix `minions`) within their API group (`""` for core, `apps`,
//! `coordination.k8s.io`, a custom kind's group). [`RequestAttributes::of`] does that
//! translation.
//!
//! They are stored objects ([`Resource::Roles`], [`Resource::RoleBindings`],
//! [`Resource::ClusterRoles`], [`Resource::ClusterRoleBindings`], in API group
//! `rbac.authorization.k8s.io`, under `/registry/roles/...` as kube-apiserver stores them);
//! the apiserver's authorizer decides from its own watch of them (`apiserver::rbac_cache`).

use serde::{Deserialize, Serialize};

use crate::objects::{ObjectMeta, Resource};
use crate::protocol::Verb;

/// Matches every verb, group, resource (Kubernetes `rbacv1.VerbAll`, `APIGroupAll`,
/// `ResourceAll`).
pub const ALL: &str = "*";

/// One rule of a role: every combination of its verbs, API groups and resources is
/// allowed, limited to the named objects when `resource_names` is not empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    /// `pods`, `pods/status` (a subresource), `*/status`, or `*`.
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

impl PolicyRule {
    /// A rule from string slices: `PolicyRule::new(&["get"], &[""], &["pods"])`.
    pub fn new(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Self {
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Self { verbs: owned(verbs), api_groups: owned(api_groups), resources: owned(resources), resource_names: vec![] }
    }

    /// The same rule limited to the named objects.
    pub fn named(mut self, names: &[&str]) -> Self {
        self.resource_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Kubernetes `RuleAllows`: verb, group, resource (with subresource) and name all match.
    pub fn allows(&self, attributes: &RequestAttributes<'_>) -> bool {
        let matches = |items: &[String], value: &str| items.iter().any(|item| item == ALL || item == value);
        let resource_matches = self.resources.iter().any(|rule| {
            rule == ALL
                || match attributes.subresource {
                    None => rule == attributes.resource,
                    Some(sub) => rule
                        .split_once('/')
                        .is_some_and(|(res, s)| (res == attributes.resource || res == ALL) && s == sub),
                }
        });
        matches(&self.verbs, attributes.verb)
            && matches(&self.api_groups, attributes.api_group)
            && resource_matches
            && (self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == attributes.name))
    }
}

/// What an RBAC rule is matched against (Kubernetes `authorizer.Attributes` of a resource
/// request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestAttributes<'a> {
    pub verb: &'static str,
    pub api_group: &'static str,
    /// The API plural (`pods`).
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    /// Empty for a cluster-scoped resource or an all-namespace list or watch.
    pub namespace: &'a str,
    /// Empty for list and watch.
    pub name: &'a str,
}

impl<'a> RequestAttributes<'a> {
    /// The Kubernetes attributes of a kubesim request.
    pub fn of(verb: Verb, resource: Resource, namespace: &'a str, name: &'a str) -> Self {
        let (verb, subresource) = match verb {
            Verb::Get => ("get", None),
            Verb::List => ("list", None),
            Verb::Watch => ("watch", None),
            Verb::Create => ("create", None),
            Verb::Update => ("update", None),
            Verb::UpdateStatus => ("update", Some("status")),
            Verb::Delete => ("delete", None),
            Verb::Bind => ("create", Some("binding")),
        };
        Self {
            verb,
            api_group: api_group(resource),
            resource: api_plural(resource),
            subresource,
            namespace: if resource.namespaced() { namespace } else { "" },
            name,
        }
    }
}

/// The API group a resource is served in (`""` is core).
pub fn api_group(resource: Resource) -> &'static str {
    match resource {
        Resource::Deployments | Resource::ReplicaSets => "apps",
        Resource::Leases => "coordination.k8s.io",
        Resource::Custom(definition) => definition.group,
        Resource::Roles | Resource::RoleBindings | Resource::ClusterRoles | Resource::ClusterRoleBindings => {
            "rbac.authorization.k8s.io"
        }
        Resource::Namespaces
        | Resource::Nodes
        | Resource::Pods
        | Resource::ConfigMaps
        | Resource::Secrets
        | Resource::Events
        | Resource::Services
        | Resource::Endpoints => "",
    }
}

/// The resource's name in the API and in RBAC rules (nodes are `nodes`, though stored
/// under `minions`).
pub fn api_plural(resource: Resource) -> &'static str {
    match resource {
        Resource::Nodes => "nodes",
        other => other.plural(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SubjectKind {
    User,
    Group,
}

/// Who a binding grants its role to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
}

impl Subject {
    pub fn user(name: &str) -> Self {
        Self { kind: SubjectKind::User, name: name.to_string() }
    }

    pub fn group(name: &str) -> Self {
        Self { kind: SubjectKind::Group, name: name.to_string() }
    }

    /// Whether this subject is the user `user` or one of `groups`.
    pub fn applies_to(&self, user: &str, groups: &[String]) -> bool {
        match self.kind {
            SubjectKind::User => self.name == user,
            SubjectKind::Group => groups.contains(&self.name),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoleRefKind {
    Role,
    ClusterRole,
}

/// The role a binding grants: a Role of the binding's namespace or a ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleRef {
    pub kind: RoleRefKind,
    pub name: String,
}

/// Rules within one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub metadata: ObjectMeta,
    pub rules: Vec<PolicyRule>,
}

/// Rules usable in every namespace (through a RoleBinding) or cluster-wide (through a
/// ClusterRoleBinding).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRole {
    pub metadata: ObjectMeta,
    pub rules: Vec<PolicyRule>,
}

/// Grants a Role or ClusterRole to subjects within the binding's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub metadata: ObjectMeta,
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

/// Grants a ClusterRole to subjects in every namespace and on cluster-scoped resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRoleBinding {
    pub metadata: ObjectMeta,
    pub subjects: Vec<Subject>,
    /// Must name a ClusterRole.
    pub role_ref: RoleRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_binding_are_subresources_matched_only_by_their_rules() {
        let status = RequestAttributes::of(Verb::UpdateStatus, Resource::Pods, "default", "p");
        assert!(!PolicyRule::new(&["update"], &[""], &["pods"]).allows(&status));
        assert!(PolicyRule::new(&["update"], &[""], &["pods/status"]).allows(&status));
        assert!(PolicyRule::new(&["update"], &[""], &["*/status"]).allows(&status));
        assert!(PolicyRule::new(&["*"], &["*"], &["*"]).allows(&status));
        let bind = RequestAttributes::of(Verb::Bind, Resource::Pods, "default", "p");
        assert!(PolicyRule::new(&["create"], &[""], &["pods/binding"]).allows(&bind));
        assert!(!PolicyRule::new(&["create"], &[""], &["pods"]).allows(&bind));
    }

    #[test]
    fn groups_names_and_resource_names_must_match() {
        let lease = RequestAttributes::of(Verb::Update, Resource::Leases, "kube-system", "kube-scheduler");
        let rule = PolicyRule::new(&["update"], &["coordination.k8s.io"], &["leases"]);
        assert!(rule.allows(&lease));
        assert!(!PolicyRule::new(&["update"], &[""], &["leases"]).allows(&lease));
        assert!(rule.clone().named(&["kube-scheduler"]).allows(&lease));
        assert!(!rule.named(&["kube-controller-manager"]).allows(&lease));
        let node = RequestAttributes::of(Verb::Get, Resource::Nodes, "", "worker-1");
        assert!(PolicyRule::new(&["get"], &[""], &["nodes"]).allows(&node));
    }
}
