//! Create, Update and Delete: read -> plan (pure, in `grant`) -> write -> read back and verify,
//! each policy under its lease. Whatever happens, the caller learns the PhysicalResourceId to
//! answer with, so a failed Create's rollback Delete can clean up what was half done.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::lock::{Lease, Locker, Written};
use crate::aws::{self, Clients, iam, kms, s3};
use crate::catalog::{Catalog, Mode, Requirement, VendorProfile};
use crate::cfn::{self, CustomResource, RequestType};
use crate::grant::allowed::Allowed;
use crate::grant::plan::{ROLE_OWNER_TAG, RolePlan, permissions_policy_name};
use crate::grant::properties::{check_bucket_name, check_key_reference};
use crate::grant::{
    self, GrantProperties, PlanInput, RawProperties, derive_grant_id, grant_id_from_physical,
    physical_resource_id,
};
use crate::policy::arn::Arn;
use crate::policy::canonical::fingerprint;
use crate::policy::lint::{self, PolicyKind, partition_of_region};
use crate::policy::{GrantId, PolicyDocument, contains_all, documents_equivalent, owned_sids};

/// Tag marking a role as created by vendor-grants (the only roles it updates or deletes).
pub const ROLE_MANAGED_TAG: &str = "vendor-grants:managed";

/// Times a write is redone when the read-back shows another writer undid it.
const VERIFY_ATTEMPTS: u32 = 3;

/// How long "invalid principal" is retried after creating or changing a role.
const PROPAGATION_WAIT: Duration = Duration::from_secs(90);

/// How long AccessDenied on a just-created role's first inline policy is retried.
const TAG_PROPAGATION_WAIT: Duration = Duration::from_secs(30);

/// Errors of the lifecycle, worded for the CloudFormation console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] grant::Error),

    #[error(transparent)]
    Aws(#[from] aws::Error),

    #[error("BucketName {0}: the bucket does not exist in this account and region")]
    NoBucket(String),

    #[error("KmsKeyArn {0}: the key does not exist in this account and region")]
    NoKey(String),

    #[error(
        "KmsKeyArn {0} is an AWS managed key, whose policy cannot be changed; give a customer managed key"
    )]
    AwsManagedKey(String),

    #[error("KmsKeyArn {0} is pending deletion; cancel the deletion or give another key")]
    KeyPendingDeletion(String),

    #[error("vendor {vendor} needs the bucket set up as its guide says: {}", unmet.join("; "))]
    Requirements { vendor: String, unmet: Vec<String> },

    #[error(
        "RoleName {0}: a role of that name exists that vendor-grants did not create; \
         vendor-grants never adopts a role. Delete or rename that role, or set another RoleName"
    )]
    ForeignRole(String),

    #[error(
        "RoleName {role} is shared with other grants ({others}) that give it a different \
         VendorPrincipal or ExternalId; grants sharing a role must agree on both"
    )]
    RoleDisagreement { role: String, others: String },

    #[error(
        "after writing, the {what} did not hold what was written: another writer changed it \
         {VERIFY_ATTEMPTS} times in a row; stop the other writer, then retry"
    )]
    VerifyFailed { what: String },

    #[error(
        "StackId {stack_id:?} is not a stack of this function's account and region; expected \
         {expected}: vendor-grants acts only for stacks of the account it is deployed in"
    )]
    BadStackId { stack_id: String, expected: String },

    #[error(
        "KmsKeyArn {key} is not a key of this account ({account}) and region ({region}); \
         vendor-grants changes only key policies of its own account and region: give a key \
         of {account} in {region}"
    )]
    ForeignKey {
        key: String,
        account: String,
        region: String,
    },

    #[error("{setting} does not allow {what}; allowed: {allowed}")]
    NotAllowed {
        setting: &'static str,
        what: String,
        allowed: String,
    },
}

/// The account and region the function runs in, from its own ARN (the invocation context),
/// never from the event: the only account whose buckets, keys and roles it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Home {
    /// From `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
    pub fn from_function_arn(arn: &str) -> Option<Home> {
        let a = Arn::parse(arn)?;
        let ok = a.service == "lambda"
            && !a.region.is_empty()
            && crate::policy::canonical::is_account_id(a.account)
            && a.resource.starts_with("function:");
        ok.then(|| Home {
            partition: a.partition.to_string(),
            region: a.region.to_string(),
            account: a.account.to_string(),
        })
    }

    /// Refuses a StackId that is not a stack ARN of this account and region.
    pub fn check_stack(&self, stack_id: &str) -> Result<(), Error> {
        let ok = Arn::parse(stack_id).is_some_and(|a| {
            a.partition == self.partition
                && a.service == "cloudformation"
                && a.region == self.region
                && a.account == self.account
                && a.resource.starts_with("stack/")
        });
        if ok {
            Ok(())
        } else {
            Err(Error::BadStackId {
                stack_id: stack_id.to_string(),
                expected: format!(
                    "arn:{}:cloudformation:{}:{}:stack/NAME/ID",
                    self.partition, self.region, self.account
                ),
            })
        }
    }

    /// Refuses, before any call, a KmsKeyArn that is an ARN of another account or region (a key
    /// id or alias name is looked up in this account and region anyway).
    pub fn check_key(&self, key: &str) -> Result<(), Error> {
        let Some(a) = Arn::parse(key) else {
            return Ok(());
        };
        if a.partition == self.partition
            && a.service == "kms"
            && a.region == self.region
            && a.account == self.account
        {
            return Ok(());
        }
        Err(Error::ForeignKey {
            key: key.to_string(),
            account: self.account.clone(),
            region: self.region.clone(),
        })
    }
}

/// The grant resource: what the CloudFormation protocol (`cfn::Driver`) drives. Built once per
/// process.
pub struct Grants {
    pub clients: Clients,
    pub locker: Locker,
    pub catalog: &'static Catalog,
    pub allowed: Allowed,
}

impl Grants {
    /// The account and region to act in, from the invoked function's ARN.
    fn home(req: &cfn::Request) -> Result<Home, String> {
        Home::from_function_arn(&req.function_arn).ok_or_else(|| {
            format!(
                "the function's own ARN {:?} (from the invocation) is not a Lambda function \
                 ARN, so its account and region are unknown; nothing was done",
                req.function_arn
            )
        })
    }

    fn env<'a>(&'a self, home: &'a Home, req: &cfn::Request) -> Env<'a> {
        Env {
            home,
            allowed: &self.allowed,
            clients: &self.clients,
            locker: &self.locker,
            catalog: self.catalog,
            deadline: req.deadline,
        }
    }
}

fn borrowed(req: &cfn::Request) -> Request<'_> {
    Request {
        stack_id: &req.stack_id,
        logical_id: &req.logical_resource_id,
        request_id: &req.request_id,
        physical_id: req.physical_resource_id.as_deref(),
        properties: &req.properties,
        old_properties: req.old_properties.as_ref(),
    }
}

fn answered(result: Result<Done, Error>) -> Result<cfn::Done, String> {
    let done = result.map_err(|e| e.to_string())?;
    Ok(cfn::Done {
        physical_resource_id: done.physical_resource_id,
        data: done.data,
        log_id: Some(done.grant_id).filter(|g| !g.is_empty()),
    })
}

impl CustomResource for Grants {
    const NAME: &'static str = "vendor-grants";
    const REACHES: &'static str = "S3, KMS, IAM and DynamoDB";

    async fn create(&self, req: &cfn::Request) -> Result<cfn::Done, String> {
        let home = Self::home(req)?;
        answered(create(self.env(&home, req), borrowed(req)).await)
    }

    async fn update(&self, req: &cfn::Request) -> Result<cfn::Done, String> {
        let home = Self::home(req)?;
        answered(update(self.env(&home, req), borrowed(req)).await)
    }

    async fn delete(&self, req: &cfn::Request) -> Result<cfn::Done, String> {
        let home = Self::home(req)?;
        answered(delete(self.env(&home, req), borrowed(req)).await)
    }

    fn physical_id_on_failure(&self, req: &cfn::Request) -> String {
        physical_id_on_failure(self.catalog, req.request_type, &borrowed(req))
    }
}

/// What every lifecycle call needs, built once per process.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub home: &'a Home,
    /// The platform team's allow-lists, checked before anything is written.
    pub allowed: &'a Allowed,
    pub clients: &'a Clients,
    pub locker: &'a Locker,
    pub catalog: &'a Catalog,
    /// When the work must stop, leaving time to answer.
    pub deadline: Instant,
}

/// The parts of a CloudFormation event the lifecycle acts on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub stack_id: &'a str,
    pub logical_id: &'a str,
    pub request_id: &'a str,
    pub physical_id: Option<&'a str>,
    pub properties: &'a Value,
    pub old_properties: Option<&'a Value>,
}

/// A successful event: the PhysicalResourceId and the attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub physical_resource_id: String,
    pub grant_id: String,
    pub data: BTreeMap<String, String>,
}

/// The grant id a Create of `req` uses, whether or not its properties are valid: a failed Create
/// answers with it so the rollback Delete acts on the same id.
pub fn create_grant_id(catalog: &Catalog, req: &Request<'_>) -> GrantId {
    match GrantProperties::from_json(req.properties, catalog) {
        Ok(props) => derive_grant_id(req.stack_id, req.logical_id, &props),
        Err(_) => grant::id::fallback_grant_id(req.stack_id, req.logical_id, req.request_id),
    }
}

/// The PhysicalResourceId to answer with if the work fails, times out or panics.
pub fn physical_id_on_failure(catalog: &Catalog, kind: RequestType, req: &Request<'_>) -> String {
    match (kind, req.physical_id) {
        (RequestType::Update | RequestType::Delete, Some(p)) => p.to_string(),
        _ => {
            let bucket = req
                .properties
                .get("BucketName")
                .and_then(Value::as_str)
                .filter(|b| check_bucket_name(b).is_ok())
                .unwrap_or("invalid");
            physical_resource_id(&create_grant_id(catalog, req), bucket)
        }
    }
}

pub async fn create(env: Env<'_>, req: Request<'_>) -> Result<Done, Error> {
    env.home.check_stack(req.stack_id)?;
    let props = GrantProperties::from_json(req.properties, env.catalog)?;
    let grant = derive_grant_id(req.stack_id, req.logical_id, &props);
    create_grant(env, &props, &grant).await
}

/// A new grant: its statements must not be in the policies yet in any other form.
async fn create_grant(
    env: Env<'_>,
    props: &GrantProperties,
    grant: &GrantId,
) -> Result<Done, Error> {
    let data = apply(env, props, grant, true).await?;
    Ok(Done {
        physical_resource_id: physical_resource_id(grant, &props.bucket_name),
        grant_id: grant.to_string(),
        data,
    })
}

/// The properties whose change means a new grant (and a new PhysicalResourceId).
fn replacement_key(p: &GrantProperties) -> (&str, &str, Option<&str>, Mode, Option<&str>) {
    (
        &p.vendor,
        &p.bucket_name,
        p.kms_key.as_deref(),
        p.mode,
        p.role_name.as_deref(),
    )
}

pub async fn update(env: Env<'_>, req: Request<'_>) -> Result<Done, Error> {
    env.home.check_stack(req.stack_id)?;
    let props = GrantProperties::from_json(req.properties, env.catalog)?;
    let old = req
        .old_properties
        .and_then(|o| GrantProperties::from_json(o, env.catalog).ok());
    let current = req.physical_id.and_then(grant_id_from_physical);
    let in_place = match (&old, &current, req.physical_id) {
        (Some(old), Some(_), Some(_)) => replacement_key(old) == replacement_key(&props),
        _ => false,
    };
    // A PhysicalResourceId that is not ours (a resource moved to this provider) goes into the new
    // id, so CloudFormation's Delete of that id, which falls back to the properties, cannot land
    // on the new grant.
    let new_grant = match (req.physical_id, &current) {
        (Some(foreign), None) => derive_grant_id(
            req.stack_id,
            &format!("{}#{foreign}", req.logical_id),
            &props,
        ),
        _ => derive_grant_id(req.stack_id, req.logical_id, &props),
    };
    let grant = match (in_place, current) {
        (true, Some(grant)) => grant,
        // The same grant after all (old properties no longer parse, say): update it in place.
        (false, Some(grant)) if grant == new_grant => grant,
        _ => {
            // Replacement: a new grant; CloudFormation deletes the old one after this answer. If
            // it fails, no later event carries the new id, so undo what it wrote now.
            return match create_grant(env, &props, &new_grant).await {
                Ok(done) => Ok(done),
                Err(e) => {
                    let raw = RawProperties::from_json_lenient(req.properties);
                    if let Err(undo) = remove(env, &raw, &new_grant).await {
                        warn!(grant_id = %new_grant, error = %undo, "could not undo the failed replacement");
                    }
                    Err(e)
                }
            };
        }
    };
    // In place: act on the grant id the PhysicalResourceId carries, whatever scheme made it.
    let data = apply(env, &props, &grant, false).await?;
    Ok(Done {
        physical_resource_id: req.physical_id.unwrap_or_default().to_string(),
        grant_id: grant.to_string(),
        data,
    })
}

pub async fn delete(env: Env<'_>, req: Request<'_>) -> Result<Done, Error> {
    env.home.check_stack(req.stack_id)?;
    let physical = req.physical_id.unwrap_or_default().to_string();
    let props = RawProperties::from_json_lenient(req.properties);
    let grant = match req.physical_id.and_then(grant_id_from_physical) {
        Some(g) => g,
        None => match GrantProperties::from_json(req.properties, env.catalog) {
            // Not an id of ours: fall back to the one the properties give.
            Ok(p) => derive_grant_id(req.stack_id, req.logical_id, &p),
            Err(_) => {
                info!(physical_id = %physical, "nothing to delete: neither the id nor the properties name a grant");
                return Ok(Done {
                    physical_resource_id: physical,
                    grant_id: String::new(),
                    data: BTreeMap::new(),
                });
            }
        },
    };
    if grant::id::is_fallback(&grant) {
        info!(grant_id = %grant, "nothing to delete: its Create was refused before writing anything");
    } else {
        remove(env, &props, &grant).await?;
    }
    Ok(Done {
        physical_resource_id: physical,
        grant_id: grant.to_string(),
        data: BTreeMap::new(),
    })
}

/// The account that must own the bucket (S3's `ExpectedBucketOwner`): the function's own.
fn owner_of(env: &Env<'_>) -> Option<String> {
    Some(env.home.account.clone())
}

/// Resolves KmsKeyArn to the key's ARN, refusing keys whose policy cannot be changed.
async fn resolve_key(env: Env<'_>, key: &str) -> Result<String, Error> {
    let info = kms::describe_key(env.clients, key).await.map_err(|e| {
        if e.is_not_found() {
            Error::NoKey(key.to_string())
        } else {
            Error::Aws(e)
        }
    })?;
    if !info.customer_managed {
        return Err(Error::AwsManagedKey(key.to_string()));
    }
    if info.pending_deletion {
        return Err(Error::KeyPendingDeletion(key.to_string()));
    }
    // An alias or key id resolves in this account and region; a resolved ARN of any other is
    // not a key this function may change.
    env.home.check_key(&info.arn)?;
    Ok(info.arn)
}

/// Checks the vendor's requirements before anything is written; every unmet one is named.
async fn check_requirements(
    env: Env<'_>,
    vendor: &VendorProfile,
    props: &GrantProperties,
    key_arn: Option<&str>,
    owner: Option<&str>,
) -> Result<(), Error> {
    if vendor.requirements.is_empty() {
        return Ok(());
    }
    let settings = s3::bucket_settings(env.clients, &props.bucket_name, owner)
        .await
        .map_err(|e| no_bucket(e, &props.bucket_name))?;
    let mut unmet = Vec::new();
    for requirement in &vendor.requirements {
        let met = match requirement {
            Requirement::SseKmsWithKey => match (&settings.sse_kms_key, key_arn) {
                (Some(configured), Some(key)) => {
                    let same_region =
                        Arn::parse(key).is_some_and(|a| a.region == env.clients.region);
                    // A key that does not exist is not the grant's; any other failure (access
                    // denied, say) is reported as itself, not as an unmet requirement.
                    let resolved = match kms::describe_key(env.clients, configured).await {
                        Ok(info) => Some(info.arn),
                        Err(e) if e.is_not_found() => None,
                        Err(e) => return Err(e.into()),
                    };
                    same_region && resolved.as_deref() == Some(key)
                }
                _ => false,
            },
            Requirement::BlockPublicAccess => settings.blocks_public_access,
            Requirement::AclsDisabled => settings.acls_disabled,
        };
        if !met {
            unmet.push(requirement.describe().to_string());
        }
    }
    if unmet.is_empty() {
        Ok(())
    } else {
        Err(Error::Requirements {
            vendor: vendor.id.clone(),
            unmet,
        })
    }
}

fn no_bucket(e: aws::Error, bucket: &str) -> Error {
    if e.is_not_found() {
        Error::NoBucket(bucket.to_string())
    } else {
        Error::Aws(e)
    }
}

fn parse_policy(text: Option<String>, what: &str) -> Result<Option<PolicyDocument>, Error> {
    text.map(|t| PolicyDocument::parse(&t, what))
        .transpose()
        .map_err(|e| Error::Input(grant::Error::Policy(e)))
}

fn bucket_lease_name(bucket: &str) -> String {
    format!("s3-bucket-policy/{bucket}")
}

fn key_lease_name(key_arn: &str) -> String {
    format!("kms-key-policy/{key_arn}")
}

/// Releases leases, logging (not failing on) a release that did not go through: an unreleased
/// table lease only expires later.
async fn release(leases: Vec<Lease>) {
    for lease in leases {
        let resource = lease.resource().to_string();
        if let Err(e) = lease.release().await {
            warn!(resource = %resource, error = %e, "lease not released; it will expire");
        }
    }
}

/// Time a lease must still have before a write. The lease is renewed while held (see
/// `aws::lock::RENEW_EVERY`), so this is only short of its length when renewals are failing.
const WRITE_MARGIN: Duration = Duration::from_secs(3);

/// Whether a transaction stopped before writing because its lease ran out (renewals failed, or
/// another holder took it over) and can simply be run again under a new lease.
fn lease_lost(e: &Error) -> bool {
    matches!(e, Error::Aws(aws::Error::LeaseExpired { .. }))
}

fn still_held(leases: &[Lease]) -> Result<(), Error> {
    for lease in leases {
        lease.check_held(WRITE_MARGIN)?;
    }
    Ok(())
}

/// Takes the bucket lease, then the key lease: always in that order, so two grants never wait
/// on each other.
async fn take_leases(
    env: Env<'_>,
    bucket: Option<&str>,
    key_arn: Option<&str>,
) -> Result<Vec<Lease>, Error> {
    let names = bucket
        .map(bucket_lease_name)
        .into_iter()
        .chain(key_arn.map(key_lease_name));
    let mut leases = Vec::with_capacity(2);
    for name in names {
        match env.locker.acquire(&name, env.deadline).await {
            Ok(l) => leases.push(l),
            Err(e) => {
                release(leases).await;
                return Err(e.into());
            }
        }
    }
    Ok(leases)
}

/// Create or in-place Update: everything the grant needs, then verified.
async fn apply(
    env: Env<'_>,
    props: &GrantProperties,
    grant: &GrantId,
    new_grant: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let vendor = env.catalog.vendor(&props.vendor).ok_or_else(|| {
        Error::Input(grant::Error::InvalidValue {
            property: "Vendor",
            value: props.vendor.clone(),
            valid: env.catalog.vendor_ids().join(", "),
        })
    })?;
    env.allowed
        .check(&props.vendor, &props.vendor_principals)
        .map_err(|r| Error::NotAllowed {
            setting: r.setting,
            what: r.what,
            allowed: r.allowed,
        })?;
    if let Some(k) = &props.kms_key {
        env.home.check_key(k)?;
    }
    let partition = partition_of_region(&env.clients.region);
    let owner = owner_of(&env);
    let key_arn = match &props.kms_key {
        Some(k) => Some(resolve_key(env, k).await?),
        None => None,
    };
    check_requirements(env, vendor, props, key_arn.as_deref(), owner.as_deref()).await?;
    // The bucket must exist in this account, and be reachable, before anything is written: in
    // role mode the role would otherwise be created for a bucket the function cannot see.
    s3::get_bucket_policy(env.clients, &props.bucket_name, owner.as_deref())
        .await
        .map_err(|e| no_bucket(e, &props.bucket_name))?;

    let mut role_arn = None;
    let mut role_changed = false;
    if props.mode == Mode::Role {
        // The role documents do not depend on the policies' current content, but the plan wants
        // the key policy; read it for the preview (the write below reads again under the lease).
        let key_policy = match &key_arn {
            Some(k) => parse_policy(
                Some(kms::get_key_policy(env.clients, k).await?),
                "key policy",
            )?,
            None => None,
        };
        let preview = grant::plan(
            env.catalog,
            PlanInput {
                props,
                grant_id: grant,
                partition,
                account_id: owner.as_deref(),
                kms_key_arn: key_arn.as_deref(),
                bucket_policy: None,
                key_policy: key_policy.as_ref(),
                new_grant,
            },
        )?;
        if let Some(role) = &preview.role {
            let (arn, changed) = ensure_role(env, grant, role).await?;
            role_arn = Some(arn);
            role_changed = changed;
        }
    }

    let target = Target {
        props,
        grant,
        partition,
        key_arn: key_arn.as_deref(),
        owner: owner.as_deref(),
        new_grant,
    };
    let plan = write_policies(env, target, role_changed).await?;

    let mut data = BTreeMap::new();
    data.insert("GrantId".to_string(), grant.to_string());
    data.insert(
        "BucketArn".to_string(),
        format!("arn:{partition}:s3:::{}", props.bucket_name),
    );
    data.insert("KmsKeyArn".to_string(), key_arn.unwrap_or_default());
    data.insert("RoleArn".to_string(), role_arn.unwrap_or_default());
    data.insert("VendorPrincipal".to_string(), plan.principals.join(","));
    data.insert("StatementIds".to_string(), plan.statement_ids.join(","));
    data.insert("Region".to_string(), env.clients.region.clone());
    Ok(data)
}

/// Reads both policies under their leases, plans, writes what changed and reads back. Redone
/// when the read-back shows another writer undid the write, and, after a role was created or
/// changed, while IAM has not yet propagated it ("invalid principal").
/// A policy vendor-grants reads and writes: a bucket's or a key's.
#[derive(Clone, Copy)]
enum Source<'a> {
    Bucket {
        bucket: &'a str,
        owner: Option<&'a str>,
    },
    Key(&'a str),
}

/// How long a read is retried while it does not yet show the last recorded write.
const STALE_WAIT: Duration = Duration::from_secs(5);

impl Source<'_> {
    fn lease_name(&self) -> String {
        match self {
            Source::Bucket { bucket, .. } => bucket_lease_name(bucket),
            Source::Key(key) => key_lease_name(key),
        }
    }

    /// The current policy; `Ok(None)` also when the bucket or key is gone.
    async fn read(&self, env: Env<'_>) -> Result<Option<PolicyDocument>, Error> {
        let text = match self {
            Source::Bucket { bucket, owner } => {
                s3::get_bucket_policy(env.clients, bucket, *owner).await
            }
            Source::Key(key) => kms::get_key_policy(env.clients, key).await.map(Some),
        };
        match text {
            Ok(text) => parse_policy(
                text,
                match self {
                    Source::Bucket { .. } => "bucket policy",
                    Source::Key(_) => "key policy",
                },
            ),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads, and while the read shows a version older than vendor-grants' last recorded write
    /// of this policy, reads again for a while: S3 and KMS reads are eventually consistent, and
    /// merging into a stale read would drop the previous writer's statements. A read that shows
    /// a version vendor-grants never wrote (another writer's) is taken at once.
    async fn read_fresh(&self, env: Env<'_>) -> Result<Fresh, Error> {
        let record = env.locker.last_written(&self.lease_name()).await?;
        let mut doc = self.read(env).await?;
        let Some(written) = &record else {
            return Ok(Fresh { doc, record });
        };
        let started = Instant::now();
        let pause = Duration::from_millis(200);
        while written.is_stale(&fingerprint(doc.as_ref())) {
            if started.elapsed() >= STALE_WAIT || Instant::now() + pause >= env.deadline {
                info!(policy = %self.lease_name(), "the policy still reads as before vendor-grants' last write; going on with it");
                break;
            }
            tokio::time::sleep(pause).await;
            doc = self.read(env).await?;
        }
        Ok(Fresh { doc, record })
    }

    /// Records what was written over `read`, for the next writer's [`Source::read_fresh`].
    async fn record(&self, env: Env<'_>, read: &Fresh, written: Option<&PolicyDocument>) {
        let name = self.lease_name();
        let next = Written::next(
            read.record.as_ref(),
            &fingerprint(read.doc.as_ref()),
            &fingerprint(written),
        );
        if let Err(e) = env.locker.record_written(&name, &next).await {
            warn!(policy = %name, error = %e, "could not record the write; the next writer will not wait for it");
        }
    }
}

/// A policy as read under its lease, with vendor-grants' record of its last write.
struct Fresh {
    doc: Option<PolicyDocument>,
    record: Option<Written>,
}

/// A grant's write, resolved once: what the policies are merged for.
#[derive(Clone, Copy)]
struct Target<'a> {
    props: &'a GrantProperties,
    grant: &'a GrantId,
    partition: &'a str,
    key_arn: Option<&'a str>,
    owner: Option<&'a str>,
    /// A Create or replacement (see `PlanInput::new_grant`).
    new_grant: bool,
}

async fn write_policies(
    env: Env<'_>,
    target: Target<'_>,
    role_changed: bool,
) -> Result<grant::Plan, Error> {
    let Target {
        props,
        grant,
        partition,
        key_arn,
        owner,
        new_grant,
    } = target;
    let bucket = props.bucket_name.as_str();
    let started = Instant::now();
    let mut verify_failures = 0;
    let mut pause = Duration::from_secs(2);
    loop {
        let leases = take_leases(env, Some(bucket), key_arn).await?;
        let result = async {
            let bucket_source = Source::Bucket { bucket, owner };
            let key_source = key_arn.map(Source::Key);
            // A bucket deleted since apply() checked it reads as no policy; the write then fails.
            let current_bucket = bucket_source.read_fresh(env).await?;
            let current_key = match key_source {
                Some(source) => match source.read_fresh(env).await? {
                    Fresh { doc: None, .. } => {
                        return Err(Error::NoKey(key_arn.unwrap_or_default().to_string()));
                    }
                    fresh => Some(fresh),
                },
                None => None,
            };
            let plan = grant::plan(
                env.catalog,
                PlanInput {
                    props,
                    grant_id: grant,
                    partition,
                    account_id: owner,
                    kms_key_arn: key_arn,
                    bucket_policy: current_bucket.doc.as_ref(),
                    key_policy: current_key.as_ref().and_then(|f| f.doc.as_ref()),
                    new_grant,
                },
            )?;
            if plan.bucket_policy_changed {
                still_held(&leases)?;
                write_bucket_policy(env, bucket, owner, plan.bucket_policy.as_ref()).await?;
            }
            if let (true, Some(k), Some(doc)) = (plan.key_policy_changed, key_arn, &plan.key_policy)
            {
                still_held(&leases)?;
                kms::put_key_policy(env.clients, k, &doc.to_json()).await?;
            }
            let bucket_ok = holds(
                bucket_source.read(env).await?.as_ref(),
                plan.bucket_policy.as_ref(),
            );
            let key_ok = match (key_source, &plan.key_policy) {
                (Some(source), Some(doc)) => holds(source.read(env).await?.as_ref(), Some(doc)),
                _ => true,
            };
            if bucket_ok && plan.bucket_policy_changed {
                bucket_source
                    .record(env, &current_bucket, plan.bucket_policy.as_ref())
                    .await;
            }
            if let (true, true, Some(source), Some(read)) =
                (key_ok, plan.key_policy_changed, key_source, &current_key)
            {
                source.record(env, read, plan.key_policy.as_ref()).await;
            }
            Ok::<_, Error>((plan, bucket_ok, key_ok))
        }
        .await;
        release(leases).await;

        match result {
            Ok((plan, true, true)) => return Ok(plan),
            Ok((_, bucket_ok, _)) => {
                verify_failures += 1;
                let what = if bucket_ok {
                    "key policy"
                } else {
                    "bucket policy"
                };
                warn!(grant_id = %grant, what, attempt = verify_failures, "read-back differs from what was written; redoing");
                if verify_failures >= VERIFY_ATTEMPTS {
                    return Err(Error::VerifyFailed {
                        what: what.to_string(),
                    });
                }
            }
            Err(e) if lease_lost(&e) && verify_failures + 1 < VERIFY_ATTEMPTS => {
                verify_failures += 1;
                warn!(grant_id = %grant, error = %e, "the lease ran out before writing; taking it again");
            }
            Err(Error::Aws(e))
                if e.is_invalid_principal()
                    && role_changed
                    && started.elapsed() < PROPAGATION_WAIT
                    && Instant::now() + pause < env.deadline =>
            {
                info!(grant_id = %grant, wait_ms = pause.as_millis() as u64, "principal not yet known to IAM; waiting for the new role to propagate");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the policy read back holds every statement that was written (ours and the foreign
/// ones we kept), by meaning; `None` written means none must be there.
fn holds(after: Option<&PolicyDocument>, written: Option<&PolicyDocument>) -> bool {
    match (after, written) {
        (_, None) => after.is_none_or(|a| a.statements.is_empty()),
        (Some(a), Some(w)) => contains_all(a, &w.statements),
        (None, Some(_)) => false,
    }
}

async fn write_bucket_policy(
    env: Env<'_>,
    bucket: &str,
    owner: Option<&str>,
    doc: Option<&PolicyDocument>,
) -> Result<(), Error> {
    match doc {
        Some(doc) => s3::put_bucket_policy(env.clients, bucket, owner, &doc.to_json()).await,
        // An emptied bucket policy is deleted: S3 refuses a policy with no statements.
        None => s3::delete_bucket_policy(env.clients, bucket, owner).await,
    }
    .map_err(|e| no_bucket(e, bucket))
}

/// Creates the grant's role, or checks the existing one is ours and agrees, then puts the
/// grant's inline policy. Returns the role ARN and whether the role or its trust is new.
async fn ensure_role(
    env: Env<'_>,
    grant: &GrantId,
    role: &RolePlan,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let lease = env
        .locker
        .acquire(&format!("iam-role/{name}"), env.deadline)
        .await?;
    let result = async {
        let trust = role.trust_policy.to_json();
        let mut changed = false;
        let mut existing = iam::get_role(env.clients, name).await?;
        let mut created = None;
        if existing.is_none() {
            let tags = [(ROLE_MANAGED_TAG, "true"), (ROLE_OWNER_TAG, grant.as_str())];
            let description = format!("Created by vendor-grants for grant {grant}");
            created = iam::create_role(env.clients, name, &trust, &description, &tags).await?;
            // Created by someone else between our look and our create (another grant in another
            // region, or IAM not yet showing it): look again until IAM shows it.
            let mut tries = 0;
            while created.is_none() && existing.is_none() && tries < 10 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                existing = iam::get_role(env.clients, name).await?;
                tries += 1;
            }
        }
        let arn = match (created, existing) {
            (Some(arn), _) => {
                changed = true;
                arn
            }
            (None, None) => return Err(Error::ForeignRole(name.to_string())),
            (None, Some(existing)) => {
                if existing.tag(ROLE_MANAGED_TAG) != Some("true") {
                    return Err(Error::ForeignRole(name.to_string()));
                }
                // Created by this very grant: an earlier delivery of this event crashed after
                // CreateRole, or CreateRole's answer was lost and the SDK's retry met
                // EntityAlreadyExists. IAM may not have propagated it yet, so it counts as new
                // (the waits for propagation stay on).
                if existing.tag(ROLE_OWNER_TAG) == Some(grant.as_str()) {
                    changed = true;
                }
                let ours = permissions_policy_name(grant);
                let others: Vec<String> = iam::list_role_policies(env.clients, name)
                    .await?
                    .into_iter()
                    .filter(|p| p != &ours)
                    .collect();
                let same_trust = PolicyDocument::parse(&existing.trust_policy, "trust policy")
                    .map(|current| documents_equivalent(&current, &role.trust_policy))
                    .unwrap_or(false);
                if !same_trust {
                    if !others.is_empty() {
                        return Err(Error::RoleDisagreement {
                            role: name.to_string(),
                            others: others.join(", "),
                        });
                    }
                    iam::update_trust_policy(env.clients, name, &trust).await?;
                    changed = true;
                }
                let mut documents = vec![role.permissions_policy.clone()];
                for other in &others {
                    if let Some(text) = iam::get_role_policy(env.clients, name, other).await? {
                        documents.push(
                            PolicyDocument::parse(&text, "role policy")
                                .map_err(|e| Error::Input(grant::Error::Policy(e)))?,
                        );
                    }
                }
                let refs: Vec<&PolicyDocument> = documents.iter().collect();
                lint::check_size(PolicyKind::RoleInlinePolicies, &refs)
                    .map_err(|e| Error::Input(grant::Error::Policy(e)))?;
                existing.arn
            }
        };
        // A role created moments ago may not yet show its tag to IAM's authorisation, which the
        // deploy template's tag condition relies on: retry AccessDenied briefly in that case.
        let mut pause = Duration::from_secs(1);
        let started = Instant::now();
        loop {
            match iam::put_role_policy(
                env.clients,
                name,
                &role.permissions_policy_name,
                &role.permissions_policy.to_json(),
            )
            .await
            {
                Err(e)
                    if changed
                        && e.code() == Some("AccessDenied")
                        && started.elapsed() < TAG_PROPAGATION_WAIT
                        && Instant::now() + pause < env.deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => break other?,
            }
        }
        let written =
            iam::get_role_policy(env.clients, name, &role.permissions_policy_name).await?;
        let ok = written
            .and_then(|t| PolicyDocument::parse(&t, "role policy").ok())
            .is_some_and(|d| documents_equivalent(&d, &role.permissions_policy));
        if !ok {
            return Err(Error::VerifyFailed {
                what: format!(
                    "inline policy {} of role {name}",
                    role.permissions_policy_name
                ),
            });
        }
        Ok((arn, changed))
    }
    .await;
    release(vec![lease]).await;
    result
}

/// Delete: takes the grant's statements out of the bucket and key policies, its inline policy
/// off its role, and the role itself when vendor-grants created it and no grant uses it any more.
/// Anything already gone is fine.
async fn remove(env: Env<'_>, raw: &RawProperties, grant: &GrantId) -> Result<(), Error> {
    let owner = owner_of(&env);
    let owner = owner.as_deref();
    let bucket = raw
        .bucket_name
        .as_deref()
        .filter(|b| check_bucket_name(b).is_ok());
    let policies = async {
        let key_arn = match raw
            .kms_key
            .as_deref()
            .filter(|k| check_key_reference(k).is_ok() && env.home.check_key(k).is_ok())
        {
            None => None,
            Some(k) => match kms::describe_key(env.clients, k).await {
                Ok(info) if info.pending_deletion || !info.customer_managed => None,
                Ok(info) => Some(info.arn),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(Error::from(e)),
            },
        };
        remove_from_policies(env, grant, bucket, key_arn.as_deref(), owner).await
    }
    .await;
    // The role goes even when the policies could not be cleaned: its access must not outlive
    // the grant because a bucket or key became unreadable.
    let role = match role_of(env.catalog, raw, grant) {
        Some(role_name) => remove_role(env, grant, &role_name).await,
        None => Ok(()),
    };
    policies.and(role)
}

/// The role a role-mode grant used, from its (possibly no longer valid) properties.
fn role_of(catalog: &Catalog, raw: &RawProperties, grant: &GrantId) -> Option<String> {
    let vendor = catalog.vendor(raw.vendor.as_deref()?)?;
    let mode = match raw.mode.as_deref() {
        Some(m) => m.parse::<Mode>().ok()?,
        None => vendor.default_mode(),
    };
    if mode != Mode::Role {
        return None;
    }
    let given = raw.role_name.as_deref().filter(|r| !r.is_empty());
    Some(grant::plan::role_name(given, vendor, grant))
}

/// Takes the grant's statements out of whichever of the bucket and key policies are known.
async fn remove_from_policies(
    env: Env<'_>,
    grant: &GrantId,
    bucket: Option<&str>,
    key_arn: Option<&str>,
    owner: Option<&str>,
) -> Result<(), Error> {
    if bucket.is_none() && key_arn.is_none() {
        return Ok(());
    }
    for attempt in 1..=VERIFY_ATTEMPTS {
        let leases = take_leases(env, bucket, key_arn).await?;
        let result = async {
            let bucket_source = bucket.map(|bucket| Source::Bucket { bucket, owner });
            let key_source = key_arn.map(Source::Key);
            let current_bucket = match bucket_source {
                Some(source) => Some(source.read_fresh(env).await?),
                None => None,
            };
            let current_key = match key_source {
                Some(source) => Some(source.read_fresh(env).await?),
                None => None,
            };
            let removal = grant::plan_removal(
                grant,
                current_bucket.as_ref().and_then(|f| f.doc.as_ref()),
                current_key.as_ref().and_then(|f| f.doc.as_ref()),
            )?;
            if let (true, Some(bucket)) = (removal.bucket_policy_changed, bucket) {
                still_held(&leases)?;
                match write_bucket_policy(env, bucket, owner, removal.bucket_policy.as_ref()).await
                {
                    Err(Error::NoBucket(_)) => {}
                    other => other?,
                }
            }
            if let (true, Some(k), Some(doc)) =
                (removal.key_policy_changed, key_arn, &removal.key_policy)
            {
                still_held(&leases)?;
                match kms::put_key_policy(env.clients, k, &doc.to_json()).await {
                    Err(e) if e.is_not_found() => {}
                    other => other?,
                }
            }
            // Read back: none of our statements may be left.
            let clean =
                |doc: Option<PolicyDocument>| doc.is_none_or(|d| owned_sids(&d, grant).is_empty());
            let bucket_clean = match bucket_source {
                Some(source) => clean(source.read(env).await?),
                None => true,
            };
            let key_clean = match key_source {
                Some(source) => clean(source.read(env).await?),
                None => true,
            };
            if let (true, true, Some(source), Some(read)) = (
                bucket_clean,
                removal.bucket_policy_changed,
                bucket_source,
                &current_bucket,
            ) {
                source
                    .record(env, read, removal.bucket_policy.as_ref())
                    .await;
            }
            if let (true, true, Some(source), Some(read)) = (
                key_clean,
                removal.key_policy_changed,
                key_source,
                &current_key,
            ) {
                source.record(env, read, removal.key_policy.as_ref()).await;
            }
            Ok::<_, Error>(bucket_clean && key_clean)
        }
        .await;
        release(leases).await;
        match result {
            Ok(true) => return Ok(()),
            Ok(false) => {
                warn!(grant_id = %grant, attempt, "read-back still holds the grant's statements; redoing")
            }
            Err(e) if lease_lost(&e) && attempt < VERIFY_ATTEMPTS => {
                warn!(grant_id = %grant, error = %e, "the lease ran out before writing; taking it again");
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::VerifyFailed {
        what: "bucket or key policy".to_string(),
    })
}

async fn remove_role(env: Env<'_>, grant: &GrantId, name: &str) -> Result<(), Error> {
    let lease = env
        .locker
        .acquire(&format!("iam-role/{name}"), env.deadline)
        .await?;
    let result = async {
        let Some(role) = iam::get_role(env.clients, name).await? else {
            return Ok(());
        };
        if role.tag(ROLE_MANAGED_TAG) != Some("true") {
            // Never touch a role vendor-grants did not create; it never put a policy there.
            return Ok(());
        }
        iam::delete_role_policy(env.clients, name, &permissions_policy_name(grant)).await?;
        let remaining = match iam::list_role_policies(env.clients, name).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if remaining.is_empty() {
            match iam::delete_role(env.clients, name).await {
                Ok(()) => info!(grant_id = %grant, role = name, "deleted the role: no grant uses it any more"),
                Err(e) if e.code() == Some("DeleteConflict") => {
                    warn!(grant_id = %grant, role = name, "role left in place: something else is attached to it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
    .await;
    release(vec![lease]).await;
    result
}
