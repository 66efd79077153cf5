//! The function: the CloudFormation protocol ([`cfn::Driver`]) driving the grant resource
//! ([`Grants`]), wired from the configuration read once at start-up.

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

/// Clients from the standard AWS configuration, the rest from `config`.
pub async fn from_config(config: &Config) -> Result<Function, Error> {
    let clients = Clients::from_env().await;
    with_clients(clients, config)
}

/// The function over given clients (tests point them at an emulator).
pub fn with_clients(clients: Clients, config: &Config) -> Result<Function, Error> {
    let locker = Locker::new(&clients, config.lock_table.as_deref());
    let sender = Sender::new(AllowList::parse(config.response_hosts.as_deref()))?;
    let grants = Grants {
        clients,
        locker,
        catalog: Catalog::builtin()?,
        allowed: config.allowed.clone(),
    };
    Ok(Driver::new(grants, sender))
}
