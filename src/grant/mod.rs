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

    /// A VendorPrincipal of another kind than the vendor's guide names.
    #[error("VendorPrincipal {value:?} is {found}, but {guide}; give that instead")]
    PrincipalKind {
        value: String,
        found: &'static str,
        guide: String,
    },

    /// A role that a whole account could assume without an external id.
    #[error(
        "VendorPrincipal {value:?} is a whole account, and vendor {vendor} sends no external id \
         when it assumes the role: every user and role of that account could assume it; name the \
         vendor's role ARN instead"
    )]
    AccountWithoutExternalId { value: String, vendor: String },

    /// A vendor whose fixed principals do not exist in the grant's partition.
    #[error(
        "Vendor {vendor}: {name}'s principal ({principals}) exists in the {allowed} partition \
         only, and this grant is in {partition}; use Vendor: custom with VendorPrincipal naming \
         the vendor's principal in {partition} (and Access)"
    )]
    PartitionNotServed {
        vendor: String,
        name: String,
        principals: String,
        allowed: String,
        partition: String,
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
