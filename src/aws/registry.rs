//! The grant registry: one item per grant in the lock table (`LockId = grant#<id>`, the record
//! as JSON in `Record`), beside the leases and write records. It has no `ExpiresAt`, so the
//! table's TTL never removes it.
//!
//! Anyone who can write the table can write a record, so with a registry key (a KMS HMAC key
//! only the function may GenerateMac with) each record also carries `Mac`, an HMAC over the
//! grant id and the record; the audit acts only on a record whose MAC verifies ([`Integrity`]).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use sha2::{Digest, Sha256};

use super::{Error, sdk_error};

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

/// What the MAC of a record is over: a digest (GenerateMac takes at most 4 KB, a record can be
/// more) of this label, the grant id and the record's exact text.
const MAC_LABEL: &str = "vendor-grants registry record v1";

/// The KMS HMAC key (`KeySpec HMAC_256`, `KeyUsage GENERATE_VERIFY_MAC`) records are signed with.
#[derive(Clone, Debug)]
pub struct MacKey {
    pub kms: aws_sdk_kms::Client,
    /// Its id or ARN (`VENDOR_GRANTS_REGISTRY_KEY`).
    pub key_id: String,
}

/// Whether a record is as the function wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Its MAC verifies with the registry key.
    Verified,
    /// It cannot be told: no registry key is configured, the record carries no MAC (written by
    /// an earlier version or without a key), or the key could not be used; and why.
    Unverified(String),
    /// Its MAC does not verify (or it does not read as a record): changed outside vendor-grants.
    Tampered(String),
}

/// One registry item as stored.
#[derive(Clone, Debug)]
pub struct Item {
    pub grant_id: String,
    pub record: String,
    /// The record's MAC (hex), if it carries one.
    pub mac: Option<String>,
}

/// The grant registry in a lock table.
#[derive(Clone, Debug)]
pub struct Registry {
    client: aws_sdk_dynamodb::Client,
    table: String,
    mac_key: Option<MacKey>,
}

/// What the MAC of `record_json`, the record of `grant_id`, is computed over.
pub fn mac_message(grant_id: &str, record_json: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    for part in [MAC_LABEL, grant_id, record_json] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn item_id(grant_id: &str) -> String {
    format!("{RECORD_PREFIX}{grant_id}")
}

impl Registry {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Registry {
        Registry {
            client,
            table: table.to_string(),
            mac_key: None,
        }
    }

    /// Records written are signed, and records read verified, with `key`.
    pub fn with_mac_key(mut self, key: Option<MacKey>) -> Registry {
        self.mac_key = key;
        self
    }

    pub fn mac_key(&self) -> Option<&MacKey> {
        self.mac_key.as_ref()
    }

    /// The MAC of a record, with the registry key.
    async fn sign(&self, key: &MacKey, grant_id: &str, record_json: &str) -> Result<String, Error> {
        let out = key
            .kms
            .generate_mac()
            .key_id(&key.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(mac_message(grant_id, record_json)))
            .send()
            .await
            .map_err(|e| sdk_error("GenerateMac", &key.key_id, e))?;
        Ok(out.mac().map(|m| hex(m.as_ref())).unwrap_or_default())
    }

    /// Whether `item` is as the function wrote it.
    pub async fn verify(&self, item: &Item) -> Integrity {
        let Some(key) = &self.mac_key else {
            return Integrity::Unverified(
                "no registry key is configured (VENDOR_GRANTS_REGISTRY_KEY), so the record's \
                 integrity cannot be checked"
                    .into(),
            );
        };
        let Some(mac) = &item.mac else {
            return Integrity::Unverified(
                "the record carries no MAC (written by an earlier version of vendor-grants, or \
                 while no registry key was configured)"
                    .into(),
            );
        };
        let Some(mac) = unhex(mac) else {
            return Integrity::Tampered("its MAC is not one vendor-grants writes".into());
        };
        let out = key
            .kms
            .verify_mac()
            .key_id(&key.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(mac_message(&item.grant_id, &item.record)))
            .mac(Blob::new(mac))
            .send()
            .await;
        match out {
            Ok(o) if o.mac_valid() => Integrity::Verified,
            Ok(_) => Integrity::Tampered("its MAC does not match the record".into()),
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|e| e.is_kms_invalid_mac_exception())
                {
                    Integrity::Tampered("its MAC does not match the record".into())
                } else {
                    let e = sdk_error("VerifyMac", &key.key_id, e);
                    Integrity::Unverified(format!("its MAC could not be checked: {e}"))
                }
            }
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

    /// Writes (or replaces) the record of `grant_id`, signed when there is a registry key (a
    /// key that cannot sign fails the write: an unsigned record would never be repaired).
    pub async fn put(&self, grant_id: &str, record_json: &str) -> Result<(), Error> {
        let id = item_id(grant_id);
        let mac = match &self.mac_key {
            Some(key) => Some(
                self.sign(key, grant_id, record_json)
                    .await
                    .map_err(|e| self.failed("GenerateMac", grant_id, e))?,
            ),
            None => None,
        };
        retried(|| {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("LockId", AttributeValue::S(id.clone()))
                .item("Record", AttributeValue::S(record_json.to_string()));
            match &mac {
                Some(mac) => put.item("Mac", AttributeValue::S(mac.clone())),
                None => put,
            }
            .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = sdk_error("PutItem", &id, e);
            self.failed("PutItem", grant_id, e)
        })
    }

    /// The record of `grant_id`, read consistently; `None` when there is none.
    pub async fn get(&self, grant_id: &str) -> Result<Option<String>, Error> {
        Ok(self.get_item(grant_id).await?.map(|item| item.record))
    }

    /// The item of `grant_id` (record and MAC), read consistently; `None` when there is none.
    pub async fn get_item(&self, grant_id: &str) -> Result<Option<Item>, Error> {
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
            let e = sdk_error("GetItem", &id, e);
            self.failed("GetItem", grant_id, e)
        })?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(text("Record").map(|record| Item {
            grant_id: grant_id.to_string(),
            record,
            mac: text("Mac"),
        }))
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
            let e = sdk_error("DeleteItem", &id, e);
            self.failed("DeleteItem", grant_id, e)
        })
    }

    /// Every record in the table, as stored (not yet verified: see [`Registry::verify`]).
    pub async fn scan(&self) -> Result<Vec<Item>, Error> {
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
                    let e = sdk_error("Scan", &self.table, e);
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
                    out.push(Item {
                        grant_id: id.to_string(),
                        record: record.clone(),
                        mac: item.get("Mac").and_then(|v| v.as_s().ok()).cloned(),
                    });
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_message_binds_the_grant_id_and_the_exact_record() {
        let m = mac_message("0123456789abcdef", r#"{"A":1}"#);
        assert_eq!(m.len(), 32);
        assert_ne!(m, mac_message("fedcba9876543210", r#"{"A":1}"#));
        assert_ne!(m, mac_message("0123456789abcdef", r#"{"A": 1}"#));
        // Lengths are part of the message: moving text between the parts changes it.
        assert_ne!(
            mac_message("ab", "cd"),
            mac_message("abc", "d"),
            "length-prefixed"
        );
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
