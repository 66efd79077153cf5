//! Leases that serialise the read-modify-write of one bucket policy, key policy or role. With
//! `VENDOR_GRANTS_LOCK_TABLE` the lease is a DynamoDB item (so separate Lambda instances take
//! turns); without it, a process-wide mutex. A lease is taken over only once it has expired, so a
//! crashed holder delays others by at most the lease duration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::{Clients, Error, service_error};

/// How long a DynamoDB lease lasts without release. The work under a lease is a read, a write
/// and a read-back: seconds, or a minute with slow retried calls. IAM propagation waits happen
/// outside leases. An abandoned lease (a crashed holder) delays others by at most this.
pub const LEASE_SECONDS: u64 = 120;

type LocalLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

fn local_locks() -> &'static LocalLocks {
    static LOCKS: OnceLock<LocalLocks> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn local_written() -> &'static Mutex<HashMap<String, String>> {
    static WRITTEN: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    WRITTEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How long a record of the last write is kept: far longer than any read can lag behind.
const WRITTEN_SECONDS: u64 = 3600;

fn written_id(resource: &str) -> String {
    format!("written/{resource}")
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
    },
}

/// A held lease; give it back with [`Lease::release`]. Dropped without release, a local lease is
/// freed at once and a table lease expires after [`LEASE_SECONDS`].
#[derive(Debug)]
pub struct Lease {
    resource: String,
    held: Held,
    /// When a table lease may be taken over; `None` for a local lease, which never expires.
    expires: Option<Instant>,
}

#[derive(Debug)]
enum Held {
    Local(#[allow(dead_code)] OwnedMutexGuard<()>),
    Table {
        client: aws_sdk_dynamodb::Client,
        table: String,
        token: String,
    },
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Locker {
    pub fn from_env(clients: &Clients) -> Locker {
        match std::env::var("VENDOR_GRANTS_LOCK_TABLE") {
            Ok(table) if !table.trim().is_empty() => Locker::Table {
                client: clients.dynamodb.clone(),
                table: table.trim().to_string(),
            },
            _ => Locker::Local,
        }
    }

    /// Takes the lease on `resource` (e.g. `s3-bucket-policy/NAME`), waiting until `deadline`.
    pub async fn acquire(&self, resource: &str, deadline: Instant) -> Result<Lease, Error> {
        match self {
            Locker::Local => {
                let mutex = {
                    let mut map = local_locks().lock().unwrap_or_else(|p| p.into_inner());
                    map.entry(resource.to_string()).or_default().clone()
                };
                match tokio::time::timeout_at(deadline, mutex.lock_owned()).await {
                    Ok(guard) => Ok(Lease {
                        resource: resource.to_string(),
                        held: Held::Local(guard),
                        expires: None,
                    }),
                    Err(_) => Err(Error::LockTimeout {
                        resource: resource.to_string(),
                    }),
                }
            }
            Locker::Table { client, table } => {
                let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
                let lease_length = Duration::from_secs(LEASE_SECONDS);
                let mut wait = Duration::from_millis(50);
                loop {
                    let now = epoch_seconds();
                    // Counted from before the request, so our view of the expiry is never late.
                    let expires = Instant::now() + lease_length;
                    let result = client
                        .put_item()
                        .table_name(table)
                        .item("LockId", AttributeValue::S(resource.to_string()))
                        .item("Owner", AttributeValue::S(token.clone()))
                        .item(
                            "ExpiresAt",
                            AttributeValue::N((now + LEASE_SECONDS).to_string()),
                        )
                        .condition_expression("attribute_not_exists(LockId) OR ExpiresAt < :now")
                        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                        .send()
                        .await;
                    match result {
                        Ok(_) => {
                            return Ok(Lease {
                                resource: resource.to_string(),
                                held: Held::Table {
                                    client: client.clone(),
                                    table: table.clone(),
                                    token,
                                },
                                expires: Some(expires),
                            });
                        }
                        Err(e) => {
                            let e = e.into_service_error();
                            if !e.is_conditional_check_failed_exception() {
                                return Err(Error::LockTable {
                                    table: table.clone(),
                                    message: service_error("PutItem", resource, e).to_string(),
                                });
                            }
                        }
                    }
                    // Held by someone else: wait with jitter, so waiters do not move in step.
                    let pause = wait.mul_f64(0.5 + fastrand::f64());
                    if Instant::now() + pause >= deadline {
                        return Err(Error::LockTimeout {
                            resource: resource.to_string(),
                        });
                    }
                    tokio::time::sleep(pause).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

impl Locker {
    /// The fingerprint of the last policy vendor-grants wrote to `resource`, if recorded: the next
    /// writer waits for its reads to show it, since S3 and KMS reads are eventually consistent.
    pub async fn last_written(&self, resource: &str) -> Result<Option<String>, Error> {
        match self {
            Locker::Local => Ok(local_written()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(resource)
                .cloned()),
            Locker::Table { client, table } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("LockId", AttributeValue::S(written_id(resource)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| Error::LockTable {
                        table: table.clone(),
                        message: service_error("GetItem", resource, e.into_service_error())
                            .to_string(),
                    })?;
                Ok(out
                    .item()
                    .and_then(|i| i.get("Fingerprint"))
                    .and_then(|v| v.as_s().ok())
                    .cloned())
            }
        }
    }

    /// Records what was just written to `resource`, under its lease.
    pub async fn record_written(&self, resource: &str, fingerprint: &str) -> Result<(), Error> {
        match self {
            Locker::Local => {
                local_written()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(resource.to_string(), fingerprint.to_string());
                Ok(())
            }
            Locker::Table { client, table } => client
                .put_item()
                .table_name(table)
                .item("LockId", AttributeValue::S(written_id(resource)))
                .item("Fingerprint", AttributeValue::S(fingerprint.to_string()))
                .item(
                    "ExpiresAt",
                    AttributeValue::N((epoch_seconds() + WRITTEN_SECONDS).to_string()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Error::LockTable {
                    table: table.clone(),
                    message: service_error("PutItem", resource, e.into_service_error()).to_string(),
                }),
        }
    }
}

impl Lease {
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Refuses to go on when less than `margin` of the lease is left: past its expiry another
    /// writer may take it over, and a write then could undo theirs.
    pub fn check_held(&self, margin: Duration) -> Result<(), Error> {
        match self.expires {
            Some(expires) if Instant::now() + margin >= expires => Err(Error::LeaseExpired {
                resource: self.resource.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Gives the lease back. A table lease is deleted only if it is still ours.
    pub async fn release(self) -> Result<(), Error> {
        match self.held {
            Held::Local(guard) => {
                drop(guard);
                Ok(())
            }
            Held::Table {
                client,
                table,
                token,
            } => {
                let result = client
                    .delete_item()
                    .table_name(&table)
                    .key("LockId", AttributeValue::S(self.resource.clone()))
                    .condition_expression("#o = :token")
                    .expression_attribute_names("#o", "Owner")
                    .expression_attribute_values(":token", AttributeValue::S(token))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let e = e.into_service_error();
                        // Expired and taken over: nothing of ours left to release.
                        if e.is_conditional_check_failed_exception() {
                            Ok(())
                        } else {
                            Err(Error::LockTable {
                                table,
                                message: service_error("DeleteItem", &self.resource, e).to_string(),
                            })
                        }
                    }
                }
            }
        }
    }
}
