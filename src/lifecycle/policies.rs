//! The policy transaction: writing a grant and removing it are the same steps. Take the leases
//! (bucket, then key), read both policies fresh, compute what to write (the one step that
//! differs, passed in), check the leases are still held, write what changed and record each
//! write for the next writer, read back until the write shows, release; redone when the read-back
//! shows another writer undid the write, when a lease ran out before writing, and, after a role
//! was just created or changed, while IAM has not yet propagated it ("invalid principal").

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
    let reads = [(bucket, bucket_read), (key, key_read)];
    let records = write(env, tx, leases, &reads, &change).await?;
    let failed = read_back(env, tx, &reads, &records, &change).await?;
    Ok((value, failed))
}

/// Writes what changed, each write only while the leases are held, and records each write for
/// the next writer at once, before reading it back: from the moment it is made, a read that shows
/// the version it replaced is stale, to the next holder of the lease as much as to this one's
/// read-back, and a write left unrecorded (as when only a read-back that showed it was recorded)
/// lets the next writer merge into that stale version and drop what this one wrote. Returns the
/// record of each policy written (`[bucket, key]`). Removing, a bucket or key already gone is
/// fine.
async fn write(
    env: Env<'_>,
    tx: Transaction<'_>,
    leases: &[Lease],
    reads: &[(Option<Source<'_>>, Option<Fresh>); 2],
    change: &Change,
) -> Result<[Option<Written>; 2], Error> {
    let gone_is_fine = matches!(tx.kind, Kind::Remove(_));
    let [(bucket, bucket_read), (key, key_read)] = reads;
    let mut records = [None, None];
    if let (true, Some(b), Some(source), Some(read)) =
        (change.bucket_changed, tx.bucket, bucket, bucket_read)
    {
        still_held(leases)?;
        match write_bucket_policy(env, b, tx.owner, change.bucket.as_ref()).await {
            Err(Error::NoBucket(_)) if gone_is_fine => {}
            other => {
                other?;
                records[0] = Some(source.record(env, read, change.bucket.as_ref()).await);
            }
        }
    }
    if let (true, Some(k), Some(doc), Some(source), Some(read)) =
        (change.key_changed, tx.key_arn, &change.key, key, key_read)
    {
        still_held(leases)?;
        match kms::put_key_policy(env.clients, k, &doc.to_json()).await {
            Err(e) if gone_is_fine && e.is_not_found() => {}
            other => {
                other?;
                records[1] = Some(source.record(env, read, change.key.as_ref()).await);
            }
        }
    }
    Ok(records)
}

/// Reads back each policy that was written until the write shows (see [`Source::settle`]), and
/// names the policy whose read-back shows that another writer undid the write, if any. A policy
/// left as it was read has nothing to verify and is not read again.
async fn read_back(
    env: Env<'_>,
    tx: Transaction<'_>,
    reads: &[(Option<Source<'_>>, Option<Fresh>); 2],
    records: &[Option<Written>; 2],
    change: &Change,
) -> Result<Option<&'static str>, Error> {
    let [(bucket, _), (key, _)] = reads;
    let written = [change.bucket.as_ref(), change.key.as_ref()];
    for ((source, record), written) in [bucket, key].into_iter().zip(records).zip(written) {
        let (Some(source), Some(record)) = (source, record) else {
            continue;
        };
        if !source.settle(env, tx, record, written).await? {
            return Ok(Some(source.kind().name()));
        }
    }
    Ok(None)
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

/// The first pause before reading a written policy again while the read-back shows a version
/// from before the write; it doubles up to [`SETTLE_PAUSE_CAP`]. The lease is held meanwhile,
/// so a short first pause keeps it from lying idle when the change shows quickly.
const SETTLE_PAUSE_FIRST: Duration = Duration::from_millis(50);
const SETTLE_PAUSE_CAP: Duration = Duration::from_millis(400);

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

    /// Records what was written over `read`, for the next writer's [`Source::read_fresh`];
    /// returns the record (for this writer's read-back), recorded or not.
    async fn record(
        &self,
        env: Env<'_>,
        read: &Fresh,
        written: Option<&PolicyDocument>,
    ) -> Written {
        let name = self.lease_name();
        let next = Written::next(
            read.record.as_ref(),
            &fingerprint(read.doc.as_ref()),
            &fingerprint(written),
        );
        if let Err(e) = env.locker.record_written(&name, &next).await {
            warn!(policy = %name, error = %e, "could not record the write; the next writer will not wait for it");
        }
        next
    }

    /// Reads the policy back after writing `written` (recorded as `record`) until the write
    /// shows. Which version a read shows decides what happens:
    /// - the one written (`record.latest`): settled;
    /// - one it replaced, or an older one vendor-grants wrote or replaced (`record.earlier`): the
    ///   write has not reached this read yet (S3 and KMS reads are eventually consistent, the
    ///   writer's own included), so it is not evidence of anything: read again, for up to
    ///   [`STALE_WAIT`], under the lease, so the next writer starts from this write and not from
    ///   a version that lacks it. Removing, a read-back that still shows the grant's statements
    ///   in the version the removal replaced is this case too: the removal has not settled, and
    ///   taking it for "another writer put them back" would redo the transaction from that
    ///   stale version. Still stale after the wait: [`Error::NotSettled`], never "another writer";
    /// - any other: someone else wrote since. Judged by what it holds (writing: every statement
    ///   written; removing: none of the grant's), false if it undid the write, so the transaction
    ///   is redone from it.
    async fn settle(
        &self,
        env: Env<'_>,
        tx: Transaction<'_>,
        record: &Written,
        written: Option<&PolicyDocument>,
    ) -> Result<bool, Error> {
        let started = Instant::now();
        let mut pause = SETTLE_PAUSE_FIRST;
        loop {
            let after = self.read(env, tx.kind).await?;
            let shown = fingerprint(after.as_ref());
            if shown == record.latest {
                return Ok(true);
            }
            if !record.is_stale(&shown) {
                return Ok(match tx.kind {
                    Kind::Write => holds(after.as_ref(), written),
                    Kind::Remove(claim) => after.is_none_or(|d| claim.owned_sids(&d).is_empty()),
                });
            }
            if started.elapsed() + pause > STALE_WAIT || Instant::now() + pause >= env.deadline {
                return Err(Error::NotSettled {
                    what: self.kind().name().to_string(),
                });
            }
            info!(policy = %self.lease_name(), "the read-back still shows the policy as before the write; waiting for the write to settle");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(SETTLE_PAUSE_CAP);
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
