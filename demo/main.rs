//! `make demo`: the built function, run as Lambda runs it, against a local AWS emulator (moto).
//! A bucket holds someone else's statement and a KMS key encrypts it; two vendors are granted,
//! updated and removed through Create, Update and Delete events, and the policies are printed
//! after each step. Exits non-zero if any answer, statement or final policy is not as it must be.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{Aws, Function, InvocationResult, ResponseServer, RuntimeApi};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

struct Demo {
    aws: Aws,
    runtime: RuntimeApi,
    responses: ResponseServer,
    function: Function,
    rt: tokio::runtime::Runtime,
    problems: Vec<String>,
    bucket: String,
    key_id: String,
    foreign: Value,
}

impl Demo {
    fn check(&mut self, ok: bool, what: &str) {
        println!("  {} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.problems.push(what.to_string());
        }
    }

    /// Sends one event to the function and returns CloudFormation's answer.
    fn send(
        &mut self,
        kind: &str,
        stack: &str,
        physical: Option<&str>,
        props: &Value,
        old: Option<&Value>,
    ) -> Value {
        let url = self.responses.url("cfn/answer");
        let event = common::cfn_event(
            kind,
            &url,
            stack,
            "VendorAccess",
            physical,
            props.clone(),
            old.cloned(),
        );
        let before = self.responses.requests().len();
        let id = self.runtime.invoke(event, DEADLINE);
        let finished = matches!(
            self.runtime.wait_result(&id, DEADLINE),
            Some(InvocationResult::Response(_))
        );
        let answers = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        let answer = if finished && answers.len() > before {
            answers[answers.len() - 1].json()
        } else {
            json!({"Status": "NO ANSWER"})
        };
        let shown = props
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        // An ExternalId is a secret between the customer and the vendor.
                        if k == "ExternalId" {
                            format!("{k}=***")
                        } else {
                            format!("{k}={}", v.as_str().unwrap_or(&v.to_string()))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("\n>>> {kind} {shown}");
        println!(
            "<<< {} {}",
            answer["Status"].as_str().unwrap_or("?"),
            answer["Reason"].as_str().unwrap_or("")
        );
        if let Some(data) = answer["Data"].as_object().filter(|d| !d.is_empty()) {
            for (k, v) in data {
                println!("    {k}: {}", v.as_str().unwrap_or_default());
            }
        }
        let ok = answer["Status"] == "SUCCESS";
        self.check(ok, &format!("{kind} answered SUCCESS"));
        answer
    }

    fn bucket_policy(&self) -> Option<Value> {
        self.rt
            .block_on(common::bucket_policy(&self.aws, &self.bucket))
    }

    fn key_policy(&self) -> Value {
        self.rt
            .block_on(common::key_policy(&self.aws, &self.key_id))
    }

    fn show_policies(&mut self) {
        let bucket = self.bucket_policy();
        println!("\n  bucket policy of {}:", self.bucket);
        print_sids(bucket.as_ref());
        println!("  key policy:");
        print_sids(Some(&self.key_policy()));
        let foreign = self.foreign.clone();
        let kept = bucket
            .as_ref()
            .is_some_and(|p| statements(p).contains(&foreign));
        self.check(kept, "the foreign statement is still there, unchanged");
    }
}

fn statements(policy: &Value) -> Vec<Value> {
    policy["Statement"].as_array().cloned().unwrap_or_default()
}

/// A policy element that may be a string or a list, as one comma-separated line.
fn joined(value: &Value) -> String {
    match value {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.as_str().unwrap_or_default().to_string(),
    }
}

fn print_sids(policy: Option<&Value>) {
    let Some(policy) = policy else {
        println!("    (none)");
        return;
    };
    for s in statements(policy) {
        let actions = joined(&s["Action"]);
        let resource = joined(&s["Resource"]);
        println!(
            "    {:<34} {:<5} {} on {}",
            s["Sid"].as_str().unwrap_or("(no Sid)"),
            s["Effect"].as_str().unwrap_or_default(),
            actions,
            resource
        );
    }
}

fn main() -> ExitCode {
    println!("vendor-grants demo: the built function against a local AWS emulator (moto)\n");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let moto = common::moto();
    println!("moto listening at {}", moto.endpoint);
    let aws = rt.block_on(common::aws(&moto.endpoint));
    let bucket = common::unique("demo-data");
    let foreign = json!({"Sid": "AuditorReadsAuditLogs", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/audit/*")});
    let (key_id, key_arn) = rt.block_on(async {
        common::create_bucket(&aws, &bucket).await;
        common::put_bucket_policy(
            &aws,
            &bucket,
            &json!({"Version": "2012-10-17", "Statement": [foreign.clone()]}),
        )
        .await;
        common::create_key(&aws).await
    });
    let runtime = RuntimeApi::start();
    let responses = ResponseServer::start();
    let function = Function::spawn(&runtime, &[("AWS_ENDPOINT_URL", moto.endpoint.as_str())]);
    let mut demo = Demo {
        aws,
        runtime,
        responses,
        function,
        rt,
        problems: Vec::new(),
        bucket: bucket.clone(),
        key_id,
        foreign,
    };
    let initial_bucket = demo.bucket_policy();
    let initial_key = demo.key_policy();
    println!("bucket {bucket} with someone else's statement, and KMS key {key_arn}");
    demo.show_policies();

    // Vendor 1: TELUS International, bucket-policy mode, with the key.
    let telus_stack = "demo-telus";
    let telus = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});
    let created = demo.send("Create", telus_stack, None, &telus, None);
    let telus_id = created["PhysicalResourceId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    demo.show_policies();
    let mut telus_read = telus.clone();
    telus_read["Access"] = json!("read");
    telus_read["Prefix"] = json!("datasets/");
    let updated = demo.send(
        "Update",
        telus_stack,
        Some(&telus_id),
        &telus_read,
        Some(&telus),
    );
    demo.check(
        updated["PhysicalResourceId"] == created["PhysicalResourceId"],
        "an in-place Update keeps the PhysicalResourceId",
    );
    demo.show_policies();

    // Vendor 2: Scale AI, role mode (its documented role, assumed with an external id).
    let scale_stack = "demo-scale";
    let scale = json!({"Vendor": "scale-ai", "BucketName": bucket, "KmsKeyArn": key_arn, "ExternalId": "demo-external-id"});
    let created = demo.send("Create", scale_stack, None, &scale, None);
    let scale_id = created["PhysicalResourceId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let role_name = created["Data"]["RoleArn"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    demo.check(
        role_name == "ScaleAI-Integration",
        "Scale's role has the name its guide requires",
    );
    let trust = demo.rt.block_on(async {
        let role = demo
            .aws
            .iam
            .get_role()
            .role_name(&role_name)
            .send()
            .await
            .ok()?;
        let doc = role.role()?.assume_role_policy_document()?.to_string();
        serde_json::from_str::<Value>(&common::url_decode(&doc)).ok()
    });
    if let Some(trust) = &trust {
        println!(
            "  role {role_name} trusts {}",
            trust["Statement"][0]["Principal"]["AWS"]
        );
        let has_id =
            !trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"].is_null();
        demo.check(has_id, "the role's trust policy requires the external id");
    } else {
        demo.check(false, "the role exists");
    }
    demo.show_policies();
    let mut scale_prefix = scale.clone();
    scale_prefix["Prefix"] = json!("labeling/");
    demo.send(
        "Update",
        scale_stack,
        Some(&scale_id),
        &scale_prefix,
        Some(&scale),
    );

    // Delete both: only their own statements go, and the role with its last grant.
    demo.send("Delete", scale_stack, Some(&scale_id), &scale_prefix, None);
    let role_gone = demo
        .rt
        .block_on(demo.aws.iam.get_role().role_name(&role_name).send())
        .is_err();
    demo.check(role_gone, "the role went with its last grant");
    demo.send("Delete", telus_stack, Some(&telus_id), &telus_read, None);
    demo.show_policies();
    let final_bucket = demo.bucket_policy();
    let final_key = demo.key_policy();
    demo.check(
        final_bucket == initial_bucket,
        "the bucket policy is exactly what it was before",
    );
    demo.check(
        final_key == initial_key,
        "the key policy is exactly what it was before",
    );
    let logs = demo.function.logs();
    demo.check(
        !logs.contains("demo-external-id") && !logs.contains(common::SECRET_SIGNATURE),
        "the logs hold neither the ExternalId nor the ResponseURL",
    );

    if demo.problems.is_empty() {
        println!("\ndemo passed: every answer SUCCESS, the foreign statement untouched throughout");
        ExitCode::SUCCESS
    } else {
        println!(
            "\ndemo FAILED:\n  {}\nfunction logs:\n{logs}",
            demo.problems.join("\n  ")
        );
        ExitCode::FAILURE
    }
}
