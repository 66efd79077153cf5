//! The function's configuration, read from the environment once at start-up (as
//! lambda-runtime's `Config::from_env`) and handed to what needs it; tests build a `Config`.

use crate::grant::allowed::Allowed;

/// The variables, as the README's environment table lists them.
pub const LOCK_TABLE_VAR: &str = "VENDOR_GRANTS_LOCK_TABLE";
pub const RESPONSE_HOSTS_VAR: &str = "VENDOR_GRANTS_RESPONSE_HOSTS";
pub const ALLOWED_VENDORS_VAR: &str = "VENDOR_GRANTS_ALLOWED_VENDORS";
pub const ALLOWED_PRINCIPALS_VAR: &str = "VENDOR_GRANTS_ALLOWED_PRINCIPALS";
pub const REGISTRY_KEY_VAR: &str = "VENDOR_GRANTS_REGISTRY_KEY";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The DynamoDB lease table; `None`: leases within the process.
    pub lock_table: Option<String>,
    /// The hosts a ResponseURL may point at; `None`: CloudFormation's response buckets.
    pub response_hosts: Option<String>,
    /// The platform team's allow-lists.
    pub allowed: Allowed,
    /// The KMS HMAC key the registry's records are signed with; `None`: records are unsigned
    /// (and the audit repairs none).
    pub registry_key: Option<String>,
}

impl Config {
    pub fn from_env() -> Config {
        Config::from_lookup(|name| match std::env::var(name) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                tracing::warn!("{name} is not valid UTF-8; ignoring it");
                None
            }
        })
    }

    /// From any source of variables (`lookup(name)`); blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let get = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        Config {
            lock_table: get(LOCK_TABLE_VAR).map(|t| t.trim().to_string()),
            response_hosts: get(RESPONSE_HOSTS_VAR),
            allowed: Allowed::parse(
                get(ALLOWED_VENDORS_VAR).as_deref(),
                get(ALLOWED_PRINCIPALS_VAR).as_deref(),
            ),
            registry_key: get(REGISTRY_KEY_VAR).map(|k| k.trim().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_variable_and_treats_blank_as_unset() {
        let env = |name: &str| match name {
            LOCK_TABLE_VAR => Some(" leases ".to_string()),
            RESPONSE_HOSTS_VAR => Some("  ".to_string()),
            ALLOWED_VENDORS_VAR => Some("telus,scale-ai".to_string()),
            _ => None,
        };
        let c = Config::from_lookup(env);
        assert_eq!(c.lock_table.as_deref(), Some("leases"));
        assert_eq!(c.response_hosts, None);
        assert_eq!(
            c.allowed.vendors,
            Some(vec!["telus".to_string(), "scale-ai".to_string()])
        );
        assert_eq!(c.allowed.principals, None);
        assert_eq!(Config::from_lookup(|_| None), Config::default());
    }
}
