//! The DynamoDB lease against moto: taken with a conditional put, released only by its holder,
//! taken over only once expired, and waited for until the deadline.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::time::Instant;
use vendor_grants::aws::Error;
use vendor_grants::aws::lock::{LEASE_SECONDS, Locker};

async fn table() -> (common::Aws, Locker, String) {
    let aws = common::aws(&common::moto().endpoint).await;
    let table = common::unique("vg-lease");
    common::create_lock_table(&aws, &table).await;
    let locker = Locker::Table {
        mac_key: None,
        client: aws.ddb.clone(),
        table: table.clone(),
    };
    (aws, locker, table)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn item(
    aws: &common::Aws,
    table: &str,
    id: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    aws.ddb
        .get_item()
        .table_name(table)
        .key("LockId", AttributeValue::S(id.to_string()))
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn a_lease_is_an_item_with_expiry_and_release_removes_it() {
    let (aws, locker, table) = table().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let lease = locker
        .acquire("s3-bucket-policy/b", deadline)
        .await
        .unwrap();
    let held = item(&aws, &table, "s3-bucket-policy/b")
        .await
        .expect("lease item");
    let expires: u64 = held["ExpiresAt"].as_n().unwrap().parse().unwrap();
    assert!(expires >= now() + LEASE_SECONDS - 5 && expires <= now() + LEASE_SECONDS + 1);
    // A second holder waits, and gives up at its deadline.
    let started = Instant::now();
    let err = locker
        .acquire(
            "s3-bucket-policy/b",
            Instant::now() + Duration::from_millis(600),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    assert!(err.to_string().contains("s3-bucket-policy/b"));
    assert!(started.elapsed() < Duration::from_secs(2));
    lease.release().await.unwrap();
    assert!(item(&aws, &table, "s3-bucket-policy/b").await.is_none());
    // Free again.
    locker
        .acquire("s3-bucket-policy/b", deadline)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_late_release_does_not_free_the_new_one() {
    let (aws, locker, table) = table().await;
    // A crashed holder left a lease that expired a minute ago.
    aws.ddb
        .put_item()
        .table_name(&table)
        .item("LockId", AttributeValue::S("kms-key-policy/k".into()))
        .item("Owner", AttributeValue::S("crashed".into()))
        .item("ExpiresAt", AttributeValue::N((now() - 60).to_string()))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let lease = locker.acquire("kms-key-policy/k", deadline).await.unwrap();
    let owner = item(&aws, &table, "kms-key-policy/k").await.unwrap()["Owner"]
        .as_s()
        .unwrap()
        .clone();
    assert_ne!(owner, "crashed");
    lease.release().await.unwrap();

    // A live lease of someone else is never released by us.
    aws.ddb
        .put_item()
        .table_name(&table)
        .item("LockId", AttributeValue::S("kms-key-policy/k".into()))
        .item("Owner", AttributeValue::S("someone-else".into()))
        .item("ExpiresAt", AttributeValue::N((now() + 300).to_string()))
        .send()
        .await
        .unwrap();
    let err = locker
        .acquire(
            "kms-key-policy/k",
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }));
    let still = item(&aws, &table, "kms-key-policy/k").await.unwrap();
    assert_eq!(still["Owner"].as_s().unwrap(), "someone-else");
}

#[tokio::test]
async fn a_missing_lock_table_is_a_clear_error() {
    let aws = common::aws(&common::moto().endpoint).await;
    let locker = Locker::Table {
        mac_key: None,
        client: aws.ddb.clone(),
        table: "no-such-lock-table".into(),
    };
    let err = locker
        .acquire(
            "s3-bucket-policy/b",
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-lock-table"), "{err}");
}

/// Waiters in one process queue there, not at the table: while one task holds the lease the
/// others ask the table nothing, and each takes it after the one before with a single put (no
/// polling pause between a release and the next holder).
#[tokio::test]
async fn waiters_in_one_process_queue_locally_and_take_a_freed_lease_at_once() {
    const RESOURCE: &str = "s3-bucket-policy/queued";
    let proxy = common::proxy::FaultProxy::start(&common::moto().endpoint);
    let aws = common::aws(&proxy.endpoint()).await;
    let table = common::unique("vg-lease");
    common::create_lock_table(&aws, &table).await;
    let locker = Locker::Table {
        mac_key: None,
        client: aws.ddb.clone(),
        table: table.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = locker.acquire(RESOURCE, deadline).await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let locker = locker.clone();
            tokio::spawn(async move {
                let lease = locker.acquire(RESOURCE, deadline).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
                lease.release().await.unwrap();
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let puts = |calls: &[common::proxy::Call]| {
        calls
            .iter()
            .filter(|c| c.operation == "PutItem" && c.resource.as_deref() == Some(RESOURCE))
            .count()
    };
    assert_eq!(
        puts(&proxy.take_calls()),
        1,
        "only the first holder's put while it holds the lease"
    );
    first.release().await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(
        puts(&proxy.take_calls()),
        3,
        "each queued waiter took the freed lease with one put"
    );
    assert!(item(&aws, &table, RESOURCE).await.is_none());
}
