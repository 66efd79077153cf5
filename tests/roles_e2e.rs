//! Roles where each vendor assumes them, through the built function against moto: Scale builds
//! `arn:aws:iam::ACCOUNT:role/ScaleAI-Integration` from the account id alone, so its role is
//! created at the path `/`; every other vendor is given the `RoleArn` attribute, and gets a role
//! under `/vendor-grants/`. A hand-made role of Scale's name is refused with the way forward, and
//! the documented way (delete it, let the grant create it again) ends at the same ARN.

mod common;

use common::lambda::{Lambda, ok, physical};
use common::{ACCOUNT_ID, Aws, aws, create_bucket, moto, unique};
use serde_json::{Value, json};

async fn live_arn(aws: &Aws, role: &str) -> Option<String> {
    let out = aws.iam.get_role().role_name(role).send().await.ok()?;
    out.role().map(|r| r.arn().to_string())
}

/// Scale's role: the ARN Scale's dashboard builds from the account id equals the role's ARN, in
/// the answer and in IAM. A hand-made role of that name is refused (never "rename it"), and the
/// README's move ends with vendor-grants' role at the same ARN. One test: the name is global.
#[tokio::test(flavor = "multi_thread")]
async fn scales_role_is_at_the_arn_scale_builds() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-scale");
    create_bucket(&aws, &bucket).await;
    // What Scale assumes: "enter your AWS account ID" and the role "must be named
    // ScaleAI-Integration".
    let scale_builds = format!("arn:aws:iam::{ACCOUNT_ID}:role/ScaleAI-Integration");
    let stack = unique("stack");
    let props = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "scale-ext-77"});

    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    assert_eq!(created["Data"]["RoleArn"], json!(scale_builds));
    assert_eq!(
        live_arn(&aws, "ScaleAI-Integration").await,
        Some(scale_builds.clone())
    );
    let deleted = l.send(
        "Delete",
        &stack,
        Some(&physical(&created)),
        props.clone(),
        None,
    );
    ok(&deleted);
    assert_eq!(live_arn(&aws, "ScaleAI-Integration").await, None);

    // A customer who followed Scale's guide by hand first.
    aws.iam
        .create_role()
        .role_name("ScaleAI-Integration")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::307185671274:root"}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "scale-ext-77"}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let refused = l.send("Create", &stack, None, props.clone(), None);
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason.contains("Moving a hand-made vendor role to vendor-grants"),
        "{reason}"
    );
    assert!(!reason.to_lowercase().contains("rename"), "{reason}");
    let rollback = l.send(
        "Delete",
        &stack,
        Some(&physical(&refused)),
        props.clone(),
        None,
    );
    ok(&rollback);
    assert_eq!(
        live_arn(&aws, "ScaleAI-Integration").await,
        Some(scale_builds.clone()),
        "the hand-made role was left as it is"
    );
    // The README's move: delete the hand-made role, then create the grant.
    aws.iam
        .delete_role()
        .role_name("ScaleAI-Integration")
        .send()
        .await
        .unwrap();
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    assert_eq!(created["Data"]["RoleArn"], json!(scale_builds));
    ok(&l.send("Delete", &stack, Some(&physical(&created)), props, None));
}

/// Every other vendor with a role mode is given the role's ARN (the `RoleArn` attribute), which
/// is the role's real ARN, under `/vendor-grants/`.
#[tokio::test(flavor = "multi_thread")]
async fn other_vendors_roles_are_where_their_role_arn_says() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let (_, key_arn) = common::create_key(&aws).await;
    // AlphaSense's guide asks for SSE-KMS with the key, Block Public Access, ACLs disabled.
    let bucket = common::alphasense_bucket(&aws, &key_arn, true, true, true).await;
    let vendors = [
        json!({"Vendor": "vcc", "Mode": "role",
            "VendorPrincipal": "arn:aws:iam::444455556666:role/vcc-export"}),
        json!({"Vendor": "alphasense", "Mode": "role", "ExternalId": "alpha-ext-1", "KmsKeyArn": key_arn,
            "VendorPrincipal": "arn:aws:iam::444455556666:role/alphasense-customer"}),
        json!({"Vendor": "custom", "Mode": "role", "ExternalId": "custom-ext-1", "Access": "read",
            "VendorPrincipal": "arn:aws:iam::444455556666:role/partner"}),
    ];
    for mut props in vendors {
        props["BucketName"] = json!(bucket);
        let stack = unique("stack");
        let created = l.send("Create", &stack, None, props.clone(), None);
        ok(&created);
        let arn = created["Data"]["RoleArn"].as_str().unwrap().to_string();
        let name = arn.rsplit('/').next().unwrap();
        assert_eq!(
            arn,
            format!("arn:aws:iam::{ACCOUNT_ID}:role/vendor-grants/{name}")
        );
        assert_eq!(live_arn(&aws, name).await, Some(arn.clone()), "{props}");
        ok(&l.send("Delete", &stack, Some(&physical(&created)), props, None));
        assert_eq!(live_arn(&aws, name).await, None);
    }
}

async fn trust_external_ids(aws: &Aws, role: &str) -> Vec<String> {
    let out = aws.iam.get_role().role_name(role).send().await.unwrap();
    let text = out.role().unwrap().assume_role_policy_document().unwrap();
    let trust: Value = serde_json::from_str(&common::url_decode(text)).unwrap();
    let statement = trust["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "VendorGrantsAssumeRole")
        .unwrap()
        .clone();
    let mut ids: Vec<String> = match &statement["Condition"]["StringEquals"]["sts:ExternalId"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        other => panic!("no ExternalId condition: {other}"),
    };
    ids.sort();
    ids
}

/// Rotating the ExternalId of a role several stacks share (Scale's fixed name across buckets):
/// each grant owns its own value in the trust statement, so the stacks move one at a time, and a
/// value no grant uses any more goes. Never is the condition dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_roles_external_id_rotates_one_stack_at_a_time() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let role = unique("VendorGrant-shared");
    let (b1, b2) = (unique("vg-rot1"), unique("vg-rot2"));
    create_bucket(&aws, &b1).await;
    create_bucket(&aws, &b2).await;
    let props = |bucket: &str, ext: &str| json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": ext, "RoleName": role});
    let (sa, sb) = (unique("stack-a"), unique("stack-b"));
    let a = l.send("Create", &sa, None, props(&b1, "old-ext-1"), None);
    ok(&a);
    let b = l.send("Create", &sb, None, props(&b2, "old-ext-1"), None);
    ok(&b);
    assert_eq!(trust_external_ids(&aws, &role).await, ["old-ext-1"]);

    // A new grant may not bring an ExternalId the shared role does not accept (it would reach
    // A's and B's buckets too): refused, nothing changed, and its rollback leaves the role.
    let sc = unique("stack-c");
    let c = l.send("Create", &sc, None, props(&b1, "other-org-9"), None);
    assert_eq!(c["Status"], "FAILED", "{c}");
    assert!(
        c["Reason"].as_str().unwrap().contains("does not accept"),
        "{c}"
    );
    assert!(!c.to_string().contains("other-org-9"), "ExternalId echoed");
    ok(&l.send(
        "Delete",
        &sc,
        Some(&physical(&c)),
        props(&b1, "other-org-9"),
        None,
    ));
    assert_eq!(trust_external_ids(&aws, &role).await, ["old-ext-1"]);

    // Stack A moves first: both values are accepted while B has not moved.
    let a2 = l.send(
        "Update",
        &sa,
        Some(&physical(&a)),
        props(&b1, "new-ext-2"),
        Some(props(&b1, "old-ext-1")),
    );
    ok(&a2);
    assert_eq!(
        trust_external_ids(&aws, &role).await,
        ["new-ext-2", "old-ext-1"]
    );
    // Then B: the old value is used by no grant any more and goes.
    let b2u = l.send(
        "Update",
        &sb,
        Some(&physical(&b)),
        props(&b2, "new-ext-2"),
        Some(props(&b2, "old-ext-1")),
    );
    ok(&b2u);
    assert_eq!(trust_external_ids(&aws, &role).await, ["new-ext-2"]);

    // A grant that leaves takes out a value only it used.
    let a3 = l.send(
        "Update",
        &sa,
        Some(&physical(&a)),
        props(&b1, "third-ext-3"),
        Some(props(&b1, "new-ext-2")),
    );
    ok(&a3);
    assert_eq!(
        trust_external_ids(&aws, &role).await,
        ["new-ext-2", "third-ext-3"]
    );
    ok(&l.send(
        "Delete",
        &sa,
        Some(&physical(&a)),
        props(&b1, "third-ext-3"),
        None,
    ));
    assert_eq!(trust_external_ids(&aws, &role).await, ["new-ext-2"]);
    ok(&l.send(
        "Delete",
        &sb,
        Some(&physical(&b)),
        props(&b2, "new-ext-2"),
        None,
    ));
    assert_eq!(
        live_arn(&aws, &role).await,
        None,
        "the last grant deletes the role"
    );
}

/// Without the registry the function cannot tell whose value is whose: a different ExternalId
/// on a shared role is refused, saying what to do, and nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_registry_a_shared_role_refuses_another_external_id_saying_why() {
    let aws = aws(&moto().endpoint).await;
    let l = Lambda::with_moto();
    let role = unique("VendorGrant-noreg");
    let (b1, b2) = (unique("vg-nr1"), unique("vg-nr2"));
    create_bucket(&aws, &b1).await;
    create_bucket(&aws, &b2).await;
    let props = |bucket: &str, ext: &str| json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": ext, "RoleName": role});
    let (sa, sb) = (unique("stack-a"), unique("stack-b"));
    let a = l.send("Create", &sa, None, props(&b1, "old-ext-1"), None);
    ok(&a);
    let b = l.send("Create", &sb, None, props(&b2, "old-ext-1"), None);
    ok(&b);
    let refused = l.send(
        "Update",
        &sa,
        Some(&physical(&a)),
        props(&b1, "new-ext-2"),
        Some(props(&b1, "old-ext-1")),
    );
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert!(
        refused["Reason"]
            .as_str()
            .unwrap()
            .contains("VENDOR_GRANTS_LOCK_TABLE"),
        "{refused}"
    );
    assert!(
        !refused.to_string().contains("new-ext-2"),
        "ExternalId echoed"
    );
    assert_eq!(trust_external_ids(&aws, &role).await, ["old-ext-1"]);
    for (stack, answer, bucket) in [(&sa, &a, &b1), (&sb, &b, &b2)] {
        ok(&l.send(
            "Delete",
            stack,
            Some(&physical(answer)),
            props(bucket, "old-ext-1"),
            None,
        ));
    }
}
