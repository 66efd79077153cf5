//! vendor-grants: a CloudFormation custom resource that merges a data vendor's grants into an S3
//! bucket policy and KMS key policy (or creates the role the vendor assumes), owning exactly its
//! own statements.
//!
//! The map of the crate, data flowing one way:
//! - [`policy`]: pure IAM policy documents: model, comparison by meaning, owned-statement merge,
//!   limits and lints for what AWS would reject.
//! - [`catalog`]: pure vendor profiles as data (`catalog/vendors.toml`) and the Access levels.
//! - [`grant`]: pure properties -> grant id -> plan (current policies + properties -> desired).
//! - [`cfn`]: the CloudFormation protocol: envelope, answer body budget, ResponseURL sender with
//!   retries and allow-list, deadlines.
//! - [`aws`]: the shell: S3, KMS, IAM and the DynamoDB lease, one file a service.
//! - [`lifecycle`]: Create/Update/Delete: read -> plan -> write -> verify.
//! - [`function`]: one event in, exactly one answer out (panics and deadlines included).
//! - `bin/vendor-grants-lambda`: the function; `bin/vendor-grants`: the CLI (`plan`).

pub mod aws;
pub mod catalog;
pub mod cfn;
pub mod config;
pub mod function;
pub mod grant;
pub mod lifecycle;
pub mod policy;
