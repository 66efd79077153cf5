//! The `vendor-grants plan` CLI, run as a process: the JSON it prints, the foreign statements it
//! keeps, the `--diff` view, its refusals of bad input (exit 2, nothing on stdout, one line on
//! stderr naming the property) and the stability of the grant id.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_vendor-grants");

const BUCKET: &str = "example-data-bucket";
const BUCKET_ARN: &str = "arn:aws:s3:::example-data-bucket";
const OBJECT_ARN: &str = "arn:aws:s3:::example-data-bucket/*";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const TELUS_ROOT: &str = "arn:aws:iam::475757276268:root";
const SCALE_ROOT: &str = "arn:aws:iam::307185671274:root";
const EXTERNAL_ID: &str = "scale-ext-7f3c9a1b";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("plan")
        .args(args)
        .output()
        .expect("the vendor-grants binary runs")
}

/// Runs `plan` expecting success and JSON on stdout.
#[track_caller]
fn plan_json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "plan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "stderr on success: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan {args:?} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `plan` expecting a refusal: exit code 2, nothing on stdout, exactly one line on stderr.
/// Returns that line.
#[track_caller]
fn plan_error(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(2), "plan {args:?}: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "plan {args:?} printed on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert_eq!(
        stderr.lines().count(),
        1,
        "plan {args:?}: not one line: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'));
    let line = stderr.trim_end().to_string();
    assert!(
        line.starts_with("vendor-grants: error: "),
        "unexpected error line {line:?}"
    );
    line
}

fn fixture_path(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policies")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A temporary file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "vendor-grants-cli-plan-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn strs(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The statements of a policy document: `Statement` as a list or as a single object.
fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        other => panic!("Statement is neither a list nor an object: {other}"),
    }
}

fn string_or_list(v: &Value) -> BTreeSet<String> {
    match v {
        Value::String(s) => BTreeSet::from([s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_string())
            .collect(),
        Value::Null => BTreeSet::new(),
        other => panic!("not a string or list of strings: {other}"),
    }
}

fn sid(s: &Value) -> &str {
    s["Sid"].as_str().unwrap_or("")
}

/// GrantId is 16 lowercase hex digits, and every StatementIds entry is `VG<GrantId>` then letters
/// and digits. Returns (grant id, statement ids).
#[track_caller]
fn check_ids(plan: &Value) -> (String, BTreeSet<String>) {
    let grant = plan["GrantId"].as_str().expect("GrantId is a string");
    assert_eq!(grant.len(), 16, "GrantId {grant}");
    assert!(
        grant
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let ids = plan["StatementIds"]
        .as_array()
        .expect("StatementIds is a list");
    assert!(!ids.is_empty());
    let mut out = BTreeSet::new();
    for id in ids {
        let id = id.as_str().expect("each Sid is a string");
        assert!(id.starts_with(&format!("VG{grant}")), "Sid {id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "Sid {id}");
        assert!(out.insert(id.to_string()), "Sid {id} listed twice");
    }
    (grant.to_string(), out)
}

fn owned_sids(doc: &Value, grant: &str) -> BTreeSet<String> {
    statements(doc)
        .iter()
        .map(|s| sid(s).to_string())
        .filter(|s| s.starts_with(&format!("VG{grant}")))
        .collect()
}

const TOP_LEVEL: [&str; 5] = [
    "GrantId",
    "BucketPolicy",
    "KeyPolicy",
    "Role",
    "StatementIds",
];

// ---------------------------------------------------------------------------------------------
// (a) The JSON plan.

#[test]
fn plan_prints_the_five_keys_in_bucket_policy_mode() {
    let plan = plan_json(&["--vendor", "telus", "--bucket", "b1-data"]);
    assert_eq!(keys(&plan), strs(&TOP_LEVEL));
    let (grant, ids) = check_ids(&plan);
    assert!(plan["Role"].is_null(), "no role in bucket-policy mode");
    assert!(plan["KeyPolicy"].is_null(), "no key, no key policy");

    let bucket = &plan["BucketPolicy"];
    assert_eq!(keys(bucket), strs(&["Version", "Statement"]));
    assert_eq!(bucket["Version"], "2012-10-17");
    let stmts = statements(bucket);
    assert_eq!(stmts.len(), 2, "ListBucket and the object actions");
    assert_eq!(owned_sids(bucket, &grant), ids);
    for s in &stmts {
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(string_or_list(&s["Principal"]["AWS"]), strs(&[TELUS_ROOT]));
    }
    let list = stmts
        .iter()
        .find(|s| sid(s).ends_with("BucketList"))
        .expect("a BucketList statement");
    assert_eq!(string_or_list(&list["Action"]), strs(&["s3:ListBucket"]));
    assert_eq!(list["Resource"], "arn:aws:s3:::b1-data");
    let objects = stmts
        .iter()
        .find(|s| sid(s).ends_with("BucketObjects"))
        .expect("a BucketObjects statement");
    assert_eq!(
        string_or_list(&objects["Action"]),
        strs(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
    );
    assert_eq!(objects["Resource"], "arn:aws:s3:::b1-data/*");
}

#[test]
fn plan_with_a_key_prints_the_merged_key_policy() {
    let plan = plan_json(&[
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
    ]);
    assert_eq!(keys(&plan), strs(&TOP_LEVEL));
    let (grant, ids) = check_ids(&plan);
    assert!(plan["Role"].is_null());
    let key = &plan["KeyPolicy"];
    assert!(key.is_object(), "a key policy: {key}");
    let stmts = statements(key);
    // The key's default policy is kept as it is.
    assert!(stmts.contains(&json!({
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*",
        "Resource": "*"
    })));
    let own: Vec<&Value> = stmts
        .iter()
        .filter(|s| sid(s).starts_with(&format!("VG{grant}")))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(sid(own[0]), format!("VG{grant}KeyUse"));
    assert_eq!(
        string_or_list(&own[0]["Principal"]["AWS"]),
        strs(&[TELUS_ROOT])
    );
    assert_eq!(own[0]["Resource"], "*");
    assert_eq!(
        string_or_list(&own[0]["Action"]),
        strs(&[
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey"
        ])
    );
    let mut all = owned_sids(&plan["BucketPolicy"], &grant);
    all.extend(owned_sids(key, &grant));
    assert_eq!(all, ids, "StatementIds lists every Sid written");
}

#[test]
fn plan_in_role_mode_prints_the_role() {
    let plan = plan_json(&[
        "--vendor",
        "scale-ai",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
        "--external-id",
        EXTERNAL_ID,
    ]);
    assert_eq!(keys(&plan), strs(&TOP_LEVEL));
    let (grant, ids) = check_ids(&plan);
    assert!(
        plan["BucketPolicy"].is_null(),
        "role mode with no bucket policy given: still none"
    );

    let role = &plan["Role"];
    for k in ["RoleName", "TrustPolicy", "PermissionsPolicy"] {
        assert!(keys(role).contains(k), "Role lacks {k}: {role}");
    }
    assert_eq!(
        keys(role),
        strs(&[
            "RoleName",
            "Path",
            "RoleArn",
            "TrustPolicy",
            "PermissionsPolicyName",
            "PermissionsPolicy"
        ])
    );
    assert_eq!(role["RoleName"], "ScaleAI-Integration");
    // The full ARN Scale assumes: its documented name at the path /.
    assert_eq!(role["Path"], "/");
    assert_eq!(
        role["RoleArn"],
        "arn:aws:iam::111122223333:role/ScaleAI-Integration"
    );
    assert_eq!(
        role["PermissionsPolicyName"],
        format!("VendorGrant-{grant}")
    );

    let trust = statements(&role["TrustPolicy"]);
    assert_eq!(trust.len(), 1);
    assert_eq!(trust[0]["Effect"], "Allow");
    assert_eq!(
        string_or_list(&trust[0]["Principal"]["AWS"]),
        strs(&[SCALE_ROOT])
    );
    assert_eq!(
        string_or_list(&trust[0]["Action"]),
        strs(&["sts:AssumeRole"])
    );
    assert_eq!(
        trust[0]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": EXTERNAL_ID}})
    );

    let perms = &role["PermissionsPolicy"];
    assert_eq!(perms["Version"], "2012-10-17");
    let perm_stmts = statements(perms);
    for s in &perm_stmts {
        assert!(s.get("Principal").is_none(), "identity policy: {s}");
    }
    let actions_on = |resource: &str| -> BTreeSet<String> {
        perm_stmts
            .iter()
            .filter(|s| string_or_list(&s["Resource"]).contains(resource))
            .flat_map(|s| string_or_list(&s["Action"]))
            .collect()
    };
    assert_eq!(actions_on(BUCKET_ARN), strs(&["s3:ListBucket"]));
    assert_eq!(actions_on(OBJECT_ARN), strs(&["s3:GetObject"]));
    assert_eq!(
        actions_on(KEY_ARN),
        strs(&["kms:Decrypt", "kms:DescribeKey"])
    );
    // The default key policy delegates to IAM: it is unchanged, and owns nothing of ours.
    assert!(owned_sids(&plan["KeyPolicy"], &grant).is_empty());
    assert_eq!(statements(&plan["KeyPolicy"]).len(), 1);
    assert_eq!(owned_sids(perms, &grant), ids);
}

#[test]
fn role_mode_adds_role_key_use_to_a_key_policy_without_delegation() {
    // The TELUS guide's key statement alone: no "Enable IAM User Permissions".
    let key_policy = fixture("vendor-telus-key-policy.json");
    let plan = plan_json(&[
        "--vendor",
        "scale-ai",
        "--mode",
        "role",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
        "--key-policy",
        &fixture_path("vendor-telus-key-policy.json"),
        "--external-id",
        EXTERNAL_ID,
    ]);
    let (grant, ids) = check_ids(&plan);
    let key = &plan["KeyPolicy"];
    let stmts = statements(key);
    for original in statements(&key_policy) {
        assert!(stmts.contains(&original), "lost {original}");
    }
    let role_key = stmts
        .iter()
        .find(|s| sid(s) == format!("VG{grant}RoleKeyUse"))
        .expect("a RoleKeyUse statement");
    assert_eq!(
        role_key["Principal"]["AWS"], "arn:aws:iam::111122223333:role/ScaleAI-Integration",
        "Scale's role is at the path Scale assumes it at, /"
    );
    assert_eq!(role_key["Resource"], "*");
    assert!(ids.contains(&format!("VG{grant}RoleKeyUse")));
}

#[test]
fn role_mode_leaves_the_given_bucket_policy_exactly_as_it_is() {
    for name in [
        "deny-insecure-transport.json",
        "cloudtrail-bucket-policy.json",
        "single-statement-object.json",
    ] {
        let plan = plan_json(&[
            "--vendor",
            "vcc",
            "--bucket",
            BUCKET,
            "--vendor-principal",
            "arn:aws:iam::777788889999:role/vcc-export-primary",
            "--vendor-principal",
            "arn:aws:iam::777788889999:role/vcc-export-secondary",
            "--bucket-policy",
            &fixture_path(name),
        ]);
        assert_eq!(plan["BucketPolicy"], fixture(name), "{name}");
        let trust = statements(&plan["Role"]["TrustPolicy"]);
        assert!(
            trust[0].get("Condition").is_none(),
            "vcc sends no ExternalId"
        );
        assert_eq!(string_or_list(&trust[0]["Principal"]["AWS"]).len(), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Foreign statements are kept unchanged.

#[test]
fn every_statement_of_a_bucket_policy_fixture_is_kept_unchanged() {
    let fixtures = [
        "deny-insecure-transport.json",
        "cloudtrail-bucket-policy.json",
        "aws-config-delivery-bucket.json",
        "bucket-policy-bare-account-ids.json",
        "canonical-user-cloudfront-oai.json",
        "cloudfront-oac-bucket-policy.json",
        "conditions-many-operators.json",
        "elb-access-logs-bucket-policy.json",
        "legacy-2008-version-public-read.json",
        "log-delivery-bucket-policy.json",
        "mixed-case-actions.json",
        "notprincipal-deny.json",
        "require-sse-kms-bucket-policy.json",
        "s3-inventory-destination.json",
        "s3-vpc-endpoint-restriction.json",
        "single-statement-object.json",
        "vendor-alphasense-bucket-policy.json",
        "vendor-scale-ai-bucket-policy.json",
        "vendor-telus-bucket-policy.json",
    ];
    for name in fixtures {
        let original = fixture(name);
        let plan = plan_json(&[
            "--vendor",
            "telus",
            "--bucket",
            BUCKET,
            "--bucket-policy",
            &fixture_path(name),
        ]);
        let (grant, ids) = check_ids(&plan);
        let after = &plan["BucketPolicy"];
        let old = statements(&original);
        let new = statements(after);
        assert_eq!(new.len(), old.len() + 2, "{name}: two statements added");
        // Foreign statements keep their content and their order, ours follow them.
        assert_eq!(
            &new[..old.len()],
            &old[..],
            "{name}: foreign statements changed"
        );
        for s in &old {
            assert!(new.contains(s), "{name}: lost {s}");
        }
        assert_eq!(owned_sids(after, &grant), ids, "{name}");
        // The document's own fields stay as they were.
        for k in ["Version", "Id"] {
            assert_eq!(after.get(k), original.get(k), "{name}: {k}");
        }
    }
}

#[test]
fn every_statement_of_a_key_policy_fixture_is_kept_unchanged() {
    for name in [
        "kms-console-default-key-policy.json",
        "kms-cross-account-key-policy.json",
        "kms-cloudwatch-logs-key-policy.json",
        "kms-default-key-policy.json",
        "vendor-telus-key-policy.json",
    ] {
        let original = fixture(name);
        let plan = plan_json(&[
            "--vendor",
            "telus",
            "--bucket",
            BUCKET,
            "--kms-key-arn",
            KEY_ARN,
            "--key-policy",
            &fixture_path(name),
        ]);
        let old = statements(&original);
        let new = statements(&plan["KeyPolicy"]);
        assert_eq!(new.len(), old.len() + 1, "{name}: one KeyUse added");
        assert_eq!(
            &new[..old.len()],
            &old[..],
            "{name}: foreign statements changed"
        );
        assert_eq!(plan["KeyPolicy"].get("Id"), original.get("Id"), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) --diff.

#[test]
fn diff_marks_foreign_statements_and_new_sids() {
    let args = [
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
        "--bucket-policy",
        &fixture_path("cloudtrail-bucket-policy.json"),
    ];
    let plan = plan_json(&args);
    let (grant, ids) = check_ids(&plan);

    let mut diff_args = args.to_vec();
    diff_args.push("--diff");
    let out = run(&diff_args);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "--diff prints no JSON document"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with('{') || l.starts_with('[') || l.starts_with('}')),
        "no JSON at top level:\n{text}"
    );
    assert_eq!(lines.first().copied(), Some(&*format!("grant {grant}")));
    for foreign in [
        "AWSCloudTrailAclCheck20150319",
        "AWSCloudTrailWrite20150319",
        "Enable IAM User Permissions",
    ] {
        let want = format!("=   Sid {foreign} (unchanged)");
        assert!(lines.contains(&want.as_str()), "missing {want:?}:\n{text}");
    }
    for id in &ids {
        let want = format!("+   Sid {id}");
        assert!(lines.contains(&want.as_str()), "missing {want:?}:\n{text}");
    }
    // Every block line is marked; nothing is removed.
    for l in &lines {
        assert!(!l.starts_with('-'), "nothing is removed: {l:?}\n{text}");
    }
    let added: usize = lines.iter().filter(|l| l.starts_with("+   Sid ")).count();
    assert_eq!(added, ids.len(), "one + block per new statement");
    let kept: usize = lines.iter().filter(|l| l.starts_with('=')).count();
    assert_eq!(kept, 3, "two bucket and one key statement kept");
}

#[test]
fn diff_in_role_mode_leaves_the_bucket_policy_alone() {
    let out = run(&[
        "--vendor",
        "scale-ai",
        "--bucket",
        BUCKET,
        "--external-id",
        EXTERNAL_ID,
        "--bucket-policy",
        &fixture_path("deny-insecure-transport.json"),
        "--diff",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.contains("(role mode: the bucket policy is left alone)"));
    assert!(text.lines().any(|l| l == "+   Sid VendorGrantsAssumeRole"));
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with('-') || l.starts_with('{'))
    );
}

// ---------------------------------------------------------------------------------------------
// (d) Bad input: exit 2, nothing on stdout, one line on stderr naming the property.

#[test]
fn unknown_vendor_is_refused_listing_the_vendors() {
    let e = plan_error(&["--vendor", "acme", "--bucket", BUCKET]);
    assert!(e.contains("Vendor") && e.contains("acme"), "{e}");
    for v in ["telus", "scale-ai", "vcc", "alphasense", "custom"] {
        assert!(e.contains(v), "{e} does not list {v}");
    }
}

#[test]
fn bad_bucket_names_are_refused() {
    for bad in [
        "Bad_Bucket",
        "b1",
        "-leading-hyphen",
        "two..dots",
        "192.168.10.20",
    ] {
        // `--bucket=VALUE`, so that clap takes a leading hyphen as the value.
        let e = plan_error(&["--vendor", "telus", &format!("--bucket={bad}")]);
        assert!(e.contains("BucketName"), "{bad}: {e}");
    }
}

#[test]
fn role_mode_is_refused_for_telus() {
    let e = plan_error(&["--vendor", "telus", "--bucket", BUCKET, "--mode", "role"]);
    assert!(e.contains("Mode") && e.contains("bucket-policy"), "{e}");
}

#[test]
fn scale_ai_role_mode_needs_an_external_id() {
    let e = plan_error(&["--vendor", "scale-ai", "--bucket", BUCKET]);
    assert!(e.contains("ExternalId"), "{e}");
    let e = plan_error(&["--vendor", "scale-ai", "--bucket", BUCKET, "--mode", "role"]);
    assert!(e.contains("ExternalId"), "{e}");
}

#[test]
fn an_invalid_external_id_is_refused_without_echoing_it() {
    for (vendor, bad) in [
        ("scale-ai", "bad value!"),
        ("scale-ai", "Z"),
        ("custom", "quote\"d"),
    ] {
        let mut args = vec!["--vendor", vendor, "--bucket", BUCKET, "--external-id", bad];
        if vendor == "custom" {
            args.extend(["--mode", "role", "--access", "read"]);
            args.extend(["--vendor-principal", "444455556666"]);
        }
        let e = plan_error(&args);
        assert!(e.contains("ExternalId"), "{e}");
        assert!(!e.contains(bad), "the ExternalId is echoed: {e}");
    }
    // Given where it does not apply, it is not echoed either.
    let e = plan_error(&[
        "--vendor",
        "vcc",
        "--bucket",
        BUCKET,
        "--vendor-principal",
        "arn:aws:iam::777788889999:role/vcc-export",
        "--external-id",
        "vcc-secret-123",
    ]);
    assert!(
        e.contains("ExternalId") && !e.contains("vcc-secret-123"),
        "{e}"
    );
}

#[test]
fn a_wildcard_vendor_principal_is_refused() {
    for args in [
        vec![
            "--vendor",
            "vcc",
            "--bucket",
            BUCKET,
            "--vendor-principal",
            "*",
        ],
        vec![
            "--vendor",
            "custom",
            "--bucket",
            BUCKET,
            "--access",
            "read",
            "--vendor-principal",
            "*",
        ],
        vec![
            "--vendor",
            "alphasense",
            "--bucket",
            BUCKET,
            "--kms-key-arn",
            KEY_ARN,
            "--vendor-principal",
            "arn:aws:iam::444455556666:role/*",
        ],
    ] {
        let e = plan_error(&args);
        assert!(e.contains("VendorPrincipal"), "{e}");
    }
}

#[test]
fn a_wildcard_prefix_is_refused() {
    for bad in ["a*", "data/?", "${aws:username}/"] {
        let e = plan_error(&["--vendor", "telus", "--bucket", BUCKET, "--prefix", bad]);
        assert!(e.contains("Prefix"), "{bad}: {e}");
    }
}

#[test]
fn a_malformed_bucket_policy_file_is_refused() {
    let cases = [
        (
            "truncated.json",
            "{\"Version\": \"2012-10-17\",\n \"Statement\": [\n",
        ),
        ("not-json.json", "Version: 2012-10-17\n"),
        (
            "no-statement.json",
            "{\"Version\": \"2012-10-17\", \"Statement\": 5}",
        ),
        (
            "string-principal.json",
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
               "Principal": "arn:aws:iam::111122223333:root", "Action": "s3:GetObject",
               "Resource": "arn:aws:s3:::example-data-bucket/*"}]}"#,
        ),
    ];
    for (name, contents) in cases {
        let file = TempFile::new(name, contents);
        let e = plan_error(&[
            "--vendor",
            "telus",
            "--bucket",
            BUCKET,
            "--bucket-policy",
            &file.path(),
        ]);
        assert!(e.contains("bucket policy"), "{name}: {e}");
    }
    let e = plan_error(&[
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--bucket-policy",
        "/nonexistent/vendor-grants/policy.json",
    ]);
    assert!(e.contains("bucket policy"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// (e) The grant id.

#[test]
fn the_grant_id_is_stable_and_depends_on_the_bucket() {
    let args = [
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
    ];
    let first = plan_json(&args);
    let second = plan_json(&args);
    assert_eq!(first["GrantId"], second["GrantId"]);
    assert_eq!(first, second, "the whole plan is deterministic");

    let other = plan_json(&[
        "--vendor",
        "telus",
        "--bucket",
        "another-data-bucket",
        "--kms-key-arn",
        KEY_ARN,
    ]);
    assert_ne!(first["GrantId"], other["GrantId"]);
    let (other_grant, other_ids) = check_ids(&other);
    let (grant, _) = check_ids(&first);
    assert!(other_ids.iter().all(|id| !id.contains(&grant)));
    assert!(other_ids.iter().all(|id| id.contains(&other_grant)));

    // Access and Prefix are updated in place: same grant id.
    let in_place = plan_json(&[
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
        "--access",
        "read",
        "--prefix",
        "exports/",
    ]);
    assert_eq!(first["GrantId"], in_place["GrantId"]);
    // Another stack or logical id: another grant.
    let mut other_stack = args.to_vec();
    other_stack.extend(["--stack-id", "another-stack"]);
    assert_ne!(first["GrantId"], plan_json(&other_stack)["GrantId"]);
}

// ---------------------------------------------------------------------------------------------
// (f) Issue 20: blank prefixes, principal kinds, partitions, keys written twice.

#[test]
fn a_blank_prefix_is_refused_never_read_as_the_whole_bucket() {
    for blank in ["", " ", "\u{3000}", "\u{00A0}", "\u{200B}"] {
        let e = plan_error(&["--vendor", "telus", "--bucket", BUCKET, "--prefix", blank]);
        assert!(e.contains("Prefix"), "{blank:?}: {e}");
        assert!(e.contains("omit Prefix"), "{blank:?}: {e}");
    }
}

#[test]
fn a_prefix_without_a_slash_is_planned_with_a_note() {
    let out = run(&["--vendor", "telus", "--bucket", BUCKET, "--prefix", "data"]);
    assert!(out.status.success(), "{out:?}");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let objects = statements(&plan["BucketPolicy"])
        .into_iter()
        .filter(|s| s["Resource"] == format!("{BUCKET_ARN}/data*"))
        .count();
    assert_eq!(objects, 1, "{plan}");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(stderr.starts_with("note: Prefix \"data\""), "{stderr}");
    assert!(stderr.contains("\"data-secret/...\""), "{stderr}");

    let diff = run(&[
        "--vendor", "telus", "--bucket", BUCKET, "--prefix", "data", "--diff",
    ]);
    assert!(diff.status.success(), "{diff:?}");
    let text = String::from_utf8(diff.stdout).expect("UTF-8");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("note: Prefix \"data\"") && l.contains("data-secret/")),
        "{text}"
    );
    // A folder prefix has nothing to note.
    plan_json(&["--vendor", "telus", "--bucket", BUCKET, "--prefix", "data/"]);
}

#[test]
fn an_account_where_the_guide_names_roles_is_refused() {
    for (vendor, mode, needle) in [
        (
            "vcc",
            "role",
            "VCC Interaction Content Export's guide names roles: arn:aws:iam::ACCOUNT:role/NAME",
        ),
        (
            "vcc",
            "bucket-policy",
            "VCC Interaction Content Export's guide names roles",
        ),
        (
            "alphasense",
            "bucket-policy",
            "AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME",
        ),
    ] {
        for principal in ["444455556666", "arn:aws:iam::444455556666:root"] {
            let mut args = vec![
                "--vendor",
                vendor,
                "--bucket",
                BUCKET,
                "--mode",
                mode,
                "--vendor-principal",
                principal,
                "--kms-key-arn",
                KEY_ARN,
            ];
            if vendor == "alphasense" {
                args.extend(["--access", "read"]);
            }
            let e = plan_error(&args);
            assert!(
                e.contains(&format!("VendorPrincipal {principal:?} is a whole account")),
                "{e}"
            );
            assert!(e.contains(needle), "{e}");
        }
    }
    // The role the guide names is planned; the trust policy trusts exactly it.
    let plan = plan_json(&[
        "--vendor",
        "vcc",
        "--bucket",
        BUCKET,
        "--vendor-principal",
        "arn:aws:iam::444455556666:role/vcc-export",
    ]);
    let trust = &plan["Role"]["TrustPolicy"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["AWS"],
        "arn:aws:iam::444455556666:role/vcc-export"
    );
}

#[test]
fn a_fixed_account_vendor_is_refused_outside_the_aws_partition() {
    for (vendor, region) in [("telus", "cn-north-1"), ("scale-ai", "us-gov-west-1")] {
        let mut args = vec!["--vendor", vendor, "--bucket", BUCKET, "--region", region];
        if vendor == "scale-ai" {
            args.extend(["--external-id", EXTERNAL_ID]);
        }
        let e = plan_error(&args);
        assert!(e.contains("aws partition only"), "{e}");
        assert!(e.contains("use Vendor: custom"), "{e}");
    }
    let plan = plan_json(&[
        "--vendor",
        "custom",
        "--access",
        "read",
        "--bucket",
        BUCKET,
        "--region",
        "cn-north-1",
        "--vendor-principal",
        "arn:aws-cn:iam::444455556666:role/vendor",
    ]);
    assert_eq!(
        statements(&plan["BucketPolicy"])[0]["Principal"]["AWS"],
        "arn:aws-cn:iam::444455556666:role/vendor"
    );
}

#[test]
fn a_policy_file_with_a_key_written_twice_is_refused() {
    let guard = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Guard","Effect":"Deny","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::example-data-bucket/*"}]}"#;
    let file = TempFile::new("guard-twice.json", guard);
    for diff in [false, true] {
        let mut args = vec!["--vendor", "telus", "--bucket", BUCKET];
        let path = file.path();
        args.extend(["--bucket-policy", &path]);
        if diff {
            args.push("--diff");
        }
        let e = plan_error(&args);
        assert!(e.contains("bucket policy"), "{e}");
        assert!(e.contains("statement Guard has Effect twice"), "{e}");
    }
    let key = TempFile::new(
        "key-twice.json",
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*","Resource":"arn:aws:kms:us-east-1:111122223333:key/x"}]}"#,
    );
    let path = key.path();
    let e = plan_error(&[
        "--vendor",
        "telus",
        "--bucket",
        BUCKET,
        "--kms-key-arn",
        KEY_ARN,
        "--key-policy",
        &path,
    ]);
    assert!(
        e.contains("key policy") && e.contains("statement #1 (no Sid) has Resource twice"),
        "{e}"
    );
}
