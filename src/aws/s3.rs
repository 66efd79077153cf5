//! S3: the bucket policy, and the bucket settings vendors require.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ObjectOwnership, ServerSideEncryption};

use super::{Clients, Error, service_error};

/// An S3 error: `NoSuchBucket` becomes [`Error::NotFound`].
fn s3_error<E>(operation: &'static str, bucket: &str, err: E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if err.code() == Some("NoSuchBucket") {
        Error::NotFound {
            what: format!("bucket {bucket}"),
        }
    } else {
        service_error(operation, bucket, err)
    }
}

/// For a bucket setting that may be unset: its "not configured" error code means absent.
fn absent_or_error<E>(
    operation: &'static str,
    bucket: &str,
    absent: &str,
    err: E,
) -> Result<(), Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if err.code() == Some(absent) {
        Ok(())
    } else {
        Err(s3_error(operation, bucket, err))
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
            let e = e.into_service_error();
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
        .map_err(|e| s3_error("PutBucketPolicy", bucket, e.into_service_error()))
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
        .map_err(|e| s3_error("DeleteBucketPolicy", bucket, e.into_service_error()))
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

pub async fn bucket_settings(
    c: &Clients,
    bucket: &str,
    owner: Option<&str>,
) -> Result<BucketSettings, Error> {
    let owner = owner.map(str::to_string);
    let mut settings = BucketSettings::default();

    match c
        .s3
        .get_bucket_encryption()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.clone())
        .send()
        .await
    {
        Ok(out) => {
            settings.sse_kms_key = out
                .server_side_encryption_configuration()
                .into_iter()
                .flat_map(|c| c.rules())
                .filter_map(|r| r.apply_server_side_encryption_by_default())
                .find(|d| {
                    matches!(
                        d.sse_algorithm(),
                        ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse
                    )
                })
                .and_then(|d| d.kms_master_key_id().map(str::to_string));
        }
        Err(e) => absent_or_error(
            "GetBucketEncryption",
            bucket,
            "ServerSideEncryptionConfigurationNotFoundError",
            e.into_service_error(),
        )?,
    }

    match c
        .s3
        .get_public_access_block()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.clone())
        .send()
        .await
    {
        Ok(out) => {
            settings.blocks_public_access =
                out.public_access_block_configuration().is_some_and(|p| {
                    p.block_public_acls() == Some(true)
                        && p.ignore_public_acls() == Some(true)
                        && p.block_public_policy() == Some(true)
                        && p.restrict_public_buckets() == Some(true)
                });
        }
        Err(e) => absent_or_error(
            "GetPublicAccessBlock",
            bucket,
            "NoSuchPublicAccessBlockConfiguration",
            e.into_service_error(),
        )?,
    }

    match c
        .s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .set_expected_bucket_owner(owner)
        .send()
        .await
    {
        Ok(out) => {
            settings.acls_disabled = out
                .ownership_controls()
                .into_iter()
                .flat_map(|o| o.rules())
                .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced);
        }
        Err(e) => absent_or_error(
            "GetBucketOwnershipControls",
            bucket,
            "OwnershipControlsNotFoundError",
            e.into_service_error(),
        )?,
    }
    Ok(settings)
}
