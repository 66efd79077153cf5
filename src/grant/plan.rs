//! The plan: current policies + properties -> the policies and role documents to write. Pure, so
//! it can be printed (`vendor-grants plan`), diffed and tested; the lifecycle only carries it out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Error;
use super::properties::GrantProperties;
use crate::catalog::{ActionSet, Catalog, ExternalIdPolicy, Mode, VendorProfile};
use crate::policy::arn::Arn;
use crate::policy::canonical::{canonical_aws_principal, is_account_id};
use crate::policy::lint::{self, PolicyKind, S3ActionLevel};
use crate::policy::{
    Claim, GrantId, OneOrMany, PolicyDocument, Principal, Purpose, Statement, documents_equivalent,
    ownership,
};

/// The Sid of the one statement of a trust policy vendor-grants writes. A role is shared by the
/// grants that name it, so the Sid is not per grant.
pub const TRUST_SID: &str = "VendorGrantsAssumeRole";

/// Tag key put on roles vendor-grants creates: the role is ours to update and delete.
pub const ROLE_OWNER_TAG: &str = "vendor-grants:owner";

/// The IAM path of the roles vendor-grants creates under generated or chosen names. A path is
/// fixed when a role is created, so the deploy template can let the function create and change
/// roles at this path (and of the names grants use) only. A vendor whose guide fixes the role's
/// name also fixes where it looks for it: Scale builds `arn:aws:iam::ACCOUNT:role/ScaleAI-Integration`
/// itself, so that role is created at the path its catalog entry gives (`/`), see [`role_path`].
pub const ROLE_PATH: &str = "/vendor-grants/";

/// What the plan starts from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub props: &'a GrantProperties,
    pub grant_id: &'a GrantId,
    /// `aws`, `aws-cn`, ...: the partition of the bucket's region.
    pub partition: &'a str,
    /// The account the grant (and its role) lives in; the key's account when not known.
    pub account_id: Option<&'a str>,
    /// The key's ARN as DescribeKey resolved it, when the grant has KmsKeyArn.
    pub kms_key_arn: Option<&'a str>,
    pub bucket_policy: Option<&'a PolicyDocument>,
    pub key_policy: Option<&'a PolicyDocument>,
    /// A Create (or a replacement): statements with the grant's Sids must not exist yet in any
    /// other form. An in-place Update rewrites them.
    pub new_grant: bool,
}

/// The role a role-mode grant needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolePlan {
    #[serde(rename = "RoleName")]
    pub role_name: String,
    /// The IAM path it is created at (see [`role_path`]).
    #[serde(rename = "Path")]
    pub path: String,
    /// The ARN the vendor assumes (`ACCOUNT` where the account is not known, as in `plan`).
    #[serde(rename = "RoleArn")]
    pub role_arn: String,
    #[serde(rename = "TrustPolicy")]
    pub trust_policy: PolicyDocument,
    /// The grant's own inline policy on the role.
    #[serde(rename = "PermissionsPolicyName")]
    pub permissions_policy_name: String,
    #[serde(rename = "PermissionsPolicy")]
    pub permissions_policy: PolicyDocument,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    #[serde(rename = "GrantId")]
    pub grant_id: String,
    /// The bucket policy after the grant; `None`: there is none (it would be deleted).
    #[serde(rename = "BucketPolicy")]
    pub bucket_policy: Option<PolicyDocument>,
    /// The key policy after the grant; `None` when the grant has no key.
    #[serde(rename = "KeyPolicy")]
    pub key_policy: Option<PolicyDocument>,
    #[serde(rename = "Role")]
    pub role: Option<RolePlan>,
    #[serde(rename = "StatementIds")]
    pub statement_ids: Vec<String>,
    /// Whether the bucket policy differs in meaning from the current one.
    #[serde(skip)]
    pub bucket_policy_changed: bool,
    #[serde(skip)]
    pub key_policy_changed: bool,
    /// The grant's own statements in each policy, for the read-back check.
    #[serde(skip)]
    pub bucket_statements: Vec<Statement>,
    #[serde(skip)]
    pub key_statements: Vec<Statement>,
    /// The principals granted, as written in the policies.
    #[serde(skip)]
    pub principals: Vec<String>,
}

/// What removing a grant leaves: each policy without the grant's statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    /// `None`: the bucket policy is empty now and is to be deleted.
    pub bucket_policy: Option<PolicyDocument>,
    pub bucket_policy_changed: bool,
    pub key_policy: Option<PolicyDocument>,
    pub key_policy_changed: bool,
}

/// The account and partition in a KMS key ARN.
pub fn key_arn_parts(arn: &str) -> Option<(&str, &str)> {
    Arn::parse(arn)
        .filter(|a| {
            a.service == "kms" && is_account_id(a.account) && a.resource.starts_with("key/")
        })
        .map(|a| (a.partition, a.account))
}

/// Whether the key policy already lets the account's IAM policies grant use of the key (the
/// default key policy's "Enable IAM User Permissions" statement). Then a role in the account
/// needs no statement of its own in the key policy.
pub fn key_policy_delegates_to_iam(doc: &PolicyDocument, account: &str) -> bool {
    let root = format!("account:{account}");
    doc.statements.iter().any(|s| {
        s.effect == "Allow"
            && s.condition.as_ref().is_none_or(|c| c.is_empty())
            && s.principal.as_ref().is_some_and(|p| {
                p.aws_values()
                    .iter()
                    .any(|v| canonical_aws_principal(v) == root)
            })
            && s.actions().iter().any(|a| a == "kms:*" || a == "*")
            && s.resources().iter().any(|r| r == "*")
    })
}

/// The principal as a policy names it: a bare account id becomes its root ARN, as the vendors'
/// guides write it and as S3 returns it.
fn principal_arn(value: &str, partition: &str) -> String {
    if is_account_id(value) {
        format!("arn:{partition}:iam::{value}:root")
    } else {
        value.to_string()
    }
}

/// The S3 statements of a grant, without principal: the listing, the objects, and the vendor's
/// conditioned upload actions.
fn s3_statements(
    grant: &GrantId,
    vendor: &VendorProfile,
    actions: &ActionSet,
    bucket: &str,
    prefix: Option<&str>,
    partition: &str,
) -> Vec<Statement> {
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    let object_arn = format!("{bucket_arn}/{}*", prefix.unwrap_or(""));
    let mut bucket_actions = Vec::new();
    let mut object_actions = Vec::new();
    for action in &actions.s3 {
        match lint::s3_action_level(action) {
            Some(S3ActionLevel::Bucket) => bucket_actions.push(action.clone()),
            _ => object_actions.push(action.clone()),
        }
    }
    let upload = vendor
        .upload
        .as_ref()
        .filter(|rule| object_actions.contains(&rule.when));
    if let Some(rule) = upload {
        object_actions.retain(|a| !rule.actions.contains(a));
    }

    let mut out = Vec::new();
    if !bucket_actions.is_empty() {
        let mut s = Statement::allow(grant.sid(Purpose::BucketList));
        s.action = Some(OneOrMany::from_vec(bucket_actions));
        s.resource = Some(OneOrMany::One(bucket_arn.clone()));
        if let Some(p) = prefix {
            s.condition = Some(BTreeMap::from([(
                "StringLike".to_string(),
                BTreeMap::from([(
                    "s3:prefix".to_string(),
                    Value::Array(vec![Value::String(format!("{p}*"))]),
                )]),
            )]));
        }
        out.push(s);
    }
    if !object_actions.is_empty() {
        let mut s = Statement::allow(grant.sid(Purpose::BucketObjects));
        s.action = Some(OneOrMany::Many(object_actions));
        s.resource = Some(OneOrMany::One(object_arn.clone()));
        out.push(s);
    }
    if let Some(rule) = upload {
        let mut s = Statement::allow(grant.sid(Purpose::BucketUpload));
        s.action = Some(OneOrMany::Many(rule.actions.clone()));
        s.resource = Some(OneOrMany::One(object_arn));
        s.condition = Some(rule.condition.clone());
        out.push(s);
    }
    out
}

fn kms_statement(sid: String, kms: &[String], resource: &str) -> Statement {
    let mut s = Statement::allow(sid);
    s.action = Some(OneOrMany::Many(kms.to_vec()));
    s.resource = Some(OneOrMany::One(resource.to_string()));
    s
}

/// The role name a role-mode grant uses: RoleName, else the vendor's documented name, else one
/// made from the vendor and grant id.
pub fn role_name(given: Option<&str>, vendor: &VendorProfile, grant: &GrantId) -> String {
    given
        .map(str::to_string)
        .or_else(|| vendor.role.as_ref().and_then(|r| r.name.clone()))
        .unwrap_or_else(|| format!("VendorGrant-{}-{grant}", vendor.id))
}

/// The IAM path a role of `name` is created at: the vendor's documented path for its
/// documented name (the vendor builds the ARN from them), else [`ROLE_PATH`].
pub fn role_path<'a>(name: &str, vendor: &'a VendorProfile) -> &'a str {
    vendor
        .role
        .as_ref()
        .filter(|r| r.name.as_deref() == Some(name))
        .and_then(|r| r.path.as_deref())
        .unwrap_or(ROLE_PATH)
}

/// The name of the grant's inline policy on its role.
pub fn permissions_policy_name(grant: &GrantId) -> String {
    format!("{PERMISSIONS_POLICY_PREFIX}{grant}")
}

const PERMISSIONS_POLICY_PREFIX: &str = "VendorGrant-";

/// The grant whose inline policy `name` is (the inverse of [`permissions_policy_name`]).
pub fn grant_of_policy_name(name: &str) -> Option<GrantId> {
    GrantId::parse(name.strip_prefix(PERMISSIONS_POLICY_PREFIX)?)
}

/// What every part of a plan starts from: the vendor, the actions its Access means, the
/// principals granted and the resolved key.
struct Basis<'a> {
    vendor: &'a VendorProfile,
    actions: &'a ActionSet,
    principals: Vec<String>,
    /// The key's ARN and account, when the grant has one.
    key: Option<(&'a str, &'a str)>,
    s3: Vec<Statement>,
}

fn basis<'a>(catalog: &'a Catalog, input: &PlanInput<'a>) -> Result<Basis<'a>, Error> {
    let props = input.props;
    let partition = input.partition;
    let vendor = catalog
        .vendor(&props.vendor)
        .ok_or_else(|| Error::InvalidValue {
            property: "Vendor",
            value: props.vendor.clone(),
            valid: format!("one of: {}", catalog.vendor_ids().join(", ")),
        })?;
    // The vendor's fixed principals exist in their partition only (issue 20).
    if !vendor.serves_partition(partition) {
        return Err(Error::PartitionNotServed {
            vendor: vendor.id.clone(),
            name: vendor.name.clone(),
            principals: vendor.principals.join(", "),
            allowed: vendor.partitions.join(", "),
            partition: partition.to_string(),
        });
    }
    let actions = catalog
        .actions_for(vendor, props.mode, props.access)
        .ok_or(Error::Missing {
            property: "Access",
            hint: "give read, write, read-write or full".to_string(),
        })?;
    let s3 = s3_statements(
        input.grant_id,
        vendor,
        actions,
        &props.bucket_name,
        props.prefix.as_deref(),
        partition,
    );
    Ok(Basis {
        vendor,
        actions,
        principals: principals(vendor, props, partition)?,
        key: resolved_key(props, input.kms_key_arn, partition)?,
        s3,
    })
}

/// The principals: the vendor's fixed ones, or VendorPrincipal; each checked, duplicates (by
/// meaning) dropped.
fn principals(
    vendor: &VendorProfile,
    props: &GrantProperties,
    partition: &str,
) -> Result<Vec<String>, Error> {
    let (property, given) = if vendor.principals.is_empty() {
        ("VendorPrincipal", &props.vendor_principals)
    } else {
        ("Vendor", &vendor.principals)
    };
    let mut principals: Vec<String> = Vec::new();
    for p in given {
        lint::check_principal(property, p, partition)?;
        let arn = principal_arn(p, partition);
        if !principals
            .iter()
            .any(|q| canonical_aws_principal(q) == canonical_aws_principal(&arn))
        {
            principals.push(arn);
        }
    }
    Ok(principals)
}

/// The key's ARN and account, as DescribeKey resolved it, in the grant's partition.
fn resolved_key<'a>(
    props: &GrantProperties,
    kms_key_arn: Option<&'a str>,
    partition: &str,
) -> Result<Option<(&'a str, &'a str)>, Error> {
    match (&props.kms_key, kms_key_arn) {
        (None, _) => Ok(None),
        (Some(given), None) => Err(Error::KeyNotResolved { key: given.clone() }),
        (Some(_), Some(arn)) => {
            let (key_partition, account) =
                key_arn_parts(arn).ok_or_else(|| Error::InvalidValue {
                    property: "KmsKeyArn",
                    value: arn.to_string(),
                    valid: "a key ARN arn:PARTITION:kms:REGION:ACCOUNT:key/ID".to_string(),
                })?;
            if key_partition != partition {
                return Err(Error::InvalidValue {
                    property: "KmsKeyArn",
                    value: arn.to_string(),
                    valid: format!("a key in partition {partition}, where the bucket is"),
                });
            }
            Ok(Some((arn, account)))
        }
    }
}

/// The role a role-mode grant needs (`None` in bucket-policy mode): its trust policy and the
/// grant's inline policy. It depends on no current policy, so it is known before any read.
pub fn role_plan(catalog: &Catalog, input: PlanInput<'_>) -> Result<Option<RolePlan>, Error> {
    let basis = basis(catalog, &input)?;
    build_role(&basis, &input)
}

fn build_role(basis: &Basis<'_>, input: &PlanInput<'_>) -> Result<Option<RolePlan>, Error> {
    let props = input.props;
    if props.mode != Mode::Role {
        return Ok(None);
    }
    let mut permissions = basis.s3.clone();
    if let Some((arn, _)) = basis.key {
        let sid = input.grant_id.sid(Purpose::KeyUse);
        permissions.push(kms_statement(sid, &basis.actions.kms, arn));
    }
    for s in &permissions {
        lint::check_statement(s, &props.bucket_name, input.partition)?;
    }
    let trust = trust_policy(
        basis.vendor,
        &basis.principals,
        props.external_id.as_deref(),
    );
    let permissions = PolicyDocument::with_statements(permissions);
    lint::check_size(PolicyKind::TrustPolicy, &[&trust])?;
    lint::check_size(PolicyKind::RoleInlinePolicies, &[&permissions])?;
    let name = role_name(props.role_name.as_deref(), basis.vendor, input.grant_id);
    let path = role_path(&name, basis.vendor).to_string();
    let account = input
        .account_id
        .or(basis.key.map(|(_, account)| account))
        .unwrap_or("ACCOUNT");
    Ok(Some(RolePlan {
        role_arn: role_arn(input.partition, account, &path, &name),
        role_name: name,
        path,
        trust_policy: trust,
        permissions_policy_name: permissions_policy_name(input.grant_id),
        permissions_policy: permissions,
    }))
}

/// The statements the grant puts into the bucket policy and the key policy. In role mode only
/// the key policy may get one, for the role, when it does not already let the account's IAM
/// policies grant key use (which is why this step needs the current key policy).
fn policy_statements(
    basis: &Basis<'_>,
    input: &PlanInput<'_>,
    role: Option<&RolePlan>,
) -> Result<(Vec<Statement>, Vec<Statement>), Error> {
    let grant = input.grant_id;
    let mut bucket_statements = Vec::new();
    let mut key_statements = Vec::new();
    match (role, basis.key) {
        (None, key) => {
            for mut s in basis.s3.clone() {
                s.principal = Some(Principal::aws(basis.principals.clone()));
                bucket_statements.push(s);
            }
            if key.is_some() {
                let mut s = kms_statement(grant.sid(Purpose::KeyUse), &basis.actions.kms, "*");
                s.principal = Some(Principal::aws(basis.principals.clone()));
                key_statements.push(s);
            }
        }
        (Some(_), None) => {}
        (Some(role), Some((_, key_account))) => {
            // The role lives in the grant's account, which may not be the key's.
            let account = input.account_id.unwrap_or(key_account);
            let current = input.key_policy.ok_or(Error::KeyPolicyUnknown)?;
            if !key_policy_delegates_to_iam(current, account) {
                let mut s = kms_statement(grant.sid(Purpose::RoleKeyUse), &basis.actions.kms, "*");
                s.principal = Some(Principal::aws(vec![role_arn(
                    input.partition,
                    account,
                    &role.path,
                    &role.role_name,
                )]));
                key_statements.push(s);
            }
        }
    }
    for s in bucket_statements.iter().chain(&key_statements) {
        lint::check_statement(s, &input.props.bucket_name, input.partition)?;
    }
    Ok((bucket_statements, key_statements))
}

/// The ARN of a role at `path` in `account`.
pub fn role_arn(partition: &str, account: &str, path: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role{path}{role_name}")
}

/// Every statement a grant of these properties can put into a bucket or key policy, whatever
/// the policies hold now (so `RoleKeyUse` is there even where the key policy delegates to IAM):
/// what a Delete or an Update claims when the registry has no record of what was written.
pub fn claimed_statements(
    catalog: &Catalog,
    input: PlanInput<'_>,
) -> Result<Vec<Statement>, Error> {
    let basis = basis(catalog, &input)?;
    let grant = input.grant_id;
    let mut out = Vec::new();
    if input.props.mode == Mode::Role {
        let role = role_name(input.props.role_name.as_deref(), basis.vendor, grant);
        if let (Some((_, key_account)), true) = (basis.key, input.props.kms_key.is_some()) {
            let account = input.account_id.unwrap_or(key_account);
            let mut s = kms_statement(grant.sid(Purpose::RoleKeyUse), &basis.actions.kms, "*");
            // Where this version creates the role, and where earlier versions did.
            for path in [role_path(&role, basis.vendor), ROLE_PATH] {
                s.principal = Some(Principal::aws(vec![role_arn(
                    input.partition,
                    account,
                    path,
                    &role,
                )]));
                if !out.contains(&s) {
                    out.push(s.clone());
                }
            }
        }
        return Ok(out);
    }
    for mut s in basis.s3.clone() {
        s.principal = Some(Principal::aws(basis.principals.clone()));
        out.push(s);
    }
    if basis.key.is_some() {
        let mut s = kms_statement(grant.sid(Purpose::KeyUse), &basis.actions.kms, "*");
        s.principal = Some(Principal::aws(basis.principals.clone()));
        out.push(s);
    }
    Ok(out)
}

/// The claim of a grant on `bucket` that wrote `statements`.
pub fn claim(grant: &GrantId, partition: &str, bucket: &str, statements: &[Statement]) -> Claim {
    Claim::new(grant, Some(format!("arn:{partition}:s3:::{bucket}"))).with_statements(statements)
}

/// Computes what a Create or Update writes.
pub fn plan(catalog: &Catalog, input: PlanInput<'_>) -> Result<Plan, Error> {
    plan_over(catalog, input, &[])
}

/// Like [`plan`], for a grant that wrote `previous` before (the registry's record, or what the
/// old properties of an Update wrote): their principals are the grant's too, so the statements
/// naming them are replaced rather than refused as foreign.
pub fn plan_over(
    catalog: &Catalog,
    input: PlanInput<'_>,
    previous: &[Statement],
) -> Result<Plan, Error> {
    let basis = basis(catalog, &input)?;
    let role = build_role(&basis, &input)?;
    let (bucket_statements, key_statements) = policy_statements(&basis, &input, role.as_ref())?;
    let mut sids: Vec<String> = role
        .iter()
        .flat_map(|r| &r.permissions_policy.statements)
        .chain(&bucket_statements)
        .chain(&key_statements)
        .filter_map(|s| s.sid.clone())
        .collect();
    sids.sort();
    sids.dedup();
    let merged = merge_statements(
        &input,
        previous,
        basis.key.is_some(),
        &bucket_statements,
        &key_statements,
    )?;
    Ok(Plan {
        grant_id: input.grant_id.to_string(),
        bucket_policy: merged.bucket_policy,
        key_policy: merged.key_policy,
        role,
        statement_ids: sids,
        bucket_policy_changed: merged.bucket_policy_changed,
        key_policy_changed: merged.key_policy_changed,
        bucket_statements,
        key_statements,
        principals: basis.principals,
    })
}

/// The grant's statements merged into the current policies, checked against AWS's limits.
fn merge_statements(
    input: &PlanInput<'_>,
    previous: &[Statement],
    has_key: bool,
    bucket_statements: &[Statement],
    key_statements: &[Statement],
) -> Result<Merged, Error> {
    let grant = input.grant_id;
    let claim = claim(grant, input.partition, &input.props.bucket_name, previous);
    if input.new_grant {
        ownership::check_new_grant(
            input.bucket_policy,
            grant,
            bucket_statements,
            "bucket policy",
        )?;
        ownership::check_new_grant(input.key_policy, grant, key_statements, "key policy")?;
    }
    let bucket_policy = ownership::merge(
        input.bucket_policy,
        &claim,
        bucket_statements,
        "bucket policy",
    )?;
    let bucket_policy_changed = changed(input.bucket_policy, bucket_policy.as_ref());
    if let (true, Some(doc)) = (bucket_policy_changed, &bucket_policy) {
        lint::check_size(PolicyKind::BucketPolicy, &[doc])?;
        lint::check_no_deleted_principals(doc, "bucket policy")?;
    }
    let (key_policy, key_policy_changed) = if has_key {
        let current = input.key_policy.ok_or(Error::KeyPolicyUnknown)?;
        let doc = ownership::merge(Some(current), &claim, key_statements, "key policy")?
            .ok_or(Error::KeyPolicyWouldBeEmpty)?;
        let changed = changed(Some(current), Some(&doc));
        if changed {
            lint::check_size(PolicyKind::KeyPolicy, &[&doc])?;
            lint::check_no_deleted_principals(&doc, "key policy")?;
        }
        (Some(doc), changed)
    } else {
        (None, false)
    };
    Ok(Merged {
        bucket_policy,
        bucket_policy_changed,
        key_policy,
        key_policy_changed,
    })
}

/// Both policies after the merge, and whether each changed in meaning.
struct Merged {
    bucket_policy: Option<PolicyDocument>,
    bucket_policy_changed: bool,
    key_policy: Option<PolicyDocument>,
    key_policy_changed: bool,
}

fn changed(before: Option<&PolicyDocument>, after: Option<&PolicyDocument>) -> bool {
    match (before, after) {
        (None, None) => false,
        (Some(a), Some(b)) => !documents_equivalent(a, b),
        _ => true,
    }
}

/// The trust policy of a grant's role: the vendor's principals may assume it, with the external
/// id when the vendor sends one.
pub fn trust_policy(
    vendor: &VendorProfile,
    principals: &[String],
    external_id: Option<&str>,
) -> PolicyDocument {
    let mut s = Statement::allow(TRUST_SID);
    s.principal = Some(Principal::aws(principals.to_vec()));
    s.action = Some(OneOrMany::One("sts:AssumeRole".to_string()));
    let sends_id = vendor
        .role
        .as_ref()
        .is_some_and(|r| r.external_id == ExternalIdPolicy::Required);
    if let (true, Some(id)) = (sends_id, external_id) {
        s.condition = Some(BTreeMap::from([(
            "StringEquals".to_string(),
            BTreeMap::from([("sts:ExternalId".to_string(), Value::String(id.to_string()))]),
        )]));
    }
    PolicyDocument::with_statements(vec![s])
}

/// Whether `statement` of a vendor-grants role's trust policy is the one vendor-grants writes:
/// under [`TRUST_SID`], an `Allow` of exactly `sts:AssumeRole` to `AWS` principals, with no
/// `Not*` element. Its principals and condition may differ (an ExternalId or VendorPrincipal
/// being changed): the role is vendor-grants' and so is that statement.
fn is_our_trust_statement(statement: &Statement) -> bool {
    statement.sid.as_deref() == Some(TRUST_SID)
        && statement.effect == "Allow"
        && statement.not_principal.is_none()
        && statement.not_action.is_none()
        && statement.not_resource.is_none()
        && statement.resource.is_none()
        && statement.actions() == ["sts:AssumeRole"]
        && matches!(&statement.principal, Some(Principal::Map(m)) if m.len() == 1 && m.contains_key("AWS"))
}

/// The condition key a trust statement carries the vendor's ExternalId under.
const EXTERNAL_ID_KEY: &str = "sts:ExternalId";

/// The ExternalIds vendor-grants' trust statement (under [`TRUST_SID`]) accepts, in `trust`.
pub fn trust_external_ids(trust: &PolicyDocument) -> Vec<String> {
    let statement = trust
        .statements
        .iter()
        .find(|s| s.sid.as_deref() == Some(TRUST_SID));
    let value = statement
        .and_then(|s| s.condition.as_ref())
        .and_then(|c| c.get("StringEquals"))
        .and_then(|m| m.get(EXTERNAL_ID_KEY));
    match value {
        Some(Value::String(v)) => vec![v.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `trust` (a grant's trust policy, as [`trust_policy`] makes it) accepting each of `ids`: the
/// trust statement of a role several grants share, each with its own ExternalId. An empty `ids`
/// leaves `trust` as it is: a trust statement never loses its ExternalId condition this way.
pub fn with_external_ids(trust: &PolicyDocument, ids: &[String]) -> PolicyDocument {
    let mut out = trust.clone();
    if ids.is_empty() {
        return out;
    }
    let value = match ids {
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    };
    for s in out.statements.iter_mut() {
        if s.sid.as_deref() != Some(TRUST_SID) {
            continue;
        }
        if let Some(slot) = s
            .condition
            .as_mut()
            .and_then(|c| c.get_mut("StringEquals"))
            .and_then(|m| m.get_mut(EXTERNAL_ID_KEY))
        {
            *slot = value.clone();
        }
    }
    out
}

/// Whether the trust statements under [`TRUST_SID`] of `a` and `b` name the same principals.
pub fn trust_principals_agree(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    let principals = |d: &PolicyDocument| {
        d.statements
            .iter()
            .find(|s| s.sid.as_deref() == Some(TRUST_SID))
            .and_then(|s| s.principal.as_ref())
            .map(|p| {
                p.aws_values()
                    .iter()
                    .map(|v| canonical_aws_principal(v))
                    .collect::<std::collections::BTreeSet<_>>()
            })
    };
    match (principals(a), principals(b)) {
        (Some(x), Some(y)) => x == y,
        // No statement of vendor-grants' in one of them: nothing to disagree with.
        _ => true,
    }
}

/// How a role's current trust policy compares with the grant's trust statement.
#[derive(Debug, Clone, PartialEq)]
pub enum TrustMerge {
    /// It already holds the grant's statement, by meaning.
    Holds,
    /// It holds vendor-grants' statement with other content (principals or ExternalId): the
    /// document to write, with that statement replaced in its place and every other statement
    /// as it was, in its order.
    Replace(PolicyDocument),
}

/// Merges the grant's trust statement (the one statement of `desired`) into a vendor-grants
/// role's `current` trust policy, the way the bucket and key policies are merged: vendor-grants
/// owns only its statement under [`TRUST_SID`]; statements others added (a security team's
/// `Deny` unless from the vendor's network, say) stay exactly as they are. A statement under
/// that Sid that vendor-grants would not write is someone else's: an error, nothing replaced.
pub fn merge_trust(
    current: &PolicyDocument,
    desired: &PolicyDocument,
    role_name: &str,
) -> Result<TrustMerge, Error> {
    let what = format!("trust policy of role {role_name}");
    let ours = desired.statements.first().ok_or_else(|| {
        Error::Policy(crate::policy::Error::NotOwned {
            sid: TRUST_SID.to_string(),
            grant: role_name.to_string(),
        })
    })?;
    let mut out = current.clone();
    let mut placed = false;
    let mut kept = Vec::with_capacity(current.statements.len() + 1);
    for statement in &current.statements {
        let sid_is_ours = statement
            .sid
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(TRUST_SID));
        if !sid_is_ours {
            kept.push(statement.clone());
        } else if !is_our_trust_statement(statement) {
            return Err(Error::Policy(crate::policy::Error::SidConflict {
                what,
                sid: statement.sid.clone().unwrap_or_default(),
            }));
        } else if !placed {
            kept.push(ours.clone());
            placed = true;
        }
    }
    if !placed {
        kept.push(ours.clone());
    }
    out.statements = kept;
    if documents_equivalent(&out, current) {
        Ok(TrustMerge::Holds)
    } else {
        Ok(TrustMerge::Replace(out))
    }
}

/// Computes what a Delete leaves: each policy without the statements `claim` owns (a statement
/// under one of the grant's Sids that the claim does not cover stays as it is).
pub fn plan_removal(
    claim: &Claim,
    bucket_policy: Option<&PolicyDocument>,
    key_policy: Option<&PolicyDocument>,
) -> Result<Removal, Error> {
    let bucket = ownership::remove(bucket_policy, claim, "bucket policy")?;
    let key = match key_policy {
        None => None,
        Some(current) => Some(
            ownership::remove(Some(current), claim, "key policy")?
                .ok_or(Error::KeyPolicyWouldBeEmpty)?,
        ),
    };
    for (before, after, what) in [
        (bucket_policy, bucket.as_ref(), "bucket policy"),
        (key_policy, key.as_ref(), "key policy"),
    ] {
        if let (true, Some(doc)) = (changed(before, after), after) {
            lint::check_no_deleted_principals(doc, what)?;
        }
    }
    Ok(Removal {
        bucket_policy_changed: changed(bucket_policy, bucket.as_ref()),
        bucket_policy: bucket,
        key_policy_changed: changed(key_policy, key.as_ref()),
        key_policy: key,
    })
}
