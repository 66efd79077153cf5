//! Exact ownership through the built function (as Lambda runs it, against moto, with the lock
//! table and its registry): Create, Update and Delete act only on what the grant provably wrote.
//! One test per way the promise was broken from outside: a refused Create's rollback, an alias
//! re-pointed after Create, statements others added to a role's trust policy, a role with only
//! the managed tag, an event from another stack, and a Delete whose properties disagree with
//! what was written. Each asserts the foreign document byte for byte and the vendor's access
//! ended where it must be.

mod common;

use std::time::Duration;

use common::lambda::{Lambda, ok, physical};
use common::{
    ACCOUNT_ID, Aws, aws, bucket_policy, create_bucket, create_key, key_policy, moto,
    put_bucket_policy, sids, stack_arn, unique,
};
use serde_json::{Value, json};
use vendor_grants::catalog::Catalog;
use vendor_grants::grant::{GrantProperties, derive_grant_id};

const DEADLINE: Duration = Duration::from_secs(60);
const LOGICAL_ID: &str = "DataVendorAccess";

/// The grant id a Create of `props` in `stack` gets, computed as the function does.
fn grant_id(stack: &str, props: &Value) -> String {
    let catalog = Catalog::builtin().unwrap();
    let props = GrantProperties::from_json(props, catalog).unwrap();
    derive_grant_id(&stack_arn(stack), LOGICAL_ID, &props).to_string()
}

fn statements(policy: &Value) -> Vec<Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

fn failed(answer: &Value, needle: &str) {
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
}

async fn registry_has(aws: &Aws, table: &str, grant: &str) -> bool {
    aws.ddb
        .get_item()
        .table_name(table)
        .key(
            "LockId",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("grant#{grant}")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .is_some()
}

async fn put_key_policy(aws: &Aws, key_id: &str, policy: &Value) {
    aws.kms
        .put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
}

/// Case 1: a foreign statement carrying the grant's own Sid. Create refuses it; the rollback
/// Delete leaves it byte for byte (the bucket policy is not deleted), in the bucket policy and
/// in the key policy alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_creates_rollback_leaves_the_foreign_statement_under_its_sid() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-own1");
    create_bucket(&aws, &bucket).await;
    let (key_id, key_arn) = create_key(&aws).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});
    let id = grant_id(&stack, &props);

    for (sid, in_key) in [("BucketList", false), ("KeyUse", true)] {
        let sid = format!("VG{id}{sid}");
        let squatter = json!({"Sid": sid, "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": if in_key { json!("kms:Decrypt") } else { json!("s3:GetObject") },
            "Resource": if in_key { json!("*") } else { json!(format!("arn:aws:s3:::{bucket}/corp/*")) }});
        let bucket_before = json!({"Version": "2012-10-17", "Statement": [
            if in_key { json!({"Sid": "Other", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/x/*")}) } else { squatter.clone() }]});
        put_bucket_policy(&aws, &bucket, &bucket_before).await;
        let mut key_before = key_policy(&aws, &key_id).await;
        if in_key {
            key_before["Statement"]
                .as_array_mut()
                .unwrap()
                .push(squatter.clone());
            put_key_policy(&aws, &key_id, &key_before).await;
        }
        let key_before = key_policy(&aws, &key_id).await;

        let created = l.send("Create", &stack, None, props.clone(), None);
        failed(&created, "did not write");
        assert!(physical(&created).contains(&id), "{created}");
        let rollback = l.send(
            "Delete",
            &stack,
            Some(&physical(&created)),
            props.clone(),
            None,
        );
        ok(&rollback);
        assert_eq!(
            bucket_policy(&aws, &bucket).await.as_ref(),
            Some(&bucket_before)
        );
        assert_eq!(key_policy(&aws, &key_id).await, key_before);
        // The log says what was left and why.
        assert!(
            l.function
                .wait_logs("carries the grant's Sid but is not the grant's", DEADLINE),
            "{}",
            l.function.logs()
        );
        // Clean the key policy for the next round.
        if in_key {
            let mut cleaned = key_before.clone();
            cleaned["Statement"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["Sid"] != json!(sid));
            put_key_policy(&aws, &key_id, &cleaned).await;
        }
    }
}

/// The other side of the line: a statement the grant wrote that someone widened (the grant's
/// principal, more actions) is still the grant's, and Delete removes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_widened_statement_of_the_grant_is_still_removed_by_delete() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-widen");
    create_bucket(&aws, &bucket).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    let mut policy = bucket_policy(&aws, &bucket).await.unwrap();
    for s in policy["Statement"].as_array_mut().unwrap() {
        if s["Sid"].as_str().unwrap().ends_with("BucketObjects") {
            s["Action"] = json!(["s3:*"]);
            s["Resource"] = json!(format!("arn:aws:s3:::{bucket}/*"));
        }
    }
    put_bucket_policy(&aws, &bucket, &policy).await;
    let deleted = l.send("Delete", &stack, Some(&physical(&created)), props, None);
    ok(&deleted);
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        None,
        "access left behind"
    );
}

async fn create_alias(aws: &Aws, alias: &str, key_id: &str) {
    aws.kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await
        .unwrap();
}

async fn repoint_alias(aws: &Aws, alias: &str, key_id: &str) {
    aws.kms
        .update_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await
        .unwrap();
}

fn has_sid(policy: &Value, sid: &str) -> bool {
    statements(policy).iter().any(|s| s["Sid"] == sid)
}

/// Case 2: KmsKeyArn as an alias, re-pointed later (manual key rotation). Delete cleans the key
/// the grant was written to; an in-place Update moves the statement to the new key.
#[tokio::test(flavor = "multi_thread")]
async fn an_alias_repointed_after_create_is_followed_to_the_key_written() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-alias");
    create_bucket(&aws, &bucket).await;
    let (k1, _) = create_key(&aws).await;
    let (k2, _) = create_key(&aws).await;
    let (k3, _) = create_key(&aws).await;
    let alias = format!("alias/{}", unique("data"));
    create_alias(&aws, &alias, &k1).await;
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT_ID}:{alias}");
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": alias_arn});
    let id = grant_id(&stack, &props);
    let key_use = format!("VG{id}KeyUse");

    // Delete after a re-point: the statement in K1 goes, K2 is not touched.
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    assert!(has_sid(&key_policy(&aws, &k1).await, &key_use));
    repoint_alias(&aws, &alias, &k2).await;
    let k2_before = key_policy(&aws, &k2).await;
    let deleted = l.send(
        "Delete",
        &stack,
        Some(&physical(&created)),
        props.clone(),
        None,
    );
    ok(&deleted);
    assert!(
        !has_sid(&key_policy(&aws, &k1).await, &key_use),
        "the vendor can still use K1 after Delete"
    );
    assert_eq!(key_policy(&aws, &k2).await, k2_before);

    // An in-place Update after a re-point moves the statement; Delete then cleans the new key.
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    assert!(has_sid(&key_policy(&aws, &k2).await, &key_use));
    repoint_alias(&aws, &alias, &k3).await;
    let mut updated_props = props.clone();
    updated_props["Prefix"] = json!("exports/");
    let updated = l.send(
        "Update",
        &stack,
        Some(&physical(&created)),
        updated_props.clone(),
        Some(props.clone()),
    );
    ok(&updated);
    assert_eq!(physical(&updated), physical(&created));
    assert!(has_sid(&key_policy(&aws, &k3).await, &key_use));
    assert!(
        !has_sid(&key_policy(&aws, &k2).await, &key_use),
        "the Update left the vendor on the old key"
    );
    repoint_alias(&aws, &alias, &k1).await;
    let k1_before = key_policy(&aws, &k1).await;
    let deleted = l.send(
        "Delete",
        &stack,
        Some(&physical(&updated)),
        updated_props,
        None,
    );
    ok(&deleted);
    assert!(!has_sid(&key_policy(&aws, &k3).await, &key_use));
    assert_eq!(key_policy(&aws, &k1).await, k1_before);
    assert_eq!(bucket_policy(&aws, &bucket).await, None);
}

async fn trust_policy(aws: &Aws, role: &str) -> Value {
    let out = aws.iam.get_role().role_name(role).send().await.unwrap();
    let text = out.role().unwrap().assume_role_policy_document().unwrap();
    serde_json::from_str(&common::url_decode(text)).unwrap()
}

/// Case 3: a statement the security team added to the trust policy of a role vendor-grants
/// created stays through an in-place Update, a repeated Create and a redelivered Update.
#[tokio::test(flavor = "multi_thread")]
async fn statements_others_add_to_a_roles_trust_policy_stay() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-trust");
    create_bucket(&aws, &bucket).await;
    let role = unique("VendorGrant-trust");
    let stack = unique("stack");
    let props = json!({"Vendor": "scale-ai", "Mode": "role", "BucketName": bucket,
        "ExternalId": "scale-ext-1234", "RoleName": role});
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    let guard = json!({"Sid": "OnlyFromVendorNetwork", "Effect": "Deny",
        "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
        "Condition": {"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}}});
    let mut trust = trust_policy(&aws, &role).await;
    trust["Statement"]
        .as_array_mut()
        .unwrap()
        .insert(0, guard.clone());
    aws.iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(trust.to_string())
        .send()
        .await
        .unwrap();

    let mut with_prefix = props.clone();
    with_prefix["Prefix"] = json!("datasets/");
    for (kind, new, old) in [
        ("Update", with_prefix.clone(), Some(props.clone())),
        ("Update", with_prefix.clone(), Some(props.clone())),
        ("Create", props.clone(), None),
    ] {
        let physical_id = (kind == "Update").then(|| physical(&created));
        let answer = l.send(kind, &stack, physical_id.as_deref(), new, old);
        ok(&answer);
        let now = trust_policy(&aws, &role).await;
        let now = statements(&now);
        assert_eq!(
            now.first(),
            Some(&guard),
            "{kind} dropped the guard: {now:?}"
        );
        assert_eq!(now.len(), 2, "{now:?}");
        assert_eq!(now[1]["Sid"], "VendorGrantsAssumeRole");
    }
    let deleted = l.send("Delete", &stack, Some(&physical(&created)), props, None);
    ok(&deleted);
}

async fn create_role_with_tags(aws: &Aws, name: &str, tags: &[(&str, &str)]) -> Value {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Sid": "VendorGrantsAssumeRole",
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::307185671274:root"},
        "Action": "sts:AssumeRole"}]});
    let mut req = aws
        .iam
        .create_role()
        .role_name(name)
        .path("/vendor-grants/")
        .assume_role_policy_document(trust.to_string());
    for (k, v) in tags {
        req = req.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap(),
        );
    }
    req.send().await.unwrap();
    aws.iam
        .put_role_policy()
        .role_name(name)
        .policy_name("TeamPolicy")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team/*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    trust
}

/// Case 4: a role with the managed tag but without an owner tag of a grant vendor-grants knows
/// is not vendor-grants': Create refuses it and changes nothing, the rollback Delete leaves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_with_only_the_managed_tag_is_not_taken_over() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let bucket = unique("vg-tagged");
    create_bucket(&aws, &bucket).await;
    let owners: [&[(&str, &str)]; 2] = [
        &[("vendor-grants:managed", "true")],
        &[
            ("vendor-grants:managed", "true"),
            ("vendor-grants:owner", "0123456789abcdef"),
        ],
    ];
    for tags in owners {
        let role = unique("VendorGrant-squat");
        let trust = create_role_with_tags(&aws, &role, tags).await;
        let stack = unique("stack");
        let props = json!({"Vendor": "scale-ai", "Mode": "role", "BucketName": bucket,
            "ExternalId": "scale-ext-1234", "RoleName": role});
        let created = l.send("Create", &stack, None, props.clone(), None);
        failed(&created, "vendor-grants did not create");
        let rollback = l.send("Delete", &stack, Some(&physical(&created)), props, None);
        ok(&rollback);
        assert_eq!(trust_policy(&aws, &role).await, trust);
        let policies = aws
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        assert_eq!(policies.policy_names(), ["TeamPolicy".to_string()]);
    }
}

/// Case 5: a grant belongs to its stack. An Update or Delete from another stack naming this
/// grant's PhysicalResourceId is refused, naming the owner, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_from_another_stack_cannot_change_or_delete_the_grant() {
    let (l, aws, table) = Lambda::with_lock_table().await;
    let bucket = unique("vg-stack");
    create_bucket(&aws, &bucket).await;
    let stack_a = unique("stack-a");
    let stack_b = unique("stack-b");
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let created = l.send("Create", &stack_a, None, props.clone(), None);
    ok(&created);
    let id = grant_id(&stack_a, &props);
    let before = bucket_policy(&aws, &bucket).await.unwrap();

    let mut wider = props.clone();
    wider["Access"] = json!("full");
    wider["Prefix"] = json!("elsewhere/");
    let update = l.send(
        "Update",
        &stack_b,
        Some(&physical(&created)),
        wider,
        Some(props.clone()),
    );
    failed(
        &update,
        &format!("belongs to resource {LOGICAL_ID} of stack"),
    );
    assert!(update["Reason"].as_str().unwrap().contains(&stack_a));
    let delete = l.send(
        "Delete",
        &stack_b,
        Some(&physical(&created)),
        props.clone(),
        None,
    );
    failed(&delete, "nothing was changed");
    assert_eq!(bucket_policy(&aws, &bucket).await, Some(before));
    assert!(registry_has(&aws, &table, &id).await);

    let deleted = l.send("Delete", &stack_a, Some(&physical(&created)), props, None);
    ok(&deleted);
    assert_eq!(bucket_policy(&aws, &bucket).await, None);
    assert!(!registry_has(&aws, &table, &id).await);
}

/// Case 6: Delete acts on what was written, not on what its properties say: the bucket of the
/// PhysicalResourceId, the key the registry recorded (whatever KmsKeyArn the event carries).
#[tokio::test(flavor = "multi_thread")]
async fn delete_acts_on_what_was_written_not_on_its_properties() {
    let (l, aws, _) = Lambda::with_lock_table().await;
    let b1 = unique("vg-b1");
    let b2 = unique("vg-b2");
    create_bucket(&aws, &b1).await;
    create_bucket(&aws, &b2).await;
    let b2_policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Keep",
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{b2}/*")}]});
    put_bucket_policy(&aws, &b2, &b2_policy).await;
    let (key_id, key_arn) = create_key(&aws).await;
    let key_before = key_policy(&aws, &key_id).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": b1, "KmsKeyArn": key_arn});
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    assert!(!sids(bucket_policy(&aws, &b1).await.as_ref()).is_empty());

    for lies in [
        json!({"Vendor": "telus", "BucketName": b2}),
        json!({"Vendor": "scale-ai", "BucketName": b2, "Mode": "role", "ExternalId": "abcdef"}),
    ] {
        let deleted = l.send("Delete", &stack, Some(&physical(&created)), lies, None);
        ok(&deleted);
        assert_eq!(bucket_policy(&aws, &b1).await, None, "access left on b1");
        assert_eq!(key_policy(&aws, &key_id).await, key_before);
        assert_eq!(bucket_policy(&aws, &b2).await, Some(b2_policy.clone()));
        // Write the grant again for the next lie.
        ok(&l.send("Create", &stack, None, props.clone(), None));
    }
}

/// Case 6 without a registry: the bucket still comes from the PhysicalResourceId.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_registry_delete_still_acts_on_the_physical_ids_bucket() {
    let aws = aws(&moto().endpoint).await;
    let l = Lambda::with_moto();
    let b1 = unique("vg-nr1");
    let b2 = unique("vg-nr2");
    create_bucket(&aws, &b1).await;
    create_bucket(&aws, &b2).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": b1});
    let created = l.send("Create", &stack, None, props, None);
    ok(&created);
    let deleted = l.send(
        "Delete",
        &stack,
        Some(&physical(&created)),
        json!({"Vendor": "telus", "BucketName": b2}),
        None,
    );
    ok(&deleted);
    assert_eq!(bucket_policy(&aws, &b1).await, None, "access left on b1");
    assert_eq!(bucket_policy(&aws, &b2).await, None);
}

/// A record changed outside vendor-grants (its MAC no longer verifies) is not acted on: a Delete
/// whose record was edited to name another bucket still cleans the bucket the grant was written
/// to (the PhysicalResourceId's), and leaves the other one alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_record_does_not_redirect_a_delete() {
    let aws = aws(&moto().endpoint).await;
    let table = unique("vg-locks");
    common::create_lock_table(&aws, &table).await;
    let key = common::hmac_key(&aws.kms).await;
    let l = Lambda::start(&[
        ("AWS_ENDPOINT_URL", &moto().endpoint),
        ("VENDOR_GRANTS_LOCK_TABLE", &table),
        ("VENDOR_GRANTS_REGISTRY_KEY", &key),
    ]);
    let (b1, b2) = (unique("vg-tamper1"), unique("vg-tamper2"));
    create_bucket(&aws, &b1).await;
    create_bucket(&aws, &b2).await;
    let b2_policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Keep",
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{b2}/*")}]});
    put_bucket_policy(&aws, &b2, &b2_policy).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": b1});
    let created = l.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    let id = grant_id(&stack, &props);
    // Someone who can write the table points the record at b2, keeping the old MAC.
    let item = aws
        .ddb
        .get_item()
        .table_name(&table)
        .key(
            "LockId",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("grant#{id}")),
        )
        .send()
        .await
        .unwrap();
    let mut item = item.item().unwrap().clone();
    let record = item["Record"].as_s().unwrap().replace(&b1, &b2);
    item.insert(
        "Record".into(),
        aws_sdk_dynamodb::types::AttributeValue::S(record),
    );
    aws.ddb
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let deleted = l.send("Delete", &stack, Some(&physical(&created)), props, None);
    ok(&deleted);
    assert_eq!(bucket_policy(&aws, &b1).await, None, "access left on b1");
    assert_eq!(bucket_policy(&aws, &b2).await, Some(b2_policy));
    assert!(
        l.function.logs().contains("does not verify"),
        "{}",
        l.function.logs()
    );
}

/// A grant made before the lock table existed has no record; an Update of its stack with only
/// CloudFormation's own ServiceTimeout changed records it (the runbook's way to rebuild records),
/// and leaves its statements as they were.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_changes_only_service_timeout_records_an_unregistered_grant() {
    let aws = aws(&moto().endpoint).await;
    let bucket = unique("vg-rereg");
    create_bucket(&aws, &bucket).await;
    let stack = unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "ServiceTimeout": "300"});
    let before_table = Lambda::with_moto();
    let created = before_table.send("Create", &stack, None, props.clone(), None);
    ok(&created);
    let policy = bucket_policy(&aws, &bucket).await;
    let (l, _, table) = Lambda::with_lock_table().await;
    let id = grant_id(&stack, &props);
    assert!(!registry_has(&aws, &table, &id).await);
    let mut bumped = props.clone();
    bumped["ServiceTimeout"] = json!("301");
    let updated = l.send(
        "Update",
        &stack,
        Some(&physical(&created)),
        bumped.clone(),
        Some(props),
    );
    ok(&updated);
    assert_eq!(physical(&updated), physical(&created));
    assert!(
        registry_has(&aws, &table, &id).await,
        "the grant was not recorded"
    );
    assert_eq!(bucket_policy(&aws, &bucket).await, policy);
    ok(&l.send("Delete", &stack, Some(&physical(&created)), bumped, None));
}
