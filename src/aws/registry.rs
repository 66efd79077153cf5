//! The grant registry: one item per grant in the lock table (`LockId = grant#<id>`, the record
//! as JSON in `Record`), beside the leases and write records. It has no `ExpiresAt`, so the
//! table's TTL never removes it.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Error, service_error};

/// The LockId prefix of registry items.
pub const RECORD_PREFIX: &str = "grant#";

/// How often a failed registry write is tried in all (the SDK has already retried each).
const TRIES: u32 = 4;

/// `call`, tried [`TRIES`] times in all with a doubling pause between: a record belongs to the
/// write it describes, so one failed put (after the SDK's own retries) is not the end of it.
async fn retried<T, E, F>(mut call: impl FnMut() -> F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut pause = Duration::from_millis(200);
    for _ in 1..TRIES {
        if let Ok(v) = call().await {
            return Ok(v);
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    call().await
}

/// The grant registry in a lock table.
#[derive(Clone, Debug)]
pub struct Registry {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn item_id(grant_id: &str) -> String {
    format!("{RECORD_PREFIX}{grant_id}")
}

impl Registry {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Registry {
        Registry {
            client,
            table: table.to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn failed(&self, operation: &'static str, grant_id: &str, e: impl Into<Error>) -> Error {
        let e: Error = e.into();
        Error::LockTable {
            table: self.table.clone(),
            message: format!("{operation} of the registry record of grant {grant_id}: {e}"),
        }
    }

    /// Writes (or replaces) the record of `grant_id`.
    pub async fn put(&self, grant_id: &str, record_json: &str) -> Result<(), Error> {
        let id = item_id(grant_id);
        retried(|| {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("LockId", AttributeValue::S(id.clone()))
                .item("Record", AttributeValue::S(record_json.to_string()))
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = service_error("PutItem", &id, e.into_service_error());
            self.failed("PutItem", grant_id, e)
        })
    }

    /// The record of `grant_id`, read consistently; `None` when there is none.
    pub async fn get(&self, grant_id: &str) -> Result<Option<String>, Error> {
        let id = item_id(grant_id);
        let out = retried(|| {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("LockId", AttributeValue::S(id.clone()))
                .consistent_read(true)
                .send()
        })
        .await
        .map_err(|e| {
            let e = service_error("GetItem", &id, e.into_service_error());
            self.failed("GetItem", grant_id, e)
        })?;
        Ok(out
            .item()
            .and_then(|item| item.get("Record"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// Removes the record of `grant_id` (none is fine).
    pub async fn delete(&self, grant_id: &str) -> Result<(), Error> {
        let id = item_id(grant_id);
        retried(|| {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("LockId", AttributeValue::S(id.clone()))
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = service_error("DeleteItem", &id, e.into_service_error());
            self.failed("DeleteItem", grant_id, e)
        })
    }

    /// Every record in the table, as (grant id, record JSON).
    pub async fn scan(&self) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(LockId, :p)")
                .expression_attribute_values(":p", AttributeValue::S(RECORD_PREFIX.into()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    let e = service_error("Scan", &self.table, e.into_service_error());
                    Error::LockTable {
                        table: self.table.clone(),
                        message: e.to_string(),
                    }
                })?;
            for item in page.items() {
                let id = item.get("LockId").and_then(|v| v.as_s().ok());
                let record = item.get("Record").and_then(|v| v.as_s().ok());
                if let (Some(id), Some(record)) = (id, record) {
                    let id = id.strip_prefix(RECORD_PREFIX).unwrap_or(id);
                    out.push((id.to_string(), record.clone()));
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}
