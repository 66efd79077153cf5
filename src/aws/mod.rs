//! The shell: thin wrappers over the S3, KMS, IAM and DynamoDB calls vendor-grants makes, one file
//! a service. They translate SDK errors into one error type that keeps the AWS error code (so the
//! lifecycle can tell "already gone" from "failed") and says what was being done, in the words of
//! [`failure`].

pub mod failure;
pub mod http;
pub mod iam;
pub mod kms;
pub mod list;
pub mod lock;
pub mod registry;
pub mod s3;
pub mod watch;

pub use failure::Failure;
pub use http::http_client;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// Errors of the AWS layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed; `code` is the AWS error code when there was one, `message` what
    /// happened in words ([`Failure`]).
    #[error("{operation} on {resource} failed: {}", said(code.as_deref(), message))]
    Service {
        operation: &'static str,
        resource: String,
        code: Option<String>,
        message: String,
    },

    /// The bucket, key, role or policy does not exist.
    #[error("{what} does not exist")]
    NotFound { what: String },

    /// A lease on a policy could not be had before the deadline.
    #[error(
        "timed out waiting for the lock on {resource}: another grant is writing it; retry the stack operation"
    )]
    LockTimeout { resource: String },

    /// The lease ran (nearly) out before a write: the AWS calls under it were too slow.
    #[error(
        "the lock on {resource} ran out before the write (AWS calls were slow); nothing more was \
         written; retry the stack operation"
    )]
    LeaseExpired { resource: String },

    #[error("the lock table {table} could not be used: {message}")]
    LockTable { table: String, message: String },
}

impl Error {
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// IAM has not yet propagated a principal the policy names (a role created moments ago).
    pub fn is_invalid_principal(&self) -> bool {
        match self {
            Error::Service { code, message, .. } => {
                let code = code.as_deref().unwrap_or("");
                let message = message.to_ascii_lowercase();
                (code == "MalformedPolicy" || code == "MalformedPolicyDocumentException")
                    && message.contains("principal")
            }
            _ => false,
        }
    }
}

/// The message, led by the code unless it already says it.
fn said(code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) if !message.contains(code) => format!("{code}: {message}"),
        _ => message.to_string(),
    }
}

/// Turns an operation error (`SdkError::into_service_error`) into [`Error::Service`]: AWS's code
/// and message, or what happened in words ([`failure::of_operation`]). Prefer [`sdk_error`],
/// which still has the answer's HTTP status and endpoint.
pub(crate) fn service_error<E>(operation: &'static str, resource: &str, err: E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = failure::of_operation(&err);
    mapped(operation, resource, err.code(), failure, &err)
}

/// Turns an SDK error into [`Error::Service`], as [`service_error`] but with what only the whole
/// error has: the HTTP status and endpoint of an answer that was not AWS's.
pub(crate) fn sdk_error<E>(
    operation: &'static str,
    resource: &str,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = failure::of_sdk(&err);
    mapped(operation, resource, err.code(), failure, &err)
}

fn mapped(
    operation: &'static str,
    resource: &str,
    code: Option<&str>,
    failure: Failure,
    err: &(dyn std::error::Error + 'static),
) -> Error {
    // The whole chain, for whoever debugs; never the Debug form (it holds raw answers).
    tracing::debug!(operation, resource, error = %failure::chain_of(err), "AWS call failed");
    let message = failure.to_string();
    watch::failed(operation, resource, &message);
    Error::Service {
        operation,
        resource: resource.to_string(),
        code: code.map(str::to_string),
        message,
    }
}

/// Attempts per AWS call. The SDK's default of 3 is far too few for a custom resource that has
/// minutes: a StackSets rollout throttles S3, KMS, IAM and DynamoDB at once. What really bounds
/// the retries is the event's deadline: the work is stopped there and FAILED is answered.
pub const MAX_ATTEMPTS: u32 = 25;

/// Standard retries (throttling, 5xx, connection errors and lost answers), with backoff that
/// starts short and is capped well below a Lambda timeout.
pub fn retries() -> RetryConfig {
    retries_of(MAX_ATTEMPTS)
}

/// [`retries`] with another number of attempts (the CLI honours `AWS_MAX_ATTEMPTS`).
pub fn retries_of(attempts: u32) -> RetryConfig {
    failure::set_attempts(attempts);
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(8))
}

/// A connection that hangs is abandoned for a new attempt.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .build()
}

/// The standard configuration loader (environment, `AWS_ENDPOINT_URL`, the Lambda role) with
/// vendor-grants' HTTP client, retries and timeouts; `AWS_MAX_ATTEMPTS`, when set, replaces the
/// number of attempts.
pub fn config_loader() -> aws_config::ConfigLoader {
    let attempts = std::env::var("AWS_MAX_ATTEMPTS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAX_ATTEMPTS);
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeouts())
        .retry_config(retries_of(attempts))
}

/// The function's configuration, built from what Lambda gives every function: the execution
/// role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, the
/// region in `AWS_REGION`, and (for an emulator) `AWS_ENDPOINT_URL`. aws-config's full provider
/// chain (profile files, SSO, web identity through STS, IMDS, the container endpoint) is for
/// terminals and hosts; a Lambda never takes it, and leaving it out of the function keeps about
/// 100 KB out of the zip. The CLI still uses [`config_loader`]. Retries, timeouts and the HTTP
/// client are the same as there.
pub fn lambda_config(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_sdk_s3::config::SharedCredentialsProvider;

    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"));
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .region(region.map(aws_config::Region::new))
        .http_client(http_client())
        .timeout_config(timeouts())
        .retry_config(retries());
    if let Some(url) = set("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// The clients, built once per process and shared by every event.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// For the audit: whether owning stacks still exist.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// The region the clients talk to: the bucket's and key's.
    pub region: String,
}

impl Clients {
    /// The function's clients, from what Lambda puts in the environment (see [`lambda_config`]).
    /// With an endpoint override S3 uses path-style addressing, as emulators need.
    pub fn from_lambda_env() -> Clients {
        Self::from_config(&lambda_config(|name| std::env::var(name).ok()))
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Clients {
        let path_style = config.endpoint_url().is_some();
        // Every client reports each failed attempt to `watch`, for the Reason of an event that
        // runs out of time while the SDK is still retrying.
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .interceptor(watch::Attempts)
            .build();
        let kms = aws_sdk_kms::config::Builder::from(config)
            .interceptor(watch::Attempts)
            .build();
        let iam = aws_sdk_iam::config::Builder::from(config)
            .interceptor(watch::Attempts)
            .build();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(watch::Attempts)
            .build();
        let cloudformation = aws_sdk_cloudformation::config::Builder::from(config)
            .interceptor(watch::Attempts)
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            kms: aws_sdk_kms::Client::from_conf(kms),
            iam: aws_sdk_iam::Client::from_conf(iam),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            cloudformation: aws_sdk_cloudformation::Client::from_conf(cloudformation),
            region: config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, lambda_config};

    #[test]
    fn lambda_config_takes_region_and_endpoint_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = lambda_config(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(c.credentials_provider().is_some());
        assert_eq!(
            c.retry_config().map(|r| r.max_attempts()),
            Some(super::MAX_ATTEMPTS)
        );

        // AWS_DEFAULT_REGION when AWS_REGION is unset or blank; a blank endpoint is none.
        let c = lambda_config(env(&[
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", ""),
        ]));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(c.endpoint_url(), None);
    }

    fn service(code: &str, message: &str) -> Error {
        Error::Service {
            operation: "PutKeyPolicy",
            resource: "k".to_string(),
            code: Some(code.to_string()),
            message: message.to_string(),
        }
    }

    #[test]
    fn invalid_principal_is_recognised_as_s3_and_kms_word_it() {
        // S3: MalformedPolicy "Invalid principal in policy"; KMS: MalformedPolicyDocumentException
        // "Policy contains a statement with one or more invalid principals."
        assert!(service("MalformedPolicy", "Invalid principal in policy").is_invalid_principal());
        assert!(
            service(
                "MalformedPolicyDocumentException",
                "Policy contains a statement with one or more invalid principals."
            )
            .is_invalid_principal()
        );
        assert!(!service("MalformedPolicy", "Policy has invalid resource").is_invalid_principal());
        assert!(!service("AccessDenied", "invalid principal").is_invalid_principal());
        assert!(
            !Error::NotFound {
                what: "x".to_string()
            }
            .is_invalid_principal()
        );
    }
}
