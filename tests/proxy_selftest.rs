//! Proves the fault-injecting proxy (tests/common/proxy.rs) against moto with the real SDK
//! clients: error wire formats the SDK understands, call names, resets, lost answers, stale
//! reads, seeded probabilities and gates.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::ProvideErrorMetadata;
use common::proxy::{Call, Fault, FaultProxy, Gate, Rule};
use common::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// SDK clients for `endpoint` that never retry, to see the raw errors.
async fn aws_no_retry(endpoint: &str) -> Aws {
    let conf = sdk_config(endpoint)
        .await
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    let s3conf = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .build();
    Aws {
        s3: aws_sdk_s3::Client::from_conf(s3conf),
        kms: aws_sdk_kms::Client::new(&conf),
        iam: aws_sdk_iam::Client::new(&conf),
        ddb: aws_sdk_dynamodb::Client::new(&conf),
    }
}

fn policy(bucket: &str, sid: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": sid, "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::475757276268:root"},
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*"),
    }]})
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::475757276268:root"},"Action":"sts:AssumeRole"}]}"#;

/// A bucket, a key, a role and a lock table with one item, made directly in moto.
struct Fixture {
    bucket: String,
    key_id: String,
    role: String,
    table: String,
}

async fn fixture() -> Fixture {
    let direct = aws(&moto().endpoint).await;
    let bucket = unique("proxy");
    create_bucket(&direct, &bucket).await;
    let (key_id, _) = create_key(&direct).await;
    let role = unique("proxy-role");
    direct
        .iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    let table = unique("proxy-locks");
    create_lock_table(&direct, &table).await;
    direct
        .ddb
        .put_item()
        .table_name(&table)
        .item("LockId", AttributeValue::S("bucket/x".into()))
        .send()
        .await
        .unwrap();
    Fixture {
        bucket,
        key_id,
        role,
        table,
    }
}

/// `(code, HTTP status)` of a failed SDK call, `(None, None)` for a success.
macro_rules! outcome {
    ($result:expr) => {
        match &$result {
            Ok(_) => (None, None),
            Err(e) => (
                e.code().map(str::to_string),
                e.raw_response().map(|r| r.status().as_u16()),
            ),
        }
    };
}

type Outcome = (&'static str, Option<String>, Option<u16>);

/// One call of each service through `aws`: (service, code, status) of each error, Ok as None.
async fn one_of_each(aws: &Aws, f: &Fixture) -> Vec<Outcome> {
    let s3 = aws.s3.get_bucket_policy().bucket(&f.bucket).send().await;
    let kms = aws
        .kms
        .get_key_policy()
        .key_id(&f.key_id)
        .policy_name("default")
        .send()
        .await;
    let iam = aws.iam.get_role().role_name(&f.role).send().await;
    let ddb = aws
        .ddb
        .get_item()
        .table_name(&f.table)
        .key("LockId", AttributeValue::S("bucket/x".into()))
        .send()
        .await;
    let mut out: Vec<Outcome> = Vec::new();
    for (name, (code, status)) in [
        ("s3", outcome!(s3)),
        ("kms", outcome!(kms)),
        ("iam", outcome!(iam)),
        ("ddb", outcome!(ddb)),
    ] {
        out.push((name, code, status));
    }
    out
}

fn rules_for_each(proxy: &FaultProxy, fault: Fault) {
    for (service, op) in [
        ("s3", "GetBucketPolicy"),
        ("kms", "GetKeyPolicy"),
        ("iam", "GetRole"),
        ("dynamodb", "GetItem"),
    ] {
        proxy.push(Rule::on(service, op).fault(fault.clone()).once());
    }
}

#[tokio::test]
async fn throttle_and_server_error_come_back_as_each_services_sdk_error() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws_no_retry(&proxy.endpoint()).await;

    rules_for_each(&proxy, Fault::Throttle);
    let got = one_of_each(&aws, &f).await;
    let codes: Vec<_> = got.iter().map(|(s, c, _)| (*s, c.as_deref())).collect();
    assert_eq!(
        codes,
        [
            ("s3", Some("SlowDown")),
            ("kms", Some("ThrottlingException")),
            ("iam", Some("Throttling")),
            ("ddb", Some("ProvisionedThroughputExceededException")),
        ]
    );
    let statuses: Vec<_> = got.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(statuses, [Some(503), Some(400), Some(400), Some(400)]);

    rules_for_each(&proxy, Fault::ServerError);
    let got = one_of_each(&aws, &f).await;
    let codes: Vec<_> = got.iter().map(|(s, c, _)| (*s, c.as_deref())).collect();
    assert_eq!(
        codes,
        [
            ("s3", Some("InternalError")),
            ("kms", Some("KMSInternalException")),
            ("iam", Some("ServiceFailure")),
            ("ddb", Some("InternalServerError")),
        ]
    );

    // The rules were used up (once each): the same calls now reach moto and succeed.
    let got = one_of_each(&aws, &f).await;
    let codes: Vec<_> = got.iter().map(|(s, c, _)| (*s, c.as_deref())).collect();
    assert_eq!(
        codes,
        [
            ("s3", Some("NoSuchBucketPolicy")), // moto's own error, passed through
            ("kms", None),
            ("iam", None),
            ("ddb", None),
        ]
    );

    let calls = proxy.calls();
    assert_eq!(calls.len(), 12);
    let faults: Vec<_> = calls.iter().map(|c| c.fault.as_deref()).collect();
    assert_eq!(&faults[..4], [Some("Throttle"); 4]);
    assert_eq!(&faults[4..8], [Some("ServerError"); 4]);
    assert_eq!(&faults[8..], [None; 4]);
    let statuses: Vec<_> = calls.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [503, 400, 400, 400, 500, 500, 500, 500, 404, 200, 200, 200]
    );
    assert!(
        calls[..8].iter().all(|c| !c.forwarded()),
        "faults are not forwarded"
    );
    assert!(calls[8..].iter().all(Call::forwarded));
}

#[tokio::test]
async fn modeled_errors_and_custom_codes_parse_as_the_sdk_types() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws_no_retry(&proxy.endpoint()).await;

    proxy.push(
        Rule::on("kms", "GetKeyPolicy")
            .fault(Fault::ServerError)
            .once(),
    );
    let e = aws
        .kms
        .get_key_policy()
        .key_id(&f.key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_kms_internal_exception(),
        "{e:?}"
    );

    proxy.push(Rule::on("iam", "GetRole").fault(Fault::ServerError).once());
    let e = aws
        .iam
        .get_role()
        .role_name(&f.role)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_service_failure_exception(),
        "{e:?}"
    );

    proxy.push(Rule::on("dynamodb", "GetItem").once());
    let e = aws
        .ddb
        .get_item()
        .table_name(&f.table)
        .key("LockId", AttributeValue::S("bucket/x".into()))
        .send()
        .await
        .unwrap_err();
    let se = e.as_service_error().unwrap();
    assert!(se.is_provisioned_throughput_exceeded_exception(), "{e:?}");
    assert_eq!(
        se.meta().message(),
        Some(
            "The level of configured provisioned throughput for the table was exceeded. \
         Consider increasing your provisioning level with the UpdateTable API."
        )
    );
    use aws_sdk_dynamodb::operation::RequestId as _;
    assert!(se.request_id().is_some_and(|id| !id.is_empty()), "{e:?}");

    proxy.push(
        Rule::on("iam", "CreateRole")
            .fault(Fault::Error(409, "EntityAlreadyExists".into()))
            .once(),
    );
    let e = aws
        .iam
        .create_role()
        .role_name(unique("never-made"))
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_entity_already_exists_exception(),
        "{e:?}"
    );

    proxy.push(
        Rule::on("dynamodb", "PutItem")
            .fault(Fault::Error(400, "ConditionalCheckFailedException".into()))
            .once(),
    );
    let e = aws
        .ddb
        .put_item()
        .table_name(&f.table)
        .item("LockId", AttributeValue::S("bucket/y".into()))
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_conditional_check_failed_exception(),
        "{e:?}"
    );

    // S3: the request id header is where the SDK looks for it.
    proxy.push(Rule::on("s3", "GetBucketPolicy").once());
    let e = aws
        .s3
        .get_bucket_policy()
        .bucket(&f.bucket)
        .send()
        .await
        .unwrap_err();
    let se = e.as_service_error().unwrap();
    assert_eq!(se.meta().code(), Some("SlowDown"));
    assert_eq!(
        se.meta().message(),
        Some("Please reduce your request rate.")
    );
    assert!(se.request_id().is_some_and(|id| !id.is_empty()), "{e:?}");
    assert_eq!(proxy.injected(), 6);
}

#[tokio::test]
async fn default_sdk_retry_rides_out_a_single_throttle_or_500_but_not_three() {
    let f = fixture().await;
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws(&proxy.endpoint()).await;

    rules_for_each(&proxy, Fault::Throttle);
    let got = one_of_each(&aws, &f).await;
    let codes: Vec<_> = got.iter().map(|(s, c, _)| (*s, c.as_deref())).collect();
    assert_eq!(
        codes,
        [
            ("s3", Some("NoSuchBucketPolicy")),
            ("kms", None),
            ("iam", None),
            ("ddb", None)
        ]
    );
    let summary = proxy.summary();
    for key in [
        "s3:GetBucketPolicy",
        "kms:GetKeyPolicy",
        "iam:GetRole",
        "dynamodb:GetItem",
    ] {
        assert_eq!(
            summary[key], 2,
            "{key}: one throttled, one retried: {summary:?}"
        );
    }
    assert_eq!(proxy.injected(), 4);
    proxy.take_calls();

    rules_for_each(&proxy, Fault::ServerError);
    let got = one_of_each(&aws, &f).await;
    assert!(got[1..].iter().all(|(_, c, _)| c.is_none()), "{got:?}");
    assert_eq!(proxy.calls().len(), 8, "each 500 retried once");
    proxy.take_calls();

    // The default is 3 attempts: three throttles in a row fail the call.
    proxy.push(Rule::on("kms", "GetKeyPolicy").times(3));
    let e = aws
        .kms
        .get_key_policy()
        .key_id(&f.key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"));
    assert_eq!(proxy.count("kms", "GetKeyPolicy"), 3);
}

#[tokio::test]
async fn operations_and_resources_are_recorded_by_name() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws(&proxy.endpoint()).await;
    let bucket = unique("names");
    create_bucket(&aws, &bucket).await;
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "A")).await;
    assert!(bucket_policy(&aws, &bucket).await.is_some());
    aws.s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let _ = aws.s3.get_bucket_encryption().bucket(&bucket).send().await;
    let _ = aws
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await;
    let _ = aws
        .s3
        .get_bucket_ownership_controls()
        .bucket(&bucket)
        .send()
        .await;
    aws.s3.head_bucket().bucket(&bucket).send().await.unwrap();
    aws.s3.list_buckets().send().await.unwrap();

    let (key_id, _) = create_key(&aws).await;
    aws.kms.describe_key().key_id(&key_id).send().await.unwrap();
    let kp = key_policy(&aws, &key_id).await;
    aws.kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(kp.to_string())
        .send()
        .await
        .unwrap();

    let role = unique("names-role");
    aws.iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();
    aws.iam.get_role().role_name(&role).send().await.unwrap();
    let inline = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "*"}]});
    aws.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("p")
        .policy_document(inline.to_string())
        .send()
        .await
        .unwrap();
    aws.iam
        .get_role_policy()
        .role_name(&role)
        .policy_name("p")
        .send()
        .await
        .unwrap();
    aws.iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    aws.iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name("p")
        .send()
        .await
        .unwrap();
    aws.iam.delete_role().role_name(&role).send().await.unwrap();

    let table = unique("names-locks");
    create_lock_table(&aws, &table).await;
    let lock_id = AttributeValue::S(format!("bucket/{bucket}"));
    aws.ddb
        .put_item()
        .table_name(&table)
        .item("LockId", lock_id.clone())
        .send()
        .await
        .unwrap();
    aws.ddb
        .get_item()
        .table_name(&table)
        .key("LockId", lock_id.clone())
        .send()
        .await
        .unwrap();
    aws.ddb
        .delete_item()
        .table_name(&table)
        .key("LockId", lock_id)
        .send()
        .await
        .unwrap();

    let calls = proxy.calls();
    let got: Vec<(&str, &str, Option<&str>)> = calls
        .iter()
        .map(|c| {
            (
                c.service.as_str(),
                c.operation.as_str(),
                c.resource.as_deref(),
            )
        })
        .collect();
    let (b, k, r, l) = (
        Some(bucket.as_str()),
        Some(key_id.as_str()),
        Some(role.as_str()),
        format!("bucket/{bucket}"),
    );
    let l = Some(l.as_str());
    assert_eq!(
        got,
        [
            ("s3", "CreateBucket", b),
            ("s3", "PutBucketPolicy", b),
            ("s3", "GetBucketPolicy", b),
            ("s3", "DeleteBucketPolicy", b),
            ("s3", "GetBucketEncryption", b),
            ("s3", "GetPublicAccessBlock", b),
            ("s3", "GetBucketOwnershipControls", b),
            ("s3", "HeadBucket", b),
            ("s3", "ListBuckets", None),
            ("kms", "CreateKey", None),
            ("kms", "DescribeKey", k),
            ("kms", "GetKeyPolicy", k),
            ("kms", "PutKeyPolicy", k),
            ("iam", "CreateRole", r),
            ("iam", "GetRole", r),
            ("iam", "PutRolePolicy", r),
            ("iam", "GetRolePolicy", r),
            ("iam", "ListRolePolicies", r),
            ("iam", "DeleteRolePolicy", r),
            ("iam", "DeleteRole", r),
            ("dynamodb", "CreateTable", Some(table.as_str())),
            ("dynamodb", "PutItem", l),
            ("dynamodb", "GetItem", l),
            ("dynamodb", "DeleteItem", l),
        ]
    );
    assert!(calls.iter().all(|c| c.fault.is_none() && c.forwarded()));
    assert_eq!(proxy.count("s3", "*"), 9);
    assert_eq!(proxy.count("iam", "PutRolePolicy|DeleteRolePolicy"), 2);
    assert_eq!(proxy.summary()["kms:GetKeyPolicy"], 1);

    // What the SDK sends: S3 subresources without x-id, ExpectedBucketOwner as a header (when
    // set), the bucket policy as a plain Content-Length body with a checksum header.
    let put = &calls[1];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, format!("/{bucket}/?policy"));
    assert_eq!(calls[2].path, format!("/{bucket}/?policy"));
    assert_eq!(put.header("transfer-encoding"), None, "{:?}", put.headers);
    assert_eq!(put.header("content-encoding"), None, "{:?}", put.headers);
    assert!(put.header("content-length").is_some());
    assert!(
        put.headers
            .iter()
            .any(|(k, _)| k.starts_with("x-amz-checksum-") || k == "content-md5"),
        "{:?}",
        put.headers
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&put.body).unwrap(),
        policy(&bucket, "A")
    );
    println!("PutBucketPolicy request headers: {:?}", put.headers);
}

#[tokio::test]
async fn lost_create_role_answer_takes_effect_and_the_sdk_retry_then_sees_entity_already_exists() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let direct = aws(&moto().endpoint).await;

    let role = unique("lost");
    proxy.push(
        Rule::on("iam", "CreateRole")
            .fault(Fault::LostAnswer)
            .once(),
    );
    let bare = aws_no_retry(&proxy.endpoint()).await;
    let e = bare
        .iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.raw_response().is_none(),
        "no answer reached the client: {e:?}"
    );
    assert!(
        matches!(e, aws_sdk_iam::error::SdkError::DispatchFailure(_)),
        "{e:?}"
    );
    let got = direct.iam.get_role().role_name(&role).send().await.unwrap();
    assert_eq!(
        got.role().unwrap().role_name(),
        role,
        "the role exists in moto"
    );
    let calls = proxy.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault.as_deref(), Some("LostAnswer"));
    assert_eq!((calls[0].status, calls[0].upstream_status), (0, Some(200)));

    // The default retry resends a request whose connection was reset: the retried CreateRole
    // finds the role the lost attempt made (issue 7, item 2).
    let role2 = unique("lost");
    proxy.push(
        Rule::on("iam", "CreateRole")
            .fault(Fault::LostAnswer)
            .once(),
    );
    let retrying = aws(&proxy.endpoint()).await;
    let e = retrying
        .iam
        .create_role()
        .role_name(&role2)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_entity_already_exists_exception(),
        "{e:?}"
    );
    assert_eq!(proxy.count("iam", "CreateRole"), 2);
}

#[tokio::test]
async fn reset_before_changes_nothing_upstream() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let direct = aws(&moto().endpoint).await;
    let bucket = unique("reset");
    create_bucket(&direct, &bucket).await;

    proxy.push(
        Rule::on("s3", "PutBucketPolicy")
            .fault(Fault::ResetBefore)
            .once(),
    );
    let bare = aws_no_retry(&proxy.endpoint()).await;
    let e = bare
        .s3
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(policy(&bucket, "A").to_string())
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(e, aws_sdk_s3::error::SdkError::DispatchFailure(_)),
        "{e:?}"
    );
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        None,
        "nothing written"
    );
    let calls = proxy.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].fault.as_deref(), Some("ResetBefore"));
    assert!(!calls[0].forwarded());
    assert_eq!(calls[0].status, 0);

    // The default retry rides out one reset.
    proxy.push(
        Rule::on("s3", "PutBucketPolicy")
            .fault(Fault::ResetBefore)
            .once(),
    );
    let retrying = aws(&proxy.endpoint()).await;
    put_bucket_policy(&retrying, &bucket, &policy(&bucket, "A")).await;
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        Some(policy(&bucket, "A"))
    );
    let calls = proxy.take_calls();
    let forwarded: Vec<_> = calls.iter().map(Call::forwarded).collect();
    assert_eq!(forwarded, [false, true]);
}

#[tokio::test]
async fn stale_read_answers_with_the_previous_read() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws(&proxy.endpoint()).await;
    let bucket = unique("stale");
    create_bucket(&aws, &bucket).await;
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "A")).await;

    proxy.push(
        Rule::on("s3", "GetBucketPolicy")
            .fault(Fault::StaleRead)
            .once(),
    );
    // No previous read: forwarded, and the rule is not used up.
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "A"))
    );
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "B")).await;
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "A")),
        "stale"
    );
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "B")),
        "fresh"
    );

    let gets: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetBucketPolicy")
        .map(|c| (c.forwarded(), c.fault))
        .collect();
    assert_eq!(
        gets,
        [
            (true, None),
            (false, Some("StaleRead".to_string())),
            (true, None)
        ]
    );

    // A read of another bucket has no previous answer of its own.
    let other = unique("stale");
    create_bucket(&aws, &other).await;
    proxy.push(Rule::on("s3", "GetBucketPolicy").fault(Fault::StaleRead));
    assert_eq!(bucket_policy(&aws, &other).await, None);
    put_bucket_policy(&aws, &other, &policy(&other, "C")).await;
    assert_eq!(bucket_policy(&aws, &other).await, None, "stale: none yet");
    proxy.clear();
    assert_eq!(bucket_policy(&aws, &other).await, Some(policy(&other, "C")));

    // Key policies too (GetKeyPolicy is remembered per key).
    let (key_id, _) = create_key(&aws).await;
    let before = key_policy(&aws, &key_id).await;
    let mut after = before.clone();
    after["Statement"][0]["Sid"] = "Changed".into();
    aws.kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(after.to_string())
        .send()
        .await
        .unwrap();
    proxy.push(
        Rule::on("kms", "GetKeyPolicy")
            .fault(Fault::StaleRead)
            .once(),
    );
    assert_eq!(key_policy(&aws, &key_id).await, before);
    assert_eq!(key_policy(&aws, &key_id).await, after);
}

#[tokio::test]
async fn stale_after_write_shows_the_version_before_the_latest_write_for_the_window() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws(&proxy.endpoint()).await;
    let bucket = unique("window");
    create_bucket(&aws, &bucket).await;
    let window = Duration::from_millis(1500);
    proxy.push(Rule::any(Fault::StaleAfterWrite(window)));

    // The first write replaces no policy: the writer's own read-back shows none yet.
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "A")).await;
    assert_eq!(bucket_policy(&aws, &bucket).await, None, "before A");
    // A second write inside the first one's window: reads show the version before it (A).
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "B")).await;
    let wrote_b = Instant::now();
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "A")),
        "before B"
    );
    tokio::time::sleep((wrote_b + window).saturating_duration_since(Instant::now())).await;
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "B")),
        "settled"
    );
    // Deleting the policy is a write too.
    aws.s3
        .delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "B")),
        "before the delete"
    );
    // A write the rule does not pick ends the window: reads after it are fresh.
    proxy.clear();
    proxy.push(Rule::any(Fault::StaleAfterWrite(window)).skip(1));
    put_bucket_policy(&aws, &bucket, &policy(&bucket, "C")).await;
    assert_eq!(
        bucket_policy(&aws, &bucket).await,
        Some(policy(&bucket, "C")),
        "no window"
    );

    // Key policies, named by ARN or id alike.
    let (key_id, key_arn) = create_key(&aws).await;
    let before = key_policy(&aws, &key_id).await;
    let mut after = before.clone();
    after["Statement"][0]["Sid"] = "Changed".into();
    aws.kms
        .put_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .policy(after.to_string())
        .send()
        .await
        .unwrap();
    let wrote = Instant::now();
    assert_eq!(key_policy(&aws, &key_id).await, before, "by id");
    assert_eq!(key_policy(&aws, &key_arn).await, before, "by ARN");
    tokio::time::sleep((wrote + window).saturating_duration_since(Instant::now())).await;
    assert_eq!(key_policy(&aws, &key_arn).await, after);

    // Only the reads answered stale carry the fault; the writes went through untouched.
    let stale: Vec<String> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.fault.is_some())
        .map(|c| {
            assert!(!c.forwarded(), "{c:?}");
            c.key()
        })
        .collect();
    assert_eq!(
        stale,
        [
            "s3:GetBucketPolicy",
            "s3:GetBucketPolicy",
            "s3:GetBucketPolicy",
            "kms:GetKeyPolicy",
            "kms:GetKeyPolicy",
        ]
    );
    // What the harness reads straight from moto was never stale.
    let direct = common::aws(&moto().endpoint).await;
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        Some(policy(&bucket, "C"))
    );
}

/// Which of `n` DescribeKey calls the rules fault, with the PRNG at `seed`.
async fn faulted_pattern(proxy: &FaultProxy, aws: &Aws, key_id: &str, seed: u64) -> Vec<bool> {
    proxy.clear();
    proxy.take_calls();
    proxy.set_seed(seed);
    proxy.push(Rule::any(Fault::Throttle).probability(0.3));
    let mut errors = Vec::new();
    for _ in 0..40 {
        let r = aws.kms.describe_key().key_id(key_id).send().await;
        errors.push(r.is_err());
    }
    let pattern: Vec<bool> = proxy.calls().iter().map(|c| c.fault.is_some()).collect();
    assert_eq!(
        pattern, errors,
        "the faulted calls are the ones that failed"
    );
    pattern
}

#[tokio::test]
async fn probability_with_a_fixed_seed_injects_a_deterministic_subset() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws_no_retry(&proxy.endpoint()).await;
    let (key_id, _) = create_key(&aws).await;

    let a = faulted_pattern(&proxy, &aws, &key_id, 42).await;
    let b = faulted_pattern(&proxy, &aws, &key_id, 42).await;
    let c = faulted_pattern(&proxy, &aws, &key_id, 7).await;
    assert_eq!(proxy.seed(), 7);
    assert_eq!(a, b, "same seed, same calls: same faults");
    assert_ne!(a, c, "another seed, other faults");
    let n = a.iter().filter(|f| **f).count();
    assert!((4..=20).contains(&n), "about 30% of 40: {n}");

    // skip and times.
    proxy.clear();
    proxy.take_calls();
    proxy.push(Rule::on("kms", "DescribeKey").skip(1).times(2));
    let mut ok = Vec::new();
    for _ in 0..4 {
        ok.push(aws.kms.describe_key().key_id(&key_id).send().await.is_ok());
    }
    assert_eq!(ok, [true, false, false, true]);
}

#[tokio::test]
async fn latency_delays_and_forwards() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let aws = aws_no_retry(&proxy.endpoint()).await;
    let (key_id, _) = create_key(&aws).await;
    proxy.push(Rule::on("kms", "DescribeKey").fault(Fault::Latency(Duration::from_millis(400))));
    let t = Instant::now();
    aws.kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let call = proxy.calls().pop().unwrap();
    assert_eq!(call.fault.as_deref(), Some("Latency(400ms)"));
    assert!(call.forwarded() && call.status == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_gates_are_reached_and_released() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let direct = aws(&moto().endpoint).await;
    let through = aws(&proxy.endpoint()).await;
    let bucket = unique("gate");
    create_bucket(&direct, &bucket).await;

    // Before: nothing reaches moto until the gate opens.
    let gate = Gate::new();
    proxy.push(Rule::on("s3", "PutBucketPolicy").fault(Fault::PauseBefore(gate.clone())));
    let (s3, b) = (through.s3.clone(), bucket.clone());
    let task = tokio::spawn(async move {
        s3.put_bucket_policy()
            .bucket(&b)
            .policy(policy(&b, "A").to_string())
            .send()
            .await
    });
    assert!(gate.wait_reached(WAIT));
    assert_eq!(gate.reached_by().as_deref(), Some("s3:PutBucketPolicy"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished());
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        None,
        "held before moto"
    );
    gate.release();
    task.await.unwrap().unwrap();
    assert!(gate.wait_done(WAIT));
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        Some(policy(&bucket, "A"))
    );
    // A gate holds once: the next call passes.
    put_bucket_policy(&through, &bucket, &policy(&bucket, "B")).await;
    let last = proxy.calls().pop().unwrap();
    assert_eq!(
        (last.operation.as_str(), last.fault.as_deref(), last.status),
        ("PutBucketPolicy", None, 200)
    );
    proxy.clear();

    // After: moto has it, the client waits for the answer.
    let gate = Gate::new();
    proxy.push(Rule::on("s3", "DeleteBucketPolicy").fault(Fault::PauseAfter(gate.clone())));
    let (s3, b) = (through.s3.clone(), bucket.clone());
    let task = tokio::spawn(async move { s3.delete_bucket_policy().bucket(&b).send().await });
    assert!(gate.wait_reached(WAIT));
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        None,
        "took effect in moto"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "the answer is held");
    gate.release();
    task.await.unwrap().unwrap();

    let faults: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.fault.is_some())
        .map(|c| (c.operation, c.fault.unwrap(), c.status, c.upstream_status))
        .collect();
    assert_eq!(
        faults,
        [
            (
                "PutBucketPolicy".into(),
                "PauseBefore".into(),
                200,
                Some(200)
            ),
            (
                "DeleteBucketPolicy".into(),
                "PauseAfter".into(),
                204,
                Some(204)
            ),
        ],
        "the second PutBucketPolicy passed the spent gate untouched"
    );
}

/// A raw, SigV4-looking request for `service` (moto checks no signatures), on its own
/// connection, which the caller can close to play a killed process.
fn raw_request(proxy: &FaultProxy, service: &str, head: &str, body: &[u8]) -> TcpStream {
    let addr = proxy.endpoint().trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=00"
    );
    let text = format!("{head}\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\r\n");
    conn.write_all(text.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    conn
}

fn read_all(mut conn: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn gates_drop_what_they_hold_when_the_client_goes_away() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let direct = aws(&moto().endpoint).await;
    let bucket = unique("killed");
    create_bucket(&direct, &bucket).await;
    let body = policy(&bucket, "A").to_string();
    let head = format!(
        "PUT /{bucket}?policy HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );

    // Before: the client leaves while held; the request never reaches moto.
    let gate = Gate::new();
    proxy.push(Rule::on("s3", "PutBucketPolicy").fault(Fault::PauseBefore(gate.clone())));
    let conn = raw_request(&proxy, "s3", &head, body.as_bytes());
    assert!(gate.wait_reached(WAIT));
    drop(conn);
    assert!(gate.wait_dropped(WAIT));
    gate.release(); // too late: nothing to let through
    assert!(poll(WAIT, || proxy.count("s3", "PutBucketPolicy") == 1));
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        None,
        "never forwarded"
    );
    let call = proxy.take_calls().pop().unwrap();
    assert_eq!((call.status, call.upstream_status), (0, None));
    assert_eq!(call.resource.as_deref(), Some(bucket.as_str()));
    proxy.clear();

    // After: it took effect in moto, the answer is dropped.
    let gate = Gate::new();
    proxy.push(Rule::on("s3", "PutBucketPolicy").fault(Fault::PauseAfter(gate.clone())));
    let conn = raw_request(&proxy, "s3", &head, body.as_bytes());
    assert!(gate.wait_reached(WAIT));
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        Some(policy(&bucket, "A"))
    );
    conn.shutdown(std::net::Shutdown::Write).unwrap(); // the client is done sending
    assert!(gate.wait_dropped(WAIT));
    assert_eq!(read_all(conn), "", "no answer");
    assert!(poll(WAIT, || proxy.count("s3", "PutBucketPolicy") == 1));
    let call = proxy.take_calls().pop().unwrap();
    assert_eq!((call.status, call.upstream_status), (0, Some(200)));
}

#[tokio::test]
async fn chunked_request_bodies_are_forwarded_whole() {
    let proxy = FaultProxy::start(&moto().endpoint);
    let direct = aws(&moto().endpoint).await;
    let bucket = unique("chunked");
    create_bucket(&direct, &bucket).await;
    let body = policy(&bucket, "Chunked").to_string();
    let (a, b) = body.split_at(body.len() / 2);
    let chunked = format!("{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n", a.len(), b.len());
    let head = format!(
        "PUT /{bucket}?policy HTTP/1.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close"
    );
    let answer = read_all(raw_request(&proxy, "s3", &head, chunked.as_bytes()));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        bucket_policy(&direct, &bucket).await,
        Some(policy(&bucket, "Chunked"))
    );
    let call = proxy.calls().pop().unwrap();
    assert_eq!(call.operation, "PutBucketPolicy");
    assert_eq!(call.body, body.as_bytes());
}

#[tokio::test]
async fn query_protocol_faults_for_sts_and_cloudformation() {
    let proxy = FaultProxy::start(&moto().endpoint);
    proxy.push(Rule::service("sts").times(1));
    proxy.push(
        Rule::service("cloudformation")
            .fault(Fault::ServerError)
            .times(1),
    );
    for (service, action, code, status) in [
        ("sts", "GetCallerIdentity", "Throttling", 400),
        ("cloudformation", "DescribeStacks", "InternalFailure", 500),
    ] {
        let body = format!("Action={action}&Version=2011-06-15");
        let head = format!(
            "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close",
            body.len()
        );
        let answer = read_all(raw_request(&proxy, service, &head, body.as_bytes()));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains(&format!("<Code>{code}</Code>")), "{answer}");
        assert!(answer.contains("<ErrorResponse"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("x-amzn-requestid: "),
            "{answer}"
        );
        assert!(answer.contains("content-type: text/xml"), "{answer}");
    }
    let got: Vec<_> = proxy.calls().into_iter().map(|c| c.key()).collect();
    assert_eq!(
        got,
        ["sts:GetCallerIdentity", "cloudformation:DescribeStacks"]
    );
}
