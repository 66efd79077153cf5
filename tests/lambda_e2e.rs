//! The built `vendor-grants-lambda` run as Lambda runs it: the real bootstrap process against a
//! Lambda Runtime API, moto for AWS, and a local HTTP server as CloudFormation's ResponseURL.

mod common;

use std::time::{Duration, Instant};

use common::{
    BlackHole, SECRET_SIGNATURE, aws, bucket_policy, cfn_event, create_bucket, create_key,
    key_policy, put_bucket_policy,
};
use serde_json::{Value, json};

use common::lambda::Lambda;

const DEADLINE: Duration = Duration::from_secs(30);

fn statements(policy: &Value) -> Vec<Value> {
    policy["Statement"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_create_update_delete() {
    let moto = common::moto();
    let aws = aws(&moto.endpoint).await;
    let bucket = common::unique("e2e-stack");
    create_bucket(&aws, &bucket).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Auditor", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/audit/*")}]});
    put_bucket_policy(&aws, &bucket, &foreign).await;
    let (key_id, key_arn) = create_key(&aws).await;
    let key_before = key_policy(&aws, &key_id).await;
    let l = Lambda::with_moto();
    let stack = common::unique("stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});

    let created = l.answer(
        l.event("Create", &stack, None, props.clone(), None),
        DEADLINE,
    );
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let physical = created["PhysicalResourceId"].as_str().unwrap().to_string();
    let grant = created["Data"]["GrantId"].as_str().unwrap().to_string();
    assert!(physical.contains(&grant));
    assert_eq!(created["LogicalResourceId"], "DataVendorAccess");
    assert_eq!(
        created["Data"]["BucketArn"],
        format!("arn:aws:s3:::{bucket}")
    );
    assert_eq!(created["Data"]["KmsKeyArn"], key_arn);
    assert_eq!(created["Data"]["RoleArn"], "");
    assert_eq!(created["Data"]["Region"], "us-east-1");
    assert_eq!(
        created["Data"]["VendorPrincipal"],
        "arn:aws:iam::475757276268:root"
    );
    assert_eq!(created["Data"].as_object().unwrap().len(), 7);
    let policy = bucket_policy(&aws, &bucket).await.unwrap();
    assert_eq!(statements(&policy).len(), 3);
    assert!(statements(&policy).contains(&statements(&foreign)[0]));

    let mut updated = props.clone();
    updated["Access"] = json!("read");
    let answer = l.answer(
        l.event(
            "Update",
            &stack,
            Some(&physical),
            updated.clone(),
            Some(props.clone()),
        ),
        DEADLINE,
    );
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], physical);
    let objects = statements(&bucket_policy(&aws, &bucket).await.unwrap())
        .into_iter()
        .find(|s| s["Sid"] == format!("VG{grant}BucketObjects"))
        .unwrap();
    assert_eq!(objects["Action"], json!(["s3:GetObject"]));

    let answer = l.answer(
        l.event("Delete", &stack, Some(&physical), updated, None),
        DEADLINE,
    );
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(bucket_policy(&aws, &bucket).await.unwrap(), foreign);
    assert_eq!(key_policy(&aws, &key_id).await, key_before);

    // Logs are JSON lines, one per event at least, and never carry the ResponseURL.
    let logs = l.function.logs();
    assert!(
        !logs.contains(SECRET_SIGNATURE),
        "the ResponseURL leaked into the logs"
    );
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect();
    let handled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["outcome"] == "answered")
        .collect();
    assert_eq!(handled.len(), 3, "{logs}");
    assert_eq!(handled[0]["fields"]["grant_id"], grant.as_str());
    assert_eq!(handled[1]["fields"]["request_type"], "Update");
}

#[tokio::test(flavor = "multi_thread")]
async fn replacement_on_the_same_bucket_then_the_old_delete() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-replace");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::with_moto();
    let stack = common::unique("stack");
    let old = json!({"Vendor": "scale-ai", "Mode": "bucket-policy", "BucketName": bucket});
    let first = l.answer(l.event("Create", &stack, None, old.clone(), None), DEADLINE);
    let old_physical = first["PhysicalResourceId"].as_str().unwrap().to_string();
    let new = json!({"Vendor": "telus", "BucketName": bucket});
    let second = l.answer(
        l.event(
            "Update",
            &stack,
            Some(&old_physical),
            new.clone(),
            Some(old.clone()),
        ),
        DEADLINE,
    );
    assert_eq!(second["Status"], "SUCCESS", "{second}");
    assert_ne!(second["PhysicalResourceId"], first["PhysicalResourceId"]);
    let deleted = l.answer(
        l.event("Delete", &stack, Some(&old_physical), old, None),
        DEADLINE,
    );
    assert_eq!(deleted["Status"], "SUCCESS");
    let new_grant = second["Data"]["GrantId"].as_str().unwrap();
    let sids: Vec<String> = statements(&bucket_policy(&aws, &bucket).await.unwrap())
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sids,
        vec![
            format!("VG{new_grant}BucketList"),
            format!("VG{new_grant}BucketObjects")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_create_then_rollback_delete_and_bad_input_messages() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-bad");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::with_moto();
    let stack = common::unique("stack");

    let cases = [
        (
            json!({"Vendor": "acme", "BucketName": bucket}),
            vec!["Vendor", "telus, scale-ai, vcc, alphasense, custom"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": bucket, "Bucket": "x"}),
            vec!["unknown property Bucket", "BucketName"],
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": bucket}),
            vec!["ExternalId", "required"],
        ),
        (
            json!({"Vendor": "telus", "BucketName": common::unique("e2e-missing")}),
            vec!["BucketName", "does not exist"],
        ),
    ];
    for (props, needles) in cases {
        let answer = l.answer(
            l.event("Create", &stack, None, props.clone(), None),
            DEADLINE,
        );
        assert_eq!(answer["Status"], "FAILED", "{answer}");
        let reason = answer["Reason"].as_str().unwrap();
        assert!(reason.starts_with("Create failed: "), "{reason}");
        for n in needles {
            assert!(reason.contains(n), "{reason} lacks {n}");
        }
        // The rollback Delete acts on the id the failed Create answered with, and succeeds.
        let physical = answer["PhysicalResourceId"].as_str().unwrap();
        assert!(physical.starts_with("vendor-grants:"), "{physical}");
        let rollback = l.answer(
            l.event("Delete", &stack, Some(physical), props, None),
            DEADLINE,
        );
        assert_eq!(rollback["Status"], "SUCCESS", "{rollback}");
        assert_eq!(rollback["PhysicalResourceId"], physical);
    }
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        None,
        "a failed Create wrote something"
    );
}

#[test]
fn a_malformed_event_is_still_answered_and_one_without_response_url_is_not() {
    let l = Lambda::with_moto();
    // No RequestType: the envelope cannot be parsed, but there is a ResponseURL to answer.
    let mut bad = cfn_event(
        "Create",
        &l.url(),
        "stack-x",
        "Grant",
        None,
        json!({}),
        None,
    );
    bad.as_object_mut().unwrap().remove("RequestType");
    let answer = l.answer(bad, DEADLINE);
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().contains("RequestType"),
        "{answer}"
    );
    assert!(!answer["PhysicalResourceId"].as_str().unwrap().is_empty());

    // No ResponseURL: nothing to answer, and the function goes on to the next event.
    let before = l.responses.requests().len();
    let id = l.runtime.invoke(json!({"RequestType": "Create"}), DEADLINE);
    assert!(l.runtime.wait_result(&id, DEADLINE).is_some());
    assert_eq!(l.responses.requests().len(), before);
    let answer = l.answer(
        cfn_event(
            "Delete",
            &l.url(),
            "stack-x",
            "Grant",
            Some("not-ours"),
            json!({}),
            None,
        ),
        DEADLINE,
    );
    assert_eq!(answer["Status"], "SUCCESS");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_delivery_changes_nothing_more() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-dup");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::with_moto();
    let stack = common::unique("stack");
    let props = json!({"Vendor": "custom", "Access": "read", "VendorPrincipal": "222233334444", "BucketName": bucket});
    let e = l.event("Create", &stack, None, props.clone(), None);
    let first = l.answer(e.clone(), DEADLINE);
    let policy = bucket_policy(&aws, &bucket).await;
    let second = l.answer(e, DEADLINE);
    assert_eq!(first["Status"], "SUCCESS");
    assert_eq!(first["PhysicalResourceId"], second["PhysicalResourceId"]);
    assert_eq!(first["Data"], second["Data"]);
    assert_eq!(bucket_policy(&aws, &bucket).await, policy);
    let physical = first["PhysicalResourceId"].as_str().unwrap();
    let d = l.event("Delete", &stack, Some(physical), props, None);
    assert_eq!(l.answer(d.clone(), DEADLINE)["Status"], "SUCCESS");
    assert_eq!(l.answer(d, DEADLINE)["Status"], "SUCCESS");
    assert_eq!(bucket_policy(&aws, &bucket).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_url_that_fails_twice_gets_the_answer_on_the_third_try() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-retry");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::with_moto();
    l.responses.fail_next(2, 503);
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let answer = l.answer(
        l.event("Create", &common::unique("stack"), None, props, None),
        DEADLINE,
    );
    assert_eq!(answer["Status"], "SUCCESS");
    let requests = l.responses.requests();
    assert_eq!(requests.len(), 3, "two failures then one success");
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "every try sends the same answer"
    );
}

#[test]
fn an_aws_endpoint_that_never_answers_gets_failed_before_the_deadline() {
    let hole = BlackHole::start();
    let l = Lambda::start(&[("AWS_ENDPOINT_URL", &hole.endpoint())]);
    let props = json!({"Vendor": "telus", "BucketName": "e2e-never-answers"});
    let deadline = Duration::from_secs(8);
    let started = Instant::now();
    let answer = l.answer(l.event("Create", "stack-hole", None, props, None), deadline);
    let took = started.elapsed();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("ran out of time"),
        "{answer}"
    );
    assert!(took < deadline, "answered after the deadline: {took:?}");
    assert!(hole.accepted() > 0, "the function never tried AWS");
    assert!(
        answer["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .starts_with("vendor-grants:")
    );
}

#[test]
fn a_response_url_outside_the_allow_list_gets_no_request() {
    // The default allow-list: HTTPS to *.amazonaws.com only.
    for hosts in [None, Some("hooks.example.com")] {
        let mut env = vec![("AWS_ENDPOINT_URL", common::moto().endpoint.as_str())];
        if let Some(h) = hosts {
            env.push(("VENDOR_GRANTS_RESPONSE_HOSTS", h));
        } else {
            env.push(("VENDOR_GRANTS_RESPONSE_HOSTS", ""));
        }
        let l = Lambda::start(&env);
        let id = l.runtime.invoke(
            cfn_event(
                "Create",
                &l.url(),
                "stack-y",
                "Grant",
                None,
                json!({"Vendor": "telus", "BucketName": "abc"}),
                None,
            ),
            DEADLINE,
        );
        assert!(l.runtime.wait_result(&id, DEADLINE).is_some());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            l.responses.requests().is_empty(),
            "{hosts:?}: a request reached a refused URL"
        );
        let logs = l.function.logs();
        assert!(logs.contains("ResponseURL not allowed"), "{logs}");
        assert!(
            !logs.contains(SECRET_SIGNATURE),
            "the refused URL leaked into the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn role_mode_never_logs_the_external_id() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-role");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::with_moto();
    let secret = "super-secret-external-id-9431";
    let role = common::unique("ScaleAI-Integration");
    let stack = common::unique("stack");
    let props =
        json!({"Vendor": "scale-ai", "BucketName": bucket, "ExternalId": secret, "RoleName": role});
    let created = l.answer(
        l.event("Create", &stack, None, props.clone(), None),
        DEADLINE,
    );
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(
        created["Data"]["RoleArn"],
        format!("arn:aws:iam::123456789012:role/vendor-grants/{role}")
    );
    let physical = created["PhysicalResourceId"].as_str().unwrap();
    // An invalid new ExternalId is refused without being echoed.
    let mut bad = props.clone();
    bad["ExternalId"] = json!("bad external id!");
    let refused = l.answer(
        l.event("Update", &stack, Some(physical), bad, Some(props.clone())),
        DEADLINE,
    );
    assert_eq!(refused["Status"], "FAILED");
    assert!(
        !refused["Reason"]
            .as_str()
            .unwrap()
            .contains("bad external id"),
        "{refused}"
    );
    let deleted = l.answer(
        l.event("Delete", &stack, Some(physical), props, None),
        DEADLINE,
    );
    assert_eq!(deleted["Status"], "SUCCESS");
    assert!(aws.iam.get_role().role_name(&role).send().await.is_err());
    let logs = l.function.logs();
    assert!(
        !logs.contains(secret),
        "the ExternalId leaked into the logs"
    );
    assert!(
        !logs.contains("bad external id"),
        "the ExternalId leaked into the logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn separate_function_processes_sharing_the_lock_table_all_land_their_grants() {
    let aws = aws(&common::moto().endpoint).await;
    let bucket = common::unique("e2e-shared");
    create_bucket(&aws, &bucket).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Auditor", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/audit/*")}]});
    put_bucket_policy(&aws, &bucket, &foreign).await;
    let (key_id, key_arn) = create_key(&aws).await;
    let table = common::unique("e2e-locks");
    common::create_lock_table(&aws, &table).await;
    let endpoint = common::moto().endpoint.clone();
    // Three Lambda instances, as Lambda would run them side by side, one event each, at once.
    let lambdas: Vec<Lambda> = (0..3)
        .map(|_| {
            Lambda::start(&[
                ("AWS_ENDPOINT_URL", &endpoint),
                ("VENDOR_GRANTS_LOCK_TABLE", &table),
            ])
        })
        .collect();
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = lambdas
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let props = json!({"Vendor": "custom", "Access": "read", "BucketName": bucket,
                    "KmsKeyArn": key_arn, "VendorPrincipal": format!("2222333344{i:02}")});
                let e = l.event("Create", &format!("stack-shared-{i}"), None, props, None);
                s.spawn(move || l.answer(e, DEADLINE))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let policy = bucket_policy(&aws, &bucket).await.unwrap();
    let key = key_policy(&aws, &key_id).await;
    let sids = |p: &Value| -> Vec<String> {
        statements(p)
            .iter()
            .filter_map(|s| s["Sid"].as_str().map(str::to_string))
            .collect()
    };
    for answer in &answers {
        assert_eq!(answer["Status"], "SUCCESS", "{answer}");
        let grant = answer["Data"]["GrantId"].as_str().unwrap();
        assert!(
            sids(&policy).contains(&format!("VG{grant}BucketObjects")),
            "{grant} lost: {policy}"
        );
        assert!(
            sids(&key).contains(&format!("VG{grant}KeyUse")),
            "{grant} lost from the key policy"
        );
    }
    assert!(statements(&policy).contains(&statements(&foreign)[0]));
    // Every lease was given back.
    assert_eq!(common::leases_left(&aws, &table).await, 0);
}

#[test]
fn service_timeout_shorter_than_the_lambda_deadline_is_honoured() {
    let hole = BlackHole::start();
    let l = Lambda::start(&[("AWS_ENDPOINT_URL", &hole.endpoint())]);
    // CloudFormation sends ServiceTimeout as a string of seconds, inside ResourceProperties.
    let props =
        json!({"Vendor": "telus", "BucketName": "e2e-service-timeout", "ServiceTimeout": "4"});
    let started = Instant::now();
    let answer = l.answer(
        l.event("Create", "stack-st", None, props, None),
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("ran out of time"),
        "{answer}"
    );
    assert!(
        took < Duration::from_secs(4),
        "ServiceTimeout 4 s ignored: answered after {took:?}"
    );
}

#[test]
fn events_that_name_other_accounts_or_cannot_be_parsed_are_refused_before_any_aws_call() {
    // Any AWS call would land in the black hole: refusals must come before one.
    let hole = BlackHole::start();
    let l = Lambda::start(&[("AWS_ENDPOINT_URL", &hole.endpoint())]);
    let props = json!({"Vendor": "telus", "BucketName": "e2e-refused"});
    let refused = |event: Value, needle: &str| {
        let answer = l.answer(event, DEADLINE);
        assert_eq!(answer["Status"], "FAILED", "{answer}");
        let reason = answer["Reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{needle}: {reason}");
    };
    // A StackId that is not a stack ARN, or one of another account or region.
    for stack in [
        "not-an-arn-at-all".to_string(),
        "arn:aws:cloudformation:us-east-1:999988887777:stack/s/1".to_string(),
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1".to_string(),
        "arn:aws:s3:us-east-1:123456789012:stack/s/1".to_string(),
    ] {
        let mut e = l.event("Create", "stack-refused", None, props.clone(), None);
        e["StackId"] = json!(stack);
        refused(e, "StackId");
    }
    // A KmsKeyArn of another account or region.
    for key in [
        "arn:aws:kms:us-east-1:999988887777:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:999988887777:alias/data",
    ] {
        let mut p = props.clone();
        p["KmsKeyArn"] = json!(key);
        refused(
            l.event("Create", "stack-refused", None, p, None),
            "KmsKeyArn",
        );
    }
    // A lower-case or unknown RequestType is named.
    for t in ["create", "Destroy"] {
        let mut e = l.event("Create", "stack-refused", None, props.clone(), None);
        e["RequestType"] = json!(t);
        refused(e, "RequestType");
    }
    // A Prefix starting with "/" is refused with the hint.
    let mut p = props.clone();
    p["Prefix"] = json!("/data/");
    refused(
        l.event("Create", "stack-refused", None, p, None),
        "write \"data/\"",
    );
    // A property nested 200 levels deep: the JSON parser refuses the event, and it is still
    // answered, naming the field.
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let mut p = props.clone();
    p["Prefix"] = deep;
    refused(
        l.event("Create", "stack-refused", None, p, None),
        "ResourceProperties",
    );
    // A huge value: the answer is within its budget and the log line is capped.
    let mut p = props.clone();
    p["Surprise"] = json!("x".repeat(3 * 1024 * 1024));
    refused(
        l.event("Create", "stack-refused", None, p, None),
        "Surprise",
    );
    assert_eq!(hole.accepted(), 0, "an AWS call was made");
    let logs = l.function.logs();
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 16 * 1024, "a log line of {longest} bytes");
}

/// Which release runs is in the logs: the function's first line carries `version`, Cargo.toml's
/// version, which the deploy template's `Version` output also names (make check-sar keeps those
/// equal), so a deployed function can be told apart from the template it came with.
#[test]
fn the_function_logs_its_version_at_start() {
    let l = Lambda::with_moto();
    let wanted = format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        l.function
            .wait_logs(&wanted, std::time::Duration::from_secs(10)),
        "no log line with {wanted}:\n{}",
        l.function.logs()
    );
}
