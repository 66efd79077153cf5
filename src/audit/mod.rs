//! "Which vendor can reach which data, who set it up, and is it still as it was set up": the
//! audit reads every bucket policy, customer-managed key policy and vendor-grants role of the
//! account and region ([`scan`]), and judges each grant id found anywhere against the registry
//! ([`judge()`], pure): what the grant wrote, and what else gives its vendor more (the rest of
//! its role, foreign statements for its principal; `judge.rs`). [`repair`] puts drifted and
//! missing grants back and removes orphans, leaving what is not vendor-grants'; [`output`]
//! renders the table, the JSON, the metrics and the `--emit` formats.
//!
//! A statement is a grant's only by the exact Sid format (`VG<grant-id><Purpose>`) and shape
//! ([`crate::policy::owner_of_statement`]); anything else is foreign and is never listed,
//! changed or removed.

mod judge;
pub mod output;
pub mod repair;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::grant::GrantRecord;
use crate::grant::plan::{grant_of_policy_name, permissions_policy_name};
use crate::policy::canonical::canonical_aws_principal;
use crate::policy::{
    GrantId, PolicyDocument, Statement, documents_equivalent, owner_of_statement,
    statements_equivalent,
};

/// Errors of the audit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Aws(#[from] crate::aws::Error),

    #[error("{0}")]
    Policy(#[from] crate::policy::Error),

    #[error("the registry record of grant {grant} cannot be read: {why}")]
    BadRecord { grant: String, why: String },

    #[error(
        "{what} needs the grant registry: give --lock-table or set VENDOR_GRANTS_LOCK_TABLE \
         (nothing is judged or changed without a record of what was set up)"
    )]
    NoRegistry { what: &'static str },

    #[error("repairing grant {grant}: {why}")]
    Repair { grant: String, why: String },

    #[error("a read of the audit stopped: {0}")]
    ReadTask(String),

    #[error("the audit did not finish before the deadline; {done} of {total} reads were done")]
    Deadline { done: usize, total: usize },
}

/// A grant's status, the first that applies in this order winning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Statements or a role with no registry record, or a record whose stack is gone.
    Orphaned,
    /// Recorded, but none of its statements is where it should be.
    Missing,
    /// Some statement or role document is missing or means something else.
    Drifted,
    /// The bucket is encrypted with a customer-managed key that has nothing for the grant.
    Incomplete,
    Ok,
    /// No registry to judge against: listed with what the Sids tell.
    Unregistered,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::Drifted,
        Status::Missing,
        Status::Orphaned,
        Status::Incomplete,
        Status::Unregistered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Orphaned => "orphaned",
            Status::Missing => "missing",
            Status::Drifted => "drifted",
            Status::Incomplete => "incomplete",
            Status::Ok => "ok",
            Status::Unregistered => "unregistered",
        }
    }
}

/// A bucket as read: its policy and the customer-managed key its default encryption uses.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub name: String,
    pub policy: Option<PolicyDocument>,
    /// The resolved ARN of the default-encryption key, when it is customer-managed.
    pub encryption_key: Option<String>,
}

/// A customer-managed key as read.
#[derive(Debug, Clone)]
pub struct Key {
    pub arn: String,
    pub policy: Option<PolicyDocument>,
}

/// A role at vendor-grants' path, as read.
#[derive(Debug, Clone, Default)]
pub struct Role {
    pub name: String,
    pub arn: String,
    /// Created by vendor-grants (`vendor-grants:managed = true`).
    pub managed: bool,
    /// The grant that created it (`vendor-grants:owner`).
    pub owner: Option<String>,
    pub trust_policy: Value,
    /// The inline policies named like a grant's (`VendorGrant-<grant id>`), by name.
    pub inline: BTreeMap<String, PolicyDocument>,
    /// The names of its other inline policies (not vendor-grants').
    pub other_inline: Vec<String>,
    /// The ARNs of the managed policies attached to it (vendor-grants attaches none).
    pub attached: Vec<String>,
}

/// Whether an owning stack still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackState {
    Exists,
    Gone,
    /// DescribeStacks could not tell (access denied, throttled): not judged as gone.
    Unknown,
}

/// Everything the audit read.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub buckets: Vec<Bucket>,
    pub keys: Vec<Key>,
    pub roles: Vec<Role>,
    /// `None`: there is no registry (no lock table).
    pub registry: Option<Vec<GrantRecord>>,
    pub stacks: BTreeMap<String, StackState>,
    /// What could not be read (`bucket:NAME`, `key:ARN`, `role:NAME`), and why.
    pub unreadable: BTreeMap<String, String>,
}

/// One grant as the audit found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub grant_id: String,
    pub status: Status,
    pub vendor: Option<String>,
    pub bucket_name: Option<String>,
    pub kms_key_arn: Option<String>,
    pub role_name: Option<String>,
    pub principals: Vec<String>,
    pub prefix: Option<String>,
    pub actions: Vec<String>,
    pub stack_id: Option<String>,
    pub logical_resource_id: Option<String>,
    pub statement_ids: Vec<String>,
    pub findings: Vec<String>,
    /// The findings about access that is not vendor-grants' (foreign statements for the grant's
    /// principal, other policies on its role): also in `findings`; `--fix` leaves them.
    #[serde(skip)]
    pub left_for_person: Vec<String>,
    /// A role-mode grant: the vendor reaches the data only through the role.
    #[serde(skip)]
    pub role_mode: bool,
    /// The live ARN of the grant's role (its path is the role's own).
    #[serde(skip)]
    pub role_arn: Option<String>,
}

/// Where a grant's statement was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Bucket(String),
    Key(String),
}

impl Place {
    /// The key of a place in [`Inventory::unreadable`].
    fn read_key(&self) -> String {
        match self {
            Place::Bucket(b) => format!("bucket:{b}"),
            Place::Key(k) => format!("key:{k}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Place::Bucket(b) => format!("the bucket policy of {b}"),
            Place::Key(k) => format!("the key policy of {k}"),
        }
    }
}

/// What of one grant is live, gathered from every policy and role.
#[derive(Debug, Default)]
struct Live<'a> {
    statements: Vec<(Place, &'a Statement)>,
    /// Roles holding the grant's inline policy, or created by it.
    roles: Vec<&'a Role>,
}

impl Inventory {
    fn live(&self) -> BTreeMap<GrantId, Live<'_>> {
        let mut live: BTreeMap<GrantId, Live<'_>> = BTreeMap::new();
        let policies = self
            .buckets
            .iter()
            .map(|b| (Place::Bucket(b.name.clone()), b.policy.as_ref()))
            .chain(
                self.keys
                    .iter()
                    .map(|k| (Place::Key(k.arn.clone()), k.policy.as_ref())),
            );
        for (place, policy) in policies {
            for s in policy.iter().flat_map(|p| &p.statements) {
                if let Some(id) = owner_of_statement(s) {
                    live.entry(id)
                        .or_default()
                        .statements
                        .push((place.clone(), s));
                }
            }
        }
        for role in &self.roles {
            let mut ids: BTreeSet<GrantId> = role
                .inline
                .keys()
                .filter_map(|n| grant_of_policy_name(n))
                .collect();
            ids.extend(role.owner.as_deref().and_then(GrantId::parse));
            for id in ids {
                live.entry(id).or_default().roles.push(role);
            }
        }
        live
    }

    fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.name == name)
    }

    fn key(&self, arn: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.arn == arn)
    }

    fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
}

/// Judges every grant id found anywhere (policies, roles, registry), sorted by id.
pub fn judge(inventory: &Inventory, catalog: &Catalog) -> Vec<Entry> {
    let live = inventory.live();
    let records: BTreeMap<GrantId, &GrantRecord> = inventory
        .registry
        .iter()
        .flatten()
        .filter_map(|r| Some((GrantId::parse(&r.grant_id)?, r)))
        .collect();
    let ids: BTreeSet<&GrantId> = live.keys().chain(records.keys()).collect();
    let empty = Live::default();
    ids.into_iter()
        .map(|id| {
            let found = live.get(id).unwrap_or(&empty);
            match (&inventory.registry, records.get(id)) {
                (None, _) => unregistered(id, found, catalog),
                (Some(_), None) => {
                    let mut e = unregistered(id, found, catalog);
                    e.status = Status::Orphaned;
                    e.findings
                        .push("vendor-grants statements or a role with no registry record".into());
                    e
                }
                (Some(_), Some(record)) => registered(id, record, found, inventory, &records),
            }
        })
        .collect()
}

/// An entry from what the live statements and roles tell, with no record.
fn unregistered(id: &GrantId, found: &Live<'_>, catalog: &Catalog) -> Entry {
    let mut principals = BTreeSet::new();
    let mut actions = BTreeSet::new();
    let (mut bucket, mut key) = (None, None);
    for (place, s) in &found.statements {
        match place {
            Place::Bucket(b) => bucket = Some(b.clone()),
            Place::Key(k) => key = Some(k.clone()),
        }
        principals.extend(principals_of(s));
        actions.extend(s.actions().iter().cloned());
    }
    let role = found.roles.first();
    for role in &found.roles {
        if let Some(doc) = role.inline.get(&permissions_policy_name(id)) {
            actions.extend(doc.statements.iter().flat_map(|s| s.actions().to_vec()));
        }
        for s in PolicyDocument::from_value(role.trust_policy.clone(), "trust policy")
            .iter()
            .flat_map(|d| d.statements.clone())
        {
            principals.extend(principals_of(&s));
        }
    }
    let principals: Vec<String> = principals.into_iter().collect();
    Entry {
        grant_id: id.to_string(),
        status: Status::Unregistered,
        vendor: vendor_by_principals(catalog, &principals),
        bucket_name: bucket,
        kms_key_arn: key,
        role_name: role.map(|r| r.name.clone()),
        principals,
        prefix: None,
        actions: actions.into_iter().collect(),
        stack_id: None,
        logical_resource_id: None,
        statement_ids: found
            .statements
            .iter()
            .filter_map(|(_, s)| s.sid.clone())
            .collect(),
        findings: Vec::new(),
        left_for_person: Vec::new(),
        role_mode: role.is_some(),
        role_arn: role.map(|r| r.arn.clone()),
    }
}

fn principals_of(s: &Statement) -> Vec<String> {
    match &s.principal {
        Some(crate::policy::Principal::Map(m)) => {
            m.values().flat_map(|v| v.values().to_vec()).collect()
        }
        _ => Vec::new(),
    }
}

/// The catalog vendor whose fixed principals are among `principals`.
fn vendor_by_principals(catalog: &Catalog, principals: &[String]) -> Option<String> {
    let found: BTreeSet<String> = principals
        .iter()
        .map(|p| canonical_aws_principal(p))
        .collect();
    catalog
        .vendors
        .iter()
        .find(|v| {
            !v.principals.is_empty()
                && v.principals
                    .iter()
                    .any(|p| found.contains(&canonical_aws_principal(p)))
        })
        .map(|v| v.id.clone())
}

/// A recorded grant against what is live.
fn registered(
    id: &GrantId,
    record: &GrantRecord,
    found: &Live<'_>,
    inv: &Inventory,
    records: &BTreeMap<GrantId, &GrantRecord>,
) -> Entry {
    let mut findings = Vec::new();
    let mut present = 0usize;
    let mut expected = 0usize;
    // Some place could not be read: the grant is reported drifted (not verified), never missing.
    let mut unjudged = false;

    let places = [
        (
            Place::Bucket(record.bucket_name.clone()),
            &record.bucket_statements,
        ),
        (
            Place::Key(record.kms_key_arn.clone().unwrap_or_default()),
            &record.key_statements,
        ),
    ];
    let mut recorded_sids: BTreeSet<(Place, String)> = BTreeSet::new();
    for (place, statements) in &places {
        if let (Some(why), false) = (inv.unreadable.get(&place.read_key()), statements.is_empty()) {
            findings.push(format!(
                "{} could not be read, so the grant's statements there are not judged: {why}",
                place.describe()
            ));
            unjudged = true;
            continue;
        }
        for want in statements.iter() {
            let Some(sid) = want.sid.as_deref() else {
                continue;
            };
            expected += 1;
            recorded_sids.insert((place.clone(), sid.to_string()));
            let live = found
                .statements
                .iter()
                .find(|(p, s)| p == place && s.sid.as_deref() == Some(sid));
            match live {
                None => findings.push(format!(
                    "statement {sid} is missing from {}",
                    place.describe()
                )),
                Some((_, got)) => {
                    present += 1;
                    if !statements_equivalent(want, got) {
                        findings.push(format!(
                            "statement {sid} in {} {}",
                            place.describe(),
                            difference(want, got)
                        ));
                    }
                }
            }
        }
    }
    for (place, s) in &found.statements {
        let sid = s.sid.clone().unwrap_or_default();
        if !recorded_sids.contains(&(place.clone(), sid.clone())) {
            findings.push(format!(
                "statement {sid} in {} is not one the grant wrote",
                place.describe()
            ));
        }
    }
    let role_unreadable = record
        .role
        .as_ref()
        .and_then(|r| inv.unreadable.get(&format!("role:{}", r.role_name)));
    if let (Some(role), Some(why)) = (&record.role, role_unreadable) {
        findings.push(format!(
            "role {} could not be read, so it is not judged: {why}",
            role.role_name
        ));
        unjudged = true;
    } else if let Some(role) = &record.role {
        expected += 1;
        match inv.role(&role.role_name) {
            None => findings.push(format!("role {} is missing", role.role_name)),
            Some(live) => {
                match live.inline.get(&role.permissions_policy_name) {
                    None => findings.push(format!(
                        "inline policy {} is missing from role {}",
                        role.permissions_policy_name, role.role_name
                    )),
                    Some(doc) => {
                        present += 1;
                        let want = PolicyDocument::from_value(
                            role.permissions_policy.clone(),
                            "role policy",
                        );
                        if !want.is_ok_and(|w| documents_equivalent(&w, doc)) {
                            findings.push(format!(
                                "inline policy {} of role {} differs from what was written",
                                role.permissions_policy_name, role.role_name
                            ));
                        }
                    }
                }
                findings.extend(role.trust_differences(&live.trust_policy));
            }
        }
    }
    // Access beyond the grant that is not vendor-grants': foreign statements for its principal
    // where its statements are, and whatever else gives its role permissions.
    let mut left_for_person = Vec::new();
    for (place, statements) in &places {
        if statements.is_empty() || inv.unreadable.contains_key(&place.read_key()) {
            continue;
        }
        let policy = match place {
            Place::Bucket(b) => inv.bucket(b).and_then(|b| b.policy.as_ref()),
            Place::Key(k) => inv.key(k).and_then(|k| k.policy.as_ref()),
        };
        left_for_person.extend(judge::wider_statements(
            place,
            policy,
            statements,
            record.role.is_none(),
        ));
    }
    if let Some(live) = record.role.as_ref().and_then(|r| inv.role(&r.role_name)) {
        let sharing: Vec<&GrantRecord> = records
            .values()
            .copied()
            .filter(|r| r.role.as_ref().is_some_and(|rr| rr.role_name == live.name))
            .collect();
        left_for_person.extend(judge::role_widening(live, &sharing));
    }
    findings.extend(left_for_person.iter().cloned());
    let stack_gone = inv.stacks.get(&record.stack_id) == Some(&StackState::Gone);
    let incomplete = incomplete_finding(record, found, inv);
    let status = if stack_gone {
        findings.insert(
            0,
            format!("the owning stack {} no longer exists", record.stack_id),
        );
        Status::Orphaned
    } else if expected > 0 && present == 0 && !unjudged {
        findings.retain(|f| !f.contains("is not one the grant wrote"));
        findings.insert(
            0,
            "none of the grant's statements is where it should be".into(),
        );
        Status::Missing
    } else if !findings.is_empty() {
        Status::Drifted
    } else if let Some(f) = incomplete {
        findings.push(f);
        Status::Incomplete
    } else {
        Status::Ok
    };
    let mut actions: BTreeSet<String> = record
        .bucket_statements
        .iter()
        .chain(&record.key_statements)
        .flat_map(|s| s.actions().to_vec())
        .collect();
    let role_doc = record
        .role
        .as_ref()
        .and_then(|r| PolicyDocument::from_value(r.permissions_policy.clone(), "role policy").ok());
    if let Some(doc) = role_doc {
        actions.extend(doc.statements.iter().flat_map(|s| s.actions().to_vec()));
    }
    Entry {
        grant_id: id.to_string(),
        status,
        vendor: Some(record.vendor.clone()),
        bucket_name: Some(record.bucket_name.clone()),
        kms_key_arn: record.kms_key_arn.clone(),
        role_name: record.role_name.clone(),
        principals: record.principals.clone(),
        prefix: record.prefix.clone(),
        actions: actions.into_iter().collect(),
        stack_id: Some(record.stack_id.clone()),
        logical_resource_id: Some(record.logical_resource_id.clone()),
        statement_ids: record.statement_ids.clone(),
        findings,
        left_for_person,
        role_mode: record.role.is_some() || record.mode == "role",
        role_arn: record
            .role
            .as_ref()
            .and_then(|r| inv.role(&r.role_name))
            .map(|r| r.arn.clone()),
    }
}

/// A bucket-policy grant on a bucket encrypted with a customer-managed key that holds nothing
/// for it: the vendor can list but not read.
fn incomplete_finding(record: &GrantRecord, found: &Live<'_>, inv: &Inventory) -> Option<String> {
    if record.bucket_statements.is_empty() {
        return None;
    }
    let key = inv.bucket(&record.bucket_name)?.encryption_key.as_deref()?;
    let in_key = found
        .statements
        .iter()
        .any(|(p, _)| matches!(p, Place::Key(k) if k == key));
    if in_key || inv.key(key).is_none() {
        return None;
    }
    Some(format!(
        "bucket {} is encrypted by default with {key}, whose key policy has nothing for this \
         grant: the vendor can list objects but not read them (set KmsKeyArn)",
        record.bucket_name
    ))
}

/// How `got` differs from `want`, in words.
fn difference(want: &Statement, got: &Statement) -> String {
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
    let mut parts = Vec::new();
    if want.effect != got.effect {
        parts.push(format!("has Effect {} (was {})", got.effect, want.effect));
    }
    let (wa, ga) = (set(want.actions()), set(got.actions()));
    if wa != ga {
        let added: Vec<_> = ga.difference(&wa).cloned().collect();
        let removed: Vec<_> = wa.difference(&ga).cloned().collect();
        let how = match (added.is_empty(), removed.is_empty()) {
            (false, true) => format!("is widened: it also allows {}", added.join(", ")),
            (true, false) => format!("is narrowed: it no longer allows {}", removed.join(", ")),
            _ => format!(
                "allows other actions: {} instead of {}",
                added.join(", "),
                removed.join(", ")
            ),
        };
        parts.push(how);
    }
    let (wp, gp) = (set(&principals_of(want)), set(&principals_of(got)));
    if wp != gp || want.principal.is_some() != got.principal.is_some() {
        parts.push(format!(
            "names other principals: {} (was {})",
            gp.into_iter().collect::<Vec<_>>().join(", "),
            wp.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let (wr, gr) = (set(want.resources()), set(got.resources()));
    if wr != gr {
        parts.push(format!(
            "covers other resources: {}",
            gr.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let cond = |s: &Statement| serde_json::to_value(&s.condition).unwrap_or_default();
    if cond(want) != cond(got) {
        parts.push("has other conditions".into());
    }
    if parts.is_empty() {
        "differs from what was written".into()
    } else {
        parts.join("; ")
    }
}

/// Counts per status, every status present (zero included).
pub fn summary(entries: &[Entry]) -> BTreeMap<&'static str, usize> {
    let mut out: BTreeMap<&'static str, usize> =
        Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for e in entries {
        *out.entry(e.status.as_str()).or_default() += 1;
    }
    out
}

/// Exit code: 0 when every grant is ok (or there are none) and everything could be read, 1
/// otherwise.
pub fn exit_code(outcome: &Outcome) -> u8 {
    u8::from(
        !outcome.unreadable.is_empty() || outcome.entries.iter().any(|e| e.status != Status::Ok),
    )
}

/// What one audit found, and what it fixed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub entries: Vec<Entry>,
    pub fixed: Vec<(String, Vec<String>)>,
    /// What could not be read (`bucket:NAME`, `key:ARN`, `role:NAME`), and why.
    pub unreadable: BTreeMap<String, String>,
}

/// Reads, judges, and (with `repairs`) repairs then reads and judges again, so the outcome
/// describes the state after fixing.
pub async fn run(
    env: crate::lifecycle::Env<'_>,
    scope: &scan::Scope,
    repairs: repair::Repairs,
) -> Result<Outcome, Error> {
    if scope.registry.is_none() && (repairs.fix || repairs.remove_orphans) {
        return Err(Error::NoRegistry {
            what: if repairs.fix {
                "--fix"
            } else {
                "--remove-orphans"
            },
        });
    }
    let inventory = scan::scan(env.clients, scope).await?;
    let entries = in_scope(judge(&inventory, env.catalog), scope);
    if !repairs.fix && !repairs.remove_orphans {
        return Ok(Outcome {
            entries,
            fixed: Vec::new(),
            unreadable: inventory.unreadable,
        });
    }
    let fixed = repair::repair(env, &inventory, &entries, repairs).await?;
    let inventory = scan::scan(env.clients, scope).await?;
    Ok(Outcome {
        entries: in_scope(judge(&inventory, env.catalog), scope),
        fixed,
        unreadable: inventory.unreadable,
    })
}

/// With `--bucket`, only the grants on those buckets: the others' buckets were not read, so
/// they could not be judged (nor, by `--fix` or `--remove-orphans`, changed).
fn in_scope(mut entries: Vec<Entry>, scope: &scan::Scope) -> Vec<Entry> {
    if !scope.buckets.is_empty() {
        entries.retain(|e| {
            e.bucket_name
                .as_ref()
                .is_some_and(|b| scope.buckets.contains(b))
        });
    }
    entries
}

/// The scheduled event `{"vendor-grants": "audit", "fix": false}`, if `payload` is one:
/// `Some(fix)`.
pub fn scheduled_request(payload: &str) -> Option<bool> {
    let value: Value = serde_json::from_str(payload).ok()?;
    (value.get("vendor-grants")?.as_str()? == "audit")
        .then(|| value.get("fix").and_then(Value::as_bool).unwrap_or(false))
}
