//! What the audit's `--fix` and `--remove-orphans` do, through the same leased, verified policy
//! transaction as Create and Delete. `--fix` rebuilds a grant from its recorded *properties*
//! through Create's checks, allow-lists, plan and lints, and writes only when that is what the
//! record says was written; names (Sids, the inline policy) come from the grant id, never from
//! the record. `--remove-orphans` takes an orphan's statements, inline policy and role away.

use serde_json::{Map, Value};

use crate::aws::iam;
use crate::grant::plan::{permissions_policy_name, plan_over};
use crate::grant::record::RoleRecord;
use crate::grant::{self, GrantProperties, GrantRecord, PlanInput, RolePlan};
use crate::policy::canonical::fingerprint;
use crate::policy::lint::partition_of_region;
use crate::policy::{
    Claim, GrantId, PolicyDocument, Statement, documents_equivalent, remove, statements_equivalent,
};

use super::checks::{check_before_writing, owner_of};
use super::policies::{Change, Kind, Transaction, transact};
use super::role::{owns_role, remove_role};
use super::{Env, Error};

/// Stands in for the ExternalId, which the record keeps only as a salted hash: it reaches only
/// the role's trust policy, which a repair never writes.
const EXTERNAL_ID_STAND_IN: &str = "vendor-grants-repair-stand-in";

/// The properties a Create of `record`'s grant had, as CloudFormation would send them.
pub fn recorded_properties(
    record: &GrantRecord,
    catalog: &crate::catalog::Catalog,
) -> Result<GrantProperties, Error> {
    let mut p = Map::new();
    let mut put = |k: &str, v: Value| {
        p.insert(k.to_string(), v);
    };
    put("Vendor", record.vendor.clone().into());
    put("BucketName", record.bucket_name.clone().into());
    put("Mode", record.mode.clone().into());
    if let Some(k) = &record.kms_key_arn {
        put("KmsKeyArn", k.clone().into());
    }
    if let Some(a) = &record.access {
        put("Access", a.clone().into());
    }
    if let Some(x) = &record.prefix {
        put("Prefix", x.clone().into());
    }
    let per_customer = catalog
        .vendor(&record.vendor)
        .is_some_and(|v| v.principals.is_empty());
    if per_customer {
        put("VendorPrincipal", record.principals.clone().into());
    }
    if record.mode == "role" {
        if let Some(name) = &record.role_name {
            put("RoleName", name.clone().into());
        }
        if record
            .role
            .as_ref()
            .is_some_and(|r| r.external_id_hash.is_some())
        {
            put("ExternalId", EXTERNAL_ID_STAND_IN.into());
        }
    }
    Ok(GrantProperties::from_json(&Value::Object(p), catalog)?)
}

/// Whether `a` and `b` are the same statements by meaning, Sid for Sid.
fn same_statements(a: &[Statement], b: &[Statement]) -> bool {
    a.len() == b.len()
        && a.iter().all(|s| {
            b.iter()
                .any(|t| t.sid == s.sid && statements_equivalent(s, t))
        })
}

/// What the re-derived policy statements came to.
enum Derived {
    Written { bucket: bool, key: bool },
    Differs,
}

/// Puts back what a Create with `record`'s properties would write today, when that is what the
/// record says was written (the record is only a check: nothing is taken from it as written).
/// Returns what was done, and what could not be restored (a trust policy whose ExternalId only
/// the stack knows, a grant whose plan today differs from its record). An error: the recorded
/// properties do not pass Create's checks and allow-lists today.
pub async fn restore(env: Env<'_>, record: &GrantRecord) -> Result<Restored, Error> {
    let grant = grant_id(&record.grant_id)?;
    let props = recorded_properties(record, env.catalog)?;
    let key_arn = check_before_writing(env, &props).await?;
    let mut out = Restored::default();
    if key_arn != record.kms_key_arn {
        out.not_restorable.push(format!(
            "KmsKeyArn {} now resolves to {}, not the key the grant was written to: update the \
             stack",
            record.kms_key_arn.as_deref().unwrap_or("-"),
            key_arn.as_deref().unwrap_or("-")
        ));
        return Ok(out);
    }
    let owner = owner_of(&env);
    let partition = partition_of_region(&env.clients.region);
    let base = PlanInput {
        props: &props,
        grant_id: &grant,
        partition,
        account_id: owner.as_deref(),
        kms_key_arn: key_arn.as_deref(),
        bucket_policy: None,
        key_policy: None,
        new_grant: false,
    };
    let previous: Vec<Statement> = record
        .bucket_statements
        .iter()
        .chain(&record.key_statements)
        .cloned()
        .collect();
    let tx = Transaction {
        grant: &grant,
        bucket: Some(&record.bucket_name),
        key_arn: key_arn.as_deref(),
        owner: owner.as_deref(),
        kind: Kind::Write,
        role_changed: false,
    };
    let derived = transact(env, tx, |bucket, key| {
        let input = PlanInput {
            bucket_policy: bucket,
            key_policy: key,
            ..base
        };
        let plan = plan_over(env.catalog, input, &previous)?;
        if !same_statements(&plan.bucket_statements, &record.bucket_statements)
            || !same_statements(&plan.key_statements, &record.key_statements)
        {
            let unchanged = Change {
                bucket: bucket.cloned(),
                bucket_changed: false,
                key: key.cloned(),
                key_changed: false,
            };
            return Ok((Derived::Differs, unchanged));
        }
        let written = Derived::Written {
            bucket: plan.bucket_policy_changed,
            key: plan.key_policy_changed,
        };
        Ok((written, Change::from(&plan)))
    })
    .await?;
    match derived {
        Derived::Differs => out.not_restorable.push(
            "what a Create with its recorded properties writes today differs from what its \
             record says was written (the catalog or the key policy changed since?): nothing was \
             written; update the stack to write the grant as it is today"
                .into(),
        ),
        Derived::Written { bucket, key } => {
            if bucket {
                out.done.push(format!(
                    "restored its statements in the bucket policy of {}",
                    record.bucket_name
                ));
            }
            if let (true, Some(k)) = (key, &record.kms_key_arn) {
                out.done
                    .push(format!("restored its statements in the key policy of {k}"));
            }
        }
    }
    let role = grant::role_plan(env.catalog, base)?;
    match (&role, &record.role) {
        (Some(plan), Some(recorded)) => restore_role(env, &grant, plan, recorded, &mut out).await?,
        (None, None) => {}
        _ => out.not_restorable.push(
            "its record and its recorded properties disagree on whether it has a role: update \
             the stack"
                .into(),
        ),
    }
    Ok(out)
}

/// What a repair did and could not do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub done: Vec<String>,
    pub not_restorable: Vec<String>,
}

/// Puts the grant's own inline policy (named from the grant id) back on its role, as the plan
/// builds it, when the role is vendor-grants' and the plan is what the record says was written.
async fn restore_role(
    env: Env<'_>,
    grant: &GrantId,
    plan: &RolePlan,
    recorded: &RoleRecord,
    out: &mut Restored,
) -> Result<(), Error> {
    let name = plan.role_name.as_str();
    let policy_name = permissions_policy_name(grant);
    let recorded_policy =
        PolicyDocument::from_value(recorded.permissions_policy.clone(), "role policy");
    let same = recorded.role_name == plan.role_name
        && recorded_policy.is_ok_and(|d| documents_equivalent(&d, &plan.permissions_policy));
    if !same {
        out.not_restorable.push(format!(
            "the role or inline policy a Create with its recorded properties writes today \
             differs from what its record says was written: role {name} is not changed; update \
             the stack"
        ));
        return Ok(());
    }
    let Some(live) = iam::get_role(env.clients, name).await? else {
        out.not_restorable.push(format!(
            "role {name} is gone; its trust policy's ExternalId is known only to the stack: \
             update the stack to create it again"
        ));
        return Ok(());
    };
    let inline = iam::list_role_policies(env.clients, name).await?;
    if !owns_role(env, grant, name, &live, &inline).await? {
        out.not_restorable.push(format!(
            "role {name} was not created by vendor-grants; it is not changed"
        ));
        return Ok(());
    }
    let trust: Value = serde_json::from_str(&live.trust_policy).unwrap_or_default();
    for difference in recorded.trust_differences(&trust) {
        out.not_restorable.push(format!(
            "{difference}; its ExternalId is known only to the stack: update the stack to put it back"
        ));
    }
    let current = iam::get_role_policy(env.clients, name, &policy_name).await?;
    let same = current
        .and_then(|t| PolicyDocument::parse(&t, "role policy").ok())
        .is_some_and(|d| documents_equivalent(&d, &plan.permissions_policy));
    if !same {
        iam::put_role_policy(
            env.clients,
            name,
            &policy_name,
            &plan.permissions_policy.to_json(),
        )
        .await?;
        out.done.push(format!(
            "restored inline policy {policy_name} of role {name}"
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
