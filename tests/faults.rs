//! The built function under AWS faults, injected by the proxy between it and moto
//! (`common::proxy`): throttling through whole lifecycles, a lost CreateRole answer, a lease that
//! could not be released, another writer, a stale read-back, policy reads that show the version
//! before the latest write for a window after each write (four grants at once through three
//! processes; a read-back that never settles), and a crash just before and just after each write
//! followed by redelivery of the same event. Seeds are printed; set `VG_FAULT_SEEDS=1,2,3` (and
//! `VG_STALE_SEEDS` for the stale windows) to run others.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Gate, Rule};
use common::{
    Aws, Function, InvocationResult, ResponseServer, RuntimeApi, bucket_policy, cfn_event,
    create_bucket, key_policy, put_bucket_policy, sids, statement_ids,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);
const ACCOUNT: &str = common::ACCOUNT_ID;

/// The function behind the fault proxy, with the lock table on.
struct Rig {
    proxy: FaultProxy,
    runtime: RuntimeApi,
    responses: ResponseServer,
    function: Option<Function>,
    table: String,
    aws: Aws,
}

impl Rig {
    async fn new() -> Rig {
        let aws = common::aws(&common::moto().endpoint).await;
        let table = common::unique("vg-faults");
        common::create_lock_table(&aws, &table).await;
        let mut rig = Rig {
            proxy: FaultProxy::start(&common::moto().endpoint),
            runtime: RuntimeApi::start(),
            responses: ResponseServer::start(),
            function: None,
            table,
            aws,
        };
        rig.spawn();
        rig
    }

    /// A new function process (the old one, if any, killed first).
    fn spawn(&mut self) {
        self.function = None;
        let endpoint = self.proxy.endpoint();
        self.function = Some(Function::spawn(
            &self.runtime,
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("VENDOR_GRANTS_LOCK_TABLE", self.table.as_str()),
            ],
        ));
    }

    fn logs(&self) -> String {
        self.function
            .as_ref()
            .map(Function::logs)
            .unwrap_or_default()
    }

    fn event(&self, kind: &str, stack: &str, physical: Option<&str>, props: &Value) -> Value {
        let old = (kind == "Update").then(|| props.clone());
        cfn_event(
            kind,
            &self.responses.url("cfn/answer"),
            stack,
            "DataVendorAccess",
            physical,
            props.clone(),
            old,
        )
    }

    /// Delivers `event` and returns the one answer it got.
    fn answer(&self, event: Value) -> Value {
        let before = self.responses.requests().len();
        let id = self.runtime.invoke(event, DEADLINE);
        let result = self
            .runtime
            .wait_result(&id, DEADLINE + Duration::from_secs(5));
        assert!(
            matches!(result, Some(InvocationResult::Response(_))),
            "invocation did not complete: {result:?}\n{}",
            self.logs()
        );
        let requests = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        assert_eq!(
            requests.len(),
            before + 1,
            "exactly one answer per event; logs:\n{}",
            self.logs()
        );
        requests[before].json()
    }

    fn succeed(&self, event: Value) -> Value {
        let answer = self.answer(event);
        assert_eq!(answer["Status"], "SUCCESS", "{answer}\n{}", self.logs());
        answer
    }
}

fn seeds() -> Vec<u64> {
    std::env::var("VG_FAULT_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![7, 1234])
}

fn foreign_statement(bucket: &str) -> Value {
    json!({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
        "Action": "s3:*", "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
}

async fn new_key(aws: &Aws, policy: Option<Value>) -> String {
    let mut req = aws.kms.create_key();
    if let Some(p) = policy {
        req = req.policy(p.to_string());
    }
    let out = req.send().await.unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_string()
}

/// A key policy that does not let the account's IAM policies grant key use, so a role-mode
/// grant must put a statement for its role into it.
fn non_delegating_key_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "KeyAdmins", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/KeyAdmin")},
        "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"], "Resource": "*"}]})
}

async fn role_exists(aws: &Aws, name: &str) -> bool {
    aws.iam.get_role().role_name(name).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_throttling_through_whole_lifecycles() {
    let rig = Rig::new().await;
    for seed in seeds() {
        println!("throttling seed {seed}");
        let bucket = common::unique("vg-throttle");
        create_bucket(&rig.aws, &bucket).await;
        let foreign = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&bucket)]});
        put_bucket_policy(&rig.aws, &bucket, &foreign).await;
        let key = new_key(&rig.aws, Some(non_delegating_key_policy())).await;
        let key_before = key_policy(&rig.aws, &key).await;
        let role = common::unique("ScaleRole");

        rig.proxy.clear();
        rig.proxy.set_seed(seed);
        rig.proxy.push(Rule::any(Fault::Throttle).probability(0.3));
        let stack = common::unique("stack");
        let telus = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key});
        let scale = json!({"Vendor": "scale-ai", "BucketName": bucket, "KmsKeyArn": key,
            "ExternalId": "ext-id-throttled", "RoleName": role});

        let t = rig.succeed(rig.event("Create", &stack, None, &telus));
        let t_id = t["PhysicalResourceId"].as_str().unwrap().to_string();
        let mut scale_stack = stack.clone();
        scale_stack.push('2');
        let s = rig.succeed(rig.event("Create", &scale_stack, None, &scale));
        let s_id = s["PhysicalResourceId"].as_str().unwrap().to_string();
        assert!(role_exists(&rig.aws, &role).await);
        let policy = bucket_policy(&rig.aws, &bucket).await;
        // The grant's bucket statements (its KeyUse one is in the key policy).
        let mut expected: BTreeSet<String> = statement_ids(&t)
            .into_iter()
            .filter(|s| !s.ends_with("KeyUse"))
            .collect();
        expected.insert("DenyInsecureTransport".to_string());
        assert_eq!(sids(policy.as_ref()), expected);

        let mut read = telus.clone();
        read["Access"] = json!("read");
        rig.succeed(rig.event("Update", &stack, Some(&t_id), &read));
        // A duplicate delivery changes nothing more.
        rig.succeed(rig.event("Update", &stack, Some(&t_id), &read));
        rig.succeed(rig.event("Delete", &stack, Some(&t_id), &read));
        rig.succeed(rig.event("Delete", &scale_stack, Some(&s_id), &scale));

        let injected = rig.proxy.injected();
        rig.proxy.clear();
        assert!(injected > 5, "seed {seed}: only {injected} faults injected");
        assert_eq!(bucket_policy(&rig.aws, &bucket).await, Some(foreign));
        assert_eq!(
            sids(Some(&key_policy(&rig.aws, &key).await)),
            sids(Some(&key_before))
        );
        assert!(
            !role_exists(&rig.aws, &role).await,
            "the role outlived its grant"
        );
        assert_eq!(common::leases_left(&rig.aws, &rig.table).await, 0);
        println!("seed {seed}: {injected} throttles ridden out");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_create_role_answer_keeps_the_propagation_wait() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-lost");
    create_bucket(&rig.aws, &bucket).await;
    let key = new_key(&rig.aws, Some(non_delegating_key_policy())).await;
    let role = common::unique("LostRole");
    // CreateRole takes effect but its answer is lost (the SDK's retry meets
    // EntityAlreadyExists); then KMS does not yet know the new role, as real IAM propagation.
    rig.proxy.push(
        Rule::on("iam", "CreateRole")
            .fault(Fault::LostAnswer)
            .once(),
    );
    rig.proxy.push(
        Rule::on("kms", "PutKeyPolicy")
            .fault(Fault::Error(
                400,
                "MalformedPolicyDocumentException: Policy contains a statement with one or more \
                 invalid principals."
                    .to_string(),
            ))
            .times(2),
    );
    let stack = common::unique("stack");
    let props = json!({"Vendor": "scale-ai", "BucketName": bucket, "KmsKeyArn": key,
        "ExternalId": "ext-id-lost-answer", "RoleName": role});
    let done = rig.succeed(rig.event("Create", &stack, None, &props));
    assert_eq!(
        rig.proxy.count("iam", "CreateRole"),
        2,
        "{:?}",
        rig.proxy.summary()
    );
    assert!(rig.proxy.count("kms", "PutKeyPolicy") >= 3);
    let ids = statement_ids(&done);
    let key_sids = sids(Some(&key_policy(&rig.aws, &key).await));
    assert!(
        key_sids.iter().any(|s| s.ends_with("RoleKeyUse")),
        "{key_sids:?}"
    );
    assert!(ids.iter().all(|s| !s.is_empty()));
    let physical = done["PhysicalResourceId"].as_str().unwrap().to_string();
    rig.proxy.clear();
    rig.succeed(rig.event("Delete", &stack, Some(&physical), &props));
    assert!(!role_exists(&rig.aws, &role).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_that_could_not_be_released_does_not_stall_the_next_grant() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-release");
    create_bucket(&rig.aws, &bucket).await;
    // Releasing fails outright (not retryable), every time.
    rig.proxy.push(
        Rule::on("dynamodb", "DeleteItem")
            .fault(Fault::Error(400, "AccessDeniedException".to_string())),
    );
    let first = json!({"Vendor": "telus", "BucketName": bucket});
    let a = rig.succeed(rig.event("Create", &common::unique("stack"), None, &first));
    assert!(
        common::leases_left(&rig.aws, &rig.table).await > 0,
        "the lease was left behind"
    );
    assert!(rig.logs().contains("lease not released"), "{}", rig.logs());
    rig.proxy.clear();
    // The next grant on the same bucket waits at most for the short lease to run out.
    let b = rig.succeed(rig.event("Create", &common::unique("stack"), None, &first));
    let policy = bucket_policy(&rig.aws, &bucket).await;
    let mut expected = statement_ids(&a);
    expected.extend(statement_ids(&b));
    assert_eq!(sids(policy.as_ref()), expected);
    assert_eq!(common::leases_left(&rig.aws, &rig.table).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_writer_costs_no_stale_read_wait() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-writer");
    create_bucket(&rig.aws, &bucket).await;
    let mut expected = BTreeSet::new();
    for n in 0..3 {
        // Another tool rewrites the whole policy, keeping what is there and adding its own.
        let mut policy = bucket_policy(&rig.aws, &bucket)
            .await
            .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
        let mut other = foreign_statement(&bucket);
        other["Sid"] = json!(format!("OtherWriter{n}"));
        policy["Statement"].as_array_mut().unwrap().push(other);
        put_bucket_policy(&rig.aws, &bucket, &policy).await;
        expected.insert(format!("OtherWriter{n}"));

        rig.proxy.take_calls();
        let props = json!({"Vendor": "telus", "BucketName": bucket});
        let done = rig.succeed(rig.event("Create", &common::unique("stack"), None, &props));
        expected.extend(statement_ids(&done));
        // The read that shows another writer's version is taken at once: the existence
        // check, the fresh read and the read-back, not a stale-read wait of re-reads.
        let reads = rig.proxy.count("s3", "GetBucketPolicy");
        assert!(
            reads <= 3,
            "grant {n}: {reads} bucket policy reads: {:?}",
            rig.proxy.summary()
        );
    }
    assert_eq!(
        sids(bucket_policy(&rig.aws, &bucket).await.as_ref()),
        expected
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_read_back_is_waited_for_not_trusted() {
    let rig = Rig::new().await;
    let bucket = common::unique("vg-stale");
    create_bucket(&rig.aws, &bucket).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&bucket)]});
    put_bucket_policy(&rig.aws, &bucket, &foreign).await;
    // The fresh read passes (it has no earlier answer to repeat, so the rule does not count
    // it); the read-back after the write shows the policy as it was before it (an eventually
    // consistent read).
    rig.proxy.push(
        Rule::on("s3", "GetBucketPolicy")
            .fault(Fault::StaleRead)
            .once(),
    );
    rig.proxy.take_calls();
    let props = json!({"Vendor": "telus", "BucketName": bucket});
    let done = rig.succeed(rig.event("Create", &common::unique("stack"), None, &props));
    assert_eq!(rig.proxy.injected(), 1);
    let mut expected = statement_ids(&done);
    expected.insert("DenyInsecureTransport".into());
    assert_eq!(
        sids(bucket_policy(&rig.aws, &bucket).await.as_ref()),
        expected
    );
    // The version it replaced is no sign of another writer: read again (not redone, not
    // written twice) until the write shows.
    assert!(
        rig.logs().contains("waiting for the write to settle"),
        "{}",
        rig.logs()
    );
    assert!(!rig.logs().contains("read-back differs"), "{}", rig.logs());
    assert_eq!(
        rig.proxy.count("s3", "PutBucketPolicy"),
        1,
        "{:?}",
        rig.proxy.summary()
    );
}

/// One crash case: the write (service, operation) to stop at, before or after it reaches AWS.
struct Crash {
    service: &'static str,
    operation: &'static str,
    /// Which event of the scenario carries the write: 0 = Create, 1 = Delete.
    on_delete: bool,
    role_mode: bool,
}

const CRASHES: &[Crash] = &[
    Crash {
        service: "s3",
        operation: "PutBucketPolicy",
        on_delete: false,
        role_mode: false,
    },
    Crash {
        service: "kms",
        operation: "PutKeyPolicy",
        on_delete: false,
        role_mode: false,
    },
    Crash {
        service: "s3",
        operation: "DeleteBucketPolicy",
        on_delete: true,
        role_mode: false,
    },
    Crash {
        service: "kms",
        operation: "PutKeyPolicy",
        on_delete: true,
        role_mode: false,
    },
    Crash {
        service: "iam",
        operation: "CreateRole",
        on_delete: false,
        role_mode: true,
    },
    Crash {
        service: "iam",
        operation: "PutRolePolicy",
        on_delete: false,
        role_mode: true,
    },
    Crash {
        service: "kms",
        operation: "PutKeyPolicy",
        on_delete: false,
        role_mode: true,
    },
    Crash {
        service: "iam",
        operation: "DeleteRolePolicy",
        on_delete: true,
        role_mode: true,
    },
    Crash {
        service: "iam",
        operation: "DeleteRole",
        on_delete: true,
        role_mode: true,
    },
    Crash {
        service: "dynamodb",
        operation: "PutItem",
        on_delete: false,
        role_mode: false,
    },
    Crash {
        service: "dynamodb",
        operation: "DeleteItem",
        on_delete: false,
        role_mode: false,
    },
    Crash {
        service: "dynamodb",
        operation: "PutItem",
        on_delete: true,
        role_mode: true,
    },
    Crash {
        service: "dynamodb",
        operation: "DeleteItem",
        on_delete: true,
        role_mode: true,
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_or_after_each_write_then_redelivery_converges() {
    let mut rig = Rig::new().await;
    let mut failures = Vec::new();
    let mut cases = 0;
    for crash in CRASHES {
        for after in [false, true] {
            cases += 1;
            let name = format!(
                "{} {}:{} {} the call, {}",
                if crash.on_delete { "Delete" } else { "Create" },
                crash.service,
                crash.operation,
                if after { "after" } else { "before" },
                if crash.role_mode {
                    "role mode"
                } else {
                    "bucket-policy mode"
                },
            );
            if let Err(e) = crash_case(&mut rig, crash, after).await {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    println!("{cases} crash cases, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "crash cases failed:\n{}",
        failures.join("\n")
    );
}

async fn crash_case(rig: &mut Rig, crash: &Crash, after: bool) -> Result<(), String> {
    let bucket = common::unique("vg-crash");
    create_bucket(&rig.aws, &bucket).await;
    // Delete empties the bucket policy only when nothing foreign is left in it.
    let foreign = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&bucket)]});
    if crash.operation != "DeleteBucketPolicy" {
        put_bucket_policy(&rig.aws, &bucket, &foreign).await;
    }
    let key = new_key(&rig.aws, Some(non_delegating_key_policy())).await;
    let key_before = sids(Some(&key_policy(&rig.aws, &key).await));
    let role = common::unique("CrashRole");
    let props = if crash.role_mode {
        json!({"Vendor": "scale-ai", "BucketName": bucket, "KmsKeyArn": key,
            "ExternalId": "ext-id-crash", "RoleName": role})
    } else {
        json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key})
    };
    let stack = common::unique("stack");
    rig.proxy.clear();

    let create = rig.event("Create", &stack, None, &props);
    let mut physical = None;
    let mut create_answer = None;
    if crash.on_delete {
        let a = rig.answer(create.clone());
        if a["Status"] != "SUCCESS" {
            return Err(format!("setup Create failed: {a}"));
        }
        physical = a["PhysicalResourceId"].as_str().map(str::to_string);
        create_answer = Some(a);
    }
    let event = if crash.on_delete {
        rig.event("Delete", &stack, physical.as_deref(), &props)
    } else {
        create
    };

    // The first process stops at the write and is killed there.
    let gate = Gate::new();
    let fault = if after {
        Fault::PauseAfter(gate.clone())
    } else {
        Fault::PauseBefore(gate.clone())
    };
    rig.proxy
        .push(Rule::on(crash.service, crash.operation).fault(fault).once());
    let answers_before = rig.responses.requests().len();
    rig.runtime.invoke(event.clone(), DEADLINE);
    if !gate.wait_reached(Duration::from_secs(60)) {
        return Err(format!(
            "the write was never reached; logs:\n{}",
            rig.logs()
        ));
    }
    rig.function = None; // killed
    gate.release();
    rig.proxy.clear();
    std::thread::sleep(Duration::from_millis(200));
    if rig.responses.requests().len() != answers_before {
        return Err("the killed process answered".into());
    }

    // CloudFormation never got an answer; the event is delivered again to a new process.
    rig.spawn();
    let answer = rig.answer(event);
    if answer["Status"] != "SUCCESS" {
        return Err(format!("redelivery answered {answer}\n{}", rig.logs()));
    }

    let policy = bucket_policy(&rig.aws, &bucket).await;
    if crash.on_delete {
        let left = sids(policy.as_ref());
        let expect: BTreeSet<String> = if crash.operation == "DeleteBucketPolicy" {
            BTreeSet::new()
        } else {
            ["DenyInsecureTransport".to_string()].into()
        };
        if left != expect {
            return Err(format!("after Delete the bucket policy holds {left:?}"));
        }
        if sids(Some(&key_policy(&rig.aws, &key).await)) != key_before {
            return Err("after Delete the key policy still holds the grant".into());
        }
        if crash.role_mode && role_exists(&rig.aws, &role).await {
            return Err("after Delete the role is still there".into());
        }
        let _ = create_answer;
    } else {
        let ids = statement_ids(&answer);
        let mut bucket_sids = sids(policy.as_ref());
        bucket_sids.remove("DenyInsecureTransport");
        let key_sids: BTreeSet<String> = sids(Some(&key_policy(&rig.aws, &key).await))
            .difference(&key_before)
            .cloned()
            .collect();
        let written: BTreeSet<String> = bucket_sids.union(&key_sids).cloned().collect();
        let expected_written: BTreeSet<String> = if crash.role_mode {
            // The role's statements live in its inline policy; only RoleKeyUse is in a policy.
            ids.iter()
                .filter(|s| s.ends_with("RoleKeyUse"))
                .cloned()
                .collect()
        } else {
            ids.clone()
        };
        if written != expected_written {
            return Err(format!(
                "after Create: written {written:?}, answered {ids:?}"
            ));
        }
        if crash.role_mode {
            let policies = rig
                .aws
                .iam
                .list_role_policies()
                .role_name(&role)
                .send()
                .await
                .map_err(|e| format!("the role is missing: {e:?}"))?;
            if policies.policy_names().len() != 1 {
                return Err(format!("role policies {:?}", policies.policy_names()));
            }
        }
        // Clean up through the function, which must leave only the foreign statements.
        let physical = answer["PhysicalResourceId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let gone = rig.answer(rig.event("Delete", &stack, Some(&physical), &props));
        if gone["Status"] != "SUCCESS" {
            return Err(format!("cleanup Delete answered {gone}"));
        }
        if bucket_policy(&rig.aws, &bucket).await != Some(foreign) {
            return Err("cleanup left more than the foreign statement".into());
        }
    }
    if common::leases_left(&rig.aws, &rig.table).await > 0 {
        // A lease of the killed process may still be running out; it must not be ours now.
        std::thread::sleep(Duration::from_secs(11));
        if common::leases_left(&rig.aws, &rig.table).await > 0 {
            return Err("a lease is left behind".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Eventually consistent policy reads (issue 19): for a window after each write of a bucket
// policy or key policy, every read of it (the writer's own read-back too) shows the version from
// before the write.

/// Three function processes sharing one lock table, behind the fault proxy.
struct Crowd {
    proxy: FaultProxy,
    runtime: RuntimeApi,
    responses: ResponseServer,
    functions: Vec<Function>,
    table: String,
    aws: Aws,
    events: usize,
}

impl Crowd {
    async fn new(processes: usize) -> Crowd {
        let aws = common::aws(&common::moto().endpoint).await;
        let table = common::unique("vg-stale");
        common::create_lock_table(&aws, &table).await;
        let proxy = FaultProxy::start(&common::moto().endpoint);
        let runtime = RuntimeApi::start();
        let endpoint = proxy.endpoint();
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("VENDOR_GRANTS_LOCK_TABLE", table.as_str()),
        ];
        let functions = (0..processes)
            .map(|_| Function::spawn(&runtime, &env))
            .collect();
        Crowd {
            proxy,
            runtime,
            responses: ResponseServer::start(),
            functions,
            table,
            aws,
            events: 0,
        }
    }

    fn logs(&self) -> String {
        self.functions
            .iter()
            .map(Function::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An event with its own ResponseURL path (to tell the answers apart), and that path.
    fn event(
        &mut self,
        kind: &str,
        stack: &str,
        physical: Option<&str>,
        props: &Value,
    ) -> (String, Value) {
        self.events += 1;
        let path = format!("stale/{}", self.events);
        let event = cfn_event(
            kind,
            &self.responses.url(&path),
            stack,
            "DataVendorAccess",
            physical,
            props.clone(),
            None,
        );
        (format!("/{path}"), event)
    }

    /// Delivers the events at once (the processes take them concurrently) and returns each
    /// one's single answer, in order.
    fn deliver(&self, events: &[(String, Value)]) -> Result<Vec<Value>, String> {
        let ids: Vec<String> = events
            .iter()
            .map(|(_, e)| self.runtime.invoke(e.clone(), DEADLINE))
            .collect();
        for id in &ids {
            if self
                .runtime
                .wait_result(id, DEADLINE + Duration::from_secs(5))
                .is_none()
            {
                return Err("an invocation did not complete".into());
            }
        }
        let requests = self.responses.requests();
        events
            .iter()
            .map(|(path, _)| {
                let answers: Vec<_> = requests
                    .iter()
                    .filter(|r| r.path.split('?').next() == Some(path.as_str()))
                    .collect();
                match answers.as_slice() {
                    [one] => Ok(one.json()),
                    _ => Err(format!("{} answers to {path}", answers.len())),
                }
            })
            .collect()
    }
}

/// Seeds for the stale-window scenarios: `VG_STALE_SEEDS=1,2,3`, else `n` fresh ones (printed
/// with every run, so a failing one can be run again).
fn stale_seeds(n: usize) -> Vec<u64> {
    std::env::var("VG_STALE_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64 % 1_000_000);
            (0..n as u64).map(|i| base * 100 + i).collect()
        })
}

/// Runs the scenario once per seed with reads stale for `window` after each policy
/// write; every failing run is named, with its seed, in the one assertion at the end.
async fn four_at_once_runs(seeds: &[u64], window: Duration) {
    let mut crowd = Crowd::new(3).await;
    let mut failures = Vec::new();
    for &seed in seeds {
        let started = std::time::Instant::now();
        let outcome = four_at_once(&mut crowd, seed, window).await;
        println!(
            "stale window {window:?}, seed {seed}: {} in {:.1} s",
            if outcome.is_ok() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if let Err(e) = outcome {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    println!(
        "stale window {window:?}: {} of {} runs failed",
        failures.len(),
        seeds.len()
    );
    assert!(
        failures.is_empty(),
        "with reads stale for {window:?} after each write:\n{}\nlogs:\n{}",
        failures.join("\n"),
        crowd.logs()
    );
}

/// Four `custom` grants (different VendorPrincipals, `Access: read`) on one bucket and one key,
/// created at once through the three processes, then deleted at once: every event answers
/// SUCCESS, after the Creates every grant is in both policies, after the Deletes both policies
/// are exactly as before.
async fn four_at_once(crowd: &mut Crowd, seed: u64, window: Duration) -> Result<(), String> {
    let aws = crowd.aws.clone();
    let bucket = common::unique("vg-stale");
    create_bucket(&aws, &bucket).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&bucket)]});
    put_bucket_policy(&aws, &bucket, &foreign).await;
    let key = new_key(&aws, None).await;
    let key_before = key_policy(&aws, &key).await;

    crowd.proxy.clear();
    crowd.proxy.take_calls();
    crowd.proxy.set_seed(seed);
    // First, so its stale reads are never displaced by the latency below.
    crowd.proxy.push(Rule::any(Fault::StaleAfterWrite(window)));
    // The seed varies how the processes interleave: some lease and record calls are slowed.
    crowd.proxy.push(
        Rule::service("dynamodb")
            .fault(Fault::Latency(Duration::from_millis(seed % 40)))
            .probability(0.3),
    );
    let stack = common::unique("stack");
    let grants: Vec<Value> = (0..4)
        .map(|n| {
            json!({"Vendor": "custom", "BucketName": bucket, "KmsKeyArn": key,
                "VendorPrincipal": format!("arn:aws:iam::{}:root", 210_000_000_000 + seed % 1000 * 10 + n),
                "Access": "read"})
        })
        .collect();
    let creates: Vec<_> = grants
        .iter()
        .enumerate()
        .map(|(n, p)| crowd.event("Create", &format!("{stack}-{n}"), None, p))
        .collect();
    let answers = crowd.deliver(&creates)?;
    let mut physical = Vec::new();
    let mut expected_bucket = sids(Some(&foreign));
    let mut expected_key = sids(Some(&key_before));
    for answer in &answers {
        if answer["Status"] != "SUCCESS" {
            return Err(format!("a Create answered {answer}"));
        }
        physical.push(
            answer["PhysicalResourceId"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        for sid in statement_ids(answer) {
            if sid.ends_with("KeyUse") {
                expected_key.insert(sid);
            } else {
                expected_bucket.insert(sid);
            }
        }
    }
    let stale_reads = crowd
        .proxy
        .calls()
        .iter()
        .filter(|c| {
            c.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("StaleAfterWrite"))
        })
        .count();
    if stale_reads == 0 {
        return Err("no read was answered stale".into());
    }
    let bucket_now = sids(bucket_policy(&aws, &bucket).await.as_ref());
    if bucket_now != expected_bucket {
        return Err(format!(
            "after the Creates the bucket policy holds {bucket_now:?}, expected {expected_bucket:?}"
        ));
    }
    let key_now = sids(Some(&key_policy(&aws, &key).await));
    if key_now != expected_key {
        return Err(format!(
            "after the Creates the key policy holds {key_now:?}, expected {expected_key:?}"
        ));
    }

    let deletes: Vec<_> = grants
        .iter()
        .zip(&physical)
        .enumerate()
        .map(|(n, (p, id))| crowd.event("Delete", &format!("{stack}-{n}"), Some(id), p))
        .collect();
    for answer in crowd.deliver(&deletes)? {
        if answer["Status"] != "SUCCESS" {
            return Err(format!("a Delete answered {answer}"));
        }
    }
    let bucket_after = bucket_policy(&aws, &bucket).await;
    if bucket_after.as_ref() != Some(&foreign) {
        return Err(format!(
            "after the Deletes the bucket policy is {bucket_after:?}, not as before"
        ));
    }
    let key_after = key_policy(&aws, &key).await;
    if sids(Some(&key_after)) != sids(Some(&key_before)) {
        return Err(format!(
            "after the Deletes the key policy is {key_after}, not as before"
        ));
    }
    crowd.proxy.clear();
    if common::leases_left(&aws, &crowd.table).await > 0 {
        return Err("a lease is left behind".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn four_grants_at_once_with_reads_stale_for_250_ms_after_each_write() {
    four_at_once_runs(&stale_seeds(9), Duration::from_millis(250)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn four_grants_at_once_with_reads_stale_for_250_ms_after_each_write_more_seeds() {
    four_at_once_runs(&stale_seeds(9), Duration::from_millis(250)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn four_grants_at_once_with_reads_stale_for_2_s_after_each_write() {
    four_at_once_runs(&stale_seeds(2), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_back_that_never_settles_fails_as_not_settled_and_the_rollback_cleans_up() {
    let mut crowd = Crowd::new(1).await;
    let aws = crowd.aws.clone();
    let bucket = common::unique("vg-unsettled");
    create_bucket(&aws, &bucket).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [foreign_statement(&bucket)]});
    put_bucket_policy(&aws, &bucket, &foreign).await;
    let key = new_key(&aws, None).await;
    let key_before = key_policy(&aws, &key).await;
    // The grant's own bucket policy write reads as before it for longer than a stale read is
    // waited for (5 s); later writes settle at once.
    crowd.proxy.push(
        Rule::on("s3", "PutBucketPolicy|DeleteBucketPolicy|GetBucketPolicy")
            .fault(Fault::StaleAfterWrite(Duration::from_secs(8)))
            .once(),
    );
    let props = json!({"Vendor": "custom", "BucketName": bucket, "KmsKeyArn": key,
        "VendorPrincipal": "arn:aws:iam::210987654321:root", "Access": "read"});
    let stack = common::unique("stack");
    let create = crowd.event("Create", &stack, None, &props);
    let answer = crowd.deliver(&[create]).unwrap().remove(0);
    assert_eq!(answer["Status"], "FAILED", "{answer}\n{}", crowd.logs());
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("did not settle"), "{reason}");
    assert!(!reason.contains("another writer"), "{reason}");
    // CloudFormation's rollback: the Delete of the id the failed Create answered with.
    let physical = answer["PhysicalResourceId"].as_str().unwrap().to_string();
    assert!(physical.starts_with("vendor-grants:"), "{physical}");
    let delete = crowd.event("Delete", &stack, Some(&physical), &props);
    let answer = crowd.deliver(&[delete]).unwrap().remove(0);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}\n{}", crowd.logs());
    assert_eq!(bucket_policy(&aws, &bucket).await, Some(foreign));
    assert_eq!(
        sids(Some(&key_policy(&aws, &key).await)),
        sids(Some(&key_before))
    );
    assert_eq!(common::leases_left(&aws, &crowd.table).await, 0);
}
