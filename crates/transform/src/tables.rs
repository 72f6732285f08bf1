//! Every table sfetl writes, defined once: columns, Arrow types, and their Salesforce sources.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// A column's type; timestamps are UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Boolean,
    Integer,
    Timestamp,
    Date,
    /// A list of text values (DuckDB `VARCHAR[]`).
    TextList,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
            ColumnType::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Salesforce field path (`Profile.UserLicense.Name`).
    Field(&'static str),
    /// When the run read the row.
    ExtractedAt,
    /// The configured company name that `CompanyName` matches (trimmed, case-insensitive), or null.
    Company,
    /// Every configured company name of the org.
    CompanyNames,
}

/// One column: its name, type, and where its values come from.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    pub source: Source,
    /// Whether the table makes sense without the column's field. Real orgs lack some fields
    /// (`CountryCode` without State and Country/Territory Picklists) or hide them by field-level
    /// security: an optional field that is missing leaves its column NULL, with a warning; a
    /// required one (Ids, the license links, activity, the incremental cursor) fails the table.
    pub required: bool,
}

impl Column {
    /// The same column, not required.
    const fn optional(self) -> Column {
        Column { required: false, ..self }
    }
}

/// A table: the sObject it is read from and its columns. The pipeline's org slug is not a column
/// of the files: it is the Hive partition (`users/org=acme/...`).
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub object: &'static str,
    pub columns: &'static [Column],
    /// Read incrementally: only rows whose `SystemModstamp` moved since the last run, merged by
    /// Id (the first column) into the table's latest state. Other tables are small and re-read.
    pub incremental: bool,
    /// Every row read is also kept in this table, a file per run, so that earlier versions of a
    /// row stay queryable after the table itself has moved on.
    pub history: Option<&'static str>,
    /// A datetime field that changes without moving `SystemModstamp`: a login updates
    /// `User.LastLoginDate` but is not an edit (salesforce-api.md section 7). An incremental read
    /// also asks for the rows where it moved since the last run.
    pub activity: Option<&'static str>,
    /// A SOQL condition the rows read must meet, so that only the rows that matter cross the wire.
    pub condition: Option<&'static str>,
    /// The object may not be readable (why, and what grants it): then the table is written empty
    /// for the org, with a warning, instead of failing it.
    pub optional_object: Option<&'static str>,
    /// Only rows whose date field lies within this many days before the run: objects that grow
    /// by a row per license per day.
    pub recent: Option<(&'static str, u32)>,
    /// An incremental table whose deleted rows Salesforce does not show (a removed assignment is
    /// gone, not in the recycle bin): after the changed rows are read, the table's row count is
    /// checked against Salesforce's `COUNT()`, and when they differ, each group of rows (this
    /// field: the license) whose count differs is read again whole.
    pub verified_by: Option<&'static str>,
}

impl TableDef {
    /// A table read in full on every run, every row of the object.
    const fn full(name: &'static str, object: &'static str, columns: &'static [Column]) -> TableDef {
        TableDef {
            name,
            object,
            columns,
            incremental: false,
            history: None,
            activity: None,
            condition: None,
            optional_object: None,
            recent: None,
            verified_by: None,
        }
    }

    /// The same, read incrementally, its deletions found by counting the rows of each `group`
    /// (see [`TableDef::verified_by`]).
    const fn counted_by(self, group: &'static str) -> TableDef {
        TableDef { incremental: true, verified_by: Some(group), ..self }
    }

    /// The same, for an object the org may not offer or the user may not read (why, for the
    /// warning).
    const fn optional_object(self, why: &'static str) -> TableDef {
        TableDef { optional_object: Some(why), ..self }
    }

    /// The same, reading only the rows whose date `field` lies within `days` before the run.
    const fn recent(self, field: &'static str, days: u32) -> TableDef {
        TableDef { recent: Some((field, days)), ..self }
    }

    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.arrow(), !matches!(c.source, Source::ExtractedAt | Source::Field("Id"))))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The position of the column read from this Salesforce field.
    pub fn column_of(&self, path: &str) -> Option<usize> {
        self.columns.iter().position(|c| matches!(c.source, Source::Field(field) if field == path))
    }

    /// Whether the table can do without this Salesforce field (see [`Column::required`]).
    pub fn field_is_optional(&self, path: &str) -> bool {
        self.columns.iter().any(|c| matches!(c.source, Source::Field(field) if field == path) && !c.required)
    }

    /// The SOQL field list, in column order.
    pub fn soql_fields(&self) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter_map(|c| match c.source {
                Source::Field(path) => Some(path),
                _ => None,
            })
            .collect()
    }

    pub fn by_name(name: &str) -> Option<&'static TableDef> {
        ALL.iter().copied().find(|t| t.name == name)
    }
}

const fn text(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Text, source: Source::Field(source), required: true }
}
const fn boolean(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Boolean, source: Source::Field(source), required: true }
}
const fn integer(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Integer, source: Source::Field(source), required: true }
}
const fn timestamp(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Timestamp, source: Source::Field(source), required: true }
}
const fn date(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Date, source: Source::Field(source), required: true }
}
const EXTRACTED_AT: Column =
    Column { name: "extracted_at", kind: ColumnType::Timestamp, source: Source::ExtractedAt, required: true };
const COMPANY: Column = Column { name: "company", kind: ColumnType::Text, source: Source::Company, required: false };
const COMPANY_NAMES: Column =
    Column { name: "company_names", kind: ColumnType::TextList, source: Source::CompanyNames, required: true };

pub static ORGS: TableDef = TableDef::full(
    "orgs",
    "Organization",
    &[
        text("org_id", "Id"),
        text("name", "Name"),
        text("edition", "OrganizationType"),
        text("instance", "InstanceName").optional(),
        boolean("is_sandbox", "IsSandbox"),
        COMPANY_NAMES,
        EXTRACTED_AT,
    ],
);

pub static USER_LICENSES: TableDef = TableDef::full(
    "user_licenses",
    "UserLicense",
    &[
        text("user_license_id", "Id"),
        text("name", "Name"),
        text("label", "MasterLabel"),
        text("definition_key", "LicenseDefinitionKey"),
        text("status", "Status"),
        integer("total", "TotalLicenses"),
        integer("used", "UsedLicenses"),
        timestamp("used_updated_at", "UsedLicensesLastUpdated").optional(),
        // Login-based licenses are billed by monthly unique logins, not seats.
        integer("monthly_logins_entitled", "MonthlyLoginsEntitlement").optional(),
        integer("monthly_logins_used", "MonthlyLoginsUsed").optional(),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
);

pub static PROFILES: TableDef = TableDef::full(
    "profiles",
    "Profile",
    &[
        text("profile_id", "Id"),
        text("name", "Name"),
        text("user_type", "UserType"),
        text("user_license_id", "UserLicenseId"),
        text("user_license_name", "UserLicense.Name"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
);

pub static USERS: TableDef = TableDef {
    name: "users",
    object: "User",
    incremental: true,
    history: Some("user_history"),
    activity: Some("LastLoginDate"),
    condition: None,
    optional_object: None,
    recent: None,
    verified_by: None,
    columns: &[
        text("user_id", "Id"),
        text("username", "Username"),
        text("email", "Email").optional(),
        text("name", "Name"),
        text("first_name", "FirstName").optional(),
        text("last_name", "LastName").optional(),
        text("alias", "Alias").optional(),
        boolean("is_active", "IsActive"),
        text("user_type", "UserType"),
        text("profile_id", "ProfileId"),
        text("profile_name", "Profile.Name"),
        text("user_license_id", "Profile.UserLicense.Id"),
        text("user_license_name", "Profile.UserLicense.Name"),
        text("company_name", "CompanyName").optional(),
        COMPANY,
        text("department", "Department").optional(),
        text("title", "Title").optional(),
        text("division", "Division").optional(),
        text("city", "City").optional(),
        text("country", "Country").optional(),
        text("country_code", "CountryCode").optional(),
        text("federation_id", "FederationIdentifier").optional(),
        text("manager_id", "ManagerId").optional(),
        text("time_zone", "TimeZoneSidKey").optional(),
        timestamp("last_login_at", "LastLoginDate"),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "LastModifiedDate"),
        timestamp("system_modstamp", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static PERMISSION_SET_LICENSES: TableDef = TableDef::full(
    "permission_set_licenses",
    "PermissionSetLicense",
    &[
        text("permission_set_license_id", "Id"),
        text("developer_name", "DeveloperName"),
        text("label", "MasterLabel"),
        text("license_key", "PermissionSetLicenseKey"),
        text("status", "Status"),
        integer("total", "TotalLicenses"),
        integer("used", "UsedLicenses"),
        date("expires_on", "ExpirationDate").optional(),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
);

/// Assignments change rarely and are the biggest tables after users: read incrementally, their
/// deletions caught by counting each license's assignments.
pub static PERMISSION_SET_LICENSE_ASSIGNMENTS: TableDef = TableDef::full(
    "permission_set_license_assignments",
    "PermissionSetLicenseAssign",
    &[
        text("assignment_id", "Id"),
        text("user_id", "AssigneeId"),
        text("permission_set_license_id", "PermissionSetLicenseId"),
        timestamp("assigned_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
)
.counted_by("PermissionSetLicenseId");

pub static PACKAGE_LICENSES: TableDef = TableDef::full(
    "package_licenses",
    "PackageLicense",
    &[
        text("package_license_id", "Id"),
        text("namespace", "NamespacePrefix"),
        text("status", "Status"),
        integer("allowed", "AllowedLicenses"),
        integer("used", "UsedLicenses"),
        timestamp("expires_at", "ExpirationDate").optional(),
        boolean("is_provisioned", "IsProvisioned").optional(),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
);

pub static USER_PACKAGE_LICENSES: TableDef = TableDef::full(
    "user_package_licenses",
    "UserPackageLicense",
    &[
        text("assignment_id", "Id"),
        text("user_id", "UserId"),
        text("package_license_id", "PackageLicenseId"),
        timestamp("assigned_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
)
.counted_by("PackageLicenseId");

/// Frozen and password-locked users (SOAP API Developer Guide, "UserLogin"): a frozen user is
/// active and holds its licenses but cannot log in. Freezing does not touch the User record, so
/// the table is re-read every run; only the few frozen or locked logins are asked for. Reading
/// UserLogin takes the "Manage Users" permission (Object Reference, "UserLogin": "To access this
/// object, you need the UserPermissions.ManageUsers permission"); it has no SystemModstamp.
pub static USER_LOGINS: TableDef = TableDef {
    name: "user_logins",
    object: "UserLogin",
    incremental: false,
    history: None,
    activity: None,
    condition: Some("IsFrozen = true OR IsPasswordLocked = true"),
    optional_object: Some(
        "frozen users are not collected (is_frozen stays false): UserLogin is not readable by the integration user; give it \"Manage Users\"",
    ),
    recent: None,
    verified_by: None,
    columns: &[
        text("user_login_id", "Id"),
        text("user_id", "UserId"),
        boolean("is_frozen", "IsFrozen"),
        boolean("is_password_locked", "IsPasswordLocked"),
        timestamp("modified_at", "LastModifiedDate").optional(),
        EXTRACTED_AT,
    ],
};

/// Why a usage metrics object may be missing.
const NO_METRICS: &str = "Salesforce's usage metrics are not collected: the org does not offer them (API 52.0+) or the user may not read them";

/// Salesforce's own usage metrics, per permission set license: assigned users, and those of them
/// who logged in within 30 days, as the org counted them on `metrics_date`. A row per license
/// per day: the last week's are read.
pub static PERM_SET_LICENSE_METRICS: TableDef = TableDef::full(
    "perm_set_license_metrics",
    "ActivePermSetLicenseMetric",
    &[
        text("metric_id", "Id"),
        text("permission_set_license_id", "PermissionSetLicenseId"),
        text("developer_name", "DeveloperName").optional(),
        integer("assigned_users", "AssignedUserCount"),
        integer("active_users", "ActiveUserCount"),
        integer("total", "TotalLicenses").optional(),
        date("metrics_date", "MetricsDate"),
        EXTRACTED_AT,
    ],
)
.optional_object(NO_METRICS)
.recent("MetricsDate", 7);

/// The same per profile (and so per user license).
pub static PROFILE_METRICS: TableDef = TableDef::full(
    "profile_metrics",
    "ActiveProfileMetric",
    &[
        text("metric_id", "Id"),
        text("profile_id", "ProfileId"),
        text("user_license_id", "UserLicenseId"),
        integer("assigned_users", "AssignedUserCount"),
        integer("active_users", "ActiveUserCount"),
        date("metrics_date", "MetricsDate"),
        EXTRACTED_AT,
    ],
)
.optional_object(NO_METRICS)
.recent("MetricsDate", 7);

/// The same per feature license (Marketing User, Service Cloud User, Knowledge User, ...).
pub static FEATURE_LICENSE_METRICS: TableDef = TableDef::full(
    "feature_license_metrics",
    "ActiveFeatureLicenseMetric",
    &[
        text("metric_id", "Id"),
        text("feature_type", "FeatureType"),
        integer("assigned_users", "AssignedUserCount"),
        integer("active_users", "ActiveUserCount"),
        integer("total", "TotalLicenseCount").optional(),
        date("metrics_date", "MetricsDate"),
        EXTRACTED_AT,
    ],
)
.optional_object(NO_METRICS)
.recent("MetricsDate", 7);

/// Every table, in extraction order. Each table's first column is the record Id.
pub static ALL: [&TableDef; 12] = [
    &ORGS,
    &USER_LICENSES,
    &PROFILES,
    &USERS,
    &PERMISSION_SET_LICENSES,
    &PERMISSION_SET_LICENSE_ASSIGNMENTS,
    &PACKAGE_LICENSES,
    &USER_PACKAGE_LICENSES,
    &USER_LOGINS,
    &PERM_SET_LICENSE_METRICS,
    &PROFILE_METRICS,
    &FEATURE_LICENSE_METRICS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_the_record_id_and_reads_system_modstamp_when_incremental() {
        for table in ALL {
            assert_eq!(table.columns[0].source, Source::Field("Id"), "{}", table.name);
            assert!(!table.schema().field(0).is_nullable());
            if table.incremental {
                assert!(table.soql_fields().contains(&"SystemModstamp"), "{}", table.name);
                assert!(!table.field_is_optional("SystemModstamp"), "{}: the cursor needs it", table.name);
            }
            assert!(!table.field_is_optional("Id"), "{}", table.name);
        }
        // What the license model joins and filters on cannot be missing.
        for field in ["IsActive", "UserType", "ProfileId", "Profile.UserLicense.Id", "LastLoginDate"] {
            assert!(USERS.soql_fields().contains(&field) && !USERS.field_is_optional(field), "{field}");
        }
        assert!(USERS.field_is_optional("CountryCode") && USERS.field_is_optional("Department"));
    }
}
