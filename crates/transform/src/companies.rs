//! Legal entities: the configured company names matched against `User.CompanyName`, which people
//! type by hand (case and padding drift), so the match is trimmed and case-insensitive.

/// The configured names, each with its comparison key.
#[derive(Debug, Clone, Default)]
pub struct CompanyMatcher {
    names: Vec<(String, String)>,
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl CompanyMatcher {
    pub fn new(configured: &[String]) -> CompanyMatcher {
        CompanyMatcher { names: configured.iter().map(|name| (key(name), name.clone())).collect() }
    }

    /// The configured spelling that `company_name` matches, if any.
    pub fn matching(&self, company_name: Option<&str>) -> Option<&str> {
        let wanted = key(company_name?);
        self.names.iter().find(|(k, _)| *k == wanted).map(|(_, name)| name.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_and_case_insensitive_returning_the_configured_spelling() {
        let m = CompanyMatcher::new(&["O'Brien & Søn".into(), "Acme Corp".into()]);
        assert_eq!(m.matching(Some("  o'brien & SØN ")), Some("O'Brien & Søn"));
        assert_eq!(m.matching(Some("ACME CORP")), Some("Acme Corp"));
        assert_eq!(m.matching(Some("Acme Corporation")), None);
        assert_eq!(m.matching(None), None);
    }
}
