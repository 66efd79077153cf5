//! The CloudFormation custom-resource protocol, kept apart from what the resource does: read the
//! event, budget the time, and answer exactly once with a body CloudFormation accepts, PUT to a
//! ResponseURL we are willing to call.

mod connect;
pub mod deadline;
pub mod driver;
pub mod envelope;
pub mod resource;
pub mod response;
pub mod sender;
pub mod trouble;

pub use deadline::{Deadlines, deadlines};
pub use driver::{Driver, Guarded, Outcome, guarded};
pub use envelope::{Envelope, RequestType, ResponseTarget};
pub use resource::{CustomResource, Done, Request};
pub use response::{Answer, MAX_BODY_BYTES, Status, render};
pub use sender::{AllowList, SendReport, Sender};

/// What can go wrong while speaking the protocol. Messages are read in the CloudFormation console
/// and in logs, so none of them carries the ResponseURL (its query is a signature).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the event is not a valid CloudFormation custom resource request: {0}")]
    BadEvent(String),

    #[error("the ResponseURL is not a valid URL ({0})")]
    InvalidResponseUrl(String),

    #[error("refusing to send the answer to `{host}`: {why}")]
    ResponseUrlRefused { host: String, why: String },

    #[error("cannot set up the HTTP client that answers CloudFormation: {0}")]
    HttpClient(String),

    #[error(
        "cannot answer CloudFormation over HTTPS at `{host}`: {why} (install ca-certificates or \
         set SSL_CERT_FILE)"
    )]
    HttpsUnavailable { host: String, why: String },

    #[error("`{host}` refused the answer with HTTP {status} (attempt {attempts}); not retried")]
    AnswerRejected {
        host: String,
        status: u16,
        attempts: u32,
    },

    #[error(
        "gave up answering to `{host}` at the deadline after {attempts} attempt(s); last: {last}"
    )]
    AnswerTimedOut {
        host: String,
        attempts: u32,
        last: String,
    },
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
