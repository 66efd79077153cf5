//! vendor-grants: a CloudFormation custom resource that merges a data vendor's grants into an S3
//! bucket policy and KMS key policy (or creates the role the vendor assumes), owning exactly its
//! own statements.
//!
//! The map of the crate, data flowing one way:
//! - [`policy`]: pure IAM policy documents: model, comparison by meaning, owned-statement merge,
//!   limits and lints for what AWS would reject.
//! - [`catalog`]: pure vendor profiles as data (`catalog/vendors.toml`) and the Access levels.
//! - [`grant`]: pure properties -> grant id -> plan (current policies + properties -> desired).
//! - `bin/vendor-grants`: the CLI (`plan`), a thin clap layer over the above.

pub mod aws;
pub mod catalog;
pub mod grant;
pub mod lifecycle;
pub mod policy;
