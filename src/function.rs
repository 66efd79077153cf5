//! The function: the CloudFormation protocol ([`cfn::Driver`]) driving the grant resource
//! ([`Grants`]), wired from the configuration read once at start-up; and the scheduled audit,
//! which never reaches the protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::aws::Clients;
use crate::aws::lock::Locker;
use crate::catalog::{self, Catalog};
use crate::cfn::{self, AllowList, Driver, Sender};
use crate::config::Config;
use crate::lifecycle::Grants;

pub use crate::cfn::Outcome;

/// Errors that stop the function from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Protocol(#[from] cfn::Error),
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}

/// One process's function: build it once, then hand it every event.
pub type Function = Driver<Grants>;

/// Clients from Lambda's environment (`aws::lambda_config`), the rest from `config`.
pub async fn from_config(config: &Config) -> Result<Function, Error> {
    let clients = Clients::from_lambda_env();
    with_clients(clients, config)
}

/// The function over given clients (tests point them at an emulator).
pub fn with_clients(clients: Clients, config: &Config) -> Result<Function, Error> {
    let locker = Locker::new(&clients, config.lock_table.as_deref())
        .with_registry_key(&clients, config.registry_key.as_deref());
    let sender = Sender::new(AllowList::parse(config.response_hosts.as_deref()))?;
    let grants = Grants {
        clients,
        locker,
        catalog: Catalog::builtin()?,
        allowed: config.allowed.clone(),
    };
    Ok(Driver::new(grants, sender))
}

/// Handles one invocation: the scheduled audit event, or else a CloudFormation event.
pub async fn handle(
    function: &Function,
    payload: &str,
    function_arn: &str,
    deadline: SystemTime,
) -> Value {
    match crate::audit::scheduled_request(payload) {
        Some(fix) => scheduled_audit(function.resource(), fix, function_arn, deadline).await,
        None => function
            .handle(payload, function_arn, deadline)
            .await
            .to_json(),
    }
}

/// Time kept back from the invocation's deadline to log the outcome.
const AUDIT_MARGIN: Duration = Duration::from_secs(3);

/// The scheduled audit: each finding a JSON log line, the counts per status as one
/// embedded-metric-format line (namespace `VendorGrants`) on stdout, and the summary returned.
async fn scheduled_audit(
    grants: &Grants,
    fix: bool,
    function_arn: &str,
    deadline: SystemTime,
) -> Value {
    use crate::audit::{self, output, repair::Repairs, scan::Scope};
    let Some(home) = crate::lifecycle::Home::from_function_arn(function_arn) else {
        tracing::error!(
            function_arn,
            "the audit needs the function's own ARN to know its account"
        );
        return json!({"Error": "the invoked function ARN names no account"});
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(AUDIT_MARGIN);
    let deadline = tokio::time::Instant::now() + left;
    let env = grants.env_until(&home, deadline);
    let scope = Scope {
        account: home.account.clone(),
        buckets: Vec::new(),
        registry: grants.locker.registry(),
        concurrency: 8,
        deadline,
        progress: None,
    };
    // The scheduled audit never removes orphans: that takes a person (`--remove-orphans --yes`).
    let repairs = Repairs {
        fix: fix && scope.registry.is_some(),
        remove_orphans: false,
        confirmed: false,
    };
    if fix && scope.registry.is_none() {
        tracing::warn!(
            "fix asked for, but there is no registry (VENDOR_GRANTS_LOCK_TABLE): audit only"
        );
    }
    let outcome = match audit::run(env, &scope, repairs).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "the audit failed");
            return json!({"Error": e.to_string()});
        }
    };
    for (grant_id, done) in &outcome.fixed {
        for d in done {
            tracing::info!(grant_id = %grant_id, fixed = %d, "audit fix");
        }
    }
    for (what, why) in &outcome.unreadable {
        tracing::warn!(resource = %what, error = %why, "audit: could not read");
    }
    for e in &outcome.entries {
        if e.findings.is_empty() {
            tracing::info!(grant_id = %e.grant_id, status = e.status.as_str(), vendor = e.vendor.as_deref().unwrap_or("-"), bucket = e.bucket_name.as_deref().unwrap_or("-"), "audit: grant");
        }
        for f in &e.findings {
            tracing::warn!(grant_id = %e.grant_id, status = e.status.as_str(), vendor = e.vendor.as_deref().unwrap_or("-"), bucket = e.bucket_name.as_deref().unwrap_or("-"), finding = %f, "audit finding");
        }
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // CloudWatch reads an EMF object only when it is the whole line.
    println!("{}", output::emf(&outcome.entries, now_ms));
    json!({"Summary": audit::summary(&outcome.entries), "Fixed": outcome.fixed.len(),
        "Unreadable": outcome.unreadable.len()})
}
