//! The audit's outputs: a table for people, JSON for tools, CloudWatch embedded-metric-format
//! lines for alarms, and the `--emit` formats that mute exactly the expected vendor access in
//! Access Analyzer and AWS Config.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Entry, Outcome, Status, summary};
use crate::policy::canonical::canonical_aws_principal;

/// `{"Grants": [...], "Summary": {...}}`, with what was fixed when `--fix` ran and what could not
/// be read (`"Unreadable": {"bucket:NAME": "why"}`) when anything could not.
pub fn to_json(outcome: &Outcome) -> Value {
    let (entries, fixed) = (&outcome.entries, &outcome.fixed);
    let grants: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    let mut out = json!({"Grants": grants, "Summary": summary(entries)});
    if !fixed.is_empty() {
        out["Fixed"] = fixed
            .iter()
            .map(|(id, done)| json!({"GrantId": id, "Done": done}))
            .collect();
    }
    if !outcome.would_remove.is_empty() {
        out["WouldRemove"] = outcome
            .would_remove
            .iter()
            .map(|(id, what)| json!({"GrantId": id, "Remove": what}))
            .collect();
    }
    if !outcome.unreadable.is_empty() {
        out["Unreadable"] = json!(outcome.unreadable);
    }
    out
}

/// A table: one line a grant, its findings indented below, what could not be read, then the
/// counts.
pub fn table(outcome: &Outcome) -> String {
    let (entries, fixed) = (&outcome.entries, &outcome.fixed);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.grant_id.clone(),
                e.status.as_str().to_string(),
                dash(&e.vendor),
                dash(&e.bucket_name),
                e.kms_key_arn.as_deref().map_or("-".into(), short_key),
                dash(&e.role_name),
                match (&e.stack_id, &e.logical_resource_id) {
                    (Some(s), Some(l)) => format!("{}/{l}", stack_name(s)),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let header = [
        "GRANT",
        "STATUS",
        "VENDOR",
        "BUCKET",
        "KEY",
        "ROLE",
        "STACK/RESOURCE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("no vendor-grants grants found\n");
    } else {
        out.push_str(&line(&header.map(String::from)));
        out.push('\n');
        for (row, e) in rows.iter().zip(entries) {
            out.push_str(&line(row));
            out.push('\n');
            for f in &e.findings {
                let _ = writeln!(out, "    - {f}");
            }
        }
    }
    for (id, done) in fixed {
        for d in done {
            let _ = writeln!(out, "fixed {id}: {d}");
        }
    }
    for (id, what) in &outcome.would_remove {
        for w in what {
            let _ = writeln!(out, "would remove {id}: {w}");
        }
    }
    if !outcome.would_remove.is_empty() {
        let _ = writeln!(
            out,
            "nothing was removed: run again with --yes to remove the {} orphan(s) above",
            outcome.would_remove.len()
        );
    }
    for (what, why) in &outcome.unreadable {
        let _ = writeln!(out, "could not read {what}: {why}");
    }
    let counts: Vec<String> = summary(entries)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "{}",
        if counts.is_empty() {
            "0 grants".to_string()
        } else {
            counts.join(", ")
        }
    );
    out
}

fn short_key(arn: &str) -> String {
    arn.rsplit_once('/').map_or(arn, |(_, id)| id).to_string()
}

fn stack_name(stack_id: &str) -> &str {
    stack_id
        .split_once(":stack/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(stack_id)
}

/// One CloudWatch embedded-metric-format line: the count of grants per status, namespace
/// `VendorGrants`, no dimensions (one series a status), so an alarm can watch `drifted`.
pub fn emf(entries: &[Entry], timestamp_ms: u64) -> Value {
    let counts = summary(entries);
    let metrics: Vec<Value> = counts
        .keys()
        .map(|s| json!({"Name": s, "Unit": "Count"}))
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": "VendorGrants", "Dimensions": [[]], "Metrics": metrics}]
        }
    });
    for (s, n) in counts {
        line[s] = json!(n);
    }
    line
}

/// The grants that count as expected access: `ok` and `incomplete` ones (set up and still so).
fn expected(entries: &[Entry]) -> impl Iterator<Item = &Entry> {
    entries
        .iter()
        .filter(|e| matches!(e.status, Status::Ok | Status::Incomplete))
}

/// Access Analyzer archive rules (CreateArchiveRule's `ruleName` and `filter`), one per
/// expected grant and resource, each as narrow as the filter keys allow.
///
/// The filter keys of archive rules (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-filter-keys.html>)
/// are `resource` (the ARN), `resourceType`, `resourceOwnerAccount`, `isPublic`, `error`,
/// `principal.AWS` ("the 12-digit AWS account ID or the ARN of the external AWS user or role"),
/// `principal.Federated` and a fixed list of `condition.<key>` keys (aws:PrincipalArn,
/// aws:PrincipalOrgID, aws:SourceIp, aws:SourceVpc, aws:UserId, kms:CallerAccount, ...). A
/// finding carries `action` and `condition` too (the finding event in
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-eventbridge.html>:
/// `"principal": {"AWS": "999988887777"}, "action": ["s3:GetObject"], "condition": {}`), but
/// `action` is no filter key, and the conditions grants write (`s3:prefix`,
/// `s3:x-amz-acl`, `sts:ExternalId`) are none of the listed ones. So a rule is exact on what
/// it can be exact on: `eq` on the resource ARN (never `contains` on a name), `eq` on the
/// grant's principals (an account as its 12-digit id, as the key's description says; roles and
/// users as ARNs), and `isPublic` = false (the archive-rules guide's advice, so no public access
/// is ever archived: <https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-archive-rules.html>).
///
/// What a rule cannot tell apart (more actions for the same principal on the same resource) the
/// audit does: a grant whose live access is wider than recorded is `drifted`, and only `ok` and
/// `incomplete` grants get rules. A role-mode grant gets only its role's rule: the vendor's
/// own account reaching the bucket or key directly is the confused-deputy access role mode is
/// chosen to avoid, so it must keep alerting.
pub fn archive_rules(entries: &[Entry], partition: &str) -> Value {
    let mut rules = Vec::new();
    for e in expected(entries) {
        let principals = finding_principals(&e.principals);
        if principals.is_empty() {
            continue;
        }
        let mut resources = Vec::new();
        if e.role_mode {
            if let Some(arn) = &e.role_arn {
                resources.push(("iam", "AWS::IAM::Role", arn.clone()));
            }
        } else {
            if let Some(b) = &e.bucket_name {
                resources.push(("s3", "AWS::S3::Bucket", format!("arn:{partition}:s3:::{b}")));
            }
            if let Some(k) = &e.kms_key_arn {
                resources.push(("kms", "AWS::KMS::Key", k.clone()));
            }
        }
        for (short, kind, resource) in resources {
            rules.push(json!({
                "ruleName": format!("vendor-grants-{}-{short}", e.grant_id),
                "filter": {
                    "resourceType": {"eq": [kind]},
                    "resource": {"eq": [resource]},
                    "principal.AWS": {"eq": principals},
                    "isPublic": {"eq": ["false"]},
                }
            }));
        }
    }
    Value::Array(rules)
}

/// The grant's principals as a finding names them: an account (`111122223333` or
/// `arn:aws:iam::111122223333:root`) as its 12-digit id, anything else as written.
fn finding_principals(principals: &[String]) -> Vec<String> {
    let mut out: Vec<String> = principals
        .iter()
        .map(
            |p| match canonical_aws_principal(p).strip_prefix("account:") {
                Some(id) => id.to_string(),
                None => p.clone(),
            },
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether Access Analyzer would archive `finding` (a finding as GetFinding or the finding
/// event's `detail` shows it) under `rule` (`{"ruleName", "filter"}` or the bare filter): every
/// criterion must hold; `eq` is any of its values, `neq` none of them, `contains` a substring,
/// `exists` presence. `principal.X` and `condition.X` are looked up in the finding's
/// `principal` and `condition` maps; booleans compare as `"true"`/`"false"`. A rule that names
/// a key the finding lacks does not match (so a rule on `resource` never archives an error
/// finding with another resource).
pub fn rule_matches(rule: &Value, finding: &Value) -> bool {
    let Some(filter) = rule.get("filter").unwrap_or(rule).as_object() else {
        return false;
    };
    filter.iter().all(|(key, criterion)| {
        let found = finding_values(finding, key);
        let list = |op: &str| -> Vec<String> {
            criterion
                .get(op)
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut ok = true;
        if criterion.get("eq").is_some() {
            let eq = list("eq");
            ok &= found.iter().any(|f| eq.contains(f));
        }
        if criterion.get("neq").is_some() {
            let neq = list("neq");
            ok &= !found.iter().any(|f| neq.contains(f));
        }
        if criterion.get("contains").is_some() {
            let contains = list("contains");
            ok &= found
                .iter()
                .any(|f| contains.iter().any(|c| f.contains(c.as_str())));
        }
        if let Some(exists) = criterion.get("exists").and_then(Value::as_bool) {
            ok &= exists != found.is_empty();
        }
        ok
    })
}

/// The values of one filter key in a finding, as strings.
fn finding_values(finding: &Value, key: &str) -> Vec<String> {
    let value = match key.split_once('.') {
        Some((map @ ("principal" | "condition"), inner)) => {
            finding.get(map).and_then(|m| m.get(inner))
        }
        _ => finding.get(key),
    };
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The parameters of AWS Config's `s3-bucket-policy-grantee-check`: every principal the
/// expected grants name, AWS principals and service principals apart.
pub fn config_grantee_check(entries: &[Entry]) -> Value {
    let mut aws = BTreeSet::new();
    let mut services = BTreeSet::new();
    for e in expected(entries).filter(|e| e.role_name.is_none()) {
        for p in &e.principals {
            if p.ends_with(".amazonaws.com") {
                services.insert(p.clone());
            } else {
                aws.insert(p.clone());
            }
        }
    }
    let join = |s: BTreeSet<String>| s.into_iter().collect::<Vec<_>>().join(",");
    json!({"awsPrincipals": join(aws), "servicePrincipals": join(services)})
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn entry(id: &str, status: Status, principals: &[&str]) -> Entry {
        Entry {
            grant_id: id.into(),
            status,
            vendor: Some("custom".into()),
            bucket_name: Some("my-bucket".into()),
            kms_key_arn: None,
            role_name: None,
            principals: principals.iter().map(|p| p.to_string()).collect(),
            prefix: Some("datasets/".into()),
            actions: vec!["s3:GetObject".into(), "s3:ListBucket".into()],
            stack_id: None,
            logical_resource_id: None,
            statement_ids: Vec::new(),
            findings: Vec::new(),
            record: None,
            record_why: None,
            left_for_person: Vec::new(),
            role_mode: false,
            role_arn: None,
        }
    }

    /// A finding as the finding event's `detail` shows it
    /// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-eventbridge.html).
    fn finding(resource: &str, kind: &str, principal: &str, action: &[&str]) -> Value {
        json!({
            "accountId": "111122223333", "action": action, "analyzedAt": "2019-11-21T01:22:22Z",
            "condition": {}, "createdAt": "2019-11-20T04:58:50Z",
            "id": "22222222-dcba-4444-dcba-333333333333", "isDeleted": false, "isPublic": false,
            "principal": {"AWS": principal}, "region": "us-west-2", "resource": resource,
            "resourceType": kind, "status": "ACTIVE", "updatedAt": "2019-11-21T01:14:07Z",
            "version": "1.0"
        })
    }

    fn archived(rules: &Value, finding: &Value) -> bool {
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| rule_matches(r, finding))
    }

    #[test]
    fn a_bucket_grants_rule_archives_its_own_finding_only() {
        let e = entry(
            "0123456789abcdef",
            Status::Ok,
            &["arn:aws:iam::999988887777:root"],
        );
        let rules = archive_rules(&[e], "aws");
        assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
        assert_eq!(
            rules[0]["filter"]["principal.AWS"]["eq"],
            json!(["999988887777"])
        );
        assert_eq!(
            rules[0]["filter"]["resource"]["eq"],
            json!(["arn:aws:s3:::my-bucket"])
        );
        assert_eq!(rules[0]["filter"]["isPublic"]["eq"], json!(["false"]));
        let own = finding(
            "arn:aws:s3:::my-bucket",
            "AWS::S3::Bucket",
            "999988887777",
            &["s3:GetObject"],
        );
        assert!(archived(&rules, &own));
        // Another account, another bucket whose name contains this one, public access.
        let other = finding(
            "arn:aws:s3:::my-bucket",
            "AWS::S3::Bucket",
            "444455556666",
            &["s3:GetObject"],
        );
        assert!(!archived(&rules, &other));
        let longer = finding(
            "arn:aws:s3:::my-bucket-secret",
            "AWS::S3::Bucket",
            "999988887777",
            &["s3:GetObject"],
        );
        assert!(!archived(&rules, &longer));
        let mut public = own.clone();
        public["isPublic"] = json!(true);
        assert!(!archived(&rules, &public));
    }

    #[test]
    fn a_drifted_grant_gets_no_rule_so_its_wider_finding_still_alerts() {
        // The finding of a hand-added Put/Delete for the same principal on the whole bucket
        // differs from the grant's only in `action`, which no filter key reaches: the audit
        // judges such a grant drifted and emits nothing for it.
        let e = entry("0123456789abcdef", Status::Drifted, &["999988887777"]);
        let rules = archive_rules(&[e], "aws");
        let wider = finding(
            "arn:aws:s3:::my-bucket",
            "AWS::S3::Bucket",
            "999988887777",
            &["s3:DeleteObject", "s3:PutObject"],
        );
        assert!(!archived(&rules, &wider), "{rules}");
    }

    #[test]
    fn a_role_grants_rule_is_its_role_exactly_and_nothing_on_the_bucket_or_key() {
        let mut e = entry("0123456789abcdef", Status::Ok, &["307185671274"]);
        e.role_mode = true;
        e.role_name = Some("ScaleAI-Integration".into());
        e.role_arn = Some("arn:aws:iam::111122223333:role/ScaleAI-Integration".into());
        e.kms_key_arn = Some(
            "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        );
        let rules = archive_rules(&[e], "aws");
        assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
        assert_eq!(rules[0]["ruleName"], "vendor-grants-0123456789abcdef-iam");
        let own = finding(
            "arn:aws:iam::111122223333:role/ScaleAI-Integration",
            "AWS::IAM::Role",
            "307185671274",
            &["sts:AssumeRole"],
        );
        assert!(archived(&rules, &own));
        let admin = finding(
            "arn:aws:iam::111122223333:role/ScaleAI-Integration-Admin",
            "AWS::IAM::Role",
            "307185671274",
            &["sts:AssumeRole"],
        );
        assert!(!archived(&rules, &admin));
        // The vendor's own account on the bucket or key: the confused deputy, never archived.
        for (resource, kind) in [
            ("arn:aws:s3:::my-bucket", "AWS::S3::Bucket"),
            (
                "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "AWS::KMS::Key",
            ),
        ] {
            let direct = finding(resource, kind, "307185671274", &["s3:GetObject"]);
            assert!(!archived(&rules, &direct), "{resource}");
        }
    }

    #[test]
    fn rule_matches_follows_each_operator() {
        let f = finding(
            "arn:aws:s3:::my-bucket",
            "AWS::S3::Bucket",
            "999988887777",
            &[],
        );
        let m = |filter: Value| rule_matches(&json!({"filter": filter}), &f);
        assert!(m(json!({"resource": {"contains": ["my-"]}})));
        assert!(!m(json!({"resource": {"neq": ["arn:aws:s3:::my-bucket"]}})));
        assert!(m(json!({"error": {"exists": false}})));
        assert!(!m(json!({"error": {"exists": true}})));
        assert!(!m(json!({"condition.aws:SourceVpc": {"eq": ["vpc-1"]}})));
        assert!(m(
            json!({"isPublic": {"eq": ["false"]}, "principal.AWS": {"eq": ["999988887777"]}})
        ));
    }
}
