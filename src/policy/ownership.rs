//! Which statements a grant owns, and the merge that replaces exactly those. A grant owns the
//! statements whose Sid is `VG<grant-id><Purpose>`; everything else in a policy is foreign and is
//! kept exactly as it was, in its place.

use std::fmt;

use super::Error;
use super::canonical::statements_equivalent;
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

/// Sids of the statements in `doc` that `grant` owns, in document order.
pub fn owned_sids(doc: &PolicyDocument, grant: &GrantId) -> Vec<String> {
    doc.statements
        .iter()
        .filter(|s| is_owned(s, grant))
        .filter_map(|s| s.sid.clone())
        .collect()
}

/// Replaces exactly `grant`'s statements in `current` with `desired`. Foreign statements keep
/// their content and order; `desired` follows them. `None` in means no policy yet; `None` out
/// means the policy is now empty and should be deleted.
///
/// Errors when a foreign statement already uses one of the Sids to be written (compared without
/// regard to case), or when `desired` holds a statement the grant does not own or a Sid twice.
pub fn merge(
    current: Option<&PolicyDocument>,
    grant: &GrantId,
    desired: &[Statement],
    what: &str,
) -> Result<Option<PolicyDocument>, Error> {
    let mut wanted_sids: Vec<&str> = Vec::with_capacity(desired.len());
    for statement in desired {
        let sid = statement.sid.as_deref().unwrap_or_default();
        if !is_owned(statement, grant) {
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
        if is_owned(&statement, grant) {
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

/// Takes `grant`'s statements out of `current`. `None` out means nothing is left.
pub fn remove(
    current: Option<&PolicyDocument>,
    grant: &GrantId,
    what: &str,
) -> Result<Option<PolicyDocument>, Error> {
    merge(current, grant, &[], what)
}
