//! A simulated org shaped like a real one, from the shape `sfetl check --capture` wrote: the same
//! fields visible on each object (the others hidden, as field-level security or a missing feature
//! hides them), the same unreadable objects, API versions, daily limit, and licenses with about
//! as many holders. The people are generated: the shape holds none.

use crate::generate::{CatalogueLicense, LicenseCatalogue, OrgSpec};
use crate::{SimConfig, objects};
use sfetl_extract::shape::OrgShape;

impl SimConfig {
    /// An org with `shape`'s fields, objects, versions, limit and licenses; `seed` picks the people.
    pub fn from_shape(shape: &OrgShape, seed: u64) -> SimConfig {
        let users = usize::try_from(shape.users).unwrap_or(usize::MAX).clamp(10, 2_000_000);
        let mut spec = OrgSpec::new(seed, users);
        spec.sandbox = shape.is_sandbox;
        let license = |name: &str, key: &str, user_type: &str, status: &str, total: i64, used: i64| CatalogueLicense {
            name: name.into(),
            key: key.into(),
            user_type: user_type.into(),
            status: status.into(),
            total,
            holders: u32::try_from(used.max(0)).unwrap_or(u32::MAX),
        };
        spec.licenses = Some(LicenseCatalogue {
            user: shape
                .user_licenses
                .iter()
                .map(|l| {
                    let user_type = l.user_types.first().map_or("Standard", String::as_str);
                    license(&l.name, &l.key, user_type, &l.status, l.total, l.used)
                })
                .collect(),
            permission_set: shape
                .permission_set_licenses
                .iter()
                .map(|l| license(&l.developer_name, &l.label, "", &l.status, l.total, l.used))
                .collect(),
            packages: shape
                .package_licenses
                .iter()
                .map(|l| license(&l.namespace, &l.namespace, "", &l.status, l.allowed, l.used))
                .collect(),
        });
        let mut config = SimConfig::new(spec);
        config.daily_api_max = shape.daily_api_requests.max(1);
        config.max_api_version = crate::API_VERSIONS
            .iter()
            .rev()
            .find(|(v, _)| shape.api_versions.iter().any(|offered| offered == v))
            .map(|(v, _)| v.to_string());
        for object in &shape.objects {
            let Some(def) = objects::by_name(&object.name) else { continue };
            if !object.readable {
                config.hidden_objects.push(def.name.to_string());
                continue;
            }
            for field in def.fields {
                if !object.fields.iter().any(|f| f.name.eq_ignore_ascii_case(field.name)) {
                    config.hidden_fields.push(format!("{}.{}", def.name, field.name));
                }
            }
        }
        config
    }
}
