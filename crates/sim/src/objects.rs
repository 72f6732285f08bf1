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

/// Every object of the simulated org, in the order they are generated.
pub static ALL: [&ObjectDef; 8] = [
    &ORGANIZATION,
    &USER_LICENSE,
    &PROFILE,
    &PERMISSION_SET_LICENSE,
    &PACKAGE_LICENSE,
    &USER,
    &PERMISSION_SET_LICENSE_ASSIGN,
    &USER_PACKAGE_LICENSE,
];

/// Object lookup by API name, case-insensitive as in SOQL's FROM clause.
pub fn by_name(name: &str) -> Option<&'static ObjectDef> {
    ALL.iter().copied().find(|o| o.name.eq_ignore_ascii_case(name))
}
