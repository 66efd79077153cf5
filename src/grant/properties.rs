//! ResourceProperties as CloudFormation sends them (every scalar a string), checked against the
//! contract and the vendor's profile. Everything that can be known wrong from the input alone is
//! refused here, before any AWS call.

use serde_json::{Map, Value};

use super::Error;
use crate::catalog::{
    AccessLevel, Catalog, ExternalIdPolicy, Mode, PrincipalKind, Requirement, VendorProfile,
};
use crate::policy::arn::Arn;
use crate::policy::lint;

/// Where a property's value goes in [`RawProperties`].
#[derive(Clone, Copy)]
enum Field {
    /// A scalar (CloudFormation sends every scalar as a string).
    Scalar(fn(&mut RawProperties) -> &mut Option<String>),
    /// `VendorPrincipal`: one or a list.
    Principals,
}

/// The one table of the properties a grant accepts, in the order the contract lists them, each
/// with where its value goes: the valid names, the strict read and the lenient one all come
/// from here.
const PROPERTIES: [(&str, Field); 9] = [
    ("Vendor", Field::Scalar(|r| &mut r.vendor)),
    ("BucketName", Field::Scalar(|r| &mut r.bucket_name)),
    ("KmsKeyArn", Field::Scalar(|r| &mut r.kms_key)),
    ("Mode", Field::Scalar(|r| &mut r.mode)),
    ("Access", Field::Scalar(|r| &mut r.access)),
    ("Prefix", Field::Scalar(|r| &mut r.prefix)),
    ("VendorPrincipal", Field::Principals),
    ("ExternalId", Field::Scalar(|r| &mut r.external_id)),
    ("RoleName", Field::Scalar(|r| &mut r.role_name)),
];

impl Field {
    /// Reads `value` of property `name` into `raw`; on error the property stays unset.
    fn read(self, raw: &mut RawProperties, name: &str, value: &Value) -> Result<(), Error> {
        match self {
            Field::Scalar(field) => *field(raw) = scalar(name, value)?,
            Field::Principals => raw.vendor_principals = principal_list(value)?,
        }
        Ok(())
    }
}

/// The properties a grant accepts, in the order the contract lists them.
pub const VALID_PROPERTIES: &[&str] = &{
    let mut names = [""; PROPERTIES.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = PROPERTIES[i].0;
        i += 1;
    }
    names
};

/// Properties that belong to CloudFormation: accepted and ignored.
pub const CLOUDFORMATION_PROPERTIES: &[&str] = &["ServiceToken", "ServiceTimeout"];

/// A grant's validated properties. Defaults that depend on the vendor (mode) are resolved;
/// those that depend on AWS (the key's ARN) are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantProperties {
    pub vendor: String,
    pub bucket_name: String,
    /// As given: a key id, key ARN, alias name or alias ARN.
    pub kms_key: Option<String>,
    pub mode: Mode,
    /// As given; `None` means the vendor's default.
    pub access: Option<AccessLevel>,
    pub prefix: Option<String>,
    /// As given; empty for vendors with a fixed principal.
    pub vendor_principals: Vec<String>,
    pub external_id: Option<String>,
    /// As given; `None` means the vendor's documented name or a generated one.
    pub role_name: Option<String>,
}

/// Raw values before validation, as the CLI and the function both have them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawProperties {
    pub vendor: Option<String>,
    pub bucket_name: Option<String>,
    pub kms_key: Option<String>,
    pub mode: Option<String>,
    pub access: Option<String>,
    pub prefix: Option<String>,
    pub vendor_principals: Option<Vec<String>>,
    pub external_id: Option<String>,
    pub role_name: Option<String>,
}

fn scalar(name: &str, value: &Value) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(Error::NotAString {
            property: name.to_string(),
        }),
    }
}

/// `VendorPrincipal`: a string (commas separate several) or a list of strings, each item taken
/// whole: IAM role names may hold commas (`role/a,b`).
fn principal_list(value: &Value) -> Result<Option<Vec<String>>, Error> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(split(s))),
        Value::Number(n) => Ok(Some(vec![n.to_string()])),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    Value::String(_) => {}
                    Value::Number(n) => out.push(n.to_string()),
                    _ => {
                        return Err(Error::NotAString {
                            property: "VendorPrincipal".to_string(),
                        });
                    }
                }
            }
            Ok(Some(out))
        }
        _ => Err(Error::NotAString {
            property: "VendorPrincipal".to_string(),
        }),
    }
}

impl RawProperties {
    /// Reads what it can of ResourceProperties, for a Delete: unknown or mistyped properties are
    /// passed over, since a Delete must clean up whatever an older or newer version wrote.
    pub fn from_json_lenient(properties: &Value) -> Self {
        let mut raw = RawProperties::default();
        let Some(map) = properties.as_object() else {
            return raw;
        };
        for (name, field) in PROPERTIES {
            if let Some(value) = map.get(name) {
                // Lenient: a value that does not read leaves the property unset.
                let _ = field.read(&mut raw, name, value);
            }
        }
        raw
    }

    /// Reads ResourceProperties. Unknown properties are refused, naming the valid ones.
    pub fn from_json(properties: &Value) -> Result<Self, Error> {
        let empty = Map::new();
        let map = match properties {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => return Err(Error::NotAnObject),
        };
        let mut raw = RawProperties::default();
        for (name, value) in map {
            match PROPERTIES.iter().find(|(p, _)| p == name) {
                Some((_, field)) => field.read(&mut raw, name, value)?,
                None if CLOUDFORMATION_PROPERTIES.contains(&name.as_str()) => {}
                None => {
                    return Err(Error::UnknownProperty {
                        property: name.to_string(),
                    });
                }
            }
        }
        Ok(raw)
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl GrantProperties {
    /// Reads and checks ResourceProperties against `catalog`.
    pub fn from_json(properties: &Value, catalog: &Catalog) -> Result<Self, Error> {
        Self::from_raw(RawProperties::from_json(properties)?, catalog)
    }

    /// Checks each property in the contract's order, so the first error reported is the same.
    pub fn from_raw(raw: RawProperties, catalog: &Catalog) -> Result<Self, Error> {
        let vendor = parse_vendor(raw.vendor, catalog)?;
        let bucket_name = parse_bucket_name(raw.bucket_name)?;

        let kms_key = non_empty(raw.kms_key);
        if let Some(key) = &kms_key {
            check_key_reference(key)?;
        }

        let mode = parse_mode(vendor, raw.mode)?;
        let access = parse_access(vendor, mode, raw.access)?;

        let prefix = parse_prefix(raw.prefix)?;

        let vendor_principals = raw.vendor_principals.unwrap_or_default();
        check_principal_presence(vendor, &vendor_principals)?;
        check_principal_kinds(vendor, mode, &vendor_principals)?;

        let external_id = raw.external_id.filter(|v| !v.is_empty());
        check_external_id(vendor, mode, external_id.as_deref())?;

        let role_name = parse_role_name(mode, raw.role_name)?;
        check_kms_requirement(vendor, kms_key.as_deref())?;

        Ok(GrantProperties {
            vendor: vendor.id.clone(),
            bucket_name,
            kms_key,
            mode,
            access,
            prefix,
            vendor_principals,
            external_id,
            role_name,
        })
    }
}

impl GrantProperties {
    /// What a Prefix that does not end in `/` also grants, for the plan's output and the
    /// function's log; `None` without Prefix or when it ends in `/`.
    pub fn prefix_note(&self) -> Option<String> {
        let p = self.prefix.as_deref().filter(|p| !p.ends_with('/'))?;
        Some(format!(
            "Prefix {p:?} does not end in \"/\", so it also matches longer names: \
             \"{p}-secret/...\" and \"{p}2.csv\" as well as \"{p}/...\"; end it with \"/\" to \
             limit the grant to one folder"
        ))
    }
}

/// Whether `value` shows nothing: only white space (Unicode's, U+3000 and NBSP included) and
/// zero-width characters.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| {
        c.is_whitespace()
            || matches!(
                c,
                '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}'
            )
    })
}

/// Prefix: absent means the whole bucket. A blank one (`""` from a template that joins an
/// empty parameter, `" "`, U+3000) is refused, never read as absent: that would widen the grant
/// to the whole bucket.
fn parse_prefix(prefix: Option<String>) -> Result<Option<String>, Error> {
    let Some(p) = prefix else {
        return Ok(None);
    };
    if is_blank(&p) {
        return Err(Error::InvalidValue {
            property: "Prefix",
            value: p,
            valid: "a key prefix such as \"exports/\"; a blank Prefix is refused, never read as \
                    the whole bucket: to grant the whole bucket, omit Prefix"
                .to_string(),
        });
    }
    lint::check_prefix(&p)?;
    Ok(Some(p))
}

/// VendorPrincipal: each of the kind the vendor's guide names; and in role mode never a whole
/// account when the vendor sends no external id, unless its guide asks for exactly that.
fn check_principal_kinds(
    vendor: &VendorProfile,
    mode: Mode,
    given: &[String],
) -> Result<(), Error> {
    for value in given {
        // A value that is no principal at all is refused by the plan, naming what is wrong.
        let Some(kind) = PrincipalKind::of(value) else {
            continue;
        };
        if !vendor.principal.kinds.contains(&kind) {
            return Err(Error::PrincipalKind {
                value: value.clone(),
                found: kind.describe(),
                guide: vendor.guide_names(),
            });
        }
        let without_id = vendor.role.as_ref().is_some_and(|r| {
            r.external_id == ExternalIdPolicy::None && !r.account_without_external_id
        });
        if mode == Mode::Role && kind == PrincipalKind::Account && without_id {
            return Err(Error::AccountWithoutExternalId {
                value: value.clone(),
                vendor: vendor.id.clone(),
            });
        }
    }
    Ok(())
}

/// Vendor: required, and must name a vendor in the catalog.
fn parse_vendor(vendor: Option<String>, catalog: &Catalog) -> Result<&VendorProfile, Error> {
    let vendor_id = non_empty(vendor).ok_or_else(|| Error::Missing {
        property: "Vendor",
        hint: format!("one of: {}", catalog.vendor_ids().join(", ")),
    })?;
    catalog
        .vendor(&vendor_id)
        .ok_or_else(|| Error::InvalidValue {
            property: "Vendor",
            value: vendor_id.clone(),
            valid: format!("one of: {}", catalog.vendor_ids().join(", ")),
        })
}

/// BucketName: required, and must be a valid S3 bucket name.
fn parse_bucket_name(bucket_name: Option<String>) -> Result<String, Error> {
    let bucket_name = non_empty(bucket_name).ok_or_else(|| Error::Missing {
        property: "BucketName",
        hint: "the name of an existing S3 bucket in this account".to_string(),
    })?;
    check_bucket_name(&bucket_name)?;
    Ok(bucket_name)
}

/// Mode: the vendor's default when absent; otherwise a known mode the vendor supports.
fn parse_mode(vendor: &VendorProfile, mode: Option<String>) -> Result<Mode, Error> {
    let Some(m) = non_empty(mode) else {
        return Ok(vendor.default_mode());
    };
    let valid = vendor
        .modes
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let parsed = m.parse::<Mode>().map_err(|()| Error::InvalidValue {
        property: "Mode",
        value: m.clone(),
        valid: format!("one of: {valid}"),
    })?;
    if !vendor.modes.contains(&parsed) {
        return Err(Error::InvalidValue {
            property: "Mode",
            value: m,
            valid: format!("vendor {} supports only: {valid}", vendor.id),
        });
    }
    Ok(parsed)
}

/// Access: a known level, required when the vendor has no default for `mode`.
fn parse_access(
    vendor: &VendorProfile,
    mode: Mode,
    access: Option<String>,
) -> Result<Option<AccessLevel>, Error> {
    let access = match non_empty(access) {
        None => None,
        Some(a) => Some(a.parse::<AccessLevel>().map_err(|()| Error::InvalidValue {
            property: "Access",
            value: a.clone(),
            valid: "one of: read, write, read-write, full".to_string(),
        })?),
    };
    if access.is_none() && !vendor.has_default_access(mode) {
        return Err(Error::Missing {
            property: "Access",
            hint: format!(
                "vendor {} has no default access; give read, write, read-write or full",
                vendor.id
            ),
        });
    }
    Ok(access)
}

/// RoleName: only with Mode: role, and must be a valid IAM role name.
fn parse_role_name(mode: Mode, role_name: Option<String>) -> Result<Option<String>, Error> {
    let role_name = non_empty(role_name);
    if let Some(name) = &role_name {
        if mode != Mode::Role {
            return Err(Error::InvalidValue {
                property: "RoleName",
                value: name.clone(),
                valid: "RoleName applies only with Mode: role; remove it".to_string(),
            });
        }
        check_role_name(name)?;
    }
    Ok(role_name)
}

/// KmsKeyArn: required for vendors that need the bucket encrypted with a customer-managed key.
fn check_kms_requirement(vendor: &VendorProfile, kms_key: Option<&str>) -> Result<(), Error> {
    if vendor.requirements.contains(&Requirement::SseKmsWithKey) && kms_key.is_none() {
        return Err(Error::Missing {
            property: "KmsKeyArn",
            hint: format!(
                "vendor {} requires the bucket to be encrypted with a customer-managed KMS key; give that key's ARN",
                vendor.id
            ),
        });
    }
    Ok(())
}

fn check_principal_presence(vendor: &VendorProfile, given: &[String]) -> Result<(), Error> {
    if vendor.needs_vendor_principal() && given.is_empty() {
        return Err(Error::Missing {
            property: "VendorPrincipal",
            hint: format!(
                "vendor {} gives each customer its principal, or a list of them: {}",
                vendor.id,
                vendor.guide_names()
            ),
        });
    }
    if !vendor.needs_vendor_principal() && !given.is_empty() {
        return Err(Error::InvalidValue {
            property: "VendorPrincipal",
            value: given.join(","),
            valid: format!(
                "vendor {}'s principal is fixed ({}); remove VendorPrincipal or use Vendor: custom",
                vendor.id,
                vendor.principals.join(", ")
            ),
        });
    }
    if given.len() > 20 {
        return Err(Error::InvalidValue {
            property: "VendorPrincipal",
            value: format!("{} principals", given.len()),
            valid: "at most 20 principals".to_string(),
        });
    }
    Ok(())
}

/// ExternalId: 2 to 1224 characters of `[\w+=,.@:/-]`. Its value never appears in an error.
fn check_external_id(
    vendor: &VendorProfile,
    mode: Mode,
    external_id: Option<&str>,
) -> Result<(), Error> {
    let vendor_sends = vendor
        .role
        .as_ref()
        .map(|r| r.external_id == ExternalIdPolicy::Required);
    match (mode, external_id, vendor_sends) {
        (Mode::BucketPolicy, Some(_), _) => Err(Error::Secret {
            property: "ExternalId",
            problem: "is given, but it applies only with Mode: role; remove it".to_string(),
        }),
        (Mode::Role, None, Some(true)) => Err(Error::Missing {
            property: "ExternalId",
            hint: format!(
                "role mode for vendor {} needs the external id the vendor gave you",
                vendor.id
            ),
        }),
        (Mode::Role, Some(_), Some(false)) => Err(Error::Secret {
            property: "ExternalId",
            problem: format!(
                "is given, but vendor {} sends no external id when it assumes the role; remove it",
                vendor.id
            ),
        }),
        (_, Some(id), _) => {
            let len = id.chars().count();
            let chars_ok = id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !(2..=1224).contains(&len) || !chars_ok {
                return Err(Error::Secret {
                    property: "ExternalId",
                    problem: format!(
                        "is not valid ({len} characters): it must be 2 to 1224 characters of letters, digits and _+=,.@:/-"
                    ),
                });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// S3 bucket naming rules for general purpose buckets.
pub fn check_bucket_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::InvalidValue {
        property: "BucketName",
        value: name.to_string(),
        valid: format!("a bucket name that {why}"),
    };
    if !(3..=63).contains(&name.len()) {
        return Err(bad("is 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(bad("has only lowercase letters, digits, dots and hyphens"));
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(bad("starts and ends with a letter or digit"));
    }
    if name.contains("..") {
        return Err(bad("has no two adjacent dots"));
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err(bad("is not an IP address"));
    }
    Ok(())
}

/// KmsKeyArn: a key ARN, an alias ARN, a key id or an alias name.
pub fn check_key_reference(value: &str) -> Result<(), Error> {
    let bad = || Error::InvalidValue {
        property: "KmsKeyArn",
        value: value.to_string(),
        valid: "a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias ARN \
                (arn:aws:kms:REGION:ACCOUNT:alias/NAME), a key id or alias/NAME"
            .to_string(),
    };
    let resource = if value.starts_with("arn:") {
        match Arn::parse(value) {
            Some(arn)
                if arn.service == "kms"
                    && !arn.region.is_empty()
                    && crate::policy::canonical::is_account_id(arn.account) =>
            {
                arn.resource
            }
            _ => return Err(bad()),
        }
    } else {
        value
    };
    let id_ok = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let alias_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 250
            && !name.starts_with("aws/")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    };
    let ok = if let Some(id) = resource.strip_prefix("key/") {
        value.starts_with("arn:") && id_ok(id)
    } else if let Some(name) = resource.strip_prefix("alias/") {
        alias_ok(name)
    } else {
        !value.starts_with("arn:") && id_ok(resource)
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// IAM role names: 1 to 64 characters of `[\w+=,.@-]`.
pub fn check_role_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(Error::InvalidValue {
            property: "RoleName",
            value: name.to_string(),
            valid: "1 to 64 characters of letters, digits and _+=,.@-".to_string(),
        });
    }
    Ok(())
}
