//! The driver: one invocation's payload in, exactly one answer out, for any [`CustomResource`].
//! Whatever the resource does (an error, a panic, running out of time), the answer is sent before
//! the deadline; a ResponseURL outside the allow-list gets no request at all. It knows nothing of
//! what the resource is.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::resource::{CustomResource, Done, Request};
use super::{
    Answer, Deadlines, Envelope, RequestType, ResponseTarget, Sender, Status, deadlines, render,
    trouble, truncate_utf8,
};

/// The most of a Reason that goes into a log line: CloudWatch cuts events at 256 KB, and a Reason
/// quoting a huge value is no more useful whole.
const LOGGED_REASON_BYTES: usize = 2048;

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

impl Outcome {
    /// What the invocation returns to Lambda.
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Answered { status, attempts } => {
                json!({"answered": true, "status": format!("{status:?}"), "attempts": attempts})
            }
            Outcome::AnswerFailed { status, error } => {
                json!({"answered": false, "status": format!("{status:?}"), "error": error})
            }
            Outcome::NotAnswered { why } => json!({"answered": false, "why": why}),
        }
    }
}

/// Drives a resource through the protocol; build one per process.
pub struct Driver<R> {
    resource: Arc<R>,
    sender: Sender,
}

impl<R: CustomResource> Driver<R> {
    pub fn new(resource: R, sender: Sender) -> Self {
        Driver {
            resource: Arc::new(resource),
            sender,
        }
    }

    pub fn resource(&self) -> &R {
        &self.resource
    }

    /// Handles one event, as the raw payload Lambda delivered, and answers it. `function_arn` is
    /// the invoked function's ARN; `lambda_deadline` the invocation's deadline. The payload is
    /// parsed here, not by the runtime, so that an event the JSON parser refuses (nested too
    /// deep, say) still gets its answer.
    pub async fn handle(
        &self,
        payload: &str,
        function_arn: &str,
        lambda_deadline: SystemTime,
    ) -> Outcome {
        let started = Instant::now();
        let (event, unreadable) = read_event(payload);
        let Some(target) = ResponseTarget::from_event(&event).map(ResponseTarget::capped) else {
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
        let parsed = match unreadable {
            Some(why) => Err(why),
            None => Envelope::parse(&event).map_err(|e| e.to_string()),
        };
        let (answer, request_type, log_id, limits) = match parsed {
            Err(reason) => {
                let limits = deadlines(SystemTime::now(), started, lambda_deadline, None);
                let physical = target
                    .physical_resource_id
                    .clone()
                    .unwrap_or_else(|| format!("{}:invalid-event", R::NAME));
                (failed(physical, reason), None, None, limits)
            }
            Ok(envelope) => {
                let limits = deadlines(
                    SystemTime::now(),
                    started,
                    lambda_deadline,
                    envelope.service_timeout,
                );
                let request_type = envelope.request_type;
                let req = request(envelope, function_arn, limits.work);
                let (answer, log_id) = self.run(req, limits).await;
                (answer, Some(request_type), log_id, limits)
            }
        };
        self.answer(&target, &answer, limits, started, request_type, log_id)
            .await
    }

    /// Sends the answer and logs the outcome, one line per event.
    async fn answer(
        &self,
        target: &ResponseTarget,
        answer: &Answer,
        limits: Deadlines,
        started: Instant,
        request_type: Option<RequestType>,
        log_id: Option<String>,
    ) -> Outcome {
        let status = answer.status;
        let body = render(target, answer);
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
        let request_type = request_type.map_or("Unknown".to_string(), |t| t.to_string());
        let resource_id = log_id.unwrap_or_default();
        let reason = truncate_utf8(answer.reason.as_deref().unwrap_or(""), LOGGED_REASON_BYTES);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Outcome::Answered { attempts, .. } => info!(
                request_type = %request_type, grant_id = %resource_id, logical_id = %target.logical_resource_id,
                request_id = %target.request_id, status = ?status, reason = %reason, attempts, elapsed_ms,
                outcome = "answered", "event handled"
            ),
            Outcome::AnswerFailed { error, .. } => error!(
                request_type = %request_type, grant_id = %resource_id, logical_id = %target.logical_resource_id,
                request_id = %target.request_id, status = ?status, reason = %reason, error = %error, elapsed_ms,
                outcome = "answer-failed", "the answer could not be delivered"
            ),
            Outcome::NotAnswered { .. } => {}
        }
        outcome
    }

    /// Runs the resource's work for one request under the deadlines: the answer, and what the
    /// log line names the resource by.
    async fn run(&self, req: Request, limits: Deadlines) -> (Answer, Option<String>) {
        let failure_id = self.resource.physical_id_on_failure(&req);
        let resource = self.resource.clone();
        let request_type = req.request_type;
        let work = async move {
            match req.request_type {
                RequestType::Create => resource.create(&req).await,
                RequestType::Update => resource.update(&req).await,
                RequestType::Delete => resource.delete(&req).await,
            }
        };
        // What the work was last stuck on, for a Reason when the deadline stops it.
        let trouble = trouble::Slot::default();
        let work = trouble::scope(trouble.clone(), work);
        let reason = match guarded(work, limits.work).await {
            Guarded::Done(Ok(Done {
                physical_resource_id,
                data,
                log_id,
            })) => {
                let answer = Answer {
                    status: Status::Success,
                    reason: None,
                    physical_resource_id,
                    data,
                    no_echo: false,
                };
                return (answer, log_id);
            }
            Guarded::Done(Err(reason)) => format!("{request_type} failed: {reason}"),
            Guarded::Panicked(message) => {
                error!(panic = %message, "the work panicked");
                format!(
                    "{} hit an internal error ({message}); nothing more was done. \
                     Retry; if it happens again, report it with the function's logs",
                    R::NAME
                )
            }
            Guarded::TimedOut => {
                let last = trouble.summary();
                warn!(
                    last_call = last.as_deref().unwrap_or(""),
                    "the work ran out of time and was stopped"
                );
                timed_out_reason(R::NAME, R::REACHES, last.as_deref())
            }
        };
        (failed(failure_id.clone(), reason), log_id_of(&failure_id))
    }
}

/// The Reason of work the deadline stopped: with the last call and its error when one kept
/// failing (or had no answer yet), since that is most often why.
fn timed_out_reason(name: &str, reaches: &str, last: Option<&str>) -> String {
    match last {
        Some(last) => format!(
            "{name} ran out of time (the earlier of the Lambda timeout and ServiceTimeout); {last}. \
             Fix that, or raise the function's timeout or ServiceTimeout, then retry"
        ),
        None => format!(
            "{name} ran out of time (the earlier of the Lambda timeout and ServiceTimeout) and \
             stopped before finishing: check that the function can reach {reaches}, raise its \
             timeout or ServiceTimeout, then retry"
        ),
    }
}

/// The resource's id inside a PhysicalResourceId `PREFIX:ID:...`, for the log line.
fn log_id_of(physical: &str) -> Option<String> {
    physical.split(':').nth(1).map(str::to_string)
}

fn request(envelope: Envelope, function_arn: &str, deadline: Instant) -> Request {
    Request {
        request_type: envelope.request_type,
        stack_id: envelope.target.stack_id,
        request_id: envelope.target.request_id,
        logical_resource_id: envelope.target.logical_resource_id,
        physical_resource_id: envelope.target.physical_resource_id,
        resource_type: envelope.resource_type,
        properties: envelope.resource_properties,
        old_properties: envelope.old_resource_properties,
        function_arn: function_arn.to_string(),
        deadline,
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
        serde_json::from_str::<HashMap<String, Box<serde_json::value::RawValue>>>(payload)
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
    unreadable.sort();
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
