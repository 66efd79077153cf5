//! The role a role-mode grant creates (or shares), its trust policy and the grant's inline
//! policy on it; and removing them. Only roles vendor-grants created are ever changed.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::iam;
use crate::aws::lock::LeaseKey;
use crate::catalog::{Catalog, Mode};
use crate::grant::plan::{ROLE_OWNER_TAG, RolePlan, permissions_policy_name};
use crate::grant::{self, RawProperties};
use crate::policy::lint::{self, PolicyKind};
use crate::policy::{GrantId, PolicyDocument, documents_equivalent};

use super::policies::release;
use super::{Env, Error};

/// Tag marking a role as created by vendor-grants (the only roles it updates or deletes).
pub const ROLE_MANAGED_TAG: &str = "vendor-grants:managed";

/// How long AccessDenied on a just-created role's first inline policy is retried.
const TAG_PROPAGATION_WAIT: Duration = Duration::from_secs(30);

/// Creates the grant's role, or checks the existing one is ours and agrees, then puts the
/// grant's inline policy, all under the role's lease. Returns the role ARN and whether the role
/// or its trust is new (IAM may not have propagated it yet).
pub(super) async fn ensure_role(
    env: Env<'_>,
    grant: &GrantId,
    role: &RolePlan,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let lease = env.locker.acquire(&role_lease(name), env.deadline).await?;
    let result = async {
        let (arn, changed) = create_or_adopt(env, grant, role).await?;
        put_and_verify(env, role, changed).await?;
        Ok((arn, changed))
    }
    .await;
    release(vec![lease]).await;
    result
}

/// The lease that serialises changes to one role.
fn role_lease(name: &str) -> String {
    LeaseKey::Role(name).to_string()
}

/// The role's ARN, creating it when there is none; whether it is new.
async fn create_or_adopt(
    env: Env<'_>,
    grant: &GrantId,
    role: &RolePlan,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let mut existing = iam::get_role(env.clients, name).await?;
    if existing.is_none() {
        let tags = [(ROLE_MANAGED_TAG, "true"), (ROLE_OWNER_TAG, grant.as_str())];
        let description = format!("Created by vendor-grants for grant {grant}");
        let trust = role.trust_policy.to_json();
        if let Some(arn) = iam::create_role(env.clients, name, &trust, &description, &tags).await? {
            return Ok((arn, true));
        }
        // Created by someone else between our look and our create (another grant in another
        // region, or IAM not yet showing it): look again until IAM shows it.
        let mut tries = 0;
        while existing.is_none() && tries < 10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            existing = iam::get_role(env.clients, name).await?;
            tries += 1;
        }
    }
    match existing {
        None => Err(Error::ForeignRole(name.to_string())),
        Some(existing) => adopt(env, grant, role, existing).await,
    }
}

/// An existing role: only one vendor-grants created, whose trust agrees with the other grants
/// sharing it, and whose inline policies together stay within IAM's limit.
async fn adopt(
    env: Env<'_>,
    grant: &GrantId,
    role: &RolePlan,
    existing: iam::RoleInfo,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    if existing.tag(ROLE_MANAGED_TAG) != Some("true") {
        return Err(Error::ForeignRole(name.to_string()));
    }
    // Created by this very grant: an earlier delivery of this event crashed after CreateRole, or
    // CreateRole's answer was lost and the SDK's retry met EntityAlreadyExists. IAM may not have
    // propagated it yet, so it counts as new (the waits for propagation stay on).
    let mut changed = existing.tag(ROLE_OWNER_TAG) == Some(grant.as_str());
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
        iam::update_trust_policy(env.clients, name, &role.trust_policy.to_json()).await?;
        changed = true;
    }
    let mut documents = vec![role.permissions_policy.clone()];
    for other in &others {
        if let Some(text) = iam::get_role_policy(env.clients, name, other).await? {
            documents.push(PolicyDocument::parse(&text, "role policy")?);
        }
    }
    let refs: Vec<&PolicyDocument> = documents.iter().collect();
    lint::check_size(PolicyKind::RoleInlinePolicies, &refs)?;
    Ok((existing.arn, changed))
}

/// Puts the grant's inline policy and reads it back. A role created moments ago may not yet show
/// its tag to IAM's authorisation, which the deploy template's tag condition relies on: AccessDenied
/// is retried briefly then.
async fn put_and_verify(env: Env<'_>, role: &RolePlan, changed: bool) -> Result<(), Error> {
    let name = role.role_name.as_str();
    let document = role.permissions_policy.to_json();
    let mut pause = Duration::from_secs(1);
    let started = Instant::now();
    loop {
        match iam::put_role_policy(env.clients, name, &role.permissions_policy_name, &document)
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
    let written = iam::get_role_policy(env.clients, name, &role.permissions_policy_name).await?;
    let ok = written
        .and_then(|t| PolicyDocument::parse(&t, "role policy").ok())
        .is_some_and(|d| documents_equivalent(&d, &role.permissions_policy));
    if ok {
        Ok(())
    } else {
        Err(Error::VerifyFailed {
            what: format!(
                "inline policy {} of role {name}",
                role.permissions_policy_name
            ),
        })
    }
}

/// The role a role-mode grant used, from its (possibly no longer valid) properties.
pub(super) fn role_of(catalog: &Catalog, raw: &RawProperties, grant: &GrantId) -> Option<String> {
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

pub(super) async fn remove_role(env: Env<'_>, grant: &GrantId, name: &str) -> Result<(), Error> {
    let lease = env.locker.acquire(&role_lease(name), env.deadline).await?;
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
