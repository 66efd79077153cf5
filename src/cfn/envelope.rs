//! The request CloudFormation sends. Two readings: a lenient one that finds where to answer even
//! in a malformed event, and a strict one that the resource's work relies on.

use std::fmt;
use std::time::Duration;

use aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest;
use serde_json::Value;

use super::Error;

/// The longest ServiceTimeout CloudFormation accepts, in seconds.
const MAX_SERVICE_TIMEOUT_SECS: u64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestType::Create => "Create",
            RequestType::Update => "Update",
            RequestType::Delete => "Delete",
        })
    }
}

/// Where the answer goes and the fields it must echo.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseTarget {
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_resource_id: Option<String>,
}

impl ResponseTarget {
    /// Any object with a string `ResponseURL` is enough, so that an event the strict parse rejects
    /// can still be answered FAILED instead of leaving the stack waiting for an hour.
    pub fn from_event(event: &Value) -> Option<ResponseTarget> {
        let object = event.as_object()?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(ResponseTarget {
            response_url: text("ResponseURL")?,
            stack_id: text("StackId").unwrap_or_default(),
            request_id: text("RequestId").unwrap_or_default(),
            logical_resource_id: text("LogicalResourceId").unwrap_or_default(),
            physical_resource_id: text("PhysicalResourceId"),
        })
    }
}

impl ResponseTarget {
    /// The target with each echoed field cut to what CloudFormation can send, so that a hostile
    /// event's megabyte-long id neither swells the answer past its budget nor the log line.
    pub fn capped(mut self) -> ResponseTarget {
        let cut = |v: &mut String, longest: usize| {
            let end = crate::cfn::truncate_utf8(v, longest).len();
            v.truncate(end);
        };
        for (field, longest) in ECHOED {
            match *field {
                "StackId" => cut(&mut self.stack_id, *longest),
                "RequestId" => cut(&mut self.request_id, *longest),
                "LogicalResourceId" => cut(&mut self.logical_resource_id, *longest),
                "PhysicalResourceId" => {
                    if let Some(p) = self.physical_resource_id.as_mut() {
                        cut(p, *longest);
                    }
                }
                _ => {}
            }
        }
        self
    }
}

// By hand: the ResponseURL's query is a signature that grants a write to the response bucket.
impl fmt::Debug for ResponseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseTarget")
            .field("response_url", &"<redacted>")
            .field("stack_id", &self.stack_id)
            .field("request_id", &self.request_id)
            .field("logical_resource_id", &self.logical_resource_id)
            .field("physical_resource_id", &self.physical_resource_id)
            .finish()
    }
}

#[derive(Clone, PartialEq)]
pub struct Envelope {
    pub request_type: RequestType,
    pub target: ResponseTarget,
    pub resource_type: String,
    pub resource_properties: Value,
    pub old_resource_properties: Option<Value>,
    pub service_timeout: Option<Duration>,
}

impl Envelope {
    pub fn parse(event: &Value) -> Result<Envelope, Error> {
        let event = prepared(event)?;
        let request: CloudFormationCustomResourceRequest<Value, Value> =
            serde_json::from_value(event).map_err(|e| Error::BadEvent(e.to_string()))?;
        // The three request types share every field but PhysicalResourceId (not in a Create)
        // and OldResourceProperties (Update only).
        macro_rules! envelope {
            ($kind:ident, $r:ident, $physical:expr, $old:expr) => {
                Envelope {
                    request_type: RequestType::$kind,
                    service_timeout: service_timeout(&$r.resource_properties),
                    target: ResponseTarget {
                        response_url: $r.response_url,
                        stack_id: $r.stack_id,
                        request_id: $r.request_id,
                        logical_resource_id: $r.logical_resource_id,
                        physical_resource_id: $physical,
                    },
                    resource_type: $r.resource_type,
                    resource_properties: $r.resource_properties,
                    old_resource_properties: $old,
                }
            };
        }
        Ok(match request {
            CloudFormationCustomResourceRequest::Create(r) => envelope!(Create, r, None, None),
            CloudFormationCustomResourceRequest::Update(r) => envelope!(
                Update,
                r,
                Some(r.physical_resource_id),
                Some(r.old_resource_properties)
            ),
            CloudFormationCustomResourceRequest::Delete(r) => {
                envelope!(Delete, r, Some(r.physical_resource_id), None)
            }
            // The enum is #[non_exhaustive]; a future request type is not one we can honour.
            _ => return Err(Error::BadEvent("unsupported RequestType".into())),
        })
    }
}

/// The event made ready for the typed parse, or why it cannot be: an object, whose missing or
/// null ResourceProperties (CloudFormation omits them when the template gives none besides the
/// ServiceToken it consumes) become an empty object, with a RequestType of the three.
fn prepared(event: &Value) -> Result<Value, Error> {
    let mut event = event.clone();
    let Some(object) = event.as_object_mut() else {
        return Err(Error::BadEvent("the event is not a JSON object".into()));
    };
    let properties = object
        .entry("ResourceProperties")
        .or_insert_with(|| Value::Object(Default::default()));
    if properties.is_null() {
        *properties = Value::Object(Default::default());
    }
    if !properties.is_object() {
        return Err(Error::BadEvent(
            "ResourceProperties must be a JSON object".into(),
        ));
    }
    check_request_type(object.get("RequestType"))?;
    for (field, longest) in ECHOED {
        match object.get(*field) {
            None => {}
            Some(Value::String(v)) if v.len() > *longest => {
                return Err(Error::BadEvent(format!(
                    "{field} is longer than CloudFormation sends ({longest} bytes at most)"
                )));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(Error::BadEvent(format!("{field} must be a string"))),
        }
    }
    match object.get("OldResourceProperties") {
        None | Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(Error::BadEvent(
                "OldResourceProperties must be a JSON object".into(),
            ));
        }
    }
    Ok(event)
}

/// The fields an answer echoes, and the longest each can be: CloudFormation's own limits
/// (a RequestId is a UUID, a logical id at most 255 characters, a PhysicalResourceId at most
/// 1 KB) with room to spare, and small enough that the answer stays within its 4096 bytes.
const ECHOED: &[(&str, usize)] = &[
    ("StackId", 1024),
    ("RequestId", 128),
    ("LogicalResourceId", 255),
    ("PhysicalResourceId", 1024),
    ("ResourceType", 255),
];

/// Said here, naming the field: serde's own message for a wrong tag does not.
fn check_request_type(value: Option<&Value>) -> Result<(), Error> {
    match value {
        Some(Value::String(t)) if matches!(t.as_str(), "Create" | "Update" | "Delete") => Ok(()),
        Some(Value::String(t)) => Err(Error::BadEvent(format!(
            "RequestType {:?} is not valid; expected Create, Update or Delete",
            crate::cfn::truncate_utf8(t, 64)
        ))),
        Some(_) => Err(Error::BadEvent(
            "RequestType must be a string: Create, Update or Delete".into(),
        )),
        None => Err(Error::BadEvent(
            "RequestType is missing; expected Create, Update or Delete".into(),
        )),
    }
}

/// CloudFormation enforces 1..=3600 itself, so anything else here is not a timeout it will apply
/// and is better ignored than trusted.
fn service_timeout(properties: &Value) -> Option<Duration> {
    let secs = match properties.get("ServiceTimeout")? {
        Value::String(s) => s.parse::<u64>().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    (1..=MAX_SERVICE_TIMEOUT_SECS)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// The names of a properties object, for `Debug` output: the values may hold an ExternalId,
/// which must stay out of logs, and the names are enough to debug with.
pub(crate) fn property_names(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

// By hand: the properties may hold an ExternalId (see `property_names`).
impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("request_type", &self.request_type)
            .field("target", &self.target)
            .field("resource_type", &self.resource_type)
            .field(
                "resource_properties",
                &property_names(&self.resource_properties),
            )
            .field(
                "old_resource_properties",
                &self.old_resource_properties.as_ref().map(property_names),
            )
            .field("service_timeout", &self.service_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/\
                       arn%3Aaws?X-Amz-Signature=secret";

    fn create_event() -> Value {
        json!({
            "RequestType": "Create",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:vg",
            "ResponseURL": URL,
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
            "RequestId": "req-1",
            "LogicalResourceId": "DataVendorAccess",
            "ResourceType": "Custom::VendorGrant",
            "ResourceProperties": {
                "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:vg",
                "Vendor": "scale-ai",
                "ExternalId": "very-secret-external-id",
                "ServiceTimeout": "120"
            }
        })
    }

    #[test]
    fn request_type_displays_the_cloudformation_word() {
        assert_eq!(RequestType::Create.to_string(), "Create");
        assert_eq!(RequestType::Update.to_string(), "Update");
        assert_eq!(RequestType::Delete.to_string(), "Delete");
    }

    #[test]
    fn parses_a_create() {
        let e = Envelope::parse(&create_event()).unwrap();
        assert_eq!(e.request_type, RequestType::Create);
        assert_eq!(e.target.response_url, URL);
        assert_eq!(e.target.request_id, "req-1");
        assert_eq!(e.target.logical_resource_id, "DataVendorAccess");
        assert_eq!(e.target.physical_resource_id, None);
        assert_eq!(e.resource_type, "Custom::VendorGrant");
        assert_eq!(e.resource_properties["Vendor"], "scale-ai");
        assert_eq!(e.old_resource_properties, None);
        assert_eq!(e.service_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn parses_update_and_delete() {
        let mut update = create_event();
        update["RequestType"] = json!("Update");
        update["PhysicalResourceId"] = json!("vg-abc");
        update["OldResourceProperties"] = json!({"Vendor": "telus"});
        let e = Envelope::parse(&update).unwrap();
        assert_eq!(e.request_type, RequestType::Update);
        assert_eq!(e.target.physical_resource_id.as_deref(), Some("vg-abc"));
        assert_eq!(e.old_resource_properties, Some(json!({"Vendor": "telus"})));

        let mut delete = create_event();
        delete["RequestType"] = json!("Delete");
        delete["PhysicalResourceId"] = json!("vg-abc");
        let e = Envelope::parse(&delete).unwrap();
        assert_eq!(e.request_type, RequestType::Delete);
        assert_eq!(e.target.physical_resource_id.as_deref(), Some("vg-abc"));
        assert_eq!(e.old_resource_properties, None);
    }

    #[test]
    fn missing_or_null_resource_properties_become_an_empty_object() {
        for props in [None, Some(Value::Null)] {
            let mut event = create_event();
            match props {
                None => event.as_object_mut().unwrap().remove("ResourceProperties"),
                Some(v) => event
                    .as_object_mut()
                    .unwrap()
                    .insert("ResourceProperties".into(), v),
            };
            let e = Envelope::parse(&event).unwrap();
            assert_eq!(e.resource_properties, json!({}));
            assert_eq!(e.service_timeout, None);
        }
    }

    #[test]
    fn strict_parse_says_what_is_wrong() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("a string"), "not a JSON object"),
            (json!({"ResponseURL": URL}), "RequestType"),
            (
                {
                    let mut e = create_event();
                    e["RequestType"] = json!("delete");
                    e
                },
                "delete",
            ),
            (
                {
                    let mut e = create_event();
                    e.as_object_mut().unwrap().remove("RequestId");
                    e
                },
                "RequestId",
            ),
            (
                {
                    let mut e = create_event();
                    e["RequestType"] = json!("Update");
                    e
                },
                "PhysicalResourceId",
            ),
            (
                {
                    let mut e = create_event();
                    e["ResourceProperties"] = json!([1]);
                    e
                },
                "ResourceProperties",
            ),
        ];
        for (event, needle) in cases {
            let err = Envelope::parse(&event).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(!err.contains("X-Amz-Signature"), "{err}");
        }
    }

    #[test]
    fn service_timeout_accepts_only_whole_seconds_in_range() {
        let cases = [
            (json!("1"), Some(1)),
            (json!("3600"), Some(3600)),
            (json!(60), Some(60)),
            (json!("0"), None),
            (json!("3601"), None),
            (json!("-5"), None),
            (json!("1.5"), None),
            (json!(1.5), None),
            (json!(" 60"), None),
            (json!("soon"), None),
            (json!(true), None),
            (json!(null), None),
        ];
        for (value, want) in cases {
            let got = service_timeout(&json!({ "ServiceTimeout": value.clone() }));
            assert_eq!(got, want.map(Duration::from_secs), "{value}");
        }
    }

    #[test]
    fn lenient_target_from_any_object_with_a_response_url() {
        let t = ResponseTarget::from_event(&json!({"ResponseURL": URL, "RequestId": 5})).unwrap();
        assert_eq!(t.response_url, URL);
        assert_eq!(t.request_id, "");
        assert_eq!(t.stack_id, "");
        assert_eq!(t.physical_resource_id, None);

        let t = ResponseTarget::from_event(&create_event()).unwrap();
        assert_eq!(t.logical_resource_id, "DataVendorAccess");

        assert_eq!(ResponseTarget::from_event(&json!({"ResponseURL": 1})), None);
        assert_eq!(ResponseTarget::from_event(&json!({})), None);
        assert_eq!(ResponseTarget::from_event(&json!([URL])), None);
    }

    #[test]
    fn debug_hides_the_url_and_property_values() {
        let e = Envelope::parse(&create_event()).unwrap();
        let shown = format!("{e:?} {:?}", e.target);
        assert!(!shown.contains("X-Amz-Signature"), "{shown}");
        assert!(!shown.contains("amazonaws.com"), "{shown}");
        assert!(!shown.contains("very-secret-external-id"), "{shown}");
        assert!(shown.contains("ExternalId"), "{shown}");
        assert!(shown.contains("req-1"), "{shown}");
    }
}
