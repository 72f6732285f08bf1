//! The license model: what a license manager queries, derived from the raw copies of the
//! Salesforce objects in [`crate::tables`].
//!
//! Derived tables are written as Parquet per org, like the raw ones, so BI tools reading the files
//! see them too; analytics views exist only in `warehouse.duckdb`. Both are DuckDB SQL in which
//! `{table}` stands for that table's files: the load stage expands it (to one org's partition
//! file when deriving a table, to every org's files in a view). A derived table's columns and
//! their types are declared here, and its SQL names every column it selects: the load stage
//! checks the result against the declaration, by name, order and type, before writing a row.

use crate::tables::ColumnType::{self, Boolean, Integer, Text, Timestamp};
use arrow::datatypes::{Field, Schema, SchemaRef};
use std::sync::Arc;

/// A table computed from other tables of the same org, after they are written.
#[derive(Debug)]
pub struct DerivedTable {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnType)],
    /// The tables the SQL reads; without a file for each, the table is not derived.
    pub inputs: &'static [&'static str],
    pub sql: &'static str,
    /// Keeps every run's rows (a file per run) instead of replacing them; the rows start with a
    /// `run_id` column before `columns`, which the SQL selects as `{run_id}`.
    pub per_run: bool,
    /// Every column the SQL reads, per input, when declared: an incremental run derives the table
    /// again only when these columns' values changed (a login changes a user, not who holds what).
    /// Empty: derived every run. A test derives the table over files of these columns alone.
    pub reads: &'static [(&'static str, &'static [&'static str])],
    /// The same rows as `sql`'s, made by sfetl itself in one pass over the inputs; when set, the
    /// pipeline derives the table this way, and `sql` stays its definition (a test holds the two
    /// equal) and what its fingerprint hashes.
    pub kept_by_key: Option<KeptByKey>,
    /// The same rows as `sql`'s, counted by sfetl itself in one pass ([`CountedByKey`]); as with
    /// `kept_by_key`, `sql` stays the table's definition and a test holds the two equal.
    pub counted_by_key: Option<CountedByKey>,
}

/// A table made of columns picked from inputs (`sql`'s `UNION ALL` of selections), the rows of
/// some kept only when their key is one of the `keys` input's (`WHERE user_id IN (SELECT user_id
/// FROM {users})`), with the keys held in a map. DuckDB's hash join on a million users' Ids took a
/// run to its peak memory, and deriving in pieces to bound it read every input four times.
#[derive(Debug)]
pub struct KeptByKey {
    /// The input whose `key` column holds the keys (a NULL key is none).
    pub keys: &'static str,
    pub key: &'static str,
    pub parts: &'static [Part],
}

/// One selection of a [`KeptByKey`] table: a value per column of the table, from `input`.
#[derive(Debug)]
pub struct Part {
    pub input: &'static str,
    pub cells: &'static [Cell],
    pub keep: Keep,
}

/// A column's value in a [`Part`].
#[derive(Debug)]
pub enum Cell {
    /// The input's column of that name (of the table column's type).
    Column(&'static str),
    /// The same text on every row.
    Text(&'static str),
    Null,
}

/// The rows of a [`Part`] kept.
#[derive(Debug)]
pub enum Keep {
    /// Those whose value in this column is not NULL.
    NotNull(&'static str),
    /// Those whose key is one of the keys (`IN`: a NULL key never is).
    KeyAmongKeys,
}

/// A table of counts over a derived table (`rows`): its rows per their own `by` columns and per
/// their key's `group` in `keys`, and how many of them have the key's `flag` (a boolean) true.
/// sfetl counts them in one pass with each key's group and flag held in a map (12 bytes a key),
/// then `sql` completes the counts, `{counts}` (columns `group`, the `by` columns, `rows` and
/// `flagged`, a row per group: held in memory). DuckDB's join of a million users' rows with
/// their licenses was a run's peak memory, and deriving it in pieces took 0.7 s of 11.
#[derive(Debug)]
pub struct CountedByKey {
    /// The raw input with a row per key: `key`, `group` (text) and `flag`.
    pub keys: &'static str,
    pub key: &'static str,
    pub group: &'static str,
    pub flag: &'static str,
    /// The table counted (derived earlier): `key` and the `by` columns (text).
    pub rows: &'static str,
    pub by: &'static [&'static str],
    pub sql: &'static str,
}

/// The placeholder of the counts in [`CountedByKey::sql`].
pub const COUNTS: &str = "counts";

impl DerivedTable {
    pub fn schema(&self) -> SchemaRef {
        let run_id = self.per_run.then(|| Field::new("run_id", Text.arrow(), false));
        let columns = self.columns.iter().map(|(name, kind)| Field::new(*name, kind.arrow(), true));
        Arc::new(Schema::new(run_id.into_iter().chain(columns).collect::<Vec<_>>()))
    }
}

const SUBSCRIPTION_COLUMNS: &[(&str, ColumnType)] = &[
    ("subscription_id", Text),
    ("kind", Text),
    ("name", Text),
    ("label", Text),
    ("status", Text),
    ("is_paid", Boolean),
    ("total", Integer),
    ("used", Integer),
    ("available", Integer),
    ("expires_at", Timestamp),
    ("namespace", Text),
    ("extracted_at", Timestamp),
    ("license_kind", Text),
    ("product", Text),
    ("monthly_logins_entitled", Integer),
    ("monthly_logins_used", Integer),
    ("holders_collected", Boolean),
];

/// One row per license of any kind. `total` (and `available`) is NULL for an unlimited (site)
/// package license, `used` where Salesforce reports no count (-1). `license_kind` comes from the
/// rulebook ([`crate::rulebook`], `{rulebook}`), overridden per org by `free_licenses` and
/// `paid_licenses` (`{free_licenses}`, `{paid_licenses}`, `VARCHAR[]`); a package in `Free` status
/// is free; an unknown key is `unknown`, and its `is_paid` NULL. `holders_collected` is false for
/// a user license whose every profile has a user type left out of `users`
/// (`{excluded_user_types}`, lower case): its holders are not counted, rather than counted as 0.
pub static SUBSCRIPTIONS: DerivedTable = DerivedTable {
    name: "subscriptions",
    columns: SUBSCRIPTION_COLUMNS,
    inputs: &["user_licenses", "permission_set_licenses", "package_licenses", "profiles"],
    per_run: false,
    reads: &[],
    kept_by_key: None,
    counted_by_key: None,
    sql: "WITH rules AS {rulebook},
          licenses AS (
              SELECT user_license_id AS subscription_id, 'user_license' AS kind, name, label, status,
                     definition_key AS rule_key, total, used, total - used AS available,
                     CAST(NULL AS TIMESTAMP) AS expires_at, CAST(NULL AS VARCHAR) AS namespace, extracted_at,
                     monthly_logins_entitled, monthly_logins_used,
                     -- Not collected: the license's profiles are all of user types left out of users.
                     NOT EXISTS (SELECT 1 FROM {profiles} p WHERE p.user_license_id = l.user_license_id
                                 AND list_contains({excluded_user_types}, lower(p.user_type)))
                     OR EXISTS (SELECT 1 FROM {profiles} p WHERE p.user_license_id = l.user_license_id
                                AND NOT list_contains({excluded_user_types}, lower(p.user_type))) AS holders_collected,
                     name LIKE '%Login' OR definition_key LIKE '%Login' AS named_login, false AS free_status
              FROM {user_licenses} l
              UNION ALL BY NAME
              SELECT permission_set_license_id AS subscription_id, 'permission_set_license' AS kind,
                     developer_name AS name, label, status, developer_name AS rule_key, total, used,
                     total - used AS available, CAST(expires_on AS TIMESTAMP) AS expires_at, extracted_at,
                     true AS holders_collected, false AS named_login, false AS free_status
              FROM {permission_set_licenses}
              UNION ALL BY NAME
              SELECT package_license_id AS subscription_id, 'package_license' AS kind, namespace AS name,
                     namespace AS label, status, namespace AS rule_key, nullif(allowed, -1) AS total,
                     CASE WHEN used >= 0 THEN used END AS used,
                     CASE WHEN allowed >= 0 AND used >= 0 THEN allowed - used END AS available, expires_at,
                     namespace, extracted_at, true AS holders_collected, false AS named_login,
                     status = 'Free' AS free_status
              FROM {package_licenses}),
          classified AS (
              SELECT l.*, r.product,
                     CASE WHEN list_contains({free_licenses}, l.name) THEN 'free'
                          WHEN list_contains({paid_licenses}, l.name) THEN 'paid_seat'
                          WHEN l.free_status THEN 'free'
                          WHEN r.license_kind IS NOT NULL THEN r.license_kind
                          WHEN l.named_login THEN 'login_based'
                          ELSE 'unknown' END AS license_kind
              FROM licenses l LEFT JOIN rules r ON r.kind = l.kind AND r.key = l.rule_key)
          SELECT subscription_id, kind, name, label, status,
                 CASE WHEN license_kind IN ('paid_seat', 'login_based') THEN true
                      WHEN license_kind IN ('free', 'free_with_edition') THEN false END AS is_paid,
                 total, used, available, expires_at, namespace, extracted_at, license_kind,
                 coalesce(product, label) AS product, monthly_logins_entitled, monthly_logins_used, holders_collected
          FROM classified",
};

/// `subscriptions` as each run saw it: seat counts over time.
pub static SUBSCRIPTION_HISTORY: DerivedTable = DerivedTable {
    name: "subscription_history",
    columns: SUBSCRIPTION_COLUMNS,
    inputs: &["subscriptions"],
    per_run: true,
    reads: &[],
    kept_by_key: None,
    counted_by_key: None,
    sql: "SELECT {run_id} AS run_id, * FROM {subscriptions}",
};

/// Who holds what, for the users in `users` (the org's scope): the user license through the
/// profile (Salesforce records no date for it), permission set licenses and package licenses
/// through their assignment records.
pub static USER_SUBSCRIPTIONS: DerivedTable = DerivedTable {
    name: "user_subscriptions",
    columns: &[("user_id", Text), ("subscription_id", Text), ("kind", Text), ("assigned_at", Timestamp)],
    inputs: &["users", "permission_set_license_assignments", "user_package_licenses"],
    per_run: false,
    reads: &[
        ("users", &["user_id", "user_license_id"]),
        ("permission_set_license_assignments", &["user_id", "permission_set_license_id", "assigned_at"]),
        ("user_package_licenses", &["user_id", "package_license_id", "assigned_at"]),
    ],
    kept_by_key: Some(KeptByKey {
        keys: "users",
        key: "user_id",
        parts: &[
            Part {
                input: "users",
                cells: &[
                    Cell::Column("user_id"),
                    Cell::Column("user_license_id"),
                    Cell::Text("user_license"),
                    Cell::Null,
                ],
                keep: Keep::NotNull("user_license_id"),
            },
            Part {
                input: "permission_set_license_assignments",
                cells: &[
                    Cell::Column("user_id"),
                    Cell::Column("permission_set_license_id"),
                    Cell::Text("permission_set_license"),
                    Cell::Column("assigned_at"),
                ],
                keep: Keep::KeyAmongKeys,
            },
            Part {
                input: "user_package_licenses",
                cells: &[
                    Cell::Column("user_id"),
                    Cell::Column("package_license_id"),
                    Cell::Text("package_license"),
                    Cell::Column("assigned_at"),
                ],
                keep: Keep::KeyAmongKeys,
            },
        ],
    }),
    counted_by_key: None,
    sql: "SELECT user_id, user_license_id AS subscription_id, 'user_license' AS kind, NULL AS assigned_at
          FROM {users} WHERE user_license_id IS NOT NULL
          UNION ALL
          SELECT user_id, permission_set_license_id, 'permission_set_license', assigned_at
          FROM {permission_set_license_assignments} WHERE user_id IN (SELECT user_id FROM {users})
          UNION ALL
          SELECT user_id, package_license_id, 'package_license', assigned_at
          FROM {user_package_licenses} WHERE user_id IN (SELECT user_id FROM {users})",
};

/// Per run, how many users of each company (NULL: of none configured) hold each license: the
/// trend per legal entity, which Salesforce's own counts do not split.
pub static COMPANY_SUBSCRIPTION_HISTORY: DerivedTable = DerivedTable {
    name: "company_subscription_history",
    columns: &[
        ("company", Text),
        ("subscription_id", Text),
        ("kind", Text),
        ("name", Text),
        ("is_paid", Boolean),
        ("held_by_users", Integer),
        ("held_by_active_users", Integer),
        ("extracted_at", Timestamp),
    ],
    inputs: &["orgs", "users", "user_subscriptions", "subscriptions"],
    per_run: true,
    reads: &[],
    kept_by_key: None,
    counted_by_key: Some(CountedByKey {
        keys: "users",
        key: "user_id",
        group: "company",
        flag: "is_active",
        rows: "user_subscriptions",
        by: &["subscription_id", "kind"],
        sql: "SELECT {run_id} AS run_id, c.company, c.subscription_id, c.kind, s.name, s.is_paid,
                     sum(c.rows)::BIGINT AS held_by_users, sum(c.flagged)::BIGINT AS held_by_active_users,
                     (SELECT max(extracted_at) FROM {orgs}) AS extracted_at
              FROM {counts} c
              JOIN {subscriptions} s ON s.subscription_id = c.subscription_id
              GROUP BY ALL",
    }),
    sql: "SELECT {run_id} AS run_id, u.company, us.subscription_id, us.kind, s.name, s.is_paid,
                 count(*) AS held_by_users, count(*) FILTER (WHERE u.is_active) AS held_by_active_users,
                 (SELECT max(extracted_at) FROM {orgs}) AS extracted_at
          FROM {user_subscriptions} us
          JOIN {users} u ON u.user_id = us.user_id
          JOIN {subscriptions} s ON s.subscription_id = us.subscription_id
          GROUP BY ALL",
};

/// The placeholders that are values of the run, not tables: `{run_id}` (per-run tables), the org's
/// settings `{free_licenses}`, `{paid_licenses}` and `{excluded_user_types}` (`VARCHAR[]`), and
/// `{rulebook}` ([`crate::rulebook::values_sql`]).
pub const PARAMETERS: [&str; 5] = ["run_id", "free_licenses", "paid_licenses", "excluded_user_types", "rulebook"];

/// Every derived table, in the order they are written (a table after its inputs).
pub static DERIVED: [&DerivedTable; 4] =
    [&SUBSCRIPTIONS, &SUBSCRIPTION_HISTORY, &USER_SUBSCRIPTIONS, &COMPANY_SUBSCRIPTION_HISTORY];

/// A view in `warehouse.duckdb`, over the tables' views (and `{table}` files where a view takes a
/// table's own name).
#[derive(Debug)]
pub struct AnalyticsView {
    pub name: &'static str,
    /// Without each of these, the view is not created.
    pub inputs: &'static [&'static str],
    pub sql: String,
}

/// The analytics views; `inactive_days` is the pipeline's `inactive_days` (N): a user who has not
/// logged in for that many days before the org was read, or never, is inactive.
pub fn analytics_views(inactive_days: u32) -> Vec<AnalyticsView> {
    // Milliseconds since the epoch: timestamp arithmetic that reads the same with and without
    // DuckDB's time zone extension (a BI tool's DuckDB may have it, sfetl's has not).
    let days_since_login = "(epoch_ms(o.extracted_at) - epoch_ms(u.last_login_at)) // 86400000";
    // Holders of a license whose users are not collected (portal types left out) are unknown, not 0.
    let held = |columns: &[&str]| -> String {
        let each = columns
            .iter()
            .map(|c| format!("CASE WHEN s.holders_collected IS NOT false THEN coalesce(h.{c}, 0) END AS {c}"));
        each.collect::<Vec<_>>().join(", ")
    };
    let held_active = held(&["held_by_active_users", "held_by_inactive_users"]);
    let held_split =
        held(&["held_by_users", "held_by_logged_in_users", "held_by_frozen_users", "held_by_deactivated_users"]);
    let inactive = format!("(u.last_login_at IS NULL OR {days_since_login} >= {inactive_days})");
    vec![
        AnalyticsView {
            // Each version of a user once: a run's overlap re-reads a few unchanged users. A login
            // makes a version of its own: it moves last_login_at, not always system_modstamp.
            name: "user_history",
            inputs: &["user_history"],
            sql: "SELECT * FROM {user_history}
                  QUALIFY row_number() OVER (PARTITION BY org, user_id, system_modstamp, last_login_at
                                             ORDER BY extracted_at) = 1"
                .into(),
        },
        AnalyticsView {
            // Where no org has written `user_logins` yet (a first run stopped before it), the
            // login state is unknown and taken as not frozen, so that the views below stand.
            name: "users",
            inputs: &["users"],
            sql: "SELECT *, false AS is_frozen, false AS is_password_locked FROM {users}".into(),
        },
        AnalyticsView {
            // The users with their login state: a frozen user is active but cannot log in.
            // Replaces the view above when `user_logins` has files.
            name: "users",
            inputs: &["users", "user_logins"],
            sql: "SELECT u.*, coalesce(l.is_frozen, false) AS is_frozen,
                         coalesce(l.is_password_locked, false) AS is_password_locked
                  FROM {users} u LEFT JOIN user_logins l ON l.org = u.org AND l.user_id = u.user_id"
                .into(),
        },
        AnalyticsView {
            // Holders split the way a license admin reclaims seats: logged in lately, inactive
            // (N days or never), frozen, deactivated. Deactivated users keep their package and
            // permission set license assignments (salesforce-api.md section 7).
            name: "license_utilization",
            inputs: &[
                "subscriptions",
                "user_subscriptions",
                "users",
                "orgs",
                "perm_set_license_metrics",
                "profile_metrics",
            ],
            sql: format!(
                "WITH metrics AS (
                     -- Salesforce's own counts on the latest metrics date: per permission set license,
                     -- and per user license as the sum over its profiles.
                     SELECT org, permission_set_license_id AS subscription_id, assigned_users, active_users
                     FROM perm_set_license_metrics
                     QUALIFY metrics_date = max(metrics_date) OVER (PARTITION BY org, permission_set_license_id)
                     UNION ALL
                     SELECT org, user_license_id, sum(assigned_users)::BIGINT, sum(active_users)::BIGINT
                     FROM (SELECT * FROM profile_metrics
                           QUALIFY metrics_date = max(metrics_date) OVER (PARTITION BY org, profile_id))
                     GROUP BY ALL),
                 holders AS (
                     SELECT us.org, us.subscription_id,
                            count(*) AS held_by_users,
                            count(*) FILTER (WHERE u.is_active) AS held_by_active_users,
                            count(*) FILTER (WHERE u.is_active AND NOT u.is_frozen AND NOT {inactive})
                                AS held_by_logged_in_users,
                            count(*) FILTER (WHERE u.is_active AND NOT u.is_frozen AND {inactive})
                                AS held_by_inactive_users,
                            count(*) FILTER (WHERE u.is_active AND u.is_frozen) AS held_by_frozen_users,
                            count(*) FILTER (WHERE NOT u.is_active) AS held_by_deactivated_users
                     FROM user_subscriptions us
                     JOIN users u ON u.org = us.org AND u.user_id = us.user_id
                     JOIN orgs o ON o.org = us.org
                     GROUP BY ALL)
                 SELECT s.org, s.subscription_id, s.kind, s.name, s.label, s.status, s.is_paid, s.total, s.used,
                        {held_active},
                        s.available,
                        CASE WHEN s.license_kind = 'login_based'
                             THEN round(100.0 * s.monthly_logins_used / nullif(s.monthly_logins_entitled, 0), 1)
                             ELSE round(100.0 * s.used / nullif(s.total, 0), 1) END AS utilization_pct,
                        {inactive_days} AS inactive_days, s.extracted_at,
                        {held_split},
                        s.license_kind, s.product, s.monthly_logins_entitled, s.monthly_logins_used,
                        s.holders_collected, m.assigned_users AS salesforce_assigned_users,
                        m.active_users AS salesforce_active_users_30d
                 FROM subscriptions s
                 LEFT JOIN metrics m ON m.org = s.org AND m.subscription_id = s.subscription_id
                 LEFT JOIN holders h ON h.org = s.org AND h.subscription_id = s.subscription_id"
            ),
        },
        AnalyticsView {
            // Seats to take back first: every license of a frozen user, and the package and
            // permission set licenses deactivated users still hold (a deactivated user's user
            // license is already released).
            name: "reclaimable_seats",
            inputs: &["subscriptions", "user_subscriptions", "users"],
            sql: "SELECT u.org, u.user_id, u.username, u.name, u.company,
                         CASE WHEN u.is_active THEN 'frozen' ELSE 'deactivated' END AS reason,
                         s.subscription_id, s.kind, s.name AS license, s.is_paid, us.assigned_at, u.last_login_at
                  FROM users u
                  JOIN user_subscriptions us ON us.org = u.org AND us.user_id = u.user_id
                  JOIN subscriptions s ON s.org = us.org AND s.subscription_id = us.subscription_id
                  WHERE (u.is_active AND u.is_frozen) OR (NOT u.is_active AND s.kind <> 'user_license')"
                .into(),
        },
        AnalyticsView {
            name: "inactive_licensed_users",
            inputs: &["subscriptions", "user_subscriptions", "users", "orgs"],
            sql: format!(
                "SELECT u.org, u.user_id, u.username, u.name, u.email, u.company, u.profile_name, u.user_license_name,
                        u.last_login_at, u.is_frozen,
                        {days_since_login} AS days_since_login,
                        count(*) AS paid_licenses,
                        string_agg(s.name, ', ' ORDER BY s.kind DESC, s.name) AS licenses,
                        {inactive_days} AS inactive_days
                 FROM users u
                 JOIN orgs o ON o.org = u.org
                 JOIN user_subscriptions us ON us.org = u.org AND us.user_id = u.user_id
                 JOIN subscriptions s ON s.org = us.org AND s.subscription_id = us.subscription_id
                 WHERE u.is_active AND s.is_paid AND {inactive}
                 GROUP BY ALL"
            ),
        },
        AnalyticsView {
            name: "license_trend",
            inputs: &["subscription_history"],
            sql: "SELECT org, run_id, extracted_at AS snapshot_at, subscription_id, kind, name, label, is_paid,
                         total, used, available
                  FROM subscription_history"
                .into(),
        },
        AnalyticsView {
            name: "company_license_trend",
            inputs: &["company_subscription_history"],
            sql: "SELECT org, company, run_id, extracted_at AS snapshot_at, subscription_id, kind, name, is_paid,
                         held_by_users, held_by_active_users
                  FROM company_subscription_history"
                .into(),
        },
        AnalyticsView {
            name: "company_license_holders",
            inputs: &["subscriptions", "user_subscriptions", "users", "orgs"],
            sql: format!(
                "SELECT us.org, u.company, us.subscription_id, s.kind, s.name, s.is_paid,
                        count(*) FILTER (WHERE u.is_active) AS held_by_active_users,
                        count(*) FILTER (WHERE u.is_active AND NOT u.is_frozen AND {inactive}) AS held_by_inactive_users,
                        count(*) FILTER (WHERE u.is_active AND u.is_frozen) AS held_by_frozen_users,
                        count(*) FILTER (WHERE NOT u.is_active) AS held_by_deactivated_users
                 FROM user_subscriptions us
                 JOIN users u ON u.org = us.org AND u.user_id = us.user_id
                 JOIN orgs o ON o.org = us.org
                 JOIN subscriptions s ON s.org = us.org AND s.subscription_id = us.subscription_id
                 GROUP BY ALL"
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::ALL;

    fn placeholders(sql: &str) -> Vec<&str> {
        sql.split('{').skip(1).filter_map(|s| s.split_once('}').map(|(name, _)| name)).collect()
    }

    #[test]
    fn derived_tables_read_only_their_declared_inputs_written_before_them() {
        for (i, table) in DERIVED.iter().enumerate() {
            for name in placeholders(table.sql) {
                if name == "run_id" {
                    assert!(table.per_run, "{}", table.name);
                }
                if PARAMETERS.contains(&name) {
                    continue;
                }
                assert!(table.inputs.contains(&name), "{} reads {name}", table.name);
                let raw = ALL.iter().any(|t| t.name == name);
                let earlier = DERIVED[..i].iter().any(|t| t.name == name);
                assert!(raw || earlier, "{} reads {name} before it is written", table.name);
            }
            if let Some(spec) = &table.counted_by_key {
                // Counts a table written before it, its keys from a raw table; completed from
                // the counts and the table's own inputs.
                assert!(table.inputs.contains(&spec.keys) && table.inputs.contains(&spec.rows), "{}", table.name);
                assert!(ALL.iter().any(|t| t.name == spec.keys), "{}: {} is not a raw table", table.name, spec.keys);
                assert!(DERIVED[..i].iter().any(|t| t.name == spec.rows), "{}: {} comes later", table.name, spec.rows);
                for name in placeholders(spec.sql).into_iter().filter(|p| !PARAMETERS.contains(p) && *p != COUNTS) {
                    assert!(table.inputs.contains(&name), "{} reads {name}", table.name);
                }
            }
            if let Some(spec) = &table.kept_by_key {
                // Made from raw tables only (read as their files), a value for each column.
                let parts = spec.parts.iter().map(|part| part.input);
                for input in parts.chain([spec.keys]) {
                    assert!(table.inputs.contains(&input), "{} reads {input}", table.name);
                    assert!(ALL.iter().any(|t| t.name == input), "{}: {input} is not a raw table", table.name);
                }
                for part in spec.parts {
                    assert_eq!(part.cells.len(), table.columns.len(), "{}: {}", table.name, part.input);
                }
            }
        }
    }

    #[test]
    fn history_keeps_the_subscription_columns_after_the_run_id() {
        let history = SUBSCRIPTION_HISTORY.schema();
        assert_eq!(history.field(0).name(), "run_id");
        assert_eq!(history.fields()[1..], SUBSCRIPTIONS.schema().fields()[..]);
    }

    #[test]
    fn views_name_their_inputs() {
        for view in analytics_views(90) {
            for name in placeholders(&view.sql) {
                assert!(view.inputs.contains(&name), "{} reads {{{name}}}", view.name);
            }
        }
    }
}
