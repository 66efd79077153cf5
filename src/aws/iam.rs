//! IAM: the role a role-mode grant creates, its trust policy and the grants' inline policies.
//! IAM hands policy documents back percent-encoded; they are decoded here.

use aws_sdk_iam::types::Tag;
use percent_encoding::percent_decode_str;

use super::{Clients, Error, service_error};

/// A role as vendor-grants needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub arn: String,
    pub tags: Vec<(String, String)>,
    /// The trust policy, decoded.
    pub trust_policy: String,
}

impl RoleInfo {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// IAM returns documents URL-encoded (`%7B...`); `+` is a literal plus there, not a space.
pub fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// An IAM error: `NoSuchEntity` (the role or its policy is gone) becomes [`Error::NotFound`].
fn iam_error<E>(operation: &'static str, name: &str, err: E) -> Error
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    if err.code() == Some("NoSuchEntity") {
        Error::NotFound {
            what: format!("IAM role {name} (or its policy)"),
        }
    } else {
        service_error(operation, name, err)
    }
}

/// `Ok(None)` for an error that says the thing is gone.
fn none_if_gone<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn get_role(c: &Clients, name: &str) -> Result<Option<RoleInfo>, Error> {
    let out = none_if_gone(
        c.iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| iam_error("GetRole", name, e.into_service_error())),
    )?;
    Ok(out.as_ref().and_then(|o| o.role()).map(|role| RoleInfo {
        arn: role.arn().to_string(),
        tags: role
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        trust_policy: decode_document(role.assume_role_policy_document().unwrap_or("")),
    }))
}

/// Creates the role; `Ok(None)` when a role of that name already exists.
pub async fn create_role(
    c: &Clients,
    name: &str,
    path: &str,
    trust_policy: &str,
    description: &str,
    tags: &[(&str, &str)],
) -> Result<Option<String>, Error> {
    let request = c
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust_policy)
        .path(path)
        .description(description)
        .set_tags(Some(tag_list("CreateRole", name, tags)?));
    match request.send().await {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_string())),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_entity_already_exists_exception() {
                Ok(None)
            } else {
                Err(service_error("CreateRole", name, e))
            }
        }
    }
}

pub async fn update_trust_policy(c: &Clients, name: &str, trust_policy: &str) -> Result<(), Error> {
    c.iam
        .update_assume_role_policy()
        .role_name(name)
        .policy_document(trust_policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| iam_error("UpdateAssumeRolePolicy", name, e.into_service_error()))
}

pub async fn put_role_policy(
    c: &Clients,
    name: &str,
    policy_name: &str,
    document: &str,
) -> Result<(), Error> {
    c.iam
        .put_role_policy()
        .role_name(name)
        .policy_name(policy_name)
        .policy_document(document)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| iam_error("PutRolePolicy", name, e.into_service_error()))
}

/// An inline policy's document, decoded; `None` when the role has no policy of that name.
pub async fn get_role_policy(
    c: &Clients,
    name: &str,
    policy_name: &str,
) -> Result<Option<String>, Error> {
    let out = none_if_gone(
        c.iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(|e| iam_error("GetRolePolicy", name, e.into_service_error())),
    )?;
    Ok(out.map(|o| decode_document(o.policy_document())))
}

/// Names of the role's inline policies (all pages).
pub async fn list_role_policies(c: &Clients, name: &str) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .iam
            .list_role_policies()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| iam_error("ListRolePolicies", name, e.into_service_error()))?;
        names.extend(out.policy_names().iter().cloned());
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(names),
        }
    }
}

/// Deletes an inline policy; one already gone is fine.
pub async fn delete_role_policy(c: &Clients, name: &str, policy_name: &str) -> Result<(), Error> {
    let result = c
        .iam
        .delete_role_policy()
        .role_name(name)
        .policy_name(policy_name)
        .send()
        .await
        .map_err(|e| iam_error("DeleteRolePolicy", name, e.into_service_error()));
    none_if_gone(result).map(|_| ())
}

/// Deletes the role; one already gone is fine. `DeleteConflict` (someone attached a managed
/// policy) comes back as an error with that code.
pub async fn delete_role(c: &Clients, name: &str) -> Result<(), Error> {
    let result = c
        .iam
        .delete_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| iam_error("DeleteRole", name, e.into_service_error()));
    none_if_gone(result).map(|_| ())
}

/// Sets `tags` on the role (replacing the values of those keys).
pub async fn tag_role(c: &Clients, name: &str, tags: &[(&str, &str)]) -> Result<(), Error> {
    c.iam
        .tag_role()
        .role_name(name)
        .set_tags(Some(tag_list("TagRole", name, tags)?))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| iam_error("TagRole", name, e.into_service_error()))
}

fn tag_list(operation: &'static str, name: &str, tags: &[(&str, &str)]) -> Result<Vec<Tag>, Error> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(*key)
                .value(*value)
                .build()
                .map_err(|e| Error::Service {
                    operation,
                    resource: name.to_string(),
                    code: None,
                    message: e.to_string(),
                })
        })
        .collect()
}

/// ARNs of the managed policies attached to the role (all pages). vendor-grants never attaches
/// one, so the audit reports each as widening the role.
pub async fn list_attached_role_policies(c: &Clients, name: &str) -> Result<Vec<String>, Error> {
    let mut arns = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = c
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| iam_error("ListAttachedRolePolicies", name, e.into_service_error()))?;
        arns.extend(
            out.attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string)),
        );
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => return Ok(arns),
        }
    }
}
