//! `vendor-grants audit` against moto: grants made by the built function with the lock table
//! (the registry), owned by stacks that exist in moto's CloudFormation; then another writer
//! widens a statement, drops one, removes a grant's statements, plants a statement with a
//! vendor-grants-shaped Sid, deletes an owning stack, and a bucket is encrypted with a key the
//! grant has nothing in. The audit must tell each apart, `--fix` must restore exactly what the
//! registry says and leave foreign statements and orphans alone, `--remove-orphans` must remove
//! only orphans, and after every grant's Delete the audit reports nothing. Also: no registry,
//! and the scheduled event through the built function.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{
    Aws, Function, InvocationResult, ResponseServer, RuntimeApi, bucket_policy, cfn_event,
    create_bucket, put_bucket_policy,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const EXTERNAL_ID: &str = "ext-id-never-printed-42";

struct Rig {
    aws: Aws,
    cfn: aws_sdk_cloudformation::Client,
    runtime: RuntimeApi,
    responses: ResponseServer,
    function: Function,
    table: String,
    /// The KMS HMAC key the function signs registry records with.
    registry_key: String,
}

impl Rig {
    async fn new() -> Rig {
        let endpoint = common::moto().endpoint.clone();
        let aws = common::aws(&endpoint).await;
        let cfn = aws_sdk_cloudformation::Client::new(&common::sdk_config(&endpoint).await);
        let table = common::unique("vg-audit");
        common::create_lock_table(&aws, &table).await;
        let registry_key = hmac_key(&aws.kms).await;
        let runtime = RuntimeApi::start();
        let function = Function::spawn(
            &runtime,
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("VENDOR_GRANTS_LOCK_TABLE", table.as_str()),
                ("VENDOR_GRANTS_REGISTRY_KEY", registry_key.as_str()),
            ],
        );
        Rig {
            aws,
            cfn,
            runtime,
            responses: ResponseServer::start(),
            function,
            table,
            registry_key,
        }
    }

    /// A stack in moto's CloudFormation; its real StackId.
    async fn stack(&self) -> String {
        let template =
            json!({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}});
        self.cfn
            .create_stack()
            .stack_name(common::unique("audit-stack"))
            .template_body(template.to_string())
            .send()
            .await
            .unwrap()
            .stack_id()
            .unwrap()
            .to_string()
    }

    /// Delivers an event; returns the answer, which must be SUCCESS.
    fn send(&self, kind: &str, stack: &str, physical: Option<&str>, props: &Value) -> Value {
        let before = self.responses.requests().len();
        let url = self.responses.url("cfn/answer");
        let event = cfn_event(kind, &url, stack, "Grant", physical, props.clone(), None);
        let id = self.runtime.invoke(event, DEADLINE);
        let result = self.runtime.wait_result(&id, DEADLINE);
        assert!(
            matches!(result, Some(InvocationResult::Response(_))),
            "{result:?}"
        );
        let answers = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        let answer = answers[before].json();
        assert_eq!(
            answer["Status"],
            "SUCCESS",
            "{answer}\n{}",
            self.function.logs()
        );
        answer
    }

    /// A new bucket (named from `prefix`) with a TELUS grant created on it by a new stack; the
    /// bucket and the Create's answer.
    async fn telus_grant(&self, prefix: &str) -> (String, Value) {
        let bucket = common::unique(prefix);
        create_bucket(&self.aws, &bucket).await;
        let stack = self.stack().await;
        let props = json!({"Vendor": "telus", "BucketName": bucket});
        let answer = self.send("Create", &stack, None, &props);
        (bucket, answer)
    }

    /// Runs the CLI; (exit code, stdout parsed as JSON when it is).
    fn audit(&self, args: &[&str], registry: bool) -> (i32, Value, String) {
        self.audit_via(&common::moto().endpoint, args, registry)
    }

    /// Runs the CLI against `endpoint` (moto, or a fault proxy in front of it).
    fn audit_via(&self, endpoint: &str, args: &[&str], registry: bool) -> (i32, Value, String) {
        let env: &[(&str, &str)] = if registry {
            &[
                ("VENDOR_GRANTS_LOCK_TABLE", &self.table),
                ("VENDOR_GRANTS_REGISTRY_KEY", &self.registry_key),
            ]
        } else {
            &[]
        };
        audit_cli(endpoint, common::REGION, args, env)
    }

    /// Runs the CLI with the rig's registry and the variables `env` too.
    fn audit_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
        let mut all = vec![
            ("VENDOR_GRANTS_LOCK_TABLE", self.table.as_str()),
            ("VENDOR_GRANTS_REGISTRY_KEY", self.registry_key.as_str()),
        ];
        all.extend_from_slice(env);
        audit_cli(&common::moto().endpoint, common::REGION, args, &all)
    }

    /// The registry item of `grant`: (Record, Mac).
    async fn record(&self, grant: &str) -> (Value, Option<String>) {
        let out = self
            .aws
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("LockId", AttributeValue::S(format!("grant#{grant}")))
            .send()
            .await
            .unwrap();
        let item = out.item().unwrap();
        let record = serde_json::from_str(item["Record"].as_s().unwrap()).unwrap();
        (record, item.get("Mac").map(|m| m.as_s().unwrap().clone()))
    }

    /// Writes the registry item of `grant` as someone who can write the table would.
    async fn put_record(&self, grant: &str, record: &Value, mac: Option<&str>) {
        let mut put = self
            .aws
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("LockId", AttributeValue::S(format!("grant#{grant}")))
            .item("Record", AttributeValue::S(record.to_string()));
        if let Some(mac) = mac {
            put = put.item("Mac", AttributeValue::S(mac.to_string()));
        }
        put.send().await.unwrap();
    }

    /// The MAC of `record` with the registry key, as only the function may make it.
    async fn sign(&self, grant: &str, record: &Value) -> String {
        let message = vendor_grants::aws::registry::mac_message(grant, &record.to_string());
        let out = self
            .aws
            .kms
            .generate_mac()
            .key_id(&self.registry_key)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_sdk_kms::primitives::Blob::new(message))
            .send()
            .await
            .unwrap();
        out.mac()
            .unwrap()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Runs the CLI in `region` with `env`; (exit code, stdout as JSON, stdout and stderr).
fn audit_cli(
    endpoint: &str,
    region: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vendor-grants"));
    cmd.arg("audit")
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", region)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains(EXTERNAL_ID) && !stderr.contains(EXTERNAL_ID));
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}{stderr}"),
    )
}

/// A KMS HMAC key (as the deploy template's RegistryKey); its ARN.
async fn hmac_key(kms: &aws_sdk_kms::Client) -> String {
    common::hmac_key(kms).await
}

fn gid(answer: &Value) -> String {
    answer["Data"]["GrantId"].as_str().unwrap().to_string()
}

fn physical(answer: &Value) -> String {
    answer["PhysicalResourceId"].as_str().unwrap().to_string()
}

/// Grant id -> (status, findings joined).
fn statuses(report: &Value) -> BTreeMap<String, (String, String)> {
    report["Grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let findings: Vec<String> = g["Findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            (
                g["GrantId"].as_str().unwrap().to_string(),
                (
                    g["Status"].as_str().unwrap().to_string(),
                    findings.join(" | "),
                ),
            )
        })
        .collect()
}

fn foreign(bucket: &str) -> Value {
    json!({"Sid": "CorpAuditors", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/audit/*")})
}

/// Edits the bucket policy as another writer would.
async fn edit(aws: &Aws, bucket: &str, f: impl FnOnce(&mut Vec<Value>)) {
    let mut policy = bucket_policy(aws, bucket)
        .await
        .unwrap_or(json!({"Version": "2012-10-17", "Statement": []}));
    let statements = policy["Statement"].as_array_mut().unwrap();
    f(statements);
    if statements.is_empty() {
        aws.s3
            .delete_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    } else {
        put_bucket_policy(aws, bucket, &policy).await;
    }
}

fn sid_of(s: &Value) -> &str {
    s["Sid"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_tells_drift_apart_fixes_it_and_removes_only_orphans() {
    let rig = Rig::new().await;
    let shared = common::unique("vg-audit-shared");
    let (lonely, gone_stack_bucket, encrypted) = (
        common::unique("vg-audit-missing"),
        common::unique("vg-audit-orphan"),
        common::unique("vg-audit-sse"),
    );
    for b in [&shared, &lonely, &gone_stack_bucket, &encrypted] {
        create_bucket(&rig.aws, b).await;
    }
    put_bucket_policy(
        &rig.aws,
        &shared,
        &json!({"Version": "2012-10-17", "Statement": [foreign(&shared)]}),
    )
    .await;
    let (_, key) = common::create_key(&rig.aws).await;
    let (_, sse_key) = common::create_key(&rig.aws).await;
    rig.aws
        .s3
        .put_bucket_encryption()
        .bucket(&encrypted)
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                                .kms_master_key_id(&sse_key)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Only this test's buckets: other tests share the emulator, and their grants are orphans in
    // this test's registry.
    let buckets = [&shared, &lonely, &gone_stack_bucket, &encrypted];
    let audit1 = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        for b in buckets {
            args.extend(["--bucket", b.as_str()]);
        }
        rig.audit(&args, true)
    };
    let custom = |bucket: &str, account: &str| json!({"Vendor": "custom", "BucketName": bucket, "Access": "read", "VendorPrincipal": account});
    let mut grants = Vec::new();
    let mut make = async |props: Value| {
        let stack = rig.stack().await;
        let answer = rig.send("Create", &stack, None, &props);
        grants.push((stack.clone(), physical(&answer), props));
        (stack, gid(&answer))
    };
    let (_, ok) = make(json!({"Vendor": "telus", "BucketName": shared, "KmsKeyArn": key})).await;
    let (_, widened) = make(custom(&shared, "111122223333")).await;
    let (_, dropped) = make(custom(&shared, "222233334444")).await;
    let (_, missing) = make(custom(&lonely, "333344445555")).await;
    let (orphan_stack, orphaned) = make(custom(&gone_stack_bucket, "444455556666")).await;
    let (_, incomplete) = make(custom(&encrypted, "555566667777")).await;
    let role = common::unique("VendorGrant-audit");
    let (_, role_grant) = make(json!({"Vendor": "scale-ai", "BucketName": shared,
        "ExternalId": EXTERNAL_ID, "RoleName": role}))
    .await;

    let (code, report, text) = audit1(&["--json"]);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    for id in [&ok, &widened, &dropped, &missing, &orphaned, &role_grant] {
        assert_eq!(st[id].0, "ok", "{id}: {text}");
    }
    assert_eq!(st[&incomplete].0, "incomplete", "{text}");
    assert!(
        st[&incomplete].1.contains("list objects but not read"),
        "{text}"
    );

    // Another writer at work.
    let planted_id = "0123456789abcdef";
    let planted = json!({"Sid": format!("VG{planted_id}BucketObjects"), "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::666677778888:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{shared}/*")});
    let before_edit = bucket_policy(&rig.aws, &shared).await.unwrap();
    edit(&rig.aws, &shared, |st| {
        for s in st.iter_mut() {
            if sid_of(s) == format!("VG{widened}BucketObjects") {
                s["Action"] = json!(["s3:GetObject", "s3:PutObject"]);
            }
        }
        st.retain(|s| sid_of(s) != format!("VG{dropped}BucketList"));
        st.push(planted.clone());
    })
    .await;
    edit(&rig.aws, &lonely, |st| {
        st.retain(|s| !sid_of(s).contains(&missing))
    })
    .await;
    rig.cfn
        .delete_stack()
        .stack_name(&orphan_stack)
        .send()
        .await
        .unwrap();
    // Someone swaps the role's ExternalId.
    let trust = rig
        .aws
        .iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    let trust = common::url_decode(trust.role().unwrap().assume_role_policy_document().unwrap());
    rig.aws
        .iam
        .update_assume_role_policy()
        .role_name(&role)
        .policy_document(trust.replace(EXTERNAL_ID, "someone-elses-id"))
        .send()
        .await
        .unwrap();

    let (code, report, text) = audit1(&["--json"]);
    assert_eq!(code, 1);
    let st = statuses(&report);
    assert_eq!(st[&ok].0, "ok", "{text}");
    assert_eq!(st[&role_grant].0, "drifted", "{text}");
    assert!(st[&role_grant].1.contains("ExternalId"), "{text}");
    assert!(!text.contains("someone-elses-id"), "{text}");
    assert_eq!(st[&widened].0, "drifted", "{text}");
    assert!(
        st[&widened].1.contains("widened") && st[&widened].1.contains("s3:PutObject"),
        "{text}"
    );
    assert_eq!(st[&dropped].0, "drifted", "{text}");
    assert!(
        st[&dropped]
            .1
            .contains(&format!("VG{dropped}BucketList is missing")),
        "{text}"
    );
    assert_eq!(st[&missing].0, "missing", "{text}");
    assert_eq!(st[&orphaned].0, "orphaned", "{text}");
    assert!(st[&orphaned].1.contains("no longer exists"), "{text}");
    assert_eq!(st[planted_id].0, "orphaned", "{text}");
    assert_eq!(st[&incomplete].0, "incomplete", "{text}");
    assert_eq!(report["Summary"]["drifted"], 3, "{text}");
    assert_eq!(report["Summary"]["orphaned"], 2, "{text}");
    // The table says the same to people.
    let (_, _, table) = audit1(&[]);
    assert!(
        table.contains("drifted") && table.contains("    - statement"),
        "{table}"
    );

    // --fix restores exactly what the registry says; foreign and orphaned statements stay.
    let (code, report, text) = audit1(&["--json", "--fix"]);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    for id in [&widened, &dropped, &missing] {
        assert_eq!(st[id].0, "ok", "{id} after --fix: {text}");
    }
    assert_eq!(st[&orphaned].0, "orphaned");
    assert_eq!(st[planted_id].0, "orphaned");
    // The trust policy cannot be put back: its ExternalId is the stack's.
    assert_eq!(st[&role_grant].0, "drifted", "{text}");
    let fixed = report["Fixed"].as_array().unwrap();
    assert_eq!(fixed.len(), 4, "{text}");
    let role_fix = fixed
        .iter()
        .find(|f| f["GrantId"] == json!(role_grant))
        .unwrap();
    assert!(
        role_fix["Done"].to_string().contains("could not restore"),
        "{text}"
    );
    let after_fix = bucket_policy(&rig.aws, &shared).await.unwrap();
    let mut expected = before_edit["Statement"].as_array().unwrap().clone();
    expected.push(planted.clone());
    let sids = |v: &[Value]| {
        let mut s: Vec<String> = v.iter().map(|s| sid_of(s).to_string()).collect();
        s.sort();
        s
    };
    assert_eq!(
        sids(after_fix["Statement"].as_array().unwrap()),
        sids(&expected)
    );
    assert!(
        after_fix["Statement"]
            .as_array()
            .unwrap()
            .contains(&foreign(&shared))
    );

    // --remove-orphans without --yes only says what it would remove.
    let (code, report, text) = audit1(&["--json", "--remove-orphans"]);
    assert_eq!(code, 1, "{text}");
    let would: Vec<&Value> = report["WouldRemove"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .map(|w| &w["GrantId"])
        .collect();
    assert!(
        would.contains(&&json!(orphaned)) && would.contains(&&json!(planted_id)),
        "{text}"
    );
    assert_eq!(statuses(&report)[&orphaned].0, "orphaned", "{text}");
    assert!(bucket_policy(&rig.aws, &gone_stack_bucket).await.is_some());
    let (_, _, table) = audit1(&["--remove-orphans"]);
    assert!(
        table.contains("nothing was removed: run again with --yes"),
        "{table}"
    );

    // --remove-orphans --yes removes only the orphans.
    let (code, report, text) = audit1(&["--json", "--remove-orphans", "--yes"]);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    assert!(
        !st.contains_key(&orphaned) && !st.contains_key(planted_id),
        "{text}"
    );
    assert_eq!(bucket_policy(&rig.aws, &gone_stack_bucket).await, None);
    let after = bucket_policy(&rig.aws, &shared).await.unwrap();
    assert_eq!(
        sids(after["Statement"].as_array().unwrap()),
        sids(before_edit["Statement"].as_array().unwrap())
    );

    // --emit: the expected access only.
    let (_, rules, text) = audit1(&["--emit", "access-analyzer-archive-rules"]);
    let rules = rules.as_array().unwrap_or_else(|| panic!("{text}"));
    assert!(
        rules
            .iter()
            .any(|r| r["ruleName"] == format!("vendor-grants-{ok}-s3")),
        "{text}"
    );
    let (_, grantees, _) = audit1(&["--emit", "config-grantee-check"]);
    assert!(
        grantees["awsPrincipals"]
            .as_str()
            .unwrap()
            .contains("475757276268")
    );

    // Every grant deleted: nothing to report.
    for (stack, physical, props) in &grants {
        if physical.contains(&orphaned) {
            continue;
        }
        rig.send("Delete", stack, Some(physical), props);
    }
    let (code, report, text) = audit1(&["--json"]);
    let left: Vec<_> = report["Grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            [&shared, &lonely, &gone_stack_bucket, &encrypted]
                .iter()
                .any(|b| g["BucketName"] == json!(b))
        })
        .collect();
    assert!(left.is_empty(), "{text}");
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_cannot_be_read_is_reported_and_its_grants_are_not_judged() {
    use common::proxy::{Fault, FaultProxy, Rule};
    let rig = Rig::new().await;
    let (bucket, answer) = rig.telus_grant("vg-audit-denied").await;
    // A grant on another bucket: out of scope with --bucket, so neither listed nor judged missing.
    let (_, other_grant) = rig.telus_grant("vg-audit-other").await;
    // The bucket's own policy denies the audit, say.
    let proxy = FaultProxy::start(&common::moto().endpoint);
    proxy.push(
        Rule::on("s3", "GetBucketPolicy")
            .fault(Fault::Error(403, "AccessDenied: Access Denied".to_string())),
    );
    let (code, report, text) =
        rig.audit_via(&proxy.endpoint(), &["--json", "--bucket", &bucket], true);
    assert_eq!(code, 1, "{text}");
    assert!(
        report["Unreadable"][format!("bucket:{bucket}")]
            .as_str()
            .is_some_and(|why| why.contains("AccessDenied")),
        "{text}"
    );
    let st = statuses(&report);
    let (status, findings) = &st[&gid(&answer)];
    assert_eq!(status, "drifted", "{text}");
    assert!(findings.contains("could not be read"), "{text}");
    assert!(!findings.contains("missing"), "{text}");
    // Without the fault, the same grant is ok. (The exit code then depends on other tests'
    // grants in keys and roles, orphans in this test's registry.)
    let (_, report, text) = rig.audit(&["--json", "--bucket", &bucket], true);
    assert_eq!(statuses(&report)[&gid(&answer)].0, "ok", "{text}");
    assert!(report.get("Unreadable").is_none(), "{text}");
    assert!(
        !statuses(&report).contains_key(&gid(&other_grant)),
        "{text}"
    );
    assert!(
        report["Grants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["BucketName"] == json!(bucket)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_registry_grants_are_unregistered_and_nothing_is_changed() {
    let rig = Rig::new().await;
    let (bucket, answer) = rig.telus_grant("vg-audit-noreg").await;
    let (code, report, text) = rig.audit(&["--json", "--bucket", &bucket], false);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    assert_eq!(st[&gid(&answer)].0, "unregistered", "{text}");
    // Other tests' grants in keys and roles show up too; this one is found by its id.
    let entry = report["Grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["GrantId"] == json!(gid(&answer)))
        .unwrap();
    assert_eq!(entry["Vendor"], "telus", "{text}");
    assert_eq!(entry["BucketName"], json!(bucket), "{text}");
    let policy = bucket_policy(&rig.aws, &bucket).await;
    for flag in ["--fix", "--remove-orphans"] {
        let (code, _, text) = rig.audit(&[flag, "--bucket", &bucket], false);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("registry"), "{text}");
    }
    assert_eq!(bucket_policy(&rig.aws, &bucket).await, policy);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_event_audits_and_publishes_metrics_without_answering_cloudformation() {
    let rig = Rig::new().await;
    let (bucket, answer) = rig.telus_grant("vg-audit-sched").await;
    edit(&rig.aws, &bucket, |st| {
        st.retain(|s| !sid_of(s).ends_with("BucketList"))
    })
    .await;
    let before = rig.responses.requests().len();
    let id = rig
        .runtime
        .invoke(json!({"vendor-grants": "audit", "fix": false}), DEADLINE);
    let result = rig.runtime.wait_result(&id, DEADLINE);
    let Some(InvocationResult::Response(body)) = result else {
        panic!("{result:?}\n{}", rig.function.logs());
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Summary"]["drifted"], 1, "{body}");
    // The function's stdout is read by another thread: wait for the line rather than race it.
    assert!(
        rig.function
            .wait_logs("\"CloudWatchMetrics\"", Duration::from_secs(5)),
        "no EMF line:\n{}",
        rig.function.logs()
    );
    let logs = rig.function.logs();
    let emf = logs
        .lines()
        .find(|l| l.contains("\"CloudWatchMetrics\""))
        .unwrap_or_else(|| panic!("no EMF line:\n{logs}"));
    let emf: Value = serde_json::from_str(emf).unwrap();
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "VendorGrants"
    );
    assert_eq!(emf["drifted"], 1);
    assert!(
        logs.contains("audit finding") && logs.contains(&gid(&answer)),
        "{logs}"
    );
    assert_eq!(
        rig.responses.requests().len(),
        before,
        "no CloudFormation answer"
    );

    // With fix: the drift is repaired.
    let id = rig
        .runtime
        .invoke(json!({"vendor-grants": "audit", "fix": true}), DEADLINE);
    let result = rig.runtime.wait_result(&id, DEADLINE);
    let Some(InvocationResult::Response(body)) = result else {
        panic!("{result:?}");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Summary"]["drifted"], 0, "{body}");
    assert_eq!(body["Summary"]["ok"], 1, "{body}");
}

/// The emitted archive rules that match `finding` (a finding shaped as Access Analyzer's
/// finding event shows it).
fn archiving(rules: &Value, finding: &Value) -> Vec<String> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| vendor_grants::audit::output::rule_matches(r, finding))
        .map(|r| r["ruleName"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A finding as the finding event's `detail` shows it
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-eventbridge.html).
fn finding(resource: &str, kind: &str, principal: &str, action: &[&str]) -> Value {
    json!({"accountId": "123456789012", "action": action, "condition": {},
        "id": "22222222-dcba-4444-dcba-333333333333", "isDeleted": false, "isPublic": false,
        "principal": {"AWS": principal}, "region": common::REGION, "resource": resource,
        "resourceType": kind, "status": "ACTIVE", "version": "1.0"})
}

fn rules_of<'a>(rules: &'a Value, grant: &str) -> Vec<&'a Value> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["ruleName"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("vendor-grants-{grant}-")))
        })
        .collect()
}

async fn inline_policies(aws: &Aws, role: &str) -> Vec<String> {
    aws.iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_widened_role_is_drifted_and_fix_leaves_what_is_not_vendor_grants() {
    let rig = Rig::new().await;
    let (b1, b2) = (
        common::unique("vg-audit-role1"),
        common::unique("vg-audit-role2"),
    );
    for b in [&b1, &b2] {
        create_bucket(&rig.aws, b).await;
    }
    let role = common::unique("VendorGrant-widen");
    let props = |bucket: &str| {
        json!({"Vendor": "scale-ai", "BucketName": bucket, "Mode": "role",
            "ExternalId": EXTERNAL_ID, "RoleName": role})
    };
    // Two grants share the role, each with its own inline policy.
    let mut grants = Vec::new();
    for b in [&b1, &b2] {
        let stack = rig.stack().await;
        let answer = rig.send("Create", &stack, None, &props(b));
        grants.push((stack, physical(&answer), gid(&answer), props(b)));
    }
    let (a, b) = (grants[0].2.clone(), grants[1].2.clone());
    let audit = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["--bucket", b1.as_str(), "--bucket", b2.as_str()]);
        rig.audit(&args, true)
    };
    let (code, report, text) = audit(&["--json"]);
    assert_eq!(code, 0, "{text}");
    let st = statuses(&report);
    assert_eq!(
        (st[&a].0.as_str(), st[&b].0.as_str()),
        ("ok", "ok"),
        "{text}"
    );

    // The rules: the role exactly, nothing on the bucket for the vendor's own account.
    let (_, rules, text) = audit(&["--emit", "access-analyzer-archive-rules"]);
    let role_arn = rig
        .aws
        .iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    for g in [&a, &b] {
        let mine = rules_of(&rules, g);
        assert_eq!(mine.len(), 1, "{text}");
        assert_eq!(
            mine[0]["ruleName"],
            format!("vendor-grants-{g}-iam"),
            "{text}"
        );
        assert_eq!(
            mine[0]["filter"]["resource"]["eq"],
            json!([role_arn]),
            "{text}"
        );
    }
    let scale = "307185671274";
    let own = finding(&role_arn, "AWS::IAM::Role", scale, &["sts:AssumeRole"]);
    assert_eq!(archiving(&rules, &own).len(), 2, "{rules}");
    let admin = finding(
        &format!("{role_arn}-Admin"),
        "AWS::IAM::Role",
        scale,
        &["sts:AssumeRole"],
    );
    assert!(archiving(&rules, &admin).is_empty(), "{rules}");
    let direct = finding(
        &format!("arn:aws:s3:::{b1}"),
        "AWS::S3::Bucket",
        scale,
        &["s3:GetObject"],
    );
    assert!(archiving(&rules, &direct).is_empty(), "{rules}");

    // Someone widens the role: a second inline policy, an attached managed policy, and the
    // first grant's own inline policy opened up.
    let everything = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    .to_string();
    rig.aws
        .iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("Extra")
        .policy_document(&everything)
        .send()
        .await
        .unwrap();
    let managed = rig
        .aws
        .iam
        .create_policy()
        .policy_name(common::unique("vg-audit-s3-all"))
        .policy_document(&everything)
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    rig.aws
        .iam
        .attach_role_policy()
        .role_name(&role)
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    rig.aws
        .iam
        .put_role_policy()
        .role_name(&role)
        .policy_name(format!("VendorGrant-{a}"))
        .policy_document(&everything)
        .send()
        .await
        .unwrap();

    let (code, report, text) = audit(&["--json"]);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    for g in [&a, &b] {
        assert_eq!(st[g].0, "drifted", "{text}");
        assert!(st[g].1.contains("inline policy Extra"), "{text}");
        assert!(
            st[g]
                .1
                .contains(&format!("managed policy {managed} attached")),
            "{text}"
        );
    }
    assert!(st[&a].1.contains("differs from what was written"), "{text}");
    let (_, rules, text) = audit(&["--emit", "access-analyzer-archive-rules"]);
    assert!(
        rules_of(&rules, &a).is_empty() && rules_of(&rules, &b).is_empty(),
        "{text}"
    );
    assert!(archiving(&rules, &own).is_empty(), "{rules}");

    // --fix puts the grant's own policy back and leaves the rest for a person.
    let (code, report, text) = audit(&["--json", "--fix"]);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    for g in [&a, &b] {
        assert_eq!(st[g].0, "drifted", "{text}");
        assert!(st[g].1.contains("inline policy Extra"), "{text}");
    }
    assert!(
        !st[&a].1.contains("differs from what was written"),
        "{text}"
    );
    let fixed = report["Fixed"].to_string();
    assert!(fixed.contains("left for a person"), "{text}");
    let mut names = inline_policies(&rig.aws, &role).await;
    names.sort();
    let mut want = vec![
        "Extra".to_string(),
        format!("VendorGrant-{a}"),
        format!("VendorGrant-{b}"),
    ];
    want.sort();
    assert_eq!(names, want);
    let attached = rig
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    assert_eq!(
        attached.attached_policies()[0].policy_arn(),
        Some(managed.as_str())
    );

    // A person removes them: the grants are ok again.
    rig.aws
        .iam
        .detach_role_policy()
        .role_name(&role)
        .policy_arn(&managed)
        .send()
        .await
        .unwrap();
    rig.aws
        .iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name("Extra")
        .send()
        .await
        .unwrap();
    let (code, report, text) = audit(&["--json"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(statuses(&report)[&a].0, "ok", "{text}");
    for (stack, physical, _, props) in &grants {
        rig.send("Delete", stack, Some(physical), props);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_statement_for_the_vendor_makes_the_grant_drifted_and_gets_it_no_rule() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-audit-wider");
    create_bucket(&rig.aws, &bucket).await;
    let vendor = "121212121212";
    let stack = rig.stack().await;
    let props = json!({"Vendor": "custom", "BucketName": bucket, "Access": "read",
        "Prefix": "datasets/", "VendorPrincipal": vendor});
    let answer = rig.send("Create", &stack, None, &props);
    let grant = gid(&answer);
    let audit = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["--bucket", bucket.as_str()]);
        rig.audit(&args, true)
    };
    let (code, report, text) = audit(&["--json"]);
    assert_eq!(
        (code, statuses(&report)[&grant].0.as_str()),
        (0, "ok"),
        "{text}"
    );
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let (_, rules, text) = audit(&["--emit", "access-analyzer-archive-rules"]);
    let mine = rules_of(&rules, &grant);
    assert_eq!(mine.len(), 1, "{text}");
    assert_eq!(
        mine[0]["filter"],
        json!({"resourceType": {"eq": ["AWS::S3::Bucket"]}, "resource": {"eq": [bucket_arn]},
            "principal.AWS": {"eq": [vendor]}, "isPublic": {"eq": ["false"]}}),
        "{text}"
    );
    let own = finding(&bucket_arn, "AWS::S3::Bucket", vendor, &["s3:GetObject"]);
    assert_eq!(
        archiving(&rules, &own),
        vec![format!("vendor-grants-{grant}-s3")]
    );

    // Someone gives the same vendor Put and Delete on the whole bucket by hand.
    let hand = json!({"Sid": "VendorWrite", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{vendor}:root")},
        "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": format!("{bucket_arn}/*")});
    edit(&rig.aws, &bucket, |st| st.push(hand.clone())).await;
    let (code, report, text) = audit(&["--json"]);
    assert_eq!(code, 1, "{text}");
    let (status, findings) = &statuses(&report)[&grant];
    assert_eq!(status, "drifted", "{text}");
    assert!(
        findings.contains(&format!(
            "statement VendorWrite in the bucket policy of {bucket} also gives \
             arn:aws:iam::{vendor}:root s3:PutObject, s3:DeleteObject on {bucket_arn}/*"
        )),
        "{text}"
    );
    // No rule for it, so the wider finding (the same principal and bucket, other actions)
    // still alerts.
    let (_, rules, text) = audit(&["--emit", "access-analyzer-archive-rules"]);
    assert!(rules_of(&rules, &grant).is_empty(), "{text}");
    let wider = finding(
        &bucket_arn,
        "AWS::S3::Bucket",
        vendor,
        &["s3:DeleteObject", "s3:PutObject"],
    );
    assert!(archiving(&rules, &wider).is_empty(), "{rules}");

    // --fix leaves the foreign statement exactly as it is, and says so.
    let (code, report, text) = audit(&["--json", "--fix"]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(statuses(&report)[&grant].0, "drifted", "{text}");
    assert!(
        report["Fixed"].to_string().contains("left for a person"),
        "{text}"
    );
    let policy = bucket_policy(&rig.aws, &bucket).await.unwrap();
    assert!(
        policy["Statement"].as_array().unwrap().contains(&hand),
        "{policy}"
    );

    // Removed by a person: ok again.
    edit(&rig.aws, &bucket, |st| {
        st.retain(|s| sid_of(s) != "VendorWrite")
    })
    .await;
    let (code, report, text) = audit(&["--json"]);
    assert_eq!(
        (code, statuses(&report)[&grant].0.as_str()),
        (0, "ok"),
        "{text}"
    );
    rig.send("Delete", &stack, Some(&physical(&answer)), &props);
}

/// A stack in moto's CloudFormation holding a resource whose PhysicalResourceId carries `grant`
/// (as a `Custom::VendorGrant`'s does; moto cannot run custom resources); its StackId.
async fn holding_stack(rig: &Rig, grant: &str) -> String {
    let template = json!({"Resources": {"Grant": {"Type": "AWS::SSM::Parameter",
        "Properties": {"Name": format!("vendor-grants-{grant}"), "Type": "String", "Value": "x"}}}});
    rig.cfn
        .create_stack()
        .stack_name(common::unique("holding-stack"))
        .template_body(template.to_string())
        .send()
        .await
        .unwrap()
        .stack_id()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn another_regions_role_grant_and_a_pre_registry_grant_are_never_orphans() {
    let rig = Rig::new().await;
    let endpoint = common::moto().endpoint.clone();
    // A Scale role-mode grant of the us-east-1 deployment.
    let bucket = common::unique("vg-audit-region");
    create_bucket(&rig.aws, &bucket).await;
    let role = common::unique("VendorGrant-region");
    let stack = rig.stack().await;
    let answer = rig.send(
        "Create",
        &stack,
        None,
        &json!({"Vendor": "scale-ai", "BucketName": bucket, "Mode": "role",
            "ExternalId": EXTERNAL_ID, "RoleName": role}),
    );
    let role_grant = gid(&answer);
    let policy_name = format!("VendorGrant-{role_grant}");
    assert_eq!(
        inline_policies(&rig.aws, &role).await,
        vec![policy_name.clone()]
    );

    // vendor-grants in eu-west-1 of the same account, with its own lock table.
    let eu = common::sdk_config(&endpoint)
        .await
        .into_builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let eu_table = common::unique("vg-audit-eu");
    {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        aws_sdk_dynamodb::Client::new(&eu)
            .create_table()
            .table_name(&eu_table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("LockId")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("LockId")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }
    let eu_key = hmac_key(&aws_sdk_kms::Client::new(&eu)).await;
    let eu_env = [
        ("VENDOR_GRANTS_LOCK_TABLE", eu_table.as_str()),
        ("VENDOR_GRANTS_REGISTRY_KEY", eu_key.as_str()),
    ];
    for args in [
        &["--json"][..],
        &["--json", "--remove-orphans", "--yes"][..],
    ] {
        let (_, report, text) = audit_cli(&endpoint, "eu-west-1", args, &eu_env);
        assert!(report.is_object(), "{text}");
        // The grant is us-east-1's: eu-west-1 does not judge it, let alone remove it.
        assert!(!statuses(&report).contains_key(&role_grant), "{text}");
        assert!(!text.contains(&role) || !text.contains("orphan"), "{text}");
    }
    assert_eq!(
        inline_policies(&rig.aws, &role).await,
        vec![policy_name.clone()]
    );
    let (code, report, text) = rig.audit(&["--json", "--bucket", &bucket], true);
    assert_eq!(statuses(&report)[&role_grant].0, "ok", "{text}");
    assert_eq!(code, 0, "{text}");

    // A grant made before the lock table was configured: no record, but a live stack holds it.
    let (old_bucket, old) = rig.telus_grant("vg-audit-prereg").await;
    let old_grant = gid(&old);
    rig.aws
        .ddb
        .delete_item()
        .table_name(&rig.table)
        .key("LockId", AttributeValue::S(format!("grant#{old_grant}")))
        .send()
        .await
        .unwrap();
    let holder = holding_stack(&rig, &old_grant).await;
    let before = bucket_policy(&rig.aws, &old_bucket).await.unwrap();
    let (code, report, text) = rig.audit(
        &[
            "--json",
            "--remove-orphans",
            "--yes",
            "--bucket",
            &old_bucket,
        ],
        true,
    );
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    assert_eq!(st[&old_grant].0, "unregistered", "{text}");
    assert!(st[&old_grant].1.contains("live stack"), "{text}");
    assert!(report.get("Fixed").is_none(), "{text}");
    assert_eq!(bucket_policy(&rig.aws, &old_bucket).await.unwrap(), before);

    // Once no stack holds it, it is an orphan, and --remove-orphans --yes removes it.
    rig.cfn
        .delete_stack()
        .stack_name(&holder)
        .send()
        .await
        .unwrap();
    let (_, report, text) = rig.audit(&["--json", "--bucket", &old_bucket], true);
    assert_eq!(statuses(&report)[&old_grant].0, "orphaned", "{text}");
    let (_, report, text) = rig.audit(
        &[
            "--json",
            "--remove-orphans",
            "--yes",
            "--bucket",
            &old_bucket,
        ],
        true,
    );
    assert!(!statuses(&report).contains_key(&old_grant), "{text}");
    assert_eq!(bucket_policy(&rig.aws, &old_bucket).await, None);
}

/// Every Sid and principal in `bucket`'s policy.
async fn principals_in(aws: &Aws, bucket: &str) -> String {
    bucket_policy(aws, bucket)
        .await
        .map(|p| p.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn fix_never_writes_an_edited_record_and_checks_the_allow_lists() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-audit-edited");
    create_bucket(&rig.aws, &bucket).await;
    let stack = rig.stack().await;
    let props = json!({"Vendor": "custom", "BucketName": bucket, "Access": "read",
        "VendorPrincipal": "111122223333"});
    let grant = gid(&rig.send("Create", &stack, None, &props));
    let (original, mac) = rig.record(&grant).await;
    let mac = mac.expect("the function signs its records");
    // Someone drops the grant's object statement: it is drifted, and --fix would put it back.
    let drop = |st: &mut Vec<Value>| st.retain(|s| !sid_of(s).ends_with("BucketObjects"));
    edit(&rig.aws, &bucket, drop).await;
    let drifted = bucket_policy(&rig.aws, &bucket).await.unwrap();

    // Someone who can write the lock table points the record at their account, with writes.
    let mut edited = original.clone();
    let text = edited.to_string().replace("111122223333", "999988887777");
    edited = serde_json::from_str(&text).unwrap();
    for s in edited["BucketStatements"].as_array_mut().unwrap() {
        if sid_of(s).ends_with("BucketObjects") {
            s["Action"] = json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]);
        }
    }
    let allowed = [("VENDOR_GRANTS_ALLOWED_PRINCIPALS", "111122223333")];
    let audit = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--json", "--bucket", bucket.as_str()];
        args.extend_from_slice(extra);
        rig.audit_with(&args, env)
    };

    // With the MAC kept: tampered, judged from what is live only, and never repaired.
    rig.put_record(&grant, &edited, Some(&mac)).await;
    let (code, report, text) = audit(&["--fix"], &allowed);
    assert_eq!(code, 1, "{text}");
    let st = statuses(&report);
    assert_eq!(st[&grant].0, "tampered", "{text}");
    assert_eq!(report["Grants"][0]["Record"], "tampered", "{text}");
    assert!(report.get("Fixed").is_none(), "{text}");
    assert_eq!(bucket_policy(&rig.aws, &bucket).await.unwrap(), drifted);
    // The scheduled audit with fix on does not repair it either.
    let id = rig
        .runtime
        .invoke(json!({"vendor-grants": "audit", "fix": true}), DEADLINE);
    let result = rig.runtime.wait_result(&id, DEADLINE);
    let Some(InvocationResult::Response(body)) = result else {
        panic!("{result:?}\n{}", rig.function.logs());
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["Summary"]["tampered"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(bucket_policy(&rig.aws, &bucket).await.unwrap(), drifted);
    assert!(
        !principals_in(&rig.aws, &bucket)
            .await
            .contains("999988887777")
    );

    // With the MAC stripped (as an earlier version wrote records): unverified, not repaired.
    rig.put_record(&grant, &edited, None).await;
    let (_, report, text) = audit(&["--fix"], &allowed);
    assert_eq!(report["Grants"][0]["Record"], "unverified", "{text}");
    assert!(text.contains("could not repair"), "{text}");
    assert_eq!(bucket_policy(&rig.aws, &bucket).await.unwrap(), drifted);

    // A garbled record does not stop the audit: it is tampered.
    let garbled = json!({"GrantId": grant, "Nonsense": true});
    rig.put_record(&grant, &garbled, Some(&mac)).await;
    let (_, report, text) = audit(&["--fix"], &allowed);
    assert_eq!(statuses(&report)[&grant].0, "tampered", "{text}");
    assert_eq!(bucket_policy(&rig.aws, &bucket).await.unwrap(), drifted);

    // The record as the function wrote it, but the allow-list no longer allows its principal:
    // a Create would be refused, so --fix is too.
    rig.put_record(&grant, &original, Some(&mac)).await;
    let (_, report, text) = audit(
        &["--fix"],
        &[("VENDOR_GRANTS_ALLOWED_PRINCIPALS", "222233334444")],
    );
    assert_eq!(statuses(&report)[&grant].0, "drifted", "{text}");
    assert!(
        text.contains("could not repair") && text.contains("VENDOR_GRANTS_ALLOWED_PRINCIPALS"),
        "{text}"
    );
    assert_eq!(bucket_policy(&rig.aws, &bucket).await.unwrap(), drifted);

    // Allowed: the grant is rebuilt as Create would write it.
    let (code, report, text) = audit(&["--fix"], &allowed);
    assert_eq!(statuses(&report)[&grant].0, "ok", "{text}");
    assert_eq!(code, 0, "{text}");
    let policy = principals_in(&rig.aws, &bucket).await;
    assert!(
        policy.contains(&format!("VG{grant}BucketObjects")),
        "{policy}"
    );
    assert!(
        !policy.contains("PutObject") && !policy.contains("999988887777"),
        "{policy}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fix_never_takes_an_inline_policy_name_from_the_record() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-audit-guard");
    create_bucket(&rig.aws, &bucket).await;
    let role = common::unique("VendorGrant-guard");
    let stack = rig.stack().await;
    let grant = gid(&rig.send(
        "Create",
        &stack,
        None,
        &json!({"Vendor": "scale-ai", "BucketName": bucket, "Mode": "role",
            "ExternalId": EXTERNAL_ID, "RoleName": role}),
    ));
    let own = format!("VendorGrant-{grant}");
    // The security team's own guardrail on the role.
    let guardrail = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Guard",
        "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}]});
    rig.aws
        .iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("SecOpsGuardrail")
        .policy_document(guardrail.to_string())
        .send()
        .await
        .unwrap();
    let guardrail_now = async || {
        let out = rig
            .aws
            .iam
            .get_role_policy()
            .role_name(&role)
            .policy_name("SecOpsGuardrail")
            .send()
            .await
            .unwrap();
        serde_json::from_str::<Value>(&common::url_decode(out.policy_document())).unwrap()
    };
    // The grant's own policy is gone: --fix would put it back.
    rig.aws
        .iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name(&own)
        .send()
        .await
        .unwrap();
    let (original, _) = rig.record(&grant).await;
    let mut edited = original.clone();
    edited["Role"]["PermissionsPolicyName"] = json!("SecOpsGuardrail");
    edited["Role"]["PermissionsPolicy"] = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    let audit = || rig.audit(&["--json", "--fix", "--bucket", &bucket], true);

    // Edited, MAC kept: tampered; nothing on the role is written.
    let (_, mac) = rig.record(&grant).await;
    rig.put_record(&grant, &edited, mac.as_deref()).await;
    let (_, report, text) = audit();
    assert_eq!(statuses(&report)[&grant].0, "tampered", "{text}");
    assert_eq!(guardrail_now().await, guardrail);
    assert_eq!(
        inline_policies(&rig.aws, &role).await,
        vec!["SecOpsGuardrail".to_string()]
    );

    // Even a record that verifies (signed here with the test's own rights, which the deploy
    // template's key policy gives the function alone) cannot name the policy --fix writes, nor
    // what it holds: a document other than Create's is not written...
    let mac = rig.sign(&grant, &edited).await;
    rig.put_record(&grant, &edited, Some(&mac)).await;
    let (_, report, text) = audit();
    assert_ne!(statuses(&report)[&grant].0, "ok", "{text}");
    assert!(text.contains("differs from what its record says"), "{text}");
    assert_eq!(guardrail_now().await, guardrail);
    assert_eq!(
        inline_policies(&rig.aws, &role).await,
        vec!["SecOpsGuardrail".to_string()]
    );

    // ...and with the document as Create writes it, only the grant's own name is written.
    let mut renamed = original.clone();
    renamed["Role"]["PermissionsPolicyName"] = json!("SecOpsGuardrail");
    let mac = rig.sign(&grant, &renamed).await;
    rig.put_record(&grant, &renamed, Some(&mac)).await;
    let (_, _, text) = audit();
    assert!(
        text.contains(&format!("restored inline policy {own}")),
        "{text}"
    );
    assert_eq!(guardrail_now().await, guardrail);
    let mut names = inline_policies(&rig.aws, &role).await;
    names.sort();
    assert_eq!(names, vec!["SecOpsGuardrail".to_string(), own]);
}

/// Suspending a vendor by taking it off the provider's AllowedVendors also stops the scheduled
/// audit's repairs from putting its grant back after someone took the statements out by hand:
/// the grant stays as it is, reported, with the setting named; other repairs go on.
#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_fix_does_not_restore_a_vendor_taken_off_the_allow_list() {
    let rig = Rig::new().await;
    let (bucket, answer) = rig.telus_grant("vg-audit-suspended").await;
    // An incident responder takes TELUS's statements out.
    edit(&rig.aws, &bucket, |st| {
        st.retain(|s| !sid_of(s).starts_with(&format!("VG{}", gid(&answer))))
    })
    .await;
    // The provider now allows scale-ai only (AllowedVendors), and runs the scheduled fix.
    let endpoint = common::moto().endpoint.clone();
    let runtime = RuntimeApi::start();
    let suspended = Function::spawn(
        &runtime,
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("VENDOR_GRANTS_LOCK_TABLE", rig.table.as_str()),
            ("VENDOR_GRANTS_REGISTRY_KEY", rig.registry_key.as_str()),
            ("VENDOR_GRANTS_ALLOWED_VENDORS", "scale-ai"),
        ],
    );
    let id = runtime.invoke(json!({"vendor-grants": "audit", "fix": true}), DEADLINE);
    let result = runtime.wait_result(&id, DEADLINE);
    let Some(InvocationResult::Response(body)) = result else {
        panic!("{result:?}\n{}", suspended.logs());
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["Summary"]["missing"], 1,
        "still missing after the fix: {body}"
    );
    // What the fix did per grant is logged ("audit fix"): the refusal names the setting.
    assert!(
        suspended.wait_logs("could not repair", Duration::from_secs(5)),
        "{}",
        suspended.logs()
    );
    let logs = suspended.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("could not repair"))
        .unwrap_or_default();
    assert!(
        line.contains("AllowedVendors") && line.contains(&gid(&answer)),
        "the refusal names the setting and the grant: {line}"
    );
    let left = common::bucket_policy(&rig.aws, &bucket).await;
    let sids: Vec<String> = left
        .as_ref()
        .and_then(|p| p["Statement"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| sid_of(s).to_string())
        .collect();
    assert!(
        !sids
            .iter()
            .any(|s| s.starts_with(&format!("VG{}", gid(&answer)))),
        "TELUS's statements stay out: {sids:?}"
    );
    // The provider that still allows TELUS would put them back (the usual repair).
    let id = rig
        .runtime
        .invoke(json!({"vendor-grants": "audit", "fix": true}), DEADLINE);
    let result = rig.runtime.wait_result(&id, DEADLINE);
    assert!(
        matches!(result, Some(InvocationResult::Response(_))),
        "{result:?}"
    );
    let policy = common::bucket_policy(&rig.aws, &bucket).await.unwrap();
    assert!(
        policy.to_string().contains(&format!("VG{}", gid(&answer))),
        "{policy}"
    );
}
