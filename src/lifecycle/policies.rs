//! The policy transaction: writing a grant and removing it are the same steps. Take the leases
//! (bucket, then key), read both policies fresh, compute what to write (the one step that
//! differs, passed in), check the leases are still held, write what changed, read back, record
//! the write for the next writer, release; redone when the read-back shows another writer undid
//! the write, when a lease ran out before writing, and, after a role was just created or changed,
//! while IAM has not yet propagated it ("invalid principal").

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::lock::{Lease, LeaseKey, Written};
use crate::aws::{self, kms, s3};
use crate::grant;
use crate::policy::canonical::fingerprint;
use crate::policy::lint::PolicyKind;
use crate::policy::{Claim, GrantId, PolicyDocument, contains_all};

use super::checks::{no_bucket, unreachable_bucket};
use super::{Env, Error, PROPAGATION_WAIT, VERIFY_ATTEMPTS};

/// What the compute step decided to write: each policy after the change, and whether it
/// differs in meaning from what was read (only then is it written).
pub(super) struct Change {
    /// `None`: no bucket policy (an emptied one is deleted).
    pub bucket: Option<PolicyDocument>,
    pub bucket_changed: bool,
    pub key: Option<PolicyDocument>,
    pub key_changed: bool,
}

impl From<&grant::Plan> for Change {
    fn from(plan: &grant::Plan) -> Change {
        Change {
            bucket: plan.bucket_policy.clone(),
            bucket_changed: plan.bucket_policy_changed,
            key: plan.key_policy.clone(),
            key_changed: plan.key_policy_changed,
        }
    }
}

impl From<grant::Removal> for Change {
    fn from(r: grant::Removal) -> Change {
        Change {
            bucket: r.bucket_policy,
            bucket_changed: r.bucket_policy_changed,
            key: r.key_policy,
            key_changed: r.key_policy_changed,
        }
    }
}

/// What the transaction acts on and how it judges the result.
#[derive(Clone, Copy)]
pub(super) struct Transaction<'a> {
    pub grant: &'a GrantId,
    pub bucket: Option<&'a str>,
    pub key_arn: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub kind: Kind<'a>,
    /// A role was just created or changed: "invalid principal" is IAM still propagating it.
    pub role_changed: bool,
}

/// Writing a grant or removing one: what "gone" means and what the read-back must show.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind<'a> {
    /// The policies must hold what was written; a key whose policy is gone is an error.
    Write,
    /// None of the statements the claim owns may be left (foreign ones under the grant's Sids
    /// stay); a bucket or key already gone is fine.
    Remove(&'a Claim),
}

/// Runs the transaction with `compute(bucket policy, key policy)` deciding what to write; returns
/// what `compute` returned alongside the change it made.
pub(super) async fn transact<T>(
    env: Env<'_>,
    tx: Transaction<'_>,
    compute: impl Fn(Option<&PolicyDocument>, Option<&PolicyDocument>) -> Result<(T, Change), Error>,
) -> Result<T, Error> {
    if tx.bucket.is_none() && tx.key_arn.is_none() {
        let (value, _) = compute(None, None)?;
        return Ok(value);
    }
    let started = Instant::now();
    let mut redone = 0;
    let mut pause = Duration::from_secs(2);
    loop {
        let leases = take_leases(env, tx.bucket, tx.key_arn).await?;
        let result = attempt(env, tx, &leases, &compute).await;
        release(leases).await;
        let e = match result {
            Ok((value, None)) => return Ok(value),
            Ok((_, Some(what))) => {
                redone += 1;
                warn!(grant_id = %tx.grant, what, attempt = redone, "read-back differs from what was written; redoing");
                if redone >= VERIFY_ATTEMPTS {
                    return Err(Error::VerifyFailed {
                        what: what.to_string(),
                    });
                }
                continue;
            }
            Err(e) => e,
        };
        if lease_lost(&e) && redone + 1 < VERIFY_ATTEMPTS {
            redone += 1;
            warn!(grant_id = %tx.grant, error = %e, "the lease ran out before writing; taking it again");
        } else if tx.role_changed
            && matches!(&e, Error::Aws(a) if a.is_invalid_principal())
            && started.elapsed() < PROPAGATION_WAIT
            && Instant::now() + pause < env.deadline
        {
            let wait_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
            info!(grant_id = %tx.grant, wait_ms, "principal not yet known to IAM; waiting for the new role to propagate");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        } else {
            return Err(e);
        }
    }
}

/// One pass under the leases: the computed value, and which policy's read-back failed, if any.
async fn attempt<T>(
    env: Env<'_>,
    tx: Transaction<'_>,
    leases: &[Lease],
    compute: &impl Fn(Option<&PolicyDocument>, Option<&PolicyDocument>) -> Result<(T, Change), Error>,
) -> Result<(T, Option<&'static str>), Error> {
    let bucket = tx.bucket.map(|bucket| Source::Bucket {
        bucket,
        owner: tx.owner,
    });
    let key = tx.key_arn.map(Source::Key);
    let bucket_read = match bucket {
        Some(source) => Some(source.read_fresh(env, tx.kind).await?),
        None => None,
    };
    let key_read = match key {
        Some(source) => Some(source.read_fresh(env, tx.kind).await?),
        None => None,
    };
    if let (Kind::Write, Some(Fresh { doc: None, .. }), Some(k)) = (tx.kind, &key_read, tx.key_arn)
    {
        return Err(Error::NoKey(k.to_string()));
    }
    let (value, change) = compute(
        bucket_read.as_ref().and_then(|f| f.doc.as_ref()),
        key_read.as_ref().and_then(|f| f.doc.as_ref()),
    )?;
    write(env, tx, leases, &change).await?;
    let reads = [(bucket, bucket_read), (key, key_read)];
    let failed = read_back(env, tx, &reads, &change).await?;
    Ok((value, failed))
}

/// Writes what changed, each write only while the leases are held. Removing, a bucket or key
/// already gone is fine.
async fn write(
    env: Env<'_>,
    tx: Transaction<'_>,
    leases: &[Lease],
    change: &Change,
) -> Result<(), Error> {
    let gone_is_fine = matches!(tx.kind, Kind::Remove(_));
    if let (true, Some(b)) = (change.bucket_changed, tx.bucket) {
        still_held(leases)?;
        match write_bucket_policy(env, b, tx.owner, change.bucket.as_ref()).await {
            Err(Error::NoBucket(_)) if gone_is_fine => {}
            other => other?,
        }
    }
    if let (true, Some(k), Some(doc)) = (change.key_changed, tx.key_arn, &change.key) {
        still_held(leases)?;
        match kms::put_key_policy(env.clients, k, &doc.to_json()).await {
            Err(e) if gone_is_fine && e.is_not_found() => {}
            other => other?,
        }
    }
    Ok(())
}

/// Reads back each policy that was written and judges it (written: it holds what was written;
/// removed: none of the grant's statements is left), records each good write for the next
/// writer, and names the policy whose read-back failed, if any. A policy left as it was read has
/// nothing to verify and is not read again.
async fn read_back(
    env: Env<'_>,
    tx: Transaction<'_>,
    reads: &[(Option<Source<'_>>, Option<Fresh>); 2],
    change: &Change,
) -> Result<Option<&'static str>, Error> {
    let [(bucket, bucket_read), (key, key_read)] = reads;
    let verify =
        async |source: &Option<Source<'_>>, changed: bool, written: Option<&PolicyDocument>| {
            let Some(source) = source.filter(|_| changed) else {
                return Ok::<bool, Error>(true);
            };
            let after = source.read(env, tx.kind).await?;
            Ok(match tx.kind {
                Kind::Write => holds(after.as_ref(), written),
                Kind::Remove(claim) => after.is_none_or(|d| claim.owned_sids(&d).is_empty()),
            })
        };
    let bucket_ok = verify(bucket, change.bucket_changed, change.bucket.as_ref()).await?;
    let key_ok = verify(key, change.key_changed, change.key.as_ref()).await?;
    for (ok, changed, source, read, written) in [
        (
            bucket_ok,
            change.bucket_changed,
            bucket,
            bucket_read,
            change.bucket.as_ref(),
        ),
        (
            key_ok,
            change.key_changed,
            key,
            key_read,
            change.key.as_ref(),
        ),
    ] {
        if let (true, true, Some(source), Some(read)) = (ok, changed, source, read) {
            source.record(env, read, written).await;
        }
    }
    Ok(match (bucket_ok, key_ok) {
        (true, true) => None,
        (false, _) => Some(PolicyKind::BucketPolicy.name()),
        (true, false) => Some(PolicyKind::KeyPolicy.name()),
    })
}

pub(super) fn parse_policy(
    text: Option<String>,
    what: &str,
) -> Result<Option<PolicyDocument>, Error> {
    text.map(|t| PolicyDocument::parse(&t, what))
        .transpose()
        .map_err(Error::from)
}

/// Releases leases, logging (not failing on) a release that did not go through: an unreleased
/// table lease only expires later.
pub(super) async fn release(leases: Vec<Lease>) {
    for lease in leases {
        let resource = lease.resource().to_string();
        if let Err(e) = lease.release().await {
            warn!(resource = %resource, error = %e, "lease not released; it will expire");
        }
    }
}

/// Time a lease must still have before a write. The lease is renewed while held (see
/// `aws::lock::RENEW_EVERY`), so this is only short of its length when renewals are failing.
pub(super) const WRITE_MARGIN: Duration = Duration::from_secs(3);

/// Whether a transaction stopped before writing because its lease ran out (renewals failed, or
/// another holder took it over) and can simply be run again under a new lease.
pub(super) fn lease_lost(e: &Error) -> bool {
    matches!(e, Error::Aws(aws::Error::LeaseExpired { .. }))
}

pub(super) fn still_held(leases: &[Lease]) -> Result<(), Error> {
    for lease in leases {
        lease.check_held(WRITE_MARGIN)?;
    }
    Ok(())
}

/// Takes the bucket lease, then the key lease: always in that order, so two grants never wait
/// on each other.
pub(super) async fn take_leases(
    env: Env<'_>,
    bucket: Option<&str>,
    key_arn: Option<&str>,
) -> Result<Vec<Lease>, Error> {
    let names = bucket
        .map(|b| LeaseKey::BucketPolicy(b).to_string())
        .into_iter()
        .chain(key_arn.map(|k| LeaseKey::KeyPolicy(k).to_string()));
    let mut leases = Vec::with_capacity(2);
    for name in names {
        match env.locker.acquire(&name, env.deadline).await {
            Ok(l) => leases.push(l),
            Err(e) => {
                release(leases).await;
                return Err(e.into());
            }
        }
    }
    Ok(leases)
}

/// A policy vendor-grants reads and writes: a bucket's or a key's.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    Bucket {
        bucket: &'a str,
        owner: Option<&'a str>,
    },
    Key(&'a str),
}

/// How long a read is retried while it does not yet show the last recorded write.
pub(super) const STALE_WAIT: Duration = Duration::from_secs(5);

impl Source<'_> {
    fn lease_name(&self) -> String {
        match self {
            Source::Bucket { bucket, .. } => LeaseKey::BucketPolicy(bucket),
            Source::Key(key) => LeaseKey::KeyPolicy(key),
        }
        .to_string()
    }

    fn kind(&self) -> PolicyKind {
        match self {
            Source::Bucket { .. } => PolicyKind::BucketPolicy,
            Source::Key(_) => PolicyKind::KeyPolicy,
        }
    }

    /// The current policy. Removing, a bucket or key already gone reads as no policy; writing,
    /// it is the error that names it (the transaction's first read is also the check that the
    /// bucket exists and is this account's).
    async fn read(&self, env: Env<'_>, kind: Kind<'_>) -> Result<Option<PolicyDocument>, Error> {
        let text = match self {
            Source::Bucket { bucket, owner } => {
                s3::get_bucket_policy(env.clients, bucket, *owner).await
            }
            Source::Key(key) => kms::get_key_policy(env.clients, key).await.map(Some),
        };
        match (text, self) {
            (Ok(text), _) => parse_policy(text, self.kind().name()),
            (Err(e), _) if e.is_not_found() && matches!(kind, Kind::Remove(_)) => Ok(None),
            (Err(e), Source::Bucket { bucket, .. }) => Err(unreachable_bucket(env, e, bucket)),
            (Err(e), Source::Key(key)) if e.is_not_found() => Err(Error::NoKey(key.to_string())),
            (Err(e), Source::Key(_)) => Err(e.into()),
        }
    }

    /// Reads, and while the read shows a version older than vendor-grants' last recorded write
    /// of this policy, reads again for a while: S3 and KMS reads are eventually consistent, and
    /// merging into a stale read would drop the previous writer's statements. A read that shows
    /// a version vendor-grants never wrote (another writer's) is taken at once.
    async fn read_fresh(&self, env: Env<'_>, kind: Kind<'_>) -> Result<Fresh, Error> {
        let record = env.locker.last_written(&self.lease_name()).await?;
        let mut doc = self.read(env, kind).await?;
        let Some(written) = &record else {
            return Ok(Fresh { doc, record });
        };
        let started = Instant::now();
        let pause = Duration::from_millis(200);
        while written.is_stale(&fingerprint(doc.as_ref())) {
            if started.elapsed() >= STALE_WAIT || Instant::now() + pause >= env.deadline {
                info!(policy = %self.lease_name(), "the policy still reads as before vendor-grants' last write; going on with it");
                break;
            }
            tokio::time::sleep(pause).await;
            doc = self.read(env, kind).await?;
        }
        Ok(Fresh { doc, record })
    }

    /// Records what was written over `read`, for the next writer's [`Source::read_fresh`].
    async fn record(&self, env: Env<'_>, read: &Fresh, written: Option<&PolicyDocument>) {
        let name = self.lease_name();
        let next = Written::next(
            read.record.as_ref(),
            &fingerprint(read.doc.as_ref()),
            &fingerprint(written),
        );
        if let Err(e) = env.locker.record_written(&name, &next).await {
            warn!(policy = %name, error = %e, "could not record the write; the next writer will not wait for it");
        }
    }
}

/// A policy as read under its lease, with vendor-grants' record of its last write.
pub(super) struct Fresh {
    doc: Option<PolicyDocument>,
    record: Option<Written>,
}

/// Whether the policy read back holds every statement that was written (ours and the foreign
/// ones we kept), by meaning; `None` written means none must be there.
pub(super) fn holds(after: Option<&PolicyDocument>, written: Option<&PolicyDocument>) -> bool {
    match (after, written) {
        (_, None) => after.is_none_or(|a| a.statements.is_empty()),
        (Some(a), Some(w)) => contains_all(a, &w.statements),
        (None, Some(_)) => false,
    }
}

pub(super) async fn write_bucket_policy(
    env: Env<'_>,
    bucket: &str,
    owner: Option<&str>,
    doc: Option<&PolicyDocument>,
) -> Result<(), Error> {
    match doc {
        Some(doc) => s3::put_bucket_policy(env.clients, bucket, owner, &doc.to_json()).await,
        // An emptied bucket policy is deleted: S3 refuses a policy with no statements.
        None => s3::delete_bucket_policy(env.clients, bucket, owner).await,
    }
    .map_err(|e| no_bucket(e, bucket))
}
