//! Checks before anything is written: whose event it is (the function's own account and
//! region), the platform team's allow-lists, the key, and the vendor's bucket requirements.

use crate::aws::{self, kms, s3};
use crate::catalog::{Requirement, VendorProfile};
use crate::grant::{self, GrantProperties};
use crate::policy::arn::Arn;

use super::{Env, Error};

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

/// Everything checked before a grant writes, in this order: the vendor, the allow-lists, the
/// key's account and region, the key itself (resolved to its ARN, returned), and the vendor's
/// bucket requirements. That the bucket exists and is this account's is told by the policy
/// transaction's first read, or by [`check_bucket`] before a role is made for it.
pub(super) async fn check_before_writing(
    env: Env<'_>,
    props: &GrantProperties,
) -> Result<Option<String>, Error> {
    let vendor = env.catalog.vendor(&props.vendor).ok_or_else(|| {
        Error::Input(grant::Error::InvalidValue {
            property: "Vendor",
            value: props.vendor.clone(),
            valid: env.catalog.vendor_ids().join(", "),
        })
    })?;
    check_allowed(env, props)?;
    if let Some(k) = &props.kms_key {
        env.home.check_key(k)?;
    }
    let owner = owner_of(&env);
    let key_arn = match &props.kms_key {
        Some(k) => Some(resolve_key(env, k).await?),
        None => None,
    };
    check_requirements(env, vendor, props, key_arn.as_deref(), owner.as_deref()).await?;
    Ok(key_arn)
}

/// That the bucket exists and is this account's, by reading its policy: in role mode, before a
/// role is created for a bucket the function cannot see.
pub(super) async fn check_bucket(env: Env<'_>, bucket: &str) -> Result<(), Error> {
    let owner = owner_of(&env);
    s3::get_bucket_policy(env.clients, bucket, owner.as_deref())
        .await
        .map(|_| ())
        .map_err(|e| unreachable_bucket(env, e, bucket))
}

/// A failed read of a bucket that is about to be written: S3 answers AccessDenied when
/// ExpectedBucketOwner is not the bucket's owner, or when the function may not read the policy.
pub(super) fn unreachable_bucket(env: Env<'_>, e: aws::Error, bucket: &str) -> Error {
    match e.code() {
        Some("AccessDenied") => Error::BucketUnreachable {
            bucket: bucket.to_string(),
            account: env.home.account.clone(),
        },
        _ => no_bucket(e, bucket),
    }
}

/// The platform team's allow-lists (`VENDOR_GRANTS_ALLOWED_*`): the vendor and every
/// `VendorPrincipal`.
fn check_allowed(env: Env<'_>, props: &GrantProperties) -> Result<(), Error> {
    env.allowed
        .check(&props.vendor, &props.vendor_principals)
        .map_err(|r| Error::NotAllowed {
            setting: r.setting,
            what: r.what,
            allowed: r.allowed,
        })
}

/// The account that must own the bucket (S3's `ExpectedBucketOwner`): the function's own.
pub(super) fn owner_of(env: &Env<'_>) -> Option<String> {
    Some(env.home.account.clone())
}

/// Resolves KmsKeyArn to the key's ARN, refusing keys whose policy cannot be changed.
pub(super) async fn resolve_key(env: Env<'_>, key: &str) -> Result<String, Error> {
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
pub(super) async fn check_requirements(
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

pub(super) fn no_bucket(e: aws::Error, bucket: &str) -> Error {
    if e.is_not_found() {
        Error::NoBucket(bucket.to_string())
    } else {
        Error::Aws(e)
    }
}
