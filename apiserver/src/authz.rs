//! Authentication (bearer tokens) and authorization: kube-apiserver's chain of
//! authorizers, each allowing or passing the request on to the next.
//!
//! 1. `system:masters` may do everything, with no RBAC object involved (kube-apiserver's
//!    privileged-group authorizer, `authorizerfactory.NewPrivilegedGroups(
//!    user.SystemPrivilegedGroup)`, first in `pkg/kubeapiserver/authorizer`'s chain). This
//!    is how the operator's kubectl and the apiserver's own bootstrap writes proceed before
//!    any RBAC object exists.
//! 2. Kubelets (`system:node:<nodeName>` in `system:nodes`): Kubernetes' Node authorizer
//!    with NodeRestriction admission, code rather than rules, since "its own Node, pods
//!    bound to it" is not expressible as an RBAC rule. It allows only what the table below
//!    says; anything else falls through to RBAC.
//! 3. RBAC ([`crate::rbac::RbacPolicy`]) from the RBAC objects in the store, as this
//!    apiserver's informers saw them ([`crate::rbac_cache`]). The built-in components'
//!    rules are the bootstrap policy's default objects ([`crate::rbac::RbacPolicy::bootstrap`]):
//!    one source of truth, which an operator may change through the API like any object.
//!    Until the cache is ready a request that needs RBAC is answered 503 Unavailable, not
//!    403 (kube-apiserver is not ready before its RBAC hook and informers are).
//!
//! | kubelet of `<nodeName>` (Node authorizer)                                                                  |
//! |------------------------------------------------------------------------------------------------------------|
//! | get/list/watch pods and nodes; update status of and delete pods bound to `<nodeName>`; create/update/update status of Node `<nodeName>`; get/create/update Lease `kube-node-lease/<nodeName>`; create and update Events |
//!
//! The one decision that depends on stored state, "is this pod bound to the kubelet's
//! node?", is returned as [`Decision::AllowIfPodBoundTo`] and checked by the registry
//! against the stored pod it is about to write, inside the same optimistic-concurrency
//! transaction.
//!
//! Kubelets may read every pod, not only their own (Kubernetes' Node authorizer allows
//! list/watch of all pods too; kubelets filter by `spec.nodeName`).

use std::collections::BTreeMap;

use api::rbac::RequestAttributes;
use api::{ApiError, Credential, Resource, Verb};

use crate::config::UserInfo;
use crate::rbac::RbacPolicy;

/// Kubernetes' `system:masters`: the superuser group, allowed everything without RBAC.
pub const GROUP_MASTERS: &str = "system:masters";
/// The controller-manager's group, which the bootstrap policy binds its ClusterRole to.
pub const GROUP_CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The scheduler's group, which the bootstrap policy binds its roles to.
pub const GROUP_SCHEDULER: &str = "system:kube-scheduler";
/// Kubelets' group, decided by the Node authorizer.
pub const GROUP_NODES: &str = "system:nodes";
/// Kubelets authenticate as `system:node:<nodeName>` (Kubernetes' node identity).
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Node heartbeats live here (Kubernetes `kube-node-lease`).
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The namespace of the scheduler's leader-election lease.
pub const SCHEDULER_LEASE_NAMESPACE: &str = "kube-system";
/// The scheduler's leader-election lease, the only one its bootstrap Role may write.
pub const SCHEDULER_LEASE_NAME: &str = "kube-scheduler";

impl UserInfo {
    /// The cluster administrator (kubectl), in `system:masters`.
    pub fn admin() -> Self {
        Self::new("admin", &[GROUP_MASTERS])
    }
    /// kube-controller-manager's identity.
    pub fn controller_manager() -> Self {
        Self::new("system:kube-controller-manager", &[GROUP_CONTROLLER_MANAGER])
    }
    /// kube-scheduler's identity.
    pub fn scheduler() -> Self {
        Self::new("system:kube-scheduler", &[GROUP_SCHEDULER])
    }
    /// The kubelet of node `node_name`.
    pub fn node(node_name: &str) -> Self {
        Self::new(format!("{NODE_USER_PREFIX}{node_name}"), &[GROUP_NODES])
    }
}

/// Bearer-token authentication: the token names the user. A credential whose claimed user
/// is not the token's user is refused too, so that a misconfigured component is found at
/// its first request rather than acting under another identity.
pub fn authenticate(tokens: &BTreeMap<String, UserInfo>, credential: &Credential) -> Result<UserInfo, ApiError> {
    match tokens.get(&credential.token) {
        None => Err(ApiError::Unauthorized { reason: format!("unknown bearer token for user {:?}", credential.user) }),
        Some(user) if user.name != credential.user => Err(ApiError::Unauthorized {
            reason: format!("token belongs to user {:?}, not {:?}", user.name, credential.user),
        }),
        Some(user) => Ok(user.clone()),
    }
}

/// What a request asks to do (Kubernetes `authorizer.Attributes`). `name` is empty for
/// list and watch; `namespace` is empty for cluster-scoped resources and all-namespace
/// lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// What is asked.
    pub verb: Verb,
    /// Of which resource.
    pub resource: Resource,
    /// In which namespace (empty: cluster-scoped or all namespaces).
    pub namespace: &'a str,
    /// Of which object (empty: list and watch).
    pub name: &'a str,
}

/// What an authorizer allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// Allowed only if the stored pod is bound to this node (NodeRestriction). The
    /// registry checks it against the pod it is about to write.
    AllowIfPodBoundTo(String),
}

/// Decides whether `user` may do `attrs` through the chain of the module doc: masters,
/// then the Node authorizer for kubelets, then RBAC from `rbac` (`None`: the apiserver's
/// RBAC cache is not ready, so a request RBAC would decide is 503 Unavailable). Denied:
/// 403 naming the user, verb, resource and why.
pub fn authorize(user: &UserInfo, attrs: &Attributes<'_>, rbac: Option<&RbacPolicy>) -> Result<Decision, ApiError> {
    if user.in_group(GROUP_MASTERS) {
        return Ok(Decision::Allow);
    }
    let mut reasons = Vec::new();
    if user.in_group(GROUP_NODES) {
        let rule = match user.name.strip_prefix(NODE_USER_PREFIX) {
            Some(node_name) if !node_name.is_empty() => node(node_name, attrs),
            _ => Err(format!("members of {GROUP_NODES} must be named {NODE_USER_PREFIX}<nodeName>")),
        };
        match rule {
            Ok(decision) => return Ok(decision),
            Err(reason) => reasons.push(reason),
        }
    }
    let Some(policy) = rbac else {
        return Err(ApiError::Unavailable { reason: crate::rbac_cache::NOT_READY.into() });
    };
    let request = RequestAttributes::of(attrs.verb, attrs.resource, attrs.namespace, attrs.name);
    if policy.allows(&user.name, &user.groups, &request) {
        return Ok(Decision::Allow);
    }
    // Kubernetes' RBAC denial: `User "u" cannot <verb> resource "<resource>" in API group
    // "<group>" in the namespace "<ns>"`.
    let subresource = request.subresource.map(|s| format!("/{s}")).unwrap_or_default();
    let place = if request.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", request.namespace)
    };
    reasons.push(format!(
        "RBAC: user {:?} cannot {} resource \"{}{subresource}\" in API group {:?} {place}: no binding grants it",
        user.name, request.verb, request.resource, request.api_group
    ));
    Err(ApiError::Forbidden {
        user: user.name.clone(),
        verb: attrs.verb,
        resource: attrs.resource,
        reason: reasons.join("; "),
    })
}

/// Whether RBAC decides `user`'s request `attrs` in [`authorize`]'s chain: neither
/// `system:masters` nor the Node authorizer allows it first.
pub fn decided_by_rbac(user: &UserInfo, attrs: &Attributes<'_>) -> bool {
    if user.in_group(GROUP_MASTERS) {
        return false;
    }
    if user.in_group(GROUP_NODES) {
        if let Some(node_name) = user.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty()) {
            return node(node_name, attrs).is_err();
        }
    }
    true
}

type Rule = Result<Decision, String>;

fn is_read(verb: Verb) -> bool {
    matches!(verb, Verb::Get | Verb::List | Verb::Watch)
}

/// Kubernetes' Node authorizer + NodeRestriction admission, for the kubelet of `node_name`.
fn node(node_name: &str, attrs: &Attributes<'_>) -> Rule {
    use Resource::*;
    let own_object = attrs.name == node_name;
    match (attrs.resource, attrs.verb) {
        (Pods | Nodes, verb) if is_read(verb) => Ok(Decision::Allow),
        (Events, Verb::Create | Verb::Update) => Ok(Decision::Allow),
        (Pods, Verb::UpdateStatus | Verb::Delete) => Ok(Decision::AllowIfPodBoundTo(node_name.to_string())),
        (Pods, _) => Err(format!("node {node_name} may only update the status of and delete pods bound to it")),
        (Nodes, Verb::Create | Verb::Update | Verb::UpdateStatus) if own_object => Ok(Decision::Allow),
        (Nodes, _) => Err(format!("node {node_name} may only create and update its own Node object")),
        (Leases, Verb::Get | Verb::Create | Verb::Update) if attrs.namespace == NODE_LEASE_NAMESPACE && own_object => {
            Ok(Decision::Allow)
        }
        (Leases, _) => {
            Err(format!("node {node_name} may only get, create and update lease {NODE_LEASE_NAMESPACE}/{node_name}"))
        }
        (resource, _) => Err(format!("node {node_name} may not access {resource}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resource::*;
    use Verb::*;

    /// One row of what the chain decides with the bootstrap policy: who, what, and the
    /// expected decision ("allow", "allow-if-bound:<node>" or "deny"). The rows of the
    /// controller-manager and the scheduler are the rules of the fixed table the bootstrap
    /// policy replaced (kept as its specification).
    fn check(user: &UserInfo, verb: Verb, resource: Resource, ns: &str, name: &str, expect: &str) {
        check_with(Some(&RbacPolicy::bootstrap()), user, verb, resource, ns, name, expect)
    }

    fn check_with(
        policy: Option<&RbacPolicy>,
        user: &UserInfo,
        verb: Verb,
        resource: Resource,
        ns: &str,
        name: &str,
        expect: &str,
    ) {
        let attrs = Attributes { verb, resource, namespace: ns, name };
        let actual = match authorize(user, &attrs, policy) {
            Ok(Decision::Allow) => "allow".to_string(),
            Ok(Decision::AllowIfPodBoundTo(node)) => format!("allow-if-bound:{node}"),
            Err(ApiError::Forbidden { user: u, verb: v, resource: r, reason }) => {
                assert_eq!((u.as_str(), v, r), (user.name.as_str(), verb, resource));
                assert!(!reason.is_empty());
                "deny".to_string()
            }
            Err(ApiError::Unavailable { .. }) => "unavailable".to_string(),
            Err(other) => panic!("authorize returned a non-403 error: {other}"),
        };
        assert_eq!(actual, expect, "{} {verb:?} {resource} {ns}/{name}", user.name);
    }

    /// Masters need no RBAC object: allowed everything even before the cache is ready
    /// and with an empty policy (how the bootstrap writes it in the first place).
    #[test]
    fn masters_may_do_anything_without_rbac() {
        for resource in Resource::ALL {
            for verb in [Get, List, Watch, Create, Update, UpdateStatus, Delete, Bind] {
                check(&UserInfo::admin(), verb, resource, "default", "x", "allow");
                check_with(None, &UserInfo::admin(), verb, resource, "default", "x", "allow");
                check_with(Some(&RbacPolicy::new()), &UserInfo::admin(), verb, resource, "default", "x", "allow");
            }
        }
    }

    /// Before the RBAC cache is ready, whatever RBAC would decide is 503, not 403; the
    /// Node authorizer's own rules still answer.
    #[test]
    fn requests_rbac_would_decide_are_unavailable_until_the_cache_is_ready() {
        check_with(None, &UserInfo::controller_manager(), Create, Pods, "default", "p", "unavailable");
        check_with(None, &UserInfo::scheduler(), Bind, Pods, "default", "p", "unavailable");
        check_with(None, &UserInfo::new("mallory", &[]), Get, Pods, "default", "p", "unavailable");
        check_with(None, &UserInfo::node("worker-1"), Create, Leases, "kube-node-lease", "worker-1", "allow");
        check_with(None, &UserInfo::node("worker-1"), Get, Secrets, "default", "s", "unavailable");
        // Ready with no objects at all: RBAC denies everyone but masters.
        let empty = RbacPolicy::new();
        check_with(Some(&empty), &UserInfo::controller_manager(), Create, Pods, "default", "p", "deny");
    }

    /// RBAC objects are written only by masters: no bootstrap role grants a write of them
    /// (the controller-manager reads everything, so it may read them).
    #[test]
    fn only_masters_write_rbac_objects() {
        for user in [UserInfo::controller_manager(), UserInfo::scheduler(), UserInfo::node("worker-1")] {
            for resource in Resource::RBAC {
                let ns = if resource.namespaced() { "kube-system" } else { "" };
                for verb in [Create, Update, Delete] {
                    check(&user, verb, resource, ns, "grant", "deny");
                }
            }
        }
        check(&UserInfo::controller_manager(), List, Resource::RoleBindings, "", "", "allow");
        check(&UserInfo::scheduler(), List, Resource::RoleBindings, "", "", "deny");
    }

    /// A kubelet's request the Node authorizer does not allow falls through to RBAC, as in
    /// Kubernetes' authorizer chain.
    #[test]
    fn a_node_request_the_node_authorizer_refuses_falls_through_to_rbac() {
        let mut policy = RbacPolicy::bootstrap();
        check_with(Some(&policy), &UserInfo::node("worker-1"), Get, Secrets, "default", "s", "deny");
        policy.put_cluster_role(api::rbac::ClusterRole {
            metadata: api::ObjectMeta::named("", "secret-reader"),
            rules: vec![api::rbac::PolicyRule::new(&["get"], &[""], &["secrets"])],
        });
        policy.put_cluster_role_binding(api::rbac::ClusterRoleBinding {
            metadata: api::ObjectMeta::named("", "nodes-read-secrets"),
            subjects: vec![api::rbac::Subject::group(GROUP_NODES)],
            role_ref: api::rbac::RoleRef { kind: api::rbac::RoleRefKind::ClusterRole, name: "secret-reader".into() },
        });
        check_with(Some(&policy), &UserInfo::node("worker-1"), Get, Secrets, "default", "s", "allow");
    }

    #[test]
    fn controller_manager_table() {
        let cm = UserInfo::controller_manager();
        let table = [
            (Create, Deployments, "default", "d", "allow"),
            (Update, ReplicaSets, "default", "rs", "allow"),
            (Create, Pods, "default", "p", "allow"),
            (UpdateStatus, Pods, "default", "p", "allow"),
            (Delete, Pods, "default", "p", "allow"),
            (Bind, Pods, "default", "p", "deny"),
            (Update, Leases, "kube-system", "kube-controller-manager", "allow"),
            (List, Secrets, "", "", "allow"),
            (Watch, Nodes, "", "", "allow"),
            (UpdateStatus, Nodes, "", "worker-1", "allow"),
            (Update, Nodes, "", "worker-1", "deny"),
            (Delete, Nodes, "", "worker-1", "deny"),
            (Create, Namespaces, "", "ns", "deny"),
            (Create, Secrets, "default", "s", "deny"),
            (Create, Events, "default", "rs.1", "allow"),
            (Delete, Events, "default", "rs.1", "deny"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&cm, verb, resource, ns, name, expect);
        }
    }

    #[test]
    fn scheduler_table() {
        let s = UserInfo::scheduler();
        let table = [
            (List, Pods, "", "", "allow"),
            (Watch, Nodes, "", "", "allow"),
            (Bind, Pods, "default", "p", "allow"),
            (Create, Deployments, "default", "d", "deny"),
            (Update, Pods, "default", "p", "deny"),
            (UpdateStatus, Pods, "default", "p", "deny"),
            (Get, Secrets, "default", "s", "deny"),
            (Create, Leases, "kube-system", "kube-scheduler", "allow"),
            (Update, Leases, "kube-system", "kube-scheduler", "allow"),
            (Update, Leases, "kube-system", "kube-controller-manager", "deny"),
            (Delete, Leases, "kube-system", "kube-scheduler", "deny"),
            (Update, Events, "default", "p.1", "allow"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&s, verb, resource, ns, name, expect);
        }
    }

    #[test]
    fn node_restriction_table() {
        let n = UserInfo::node("worker-1");
        let table = [
            (Get, Pods, "default", "p", "allow"),
            (Watch, Pods, "", "", "allow"),
            (List, Nodes, "", "", "allow"),
            (UpdateStatus, Pods, "default", "p", "allow-if-bound:worker-1"),
            (Delete, Pods, "default", "p", "allow-if-bound:worker-1"),
            (Update, Pods, "default", "p", "deny"),
            (Create, Pods, "default", "p", "deny"),
            (Bind, Pods, "default", "p", "deny"),
            (Create, Nodes, "", "worker-1", "allow"),
            (UpdateStatus, Nodes, "", "worker-1", "allow"),
            (UpdateStatus, Nodes, "", "worker-2", "deny"),
            (Delete, Nodes, "", "worker-1", "deny"),
            (Create, Leases, "kube-node-lease", "worker-1", "allow"),
            (Update, Leases, "kube-node-lease", "worker-1", "allow"),
            (Get, Leases, "kube-node-lease", "worker-1", "allow"),
            (Update, Leases, "kube-node-lease", "worker-2", "deny"),
            (Update, Leases, "kube-system", "worker-1", "deny"),
            (Get, Secrets, "default", "s", "deny"),
            (Create, Deployments, "default", "d", "deny"),
            (Create, Events, "default", "p.1", "allow"),
            (Get, Events, "default", "p.1", "deny"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&n, verb, resource, ns, name, expect);
        }
    }

    /// Masters and what the Node authorizer allows are not RBAC's decisions; a kubelet's
    /// request the Node authorizer refuses, and everyone else's, are.
    #[test]
    fn rbac_decides_what_masters_and_the_node_authorizer_do_not() {
        let attrs = |verb, resource, namespace, name| Attributes { verb, resource, namespace, name };
        assert!(!decided_by_rbac(&UserInfo::admin(), &attrs(Delete, Secrets, "default", "s")));
        let node = UserInfo::node("worker-1");
        assert!(!decided_by_rbac(&node, &attrs(Get, Pods, "default", "p")));
        assert!(!decided_by_rbac(&node, &attrs(Update, Leases, "kube-node-lease", "worker-1")));
        assert!(decided_by_rbac(&node, &attrs(Get, Secrets, "default", "s")));
        assert!(decided_by_rbac(&UserInfo::controller_manager(), &attrs(Create, Pods, "default", "p")));
        assert!(decided_by_rbac(&UserInfo::new("alice", &[]), &attrs(Get, ConfigMaps, "default", "c")));
        assert!(decided_by_rbac(&UserInfo::new("worker-1", &[GROUP_NODES]), &attrs(Get, Pods, "default", "p")));
    }

    #[test]
    fn unknown_groups_and_malformed_node_identities_are_denied() {
        let nobody = UserInfo::new("mallory", &["system:authenticated"]);
        check(&nobody, Get, Pods, "default", "p", "deny");
        let bad_node = UserInfo::new("worker-1", &[GROUP_NODES]);
        check(&bad_node, Get, Pods, "default", "p", "deny");
    }

    #[test]
    fn authentication_needs_a_known_token_of_the_claimed_user() {
        let tokens: BTreeMap<String, UserInfo> = [("t-admin".to_string(), UserInfo::admin())].into();
        let cred = |user: &str, token: &str| Credential { user: user.into(), token: token.into() };
        assert_eq!(authenticate(&tokens, &cred("admin", "t-admin")), Ok(UserInfo::admin()));
        for bad in [cred("admin", "wrong"), cred("system:kube-scheduler", "t-admin")] {
            let err = authenticate(&tokens, &bad).unwrap_err();
            assert_eq!(err.status_code(), 401, "{err}");
        }
    }
}
