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
}

impl TableDef {
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.arrow(), !matches!(c.source, Source::ExtractedAt | Source::Field("Id"))))
            .collect();
        Arc::new(Schema::new(fields))
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
    Column { name, kind: ColumnType::Text, source: Source::Field(source) }
}
const fn boolean(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Boolean, source: Source::Field(source) }
}
const fn integer(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Integer, source: Source::Field(source) }
}
const fn timestamp(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Timestamp, source: Source::Field(source) }
}
const fn date(name: &'static str, source: &'static str) -> Column {
    Column { name, kind: ColumnType::Date, source: Source::Field(source) }
}
const EXTRACTED_AT: Column = Column { name: "extracted_at", kind: ColumnType::Timestamp, source: Source::ExtractedAt };
const COMPANY: Column = Column { name: "company", kind: ColumnType::Text, source: Source::Company };
const COMPANY_NAMES: Column =
    Column { name: "company_names", kind: ColumnType::TextList, source: Source::CompanyNames };

pub static ORGS: TableDef = TableDef {
    name: "orgs",
    object: "Organization",
    incremental: false,
    history: None,
    columns: &[
        text("org_id", "Id"),
        text("name", "Name"),
        text("edition", "OrganizationType"),
        text("instance", "InstanceName"),
        boolean("is_sandbox", "IsSandbox"),
        COMPANY_NAMES,
        EXTRACTED_AT,
    ],
};

pub static USER_LICENSES: TableDef = TableDef {
    name: "user_licenses",
    object: "UserLicense",
    incremental: false,
    history: None,
    columns: &[
        text("user_license_id", "Id"),
        text("name", "Name"),
        text("label", "MasterLabel"),
        text("definition_key", "LicenseDefinitionKey"),
        text("status", "Status"),
        integer("total", "TotalLicenses"),
        integer("used", "UsedLicenses"),
        timestamp("used_updated_at", "UsedLicensesLastUpdated"),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static PROFILES: TableDef = TableDef {
    name: "profiles",
    object: "Profile",
    incremental: false,
    history: None,
    columns: &[
        text("profile_id", "Id"),
        text("name", "Name"),
        text("user_type", "UserType"),
        text("user_license_id", "UserLicenseId"),
        text("user_license_name", "UserLicense.Name"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static USERS: TableDef = TableDef {
    name: "users",
    object: "User",
    incremental: true,
    history: Some("user_history"),
    columns: &[
        text("user_id", "Id"),
        text("username", "Username"),
        text("email", "Email"),
        text("name", "Name"),
        text("first_name", "FirstName"),
        text("last_name", "LastName"),
        text("alias", "Alias"),
        boolean("is_active", "IsActive"),
        text("user_type", "UserType"),
        text("profile_id", "ProfileId"),
        text("profile_name", "Profile.Name"),
        text("user_license_id", "Profile.UserLicense.Id"),
        text("user_license_name", "Profile.UserLicense.Name"),
        text("company_name", "CompanyName"),
        COMPANY,
        text("department", "Department"),
        text("title", "Title"),
        text("division", "Division"),
        text("city", "City"),
        text("country", "Country"),
        text("country_code", "CountryCode"),
        text("federation_id", "FederationIdentifier"),
        text("manager_id", "ManagerId"),
        text("time_zone", "TimeZoneSidKey"),
        timestamp("last_login_at", "LastLoginDate"),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "LastModifiedDate"),
        timestamp("system_modstamp", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static PERMISSION_SET_LICENSES: TableDef = TableDef {
    name: "permission_set_licenses",
    object: "PermissionSetLicense",
    incremental: false,
    history: None,
    columns: &[
        text("permission_set_license_id", "Id"),
        text("developer_name", "DeveloperName"),
        text("label", "MasterLabel"),
        text("license_key", "PermissionSetLicenseKey"),
        text("status", "Status"),
        integer("total", "TotalLicenses"),
        integer("used", "UsedLicenses"),
        date("expires_on", "ExpirationDate"),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static PERMISSION_SET_LICENSE_ASSIGNMENTS: TableDef = TableDef {
    name: "permission_set_license_assignments",
    object: "PermissionSetLicenseAssign",
    incremental: false,
    history: None,
    columns: &[
        text("assignment_id", "Id"),
        text("user_id", "AssigneeId"),
        text("permission_set_license_id", "PermissionSetLicenseId"),
        timestamp("assigned_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static PACKAGE_LICENSES: TableDef = TableDef {
    name: "package_licenses",
    object: "PackageLicense",
    incremental: false,
    history: None,
    columns: &[
        text("package_license_id", "Id"),
        text("namespace", "NamespacePrefix"),
        text("status", "Status"),
        integer("allowed", "AllowedLicenses"),
        integer("used", "UsedLicenses"),
        timestamp("expires_at", "ExpirationDate"),
        boolean("is_provisioned", "IsProvisioned"),
        timestamp("created_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

pub static USER_PACKAGE_LICENSES: TableDef = TableDef {
    name: "user_package_licenses",
    object: "UserPackageLicense",
    incremental: false,
    history: None,
    columns: &[
        text("assignment_id", "Id"),
        text("user_id", "UserId"),
        text("package_license_id", "PackageLicenseId"),
        timestamp("assigned_at", "CreatedDate"),
        timestamp("modified_at", "SystemModstamp"),
        EXTRACTED_AT,
    ],
};

/// Every table, in extraction order. Each table's first column is the record Id.
pub static ALL: [&TableDef; 8] = [
    &ORGS,
    &USER_LICENSES,
    &PROFILES,
    &USERS,
    &PERMISSION_SET_LICENSES,
    &PERMISSION_SET_LICENSE_ASSIGNMENTS,
    &PACKAGE_LICENSES,
    &USER_PACKAGE_LICENSES,
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
            }
        }
    }
}
