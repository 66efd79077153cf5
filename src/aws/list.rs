//! The listing calls only the audit makes: the account's buckets in the region, its keys, the
//! roles at vendor-grants' path, its identity, whether a stack still exists, and what the live
//! stacks hold.

use std::collections::BTreeMap;

use super::{Clients, Error, sdk_error};

/// Every bucket of the account (all regions: ListBuckets is global) and its region.
pub async fn bucket_regions(c: &Clients) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            c.s3.list_buckets()
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListBuckets", "the account", e))?;
        for b in page.buckets() {
            let Some(name) = b.name() else { continue };
            let region = match b.bucket_region() {
                Some(r) => r.to_string(),
                None => bucket_region(c, name).await?,
            };
            out.insert(name.to_string(), region);
        }
        match page.continuation_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// A resource of a live stack: (StackId, LogicalResourceId, PhysicalResourceId).
pub type StackResource = (String, String, String);

/// Every resource of every stack of the region that is not DELETE_COMPLETE (ListStacks, then
/// ListStackResources of each).
pub async fn live_stack_resources(c: &Clients) -> Result<Vec<StackResource>, Error> {
    let mut stacks = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .cloudformation
            .list_stacks()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListStacks", "the region", e))?;
        stacks.extend(page.stack_summaries().iter().filter_map(|s| {
            let live = s
                .stack_status()
                .is_some_and(|st| st.as_str() != "DELETE_COMPLETE");
            live.then(|| s.stack_id().map(str::to_string)).flatten()
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for stack in stacks {
        let mut token: Option<String> = None;
        loop {
            let page = c
                .cloudformation
                .list_stack_resources()
                .stack_name(&stack)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListStackResources", &stack, e))?;
            for r in page.stack_resource_summaries() {
                if let Some(physical) = r.physical_resource_id() {
                    out.push((
                        stack.clone(),
                        r.logical_resource_id().unwrap_or_default().to_string(),
                        physical.to_string(),
                    ));
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(out)
}

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
