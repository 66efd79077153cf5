//! Which statements a grant owns, and the merge that replaces exactly those. A grant owns the
//! statements whose Sid is `VG<grant-id><Purpose>`; everything else in a policy is foreign and is
//! kept exactly as it was, in its place.

use std::collections::BTreeSet;
use std::fmt;

use super::Error;
use super::canonical::{canonical_aws_principal, statements_equivalent};
use super::document::{PolicyDocument, Principal, Statement};

/// The prefix every owned Sid starts with.
pub const SID_PREFIX: &str = "VG";

/// A grant's id, in its one format: [`GrantId::LEN`] lowercase hex digits, or for a Create
/// refused before it wrote anything, `x` and two digits fewer (see `grant::id::fallback_grant_id`). Lowercase, so the `Purpose` that
/// follows it in a Sid (which starts with an uppercase letter) can never be read as part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(String);

impl GrantId {
    /// The length of every grant id.
    pub const LEN: usize = 16;

    /// Accepts exactly the grant-id format and nothing else: an id that merely looks like ours
    /// (`corp`, a longer or shorter run of letters) owns no statement.
    pub fn parse(value: &str) -> Option<Self> {
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let ok = match value.strip_prefix('x') {
            Some(rest) => rest.len() == Self::LEN - 2 && hex(rest),
            None => value.len() == Self::LEN && hex(value),
        };
        ok.then(|| GrantId(value.to_string()))
    }

    /// The lowercase hex of `bytes`. Only [`GrantId::LEN`]/2 bytes make an id that
    /// [`GrantId::parse`] accepts; callers mint ids from a digest of that length.
    pub fn from_hex(bytes: &[u8]) -> Self {
        GrantId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Sid of this grant's statement for `purpose`.
    pub fn sid(&self, purpose: Purpose) -> String {
        format!("{SID_PREFIX}{}{}", self.0, purpose.as_str())
    }

    /// Whether `sid` is exactly one of this grant's Sids: `VG<id><Purpose>` for one of the fixed
    /// purposes. Never by prefix: `VG<id>Anything` is someone else's.
    pub fn owns_sid(&self, sid: &str) -> bool {
        sid.strip_prefix(SID_PREFIX)
            .and_then(|r| r.strip_prefix(self.0.as_str()))
            .is_some_and(|purpose| Purpose::ALL.iter().any(|p| p.as_str() == purpose))
    }
}

/// The grant and purpose a Sid names, when it is exactly `VG<grant-id><Purpose>`.
pub fn grant_of_sid(sid: &str) -> Option<(GrantId, Purpose)> {
    let rest = sid.strip_prefix(SID_PREFIX)?;
    Purpose::ALL.iter().find_map(|p| {
        let id = GrantId::parse(rest.strip_suffix(p.as_str())?)?;
        Some((id, *p))
    })
}

/// The grant that owns `statement` (see [`is_owned`]), if any.
pub fn owner_of_statement(statement: &Statement) -> Option<GrantId> {
    let (id, _) = grant_of_sid(statement.sid.as_deref()?)?;
    is_owned(statement, &id).then_some(id)
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an owned statement is for; the last part of its Sid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// `s3:ListBucket` on the bucket.
    BucketList,
    /// Object actions on the bucket's objects.
    BucketObjects,
    /// Object writes that carry the vendor's condition (vcc's ACL condition).
    BucketUpload,
    /// KMS actions on the key, for the vendor principal or in the role's permissions.
    KeyUse,
    /// KMS actions in the key policy for the grant's role.
    RoleKeyUse,
}

impl Purpose {
    /// Every purpose vendor-grants writes: the only Sid endings a grant owns.
    pub const ALL: [Purpose; 5] = [
        Purpose::BucketList,
        Purpose::BucketObjects,
        Purpose::BucketUpload,
        Purpose::KeyUse,
        Purpose::RoleKeyUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::BucketList => "BucketList",
            Purpose::BucketObjects => "BucketObjects",
            Purpose::BucketUpload => "BucketUpload",
            Purpose::KeyUse => "KeyUse",
            Purpose::RoleKeyUse => "RoleKeyUse",
        }
    }
}

/// Whether `statement` is one this grant wrote: its Sid is the grant's, and it has the shape
/// vendor-grants writes (an `Allow` with no `Not*` element and no wildcard principal). A
/// statement that borrowed our Sid but has another shape is someone else's and is never touched.
pub fn is_owned(statement: &Statement, grant: &GrantId) -> bool {
    let Some(sid) = statement.sid.as_deref() else {
        return false;
    };
    grant.owns_sid(sid)
        && statement.effect == "Allow"
        && statement.not_principal.is_none()
        && statement.not_action.is_none()
        && statement.not_resource.is_none()
        && !matches!(statement.principal, Some(Principal::Wildcard(_)))
        && !statement
            .principal
            .as_ref()
            .is_some_and(|p| p.aws_values().iter().any(|v| v == "*"))
}

/// What a grant can have written: the test that tells its own statements from foreign ones that
/// carry one of its Sids. Used by Create, Update, Delete and the audit's repairs alike.
///
/// Where the line is drawn: a statement is the grant's when
/// - its Sid is exactly one of the grant's (`VG<grant-id><Purpose>`, never by prefix or case),
/// - it is an `Allow` with no `NotPrincipal`, `NotAction` or `NotResource`,
/// - its `Principal` is an `AWS` principal set that is, by meaning, exactly one the grant wrote
///   under that purpose (the vendor's principals, or the grant's role in `RoleKeyUse`), and
/// - its resources stay where the purpose writes: the grant's bucket and its objects for the
///   `Bucket*` purposes, `*` or a key ARN in a key policy.
///
/// Actions and conditions do not decide it. A statement of the grant's principal under the
/// grant's Sid that someone widened (more actions) or narrowed (a condition) still gives the
/// vendor the grant's access, and ending that access is what Delete is for, so Delete removes it
/// (Create refuses it, as it refuses anything under its Sids that it would not write itself). A
/// statement naming anyone else, denying, or reaching past the bucket or key is someone else's:
/// Create and Update refuse it, Delete leaves it exactly as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    grant: GrantId,
    /// `arn:PARTITION:s3:::BUCKET`, when the grant has a bucket.
    bucket_arn: Option<String>,
    /// Each principal set (by meaning) the grant wrote or writes: the vendor's (in every
    /// purpose but `RoleKeyUse`) or the grant's role's (`RoleKeyUse`).
    principals: Vec<(Grantee, BTreeSet<String>)>,
    /// An orphan's claim: any `AWS` principal set (there is no record of which it wrote).
    any_principal: bool,
}

impl Claim {
    /// A claim on nothing yet: add what the grant wrote with [`Claim::with_statements`].
    pub fn new(grant: &GrantId, bucket_arn: Option<String>) -> Claim {
        Claim {
            grant: grant.clone(),
            bucket_arn,
            principals: Vec::new(),
            any_principal: false,
        }
    }

    /// The claim of a grant nothing records (an orphan the audit removes): every statement
    /// under its Sids that has the shape vendor-grants writes, whatever `AWS` principals it
    /// names, within the bucket (when given) or key.
    pub fn orphan(grant: &GrantId, bucket_arn: Option<String>) -> Claim {
        Claim {
            any_principal: true,
            ..Claim::new(grant, bucket_arn)
        }
    }

    pub fn grant(&self) -> &GrantId {
        &self.grant
    }

    /// Also claims the principal sets of `statements`, the grant's statements as it writes or
    /// wrote them (from the plan, the registry's record, or the properties of an earlier
    /// version); statements under no Sid of the grant's add nothing.
    pub fn with_statements<'a>(
        mut self,
        statements: impl IntoIterator<Item = &'a Statement>,
    ) -> Claim {
        for s in statements {
            let Some((id, purpose)) = s.sid.as_deref().and_then(grant_of_sid) else {
                continue;
            };
            let Some(set) = aws_principal_set(s) else {
                continue;
            };
            let entry = (Grantee::of(purpose), set);
            if id == self.grant && !self.principals.contains(&entry) {
                self.principals.push(entry);
            }
        }
        self
    }

    /// Whether `statement` is this grant's (see the type's documentation for the line).
    pub fn owns(&self, statement: &Statement) -> bool {
        let Some((id, purpose)) = statement.sid.as_deref().and_then(grant_of_sid) else {
            return false;
        };
        if id != self.grant
            || statement.effect != "Allow"
            || statement.not_principal.is_some()
            || statement.not_action.is_some()
            || statement.not_resource.is_some()
        {
            return false;
        }
        let Some(set) = aws_principal_set(statement) else {
            return false;
        };
        (self.any_principal || self.principals.contains(&(Grantee::of(purpose), set)))
            && self.resources_in_scope(purpose, statement)
    }

    fn resources_in_scope(&self, purpose: Purpose, statement: &Statement) -> bool {
        let resources = statement.resources();
        if resources.is_empty() {
            return false;
        }
        match purpose {
            Purpose::BucketList | Purpose::BucketObjects | Purpose::BucketUpload => {
                let Some(bucket) = &self.bucket_arn else {
                    return false;
                };
                resources.iter().all(|r| {
                    r == bucket
                        || r.strip_prefix(bucket.as_str())
                            .is_some_and(|o| o.starts_with('/'))
                })
            }
            Purpose::KeyUse | Purpose::RoleKeyUse => resources
                .iter()
                .all(|r| r == "*" || (r.starts_with("arn:") && r.contains(":kms:"))),
        }
    }

    /// Sids of the statements in `doc` that this grant owns, in document order.
    pub fn owned_sids(&self, doc: &PolicyDocument) -> Vec<String> {
        doc.statements
            .iter()
            .filter(|s| self.owns(s))
            .filter_map(|s| s.sid.clone())
            .collect()
    }

    /// Sids of statements in `doc` that carry one of the grant's Sids but are not its own: left
    /// exactly as they are by a removal, refused by a write.
    pub fn foreign_with_our_sids(&self, doc: &PolicyDocument) -> Vec<String> {
        doc.statements
            .iter()
            .filter(|s| !self.owns(s))
            .filter_map(|s| s.sid.clone())
            .filter(|sid| self.grant.owns_sid(sid))
            .collect()
    }
}

/// Whom a purpose's statement names: the vendor's principals, or the grant's role. Every
/// statement of one grant names the same vendor principals, so a principal set the grant wrote
/// under one purpose is its own under every other vendor purpose (an Update from Access `full`
/// to `read` takes out the `BucketUpload` statement it no longer writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grantee {
    Vendor,
    Role,
}

impl Grantee {
    fn of(purpose: Purpose) -> Grantee {
        match purpose {
            Purpose::RoleKeyUse => Grantee::Role,
            _ => Grantee::Vendor,
        }
    }
}

/// The principals of a statement that names `AWS` principals only, by meaning; `None` for any
/// other shape (a wildcard, a service, a federated or canonical user, a mixed map).
fn aws_principal_set(statement: &Statement) -> Option<BTreeSet<String>> {
    let Principal::Map(map) = statement.principal.as_ref()? else {
        return None;
    };
    let aws = map.get("AWS").filter(|_| map.len() == 1)?;
    let set: BTreeSet<String> = aws
        .values()
        .iter()
        .map(|v| canonical_aws_principal(v))
        .collect();
    (!set.is_empty() && !set.contains("*")).then_some(set)
}

/// Replaces exactly the claim's statements in `current` with `desired` (which the claim then
/// covers too). Foreign statements keep their content and order; `desired` follows them. `None`
/// in means no policy yet; `None` out means the policy is now empty and should be deleted.
///
/// Errors when a foreign statement already uses one of the Sids to be written (compared without
/// regard to case), or when `desired` holds a statement the grant does not own or a Sid twice.
pub fn merge(
    current: Option<&PolicyDocument>,
    claim: &Claim,
    desired: &[Statement],
    what: &str,
) -> Result<Option<PolicyDocument>, Error> {
    let grant = claim.grant();
    let claim = claim.clone().with_statements(desired);
    let mut wanted_sids: Vec<&str> = Vec::with_capacity(desired.len());
    for statement in desired {
        let sid = statement.sid.as_deref().unwrap_or_default();
        if !claim.owns(statement) {
            return Err(Error::NotOwned {
                sid: sid.to_string(),
                grant: grant.to_string(),
            });
        }
        if wanted_sids.iter().any(|w| w.eq_ignore_ascii_case(sid)) {
            return Err(Error::DuplicateSid {
                what: what.to_string(),
                sid: sid.to_string(),
            });
        }
        wanted_sids.push(sid);
    }

    let mut doc = current.cloned().unwrap_or_default();
    let mut kept = Vec::with_capacity(doc.statements.len() + desired.len());
    for statement in doc.statements {
        if claim.owns(&statement) {
            continue;
        }
        if let Some(sid) = statement.sid.as_deref()
            && wanted_sids.iter().any(|w| w.eq_ignore_ascii_case(sid))
        {
            return Err(Error::SidConflict {
                what: what.to_string(),
                sid: sid.to_string(),
            });
        }
        kept.push(statement);
    }
    kept.extend(desired.iter().cloned());
    doc.statements = kept;
    Ok((!doc.is_empty()).then_some(doc))
}

/// For a grant being created: every statement already carrying one of its Sids must be, by
/// meaning, the one it would write (a repeated Create). Anything else with such a Sid was written
/// by someone else, and taking it over would alter a foreign statement.
pub fn check_new_grant(
    current: Option<&PolicyDocument>,
    grant: &GrantId,
    desired: &[Statement],
    what: &str,
) -> Result<(), Error> {
    for statement in current.iter().flat_map(|d| &d.statements) {
        let Some(sid) = statement.sid.as_deref().filter(|sid| grant.owns_sid(sid)) else {
            continue;
        };
        let ours = desired
            .iter()
            .any(|d| d.sid.as_deref() == Some(sid) && statements_equivalent(d, statement));
        if !ours {
            return Err(Error::SidConflict {
                what: what.to_string(),
                sid: sid.to_string(),
            });
        }
    }
    Ok(())
}

/// Takes the claim's statements out of `current`; a statement under one of the grant's Sids
/// that the claim does not cover stays exactly as it is. `None` out means nothing is left.
pub fn remove(
    current: Option<&PolicyDocument>,
    claim: &Claim,
    what: &str,
) -> Result<Option<PolicyDocument>, Error> {
    merge(current, claim, &[], what)
}
