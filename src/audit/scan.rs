//! Reads what the audit judges: bucket policies (and each bucket's default-encryption key), the
//! key policy of every customer-managed key, the roles at vendor-grants' path (and any a record
//! names), the registry (each record's MAC verified), whether each owning stack still exists,
//! and what every live stack of the region holds. Reads run `concurrency` at a time; `progress`
//! hears of each one done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Bucket, Error, Inventory, Key, Role, StackState};
use crate::aws::registry::{Integrity, Registry};
use crate::aws::{Clients, iam, kms, list, s3};
use crate::grant::GrantRecord;
use crate::grant::plan::{ROLE_OWNER_TAG, ROLE_PATH, grant_of_policy_name};
use crate::lifecycle::ROLE_MANAGED_TAG;
use crate::policy::PolicyDocument;

/// What to read.
pub struct Scope {
    /// The account whose resources are read (S3's `ExpectedBucketOwner`).
    pub account: String,
    /// Only these buckets; empty: every bucket of the account in the region.
    pub buckets: Vec<String>,
    pub registry: Option<Registry>,
    pub concurrency: usize,
    pub deadline: Instant,
    /// Called with (done, total) as reads finish.
    pub progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

/// One read to make.
enum Read {
    Bucket(String),
    Key(String),
    Role(String),
    Stack(String),
}

/// What one read gave.
enum Got {
    Bucket(Bucket),
    Key(Option<Key>),
    Role(Option<Role>),
    Stack(String, StackState),
    /// What could not be read (`bucket:NAME`, `key:ARN`, `role:NAME`) and why.
    Unreadable(String, String),
}

/// Reads everything in `scope`.
pub async fn scan(clients: &Clients, scope: &Scope) -> Result<Inventory, Error> {
    let (registry, integrity) = match &scope.registry {
        Some(r) => {
            let (records, integrity) = records(r).await?;
            (Some(records), integrity)
        }
        None => Default::default(),
    };
    // What the live stacks hold tells a grant made before the registry from an orphan; a
    // listing that fails leaves it unknown, and then nothing is judged orphaned for want of a
    // claim.
    let stack_resources = match &scope.registry {
        Some(_) => Some(
            list::live_stack_resources(clients)
                .await
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    let bucket_regions = if scope.buckets.is_empty() {
        Some(list::bucket_regions(clients).await?)
    } else {
        None
    };
    let buckets = match &bucket_regions {
        Some(regions) => {
            let mut names: BTreeSet<String> = regions
                .iter()
                .filter(|(_, r)| **r == clients.region)
                .map(|(n, _)| n.clone())
                .collect();
            names.extend(registry.iter().flatten().map(|r| r.bucket_name.clone()));
            names.into_iter().collect()
        }
        None => scope.buckets.clone(),
    };
    let mut roles: BTreeSet<String> = list::roles_under(clients, ROLE_PATH)
        .await?
        .into_iter()
        .collect();
    roles.extend(
        registry
            .iter()
            .flatten()
            .filter_map(|r| r.role_name.clone()),
    );
    // A role at the path its vendor assumes it at (Scale's ScaleAI-Integration at /) is not under
    // ROLE_PATH: each documented name is looked up too (one that does not exist reads as gone).
    if let Ok(catalog) = crate::catalog::Catalog::builtin() {
        roles.extend(
            catalog
                .vendors
                .iter()
                .filter_map(|v| v.role.as_ref()?.name.clone()),
        );
    }
    let stacks: BTreeSet<String> = registry
        .iter()
        .flatten()
        .map(|r| r.stack_id.clone())
        .collect();
    let mut reads: Vec<Read> = buckets.into_iter().map(Read::Bucket).collect();
    reads.extend(list::keys(clients).await?.into_iter().map(Read::Key));
    reads.extend(roles.into_iter().map(Read::Role));
    reads.extend(stacks.into_iter().map(Read::Stack));

    let total = reads.len();
    let limit = Arc::new(Semaphore::new(scope.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for read in reads {
        let (clients, limit, account) = (clients.clone(), limit.clone(), scope.account.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            one(&clients, &account, read).await
        });
    }
    let mut inventory = Inventory {
        registry,
        integrity,
        stack_resources,
        bucket_regions,
        region: clients.region.clone(),
        ..Inventory::default()
    };
    let mut done = 0;
    loop {
        let next = tokio::time::timeout_at(scope.deadline, tasks.join_next()).await;
        let joined = match next {
            Err(_) => return Err(Error::Deadline { done, total }),
            Ok(None) => break,
            Ok(Some(joined)) => joined,
        };
        done += 1;
        if let Some(progress) = &scope.progress {
            progress(done, total);
        }
        let got = joined.map_err(|e| Error::ReadTask(e.to_string()))??;
        match got {
            Got::Bucket(b) => inventory.buckets.push(b),
            Got::Key(k) => inventory.keys.extend(k),
            Got::Role(r) => inventory.roles.extend(r),
            Got::Stack(id, state) => {
                inventory.stacks.insert(id, state);
            }
            Got::Unreadable(what, why) => {
                inventory.unreadable.insert(what, why);
            }
        }
    }
    inventory.buckets.sort_by(|a, b| a.name.cmp(&b.name));
    inventory.keys.sort_by(|a, b| a.arn.cmp(&b.arn));
    inventory.roles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(inventory)
}

/// The registry's records, and whether each is as the function wrote it (by grant id). A record
/// that does not read, or reads as another grant's, is tampered and not returned: anyone who
/// can write the table could otherwise stop the audit, or steer it.
async fn records(
    registry: &Registry,
) -> Result<(Vec<GrantRecord>, BTreeMap<String, Integrity>), Error> {
    let mut records = Vec::new();
    let mut integrity = BTreeMap::new();
    for item in registry.scan().await? {
        let check = match GrantRecord::from_json(&item.record) {
            Ok(r) if r.grant_id == item.grant_id => {
                let check = registry.verify(&item).await;
                records.push(r);
                check
            }
            Ok(r) => Integrity::Tampered(format!(
                "it is stored as grant {} but names grant {}",
                item.grant_id, r.grant_id
            )),
            Err(e) => Integrity::Tampered(format!("it does not read as a record: {e}")),
        };
        integrity.insert(item.grant_id, check);
    }
    Ok((records, integrity))
}

/// One read. A bucket, key or role that cannot be read (its own policy denies the audit, say) is
/// reported as unreadable rather than ending the audit; the grants it holds are then not judged
/// there.
async fn one(c: &Clients, account: &str, read: Read) -> Result<Got, Error> {
    let unreadable = |what: String, e: Error| Got::Unreadable(what, e.to_string());
    Ok(match read {
        Read::Bucket(name) => match bucket(c, account, name.clone()).await {
            Ok(b) => Got::Bucket(b),
            Err(e) => unreadable(format!("bucket:{name}"), e),
        },
        Read::Key(id) => match key(c, &id).await {
            Ok(k) => Got::Key(k),
            Err(e) => unreadable(format!("key:{id}"), e),
        },
        Read::Role(name) => match role(c, &name).await {
            Ok(r) => Got::Role(r),
            Err(e) => unreadable(format!("role:{name}"), e),
        },
        Read::Stack(id) => {
            let state = match list::stack_exists(c, &id).await {
                Some(true) => StackState::Exists,
                Some(false) => StackState::Gone,
                None => StackState::Unknown,
            };
            Got::Stack(id, state)
        }
    })
}

/// A bucket's policy and default-encryption key; a bucket that is gone reads as empty.
async fn bucket(c: &Clients, account: &str, name: String) -> Result<Bucket, Error> {
    let policy = match s3::get_bucket_policy(c, &name, Some(account)).await {
        Ok(text) => text
            .map(|t| PolicyDocument::parse(&t, "bucket policy"))
            .transpose()?,
        Err(e) if e.is_not_found() => {
            return Ok(Bucket {
                name,
                ..Bucket::default()
            });
        }
        Err(e) => return Err(e.into()),
    };
    let configured = s3::bucket_settings(c, &name, Some(account))
        .await?
        .sse_kms_key;
    let encryption_key = match configured {
        Some(k) => match kms::describe_key(c, &k).await {
            Ok(info) if info.customer_managed => Some(info.arn),
            Ok(_) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    Ok(Bucket {
        name,
        policy,
        encryption_key,
    })
}

/// A customer-managed key's policy; `None` for AWS-managed keys and keys pending deletion.
async fn key(c: &Clients, id: &str) -> Result<Option<Key>, Error> {
    let info = match kms::describe_key(c, id).await {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !info.customer_managed || info.pending_deletion {
        return Ok(None);
    }
    let policy = kms::get_key_policy(c, &info.arn).await?;
    Ok(Some(Key {
        policy: Some(PolicyDocument::parse(&policy, "key policy")?),
        arn: info.arn,
    }))
}

/// A role, its tags, trust policy, the grants' inline policies on it, and everything else that
/// gives it permissions (other inline policies, attached managed policies): the vendor who
/// assumes the role gets all of it, so the audit judges the whole role.
async fn role(c: &Clients, name: &str) -> Result<Option<Role>, Error> {
    let Some(info) = iam::get_role(c, name).await? else {
        return Ok(None);
    };
    let mut inline = std::collections::BTreeMap::new();
    let mut other_inline = Vec::new();
    for policy in iam::list_role_policies(c, name).await? {
        if grant_of_policy_name(&policy).is_none() {
            other_inline.push(policy);
            continue;
        }
        if let Some(text) = iam::get_role_policy(c, name, &policy).await? {
            inline.insert(policy, PolicyDocument::parse(&text, "role policy")?);
        }
    }
    let attached = iam::list_attached_role_policies(c, name).await?;
    Ok(Some(Role {
        name: name.to_string(),
        managed: info.tag(ROLE_MANAGED_TAG) == Some("true"),
        owner: info.tag(ROLE_OWNER_TAG).map(str::to_string),
        trust_policy: serde_json::from_str(&info.trust_policy).unwrap_or_default(),
        arn: info.arn,
        inline,
        other_inline,
        attached,
    }))
}
