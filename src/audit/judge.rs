//! What a grant's vendor can do beyond the grant, judged from what the audit read (pure): the
//! rest of a vendor-grants role (inline policies no recorded grant of that role wrote, attached
//! managed policies), and statements in the bucket or key policy, not the grant's, that give the
//! grant's principal more than the grant's own statements do. None of it is the grant's, so
//! each is a finding that makes the grant `drifted`, keeps it out of the archive rules, and that
//! `--fix` leaves for a person.

use super::{Place, Role};
use crate::grant::GrantRecord;
use crate::grant::plan::grant_of_policy_name;
use crate::policy::canonical::{canonical_aws_principal, is_account_id};
use crate::policy::{Condition, PolicyDocument, Principal, Statement, owner_of_statement};

/// Everything on `role` that gives it permissions beyond the inline policies of the grants
/// recorded for it (`records`: every record naming this role), leaving out the inline policies
/// of other regions' grants (`elsewhere`: judged by those regions' audits).
pub(super) fn role_widening(
    role: &Role,
    records: &[&GrantRecord],
    elsewhere: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let recorded = |name: &str| {
        records.iter().any(|r| {
            r.role
                .as_ref()
                .is_some_and(|rr| rr.role_name == role.name && rr.permissions_policy_name == name)
        })
    };
    let mut out = Vec::new();
    for name in role
        .inline
        .keys()
        .filter(|n| !recorded(n) && !elsewhere.contains(*n))
    {
        let whose = grant_of_policy_name(name)
            .map(|g| format!(" of grant {g}, which has no record for this role"))
            .unwrap_or_default();
        out.push(format!(
            "role {} also has inline policy {name}{whose}: it widens what the vendor can do \
             (--fix leaves it for a person)",
            role.name
        ));
    }
    for name in &role.other_inline {
        out.push(format!(
            "role {} also has inline policy {name}, which vendor-grants did not write: it \
             widens what the vendor can do (--fix leaves it for a person)",
            role.name
        ));
    }
    for arn in &role.attached {
        out.push(format!(
            "role {} also has managed policy {arn} attached, which vendor-grants did not \
             attach: it widens what the vendor can do (--fix leaves it for a person)",
            role.name
        ));
    }
    out
}

/// Statements of `policy` (at `place`) that are no grant's and give a principal of `granted`
/// (the grant's own statements there) an action on a resource that `granted` does not. With
/// `whole_account`, any principal of the same account as a granted principal counts as the
/// vendor's (bucket-policy grants name external accounts and roles of the vendor); otherwise
/// only the same principal does (a role-mode grant names a role of this account).
///
/// A public statement (`"*"`, or `NotPrincipal` with Allow) is not judged here: Access Analyzer
/// reports it as public, and no archive rule of the audit matches a public finding.
pub(super) fn wider_statements(
    place: &Place,
    policy: Option<&PolicyDocument>,
    granted: &[Statement],
    whole_account: bool,
) -> Vec<String> {
    let grantees: Vec<&String> = granted
        .iter()
        .filter_map(|s| s.principal.as_ref())
        .flat_map(Principal::aws_values)
        .collect();
    let mut out = Vec::new();
    for (i, s) in policy.iter().flat_map(|p| p.statements.iter()).enumerate() {
        if owner_of_statement(s).is_some() || !s.effect.eq_ignore_ascii_case("Allow") {
            continue;
        }
        let Some(principal) = s.principal.as_ref().and_then(|p| {
            p.aws_values()
                .iter()
                .find(|v| grantees.iter().any(|g| reaches(v, g, whole_account)))
        }) else {
            continue;
        };
        let beyond = beyond_grant(s, granted);
        if beyond.is_empty() {
            continue;
        }
        let label = s
            .sid
            .as_deref()
            .filter(|sid| !sid.is_empty())
            .map_or_else(|| format!("#{} (no Sid)", i + 1), str::to_string);
        let resources = match (&s.resource, &s.not_resource) {
            (Some(r), _) => r.values().join(", "),
            (None, Some(nr)) => format!("every resource but {}", nr.values().join(", ")),
            (None, None) => "no resource".to_string(),
        };
        out.push(format!(
            "statement {label} in {} also gives {principal} {} on {resources}, beyond the \
             grant (not one of its statements: --fix leaves it for a person)",
            place.describe(),
            beyond.join(", "),
        ));
    }
    out
}

/// Whether a statement naming `value` reaches the grant's principal `grantee`.
fn reaches(value: &str, grantee: &str, whole_account: bool) -> bool {
    if value == "*" {
        return false;
    }
    if canonical_aws_principal(value) == canonical_aws_principal(grantee) {
        return true;
    }
    whole_account && account_of(value).is_some_and(|a| Some(a) == account_of(grantee))
}

/// The account of an account id, a `:root` ARN or an IAM/STS ARN.
fn account_of(principal: &str) -> Option<&str> {
    if is_account_id(principal) {
        return Some(principal);
    }
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam" | "sts", "", account, _] if is_account_id(account) => Some(account),
        _ => None,
    }
}

/// The actions of `s` that `granted` does not give on every resource (and under every
/// condition) `s` gives them; `NotAction` or `NotResource` is never within a grant.
fn beyond_grant(s: &Statement, granted: &[Statement]) -> Vec<String> {
    if let Some(na) = &s.not_action {
        return vec![format!("every action but {}", na.values().join(", "))];
    }
    let resources = match (&s.resource, &s.not_resource) {
        (Some(r), None) => r.values(),
        _ => return s.actions().to_vec(),
    };
    s.actions()
        .iter()
        .filter(|a| {
            !resources
                .iter()
                .all(|r| covered(a, r, s.condition.as_ref(), granted))
        })
        .cloned()
        .collect()
}

/// Whether some statement of `granted` allows `action` on `resource` under no condition that
/// the foreign statement lacks (conditions only narrow an Allow, so more of them is within).
fn covered(
    action: &str,
    resource: &str,
    condition: Option<&Condition>,
    granted: &[Statement],
) -> bool {
    granted.iter().any(|g| {
        g.effect.eq_ignore_ascii_case("Allow")
            && g.not_action.is_none()
            && g.not_resource.is_none()
            && g.actions().iter().any(|p| action_within(action, p))
            && g.resources().iter().any(|p| resource_within(resource, p))
            && conditions_within(condition, g.condition.as_ref())
    })
}

/// `action` (as a foreign statement writes it) is one the grant's `pattern` allows: the same
/// (IAM action names are case-insensitive), or a literal action the pattern's wildcards match.
fn action_within(action: &str, pattern: &str) -> bool {
    let (a, p) = (action.to_ascii_lowercase(), pattern.to_ascii_lowercase());
    a == p || (!a.contains(['*', '?']) && glob(&p, &a))
}

/// Every resource `resource` can stand for is one `pattern` stands for: the same text, or the
/// pattern is `PREFIX*` (no other wildcard) and `resource` starts with PREFIX.
fn resource_within(resource: &str, pattern: &str) -> bool {
    resource == pattern
        || pattern
            .strip_suffix('*')
            .is_some_and(|body| !body.contains(['*', '?']) && resource.starts_with(body))
}

/// Every condition of the grant's statement is also on the foreign one, with the same values.
fn conditions_within(foreign: Option<&Condition>, granted: Option<&Condition>) -> bool {
    granted.is_none_or(|g| {
        g.iter().all(|(op, keys)| {
            keys.iter()
                .all(|(k, v)| foreign.and_then(|f| f.get(op)).and_then(|m| m.get(k)) == Some(v))
        })
    })
}

/// IAM's `*` / `?` wildcard match of the whole `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    const GRANT: &str = "0123456789abcdef";

    fn statement(v: serde_json::Value) -> Statement {
        serde_json::from_value(v).unwrap()
    }

    /// The statements a prefix-limited read grant for account 111122223333 writes.
    fn granted() -> Vec<Statement> {
        vec![
            statement(
                json!({"Sid": format!("VG{GRANT}BucketList"), "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::data",
                "Condition": {"StringLike": {"s3:prefix": "datasets/*"}}}),
            ),
            statement(
                json!({"Sid": format!("VG{GRANT}BucketObjects"), "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::data/datasets/*"}),
            ),
        ]
    }

    fn judge(extra: serde_json::Value, whole_account: bool) -> Vec<String> {
        let mut statements = granted();
        statements.push(statement(extra));
        let policy = PolicyDocument::with_statements(statements);
        wider_statements(
            &Place::Bucket("data".into()),
            Some(&policy),
            &granted(),
            whole_account,
        )
    }

    #[test]
    fn a_hand_added_write_for_the_same_vendor_is_beyond_the_grant() {
        let found = judge(
            json!({"Sid": "VendorWrite", "Effect": "Allow", "Principal": {"AWS": "111122223333"},
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:GetObject"],
                "Resource": "arn:aws:s3:::data/*"}),
            true,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "statement VendorWrite in the bucket policy of data also gives 111122223333 \
                 s3:PutObject, s3:DeleteObject, s3:GetObject on arn:aws:s3:::data/*"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn what_the_grant_already_gives_is_not_beyond_it() {
        // Same actions on a narrower prefix, with an extra condition: within the grant.
        let found = judge(
            json!({"Sid": "Dup", "Effect": "Allow", "Principal": {"AWS": "111122223333"},
                "Action": "S3:GetObject", "Resource": "arn:aws:s3:::data/datasets/2024/*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}}}),
            true,
        );
        assert!(found.is_empty(), "{found:?}");
        // Listing without the grant's prefix condition is wider.
        let found = judge(
            json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"},
                "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data"}),
            true,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("statement #3 (no Sid)") && found[0].contains("s3:ListBucket"),
            "{found:?}"
        );
    }

    #[test]
    fn other_principals_denies_and_public_statements_are_not_the_vendors() {
        for extra in [
            json!({"Effect": "Allow", "Principal": {"AWS": "999988887777"},
                "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}),
            json!({"Effect": "Deny", "Principal": {"AWS": "111122223333"},
                "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}),
            json!({"Effect": "Allow", "Principal": "*",
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/public/*"}),
            json!({"Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/public/*"}),
        ] {
            assert!(judge(extra.clone(), true).is_empty(), "{extra}");
        }
    }

    #[test]
    fn a_role_of_the_vendors_account_counts_only_for_whole_account_grants() {
        let extra = json!({"Sid": "VendorAdmin", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/Admin"},
            "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/*"});
        assert_eq!(judge(extra.clone(), true).len(), 1);
        assert!(judge(extra, false).is_empty());
    }

    #[test]
    fn not_action_is_never_within_a_grant() {
        let found = judge(
            json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"},
                "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::data/datasets/*"}),
            true,
        );
        assert!(
            found.len() == 1 && found[0].contains("every action but s3:DeleteBucket"),
            "{found:?}"
        );
    }

    #[test]
    fn wildcard_actions_of_the_grant_cover_literal_ones_only() {
        assert!(action_within(
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKey*"
        ));
        assert!(action_within(
            "KMS:GENERATEDATAKEY*",
            "kms:GenerateDataKey*"
        ));
        assert!(!action_within("kms:*", "kms:GenerateDataKey*"));
        assert!(!action_within("s3:GetObject", "s3:GetObjectAcl"));
        assert!(resource_within("arn:aws:s3:::b/p/x*", "arn:aws:s3:::b/p/*"));
        assert!(!resource_within("arn:aws:s3:::b/*", "arn:aws:s3:::b/p/*"));
        assert!(!resource_within("arn:aws:s3:::b/p/x", "arn:aws:s3:::b/?/*"));
    }

    fn role(inline: &[&str], other: &[&str], attached: &[&str]) -> Role {
        Role {
            name: "ScaleAI-Integration".into(),
            inline: inline
                .iter()
                .map(|n| (n.to_string(), PolicyDocument::new()))
                .collect::<BTreeMap<_, _>>(),
            other_inline: other.iter().map(|s| s.to_string()).collect(),
            attached: attached.iter().map(|s| s.to_string()).collect(),
            ..Role::default()
        }
    }

    fn record(grant: &str) -> GrantRecord {
        serde_json::from_value(json!({
            "GrantId": grant, "StackId": "s", "LogicalResourceId": "Grant", "Vendor": "scale-ai",
            "BucketName": "data", "KmsKeyArn": null, "Mode": "role",
            "RoleName": "ScaleAI-Integration", "Principals": ["307185671274"], "Access": null,
            "Prefix": null, "StatementIds": [], "BucketStatements": [], "KeyStatements": [],
            "Role": {"RoleName": "ScaleAI-Integration",
                "PermissionsPolicyName": format!("VendorGrant-{grant}"),
                "PermissionsPolicy": {}, "TrustPolicy": {}, "ExternalIdHash": null,
                "ExternalIdSalt": ""},
            "Fingerprints": {}, "RecordedAt": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_shared_role_with_only_its_grants_policies_is_not_widened() {
        let (a, b) = (record("0123456789abcdef"), record("fedcba9876543210"));
        let r = role(
            &[
                "VendorGrant-0123456789abcdef",
                "VendorGrant-fedcba9876543210",
            ],
            &[],
            &[],
        );
        assert!(role_widening(&r, &[&a, &b], &Default::default()).is_empty());
    }

    #[test]
    fn another_regions_grant_on_a_shared_role_is_not_a_widening_here() {
        // Scale's role shared with a grant of another region: its inline policy is recorded in
        // that region's registry, and judged by that region's audit.
        let a = record("0123456789abcdef");
        let r = role(
            &[
                "VendorGrant-0123456789abcdef",
                "VendorGrant-fedcba9876543210",
            ],
            &[],
            &[],
        );
        let elsewhere = ["VendorGrant-fedcba9876543210".to_string()].into();
        assert!(role_widening(&r, &[&a], &elsewhere).is_empty());
        // Not known to be another region's: still a widening.
        assert_eq!(role_widening(&r, &[&a], &Default::default()).len(), 1);
    }

    #[test]
    fn every_other_policy_on_the_role_is_named() {
        let a = record("0123456789abcdef");
        let r = role(
            &[
                "VendorGrant-0123456789abcdef",
                "VendorGrant-fedcba9876543210",
            ],
            &["Extra"],
            &["arn:aws:iam::aws:policy/AmazonS3FullAccess"],
        );
        let found = role_widening(&r, &[&a], &Default::default());
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("VendorGrant-fedcba9876543210 of grant fedcba9876543210"));
        assert!(found[1].contains("inline policy Extra"));
        assert!(found[2].contains("managed policy arn:aws:iam::aws:policy/AmazonS3FullAccess"));
    }
}
