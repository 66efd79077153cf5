//! The grant resource: Create, Update and Delete as read -> plan (pure, in `grant`) -> write ->
//! read back and verify, each policy under its lease. Whatever happens, the caller learns the
//! PhysicalResourceId to answer with, so a failed Create's rollback Delete can clean up what was
//! half done.
//!
//! - [`checks`]: whose event it is, the allow-lists, the key and the bucket, before any write;
//! - [`policies`]: the one policy transaction, for writing a grant and for removing it;
//! - [`role`]: the role a role-mode grant creates or shares.

mod checks;
pub mod decide;
mod policies;
mod repair;
mod role;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::lock::Locker;
use crate::aws::registry::Integrity;
use crate::aws::{self, Clients, kms};
use crate::catalog::Catalog;
use crate::cfn::{self, CustomResource, RequestType};
use crate::grant::allowed::Allowed;
use crate::grant::id::bucket_from_physical;
use crate::grant::properties::{check_bucket_name, check_key_reference};
use crate::grant::{
    self, GrantProperties, GrantRecord, PlanInput, RawProperties, derive_grant_id,
    physical_resource_id,
};
use crate::policy::lint::partition_of_region;
use crate::policy::{Claim, GrantId, Statement};

pub use checks::Home;
pub use repair::{Restored, remove_orphan, restore};
pub use role::ROLE_MANAGED_TAG;

pub use decide::{Action, decide};

use checks::{check_before_writing, check_bucket, owner_of};
use policies::{Change, Kind, Transaction, transact};
use role::{ensure_role, remove_role, role_of};

/// Times a write is redone when the read-back shows another writer undid it.
pub(crate) const VERIFY_ATTEMPTS: u32 = 3;

/// How long "invalid principal" is retried after creating or changing a role.
pub(crate) const PROPAGATION_WAIT: Duration = Duration::from_secs(90);

/// Errors of the lifecycle, worded for the CloudFormation console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] grant::Error),

    #[error(transparent)]
    Aws(#[from] aws::Error),

    #[error("BucketName {0}: the bucket does not exist in this account and region")]
    NoBucket(String),

    #[error(
        "BucketName {bucket}: access denied: the bucket is not one of this account \
         ({account}), or the deploy template's AllowedBucketNames does not include it"
    )]
    BucketUnreachable { bucket: String, account: String },

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
        "RoleName {0}: a role of that name exists that vendor-grants did not create (it lacks \
         the vendor-grants:owner tag of a grant vendor-grants knows), and vendor-grants never \
         takes over a role it did not create. If it is the role you made by hand from the \
         vendor's guide, follow README \"Moving a hand-made vendor role to vendor-grants\" (the \
         role is deleted and this grant creates it again at the same ARN, so the vendor's \
         settings stay valid); or keep your role and give this grant Mode: bucket-policy"
    )]
    ForeignRole(String),

    #[error(
        "RoleName {role} is shared with other grants ({others}) that give it a different \
         VendorPrincipal; grants sharing a role must agree on the principal (each may have its \
         own ExternalId)"
    )]
    RoleDisagreement { role: String, others: String },

    #[error(
        "RoleName {role} is shared with other grants ({others}) whose ExternalIds cannot be told \
         apart without the registry: with the lock table (VENDOR_GRANTS_LOCK_TABLE, which the \
         deploy template sets) each grant sharing a role keeps its own ExternalId, so the stacks \
         can move to a new one one at a time; without it, give every grant sharing the role the \
         same ExternalId"
    )]
    ExternalIdNotShared { role: String, others: String },

    #[error(
        "RoleName {role} is shared with other grants ({others}) and does not accept this grant's \
         ExternalId: every ExternalId a shared role accepts reaches every bucket on it, so a new \
         grant must use one the role already accepts. To rotate to a new ExternalId, update the \
         existing grants' ExternalId first (one stack at a time), then create this one; for \
         another vendor account, give this grant its own RoleName"
    )]
    ExternalIdNotAccepted { role: String, others: String },

    #[error(
        "after writing, the {what} did not hold what was written: another writer changed it \
         {VERIFY_ATTEMPTS} times in a row; stop the other writer, then retry"
    )]
    VerifyFailed { what: String },

    #[error(
        "after writing, the {what} still read as it was before the write for {} s: the change did \
         not settle (S3 and KMS apply policy changes eventually); retry the stack operation in a \
         minute",
        policies::STALE_WAIT.as_secs()
    )]
    NotSettled { what: String },

    #[error(
        "grant {grant} belongs to resource {owner_logical_id} of stack {owner_stack_id}, not to \
         {logical_id} of stack {stack_id}; nothing was changed. A grant is changed and deleted \
         only by the stack resource that created it"
    )]
    NotOwner {
        grant: String,
        owner_stack_id: String,
        owner_logical_id: String,
        stack_id: String,
        logical_id: String,
    },

    #[error("the event has no PhysicalResourceId, which an Update or Delete always carries")]
    NoPhysicalId,

    #[error("{0:?} is not a grant id (16 lowercase hex digits)")]
    BadGrantId(String),

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

impl From<crate::policy::Error> for Error {
    fn from(e: crate::policy::Error) -> Self {
        Error::Input(grant::Error::Policy(e))
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
        self.env_until(home, req.deadline)
    }

    /// What the lifecycle needs, acting in `home` until `deadline` (the scheduled audit's too).
    pub fn env_until<'a>(&'a self, home: &'a Home, deadline: Instant) -> Env<'a> {
        Env {
            home,
            allowed: &self.allowed,
            clients: &self.clients,
            locker: &self.locker,
            catalog: self.catalog,
            deadline,
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
        log_id: done.grant_id.map(|g| g.to_string()),
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
    /// The grant acted on; `None` for a Delete that named none.
    pub grant_id: Option<GrantId>,
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
    handle(env, RequestType::Create, req).await
}

pub async fn update(env: Env<'_>, req: Request<'_>) -> Result<Done, Error> {
    handle(env, RequestType::Update, req).await
}

pub async fn delete(env: Env<'_>, req: Request<'_>) -> Result<Done, Error> {
    handle(env, RequestType::Delete, req).await
}

/// Refuses an event of another account or region, decides what it does, and does it.
pub async fn handle(env: Env<'_>, kind: RequestType, req: Request<'_>) -> Result<Done, Error> {
    env.home.check_stack(req.stack_id)?;
    let action = decide(env.catalog, kind, &req)?;
    // What a Prefix without a trailing `/` also grants, in the log of the event that writes it.
    if let Action::Create { grant, props }
    | Action::Replace { new: grant, props }
    | Action::UpdateInPlace { grant, props, .. } = &action
        && let Some(note) = props.prefix_note()
    {
        warn!(grant_id = %grant, "{note}");
    }
    match action {
        Action::Create { grant, props } => create_grant(env, &req, &props, &grant).await,
        Action::UpdateInPlace {
            grant,
            physical_id,
            props,
        } => {
            let record = recorded(env, &grant).await?;
            check_owner(&req, &grant, record.as_ref())?;
            let before = match &record {
                Some(r) => Before::Recorded(r),
                None => Before::Unrecorded,
            };
            let data = apply(env, &req, &props, &grant, before).await?;
            Ok(Done {
                physical_resource_id: physical_id,
                grant_id: Some(grant),
                data,
            })
        }
        Action::Replace { new, props } => {
            // CloudFormation deletes the old grant after this answer. If the new one fails, no
            // later event carries its id, so undo what it wrote now.
            let result = create_grant(env, &req, &props, &new).await;
            let generated_role = props.mode == crate::catalog::Mode::Role
                && props.role_name.is_none()
                && env
                    .catalog
                    .vendor(&props.vendor)
                    .and_then(|v| v.role.as_ref())
                    .is_some_and(|r| r.name.is_none());
            if let (true, Ok(done)) = (generated_role, &result) {
                let role_arn = done.data.get("RoleArn").map_or("", String::as_str);
                warn!(grant_id = %new, role_arn, "the grant was replaced and its role's name is generated from the grant id: the role's ARN has changed; give the vendor the new RoleArn (or set RoleName to keep it stable)");
            }
            if result.is_err() {
                let raw = RawProperties::from_json_lenient(req.properties);
                let target = target_of(env, &req, &new, Some(&props.bucket_name), &raw, None);
                let undo = match target.await {
                    Ok(target) => remove(env, &new, &target).await,
                    Err(e) => Err(e),
                };
                if let Err(undo) = undo {
                    warn!(grant_id = %new, error = %undo, "could not undo the failed replacement");
                }
            }
            result
        }
        Action::DeleteGrant {
            grant,
            physical_id,
            props,
        } => {
            let record = recorded(env, &grant).await?;
            check_owner(&req, &grant, record.as_ref())?;
            let bucket = bucket_from_physical(&physical_id);
            let target = target_of(env, &req, &grant, bucket, &props, record.as_ref()).await?;
            remove(env, &grant, &target).await?;
            forget(env, &grant).await?;
            Ok(Done {
                physical_resource_id: physical_id,
                grant_id: Some(grant),
                data: BTreeMap::new(),
            })
        }
        Action::NothingToDelete {
            physical_id,
            grant,
            why,
        } => {
            info!(physical_id = %physical_id, why, "nothing to delete");
            if let Some(grant) = &grant {
                forget(env, grant).await?;
            }
            Ok(Done {
                physical_resource_id: physical_id,
                grant_id: grant,
                data: BTreeMap::new(),
            })
        }
    }
}

/// The registry's record of `grant`: what it wrote, and for which stack resource. `None`
/// without a lock table, for a grant never recorded, or for a record that does not read (then
/// the event's properties are all there is, as without a registry).
async fn recorded(env: Env<'_>, grant: &GrantId) -> Result<Option<GrantRecord>, Error> {
    let Some(registry) = env.locker.registry() else {
        return Ok(None);
    };
    let Some(item) = registry.get_item(grant.as_str()).await? else {
        return Ok(None);
    };
    // A record whose MAC does not verify was changed outside vendor-grants: it could point a
    // Delete at another bucket or key (leaving the vendor's access where it is) or at another
    // stack, so it is not acted on. One without a MAC (an earlier version's) still is.
    if let Integrity::Tampered(why) = registry.verify(&item).await {
        warn!(grant_id = %grant, why, "the grant's registry record does not verify; acting on the event's properties and PhysicalResourceId");
        return Ok(None);
    }
    match GrantRecord::from_json(&item.record) {
        Ok(record) if record.grant_id == grant.as_str() => Ok(Some(record)),
        Ok(_) | Err(_) => {
            warn!(grant_id = %grant, "the grant's registry record does not read as this grant's; acting on the event's properties");
            Ok(None)
        }
    }
}

/// A grant belongs to the stack resource that created it: with a record, an Update or Delete
/// from any other stack or logical resource is refused before anything is written. (A Delete of
/// a grant already gone has no record and goes on, finding nothing of its own to remove.)
fn check_owner(
    req: &Request<'_>,
    grant: &GrantId,
    record: Option<&GrantRecord>,
) -> Result<(), Error> {
    match record {
        Some(r) if r.stack_id != req.stack_id || r.logical_resource_id != req.logical_id => {
            Err(Error::NotOwner {
                grant: grant.to_string(),
                owner_stack_id: r.stack_id.clone(),
                owner_logical_id: r.logical_resource_id.clone(),
                stack_id: req.stack_id.to_string(),
                logical_id: req.logical_id.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// What a grant being written had written before, which decides what of the current policies
/// is its own.
#[derive(Clone, Copy)]
enum Before<'a> {
    /// A Create (or a replacement): statements with the grant's Sids must not exist yet in any
    /// other form.
    New,
    /// An in-place Update of a grant the registry recorded: the recorded statements are its own,
    /// and its key statement lives in the recorded key (an alias may point elsewhere now).
    Recorded(&'a GrantRecord),
    /// An in-place Update with no record: what the old properties would have written.
    Unrecorded,
}

/// A new grant: its statements must not be in the policies yet in any other form.
async fn create_grant(
    env: Env<'_>,
    req: &Request<'_>,
    props: &GrantProperties,
    grant: &GrantId,
) -> Result<Done, Error> {
    let data = apply(env, req, props, grant, Before::New).await?;
    Ok(Done {
        physical_resource_id: physical_resource_id(grant, &props.bucket_name),
        grant_id: Some(grant.clone()),
        data,
    })
}

/// Create or in-place Update: everything the grant needs, then verified, then recorded in the
/// registry (with a lock table). An Update whose key moved (an alias now names another key)
/// takes the grant's statement out of the key it was written to, once the new one holds it.
async fn apply(
    env: Env<'_>,
    req: &Request<'_>,
    props: &GrantProperties,
    grant: &GrantId,
    before: Before<'_>,
) -> Result<BTreeMap<String, String>, Error> {
    let key_arn = check_before_writing(env, props).await?;
    let partition = partition_of_region(&env.clients.region);
    let owner = owner_of(&env);
    let base = PlanInput {
        props,
        grant_id: grant,
        partition,
        account_id: owner.as_deref(),
        kms_key_arn: key_arn.as_deref(),
        bucket_policy: None,
        key_policy: None,
        new_grant: matches!(before, Before::New),
    };
    let previous: Vec<Statement> = match before {
        Before::New => Vec::new(),
        Before::Recorded(r) => recorded_statements(r),
        Before::Unrecorded => req.old_properties.map_or_else(Vec::new, |old| {
            written_by(env, old, grant, key_arn.as_deref())
        }),
    };
    // The role's documents depend on no current policy: nothing is read for them.
    let role = grant::role_plan(env.catalog, base)?;
    let (role_arn, role_changed) = match &role {
        Some(role) => {
            check_bucket(env, &props.bucket_name).await?;
            let joining = matches!(before, Before::New);
            let (arn, changed) = ensure_role(env, grant, role, joining).await?;
            (Some(arn), changed)
        }
        None => (None, false),
    };
    let tx = Transaction {
        grant,
        bucket: Some(&props.bucket_name),
        key_arn: key_arn.as_deref(),
        owner: owner.as_deref(),
        kind: Kind::Write,
        role_changed,
    };
    let plan = transact(env, tx, |bucket_policy, key_policy| {
        let input = PlanInput {
            bucket_policy,
            key_policy,
            ..base
        };
        let plan = grant::plan::plan_over(env.catalog, input, &previous)?;
        let change = Change::from(&plan);
        Ok((plan, change))
    })
    .await?;
    if let Before::Recorded(record) = before
        && let Some(old_key) = record.kms_key_arn.as_deref()
        && Some(old_key) != key_arn.as_deref()
    {
        info!(grant_id = %grant, old_key, new_key = key_arn.as_deref().unwrap_or(""), "KmsKeyArn now names another key: taking the grant's statement out of the key it was written to");
        let claim = grant::plan::claim(grant, partition, &record.bucket_name, &previous);
        remove_from_policies(env, &claim, None, Some(old_key)).await?;
    }
    if let Some(registry) = env.locker.registry() {
        let written = grant::Plan {
            role,
            ..plan.clone()
        };
        let record = GrantRecord::new(
            grant,
            req.stack_id,
            req.logical_id,
            props,
            &written,
            key_arn.as_deref(),
            epoch_seconds(),
        );
        registry.put(grant.as_str(), &record.to_json()).await?;
    }
    let attributes = Attributes {
        grant_id: grant.to_string(),
        bucket_arn: format!("arn:{partition}:s3:::{}", props.bucket_name),
        kms_key_arn: key_arn.unwrap_or_default(),
        role_arn: role_arn.unwrap_or_default(),
        vendor_principal: plan.principals.join(","),
        statement_ids: plan.statement_ids.join(","),
        region: env.clients.region.clone(),
    };
    Ok(attributes.into_data())
}

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes a deleted grant's registry record (with a lock table).
async fn forget(env: Env<'_>, grant: &GrantId) -> Result<(), Error> {
    match env.locker.registry() {
        Some(registry) => Ok(registry.delete(grant.as_str()).await?),
        None => Ok(()),
    }
}

/// The attributes a grant answers with (`Fn::GetAtt`): the README's table, one field each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `GrantId`: the grant's id (also inside the PhysicalResourceId).
    pub grant_id: String,
    /// `BucketArn`: `arn:aws:s3:::BUCKET`.
    pub bucket_arn: String,
    /// `KmsKeyArn`: the resolved key ARN, or empty.
    pub kms_key_arn: String,
    /// `RoleArn`: the role's ARN in role mode, or empty.
    pub role_arn: String,
    /// `VendorPrincipal`: the principal(s) granted, comma-separated.
    pub vendor_principal: String,
    /// `StatementIds`: every Sid this grant owns, comma-separated.
    pub statement_ids: String,
    /// `Region`: the region of the bucket and key.
    pub region: String,
}

impl Attributes {
    /// The attribute names, in the README's order.
    pub const NAMES: [&'static str; 7] = [
        "GrantId",
        "BucketArn",
        "KmsKeyArn",
        "RoleArn",
        "VendorPrincipal",
        "StatementIds",
        "Region",
    ];

    /// The answer's `Data`.
    pub fn into_data(self) -> BTreeMap<String, String> {
        let values = [
            self.grant_id,
            self.bucket_arn,
            self.kms_key_arn,
            self.role_arn,
            self.vendor_principal,
            self.statement_ids,
            self.region,
        ];
        Self::NAMES
            .iter()
            .map(|n| n.to_string())
            .zip(values)
            .collect()
    }
}

/// What a Delete acts on: the grant as it was written. The bucket comes from the
/// PhysicalResourceId; the key (as resolved when written, not an alias resolved again), the role
/// and the statements that are the grant's come from the registry's record. The event's
/// properties are used only where there is no record, and where they disagree with the record
/// the record wins and the disagreement is logged.
#[derive(Debug)]
struct Target {
    bucket: Option<String>,
    key_arn: Option<String>,
    role: Option<String>,
    claim: Claim,
}

async fn target_of(
    env: Env<'_>,
    req: &Request<'_>,
    grant: &GrantId,
    physical_bucket: Option<&str>,
    raw: &RawProperties,
    record: Option<&GrantRecord>,
) -> Result<Target, Error> {
    let partition = partition_of_region(&env.clients.region);
    let given_bucket = raw
        .bucket_name
        .as_deref()
        .filter(|b| check_bucket_name(b).is_ok());
    if let Some(record) = record {
        let bucket = record.bucket_name.clone();
        if physical_bucket.is_some_and(|b| b != bucket) {
            warn!(grant_id = %grant, recorded = %bucket, physical = physical_bucket.unwrap_or(""), "the PhysicalResourceId names another bucket than the record; acting on the recorded one");
        }
        let disagreements = [
            ("BucketName", given_bucket.is_some_and(|b| b != bucket)),
            (
                "Vendor",
                raw.vendor.as_deref().is_some_and(|v| v != record.vendor),
            ),
            (
                "Mode",
                raw.mode.as_deref().is_some_and(|m| m != record.mode),
            ),
            (
                "RoleName",
                raw.role_name.is_some() && raw.role_name != record.role_name,
            ),
            (
                "KmsKeyArn",
                raw.kms_key.is_some() != record.kms_key_arn.is_some(),
            ),
        ];
        for (property, differs) in disagreements {
            if differs {
                warn!(grant_id = %grant, property, "the Delete's properties disagree with what the grant wrote; acting on the registry's record");
            }
        }
        let key_arn = match record.kms_key_arn.as_deref() {
            Some(k) => key_to_clean(env, k).await?,
            None => None,
        };
        let statements = recorded_statements(record);
        return Ok(Target {
            claim: grant::plan::claim(grant, partition, &bucket, &statements),
            bucket: Some(bucket),
            key_arn,
            role: record.role_name.clone(),
        });
    }
    let bucket = physical_bucket.or(given_bucket).map(str::to_string);
    if let (Some(p), Some(g)) = (physical_bucket, given_bucket)
        && p != g
    {
        warn!(grant_id = %grant, physical = p, given = g, "the Delete's BucketName is not the bucket in its PhysicalResourceId; acting on the PhysicalResourceId's");
    }
    let key_arn = match raw
        .kms_key
        .as_deref()
        .filter(|k| check_key_reference(k).is_ok() && env.home.check_key(k).is_ok())
    {
        Some(k) => key_to_clean(env, k).await?,
        None => None,
    };
    // What a grant of these properties writes: its principals are what it may remove.
    let statements = written_by(env, req.properties, grant, key_arn.as_deref());
    Ok(Target {
        claim: grant::plan::claim(
            grant,
            partition,
            bucket.as_deref().unwrap_or(""),
            &statements,
        ),
        bucket,
        key_arn,
        role: role_of(env.catalog, raw, grant),
    })
}

/// The statements the registry recorded the grant writing, in the bucket and the key policy.
fn recorded_statements(record: &GrantRecord) -> Vec<Statement> {
    record
        .bucket_statements
        .iter()
        .chain(&record.key_statements)
        .cloned()
        .collect()
}

/// What a grant of the ResourceProperties `json` writes into bucket and key policies (every
/// statement it can, see [`grant::plan::claimed_statements`]): its claim where the registry has no
/// record. None when the properties no longer read.
fn written_by(
    env: Env<'_>,
    json: &serde_json::Value,
    grant: &GrantId,
    key_arn: Option<&str>,
) -> Vec<Statement> {
    let Ok(props) = GrantProperties::from_json(json, env.catalog) else {
        return Vec::new();
    };
    let owner = owner_of(&env);
    let input = PlanInput {
        props: &props,
        grant_id: grant,
        partition: partition_of_region(&env.clients.region),
        account_id: owner.as_deref(),
        kms_key_arn: key_arn,
        bucket_policy: None,
        key_policy: None,
        new_grant: false,
    };
    grant::plan::claimed_statements(env.catalog, input).unwrap_or_default()
}

/// The key's ARN when its policy can still be cleaned: `None` for a key that is gone, pending
/// deletion or AWS managed (its policy cannot be changed, and vendor-grants never wrote it).
async fn key_to_clean(env: Env<'_>, key: &str) -> Result<Option<String>, Error> {
    match kms::describe_key(env.clients, key).await {
        Ok(info) if info.pending_deletion || !info.customer_managed => Ok(None),
        Ok(info) => Ok(Some(info.arn)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(Error::from(e)),
    }
}

/// Delete: takes the grant's statements out of the bucket and key policies, its inline policy
/// off its role, and the role itself when vendor-grants created it and no grant uses it any more.
/// Anything already gone is fine.
async fn remove(env: Env<'_>, grant: &GrantId, target: &Target) -> Result<(), Error> {
    let policies = remove_from_policies(
        env,
        &target.claim,
        target.bucket.as_deref(),
        target.key_arn.as_deref(),
    )
    .await;
    // The role goes even when the policies could not be cleaned: its access must not outlive
    // the grant because a bucket or key became unreadable.
    let role = match &target.role {
        Some(role_name) => remove_role(env, grant, role_name).await,
        None => Ok(()),
    };
    policies.and(role)
}

/// Takes what `claim` owns out of the bucket policy and the key policy. A statement under one of
/// the grant's Sids that the claim does not own is left exactly as it is, and logged.
async fn remove_from_policies(
    env: Env<'_>,
    claim: &Claim,
    bucket: Option<&str>,
    key_arn: Option<&str>,
) -> Result<(), Error> {
    let owner = owner_of(&env);
    let grant = claim.grant();
    let tx = Transaction {
        grant,
        bucket,
        key_arn,
        owner: owner.as_deref(),
        kind: Kind::Remove(claim),
        role_changed: false,
    };
    transact(env, tx, |bucket_policy, key_policy| {
        for (doc, what) in [(bucket_policy, "bucket policy"), (key_policy, "key policy")] {
            let left = doc.map(|d| claim.foreign_with_our_sids(d)).unwrap_or_default();
            if !left.is_empty() {
                warn!(grant_id = %grant, what, sids = %left.join(","), "left as it is: a statement carries the grant's Sid but is not the grant's (another principal, a Deny, or beyond the bucket or key)");
            }
        }
        let removal = grant::plan_removal(claim, bucket_policy, key_policy)?;
        Ok(((), Change::from(removal)))
    })
    .await
}
