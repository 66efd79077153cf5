//! What real AWS rejects and the emulator does not, caught before anything is written: one test
//! a case, each checking the error names the property, the value and what would be valid.

use serde_json::json;
use vendor_grants::catalog::Catalog;
use vendor_grants::grant::{self, GrantProperties, PlanInput};
use vendor_grants::policy::lint::{self, PolicyKind, check_principal};
use vendor_grants::policy::{PolicyDocument, Statement};

#[test]
fn principals_real_aws_accepts() {
    for ok in [
        "111122223333",
        "arn:aws:iam::111122223333:root",
        "arn:aws:iam::111122223333:role/Vendor",
        "arn:aws:iam::111122223333:role/service-role/path/Vendor_1+=,.@-",
        "arn:aws:iam::111122223333:user/someone",
        "arn:aws:sts::111122223333:assumed-role/Vendor/session",
    ] {
        assert_eq!(
            check_principal("VendorPrincipal", ok, "aws"),
            Ok(()),
            "{ok}"
        );
    }
}

#[test]
fn principals_real_aws_rejects_are_refused() {
    let cases = [
        ("*", "wildcard"),
        ("arn:aws:iam::*:root", "wildcard"),
        ("11112222333", "12-digit account id or an IAM ARN"),
        ("1111222233334", "12-digit account id or an IAM ARN"),
        ("arn:aws-cn:iam::111122223333:root", "partition \"aws-cn\""),
        ("arn:aws:iam:us-east-1:111122223333:root", "no region"),
        ("arn:aws:iam::12345:root", "12-digit"),
        ("arn:aws:s3:::bucket", "expected arn:PARTITION:iam"),
        (
            "arn:aws:iam::111122223333:group/G",
            "expected arn:PARTITION:iam",
        ),
        (
            "arn:aws:iam::111122223333:role/",
            "expected arn:PARTITION:iam",
        ),
        (
            "arn:aws:iam::111122223333:role/bad name",
            "expected arn:PARTITION:iam",
        ),
        (
            "cloudtrail.amazonaws.com",
            "12-digit account id or an IAM ARN",
        ),
    ];
    for (value, reason) in cases {
        let e = check_principal("VendorPrincipal", value, "aws")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VendorPrincipal"), "{e}");
        assert!(e.contains(value), "{e}");
        assert!(e.contains(reason), "{value}: {e} lacks {reason}");
    }
}

fn statement(v: serde_json::Value) -> Statement {
    serde_json::from_value(v).unwrap()
}

#[test]
fn action_and_resource_pairings_real_aws_would_reject() {
    let bad = [
        (
            json!({"Sid": "VGabcBucketObjects", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b"}),
            "object actions apply only to arn:aws:s3:::b/",
        ),
        (
            json!({"Sid": "VGabcBucketList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"}),
            "bucket actions apply only to arn:aws:s3:::b",
        ),
        (
            json!({"Sid": "VGabcBucketList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::other"}),
            "bucket actions apply only",
        ),
        (
            json!({"Sid": "VGabcX", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}),
            "mixes bucket actions and object actions",
        ),
        (
            json!({"Sid": "VGabcX", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*", "Condition": {"StringLike": {"s3:prefix": ["a*"]}}}),
            "s3:prefix condition key applies only to s3:ListBucket",
        ),
        (
            json!({"Sid": "VGabcX", "Effect": "Allow", "Action": ["s3:DeleteBucket"], "Resource": "arn:aws:s3:::b"}),
            "not an S3 action vendor-grants grants",
        ),
        (
            json!({"Sid": "VGabcX", "Effect": "Allow", "Action": ["kms:Decrypt", "s3:GetObject"], "Resource": "*"}),
            "mixes KMS and S3",
        ),
        (
            json!({"Sid": "VG-abc", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}),
            "letters and digits only",
        ),
        (
            json!({"Sid": "VGabcX", "Effect": "Allow", "Action": ["s3:GetObject"]}),
            "no Resource",
        ),
    ];
    for (s, reason) in bad {
        let e = lint::check_statement(&statement(s.clone()), "b", "aws")
            .unwrap_err()
            .to_string();
        assert!(e.contains(reason), "{s}: {e}");
    }
    let good = json!({"Sid": "VGabcBucketList", "Effect": "Allow", "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::b", "Condition": {"StringLike": {"s3:prefix": ["data/*"]}}});
    assert_eq!(lint::check_statement(&statement(good), "b", "aws"), Ok(()));
}

#[test]
fn size_limits_count_as_aws_does() {
    let doc = |padding: usize| {
        PolicyDocument::from_value(
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::b/{}", "x".repeat(padding))}]}),
            "p",
        )
        .unwrap()
    };
    let base = doc(0).to_json().len();
    // Exactly at the limit passes; one byte over fails.
    let at = doc(20_480 - base);
    assert_eq!(
        lint::check_size(PolicyKind::BucketPolicy, &[&at]),
        Ok(20_480)
    );
    let over = doc(20_481 - base);
    let e = lint::check_size(PolicyKind::BucketPolicy, &[&over])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bucket policy would be 20481 bytes") && e.contains("20480"),
        "{e}"
    );
    assert!(lint::check_size(PolicyKind::KeyPolicy, &[&over]).is_ok());
    assert!(lint::check_size(PolicyKind::KeyPolicy, &[&doc(32_769 - base)]).is_err());
    // IAM does not count white space: a pretty document is measured like a compact one.
    let pretty = doc(100).to_json_pretty();
    assert_eq!(
        PolicyKind::TrustPolicy.measure(&pretty),
        PolicyKind::TrustPolicy.measure(&doc(100).to_json())
    );
    assert!(lint::check_size(PolicyKind::TrustPolicy, &[&doc(1_900)]).is_err());
    // A role's inline policies share one limit.
    let half = doc(5_000);
    assert!(lint::check_size(PolicyKind::RoleInlinePolicies, &[&half]).is_ok());
    assert!(lint::check_size(PolicyKind::RoleInlinePolicies, &[&half, &half]).is_err());
}

#[test]
fn partitions_follow_the_region() {
    assert_eq!(lint::partition_of_region("eu-west-1"), "aws");
    assert_eq!(lint::partition_of_region("cn-northwest-1"), "aws-cn");
    assert_eq!(lint::partition_of_region("us-gov-west-1"), "aws-us-gov");
}

fn plan_with(
    props: serde_json::Value,
    bucket_policy: Option<&PolicyDocument>,
    partition: &str,
) -> Result<grant::Plan, grant::Error> {
    let catalog = Catalog::builtin().unwrap();
    let props = GrantProperties::from_json(&props, catalog)?;
    let id = grant::derive_grant_id("stack", "Grant", &props);
    grant::plan(
        catalog,
        PlanInput {
            props: &props,
            grant_id: &id,
            partition,
            account_id: None,
            kms_key_arn: None,
            bucket_policy,
            key_policy: None,
            new_grant: true,
        },
    )
}

#[test]
fn a_bucket_policy_that_would_pass_20_kb_is_refused_before_writing() {
    // Someone else's statements take the policy close to the limit.
    let mut filler = Vec::new();
    let current = loop {
        let i = filler.len();
        filler.push(json!({"Sid": format!("Foreign{i}"), "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::b-1/{}", "p".repeat(250))}));
        let doc =
            PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": filler}), "p")
                .unwrap();
        if doc.to_json().len() > 20_200 {
            filler.pop();
            break PolicyDocument::from_value(
                json!({"Version": "2012-10-17", "Statement": filler}),
                "p",
            )
            .unwrap();
        }
    };
    assert!(current.to_json().len() > 19_000 && current.to_json().len() < 20_480);
    let e = plan_with(
        json!({"Vendor": "telus", "BucketName": "b-1"}),
        Some(&current),
        "aws",
    )
    .unwrap_err();
    assert!(e.to_string().contains("bucket policy would be"), "{e}");
    // Without the filler the same grant fits.
    assert!(plan_with(json!({"Vendor": "telus", "BucketName": "b-1"}), None, "aws").is_ok());
}

#[test]
fn a_vendor_principal_in_another_partition_is_refused_by_the_plan() {
    let props = json!({"Vendor": "custom", "BucketName": "b-1", "Access": "read",
        "VendorPrincipal": "arn:aws:iam::111122223333:role/Vendor"});
    assert!(plan_with(props.clone(), None, "aws").is_ok());
    let e = plan_with(props, None, "aws-cn").unwrap_err().to_string();
    assert!(
        e.contains("VendorPrincipal") && e.contains("partition"),
        "{e}"
    );
    let star =
        json!({"Vendor": "custom", "BucketName": "b-1", "Access": "read", "VendorPrincipal": "*"});
    assert!(
        plan_with(star, None, "aws")
            .unwrap_err()
            .to_string()
            .contains("wildcard")
    );
}

#[test]
fn a_foreign_statement_naming_a_deleted_role_is_named_before_any_write() {
    // AWS shows a deleted role as its unique id and refuses to take such a policy back.
    let current = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "OldPipeline", "Effect": "Allow",
            "Principal": {"AWS": "AROAEXAMPLEID1234567890"}, "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b-1/*"}]}),
        "p",
    )
    .unwrap();
    let e = plan_with(
        json!({"Vendor": "telus", "BucketName": "b-1"}),
        Some(&current),
        "aws",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("OldPipeline") && e.contains("AROAEXAMPLEID1234567890") && e.contains("deleted"),
        "{e}"
    );
    // A live role's ARN or an account id is fine.
    let live = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "Pipeline", "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:role/AROAlike", "111122223333"]},
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b-1/*"}]}),
        "p",
    )
    .unwrap();
    assert!(
        plan_with(
            json!({"Vendor": "telus", "BucketName": "b-1"}),
            Some(&live),
            "aws"
        )
        .is_ok()
    );
}
