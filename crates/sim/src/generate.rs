//! A deterministic generator of orgs shaped like real ones: the same spec gives the same org.

use crate::ids::record_id;
use crate::license_counts::recount_licenses;
use crate::store::{OrgData, Row};
use crate::value::{Value, days_from_date};
use chrono::{DateTime, Duration, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate. Equal specs give equal orgs, record for record.
#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub seed: u64,
    pub users: usize,
    /// `Organization.Name`.
    pub name: String,
    pub sandbox: bool,
    /// The legal entities whose spellings (in several cases and paddings) fill `User.CompanyName`.
    pub companies: Vec<String>,
    /// "Now" for the generated history: logins and modstamps lie before it.
    pub as_of: DateTime<Utc>,
    /// The licenses of a real org's shape, instead of a random choice from the catalogue.
    pub licenses: Option<LicenseCatalogue>,
}

/// An org's licenses, from its captured shape: each with its name, key, status, seats and how
/// many users hold it (the generator assigns about that many).
#[derive(Debug, Clone, Default)]
pub struct LicenseCatalogue {
    pub user: Vec<CatalogueLicense>,
    pub permission_set: Vec<CatalogueLicense>,
    pub packages: Vec<CatalogueLicense>,
}

/// One license: `name` is a user license's Name, a permission set license's DeveloperName or a
/// package's namespace; `key` its LicenseDefinitionKey or MasterLabel; `user_type` the type of
/// its holders (user licenses); `total` -1 for a site license.
#[derive(Debug, Clone)]
pub struct CatalogueLicense {
    pub name: String,
    pub key: String,
    pub user_type: String,
    pub status: String,
    pub total: i64,
    pub holders: u32,
}

impl OrgSpec {
    pub fn new(seed: u64, users: usize) -> OrgSpec {
        OrgSpec {
            seed,
            users,
            name: "Acme Corporation".into(),
            sandbox: false,
            companies: vec!["Acme Corp".into(), "Acme Europe GmbH".into(), "O'Brien & Søn".into()],
            as_of: Utc::now(),
            licenses: None,
        }
    }
}

/// (Name, LicenseDefinitionKey, UserType, weight of users holding it). Weight 0: nobody holds it.
const USER_LICENSES: &[(&str, &str, &str, u32)] = &[
    ("Salesforce", "SFDC", "Standard", 520),
    ("Salesforce Platform", "AUL", "Standard", 140),
    ("Chatter Free", "PID_Chatter", "CsnOnly", 90),
    ("Customer Community", "PID_Customer_Community", "CspLitePortal", 60),
    ("Partner Community", "PID_Partner_Community", "PowerPartner", 40),
    ("Customer Community Plus", "PID_Customer_Community_Plus", "PowerCustomerSuccess", 30),
    ("Customer Portal Manager Custom", "PID_Customer_Portal_Manager_Custom", "CustomerSuccess", 15),
    ("Chatter External", "PID_Chatter_External", "CsnOnly", 10),
    ("Salesforce Integration", "PID_Salesforce_Integration", "Standard", 6),
    ("Identity", "PID_Identity", "Standard", 5),
    ("Guest User License", "PID_Guest_User", "Guest", 3),
    ("Analytics Cloud Integration User", "PID_Analytics_Cloud_Integration_User", "Standard", 2),
    ("Force.com - App Subscription", "PID_FDC_App_Subscription", "Standard", 8),
    ("Partner Community Login", "PID_Partner_Community_Login", "PowerPartner", 6),
    ("Customer Community Login", "PID_Customer_Community_Login", "CspLitePortal", 0),
    ("High Volume Customer Portal", "PID_High_Volume_Customer_Portal", "CspLitePortal", 0),
    ("Knowledge Only User", "PID_Knowledge_Only", "Standard", 0),
    ("Work.com Only", "PID_Work_com_Only", "Standard", 0),
    ("Company Communities", "PID_Company_Communities", "Standard", 0),
    ("Gold Partner", "PID_Gold_Partner", "PowerPartner", 0),
    ("Silver Partner", "PID_Silver_Partner", "PowerPartner", 0),
    ("Authenticated Website", "PID_Authenticated_Website", "CspLitePortal", 0),
    ("Customer Portal Manager Standard", "PID_Customer_Portal_Manager_Standard", "CustomerSuccess", 0),
    ("Overage High Volume Customer Portal", "PID_Overage_HVCP", "CspLitePortal", 0),
    ("External Identity", "PID_External_Identity", "CspLitePortal", 0),
    ("Partner App Subscription", "PID_Partner_App_Subscription", "PowerPartner", 0),
    ("Cloud Integration User", "PID_Cloud_Integration_User", "Standard", 0),
    ("Sales Insights Integration User", "PID_Sales_Insights_Integration", "Standard", 0),
    ("Lightning Platform - One App", "PID_Lightning_Platform_One_App", "Standard", 0),
    ("Customer Community Plus Login", "PID_Customer_Community_Plus_Login", "PowerCustomerSuccess", 0),
    ("Chatter Only", "PID_Chatter_Only", "CsnOnly", 0),
    ("Lightning Platform Starter", "PID_Lightning_Platform_Starter", "Standard", 0),
    ("XOrg Proxy User", "PID_XOrg_Proxy_User", "Standard", 0),
    ("Einstein Agent", "PID_Einstein_Agent", "Standard", 0),
    ("Work.com Community", "PID_Work_com_Community", "CspLitePortal", 0),
    ("Identity Connect", "PID_Identity_Connect", "Standard", 0),
    ("Service Cloud Lite", "PID_Service_Cloud_Lite", "Standard", 0),
    ("Sales Cloud Integration User", "PID_Sales_Cloud_Integration", "Standard", 0),
    ("Insights Integration", "PID_Insights_Integration", "Standard", 0),
    ("Communities Guest", "PID_Communities_Guest", "Guest", 0),
];

const PERMISSION_SET_LICENSES: &[(&str, &str)] = &[
    ("SalesConsoleUser", "Sales Console User"),
    ("SalesforceCPQ_CPQStandardPerm", "Salesforce CPQ License"),
    ("CRMUserPsl", "CRM User"),
    ("EinsteinAnalyticsPlusPsl", "CRM Analytics Plus"),
    ("LightningConsoleUser", "Lightning Console User"),
    ("SalesCloudEinsteinPsl", "Sales Cloud Einstein"),
    ("FieldServiceStandardPsl", "Field Service Standard"),
    ("KnowledgeUserPsl", "Knowledge User"),
    ("LiveAgentUserPsl", "Chat User"),
    ("FinancialServicesCloudStandardPsl", "Financial Services Cloud Standard"),
    ("SalesEnablementPsl", "Sales Enablement"),
    ("EinsteinGPTSalesPsl", "Einstein for Sales"),
    ("InboxSalesforceUser", "Inbox Salesforce User"),
    ("MapsUserPsl", "Salesforce Maps"),
];

const PACKAGES: &[&str] = &[
    "SBQQ",
    "dsfs",
    "pi",
    "FinServ",
    "LID",
    "et4ae5",
    "CHANNEL_ORDERS",
    "rh2",
    "maps",
    "zoom_app",
    "sf_chttr_apps",
    "sfLma",
];

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "José",
    "Zoë",
    "Björn",
    "Łukasz",
    "François",
    "Ngozi",
    "Søren",
    "María",
    "Chloé",
    "Mohammed",
    "Priya",
    "Olúwasẹ́un",
    "Jürgen",
    "Anaïs",
    "Tomás",
    "Emily",
    "James",
    "Wei",
    "Sam 🚀",
    "Ines",
    "Siobhán",
    "Ravi",
    "Hana",
    "Dmitri",
    "Ana",
    "Kofi",
    "Lars",
    "Ewa",
    "Mateus",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "García",
    "Müller",
    "Østergaard",
    "Nowak",
    "Dubois",
    "Okafor",
    "O'Connor",
    "Smith",
    "Johnson",
    "Núñez",
    "Kowalczyk",
    "Van der Berg",
    "Rossi",
    "Silva",
    "Nakamura",
    "Ivanov",
    "Hernández",
    "Brown",
    "Mensah",
    "Lindqvist",
    "Żółć",
    "Patel",
    "D'Angelo",
];
/// (FirstName, LastName) pairs written in their own scripts.
const CJK_NAMES: &[(&str, &str)] =
    &[("太郎", "田中"), ("芳", "王"), ("민준", "김"), ("花子", "山田"), ("伟", "李"), ("지우", "박")];
const DEPARTMENTS: &[&str] = &["Sales", "Marketing", "Support", "Finance", "IT", "Operations", "R&D"];
const TITLES: &[&str] =
    &["Account Executive", "Sales Manager", "Support Agent", "Analyst", "Director", "VP Sales", "Engineer"];
const PLACES: &[(&str, &str, &str, &str)] = &[
    ("San Francisco", "United States", "US", "America/Los_Angeles"),
    ("New York", "United States", "US", "America/New_York"),
    ("London", "United Kingdom", "GB", "Europe/London"),
    ("München", "Germany", "DE", "Europe/Berlin"),
    ("Paris", "France", "FR", "Europe/Paris"),
    ("Tokyo", "Japan", "JP", "Asia/Tokyo"),
    ("São Paulo", "Brazil", "BR", "America/Sao_Paulo"),
    ("Lagos", "Nigeria", "NG", "Africa/Lagos"),
];

/// Generates an org from its spec.
pub fn generate(spec: &OrgSpec) -> OrgData {
    let mut g = Generator::new(spec);
    g.organization();
    let licenses = g.user_licenses();
    let profiles = g.profiles(&licenses);
    g.users(&profiles);
    g.permission_set_licenses();
    g.package_licenses();
    g.user_logins();
    let now = g.now_millis();
    recount_licenses(&mut g.data, now);
    crate::metrics::collect_metrics(&mut g.data, &g.pod, now);
    g.data
}

struct Generator<'a> {
    spec: &'a OrgSpec,
    rng: ChaCha8Rng,
    data: OrgData,
    pod: String,
}

/// A user license chosen for this org: (Id, its catalogue entry).
type ChosenLicense = (String, CatalogueLicense);

impl<'a> Generator<'a> {
    fn new(spec: &'a OrgSpec) -> Generator<'a> {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        const POD: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let pod = (0..3).map(|_| POD[rng.random_range(0..POD.len())] as char).collect();
        Generator { spec, rng, data: OrgData::new(), pod }
    }

    fn now_millis(&self) -> i64 {
        // Salesforce datetimes carry whole seconds.
        self.spec.as_of.timestamp() * 1000
    }

    fn id(&self, prefix: &str, n: usize) -> Value {
        Value::str(record_id(prefix, &self.pod, n as u64 + 1))
    }

    /// A moment `min_days..max_days` before now, whole seconds.
    fn days_ago(&mut self, min_days: i64, max_days: i64) -> i64 {
        let secs = self.rng.random_range(min_days * 86_400..=max_days * 86_400);
        self.now_millis() - secs * 1000
    }

    fn organization(&mut self) {
        let created = self.days_ago(2000, 4000);
        let instance = if self.spec.sandbox { "CS42" } else { "NA224" };
        let row = vec![
            Value::str(record_id("00D", &self.pod, 1)),
            Value::str(&self.spec.name),
            Value::str("Enterprise Edition"),
            Value::str(instance),
            Value::Bool(self.spec.sandbox),
            Value::DateTime(created),
            Value::DateTime(self.days_ago(0, 30)),
        ];
        self.data.table_mut("Organization").push(row);
    }

    /// The org's user licenses: a shape's, or the held ones of the catalogue and a random
    /// choice of the others (some disabled).
    fn user_licenses(&mut self) -> Vec<ChosenLicense> {
        let chosen: Vec<CatalogueLicense> = match self.spec.licenses.as_ref() {
            Some(catalogue) => catalogue.user.clone(),
            None => {
                let held = USER_LICENSES.iter().filter(|l| l.3 > 0).count();
                let count = self.rng.random_range(15..=USER_LICENSES.len()).max(held);
                let mut chosen: Vec<_> = USER_LICENSES.iter().copied().take(held).collect();
                let mut others: Vec<_> = USER_LICENSES.iter().copied().skip(held).collect();
                while chosen.len() < count && !others.is_empty() {
                    let i = self.rng.random_range(0..others.len());
                    chosen.push(others.swap_remove(i));
                }
                chosen
                    .into_iter()
                    .map(|(name, key, user_type, holders)| {
                        let status = if holders == 0 && self.rng.random_bool(0.15) { "Disabled" } else { "Active" };
                        CatalogueLicense {
                            name: name.into(),
                            key: key.into(),
                            user_type: user_type.into(),
                            status: status.into(),
                            total: 0,
                            holders,
                        }
                    })
                    .collect()
            }
        };
        let mut out = Vec::new();
        for (n, license) in chosen.into_iter().enumerate() {
            let id = self.id("100", n);
            let created = self.days_ago(1500, 4000);
            let row = vec![
                id.clone(),
                Value::str(&license.name),
                Value::str(&license.name),
                Value::str(&license.key),
                Value::str(&license.status),
                Value::Int(license.total), // raised by recount_licenses to cover the holders
                Value::Int(0),
                Value::DateTime(self.now_millis()),
                Value::DateTime(created),
                Value::DateTime(created),
                Value::DateTime(created),
                Value::Null, // MonthlyLoginsEntitlement and MonthlyLoginsUsed: set by recount_licenses
                Value::Null,
            ];
            self.data.table_mut("UserLicense").push(row);
            out.push((id.as_str().unwrap_or_default().to_string(), license));
        }
        out
    }

    /// Profiles per license: (profile Id, license weight, user type).
    fn profiles(&mut self, licenses: &[ChosenLicense]) -> Vec<(Value, u32, String)> {
        let mut out = Vec::new();
        for (license_id, license) in licenses {
            let names: Vec<String> = match license.name.as_str() {
                "Salesforce" => {
                    ["System Administrator", "Standard User", "Marketing User", "Read Only"].map(String::from).to_vec()
                }
                "Salesforce Platform" => vec!["Standard Platform User".into(), "Custom: Platform Ops".into()],
                other => vec![format!("{other} User")],
            };
            let weight = license.holders;
            let per_profile = (weight / names.len() as u32).max(u32::from(weight > 0));
            for profile_name in names {
                let id = self.id("00e", out.len());
                let created = self.days_ago(1000, 3000);
                let row = vec![
                    id.clone(),
                    Value::str(&profile_name),
                    Value::Null,
                    Value::str(&license.user_type),
                    Value::str(license_id),
                    Value::DateTime(created),
                    Value::DateTime(created),
                    Value::DateTime(created),
                ];
                self.data.table_mut("Profile").push(row);
                out.push((id, per_profile, license.user_type.clone()));
            }
        }
        out
    }

    fn company_name(&mut self) -> Value {
        let companies = &self.spec.companies;
        let roll = self.rng.random_range(0..100);
        if companies.is_empty() || roll < 10 {
            return Value::Null;
        }
        if roll < 16 {
            return Value::str(
                *["Globex Inc.", "Contractor — Temp", "株式会社サンプル"].choose(&mut self.rng).unwrap_or(&""),
            );
        }
        let name = companies[self.rng.random_range(0..companies.len())].clone();
        // Real CompanyName values are typed by hand: case and padding drift.
        Value::str(match self.rng.random_range(0..10) {
            0 => name.to_uppercase(),
            1 => format!("{} ", name.to_lowercase()),
            2 => format!("  {name}"),
            _ => name,
        })
    }

    fn users(&mut self, profiles: &[(Value, u32, String)]) {
        let total_weight: u32 = profiles.iter().map(|p| p.1).sum();
        let domain = format!("{}.example.com", self.pod.to_lowercase());
        for n in 0..self.spec.users {
            let mut pick = self.rng.random_range(0..total_weight.max(1));
            let profile = profiles.iter().find(|p| {
                if pick < p.1 {
                    true
                } else {
                    pick -= p.1;
                    false
                }
            });
            let (profile_id, _, user_type) = profile.cloned().unwrap_or((Value::Null, 0, "Standard".into()));
            let (first, last) = if self.rng.random_bool(0.08) {
                let (f, l) = *CJK_NAMES.choose(&mut self.rng).unwrap_or(&("", ""));
                (Some(f), l)
            } else {
                let first = if self.rng.random_bool(0.02) { None } else { FIRST_NAMES.choose(&mut self.rng).copied() };
                (first, *LAST_NAMES.choose(&mut self.rng).unwrap_or(&""))
            };
            let name = first.map_or(last.to_string(), |f| format!("{f} {last}"));
            let local: String = last.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
            let username = format!("{}{n}@{domain}", if local.is_empty() { "user".into() } else { local });
            let created = self.days_ago(30, 3000);
            let active = self.rng.random_bool(0.88);
            let last_login = match self.rng.random_range(0..100) {
                0..8 => None,
                8..60 => Some(self.days_ago(0, 30)),
                60..80 => Some(self.days_ago(30, 90)),
                _ => Some(self.days_ago(90, 500)),
            }
            .map(|t| t.max(created));
            let modstamp = self.rng.random_range(created / 1000..=self.now_millis() / 1000) * 1000;
            let place = *PLACES.choose(&mut self.rng).unwrap_or(&PLACES[0]);
            let manager = if n > 0 && self.rng.random_bool(0.7) {
                {
                    let boss = self.rng.random_range(0..n);
                    self.id("005", boss)
                }
            } else {
                Value::Null
            };
            let row: Row = vec![
                self.id("005", n),
                Value::str(&username),
                Value::str(&username),
                Value::str(&name),
                Value::opt_str(first),
                Value::str(last),
                Value::str(username.chars().take(8).collect::<String>()),
                Value::Bool(active),
                Value::str(user_type),
                profile_id,
                last_login.map_or(Value::Null, Value::DateTime),
                Value::DateTime(created),
                Value::DateTime(modstamp),
                Value::DateTime(modstamp),
                self.company_name(),
                self.pick_or_null(DEPARTMENTS, 0.1),
                self.pick_or_null(&["EMEA", "AMER", "APAC"], 0.4),
                self.pick_or_null(TITLES, 0.15),
                Value::str(place.0),
                Value::str(place.1),
                Value::str(place.2),
                if self.rng.random_bool(0.6) { Value::str(&username) } else { Value::Null },
                manager,
                Value::str(place.3),
                Value::Bool(self.rng.random_bool(0.2)),
                Value::Bool(self.rng.random_bool(0.3)),
            ];
            self.data.table_mut("User").push(row);
        }
    }

    fn pick_or_null(&mut self, pool: &[&str], null_share: f64) -> Value {
        if self.rng.random_bool(null_share) { Value::Null } else { Value::opt_str(pool.choose(&mut self.rng)) }
    }

    /// Standard users who may hold add-on licenses (portal and Chatter users do not).
    fn standard_user_ids(&self) -> Vec<Value> {
        let users = self.data.table("User");
        (0..users.rows.len())
            .filter(|&i| users.get(i, "UserType").as_str() == Some("Standard"))
            .map(|i| users.get(i, "Id").clone())
            .collect()
    }

    /// The share of the candidate holders who hold `license`: from a shape, its holder count;
    /// else the share drawn.
    fn share(&self, license: &CatalogueLicense, candidates: usize, drawn: f64) -> f64 {
        match self.spec.licenses {
            Some(_) => (f64::from(license.holders) / candidates.max(1) as f64).clamp(0.0, 1.0),
            None => drawn,
        }
    }

    /// A share of `candidates`, each with the moment the license was assigned.
    fn pick_holders(&mut self, candidates: &[Value], share: f64) -> Vec<(Value, i64)> {
        let mut picked = Vec::new();
        for user in candidates {
            if self.rng.random_bool(share) {
                picked.push((user.clone(), self.days_ago(0, 600)));
            }
        }
        picked
    }

    fn permission_set_licenses(&mut self) {
        let holders = self.standard_user_ids();
        let chosen: Vec<CatalogueLicense> = match self.spec.licenses.as_ref() {
            Some(catalogue) => catalogue.permission_set.clone(),
            None => {
                let count = self.rng.random_range(6..=PERMISSION_SET_LICENSES.len());
                PERMISSION_SET_LICENSES
                    .iter()
                    .take(count)
                    .map(|(name, label)| CatalogueLicense {
                        name: name.to_string(),
                        key: label.to_string(),
                        user_type: String::new(),
                        status: String::new(),
                        total: 0,
                        holders: 0,
                    })
                    .collect()
            }
        };
        let mut assignments = 0;
        for (n, license) in chosen.iter().enumerate() {
            let id = self.id("0PL", n);
            let created = self.days_ago(300, 2000);
            let expires = if self.rng.random_bool(0.5) {
                Value::Null
            } else {
                let day = self.spec.as_of.date_naive() + Duration::days(self.rng.random_range(-60..400));
                Value::Date(days_from_date(day))
            };
            let drawn = if self.rng.random_bool(0.1) { "Disabled" } else { "Active" };
            let status = if license.status.is_empty() { drawn } else { license.status.as_str() };
            let row = vec![
                id.clone(),
                Value::str(&license.name),
                Value::str(&license.key),
                Value::str(license.name.to_uppercase()),
                Value::str(status),
                Value::Int(license.total),
                Value::Int(0),
                expires,
                Value::DateTime(created),
                Value::DateTime(created),
                Value::DateTime(created),
            ];
            self.data.table_mut("PermissionSetLicense").push(row);
            let drawn = self.rng.random_range(0.02..0.35);
            let share = self.share(license, holders.len(), drawn);
            for (user, at) in self.pick_holders(&holders, share) {
                let at = Value::DateTime(at);
                let row = vec![self.id("2LA", assignments), user, id.clone(), at.clone(), at.clone(), at];
                self.data.table_mut("PermissionSetLicenseAssign").push(row);
                assignments += 1;
            }
        }
    }

    /// A UserLogin per user; a few active users are frozen (an admin's first step when someone
    /// leaves) or locked out by failed passwords. Drawn from a generator of their own, so that
    /// the rest of the org stays as earlier versions generated it.
    fn user_logins(&mut self) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0x5553_4552_4c4f_4749);
        let users = self.data.table("User");
        let rows: Vec<Row> = (0..users.rows.len())
            .map(|i| {
                let active = users.get(i, "IsActive") == &Value::Bool(true);
                let frozen = active && rng.random_bool(0.03);
                let locked = rng.random_bool(0.01);
                let modified = users.get(i, "CreatedDate").clone();
                vec![self.id("06v", i), users.get(i, "Id").clone(), Value::Bool(frozen), Value::Bool(locked), modified]
            })
            .collect();
        let logins = self.data.table_mut("UserLogin");
        for row in rows {
            logins.push(row);
        }
    }

    fn package_licenses(&mut self) {
        let holders = self.standard_user_ids();
        // Without a shape: the first few of the catalogue, every third a site license (-1), the
        // status drawn (an empty status).
        let chosen: Vec<CatalogueLicense> = match self.spec.licenses.as_ref() {
            Some(catalogue) => catalogue.packages.clone(),
            None => (0..self.rng.random_range(4..=8))
                .map(|n| CatalogueLicense {
                    name: PACKAGES[n % PACKAGES.len()].to_string(),
                    key: String::new(),
                    user_type: String::new(),
                    status: String::new(),
                    total: if n % 3 == 1 { -1 } else { 0 },
                    holders: 0,
                })
                .collect(),
        };
        let mut seats = 0;
        for (n, license) in chosen.iter().enumerate() {
            let id = self.id("050", n);
            let created = self.days_ago(300, 2000);
            // -1 marks a site license: everyone may use it, and no seat is assigned.
            let site_license = license.total == -1;
            let drawn =
                *["Active", "Active", "Active", "Trial", "Free", "Expired"].choose(&mut self.rng).unwrap_or(&"Active");
            let status = if license.status.is_empty() { drawn } else { license.status.as_str() };
            let expires =
                if self.rng.random_bool(0.5) { Value::Null } else { Value::DateTime(self.days_ago(-400, 30)) };
            let row = vec![
                id.clone(),
                Value::str(&license.name),
                Value::str(status),
                Value::Int(license.total),
                Value::Int(if site_license { -1 } else { 0 }),
                expires,
                Value::Bool(self.rng.random_bool(0.95)),
                Value::DateTime(created),
                Value::DateTime(created),
                Value::DateTime(created),
            ];
            self.data.table_mut("PackageLicense").push(row);
            if site_license {
                continue;
            }
            let drawn = self.rng.random_range(0.05..0.4);
            let share = self.share(license, holders.len(), drawn);
            for (user, at) in self.pick_holders(&holders, share) {
                let at = Value::DateTime(at);
                let row = vec![self.id("051", seats), id.clone(), user, at.clone(), at.clone(), at];
                self.data.table_mut("UserPackageLicense").push(row);
                seats += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize) -> OrgSpec {
        let mut spec = OrgSpec::new(7, users);
        spec.as_of = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        spec
    }

    #[test]
    fn same_spec_same_org() {
        let a = generate(&spec(300));
        let b = generate(&spec(300));
        assert_eq!(a.table("User").rows, b.table("User").rows);
        assert_eq!(a.table("PermissionSetLicenseAssign").rows, b.table("PermissionSetLicenseAssign").rows);
    }

    #[test]
    fn shaped_like_a_real_org() {
        let org = generate(&spec(3000));
        let licenses = org.table("UserLicense");
        assert!((15..=40).contains(&licenses.rows.len()));
        let users = org.table("User");
        assert_eq!(users.rows.len(), 3000);
        let count = |pred: &dyn Fn(usize) -> bool| (0..users.rows.len()).filter(|&i| pred(i)).count();
        assert!(count(&|i| users.get(i, "IsActive") == &Value::Bool(false)) > 100);
        assert!(count(&|i| users.get(i, "LastLoginDate").is_null()) > 100);
        assert!(count(&|i| users.get(i, "CompanyName").is_null()) > 100);
        assert!(count(&|i| users.get(i, "UserType").as_str() == Some("PowerPartner")) > 10);
        assert!(count(&|i| users.get(i, "Name").as_str().is_some_and(|n| !n.is_ascii())) > 100);
        let packages = org.table("PackageLicense");
        assert!((0..packages.rows.len()).any(|i| packages.get(i, "AllowedLicenses") == &Value::Int(-1)));
        for id in users.rows.iter().map(|r| r[0].as_str().unwrap_or_default()) {
            assert_eq!(id.len(), 18);
        }
    }
}
