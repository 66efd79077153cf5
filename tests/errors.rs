//! Errors a person can act on: each way an AWS call can fail, provoked for real on loopback (a
//! refused port, an endpoint that never answers, a 404 HTML page, a 500 that is not AWS's, AWS's
//! own throttling through the fault proxy, no credentials, no region), read where a person reads
//! it: the Reason CloudFormation gets from the built function, and the CLI's stderr. None of them
//! may show an SDK `Debug` form (the harness also checks every function's output and Reason).

mod common;

use std::process::Command;
use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Rule};
use common::{
    BlackHole, Canned, Function, InvocationResult, ResponseServer, RuntimeApi, cfn_event,
    debug_shapes_in, refusing_endpoint,
};
use serde_json::{Value, json};

const NOT_FOUND_PAGE: &str = "<html><head><title>404 Not Found</title></head>\
    <body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>";

// ---------------------------------------------------------------------------------------------
// The function: the Reason

/// Runs one Create through the built function with `env` and returns the Reason of its answer
/// (which must be FAILED) and the function's output.
fn reason_of_create(env: &[(&str, &str)], bucket: &str, deadline: Duration) -> (String, String) {
    let runtime = RuntimeApi::start();
    let responses = ResponseServer::start();
    let function = Function::spawn(&runtime, env);
    let event = cfn_event(
        "Create",
        &responses.url("cfn/answer"),
        &common::unique("stack-errors"),
        "DataVendorAccess",
        None,
        json!({"Vendor": "telus", "BucketName": bucket}),
        None,
    );
    let id = runtime.invoke(event, deadline);
    let result = runtime.wait_result(&id, deadline + Duration::from_secs(10));
    assert!(
        matches!(result, Some(InvocationResult::Response(_))),
        "the invocation did not complete: {result:?}\n{}",
        function.logs()
    );
    let requests = responses.wait_requests(1, Duration::from_secs(5));
    let answer: Value = requests
        .last()
        .unwrap_or_else(|| panic!("no answer; logs:\n{}", function.logs()))
        .json();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap_or_default().to_string();
    assert!(
        debug_shapes_in(&reason).is_empty(),
        "a Debug form in the Reason: {reason}"
    );
    (reason, function.logs())
}

fn assert_says(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

#[test]
fn function_a_refused_endpoint_is_named_when_the_deadline_stops_the_retries() {
    let endpoint = refusing_endpoint();
    let (reason, _) = reason_of_create(
        &[("AWS_ENDPOINT_URL", &endpoint)],
        "errors-refused",
        Duration::from_secs(6),
    );
    assert_says(
        &reason,
        &[
            "vendor-grants ran out of time",
            "the last call, GetBucketPolicy on errors-refused, kept failing: could not connect to",
            &format!("{endpoint}: connection refused"),
        ],
    );
}

#[test]
fn function_an_endpoint_that_never_answers_is_named_as_timing_out() {
    // The attempt timeout is 20 s: with 30 s, one attempt times out before the deadline.
    let hole = BlackHole::start();
    let (reason, _) = reason_of_create(
        &[("AWS_ENDPOINT_URL", &hole.endpoint())],
        "errors-silent",
        Duration::from_secs(30),
    );
    assert_says(
        &reason,
        &[
            "ran out of time",
            "the last call, GetBucketPolicy on errors-silent, kept failing:",
            &format!("{} did not answer in time", hole.endpoint()),
        ],
    );
}

#[test]
fn function_a_404_html_page_is_not_taken_for_aws() {
    let page = Canned::start(404, "text/html", NOT_FOUND_PAGE);
    // At debug level the whole chain is logged: still without the body.
    let (reason, logs) = reason_of_create(
        &[
            ("AWS_ENDPOINT_URL", &page.endpoint()),
            ("RUST_LOG", "info,vendor_grants=debug"),
        ],
        "errors-404",
        Duration::from_secs(20),
    );
    assert_says(
        &reason,
        &[
            "GetBucketPolicy on errors-404 failed:",
            &format!(
                "{} answered HTTP 404 with a body that is not an AWS error",
                page.endpoint()
            ),
            "emulator or proxy in the way?",
        ],
    );
    // Neither in the Reason nor in the logs: the raw body.
    assert!(!reason.contains("Not Found</h1>"), "{reason}");
    assert!(!logs.contains("Not Found</h1>"), "{logs}");
    assert!(
        logs.contains("AWS call failed"),
        "the chain at debug level: {logs}"
    );
}

#[test]
fn function_a_500_that_is_not_aws_is_named_with_its_status() {
    let broken = Canned::start(500, "text/plain", "upstream connect error or disconnect");
    let (reason, logs) = reason_of_create(
        &[
            ("AWS_ENDPOINT_URL", &broken.endpoint()),
            ("RUST_LOG", "info,vendor_grants=debug"),
        ],
        "errors-500",
        Duration::from_secs(6),
    );
    assert_says(
        &reason,
        &[
            "ran out of time",
            "the last call, GetBucketPolicy on errors-500, kept failing:",
            &format!(
                "{} answered HTTP 500 with a body that is not an AWS error",
                broken.endpoint()
            ),
        ],
    );
    assert!(!reason.contains("upstream connect error"), "{reason}");
    assert!(!logs.contains("upstream connect error"), "{logs}");
}

#[test]
fn function_throttling_is_named_with_awss_code() {
    let proxy = FaultProxy::start(&refusing_endpoint());
    proxy.push(Rule::any(Fault::Throttle));
    let (reason, _) = reason_of_create(
        &[("AWS_ENDPOINT_URL", &proxy.endpoint())],
        "errors-throttled",
        Duration::from_secs(6),
    );
    assert_says(
        &reason,
        &[
            "ran out of time",
            "the last call, GetBucketPolicy on errors-throttled, kept failing: AWS throttled the call (SlowDown",
        ],
    );
}

#[test]
fn function_without_credentials_says_so() {
    let (reason, _) = reason_of_create(
        &[
            ("AWS_ENDPOINT_URL", &refusing_endpoint()),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
        "errors-no-credentials",
        Duration::from_secs(6),
    );
    assert_says(
        &reason,
        &[
            "GetBucketPolicy on errors-no-credentials",
            "no AWS credentials found",
        ],
    );
}

#[test]
fn function_without_a_region_says_so() {
    let (reason, _) = reason_of_create(
        &[
            ("AWS_ENDPOINT_URL", &refusing_endpoint()),
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", ""),
        ],
        "errors-no-region",
        Duration::from_secs(6),
    );
    assert_says(
        &reason,
        &[
            "GetBucketPolicy on errors-no-region",
            "the region is not set",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI: one line on stderr, exit 2

/// `vendor-grants audit` with only `env` (and an empty HOME, so no profile of this machine counts);
/// returns its stderr, after checking it is one line and the exit code is 2.
fn audit_error(env: &[(&str, &str)]) -> String {
    let home = std::env::temp_dir().join(common::unique("vg-errors-home"));
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_vendor-grants"))
        .arg("audit")
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the CLI: {e}"));
    let _ = std::fs::remove_dir_all(&home);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("vendor-grants: error: "), "{stderr}");
    assert!(
        debug_shapes_in(&stderr).is_empty(),
        "a Debug form: {stderr}"
    );
    stderr
}

const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

fn with_credentials<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = CREDENTIALS.to_vec();
    env.push(("AWS_REGION", common::REGION));
    env.extend_from_slice(extra);
    env
}

#[test]
fn cli_audit_without_credentials_says_so_in_one_line() {
    // The instance metadata service refuses, as off an EC2 host (the case that printed IMDS's
    // raw answer).
    let imds = refusing_endpoint();
    let stderr = audit_error(&[
        ("AWS_REGION", common::REGION),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds),
        ("AWS_ENDPOINT_URL", &refusing_endpoint()),
    ]);
    assert_says(
        &stderr,
        &[
            "no AWS credentials found",
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ],
    );
}

#[test]
fn cli_audit_without_a_region_says_so() {
    let mut env = CREDENTIALS.to_vec();
    env.push(("AWS_EC2_METADATA_DISABLED", "true"));
    let stderr = audit_error(&env);
    assert_says(&stderr, &["the region is not set: set AWS_REGION"]);
}

#[test]
fn cli_audit_against_a_refused_endpoint() {
    let endpoint = refusing_endpoint();
    let stderr = audit_error(&with_credentials(&[
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_MAX_ATTEMPTS", "2"),
    ]));
    assert_says(
        &stderr,
        &[
            "GetCallerIdentity on the caller failed: could not connect to",
            &format!("{endpoint}: connection refused"),
        ],
    );
}

#[test]
fn cli_audit_against_a_404_page_and_a_500() {
    let page = Canned::start(404, "text/html", NOT_FOUND_PAGE);
    let stderr = audit_error(&with_credentials(&[("AWS_ENDPOINT_URL", &page.endpoint())]));
    assert_says(
        &stderr,
        &[&format!(
            "{} answered HTTP 404 with a body that is not an AWS error",
            page.endpoint()
        )],
    );
    assert!(!stderr.contains("Not Found</h1>"), "{stderr}");

    let broken = Canned::start(500, "text/plain", "upstream connect error or disconnect");
    let stderr = audit_error(&with_credentials(&[
        ("AWS_ENDPOINT_URL", &broken.endpoint()),
        ("AWS_MAX_ATTEMPTS", "2"),
    ]));
    assert_says(
        &stderr,
        &[&format!(
            "{} answered HTTP 500 with a body that is not an AWS error",
            broken.endpoint()
        )],
    );
}

#[test]
fn cli_audit_throttled_past_its_attempts() {
    let proxy = FaultProxy::start(&refusing_endpoint());
    proxy.push(Rule::any(Fault::Throttle));
    let stderr = audit_error(&with_credentials(&[
        ("AWS_ENDPOINT_URL", &proxy.endpoint()),
        ("AWS_MAX_ATTEMPTS", "2"),
    ]));
    assert_says(
        &stderr,
        &[
            "GetCallerIdentity on the caller failed:",
            "AWS was still throttling the call after 2 attempts (Throttling",
        ],
    );
}

#[test]
fn cli_audit_against_an_endpoint_that_never_answers() {
    let hole = BlackHole::start();
    let stderr = audit_error(&with_credentials(&[
        ("AWS_ENDPOINT_URL", &hole.endpoint()),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]));
    assert_says(
        &stderr,
        &[
            "GetCallerIdentity on the caller failed:",
            "did not answer in time",
        ],
    );
}
