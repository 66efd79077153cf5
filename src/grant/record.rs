//! The registry's record of a grant: what it is (vendor, bucket, key, role, principals, access,
//! prefix, owning stack) and exactly what it wrote (each owned statement, the role's inline
//! policy, its trust policy with the ExternalId taken out), so that an audit can tell whether
//! the live policies still mean what was set up, and a repair can put it back. The ExternalId
//! itself is never recorded: only a salted hash of it, enough to tell a changed one apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::plan::Plan;
use super::properties::GrantProperties;
use crate::policy::canonical::fingerprint;
use crate::policy::{GrantId, PolicyDocument, Statement};

/// What stands in for the ExternalId in a recorded trust policy.
pub const EXTERNAL_ID_PLACEHOLDER: &str = "<ExternalId>";
/// The condition key a trust policy carries the ExternalId under.
const EXTERNAL_ID_KEY: &str = "sts:ExternalId";

/// One grant as it was set up, kept in the lock table under `grant#<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GrantRecord {
    pub grant_id: String,
    pub stack_id: String,
    pub logical_resource_id: String,
    pub vendor: String,
    pub bucket_name: String,
    pub kms_key_arn: Option<String>,
    /// `bucket-policy` or `role`.
    pub mode: String,
    pub role_name: Option<String>,
    pub principals: Vec<String>,
    pub access: Option<String>,
    pub prefix: Option<String>,
    pub statement_ids: Vec<String>,
    /// The grant's statements in the bucket policy, as written.
    pub bucket_statements: Vec<Statement>,
    /// The grant's statements in the key policy, as written.
    pub key_statements: Vec<Statement>,
    pub role: Option<RoleRecord>,
    /// A fingerprint of each statement (by Sid) and role document (`role:policy`,
    /// `role:trust`) written.
    pub fingerprints: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub recorded_at: u64,
}

/// The role part of a role-mode grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleRecord {
    pub role_name: String,
    pub permissions_policy_name: String,
    pub permissions_policy: Value,
    /// The trust policy with the ExternalId replaced by [`EXTERNAL_ID_PLACEHOLDER`].
    pub trust_policy: Value,
    /// `sha256(salt ":" ExternalId)` in hex, and its salt; `None` without an ExternalId.
    pub external_id_hash: Option<String>,
    pub external_id_salt: String,
}

impl GrantRecord {
    /// The record of a grant just written by `plan`.
    pub fn new(
        grant: &GrantId,
        stack_id: &str,
        logical_id: &str,
        props: &GrantProperties,
        plan: &Plan,
        kms_key_arn: Option<&str>,
        now: u64,
    ) -> GrantRecord {
        let mut fingerprints = BTreeMap::new();
        for s in plan.bucket_statements.iter().chain(&plan.key_statements) {
            if let Some(sid) = &s.sid {
                fingerprints.insert(sid.clone(), statement_fingerprint(s));
            }
        }
        let salt = format!("{:016x}", fastrand::u64(..));
        let role = plan.role.as_ref().map(|r| {
            let trust = redact_trust(&r.trust_policy.to_value(), props.external_id.as_deref());
            fingerprints.insert(
                "role:policy".into(),
                fingerprint(Some(&r.permissions_policy)),
            );
            fingerprints.insert("role:trust".into(), value_fingerprint(&trust));
            RoleRecord {
                role_name: r.role_name.clone(),
                permissions_policy_name: r.permissions_policy_name.clone(),
                permissions_policy: r.permissions_policy.to_value(),
                trust_policy: trust,
                external_id_hash: props
                    .external_id
                    .as_deref()
                    .map(|e| external_id_hash(&salt, e)),
                external_id_salt: salt.clone(),
            }
        });
        GrantRecord {
            grant_id: grant.to_string(),
            stack_id: stack_id.to_string(),
            logical_resource_id: logical_id.to_string(),
            vendor: props.vendor.clone(),
            bucket_name: props.bucket_name.clone(),
            kms_key_arn: kms_key_arn.map(str::to_string),
            mode: props.mode.to_string(),
            role_name: plan.role.as_ref().map(|r| r.role_name.clone()),
            principals: plan.principals.clone(),
            access: props.access.map(|a| a.to_string()),
            prefix: props.prefix.clone(),
            statement_ids: plan.statement_ids.clone(),
            bucket_statements: plan.bucket_statements.clone(),
            key_statements: plan.key_statements.clone(),
            role,
            fingerprints,
            recorded_at: now,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<GrantRecord, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl RoleRecord {
    /// How `live` (a role's trust policy as read) differs from the recorded one, in words: by
    /// meaning with the ExternalId set aside, and the ExternalId by its salted hash.
    pub fn trust_differences(&self, live: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let live_ids = external_ids_in(live);
        let ids_ok = match &self.external_id_hash {
            None => live_ids.is_empty(),
            Some(h) => {
                !live_ids.is_empty()
                    && live_ids
                        .iter()
                        .all(|e| &external_id_hash(&self.external_id_salt, e) == h)
            }
        };
        if !ids_ok {
            out.push(format!(
                "the ExternalId in the trust policy of role {} is not the one set up",
                self.role_name
            ));
        }
        let same = match (
            PolicyDocument::from_value(redact_trust(live, None), "trust policy"),
            PolicyDocument::from_value(self.trust_policy.clone(), "trust policy"),
        ) {
            (Ok(a), Ok(b)) => crate::policy::documents_equivalent(&a, &b),
            _ => false,
        };
        if !same {
            out.push(format!(
                "the trust policy of role {} differs from what was written",
                self.role_name
            ));
        }
        out
    }
}

/// A statement's fingerprint: by meaning, as the policy comparison sees it.
pub fn statement_fingerprint(statement: &Statement) -> String {
    fingerprint(Some(&PolicyDocument::with_statements(vec![
        statement.clone(),
    ])))
}

fn value_fingerprint(value: &Value) -> String {
    match PolicyDocument::from_value(value.clone(), "trust policy") {
        Ok(doc) => fingerprint(Some(&doc)),
        Err(_) => String::new(),
    }
}

/// The salted hash of an ExternalId.
pub fn external_id_hash(salt: &str, external_id: &str) -> String {
    let digest = Sha256::digest(format!("{salt}:{external_id}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `trust` with every value under `sts:ExternalId` that equals `external_id` replaced by the
/// placeholder (with `None`, every such value).
pub fn redact_trust(trust: &Value, external_id: Option<&str>) -> Value {
    let mut out = trust.clone();
    visit_external_ids(&mut out, &mut |v: &mut Value| {
        if external_id.is_none_or(|e| v.as_str() == Some(e)) {
            *v = Value::String(EXTERNAL_ID_PLACEHOLDER.into());
        }
    });
    out
}

/// The ExternalId values in a live trust policy.
pub fn external_ids_in(trust: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut copy = trust.clone();
    visit_external_ids(&mut copy, &mut |v: &mut Value| {
        if let Some(s) = v.as_str() {
            found.push(s.to_string());
        }
    });
    found
}

/// Calls `f` on each string (or each string of a list) under a `sts:ExternalId` key.
fn visit_external_ids(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k.eq_ignore_ascii_case(EXTERNAL_ID_KEY) {
                    match v {
                        Value::Array(items) => items.iter_mut().for_each(&mut *f),
                        other => f(other),
                    }
                } else {
                    visit_external_ids(v, f);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                visit_external_ids(v, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trust(ext: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::307185671274:root"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": ext}}}]})
    }

    #[test]
    fn the_external_id_is_redacted_and_only_its_salted_hash_kept() {
        let redacted = redact_trust(&trust("s3cret-ext"), Some("s3cret-ext"));
        assert!(!redacted.to_string().contains("s3cret-ext"));
        assert_eq!(
            redacted["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            EXTERNAL_ID_PLACEHOLDER
        );
        assert_eq!(external_ids_in(&trust("abc")), vec!["abc".to_string()]);
        let h = external_id_hash("salt", "s3cret-ext");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("s3cret"));
        assert_ne!(h, external_id_hash("salt", "other"));
        assert_ne!(h, external_id_hash("pepper", "s3cret-ext"));
    }

    #[test]
    fn a_list_of_external_ids_is_redacted_too() {
        let t =
            json!({"Statement": [{"Condition": {"StringEquals": {"sts:externalid": ["a", "b"]}}}]});
        let r = redact_trust(&t, None);
        assert_eq!(
            r["Statement"][0]["Condition"]["StringEquals"]["sts:externalid"],
            json!([EXTERNAL_ID_PLACEHOLDER, EXTERNAL_ID_PLACEHOLDER])
        );
    }
}
