//! The license rulebook: what each Salesforce license is and how it is billed, by the key that
//! names it in every org (a user license's `LicenseDefinitionKey`, a permission set license's
//! `DeveloperName`, a package's `NamespacePrefix`).
//!
//! Salesforce's objects say how many seats a license has, not what it costs. A license admin
//! knows that Chatter Free costs nothing, that an Enterprise org comes with some Identity and
//! Integration user licenses, and that "... Login" community licenses are billed by monthly
//! logins, not seats. This table writes that knowledge down; a key it does not know is
//! `unknown` (never silently paid), and the pipeline's `free_licenses` / `paid_licenses` settle
//! any license per org. Sources: Salesforce Help, "User Licenses", "Permission Set Licenses",
//! "Experience Cloud User Licenses", and the packages' AppExchange listings. Which licenses an
//! edition includes at no cost varies with the contract: `free_with_edition` is the usual case,
//! to be confirmed against your own contract (the README says so).

/// How a license is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseKind {
    /// Paid per assigned user.
    PaidSeat,
    /// Paid per monthly unique login (`MonthlyLoginsEntitlement` / `MonthlyLoginsUsed`).
    LoginBased,
    /// Included with the edition (a number of them, usually); more may be bought.
    FreeWithEdition,
    /// Costs nothing.
    Free,
    /// Not in the rulebook: neither counted as paid nor as free.
    Unknown,
}

impl LicenseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseKind::PaidSeat => "paid_seat",
            LicenseKind::LoginBased => "login_based",
            LicenseKind::FreeWithEdition => "free_with_edition",
            LicenseKind::Free => "free",
            LicenseKind::Unknown => "unknown",
        }
    }
}

/// One known license: the `subscriptions.kind` it appears as, its key, a readable product name.
#[derive(Debug, Clone, Copy)]
pub struct LicenseRule {
    pub kind: &'static str,
    pub key: &'static str,
    pub product: &'static str,
    pub billing: LicenseKind,
}

const fn user(key: &'static str, product: &'static str, billing: LicenseKind) -> LicenseRule {
    LicenseRule { kind: "user_license", key, product, billing }
}
const fn psl(key: &'static str, product: &'static str, billing: LicenseKind) -> LicenseRule {
    LicenseRule { kind: "permission_set_license", key, product, billing }
}
const fn package(key: &'static str, product: &'static str, billing: LicenseKind) -> LicenseRule {
    LicenseRule { kind: "package_license", key, product, billing }
}

use LicenseKind::{Free, FreeWithEdition, LoginBased, PaidSeat};

/// Every license the rulebook knows. A user license whose key or name ends in "Login" and is not
/// listed is login-based too.
pub static RULES: &[LicenseRule] = &[
    user("SFDC", "Salesforce (Sales / Service Cloud)", PaidSeat),
    user("AUL", "Salesforce Platform", PaidSeat),
    user("PID_Lightning_Platform_One_App", "Lightning Platform - One App", PaidSeat),
    user("PID_Lightning_Platform_Starter", "Lightning Platform Starter", PaidSeat),
    user("PID_FDC_App_Subscription", "Force.com - App Subscription", PaidSeat),
    user("PID_Knowledge_Only", "Knowledge Only User", PaidSeat),
    user("PID_Work_com_Only", "Work.com Only", PaidSeat),
    user("PID_Company_Communities", "Company Communities", PaidSeat),
    user("PID_Chatter_Only", "Chatter Only (Chatter Plus)", PaidSeat),
    user("PID_Service_Cloud_Lite", "Service Cloud Lite", PaidSeat),
    user("PID_Identity_Connect", "Identity Connect", PaidSeat),
    user("PID_Customer_Community", "Customer Community (members)", PaidSeat),
    user("PID_Customer_Community_Plus", "Customer Community Plus (members)", PaidSeat),
    user("PID_Partner_Community", "Partner Community (members)", PaidSeat),
    user("PID_Customer_Community_Login", "Customer Community (logins)", LoginBased),
    user("PID_Customer_Community_Plus_Login", "Customer Community Plus (logins)", LoginBased),
    user("PID_Partner_Community_Login", "Partner Community (logins)", LoginBased),
    user("PID_Work_com_Community", "Work.com Community", PaidSeat),
    user("PID_High_Volume_Customer_Portal", "High Volume Customer Portal", PaidSeat),
    user("PID_Overage_HVCP", "Overage High Volume Customer Portal", PaidSeat),
    user("PID_Authenticated_Website", "Authenticated Website", PaidSeat),
    user("PID_Customer_Portal_Manager_Standard", "Customer Portal Manager Standard", PaidSeat),
    user("PID_Customer_Portal_Manager_Custom", "Customer Portal Manager Custom", PaidSeat),
    user("PID_Gold_Partner", "Gold Partner (legacy partner portal)", PaidSeat),
    user("PID_Silver_Partner", "Silver Partner (legacy partner portal)", PaidSeat),
    user("PID_Partner_App_Subscription", "Partner App Subscription", PaidSeat),
    user("PID_External_Identity", "External Identity", PaidSeat),
    user("PID_Identity", "Identity", FreeWithEdition),
    user("PID_Salesforce_Integration", "Salesforce Integration user", FreeWithEdition),
    user("PID_Cloud_Integration_User", "Cloud Integration User", FreeWithEdition),
    user("PID_Sales_Cloud_Integration", "Sales Cloud Integration User", FreeWithEdition),
    user("PID_Sales_Insights_Integration", "Sales Insights Integration User", FreeWithEdition),
    user("PID_Insights_Integration", "Insights Integration", FreeWithEdition),
    user("PID_Analytics_Cloud_Integration_User", "CRM Analytics Integration User", FreeWithEdition),
    user("PID_Einstein_Agent", "Einstein Agent (bots)", FreeWithEdition),
    user("PID_Chatter", "Chatter Free", Free),
    user("PID_Chatter_External", "Chatter External", Free),
    user("PID_Guest_User", "Guest User (sites)", Free),
    user("PID_Communities_Guest", "Experience Cloud guest", Free),
    user("PID_XOrg_Proxy_User", "Cross-org proxy user (system)", Free),
    psl("SalesConsoleUser", "Sales Console", FreeWithEdition),
    psl("LightningConsoleUser", "Lightning Console", FreeWithEdition),
    psl("CRMUserPsl", "CRM User", FreeWithEdition),
    psl("KnowledgeUserPsl", "Knowledge User", FreeWithEdition),
    psl("InboxSalesforceUser", "Salesforce Inbox", PaidSeat),
    psl("SalesforceCPQ_CPQStandardPerm", "Salesforce CPQ", PaidSeat),
    psl("EinsteinAnalyticsPlusPsl", "CRM Analytics Plus", PaidSeat),
    psl("SalesCloudEinsteinPsl", "Sales Cloud Einstein", PaidSeat),
    psl("FieldServiceStandardPsl", "Field Service", PaidSeat),
    psl("LiveAgentUserPsl", "Chat (Live Agent)", PaidSeat),
    psl("FinancialServicesCloudStandardPsl", "Financial Services Cloud", PaidSeat),
    psl("SalesEnablementPsl", "Sales Enablement", PaidSeat),
    psl("EinsteinGPTSalesPsl", "Einstein for Sales", PaidSeat),
    psl("MapsUserPsl", "Salesforce Maps", PaidSeat),
    package("SBQQ", "Salesforce CPQ", PaidSeat),
    package("pi", "Pardot (Marketing Cloud Account Engagement)", PaidSeat),
    package("dsfs", "DocuSign eSignature for Salesforce", PaidSeat),
    package("FinServ", "Financial Services Cloud", PaidSeat),
    package("maps", "Salesforce Maps", PaidSeat),
    package("rh2", "Rollup Helper", PaidSeat),
    package("et4ae5", "Marketing Cloud Connect", Free),
    package("LID", "LinkedIn Sales Navigator connector", Free),
    package("CHANNEL_ORDERS", "Salesforce Partner Channel Orders", Free),
    package("zoom_app", "Zoom for Salesforce", Free),
    package("sf_chttr_apps", "Salesforce Chatter Apps", Free),
    package("sfLma", "License Management App", Free),
];

/// The rulebook as DuckDB SQL: a table `(kind, key, product, license_kind)`.
pub fn values_sql() -> String {
    let rows: Vec<String> = RULES
        .iter()
        .map(|r| format!("('{}', '{}', '{}', '{}')", r.kind, r.key, r.product, r.billing.as_str()))
        .collect();
    format!("(SELECT * FROM (VALUES {}) AS rules(kind, key, product, license_kind))", rows.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_sql_safe_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for rule in RULES {
            for text in [rule.kind, rule.key, rule.product] {
                assert!(!text.contains('\'') && !text.contains('\\'), "{text}");
            }
            assert!(seen.insert((rule.kind, rule.key)), "{} listed twice", rule.key);
        }
        assert!(values_sql().starts_with("(SELECT * FROM (VALUES ('user_license', 'SFDC'"));
    }

    #[test]
    fn the_readme_lists_every_rule() {
        let readme = include_str!("../../../README.md");
        for rule in RULES {
            assert!(readme.contains(&format!("| `{}` | {} |", rule.key, rule.product)), "README lacks {}", rule.key);
        }
    }
}
