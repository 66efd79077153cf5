//! Real CloudFormation events (tests/fixtures/events, sources in its README) round-tripped
//! through the envelope, and the vendor-grants ones through the decision of what they do.

use std::time::Duration;

use serde_json::Value;
use vendor_grants::catalog::Catalog;
use vendor_grants::cfn::{AllowList, Envelope, RequestType, ResponseTarget};
use vendor_grants::lifecycle::{Action, Request, decide};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every field the envelope reads is the event's own, unchanged.
fn round_trip(name: &str, kind: RequestType) -> (Value, Envelope) {
    let event = fixture(name);
    let envelope = Envelope::parse(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = |k: &str| event[k].as_str().map(str::to_string);
    assert_eq!(envelope.request_type, kind, "{name}");
    assert_eq!(
        Some(envelope.target.response_url.clone()),
        text("ResponseURL")
    );
    assert_eq!(Some(envelope.target.stack_id.clone()), text("StackId"));
    assert_eq!(Some(envelope.target.request_id.clone()), text("RequestId"));
    assert_eq!(
        Some(envelope.target.logical_resource_id.clone()),
        text("LogicalResourceId")
    );
    assert_eq!(
        envelope.target.physical_resource_id,
        text("PhysicalResourceId")
    );
    assert_eq!(Some(envelope.resource_type.clone()), text("ResourceType"));
    assert_eq!(envelope.resource_properties, event["ResourceProperties"]);
    assert_eq!(
        envelope.old_resource_properties.as_ref(),
        event.get("OldResourceProperties")
    );
    assert_eq!(
        ResponseTarget::from_event(&event).as_ref(),
        Some(&envelope.target),
        "{name}: the lenient and strict readings agree"
    );
    (event, envelope)
}

#[test]
fn aws_lambda_events_fixtures_round_trip() {
    for (name, kind) in [
        ("aws-lambda-events-create", RequestType::Create),
        ("aws-lambda-events-update", RequestType::Update),
        ("aws-lambda-events-delete", RequestType::Delete),
    ] {
        let (_, envelope) = round_trip(name, kind);
        assert_eq!(envelope.service_timeout, None);
    }
}

#[test]
fn vendor_grants_events_round_trip_and_decide() {
    let catalog = Catalog::builtin().unwrap();
    let mut grants = Vec::new();
    for (name, kind) in [
        ("vendor-grants-create", RequestType::Create),
        ("vendor-grants-update", RequestType::Update),
        ("vendor-grants-delete", RequestType::Delete),
    ] {
        let (_, envelope) = round_trip(name, kind);
        // ServiceTimeout arrives as a string inside the properties.
        assert_eq!(envelope.service_timeout, Some(Duration::from_secs(300)));
        // The ResponseURL is one the default allow-list admits.
        AllowList::parse(None)
            .check(&envelope.target.response_url)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let req = Request {
            stack_id: &envelope.target.stack_id,
            logical_id: &envelope.target.logical_resource_id,
            request_id: &envelope.target.request_id,
            physical_id: envelope.target.physical_resource_id.as_deref(),
            properties: &envelope.resource_properties,
            old_properties: envelope.old_resource_properties.as_ref(),
        };
        let action = decide(catalog, kind, &req).unwrap_or_else(|e| panic!("{name}: {e}"));
        match (kind, action) {
            (RequestType::Create, Action::Create { grant, props }) => {
                assert_eq!(props.prefix.as_deref(), Some("datasets/"));
                grants.push(grant.to_string());
            }
            // Only the Prefix changed: in place, on the id the PhysicalResourceId carries.
            (
                RequestType::Update,
                Action::UpdateInPlace {
                    grant,
                    physical_id,
                    props,
                },
            ) => {
                assert_eq!(
                    physical_id,
                    "vendor-grants:0123456789abcdef:data-platform-labelling"
                );
                assert_eq!(props.prefix.as_deref(), Some("datasets/2026/"));
                grants.push(grant.to_string());
            }
            (RequestType::Delete, Action::DeleteGrant { grant, .. }) => {
                grants.push(grant.to_string());
            }
            (kind, other) => panic!("{name} ({kind}): {other:?}"),
        }
    }
    assert_eq!(grants[1], "0123456789abcdef");
    assert_eq!(grants[1], grants[2]);
}

/// The README's attribute table lists exactly the attributes a grant answers with, in order.
#[test]
fn the_readme_attribute_table_is_the_attributes_struct() {
    let readme = include_str!("../README.md");
    let table = &readme[readme
        .find("### Attributes")
        .expect("an Attributes section")..];
    let table = &table[..table.find("\n\n###").unwrap_or(table.len())];
    let names: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(names, vendor_grants::lifecycle::Attributes::NAMES);
}
