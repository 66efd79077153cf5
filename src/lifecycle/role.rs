//! The role a role-mode grant creates (or shares), its trust policy and the grant's inline
//! policy on it; and removing them. Only roles vendor-grants created are ever changed.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::iam;
use crate::aws::lock::LeaseKey;
use crate::catalog::{Catalog, Mode};
use crate::grant::plan::{
    ROLE_OWNER_TAG, RolePlan, TrustMerge, grant_of_policy_name, merge_trust,
    permissions_policy_name, trust_external_ids, trust_principals_agree, with_external_ids,
};
use crate::grant::record::external_id_hash;
use crate::grant::{self, GrantRecord, RawProperties};
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
    joining: bool,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let lease = env.locker.acquire(&role_lease(name), env.deadline).await?;
    let result = async {
        let (arn, changed) = create_or_adopt(env, grant, role, joining).await?;
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
    joining: bool,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let mut existing = iam::get_role(env.clients, name).await?;
    if existing.is_none() {
        let tags = [(ROLE_MANAGED_TAG, "true"), (ROLE_OWNER_TAG, grant.as_str())];
        let description = format!("Created by vendor-grants for grant {grant}");
        let trust = role.trust_policy.to_json();
        let created =
            iam::create_role(env.clients, name, &role.path, &trust, &description, &tags).await?;
        if let Some(arn) = created {
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
        Some(existing) => adopt(env, grant, role, existing, joining).await,
    }
}

/// Whether vendor-grants may change `role` for `grant`. The managed tag alone is not ownership
/// (anyone who can tag a role can set it): the role must also carry the owner tag that every role
/// vendor-grants creates gets, naming either this grant or a grant vendor-grants still knows on
/// this role: one whose inline policy the role carries, or, with a registry, one recorded with
/// this role. `inline` is the role's inline policy names.
pub(super) async fn owns_role(
    env: Env<'_>,
    grant: &GrantId,
    role_name: &str,
    role: &iam::RoleInfo,
    inline: &[String],
) -> Result<bool, Error> {
    if role.tag(ROLE_MANAGED_TAG) != Some("true") {
        return Ok(false);
    }
    let Some(owner) = role.tag(ROLE_OWNER_TAG).and_then(GrantId::parse) else {
        return Ok(false);
    };
    if &owner == grant || inline.contains(&permissions_policy_name(&owner)) {
        return Ok(true);
    }
    let Some(registry) = env.locker.registry() else {
        return Ok(false);
    };
    let recorded = registry
        .get(owner.as_str())
        .await?
        .and_then(|text| GrantRecord::from_json(&text).ok())
        .is_some_and(|r| r.role_name.as_deref() == Some(role_name));
    Ok(recorded)
}

/// An existing role: only one vendor-grants created (see [`owns_role`]), whose trust agrees
/// with the other grants sharing it, and whose inline policies together stay within IAM's
/// limit. The trust policy is merged like the other policies: vendor-grants' one statement is
/// put in its place, statements others added stay. A grant `joining` a shared role (a Create)
/// must use an ExternalId the role already accepts: every value a shared role accepts reaches
/// every bucket on it, so only an existing grant's Update (a rotation) may bring a new one.
async fn adopt(
    env: Env<'_>,
    grant: &GrantId,
    role: &RolePlan,
    existing: iam::RoleInfo,
    joining: bool,
) -> Result<(String, bool), Error> {
    let name = role.role_name.as_str();
    let inline = iam::list_role_policies(env.clients, name).await?;
    if !owns_role(env, grant, name, &existing, &inline).await? {
        return Err(Error::ForeignRole(name.to_string()));
    }
    if !existing.arn.ends_with(&format!(":role{}{name}", role.path)) {
        // IAM cannot move a role to another path: a role made by an earlier version stays where
        // it is, and a vendor that builds the ARN itself does not find it there.
        warn!(grant_id = %grant, role_arn = %existing.arn, expected_path = %role.path, "the role is not at the path the vendor assumes it at; see README \"Scale's role and its path\"");
    }
    // Created by this very grant: an earlier delivery of this event crashed after CreateRole, or
    // CreateRole's answer was lost and the SDK's retry met EntityAlreadyExists. IAM may not have
    // propagated it yet, so it counts as new (the waits for propagation stay on).
    let mut changed = existing.tag(ROLE_OWNER_TAG) == Some(grant.as_str());
    let ours = permissions_policy_name(grant);
    let others: Vec<String> = inline.into_iter().filter(|p| p != &ours).collect();
    let current = PolicyDocument::parse(&existing.trust_policy, "trust policy")?;
    let own = trust_external_ids(&role.trust_policy);
    let accepted = trust_external_ids(&current);
    if joining
        && !others.is_empty()
        && !accepted.is_empty()
        && own.first().is_some_and(|id| !accepted.contains(id))
    {
        return Err(Error::ExternalIdNotAccepted {
            role: name.to_string(),
            others: others.join(", "),
        });
    }
    let shared = match own.first() {
        Some(id) => shared_external_ids(env, grant, &current, &others, Some(id)).await?,
        None => Some(Vec::new()),
    };
    let desired = with_external_ids(&role.trust_policy, shared.as_deref().unwrap_or(&[]));
    if let TrustMerge::Replace(merged) = merge_trust(&current, &desired, name)? {
        if !others.is_empty() {
            if !trust_principals_agree(&current, &desired) {
                return Err(Error::RoleDisagreement {
                    role: name.to_string(),
                    others: others.join(", "),
                });
            }
            if shared.is_none() {
                return Err(Error::ExternalIdNotShared {
                    role: name.to_string(),
                    others: others.join(", "),
                });
            }
        }
        lint::check_size(PolicyKind::TrustPolicy, &[&merged])?;
        iam::update_trust_policy(env.clients, name, &merged.to_json()).await?;
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

/// The ExternalIds the trust statement of a role shared with the grants whose inline policies
/// are `others` must accept once `grant` has `own` (`None`: `grant` is leaving the role). Each
/// grant owns its own value: a value stays while some grant sharing the role was recorded with it
/// (the registry keeps a salted hash of each grant's ExternalId), so the stacks sharing Scale's
/// role can move to a new ExternalId one at a time, and a value no grant claims any more goes.
/// Where a sharer has no record, no value but this grant's own old one is dropped. `None`: no
/// registry, so who uses which value cannot be told.
async fn shared_external_ids(
    env: Env<'_>,
    grant: &GrantId,
    current: &PolicyDocument,
    others: &[String],
    own: Option<&str>,
) -> Result<Option<Vec<String>>, Error> {
    let live = trust_external_ids(current);
    let mut ids: Vec<String> = own.map(str::to_string).into_iter().collect();
    if others.is_empty() {
        return Ok(Some(ids));
    }
    let Some(registry) = env.locker.registry() else {
        return Ok(None);
    };
    let hashes_of = async |id: &GrantId| -> Result<Option<(String, String)>, Error> {
        let record = registry
            .get(id.as_str())
            .await?
            .and_then(|text| GrantRecord::from_json(&text).ok());
        Ok(record
            .and_then(|r| r.role)
            .and_then(|r| Some((r.external_id_salt, r.external_id_hash?))))
    };
    let mut claimed = Vec::new();
    let mut unknown = false;
    for other in others {
        match grant_of_policy_name(other) {
            Some(id) => match hashes_of(&id).await? {
                Some(h) => claimed.push(h),
                None => unknown = true,
            },
            None => unknown = true,
        }
    }
    let old = hashes_of(grant).await?;
    let matches =
        |(salt, hash): &(String, String), value: &str| &external_id_hash(salt, value) == hash;
    for value in live {
        let by_others = claimed.iter().any(|h| matches(h, &value));
        let own_old = old.as_ref().is_some_and(|h| matches(h, &value));
        if (by_others || (unknown && !own_old)) && !ids.contains(&value) {
            ids.push(value);
        }
    }
    ids.sort();
    Ok(Some(ids))
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

/// Takes the grant's inline policy off its role, and deletes the role when no grant uses it any
/// more. A role vendor-grants does not own (see [`owns_role`]) is left exactly as it is: it never
/// put a policy there. When the grant named in the owner tag leaves a role others still use, the
/// tag passes to one of them, so the role stays provably vendor-grants'.
pub(super) async fn remove_role(env: Env<'_>, grant: &GrantId, name: &str) -> Result<(), Error> {
    let lease = env.locker.acquire(&role_lease(name), env.deadline).await?;
    let result = async {
        let Some(role) = iam::get_role(env.clients, name).await? else {
            return Ok(());
        };
        let inline = match iam::list_role_policies(env.clients, name).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !owns_role(env, grant, name, &role, &inline).await? {
            warn!(grant_id = %grant, role = name, "role left exactly as it is: vendor-grants did not create it (no owner tag of a grant it knows)");
            return Ok(());
        }
        let ours = permissions_policy_name(grant);
        if inline.contains(&ours) {
            iam::delete_role_policy(env.clients, name, &ours).await?;
        }
        let remaining: Vec<&String> = inline.iter().filter(|p| **p != ours).collect();
        if remaining.is_empty() {
            match iam::delete_role(env.clients, name).await {
                Ok(()) => info!(grant_id = %grant, role = name, "deleted the role: no grant uses it any more"),
                Err(e) if e.code() == Some("DeleteConflict") => {
                    warn!(grant_id = %grant, role = name, "role left in place: something else is attached to it");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            let remaining: Vec<String> = remaining.into_iter().cloned().collect();
            drop_own_external_id(env, grant, name, &role, &remaining).await?;
            if role.tag(ROLE_OWNER_TAG) == Some(grant.as_str())
                && let Some(next) = remaining.iter().find_map(|p| grant_of_policy_name(p))
            {
                let tags = [(ROLE_MANAGED_TAG, "true"), (ROLE_OWNER_TAG, next.as_str())];
                iam::tag_role(env.clients, name, &tags).await?;
                info!(grant_id = %grant, role = name, owner = %next, "the role's owner tag passed to a grant still using it");
            }
        }
        Ok(())
    }
    .await;
    release(vec![lease]).await;
    result
}

/// A grant leaving a role others still use takes its ExternalId out of the trust statement when
/// no remaining grant was recorded with it (see [`shared_external_ids`]); the statement never
/// loses its condition this way.
async fn drop_own_external_id(
    env: Env<'_>,
    grant: &GrantId,
    name: &str,
    role: &iam::RoleInfo,
    remaining: &[String],
) -> Result<(), Error> {
    let Ok(current) = PolicyDocument::parse(&role.trust_policy, "trust policy") else {
        return Ok(());
    };
    let live = trust_external_ids(&current);
    let Some(ids) = shared_external_ids(env, grant, &current, remaining, None).await? else {
        return Ok(());
    };
    if ids.is_empty() || ids.len() == live.len() {
        return Ok(());
    }
    let desired = with_external_ids(&current, &ids);
    if let TrustMerge::Replace(merged) = merge_trust(&current, &desired, name)? {
        iam::update_trust_policy(env.clients, name, &merged.to_json()).await?;
        info!(grant_id = %grant, role = name, "took the grant's ExternalId out of the shared role's trust policy");
    }
    Ok(())
}
