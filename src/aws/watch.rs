//! Each AWS call's attempts, noted for the Reason of an event that runs out of time
//! ([`crate::cfn::trouble`]): the SDK retries inside one call, so the error the retries keep
//! seeing never reaches vendor-grants' code before the deadline stops the work. Noted in the same
//! words as a returned error ([`super::failure`]); no body or credential is kept.

use std::error::Error as StdError;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use super::failure::{self, Failure};
use crate::cfn::trouble;

/// The call an attempt is for, as [`label`] names it.
#[derive(Debug, Clone)]
struct Call {
    label: String,
    endpoint: String,
}

impl Storable for Call {
    type Storer = StoreReplace<Self>;
}

/// The interceptor every client carries.
#[derive(Debug, Clone, Copy)]
pub struct Attempts;

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "vendor-grants-attempts"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The request is gone once sent: keep its label for the attempt's end.
        let call = Call {
            label: label(cfg, Some(context.request())),
            endpoint: endpoint_of(context.request().uri()),
        };
        trouble::begun(&call.label);
        cfg.interceptor_state().store_put(call);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (call, endpoint) = match cfg.load::<Call>() {
            Some(c) => (c.label.clone(), Some(c.endpoint.clone())),
            None => (label(cfg, context.request()), None),
        };
        match context.output_or_error() {
            Some(Ok(_)) => trouble::succeeded(&call),
            Some(Err(err)) => {
                let failure = if let Some(c) = err.as_connector_error() {
                    failure::of_connector(c)
                } else if err.is_timeout_error() {
                    Failure::TimedOut { endpoint }
                } else if let Some(response) =
                    context.response().filter(|r| r.status().as_u16() >= 300)
                {
                    let header = response.headers().get("x-amzn-errortype");
                    match failure::code_in_answer(header, response.body().bytes().unwrap_or(&[])) {
                        Some((code, message)) => failure::of_code(&code, message.as_deref()),
                        None => Failure::NotAws {
                            endpoint,
                            status: Some(response.status().as_u16()),
                        },
                    }
                } else {
                    failure::of_error(err as &(dyn StdError + 'static))
                };
                trouble::failed(&call, &failure.to_string());
            }
            None => {}
        }
        Ok(())
    }
}

/// A call the way errors name it: "PutKeyPolicy on KEY", the resource read from the request
/// (only names: a key id, table, role or bucket).
fn label(cfg: &ConfigBag, request: Option<&HttpRequest>) -> String {
    let (operation, service) = cfg
        .load::<Metadata>()
        .map_or(("a call", ""), |m| (m.name(), m.service()));
    match request.and_then(|r| resource_of(service, r)) {
        Some(resource) => format!("{operation} on {resource}"),
        None => match request {
            Some(r) => format!("{operation} to {}", endpoint_of(r.uri())),
            None => operation.to_string(),
        },
    }
}

/// Written where a call's error is mapped: the call as the caller names it.
pub(crate) fn failed(operation: &str, resource: &str, why: &str) {
    trouble::failed(&format!("{operation} on {resource}"), why);
}

fn endpoint_of(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map_or(String::new(), |p| format!(":{p}"))
        ),
        Err(_) => "the endpoint".to_string(),
    }
}

fn resource_of(service: &str, request: &HttpRequest) -> Option<String> {
    let body = request.body().bytes().unwrap_or(&[]);
    if service.eq_ignore_ascii_case("s3") {
        let url = url::Url::parse(request.uri()).ok()?;
        let host = url.host_str().unwrap_or("");
        if let Some((bucket, _)) = host.split_once(".s3.") {
            return Some(bucket.to_string());
        }
        return url
            .path_segments()
            .and_then(|mut s| s.next())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) {
        return ["KeyId", "TableName"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_string));
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "RoleName")
        .map(|(_, v)| v.into_owned())
}
