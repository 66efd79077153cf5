//! Proves the shared test harness (tests/common) works, independently of the Lambda binary.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest;
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn moto_bucket_policy_round_trips() {
    let aws = aws(&moto().endpoint).await;
    let bucket = unique("selftest");
    create_bucket(&aws, &bucket).await;
    assert_eq!(bucket_policy(&aws, &bucket).await, None);

    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadForVendor", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::475757276268:root"},
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*"),
    }]});
    put_bucket_policy(&aws, &bucket, &policy).await;
    assert_eq!(bucket_policy(&aws, &bucket).await, Some(policy));
}

#[tokio::test]
async fn moto_kms_default_key_policy_reads_back() {
    let aws = aws(&moto().endpoint).await;
    let (key_id, key_arn) = create_key(&aws).await;
    assert_eq!(
        key_arn,
        format!("arn:aws:kms:us-east-1:123456789012:key/{key_id}")
    );
    let policy = key_policy(&aws, &key_id).await;
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
}

#[tokio::test]
async fn moto_lock_table_and_iam_documents() {
    let aws = aws(&moto().endpoint).await;
    let table = unique("locks");
    create_lock_table(&aws, &table).await;
    let described = aws
        .ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let key = &described.table().unwrap().key_schema()[0];
    assert_eq!(key.attribute_name(), "LockId");

    // IAM hands policy documents back percent-encoded; url_decode restores them exactly.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::307185671274:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"a+b c&d%"}}}]}"#;
    let role = unique("role");
    aws.iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let got = aws.iam.get_role().role_name(&role).send().await.unwrap();
    let doc = got.role().unwrap().assume_role_policy_document().unwrap();
    assert_ne!(doc, trust, "moto is expected to percent-encode");
    assert_eq!(url_decode(doc), trust);
}

#[test]
fn unique_names_are_distinct_valid_bucket_names() {
    let (a, b) = (unique("My_Prefix"), unique("My_Prefix"));
    assert_ne!(a, b);
    for name in [a, b] {
        assert!(name.len() >= 3 && name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
    assert_eq!(
        url_decode("%7B%22a%22%3A%22x+y%20z%22%7D"),
        r#"{"a":"x+y z"}"#
    );
}

#[test]
fn runtime_api_delivers_events_and_records_results() {
    let api = RuntimeApi::start();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    // Two clients long-poll before anything is queued; each gets one event. Each then answers
    // on the same keep-alive connection it polled on.
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let addr = api.addr();
            thread::spawn(move || {
                let mut client = HttpClient::connect(&addr).unwrap();
                let next = client
                    .request("GET", "/2018-06-01/runtime/invocation/next", &[], b"")
                    .unwrap();
                let id = next
                    .header("lambda-runtime-aws-request-id")
                    .unwrap()
                    .to_string();
                let event: serde_json::Value = serde_json::from_slice(&next.body).unwrap();
                let outcome = if event["n"] == 1 { "response" } else { "error" };
                let path = format!("/2018-06-01/runtime/invocation/{id}/{outcome}");
                let posted = client
                    .request("POST", &path, &[], br#"{"ok":true}"#)
                    .unwrap();
                assert_eq!(posted.status, 202);
                (next, id)
            })
        })
        .collect();

    let id1 = api.invoke(json!({"n": 1}), Duration::from_secs(60));
    let id2 = api.invoke(json!({"n": 2}), Duration::from_secs(60));
    assert_ne!(id1, id2);

    assert_eq!(
        api.wait_result(&id1, WAIT),
        Some(InvocationResult::Response(br#"{"ok":true}"#.to_vec()))
    );
    assert_eq!(
        api.wait_result(&id2, WAIT),
        Some(InvocationResult::Error(br#"{"ok":true}"#.to_vec()))
    );

    let mut seen = Vec::new();
    for poller in pollers {
        let (next, id) = poller.join().unwrap();
        assert_eq!(next.status, 200);
        assert_eq!(next.header("content-type"), Some("application/json"));
        assert_eq!(
            next.header("content-length"),
            Some(next.body.len().to_string().as_str())
        );
        assert_eq!(
            next.header("lambda-runtime-invoked-function-arn"),
            Some(FUNCTION_ARN)
        );
        let deadline: u64 = next
            .header("lambda-runtime-deadline-ms")
            .unwrap()
            .parse()
            .unwrap();
        assert!(deadline >= before_ms + 59_000 && deadline <= before_ms + 70_000);
        seen.push(id);
    }
    seen.sort();
    let mut expected = vec![id1, id2];
    expected.sort();
    assert_eq!(seen, expected);

    assert_eq!(
        api.wait_result("no-such-id", Duration::from_millis(50)),
        None
    );
}

#[test]
fn runtime_api_keeps_events_from_departed_clients() {
    let api = RuntimeApi::start();
    // A client polls and goes away (a killed function); the event must go to the next poller.
    let mut gone = TcpStream::connect(api.addr()).unwrap();
    gone.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    drop(gone); // on loopback the FIN is there at once; no sleep needed
    let id = api.invoke(json!({"n": 1}), Duration::from_secs(60));
    let mut client = HttpClient::connect(&api.addr()).unwrap();
    let next = client
        .request("GET", "/2018-06-01/runtime/invocation/next", &[], b"")
        .unwrap();
    assert_eq!(
        next.header("lambda-runtime-aws-request-id"),
        Some(id.as_str())
    );
}

#[test]
fn response_server_records_and_fails_on_demand() {
    let server = ResponseServer::start();
    let url = server.url("cfn/response-1");
    assert!(url.contains(SECRET_SIGNATURE));
    let path = url.strip_prefix("http://").unwrap();
    let (addr, path) = path.split_at(path.find('/').unwrap());

    server.fail_next(2, 503);
    let mut client = HttpClient::connect(addr).unwrap();
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            let body = format!(r#"{{"Status":"SUCCESS","Try":{i}}}"#);
            let headers = [("Content-Type", "")];
            client
                .request("PUT", path, &headers, body.as_bytes())
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses, [503, 503, 200]);

    let requests = server.wait_requests(3, WAIT);
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(last.method, "PUT");
    assert_eq!(last.path, path);
    assert_eq!(last.header("Content-Type"), Some(""));
    assert_eq!(
        last.header("content-length"),
        Some(last.body.len().to_string().as_str())
    );
    assert_eq!(last.json(), json!({"Status": "SUCCESS", "Try": 2}));
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn response_server_takes_the_senders_put() {
    // The function answers CloudFormation with its own Sender; check the server speaks its HTTP.
    use vendor_grants::cfn::{AllowList, Sender};
    let server = ResponseServer::start();
    let sender = Sender::new(AllowList::parse(Some("127.0.0.1"))).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let report = sender
        .send(
            &server.url("r"),
            br#"{"Status":"FAILED"}"#.to_vec(),
            deadline,
        )
        .await
        .unwrap();
    assert_eq!((report.attempts, report.status), (1, 200));
    let got = server.wait_requests(1, WAIT);
    assert_eq!(got[0].json(), json!({"Status": "FAILED"}));
    assert_eq!(got[0].header("content-type"), Some(""));
}

#[test]
fn black_hole_accepts_and_never_answers() {
    let hole = BlackHole::start();
    let addr = hole.endpoint().strip_prefix("http://").unwrap().to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let err = conn.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(poll(WAIT, || hole.accepted() == 1));
}

#[test]
fn function_gets_lambda_env_and_logs_are_captured() {
    let api = RuntimeApi::start();
    let script = "echo \"api=$AWS_LAMBDA_RUNTIME_API log=$RUST_LOG endpoint=$AWS_ENDPOINT_URL\"; \
                  echo on-stderr >&2; exec sleep 60";
    let mut function = Function::spawn_program(
        "/bin/sh",
        &["-c", script],
        &api,
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("RUST_LOG", "debug"),
        ],
    );
    let expected = format!("api={} log=debug endpoint=http://127.0.0.1:1", api.addr());
    assert!(function.wait_logs(&expected, WAIT), "{}", function.logs());
    assert!(function.wait_logs("on-stderr", WAIT), "{}", function.logs());
    assert_eq!(function.try_wait(), None);

    let pid = function.pid() as i32;
    drop(function);
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the process outlived Function's drop");
}

#[test]
fn cfn_events_parse_as_cloudformation_requests() {
    let url = "http://127.0.0.1:9/r?X-Amz-Signature=x";
    let props = json!({"Vendor": "telus", "BucketName": "b"});
    let create = cfn_event(
        "Create",
        url,
        "my-stack",
        "Grant",
        None,
        props.clone(),
        None,
    );
    let update = cfn_event(
        "Update",
        url,
        "my-stack",
        "Grant",
        Some("vg-1"),
        props.clone(),
        Some(json!({"Vendor": "telus", "BucketName": "a"})),
    );
    assert_eq!(create["StackId"], update["StackId"]);
    assert_ne!(create["RequestId"], update["RequestId"]);
    assert!(
        create["StackId"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cloudformation:us-east-1:123456789012:stack/my-stack/")
    );
    assert_eq!(create["ResourceProperties"]["ServiceToken"], FUNCTION_ARN);
    assert_eq!(update["OldResourceProperties"]["BucketName"], "a");

    match serde_json::from_value(create).unwrap() {
        CloudFormationCustomResourceRequest::<serde_json::Value, serde_json::Value>::Create(c) => {
            assert_eq!(c.resource_type, "Custom::VendorGrant");
            assert_eq!(c.response_url, url);
        }
        _ => panic!("not a Create"),
    }
    match serde_json::from_value(update).unwrap() {
        CloudFormationCustomResourceRequest::<serde_json::Value, serde_json::Value>::Update(u) => {
            assert_eq!(u.physical_resource_id, "vg-1");
        }
        _ => panic!("not an Update"),
    }
}
