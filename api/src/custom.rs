//! Custom resources: kinds a user defines without editing kubesim (Kubernetes'
//! CustomResourceDefinitions, served by apiextensions-apiserver).
//!
//! - [`CustomResourceDefinition`] names a kind (group, version, kind, plural) and its scope.
//!   A user writes it as a `'static` value and registers it with the apiserver at start
//!   (`ApiServerConfig::with_custom_resource`); [`Resource::Custom`] refers to it.
//! - [`DynamicObject`] is what the apiserver stores and serves for any custom kind: metadata
//!   plus spec and status as serialized JSON text ([`RawJson`]), like Kubernetes'
//!   `unstructured.Unstructured`. Objects live at `/registry/<group>/<plural>/<ns>/<name>`
//!   (cluster-scoped: `/registry/<group>/<plural>/<name>`), as apiextensions-apiserver
//!   stores them, with the built-ins' create / update / status update / delete / list /
//!   watch semantics.
//! - [`CustomResource`] and [`CustomObject`] are the typed view a user's code works with:
//!   spec and status as the user's own serde types, converted to and from
//!   [`Object::Custom`].
//!
//! Spec and status are kept as JSON *text*, not as `serde_json::Value`: a `Value` can only be
//! read back by a self-describing format (it needs `deserialize_any`), and an object passes
//! through other encodings than the store's JSON (the history is hashed as bincode). Text
//! survives every format. Serialize spec and status deterministically (no `HashMap` in
//! them; use `BTreeMap`), or a seed's stored values, and its trace hash, will vary.
//!
//! ```
//! use api::{CustomObject, CustomResource, CustomResourceDefinition, ObjectMeta, Object};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! struct DatabaseSpec { replicas: u32 }
//! #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
//! struct DatabaseStatus { primary: Option<String> }
//!
//! /// The marker type naming the kind.
//! struct Database;
//! impl CustomResource for Database {
//!     const DEFINITION: &'static CustomResourceDefinition =
//!         &CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
//!     type Spec = DatabaseSpec;
//!     type Status = DatabaseStatus;
//! }
//!
//! let db = CustomObject::<Database>::new(ObjectMeta::named("default", "orders"), DatabaseSpec { replicas: 3 });
//! let object: Object = db.to_object().unwrap();
//! assert_eq!(object.key(), "/registry/example.com/databases/default/orders");
//! let back = CustomObject::<Database>::from_object(object).unwrap();
//! assert_eq!(back.spec.replicas, 3);
//! assert_eq!(back.status, DatabaseStatus::default());
//! ```

use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::objects::{Object, ObjectMeta, Resource};

/// Whether a custom kind's objects live in namespaces (Kubernetes `spec.scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A custom kind: its API group and version, its kind and plural names, its scope.
/// (Kubernetes' `CustomResourceDefinition` spec with one served version; kube-rs'
/// `ApiResource`.) Every custom kind has a status subresource: an update keeps the stored
/// status, a status update changes only the status.
///
/// Write it as a `'static` value; register it with the apiserver, which serves only the
/// kinds it was started with. [`CustomResourceDefinition::validate`] says what a valid one
/// looks like.
///
/// ```
/// use api::{CustomResourceDefinition, Resource};
/// static BACKUPS: CustomResourceDefinition =
///     CustomResourceDefinition::cluster_scoped("example.com", "v1", "Backup", "backups");
/// assert_eq!(Resource::Custom(&BACKUPS).key("", "nightly"), "/registry/example.com/backups/nightly");
/// assert_eq!(Resource::Custom(&BACKUPS).to_string(), "backups.example.com");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CustomResourceDefinition {
    /// The API group, a DNS subdomain with at least one dot (`example.com`).
    pub group: &'static str,
    /// The one version served (`v1`).
    pub version: &'static str,
    /// The kind, CamelCase (`Database`).
    pub kind: &'static str,
    /// The plural resource name used in keys and URLs (`databases`).
    pub plural: &'static str,
    pub scope: Scope,
}

/// Why a [`CustomResourceDefinition`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("custom resource definition {definition}: {field} {value:?} is invalid: {reason}")]
    Invalid { definition: String, field: &'static str, value: String, reason: &'static str },
    #[error("custom resource {plural}.{group} is defined twice, differently: {first} and {second}")]
    Conflicting { group: String, plural: String, first: String, second: String },
    #[error("more than {MAX_DISTINCT_DEFINITIONS} distinct custom resource definitions in one process")]
    TooMany,
}

/// Bound on the distinct definitions one process reads back from serialized form (each is
/// kept for the process's lifetime, see [`Resource::Custom`]'s deserialization).
pub const MAX_DISTINCT_DEFINITIONS: usize = 1024;

impl CustomResourceDefinition {
    /// A namespaced kind: objects at `/registry/<group>/<plural>/<namespace>/<name>`.
    pub const fn namespaced(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Self {
        Self { group, version, kind, plural, scope: Scope::Namespaced }
    }

    /// A cluster-scoped kind: objects at `/registry/<group>/<plural>/<name>`.
    pub const fn cluster_scoped(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
    ) -> Self {
        Self { group, version, kind, plural, scope: Scope::Cluster }
    }

    /// `<group>/<version>`, as an object's `apiVersion` says it.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    pub fn namespaced_scope(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Checks the names as Kubernetes' CRD validation does: the group is a lowercase DNS
    /// subdomain with at least one dot (which also keeps `/registry/<group>/` apart from
    /// every built-in resource's `/registry/<plural>/`), version and plural are lowercase
    /// DNS labels, the kind starts with an uppercase letter and is alphanumeric.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let invalid = |field, value: &str, reason| DefinitionError::Invalid {
            definition: self.to_string(),
            field,
            value: value.to_string(),
            reason,
        };
        if !is_dns_name(self.group, 253, true) || !self.group.contains('.') {
            return Err(invalid("group", self.group, "must be a lowercase DNS subdomain with at least one dot"));
        }
        if !is_dns_name(self.version, 63, false) {
            return Err(invalid("version", self.version, "must be a lowercase DNS label"));
        }
        if !is_dns_name(self.plural, 63, false) {
            return Err(invalid("plural", self.plural, "must be a lowercase DNS label"));
        }
        let kind_ok = self.kind.starts_with(|c: char| c.is_ascii_uppercase())
            && self.kind.len() <= 63
            && self.kind.chars().all(|c| c.is_ascii_alphanumeric());
        if !kind_ok {
            return Err(invalid("kind", self.kind, "must start with an uppercase letter and be alphanumeric"));
        }
        Ok(())
    }
}

impl std::fmt::Display for CustomResourceDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = match self.scope {
            Scope::Namespaced => "namespaced",
            Scope::Cluster => "cluster-scoped",
        };
        write!(f, "{}.{} ({}/{} {}, {scope})", self.plural, self.group, self.group, self.version, self.kind)
    }
}

/// Kubernetes' `IsDNS1123Subdomain` (dots allowed) or `IsDNS1123Label`.
fn is_dns_name(value: &str, max_len: usize, dots_allowed: bool) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let allowed = |c: char| alnum(c) || c == '-' || (dots_allowed && c == '.');
    !value.is_empty()
        && value.len() <= max_len
        && value.starts_with(alnum)
        && value.ends_with(alnum)
        && value.chars().all(allowed)
}

/// The owned form of a definition, as read from a serialization.
#[derive(Deserialize)]
struct DefinitionFields {
    group: String,
    version: String,
    kind: String,
    plural: String,
    scope: Scope,
}

/// Every definition read back from a serialization so far, each kept once for the process's
/// lifetime. Only identity lives here, never behaviour: definitions compare by value, so
/// which copy a `Resource::Custom` points to changes nothing a run does or prints.
static READ_DEFINITIONS: Mutex<Vec<&'static CustomResourceDefinition>> = Mutex::new(Vec::new());

/// Deserializes the definition a [`Resource::Custom`] refers to. A `'static` reference
/// cannot come out of a deserializer, so the definition read is matched against those read
/// before (kept once each, at most [`MAX_DISTINCT_DEFINITIONS`]) and leaked when new.
/// An invalid definition is refused: it could name keys that collide with another kind's.
pub(crate) fn deserialize_definition<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<&'static CustomResourceDefinition, D::Error> {
    use serde::de::Error;
    let fields = DefinitionFields::deserialize(deserializer)?;
    let mut known = READ_DEFINITIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let same = |d: &&&CustomResourceDefinition| {
        d.group == fields.group
            && d.version == fields.version
            && d.kind == fields.kind
            && d.plural == fields.plural
            && d.scope == fields.scope
    };
    if let Some(found) = known.iter().find(same) {
        return Ok(found);
    }
    if known.len() >= MAX_DISTINCT_DEFINITIONS {
        return Err(D::Error::custom(DefinitionError::TooMany));
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let definition = CustomResourceDefinition {
        group: leak(fields.group),
        version: leak(fields.version),
        kind: leak(fields.kind),
        plural: leak(fields.plural),
        scope: fields.scope,
    };
    definition.validate().map_err(D::Error::custom)?;
    let definition: &'static CustomResourceDefinition = Box::leak(Box::new(definition));
    known.push(definition);
    Ok(definition)
}

/// A JSON document kept as text: a custom object's spec or status. `null` is the empty
/// value (a new object's status).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(String);

impl Default for RawJson {
    fn default() -> Self {
        Self::null()
    }
}

/// Why a custom object's spec or status cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum CustomDataError {
    #[error("cannot serialize the {part} of a {kind}: {source}")]
    Encode { kind: &'static str, part: &'static str, source: serde_json::Error },
    #[error("cannot read the {part} of {kind} {namespace}/{name}: {source}")]
    Decode { kind: &'static str, part: &'static str, namespace: String, name: String, source: serde_json::Error },
    #[error("expected a {expected} object, got a {actual}")]
    WrongKind { expected: String, actual: String },
}

impl RawJson {
    /// JSON `null`: no value.
    pub fn null() -> Self {
        Self("null".to_string())
    }

    /// Serializes `value` as JSON text.
    pub fn encode<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    /// Reads the text as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Takes `text` as it is; [`RawJson::check`] says whether it is JSON.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Whether the text is one well-formed JSON document.
    pub fn check(&self) -> Result<(), serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&self.0).map(|_| ())
    }

    pub fn is_null(&self) -> bool {
        self.0.trim() == "null"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Any custom object, as the apiserver stores and serves it (Kubernetes'
/// `unstructured.Unstructured`, kube-rs' `DynamicObject`): its kind's definition, metadata,
/// and spec and status as JSON text. Code that knows the kind works with
/// [`CustomObject`] instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicObject {
    #[serde(deserialize_with = "deserialize_definition")]
    pub definition: &'static CustomResourceDefinition,
    pub metadata: ObjectMeta,
    pub spec: RawJson,
    /// Written only through the status subresource; `null` until then.
    pub status: RawJson,
}

impl DynamicObject {
    pub fn resource(&self) -> Resource {
        Resource::Custom(self.definition)
    }
}

/// A custom kind as a user's code sees it: the definition, and the serde types of its spec
/// and status. Implement it on a marker type and work with [`CustomObject<Self>`]; see the
/// [module documentation](self) for an example.
pub trait CustomResource {
    /// The kind's definition; the apiserver must be started with it registered.
    const DEFINITION: &'static CustomResourceDefinition;
    type Spec: Serialize + DeserializeOwned;
    /// What a stored `null` status (a new object's) reads as: `Status::default()`.
    type Status: Serialize + DeserializeOwned + Default;

    /// The resource to name in gets, lists, watches and deletes.
    fn resource() -> Resource {
        Resource::Custom(Self::DEFINITION)
    }
}

/// A typed custom object: metadata, spec and status of kind `K` (kube-rs' `Object<P, U>`).
/// Converts to and from [`Object::Custom`], the form the client and apiserver carry.
pub struct CustomObject<K: CustomResource> {
    pub metadata: ObjectMeta,
    pub spec: K::Spec,
    pub status: K::Status,
}

impl<K: CustomResource> CustomObject<K> {
    /// A new object (status empty), ready to create.
    pub fn new(metadata: ObjectMeta, spec: K::Spec) -> Self {
        Self { metadata, spec, status: K::Status::default() }
    }

    /// The form the client sends (`ApiClient::create`, `update`, `update_status`).
    pub fn to_object(&self) -> Result<Object, CustomDataError> {
        let kind = K::DEFINITION.kind;
        let spec =
            RawJson::encode(&self.spec).map_err(|source| CustomDataError::Encode { kind, part: "spec", source })?;
        let status =
            RawJson::encode(&self.status).map_err(|source| CustomDataError::Encode { kind, part: "status", source })?;
        Ok(Object::Custom(DynamicObject { definition: K::DEFINITION, metadata: self.metadata.clone(), spec, status }))
    }

    /// Reads an object the apiserver returned. Fails when it is of another kind or its
    /// spec or status does not read as `K`'s types.
    pub fn from_object(object: Object) -> Result<Self, CustomDataError> {
        let dynamic = match object {
            Object::Custom(dynamic) if dynamic.definition == K::DEFINITION => dynamic,
            other => {
                return Err(CustomDataError::WrongKind {
                    expected: K::DEFINITION.to_string(),
                    actual: other.resource().to_string(),
                })
            }
        };
        let kind = K::DEFINITION.kind;
        let decode_error = |part, source| CustomDataError::Decode {
            kind,
            part,
            namespace: dynamic.metadata.namespace.clone(),
            name: dynamic.metadata.name.clone(),
            source,
        };
        let spec = dynamic.spec.decode().map_err(|e| decode_error("spec", e))?;
        let status = if dynamic.status.is_null() {
            K::Status::default()
        } else {
            dynamic.status.decode().map_err(|e| decode_error("status", e))?
        };
        Ok(Self { metadata: dynamic.metadata, spec, status })
    }
}

impl<K: CustomResource> Clone for CustomObject<K>
where
    K::Spec: Clone,
    K::Status: Clone,
{
    fn clone(&self) -> Self {
        Self { metadata: self.metadata.clone(), spec: self.spec.clone(), status: self.status.clone() }
    }
}

impl<K: CustomResource> std::fmt::Debug for CustomObject<K>
where
    K::Spec: std::fmt::Debug,
    K::Status: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(K::DEFINITION.kind)
            .field("metadata", &self.metadata)
            .field("spec", &self.spec)
            .field("status", &self.status)
            .finish()
    }
}

impl<K: CustomResource> PartialEq for CustomObject<K>
where
    K::Spec: PartialEq,
    K::Status: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.spec == other.spec && self.status == other.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static WIDGETS: CustomResourceDefinition =
        CustomResourceDefinition::namespaced("example.com", "v1", "Widget", "widgets");

    #[test]
    fn definitions_are_validated_like_kubernetes_crds() {
        assert_eq!(WIDGETS.validate(), Ok(()));
        let check = |d: CustomResourceDefinition, field: &str| match d.validate() {
            Err(DefinitionError::Invalid { field: f, .. }) => assert_eq!(f, field, "{d}"),
            other => panic!("{d}: expected an invalid {field}, got {other:?}"),
        };
        // A group without a dot could name `/registry/pods/...`, a built-in's keys.
        check(CustomResourceDefinition::namespaced("pods", "v1", "Widget", "widgets"), "group");
        check(CustomResourceDefinition::namespaced("Example.com", "v1", "Widget", "widgets"), "group");
        check(CustomResourceDefinition::namespaced("example.com", "", "Widget", "widgets"), "version");
        check(CustomResourceDefinition::namespaced("example.com", "v1", "Widget", "wid/gets"), "plural");
        check(CustomResourceDefinition::namespaced("example.com", "v1", "widget", "widgets"), "kind");
    }

    #[test]
    fn a_definition_read_back_equals_the_original_and_is_kept_once() {
        let json = serde_json::to_string(&Resource::Custom(&WIDGETS)).unwrap();
        let first: Resource = serde_json::from_str(&json).unwrap();
        let second: Resource = serde_json::from_str(&json).unwrap();
        assert_eq!(first, Resource::Custom(&WIDGETS));
        let (Resource::Custom(a), Resource::Custom(b)) = (first, second) else { panic!("not custom") };
        assert!(std::ptr::eq(a, b), "the same definition read twice is kept once");
    }

    #[test]
    fn an_invalid_definition_does_not_deserialize() {
        static DOTLESS_GROUP: CustomResourceDefinition =
            CustomResourceDefinition::namespaced("pods", "v1", "Widget", "widgets");
        let json = serde_json::to_string(&Resource::Custom(&DOTLESS_GROUP)).unwrap();
        let err = serde_json::from_str::<Resource>(&json).unwrap_err();
        assert!(err.to_string().contains("group"), "{err}");
    }

    #[test]
    fn raw_json_round_trips_and_null_is_empty() {
        let raw = RawJson::encode(&vec![1, 2]).unwrap();
        assert_eq!(raw.decode::<Vec<i32>>().unwrap(), vec![1, 2]);
        assert!(RawJson::default().is_null());
        assert!(RawJson::from_text("{").check().is_err());
    }
}
