//! The grant id and the PhysicalResourceId that carries it. The id is derived from the stack, the
//! logical resource and the properties whose change means replacement, so the same resource in
//! the same stack always gets the same id, and a replacement always gets a new one.

use sha2::{Digest, Sha256};

use super::properties::GrantProperties;
use crate::policy::GrantId;

/// Hex characters of the SHA-256 digest kept in a grant id: 64 bits, ample against collision
/// between the grants of one bucket, and short enough for Sids and role names.
const ID_LEN: usize = 16;

const PHYSICAL_ID_PREFIX: &str = "vendor-grants";

/// Derives the grant id from StackId, LogicalResourceId and the replacement properties (Vendor,
/// BucketName, KmsKeyArn, Mode, RoleName), as given.
pub fn derive_grant_id(stack_id: &str, logical_id: &str, props: &GrantProperties) -> GrantId {
    let mut hasher = Sha256::new();
    for part in [
        "vendor-grants/v1",
        stack_id,
        logical_id,
        props.vendor.as_str(),
        props.bucket_name.as_str(),
        props.kms_key.as_deref().unwrap_or(""),
        props.mode.as_str(),
        props.role_name.as_deref().unwrap_or(""),
    ] {
        // Length-prefixed, so no two different inputs run together into the same bytes.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    GrantId::from_hex(&digest[..ID_LEN / 2])
}

/// Marks a grant id minted for a Create whose properties were refused: hex never holds an `x`.
const NOTHING_WRITTEN: &str = "x";

/// The grant id of a Create whose properties are not valid: nothing was written for it, but its
/// failed answer still needs an id of ours so the rollback Delete is recognised as a no-op.
pub fn fallback_grant_id(stack_id: &str, logical_id: &str, request_id: &str) -> GrantId {
    let mut hasher = Sha256::new();
    for part in ["vendor-grants/invalid", stack_id, logical_id, request_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let hex = GrantId::from_hex(&hasher.finalize()[..ID_LEN / 2 - 1]);
    GrantId::parse(&format!("{NOTHING_WRITTEN}{hex}")).unwrap_or(hex)
}

/// Whether `grant` was minted by [`fallback_grant_id`]: nothing was ever written under it.
pub fn is_fallback(grant: &GrantId) -> bool {
    grant.as_str().len() == ID_LEN - 1 && grant.as_str().starts_with(NOTHING_WRITTEN)
}

/// `vendor-grants:<grant-id>:<bucket>`: the id first, the bucket for people reading the console.
pub fn physical_resource_id(grant: &GrantId, bucket: &str) -> String {
    format!("{PHYSICAL_ID_PREFIX}:{grant}:{bucket}")
}

/// The grant id inside a PhysicalResourceId, if it is one of ours (whatever scheme minted the id
/// part), else `None`.
pub fn grant_id_from_physical(physical_id: &str) -> Option<GrantId> {
    let mut parts = physical_id.splitn(3, ':');
    if parts.next()? != PHYSICAL_ID_PREFIX {
        return None;
    }
    GrantId::parse(parts.next()?)
}

/// The bucket inside a PhysicalResourceId of ours (`vendor-grants:<grant-id>:<bucket>`), if it
/// carries one: the bucket the grant was written to, whatever later properties say.
pub fn bucket_from_physical(physical_id: &str) -> Option<&str> {
    grant_id_from_physical(physical_id)?;
    physical_id
        .splitn(3, ':')
        .nth(2)
        .filter(|b| super::properties::check_bucket_name(b).is_ok())
}
