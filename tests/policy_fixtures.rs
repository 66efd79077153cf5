//! Round trips and comparison by meaning on real policy documents (tests/fixtures/policies):
//! every shape AWS accepts must parse and serialise back to the same JSON value.

use std::fs;
use std::path::PathBuf;

use serde_json::{Value, json};
use vendor_grants::policy::canonical::fingerprint;
use vendor_grants::policy::{PolicyDocument, documents_equivalent, statements_equivalent};

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = fs::read_to_string(&path).expect("read fixture");
            let value: Value = serde_json::from_str(&text).expect("fixture is JSON");
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                value,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn there_are_enough_fixtures() {
    let names: Vec<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    assert!(names.len() >= 20, "only {} fixtures", names.len());
    for required in [
        "vendor-telus-bucket-policy.json",
        "vendor-telus-key-policy.json",
        "vendor-scale-ai-bucket-policy.json",
        "vendor-scale-ai-role-policy.json",
        "vendor-vcc-iam-policy.json",
        "vendor-vcc-trust-policy.json",
        "vendor-alphasense-bucket-policy.json",
        "kms-default-key-policy.json",
    ] {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
}

#[test]
fn every_fixture_round_trips_to_the_same_json_value() {
    for (name, original) in fixtures() {
        let doc = PolicyDocument::parse(&original.to_string(), "fixture")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.to_value(), original, "{name} did not round-trip");
        // And again from our own output, compact and pretty.
        let again = PolicyDocument::parse(&doc.to_json(), "fixture").unwrap();
        assert_eq!(again, doc, "{name}: compact output parses differently");
        let pretty = PolicyDocument::parse(&doc.to_json_pretty(), "fixture").unwrap();
        assert_eq!(pretty, doc, "{name}: pretty output parses differently");
    }
}

#[test]
fn fingerprints_tell_policies_apart_and_no_policy_from_any() {
    let prints: Vec<String> = fixtures()
        .into_iter()
        .map(|(_, v)| fingerprint(Some(&PolicyDocument::from_value(v, "fixture").unwrap())))
        .collect();
    let unique: std::collections::BTreeSet<&String> = prints.iter().collect();
    assert_eq!(unique.len(), prints.len());
    assert!(!prints.contains(&fingerprint(None)));
}

#[test]
fn every_fixture_is_equivalent_to_itself_and_not_to_the_others() {
    let docs: Vec<(String, PolicyDocument)> = fixtures()
        .into_iter()
        .map(|(n, v)| {
            let d = PolicyDocument::from_value(v, "fixture").unwrap();
            (n, d)
        })
        .collect();
    for (i, (a_name, a)) in docs.iter().enumerate() {
        assert!(documents_equivalent(a, a), "{a_name} not equal to itself");
        for (b_name, b) in docs.iter().skip(i + 1) {
            assert!(!documents_equivalent(a, b), "{a_name} equals {b_name}");
        }
    }
}

/// Reverses every list in a statement and turns one-element lists into strings (and back): what
/// a service may do when it hands a policy back.
fn reshape(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.len() == 1 => items[0].clone(),
        Value::Array(items) => Value::Array(items.iter().rev().cloned().collect()),
        Value::String(s) if s.len() > 3 => Value::Array(vec![Value::String(s.clone())]),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    // Keep Effect, Sid, Version and Id scalar: they are never lists.
                    let v = if ["Effect", "Sid", "Version", "Id"].contains(&k.as_str()) {
                        v.clone()
                    } else {
                        reshape(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn reordered_and_reshaped_fixtures_compare_equal_by_meaning() {
    let mut compared = 0;
    let all = fixtures();
    for (name, original) in all.clone() {
        let mut reshaped = original.clone();
        if let Some(statements) = reshaped.get_mut("Statement") {
            let new = match &*statements {
                Value::Array(items) => Value::Array(items.iter().rev().map(reshape).collect()),
                other => reshape(other),
            };
            *statements = new;
        }
        let a = PolicyDocument::from_value(original, "fixture").unwrap();
        let Ok(b) = PolicyDocument::from_value(reshaped.clone(), "fixture") else {
            // A reshaped Principal "*" becomes ["*"], which is not a valid shape: skip that one.
            continue;
        };
        assert_ne!(
            a.to_value(),
            b.to_value(),
            "{name}: reshaping changed nothing"
        );
        assert!(
            documents_equivalent(&a, &b),
            "{name}: reshaped copy differs: {reshaped}"
        );
        compared += 1;
    }
    assert!(
        compared + 3 >= all.len(),
        "only {compared} of {} compared",
        all.len()
    );
}

#[test]
fn bare_account_id_equals_root_arn_and_one_element_list_equals_string() {
    let a = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "111122223333"},
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}),
        "p",
    )
    .unwrap();
    let b = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]},
            "Action": ["S3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}}),
        "p",
    )
    .unwrap();
    assert!(documents_equivalent(&a, &b));
    assert!(statements_equivalent(&a.statements[0], &b.statements[0]));
}

#[test]
fn differences_in_meaning_are_seen() {
    let base = json!({"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*",
        "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}});
    let parse = |v: Value| {
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [v]}), "p").unwrap()
    };
    let a = parse(base.clone());
    let changes: Vec<(&str, Value)> = vec![
        ("Effect", json!("Deny")),
        ("Sid", json!("B")),
        (
            "Principal",
            json!({"AWS": "arn:aws:iam::444455556666:root"}),
        ),
        ("Principal", json!("*")),
        ("Action", json!(["s3:GetObject", "s3:PutObject"])),
        ("Resource", json!("arn:aws:s3:::B/*")),
        (
            "Condition",
            json!({"StringEquals": {"s3:x-amz-acl": "private"}}),
        ),
        (
            "Condition",
            json!({"StringLike": {"s3:x-amz-acl": "bucket-owner-full-control"}}),
        ),
    ];
    for (key, value) in changes {
        let mut changed = base.clone();
        changed[key] = value.clone();
        assert!(
            !documents_equivalent(&a, &parse(changed)),
            "changing {key} to {value} went unnoticed"
        );
    }
    // Case-insensitive parts: condition operator and key names, action names.
    let mut same = base.clone();
    same["Condition"] = json!({"stringequals": {"S3:X-Amz-Acl": ["bucket-owner-full-control"]}});
    same["Action"] = json!("S3:GETOBJECT");
    assert!(documents_equivalent(&a, &parse(same)));
}

#[test]
fn principal_wildcard_forms_are_equal_and_bad_strings_are_refused() {
    let p = |principal: Value| {
        PolicyDocument::from_value(
            json!({"Statement": [{"Effect": "Deny", "Principal": principal, "Action": "s3:*", "Resource": "*"}]}),
            "p",
        )
    };
    let star = p(json!("*")).unwrap();
    let aws_star = p(json!({"AWS": "*"})).unwrap();
    assert!(documents_equivalent(&star, &aws_star));
    let err = p(json!("111122223333")).unwrap_err();
    assert!(err.to_string().contains("must be \"*\""), "{err}");
}

#[test]
fn malformed_documents_are_refused_with_the_document_named() {
    for bad in [
        "not json",
        "[]",
        r#"{"Version": "2012-10-17"}"#,
        r#"{"Statement": [{"Action": "s3:GetObject"}]}"#,
        r#"{"Statement": [{"Effect": "Allow", "Action": 5}]}"#,
    ] {
        let err = PolicyDocument::parse(bad, "bucket policy").unwrap_err();
        assert!(err.to_string().contains("bucket policy"), "{bad}: {err}");
    }
}

#[test]
fn unknown_fields_are_kept() {
    let v = json!({"Version": "2012-10-17", "Future": {"x": 1}, "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "NewThing": [1, 2]}]});
    let doc = PolicyDocument::from_value(v.clone(), "p").unwrap();
    assert_eq!(doc.to_value(), v);
}

/// Issue 20, item 3: a key written twice anywhere in a document is refused, naming the
/// statement (by Sid, or by position without one) and the key; nothing is resolved last-wins.
#[test]
fn a_key_written_twice_is_refused_naming_statement_and_key() {
    let cases = [
        // The issue's case: Deny, then Allow, read last-wins as a public Allow.
        (
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Guard","Effect":"Deny","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
            "statement Guard has Effect twice",
        ),
        (
            r#"{"Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"},{"Effect":"Deny","Principal":"*","Action":"s3:*","Action":"s3:GetObject","Resource":"*"}]}"#,
            "statement #2 (no Sid) has Action twice",
        ),
        (
            r#"{"Statement":{"Sid":"One","Effect":"Allow","Principal":{"AWS":"111122223333","AWS":"*"},"Action":"s3:GetObject","Resource":"*"}}"#,
            "statement One has Principal.AWS twice",
        ),
        (
            r#"{"Statement":[{"Sid":"Vpc","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceVpc":"vpc-1","aws:SourceVpc":"vpc-2"}}}]}"#,
            "statement Vpc has Condition.StringNotEquals.aws:SourceVpc twice",
        ),
        (
            r#"{"Statement":[{"Sid":"C","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"},"Bool":{"aws:SecureTransport":"true"}}}]}"#,
            "statement C has Condition.Bool twice",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[],"Version":"2008-10-17"}"#,
            "the document has Version twice",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Old","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}],"Statement":[]}"#,
            "the document has Statement twice",
        ),
        // The Sid itself twice: the statement is named by the first.
        (
            r#"{"Statement":[{"Sid":"First","Sid":"Second","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
            "statement First has Sid twice",
        ),
    ];
    for (text, expected) in cases {
        // serde_json alone reads each of these without complaint (last wins).
        assert!(serde_json::from_str::<Value>(text).is_ok());
        let e = PolicyDocument::parse(text, "bucket policy")
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{text}: {e}");
        assert!(
            e.starts_with("the current bucket policy has a key written twice"),
            "{e}"
        );
        assert!(e.contains("nothing is written"), "{e}");
    }
    // The same keys in different objects are not repeats.
    let fine = r#"{"Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpc":"v"},"StringLike":{"aws:SourceVpc":"v*"}}},{"Sid":"B","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
    PolicyDocument::parse(fine, "bucket policy").unwrap();
}
