//! ResourceProperties as CloudFormation sends them: strings everywhere, VendorPrincipal as a
//! string or a list, CloudFormation's own properties ignored, and every bad input refused with
//! the property named and what would be valid.

use serde_json::{Value, json};
use vendor_grants::catalog::{AccessLevel, Catalog, Mode};
use vendor_grants::grant::{
    self, GrantProperties, derive_grant_id, grant_id_from_physical, physical_resource_id,
};

fn parse(v: Value) -> Result<GrantProperties, grant::Error> {
    GrantProperties::from_json(&v, Catalog::builtin().unwrap())
}

fn err(v: Value) -> String {
    parse(v).unwrap_err().to_string()
}

#[test]
fn the_contract_example_parses_with_strings_everywhere() {
    let p = parse(json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:111122223333:function:vg",
        "ServiceTimeout": "300",
        "Vendor": "scale-ai", "BucketName": "data-bucket",
        "KmsKeyArn": "arn:aws:kms:us-east-1:111122223333:alias/data",
        "Mode": "role", "ExternalId": "from-the-vendor", "Access": "read", "Prefix": "datasets/"
    }))
    .unwrap();
    assert_eq!(p.vendor, "scale-ai");
    assert_eq!(p.mode, Mode::Role);
    assert_eq!(p.access, Some(AccessLevel::Read));
    assert_eq!(p.prefix.as_deref(), Some("datasets/"));
    assert_eq!(p.external_id.as_deref(), Some("from-the-vendor"));
    assert_eq!(
        p.kms_key.as_deref(),
        Some("arn:aws:kms:us-east-1:111122223333:alias/data")
    );
}

#[test]
fn defaults_come_from_the_vendor() {
    let telus = parse(json!({"Vendor": "telus", "BucketName": "b-1"})).unwrap();
    assert_eq!(telus.mode, Mode::BucketPolicy);
    assert_eq!(telus.access, None);
    let scale =
        parse(json!({"Vendor": "scale-ai", "BucketName": "b-1", "ExternalId": "abc"})).unwrap();
    assert_eq!(scale.mode, Mode::Role);
    let alpha = parse(json!({"Vendor": "alphasense", "BucketName": "b-1",
        "VendorPrincipal": "arn:aws:iam::123456789012:role/as", "KmsKeyArn": "alias/k"}))
    .unwrap();
    assert_eq!(alpha.mode, Mode::BucketPolicy);
}

#[test]
fn vendor_principal_may_be_a_string_a_comma_list_or_a_list() {
    let base = json!({"Vendor": "vcc", "BucketName": "b-1", "Mode": "bucket-policy"});
    let with = |p: Value| {
        let mut v = base.clone();
        v["VendorPrincipal"] = p;
        parse(v).unwrap().vendor_principals
    };
    assert_eq!(with(json!("111122223333")), vec!["111122223333"]);
    assert_eq!(
        with(json!(
            "arn:aws:iam::111122223333:role/a, arn:aws:iam::111122223333:role/b"
        )),
        vec![
            "arn:aws:iam::111122223333:role/a",
            "arn:aws:iam::111122223333:role/b"
        ]
    );
    assert_eq!(
        with(json!(["arn:aws:iam::111122223333:role/a", "444455556666"])),
        vec!["arn:aws:iam::111122223333:role/a", "444455556666"]
    );
}

#[test]
fn unknown_properties_are_refused_with_the_valid_list() {
    let e = err(json!({"Vendor": "telus", "BucketName": "b-1", "Bucket": "x"}));
    assert!(e.contains("unknown property Bucket"), "{e}");
    for valid in [
        "Vendor",
        "BucketName",
        "KmsKeyArn",
        "Mode",
        "Access",
        "Prefix",
        "VendorPrincipal",
        "ExternalId",
        "RoleName",
    ] {
        assert!(e.contains(valid), "{e} lacks {valid}");
    }
}

#[test]
fn each_bad_input_names_its_property_and_what_is_valid() {
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"BucketName": "b-1"}),
            &["Vendor", "telus, scale-ai, vcc, alphasense, custom"],
        ),
        (
            json!({"Vendor": "acme", "BucketName": "b-1"}),
            &["Vendor", "\"acme\"", "one of: telus"],
        ),
        (json!({"Vendor": "telus"}), &["BucketName", "required"]),
        (
            json!({"Vendor": "telus", "BucketName": "Bad_Bucket"}),
            &["BucketName", "lowercase"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "ab"}),
            &["BucketName", "3 to 63"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "a..b"}),
            &["BucketName", "adjacent dots"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "192.168.1.1"}),
            &["BucketName", "IP address"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Mode": "role"}),
            &["Mode", "telus supports only: bucket-policy"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Mode": "Role"}),
            &["Mode", "one of: bucket-policy"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Access": "admin"}),
            &["Access", "one of: read, write, read-write, full"],
        ),
        (
            json!({"Vendor": "custom", "BucketName": "b-1", "VendorPrincipal": "111122223333"}),
            &["Access", "required"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "data/*"}),
            &["Prefix", "wildcards"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "${aws:username}/"}),
            &["Prefix", "policy variable"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "a\"b"}),
            &["Prefix", "quotes"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "a\nb"}),
            &["Prefix", "control"],
        ),
        (
            json!({"Vendor": "vcc", "BucketName": "b-1"}),
            &["VendorPrincipal", "required"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "VendorPrincipal": "111122223333"}),
            &["VendorPrincipal", "fixed", "475757276268"],
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": "b-1"}),
            &["ExternalId", "required"],
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": "b-1", "Mode": "bucket-policy", "ExternalId": "abc"}),
            &["ExternalId", "only with Mode: role"],
        ),
        (
            json!({"Vendor": "vcc", "BucketName": "b-1", "VendorPrincipal": "111122223333", "ExternalId": "abc"}),
            &["ExternalId", "sends no external id"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "RoleName": "x"}),
            &["RoleName", "Mode: role"],
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": "b-1", "ExternalId": "abc", "RoleName": "bad name"}),
            &["RoleName", "1 to 64"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "KmsKeyArn": "arn:aws:s3:::b"}),
            &["KmsKeyArn", "key ARN"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "KmsKeyArn": "alias/aws/s3"}),
            &["KmsKeyArn"],
        ),
        (
            json!({"Vendor": "alphasense", "BucketName": "b-1", "VendorPrincipal": "arn:aws:iam::123456789012:role/as"}),
            &["KmsKeyArn", "customer-managed"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": ["b-1"]}),
            &["BucketName", "string"],
        ),
        (json!("not an object"), &["ResourceProperties"]),
    ];
    for (input, needles) in cases {
        let e = err(input.clone());
        for needle in needles {
            assert!(e.contains(needle), "{input}: {e:?} lacks {needle:?}");
        }
    }
}

#[test]
fn external_id_rules_and_the_value_is_never_echoed() {
    let with =
        |id: &str| parse(json!({"Vendor": "scale-ai", "BucketName": "b-1", "ExternalId": id}));
    assert!(with("ab").is_ok());
    assert!(with("Ab0_+=,.@:/-").is_ok());
    assert!(with(&"x".repeat(1224)).is_ok());
    for bad in ["Q", "has space", "semi;colon", "quote\"s"] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.contains("ExternalId") && e.contains("2 to 1224"), "{e}");
        assert!(!e.contains(bad), "the ExternalId {bad:?} leaked into {e:?}");
    }
    let long = "y".repeat(1225);
    let e = with(&long).unwrap_err().to_string();
    assert!(!e.contains(&long[..20]), "{e}");
}

#[test]
fn key_references_of_every_accepted_form() {
    for key in [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:alias/data-key",
        "alias/data-key",
    ] {
        assert!(
            parse(json!({"Vendor": "telus", "BucketName": "b-1", "KmsKeyArn": key})).is_ok(),
            "{key} refused"
        );
    }
}

#[test]
fn the_grant_id_is_deterministic_and_changes_only_with_replacement_properties() {
    let props = |extra: Value| {
        let mut v = json!({"Vendor": "custom", "BucketName": "b-1", "VendorPrincipal": "111122223333", "Access": "read"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        parse(v).unwrap()
    };
    let stack = "arn:aws:cloudformation:us-east-1:111122223333:stack/s/1";
    let id = |p: &GrantProperties| derive_grant_id(stack, "Grant", p);
    let base = id(&props(json!({})));
    assert_eq!(base, id(&props(json!({}))));
    assert_eq!(base.as_str().len(), 16);
    // In-place updates keep the id.
    for same in [
        json!({"Access": "full"}),
        json!({"Prefix": "p/"}),
        json!({"VendorPrincipal": "444455556666"}),
        json!({"Mode": "bucket-policy"}),
    ] {
        assert_eq!(base, id(&props(same.clone())), "{same} changed the id");
    }
    // Replacements change it.
    for other in [
        json!({"BucketName": "b-2"}),
        json!({"KmsKeyArn": "alias/k"}),
        json!({"Mode": "role", "ExternalId": "xy"}),
        json!({"Mode": "role", "ExternalId": "xy", "RoleName": "R"}),
    ] {
        assert_ne!(base, id(&props(other.clone())), "{other} kept the id");
    }
    assert_ne!(base, derive_grant_id(stack, "Other", &props(json!({}))));
    assert_ne!(
        base,
        derive_grant_id(
            "arn:aws:cloudformation:us-east-1:111122223333:stack/t/2",
            "Grant",
            &props(json!({}))
        )
    );
}

#[test]
fn the_physical_resource_id_carries_the_grant_id() {
    let p = parse(json!({"Vendor": "telus", "BucketName": "b-1"})).unwrap();
    let id = derive_grant_id("s", "l", &p);
    let physical = physical_resource_id(&id, "b-1");
    assert_eq!(physical, format!("vendor-grants:{id}:b-1"));
    assert_eq!(grant_id_from_physical(&physical), Some(id));
    // An id of the grant-id format is recognised however it was minted; anything else is not
    // an id of ours (a crafted `vendor-grants:corp:b` must own nothing).
    assert_eq!(
        grant_id_from_physical("vendor-grants:00000000deadbeef")
            .unwrap()
            .as_str(),
        "00000000deadbeef"
    );
    assert_eq!(grant_id_from_physical("vendor-grants:abc123"), None);
    assert_eq!(grant_id_from_physical("vendor-grants:corp:b-1"), None);
    assert_eq!(grant_id_from_physical("b-1"), None);
    assert_eq!(grant_id_from_physical("vendor-grants:NotOurs:b"), None);
    assert_eq!(grant_id_from_physical("2023/11/22/[$LATEST]abc"), None);
}
