//! The CloudFormation protocol driven in-process through `cfn::Driver` with a test resource that
//! succeeds, fails with a 10 KB Reason, panics, or hangs past the deadline: each event gets
//! exactly one answer, within the body budget, and the driver knows nothing of grants.

mod common;

use std::time::{Duration, SystemTime};

use common::ResponseServer;
use serde_json::{Value, json};
use vendor_grants::cfn::{
    AllowList, CustomResource, Done, Driver, Outcome, Request, Sender, Status,
};

struct TestResource;

impl CustomResource for TestResource {
    const NAME: &'static str = "test-resource";

    async fn create(&self, req: &Request) -> Result<Done, String> {
        match req.properties["Behave"].as_str() {
            Some("panic") => panic!("boom in create"),
            Some("hang") => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some("long-reason") => Err("é".repeat(5 * 1024)),
            _ => Ok(Done {
                physical_resource_id: format!("test-resource:{}", req.logical_resource_id),
                data: [("Answer".to_string(), "42".to_string())].into(),
                log_id: Some("id-1".to_string()),
            }),
        }
    }

    async fn update(&self, req: &Request) -> Result<Done, String> {
        Ok(Done {
            physical_resource_id: req.physical_resource_id.clone().unwrap_or_default(),
            ..Done::default()
        })
    }

    async fn delete(&self, _req: &Request) -> Result<Done, String> {
        Err("delete refused".to_string())
    }

    fn physical_id_on_failure(&self, req: &Request) -> String {
        req.physical_resource_id
            .clone()
            .unwrap_or_else(|| "test-resource:failed".to_string())
    }
}

fn driver() -> Driver<TestResource> {
    Driver::new(
        TestResource,
        Sender::new(AllowList::parse(Some("127.0.0.1"))).unwrap(),
    )
}

fn event(responses: &ResponseServer, kind: &str, behave: &str) -> Value {
    let physical = (kind != "Create").then_some("test-resource:Thing");
    common::cfn_event(
        kind,
        &responses.url("answer"),
        "stack-protocol",
        "Thing",
        physical,
        json!({"Behave": behave}),
        (kind == "Update").then(|| json!({})),
    )
}

/// Handles `payload` and returns the outcome and every answer it produced.
async fn handle(payload: &str, deadline: Duration) -> (Outcome, Vec<Value>, ResponseServer) {
    let responses = ResponseServer::start();
    let payload = payload.replace("RESPONSE_URL", &responses.url("answer"));
    let outcome = driver()
        .handle(&payload, common::FUNCTION_ARN, SystemTime::now() + deadline)
        .await;
    std::thread::sleep(Duration::from_millis(100));
    let answers = responses
        .requests()
        .iter()
        .map(|r| {
            assert!(r.body.len() <= 4096, "body of {} bytes", r.body.len());
            r.json()
        })
        .collect();
    (outcome, answers, responses)
}

async fn one_answer(behave: &str, kind: &str, deadline: Duration) -> (Outcome, Value) {
    let responses = ResponseServer::start();
    let payload = event(&responses, kind, behave)
        .to_string()
        .replace(&responses.url("answer"), "RESPONSE_URL");
    let (outcome, answers, _) = handle(&payload, deadline).await;
    assert_eq!(answers.len(), 1, "{behave}: {answers:?}");
    (outcome, answers[0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn success_is_answered_once_with_its_id_and_data() {
    let (outcome, answer) = one_answer("ok", "Create", Duration::from_secs(30)).await;
    assert!(matches!(
        outcome,
        Outcome::Answered {
            status: Status::Success,
            attempts: 1
        }
    ));
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], "test-resource:Thing");
    assert_eq!(answer["Data"]["Answer"], "42");
    let (_, update) = one_answer("ok", "Update", Duration::from_secs(30)).await;
    assert_eq!(update["PhysicalResourceId"], "test-resource:Thing");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_is_failed_with_its_reason_cut_to_the_budget() {
    let (_, answer) = one_answer("long-reason", "Create", Duration::from_secs(30)).await;
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.starts_with("Create failed: éé"), "{reason}");
    assert!(reason.len() < 4096);
    assert_eq!(answer["PhysicalResourceId"], "test-resource:failed");
    let (_, delete) = one_answer("ok", "Delete", Duration::from_secs(30)).await;
    assert_eq!(delete["Reason"], "Delete failed: delete refused");
    assert_eq!(delete["PhysicalResourceId"], "test-resource:Thing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_failed_naming_the_resource() {
    let (_, answer) = one_answer("panic", "Create", Duration::from_secs(30)).await;
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(
        reason.contains("test-resource hit an internal error (boom in create)"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn work_that_hangs_is_stopped_and_failed_before_the_deadline() {
    let started = std::time::Instant::now();
    let (_, answer) = one_answer("hang", "Create", Duration::from_secs(4)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("test-resource ran out of time")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_events_are_answered_once_and_events_without_a_target_not_at_all() {
    let mut deep = String::from("1");
    for _ in 0..300 {
        deep = format!("[{deep}]");
    }
    let too_deep = format!(
        r#"{{"RequestType":"Create","ResponseURL":"RESPONSE_URL","StackId":"s","RequestId":"r",
        "LogicalResourceId":"Thing","ResourceType":"Custom::T","ResourceProperties":{{"X":{deep}}}}}"#
    );
    let (_, answers, _) = handle(&too_deep, Duration::from_secs(30)).await;
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0]["Reason"]
            .as_str()
            .unwrap()
            .contains("ResourceProperties")
    );
    assert_eq!(
        answers[0]["PhysicalResourceId"],
        "test-resource:invalid-event"
    );
    for (payload, n) in [
        (r#"{"RequestType":"Create"}"#, 0),
        ("[1,2]", 0),
        ("not json", 0),
        (r#"{"ResponseURL":"http://evil.example/x"}"#, 0),
        (
            r#"{"ResponseURL":"RESPONSE_URL","RequestType":"Explode"}"#,
            1,
        ),
    ] {
        let (outcome, answers, _) = handle(payload, Duration::from_secs(30)).await;
        assert_eq!(answers.len(), n, "{payload}: {outcome:?}");
    }
}

#[test]
fn the_protocol_imports_nothing_of_the_grant_resource() {
    let sources = [
        include_str!("../src/cfn/mod.rs"),
        include_str!("../src/cfn/driver.rs"),
        include_str!("../src/cfn/resource.rs"),
        include_str!("../src/cfn/envelope.rs"),
        include_str!("../src/cfn/response.rs"),
        include_str!("../src/cfn/sender.rs"),
        include_str!("../src/cfn/deadline.rs"),
    ];
    for source in sources {
        for layer in [
            "aws",
            "catalog",
            "grant",
            "lifecycle",
            "policy",
            "function",
            "config",
        ] {
            assert!(
                !source.contains(&format!("crate::{layer}")),
                "cfn/ uses crate::{layer}"
            );
        }
    }
}
