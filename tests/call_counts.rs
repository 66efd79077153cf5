//! The AWS calls each event makes, counted by the recording proxy between the built function and
//! moto (`common::proxy`, with no faults). Counts are deterministic, so they are asserted
//! exactly, in order: a change that adds a call has to change this file, and README's table.

mod common;

use std::time::Duration;

use common::proxy::FaultProxy;
use common::{Aws, Function, InvocationResult, ResponseServer, RuntimeApi, cfn_event};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// The function behind the recording proxy, with or without the lock table.
struct Rig {
    proxy: FaultProxy,
    runtime: RuntimeApi,
    responses: ResponseServer,
    _function: Function,
    aws: Aws,
}

impl Rig {
    async fn new(lock_table: bool) -> Rig {
        let aws = common::aws(&common::moto().endpoint).await;
        let proxy = FaultProxy::start(&common::moto().endpoint);
        let runtime = RuntimeApi::start();
        let endpoint = proxy.endpoint();
        let mut env = vec![("AWS_ENDPOINT_URL", endpoint.clone())];
        if lock_table {
            let table = common::unique("vg-counts");
            common::create_lock_table(&aws, &table).await;
            env.push(("VENDOR_GRANTS_LOCK_TABLE", table));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let function = Function::spawn(&runtime, &env);
        Rig {
            proxy,
            runtime,
            responses: ResponseServer::start(),
            _function: function,
            aws,
        }
    }

    /// Delivers one event; returns its answer and the calls it made, as `service:Operation`.
    fn run(
        &self,
        kind: &str,
        stack: &str,
        physical: Option<&str>,
        props: &Value,
    ) -> (Value, Vec<String>) {
        self.proxy.take_calls();
        let old = (kind == "Update").then(|| props.clone());
        let url = self.responses.url("cfn/answer");
        let event = cfn_event(kind, &url, stack, "Grant", physical, props.clone(), old);
        let before = self.responses.requests().len();
        let id = self.runtime.invoke(event, DEADLINE);
        let result = self
            .runtime
            .wait_result(&id, DEADLINE + Duration::from_secs(5));
        assert!(
            matches!(result, Some(InvocationResult::Response(_))),
            "{result:?}"
        );
        let answers = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        let answer = answers[before].json();
        assert_eq!(answer["Status"], "SUCCESS", "{answer}");
        let calls = self.proxy.take_calls().iter().map(|c| c.key()).collect();
        (answer, calls)
    }

    async fn bucket(&self) -> String {
        let bucket = common::unique("vg-counts");
        common::create_bucket(&self.aws, &bucket).await;
        bucket
    }

    async fn key(&self) -> String {
        let out = self.aws.kms.create_key().send().await.unwrap();
        out.key_metadata().unwrap().arn().unwrap().to_string()
    }
}

fn physical(answer: &Value) -> String {
    answer["PhysicalResourceId"].as_str().unwrap().to_string()
}

fn calls(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Bucket and key policy: the key resolved, both read, both written, both read back.
const WRITE_BOTH: [&str; 7] = [
    "kms:DescribeKey",
    "s3:GetBucketPolicy",
    "kms:GetKeyPolicy",
    "s3:PutBucketPolicy",
    "kms:PutKeyPolicy",
    "s3:GetBucketPolicy",
    "kms:GetKeyPolicy",
];

/// An Update that changes nothing: the key resolved and both policies read; nothing written,
/// so nothing to verify.
const UNCHANGED_BOTH: [&str; 3] = ["kms:DescribeKey", "s3:GetBucketPolicy", "kms:GetKeyPolicy"];

#[tokio::test(flavor = "multi_thread")]
async fn bucket_and_key_policy_grant() {
    let rig = Rig::new(false).await;
    let (bucket, key) = (rig.bucket().await, rig.key().await);
    let stack = common::unique("counts");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key});

    let (created, made) = rig.run("Create", &stack, None, &props);
    assert_eq!(made, calls(&WRITE_BOTH), "Create");
    let id = physical(&created);

    let (_, made) = rig.run("Update", &stack, Some(&id), &props);
    assert_eq!(made, calls(&UNCHANGED_BOTH), "Update that changes nothing");

    let mut read = props.clone();
    read["Access"] = json!("read");
    let (_, made) = rig.run("Update", &stack, Some(&id), &read);
    assert_eq!(
        made,
        calls(&WRITE_BOTH),
        "Update of Access (both policies change)"
    );

    // The grant held the only statements, so the bucket policy is deleted, not put.
    let (_, made) = rig.run("Delete", &stack, Some(&id), &read);
    let mut delete = calls(&WRITE_BOTH);
    delete[3] = "s3:DeleteBucketPolicy".into();
    assert_eq!(made, delete, "Delete");
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_policy_only_grant() {
    let rig = Rig::new(false).await;
    let bucket = rig.bucket().await;
    let stack = common::unique("counts");
    let props = json!({"Vendor": "telus", "BucketName": bucket});

    let (created, made) = rig.run("Create", &stack, None, &props);
    let write = calls(&[
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
        "s3:GetBucketPolicy",
    ]);
    assert_eq!(made, write, "Create");
    let id = physical(&created);

    let (_, made) = rig.run("Update", &stack, Some(&id), &props);
    assert_eq!(
        made,
        calls(&["s3:GetBucketPolicy"]),
        "Update that changes nothing"
    );

    let (_, made) = rig.run("Delete", &stack, Some(&id), &props);
    let delete = calls(&[
        "s3:GetBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:GetBucketPolicy",
    ]);
    assert_eq!(made, delete, "Delete");

    // A second Delete (a retried rollback, say) finds nothing of the grant: one read.
    let (_, made) = rig.run("Delete", &stack, Some(&id), &props);
    assert_eq!(
        made,
        calls(&["s3:GetBucketPolicy"]),
        "Delete of a grant already gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn role_mode_grant() {
    let rig = Rig::new(false).await;
    let (bucket, key) = (rig.bucket().await, rig.key().await);
    let stack = common::unique("counts");
    let role = common::unique("VendorGrant-counts");
    let props = json!({"Vendor": "scale-ai", "BucketName": bucket, "KmsKeyArn": key,
        "ExternalId": "ext-counts", "RoleName": role});

    // Role mode adds: the bucket checked before a role is made for it, the role looked up,
    // created, its inline policy put and read back. The role's own policy carries the access,
    // and the key policy delegates to IAM (moto's default), so both policies are only read.
    let (created, made) = rig.run("Create", &stack, None, &props);
    let create = calls(&[
        "kms:DescribeKey",
        "s3:GetBucketPolicy",
        "iam:GetRole",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "s3:GetBucketPolicy",
        "kms:GetKeyPolicy",
    ]);
    assert_eq!(made, create, "Create");
    let id = physical(&created);

    let (_, made) = rig.run("Delete", &stack, Some(&id), &props);
    let delete = calls(&[
        "kms:DescribeKey",
        "s3:GetBucketPolicy",
        "kms:GetKeyPolicy",
        "iam:GetRole",
        "iam:ListRolePolicies",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
    ]);
    assert_eq!(made, delete, "Delete");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_table_adds_a_lease_and_a_write_record_per_policy() {
    let rig = Rig::new(true).await;
    let (bucket, key) = (rig.bucket().await, rig.key().await);
    let stack = common::unique("counts");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key});

    // Per policy: the lease taken (PutItem), the last write's record read (GetItem), the write
    // recorded as soon as it is made, before the read-backs (PutItem), and the lease released
    // (DeleteItem); then the grant's registry record (PutItem).
    let (created, made) = rig.run("Create", &stack, None, &props);
    let writes = [
        "s3:PutBucketPolicy",
        "dynamodb:PutItem",
        "kms:PutKeyPolicy",
        "dynamodb:PutItem",
        "s3:GetBucketPolicy",
        "kms:GetKeyPolicy",
    ];
    assert_eq!(made, leased(false, &writes, "dynamodb:PutItem"), "Create");
    let id = physical(&created);

    // Nothing written: no write to record; the registry record is read first (what the grant
    // wrote, and for which stack) and put again.
    let (_, made) = rig.run("Update", &stack, Some(&id), &props);
    assert_eq!(
        made,
        leased(true, &[], "dynamodb:PutItem"),
        "Update that changes nothing"
    );

    // Delete: the grant's statements out of both policies, then its registry record.
    let (_, made) = rig.run("Delete", &stack, Some(&id), &props);
    let writes = [
        "s3:DeleteBucketPolicy",
        "dynamodb:PutItem",
        "kms:PutKeyPolicy",
        "dynamodb:PutItem",
        "s3:GetBucketPolicy",
        "kms:GetKeyPolicy",
    ];
    assert_eq!(made, leased(true, &writes, "dynamodb:DeleteItem"), "Delete");
}

/// A bucket-and-key event under the lock table: for an Update or Delete (`reads_record`) the
/// grant's registry record read, the key resolved, both leases taken, each policy's write record
/// read then the policy itself, `writes` (each write and its record, then the read-backs), both
/// leases released, then `registry` (the grant's record put or deleted).
fn leased(reads_record: bool, writes: &[&str], registry: &str) -> Vec<String> {
    let mut all = if reads_record {
        vec!["dynamodb:GetItem"]
    } else {
        vec![]
    };
    all.extend([
        "kms:DescribeKey",
        "dynamodb:PutItem",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "s3:GetBucketPolicy",
        "dynamodb:GetItem",
        "kms:GetKeyPolicy",
    ]);
    all.extend(writes);
    all.extend(["dynamodb:DeleteItem", "dynamodb:DeleteItem", registry]);
    calls(&all)
}
