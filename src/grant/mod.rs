//! A grant: its properties as CloudFormation sends them, its id, and the plan that turns the
//! current policies and the properties into the policies and role documents to write. Pure.

pub mod allowed;
pub mod id;
pub mod plan;
pub mod properties;
pub mod record;

pub use id::{derive_grant_id, grant_id_from_physical, physical_resource_id};
pub use plan::{Plan, PlanInput, Removal, RolePlan, plan, plan_removal, role_plan};
pub use properties::{GrantProperties, RawProperties, VALID_PROPERTIES};
pub use record::GrantRecord;

use crate::{catalog, policy};

/// Errors of the grant layer: bad input, named by property, with what would be valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("ResourceProperties must be an object of property names to values")]
    NotAnObject,

    #[error(
        "unknown property {property}; valid properties are {}",
        VALID_PROPERTIES.join(", ")
    )]
    UnknownProperty { property: String },

    #[error("property {property} must be a string")]
    NotAString { property: String },

    #[error("property {property} is required: {hint}")]
    Missing {
        property: &'static str,
        hint: String,
    },

    #[error("{property} {value:?} is not valid; expected {valid}")]
    InvalidValue {
        property: &'static str,
        value: String,
        valid: String,
    },

    /// For properties whose value must never be repeated (ExternalId).
    #[error("{property} {problem}")]
    Secret {
        property: &'static str,
        problem: String,
    },

    #[error("KmsKeyArn {key:?} has not been resolved to a key ARN (DescribeKey)")]
    KeyNotResolved { key: String },

    #[error("the key policy of KmsKeyArn could not be read, so it cannot be merged into")]
    KeyPolicyUnknown,

    #[error(
        "the key policy would be left with no statements; KMS keys always need a policy, so it is left as it is"
    )]
    KeyPolicyWouldBeEmpty,

    #[error(transparent)]
    Policy(#[from] policy::Error),

    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}
