//! The listing calls only the audit makes: the account's buckets in the region, its keys, the
//! roles at vendor-grants' path, its identity, and whether a stack still exists.

use super::{Clients, Error, sdk_error};

/// The names of the account's buckets in the clients' region.
pub async fn buckets_in_region(c: &Clients) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out =
            c.s3.list_buckets()
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListBuckets", "the account", e))?;
        for b in out.buckets() {
            let Some(name) = b.name() else { continue };
            let region = match b.bucket_region() {
                Some(r) => r.to_string(),
                None => bucket_region(c, name).await?,
            };
            if region == c.region {
                names.push(name.to_string());
            }
        }
        match out.continuation_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(names),
        }
    }
}

/// A bucket's region (GetBucketLocation: empty means us-east-1, `EU` eu-west-1).
async fn bucket_region(c: &Clients, bucket: &str) -> Result<String, Error> {
    let out =
        c.s3.get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk_error("GetBucketLocation", bucket, e))?;
    Ok(match out.location_constraint().map(|l| l.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    })
}

/// The ids of every key in the region (customer-managed or not; DescribeKey tells).
pub async fn keys(c: &Clients) -> Result<Vec<String>, Error> {
    let mut ids = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .kms
            .list_keys()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListKeys", "the region", e))?;
        ids.extend(
            out.keys()
                .iter()
                .filter_map(|k| k.key_arn().map(str::to_string)),
        );
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(ids),
        }
    }
}

/// The names of the roles under `path`.
pub async fn roles_under(c: &Clients, path: &str) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .iam
            .list_roles()
            .path_prefix(path)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListRoles", path, e))?;
        names.extend(out.roles().iter().map(|r| r.role_name().to_string()));
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(names),
        }
    }
}

/// The account the credentials belong to (the CLI's; the function knows its own from its ARN,
/// so the STS client is not part of [`Clients`]).
pub async fn account_id(config: &aws_config::SdkConfig) -> Result<String, Error> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| sdk_error("GetCallerIdentity", "the caller", e))?;
    out.account()
        .map(str::to_string)
        .ok_or_else(|| Error::NotFound {
            what: "the caller's account id".into(),
        })
}

/// Whether the stack `stack_id` still exists: `Some(false)` when CloudFormation says it does
/// not or it is DELETE_COMPLETE, `None` when it could not tell.
pub async fn stack_exists(c: &Clients, stack_id: &str) -> Option<bool> {
    match c
        .cloudformation
        .describe_stacks()
        .stack_name(stack_id)
        .send()
        .await
    {
        Ok(out) => Some(out.stacks().first().is_some_and(|s| {
            s.stack_status()
                .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")
        })),
        Err(e) => {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            let e = e.into_service_error();
            let gone = e.code() == Some("ValidationError")
                && e.message().is_some_and(|m| m.contains("does not exist"));
            gone.then_some(false)
        }
    }
}
