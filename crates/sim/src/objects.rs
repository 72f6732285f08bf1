//! The sObjects the simulated org knows: their fields, types and parent relationships.

use crate::value::FieldKind::{self, *};

/// One field of an sObject. `relationship` names the parent lookup (`Profile` for `ProfileId`)
/// and the object it points to.
#[derive(Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub kind: FieldKind,
    pub relationship: Option<(&'static str, &'static str)>,
}

/// An sObject type: its API name, Id key prefix and fields (in describe order).
#[derive(Debug)]
pub struct ObjectDef {
    pub name: &'static str,
    pub key_prefix: &'static str,
    pub fields: &'static [FieldDef],
}

impl ObjectDef {
    /// Field lookup is case-insensitive, as in SOQL.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The lookup field behind a relationship name (`Profile` -> index of `ProfileId`).
    pub fn relationship(&self, name: &str) -> Option<(usize, &'static str)> {
        self.fields.iter().enumerate().find_map(|(i, f)| match f.relationship {
            Some((rel, target)) if rel.eq_ignore_ascii_case(name) => Some((i, target)),
            _ => None,
        })
    }
}

const fn f(name: &'static str, kind: FieldKind) -> FieldDef {
    FieldDef { name, kind, relationship: None }
}

const fn r(name: &'static str, relationship: &'static str, target: &'static str) -> FieldDef {
    FieldDef { name, kind: Reference, relationship: Some((relationship, target)) }
}

pub static ORGANIZATION: ObjectDef = ObjectDef {
    name: "Organization",
    key_prefix: "00D",
    fields: &[
        f("Id", Id),
        f("Name", String),
        f("OrganizationType", String),
        f("InstanceName", String),
        f("IsSandbox", Boolean),
        f("CreatedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static USER_LICENSE: ObjectDef = ObjectDef {
    name: "UserLicense",
    key_prefix: "100",
    fields: &[
        f("Id", Id),
        f("Name", String),
        f("MasterLabel", String),
        f("LicenseDefinitionKey", String),
        f("Status", String),
        f("TotalLicenses", Int),
        f("UsedLicenses", Int),
        f("UsedLicensesLastUpdated", DateTime),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
        // Login-based licenses ("... Login") are billed by monthly unique logins (salesforce-api.md
        // section 7); other licenses leave these null.
        f("MonthlyLoginsEntitlement", Int),
        f("MonthlyLoginsUsed", Int),
    ],
};

pub static PROFILE: ObjectDef = ObjectDef {
    name: "Profile",
    key_prefix: "00e",
    fields: &[
        f("Id", Id),
        f("Name", String),
        f("Description", String),
        f("UserType", String),
        r("UserLicenseId", "UserLicense", "UserLicense"),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static PERMISSION_SET_LICENSE: ObjectDef = ObjectDef {
    name: "PermissionSetLicense",
    key_prefix: "0PL",
    fields: &[
        f("Id", Id),
        f("DeveloperName", String),
        f("MasterLabel", String),
        f("PermissionSetLicenseKey", String),
        f("Status", String),
        f("TotalLicenses", Int),
        f("UsedLicenses", Int),
        f("ExpirationDate", Date),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static PERMISSION_SET_LICENSE_ASSIGN: ObjectDef = ObjectDef {
    name: "PermissionSetLicenseAssign",
    key_prefix: "2LA",
    fields: &[
        f("Id", Id),
        r("AssigneeId", "Assignee", "User"),
        r("PermissionSetLicenseId", "PermissionSetLicense", "PermissionSetLicense"),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static PACKAGE_LICENSE: ObjectDef = ObjectDef {
    name: "PackageLicense",
    key_prefix: "050",
    fields: &[
        f("Id", Id),
        f("NamespacePrefix", String),
        f("Status", String),
        f("AllowedLicenses", Int),
        f("UsedLicenses", Int),
        f("ExpirationDate", DateTime),
        f("IsProvisioned", Boolean),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static USER_PACKAGE_LICENSE: ObjectDef = ObjectDef {
    name: "UserPackageLicense",
    key_prefix: "051",
    fields: &[
        f("Id", Id),
        r("PackageLicenseId", "PackageLicense", "PackageLicense"),
        r("UserId", "User", "User"),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
    ],
};

pub static USER: ObjectDef = ObjectDef {
    name: "User",
    key_prefix: "005",
    fields: &[
        f("Id", Id),
        f("Username", String),
        f("Email", String),
        f("Name", String),
        f("FirstName", String),
        f("LastName", String),
        f("Alias", String),
        f("IsActive", Boolean),
        f("UserType", String),
        r("ProfileId", "Profile", "Profile"),
        f("LastLoginDate", DateTime),
        f("CreatedDate", DateTime),
        f("LastModifiedDate", DateTime),
        f("SystemModstamp", DateTime),
        f("CompanyName", String),
        f("Department", String),
        f("Division", String),
        f("Title", String),
        f("City", String),
        f("Country", String),
        f("CountryCode", String),
        f("FederationIdentifier", String),
        r("ManagerId", "Manager", "User"),
        f("TimeZoneSidKey", String),
        f("UserPermissionsMarketingUser", Boolean),
        f("UserPermissionsSupportUser", Boolean),
    ],
};

/// A user's login state (SOAP API Developer Guide, "UserLogin"): one row per user. A frozen user
/// is still `IsActive` and holds its licenses, but cannot log in (salesforce-api.md section 7).
/// Freezing changes this row, not the User's. The key prefix is not documented (unsure).
pub static USER_LOGIN: ObjectDef = ObjectDef {
    name: "UserLogin",
    key_prefix: "06v",
    fields: &[
        f("Id", Id),
        r("UserId", "User", "User"),
        f("IsFrozen", Boolean),
        f("IsPasswordLocked", Boolean),
        f("LastModifiedDate", DateTime),
    ],
};

/// Salesforce's own usage metrics (API 52.0+, Object Reference "ActivePermSetLicenseMetric",
/// "ActiveProfileMetric", "ActiveFeatureLicenseMetric"): one row per license per day it was
/// collected, `ActiveUserCount` being the assigned users who logged in within 30 days. The key
/// prefixes are not documented (unsure).
pub static ACTIVE_PERM_SET_LICENSE_METRIC: ObjectDef = ObjectDef {
    name: "ActivePermSetLicenseMetric",
    key_prefix: "0mP",
    fields: &[
        f("Id", Id),
        r("PermissionSetLicenseId", "PermissionSetLicense", "PermissionSetLicense"),
        f("DeveloperName", String),
        f("MasterLabel", String),
        f("AssignedUserCount", Int),
        f("ActiveUserCount", Int),
        f("TotalLicenses", Int),
        f("MetricsDate", Date),
        f("SystemModstamp", DateTime),
    ],
};

pub static ACTIVE_PROFILE_METRIC: ObjectDef = ObjectDef {
    name: "ActiveProfileMetric",
    key_prefix: "0mR",
    fields: &[
        f("Id", Id),
        r("ProfileId", "Profile", "Profile"),
        r("UserLicenseId", "UserLicense", "UserLicense"),
        f("AssignedUserCount", Int),
        f("ActiveUserCount", Int),
        f("MetricsDate", Date),
        f("SystemModstamp", DateTime),
    ],
};

pub static ACTIVE_FEATURE_LICENSE_METRIC: ObjectDef = ObjectDef {
    name: "ActiveFeatureLicenseMetric",
    key_prefix: "0mF",
    fields: &[
        f("Id", Id),
        f("FeatureType", String),
        f("AssignedUserCount", Int),
        f("ActiveUserCount", Int),
        f("TotalLicenseCount", Int),
        f("MetricsDate", Date),
        f("SystemModstamp", DateTime),
    ],
};

/// Every object of the simulated org, in the order they are generated.
pub static ALL: [&ObjectDef; 12] = [
    &ORGANIZATION,
    &USER_LICENSE,
    &PROFILE,
    &PERMISSION_SET_LICENSE,
    &PACKAGE_LICENSE,
    &USER,
    &PERMISSION_SET_LICENSE_ASSIGN,
    &USER_PACKAGE_LICENSE,
    &USER_LOGIN,
    &ACTIVE_PERM_SET_LICENSE_METRIC,
    &ACTIVE_PROFILE_METRIC,
    &ACTIVE_FEATURE_LICENSE_METRIC,
];

/// Object lookup by API name, case-insensitive as in SOQL's FROM clause.
pub fn by_name(name: &str) -> Option<&'static ObjectDef> {
    ALL.iter().copied().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// Which fields the integration user can see in this org. Real orgs differ from the full list in
/// [`ALL`] (salesforce-api.md section 7):
/// - `*CountryCode` / `*StateCode` exist only with State and Country/Territory Picklists enabled
///   (Salesforce Help, "Let Users Select State and Country/Territory from Picklists");
/// - field-level security can hide any field that is not required from a user's profile.
///
/// An absent field is what it is on Salesforce: a query naming it answers 400 `INVALID_FIELD`
/// for the whole query, and the object's describe leaves it out.
#[derive(Debug, Clone, Default)]
pub struct FieldAccess {
    /// `(object, field)`, lower-cased.
    absent: Vec<(std::string::String, std::string::String)>,
}

impl FieldAccess {
    /// `state_country_picklists`: whether the org has the picklists (and so the code fields);
    /// `hidden`: `Object.Field` names hidden by field-level security.
    pub fn new(state_country_picklists: bool, hidden: &[std::string::String]) -> FieldAccess {
        let mut absent: Vec<(std::string::String, std::string::String)> = hidden
            .iter()
            .filter_map(|name| name.split_once('.'))
            .map(|(object, field)| (object.to_lowercase(), field.to_lowercase()))
            .collect();
        if !state_country_picklists {
            for object in ALL {
                for field in object.fields {
                    if field.name.ends_with("CountryCode") || field.name.ends_with("StateCode") {
                        absent.push((object.name.to_lowercase(), field.name.to_lowercase()));
                    }
                }
            }
        }
        FieldAccess { absent }
    }

    /// Whether `object.field` exists for the integration user (case-insensitive, as in SOQL).
    pub fn visible(&self, object: &str, field: &str) -> bool {
        !self.absent.iter().any(|(o, f)| o.eq_ignore_ascii_case(object) && f.eq_ignore_ascii_case(field))
    }
}
