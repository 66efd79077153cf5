//! The function: one CloudFormation event in, exactly one answer out. Whatever the work does (an
//! error, a panic, running out of time), the answer is sent before the deadline; a ResponseURL
//! outside the allow-list gets no request at all.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::Clients;
use crate::aws::lock::Locker;
use crate::catalog::{self, Catalog};
use crate::cfn::{
    self, Answer, Deadlines, Envelope, RequestType, ResponseTarget, Sender, Status, deadlines,
    render,
};
use crate::grant::allowed::Allowed;
use crate::lifecycle::{self, Done, Env, Home, Kind, Request};

/// The most of a Reason that goes into a log line: CloudWatch cuts events at 256 KB, and a Reason
/// quoting a huge value is no more useful whole.
const LOGGED_REASON_BYTES: usize = 2048;

/// Errors that stop the function from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Protocol(#[from] cfn::Error),
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}

/// What happened to one event, for the Lambda response and the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer reached CloudFormation.
    Answered { status: Status, attempts: u32 },
    /// The answer could not be delivered before the deadline.
    AnswerFailed { status: Status, error: String },
    /// No request was made: the event has no ResponseURL, or it is not allowed.
    NotAnswered { why: String },
}

/// The shared parts, built once per process.
pub struct Function {
    clients: Clients,
    locker: Locker,
    sender: Sender,
    catalog: &'static Catalog,
    allowed: Allowed,
}

fn kind(t: RequestType) -> Kind {
    match t {
        RequestType::Create => Kind::Create,
        RequestType::Update => Kind::Update,
        RequestType::Delete => Kind::Delete,
    }
}

impl Function {
    /// Clients from the standard AWS configuration, the lease store from
    /// `VENDOR_GRANTS_LOCK_TABLE`, the answer allow-list from `VENDOR_GRANTS_RESPONSE_HOSTS`.
    pub async fn from_env() -> Result<Function, Error> {
        let clients = Clients::from_env().await;
        let locker = Locker::from_env(&clients);
        let sender = Sender::new(cfn::AllowList::from_env())?;
        let allowed = Allowed::from_env();
        Ok(Function::new(
            clients,
            locker,
            sender,
            Catalog::builtin()?,
            allowed,
        ))
    }

    pub fn new(
        clients: Clients,
        locker: Locker,
        sender: Sender,
        catalog: &'static Catalog,
        allowed: Allowed,
    ) -> Self {
        Function {
            clients,
            locker,
            sender,
            catalog,
            allowed,
        }
    }

    /// Handles one event, as the raw payload Lambda delivered, and answers it. `function_arn` is
    /// the invoked function's ARN (the account and region it may act in); `lambda_deadline` the
    /// invocation's deadline. The payload is parsed here, not by the runtime, so that an event
    /// the JSON parser refuses (nested too deep, say) still gets its answer.
    pub async fn handle(
        self: &Arc<Self>,
        payload: &str,
        function_arn: &str,
        lambda_deadline: SystemTime,
    ) -> Outcome {
        let started = Instant::now();
        let (event, unreadable) = read_event(payload);
        let Some(target) = ResponseTarget::from_event(&event) else {
            error!(
                outcome = "not-answered",
                "the event has no ResponseURL; there is no one to answer"
            );
            return Outcome::NotAnswered {
                why: "no ResponseURL".to_string(),
            };
        };
        if let Err(e) = self.sender.allow_list().check(&target.response_url) {
            error!(outcome = "refused", request_id = %target.request_id, error = %e, "ResponseURL not allowed; no request made");
            return Outcome::NotAnswered { why: e.to_string() };
        }

        let parsed = match (unreadable, Home::from_function_arn(function_arn)) {
            (Some(why), _) => Err(why),
            (None, None) => Err(format!(
                "the function's own ARN {function_arn:?} (from the invocation) is not a Lambda \
                 function ARN, so its account and region are unknown; nothing was done"
            )),
            (None, Some(home)) => Envelope::parse(&event)
                .map(|e| (e, home))
                .map_err(|e| e.to_string()),
        };
        let (answer, request_type, grant_id, limits) = match parsed {
            Err(e) => {
                let limits = deadlines(SystemTime::now(), started, lambda_deadline, None);
                let physical = target
                    .physical_resource_id
                    .clone()
                    .unwrap_or_else(|| "vendor-grants:invalid-event".to_string());
                (
                    failed(physical, e),
                    "Unknown".to_string(),
                    String::new(),
                    limits,
                )
            }
            Ok((envelope, home)) => {
                let limits = deadlines(
                    SystemTime::now(),
                    started,
                    lambda_deadline,
                    envelope.service_timeout,
                );
                let request_type = envelope.request_type.to_string();
                let (answer, grant_id) = self.run(envelope, home, limits).await;
                (answer, request_type, grant_id, limits)
            }
        };

        let status = answer.status;
        let reason = answer
            .reason
            .as_deref()
            .map(|r| cfn::truncate_utf8(r, LOGGED_REASON_BYTES).to_string())
            .unwrap_or_default();
        let body = render(&target, &answer);
        let outcome = match self
            .sender
            .send(&target.response_url, body, limits.answer)
            .await
        {
            Ok(report) => Outcome::Answered {
                status,
                attempts: report.attempts,
            },
            Err(e) => Outcome::AnswerFailed {
                status,
                error: e.to_string(),
            },
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Outcome::Answered { attempts, .. } => info!(
                request_type = %request_type, grant_id = %grant_id, logical_id = %target.logical_resource_id,
                request_id = %target.request_id, status = ?status, reason = %reason, attempts, elapsed_ms,
                outcome = "answered", "event handled"
            ),
            Outcome::AnswerFailed { error, .. } => error!(
                request_type = %request_type, grant_id = %grant_id, logical_id = %target.logical_resource_id,
                request_id = %target.request_id, status = ?status, reason = %reason, error = %error, elapsed_ms,
                outcome = "answer-failed", "the answer could not be delivered"
            ),
            Outcome::NotAnswered { .. } => {}
        }
        outcome
    }

    /// Runs the lifecycle for one parsed event under the deadlines: its answer, and the grant id
    /// it acted on (for the logs).
    async fn run(
        self: &Arc<Self>,
        envelope: Envelope,
        home: Home,
        limits: Deadlines,
    ) -> (Answer, String) {
        let kind = kind(envelope.request_type);
        let failure_id = {
            let req = request(&envelope);
            lifecycle::physical_id_on_failure(self.catalog, kind, &req)
        };
        let grant_of_failure = crate::grant::grant_id_from_physical(&failure_id)
            .map(|g| g.to_string())
            .unwrap_or_default();
        let this = self.clone();
        let work = async move {
            let env = Env {
                home: &home,
                allowed: &this.allowed,
                clients: &this.clients,
                locker: &this.locker,
                catalog: this.catalog,
                deadline: limits.work,
            };
            let req = request(&envelope);
            match kind {
                Kind::Create => lifecycle::create(env, req).await,
                Kind::Update => lifecycle::update(env, req).await,
                Kind::Delete => lifecycle::delete(env, req).await,
            }
            .map_err(|e| format!("{} failed: {e}", envelope.request_type))
        };
        match guarded(Box::pin(work), limits.work).await {
            Guarded::Done(Ok(Done {
                physical_resource_id,
                grant_id,
                data,
            })) => (
                Answer {
                    status: Status::Success,
                    reason: None,
                    physical_resource_id,
                    data,
                    no_echo: false,
                },
                grant_id,
            ),
            Guarded::Done(Err(reason)) => (failed(failure_id, reason), grant_of_failure),
            Guarded::Panicked(message) => {
                error!(panic = %message, "the work panicked");
                (
                    failed(
                        failure_id,
                        format!(
                            "vendor-grants hit an internal error ({message}); nothing more was done. \
                             Retry; if it happens again, report it with the function's logs"
                        ),
                    ),
                    grant_of_failure,
                )
            }
            Guarded::TimedOut => {
                warn!("the work ran out of time and was stopped");
                (
                    failed(
                        failure_id,
                        "vendor-grants ran out of time (the earlier of the Lambda timeout and \
                         ServiceTimeout) and stopped before finishing: check that the function \
                         can reach S3, KMS, IAM and DynamoDB, raise its timeout or ServiceTimeout, \
                         then retry"
                            .to_string(),
                    ),
                    grant_of_failure,
                )
            }
        }
    }
}

/// The event as JSON, or, when the payload cannot be parsed whole (nested deeper than the
/// parser's limit, say), its top-level string fields, so that the answer can still be sent, and
/// why it could not be read.
fn read_event(payload: &str) -> (Value, Option<String>) {
    let error = match serde_json::from_str::<Value>(payload) {
        Ok(event) => return (event, None),
        Err(e) => e,
    };
    // Raw values are skipped without recursion, so a too-deep field does not stop this read.
    let Ok(fields) =
        serde_json::from_str::<BTreeMap<String, Box<serde_json::value::RawValue>>>(payload)
    else {
        return (
            Value::Null,
            Some(format!("the event is not a JSON object: {error}")),
        );
    };
    let mut event = serde_json::Map::new();
    let mut unreadable = Vec::new();
    for (name, raw) in fields {
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(value @ Value::String(_)) => {
                event.insert(name, value);
            }
            Ok(_) => {}
            Err(_) => unreadable.push(name),
        }
    }
    let why = if unreadable.is_empty() {
        format!("the event could not be read: {error}")
    } else {
        format!(
            "{} could not be read ({error}); values nested deeper than 128 levels are refused",
            unreadable.join(", ")
        )
    };
    (Value::Object(event), Some(why))
}

fn request(envelope: &Envelope) -> Request<'_> {
    Request {
        stack_id: &envelope.target.stack_id,
        logical_id: &envelope.target.logical_resource_id,
        request_id: &envelope.target.request_id,
        physical_id: envelope.target.physical_resource_id.as_deref(),
        properties: &envelope.resource_properties,
        old_properties: envelope.old_resource_properties.as_ref(),
    }
}

fn failed(physical_resource_id: String, reason: String) -> Answer {
    Answer {
        status: Status::Failed,
        reason: Some(reason),
        physical_resource_id,
        data: BTreeMap::new(),
        no_echo: false,
    }
}

/// How guarded work ended.
#[derive(Debug)]
pub enum Guarded<T> {
    Done(T),
    /// The work panicked; the panic's message.
    Panicked(String),
    /// The deadline came first; the work was stopped.
    TimedOut,
}

/// Runs `work` on its own task, so a panic in it is caught (the answer still goes out) and the
/// deadline can stop it wherever it is (a hung connection included).
pub async fn guarded<T, F>(work: F, deadline: Instant) -> Guarded<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut task = tokio::spawn(work);
    tokio::select! {
        joined = &mut task => match joined {
            Ok(value) => Guarded::Done(value),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                Guarded::Panicked(message)
            }
            Err(_) => Guarded::Panicked("the work was cancelled".to_string()),
        },
        _ = tokio::time::sleep_until(deadline) => {
            task.abort();
            Guarded::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panic_in_the_work_is_caught_with_its_message() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let result: Guarded<u32> =
            guarded(async { panic!("boom in the lifecycle") }, deadline).await;
        match result {
            Guarded::Panicked(m) => assert_eq!(m, "boom in the lifecycle"),
            other => panic!("expected a caught panic, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_stopped() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let result: Guarded<()> = guarded(std::future::pending(), deadline).await;
        assert!(matches!(result, Guarded::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn finished_work_returns_its_value() {
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(matches!(
            guarded(async { 7 }, deadline).await,
            Guarded::Done(7)
        ));
    }
}
