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
//!
//! Whoever can write the lock table can write records, so a record is acted on only when its
//! MAC verifies (a tampered one is reported and never used), and a grant is an orphan only when
//! it is this region's and no live stack holds it: a record's absence alone proves nothing.

mod judge;
pub mod output;
pub mod repair;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::aws::list::StackResource;
use crate::aws::registry::Integrity;
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
    /// Its registry record fails the integrity check (MAC): changed outside vendor-grants. It is
    /// judged from what is live only, and never repaired or removed.
    Tampered,
    /// This region's statements or role with no registry record that no live stack holds, or a
    /// record whose stack is gone (and no other live stack holds the grant).
    Orphaned,
    /// Recorded, but none of its statements is where it should be.
    Missing,
    /// Some statement or role document is missing or means something else.
    Drifted,
    /// The bucket is encrypted with a customer-managed key that has nothing for the grant.
    Incomplete,
    Ok,
    /// No registry to judge against, or no record but a live stack holds it (a grant made
    /// before the lock table), or no record and its home region cannot be told: listed with
    /// what the Sids tell, never removed.
    Unregistered,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::Drifted,
        Status::Missing,
        Status::Orphaned,
        Status::Incomplete,
        Status::Unregistered,
        Status::Tampered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Tampered => "tampered",
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
    /// Whether each registry item (by grant id) is as the function wrote it; a tampered item
    /// has no entry in `registry`.
    pub integrity: BTreeMap<String, Integrity>,
    /// Every resource of the region's live stacks; `Err`: they could not be listed; `None`: not
    /// read (no registry).
    pub stack_resources: Option<Result<Vec<StackResource>, String>>,
    /// Every bucket of the account and its region; `None`: not listed (`--bucket`).
    pub bucket_regions: Option<BTreeMap<String, String>>,
    /// The region audited.
    pub region: String,
}

/// Whether a grant's registry record is as the function wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordCheck {
    /// Its MAC verifies: repairs may act on it.
    Verified,
    /// No MAC, or no registry key to check it with: judged, never repaired.
    Unverified,
    /// Its MAC fails: never acted on.
    Tampered,
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
    /// Whether its registry record is as the function wrote it; none without a record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordCheck>,
    /// Why the record is not verified.
    #[serde(skip)]
    pub record_why: Option<String>,
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

/// Judges every grant id found anywhere (policies, roles, registry), sorted by id. A grant found
/// only on a role (IAM is global) whose bucket is another region's is that region's to judge,
/// and is left out.
pub fn judge(inventory: &Inventory, catalog: &Catalog) -> Vec<Entry> {
    let live = inventory.live();
    let tampered: BTreeMap<GrantId, &str> = inventory
        .integrity
        .iter()
        .filter_map(|(id, check)| match check {
            Integrity::Tampered(why) => Some((GrantId::parse(id)?, why.as_str())),
            _ => None,
        })
        .collect();
    let records: BTreeMap<GrantId, &GrantRecord> = inventory
        .registry
        .iter()
        .flatten()
        .filter_map(|r| Some((GrantId::parse(&r.grant_id)?, r)))
        .filter(|(id, _)| !tampered.contains_key(id))
        .collect();
    let ids: BTreeSet<&GrantId> = live
        .keys()
        .chain(records.keys())
        .chain(tampered.keys())
        .collect();
    let empty = Live::default();
    ids.into_iter()
        .filter_map(|id| {
            let found = live.get(id).unwrap_or(&empty);
            if let Some(why) = tampered.get(id) {
                let mut e = unregistered(id, found, catalog);
                if e.bucket_name.is_none() {
                    // Only to place the entry (and keep it in a `--bucket` audit): nothing
                    // else of a tampered record is used.
                    e.bucket_name = inventory
                        .registry
                        .iter()
                        .flatten()
                        .find(|r| r.grant_id == id.as_str())
                        .map(|r| r.bucket_name.clone());
                }
                e.status = Status::Tampered;
                e.record = Some(RecordCheck::Tampered);
                e.findings.push(format!(
                    "its registry record fails the integrity check ({why}): it was changed \
                     outside vendor-grants, so it is judged from what is live only and never \
                     repaired or removed; compare with the stack and write it again (update the \
                     stack)"
                ));
                return Some(e);
            }
            match (&inventory.registry, records.get(id)) {
                (None, _) => Some(unregistered(id, found, catalog)),
                (Some(_), None) => unrecorded(id, found, inventory, catalog),
                (Some(_), Some(record)) => {
                    let mut e = registered(id, record, found, inventory, &records);
                    match inventory.integrity.get(id.as_str()) {
                        Some(Integrity::Verified) => e.record = Some(RecordCheck::Verified),
                        Some(Integrity::Unverified(why)) => {
                            e.record = Some(RecordCheck::Unverified);
                            e.record_why = Some(why.clone());
                        }
                        _ => {
                            e.record = Some(RecordCheck::Unverified);
                            e.record_why = Some("its integrity was not checked".into());
                        }
                    }
                    Some(e)
                }
            }
        })
        .collect()
}

/// Where a grant with no record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HomeRegion {
    Here,
    Elsewhere,
    Unknown,
}

/// A grant's home is its bucket's region (vendor-grants writes only to buckets and keys of its
/// own region). Its statements in a bucket or key policy read here make it this region's; a
/// grant found only on a role is placed by the bucket its inline policy names.
fn home_of(id: &GrantId, found: &Live<'_>, inv: &Inventory) -> HomeRegion {
    if !found.statements.is_empty() {
        return HomeRegion::Here;
    }
    let name = permissions_policy_name(id);
    let places: Vec<HomeRegion> = found
        .roles
        .iter()
        .filter_map(|r| r.inline.get(&name))
        .map(|d| policy_region(d, inv))
        .collect();
    if places.contains(&HomeRegion::Here) {
        HomeRegion::Here
    } else if places.contains(&HomeRegion::Elsewhere) {
        HomeRegion::Elsewhere
    } else {
        HomeRegion::Unknown
    }
}

/// Where the buckets an inline policy names are: here, only in other regions, or not known.
fn policy_region(doc: &PolicyDocument, inv: &Inventory) -> HomeRegion {
    let Some(regions) = &inv.bucket_regions else {
        return HomeRegion::Unknown;
    };
    let homes: BTreeSet<&str> = doc
        .statements
        .iter()
        .flat_map(|s| s.resources().iter())
        .filter_map(|arn| bucket_of_arn(arn))
        .filter_map(|b| regions.get(b).map(String::as_str))
        .collect();
    if homes.contains(inv.region.as_str()) {
        HomeRegion::Here
    } else if homes.is_empty() {
        HomeRegion::Unknown
    } else {
        HomeRegion::Elsewhere
    }
}

/// The bucket of an S3 bucket or object ARN.
fn bucket_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":s3:::")?.1;
    let bucket = rest.split('/').next()?;
    (!bucket.is_empty() && !bucket.contains(['*', '?'])).then_some(bucket)
}

/// Which live stack holds a grant.
enum Holder<'a> {
    Stack {
        stack_id: &'a str,
        logical_id: &'a str,
    },
    Nobody,
    Unknown(&'a str),
}

/// The live stack resource whose PhysicalResourceId carries the grant id. Any resource type
/// counts: a wrong claim only keeps a grant from being removed, which is the safe side.
fn holder<'a>(id: &GrantId, inv: &'a Inventory) -> Holder<'a> {
    match &inv.stack_resources {
        None => Holder::Unknown("the live stacks were not read"),
        Some(Err(why)) => Holder::Unknown(why),
        Some(Ok(resources)) => resources
            .iter()
            .find(|(_, _, physical)| physical.contains(id.as_str()))
            .map_or(Holder::Nobody, |(stack_id, logical_id, _)| Holder::Stack {
                stack_id,
                logical_id,
            }),
    }
}

/// A grant the registry does not record: an orphan only when it is this region's and no live
/// stack holds it; another region's is left to that region's audit (`None`).
fn unrecorded(id: &GrantId, found: &Live<'_>, inv: &Inventory, catalog: &Catalog) -> Option<Entry> {
    let home = home_of(id, found, inv);
    if matches!(home, HomeRegion::Elsewhere) {
        return None;
    }
    let mut e = unregistered(id, found, catalog);
    match (holder(id, inv), home) {
        (
            Holder::Stack {
                stack_id,
                logical_id,
            },
            _,
        ) => {
            e.stack_id = Some(stack_id.to_string());
            e.logical_resource_id = Some(logical_id.to_string());
            e.findings.push(format!(
                "no registry record, but resource {logical_id} of the live stack {stack_id} \
                 holds it (made before the lock table was configured?): it is not an orphan, \
                 and --remove-orphans leaves it; an update of the stack records it"
            ));
        }
        (Holder::Unknown(why), _) => e.findings.push(format!(
            "no registry record, and whether a live stack holds it could not be told ({why}): \
             not judged as orphaned"
        )),
        (Holder::Nobody, HomeRegion::Here) => {
            e.status = Status::Orphaned;
            e.findings.push(
                "vendor-grants statements or a role with no registry record, and no live stack \
                 holds it"
                    .into(),
            );
        }
        (Holder::Nobody, _) => e.findings.push(
            "found only on a role (IAM is global) and its bucket is not one of this region: \
             it may be vendor-grants' in another region, whose audit judges it; not judged as \
             orphaned here"
                .into(),
        ),
    }
    Some(e)
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
            // A role-mode grant's bucket is the one its inline policy names.
            if bucket.is_none() {
                bucket = doc
                    .statements
                    .iter()
                    .flat_map(|s| s.resources().iter())
                    .find_map(|r| bucket_of_arn(r))
                    .map(str::to_string);
            }
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
        record: None,
        record_why: None,
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
        // IAM is global: a vendor-grants inline policy of another region's grant on a shared
        // role (Scale's fixed name) is that region's to judge, not a widening here.
        let elsewhere: BTreeSet<String> = live
            .inline
            .iter()
            .filter(|(_, doc)| policy_region(doc, inv) == HomeRegion::Elsewhere)
            .map(|(name, _)| name.clone())
            .collect();
        left_for_person.extend(judge::role_widening(live, &sharing, &elsewhere));
    }
    findings.extend(left_for_person.iter().cloned());
    let mut stack_gone = inv.stacks.get(&record.stack_id) == Some(&StackState::Gone);
    if stack_gone {
        // The record's StackId is only as good as the record: a live stack that still holds the
        // grant wins, and not knowing is no proof it is gone.
        match holder(id, inv) {
            Holder::Nobody => {}
            Holder::Stack { stack_id, .. } => {
                stack_gone = false;
                findings.push(format!(
                    "the record names the stack {}, which no longer exists, but the live stack \
                     {stack_id} holds the grant: not an orphan",
                    record.stack_id
                ));
            }
            Holder::Unknown(why) => {
                stack_gone = false;
                findings.push(format!(
                    "the owning stack {} no longer exists, but whether another live stack holds \
                     the grant could not be told ({why}): not judged as orphaned",
                    record.stack_id
                ));
            }
        }
    }
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
        record: None,
        record_why: None,
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
    /// What `--remove-orphans` without `--yes` would remove, per orphan; nothing was.
    pub would_remove: Vec<(String, Vec<String>)>,
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
            would_remove: Vec::new(),
            unreadable: inventory.unreadable,
        });
    }
    let done = repair::repair(env, &inventory, &entries, repairs).await?;
    if done.fixed.is_empty() {
        return Ok(Outcome {
            entries,
            fixed: done.fixed,
            would_remove: done.would_remove,
            unreadable: inventory.unreadable,
        });
    }
    let inventory = scan::scan(env.clients, scope).await?;
    Ok(Outcome {
        entries: in_scope(judge(&inventory, env.catalog), scope),
        fixed: done.fixed,
        would_remove: done.would_remove,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GRANT: &str = "0123456789abcdef";

    /// An audit of `region` that found only a role holding the grant's inline policy on
    /// `bucket`, with no record of it.
    fn role_only(
        region: &str,
        bucket_region: Option<&str>,
        stacks: Result<&[&str], &str>,
    ) -> Inventory {
        let doc = PolicyDocument::from_value(
            json!({"Version": "2012-10-17",
            "Statement": [{"Sid": format!("VG{GRANT}BucketObjects"), "Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]}),
            "role policy",
        )
        .unwrap();
        let role = Role {
            name: "VendorGrant-x".into(),
            managed: true,
            owner: Some(GRANT.into()),
            inline: [(format!("VendorGrant-{GRANT}"), doc)]
                .into_iter()
                .collect(),
            ..Role::default()
        };
        Inventory {
            roles: vec![role],
            registry: Some(Vec::new()),
            stack_resources: Some(
                stacks
                    .map(|pids| {
                        pids.iter()
                            .map(|p| ("stack".to_string(), "Grant".to_string(), p.to_string()))
                            .collect()
                    })
                    .map_err(str::to_string),
            ),
            bucket_regions: Some(
                bucket_region
                    .map(|r| ("data".to_string(), r.to_string()))
                    .into_iter()
                    .collect(),
            ),
            region: region.into(),
            ..Inventory::default()
        }
    }

    fn status(inv: &Inventory) -> Option<Status> {
        let catalog = Catalog::builtin().unwrap();
        let entries = judge(inv, catalog);
        entries
            .iter()
            .find(|e| e.grant_id == GRANT)
            .map(|e| e.status)
    }

    #[test]
    fn an_inline_policy_is_placed_by_the_buckets_it_names() {
        let inv = role_only("eu-west-1", Some("us-east-1"), Ok(&[]));
        let doc = &inv.roles[0].inline[&format!("VendorGrant-{GRANT}")];
        assert_eq!(policy_region(doc, &inv), HomeRegion::Elsewhere);
        let here = role_only("us-east-1", Some("us-east-1"), Ok(&[]));
        assert_eq!(policy_region(doc, &here), HomeRegion::Here);
        let gone = role_only("us-east-1", None, Ok(&[]));
        assert_eq!(policy_region(doc, &gone), HomeRegion::Unknown);
    }

    #[test]
    fn a_role_grant_is_judged_only_in_its_buckets_region() {
        // us-east-1's grant, seen from eu-west-1: not judged at all.
        assert_eq!(
            status(&role_only("eu-west-1", Some("us-east-1"), Ok(&[]))),
            None
        );
        // From its own region, with no record and no stack: an orphan.
        assert_eq!(
            status(&role_only("us-east-1", Some("us-east-1"), Ok(&[]))),
            Some(Status::Orphaned)
        );
        // Its bucket is gone: it cannot be placed, so it is never an orphan.
        assert_eq!(
            status(&role_only("us-east-1", None, Ok(&[]))),
            Some(Status::Unregistered)
        );
    }

    #[test]
    fn a_grant_a_live_stack_holds_or_might_hold_is_never_an_orphan() {
        let physical = format!("vendor-grants:{GRANT}:data");
        assert_eq!(
            status(&role_only("us-east-1", Some("us-east-1"), Ok(&[&physical]))),
            Some(Status::Unregistered)
        );
        assert_eq!(
            status(&role_only(
                "us-east-1",
                Some("us-east-1"),
                Err("AccessDenied")
            )),
            Some(Status::Unregistered)
        );
    }

    #[test]
    fn a_tampered_record_is_reported_and_not_used() {
        let mut inv = role_only("us-east-1", Some("us-east-1"), Ok(&[]));
        inv.integrity.insert(
            GRANT.into(),
            Integrity::Tampered("its MAC does not match".into()),
        );
        let catalog = Catalog::builtin().unwrap();
        let entries = judge(&inv, catalog);
        let e = entries.iter().find(|e| e.grant_id == GRANT).unwrap();
        assert_eq!(e.status, Status::Tampered);
        assert_eq!(e.record, Some(RecordCheck::Tampered));
        assert!(
            e.findings[0].contains("integrity check"),
            "{:?}",
            e.findings
        );
    }

    #[test]
    fn bucket_arns_name_their_bucket() {
        assert_eq!(bucket_of_arn("arn:aws:s3:::data"), Some("data"));
        assert_eq!(bucket_of_arn("arn:aws-cn:s3:::data/p/*"), Some("data"));
        assert_eq!(bucket_of_arn("arn:aws:s3:::*"), None);
        assert_eq!(bucket_of_arn("arn:aws:kms:us-east-1:1:key/k"), None);
    }
}
