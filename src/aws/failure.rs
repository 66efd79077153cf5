//! What went wrong with an AWS call, in words a person can act on: AWS's error code and message
//! when AWS answered, otherwise what happened (no credentials, no region, could not connect, no
//! answer in time, an answer that is not AWS's). One mapping for the function's Reasons, the
//! audit and the CLI; never a type name, a `Debug` dump, a response body or a credential.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The response header through which [`super::http`] tells the mapping which endpoint answered
/// (an `HttpResponse` does not carry its request's URL).
pub(crate) const ENDPOINT_HEADER: &str = "x-vendor-grants-endpoint";

/// The attempts the clients make per call (set where the retry configuration is built), for
/// "still throttled after N attempts".
static ATTEMPTS: AtomicU32 = AtomicU32::new(super::MAX_ATTEMPTS);

pub(crate) fn set_attempts(n: u32) {
    ATTEMPTS.store(n, Ordering::Relaxed);
}

/// What happened, without the operation and resource (the caller adds those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// AWS answered with an error code.
    Aws {
        code: String,
        message: Option<String>,
    },
    /// AWS kept throttling the call; `attempts` when the retries were used up.
    Throttled {
        code: String,
        message: Option<String>,
        attempts: Option<u32>,
    },
    /// No credentials provider had any.
    NoCredentials,
    /// No region was configured, so no endpoint could be chosen.
    NoRegion,
    /// No connection could be made (or it broke before the answer).
    Connect {
        endpoint: Option<String>,
        why: String,
    },
    /// No answer came in time.
    TimedOut { endpoint: Option<String> },
    /// Something answered that is not AWS: an error status with a body that is no AWS error.
    NotAws {
        endpoint: Option<String>,
        /// None when the raw answer was no longer at hand.
        status: Option<u16>,
    },
    /// Anything else, as the errors' own words (their `Display` chain).
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at =
            |endpoint: &Option<String>| endpoint.clone().unwrap_or_else(|| "the endpoint".into());
        match self {
            Failure::Aws { code, message } => match message {
                Some(m) => write!(f, "{code}: {m}"),
                None => write!(f, "{code}"),
            },
            Failure::Throttled {
                code,
                message,
                attempts,
            } => {
                let said = match message {
                    Some(m) => format!("{code}: {m}"),
                    None => code.clone(),
                };
                match attempts {
                    Some(n) => write!(
                        f,
                        "AWS was still throttling the call after {n} attempts ({said}); \
                         retry later, or ask AWS to raise the rate limit"
                    ),
                    None => write!(f, "AWS throttled the call ({said})"),
                }
            }
            Failure::NoCredentials => f.write_str(
                "no AWS credentials found (looked in the environment, AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY; in the shared profile, AWS_PROFILE and ~/.aws; and in \
                 the instance metadata service, IMDS): set AWS_PROFILE or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (a Lambda function gets them from its execution role)",
            ),
            Failure::NoRegion => f.write_str(
                "the region is not set: set AWS_REGION (or `region` in the AWS_PROFILE's \
                 profile)",
            ),
            Failure::Connect { endpoint, why } => {
                write!(f, "could not connect to {}: {why}", at(endpoint))
            }
            Failure::TimedOut { endpoint } => write!(
                f,
                "{} did not answer in time (the attempt timed out); check the network path to it",
                at(endpoint)
            ),
            Failure::NotAws { endpoint, status } => {
                let status = status.map_or(String::new(), |s| format!(" HTTP {s}"));
                write!(
                    f,
                    "{} answered{status} with a body that is not an AWS error (an emulator or \
                     proxy in the way? check AWS_ENDPOINT_URL and any HTTPS proxy)",
                    at(endpoint)
                )
            }
            Failure::Other(words) => f.write_str(words),
        }
    }
}

/// The codes AWS throttles with (the SDK's retry classifier's list).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

fn aws(code: &str, message: Option<&str>, attempts: Option<u32>) -> Failure {
    let message = message.map(str::to_string).filter(|m| !m.trim().is_empty());
    if THROTTLING.contains(&code) {
        Failure::Throttled {
            code: code.to_string(),
            message,
            attempts,
        }
    } else {
        Failure::Aws {
            code: code.to_string(),
            message,
        }
    }
}

/// AWS's code and message for one failed attempt (no retries counted yet).
pub fn of_code(code: &str, message: Option<&str>) -> Failure {
    aws(code, message, None)
}

/// Any other error: credentials, region or a transport failure when its chain holds one, else its
/// `Display` words.
pub fn of_error(err: &(dyn StdError + 'static)) -> Failure {
    of_chain(err)
}

/// A whole SDK error, as the client returned it (it still has the raw answer's status).
pub fn of_sdk<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let attempts = Some(ATTEMPTS.load(Ordering::Relaxed));
    match err {
        SdkError::ServiceError(ctx) => match ctx.err().code() {
            Some(code) => aws(code, ctx.err().message(), attempts),
            None => not_aws(ctx.raw()),
        },
        SdkError::ResponseError(ctx) => not_aws(ctx.raw()),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => of_connector(c),
            None => of_chain(err),
        },
        SdkError::TimeoutError(_) => Failure::TimedOut { endpoint: None },
        _ => of_chain(err),
    }
}

/// An operation error (what `SdkError::into_service_error` gives): the code when AWS answered;
/// a failure that never reached AWS is found inside it.
pub fn of_operation<E>(err: &E) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let Some(code) = err.code() {
        return aws(code, err.message(), Some(ATTEMPTS.load(Ordering::Relaxed)));
    }
    // `into_service_error` keeps a failure that was not AWS's answer inside `Unhandled`.
    if let Some(sdk) = err
        .source()
        .and_then(|s| s.downcast_ref::<SdkError<E, HttpResponse>>())
    {
        return of_sdk(sdk);
    }
    if err
        .source()
        .and_then(|s| s.downcast_ref::<aws_smithy_types::error::ErrorMetadata>())
        .is_some()
    {
        // An answer without an error code: its status went with the raw answer.
        return Failure::NotAws {
            endpoint: None,
            status: None,
        };
    }
    of_chain(err)
}

fn not_aws(raw: &HttpResponse) -> Failure {
    Failure::NotAws {
        endpoint: raw.headers().get(ENDPOINT_HEADER).map(str::to_string),
        status: Some(raw.status().as_u16()),
    }
}

/// A transport failure: the endpoint comes from [`super::http`]'s error.
pub fn of_connector(c: &ConnectorError) -> Failure {
    let endpoint = find::<super::http::Unreachable>(c).map(|u| u.endpoint.clone());
    if find::<CredentialsError>(c).is_some() {
        return Failure::NoCredentials;
    }
    if c.is_timeout() {
        return Failure::TimedOut { endpoint };
    }
    let chain = chain_of(c);
    if no_region(c) {
        return Failure::NoRegion;
    }
    let why = if chain.contains("dns error") {
        "its name does not resolve (DNS)".to_string()
    } else if let Some(tls) = find::<rustls::Error>(c) {
        format!("TLS failed ({tls})")
    } else if let Some(io) = find::<std::io::Error>(c) {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::ConnectionReset => "the connection was reset".to_string(),
            std::io::ErrorKind::TimedOut => "connecting timed out".to_string(),
            _ => io.to_string(),
        }
    } else if chain.contains("connection closed") || chain.contains("IncompleteMessage") {
        "the connection closed before the answer".to_string()
    } else if endpoint.is_none() {
        return Failure::Other(chain);
    } else {
        chain
    };
    Failure::Connect { endpoint, why }
}

/// For a failure without a better description: credentials or region when the chain says so,
/// else the chain's `Display` words.
fn of_chain(err: &(dyn StdError + 'static)) -> Failure {
    if find::<CredentialsError>(err).is_some() {
        return Failure::NoCredentials;
    }
    if let Some(c) = find::<ConnectorError>(err) {
        return of_connector(c);
    }
    if no_region(err) {
        return Failure::NoRegion;
    }
    Failure::Other(chain_of(err))
}

/// Endpoint resolution failed for want of a region (the SDK's resolvers say "A region must be
/// set"; the error reaches us as a dispatch failure, not always as its own type).
fn no_region(err: &(dyn StdError + 'static)) -> bool {
    find::<ResolveEndpointError>(err).is_some_and(|e| e.to_string().contains("region"))
        || chain_of(err).contains("region must be set")
}

/// Every error of the chain in its `Display` form, joined with ": " (repeats dropped). This is
/// what the debug log keeps; it never uses `Debug`.
pub fn chain_of(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let words = e.to_string();
        if !words.is_empty() && !parts.iter().any(|p| p.contains(&words)) {
            parts.push(words);
        }
        next = e.source();
    }
    parts.join(": ")
}

pub(crate) fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// An error code and message read from an error answer's headers and body, in the forms the
/// services vendor-grants calls use: awsJson (`x-amzn-ErrorType`, `__type`, `message`), REST-XML
/// and query-XML (`<Code>`, `<Message>`). For a failed attempt, seen before the SDK parses it.
pub(crate) fn code_in_answer(
    headers: Option<&str>,
    body: &[u8],
) -> Option<(String, Option<String>)> {
    let text = std::str::from_utf8(body).unwrap_or("");
    let clean = |code: &str| {
        let code = code.split(':').next().unwrap_or(code);
        code.rsplit('#').next().unwrap_or(code).trim().to_string()
    };
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(text) {
        let code = headers
            .map(str::to_string)
            .or_else(|| o.get("__type").and_then(|v| v.as_str()).map(str::to_string))
            .or_else(|| o.get("code").and_then(|v| v.as_str()).map(str::to_string))?;
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_string));
        return Some((clean(&code), message));
    }
    if let Some(code) = headers {
        return Some((clean(code), None));
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    if text.contains("<Error>") || text.contains("<ErrorResponse") {
        let code = tag("Code")?;
        return Some((code, tag("Message")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_each_wire_format() {
        assert_eq!(
            code_in_answer(
                None,
                br#"{"__type":"com.amazon#ThrottlingException","message":"Rate exceeded"}"#
            ),
            Some(("ThrottlingException".into(), Some("Rate exceeded".into())))
        );
        assert_eq!(
            code_in_answer(Some("KMSInternalException:http://x"), b"{}"),
            Some(("KMSInternalException".into(), None))
        );
        assert_eq!(
            code_in_answer(
                None,
                b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce</Message></Error>"
            ),
            Some(("SlowDown".into(), Some("Reduce".into())))
        );
        assert_eq!(
            code_in_answer(None, b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code></Error></ErrorResponse>"),
            Some(("Throttling".into(), None))
        );
        assert_eq!(
            code_in_answer(None, b"<html><body>404 Not Found</body></html>"),
            None
        );
        assert_eq!(code_in_answer(None, b"oops"), None);
    }

    #[test]
    fn sentences_name_no_types() {
        let all = [
            aws("AccessDenied", Some("nope"), Some(3)),
            aws("SlowDown", Some("Reduce"), Some(25)),
            aws("SlowDown", None, None),
            Failure::NoCredentials,
            Failure::NoRegion,
            Failure::Connect {
                endpoint: Some("https://kms.us-east-1.amazonaws.com".into()),
                why: "connection refused".into(),
            },
            Failure::TimedOut { endpoint: None },
            Failure::NotAws {
                endpoint: Some("http://127.0.0.1:1".into()),
                status: Some(404),
            },
        ];
        for f in all {
            let s = f.to_string();
            for shape in [
                "Unhandled(",
                "ErrorMetadata {",
                "DispatchFailure",
                "ConnectorError",
                "SdkBody",
                "Some(",
            ] {
                assert!(!s.contains(shape), "{s}");
            }
        }
        assert_eq!(
            aws("SlowDown", Some("Reduce"), Some(25)).to_string(),
            "AWS was still throttling the call after 25 attempts (SlowDown: Reduce); retry later, \
             or ask AWS to raise the rate limit"
        );
    }
}
