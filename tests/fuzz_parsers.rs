//! The parsers fuzzed with generated input (proptest): the CloudFormation envelope, the grant's
//! ResourceProperties, IAM policy documents, the ResponseURL allow-list and the answer body. Each
//! property runs a fixed number of cases (see `CASES_*`) and asserts something beyond "no panic":
//! what a successful parse returns, what an error names, what a round trip keeps, what a
//! reformatting does not change.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value, json};
use vendor_grants::catalog::{AccessLevel, Catalog, ExternalIdPolicy, Mode, Requirement};
use vendor_grants::cfn::{
    AllowList, Answer, Envelope, MAX_BODY_BYTES, RequestType, ResponseTarget, Status, render,
};
use vendor_grants::grant::properties::CLOUDFORMATION_PROPERTIES;
use vendor_grants::grant::{
    self, GrantProperties, RawProperties, VALID_PROPERTIES, derive_grant_id,
    grant_id_from_physical, physical_resource_id,
};
use vendor_grants::policy::canonical::fingerprint;
use vendor_grants::policy::ownership::remove;
use vendor_grants::policy::{Claim, GrantId, PolicyDocument, Purpose, documents_equivalent};

const CASES_ENVELOPE: u32 = 768;
const CASES_PROPERTIES: u32 = 768;
const CASES_POLICY: u32 = 512;
const CASES_URL: u32 = 1000;
const CASES_BODY: u32 = 384;

/// A signature-like query part: it must never reach an error message.
const SECRET_QUERY: &str = "X-Amz-Signature=SigSECRET7c1f";
const SECRET_MARK: &str = "SigSECRET7c1f";

/// How every CloudFormation response bucket's name starts.
const RESPONSE_BUCKET: &str = "cloudformation-custom-resource-response-";

const CFN_KEYS: &[&str] = &[
    "RequestType",
    "ResponseURL",
    "StackId",
    "RequestId",
    "LogicalResourceId",
    "PhysicalResourceId",
    "ResourceType",
    "ResourceProperties",
    "OldResourceProperties",
    "ServiceToken",
    "ServiceTimeout",
];

const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

const DOCUMENT_KEYS: &[&str] = &["Version", "Id", "Statement"];

/// Strings that parsers tend to care about.
const SPECIAL_STRINGS: &[&str] = &[
    "",
    " ",
    "\t\n",
    "Create",
    "Update",
    "Delete",
    "create",
    "DELETE",
    "Custom::VendorGrant",
    "*",
    "null",
    "true",
    "0",
    "1",
    "60",
    "+60",
    "3600",
    "3601",
    "-1",
    "1.5",
    " 60",
    "18446744073709551616",
    "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
    "vendor-grants:0123456789abcdef:bucket",
    "vendor-grants:",
    "\u{0}",
    "\u{202e}",
    "é日🦀",
    "\"\\",
    "${aws:username}",
    "ServiceToken",
    "Vendor",
    "scale-ai",
    "telus",
    "2012-10-17",
    "Allow",
    "Deny",
];

/// A fixed number of cases, unless PROPTEST_CASES asks for another (a longer fuzzing run:
/// `PROPTEST_CASES=20000 cargo test --release --test fuzz_parsers`). Failures are reported with
/// their minimal input rather than saved to a regressions file next to the test.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        failure_persistence: None,
        ..default
    }
}

// ------------------------------------------------------------------------------------------
// Generic generators.

/// Any text: arbitrary chars (control characters, surrogates' neighbours, RTL marks...),
/// printable ASCII, or a special string.
fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter),
        3 => proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap(),
        2 => select(SPECIAL_STRINGS).prop_map(str::to_owned),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..4000).prop_map(Value::from),
        // Only floats that read back as themselves: serde_json's default float parser may be
        // one ULP off, which is serde_json's business, not the parsers'.
        any::<f64>()
            .prop_filter("reads back exactly", |f| {
                serde_json::to_string(f)
                    .ok()
                    .and_then(|t| serde_json::from_str::<f64>(&t).ok())
                    .is_some_and(|g| g.to_bits() == f.to_bits())
            })
            .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
    .boxed()
}

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![
        2 => select(CFN_KEYS).prop_map(str::to_owned),
        2 => select(VALID_PROPERTIES).prop_map(str::to_owned),
        1 => select(STATEMENT_KEYS).prop_map(str::to_owned),
        1 => select(DOCUMENT_KEYS).prop_map(str::to_owned),
        3 => text(10),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text(16).prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels, with keys that the parsers look for mixed in.
fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((json_key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

fn json_object() -> BoxedStrategy<Value> {
    prop::collection::vec((json_key(), json_value()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
        .boxed()
}

/// `value` most of the time, now and then any JSON at all in its place.
fn mostly(value: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![6 => value, 1 => json_value()].boxed()
}

fn string_value(s: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    s.prop_map(Value::String).boxed()
}

/// A small deterministic generator for the reformatting transforms, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The same object with its keys in another order (JSON object order carries no meaning).
fn shuffle_keys(object: Map<String, Value>, rng: &mut Rng) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = object.into_iter().collect();
    rng.shuffle(&mut entries);
    entries.into_iter().collect()
}

/// Bytes `s` takes inside a JSON string as serde_json writes it.
fn escaped_len(s: &str) -> usize {
    serde_json::to_string(s).unwrap().len() - 2
}

// ------------------------------------------------------------------------------------------
// 1. The envelope.

fn secret_url() -> String {
    format!(
        "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws?{SECRET_QUERY}"
    )
}

/// A value of the type CloudFormation sends for `key` (mostly), or anything.
fn cfn_value_for(key: &'static str) -> BoxedStrategy<Value> {
    let typed = match key {
        "RequestType" => prop_oneof![
            4 => select(vec!["Create", "Update", "Delete"]).prop_map(str::to_owned),
            1 => text(8),
        ]
        .prop_map(Value::String)
        .boxed(),
        "ResponseURL" => prop_oneof![Just(secret_url()), text(30)]
            .prop_map(Value::String)
            .boxed(),
        "ResourceProperties" | "OldResourceProperties" => {
            prop_oneof![4 => json_object(), 1 => Just(Value::Null)].boxed()
        }
        "ServiceTimeout" => prop_oneof![
            (0u64..4000).prop_map(|n| json!(n.to_string())),
            (0u64..4000).prop_map(|n| json!(n)),
        ]
        .boxed(),
        _ => string_value(text(24)),
    };
    mostly(typed)
}

/// An object with the envelope's keys, each usually present and usually of the right type, so
/// that a fair share parses and the rest fails in every way.
fn cfn_event_like() -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<Value>>> = CFN_KEYS
        .iter()
        .map(|k| prop::option::weighted(0.9, cfn_value_for(k)).boxed())
        .collect();
    (
        fields,
        prop::collection::vec((json_key(), json_value()), 0..3),
        any::<u64>(),
    )
        .prop_map(|(fields, extra, seed)| {
            let mut object = Map::new();
            for (key, value) in CFN_KEYS.iter().zip(fields) {
                if let Some(value) = value {
                    object.insert((*key).to_owned(), value);
                }
            }
            for (key, value) in extra {
                object.insert(key, value);
            }
            Value::Object(shuffle_keys(object, &mut Rng::new(seed)))
        })
        .boxed()
}

/// The ServiceTimeout the envelope should report: a whole number of seconds in 1..=3600, given
/// as a JSON integer or a string of one (CloudFormation's own bounds).
fn expected_service_timeout(properties: &Value) -> Option<std::time::Duration> {
    let secs = match properties.get("ServiceTimeout")? {
        Value::String(s) => s.parse::<u64>().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    (1..=3600)
        .contains(&secs)
        .then(|| std::time::Duration::from_secs(secs))
}

#[derive(Debug, Clone)]
struct ValidEvent {
    event: Value,
    request_type: RequestType,
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_id: String,
    physical_id: String,
    resource_type: String,
    properties: Value,
    old_properties: Value,
}

/// A well-formed event with any strings for its ids and any properties object.
fn valid_event() -> BoxedStrategy<ValidEvent> {
    let ids = (text(40), text(40), text(20), text(20), text(30), text(20));
    let properties = (
        json_object(),
        prop_oneof![
            Just(None),
            (0u64..4000).prop_map(|n| Some(json!(n.to_string()))),
            (0u64..4000).prop_map(|n| Some(json!(n))),
            json_leaf().prop_map(Some),
        ],
        json_object(),
        0..3u8,
    );
    let extras = (
        prop::option::of(text(30)),
        prop::collection::vec((text(12), json_value()), 0..3),
        any::<u64>(),
    );
    (
        select(vec![
            RequestType::Create,
            RequestType::Update,
            RequestType::Delete,
        ]),
        ids,
        properties,
        extras,
    )
        .prop_map(
            |(
                request_type,
                (url, stack, request, logical, physical, rtype),
                (mut props, timeout, old, props_form),
                (token, extra, seed),
            )| {
                if let Some(t) = timeout {
                    props["ServiceTimeout"] = t;
                }
                let mut e = Map::new();
                e.insert("RequestType".into(), json!(request_type.to_string()));
                e.insert("ResponseURL".into(), json!(url));
                e.insert("StackId".into(), json!(stack));
                e.insert("RequestId".into(), json!(request));
                e.insert("LogicalResourceId".into(), json!(logical));
                e.insert("ResourceType".into(), json!(rtype));
                if let Some(token) = token {
                    e.insert("ServiceToken".into(), json!(token));
                }
                // Properties absent or null mean none (only when there are none to lose).
                let empty = props.as_object().is_some_and(Map::is_empty);
                match (props_form, empty) {
                    (1, true) => {}
                    (2, true) => {
                        e.insert("ResourceProperties".into(), Value::Null);
                    }
                    _ => {
                        e.insert("ResourceProperties".into(), props.clone());
                    }
                }
                if request_type != RequestType::Create {
                    e.insert("PhysicalResourceId".into(), json!(physical));
                }
                if request_type == RequestType::Update {
                    e.insert("OldResourceProperties".into(), old.clone());
                }
                for (k, v) in extra {
                    if !CFN_KEYS.contains(&k.as_str()) {
                        e.insert(k, v);
                    }
                }
                ValidEvent {
                    event: Value::Object(shuffle_keys(e, &mut Rng::new(seed))),
                    request_type,
                    response_url: url,
                    stack_id: stack,
                    request_id: request,
                    logical_id: logical,
                    physical_id: physical,
                    resource_type: rtype,
                    properties: props,
                    old_properties: old,
                }
            },
        )
        .boxed()
}

proptest! {
    #![proptest_config(config(CASES_ENVELOPE))]

    /// Any JSON at all: neither reading panics; the lenient one finds a target exactly when
    /// there is a string ResponseURL; whatever the strict one accepts, the lenient one reads the
    /// same way; no error carries the ResponseURL's signature.
    #[test]
    fn envelope_any_json(event in prop_oneof![1 => json_value(), 4 => cfn_event_like()]) {
        let strict = Envelope::parse(&event);
        let lenient = ResponseTarget::from_event(&event);
        let url = event.get("ResponseURL").and_then(Value::as_str);
        prop_assert_eq!(lenient.is_some(), url.is_some());
        if let Some(t) = &lenient {
            prop_assert_eq!(Some(t.response_url.as_str()), url);
            let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or_default();
            prop_assert_eq!(&t.stack_id, text("StackId"));
            prop_assert_eq!(&t.request_id, text("RequestId"));
            prop_assert_eq!(&t.logical_resource_id, text("LogicalResourceId"));
            prop_assert_eq!(
                t.physical_resource_id.as_deref(),
                event.get("PhysicalResourceId").and_then(Value::as_str)
            );
        }
        match strict {
            Ok(env) => {
                let t = lenient.expect("a parsed envelope has a ResponseURL");
                prop_assert_eq!(&env.target.response_url, &t.response_url);
                prop_assert_eq!(&env.target.stack_id, &t.stack_id);
                prop_assert_eq!(&env.target.request_id, &t.request_id);
                prop_assert_eq!(&env.target.logical_resource_id, &t.logical_resource_id);
                let request_type = env.request_type.to_string();
                prop_assert_eq!(Some(request_type.as_str()), event["RequestType"].as_str());
                match env.request_type {
                    RequestType::Create => prop_assert_eq!(&env.target.physical_resource_id, &None),
                    _ => prop_assert_eq!(&env.target.physical_resource_id, &t.physical_resource_id),
                }
                prop_assert!(env.resource_properties.is_object());
                prop_assert_eq!(
                    env.service_timeout,
                    expected_service_timeout(&env.resource_properties)
                );
                // Debug never shows the URL (its query is a signature).
                let shown = format!("{env:?}");
                prop_assert!(!shown.contains(SECRET_MARK), "{}", shown);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.trim().is_empty());
                prop_assert!(!message.contains(SECRET_MARK), "{}", message);
            }
        }
    }

    /// A well-formed event with any strings in it parses, and every field is what was sent.
    #[test]
    fn envelope_valid_event_round_trips(v in valid_event()) {
        let env = Envelope::parse(&v.event);
        prop_assert!(env.is_ok(), "{:?} refused: {:?}", v.event, env.err());
        let env = env.unwrap();
        prop_assert_eq!(env.request_type, v.request_type);
        prop_assert_eq!(&env.target.response_url, &v.response_url);
        prop_assert_eq!(&env.target.stack_id, &v.stack_id);
        prop_assert_eq!(&env.target.request_id, &v.request_id);
        prop_assert_eq!(&env.target.logical_resource_id, &v.logical_id);
        prop_assert_eq!(&env.resource_type, &v.resource_type);
        prop_assert_eq!(&env.resource_properties, &v.properties);
        prop_assert_eq!(env.service_timeout, expected_service_timeout(&v.properties));
        match v.request_type {
            RequestType::Create => {
                prop_assert_eq!(env.target.physical_resource_id.as_deref(), None);
                prop_assert_eq!(env.old_resource_properties.as_ref(), None);
            }
            RequestType::Update => {
                prop_assert_eq!(env.target.physical_resource_id.as_deref(), Some(v.physical_id.as_str()));
                prop_assert_eq!(env.old_resource_properties.as_ref(), Some(&v.old_properties));
            }
            RequestType::Delete => {
                prop_assert_eq!(env.target.physical_resource_id.as_deref(), Some(v.physical_id.as_str()));
                prop_assert_eq!(env.old_resource_properties.as_ref(), None);
            }
        }
        // The lenient reading agrees with the strict one.
        prop_assert_eq!(ResponseTarget::from_event(&v.event), Some(env.target.clone()));
        // And parsing is a function of the event.
        prop_assert!(Envelope::parse(&v.event).unwrap() == env);
    }

    /// Taking away any one required field, or giving it the wrong type, is refused, and the
    /// lenient reading still finds the target whenever the ResponseURL survives.
    #[test]
    fn envelope_a_broken_valid_event_is_refused(
        v in valid_event(),
        field in select(vec!["RequestType", "ResponseURL", "StackId", "RequestId",
                             "LogicalResourceId", "ResourceType", "PhysicalResourceId",
                             "ResourceProperties"]),
        replacement in prop_oneof![
            Just(None),
            Just(Some(json!(12))),
            Just(Some(json!(["x"]))),
            Just(Some(json!(true))),
        ],
    ) {
        // Null and a missing ResourceProperties both mean "none", and a Create has no
        // PhysicalResourceId to break.
        prop_assume!(!(field == "ResourceProperties" && replacement.is_none()));
        prop_assume!(!(field == "PhysicalResourceId" && v.request_type == RequestType::Create));
        let mut event = v.event.clone();
        let object = event.as_object_mut().unwrap();
        match replacement {
            None => { object.remove(field); }
            Some(r) => { object.insert(field.to_owned(), r); }
        }
        let err = Envelope::parse(&event);
        prop_assert!(err.is_err(), "{} broken ({:?}) was accepted", field, event.get(field));
        let target = ResponseTarget::from_event(&event);
        prop_assert_eq!(target.is_some(), field != "ResponseURL");
    }
}

/// Nesting as deep as serde_json reads from text (its limit is 128), inside ResourceProperties,
/// and beyond, as a hand-built value: neither reading panics and the answer can still be sent.
#[test]
fn envelope_deeply_nested_properties() {
    for depth in [1usize, 127, 128, 200, 500] {
        let mut deep = json!("leaf");
        for i in 0..depth {
            deep = if i % 2 == 0 {
                json!({ "a": deep })
            } else {
                json!([deep])
            };
        }
        let event = json!({
            "RequestType": "Create", "ResponseURL": secret_url(), "StackId": "s",
            "RequestId": "r", "LogicalResourceId": "l", "ResourceType": "Custom::VendorGrant",
            "ResourceProperties": {"Vendor": "telus", "Deep": deep},
        });
        // As on a Lambda runtime worker thread (tokio's default stack: 2 MiB).
        let ok = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let env = Envelope::parse(&event).is_ok();
                let target = ResponseTarget::from_event(&event).is_some();
                (env, target)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(ok, (true, true), "depth {depth}");
    }
}

// ------------------------------------------------------------------------------------------
// 2. ResourceProperties.

fn catalog() -> &'static Catalog {
    Catalog::builtin().expect("the builtin catalog")
}

fn account_id() -> BoxedStrategy<String> {
    "[0-9]{12}".boxed()
}

fn valid_bucket_name() -> BoxedStrategy<String> {
    // Conservative: letters and digits, single hyphens and dots between them, 3 to 63 long.
    "[a-z][a-z0-9]{2,15}(\\.[a-z0-9]{1,10})?(-[a-z0-9]{1,8}){0,3}"
        .prop_filter("reserved prefix", |b| {
            !b.starts_with("xn--") && !b.starts_with("sthree-")
        })
        .boxed()
}

fn valid_prefix() -> BoxedStrategy<String> {
    "[A-Za-z0-9_-]{1,10}(/[A-Za-z0-9_-]{1,10}){0,3}/?".boxed()
}

fn valid_key_reference() -> BoxedStrategy<String> {
    let uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    prop_oneof![
        proptest::string::string_regex(uuid).unwrap(),
        (account_id(), proptest::string::string_regex(uuid).unwrap())
            .prop_map(|(a, k)| format!("arn:aws:kms:us-east-1:{a}:key/{k}")),
        (account_id(), "[a-zA-Z0-9_-]{1,20}")
            .prop_map(|(a, n)| format!("arn:aws:kms:eu-west-2:{a}:alias/{n}")),
        "[a-zA-Z0-9_-]{1,20}".prop_map(|n| format!("alias/{n}")),
    ]
    .boxed()
}

/// Principals without commas, for the string form of VendorPrincipal (where a comma separates
/// principals).
fn valid_principal() -> BoxedStrategy<String> {
    principal_with_role_names("[A-Za-z0-9_+=.@-]{1,20}")
}

/// Principals whose role names may hold `,` (IAM allows it), for the list form, where each item
/// is one principal (see `vendor_principal_list_items_keep_their_commas`).
fn valid_principal_for_a_list() -> BoxedStrategy<String> {
    principal_with_role_names("[A-Za-z0-9_+=,.@-]{1,20}")
}

fn principal_with_role_names(role_name: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        account_id(),
        (account_id(), role_name).prop_map(|(a, r)| format!("arn:aws:iam::{a}:role/{r}")),
        account_id().prop_map(|a| format!("arn:aws:iam::{a}:root")),
    ]
    .boxed()
}

fn valid_external_id() -> BoxedStrategy<String> {
    prop_oneof![
        8 => "[A-Za-z0-9_+=,.@:/-]{2,64}",
        1 => "[A-Za-z0-9]{1200,1224}",
    ]
    .boxed()
}

fn valid_role_name() -> BoxedStrategy<String> {
    "[A-Za-z0-9_+=,.@-]{1,64}".boxed()
}

/// For a property, values of every kind: valid ones, typical mistakes, anything.
fn property_value_for(name: &str) -> BoxedStrategy<Value> {
    let ids: Vec<String> = catalog()
        .vendor_ids()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let typed: BoxedStrategy<Value> = match name {
        "Vendor" => prop_oneof![
            select(ids),
            select(vec!["SCALE-AI", " telus", "", "acme"]).prop_map(str::to_owned),
        ]
        .prop_map(Value::String)
        .boxed(),
        "BucketName" => prop_oneof![
            valid_bucket_name(),
            select(vec![
                "Bad_Bucket",
                "ab",
                "a..b",
                "192.168.1.1",
                "-abc",
                "abc-",
                "a b",
                "",
            ])
            .prop_map(str::to_owned),
            Just("a".repeat(64)),
        ]
        .prop_map(Value::String)
        .boxed(),
        "KmsKeyArn" => prop_oneof![
            valid_key_reference(),
            select(vec![
                "arn:aws:s3:::b",
                "alias/aws/s3",
                "key/abc",
                "arn:aws:kms:::key/x"
            ])
            .prop_map(str::to_owned),
        ]
        .prop_map(Value::String)
        .boxed(),
        "Mode" => select(vec!["role", "bucket-policy", "Role", "bucket_policy", ""])
            .prop_map(|s| json!(s))
            .boxed(),
        "Access" => select(vec![
            "read",
            "write",
            "read-write",
            "full",
            "admin",
            "READ",
            "",
        ])
        .prop_map(|s| json!(s))
        .boxed(),
        "Prefix" => prop_oneof![
            valid_prefix(),
            select(vec![
                "data/*",
                "${aws:username}/",
                "a\"b",
                "a\nb",
                "/data/",
                "?",
                ""
            ])
            .prop_map(str::to_owned),
        ]
        .prop_map(Value::String)
        .boxed(),
        "VendorPrincipal" => prop_oneof![
            valid_principal().prop_map(Value::String),
            prop::collection::vec(valid_principal(), 0..4).prop_map(|v| json!(v.join(", "))),
            prop::collection::vec(valid_principal(), 0..4).prop_map(|v| json!(v)),
            prop::collection::vec(valid_principal(), 21..23).prop_map(|v| json!(v)),
            Just(json!([1, "x"])),
        ]
        .boxed(),
        "ExternalId" => prop_oneof![
            valid_external_id(),
            select(vec!["Q", "has space", "semi;colon", ""]).prop_map(str::to_owned),
        ]
        .prop_map(Value::String)
        .boxed(),
        "RoleName" => prop_oneof![
            valid_role_name(),
            select(vec!["bad name", "", "r/ole"]).prop_map(str::to_owned),
            Just("R".repeat(65)),
        ]
        .prop_map(Value::String)
        .boxed(),
        _ => string_value(text(20)),
    };
    prop_oneof![5 => typed, 1 => json_value(), 1 => string_value(text(20))].boxed()
}

fn is_known(name: &str) -> bool {
    VALID_PROPERTIES.contains(&name) || CLOUDFORMATION_PROPERTIES.contains(&name)
}

fn unknown_name() -> BoxedStrategy<String> {
    prop_oneof![
        text(12),
        select(vec![
            "vendor",
            "BUCKETNAME",
            "Bucket",
            "Vendor ",
            " Vendor",
            "ExternalID",
            "KmsKeyId",
            "Principal",
            "servicetoken",
            "bucketName",
            "",
            "Vendor\u{0}",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_filter("not a known property", |n| !is_known(n))
    .boxed()
}

fn property_name() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(VALID_PROPERTIES).prop_map(str::to_owned),
        1 => select(CLOUDFORMATION_PROPERTIES).prop_map(str::to_owned),
        1 => unknown_name(),
    ]
    .boxed()
}

/// Maps of property names to values: random ones, and valid sets with one to three edits
/// (a property's value replaced by another drawn for it, a property taken away or one added),
/// which reach every check.
fn property_map() -> BoxedStrategy<Map<String, Value>> {
    let entry = || {
        property_name()
            .prop_flat_map(|name| {
                let value = property_value_for(&name);
                (Just(name), value)
            })
            .boxed()
    };
    let random = prop::collection::vec(entry(), 0..10)
        .prop_map(|entries| entries.into_iter().collect::<Map<String, Value>>());
    let edited = valid_properties().prop_flat_map(move |valid| {
        let map = valid.json.as_object().unwrap().clone();
        let keys: Vec<String> = map.keys().cloned().collect();
        let replace = select(keys)
            .prop_flat_map(|key| {
                let value = property_value_for(&key);
                (Just(key), value)
            })
            .prop_map(|(k, v)| (0u8, k, v));
        let remove =
            select(map.keys().cloned().collect::<Vec<_>>()).prop_map(|k| (1u8, k, Value::Null));
        let add = entry().prop_map(|(k, v)| (2u8, k, v));
        let edit = prop_oneof![replace, remove, add];
        (Just(map), prop::collection::vec(edit, 1..4)).prop_map(|(mut map, edits)| {
            for (kind, key, value) in edits {
                if kind == 1 {
                    map.remove(&key);
                } else {
                    map.insert(key, value);
                }
            }
            map
        })
    });
    prop_oneof![1 => random, 2 => edited].boxed()
}

/// Whether `map` gives `name` a value the parser reads as given (not absent, null or blank).
fn given(map: &Map<String, Value>, name: &str) -> bool {
    let non_blank = |s: &str| !s.trim().is_empty();
    match (name, map.get(name)) {
        (_, None | Some(Value::Null)) => false,
        ("VendorPrincipal", Some(Value::String(s))) => s.split(',').any(non_blank),
        ("VendorPrincipal", Some(Value::Array(items))) => items.iter().any(|i| match i {
            Value::String(s) => s.split(',').any(non_blank),
            _ => true,
        }),
        ("ExternalId", Some(Value::String(s))) => !s.is_empty(),
        // A blank Prefix is refused, never read as absent (issue 20).
        ("Prefix", Some(Value::String(_))) => true,
        (_, Some(Value::String(s))) => non_blank(s),
        _ => true,
    }
}

/// Whether the parser reads `value` of `name` as a string (or, for VendorPrincipal, strings).
fn readable(name: &str, value: &Value) -> bool {
    let scalar = |v: &Value| !(v.is_array() || v.is_object());
    match (name, value) {
        ("VendorPrincipal", Value::Array(items)) => {
            items.iter().all(|i| i.is_string() || i.is_number())
        }
        ("VendorPrincipal", v) => v.is_null() || v.is_string() || v.is_number(),
        (_, v) => scalar(v),
    }
}

/// An error names the property at fault: one the input has (or, when missing, lacks).
fn check_error_names_its_property(
    map: &Map<String, Value>,
    err: &grant::Error,
) -> Result<(), TestCaseError> {
    let message = err.to_string();
    prop_assert!(!message.trim().is_empty(), "{:?}", err);
    match err {
        grant::Error::UnknownProperty { property } => {
            prop_assert!(map.contains_key(property), "{}", message);
            prop_assert!(!is_known(property), "{}", message);
            prop_assert!(message.contains(property.as_str()), "{}", message);
        }
        grant::Error::NotAString { property } => {
            prop_assert!(VALID_PROPERTIES.contains(&property.as_str()), "{}", message);
            prop_assert!(
                map.get(property).is_some_and(|v| !readable(property, v)),
                "{} but {:?}",
                message,
                map.get(property)
            );
            prop_assert!(message.contains(property.as_str()), "{}", message);
        }
        grant::Error::Missing { property, .. } => {
            prop_assert!(VALID_PROPERTIES.contains(property), "{}", message);
            prop_assert!(
                !given(map, property),
                "{} but {:?}",
                message,
                map.get(*property)
            );
            prop_assert!(message.contains(property), "{}", message);
        }
        grant::Error::InvalidValue { property, .. } | grant::Error::Secret { property, .. } => {
            prop_assert!(VALID_PROPERTIES.contains(property), "{}", message);
            prop_assert!(
                given(map, property),
                "{} but {:?}",
                message,
                map.get(*property)
            );
            prop_assert!(message.contains(property), "{}", message);
        }
        grant::Error::PrincipalKind { value, .. }
        | grant::Error::AccountWithoutExternalId { value, .. } => {
            prop_assert!(given(map, "VendorPrincipal"), "{}", message);
            prop_assert!(message.starts_with("VendorPrincipal "), "{}", message);
            prop_assert!(message.contains(value.as_str()), "{}", message);
        }
        grant::Error::Policy(vendor_grants::policy::Error::InvalidPrefix { .. }) => {
            prop_assert!(given(map, "Prefix"), "{}", message);
            prop_assert!(message.contains("Prefix"), "{}", message);
        }
        other => prop_assert!(
            false,
            "unexpected kind of properties error: {:?} ({})",
            other,
            message
        ),
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct ValidProperties {
    json: Value,
    vendor: String,
    bucket: String,
    kms_key: Option<String>,
    mode: Mode,
    access: Option<AccessLevel>,
    prefix: Option<String>,
    principals: Vec<String>,
    external_id: Option<String>,
    role_name: Option<String>,
}

/// `principals` made the kind the vendor's guide names: an account becomes a role of it.
fn of_kind(vendor: &vendor_grants::catalog::VendorProfile, principals: Vec<String>) -> Vec<String> {
    use vendor_grants::catalog::PrincipalKind;
    principals
        .into_iter()
        .map(|p| match PrincipalKind::of(&p) {
            Some(k) if !vendor.principal.kinds.contains(&k) => {
                let account = p
                    .trim_start_matches("arn:aws:iam::")
                    .trim_end_matches(":root");
                format!("arn:aws:iam::{account}:role/vendor")
            }
            _ => p,
        })
        .collect()
}

/// Property sets the contract accepts, for every vendor of the catalog and every mode it
/// supports, with optional properties given, omitted, null or blank, in any order.
fn valid_properties() -> BoxedStrategy<ValidProperties> {
    let vendors = catalog().vendors.len();
    let parts = (
        0..vendors,
        prop::option::of(0..2usize),
        valid_bucket_name(),
        prop::option::of(valid_prefix()),
        prop::option::of(select(AccessLevel::ALL.to_vec())),
        prop::option::of(valid_key_reference()),
        prop::collection::vec(valid_principal(), 1..=20),
        0..3u8,
    );
    let more = (
        valid_external_id(),
        prop::option::of(valid_role_name()),
        prop::option::of(text(20)),
        prop::option::of(0u64..4000),
        prop::collection::vec(0..3u8, 5),
        prop::collection::vec(valid_principal_for_a_list(), 1..=20),
    );
    (parts, more)
        .prop_map(
            |(
                (v, mode_choice, bucket, prefix, access, key, principals, principal_form),
                (external_id, role_name, token, timeout, blanks, listed),
            )| {
                let vendor = &catalog().vendors[v];
                let mut entries: Vec<(String, Value)> = vec![
                    ("Vendor".into(), json!(vendor.id)),
                    ("BucketName".into(), json!(bucket)),
                ];
                // An omitted optional property: absent, null or blank, by `how`.
                let mut omit = |name: &str, how: u8| match how {
                    1 => entries.push((name.into(), Value::Null)),
                    2 => entries.push((name.into(), json!(""))),
                    _ => {}
                };
                let mode = match mode_choice {
                    Some(i) => vendor.modes[i % vendor.modes.len()],
                    None => vendor.default_mode(),
                };
                if mode_choice.is_none() {
                    omit("Mode", blanks[0]);
                }
                let access = if vendor.has_default_access(mode) {
                    access
                } else {
                    access.or(Some(AccessLevel::Read))
                };
                if access.is_none() {
                    omit("Access", blanks[1]);
                }
                let kms_key = if vendor.requirements.contains(&Requirement::SseKmsWithKey) {
                    key.or_else(|| Some("alias/data".to_owned()))
                } else {
                    key
                };
                if kms_key.is_none() {
                    omit("KmsKeyArn", blanks[2]);
                }
                if prefix.is_none() {
                    // Absent or null: a blank Prefix is refused (issue 20).
                    omit("Prefix", blanks[3] % 2);
                }
                let principals = if !vendor.needs_vendor_principal() {
                    omit("VendorPrincipal", blanks[4]);
                    Vec::new()
                } else if principal_form == 2 {
                    // Given as a list: role names with commas come back whole.
                    of_kind(vendor, listed)
                } else {
                    of_kind(vendor, principals)
                };
                let external_id = (mode == Mode::Role
                    && vendor
                        .role
                        .as_ref()
                        .is_some_and(|r| r.external_id == ExternalIdPolicy::Required))
                .then_some(external_id);
                let role_name = role_name.filter(|_| mode == Mode::Role);

                let mut entries = entries;
                if mode_choice.is_some() {
                    entries.push(("Mode".into(), json!(mode.as_str())));
                }
                if let Some(a) = access {
                    entries.push(("Access".into(), json!(a.as_str())));
                }
                if let Some(k) = &kms_key {
                    entries.push(("KmsKeyArn".into(), json!(k)));
                }
                if let Some(p) = &prefix {
                    entries.push(("Prefix".into(), json!(p)));
                }
                if !principals.is_empty() {
                    let value = match principal_form {
                        0 if principals.len() == 1 => json!(principals[0]),
                        1 => json!(principals.join(",")),
                        _ => json!(principals),
                    };
                    entries.push(("VendorPrincipal".into(), value));
                }
                if let Some(x) = &external_id {
                    entries.push(("ExternalId".into(), json!(x)));
                }
                if let Some(r) = &role_name {
                    entries.push(("RoleName".into(), json!(r)));
                }
                if let Some(t) = token {
                    entries.push(("ServiceToken".into(), json!(t)));
                }
                if let Some(t) = timeout {
                    entries.push(("ServiceTimeout".into(), json!(t.to_string())));
                }
                (
                    entries,
                    mode,
                    access,
                    kms_key,
                    prefix,
                    principals,
                    external_id,
                    role_name,
                    vendor.id.clone(),
                    bucket,
                )
            },
        )
        .prop_flat_map(
            |(
                entries,
                mode,
                access,
                kms_key,
                prefix,
                principals,
                external_id,
                role_name,
                vendor,
                bucket,
            )| {
                (
                    Just(entries).prop_shuffle(),
                    Just((
                        mode,
                        access,
                        kms_key,
                        prefix,
                        principals,
                        external_id,
                        role_name,
                        vendor,
                        bucket,
                    )),
                )
            },
        )
        .prop_map(
            |(
                entries,
                (mode, access, kms_key, prefix, principals, external_id, role_name, vendor, bucket),
            )| {
                ValidProperties {
                    json: Value::Object(entries.into_iter().collect()),
                    vendor,
                    bucket,
                    kms_key,
                    mode,
                    access,
                    prefix,
                    principals,
                    external_id,
                    role_name,
                }
            },
        )
        .boxed()
}

/// ExternalIds to keep secret: valid ones and invalid ones (spaces, unicode, control
/// characters, too long), all long enough that finding one in a message is no coincidence.
fn secret_external_id() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[A-Za-z0-9_+=,.@:/-]{10,64}",
        1 => "[A-Za-z0-9]{6,12} [A-Za-z0-9;\"'<>]{4,12}",
        1 => "[a-z]{1225,1240}",
        2 => prop::collection::vec(any::<char>(), 10..40).prop_map(String::from_iter),
    ]
    .prop_filter("long enough to recognise", |s| {
        s.chars().count() >= 10 && !s.trim().is_empty()
    })
    .boxed()
}

proptest! {
    #![proptest_config(config(CASES_PROPERTIES))]

    /// Any map of names to values: no panic; an error names the property at fault; a lenient
    /// reading (for Delete) never panics and agrees with the strict one whenever that succeeds;
    /// a success is deterministic and keeps the values as given.
    #[test]
    fn properties_any_map(map in property_map(), not_an_object in prop::option::weighted(0.05, json_leaf())) {
        let value = not_an_object.unwrap_or_else(|| Value::Object(map.clone()));
        let lenient = RawProperties::from_json_lenient(&value);
        if let Ok(raw) = RawProperties::from_json(&value) {
            prop_assert_eq!(&raw, &lenient);
        }
        match GrantProperties::from_json(&value, catalog()) {
            Err(err) => match &value {
                Value::Object(map) => check_error_names_its_property(map, &err)?,
                // null: no properties at all
                Value::Null => check_error_names_its_property(&Map::new(), &err)?,
                _ => prop_assert!(err.to_string().contains("ResourceProperties"), "{}", err),
            },
            Ok(p) => {
                prop_assert!(value.is_object());
                // Values as given: a string, or a scalar as its text (CloudFormation sends
                // every scalar as a string).
                let as_given = |name: &str| match map.get(name) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v @ (Value::Bool(_) | Value::Number(_))) => Some(v.to_string()),
                    _ => None,
                };
                prop_assert_eq!(Some(p.vendor.clone()), as_given("Vendor"));
                prop_assert_eq!(Some(p.bucket_name.clone()), as_given("BucketName"));
                prop_assert!(catalog().vendor(&p.vendor).unwrap().modes.contains(&p.mode));
                let again = GrantProperties::from_json(&value, catalog());
                prop_assert_eq!(again.as_ref(), Ok(&p));
                let id = derive_grant_id("stack", "logical", &p);
                prop_assert_eq!(&derive_grant_id("stack", "logical", &again.unwrap()), &id);
                let physical = physical_resource_id(&id, &p.bucket_name);
                prop_assert_eq!(grant_id_from_physical(&physical), Some(id));
            }
        }
    }

    /// A name that is not a property is always refused; first in the map, it is the one named.
    #[test]
    fn properties_unknown_names_are_refused(
        unknown in unknown_name(),
        rest in property_map(),
        first in any::<bool>(),
    ) {
        let mut map = Map::new();
        if first {
            map.insert(unknown.clone(), json!("x"));
            map.extend(rest.into_iter().filter(|(k, _)| *k != unknown));
        } else {
            map.extend(rest.into_iter().filter(|(k, _)| *k != unknown));
            map.insert(unknown.clone(), json!("x"));
        }
        let value = Value::Object(map.clone());
        let err = GrantProperties::from_json(&value, catalog());
        prop_assert!(err.is_err(), "{:?} accepted", unknown);
        let err = err.unwrap_err();
        check_error_names_its_property(&map, &err)?;
        prop_assert!(RawProperties::from_json(&value).is_err());
        if first {
            prop_assert_eq!(&err, &grant::Error::UnknownProperty { property: unknown.clone() });
            let message = err.to_string();
            prop_assert!(message.contains(&unknown), "{}", message);
            for valid in VALID_PROPERTIES {
                prop_assert!(message.contains(valid), "{} lacks {}", message, valid);
            }
        }
    }

    /// Valid property sets of every vendor and mode parse, to exactly what was given.
    #[test]
    fn properties_valid_sets_parse(v in valid_properties()) {
        let parsed = GrantProperties::from_json(&v.json, catalog());
        prop_assert!(parsed.is_ok(), "{} refused: {}", v.json, parsed.unwrap_err());
        let p = parsed.unwrap();
        prop_assert_eq!(&p.vendor, &v.vendor);
        prop_assert_eq!(&p.bucket_name, &v.bucket);
        prop_assert_eq!(&p.kms_key, &v.kms_key);
        prop_assert_eq!(p.mode, v.mode);
        prop_assert_eq!(p.access, v.access);
        prop_assert_eq!(&p.prefix, &v.prefix);
        prop_assert_eq!(&p.vendor_principals, &v.principals);
        prop_assert_eq!(&p.external_id, &v.external_id);
        prop_assert_eq!(&p.role_name, &v.role_name);
        prop_assert_eq!(GrantProperties::from_json(&v.json, catalog()), Ok(p.clone()));
        prop_assert_eq!(RawProperties::from_json_lenient(&v.json), RawProperties::from_json(&v.json).unwrap());
    }

    /// Whatever else is wrong, an ExternalId never appears in an error, shown or debugged.
    #[test]
    fn properties_external_id_never_in_an_error(
        secret in secret_external_id(),
        breakage in 0..16u8,
        noise in property_map(),
        bucket in valid_bucket_name(),
        principal in valid_principal(),
    ) {
        let mut map = Map::new();
        map.insert("Vendor".into(), json!("scale-ai"));
        map.insert("BucketName".into(), json!(bucket));
        map.insert("ExternalId".into(), json!(secret));
        let must_fail = match breakage {
            0 => false,
            1 => { map.insert("Vendor".into(), json!("acme")); true }
            2 => { map.remove("Vendor"); true }
            3 => { map.insert("BucketName".into(), json!("Bad_Bucket")); true }
            4 => { map.insert("Mode".into(), json!("bucket-policy")); true }
            5 => { map.insert("Vendor".into(), json!("telus")); true }
            6 => {
                map.insert("Vendor".into(), json!("vcc"));
                map.insert("VendorPrincipal".into(), json!(principal));
                true
            }
            7 => { map.insert("Access".into(), json!("admin")); true }
            8 => { map.insert("Prefix".into(), json!("data/*")); true }
            9 => { map.insert("Bucket".into(), json!("x")); true }
            10 => { map.insert("RoleName".into(), json!("bad name")); true }
            11 => { map.insert("KmsKeyArn".into(), json!("arn:aws:s3:::b")); true }
            12 => { map.insert("VendorPrincipal".into(), json!(principal)); true }
            13 => { map.insert("Mode".into(), json!("Role")); true }
            14 => { map.insert("Vendor".into(), json!("custom")); true }
            _ => {
                // Anything else around it (but never the secret as another value).
                for (k, v) in noise {
                    if k != "ExternalId" {
                        map.insert(k, v);
                    }
                }
                false
            }
        };
        let result = GrantProperties::from_json(&Value::Object(map.clone()), catalog());
        if must_fail {
            prop_assert!(result.is_err(), "breakage {} accepted: {:?}", breakage, map);
        }
        if let Err(err) = result {
            let shown = err.to_string();
            let debugged = format!("{err:?}");
            prop_assert!(!shown.contains(&secret), "ExternalId leaked into {:?}", shown);
            prop_assert!(!debugged.contains(&secret), "ExternalId leaked into {:?}", debugged);
        }
    }

    /// A PhysicalResourceId that is ours gives its grant id back; any other string never panics
    /// and yields an id only when it starts `vendor-grants:<id>`.
    #[test]
    fn physical_resource_ids(
        bucket in text(70),
        any_string in prop_oneof![text(40), "vendor-grants:[0-9a-fx]{13,17}(:.{0,10})?"],
        seed in any::<[u8; 8]>(),
    ) {
        let id = GrantId::from_hex(&seed);
        prop_assert_eq!(grant_id_from_physical(&physical_resource_id(&id, &bucket)), Some(id));
        if let Some(found) = grant_id_from_physical(&any_string) {
            let ours = format!("vendor-grants:{found}");
            prop_assert!(any_string == ours || any_string.starts_with(&format!("{ours}:")), "{}", any_string);
        }
    }
}

/// Found by `properties_valid_sets_parse`: IAM allows `,` in a role name, and given as a list
/// (CloudFormation's CommaDelimitedList), each item is one principal; splitting the items again
/// on commas turns one valid role ARN into two invalid principals.
#[test]
fn vendor_principal_list_items_keep_their_commas() {
    let role = "arn:aws:iam::111122223333:role/a,b";
    let p = GrantProperties::from_json(
        &json!({"Vendor": "vcc", "BucketName": "b-1", "VendorPrincipal": [role]}),
        catalog(),
    )
    .unwrap();
    assert_eq!(p.vendor_principals, vec![role]);
}

// ------------------------------------------------------------------------------------------
// 3. Policy documents.

const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "s3:*",
    "kms:Decrypt",
    "kms:GenerateDataKey*",
    "*",
    "S3:getobject",
    "sts:AssumeRole",
];

fn one_or_many(values: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        values.clone().prop_map(Value::String),
        prop::collection::vec(values, 0..4)
            .prop_map(|v| Value::Array(v.into_iter().map(Value::String).collect())),
    ]
    .boxed()
}

fn action() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(ACTIONS).prop_map(str::to_owned),
        2 => "[a-z0-9]{1,6}:[A-Za-z*]{1,12}",
        1 => text(10),
    ]
    .boxed()
}

fn resource() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "*",
            "arn:aws:s3:::b",
            "arn:aws:s3:::b/*",
            "arn:aws:kms:us-east-1:111122223333:key/k",
        ])
        .prop_map(str::to_owned),
        "arn:aws:s3:::[a-z0-9-]{3,10}(/[a-z*]{0,5})?",
        text(12),
    ]
    .boxed()
}

fn aws_principal() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "*",
            "111122223333",
            "arn:aws:iam::111122223333:root",
            "arn:aws-cn:iam::444455556666:root",
            "arn:aws:iam::111122223333:role/R",
            "AROAEXAMPLEID12345678",
        ])
        .prop_map(str::to_owned),
        account_id(),
        account_id().prop_map(|a| format!("arn:aws:iam::{a}:root")),
        text(12),
    ]
    .boxed()
}

fn principal(wild: bool) -> BoxedStrategy<Value> {
    let kind_values = prop_oneof![
        3 => (Just("AWS".to_owned()), one_or_many(aws_principal())),
        1 => (Just("Service".to_owned()), one_or_many(select(vec!["cloudtrail.amazonaws.com", "logs.amazonaws.com"]).prop_map(str::to_owned).boxed())),
        1 => (Just("Federated".to_owned()), one_or_many(text(12))),
        1 => (Just("CanonicalUser".to_owned()), one_or_many("[0-9a-f]{64}".boxed())),
        1 => (text(8), one_or_many(text(8))),
    ];
    let p = prop_oneof![
        1 => Just(json!("*")),
        4 => prop::collection::vec(kind_values, 1..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
    ]
    .boxed();
    if wild { mostly(p) } else { p }
}

fn condition_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => text(12).prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => number(),
    ]
    .boxed()
}

/// Operator -> key -> value(s), with no two operators (nor two keys of one operator) equal
/// but for case, which would be one condition to IAM.
fn condition(wild: bool) -> BoxedStrategy<Value> {
    let op = prop_oneof![
        select(vec![
            "StringEquals",
            "StringLike",
            "Bool",
            "NumericLessThan",
            "IpAddress",
            "ArnLike",
            "ForAnyValue:StringEquals",
            "Null",
            "StringEqualsIfExists",
        ])
        .prop_map(str::to_owned),
        text(10),
    ];
    let key = prop_oneof![
        select(vec![
            "aws:SecureTransport",
            "aws:SourceIp",
            "s3:x-amz-acl",
            "aws:PrincipalArn",
            "sts:ExternalId",
            "kms:ViaService",
        ])
        .prop_map(str::to_owned),
        text(10),
    ];
    let value = prop_oneof![
        2 => condition_scalar(),
        2 => prop::collection::vec(condition_scalar(), 0..4).prop_map(Value::Array),
    ];
    let value = if wild {
        mostly(value.boxed())
    } else {
        value.boxed()
    };
    let dedupe = |kv: Vec<(String, Value)>| -> Map<String, Value> {
        let mut seen = BTreeSet::new();
        kv.into_iter()
            .filter(|(k, _)| seen.insert(k.to_ascii_lowercase()))
            .collect()
    };
    let keys =
        prop::collection::vec((key, value), 0..3).prop_map(move |kv| Value::Object(dedupe(kv)));
    let keys = if wild {
        mostly(keys.boxed())
    } else {
        keys.boxed()
    };
    prop::collection::vec((op, keys), 0..3)
        .prop_map(move |kv| Value::Object(dedupe(kv)))
        .boxed()
}

fn extra_key(reserved: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof!["[A-Z][A-Za-z]{2,8}", text(8)]
        .prop_filter("not a modelled key", move |k| {
            !reserved.contains(&k.as_str())
        })
        .boxed()
}

fn sid() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[A-Za-z0-9]{0,20}",
        1 => "VG[0-9a-f]{16}(BucketList|BucketObjects|KeyUse|Other)",
        1 => text(12),
    ]
    .boxed()
}

/// A statement in the shapes AWS accepts, plus fields nobody modelled. With `wild`, any element
/// may be any JSON instead.
fn statement(wild: bool) -> BoxedStrategy<Value> {
    let w = move |s: BoxedStrategy<Value>| if wild { mostly(s) } else { s };
    let effect = prop_oneof![
        4 => select(vec!["Allow", "Deny"]).prop_map(str::to_owned),
        1 => text(6),
    ];
    (
        (
            prop::option::of(w(string_value(sid()))),
            w(string_value(effect.boxed())),
        ),
        (0..3u8, principal(wild)),
        (0..4u8, w(one_or_many(action())), w(one_or_many(action()))),
        (
            0..4u8,
            w(one_or_many(resource())),
            w(one_or_many(resource())),
        ),
        prop::option::of(w(condition(wild))),
        prop::collection::vec((extra_key(STATEMENT_KEYS), json_value()), 0..2),
    )
        .prop_map(
            |((sid, effect), (pk, p), (ak, a, na), (rk, r, nr), condition, extra)| {
                let mut s = Map::new();
                if let Some(sid) = sid {
                    s.insert("Sid".into(), sid);
                }
                s.insert("Effect".into(), effect);
                match pk {
                    1 => {
                        s.insert("Principal".into(), p);
                    }
                    2 => {
                        s.insert("NotPrincipal".into(), p);
                    }
                    _ => {}
                }
                if ak & 1 == 1 {
                    s.insert("Action".into(), a);
                }
                if ak & 2 == 2 {
                    s.insert("NotAction".into(), na);
                }
                if rk & 1 == 1 {
                    s.insert("Resource".into(), r);
                }
                if rk & 2 == 2 {
                    s.insert("NotResource".into(), nr);
                }
                if let Some(c) = condition {
                    s.insert("Condition".into(), c);
                }
                for (k, v) in extra {
                    s.insert(k, v);
                }
                Value::Object(s)
            },
        )
        .boxed()
}

/// A whole document: optional Version and Id, a list of statements or a single statement
/// object, and document-level fields nobody modelled.
fn policy_document(wild: bool) -> BoxedStrategy<Value> {
    (
        prop::option::of(prop_oneof![
            Just("2012-10-17".to_owned()),
            Just("2008-10-17".to_owned()),
            text(10)
        ]),
        prop::option::of(text(12)),
        prop::collection::vec(statement(wild), 0..6),
        any::<bool>(),
        prop::collection::vec((extra_key(DOCUMENT_KEYS), json_value()), 0..2),
    )
        .prop_map(|(version, id, mut statements, single, extra)| {
            let mut d = Map::new();
            if let Some(v) = version {
                d.insert("Version".into(), json!(v));
            }
            if let Some(id) = id {
                d.insert("Id".into(), json!(id));
            }
            let statement = if single && statements.len() == 1 {
                statements.remove(0)
            } else {
                Value::Array(statements)
            };
            d.insert("Statement".into(), statement);
            for (k, v) in extra {
                d.insert(k, v);
            }
            Value::Object(d)
        })
        .boxed()
}

/// Random edits of a document's text: truncations, deletions, insertions.
fn mangled_policy_text() -> BoxedStrategy<String> {
    (
        policy_document(false),
        prop::collection::vec((any::<usize>(), 0..3u8, any::<char>()), 1..4),
    )
        .prop_map(|(doc, edits)| {
            let mut chars: Vec<char> = doc.to_string().chars().collect();
            for (at, kind, c) in edits {
                let at = at % (chars.len() + 1);
                match kind {
                    0 => chars.truncate(at),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, c),
                }
            }
            chars.into_iter().collect()
        })
        .boxed()
}

/// Equal JSON, but for floats one ULP apart: serde_json (built without `float_roundtrip`)
/// may read a float back one ULP off what it printed.
fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// Whatever parsed must print as JSON that parses back to the same document.
fn check_reparses(doc: &PolicyDocument) -> Result<(), TestCaseError> {
    let json = doc.to_json();
    let again = PolicyDocument::parse(&json, "bucket policy");
    prop_assert!(
        again.is_ok(),
        "{} does not parse back: {:?}",
        json,
        again.err()
    );
    let again = again.unwrap();
    let pretty = PolicyDocument::parse(&doc.to_json_pretty(), "bucket policy").unwrap();
    if again.to_value() != doc.to_value() {
        // Only a float read back one ULP off may differ.
        prop_assert!(json_close(&again.to_value(), &doc.to_value()), "{}", json);
        return Ok(());
    }
    prop_assert_eq!(&again, doc, "{}", json);
    prop_assert!(documents_equivalent(&again, doc));
    prop_assert_eq!(fingerprint(Some(&again)), fingerprint(Some(doc)));
    prop_assert_eq!(&pretty, doc);
    Ok(())
}

/// A string or list of strings in another form with the same meaning: elements reordered, a
/// one-element list as a bare string or the other way round, each element through `f`.
fn reformat_list(value: &Value, rng: &mut Rng, f: &dyn Fn(&str, &mut Rng) -> String) -> Value {
    let mut items: Vec<String> = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("not a string or list: {other}"),
    };
    items = items.iter().map(|s| f(s, rng)).collect();
    rng.shuffle(&mut items);
    if items.len() == 1 && rng.coin() {
        Value::String(items.remove(0))
    } else {
        Value::Array(items.into_iter().map(Value::String).collect())
    }
}

fn random_ascii_case(s: &str, rng: &mut Rng) -> String {
    s.chars()
        .map(|c| {
            if rng.coin() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `123456789012` and `arn:PARTITION:iam::123456789012:root` name the same principal.
fn swap_account_form(p: &str, rng: &mut Rng) -> String {
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if !rng.coin() {
        return p.to_owned();
    }
    if is_account(p) {
        return format!("arn:aws:iam::{p}:root");
    }
    if let Some(account) = p
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.strip_suffix(":root"))
        .filter(|a| is_account(a))
    {
        return account.to_owned();
    }
    p.to_owned()
}

fn reformat_principal(p: &Value, rng: &mut Rng) -> Value {
    match p {
        Value::String(s) if s == "*" && rng.coin() => json!({"AWS": "*"}),
        Value::String(_) => p.clone(),
        Value::Object(map) => {
            let only_aws_star = map.len() == 1
                && map.get("AWS").is_some_and(|v| match v {
                    Value::String(s) => s == "*",
                    Value::Array(items) => !items.is_empty() && items.iter().all(|i| i == "*"),
                    _ => false,
                });
            if only_aws_star && rng.coin() {
                return json!("*");
            }
            let mut out = Map::new();
            for (kind, values) in map {
                let values = if kind == "AWS" {
                    reformat_list(values, rng, &swap_account_form)
                } else {
                    reformat_list(values, rng, &|s, _| s.to_owned())
                };
                out.insert(kind.clone(), values);
            }
            Value::Object(shuffle_keys(out, rng))
        }
        other => panic!("not a principal: {other}"),
    }
}

fn reformat_condition(c: &Value, rng: &mut Rng) -> Value {
    let mut out = Map::new();
    for (op, keys) in c.as_object().unwrap() {
        let mut new_keys = Map::new();
        for (key, value) in keys.as_object().unwrap() {
            let value = match value {
                Value::Array(items) => {
                    let mut items = items.clone();
                    rng.shuffle(&mut items);
                    if items.len() == 1 && rng.coin() {
                        items.remove(0)
                    } else {
                        Value::Array(items)
                    }
                }
                scalar if rng.coin() => json!([scalar]),
                scalar => scalar.clone(),
            };
            new_keys.insert(random_ascii_case(key, rng), value);
        }
        out.insert(
            random_ascii_case(op, rng),
            Value::Object(shuffle_keys(new_keys, rng)),
        );
    }
    Value::Object(shuffle_keys(out, rng))
}

/// The same document as AWS might hand it back: statements and list elements reordered,
/// one-element lists as strings and back, action names, condition operators and condition
/// keys in other case, account ids as root ARNs and back, `{"AWS": "*"}` for `"*"`, keys
/// reordered; all of which canonical.rs says carry no meaning.
fn reformat_document(doc: &Value, rng: &mut Rng) -> Value {
    let mut doc = doc.as_object().unwrap().clone();
    let statements = match doc.remove("Statement").unwrap() {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut statements: Vec<Value> = statements
        .iter()
        .map(|s| {
            let mut out = Map::new();
            for (k, v) in s.as_object().unwrap() {
                let v = match k.as_str() {
                    "Action" | "NotAction" => reformat_list(v, rng, &random_ascii_case),
                    "Resource" | "NotResource" => reformat_list(v, rng, &|s, _| s.to_owned()),
                    "Principal" | "NotPrincipal" => reformat_principal(v, rng),
                    "Condition" => reformat_condition(v, rng),
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(shuffle_keys(out, rng))
        })
        .collect();
    rng.shuffle(&mut statements);
    let statement = if statements.len() == 1 && rng.coin() {
        statements.remove(0)
    } else {
        Value::Array(statements)
    };
    doc.insert("Statement".into(), statement);
    Value::Object(shuffle_keys(doc, rng))
}

/// A change of meaning to one statement (or a new statement when there is none).
fn change_meaning(doc: &Value, rng: &mut Rng) -> Value {
    let mut doc = doc.clone();
    let statements = match &mut doc["Statement"] {
        Value::Array(items) => items,
        single => {
            *single = Value::Array(vec![single.clone()]);
            single.as_array_mut().unwrap()
        }
    };
    if statements.is_empty() {
        statements.push(json!({"Effect": "Allow", "Action": "s3:GetObject"}));
        return doc;
    }
    let i = rng.below(statements.len());
    let s = statements[i].as_object_mut().unwrap();
    match rng.below(3) {
        0 => {
            let effect = if s["Effect"] == "Allow" {
                "Deny"
            } else {
                "Allow"
            };
            s.insert("Effect".into(), json!(effect));
        }
        1 => {
            let fresh = json!("arn:aws:s3:::vg-fuzz-fresh/*");
            match s.get_mut("Resource") {
                Some(Value::Array(items)) => items.push(fresh),
                Some(single) => *single = json!([single.clone(), fresh]),
                None => {
                    s.insert("Resource".into(), fresh);
                }
            }
        }
        _ => {
            let sid = match s.get("Sid").and_then(Value::as_str) {
                Some(sid) => format!("{sid}Fz"),
                None => "Fz".to_owned(),
            };
            s.insert("Sid".into(), json!(sid));
        }
    }
    doc
}

proptest! {
    #![proptest_config(config(CASES_POLICY))]

    /// Any text: no panic; an error names the document; what parses prints back to itself.
    #[test]
    fn policy_any_text(text in prop_oneof![
        2 => prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
        2 => json_value().prop_map(|v| v.to_string()),
        3 => mangled_policy_text(),
    ]) {
        match PolicyDocument::parse(&text, "bucket policy") {
            Ok(doc) => check_reparses(&doc)?,
            Err(e) => prop_assert!(e.to_string().contains("bucket policy"), "{}", e),
        }
    }

    /// Policy-shaped JSON with any value in any element: no panic; what parses round-trips.
    #[test]
    fn policy_any_shaped_json(value in prop_oneof![1 => json_value(), 4 => policy_document(true)]) {
        if let Ok(doc) = PolicyDocument::from_value(value, "key policy") {
            check_reparses(&doc)?;
        }
    }

    /// Documents of every shape AWS accepts parse; printing keeps the same JSON value (so a
    /// foreign statement, unknown fields and all, is written back as it came); the result parses
    /// back to the same document.
    #[test]
    fn policy_valid_documents_round_trip(value in policy_document(false)) {
        let doc = PolicyDocument::parse(&value.to_string(), "bucket policy");
        prop_assert!(doc.is_ok(), "{} refused: {:?}", value, doc.err());
        let doc = doc.unwrap();
        prop_assert_eq!(doc.to_value(), value.clone());
        let statements = match &value["Statement"] {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        prop_assert_eq!(doc.statements.len(), statements.len());
        for (parsed, original) in doc.statements.iter().zip(&statements) {
            prop_assert_eq!(&serde_json::to_value(parsed).unwrap(), original);
        }
        check_reparses(&doc)?;
    }

    /// The fingerprint and equivalence ignore what canonical.rs says carries no meaning, and
    /// notice a change that does.
    #[test]
    fn policy_fingerprint_is_stable_under_reformatting(value in policy_document(false), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let doc = PolicyDocument::from_value(value.clone(), "bucket policy").unwrap();
        let reformatted_value = reformat_document(&value, &mut rng);
        let reformatted = PolicyDocument::parse(&reformatted_value.to_string(), "bucket policy").unwrap();
        prop_assert!(
            documents_equivalent(&doc, &reformatted),
            "{} and {} differ", value, reformatted_value
        );
        prop_assert_eq!(
            fingerprint(Some(&doc)), fingerprint(Some(&reformatted)),
            "{} and {}", value, reformatted_value
        );
        prop_assert_ne!(fingerprint(Some(&doc)), fingerprint(None));

        let changed_value = change_meaning(&value, &mut rng);
        let changed = PolicyDocument::from_value(changed_value.clone(), "bucket policy").unwrap();
        prop_assert!(!documents_equivalent(&doc, &changed), "{} and {}", value, changed_value);
        prop_assert_ne!(fingerprint(Some(&doc)), fingerprint(Some(&changed)));
    }

    /// Removing a grant from any document takes out exactly the statements it owns and leaves
    /// every other statement, and the document around them, as it was.
    #[test]
    fn policy_remove_leaves_foreign_statements(
        value in policy_document(false),
        seed in any::<[u8; 8]>(),
        ours in prop::collection::vec((any::<usize>(), select(Purpose::ALL.to_vec())), 0..3),
    ) {
        let grant = GrantId::from_hex(&seed);
        let mut doc = PolicyDocument::from_value(value, "bucket policy").unwrap();
        let n = doc.statements.len();
        // Give some statements this grant's Sids; the claim decides which of them are ours.
        let claim = Claim::orphan(&grant, Some("arn:aws:s3:::b".to_string()));
        for (i, purpose) in ours {
            if n > 0 {
                doc.statements[i % n].sid = Some(grant.sid(purpose));
            }
        }
        let kept: Vec<_> = doc.statements.iter().filter(|s| !claim.owns(s)).cloned().collect();
        let removed = remove(Some(&doc), &claim, "bucket policy").unwrap();
        match &removed {
            None => prop_assert!(kept.is_empty()),
            Some(after) => {
                prop_assert_eq!(&after.statements, &kept);
                prop_assert_eq!(&after.version, &doc.version);
                prop_assert_eq!(&after.id, &doc.id);
                prop_assert_eq!(&after.extra, &doc.extra);
                if kept.len() == n {
                    prop_assert_eq!(after.to_value(), doc.to_value());
                }
            }
        }
        prop_assert_eq!(remove(removed.as_ref(), &claim, "bucket policy").unwrap(), removed);
    }
}

/// Text nested far deeper than serde_json's recursion limit is refused, not a stack overflow.
#[test]
fn policy_deeply_nested_text_is_refused() {
    for depth in [10usize, 1_000, 100_000] {
        let text = format!(
            "{{\"Statement\":{{\"Effect\":\"Allow\",\"X\":{}1{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || PolicyDocument::parse(&text, "bucket policy").is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, depth == 10, "depth {depth}");
    }
}

// ------------------------------------------------------------------------------------------
// 4. The ResponseURL allow-list.

/// URL-like strings: mostly well-formed URLs to hosts that are, or look like, loopback and
/// CloudFormation's response buckets, each part now and then replaced by a known trick
/// (userinfo, other schemes, encodings, numeric IPv4 forms, IPv6, lookalike or suffixed hosts,
/// ports, dot segments, backslashes, control characters), and some arbitrary strings.
fn url_like() -> BoxedStrategy<String> {
    let scheme = prop_oneof![
        6 => select(vec!["https", "http"]).prop_map(str::to_owned),
        2 => select(vec![
            "HTTP", "HtTpS", "ftp", "file", "ws", "wss", "javascript", "data", "gopher", "",
            "https+x",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{1,6}",
    ];
    let separator = prop_oneof![
        6 => Just("://"),
        1 => select(vec![":/", ":", ":\\\\", "://\t", ":///", "://\n", "", ":\\/"]),
    ];
    let userinfo = prop_oneof![
        6 => Just(""),
        1 => select(vec![
            "user@", "user:pass@", ":@", "@", "127.0.0.1@", "evil.com@", "%40@", "u%3Ap@",
            "127.0.0.1:80@", "a@b@",
        ]),
    ];
    let loopback_host = select(vec![
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.1.",
        "127.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.0.0.01",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
        "LOCALHOST",
        "127.0.0.1.nip.io",
        "127.0.0.1.evil.com",
        "evil.com",
        "１２７.０.０.１",
        "127。0。0。1",
        "127.0.0.1%00",
        "127.0.0.1%2e",
        "%31%32%37.0.0.1",
        "127.0.0.2",
        "0.0.0.0",
        "[::]",
        "127.0.0.1\t",
        "[127.0.0.1]",
    ]);
    let aws_host = select(vec![
        "s3.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
        "s3-us-west-2.amazonaws.com",
        "s3.dualstack.us-east-1.amazonaws.com",
        "s3.cn-north-1.amazonaws.com.cn",
        "cloudformation-custom-resource-response-useast1.s3.amazonaws.com",
        "cloudformation-custom-resource-response-useast1.s3.amazonaws.com",
        "cloudformation-custom-resource-response-useast1.s3.us-east-1.amazonaws.com",
        "cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn",
        "cloudformation-custom-resource-response-useast1.execute-api.us-east-1.amazonaws.com",
        "cloudformation-custom-resource-response-evil.s3.amazonaws.com",
        "cloudformation-custom-resource-response-useast1.s3.amazonaws.com.evil.com",
        "cloudformation-custom-resource-response-useast1.evil.com",
        "attacker.cloudformation-custom-resource-response-useast1.s3.amazonaws.com",
        "CLOUDFORMATION-CUSTOM-RESOURCE-RESPONSE-USEAST1.S3.AMAZONAWS.COM",
        "cloudformation-custom-resource-response-useast1.s3.amazonaws.com.",
        "cloudformation-custom-resource-response-useast1.s3.amazonaws.com%2f.evil.com",
        "x.amazonaws.com.cn",
        "amazonaws.com",
        "evil.com\\.amazonaws.com",
        "evil.com#.amazonaws.com",
        "evil.com?.amazonaws.com",
        "evil.com/.amazonaws.com",
        "s3.amazonaws.com.evil.com",
        "s3.amazonaws.com.",
        "S3.AmazonAWS.com",
        "s3.amazonaws.com\u{0}evil",
        "s3.amazonaws.com%2f.evil.com",
        "xn--s3-amazonaws-com",
        "s3．amazonaws．com",
    ]);
    let host = prop_oneof![
        3 => loopback_host.prop_map(str::to_owned),
        3 => aws_host.prop_map(str::to_owned),
        1 => text(16),
    ];
    let port = prop_oneof![
        5 => Just(""),
        2 => select(vec![
            ":", ":80", ":443", ":9000", ":0", ":65535", ":65536", ":-1", ":abc", ":00080",
        ]),
    ];
    let path = prop_oneof![
        3 => select(vec![
            "/cloudformation-custom-resource-response-useast1/k",
            "/cloudformation-custom-resource-response-cnnorth1/arn%3Aaws/x",
            "/cloudformation-custom-resource-response-useast1",
            "/./cloudformation-custom-resource-response-useast1/k",
            "/cloudformation-custom-resource-response-useast1/../../attacker/k",
            "/attacker/cloudformation-custom-resource-response-useast1/k",
            "//cloudformation-custom-resource-response-useast1/k",
            "/%63loudformation-custom-resource-response-useast1/k",
            "/cloudformation-custom-resource-response-useast1%2f..%2fattacker/k",
            "/CLOUDFORMATION-CUSTOM-RESOURCE-RESPONSE-USEAST1/k",
            "/cloudformation-custom-resource-response-/k",
        ]),
        3 => select(vec![
            "", "/", "/k", "/a/../b", "\\x", "//evil.com", "/%2e%2e/", "@evil.com",
            "#@evil.com", "/?x", "/bucket/key",
        ]),
    ];
    let path = prop_oneof![4 => path.prop_map(str::to_owned), 1 => text(10)];
    let tail = prop_oneof![4 => Just(""), 1 => select(vec!["#frag", "#@evil.com"])];
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..60).prop_map(String::from_iter),
        8 => (scheme, separator, userinfo, host, port, path, any::<bool>(), tail).prop_map(
            |(scheme, sep, user, host, port, path, query, tail)| {
                let query = if query { format!("?{SECRET_QUERY}") } else { String::new() };
                format!("{scheme}{sep}{user}{host}{port}{path}{query}{tail}")
            },
        ),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(CASES_URL))]

    /// With only `127.0.0.1` allowed, whatever is accepted goes to 127.0.0.1, over http or
    /// https, without userinfo; no error carries the URL's query; the default list only ever
    /// admits https to an AWS host below amazonaws.com(.cn).
    #[test]
    fn allow_list_checks_any_url(url in url_like()) {
        let loopback = AllowList::parse(Some("127.0.0.1"));
        match loopback.check(&url) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.host_str(), Some("127.0.0.1"), "{:?}", url);
                prop_assert!(matches!(parsed.scheme(), "http" | "https"), "{:?}", url);
                prop_assert_eq!(parsed.username(), "", "{:?}", url);
                prop_assert_eq!(parsed.password(), None, "{:?}", url);
                // What is sent is what was checked: the URL reads back the same way.
                let again = loopback.check(parsed.as_str());
                prop_assert!(again.is_ok(), "{:?} -> {}", url, parsed);
                prop_assert_eq!(again.unwrap(), parsed);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains(SECRET_MARK), "{}", message);
            }
        }

        // The default: https to a CloudFormation response bucket under amazonaws.com(.cn) only,
        // virtual-hosted or path-style, on the standard port.
        let default = AllowList::parse(None);
        match default.check(&url) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.scheme(), "https", "{:?}", url);
                prop_assert_eq!(parsed.username(), "", "{:?}", url);
                prop_assert_eq!(parsed.password(), None, "{:?}", url);
                prop_assert_eq!(parsed.port(), None, "{:?}", url);
                let host = parsed.host_str().unwrap_or_default();
                let below = |suffix: &str| {
                    host.strip_suffix(suffix).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
                };
                prop_assert!(below("amazonaws.com") || below("amazonaws.com.cn"), "{:?} -> {}", url, host);
                prop_assert!(
                    host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
                    "{:?} -> {}", url, host
                );
                let bucket_first = |name: &str| {
                    name.strip_prefix(RESPONSE_BUCKET).is_some_and(|region| {
                        !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    })
                };
                let virtual_hosted = host.split('.').next().is_some_and(bucket_first);
                let path_style = parsed.path_segments().and_then(|mut s| s.next()).is_some_and(bucket_first);
                prop_assert!(virtual_hosted || path_style, "{:?} is not a response bucket", url);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains(SECRET_MARK), "{}", message);
            }
        }

        let custom = AllowList::parse(Some("localhost,*.example.org,[::1]"));
        if let Ok(parsed) = custom.check(&url) {
            let host = parsed.host_str().unwrap_or_default();
            let loop_host = host == "localhost" || host == "[::1]";
            prop_assert!(loop_host || host.ends_with(".example.org"), "{:?} -> {}", url, host);
            prop_assert!(parsed.scheme() == "https" || (parsed.scheme() == "http" && loop_host), "{:?}", url);
        }
    }

    /// Any setting of VENDOR_GRANTS_RESPONSE_HOSTS: no panic, and the list it gives prints as a
    /// setting that gives the same list back.
    #[test]
    fn allow_list_parses_any_setting(
        entries in prop::collection::vec(prop_oneof![
            select(vec!["127.0.0.1", "[::1]", "::1", "*.amazonaws.com", "LOCALHOST", "*", "*.",
                        "host:9000", "a/b", " ", "", "[]", "*.*.x", "xn--bcher-kva.example"])
                .prop_map(str::to_owned),
            text(12),
        ], 0..5),
    ) {
        let setting = entries.join(",");
        let list = AllowList::parse(Some(&setting));
        let shown = list.to_string();
        prop_assert!(!shown.is_empty());
        // A blank setting means the default (described in words, not as a setting).
        let blank = setting.split(',').all(|e| e.trim().is_empty());
        if !blank && !shown.starts_with('(') {
            prop_assert_eq!(AllowList::parse(Some(&shown)), list, "{:?} -> {:?}", setting, shown);
        }
    }
}

// ------------------------------------------------------------------------------------------
// 5. The answer body.

fn reason() -> BoxedStrategy<Option<String>> {
    let units = vec![
        "a", "é", "日", "🦀", "\"", "\\", "\n", "\u{1}", "\u{7f}", "\u{2028}", "…", " ",
    ];
    prop_oneof![
        1 => Just(None),
        2 => prop::option::of(prop::collection::vec(any::<char>(), 0..300).prop_map(String::from_iter)),
        2 => prop::collection::vec(any::<char>(), 0..20_000)
            .prop_map(|c| Some(String::from_iter(c))),
        3 => (0..4200usize, select(units), 0..3000usize, text(20)).prop_map(|(fill, unit, n, tail)| {
            let mut s = "x".repeat(fill);
            s.push_str(&unit.repeat(n));
            s.push_str(&tail);
            Some(s)
        }),
        1 => select(vec!["", " ", "\n\t"]).prop_map(|s| Some(s.to_owned())),
    ]
    .boxed()
}

fn echoed_id() -> BoxedStrategy<String> {
    prop_oneof![9 => text(60), 1 => prop::collection::vec(any::<char>(), 500..1500).prop_map(String::from_iter)].boxed()
}

fn answer_data() -> BoxedStrategy<BTreeMap<String, String>> {
    prop_oneof![
        3 => prop::collection::btree_map(text(20), text(40), 0..5),
        1 => prop::collection::btree_map("[A-Za-z]{1,10}", "[a-z]{100,1200}", 1..8),
    ]
    .boxed()
}

/// The length of the body `render` would write with `reason` and `data` as they are.
fn natural_len(
    target: &ResponseTarget,
    physical: &str,
    status: Status,
    reason: &str,
    data: &BTreeMap<String, String>,
    no_echo: bool,
) -> usize {
    let status = match status {
        Status::Success => "SUCCESS",
        Status::Failed => "FAILED",
    };
    serde_json::to_vec(&json!({
        "Status": status, "Reason": reason, "PhysicalResourceId": physical,
        "StackId": target.stack_id, "RequestId": target.request_id,
        "LogicalResourceId": target.logical_resource_id, "NoEcho": no_echo, "Data": data,
    }))
    .unwrap()
    .len()
}

proptest! {
    #![proptest_config(config(CASES_BODY))]

    /// Whatever the Reason and data: the body is JSON with every field CloudFormation needs,
    /// within 4096 bytes whenever the echoed ids fit; the ids are never cut; the Reason is the
    /// original or its longest prefix (on a char boundary) that fits, data is dropped only when
    /// it cannot fit, and a FAILED always has a Reason.
    #[test]
    fn answer_body_fits_and_keeps_what_it_can(
        status in select(vec![Status::Success, Status::Failed]),
        reason in reason(),
        physical in prop_oneof![Just(String::new()), text(60)],
        data in answer_data(),
        (stack, request, logical) in (echoed_id(), echoed_id(), prop_oneof![Just(String::new()), echoed_id()]),
        no_echo in any::<bool>(),
    ) {
        let target = ResponseTarget {
            response_url: secret_url(),
            stack_id: stack,
            request_id: request,
            logical_resource_id: logical,
            physical_resource_id: None,
        };
        let answer = Answer { status, reason: reason.clone(), physical_resource_id: physical.clone(), data: data.clone(), no_echo };
        let body = render(&target, &answer);
        let text = std::str::from_utf8(&body);
        prop_assert!(text.is_ok(), "not UTF-8");
        let v: Value = serde_json::from_str(text.unwrap()).expect("the body is JSON");
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        prop_assert_eq!(keys, BTreeSet::from(["Status", "Reason", "PhysicalResourceId", "StackId",
            "RequestId", "LogicalResourceId", "NoEcho", "Data"]));
        prop_assert!(!text.unwrap().contains(SECRET_MARK));

        prop_assert_eq!(&v["Status"], match status { Status::Success => "SUCCESS", Status::Failed => "FAILED" });
        prop_assert_eq!(v["StackId"].as_str(), Some(target.stack_id.as_str()));
        prop_assert_eq!(v["RequestId"].as_str(), Some(target.request_id.as_str()));
        prop_assert_eq!(v["LogicalResourceId"].as_str(), Some(target.logical_resource_id.as_str()));
        prop_assert_eq!(&v["NoEcho"], &json!(no_echo));
        let want_physical = if !physical.is_empty() {
            physical.clone()
        } else if !target.logical_resource_id.is_empty() {
            target.logical_resource_id.clone()
        } else {
            v["PhysicalResourceId"].as_str().unwrap().to_owned()
        };
        prop_assert_eq!(v["PhysicalResourceId"].as_str(), Some(want_physical.as_str()));
        prop_assert!(!want_physical.is_empty());

        let got = v["Reason"].as_str().expect("a string Reason").to_owned();
        let blank = reason.as_deref().is_none_or(|r| r.trim().is_empty());
        if status == Status::Failed && blank {
            // Replaced by a default: not blank, CloudFormation refuses a FAILED without one.
            prop_assert!(!got.trim().is_empty());
            return Ok(());
        }
        let original = reason.unwrap_or_default();

        // The ids fit on their own: the whole body fits. (When they do not, nothing is
        // promised beyond the above.)
        let bare = natural_len(&target, &want_physical, status, "…", &BTreeMap::new(), no_echo);
        if bare > MAX_BODY_BYTES {
            return Ok(());
        }
        prop_assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        let kept_data = v["Data"] == json!(data);
        prop_assert!(kept_data || v["Data"] == json!({}), "data changed, not dropped");

        // Everything fits: nothing is cut or dropped.
        if natural_len(&target, &want_physical, status, &original, &data, no_echo) <= MAX_BODY_BYTES {
            prop_assert_eq!(&got, &original);
            prop_assert!(kept_data);
            return Ok(());
        }
        // Data is dropped only when even an ellipsis for a Reason does not fit beside it.
        if !kept_data {
            let with_data = natural_len(&target, &want_physical, status, "", &data, no_echo);
            prop_assert!(with_data + escaped_len(&original).min(escaped_len("…")) > MAX_BODY_BYTES);
        }
        // The Reason: the original, or a prefix of it marked with an ellipsis, then (only when
        // data was dropped) a note that says so.
        let (kept, rest) = if let Some(rest) = got.strip_prefix(original.as_str()) {
            (original.as_str(), rest)
        } else {
            // The ellipsis that marks the cut is the last one (the note has none).
            let cut = got
                .rmatch_indices('…')
                .map(|(i, _)| i)
                .find(|&i| original.starts_with(&got[..i]) && i < original.len());
            prop_assert!(cut.is_some(), "{:?} is not a prefix of the original", got);
            let i = cut.unwrap();
            let rest = &got[i + '…'.len_utf8()..];
            // As long as fits: one more char of the original would not.
            let next = original[i..].chars().next().unwrap();
            prop_assert!(
                body.len() + escaped_len(&next.to_string()) > MAX_BODY_BYTES,
                "cut short: {} bytes and {:?} would fit", body.len(), next
            );
            (&original[..i], rest)
        };
        prop_assert!(original.starts_with(kept));
        if kept_data {
            prop_assert_eq!(rest, "");
        } else {
            prop_assert!(rest.is_empty() || rest.contains("4096"), "{:?}", rest);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 20, item 3: a key written twice in one object, anywhere in a policy document, is
// refused, naming the statement (its Sid, or its position) and the key's path.

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The paths of every non-empty object in `value`.
fn object_paths(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(map) => {
            if !map.is_empty() {
                out.push(at.clone());
            }
            for (k, v) in map {
                at.push(Step::Key(k.clone()));
                object_paths(v, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(Step::Index(i));
                object_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `value` as JSON text, with `key: extra` written once more at the end of the object at
/// `target`.
fn write_with_repeat(
    value: &Value,
    at: &mut Vec<String>,
    target: &str,
    key: &str,
    extra: &Value,
) -> String {
    match value {
        Value::Object(map) => {
            let mut parts: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    at.push(format!("k{k}"));
                    let text = write_with_repeat(v, at, target, key, extra);
                    at.pop();
                    format!("{}:{text}", Value::String(k.clone()))
                })
                .collect();
            if at.join("\u{0}") == target {
                parts.push(format!("{}:{extra}", Value::String(key.to_string())));
            }
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    at.push(format!("i{i}"));
                    let text = write_with_repeat(v, at, target, key, extra);
                    at.pop();
                    text
                })
                .collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn step_id(step: &Step) -> String {
    match step {
        Step::Key(k) => format!("k{k}"),
        Step::Index(i) => format!("i{i}"),
    }
}

proptest! {
    #![proptest_config(config(CASES_POLICY))]

    /// A valid document with one key written twice, in any object of it: refused, naming the
    /// statement (Sid or position) or the document, and the key's path; the same document
    /// without the repeat parses.
    #[test]
    fn policy_a_repeated_key_is_refused_and_named(
        value in policy_document(false),
        pick in any::<usize>(),
        key_pick in any::<usize>(),
        extra in prop_oneof![Just(None), json_value().prop_map(Some)],
    ) {
        prop_assert!(PolicyDocument::parse(&value.to_string(), "bucket policy").is_ok());
        let mut paths = Vec::new();
        object_paths(&value, &mut Vec::new(), &mut paths);
        let path = paths[pick % paths.len()].clone();
        let mut object = &value;
        for step in &path {
            object = match step {
                Step::Key(k) => &object[k.as_str()],
                Step::Index(i) => &object[*i],
            };
        }
        let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
        let key = keys[key_pick % keys.len()].clone();
        let extra = extra.unwrap_or_else(|| object[key.as_str()].clone());
        let target = path.iter().map(step_id).collect::<Vec<_>>().join("\u{0}");
        let text = write_with_repeat(&value, &mut Vec::new(), &target, &key, &extra);

        // Where the refusal must say the repeat is.
        let statement = match (path.first(), path.get(1), &value["Statement"]) {
            (Some(Step::Key(s)), Some(Step::Index(i)), Value::Array(items)) if s == "Statement" => {
                Some((&items[*i], *i, 2))
            }
            (Some(Step::Key(s)), _, single @ Value::Object(_)) if s == "Statement" => Some((single, 0, 1)),
            _ => None,
        };
        let (place, inner) = match statement {
            Some((s, i, skip)) => (
                match &s["Sid"] {
                    Value::String(sid) => format!("statement {sid}"),
                    _ => format!("statement #{} (no Sid)", i + 1),
                },
                &path[skip..],
            ),
            None => ("the document".to_string(), &path[..]),
        };
        let mut names: Vec<String> = inner
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(k.clone()),
                Step::Index(_) => None,
            })
            .collect();
        names.push(key.clone());
        let expected = format!("{place} has {} twice", names.join("."));

        match PolicyDocument::parse(&text, "bucket policy") {
            Ok(doc) => prop_assert!(false, "{} parsed: {:?}", text, doc),
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&expected), "{} -> {} lacks {:?}", text, e, expected);
                prop_assert!(e.contains("bucket policy"), "{}", e);
            }
        }
    }
}
