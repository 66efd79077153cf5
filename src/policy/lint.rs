//! What real AWS would reject, checked before anything is written. The emulator used in tests
//! accepts almost any policy, so these checks are the only thing standing between a bad input
//! and a half-applied grant: sizes, principals, action/resource pairing, prefixes and Sids.

use super::Error;
use super::arn::Arn;
use super::canonical::is_account_id;
use super::document::{PolicyDocument, Statement};

/// Which document a size limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// S3 bucket policy: 20 KB, counted in bytes.
    BucketPolicy,
    /// KMS key policy: 32 KB, counted in bytes.
    KeyPolicy,
    /// IAM role trust policy: 2,048 characters, white space not counted.
    TrustPolicy,
    /// A role's inline policies together: 10,240 characters, white space not counted.
    RoleInlinePolicies,
}

impl PolicyKind {
    pub fn limit(self) -> usize {
        match self {
            PolicyKind::BucketPolicy => 20_480,
            PolicyKind::KeyPolicy => 32_768,
            PolicyKind::TrustPolicy => 2_048,
            PolicyKind::RoleInlinePolicies => 10_240,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::BucketPolicy => "bucket policy",
            PolicyKind::KeyPolicy => "key policy",
            PolicyKind::TrustPolicy => "role trust policy",
            PolicyKind::RoleInlinePolicies => "role's inline policies",
        }
    }

    /// The size of `json` as AWS counts it for this kind of document.
    pub fn measure(self, json: &str) -> usize {
        match self {
            PolicyKind::BucketPolicy | PolicyKind::KeyPolicy => json.len(),
            PolicyKind::TrustPolicy | PolicyKind::RoleInlinePolicies => {
                json.chars().filter(|c| !c.is_whitespace()).count()
            }
        }
    }
}

/// Refuses a document over its kind's limit. `documents` are measured together (a role's
/// inline policies share one limit).
pub fn check_size(kind: PolicyKind, documents: &[&PolicyDocument]) -> Result<usize, Error> {
    let size = documents.iter().map(|d| kind.measure(&d.to_json())).sum();
    if size > kind.limit() {
        return Err(Error::TooLarge {
            what: kind.name(),
            size,
            limit: kind.limit(),
        });
    }
    Ok(size)
}

/// The partition a region belongs to.
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// A principal as a bucket, key or trust policy may name it: a 12-digit account id, or the ARN of
/// an account root, IAM user, IAM role or assumed-role session in `partition`. Never `"*"`.
pub fn check_principal(property: &str, value: &str, partition: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidPrincipal {
        property: property.to_string(),
        value: value.to_string(),
        reason,
    };
    if value == "*" || value.contains('*') || value.contains('?') {
        return Err(bad(
            "a wildcard would grant the bucket to anyone; name the vendor's account or role".into(),
        ));
    }
    if is_account_id(value) {
        return Ok(());
    }
    let Some(Arn {
        partition: arn_partition,
        service,
        region,
        account,
        resource,
    }) = Arn::parse(value)
    else {
        return Err(bad(
            "expected a 12-digit account id or an IAM ARN such as arn:aws:iam::123456789012:role/Name"
                .into(),
        ));
    };
    if arn_partition != partition {
        return Err(bad(format!(
            "it is in partition {arn_partition:?}, but this grant is in {partition:?}"
        )));
    }
    const SHAPES: &str = "expected arn:PARTITION:iam::ACCOUNT:root, :role/NAME, :user/NAME or arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION";
    if service != "iam" && service != "sts" {
        return Err(bad(SHAPES.into()));
    }
    if !region.is_empty() {
        return Err(bad("IAM ARNs have no region".into()));
    }
    if !is_account_id(account) {
        return Err(bad(format!(
            "the account {account:?} is not a 12-digit account id"
        )));
    }
    let ok = is_principal_resource(service, resource);
    if !ok {
        return Err(bad(SHAPES.into()));
    }
    Ok(())
}

/// Whether `resource` is one a principal ARN of `service` may name: root, role or user for IAM,
/// an assumed-role session for STS.
fn is_principal_resource(service: &str, resource: &str) -> bool {
    match service {
        "iam" => {
            resource == "root"
                || resource.strip_prefix("role/").is_some_and(is_iam_path_name)
                || resource.strip_prefix("user/").is_some_and(is_iam_path_name)
        }
        "sts" => resource.strip_prefix("assumed-role/").is_some_and(|r| {
            r.split_once('/')
                .is_some_and(|(role, session)| is_iam_path_name(role) && is_iam_path_name(session))
        }),
        _ => false,
    }
}

/// [path/]name: path segments and name use IAM name characters.
fn is_iam_path_name(rest: &str) -> bool {
    !rest.is_empty()
        && !rest.ends_with('/')
        && rest.len() <= 512
        && rest
            .split('/')
            .all(|seg| !seg.is_empty() && seg.chars().all(is_iam_name_char))
}

/// A key prefix as it will be put into a resource ARN and an `s3:prefix` condition: nothing that
/// a policy would read as a wildcard, a variable or the end of a string.
pub fn check_prefix(value: &str) -> Result<(), Error> {
    let bad = |reason: &str| Error::InvalidPrefix {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.len() > 1024 {
        return Err(bad("it is longer than an S3 key may be (1024 bytes)"));
    }
    if value.contains('*') || value.contains('?') {
        return Err(bad(
            "`*` and `?` are wildcards in a policy; give the literal prefix (vendor-grants adds the `*`)",
        ));
    }
    if value.contains("${") {
        return Err(bad("`${` starts a policy variable"));
    }
    if value.split('/').any(|segment| segment == "..") {
        // S3 does not resolve `..`: `data/../x` would grant the literal prefix, which is never
        // what the grant meant.
        return Err(bad("`..` segments are not allowed (S3 keys are literal)"));
    }
    if let Some(rest) = value.strip_prefix('/') {
        // S3 keys have no leading slash: `/data/` would grant `bucket//data/*`, which no key of
        // `data/...` matches.
        return Err(bad(&format!(
            "S3 object keys do not start with `/`; write {:?}",
            rest.trim_start_matches('/')
        )));
    }
    if value.contains('"') || value.contains('\'') {
        return Err(bad("quotes are not allowed"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(())
}

/// A Sid must be letters and digits only (what both S3 and KMS accept everywhere).
pub fn check_sid(sid: &str) -> Result<(), Error> {
    if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::InvalidSid {
            sid: sid.to_string(),
        });
    }
    Ok(())
}

/// The level an S3 action applies at, which decides which ARN it may be granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ActionLevel {
    Bucket,
    Object,
}

/// S3 actions vendor-grants may write, and the level each applies at.
pub fn s3_action_level(action: &str) -> Option<S3ActionLevel> {
    const BUCKET: &[&str] = &[
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "s3:GetBucketLocation",
    ];
    const OBJECT: &[&str] = &[
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectAttributes",
        "s3:GetObjectTagging",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:PutObjectTagging",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:RestoreObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ];
    if BUCKET.iter().any(|a| a.eq_ignore_ascii_case(action)) {
        Some(S3ActionLevel::Bucket)
    } else if OBJECT.iter().any(|a| a.eq_ignore_ascii_case(action)) {
        Some(S3ActionLevel::Object)
    } else {
        None
    }
}

/// Checks a statement vendor-grants is about to write for `bucket`: a valid Sid, S3 object
/// actions only on the bucket's object ARNs, bucket actions only on the bucket ARN, never both in
/// one statement, `s3:prefix` only beside `s3:ListBucket`, and KMS actions apart from S3 ones.
pub fn check_statement(statement: &Statement, bucket: &str, partition: &str) -> Result<(), Error> {
    let sid = statement.sid.as_deref().unwrap_or_default();
    check_sid(sid)?;
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    let object_arn_prefix = format!("{bucket_arn}/");
    let bad = |detail: String| Error::InvalidStatement {
        sid: sid.to_string(),
        detail,
    };

    let (levels, has_kms) = classify_actions(statement).map_err(bad)?;
    if statement.actions().is_empty() {
        return Err(bad("it has no Action".into()));
    }
    if has_kms && !levels.is_empty() {
        return Err(bad("it mixes KMS and S3 actions".into()));
    }
    let bucket_level = levels.contains(&S3ActionLevel::Bucket);
    let object_level = levels.contains(&S3ActionLevel::Object);
    if bucket_level && object_level {
        return Err(bad(
            "it mixes bucket actions and object actions, which apply to different ARNs".into(),
        ));
    }
    for resource in statement.resources() {
        if bucket_level && resource != &bucket_arn {
            return Err(bad(format!(
                "bucket actions apply only to {bucket_arn}, not {resource}"
            )));
        }
        if object_level && !resource.starts_with(&object_arn_prefix) {
            return Err(bad(format!(
                "object actions apply only to {object_arn_prefix}..., not {resource}"
            )));
        }
    }
    if statement.resources().is_empty() {
        return Err(bad("it has no Resource".into()));
    }
    for keys in statement.condition.iter().flat_map(|c| c.values()) {
        if keys.keys().any(|k| k.eq_ignore_ascii_case("s3:prefix"))
            && !statement
                .actions()
                .iter()
                .all(|a| a.eq_ignore_ascii_case("s3:ListBucket"))
        {
            return Err(bad(
                "the s3:prefix condition key applies only to s3:ListBucket".into(),
            ));
        }
    }
    Ok(())
}

/// The S3 levels of a statement's actions and whether it has KMS ones; the detail of the first
/// action that is neither a KMS action nor an S3 action vendor-grants grants.
fn classify_actions(statement: &Statement) -> Result<(Vec<S3ActionLevel>, bool), String> {
    let mut levels = Vec::new();
    let mut has_kms = false;
    for action in statement.actions() {
        if let Some(rest) = action.strip_prefix("kms:") {
            if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '*') {
                return Err(format!("{action:?} is not a KMS action"));
            }
            has_kms = true;
            continue;
        }
        match s3_action_level(action) {
            Some(level) => levels.push(level),
            None => {
                return Err(format!(
                    "{action:?} is not an S3 action vendor-grants grants"
                ));
            }
        }
    }
    Ok((levels, has_kms))
}

/// Whether `value` is the unique id AWS shows in place of a deleted role (`AROA...`) or user
/// (`AIDA...`).
fn is_unique_id(value: &str) -> bool {
    ["AROA", "AIDA"].iter().any(|p| value.starts_with(p))
        && (16..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// AWS shows a principal whose role or user was deleted as its unique id, and refuses a policy
/// that names one when it is written back. Such a statement, foreign or not, would make every
/// write of the policy fail with a message that does not say which statement: name it instead.
pub fn check_no_deleted_principals(doc: &PolicyDocument, what: &str) -> Result<(), Error> {
    for statement in &doc.statements {
        let principals = [&statement.principal, &statement.not_principal];
        let found = principals
            .into_iter()
            .flatten()
            .flat_map(|p| p.aws_values())
            .find(|v| is_unique_id(v));
        if let Some(id) = found {
            return Err(Error::DeletedPrincipal {
                what: what.to_string(),
                sid: statement
                    .sid
                    .clone()
                    .unwrap_or_else(|| "(without Sid)".to_string()),
                id: id.clone(),
            });
        }
    }
    Ok(())
}
