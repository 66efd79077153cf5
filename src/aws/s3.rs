//! S3: the bucket policy, and the bucket settings vendors require.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_bucket_encryption::GetBucketEncryptionOutput;
use aws_sdk_s3::operation::get_bucket_ownership_controls::GetBucketOwnershipControlsOutput;
use aws_sdk_s3::operation::get_public_access_block::GetPublicAccessBlockOutput;
use aws_sdk_s3::types::{ObjectOwnership, ServerSideEncryption};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use super::{Clients, Error, sdk_error};

/// An S3 error: `NoSuchBucket` becomes [`Error::NotFound`].
fn s3_error<E>(operation: &'static str, bucket: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if err.code() == Some("NoSuchBucket") {
        Error::NotFound {
            what: format!("bucket {bucket}"),
        }
    } else {
        sdk_error(operation, bucket, err)
    }
}

/// For a bucket setting that may be unset: its output when configured, `None` when its "not
/// configured" error code says it is absent, and any other error as an [`Error`].
fn configured<O, E>(
    operation: &'static str,
    bucket: &str,
    absent: &str,
    result: Result<O, SdkError<E, HttpResponse>>,
) -> Result<Option<O>, Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(err) if err.code() == Some(absent) => Ok(None),
        Err(err) => Err(s3_error(operation, bucket, err)),
    }
}

/// The bucket policy's text, or `None` when the bucket has none.
pub async fn get_bucket_policy(
    c: &Clients,
    bucket: &str,
    owner: Option<&str>,
) -> Result<Option<String>, Error> {
    match c
        .s3
        .get_bucket_policy()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.map(str::to_string))
        .send()
        .await
    {
        Ok(out) => Ok(out.policy().map(str::to_string).filter(|p| !p.is_empty())),
        Err(e) => {
            if e.code() == Some("NoSuchBucketPolicy") {
                return Ok(None);
            }
            Err(s3_error("GetBucketPolicy", bucket, e))
        }
    }
}

pub async fn put_bucket_policy(
    c: &Clients,
    bucket: &str,
    owner: Option<&str>,
    policy: &str,
) -> Result<(), Error> {
    c.s3.put_bucket_policy()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.map(str::to_string))
        .policy(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| s3_error("PutBucketPolicy", bucket, e))
}

pub async fn delete_bucket_policy(
    c: &Clients,
    bucket: &str,
    owner: Option<&str>,
) -> Result<(), Error> {
    c.s3.delete_bucket_policy()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.map(str::to_string))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| s3_error("DeleteBucketPolicy", bucket, e))
}

/// The bucket settings a vendor's requirements are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BucketSettings {
    /// The KMS key of SSE-KMS default encryption, if that is what the bucket uses.
    pub sse_kms_key: Option<String>,
    /// All four Block Public Access settings are on.
    pub blocks_public_access: bool,
    /// Object Ownership is BucketOwnerEnforced.
    pub acls_disabled: bool,
}

/// Reads encryption, Block Public Access and Object Ownership, in that order; a setting that is
/// not configured counts as off.
pub async fn bucket_settings(
    c: &Clients,
    bucket: &str,
    owner: Option<&str>,
) -> Result<BucketSettings, Error> {
    let owner = owner.map(str::to_string);

    let encryption =
        c.s3.get_bucket_encryption()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send()
            .await;
    let encryption = configured(
        "GetBucketEncryption",
        bucket,
        "ServerSideEncryptionConfigurationNotFoundError",
        encryption,
    )?;

    let public_access =
        c.s3.get_public_access_block()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send()
            .await;
    let public_access = configured(
        "GetPublicAccessBlock",
        bucket,
        "NoSuchPublicAccessBlockConfiguration",
        public_access,
    )?;

    let ownership =
        c.s3.get_bucket_ownership_controls()
            .bucket(bucket)
            .set_expected_bucket_owner(owner)
            .send()
            .await;
    let ownership = configured(
        "GetBucketOwnershipControls",
        bucket,
        "OwnershipControlsNotFoundError",
        ownership,
    )?;

    Ok(BucketSettings {
        sse_kms_key: encryption.as_ref().and_then(sse_kms_key),
        blocks_public_access: public_access.as_ref().is_some_and(blocks_all_public_access),
        acls_disabled: ownership.as_ref().is_some_and(acls_disabled),
    })
}

/// The KMS key of the default encryption rule, when that rule is SSE-KMS (or DSSE-KMS).
fn sse_kms_key(out: &GetBucketEncryptionOutput) -> Option<String> {
    out.server_side_encryption_configuration()
        .into_iter()
        .flat_map(|c| c.rules())
        .filter_map(|r| r.apply_server_side_encryption_by_default())
        .find(|d| {
            matches!(
                d.sse_algorithm(),
                ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse
            )
        })
        .and_then(|d| d.kms_master_key_id().map(str::to_string))
}

/// Whether all four Block Public Access settings are on.
fn blocks_all_public_access(out: &GetPublicAccessBlockOutput) -> bool {
    out.public_access_block_configuration().is_some_and(|p| {
        p.block_public_acls() == Some(true)
            && p.ignore_public_acls() == Some(true)
            && p.block_public_policy() == Some(true)
            && p.restrict_public_buckets() == Some(true)
    })
}

/// Whether Object Ownership is BucketOwnerEnforced, which turns ACLs off.
fn acls_disabled(out: &GetBucketOwnershipControlsOutput) -> bool {
    out.ownership_controls()
        .into_iter()
        .flat_map(|o| o.rules())
        .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
}
