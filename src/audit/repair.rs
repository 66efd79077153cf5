//! `--fix` and `--remove-orphans`: drifted and missing grants re-applied from their registry
//! record, orphans removed, each through the lifecycle's leased, verified transaction. Access
//! beyond a grant that vendor-grants did not write (a foreign statement for its principal, a
//! policy someone put on or attached to its role) is reported, never touched.

use super::{Entry, Error, Inventory, Place, Status};
use crate::lifecycle::{self, Env};

/// What to repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repairs {
    pub fix: bool,
    pub remove_orphans: bool,
}

/// Repairs `entries` (as judged from `inventory`, which [`super::run`] has checked has a
/// registry); returns, per grant, what was done. What could not be done is returned too, as
/// sentences starting "could not".
pub async fn repair(
    env: Env<'_>,
    inventory: &Inventory,
    entries: &[Entry],
    repairs: Repairs,
) -> Result<Vec<(String, Vec<String>)>, Error> {
    let live = inventory.live();
    let mut out = Vec::new();
    for e in entries {
        let done = match e.status {
            Status::Drifted | Status::Missing if repairs.fix => {
                let Some(record) = inventory
                    .registry
                    .iter()
                    .flatten()
                    .find(|r| r.grant_id == e.grant_id)
                else {
                    continue;
                };
                let restored =
                    lifecycle::restore(env, record)
                        .await
                        .map_err(|err| Error::Repair {
                            grant: e.grant_id.clone(),
                            why: err.to_string(),
                        })?;
                let mut done = restored.done;
                done.extend(
                    restored
                        .not_restorable
                        .into_iter()
                        .map(|n| format!("could not restore: {n}")),
                );
                // Not vendor-grants': never changed, deleted or detached; a person decides.
                done.extend(
                    e.left_for_person
                        .iter()
                        .map(|f| format!("left for a person (not vendor-grants'): {f}")),
                );
                done
            }
            Status::Orphaned if repairs.remove_orphans => {
                let found = live.iter().find(|(id, _)| id.as_str() == e.grant_id);
                let (mut buckets, mut keys, mut roles) = (Vec::new(), Vec::new(), Vec::new());
                if let Some((_, found)) = found {
                    for (place, _) in &found.statements {
                        match place {
                            Place::Bucket(b) if !buckets.contains(b) => buckets.push(b.clone()),
                            Place::Key(k) if !keys.contains(k) => keys.push(k.clone()),
                            _ => {}
                        }
                    }
                    roles.extend(found.roles.iter().map(|r| r.name.clone()));
                }
                let mut done = lifecycle::remove_orphan(env, &e.grant_id, &buckets, &keys, &roles)
                    .await
                    .map_err(|err| Error::Repair {
                        grant: e.grant_id.clone(),
                        why: err.to_string(),
                    })?;
                if let (Some(registry), Some(_)) = (env.locker.registry(), &e.stack_id) {
                    registry.delete(&e.grant_id).await?;
                    done.push("removed its registry record".into());
                }
                done
            }
            _ => continue,
        };
        if !done.is_empty() {
            out.push((e.grant_id.clone(), done));
        }
    }
    Ok(out)
}
