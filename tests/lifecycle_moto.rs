//! The lifecycle against a real AWS emulator (moto): every lifecycle rule of CONTRACT.md, every
//! vendor and mode, foreign statements, replacement on one bucket, failed Create and rollback,
//! repeated delivery, things already gone, shared roles, and concurrent grants.

mod common;

use vendor_grants::grant::allowed::Allowed;

use std::time::Duration;

use common::{Aws, aws, bucket_policy, create_bucket, create_key, key_policy, put_bucket_policy};
use serde_json::{Value, json};
use tokio::time::Instant;
use vendor_grants::aws::Clients;
use vendor_grants::aws::lock::Locker;
use vendor_grants::catalog::Catalog;
use vendor_grants::lifecycle::{self, Done, Env, Request};

struct Ctx {
    aws: Aws,
    clients: Clients,
    catalog: &'static Catalog,
}

async fn ctx() -> Ctx {
    let endpoint = &common::moto().endpoint;
    Ctx {
        aws: aws(endpoint).await,
        clients: common::function_clients(endpoint).await,
        catalog: Catalog::builtin().unwrap(),
    }
}

/// One stack's resource: the ids CloudFormation would keep sending.
struct Stack {
    stack_id: String,
    logical_id: String,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            stack_id: common::stack_arn(&common::unique("stack")),
            logical_id: "DataVendorAccess".to_string(),
        }
    }
}

async fn call(
    c: &Ctx,
    locker: &Locker,
    kind: &str,
    stack: &Stack,
    physical: Option<&str>,
    props: &Value,
    old: Option<&Value>,
) -> Result<Done, lifecycle::Error> {
    let home = common::home();
    let env = Env {
        home: &home,
        allowed: &Allowed::default(),
        clients: &c.clients,
        locker,
        catalog: c.catalog,
        deadline: Instant::now() + Duration::from_secs(60),
    };
    let request_id = common::uuid_like();
    let req = Request {
        stack_id: &stack.stack_id,
        logical_id: &stack.logical_id,
        request_id: &request_id,
        physical_id: physical,
        properties: props,
        old_properties: old,
    };
    match kind {
        "Create" => lifecycle::create(env, req).await,
        "Update" => lifecycle::update(env, req).await,
        _ => lifecycle::delete(env, req).await,
    }
}

async fn create(c: &Ctx, stack: &Stack, props: &Value) -> Result<Done, lifecycle::Error> {
    call(c, &Locker::Local, "Create", stack, None, props, None).await
}

async fn update(
    c: &Ctx,
    stack: &Stack,
    physical: &str,
    props: &Value,
    old: &Value,
) -> Result<Done, lifecycle::Error> {
    call(
        c,
        &Locker::Local,
        "Update",
        stack,
        Some(physical),
        props,
        Some(old),
    )
    .await
}

async fn delete(c: &Ctx, stack: &Stack, physical: &str, props: &Value) -> Done {
    call(
        c,
        &Locker::Local,
        "Delete",
        stack,
        Some(physical),
        props,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("delete failed: {e}"))
}

fn statements(policy: &Value) -> Vec<Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

fn sids(policy: Option<&Value>) -> Vec<String> {
    policy
        .map(statements)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect()
}

fn foreign_bucket_policy(bucket: &str) -> Value {
    json!({"Version": "2012-10-17", "Id": "keep-me", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "AuditorRead", "Effect": "Allow", "Principal": {"AWS": "444455556666"},
         "Action": ["s3:GetObject"], "Resource": format!("arn:aws:s3:::{bucket}/audit/*")}
    ]})
}

/// A key whose policy also lets another account use it: a foreign statement to keep.
async fn key_with_foreign_statement(c: &Ctx) -> (String, String, Value) {
    let (id, arn) = create_key(&c.aws).await;
    let mut policy = key_policy(&c.aws, &id).await;
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "AllowPartnerUse", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": ["kms:Decrypt"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}));
    c.aws
        .kms
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    (id, arn, policy)
}

#[tokio::test]
async fn create_update_delete_keeps_foreign_statements_exactly() {
    let c = ctx().await;
    let bucket = common::unique("vg-telus");
    create_bucket(&c.aws, &bucket).await;
    let foreign = foreign_bucket_policy(&bucket);
    put_bucket_policy(&c.aws, &bucket, &foreign).await;
    let (key_id, key_arn, key_before) = key_with_foreign_statement(&c).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn, "ServiceTimeout": "300"});

    let done = create(&c, &stack, &props).await.unwrap();
    let grant = common::gid(&done);
    assert!(done.physical_resource_id.contains(&grant));
    let policy = bucket_policy(&c.aws, &bucket).await.unwrap();
    // Foreign statements are there, exactly as they were.
    for s in statements(&foreign) {
        assert!(statements(&policy).contains(&s), "lost {s}");
    }
    assert_eq!(policy["Id"], "keep-me");
    let ours = sids(Some(&policy));
    assert!(ours.contains(&format!("VG{grant}BucketList")));
    assert!(ours.contains(&format!("VG{grant}BucketObjects")));
    let key_after = key_policy(&c.aws, &key_id).await;
    assert_eq!(
        sids(Some(&key_after)),
        vec![
            "Enable IAM User Permissions".to_string(),
            "AllowPartnerUse".into(),
            format!("VG{grant}KeyUse")
        ]
    );
    // Attributes, exactly as the contract lists them.
    let d = &done.data;
    assert_eq!(d["GrantId"], grant);
    assert_eq!(d["BucketArn"], format!("arn:aws:s3:::{bucket}"));
    assert_eq!(d["KmsKeyArn"], key_arn);
    assert_eq!(d["RoleArn"], "");
    assert_eq!(d["VendorPrincipal"], "arn:aws:iam::475757276268:root");
    assert_eq!(d["Region"], "us-east-1");
    assert_eq!(
        d["StatementIds"],
        format!("VG{grant}BucketList,VG{grant}BucketObjects,VG{grant}KeyUse")
    );
    assert_eq!(d.len(), 7);

    // In-place update: Access and Prefix change; same id, rewritten statements.
    let mut updated = props.clone();
    updated["Access"] = json!("read");
    updated["Prefix"] = json!("datasets/");
    let done2 = update(&c, &stack, &done.physical_resource_id, &updated, &props)
        .await
        .unwrap();
    assert_eq!(done2.physical_resource_id, done.physical_resource_id);
    let policy = bucket_policy(&c.aws, &bucket).await.unwrap();
    let objects = statements(&policy)
        .into_iter()
        .find(|s| s["Sid"] == format!("VG{grant}BucketObjects"))
        .unwrap();
    assert_eq!(objects["Action"], json!(["s3:GetObject"]));
    assert_eq!(
        objects["Resource"],
        format!("arn:aws:s3:::{bucket}/datasets/*")
    );
    let list = statements(&policy)
        .into_iter()
        .find(|s| s["Sid"] == format!("VG{grant}BucketList"))
        .unwrap();
    assert_eq!(
        list["Condition"]["StringLike"]["s3:prefix"],
        json!(["datasets/*"])
    );
    let key_use = statements(&key_policy(&c.aws, &key_id).await)
        .into_iter()
        .find(|s| s["Sid"] == format!("VG{grant}KeyUse"))
        .unwrap();
    assert_eq!(key_use["Action"], json!(["kms:Decrypt", "kms:DescribeKey"]));

    // Delete: the bucket policy and key policy are exactly what they were before.
    delete(&c, &stack, &done.physical_resource_id, &updated).await;
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), foreign);
    assert_eq!(key_policy(&c.aws, &key_id).await, key_before);
}

#[tokio::test]
async fn an_emptied_bucket_policy_is_deleted_and_repeated_delivery_changes_nothing() {
    let c = ctx().await;
    let bucket = common::unique("vg-repeat");
    create_bucket(&c.aws, &bucket).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "scale-ai", "Mode": "bucket-policy", "BucketName": bucket});
    let first = create(&c, &stack, &props).await.unwrap();
    let after_first = bucket_policy(&c.aws, &bucket).await.unwrap();
    let second = create(&c, &stack, &props).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), after_first);
    assert_eq!(
        sids(Some(&after_first)),
        vec![format!("VG{}BucketObjects", common::gid(&first))]
    );
    delete(&c, &stack, &first.physical_resource_id, &props).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await,
        None,
        "an emptied policy is deleted"
    );
    delete(&c, &stack, &first.physical_resource_id, &props).await;
    assert_eq!(bucket_policy(&c.aws, &bucket).await, None);
}

#[tokio::test]
async fn every_vendor_and_mode_creates_and_cleans_up() {
    let c = ctx().await;
    let cases = [
        json!({"Vendor": "telus"}),
        json!({"Vendor": "scale-ai", "ExternalId": "scale-ext-1"}),
        json!({"Vendor": "scale-ai", "Mode": "bucket-policy"}),
        json!({"Vendor": "vcc", "VendorPrincipal": ["arn:aws:iam::777788889999:role/vcc-a", "arn:aws:iam::777788889999:role/vcc-b"]}),
        json!({"Vendor": "vcc", "Mode": "bucket-policy", "VendorPrincipal": "arn:aws:iam::777788889999:role/vcc-a"}),
        json!({"Vendor": "custom", "Access": "read-write", "VendorPrincipal": "arn:aws:iam::222233334444:role/Reader"}),
        json!({"Vendor": "custom", "Mode": "role", "Access": "full", "ExternalId": "ext-42", "VendorPrincipal": "222233334444"}),
    ];
    for case in cases {
        let bucket = common::unique("vg-every");
        create_bucket(&c.aws, &bucket).await;
        let (key_id, key_arn) = create_key(&c.aws).await;
        let key_before = key_policy(&c.aws, &key_id).await;
        let mut props = case.clone();
        props["BucketName"] = json!(bucket);
        props["KmsKeyArn"] = json!(key_arn);
        // Scale's role has a fixed name: give each case its own so cases stay independent.
        if case["Vendor"] == "scale-ai" && case.get("Mode").is_none() {
            props["RoleName"] = json!(common::unique("ScaleAI-Integration"));
        }
        let stack = Stack::new();
        let done = create(&c, &stack, &props)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let role_arn = done.data["RoleArn"].clone();
        let role_mode = !role_arn.is_empty();
        let policy = bucket_policy(&c.aws, &bucket).await;
        if role_mode {
            assert_eq!(
                policy, None,
                "{case}: role mode leaves the bucket policy alone"
            );
            let name = role_arn.rsplit('/').next().unwrap();
            let role = c.aws.iam.get_role().role_name(name).send().await.unwrap();
            let role = role.role().unwrap();
            let trust: Value = serde_json::from_str(&common::url_decode(
                role.assume_role_policy_document().unwrap(),
            ))
            .unwrap();
            let external = &trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"];
            assert_eq!(
                external.is_null(),
                case["Vendor"] == "vcc",
                "{case}: {trust}"
            );
            assert!(
                role.tags()
                    .iter()
                    .any(|t| t.key() == "vendor-grants:managed" && t.value() == "true")
            );
            let inline = c
                .aws
                .iam
                .list_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            assert_eq!(
                inline.policy_names(),
                [format!("VendorGrant-{}", common::gid(&done))]
            );
            // The default key policy delegates to IAM: no key statement for the role is needed.
            assert_eq!(key_policy(&c.aws, &key_id).await, key_before, "{case}");
        } else {
            let policy = policy.unwrap_or_else(|| panic!("{case}: no bucket policy"));
            for sid in sids(Some(&policy)) {
                assert!(sid.starts_with(&format!("VG{}", common::gid(&done))));
            }
            assert!(
                sids(Some(&key_policy(&c.aws, &key_id).await))
                    .contains(&format!("VG{}KeyUse", common::gid(&done)))
            );
        }
        let listed: Vec<&str> = done.data["StatementIds"].split(',').collect();
        assert!(
            !listed.is_empty() && listed.iter().all(|s| s.starts_with("VG")),
            "{case}"
        );

        delete(&c, &stack, &done.physical_resource_id, &props).await;
        assert_eq!(bucket_policy(&c.aws, &bucket).await, None, "{case}");
        assert_eq!(key_policy(&c.aws, &key_id).await, key_before, "{case}");
        if role_mode {
            let name = role_arn.rsplit('/').next().unwrap();
            let gone = c.aws.iam.get_role().role_name(name).send().await;
            assert!(gone.is_err(), "{case}: the role outlived its last grant");
        }
    }
}

async fn alphasense_bucket(
    c: &Ctx,
    key_arn: &str,
    encrypted: bool,
    block: bool,
    enforced: bool,
) -> String {
    common::alphasense_bucket(&c.aws, key_arn, encrypted, block, enforced).await
}

#[tokio::test]
async fn alphasense_requirements_are_checked_before_any_write_each_named() {
    let c = ctx().await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    let key_before = key_policy(&c.aws, &key_id).await;
    let principal = "arn:aws:iam::123456789012:role/alphasense-document-storage";

    // Nothing set up: all three are named, nothing is written.
    let bare = alphasense_bucket(&c, &key_arn, false, false, false).await;
    let props = json!({"Vendor": "alphasense", "BucketName": bare, "KmsKeyArn": key_arn, "VendorPrincipal": principal});
    let stack = Stack::new();
    let err = create(&c, &stack, &props).await.unwrap_err().to_string();
    for needle in ["SSE-KMS", "Block Public Access", "ACLs must be disabled"] {
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
    assert_eq!(bucket_policy(&c.aws, &bare).await, None);
    assert_eq!(key_policy(&c.aws, &key_id).await, key_before);

    // Encrypted with another key: still refused, only that one named.
    let (_, other_key) = create_key(&c.aws).await;
    let wrong_key = alphasense_bucket(&c, &other_key, true, true, true).await;
    let props2 = json!({"Vendor": "alphasense", "BucketName": wrong_key, "KmsKeyArn": key_arn, "VendorPrincipal": principal});
    let err = create(&c, &Stack::new(), &props2)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SSE-KMS") && !err.contains("Block Public Access"),
        "{err}"
    );

    // Set up as the guide says: granted, in both modes.
    for mode in ["bucket-policy", "role"] {
        let good = alphasense_bucket(&c, &key_arn, true, true, true).await;
        let mut props = json!({"Vendor": "alphasense", "Mode": mode, "BucketName": good, "KmsKeyArn": key_arn, "VendorPrincipal": principal});
        if mode == "role" {
            props["ExternalId"] = json!("alpha-ext");
        }
        let stack = Stack::new();
        let done = create(&c, &stack, &props)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(done.data["RoleArn"].is_empty(), mode == "bucket-policy");
        delete(&c, &stack, &done.physical_resource_id, &props).await;
    }
}

#[tokio::test]
async fn an_alias_arn_is_resolved_to_the_key() {
    let c = ctx().await;
    let bucket = common::unique("vg-alias");
    create_bucket(&c.aws, &bucket).await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    let alias = format!("alias/{}", common::unique("vg"));
    c.aws
        .kms
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:us-east-1:123456789012:{alias}");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": alias_arn});
    let stack = Stack::new();
    let done = create(&c, &stack, &props).await.unwrap();
    assert_eq!(done.data["KmsKeyArn"], key_arn);
    assert!(
        sids(Some(&key_policy(&c.aws, &key_id).await))
            .contains(&format!("VG{}KeyUse", common::gid(&done)))
    );
    delete(&c, &stack, &done.physical_resource_id, &props).await;
    assert!(
        !sids(Some(&key_policy(&c.aws, &key_id).await))
            .iter()
            .any(|s| s.starts_with("VG"))
    );
}

#[tokio::test]
async fn replacement_on_the_same_bucket_leaves_the_new_grant_intact() {
    let c = ctx().await;
    let bucket = common::unique("vg-replace");
    create_bucket(&c.aws, &bucket).await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    let stack = Stack::new();
    let old = json!({"Vendor": "telus", "BucketName": bucket});
    let first = create(&c, &stack, &old).await.unwrap();
    // KmsKeyArn added: a replacement, so a new PhysicalResourceId.
    let new = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});
    let second = update(&c, &stack, &first.physical_resource_id, &new, &old)
        .await
        .unwrap();
    assert_ne!(second.physical_resource_id, first.physical_resource_id);
    assert_ne!(common::gid(&second), common::gid(&first));
    // CloudFormation then deletes the old one, with the old properties.
    delete(&c, &stack, &first.physical_resource_id, &old).await;
    let left = sids(bucket_policy(&c.aws, &bucket).await.as_ref());
    assert_eq!(
        left,
        vec![
            format!("VG{}BucketList", common::gid(&second)),
            format!("VG{}BucketObjects", common::gid(&second))
        ]
    );
    assert!(
        sids(Some(&key_policy(&c.aws, &key_id).await))
            .contains(&format!("VG{}KeyUse", common::gid(&second)))
    );
}

#[tokio::test]
async fn update_and_delete_act_on_the_id_in_the_physical_resource_id() {
    let c = ctx().await;
    let bucket = common::unique("vg-oldid");
    create_bucket(&c.aws, &bucket).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    // A grant written by "another version", whose id (in the one grant-id format) was minted
    // differently: Update and Delete act on the id inside the PhysicalResourceId.
    let physical = format!("vendor-grants:00000000deadbeef:{bucket}");
    let old_statement = json!({"Sid": "VG00000000deadbeefBucketObjects", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::475757276268:root"}, "Action": ["s3:GetObject"],
        "Resource": format!("arn:aws:s3:::{bucket}/*")});
    put_bucket_policy(
        &c.aws,
        &bucket,
        &json!({"Version": "2012-10-17", "Statement": [old_statement]}),
    )
    .await;
    let mut access = props.clone();
    access["Access"] = json!("read");
    let done = update(&c, &stack, &physical, &access, &props)
        .await
        .unwrap();
    assert_eq!(done.physical_resource_id, physical);
    assert_eq!(common::gid(&done), "00000000deadbeef");
    let s = sids(bucket_policy(&c.aws, &bucket).await.as_ref());
    assert_eq!(
        s,
        vec![
            "VG00000000deadbeefBucketList".to_string(),
            "VG00000000deadbeefBucketObjects".into()
        ]
    );
    delete(&c, &stack, &physical, &access).await;
    assert_eq!(bucket_policy(&c.aws, &bucket).await, None);

    // A crafted id that is not of the grant-id format owns nothing: a hand-written statement
    // whose Sid merely starts like ours survives Update and Delete.
    let hand_written = json!({"Sid": "VGcorpReadOnly", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/*")});
    let foreign = json!({"Version": "2012-10-17", "Statement": [hand_written]});
    put_bucket_policy(&c.aws, &bucket, &foreign).await;
    let crafted = format!("vendor-grants:corp:{bucket}");
    delete(&c, &stack, &crafted, &json!({})).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await.as_ref(),
        Some(&foreign)
    );
    let replaced = update(&c, &stack, &crafted, &props, &props).await.unwrap();
    assert_ne!(common::gid(&replaced), "corp");
    let s = sids(bucket_policy(&c.aws, &bucket).await.as_ref());
    assert_eq!(s[0], "VGcorpReadOnly");
    delete(&c, &stack, &replaced.physical_resource_id, &props).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await.as_ref(),
        Some(&foreign)
    );
    delete(&c, &stack, &crafted, &props).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await.as_ref(),
        Some(&foreign)
    );
    c.aws
        .s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();

    // A PhysicalResourceId that is not ours: Delete falls back to the properties' grant.
    let created = create(&c, &stack, &props).await.unwrap();
    delete(&c, &stack, "not-one-of-ours", &props).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await,
        None,
        "{}",
        common::gid(&created)
    );
}

#[tokio::test]
async fn failed_create_writes_nothing_and_its_rollback_delete_succeeds() {
    let c = ctx().await;
    let bucket = common::unique("vg-fail");
    create_bucket(&c.aws, &bucket).await;
    let foreign = foreign_bucket_policy(&bucket);
    put_bucket_policy(&c.aws, &bucket, &foreign).await;
    let stack = Stack::new();
    let catalog = c.catalog;

    // Bad input: refused, and the answer's PhysicalResourceId is one of ours.
    let bad = json!({"Vendor": "telus", "BucketName": bucket, "Acces": "read"});
    let err = create(&c, &stack, &bad).await.unwrap_err().to_string();
    assert!(err.contains("unknown property Acces"), "{err}");
    let request_id = common::uuid_like();
    let req = Request {
        stack_id: &stack.stack_id,
        logical_id: &stack.logical_id,
        request_id: &request_id,
        physical_id: None,
        properties: &bad,
        old_properties: None,
    };
    let physical =
        lifecycle::physical_id_on_failure(catalog, vendor_grants::cfn::RequestType::Create, &req);
    assert!(
        vendor_grants::grant::grant_id_from_physical(&physical).is_some(),
        "{physical}"
    );
    delete(&c, &stack, &physical, &bad).await;
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), foreign);

    // A foreign statement squatting on our Sid: refused, nothing changed, rollback fine.
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let grant = vendor_grants::grant::derive_grant_id(
        &stack.stack_id,
        &stack.logical_id,
        &vendor_grants::grant::GrantProperties::from_json(&props, catalog).unwrap(),
    );
    let mut squatted = foreign.clone();
    squatted["Statement"].as_array_mut().unwrap().push(json!({"Sid": format!("VG{grant}BucketList"),
        "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::475757276268:root"}, "Action": "s3:ListBucket",
        "Resource": format!("arn:aws:s3:::{bucket}")}));
    put_bucket_policy(&c.aws, &bucket, &squatted).await;
    let err = create(&c, &stack, &props).await.unwrap_err().to_string();
    assert!(
        err.contains("did not write") && err.contains(&format!("VG{grant}BucketList")),
        "{err}"
    );
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), squatted);
    let physical = vendor_grants::grant::physical_resource_id(&grant, &bucket);
    delete(&c, &stack, &physical, &props).await;
    assert_eq!(
        bucket_policy(&c.aws, &bucket).await.unwrap(),
        squatted,
        "the squatter is not ours to remove"
    );
}

#[tokio::test]
async fn missing_bucket_and_key_are_named() {
    let c = ctx().await;
    let stack = Stack::new();
    let missing = common::unique("vg-nobucket");
    let err = create(
        &c,
        &stack,
        &json!({"Vendor": "telus", "BucketName": missing}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("BucketName") && err.contains(&missing),
        "{err}"
    );
    let bucket = common::unique("vg-nokey");
    create_bucket(&c.aws, &bucket).await;
    let key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let err = create(
        &c,
        &stack,
        &json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("KmsKeyArn") && err.contains(key), "{err}");
    assert_eq!(bucket_policy(&c.aws, &bucket).await, None);
}

#[tokio::test]
async fn a_bucket_policy_near_the_size_limit_is_refused_before_writing() {
    let c = ctx().await;
    let bucket = common::unique("vg-size");
    create_bucket(&c.aws, &bucket).await;
    // Foreign statements filling the policy to exactly 20,300 bytes, whatever the bucket name's
    // length (it varies with the test process id): under S3's limit of 20,480, and over it once
    // the grant's two statements are merged in.
    let statement = |i: usize, pad: usize| {
        json!({"Sid": format!("Foreign{i}"), "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/{}", "p".repeat(pad))})
    };
    let mut filler: Vec<Value> = (0..44).map(|i| statement(i, 300)).collect();
    let size = |f: &[Value]| {
        json!({"Version": "2012-10-17", "Statement": f})
            .to_string()
            .len()
    };
    // The last statement's bytes (what it adds to an empty list), and the comma before it.
    let last = size(&[statement(43, 0)]) - size(&[]) + 1;
    let short = 20_300 - size(&filler[..43]) - last;
    filler[43] = statement(43, short);
    let big = json!({"Version": "2012-10-17", "Statement": filler});
    assert_eq!(big.to_string().len(), 20_300);
    put_bucket_policy(&c.aws, &bucket, &big).await;
    let err = create(
        &c,
        &Stack::new(),
        &json!({"Vendor": "telus", "BucketName": bucket}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bucket policy would be") && err.contains("20480"),
        "{err}"
    );
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), big);
}

#[tokio::test]
async fn delete_succeeds_when_bucket_key_policy_or_role_are_already_gone() {
    let c = ctx().await;
    // Bucket gone.
    let bucket = common::unique("vg-gone");
    create_bucket(&c.aws, &bucket).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let done = create(&c, &stack, &props).await.unwrap();
    c.aws
        .s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    delete(&c, &stack, &done.physical_resource_id, &props).await;
    c.aws
        .s3
        .delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    delete(&c, &stack, &done.physical_resource_id, &props).await;

    // Key scheduled for deletion, role deleted by hand.
    let bucket = common::unique("vg-gone2");
    create_bucket(&c.aws, &bucket).await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    let role = common::unique("vg-role");
    let props = json!({"Vendor": "custom", "Mode": "role", "Access": "read", "ExternalId": "xid-1",
        "VendorPrincipal": "222233334444", "BucketName": bucket, "KmsKeyArn": key_arn, "RoleName": role});
    let stack = Stack::new();
    let done = create(&c, &stack, &props).await.unwrap();
    c.aws
        .kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let policy_name = format!("VendorGrant-{}", common::gid(&done));
    c.aws
        .iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name(&policy_name)
        .send()
        .await
        .unwrap();
    c.aws
        .iam
        .delete_role()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    delete(&c, &stack, &done.physical_resource_id, &props).await;
}

#[tokio::test]
async fn role_mode_key_statement_only_when_the_key_policy_does_not_delegate_to_iam() {
    let c = ctx().await;
    let bucket = common::unique("vg-rolekey");
    create_bucket(&c.aws, &bucket).await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    // A key policy without "Enable IAM User Permissions": admins named one by one.
    let strict = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Admins", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/KeyAdmin"}, "Action": "kms:*", "Resource": "*"}]});
    c.aws
        .kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(strict.to_string())
        .send()
        .await
        .unwrap();
    let role = common::unique("vg-strict");
    let props = json!({"Vendor": "custom", "Mode": "role", "Access": "read", "ExternalId": "xid-2",
        "VendorPrincipal": "222233334444", "BucketName": bucket, "KmsKeyArn": key_arn, "RoleName": role});
    let stack = Stack::new();
    let done = create(&c, &stack, &props).await.unwrap();
    let policy = key_policy(&c.aws, &key_id).await;
    let stmt = statements(&policy)
        .into_iter()
        .find(|s| s["Sid"] == format!("VG{}RoleKeyUse", common::gid(&done)))
        .unwrap_or_else(|| panic!("no role statement in {policy}"));
    assert_eq!(stmt["Principal"]["AWS"], done.data["RoleArn"]);
    assert!(done.data["StatementIds"].contains("RoleKeyUse"));
    delete(&c, &stack, &done.physical_resource_id, &props).await;
    assert_eq!(key_policy(&c.aws, &key_id).await, strict);
}

#[tokio::test]
async fn grants_share_a_role_the_last_deletes_it_and_disagreement_or_foreign_roles_are_refused() {
    let c = ctx().await;
    let role = common::unique("ScaleAI-Integration");
    let mut grants = Vec::new();
    for _ in 0..2 {
        let bucket = common::unique("vg-shared");
        create_bucket(&c.aws, &bucket).await;
        let props = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "scale-shared", "RoleName": role});
        let stack = Stack::new();
        let done = create(&c, &stack, &props).await.unwrap();
        grants.push((stack, props, done));
    }
    assert_eq!(grants[0].2.data["RoleArn"], grants[1].2.data["RoleArn"]);
    let listed = c
        .aws
        .iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.policy_names().len(), 2);

    // A third grant with another ExternalId may not change the shared role's trust.
    let bucket = common::unique("vg-shared");
    create_bucket(&c.aws, &bucket).await;
    let disagree = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "other-id", "RoleName": role});
    let err = create(&c, &Stack::new(), &disagree)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shared") && err.contains("ExternalId"),
        "{err}"
    );
    assert!(
        !err.contains("other-id") && !err.contains("scale-shared"),
        "ExternalId leaked: {err}"
    );

    let (stack, props, done) = &grants[0];
    delete(&c, stack, &done.physical_resource_id, props).await;
    let role_now = c.aws.iam.get_role().role_name(&role).send().await;
    assert!(role_now.is_ok(), "the role went with the first grant");
    let (stack, props, done) = &grants[1];
    delete(&c, stack, &done.physical_resource_id, props).await;
    assert!(
        c.aws.iam.get_role().role_name(&role).send().await.is_err(),
        "the last grant must delete the role"
    );

    // A same-named role that vendor-grants did not create is never adopted.
    let foreign_role = common::unique("Foreign-Role");
    c.aws.iam.create_role().role_name(&foreign_role)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send().await.unwrap();
    let bucket = common::unique("vg-foreignrole");
    create_bucket(&c.aws, &bucket).await;
    let props = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "xid", "RoleName": foreign_role});
    let stack = Stack::new();
    let err = create(&c, &stack, &props).await.unwrap_err().to_string();
    assert!(err.contains("did not create"), "{err}");
    let grant = vendor_grants::grant::derive_grant_id(
        &stack.stack_id,
        &stack.logical_id,
        &vendor_grants::grant::GrantProperties::from_json(&props, c.catalog).unwrap(),
    );
    delete(
        &c,
        &stack,
        &vendor_grants::grant::physical_resource_id(&grant, &bucket),
        &props,
    )
    .await;
    assert!(
        c.aws
            .iam
            .get_role()
            .role_name(&foreign_role)
            .send()
            .await
            .is_ok(),
        "a foreign role was deleted"
    );
}

#[tokio::test]
async fn an_in_place_external_id_change_updates_the_trust_policy() {
    let c = ctx().await;
    let bucket = common::unique("vg-extid");
    create_bucket(&c.aws, &bucket).await;
    let role = common::unique("vg-ext");
    let props = json!({"Vendor": "custom", "Mode": "role", "Access": "read", "ExternalId": "first-id",
        "VendorPrincipal": "222233334444", "BucketName": bucket, "RoleName": role});
    let stack = Stack::new();
    let done = create(&c, &stack, &props).await.unwrap();
    let mut changed = props.clone();
    changed["ExternalId"] = json!("second-id");
    let again = update(&c, &stack, &done.physical_resource_id, &changed, &props)
        .await
        .unwrap();
    assert_eq!(again.physical_resource_id, done.physical_resource_id);
    let got = c.aws.iam.get_role().role_name(&role).send().await.unwrap();
    let trust: Value = serde_json::from_str(&common::url_decode(
        got.role().unwrap().assume_role_policy_document().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "second-id"
    );
    delete(&c, &stack, &done.physical_resource_id, &changed).await;
}

async fn concurrent_grants(lockers: Vec<Locker>) {
    let c = std::sync::Arc::new(ctx().await);
    let bucket = common::unique("vg-concurrent");
    create_bucket(&c.aws, &bucket).await;
    let foreign = foreign_bucket_policy(&bucket);
    put_bucket_policy(&c.aws, &bucket, &foreign).await;
    let (key_id, key_arn) = create_key(&c.aws).await;
    let mut tasks = Vec::new();
    for (i, locker) in lockers.into_iter().enumerate() {
        let c = c.clone();
        let props = json!({"Vendor": "custom", "Access": "read", "BucketName": bucket, "KmsKeyArn": key_arn,
            "VendorPrincipal": format!("arn:aws:iam::2222333344{i:02}:root")});
        tasks.push(tokio::spawn(async move {
            let stack = Stack::new();
            call(&c, &locker, "Create", &stack, None, &props, None)
                .await
                .map(|d| common::gid(&d))
        }));
    }
    let mut grant_ids = Vec::new();
    for t in tasks {
        grant_ids.push(t.await.unwrap().unwrap());
    }
    let bucket_sids = sids(bucket_policy(&c.aws, &bucket).await.as_ref());
    let key_sids = sids(Some(&key_policy(&c.aws, &key_id).await));
    for g in &grant_ids {
        assert!(
            bucket_sids.contains(&format!("VG{g}BucketList")),
            "{g} lost from the bucket policy"
        );
        assert!(
            bucket_sids.contains(&format!("VG{g}BucketObjects")),
            "{g} lost from the bucket policy"
        );
        assert!(
            key_sids.contains(&format!("VG{g}KeyUse")),
            "{g} lost from the key policy"
        );
    }
    for s in statements(&foreign) {
        assert!(statements(&bucket_policy(&c.aws, &bucket).await.unwrap()).contains(&s));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_on_one_bucket_all_end_up_present_without_a_lock_table() {
    concurrent_grants((0..6).map(|_| Locker::Local).collect()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_on_one_bucket_all_end_up_present_with_the_lock_table() {
    let c = ctx().await;
    let table = common::unique("vg-locks");
    common::create_lock_table(&c.aws, &table).await;
    // Each task has its own table locker, as separate Lambda instances would.
    let lockers = (0..6)
        .map(|_| Locker::Table {
            mac_key: None,
            client: c.clients.dynamodb.clone(),
            table: table.clone(),
        })
        .collect();
    concurrent_grants(lockers).await;
    // Every lease was released.
    assert_eq!(common::leases_left(&c.aws, &table).await, 0);
    // And the last write to each policy is recorded, for the next writer to wait for.
    let items = c.aws.ddb.scan().table_name(&table).send().await.unwrap();
    let records: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("LockId").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("written/s3-bucket-policy/")),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("written/kms-key-policy/")),
        "{records:?}"
    );
}

#[tokio::test]
async fn an_allow_statement_of_someone_else_carrying_our_sid_refuses_the_create() {
    let c = ctx().await;
    let bucket = common::unique("vg-allowsquat");
    create_bucket(&c.aws, &bucket).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let grant = vendor_grants::grant::derive_grant_id(
        &stack.stack_id,
        &stack.logical_id,
        &vendor_grants::grant::GrantProperties::from_json(&props, c.catalog).unwrap(),
    );
    // Same Sid, an Allow of the shape vendor-grants writes, but not what this grant would write.
    let squatter = json!({"Version": "2012-10-17", "Statement": [{"Sid": format!("VG{grant}BucketList"),
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": "s3:GetBucketLocation", "Resource": format!("arn:aws:s3:::{bucket}")}]});
    put_bucket_policy(&c.aws, &bucket, &squatter).await;
    let err = create(&c, &stack, &props).await.unwrap_err().to_string();
    assert!(err.contains("did not write"), "{err}");
    assert_eq!(bucket_policy(&c.aws, &bucket).await.unwrap(), squatter);
}

#[tokio::test]
async fn a_failed_replacement_update_undoes_what_the_new_grant_wrote() {
    let c = ctx().await;
    let bucket = common::unique("vg-undo");
    create_bucket(&c.aws, &bucket).await;
    let role = common::unique("ScaleAI-Integration");
    let stack = Stack::new();
    let old = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "xid-undo"});
    let first = create(&c, &stack, &old).await.unwrap();
    // RoleName changes (a replacement) and the new role's grant then fails on a missing key.
    let new = json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": "xid-undo", "RoleName": role,
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"});
    let err = update(&c, &stack, &first.physical_resource_id, &new, &old)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("KmsKeyArn"), "{err}");
    assert!(
        c.aws.iam.get_role().role_name(&role).send().await.is_err(),
        "the failed replacement left its role"
    );
    // The bucket is missing: a role-mode grant creates no role for a bucket it cannot see.
    let missing = json!({"Vendor": "scale-ai", "BucketName": common::unique("vg-nosuch"), "ExternalId": "xid-undo", "RoleName": role});
    let err = create(&c, &Stack::new(), &missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BucketName"), "{err}");
    assert!(
        c.aws.iam.get_role().role_name(&role).send().await.is_err(),
        "a role was created for a missing bucket"
    );
    delete(&c, &stack, &first.physical_resource_id, &old).await;
}

#[tokio::test]
async fn an_update_from_a_foreign_id_and_the_delete_of_that_id_leave_the_new_grant() {
    let c = ctx().await;
    let bucket = common::unique("vg-adopt");
    create_bucket(&c.aws, &bucket).await;
    let stack = Stack::new();
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    // The resource was served by another provider; it now points at vendor-grants.
    let foreign_id = "telus-grant-from-old-provider";
    let done = update(&c, &stack, foreign_id, &props, &props)
        .await
        .unwrap();
    assert_ne!(done.physical_resource_id, foreign_id);
    delete(&c, &stack, foreign_id, &props).await;
    let left = sids(bucket_policy(&c.aws, &bucket).await.as_ref());
    assert_eq!(
        left,
        vec![
            format!("VG{}BucketList", common::gid(&done)),
            format!("VG{}BucketObjects", common::gid(&done))
        ]
    );
}
