//! What a custom resource implements: Create, Update and Delete, and the PhysicalResourceId to
//! answer with when its work fails. Everything else of the protocol (reading the event, the
//! deadline, catching panics, answering exactly once) is the [`super::Driver`]'s, as in crhelper's
//! `CfnResource`.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::Value;
use tokio::time::Instant;

use super::RequestType;

/// One request, as the resource sees it.
#[derive(Clone, PartialEq)]
pub struct Request {
    pub request_type: RequestType,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// `None` for a Create.
    pub physical_resource_id: Option<String>,
    pub resource_type: String,
    /// An object (an empty one when the template gives no properties).
    pub properties: Value,
    /// Update only.
    pub old_properties: Option<Value>,
    /// The invoked function's ARN, from the invocation context: the account and region the
    /// function acts in, which no event can choose.
    pub function_arn: String,
    /// When the work must stop, leaving time to answer.
    pub deadline: Instant,
}

// By hand: the properties may hold secrets (an ExternalId); their names are enough to debug with.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("request_type", &self.request_type)
            .field("stack_id", &self.stack_id)
            .field("request_id", &self.request_id)
            .field("logical_resource_id", &self.logical_resource_id)
            .field("physical_resource_id", &self.physical_resource_id)
            .field(
                "properties",
                &super::envelope::property_names(&self.properties),
            )
            .finish_non_exhaustive()
    }
}

/// A successful request: what CloudFormation is told.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Done {
    pub physical_resource_id: String,
    /// The attributes (`Fn::GetAtt`).
    pub data: BTreeMap<String, String>,
    /// What the log line names the resource by (a grant id), if anything.
    pub log_id: Option<String>,
}

/// A custom resource. Errors are the FAILED Reason, written for the CloudFormation console: what
/// is wrong and what to do.
pub trait CustomResource: Send + Sync + 'static {
    /// How the resource names itself in a Reason ("vendor-grants ran out of time") and in the
    /// PhysicalResourceId of an event that could not be read (`NAME:invalid-event`).
    const NAME: &'static str;

    /// What the work must reach, for the Reason of an answer that ran out of time.
    const REACHES: &'static str = "the services it works on";

    fn create(&self, req: &Request) -> impl Future<Output = Result<Done, String>> + Send;
    fn update(&self, req: &Request) -> impl Future<Output = Result<Done, String>> + Send;
    fn delete(&self, req: &Request) -> impl Future<Output = Result<Done, String>> + Send;

    /// The PhysicalResourceId of a FAILED answer (the work failed, panicked or ran out of time).
    /// A failed Create must answer with the id its rollback Delete can clean up with.
    fn physical_id_on_failure(&self, req: &Request) -> String;
}
