//! The built function as CloudFormation meets it: one process behind a Lambda Runtime API, with
//! a ResponseURL server, and the answer CloudFormation would read for each event.

use std::time::Duration;

use serde_json::Value;

use super::{Function, InvocationResult, ResponseServer, RuntimeApi, cfn_event, moto};

/// A running function with its runtime API and ResponseURL server.
pub struct Lambda {
    pub runtime: RuntimeApi,
    pub responses: ResponseServer,
    pub function: Function,
}

impl Lambda {
    pub fn start(env: &[(&str, &str)]) -> Lambda {
        let runtime = RuntimeApi::start();
        let responses = ResponseServer::start();
        let function = Function::spawn(&runtime, env);
        Lambda {
            runtime,
            responses,
            function,
        }
    }

    /// The function against moto with a lock table of its own (so the registry is on), and
    /// moto clients; the table's name too.
    pub async fn with_lock_table() -> (Lambda, super::Aws, String) {
        let aws = super::aws(&moto().endpoint).await;
        let table = super::unique("vg-locks");
        super::create_lock_table(&aws, &table).await;
        let l = Lambda::start(&[
            ("AWS_ENDPOINT_URL", &moto().endpoint),
            ("VENDOR_GRANTS_LOCK_TABLE", &table),
        ]);
        (l, aws, table)
    }

    pub fn with_moto() -> Lambda {
        Lambda::start(&[("AWS_ENDPOINT_URL", &moto().endpoint)])
    }

    /// Sends `event` and returns the answer CloudFormation received (the last PUT).
    pub fn answer(&self, event: Value, deadline: Duration) -> Value {
        let before = self.responses.requests().len();
        let id = self.runtime.invoke(event, deadline);
        let result = self
            .runtime
            .wait_result(&id, deadline + Duration::from_secs(5));
        assert!(
            matches!(result, Some(InvocationResult::Response(_))),
            "invocation did not complete: {result:?}\n{}",
            self.function.logs()
        );
        let requests = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        assert!(
            requests.len() > before,
            "no answer; logs:\n{}",
            self.function.logs()
        );
        let last = requests.last().unwrap();
        assert_eq!(last.method, "PUT");
        assert!(last.body.len() <= 4096);
        // The pre-signed URL expects no content type.
        assert!(
            last.header("content-type").is_none_or(str::is_empty),
            "{:?}",
            last.headers
        );
        last.json()
    }

    pub fn url(&self) -> String {
        self.responses.url("cfn/answer")
    }

    /// Sends a CloudFormation event for resource `DataVendorAccess` of `stack` ([`Lambda::event`])
    /// and returns the answer CloudFormation received, waiting up to a minute.
    pub fn send(
        &self,
        kind: &str,
        stack: &str,
        physical: Option<&str>,
        props: Value,
        old: Option<Value>,
    ) -> Value {
        let event = self.event(kind, stack, physical, props, old);
        self.answer(event, Duration::from_secs(60))
    }

    /// A CloudFormation event for resource `DataVendorAccess` of `stack`, answered to this
    /// function's ResponseURL server.
    pub fn event(
        &self,
        kind: &str,
        stack: &str,
        physical: Option<&str>,
        props: Value,
        old: Option<Value>,
    ) -> Value {
        cfn_event(
            kind,
            &self.url(),
            stack,
            "DataVendorAccess",
            physical,
            props,
            old,
        )
    }
}

/// Asserts that CloudFormation was answered SUCCESS.
#[track_caller]
pub fn ok(answer: &Value) {
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
}

/// The PhysicalResourceId an answer carries.
pub fn physical(answer: &Value) -> String {
    answer["PhysicalResourceId"]
        .as_str()
        .expect("an answer carries a PhysicalResourceId")
        .to_string()
}
