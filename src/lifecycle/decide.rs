//! Which grant an event touches, decided once and purely from the request (request type,
//! PhysicalResourceId, properties, old properties), before anything is read or written. The
//! value says what will happen, so it can be table-tested and logged.

use crate::catalog::{Catalog, Mode};
use crate::cfn::RequestType;
use crate::grant::{self, GrantProperties, RawProperties, derive_grant_id, grant_id_from_physical};
use crate::policy::GrantId;

use super::{Error, Request};

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new grant.
    Create {
        grant: GrantId,
        props: GrantProperties,
    },
    /// Rewrite the grant the PhysicalResourceId carries (Access, Prefix, ExternalId or
    /// VendorPrincipal changed, or nothing did).
    UpdateInPlace {
        grant: GrantId,
        physical_id: String,
        props: GrantProperties,
    },
    /// A new grant under a new PhysicalResourceId; CloudFormation then deletes the old one.
    Replace {
        new: GrantId,
        props: GrantProperties,
    },
    /// Remove this grant's statements (and its role).
    DeleteGrant {
        grant: GrantId,
        physical_id: String,
        props: RawProperties,
    },
    /// A Delete with nothing to remove; `why` says so in the log.
    NothingToDelete {
        physical_id: String,
        grant: Option<GrantId>,
        why: &'static str,
    },
}

/// The properties whose change means a new grant (and a new PhysicalResourceId).
fn replacement_key(p: &GrantProperties) -> (&str, &str, Option<&str>, Mode, Option<&str>) {
    (
        &p.vendor,
        &p.bucket_name,
        p.kms_key.as_deref(),
        p.mode,
        p.role_name.as_deref(),
    )
}

/// Decides what `req` does. Create and Update refuse properties that do not parse; Delete
/// never does (whatever was written must still be removable).
pub fn decide(catalog: &Catalog, kind: RequestType, req: &Request<'_>) -> Result<Action, Error> {
    match kind {
        RequestType::Create => {
            let props = GrantProperties::from_json(req.properties, catalog)?;
            let grant = derive_grant_id(req.stack_id, req.logical_id, &props);
            Ok(Action::Create { grant, props })
        }
        RequestType::Update => update(catalog, req),
        RequestType::Delete => delete(catalog, req),
    }
}

fn update(catalog: &Catalog, req: &Request<'_>) -> Result<Action, Error> {
    let props = GrantProperties::from_json(req.properties, catalog)?;
    let physical = req.physical_id.ok_or(Error::NoPhysicalId)?;
    let old = req
        .old_properties
        .and_then(|o| GrantProperties::from_json(o, catalog).ok());
    let current = grant_id_from_physical(physical);
    // A PhysicalResourceId that is not ours (a resource moved to this provider) goes into the new
    // id, so CloudFormation's Delete of that id, which falls back to the properties, cannot land
    // on the new grant.
    let new = match &current {
        None => derive_grant_id(
            req.stack_id,
            &format!("{}#{physical}", req.logical_id),
            &props,
        ),
        Some(_) => derive_grant_id(req.stack_id, req.logical_id, &props),
    };
    let same_replacement_key = old
        .as_ref()
        .is_some_and(|old| replacement_key(old) == replacement_key(&props));
    match current {
        // In place: act on the grant id the PhysicalResourceId carries, whatever minted it; or
        // the same grant after all (old properties no longer parse, say).
        Some(grant) if same_replacement_key || grant == new => Ok(Action::UpdateInPlace {
            grant,
            physical_id: physical.to_string(),
            props,
        }),
        _ => Ok(Action::Replace { new, props }),
    }
}

fn delete(catalog: &Catalog, req: &Request<'_>) -> Result<Action, Error> {
    let physical = req.physical_id.ok_or(Error::NoPhysicalId)?.to_string();
    let grant = match grant_id_from_physical(&physical) {
        Some(grant) => grant,
        // Not an id of ours: fall back to the one the properties give.
        None => match GrantProperties::from_json(req.properties, catalog) {
            Ok(p) => derive_grant_id(req.stack_id, req.logical_id, &p),
            Err(_) => {
                return Ok(Action::NothingToDelete {
                    physical_id: physical,
                    grant: None,
                    why: "neither the id nor the properties name a grant",
                });
            }
        },
    };
    if grant::id::is_fallback(&grant) {
        return Ok(Action::NothingToDelete {
            physical_id: physical,
            grant: Some(grant),
            why: "its Create was refused before writing anything",
        });
    }
    Ok(Action::DeleteGrant {
        grant,
        physical_id: physical,
        props: RawProperties::from_json_lenient(req.properties),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{id::fallback_grant_id, physical_resource_id};
    use serde_json::{Value, json};

    const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1";

    fn catalog() -> &'static Catalog {
        Catalog::builtin().unwrap()
    }

    fn req<'a>(physical: Option<&'a str>, props: &'a Value, old: Option<&'a Value>) -> Request<'a> {
        Request {
            stack_id: STACK,
            logical_id: "Grant",
            request_id: "r-1",
            physical_id: physical,
            properties: props,
            old_properties: old,
        }
    }

    fn grant_of(props: &Value) -> GrantId {
        let p = GrantProperties::from_json(props, catalog()).unwrap();
        derive_grant_id(STACK, "Grant", &p)
    }

    fn name(a: &Action) -> &'static str {
        match a {
            Action::Create { .. } => "Create",
            Action::UpdateInPlace { .. } => "UpdateInPlace",
            Action::Replace { .. } => "Replace",
            Action::DeleteGrant { .. } => "DeleteGrant",
            Action::NothingToDelete { .. } => "NothingToDelete",
        }
    }

    #[test]
    fn updates_in_place_or_replace_by_the_contracts_properties() {
        let base = json!({"Vendor": "custom", "BucketName": "b-1", "VendorPrincipal": "111122223333",
            "Access": "read", "Mode": "bucket-policy"});
        let id = physical_resource_id(&grant_of(&base), "b-1");
        let with = |k: &str, v: Value| {
            let mut p = base.clone();
            p[k] = v;
            p
        };
        let table = [
            // In place: Access, Prefix, ExternalId, VendorPrincipal.
            (with("Access", json!("write")), "UpdateInPlace"),
            (with("Prefix", json!("data/")), "UpdateInPlace"),
            (
                with("VendorPrincipal", json!("444455556666")),
                "UpdateInPlace",
            ),
            (base.clone(), "UpdateInPlace"),
            // A new grant: Vendor, BucketName, KmsKeyArn, Mode, RoleName.
            (with("BucketName", json!("b-2")), "Replace"),
            (with("KmsKeyArn", json!("alias/data")), "Replace"),
            (with("Mode", json!("role")), "Replace"),
            (with("Vendor", json!("vcc")), "Replace"),
        ];
        for (new, expected) in table {
            let mut new = new;
            if new["Mode"] == "role" {
                new["ExternalId"] = json!("ext-123");
            }
            if new["Vendor"] == "vcc" {
                new.as_object_mut().unwrap().remove("Access");
                // VCC's guide names its service roles, never an account.
                new["VendorPrincipal"] = json!("arn:aws:iam::111122223333:role/vcc-export");
            }
            let action = decide(
                catalog(),
                RequestType::Update,
                &req(Some(&id), &new, Some(&base)),
            );
            let action = action.unwrap_or_else(|e| panic!("{new}: {e}"));
            assert_eq!(name(&action), expected, "{new}");
            match action {
                Action::UpdateInPlace {
                    grant, physical_id, ..
                } => {
                    assert_eq!(grant, grant_of(&base));
                    assert_eq!(physical_id, id);
                }
                Action::Replace { new: g, .. } => assert_eq!(g, grant_of(&new)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn update_acts_on_the_id_inside_the_physical_resource_id() {
        let props = json!({"Vendor": "telus", "BucketName": "b-1"});
        let minted_elsewhere = "vendor-grants:00000000deadbeef:b-1";
        let a = decide(
            catalog(),
            RequestType::Update,
            &req(Some(minted_elsewhere), &props, Some(&props)),
        );
        assert!(
            matches!(a, Ok(Action::UpdateInPlace { ref grant, .. }) if grant.as_str() == "00000000deadbeef")
        );
        // Old properties that no longer parse, but the id is the one the properties give:
        // the same grant after all.
        let ours = physical_resource_id(&grant_of(&props), "b-1");
        let junk = json!({"Vendor": 7});
        let a = decide(
            catalog(),
            RequestType::Update,
            &req(Some(&ours), &props, Some(&junk)),
        )
        .unwrap();
        assert_eq!(name(&a), "UpdateInPlace");
    }

    #[test]
    fn a_foreign_id_is_replaced_by_a_grant_that_its_delete_cannot_reach() {
        let props = json!({"Vendor": "telus", "BucketName": "b-1"});
        for foreign in [
            "not-ours",
            "vendor-grants:corp:b-1",
            "vendor-grants:ABCDEF0123456789:b",
        ] {
            let a = decide(
                catalog(),
                RequestType::Update,
                &req(Some(foreign), &props, Some(&props)),
            )
            .unwrap();
            let Action::Replace { new, .. } = a else {
                panic!("{foreign}: {a:?}")
            };
            assert_ne!(new, grant_of(&props), "{foreign}");
            // The Delete CloudFormation sends for the foreign id falls back to the properties'
            // grant, which is not the new one.
            let d = decide(
                catalog(),
                RequestType::Delete,
                &req(Some(foreign), &props, None),
            )
            .unwrap();
            assert!(
                matches!(d, Action::DeleteGrant { ref grant, .. } if *grant == grant_of(&props))
            );
        }
    }

    #[test]
    fn create_derives_the_grant_and_refuses_bad_properties() {
        let props = json!({"Vendor": "telus", "BucketName": "b-1"});
        let a = decide(catalog(), RequestType::Create, &req(None, &props, None)).unwrap();
        assert_eq!(
            a,
            Action::Create {
                grant: grant_of(&props),
                props: GrantProperties::from_json(&props, catalog()).unwrap(),
            }
        );
        let bad = json!({"Vendor": "nobody", "BucketName": "b-1"});
        assert!(decide(catalog(), RequestType::Create, &req(None, &bad, None)).is_err());
        assert!(decide(catalog(), RequestType::Update, &req(Some("x"), &bad, None)).is_err());
    }

    #[test]
    fn deletes_that_name_no_written_grant_do_nothing() {
        let props = json!({"Vendor": "telus", "BucketName": "b-1"});
        // A refused Create answered with a fallback id: its rollback Delete is a no-op.
        let refused = physical_resource_id(&fallback_grant_id(STACK, "Grant", "r-0"), "invalid");
        let a = decide(
            catalog(),
            RequestType::Delete,
            &req(Some(&refused), &json!({"Vendor": 1}), None),
        )
        .unwrap();
        assert!(
            matches!(a, Action::NothingToDelete { grant: Some(_), .. }),
            "{a:?}"
        );
        // Neither the id nor the properties name a grant.
        let a = decide(
            catalog(),
            RequestType::Delete,
            &req(Some("nope"), &json!({}), None),
        )
        .unwrap();
        assert!(
            matches!(a, Action::NothingToDelete { grant: None, ref physical_id, .. } if physical_id == "nope")
        );
        // Our id: that grant, whatever the properties say now.
        let ours = physical_resource_id(&grant_of(&props), "b-1");
        let a = decide(
            catalog(),
            RequestType::Delete,
            &req(Some(&ours), &json!({"Vendor": []}), None),
        )
        .unwrap();
        assert!(matches!(a, Action::DeleteGrant { ref grant, .. } if *grant == grant_of(&props)));
        assert!(decide(catalog(), RequestType::Delete, &req(None, &props, None)).is_err());
    }
}
