//! What the audit's `--fix` and `--remove-orphans` do, through the same leased, verified policy
//! transaction as Create and Delete: put a grant's recorded statements back (replacing exactly
//! its own, never touching another), and take an orphan's statements, inline policy and role
//! away.

use crate::aws::iam;
use crate::grant::GrantRecord;
use crate::grant::record::RoleRecord;
use crate::policy::canonical::fingerprint;
use crate::policy::lint::partition_of_region;
use crate::policy::{Claim, GrantId, PolicyDocument, documents_equivalent, merge, remove};

use super::checks::owner_of;
use super::policies::{Change, Kind, Transaction, transact};
use super::role::{owns_role, remove_role};
use super::{Env, Error};

/// Puts back what `record` says the grant wrote. Returns what was done, and what could not be
/// restored (a role or trust policy whose ExternalId only the stack knows).
pub async fn restore(env: Env<'_>, record: &GrantRecord) -> Result<Restored, Error> {
    let grant = grant_id(&record.grant_id)?;
    let owner = owner_of(&env);
    let mut out = Restored::default();
    // Only what a Create would be allowed to write today: a vendor (or VendorPrincipal) the
    // platform team has since taken off the allow-lists, to suspend it, stays removed; the
    // grant is left as it is and reported, and the other repairs go on.
    let given: &[String] = match env.catalog.vendor(&record.vendor) {
        Some(v) if v.needs_vendor_principal() => &record.principals,
        _ => &[],
    };
    if let Err(r) = env.allowed.check(&record.vendor, given) {
        out.not_restorable.push(format!(
            "{} is not allowed by {} (allowed: {}), so nothing was written",
            r.what, r.setting, r.allowed
        ));
        return Ok(out);
    }
    let tx = Transaction {
        grant: &grant,
        bucket: Some(&record.bucket_name),
        key_arn: record.kms_key_arn.as_deref(),
        owner: owner.as_deref(),
        kind: Kind::Write,
        role_changed: false,
    };
    let statements: Vec<_> = record
        .bucket_statements
        .iter()
        .chain(&record.key_statements)
        .cloned()
        .collect();
    let claim = crate::grant::plan::claim(
        &grant,
        partition_of_region(&env.clients.region),
        &record.bucket_name,
        &statements,
    );
    let changed = transact(env, tx, |bucket, key| {
        let new_bucket = merge(bucket, &claim, &record.bucket_statements, "bucket policy")?;
        let new_key = match key {
            Some(_) => merge(key, &claim, &record.key_statements, "key policy")?,
            None => None,
        };
        let bucket_changed = fingerprint(bucket) != fingerprint(new_bucket.as_ref());
        let key_changed = key.is_some() && fingerprint(key) != fingerprint(new_key.as_ref());
        let change = Change {
            bucket: new_bucket,
            bucket_changed,
            key: new_key,
            key_changed,
        };
        Ok(((bucket_changed, key_changed), change))
    })
    .await?;
    if changed.0 {
        out.done.push(format!(
            "restored its statements in the bucket policy of {}",
            record.bucket_name
        ));
    }
    if let (true, Some(k)) = (changed.1, &record.kms_key_arn) {
        out.done
            .push(format!("restored its statements in the key policy of {k}"));
    }
    if let Some(role) = &record.role {
        restore_role(env, role, &mut out).await?;
    }
    Ok(out)
}

/// What a repair did and could not do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub done: Vec<String>,
    pub not_restorable: Vec<String>,
}

async fn restore_role(env: Env<'_>, role: &RoleRecord, out: &mut Restored) -> Result<(), Error> {
    let name = role.role_name.as_str();
    let Some(live) = iam::get_role(env.clients, name).await? else {
        out.not_restorable.push(format!(
            "role {name} is gone; its trust policy's ExternalId is known only to the stack: \
             update the stack to create it again"
        ));
        return Ok(());
    };
    let grant = grant_id(
        crate::grant::plan::grant_of_policy_name(&role.permissions_policy_name)
            .map(|g| g.to_string())
            .as_deref()
            .unwrap_or(""),
    )?;
    let inline = iam::list_role_policies(env.clients, name).await?;
    if !owns_role(env, &grant, name, &live, &inline).await? {
        out.not_restorable.push(format!(
            "role {name} was not created by vendor-grants; it is not changed"
        ));
        return Ok(());
    }
    let trust: serde_json::Value = serde_json::from_str(&live.trust_policy).unwrap_or_default();
    for difference in role.trust_differences(&trust) {
        out.not_restorable.push(format!(
            "{difference}; its ExternalId is known only to the stack: update the stack to put it back"
        ));
    }
    let want = PolicyDocument::from_value(role.permissions_policy.clone(), "role policy")?;
    let current = iam::get_role_policy(env.clients, name, &role.permissions_policy_name).await?;
    let same = current
        .and_then(|t| PolicyDocument::parse(&t, "role policy").ok())
        .is_some_and(|d| documents_equivalent(&d, &want));
    if !same {
        iam::put_role_policy(
            env.clients,
            name,
            &role.permissions_policy_name,
            &want.to_json(),
        )
        .await?;
        out.done.push(format!(
            "restored inline policy {} of role {name}",
            role.permissions_policy_name
        ));
    }
    Ok(())
}

/// Removes an orphaned grant's statements from `buckets` and `keys`, its inline policy from
/// `roles` (and a role vendor-grants created that no grant uses any more). Returns what was done.
pub async fn remove_orphan(
    env: Env<'_>,
    grant: &str,
    buckets: &[String],
    keys: &[String],
    roles: &[String],
) -> Result<Vec<String>, Error> {
    let grant = grant_id(grant)?;
    let owner = owner_of(&env);
    let mut done = Vec::new();
    let places = buckets
        .iter()
        .map(|b| (Some(b.as_str()), None))
        .chain(keys.iter().map(|k| (None, Some(k.as_str()))));
    let partition = partition_of_region(&env.clients.region);
    for (bucket, key_arn) in places {
        // An orphan has no record of what it wrote: it may remove each statement under its Sids
        // that has the shape vendor-grants writes, whoever it names.
        let claim = Claim::orphan(&grant, bucket.map(|b| format!("arn:{partition}:s3:::{b}")));
        let tx = Transaction {
            grant: &grant,
            bucket,
            key_arn,
            owner: owner.as_deref(),
            kind: Kind::Remove(&claim),
            role_changed: false,
        };
        transact(env, tx, |b, k| {
            let new_bucket = remove(b, &claim, "bucket policy")?;
            let new_key = remove(k, &claim, "key policy")?;
            let change = Change {
                bucket_changed: fingerprint(b) != fingerprint(new_bucket.as_ref()),
                bucket: new_bucket,
                key_changed: k.is_some() && fingerprint(k) != fingerprint(new_key.as_ref()),
                key: new_key,
            };
            Ok(((), change))
        })
        .await?;
        done.push(match (bucket, key_arn) {
            (Some(b), _) => format!("removed its statements from the bucket policy of {b}"),
            (_, Some(k)) => format!("removed its statements from the key policy of {k}"),
            _ => String::new(),
        });
    }
    for role in roles {
        remove_role(env, &grant, role).await?;
        done.push(format!(
            "removed its inline policy from role {role} (and the role if no grant uses it)"
        ));
    }
    Ok(done)
}

fn grant_id(id: &str) -> Result<GrantId, Error> {
    GrantId::parse(id).ok_or_else(|| Error::BadGrantId(id.to_string()))
}
