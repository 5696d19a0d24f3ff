//! Properties of custom resource definitions over arbitrary names: a definition either is
//! refused with a typed error or names keys apart from every built-in's and every other
//! valid definition's, and reading one back never panics and never yields an invalid one.

use api::{CustomResourceDefinition, Resource, Scope};
use proptest::prelude::*;

/// Names from an alphabet that reaches both valid and invalid ones (upper case, dots,
/// slashes, dashes at the ends, empty).
fn name() -> impl Strategy<Value = String> {
    "[a-cA/.-]{0,6}"
}

fn definition() -> impl Strategy<Value = CustomResourceDefinition> {
    (name(), name(), name(), name(), any::<bool>()).prop_map(|(group, version, kind, plural, namespaced)| {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        CustomResourceDefinition {
            group: leak(group),
            version: leak(version),
            kind: leak(kind),
            plural: leak(plural),
            scope: if namespaced { Scope::Namespaced } else { Scope::Cluster },
        }
    })
}

proptest! {
    #[test]
    fn a_valid_definitions_keys_belong_to_no_built_in(d in definition()) {
        let definition: &'static CustomResourceDefinition = Box::leak(Box::new(d));
        if definition.validate().is_ok() {
            let resource = Resource::Custom(definition);
            let key = resource.key("default", "x");
            prop_assert!(key.starts_with(&resource.key_prefix()));
            prop_assert_eq!(Resource::from_key(&key), None, "{} collides with a built-in", key);
            prop_assert_eq!(Resource::from_key_among(&key, &[definition]), Some(resource));
        }
    }

    #[test]
    fn two_valid_definitions_with_different_names_share_no_key(a in definition(), b in definition()) {
        let (a, b): (&'static CustomResourceDefinition, &'static CustomResourceDefinition) =
            (Box::leak(Box::new(a)), Box::leak(Box::new(b)));
        if a.validate().is_ok() && b.validate().is_ok() && (a.group, a.plural) != (b.group, b.plural) {
            let key = Resource::Custom(a).key("default", "x");
            prop_assert!(!key.starts_with(&Resource::Custom(b).key_prefix()));
        }
    }

    #[test]
    fn reading_a_definition_back_gives_it_or_a_typed_error(d in definition()) {
        let definition: &'static CustomResourceDefinition = Box::leak(Box::new(d));
        let json = serde_json::to_string(&Resource::Custom(definition)).unwrap();
        match serde_json::from_str::<Resource>(&json) {
            Ok(read) => {
                prop_assert!(definition.validate().is_ok());
                prop_assert_eq!(read, Resource::Custom(definition));
            }
            Err(e) => {
                prop_assert!(definition.validate().is_err(), "a valid definition did not read back: {}", e);
            }
        }
    }
}
