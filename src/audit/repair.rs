//! `--fix` and `--remove-orphans`. A drifted or missing grant is rebuilt from its recorded
//! *properties* through Create's own checks, allow-lists, plan and lints, and only when its
//! record verifies (MAC) and what Create would write today is what the record says was written
//! (the record's documents are never written back as they are). Orphans are removed, and only
//! with `confirmed` (`--yes`): without it the removal is described, not made. Access beyond a
//! grant that vendor-grants did not write (a foreign statement for its principal, a policy
//! someone put on or attached to its role) is reported, never touched.

use super::{Entry, Error, Inventory, Place, RecordCheck, Status};
use crate::lifecycle::{self, Env};

/// What to repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repairs {
    pub fix: bool,
    pub remove_orphans: bool,
    /// Orphans are removed only when this is set (`--yes`); otherwise what would be removed is
    /// returned and nothing is.
    pub confirmed: bool,
}

/// What the repairs did, and what `--remove-orphans` without `--yes` would remove.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// Per grant, what was done (sentences starting "could not" for what was not).
    pub fixed: Vec<(String, Vec<String>)>,
    /// Per orphan, what a confirmed `--remove-orphans` would remove.
    pub would_remove: Vec<(String, Vec<String>)>,
}

/// Repairs `entries` (as judged from `inventory`, which [`super::run`] has checked has a
/// registry). A grant that cannot be repaired is reported and the others are still repaired.
pub async fn repair(
    env: Env<'_>,
    inventory: &Inventory,
    entries: &[Entry],
    repairs: Repairs,
) -> Result<Done, Error> {
    let mut out = Done::default();
    for e in entries {
        match e.status {
            Status::Drifted | Status::Missing if repairs.fix => {
                let done = fix(env, inventory, e).await;
                if !done.is_empty() {
                    out.fixed.push((e.grant_id.clone(), done));
                }
            }
            Status::Orphaned if repairs.remove_orphans => {
                let (buckets, keys, roles) = orphan_places(inventory, e);
                if !repairs.confirmed {
                    let mut plan: Vec<String> = buckets
                        .iter()
                        .map(|b| format!("its statements in the bucket policy of {b}"))
                        .chain(
                            keys.iter()
                                .map(|k| format!("its statements in the key policy of {k}")),
                        )
                        .chain(roles.iter().map(|r| {
                            format!(
                                "its inline policy on role {r} (and the role, if vendor-grants \
                                 created it and no grant uses it)"
                            )
                        }))
                        .collect();
                    if e.stack_id.is_some() {
                        plan.push("its registry record".into());
                    }
                    out.would_remove.push((e.grant_id.clone(), plan));
                    continue;
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
                if !done.is_empty() {
                    out.fixed.push((e.grant_id.clone(), done));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Re-derives and writes one drifted or missing grant; what was done and what could not be.
async fn fix(env: Env<'_>, inventory: &Inventory, e: &Entry) -> Vec<String> {
    let record = inventory
        .registry
        .iter()
        .flatten()
        .find(|r| r.grant_id == e.grant_id);
    let Some(record) = record else {
        return Vec::new();
    };
    if e.record != Some(RecordCheck::Verified) {
        let why = e
            .record_why
            .as_deref()
            .unwrap_or("its integrity was not checked");
        return vec![format!(
            "could not repair: its registry record is unverified ({why}), and a repair acts only \
             on a record whose MAC verifies; update the stack to write it again"
        )];
    }
    let mut done = match lifecycle::restore(env, record).await {
        Ok(restored) => {
            let mut done = restored.done;
            done.extend(
                restored
                    .not_restorable
                    .into_iter()
                    .map(|n| format!("could not restore: {n}")),
            );
            done
        }
        Err(err) => vec![format!(
            "could not repair: its recorded properties do not pass Create today: {err}"
        )],
    };
    // Not vendor-grants': never changed, deleted or detached; a person decides.
    done.extend(
        e.left_for_person
            .iter()
            .map(|f| format!("left for a person (not vendor-grants'): {f}")),
    );
    done
}

/// Where an orphan's statements and inline policies are.
fn orphan_places(inventory: &Inventory, e: &Entry) -> (Vec<String>, Vec<String>, Vec<String>) {
    let live = inventory.live();
    let (mut buckets, mut keys, mut roles) = (Vec::new(), Vec::new(), Vec::new());
    if let Some((_, found)) = live.iter().find(|(id, _)| id.as_str() == e.grant_id) {
        for (place, _) in &found.statements {
            match place {
                Place::Bucket(b) if !buckets.contains(b) => buckets.push(b.clone()),
                Place::Key(k) if !keys.contains(k) => keys.push(k.clone()),
                _ => {}
            }
        }
        roles.extend(found.roles.iter().map(|r| r.name.clone()));
    }
    (buckets, keys, roles)
}
