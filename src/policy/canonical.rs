//! Comparing policies by meaning, not text: AWS hands back a policy reformatted (S3 turns a bare
//! account id into `arn:aws:iam::ID:root`, lists may be reordered, a one-element list may come
//! back as a string), and a verify step that compared text would fail on every one of those.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::document::{OneOrMany, PolicyDocument, Principal, Statement};

/// A statement reduced to what it means. Two statements are equivalent when their canonical
/// forms are equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CanonicalStatement {
    sid: Option<String>,
    effect: String,
    principal: Option<CanonicalPrincipal>,
    not_principal: Option<CanonicalPrincipal>,
    action: Option<BTreeSet<String>>,
    not_action: Option<BTreeSet<String>>,
    resource: Option<BTreeSet<String>>,
    not_resource: Option<BTreeSet<String>>,
    condition: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum CanonicalPrincipal {
    Anyone,
    Map(BTreeMap<String, BTreeSet<String>>),
}

/// `123456789012` and `arn:aws:iam::123456789012:root` name the same principal.
pub fn canonical_aws_principal(value: &str) -> String {
    if is_account_id(value) {
        return format!("account:{value}");
    }
    if let Some(rest) = value.strip_prefix("arn:")
        && let Some((_partition, rest)) = rest.split_once(':')
        && let Some(account) = rest
            .strip_prefix("iam::")
            .and_then(|r| r.strip_suffix(":root"))
        && is_account_id(account)
    {
        return format!("account:{account}");
    }
    value.to_string()
}

pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn set(values: &OneOrMany, f: impl Fn(&str) -> String) -> BTreeSet<String> {
    values.values().iter().map(|v| f(v)).collect()
}

fn principal(p: &Principal) -> CanonicalPrincipal {
    match p {
        Principal::Wildcard(_) => CanonicalPrincipal::Anyone,
        Principal::Map(map) => {
            // {"AWS": "*"} grants the same as "*".
            if map.len() == 1
                && map
                    .get("AWS")
                    .is_some_and(|v| v.values().iter().all(|s| s == "*"))
            {
                return CanonicalPrincipal::Anyone;
            }
            CanonicalPrincipal::Map(
                map.iter()
                    .map(|(kind, values)| {
                        let values = if kind == "AWS" {
                            set(values, canonical_aws_principal)
                        } else {
                            set(values, str::to_string)
                        };
                        (kind.clone(), values)
                    })
                    .collect(),
            )
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn condition_values(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => BTreeSet::from([scalar(other)]),
    }
}

impl CanonicalStatement {
    pub fn of(s: &Statement) -> Self {
        // Action names are case-insensitive in IAM; resources and condition values are not.
        let lower = |v: &str| v.to_ascii_lowercase();
        let same = |v: &str| v.to_string();
        CanonicalStatement {
            sid: s.sid.clone(),
            effect: s.effect.clone(),
            principal: s.principal.as_ref().map(principal),
            not_principal: s.not_principal.as_ref().map(principal),
            action: s.action.as_ref().map(|a| set(a, lower)),
            not_action: s.not_action.as_ref().map(|a| set(a, lower)),
            resource: s.resource.as_ref().map(|r| set(r, same)),
            not_resource: s.not_resource.as_ref().map(|r| set(r, same)),
            condition: s
                .condition
                .iter()
                .flatten()
                .map(|(op, keys)| {
                    // Operators and condition keys are case-insensitive.
                    let keys = keys
                        .iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), condition_values(v)))
                        .collect();
                    (op.to_ascii_lowercase(), keys)
                })
                .filter(|(_, keys): &(String, BTreeMap<_, _>)| !keys.is_empty())
                .collect(),
            extra: s
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        }
    }
}

/// Statement equivalence by meaning.
pub fn statements_equivalent(a: &Statement, b: &Statement) -> bool {
    CanonicalStatement::of(a) == CanonicalStatement::of(b)
}

/// Policy equivalence by meaning: same version and id, and the same statements in any order.
pub fn documents_equivalent(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    let sorted = |d: &PolicyDocument| {
        let mut v: Vec<_> = d.statements.iter().map(CanonicalStatement::of).collect();
        v.sort();
        v
    };
    a.version == b.version && a.id == b.id && sorted(a) == sorted(b)
}

/// Whether every statement of `wanted` is present, by meaning, in `actual`.
pub fn contains_all(actual: &PolicyDocument, wanted: &[Statement]) -> bool {
    let present: BTreeSet<_> = actual
        .statements
        .iter()
        .map(CanonicalStatement::of)
        .collect();
    wanted
        .iter()
        .all(|s| present.contains(&CanonicalStatement::of(s)))
}

/// A digest of a policy's meaning (statement order, formatting, one-element lists and the like do
/// not count); `None`, no policy, has its own. Tells whether a read shows a given write yet.
pub fn fingerprint(doc: Option<&PolicyDocument>) -> String {
    use sha2::{Digest, Sha256};
    let text = match doc {
        None => "no policy".to_string(),
        Some(d) => {
            let mut statements: Vec<_> = d.statements.iter().map(CanonicalStatement::of).collect();
            statements.sort();
            format!("{:?}|{:?}|{statements:?}", d.version, d.id)
        }
    };
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
