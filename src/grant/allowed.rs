//! The platform team's allow-lists: which catalog vendors a grant may name
//! (`VENDOR_GRANTS_ALLOWED_VENDORS`) and which principals `VendorPrincipal` may hold
//! (`VENDOR_GRANTS_ALLOWED_PRINCIPALS`). Whoever can deploy a stack can otherwise grant any
//! principal access to any bucket the function may touch. Pure: the lists are handed in (`crate::config`).

use crate::policy::arn::Arn;
use crate::policy::canonical::is_account_id;

/// The allow-lists; `None` for a list that is not set (anything goes, as before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    pub vendors: Option<Vec<String>>,
    pub principals: Option<Vec<String>>,
}

/// What an allow-list refused: the setting, the value, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub setting: &'static str,
    pub what: String,
    pub allowed: String,
}

/// Comma-separated entries; blank means not set.
fn list(value: Option<&str>) -> Option<Vec<String>> {
    let entries: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    (!entries.is_empty()).then_some(entries)
}

impl Allowed {
    pub fn parse(vendors: Option<&str>, principals: Option<&str>) -> Allowed {
        Allowed {
            vendors: list(vendors),
            principals: list(principals),
        }
    }

    /// Checks a grant's vendor id and its `VendorPrincipal` values.
    pub fn check(&self, vendor: &str, principals: &[String]) -> Result<(), Refusal> {
        if let Some(vendors) = &self.vendors
            && !vendors.iter().any(|v| v == vendor)
        {
            return Err(Refusal {
                setting: "AllowedVendors (VENDOR_GRANTS_ALLOWED_VENDORS)",
                what: format!("Vendor {vendor}"),
                allowed: vendors.join(", "),
            });
        }
        if let Some(patterns) = &self.principals {
            for principal in principals {
                if !patterns.iter().any(|p| principal_matches(p, principal)) {
                    return Err(Refusal {
                        setting: "AllowedPrincipals (VENDOR_GRANTS_ALLOWED_PRINCIPALS)",
                        what: format!("VendorPrincipal {principal}"),
                        allowed: patterns.join(", "),
                    });
                }
            }
        }
        Ok(())
    }
}

/// An account id allows that account and any IAM ARN in it; anything else is an ARN pattern
/// where `*` matches any run of characters and `?` any one, compared with the principal as an
/// ARN (a bare account id is its `:root` ARN).
pub fn principal_matches(pattern: &str, principal: &str) -> bool {
    let principal = principal.trim();
    let account_of = |p: &str| -> Option<String> {
        if is_account_id(p) {
            return Some(p.to_string());
        }
        Arn::parse(p).map(|a| a.account.to_string())
    };
    if is_account_id(pattern) {
        return account_of(principal).as_deref() == Some(pattern);
    }
    let as_arn = if is_account_id(principal) {
        let partition = Arn::parse(pattern).map_or("aws", |a| a.partition);
        format!("arn:{partition}:iam::{principal}:root")
    } else {
        principal.to_string()
    };
    glob(pattern.as_bytes(), as_arn.as_bytes())
}

/// `*` and `?` wildcards, iteratively (no backtracking blow-up on hostile patterns).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_lists_allow_everything() {
        let a = Allowed::parse(None, Some(" , "));
        assert_eq!(a, Allowed::default());
        assert!(a.check("custom", &["*".to_string()]).is_ok());
    }

    #[test]
    fn vendors_outside_the_list_are_refused_naming_the_setting() {
        let a = Allowed::parse(Some("telus, scale-ai"), None);
        assert!(a.check("telus", &[]).is_ok());
        let e = a.check("custom", &[]).unwrap_err();
        assert!(e.setting.contains("AllowedVendors"));
        assert_eq!(e.what, "Vendor custom");
        assert_eq!(e.allowed, "telus, scale-ai");
    }

    #[test]
    fn principals_match_accounts_and_arn_patterns() {
        assert!(principal_matches("111122223333", "111122223333"));
        assert!(principal_matches(
            "111122223333",
            "arn:aws:iam::111122223333:role/Vendor"
        ));
        assert!(!principal_matches(
            "111122223333",
            "arn:aws:iam::444455556666:role/Vendor"
        ));
        assert!(!principal_matches("111122223333", "1111222233334"));
        assert!(principal_matches(
            "arn:aws:iam::111122223333:role/vendor-*",
            "arn:aws:iam::111122223333:role/vendor-export"
        ));
        assert!(!principal_matches(
            "arn:aws:iam::111122223333:role/vendor-*",
            "arn:aws:iam::111122223333:role/admin"
        ));
        assert!(principal_matches(
            "arn:aws:iam::111122223333:root",
            "111122223333"
        ));
        assert!(principal_matches(
            "arn:aws:iam::11112222333?:root",
            "111122223334"
        ));
        assert!(!principal_matches(
            "arn:aws:iam::*:root",
            "arn:aws:iam::1:role/x"
        ));
        // A hostile pattern does not take exponential time.
        let long = "a".repeat(5000);
        assert!(!glob(b"*a*a*a*a*a*a*a*a*a*a*b", long.as_bytes()));
    }

    #[test]
    fn every_principal_must_be_allowed() {
        let a = Allowed::parse(None, Some("111122223333"));
        let ok = ["111122223333".to_string()];
        let mixed = ["111122223333".to_string(), "444455556666".to_string()];
        assert!(a.check("custom", &ok).is_ok());
        let e = a.check("custom", &mixed).unwrap_err();
        assert_eq!(e.what, "VendorPrincipal 444455556666");
        assert!(e.setting.contains("AllowedPrincipals"));
    }
}
