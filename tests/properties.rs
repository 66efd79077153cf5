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
    let base =
        json!({"Vendor": "custom", "Access": "read", "BucketName": "b-1", "Mode": "bucket-policy"});
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
            json!({"Vendor": "vcc", "BucketName": "b-1", "VendorPrincipal": "arn:aws:iam::111122223333:role/vcc", "ExternalId": "abc"}),
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
        // Issue 20: a blank Prefix is refused, never read as the whole bucket.
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": ""}),
            &["Prefix \"\"", "blank", "omit Prefix"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": " "}),
            &["Prefix \" \"", "blank", "omit Prefix"],
        ),
        // Issue 20: a VendorPrincipal of another kind than the vendor's guide names.
        (
            json!({"Vendor": "vcc", "BucketName": "b-1", "Mode": "role", "VendorPrincipal": "444455556666"}),
            &[
                "VendorPrincipal \"444455556666\" is a whole account",
                "VCC Interaction Content Export's guide names roles: arn:aws:iam::ACCOUNT:role/NAME",
                "https://docs-vcc.atlassian.net/",
            ],
        ),
        (
            json!({"Vendor": "alphasense", "BucketName": "b-1", "KmsKeyArn": "alias/k", "VendorPrincipal": "444455556666"}),
            &[
                "VendorPrincipal \"444455556666\" is a whole account",
                "AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME",
            ],
        ),
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

/// Issue 20, item 1: every blank Prefix (Unicode white space, zero-width characters, and the
/// empty string a template joining an empty parameter sends) is refused, naming Prefix.
#[test]
fn a_blank_prefix_is_refused_never_dropped() {
    for blank in [
        "",
        " ",
        "  ",
        "\t",
        "\u{3000}",
        "\u{00A0}",
        "\u{200B}",
        "\u{FEFF}",
        "\u{2060}",
        " \u{3000}\u{200B} ",
        "\u{2003}\u{2009}",
    ] {
        let e = err(json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": blank}));
        assert!(e.starts_with("Prefix "), "{blank:?}: {e}");
        assert!(e.contains("omit Prefix"), "{blank:?}: {e}");
    }
    // Null is CloudFormation's absent; absent is the whole bucket.
    let whole = parse(json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": null})).unwrap();
    assert_eq!(whole.prefix, None);
    let whole = parse(json!({"Vendor": "telus", "BucketName": "b-1"})).unwrap();
    assert_eq!(whole.prefix, None);
    // Not blank: kept as given.
    let p =
        parse(json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "exports/2026-"})).unwrap();
    assert_eq!(p.prefix.as_deref(), Some("exports/2026-"));
}

/// Issue 20, item 1: a Prefix without a trailing `/` is accepted, with a note that it matches
/// longer names too.
#[test]
fn a_prefix_without_a_slash_says_it_matches_longer_names() {
    let p = parse(json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "data"})).unwrap();
    let note = p.prefix_note().unwrap();
    assert!(note.contains("\"data-secret/...\""), "{note}");
    assert!(note.contains("end it with \"/\""), "{note}");
    let folder = parse(json!({"Vendor": "telus", "BucketName": "b-1", "Prefix": "data/"})).unwrap();
    assert_eq!(folder.prefix_note(), None);
    let whole = parse(json!({"Vendor": "telus", "BucketName": "b-1"})).unwrap();
    assert_eq!(whole.prefix_note(), None);
}

/// Issue 20, item 2: each vendor takes the kind of principal its guide names.
#[test]
fn vendor_principal_kinds_follow_the_guides() {
    let role = "arn:aws:iam::444455556666:role/vendor";
    let user = "arn:aws:iam::444455556666:user/vendor";
    let root = "arn:aws:iam::444455556666:root";
    let account = "444455556666";
    let session = "arn:aws:sts::444455556666:assumed-role/vendor/s1";
    let with = |vendor: &str, mode: &str, principal: &str| {
        let mut v = json!({"Vendor": vendor, "BucketName": "b-1", "Mode": mode,
            "VendorPrincipal": principal, "KmsKeyArn": "alias/k"});
        if vendor == "custom" {
            v["Access"] = json!("read");
        }
        if mode == "role" && vendor != "vcc" {
            v["ExternalId"] = json!("ext-123");
        }
        parse(v)
    };
    for mode in ["role", "bucket-policy"] {
        for vendor in ["vcc", "alphasense"] {
            assert!(with(vendor, mode, role).is_ok(), "{vendor} {mode}");
            for other in [account, root, user, session] {
                let e = with(vendor, mode, other).unwrap_err().to_string();
                assert!(
                    e.starts_with(&format!("VendorPrincipal {other:?} is a ")),
                    "{e}"
                );
                assert!(
                    e.contains("'s guide names ") && e.contains(":role/NAME"),
                    "{e}"
                );
            }
        }
        for p in [role, user, root, account, session] {
            assert!(with("custom", mode, p).is_ok(), "custom {mode} {p}");
        }
    }
    // One wrong item of a list is enough.
    let e = parse(json!({"Vendor": "vcc", "BucketName": "b-1",
        "VendorPrincipal": [role, account]}))
    .unwrap_err();
    assert!(
        e.to_string().contains("444455556666\" is a whole account"),
        "{e}"
    );
}

/// Issue 20, item 2: a role trusting a whole account without an external id is refused at
/// property validation unless the vendor's guide says exactly that.
#[test]
fn a_role_a_whole_account_could_assume_without_an_external_id_is_refused() {
    let toml = |flag: &str| {
        include_str!("../src/catalog/vendors.toml").replace(
            "principals = []\nprincipal = { kinds = [\"role\"], names = \"roles: arn:aws:iam::ACCOUNT:role/NAME (its {primary-service} and {secondary-service})\" }\nmodes = [\"role\", \"bucket-policy\"]\n# The guide's trust policy has an empty Condition: VCC sends no external id.\nrole = { external_id = \"none\" }",
            &format!("principals = []\nprincipal = {{ kinds = [\"account\", \"role\"], names = \"an account\" }}\nmodes = [\"role\", \"bucket-policy\"]\nrole = {{ external_id = \"none\"{flag} }}"),
        )
    };
    let strict = Catalog::parse(&toml("")).unwrap();
    assert_ne!(
        &strict,
        Catalog::builtin().unwrap(),
        "the test's catalog edit did not apply"
    );
    let props = json!({"Vendor": "vcc", "BucketName": "b-1", "Mode": "role", "VendorPrincipal": "444455556666"});
    let e = GrantProperties::from_json(&props, &strict)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is a whole account, and vendor vcc sends no external id"),
        "{e}"
    );
    assert!(e.contains("every user and role of that account"), "{e}");
    // Bucket-policy mode names the account in the bucket policy, which the guide allows here.
    let mut bp = props.clone();
    bp["Mode"] = json!("bucket-policy");
    assert!(GrantProperties::from_json(&bp, &strict).is_ok());
    // A guide that asks for exactly that.
    let lenient = Catalog::parse(&toml(", account_without_external_id = true")).unwrap();
    assert!(GrantProperties::from_json(&props, &lenient).is_ok());
}
