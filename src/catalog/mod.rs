//! The vendor catalog: one profile a vendor, as data (`vendors.toml`, embedded at build time),
//! and the Access levels of the contract. Pure: it says what a vendor needs, not how it is written.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::policy::arn::Arn;
use crate::policy::canonical::is_account_id;
use crate::policy::{Condition, lint};

/// `vendors.toml`, turned into JSON by build.rs.
const BUILTIN: &str = include_str!(concat!(env!("OUT_DIR"), "/vendors.json"));

/// Errors of the catalog layer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the vendor catalog is not valid: {0}")]
    Invalid(String),
}

/// How the vendor reaches the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Statements for the vendor's principal in the bucket (and key) policy.
    BucketPolicy,
    /// An IAM role in this account that the vendor assumes.
    Role,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::BucketPolicy, Mode::Role];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::BucketPolicy => "bucket-policy",
            Mode::Role => "role",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
    }
}

/// The `Access` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    Read,
    Write,
    ReadWrite,
    Full,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 4] = [
        AccessLevel::Read,
        AccessLevel::Write,
        AccessLevel::ReadWrite,
        AccessLevel::Full,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Read => "read",
            AccessLevel::Write => "write",
            AccessLevel::ReadWrite => "read-write",
            AccessLevel::Full => "full",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessLevel {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        AccessLevel::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(())
    }
}

/// The S3 and KMS actions of one access grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionSet {
    pub s3: Vec<String>,
    pub kms: Vec<String>,
}

/// Actions that always carry the vendor's condition (vcc: the bucket-owner-full-control ACL).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRule {
    /// The rule applies when this action is granted.
    pub when: String,
    /// The actions granted together, under `condition`, in their own statement.
    pub actions: Vec<String>,
    pub condition: Condition,
}

/// Whether the vendor sends an ExternalId when it assumes the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalIdPolicy {
    Required,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleProfile {
    /// The role name the vendor's guide requires, if any.
    pub name: Option<String>,
    /// The IAM path the vendor assumes that role at (it builds the role's ARN itself, from the
    /// account id and the name); only with `name`. Roles of other names live under
    /// `/vendor-grants/`.
    #[serde(default)]
    pub path: Option<String>,
    pub external_id: ExternalIdPolicy,
    /// Whether the guide asks for a trust policy that lets a whole account assume the role
    /// without an external id. Without it such a role is refused: every user and role of that
    /// account could assume it.
    #[serde(default)]
    pub account_without_external_id: bool,
}

/// A kind of principal a vendor's guide may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A whole account: a 12-digit id or `arn:PARTITION:iam::ID:root`.
    Account,
    /// `arn:PARTITION:iam::ID:role/NAME`.
    Role,
    /// `arn:PARTITION:iam::ID:user/NAME`.
    User,
    /// `arn:PARTITION:sts::ID:assumed-role/ROLE/SESSION`.
    AssumedRole,
}

impl PrincipalKind {
    /// The kind of `value`; `None` when it is no principal at all (the plan's principal check
    /// then says what is wrong with it).
    pub fn of(value: &str) -> Option<PrincipalKind> {
        if is_account_id(value) {
            return Some(PrincipalKind::Account);
        }
        let arn = Arn::parse(value)?;
        match (arn.service, arn.resource) {
            ("iam", "root") => Some(PrincipalKind::Account),
            ("iam", r) if r.starts_with("role/") => Some(PrincipalKind::Role),
            ("iam", r) if r.starts_with("user/") => Some(PrincipalKind::User),
            ("sts", r) if r.starts_with("assumed-role/") => Some(PrincipalKind::AssumedRole),
            _ => None,
        }
    }

    /// What a value of this kind is, for a refusal ("is an account").
    pub fn describe(self) -> &'static str {
        match self {
            PrincipalKind::Account => "a whole account",
            PrincipalKind::Role => "a role",
            PrincipalKind::User => "a user",
            PrincipalKind::AssumedRole => "a role session",
        }
    }
}

/// The principal a vendor's guide names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalProfile {
    /// The kinds a VendorPrincipal (or a fixed principal) may be.
    pub kinds: Vec<PrincipalKind>,
    /// The guide's words for it, quoted in a refusal: "a role: arn:aws:iam::ACCOUNT:role/NAME".
    pub names: String,
}

/// A bucket setting a vendor requires before it can use the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requirement {
    /// Default encryption SSE-KMS with the grant's KmsKeyArn.
    SseKmsWithKey,
    /// All four Block Public Access settings on.
    BlockPublicAccess,
    /// Object Ownership "bucket owner enforced" (ACLs disabled).
    AclsDisabled,
}

impl Requirement {
    pub fn describe(self) -> &'static str {
        match self {
            Requirement::SseKmsWithKey => {
                "default encryption must be SSE-KMS with the key given as KmsKeyArn"
            }
            Requirement::BlockPublicAccess => "Block Public Access must be on (all four settings)",
            Requirement::AclsDisabled => {
                "ACLs must be disabled (Object Ownership: BucketOwnerEnforced)"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorProfile {
    pub id: String,
    pub name: String,
    /// The guide in shared/vendor-docs this profile is taken from.
    pub guide: String,
    /// Where the guide is published.
    pub url: String,
    /// Fixed principals; empty means the grant must give VendorPrincipal.
    pub principals: Vec<String>,
    /// The kind of principal the guide names.
    pub principal: PrincipalProfile,
    /// The partitions the fixed principals exist in; empty: any.
    #[serde(default)]
    pub partitions: Vec<String>,
    /// Allowed modes, the default first.
    pub modes: Vec<Mode>,
    #[serde(default)]
    pub default_level: Option<AccessLevel>,
    #[serde(default)]
    pub defaults: BTreeMap<Mode, ActionSet>,
    #[serde(default)]
    pub upload: Option<UploadRule>,
    #[serde(default)]
    pub role: Option<RoleProfile>,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
}

impl VendorProfile {
    pub fn default_mode(&self) -> Mode {
        self.modes.first().copied().unwrap_or(Mode::BucketPolicy)
    }

    pub fn needs_vendor_principal(&self) -> bool {
        self.principals.is_empty()
    }

    /// Whether the vendor's principals exist in `partition` (a fixed account id belongs to one).
    pub fn serves_partition(&self, partition: &str) -> bool {
        self.partitions.is_empty() || self.partitions.iter().any(|p| p == partition)
    }

    /// "AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME (URL)"; for a vendor
    /// without a guide (custom), what it takes.
    pub fn guide_names(&self) -> String {
        if self.url.is_empty() {
            return format!("Vendor {} takes {}", self.id, self.principal.names);
        }
        format!(
            "{}'s guide names {} ({})",
            self.name, self.principal.names, self.url
        )
    }

    /// Whether a grant without Access is allowed (the vendor's guide gives a default).
    pub fn has_default_access(&self, mode: Mode) -> bool {
        self.default_level.is_some() || self.defaults.contains_key(&mode)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub levels: BTreeMap<AccessLevel, ActionSet>,
    pub vendors: Vec<VendorProfile>,
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn builtin() -> Result<&'static Catalog, Error> {
        static CATALOG: OnceLock<Result<Catalog, Error>> = OnceLock::new();
        CATALOG
            .get_or_init(|| Catalog::parse_json(BUILTIN))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The catalog from its JSON form (what build.rs makes of `vendors.toml`).
    pub fn parse_json(text: &str) -> Result<Catalog, Error> {
        let catalog: Catalog =
            serde_json::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        catalog.validate()?;
        Ok(catalog)
    }

    pub fn parse(text: &str) -> Result<Catalog, Error> {
        let catalog: Catalog = toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        catalog.validate()?;
        Ok(catalog)
    }

    pub fn vendor(&self, id: &str) -> Option<&VendorProfile> {
        self.vendors.iter().find(|v| v.id == id)
    }

    pub fn vendor_ids(&self) -> Vec<&str> {
        self.vendors.iter().map(|v| v.id.as_str()).collect()
    }

    /// The actions a grant gets: the explicit level if Access was set, else the vendor's default
    /// for the mode. `None` when there is neither (the caller reports Access as required).
    pub fn actions_for<'a>(
        &'a self,
        vendor: &'a VendorProfile,
        mode: Mode,
        access: Option<AccessLevel>,
    ) -> Option<&'a ActionSet> {
        match access.or(vendor.default_level) {
            Some(level) => self.levels.get(&level),
            None => vendor.defaults.get(&mode),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
        for level in AccessLevel::ALL {
            if !self.levels.contains_key(&level) {
                return bad(format!("access level {level} is missing"));
            }
        }
        let mut sets: Vec<(String, &ActionSet)> = self
            .levels
            .iter()
            .map(|(l, s)| (format!("level {l}"), s))
            .collect();
        for (i, v) in self.vendors.iter().enumerate() {
            if self.vendors[..i].iter().any(|o| o.id == v.id) {
                return bad(format!("vendor {} appears twice", v.id));
            }
            if v.modes.is_empty() {
                return bad(format!("vendor {} allows no mode", v.id));
            }
            if v.modes.contains(&Mode::Role) && v.role.is_none() {
                return bad(format!("vendor {} allows role mode but has no role", v.id));
            }
            if let Some(role) = &v.role
                && let Some(path) = &role.path
            {
                let valid = path.starts_with('/') && path.ends_with('/') && path.len() <= 512;
                if role.name.is_none() || !valid {
                    return bad(format!(
                        "vendor {}: a role path goes with a documented role name and is /, or \
                         /NAME/.../",
                        v.id
                    ));
                }
            }
            for mode in v.defaults.keys() {
                if !v.modes.contains(mode) {
                    return bad(format!(
                        "vendor {} has defaults for mode {mode} it does not allow",
                        v.id
                    ));
                }
            }
            if v.principal.kinds.is_empty() {
                return bad(format!("vendor {} names no principal kind", v.id));
            }
            for p in &v.principals {
                let partition = v.partitions.first().map(String::as_str).unwrap_or("aws");
                lint::check_principal("principals", p, partition)
                    .map_err(|e| Error::Invalid(format!("vendor {}: {e}", v.id)))?;
                if !PrincipalKind::of(p).is_some_and(|k| v.principal.kinds.contains(&k)) {
                    return bad(format!(
                        "vendor {}: principal {p} is not of the kinds its profile names",
                        v.id
                    ));
                }
            }
            if !v.principals.is_empty() && v.partitions.is_empty() {
                // An account id exists in one partition only.
                return bad(format!(
                    "vendor {} has fixed principals but names no partition",
                    v.id
                ));
            }
            if !v.guide.is_empty() && v.url.is_empty() {
                return bad(format!("vendor {} has a guide but not its url", v.id));
            }
            sets.extend(
                v.defaults
                    .iter()
                    .map(|(m, s)| (format!("vendor {} {m}", v.id), s)),
            );
        }
        for (what, set) in sets {
            for a in &set.s3 {
                if lint::s3_action_level(a).is_none() {
                    return bad(format!("{what}: {a} is not a known S3 action"));
                }
            }
            if let Some(a) = set.kms.iter().find(|a| !a.starts_with("kms:")) {
                return bad(format!("{what}: {a} is not a KMS action"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Catalog;

    #[test]
    fn the_built_in_json_is_the_toml_source() {
        let from_toml = Catalog::parse(include_str!("vendors.toml")).unwrap();
        assert_eq!(&from_toml, Catalog::builtin().unwrap());
        assert!(from_toml.vendor("telus").is_some());
    }

    /// What a vendor's principal must agree with: its kinds, its partition, its guide's URL.
    #[test]
    fn principal_kinds_partitions_and_urls_are_checked() {
        let source = include_str!("vendors.toml");
        let telus_principal =
            r#"principal = { kinds = ["account"], names = "an account: 475757276268" }"#;
        let broken = [
            (
                source.replace(
                    telus_principal,
                    r#"principal = { kinds = ["role"], names = "x" }"#,
                ),
                "principal 475757276268 is not of the kinds",
            ),
            (
                source.replace(
                    telus_principal,
                    r#"principal = { kinds = [], names = "x" }"#,
                ),
                "names no principal kind",
            ),
            (
                source.replacen("partitions = [\"aws\"]\n", "", 1),
                "fixed principals but names no partition",
            ),
            (
                source.replace("url = \"https://scale.com/docs/aws-s3\"\n", "url = \"\"\n"),
                "scale-ai has a guide but not its url",
            ),
        ];
        for (text, needle) in broken {
            assert_ne!(text, source, "{needle}: the edit did not apply");
            let e = Catalog::parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn the_kind_of_a_principal() {
        use super::PrincipalKind::{self, *};
        for (value, kind) in [
            ("123456789012", Some(Account)),
            ("arn:aws:iam::123456789012:root", Some(Account)),
            ("arn:aws-cn:iam::123456789012:role/path/r", Some(Role)),
            ("arn:aws:iam::123456789012:user/u", Some(User)),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s",
                Some(AssumedRole),
            ),
            ("arn:aws:s3:::bucket", None),
            ("*", None),
            ("12345678901", None),
        ] {
            assert_eq!(PrincipalKind::of(value), kind, "{value}");
        }
    }
}
