//! The audit's outputs: a table for people, JSON for tools, CloudWatch embedded-metric-format
//! lines for alarms, and the `--emit` formats that mute exactly the expected vendor access in
//! Access Analyzer and AWS Config.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Entry, Outcome, Status, summary};

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
/// expected grant and resource: findings for exactly that principal on exactly that bucket, key
/// or role are archived, so anything else still alerts.
pub fn archive_rules(entries: &[Entry], partition: &str) -> Value {
    let mut rules = Vec::new();
    for e in expected(entries) {
        let principals: Vec<&String> = e.principals.iter().collect();
        if principals.is_empty() {
            continue;
        }
        let mut resources = Vec::new();
        if let Some(b) = &e.bucket_name {
            resources.push(("s3", "AWS::S3::Bucket", format!("arn:{partition}:s3:::{b}")));
        }
        if let Some(k) = &e.kms_key_arn {
            resources.push(("kms", "AWS::KMS::Key", k.clone()));
        }
        if let Some(r) = &e.role_name {
            resources.push(("iam", "AWS::IAM::Role", r.clone()));
        }
        for (short, kind, resource) in resources {
            let resource_filter = if kind == "AWS::IAM::Role" {
                json!({"contains": [format!("role/vendor-grants/{resource}"), format!("role/{resource}")]})
            } else {
                json!({"eq": [resource]})
            };
            rules.push(json!({
                "ruleName": format!("vendor-grants-{}-{short}", e.grant_id),
                "filter": {
                    "resourceType": {"eq": [kind]},
                    "resource": resource_filter,
                    "principal.AWS": {"eq": principals},
                }
            }));
        }
    }
    Value::Array(rules)
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
