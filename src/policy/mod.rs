//! Pure IAM policy handling: the document model, comparison by meaning, the owned-statement
//! merge, and the checks for what AWS would reject. No I/O here.

pub mod arn;
pub mod canonical;
pub mod diff;
pub mod document;
pub mod lint;
pub mod ownership;

pub use canonical::{contains_all, documents_equivalent, statements_equivalent};
pub use document::{Condition, OneOrMany, POLICY_VERSION, PolicyDocument, Principal, Statement};
pub use lint::PolicyKind;
pub use ownership::{
    Claim, GrantId, Purpose, grant_of_sid, is_owned, merge, owner_of_statement, remove,
};

/// Errors of the policy layer, worded for the person reading the CloudFormation console.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("the current {what} is not a valid policy document: {detail}")]
    Malformed { what: String, detail: String },

    #[error(
        "the current {what} has a key written twice: {place} has {key} twice. A JSON parser keeps \
         only one of them (which one differs), so the document cannot be read as its author meant \
         it, and nothing is written: remove one of them from the {what}, then retry"
    )]
    DuplicateKey {
        what: String,
        place: String,
        key: String,
    },

    #[error(
        "the {what} already has a statement with Sid {sid} that vendor-grants did not write; \
         rename that statement's Sid, then retry"
    )]
    SidConflict { what: String, sid: String },

    #[error("internal error: statement {sid:?} is not owned by grant {grant}")]
    NotOwned { sid: String, grant: String },

    #[error("internal error: the {what} would hold Sid {sid} twice")]
    DuplicateSid { what: String, sid: String },

    #[error(
        "the {what} would be {size} bytes, over AWS's limit of {limit}; \
         remove statements from it or grant fewer buckets/keys per policy"
    )]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },

    #[error("{property} {value:?} is not a valid principal: {reason}")]
    InvalidPrincipal {
        property: String,
        value: String,
        reason: String,
    },

    #[error("Prefix {value:?} is not valid: {reason}")]
    InvalidPrefix { value: String, reason: String },

    #[error("Sid {sid:?} is not valid: a Sid must be letters and digits only")]
    InvalidSid { sid: String },

    #[error(
        "the {what}'s statement {sid} names {id}, the id AWS shows for a deleted role or user; AWS \
         refuses to write a policy naming it back, so the {what} cannot be changed: remove that \
         principal (or the statement), then retry"
    )]
    DeletedPrincipal {
        what: String,
        sid: String,
        id: String,
    },

    #[error("internal error: statement {sid} would be rejected by AWS: {detail}")]
    InvalidStatement { sid: String, detail: String },
}
