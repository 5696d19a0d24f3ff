//! Validating admission: the checks Kubernetes' API validation makes on an object before
//! it may be stored. Pure functions of the object; a rejected request changes nothing.
//!
//! NamespaceLifecycle ("the namespace must exist") needs the store, so the registry folds it
//! into the create's transaction instead (see `registry.rs`).

use api::{ApiError, Object, PodSpec, PodTemplateSpec, Resource};

/// Objects larger than this, serialized, are refused with 413 (kubesim's limit, below the
/// store's 1.5 MiB request limit so that the store never sees an oversized object).
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// Kubernetes `validation.DNS1123SubdomainMaxLength`.
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// Kubernetes `validation.DNS1123LabelMaxLength`.
const DNS1123_LABEL_MAX_LEN: usize = 63;

fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::Invalid { field: field.to_string(), reason: reason.into() }
}

/// Validates an object about to be created or updated (422 Invalid with the field path, or
/// 413 when too large).
pub fn validate(object: &Object) -> Result<(), ApiError> {
    validate_metadata(object)?;
    match object {
        Object::Pod(pod) => validate_pod_spec("spec", &pod.spec)?,
        Object::ReplicaSet(rs) => validate_workload("spec", rs.spec.replicas, &rs.spec.selector, &rs.spec.template)?,
        Object::Deployment(d) => {
            validate_workload("spec", d.spec.replicas, &d.spec.selector, &d.spec.template)?;
            validate_deployment_strategy(&d.spec)?
        }
        Object::Event(event) => validate_event(event)?,
        Object::Custom(custom) => validate_custom(custom)?,
        Object::RoleBinding(binding) => validate_role_ref(&binding.role_ref, false)?,
        Object::ClusterRoleBinding(binding) => validate_role_ref(&binding.role_ref, true)?,
        Object::Namespace(_)
        | Object::Node(_)
        | Object::Lease(_)
        | Object::ConfigMap(_)
        | Object::Secret(_)
        | Object::Role(_)
        | Object::ClusterRole(_)
        | Object::Service(_)
        | Object::Endpoints(_) => {}
    }
    check_size(object)
}

/// Kubernetes' `ValidateEvent` (core/v1, legacy events): an Event lives in its involved
/// object's namespace; one about a cluster-scoped object (a Node) lives in `default`.
fn validate_event(event: &api::Event) -> Result<(), ApiError> {
    let involved = &event.involved_object.namespace;
    let namespace = &event.metadata.namespace;
    let expected = if involved.is_empty() { "default" } else { involved.as_str() };
    if namespace != expected {
        return Err(ApiError::Invalid {
            field: "involvedObject.namespace".into(),
            reason: format!("{involved:?} does not match event.namespace {namespace:?}"),
        });
    }
    if event.reason.is_empty() {
        return Err(ApiError::Invalid { field: "reason".into(), reason: "must be set".into() });
    }
    Ok(())
}

/// Kubernetes' `ValidateRoleBinding` / `ValidateClusterRoleBinding`
/// (`pkg/apis/rbac/validation`): the role is named, and a ClusterRoleBinding can only
/// grant a ClusterRole.
fn validate_role_ref(role_ref: &api::rbac::RoleRef, cluster_binding: bool) -> Result<(), ApiError> {
    if role_ref.name.is_empty() {
        return Err(invalid("roleRef.name", "Required value"));
    }
    if cluster_binding && role_ref.kind != api::rbac::RoleRefKind::ClusterRole {
        return Err(invalid("roleRef.kind", "Unsupported value: a ClusterRoleBinding grants only a ClusterRole"));
    }
    Ok(())
}

/// A custom object's spec and status must each be one JSON document (kubesim checks no
/// schema: a CRD's OpenAPI validation is the user's types' business, on their side).
fn validate_custom(custom: &api::DynamicObject) -> Result<(), ApiError> {
    for (field, value) in [("spec", &custom.spec), ("status", &custom.status)] {
        value.check().map_err(|e| invalid(field, format!("Invalid value: not a JSON document: {e}")))?;
    }
    Ok(())
}

/// Counts the bytes written to it: the size of a serialization without keeping it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 413 when the serialized object exceeds [`MAX_OBJECT_BYTES`].
pub fn check_size(object: &Object) -> Result<(), ApiError> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, object)
        .map_err(|e| ApiError::Internal { reason: format!("cannot serialize object: {e}") })?;
    let size = counter.0;
    if size > MAX_OBJECT_BYTES {
        return Err(ApiError::TooLarge {
            reason: format!(
                "{} {} is {size} bytes, limit {MAX_OBJECT_BYTES}",
                object.resource().kind(),
                object.metadata().name
            ),
        });
    }
    Ok(())
}

fn validate_metadata(object: &Object) -> Result<(), ApiError> {
    let meta = object.metadata();
    if Resource::RBAC.contains(&object.resource()) {
        validate_path_segment_name("metadata.name", &meta.name)?;
    } else {
        validate_dns1123_subdomain("metadata.name", &meta.name)?;
    }
    if object.resource().namespaced() {
        if meta.namespace.is_empty() {
            return Err(invalid("metadata.namespace", "Required value"));
        }
        validate_dns1123_label("metadata.namespace", &meta.namespace)?;
    } else if !meta.namespace.is_empty() {
        return Err(invalid(
            "metadata.namespace",
            format!("{} is cluster-scoped: must be empty", object.resource().kind()),
        ));
    }
    Ok(())
}

/// Kubernetes' `ValidateRBACName` (`path.IsValidPathSegmentName`): RBAC objects are named
/// like `system:kube-scheduler`, so any non-empty name but `.`, `..` and one holding `/`
/// or `%` (kubesim adds the subdomain's length bound).
fn validate_path_segment_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(invalid(field, "Required value"));
    }
    if name == "." || name == ".." || name.contains(['/', '%']) || name.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return Err(invalid(field, format!("Invalid value {name:?}: may not be '.', '..', or contain '/' or '%'")));
    }
    Ok(())
}

fn validate_workload(
    field: &str,
    replicas: i32,
    selector: &api::Labels,
    template: &PodTemplateSpec,
) -> Result<(), ApiError> {
    if replicas < 0 {
        return Err(invalid(
            &format!("{field}.replicas"),
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    if selector.is_empty() {
        return Err(invalid(&format!("{field}.selector"), "Required value: empty selector is invalid for apps/v1"));
    }
    if !api::selector_matches(selector, &template.labels) {
        return Err(invalid(
            &format!("{field}.template.metadata.labels"),
            "Invalid value: `selector` does not match template `labels`",
        ));
    }
    validate_pod_spec(&format!("{field}.template.spec"), &template.spec)
}

/// Kubernetes' `ValidateDeploymentSpec` for the rollout fields (apps/validation):
/// `ValidateRollingUpdateDeployment` — each budget non-negative, `maxUnavailable` at most
/// 100%, and not both zero ("may not be 0 when `maxSurge` is 0": such an update could
/// never make progress) — and a non-negative `revisionHistoryLimit`.
fn validate_deployment_strategy(spec: &api::DeploymentSpec) -> Result<(), ApiError> {
    if let Some(api::DeploymentStrategy::RollingUpdate(rolling)) = &spec.strategy {
        let field = "spec.strategy.rollingUpdate";
        let surge = rolling.max_surge.unwrap_or(api::IntOrPercent::Percent(25));
        let unavailable = rolling.max_unavailable.unwrap_or(api::IntOrPercent::Percent(25));
        for (name, value) in [("maxSurge", surge), ("maxUnavailable", unavailable)] {
            if value.value() < 0 {
                return Err(invalid(
                    &format!("{field}.{name}"),
                    format!("Invalid value: {value}: must be greater than or equal to 0"),
                ));
            }
        }
        if matches!(unavailable, api::IntOrPercent::Percent(p) if p > 100) {
            return Err(invalid(
                &format!("{field}.maxUnavailable"),
                format!("Invalid value: {unavailable}: must not be greater than 100%"),
            ));
        }
        if surge.value() == 0 && unavailable.value() == 0 {
            return Err(invalid(
                &format!("{field}.maxUnavailable"),
                format!("Invalid value: {unavailable}: may not be 0 when `maxSurge` is 0"),
            ));
        }
    }
    match spec.revision_history_limit {
        Some(limit) if limit < 0 => Err(invalid(
            "spec.revisionHistoryLimit",
            format!("Invalid value: {limit}: must be greater than or equal to 0"),
        )),
        _ => Ok(()),
    }
}

fn validate_pod_spec(field: &str, spec: &PodSpec) -> Result<(), ApiError> {
    if spec.containers.is_empty() {
        return Err(invalid(&format!("{field}.containers"), "Required value"));
    }
    for (idx, container) in spec.containers.iter().enumerate() {
        validate_dns1123_label(&format!("{field}.containers[{idx}].name"), &container.name)?;
        if container.image.is_empty() {
            return Err(invalid(&format!("{field}.containers[{idx}].image"), "Required value"));
        }
        let duplicate = spec.containers[..idx].iter().any(|c| c.name == container.name);
        if duplicate {
            return Err(invalid(
                &format!("{field}.containers[{idx}].name"),
                format!("Duplicate value: {:?}", container.name),
            ));
        }
    }
    if let Some(node_name) = &spec.node_name {
        validate_dns1123_subdomain(&format!("{field}.nodeName"), node_name)?;
    }
    Ok(())
}

/// Kubernetes `IsDNS1123Subdomain`: lowercase alphanumerics, '-' and '.', at most 253
/// characters, starting and ending with an alphanumeric.
pub fn validate_dns1123_subdomain(field: &str, value: &str) -> Result<(), ApiError> {
    validate_dns_name(field, value, DNS1123_SUBDOMAIN_MAX_LEN, true)
}

/// Kubernetes `IsDNS1123Label`: like a subdomain without '.', at most 63 characters.
pub fn validate_dns1123_label(field: &str, value: &str) -> Result<(), ApiError> {
    validate_dns_name(field, value, DNS1123_LABEL_MAX_LEN, false)
}

fn validate_dns_name(field: &str, value: &str, max_len: usize, dots_allowed: bool) -> Result<(), ApiError> {
    let what = if dots_allowed { "a lowercase RFC 1123 subdomain" } else { "a lowercase RFC 1123 label" };
    if value.is_empty() {
        return Err(invalid(field, "Required value"));
    }
    if value.len() > max_len {
        return Err(invalid(field, format!("Invalid value: must be no more than {max_len} characters")));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let allowed = |c: char| alnum(c) || c == '-' || (dots_allowed && c == '.');
    let starts_ends_alnum = value.starts_with(alnum) && value.ends_with(alnum) && value.chars().all(allowed);
    if !starts_ends_alnum {
        return Err(invalid(
            field,
            format!(
                "Invalid value: {value:?}: {what} must consist of lower case alphanumeric \
                 characters, '-'{} and must start and end with an alphanumeric character",
                if dots_allowed { " or '.'" } else { "" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{
        Container, Deployment, DeploymentSpec, Labels, Namespace, Node, ObjectMeta, Pod, ReplicaSet, ReplicaSetSpec,
    };

    /// Expects `object` to be admitted ("ok") or refused with "<status> <field>".
    fn check(object: Object, expect: &str) {
        let actual = match validate(&object) {
            Ok(()) => "ok".to_string(),
            Err(ApiError::Invalid { field, .. }) => format!("422 {field}"),
            Err(e) => format!("{} {e}", e.status_code()),
        };
        assert!(actual.starts_with(expect), "expected {expect:?}, got {actual:?} for {object:?}");
    }

    fn labels() -> Labels {
        [("app".to_string(), "nginx".to_string())].into()
    }

    fn pod_spec() -> api::PodSpec {
        api::PodSpec {
            node_name: None,
            containers: vec![Container { name: "nginx".into(), image: "nginx:1.25".into(), cpu_millis: 100 }],
        }
    }

    fn pod(ns: &str, name: &str) -> Pod {
        Pod { metadata: ObjectMeta::named(ns, name), spec: pod_spec(), ..Pod::default() }
    }

    fn deployment(replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta::named("default", "nginx-deployment"),
            spec: DeploymentSpec {
                replicas,
                selector: labels(),
                template: PodTemplateSpec { labels: labels(), spec: pod_spec() },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    /// Kubernetes `ValidateRollingUpdateDeployment`: both budgets zero (after defaulting
    /// the one left unset to 25%) is refused, as is a negative one or more than 100%
    /// unavailable; Recreate has no budget.
    #[test]
    fn rolling_update_budgets_are_validated() {
        use api::{DeploymentStrategy, IntOrPercent, RollingUpdateDeployment};
        let with = |surge, unavailable| {
            let mut d = deployment(5);
            d.spec.strategy = Some(DeploymentStrategy::RollingUpdate(RollingUpdateDeployment {
                max_surge: surge,
                max_unavailable: unavailable,
            }));
            Object::Deployment(d)
        };
        use IntOrPercent::{Int, Percent};
        check(with(Some(Int(1)), Some(Int(1))), "ok");
        check(with(Some(Percent(25)), Some(Int(0))), "ok");
        check(with(None, None), "ok");
        check(with(Some(Int(0)), None), "ok");
        check(with(Some(Int(0)), Some(Int(0))), "422 spec.strategy.rollingUpdate.maxUnavailable");
        check(with(Some(Percent(0)), Some(Int(0))), "422 spec.strategy.rollingUpdate.maxUnavailable");
        check(with(Some(Int(-1)), Some(Int(1))), "422 spec.strategy.rollingUpdate.maxSurge");
        check(with(Some(Int(1)), Some(Percent(101))), "422 spec.strategy.rollingUpdate.maxUnavailable");
        let mut recreate = deployment(5);
        recreate.spec.strategy = Some(DeploymentStrategy::Recreate);
        recreate.spec.revision_history_limit = Some(2);
        check(Object::Deployment(recreate.clone()), "ok");
        recreate.spec.revision_history_limit = Some(-1);
        check(Object::Deployment(recreate), "422 spec.revisionHistoryLimit");
    }

    #[test]
    fn names_are_dns1123_subdomains() {
        check(pod("default", "nginx-1.a").into(), "ok");
        check(pod("default", "a").into(), "ok");
        check(pod("default", &"a".repeat(253)).into(), "ok");
        check(pod("default", &"a".repeat(254)).into(), "422 metadata.name");
        check(pod("default", "").into(), "422 metadata.name");
        check(pod("default", "Nginx").into(), "422 metadata.name");
        check(pod("default", "-nginx").into(), "422 metadata.name");
        check(pod("default", "nginx.").into(), "422 metadata.name");
        check(pod("default", "ngi_nx").into(), "422 metadata.name");
    }

    #[test]
    fn namespaced_objects_need_a_namespace_and_cluster_scoped_ones_none() {
        check(pod("", "p").into(), "422 metadata.namespace");
        check(pod("a.b", "p").into(), "422 metadata.namespace");
        let node = |ns: &str| Node { metadata: ObjectMeta::named(ns, "worker-1"), ..Node::default() };
        check(node("").into(), "ok");
        check(node("default").into(), "422 metadata.namespace");
        let ns = Namespace { metadata: ObjectMeta::named("", "team-a") };
        check(ns.into(), "ok");
    }

    #[test]
    fn replicas_must_not_be_negative() {
        check(deployment(0).into(), "ok");
        check(deployment(3).into(), "ok");
        check(deployment(-1).into(), "422 spec.replicas");
        let rs = ReplicaSet {
            metadata: ObjectMeta::named("default", "rs"),
            spec: ReplicaSetSpec {
                replicas: -5,
                selector: labels(),
                template: PodTemplateSpec { labels: labels(), spec: pod_spec() },
            },
            ..ReplicaSet::default()
        };
        check(rs.into(), "422 spec.replicas");
    }

    #[test]
    fn workloads_need_a_selector_matching_their_template() {
        let mut d = deployment(1);
        d.spec.selector.clear();
        check(d.into(), "422 spec.selector");
        let mut d = deployment(1);
        d.spec.template.labels.clear();
        check(d.into(), "422 spec.template.metadata.labels");
        let mut d = deployment(1);
        d.spec.template.spec.containers.clear();
        check(d.into(), "422 spec.template.spec.containers");
    }

    #[test]
    fn pods_need_containers_with_names_and_images() {
        let mut p = pod("default", "p");
        p.spec.containers.clear();
        check(p.into(), "422 spec.containers");
        let mut p = pod("default", "p");
        p.spec.containers[0].image.clear();
        check(p.into(), "422 spec.containers[0].image");
        let mut p = pod("default", "p");
        p.spec.containers.push(p.spec.containers[0].clone());
        check(p.into(), "422 spec.containers[1].name");
    }

    #[test]
    fn objects_over_one_mebibyte_are_too_large() {
        let mut cm = api::ConfigMap { metadata: ObjectMeta::named("default", "big"), ..api::ConfigMap::default() };
        cm.data.insert("blob".into(), "x".repeat(MAX_OBJECT_BYTES));
        check(cm.into(), "413");
    }
}
