//! KMS: resolving the grant's key and reading and writing its key policy. The lockout safety
//! check is never bypassed.

use aws_sdk_kms::types::{KeyManagerType, KeyState};

use super::{Clients, Error, sdk_error};

/// Key policies have one name.
const POLICY_NAME: &str = "default";

/// What DescribeKey says of the grant's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub arn: String,
    pub customer_managed: bool,
    /// PendingDeletion or PendingReplicaDeletion: its policy can no longer be changed.
    pub pending_deletion: bool,
}

/// Resolves a key id, key ARN, alias name or alias ARN.
pub async fn describe_key(c: &Clients, key: &str) -> Result<KeyInfo, Error> {
    let out = c.kms.describe_key().key_id(key).send().await.map_err(|e| {
        if e.as_service_error()
            .is_some_and(|s| s.is_not_found_exception())
        {
            Error::NotFound {
                what: format!("KMS key {key}"),
            }
        } else {
            sdk_error("DescribeKey", key, e)
        }
    })?;
    let meta = out.key_metadata().ok_or_else(|| Error::Service {
        operation: "DescribeKey",
        resource: key.to_string(),
        code: None,
        message: "the answer had no key metadata".to_string(),
    })?;
    let arn = meta
        .arn()
        .map(str::to_string)
        .ok_or_else(|| Error::Service {
            operation: "DescribeKey",
            resource: key.to_string(),
            code: None,
            message: "the answer had no key ARN".to_string(),
        })?;
    Ok(KeyInfo {
        arn,
        customer_managed: meta.key_manager() != Some(&KeyManagerType::Aws),
        pending_deletion: matches!(
            meta.key_state(),
            Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion)
        ),
    })
}

pub async fn get_key_policy(c: &Clients, key_arn: &str) -> Result<String, Error> {
    let out = c
        .kms
        .get_key_policy()
        .key_id(key_arn)
        .policy_name(POLICY_NAME)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception())
            {
                Error::NotFound {
                    what: format!("KMS key {key_arn}"),
                }
            } else {
                sdk_error("GetKeyPolicy", key_arn, e)
            }
        })?;
    out.policy()
        .map(str::to_string)
        .ok_or_else(|| Error::Service {
            operation: "GetKeyPolicy",
            resource: key_arn.to_string(),
            code: None,
            message: "the answer had no policy".to_string(),
        })
}

pub async fn put_key_policy(c: &Clients, key_arn: &str, policy: &str) -> Result<(), Error> {
    c.kms
        .put_key_policy()
        .key_id(key_arn)
        .policy_name(POLICY_NAME)
        .policy(policy)
        // Never bypass: AWS then refuses a policy that would lock the account out of its key.
        .bypass_policy_lockout_safety_check(false)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception())
            {
                Error::NotFound {
                    what: format!("KMS key {key_arn}"),
                }
            } else if e
                .as_service_error()
                .is_some_and(|s| s.is_kms_invalid_state_exception())
            {
                // A key pending deletion: for a Delete this is as good as gone.
                Error::NotFound {
                    what: format!("KMS key {key_arn} (pending deletion)"),
                }
            } else {
                sdk_error("PutKeyPolicy", key_arn, e)
            }
        })
}
