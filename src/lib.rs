//! vendor-grants: a CloudFormation custom resource that merges a data vendor's grants into an S3
//! bucket policy and KMS key policy (or creates the role the vendor assumes), owning exactly its
//! own statements.
//!
//! The map of the crate, data flowing one way (event -> properties -> decision -> plan -> AWS
//! writes -> read-back -> answer):
//! - [`policy`]: pure IAM policy documents: model, comparison by meaning, the one ownership test
//!   ([`policy::Claim`]: which statements under a grant's Sids are its own) and the merge that
//!   replaces exactly those, limits and lints for what AWS would reject.
//! - [`catalog`]: pure vendor profiles as data (`catalog/vendors.toml`) and the Access levels.
//! - [`grant`]: pure properties -> grant id -> plan (current policies + properties -> desired;
//!   the role's documents need no current policy), and the platform team's allow-lists.
//! - [`cfn`]: the CloudFormation protocol, for any resource: the [`cfn::CustomResource`] trait,
//!   the [`cfn::Driver`] (exactly one answer per event, deadlines, panics), envelope, answer body
//!   budget, ResponseURL sender with retries and allow-list. It imports nothing of the grant.
//! - [`aws`]: the shell: S3, KMS, IAM and the DynamoDB lease, one file a service.
//! - [`lifecycle`]: the grant resource ([`lifecycle::Grants`] implements the trait): the pure
//!   decision of what an event does (`decide`), the checks before writing (`checks`), the one
//!   policy transaction for writing and removing (`policies`), and the role (`role`).
//! - [`audit`]: every grant of the account judged against the registry and the live policies,
//!   and its repairs (through the lifecycle's transaction).
//! - [`config`]: the environment, read once; [`function`]: the wiring of protocol and resource;
//!   [`tls`]: the one TLS setup, for the SDK clients and the ResponseURL sender.
//! - `bin/vendor-grants-lambda`: the function; `bin/vendor-grants`: the CLI (`plan`, `audit`).

pub mod audit;
pub mod aws;
pub mod catalog;
pub mod cfn;
pub mod config;
pub mod function;
pub mod grant;
pub mod lifecycle;
pub mod policy;
pub mod tls;
