//! Leases that serialise the read-modify-write of one bucket policy, key policy or role. With
//! a lock table (`VENDOR_GRANTS_LOCK_TABLE`) the lease is a DynamoDB item (so separate Lambda instances take
//! turns); without it, a process-wide mutex. A table lease is short and renewed while it is held,
//! so a crashed holder delays others by at most [`LEASE_SECONDS`], whatever the work takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Clients, Error, sdk_error, service_error};

/// How long a DynamoDB lease lasts without renewal: the longest a crashed holder can keep others
/// waiting. The holder renews it every [`RENEW_EVERY`] while it works, so slow AWS calls under
/// the lease never let it run out. The deploy template's comments quote this number.
pub const LEASE_SECONDS: u64 = 10;

/// How often a held table lease is renewed: several renewals fit in one lease, so one throttled
/// renewal does not lose it.
pub const RENEW_EVERY: Duration = Duration::from_millis(2500);

/// How long releasing a lease is retried before it is left to expire.
const RELEASE_TRIES: u32 = 4;

type LocalLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

fn local_locks() -> &'static LocalLocks {
    static LOCKS: OnceLock<LocalLocks> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The process-local lock on `resource`, shared by every task of this process that wants it.
fn local_mutex(resource: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut map = local_locks().lock().unwrap_or_else(|p| p.into_inner());
    map.entry(resource.to_string()).or_default().clone()
}

fn local_written() -> &'static Mutex<HashMap<String, Written>> {
    static WRITTEN: OnceLock<Mutex<HashMap<String, Written>>> = OnceLock::new();
    WRITTEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How long a record of the last write is kept: far longer than any read can lag behind.
const WRITTEN_SECONDS: u64 = 3600;

/// How many earlier versions of a policy are remembered (see [`Written::earlier`]).
const EARLIER_KEPT: usize = 8;

fn written_id(resource: &str) -> String {
    format!("written/{resource}")
}

/// What vendor-grants last wrote to a policy, by fingerprint: the version written, and the
/// versions it replaced. A read that shows one of the earlier versions is stale (S3 and KMS
/// reads are eventually consistent) and is worth waiting for; a read that shows anything else
/// was written by someone else since, and waiting would not change it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub latest: String,
    /// Newest first.
    pub earlier: Vec<String>,
}

impl Written {
    /// The record after writing `latest` over a policy that read as `before`.
    pub fn next(previous: Option<&Written>, before: &str, latest: &str) -> Written {
        let mut earlier = vec![before.to_string()];
        if let Some(p) = previous {
            earlier.push(p.latest.clone());
            earlier.extend(p.earlier.iter().cloned());
        }
        let mut seen = std::collections::HashSet::new();
        earlier.retain(|e| e != latest && seen.insert(e.clone()));
        earlier.truncate(EARLIER_KEPT);
        Written {
            latest: latest.to_string(),
            earlier,
        }
    }

    /// Whether a read with fingerprint `read` is behind this record.
    pub fn is_stale(&self, read: &str) -> bool {
        read != self.latest && self.earlier.iter().any(|e| e == read)
    }
}

/// What a lease serialises: one bucket policy, key policy or role. Its text is the lease item's
/// `LockId` (and, prefixed `written/`, the record of the last write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKey<'a> {
    BucketPolicy(&'a str),
    /// By key ARN.
    KeyPolicy(&'a str),
    Role(&'a str),
}

impl std::fmt::Display for LeaseKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseKey::BucketPolicy(bucket) => write!(f, "s3-bucket-policy/{bucket}"),
            LeaseKey::KeyPolicy(key_arn) => write!(f, "kms-key-policy/{key_arn}"),
            LeaseKey::Role(name) => write!(f, "iam-role/{name}"),
        }
    }
}

/// Where leases are kept.
#[derive(Clone, Debug)]
pub enum Locker {
    /// Within this process only.
    Local,
    /// A DynamoDB table with partition key `LockId` (S) and TTL attribute `ExpiresAt` (N).
    Table {
        client: aws_sdk_dynamodb::Client,
        table: String,
        /// The key the registry's records are signed and verified with.
        mac_key: Option<super::registry::MacKey>,
    },
}

/// A held lease; give it back with [`Lease::release`]. Dropped without release, a local lease is
/// freed at once and a table lease stops being renewed and expires after [`LEASE_SECONDS`].
#[derive(Debug)]
pub struct Lease {
    resource: String,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Local(#[allow(dead_code)] OwnedMutexGuard<()>),
    Table {
        client: aws_sdk_dynamodb::Client,
        table: String,
        token: String,
        state: Arc<Mutex<TableLease>>,
        _renewer: Renewer,
        /// This process's lock on the resource, held with the table lease and freed after it.
        _local: OwnedMutexGuard<()>,
    },
}

/// What the holder knows of its table lease: until when it is surely ours, and whether a renewal
/// found it taken over.
#[derive(Debug)]
struct TableLease {
    expires: Instant,
    lost: bool,
}

/// The task renewing a table lease; stopped when the lease is released or dropped.
#[derive(Debug)]
struct Renewer(JoinHandle<()>);

impl Drop for Renewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A lock-table call that failed: `e` (from `service_error`) already names the operation and
/// the lease.
fn table_error(table: &str, e: Error) -> Error {
    Error::LockTable {
        table: table.to_string(),
        message: e.to_string(),
    }
}

impl Locker {
    /// Leases in `table` (the configured `VENDOR_GRANTS_LOCK_TABLE`), else within the process.
    pub fn new(clients: &Clients, table: Option<&str>) -> Locker {
        match table {
            Some(table) => Locker::Table {
                client: clients.dynamodb.clone(),
                table: table.to_string(),
                mac_key: None,
            },
            None => Locker::Local,
        }
    }

    /// The registry's records signed and verified with the KMS HMAC key `key_id` (the configured
    /// `VENDOR_GRANTS_REGISTRY_KEY`); without a table there is no registry to sign.
    pub fn with_registry_key(self, clients: &Clients, key_id: Option<&str>) -> Locker {
        match (self, key_id) {
            (Locker::Table { client, table, .. }, Some(key_id)) => Locker::Table {
                client,
                table,
                mac_key: Some(super::registry::MacKey {
                    kms: clients.kms.clone(),
                    key_id: key_id.to_string(),
                }),
            },
            (other, _) => other,
        }
    }

    /// The grant registry kept in the same table; none without a table.
    pub fn registry(&self) -> Option<super::registry::Registry> {
        match self {
            Locker::Local => None,
            Locker::Table {
                client,
                table,
                mac_key,
            } => Some(
                super::registry::Registry::new(client.clone(), table).with_mac_key(mac_key.clone()),
            ),
        }
    }

    /// Takes the lease on `resource` (e.g. `s3-bucket-policy/NAME`), waiting until `deadline`.
    pub async fn acquire(&self, resource: &str, deadline: Instant) -> Result<Lease, Error> {
        match self {
            Locker::Local => Ok(Lease {
                resource: resource.to_string(),
                held: Held::Local(lock_local(resource, deadline).await?),
            }),
            Locker::Table { client, table, .. } => {
                // This process's waiters queue here first (FIFO), so one of them at a time asks
                // the table: a lease this process frees passes to its next waiter at once, with
                // no polling pause, and the table sees one poller per process, not one per grant.
                let local = lock_local(resource, deadline).await?;
                acquire_table(client, table, resource, deadline, local).await
            }
        }
    }
}

/// The process-local lock on `resource`, waited for until `deadline`.
async fn lock_local(resource: &str, deadline: Instant) -> Result<OwnedMutexGuard<()>, Error> {
    tokio::time::timeout_at(deadline, local_mutex(resource).lock_owned())
        .await
        .map_err(|_| Error::LockTimeout {
            resource: resource.to_string(),
        })
}

/// The conditional put that takes a table lease, retried while another holds it and while the
/// table answers with errors (the SDK has already retried those), until `deadline`.
async fn acquire_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    resource: &str,
    deadline: Instant,
    local: OwnedMutexGuard<()>,
) -> Result<Lease, Error> {
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let started = Instant::now();
    let mut wait = POLL_FIRST;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let now = epoch_seconds();
        // Counted from before the request, so our view of the expiry is never late.
        let expires = Instant::now() + Duration::from_secs(LEASE_SECONDS);
        let failure = match put_lease(client, table, resource, &token, now).await {
            Ok(()) => {
                if tries > 1 {
                    let waited_ms =
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(resource, waited_ms, tries, "lease taken after waiting");
                }
                return Ok(table_lease(client, table, resource, token, expires, local));
            }
            Err(e) => put_failure(table, resource, e),
        };
        // Held by someone else, or the table failed even after the SDK's retries: wait with
        // jitter (so waiters do not move in step) and try again while there is time.
        let pause = wait.mul_f64(0.5 + fastrand::f64() / 2.0);
        if Instant::now() + pause >= deadline {
            return Err(failure.unwrap_or_else(|| Error::LockTimeout {
                resource: resource.to_string(),
            }));
        }
        if let Some(e) = &failure {
            tracing::warn!(resource, error = %e, "the lock table failed; trying again");
        }
        tokio::time::sleep(pause).await;
        let cap = if started.elapsed() < LONG_WAIT {
            POLL_CAP
        } else {
            POLL_CAP_LONG
        };
        wait = (wait * 2).min(cap);
    }
}

/// A waiter's first pause before asking for a held lease again; it doubles up to [`POLL_CAP`],
/// each drawn from half to all of it (jitter, so waiters do not move in step). There is no way
/// to be told of a release, so how soon the next holder follows it is how often waiters ask: a
/// holder writes a couple of policies (tens of milliseconds on an emulator, a few hundred on
/// AWS), and a 20 ms cap keeps the lease's idle time under the write it waited for. A waiter
/// still waiting after [`LONG_WAIT`] is in a long queue, where many others are asking too (so the
/// lease is still taken soon after each release); it slows to [`POLL_CAP_LONG`], which keeps the
/// conditional puts on one lease item well under DynamoDB's per-item write rate. Waiters within
/// one process queue there and only one of them asks (see [`Locker::acquire`]).
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_CAP: Duration = Duration::from_millis(20);
const LONG_WAIT: Duration = Duration::from_secs(2);
const POLL_CAP_LONG: Duration = Duration::from_millis(200);

/// The conditional put: the lease is ours if no one holds it or its holder's has run out.
async fn put_lease(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    resource: &str,
    token: &str,
    now: u64,
) -> Result<(), PutItemError> {
    client
        .put_item()
        .table_name(table)
        .item("LockId", AttributeValue::S(resource.to_string()))
        .item("Owner", AttributeValue::S(token.to_string()))
        .item(
            "ExpiresAt",
            AttributeValue::N((now + LEASE_SECONDS).to_string()),
        )
        .condition_expression("attribute_not_exists(LockId) OR ExpiresAt < :now")
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.into_service_error())
}

/// A lease just taken in the table, with its renewer started.
fn table_lease(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    resource: &str,
    token: String,
    expires: Instant,
    local: OwnedMutexGuard<()>,
) -> Lease {
    let state = Arc::new(Mutex::new(TableLease {
        expires,
        lost: false,
    }));
    let renewer = Renewer(tokio::spawn(renew(
        client.clone(),
        table.to_string(),
        resource.to_string(),
        token.clone(),
        state.clone(),
    )));
    Lease {
        resource: resource.to_string(),
        held: Held::Table {
            client: client.clone(),
            table: table.to_string(),
            token,
            state,
            _renewer: renewer,
            _local: local,
        },
    }
}

/// Why the put failed: `None` when the lease is held by someone else, else the table's error.
fn put_failure(table: &str, resource: &str, e: PutItemError) -> Option<Error> {
    // Held by someone else: the ordinary case, waited for by the caller.
    (!e.is_conditional_check_failed_exception())
        .then(|| table_error(table, service_error("PutItem", resource, e)))
}

/// Extends a held table lease every [`RENEW_EVERY`], conditional on still owning it. A renewal
/// that finds another owner marks the lease lost (the holder then writes nothing more); one that
/// fails otherwise is tried again at the next tick, while the lease has not run out.
async fn renew(
    client: aws_sdk_dynamodb::Client,
    table: String,
    resource: String,
    token: String,
    state: Arc<Mutex<TableLease>>,
) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let sent = Instant::now();
        let result = client
            .update_item()
            .table_name(&table)
            .key("LockId", AttributeValue::S(resource.clone()))
            .update_expression("SET ExpiresAt = :e")
            .condition_expression("#o = :token")
            .expression_attribute_names("#o", "Owner")
            .expression_attribute_values(":token", AttributeValue::S(token.clone()))
            .expression_attribute_values(
                ":e",
                AttributeValue::N((epoch_seconds() + LEASE_SECONDS).to_string()),
            )
            .send()
            .await;
        let mut lease = state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => lease.expires = sent + Duration::from_secs(LEASE_SECONDS),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    lease.lost = true;
                    tracing::warn!(resource = %resource, "the lease was taken over; nothing more is written under it");
                    return;
                }
                tracing::warn!(resource = %resource, error = %service_error("UpdateItem", &resource, e), "could not renew the lease; trying again");
            }
        }
    }
}

impl Locker {
    /// What vendor-grants last wrote to `resource`, if recorded: the next writer waits while its
    /// reads show an earlier version, since S3 and KMS reads are eventually consistent.
    pub async fn last_written(&self, resource: &str) -> Result<Option<Written>, Error> {
        match self {
            Locker::Local => Ok(local_written()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(resource)
                .cloned()),
            Locker::Table { client, table, .. } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("LockId", AttributeValue::S(written_id(resource)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| table_error(table, sdk_error("GetItem", resource, e)))?;
                let Some(item) = out.item() else {
                    return Ok(None);
                };
                let Some(latest) = item.get("Fingerprint").and_then(|v| v.as_s().ok()) else {
                    return Ok(None);
                };
                let earlier = item
                    .get("Earlier")
                    .and_then(|v| v.as_l().ok())
                    .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                    .unwrap_or_default();
                Ok(Some(Written {
                    latest: latest.clone(),
                    earlier,
                }))
            }
        }
    }

    /// Records what was just written to `resource`, under its lease.
    pub async fn record_written(&self, resource: &str, written: &Written) -> Result<(), Error> {
        match self {
            Locker::Local => {
                local_written()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(resource.to_string(), written.clone());
                Ok(())
            }
            Locker::Table { client, table, .. } => client
                .put_item()
                .table_name(table)
                .item("LockId", AttributeValue::S(written_id(resource)))
                .item("Fingerprint", AttributeValue::S(written.latest.clone()))
                .item(
                    "Earlier",
                    AttributeValue::L(
                        written
                            .earlier
                            .iter()
                            .map(|e| AttributeValue::S(e.clone()))
                            .collect(),
                    ),
                )
                .item(
                    "ExpiresAt",
                    AttributeValue::N((epoch_seconds() + WRITTEN_SECONDS).to_string()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| table_error(table, sdk_error("PutItem", resource, e))),
        }
    }
}

impl Lease {
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Refuses to go on when the lease was taken over or less than `margin` of it is left: past
    /// its expiry another writer may take it, and a write then could undo theirs.
    pub fn check_held(&self, margin: Duration) -> Result<(), Error> {
        let Held::Table { state, .. } = &self.held else {
            return Ok(());
        };
        let lease = state.lock().unwrap_or_else(|p| p.into_inner());
        if lease.lost || Instant::now() + margin >= lease.expires {
            return Err(Error::LeaseExpired {
                resource: self.resource.clone(),
            });
        }
        Ok(())
    }

    /// Gives the lease back, retrying a failed release a few times. A table lease is deleted only
    /// if it is still ours; one that cannot be deleted expires within [`LEASE_SECONDS`].
    pub async fn release(self) -> Result<(), Error> {
        let Held::Table {
            client,
            table,
            token,
            _renewer,
            // Held until the table lease is deleted (or given up), then this process's next
            // waiter goes straight to the table.
            _local,
            ..
        } = self.held
        else {
            return Ok(());
        };
        // Renewing while deleting could re-create nothing (the update is conditional on the
        // item), but stop it first all the same.
        drop(_renewer);
        let mut pause = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            let result = client
                .delete_item()
                .table_name(&table)
                .key("LockId", AttributeValue::S(self.resource.clone()))
                .condition_expression("#o = :token")
                .expression_attribute_names("#o", "Owner")
                .expression_attribute_values(":token", AttributeValue::S(token.clone()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) => e.into_service_error(),
            };
            // Expired and taken over: nothing of ours left to release.
            if e.is_conditional_check_failed_exception() {
                return Ok(());
            }
            if tries >= RELEASE_TRIES {
                return Err(table_error(
                    &table,
                    service_error("DeleteItem", &self.resource, e),
                ));
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}
