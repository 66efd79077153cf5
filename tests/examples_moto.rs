//! The example stacks in `cloudformation/examples/` run through the lifecycle against moto, with
//! every grant's Properties resolved as CloudFormation would send them: the buckets and keys the
//! template makes are made in moto from the template's own properties, parameters take their
//! default or a test value their constraints accept, and an intrinsic the test cannot resolve
//! fails, naming the file and the property. So an example cannot rot unnoticed.
//!
//! The CDK construct library's contract stacks (`cdk/test/contract/*.template.json`, synthesized
//! by its test suite) run the same way, and every synth-time rejection the construct mirrors from
//! the function (`cdk/test/contract/rejections.json`) must be refused by the function's Create
//! with the construct's message in its error. So the construct cannot drift from the function.

mod common;

use vendor_grants::grant::allowed::Allowed;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use common::{ACCOUNT_ID, Aws, FUNCTION_ARN, REGION, aws, bucket_policy, key_policy};
use serde_json::{Value as Json, json};
use serde_yaml::{Mapping, Value as Yaml};
use tokio::time::Instant;
use vendor_grants::aws::Clients;
use vendor_grants::aws::lock::Locker;
use vendor_grants::catalog::Catalog;
use vendor_grants::grant::properties::{
    CLOUDFORMATION_PROPERTIES, VALID_PROPERTIES, check_bucket_name,
};
use vendor_grants::lifecycle::{self, Env, Home, Request};

/// Every example, each run by its own test below (`the_example_list_is_complete` keeps this list
/// equal to the directory).
const EXAMPLES: &[&str] = &[
    "account-vending-stackset.yaml",
    "alphasense.yaml",
    "grant-existing-bucket.yaml",
    "scale-ai-bucket-policy.yaml",
    "scale-ai-role.yaml",
    "telus.yaml",
    "vcc.yaml",
];

/// Where the CDK construct library's test suite writes its contract stacks and rejections.
const CONTRACT_DIR: &str = "cdk/test/contract";
/// A contract stack's file name ends so; `rejections.json` is the rejection table.
const CONTRACT_SUFFIX: &str = ".template.json";
const REJECTIONS_FILE: &str = "rejections.json";
/// The fewest rows rejections.json may have (so a truncated table cannot pass unnoticed).
const MIN_REJECTIONS: usize = 10;

/// The export `cloudformation/vendor-grants.yaml` gives the function's ARN under.
const SERVICE_TOKEN_EXPORT: &str = "vendor-grants-ServiceToken";
const TEST_EXTERNAL_ID: &str = "test-external-id";
const TEST_PRINCIPALS: &[&str] = &[
    "arn:aws:iam::123456789012:role/vendor-role",
    "arn:aws:iam::123456789012:role/vendor-role-secondary",
];
/// The statement every example key policy keeps (the KMS default, so IAM policies govern the key).
const ROOT_KEY_SID: &str = "Enable IAM User Permissions";

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn telus_example_creates_and_deletes_its_grant() {
    check_example("telus.yaml").await;
}

#[tokio::test]
async fn scale_ai_role_example_creates_and_deletes_its_grant() {
    check_example("scale-ai-role.yaml").await;
}

#[tokio::test]
async fn scale_ai_bucket_policy_example_creates_and_deletes_its_grant() {
    check_example("scale-ai-bucket-policy.yaml").await;
}

#[tokio::test]
async fn vcc_example_creates_and_deletes_its_grant() {
    check_example("vcc.yaml").await;
}

#[tokio::test]
async fn alphasense_example_creates_and_deletes_its_grant() {
    check_example("alphasense.yaml").await;
}

/// Name/value pairs: parameter values given, or SSM parameters of the account.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// The grant on a bucket (and key) that already exists: made here first, as the baseline would,
/// then granted by name, and by SSM parameter names as the account-vending recipes do, for a
/// bucket-policy vendor with a key, a role-mode vendor, and principals with a Prefix. After each
/// Delete the bucket and key are still there, with only their own statements.
#[tokio::test]
async fn grant_existing_bucket_example_grants_by_name_and_by_ssm_parameter() {
    let c = ctx().await;
    let t = load("grant-existing-bucket.yaml")
        .into_iter()
        .next()
        .expect("the template");
    let bucket = common::unique("existing-data");
    common::create_bucket(&c.aws, &bucket).await;
    let (_key_id, key_arn) = common::create_key(&c.aws).await;
    let principals = TEST_PRINCIPALS.join(",");
    // (parameter values, the account's SSM parameters) per run.
    let runs: [(Pairs, Pairs); 3] = [
        // TELUS (the default vendor) by name, with the key.
        (
            vec![("BucketName", &bucket), ("KmsKeyArn", &key_arn)],
            vec![],
        ),
        // Scale AI's role, bucket and key from SSM parameters of the account.
        (
            vec![
                ("Vendor", "scale-ai"),
                ("Mode", "role"),
                ("ExternalId", TEST_EXTERNAL_ID),
                ("BucketNameSsmParameter", "/data/vendor/bucket-name"),
                ("KmsKeyArnSsmParameter", "/data/vendor/kms-key-arn"),
            ],
            vec![
                ("/data/vendor/bucket-name", &bucket),
                ("/data/vendor/kms-key-arn", &key_arn),
            ],
        ),
        // A custom vendor's principals, read-only under a prefix.
        (
            vec![
                ("Vendor", "custom"),
                ("Access", "read"),
                ("Prefix", "exports/"),
                ("VendorPrincipal", &principals),
                ("BucketName", &bucket),
            ],
            vec![],
        ),
    ];
    let owned = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    for (overrides, ssm) in &runs {
        run_template_with(&c, &t, owned(overrides), owned(ssm)).await;
    }
    assert!(
        bucket_policy(&c.aws, &bucket).await.is_none(),
        "the existing bucket's policy is gone again (vendor-grants deletes a policy it emptied)"
    );
    let key = key_policy(&c.aws, &key_arn).await;
    assert_eq!(
        sids_of(Some(&key)).len(),
        1,
        "the existing key keeps its own statement only: {key}"
    );
}

/// The StackSet's grant (its TemplateBody) on each account's existing bucket and key, named by
/// the account's SSM parameters (the TemplateBody's defaults).
#[tokio::test]
async fn account_vending_stackset_grant_body_creates_and_deletes_its_grant() {
    let c = ctx().await;
    let bucket = common::unique("vended-data");
    common::create_bucket(&c.aws, &bucket).await;
    let (_key_id, key_arn) = common::create_key(&c.aws).await;
    let ssm: HashMap<String, String> = [
        ("/data/telus/bucket-name".to_string(), bucket),
        ("/data/telus/kms-key-arn".to_string(), key_arn),
    ]
    .into();
    let templates = load("account-vending-stackset.yaml");
    let bodies: Vec<&Template> = templates
        .iter()
        .filter(|t| !t.grants().is_empty())
        .collect();
    assert_eq!(
        bodies.len(),
        1,
        "the StackSet example has one grant template"
    );
    run_template_with(&c, bodies[0], HashMap::new(), ssm).await;
}

/// Every contract stack the CDK construct synthesizes: its bucket and key made in moto from the
/// template CDK wrote, the grant through Create, its statements present, every Output resolved,
/// Delete, the grant gone.
#[tokio::test]
async fn cdk_contract_stacks_create_and_delete_their_grants() {
    let files = contract_files();
    assert!(
        !files.is_empty(),
        "{}: no *{CONTRACT_SUFFIX}; the CDK test suite (cd cdk && npm test) writes the contract \
         stacks there, and this test must not pass by testing nothing",
        contract_dir().display()
    );
    let c = ctx().await;
    for file in &files {
        check_file(&c, &contract_dir(), file, Source::Contract).await;
    }
}

/// Every rule the construct checks at synth time on the function's behalf: the Properties it
/// would have emitted, sent as a Create, are refused, and the function's error contains the
/// construct's message. Rows that fail are all listed, each with both texts.
#[tokio::test]
async fn cdk_rejections_are_refused_by_the_function_with_the_same_message() {
    let path = contract_dir().join(REJECTIONS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows: Json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()));
    let rows = rows
        .as_array()
        .unwrap_or_else(|| panic!("{}: not a JSON array", path.display()));
    assert!(
        rows.len() >= MIN_REJECTIONS,
        "{}: {} rows; expected at least {MIN_REJECTIONS}",
        path.display(),
        rows.len()
    );

    let c = ctx().await;
    let env = || c.env();
    let mut buckets = HashSet::new();
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let field = |key: &str| {
            row[key]
                .as_str()
                .unwrap_or_else(|| panic!("{REJECTIONS_FILE}[{i}].{key} is not a string"))
                .to_string()
        };
        let (name, message) = (field("name"), field("message"));
        let mut properties = row["properties"].clone();
        let props = properties.as_object_mut().unwrap_or_else(|| {
            panic!("{REJECTIONS_FILE}[{i}] ({name}): properties is not an object")
        });
        assert!(
            !props.contains_key("ServiceToken"),
            "{REJECTIONS_FILE}[{i}] ({name}): properties must not carry ServiceToken (the test \
             adds the function's ARN)"
        );
        props.insert("ServiceToken".into(), json!(FUNCTION_ARN));
        // A valid BucketName names a bucket that exists, so a rule the function checks only
        // after reading the bucket is still reached; an invalid one is refused before any call.
        let bucket = props
            .get("BucketName")
            .and_then(Json::as_str)
            .filter(|b| check_bucket_name(b).is_ok())
            .map(str::to_string);
        if let Some(b) = &bucket
            && buckets.insert(b.clone())
        {
            common::create_bucket(&c.aws, b).await;
        }

        let stack_id = common::stack_arn(&common::unique(&format!("cdk-rejection-{name}")));
        let request_id = common::uuid_like();
        let result = lifecycle::create(
            env(),
            Request {
                stack_id: &stack_id,
                logical_id: "Grant",
                request_id: &request_id,
                physical_id: None,
                properties: &properties,
                old_properties: None,
            },
        )
        .await;
        match result {
            Err(e) if e.to_string().contains(&message) => {}
            Err(e) => failures.push(format!(
                "row {name:?}: the function's error does not contain the construct's message\n  \
                 expected (construct): {message}\n  actual (function):    {e}"
            )),
            Ok(done) => {
                failures.push(format!(
                    "row {name:?}: the function accepted what the construct refuses\n  \
                     expected (construct): {message}\n  actual (function):    Create succeeded \
                     ({})\n  Properties: {properties}",
                    done.physical_resource_id
                ));
                // Take the grant back out, so the rows after this one start clean.
                let request_id = common::uuid_like();
                let undone = lifecycle::delete(
                    env(),
                    Request {
                        stack_id: &stack_id,
                        logical_id: "Grant",
                        request_id: &request_id,
                        physical_id: Some(&done.physical_resource_id),
                        properties: &properties,
                        old_properties: None,
                    },
                )
                .await;
                if let Err(e) = undone {
                    failures.push(format!("row {name:?}: Delete of the accepted grant: {e}"));
                }
            }
        }
        if let Some(b) = &bucket
            && let Some(policy) = bucket_policy(&c.aws, b).await
        {
            failures.push(format!(
                "row {name:?}: the bucket {b} has a policy after the refused Create: {policy}"
            ));
            c.aws
                .s3
                .delete_bucket_policy()
                .bucket(b)
                .send()
                .await
                .unwrap_or_else(|e| panic!("delete_bucket_policy {b}: {e:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows of {} disagree with the function (fix the construct's message in \
         cdk/test/rejections.ts or the function, whichever is wrong):\n\n{}",
        failures.len(),
        rows.len(),
        path.display(),
        failures.join("\n\n")
    );
}

#[test]
fn the_example_list_is_complete_and_in_the_readme() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", examples_dir().display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            (name.ends_with(".yaml") || name.ends_with(".yml")).then_some(name)
        })
        .collect();
    found.sort();
    assert_eq!(
        found, EXAMPLES,
        "every example needs its test in tests/examples_moto.rs (and the list, EXAMPLES)"
    );
    let readme = std::fs::read_to_string(examples_dir().join("README.md"))
        .expect("cloudformation/examples/README.md");
    for file in EXAMPLES {
        assert!(readme.contains(file), "README.md does not mention {file}");
    }
}

#[test]
fn every_catalog_vendor_has_an_example() {
    let mut covered = BTreeSet::new();
    for file in EXAMPLES {
        for t in load(file) {
            for (logical, props) in t.grants() {
                let value = props.get("Vendor");
                if let Some(vendor) = value
                    .filter(|v| ref_target(v).is_none())
                    .and_then(Yaml::as_str)
                {
                    covered.insert(vendor.to_string());
                    continue;
                }
                // A Vendor parameter covers the vendors it allows.
                let allowed: Vec<String> = value
                    .and_then(ref_target)
                    .and_then(|p| t.section("Parameters")?.get(p)?.get("AllowedValues"))
                    .and_then(Yaml::as_sequence)
                    .map(|v| v.iter().filter_map(scalar_text).collect())
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: Resources.{logical}.Properties.Vendor is neither a literal \
                             vendor id nor a parameter with AllowedValues",
                            t.label
                        )
                    });
                covered.extend(allowed);
            }
        }
    }
    let catalog = Catalog::builtin().expect("the built-in catalog parses");
    let missing: Vec<&str> = catalog
        .vendor_ids()
        .into_iter()
        .filter(|id| *id != "custom" && !covered.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "catalog vendors without an example in cloudformation/examples: {missing:?}"
    );
    for vendor in &covered {
        assert!(
            catalog.vendor(vendor).is_some(),
            "an example uses Vendor {vendor}, which the catalog does not have"
        );
    }
}

/// What the examples promise without running anything: only valid grant properties, secrets
/// NoEcho and never output, vendor principals without a made-up default, buckets and keys kept
/// when the stack goes, keys rotated and keeping the default root statement.
#[test]
fn examples_follow_the_conventions() {
    for file in EXAMPLES {
        let templates = load(file);
        assert!(
            templates.iter().any(|t| !t.grants().is_empty()),
            "{file}: no Custom:: resource with a Vendor property (nor in a nested TemplateBody)"
        );
        for t in templates {
            let label = &t.label;
            let grants = t.grants();
            for (logical, props) in &grants {
                check_property_names(&t, logical, props);
                if let Some(param) = parameter_behind(&t, logical, props, "ExternalId") {
                    assert!(
                        param.get("NoEcho").and_then(scalar_text).as_deref() == Some("true"),
                        "{label}: the parameter behind {logical}.ExternalId must be NoEcho: true"
                    );
                }
                if let Some(param) = parameter_behind(&t, logical, props, "VendorPrincipal") {
                    // No made-up default: none, or empty (a template for several vendors, some
                    // of which need no principal).
                    let default = param.get("Default").and_then(scalar_text);
                    assert!(
                        default.as_deref().is_none_or(str::is_empty)
                            && param.get("AllowedPattern").is_some(),
                        "{label}: the parameter behind {logical}.VendorPrincipal needs an \
                         AllowedPattern and no Default (the vendor gives each customer its own)"
                    );
                }
            }
            for (logical, resource) in t.resources() {
                let kind = resource.get("Type").and_then(Yaml::as_str).unwrap_or("");
                if kind == "AWS::S3::Bucket" || kind == "AWS::KMS::Key" {
                    for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                        assert_eq!(
                            resource.get(policy).and_then(Yaml::as_str),
                            Some("Retain"),
                            "{label}: {kind} {logical} needs {policy}: Retain (data must not vanish with the stack)"
                        );
                    }
                }
                if kind == "AWS::KMS::Key" {
                    let props = resource.get("Properties").and_then(Yaml::as_mapping);
                    let rotation = props.and_then(|p| p.get("EnableKeyRotation"));
                    assert_eq!(
                        rotation.and_then(scalar_text).as_deref(),
                        Some("true"),
                        "{label}: key {logical} needs EnableKeyRotation: true"
                    );
                    let sids: Vec<String> = props
                        .and_then(|p| p.get("KeyPolicy"))
                        .and_then(|p| p.get("Statement"))
                        .and_then(Yaml::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.get("Sid").and_then(Yaml::as_str).map(str::to_string))
                        .collect();
                    assert!(
                        sids.iter().any(|s| s == ROOT_KEY_SID),
                        "{label}: key {logical}'s KeyPolicy must keep the {ROOT_KEY_SID:?} statement"
                    );
                }
            }
            // No output may give away a NoEcho parameter.
            let secrets: Vec<String> = t
                .section("Parameters")
                .into_iter()
                .flatten()
                .filter(|(_, p)| p.get("NoEcho").and_then(scalar_text).as_deref() == Some("true"))
                .filter_map(|(name, _)| name.as_str().map(str::to_string))
                .collect();
            for (name, output) in t.section("Outputs").into_iter().flatten() {
                let mut used = Vec::new();
                referenced_names(output, &mut used);
                for secret in &secrets {
                    assert!(
                        !used.contains(secret),
                        "{label}: Outputs.{} outputs the NoEcho parameter {secret}",
                        name.as_str().unwrap_or("?")
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One example through Create, Outputs and Delete

struct Ctx {
    aws: Aws,
    clients: Clients,
    catalog: &'static Catalog,
    home: Home,
    allowed: Allowed,
}

impl Ctx {
    /// The lifecycle's environment for one event: no allow-lists, in-process leases, two minutes.
    fn env(&self) -> Env<'_> {
        Env {
            home: &self.home,
            allowed: &self.allowed,
            clients: &self.clients,
            locker: &Locker::Local,
            catalog: self.catalog,
            deadline: Instant::now() + Duration::from_secs(120),
        }
    }
}

async fn ctx() -> Ctx {
    let endpoint = &common::moto().endpoint;
    Ctx {
        aws: aws(endpoint).await,
        clients: common::function_clients(endpoint).await,
        catalog: Catalog::builtin().expect("the built-in catalog parses"),
        home: common::home(),
        allowed: Allowed::default(),
    }
}

/// Runs every template of the example `file` that makes a grant.
async fn check_example(file: &str) {
    let c = ctx().await;
    check_file(&c, &examples_dir(), file, Source::Example).await;
}

/// Runs every template of `dir/file` (the file and its nested TemplateBody) that makes a grant;
/// a file must make at least one.
async fn check_file(c: &Ctx, dir: &Path, file: &str, source: Source) {
    let templates = load_from(dir, file, source);
    assert!(
        templates.iter().any(|t| !t.grants().is_empty()),
        "{file}: no Custom:: resource with a Vendor property (nor in a nested TemplateBody)"
    );
    for t in templates.iter().filter(|t| !t.grants().is_empty()) {
        run_template(c, t).await;
    }
}

/// A grant as created: its logical id, the Properties sent, and the answer.
struct Created {
    logical: String,
    properties: Json,
    physical: String,
    data: BTreeMap<String, String>,
}

/// Held by a template whose grants may make a role of a fixed name (Scale's ScaleAI-Integration,
/// in an example and in a contract stack): grants share such a role, and each run checks that its
/// Delete removed it, which another test's grant still holding it would prevent.
static FIXED_ROLE_NAME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run_template(c: &Ctx, t: &Template) {
    run_template_with(c, t, HashMap::new(), HashMap::new()).await;
}

/// `run_template` with parameter values given (in place of Defaults) and the account's SSM
/// parameters (for `{{resolve:ssm:NAME}}`).
async fn run_template_with(
    c: &Ctx,
    t: &Template,
    overrides: HashMap<String, String>,
    ssm: HashMap<String, String>,
) {
    let label = t.label.as_str();
    let grants = t.grants();
    // A Vendor given by parameter may be one with a fixed role name: hold the lock then too.
    let fixed_role_name = grants.iter().any(|(_, props)| {
        let vendor = props.get("Vendor");
        vendor.is_some_and(|v| ref_target(v).is_some())
            || vendor
                .filter(|v| ref_target(v).is_none())
                .and_then(Yaml::as_str)
                .and_then(|v| c.catalog.vendor(v))
                .is_some_and(|v| v.role.as_ref().is_some_and(|r| r.name.is_some()))
    });
    let _one_at_a_time = if fixed_role_name {
        Some(FIXED_ROLE_NAME.lock().await)
    } else {
        None
    };
    let stem: String = label.chars().take_while(|c| *c != '.').collect();
    let stack_name = common::unique(&format!("ex-{stem}"));
    let stack_id = common::stack_arn(&stack_name);
    let mut r = Resolver::new(t, &c.aws, stack_name);
    r.overrides = overrides;
    r.ssm = ssm;
    let env = || c.env();

    let mut created = Vec::new();
    for (logical, props) in &grants {
        check_property_names(t, logical, props);
        let properties = r
            .resolve(
                Yaml::Mapping((*props).clone()),
                format!("Resources.{logical}.Properties"),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| json!({}));
        assert_eq!(
            properties["ServiceToken"], FUNCTION_ARN,
            "{label}: {logical} needs ServiceToken: !ImportValue {SERVICE_TOKEN_EXPORT}"
        );
        let request_id = common::uuid_like();
        let done = lifecycle::create(
            env(),
            Request {
                stack_id: &stack_id,
                logical_id: logical,
                request_id: &request_id,
                physical_id: None,
                properties: &properties,
                old_properties: None,
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!("{label}: Create of {logical} failed: {e}\nProperties: {properties:#}")
        });
        assert!(
            done.physical_resource_id.contains(&common::gid(&done)),
            "{label}: {logical}: the PhysicalResourceId carries the grant id"
        );
        assert_statements_present(c, label, logical, &properties, &done.data).await;
        r.made.insert(
            logical.clone(),
            Made {
                reference: Json::String(done.physical_resource_id.clone()),
                attrs: done.data.clone(),
            },
        );
        created.push(Created {
            logical: logical.clone(),
            properties,
            physical: done.physical_resource_id,
            data: done.data,
        });
    }

    check_outputs(&mut r, &grants).await;

    // CloudFormation deletes in reverse order of creation.
    for g in created.iter().rev() {
        let request_id = common::uuid_like();
        lifecycle::delete(
            env(),
            Request {
                stack_id: &stack_id,
                logical_id: &g.logical,
                request_id: &request_id,
                physical_id: Some(&g.physical),
                properties: &g.properties,
                old_properties: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: Delete of {} failed: {e}", g.logical));
        assert_grant_gone(c, label, g, &r.key_sids).await;
    }
}

/// Every Sid the grant says it owns is in the bucket policy, the key policy or its role's
/// inline policies.
async fn assert_statements_present(
    c: &Ctx,
    label: &str,
    logical: &str,
    properties: &Json,
    data: &BTreeMap<String, String>,
) {
    let owned = statement_ids(data);
    assert!(!owned.is_empty(), "{label}: {logical} owns no statement");
    let bucket = properties["BucketName"].as_str().unwrap_or_default();
    let mut present = sids_of(bucket_policy(&c.aws, bucket).await.as_ref());
    let key = data.get("KmsKeyArn").map(String::as_str).unwrap_or("");
    if !key.is_empty() {
        present.extend(sids_of(Some(&key_policy(&c.aws, key).await)));
    }
    let role = data.get("RoleArn").map(String::as_str).unwrap_or("");
    if !role.is_empty() {
        let name = role.rsplit('/').next().unwrap_or(role);
        let listed = c
            .aws
            .iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{label}: list_role_policies {name}: {e:?}"));
        for policy in listed.policy_names() {
            let out = c
                .aws
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label}: get_role_policy {name} {policy}: {e:?}"));
            let doc: Json = serde_json::from_str(&common::url_decode(out.policy_document()))
                .unwrap_or_else(|e| panic!("{label}: role policy {policy}: {e}"));
            present.extend(sids_of(Some(&doc)));
        }
    }
    for sid in &owned {
        assert!(
            present.contains(sid),
            "{label}: {logical} says it owns {sid}, which no policy holds (found {present:?})"
        );
    }
}

/// After Delete: none of the grant's statements is left, the key keeps the template's own
/// statements, and a role the grant created is gone.
async fn assert_grant_gone(
    c: &Ctx,
    label: &str,
    g: &Created,
    key_sids: &BTreeMap<String, Vec<String>>,
) {
    let owned = statement_ids(&g.data);
    let bucket = g.properties["BucketName"].as_str().unwrap_or_default();
    let left = sids_of(bucket_policy(&c.aws, bucket).await.as_ref());
    for sid in &owned {
        assert!(
            !left.contains(sid),
            "{label}: {}: the bucket policy still holds {sid} after Delete",
            g.logical
        );
    }
    let key = g.data.get("KmsKeyArn").map(String::as_str).unwrap_or("");
    if !key.is_empty() {
        let left = sids_of(Some(&key_policy(&c.aws, key).await));
        for sid in &owned {
            assert!(
                !left.contains(sid),
                "{label}: {}: the key policy still holds {sid} after Delete",
                g.logical
            );
        }
        for sid in key_sids.get(key).into_iter().flatten() {
            assert!(
                left.contains(sid),
                "{label}: {}: Delete took the template's own key statement {sid:?}",
                g.logical
            );
        }
    }
    let role = g.data.get("RoleArn").map(String::as_str).unwrap_or("");
    if !role.is_empty() {
        let name = role.rsplit('/').next().unwrap_or(role);
        let gone = c.aws.iam.get_role().role_name(name).send().await;
        assert!(
            gone.is_err(),
            "{label}: {}: the role {name} outlived its only grant",
            g.logical
        );
    }
}

/// The attributes CONTRACT.md lets be empty ("the role's ARN in role mode, or empty"; "the
/// resolved key ARN, or empty").
const MAY_BE_EMPTY: &[&str] = &["KmsKeyArn", "RoleArn"];

/// Every `!GetAtt Grant.X` in Outputs names an attribute the function returns, with a value for
/// this grant (a contract stack's KmsKeyArn and RoleArn may be empty); every output resolves;
/// none gives away the ExternalId.
async fn check_outputs(r: &mut Resolver<'_>, grants: &[(String, &Mapping)]) {
    let label = r.t.label.clone();
    let Some(outputs) = r.t.section("Outputs").cloned() else {
        return;
    };
    let grant_ids: HashSet<&str> = grants.iter().map(|(id, _)| id.as_str()).collect();
    for (name, output) in &outputs {
        let name = name.as_str().unwrap_or("?");
        if let Some(condition) = output.get("Condition").and_then(Yaml::as_str) {
            let path = format!("Outputs.{name}.Condition");
            if !r
                .condition(condition, &path)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
            {
                continue;
            }
        }
        let value = output
            .get("Value")
            .unwrap_or_else(|| panic!("{label}: Outputs.{name} has no Value"));
        let mut uses = Vec::new();
        getatts(value, &mut uses);
        for (resource, attribute) in uses {
            if !grant_ids.contains(resource.as_str()) {
                continue;
            }
            let data = &r.made[&resource].attrs;
            let got = data.get(&attribute).unwrap_or_else(|| {
                panic!(
                    "{label}: Outputs.{name} uses !GetAtt {resource}.{attribute}, which the \
                     function does not return (it returns {:?})",
                    data.keys().collect::<Vec<_>>()
                )
            });
            // The examples output only what their grants have; the contract stacks output every
            // attribute, and the contract lets these two be empty.
            let may_be_empty =
                r.t.source == Source::Contract && MAY_BE_EMPTY.contains(&attribute.as_str());
            assert!(
                !got.is_empty() || may_be_empty,
                "{label}: Outputs.{name}: !GetAtt {resource}.{attribute} is empty for this grant \
                 (e.g. RoleArn in bucket-policy mode, KmsKeyArn without a key)"
            );
        }
        let resolved = r
            .resolve(value.clone(), format!("Outputs.{name}.Value"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let text = resolved.map(|v| v.to_string()).unwrap_or_default();
        assert!(
            !text.contains(TEST_EXTERNAL_ID),
            "{label}: Outputs.{name} gives away the ExternalId"
        );
    }
}

/// The parameter a grant's `property` is `!Ref` to; `None` when the grant does not set it.
fn parameter_behind<'t>(
    t: &'t Template,
    logical: &str,
    props: &Mapping,
    property: &str,
) -> Option<&'t Mapping> {
    let value = props.get(property)?;
    let param = ref_target(value)
        .and_then(|name| t.section("Parameters")?.get(name)?.as_mapping())
        .unwrap_or_else(|| {
            panic!(
                "{}: {logical}.{property} should be !Ref to a parameter",
                t.label
            )
        });
    Some(param)
}

fn check_property_names(t: &Template, logical: &str, props: &Mapping) {
    for key in props.keys() {
        let key = key.as_str().unwrap_or("?");
        assert!(
            VALID_PROPERTIES.contains(&key) || CLOUDFORMATION_PROPERTIES.contains(&key),
            "{}: Resources.{logical}.Properties.{key} is not a grant property; valid: {}",
            t.label,
            VALID_PROPERTIES
                .iter()
                .chain(CLOUDFORMATION_PROPERTIES)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn statement_ids(data: &BTreeMap<String, String>) -> Vec<String> {
    data.get("StatementIds")
        .map(|s| {
            s.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn sids_of(policy: Option<&Json>) -> BTreeSet<String> {
    let statements = match policy.map(|p| &p["Statement"]) {
        Some(Json::Array(items)) => items.clone(),
        Some(Json::Null) | None => vec![],
        Some(one) => vec![one.clone()],
    };
    statements
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Templates

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cloudformation/examples")
}

fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(CONTRACT_DIR)
}

/// The CDK contract stacks, sorted (none when the directory is missing: the caller fails then).
fn contract_files() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(contract_dir())
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.ends_with(CONTRACT_SUFFIX).then_some(name)
        })
        .collect();
    found.sort();
    found
}

/// Where a template comes from: the examples keep stricter conventions than CDK's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// `cloudformation/examples/`, written by hand.
    Example,
    /// `cdk/test/contract/`, synthesized by the CDK construct's test suite.
    Contract,
}

/// One template: an example file (or contract stack), or a TemplateBody nested in one.
struct Template {
    label: String,
    root: Mapping,
    source: Source,
}

impl Template {
    fn section(&self, name: &str) -> Option<&Mapping> {
        self.root.get(name).and_then(Yaml::as_mapping)
    }

    fn resources(&self) -> Vec<(String, &Mapping)> {
        self.section("Resources")
            .into_iter()
            .flatten()
            .filter_map(|(id, r)| Some((id.as_str()?.to_string(), r.as_mapping()?)))
            .collect()
    }

    fn resource(&self, logical: &str) -> Option<&Mapping> {
        self.section("Resources")?.get(logical)?.as_mapping()
    }

    /// Every `Custom::*` (or `AWS::CloudFormation::CustomResource`) resource with a `Vendor`
    /// property: logical id and Properties, in template order.
    fn grants(&self) -> Vec<(String, &Mapping)> {
        self.resources()
            .into_iter()
            .filter_map(|(id, r)| {
                let kind = r.get("Type")?.as_str()?;
                let props = r.get("Properties")?.as_mapping()?;
                (is_custom(kind) && props.contains_key("Vendor")).then_some((id, props))
            })
            .collect()
    }
}

fn is_custom(kind: &str) -> bool {
    kind.starts_with("Custom::") || kind == "AWS::CloudFormation::CustomResource"
}

/// The example file and every template nested in it as a literal TemplateBody.
fn load(file: &str) -> Vec<Template> {
    load_from(&examples_dir(), file, Source::Example)
}

/// `dir/file` and every template nested in it as a literal TemplateBody (JSON is YAML too).
fn load_from(dir: &Path, file: &str, source: Source) -> Vec<Template> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let label = match source {
        Source::Example => file.to_string(),
        Source::Contract => format!("{CONTRACT_DIR}/{file}"),
    };
    let mut out = Vec::new();
    parse_into(label, &text, source, &mut out);
    out
}

fn parse_into(label: String, text: &str, source: Source, out: &mut Vec<Template>) {
    let root: Yaml =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{label}: not valid YAML: {e}"));
    let root = root
        .as_mapping()
        .cloned()
        .unwrap_or_else(|| panic!("{label}: a template is a mapping"));
    let t = Template {
        label,
        root,
        source,
    };
    let mut nested = Vec::new();
    for (id, resource) in t.resources() {
        let Some(body) = resource
            .get("Properties")
            .and_then(|p| p.get("TemplateBody"))
        else {
            continue;
        };
        let body = body.as_str().unwrap_or_else(|| {
            panic!(
                "{}: Resources.{id}.Properties.TemplateBody is not a literal template, so this \
                 test cannot check the grants in it",
                t.label
            )
        });
        nested.push((format!("{} > {id}.TemplateBody", t.label), body.to_string()));
    }
    out.push(t);
    for (label, body) in nested {
        parse_into(label, &body, source, out);
    }
}

/// An intrinsic function in short (`!Ref X`) or long (`{Ref: X}`, `{Fn::Sub: ...}`) form: its
/// name without `!` or `Fn::`, and its argument.
fn intrinsic(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next()?;
            let key = key.as_str()?;
            if key == "Ref" {
                Some(("Ref".to_string(), arg))
            } else {
                key.strip_prefix("Fn::").map(|n| (n.to_string(), arg))
            }
        }
        _ => None,
    }
}

/// The parameter or resource a `!Ref` names.
fn ref_target(v: &Yaml) -> Option<&str> {
    match intrinsic(v)? {
        (name, arg) if name == "Ref" => arg.as_str(),
        _ => None,
    }
}

/// `A.B` or `[A, B]` as (resource, attribute).
fn getatt_parts(arg: &Yaml) -> Option<(String, String)> {
    match arg {
        Yaml::String(s) => s
            .split_once('.')
            .map(|(r, a)| (r.to_string(), a.to_string())),
        Yaml::Sequence(items) if items.len() == 2 => Some((
            items[0].as_str()?.to_string(),
            items[1].as_str()?.to_string(),
        )),
        _ => None,
    }
}

/// The `${...}` variables of a Sub string (`${!Literal}` excluded).
fn sub_variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.trim().to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// Every (resource, attribute) a value reads with GetAtt, including `${A.B}` in Sub strings.
fn getatts(v: &Yaml, out: &mut Vec<(String, String)>) {
    if let Some((name, arg)) = intrinsic(v) {
        match name.as_str() {
            "GetAtt" => out.extend(getatt_parts(arg)),
            "Sub" => {
                let text = match arg {
                    Yaml::Sequence(items) => items.first().and_then(Yaml::as_str),
                    other => other.as_str(),
                };
                for var in sub_variables(text.unwrap_or_default()) {
                    if let Some((r, a)) = var.split_once('.') {
                        out.push((r.to_string(), a.to_string()));
                    }
                }
                if let Yaml::Sequence(items) = arg {
                    items.iter().skip(1).for_each(|i| getatts(i, out));
                }
            }
            _ => getatts(arg, out),
        }
        return;
    }
    match v {
        Yaml::Sequence(items) => items.iter().for_each(|i| getatts(i, out)),
        Yaml::Mapping(m) => m.values().for_each(|i| getatts(i, out)),
        _ => {}
    }
}

/// Every name a value reads with Ref, GetAtt or Sub.
fn referenced_names(v: &Yaml, out: &mut Vec<String>) {
    if let Some((name, arg)) = intrinsic(v) {
        match name.as_str() {
            "Ref" => out.extend(arg.as_str().map(str::to_string)),
            "GetAtt" => out.extend(getatt_parts(arg).map(|(r, _)| r)),
            "Sub" => {
                let text = match arg {
                    Yaml::Sequence(items) => items.first().and_then(Yaml::as_str),
                    other => other.as_str(),
                };
                for var in sub_variables(text.unwrap_or_default()) {
                    out.push(var.split('.').next().unwrap_or_default().to_string());
                }
                if let Yaml::Sequence(items) = arg {
                    items.iter().skip(1).for_each(|i| referenced_names(i, out));
                }
            }
            _ => referenced_names(arg, out),
        }
        return;
    }
    match v {
        Yaml::Sequence(items) => items.iter().for_each(|i| referenced_names(i, out)),
        Yaml::Mapping(m) => m.values().for_each(|i| referenced_names(i, out)),
        _ => {}
    }
}

/// A scalar as CloudFormation sends it: a string.
fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Resolving intrinsics, making the template's buckets and keys in moto on first reference

/// A resource made in moto (or a grant created): what Ref gives and the GetAtt attributes.
#[derive(Clone)]
struct Made {
    reference: Json,
    attrs: BTreeMap<String, String>,
}

type Resolving<'f> = Pin<Box<dyn Future<Output = Result<Option<Json>, String>> + 'f>>;

struct Resolver<'a> {
    t: &'a Template,
    aws: &'a Aws,
    stack_name: String,
    made: HashMap<String, Made>,
    making: HashSet<String>,
    /// Key ARN -> the Sids of the template's own KeyPolicy, which Delete must leave alone.
    key_sids: BTreeMap<String, Vec<String>>,
    /// Parameter values the test gives in place of Defaults (as a deployment would).
    overrides: HashMap<String, String>,
    /// SSM parameters of the account, for `{{resolve:ssm:NAME}}` dynamic references.
    ssm: HashMap<String, String>,
}

impl<'a> Resolver<'a> {
    fn new(t: &'a Template, aws: &'a Aws, stack_name: String) -> Self {
        Resolver {
            t,
            aws,
            stack_name,
            made: HashMap::new(),
            making: HashSet::new(),
            key_sids: BTreeMap::new(),
            overrides: HashMap::new(),
            ssm: HashMap::new(),
        }
    }

    fn err(&self, path: &str, msg: impl Display) -> String {
        format!("{}: {path}: {msg}", self.t.label)
    }

    /// The value CloudFormation would send for `v`: scalars as strings, intrinsics resolved;
    /// `None` for `!Ref AWS::NoValue`.
    fn resolve(&mut self, v: Yaml, path: String) -> Resolving<'_> {
        Box::pin(async move {
            if let Some((name, arg)) = intrinsic(&v) {
                let arg = arg.clone();
                return self.intrinsic(&name, arg, &path).await;
            }
            match v {
                Yaml::Null => Err(self.err(&path, "is null; CloudFormation needs a value")),
                Yaml::Bool(b) => Ok(Some(Json::String(b.to_string()))),
                Yaml::Number(n) => Ok(Some(Json::String(n.to_string()))),
                Yaml::String(s) => Ok(Some(Json::String(s))),
                Yaml::Sequence(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.into_iter().enumerate() {
                        out.extend(self.resolve(item, format!("{path}[{i}]")).await?);
                    }
                    Ok(Some(Json::Array(out)))
                }
                Yaml::Mapping(m) => {
                    let mut out = serde_json::Map::new();
                    for (k, item) in m {
                        let key = scalar_text(&k)
                            .ok_or_else(|| self.err(&path, "has a key that is not a scalar"))?;
                        if let Some(value) = self.resolve(item, format!("{path}.{key}")).await? {
                            out.insert(key, value);
                        }
                    }
                    Ok(Some(Json::Object(out)))
                }
                Yaml::Tagged(t) => Err(self.err(&path, format!("unknown tag {}", t.tag))),
            }
        })
    }

    async fn intrinsic(
        &mut self,
        name: &str,
        arg: Yaml,
        path: &str,
    ) -> Result<Option<Json>, String> {
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| self.err(path, "!Ref takes a name"))?;
                self.reference(target, path).await
            }
            "GetAtt" => {
                let (resource, attribute) = getatt_parts(&arg)
                    .ok_or_else(|| self.err(path, "!GetAtt takes Resource.Attribute"))?;
                let value = self.attribute(&resource, &attribute, path).await?;
                Ok(Some(Json::String(value)))
            }
            "Sub" => {
                let text = self.sub(arg, path).await?;
                self.dynamic_reference(text, path)
                    .map(|s| Some(Json::String(s)))
            }
            "If" => {
                let items = arg.as_sequence().filter(|i| i.len() == 3).cloned();
                let Some(items) = items else {
                    return Err(self.err(path, "!If takes [condition, then, else]"));
                };
                let name = items[0]
                    .as_str()
                    .ok_or_else(|| self.err(path, "!If names a condition"))?;
                let chosen = if self.condition(name, path).await? {
                    items[1].clone()
                } else {
                    items[2].clone()
                };
                self.resolve(chosen, format!("{path}.If")).await
            }
            "Join" => {
                let items = arg.as_sequence().filter(|i| i.len() == 2);
                let (delimiter, list) = match items {
                    Some(items) => (items[0].as_str().unwrap_or_default(), items[1].clone()),
                    None => return Err(self.err(path, "!Join takes [delimiter, list]")),
                };
                let delimiter = delimiter.to_string();
                let list = self.resolve(list, format!("{path}.Join")).await?;
                let Some(Json::Array(parts)) = list else {
                    return Err(self.err(path, "!Join needs a list"));
                };
                let parts: Result<Vec<String>, String> =
                    parts.into_iter().map(|p| self.text(p, path)).collect();
                Ok(Some(Json::String(parts?.join(&delimiter))))
            }
            "ImportValue" => {
                let export = self.resolve(arg, format!("{path}.ImportValue")).await?;
                match export {
                    Some(Json::String(e)) if e == SERVICE_TOKEN_EXPORT => {
                        Ok(Some(Json::String(FUNCTION_ARN.to_string())))
                    }
                    other => Err(self.err(
                        path,
                        format!(
                            "!ImportValue {}: the only export the examples may import is \
                             {SERVICE_TOKEN_EXPORT} (cloudformation/vendor-grants.yaml's)",
                            other.map(|v| v.to_string()).unwrap_or_default()
                        ),
                    )),
                }
            }
            other => Err(self.err(
                path,
                format!(
                    "!{other} is not resolved by tests/examples_moto.rs (it knows Ref, GetAtt, \
                     Sub, If (over the Conditions section), Join and ImportValue {SERVICE_TOKEN_EXPORT}); teach it or avoid it"
                ),
            )),
        }
    }

    /// CloudFormation's `{{resolve:ssm:NAME}}` (plain ssm: the kind custom resources may use),
    /// from the test's SSM parameters; any other text as it is.
    fn dynamic_reference(&self, text: String, path: &str) -> Result<String, String> {
        if !text.contains("{{resolve:") {
            return Ok(text);
        }
        let name = text
            .strip_prefix("{{resolve:ssm:")
            .and_then(|t| t.strip_suffix("}}"))
            .ok_or_else(|| {
                self.err(
                    path,
                    format!("{text}: only a whole {{{{resolve:ssm:NAME}}}} is known"),
                )
            })?;
        self.ssm
            .get(name)
            .cloned()
            .ok_or_else(|| self.err(path, format!("{text}: no SSM parameter {name} in the test")))
    }

    /// A condition of the template's Conditions: Equals, Not, And, Or and Condition.
    fn condition<'s>(
        &'s mut self,
        name: &'s str,
        path: &'s str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + 's>> {
        Box::pin(async move {
            let expr = self
                .t
                .section("Conditions")
                .and_then(|c| c.get(name))
                .cloned()
                .ok_or_else(|| self.err(path, format!("no condition {name}")))?;
            self.truth(expr, path).await
        })
    }

    fn truth<'s>(
        &'s mut self,
        expr: Yaml,
        path: &'s str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + 's>> {
        Box::pin(async move {
            if let Some(name) = expr.get("Condition").and_then(Yaml::as_str) {
                return self.condition(name, path).await;
            }
            let (kind, arg) = intrinsic(&expr)
                .map(|(k, a)| (k, a.clone()))
                .ok_or_else(|| self.err(path, "a condition must be an intrinsic function"))?;
            if kind == "Condition" {
                let name = arg.as_str().unwrap_or_default().to_string();
                return self.condition(&name, path).await;
            }
            let items = arg.as_sequence().cloned().unwrap_or_default();
            match kind.as_str() {
                "Equals" if items.len() == 2 => {
                    let a = self
                        .resolve(items[0].clone(), format!("{path}.Equals"))
                        .await?;
                    let b = self
                        .resolve(items[1].clone(), format!("{path}.Equals"))
                        .await?;
                    let flat = |v: Option<Json>| match v {
                        Some(Json::Array(parts)) => parts
                            .iter()
                            .map(|p| p.as_str().unwrap_or_default().to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        Some(Json::String(s)) => s,
                        other => other.map(|v| v.to_string()).unwrap_or_default(),
                    };
                    Ok(flat(a) == flat(b))
                }
                "Not" if items.len() == 1 => Ok(!self.truth(items[0].clone(), path).await?),
                "And" | "Or" => {
                    let mut values = Vec::new();
                    for item in items {
                        values.push(self.truth(item, path).await?);
                    }
                    Ok(if kind == "And" {
                        values.iter().all(|v| *v)
                    } else {
                        values.iter().any(|v| *v)
                    })
                }
                other => Err(self.err(path, format!("condition function {other} is not known"))),
            }
        })
    }

    fn text(&self, value: Json, path: &str) -> Result<String, String> {
        match value {
            Json::String(s) => Ok(s),
            other => Err(self.err(path, format!("{other} is used where a string is needed"))),
        }
    }

    async fn sub(&mut self, arg: Yaml, path: &str) -> Result<String, String> {
        let (text, vars) = match arg {
            Yaml::String(s) => (s, Mapping::new()),
            Yaml::Sequence(items) if items.len() == 2 => {
                match (items[0].as_str(), items[1].as_mapping()) {
                    (Some(t), Some(m)) => (t.to_string(), m.clone()),
                    _ => return Err(self.err(path, "!Sub takes [string, {variables}]")),
                }
            }
            _ => return Err(self.err(path, "!Sub takes a string or [string, {variables}]")),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.err(path, format!("!Sub {text:?}: unclosed ${{")))?;
            let var = after[..end].trim();
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = if let Some(v) = vars.get(var) {
                    self.resolve(v.clone(), format!("{path}.{var}")).await?
                } else if let Some((resource, attribute)) = var.split_once('.') {
                    Some(Json::String(
                        self.attribute(resource, attribute, path).await?,
                    ))
                } else {
                    self.reference(var, path).await?
                };
                let value =
                    value.ok_or_else(|| self.err(path, format!("${{{var}}} is NoValue")))?;
                out.push_str(&self.text(value, path)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    async fn reference(&mut self, target: &str, path: &str) -> Result<Option<Json>, String> {
        let pseudo = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => Some(REGION.to_string()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_string()),
            "AWS::Partition" => Some("aws".to_string()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_string()),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::StackId" => Some(common::stack_arn(&self.stack_name)),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Some(Json::String(value)));
        }
        if target.starts_with("AWS::") {
            return Err(self.err(path, format!("!Ref {target}: unknown pseudo parameter")));
        }
        if self
            .t
            .section("Parameters")
            .is_some_and(|p| p.contains_key(target))
        {
            return self.parameter(target, path).map(Some);
        }
        let made = self.provision(target, path).await?;
        Ok(Some(made.reference))
    }

    async fn attribute(
        &mut self,
        resource: &str,
        attribute: &str,
        path: &str,
    ) -> Result<String, String> {
        let made = self.provision(resource, path).await?;
        made.attrs.get(attribute).cloned().ok_or_else(|| {
            self.err(
                path,
                format!(
                    "!GetAtt {resource}.{attribute}: no such attribute (known: {:?})",
                    made.attrs.keys().collect::<Vec<_>>()
                ),
            )
        })
    }

    /// A parameter's value: its Default, else the test's value for it; either must pass the
    /// parameter's own constraints, as CloudFormation checks them.
    fn parameter(&self, name: &str, path: &str) -> Result<Json, String> {
        let param = self
            .t
            .section("Parameters")
            .and_then(|p| p.get(name))
            .and_then(Yaml::as_mapping)
            .ok_or_else(|| self.err(path, format!("parameter {name} is not a mapping")))?;
        let kind = param.get("Type").and_then(Yaml::as_str).unwrap_or("String");
        let is_list = kind == "CommaDelimitedList" || kind.starts_with("List<");
        let given = self
            .overrides
            .get(name)
            .cloned()
            .or_else(|| param.get("Default").and_then(scalar_text));
        let values: Vec<String> = match given {
            Some(d) if is_list => d.split(',').map(|s| s.trim().to_string()).collect(),
            Some(d) => vec![d],
            None => test_value(name, is_list).ok_or_else(|| {
                self.err(
                    path,
                    format!(
                        "parameter {name} has no Default and tests/examples_moto.rs has no \
                         test value for it (test_value knows *ExternalId* and *Principal*)"
                    ),
                )
            })?,
        };
        let allowed: Option<Vec<String>> = param
            .get("AllowedValues")
            .and_then(Yaml::as_sequence)
            .map(|v| v.iter().filter_map(scalar_text).collect());
        let pattern = param.get("AllowedPattern").and_then(Yaml::as_str);
        let length = |key: &str| {
            param
                .get(key)
                .and_then(scalar_text)
                .and_then(|n| n.parse::<usize>().ok())
        };
        for value in &values {
            let bad = |why: String| {
                self.err(
                    path,
                    format!("parameter {name}: value {value:?} would be refused: {why}"),
                )
            };
            if let Some(allowed) = &allowed
                && !allowed.contains(value)
            {
                return Err(bad(format!("not one of {allowed:?}")));
            }
            if let Some(p) = pattern {
                let ok = pattern::full_match(p, value)
                    .map_err(|e| bad(format!("AllowedPattern {p:?}: {e}")))?;
                if !ok {
                    return Err(bad(format!("does not match AllowedPattern {p:?}")));
                }
            }
            let chars = value.chars().count();
            if !is_list {
                if length("MinLength").is_some_and(|min| chars < min) {
                    return Err(bad("shorter than MinLength".to_string()));
                }
                if length("MaxLength").is_some_and(|max| chars > max) {
                    return Err(bad("longer than MaxLength".to_string()));
                }
            }
        }
        Ok(if is_list {
            Json::Array(values.into_iter().map(Json::String).collect())
        } else {
            Json::String(values.into_iter().next().unwrap_or_default())
        })
    }

    /// Makes the template's resource `logical` in moto (once), from its own Properties.
    async fn provision(&mut self, logical: &str, path: &str) -> Result<Made, String> {
        if let Some(made) = self.made.get(logical) {
            return Ok(made.clone());
        }
        let t = self.t;
        let resource = t.resource(logical).ok_or_else(|| {
            self.err(
                path,
                format!("{logical} is no parameter, resource or pseudo parameter of the template"),
            )
        })?;
        let kind = resource
            .get("Type")
            .and_then(Yaml::as_str)
            .unwrap_or_default();
        if is_custom(kind) {
            return Err(self.err(
                path,
                format!(
                    "{logical} is a custom resource; its attributes exist only after its Create \
                     (the test resolves them in Outputs only)"
                ),
            ));
        }
        if !self.making.insert(logical.to_string()) {
            return Err(self.err(path, format!("{logical} refers to itself")));
        }
        let props_path = format!("Resources.{logical}.Properties");
        let props = match resource.get("Properties") {
            Some(p) => self.resolve(p.clone(), props_path.clone()).await?,
            None => None,
        }
        .unwrap_or_else(|| json!({}));
        let made = match kind {
            "AWS::KMS::Key" => self.make_key(&props, &props_path).await?,
            "AWS::S3::Bucket" => self.make_bucket(logical, &props, &props_path).await?,
            other => {
                return Err(self.err(
                    path,
                    format!(
                        "{other} {logical} is not emulated by tests/examples_moto.rs \
                         (it makes AWS::KMS::Key and AWS::S3::Bucket); teach Resolver::provision"
                    ),
                ));
            }
        };
        self.made.insert(logical.to_string(), made.clone());
        Ok(made)
    }

    async fn make_key(&mut self, props: &Json, path: &str) -> Result<Made, String> {
        let mut create = self.aws.kms.create_key();
        if let Some(d) = props["Description"].as_str() {
            create = create.description(d);
        }
        if !props["KeyPolicy"].is_null() {
            create = create.policy(props["KeyPolicy"].to_string());
        }
        let out = create
            .send()
            .await
            .map_err(|e| self.err(path, format!("kms create_key: {e:?}")))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| self.err(path, "create_key returned no metadata"))?;
        let (id, arn) = (meta.key_id().to_string(), meta.arn().unwrap_or_default());
        if props["EnableKeyRotation"] == "true" {
            self.aws
                .kms
                .enable_key_rotation()
                .key_id(&id)
                .send()
                .await
                .map_err(|e| self.err(path, format!("enable_key_rotation: {e:?}")))?;
        }
        self.key_sids.insert(
            arn.to_string(),
            sids_of(Some(&props["KeyPolicy"])).into_iter().collect(),
        );
        Ok(Made {
            reference: Json::String(id.clone()),
            attrs: BTreeMap::from([("Arn".to_string(), arn.to_string()), ("KeyId".into(), id)]),
        })
    }

    async fn make_bucket(
        &mut self,
        logical: &str,
        props: &Json,
        path: &str,
    ) -> Result<Made, String> {
        use aws_sdk_s3::types::{
            BucketVersioningStatus, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
            PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
            ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
        };
        let name = match props["BucketName"].as_str() {
            Some(n) => n.to_string(),
            None => common::unique(&format!("ex-{logical}")),
        };
        let s3 = &self.aws.s3;
        let sdk = |what: &str, e: String| self.err(path, format!("{what} {name}: {e}"));
        let flag = |v: &Json, what: &str| -> Result<bool, String> {
            match v.as_str() {
                None => Ok(false),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(self.err(path, format!("{what} is {other:?}, not a boolean"))),
            }
        };
        common::create_bucket(self.aws, &name).await;

        if let Some(rules) =
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"].as_array()
        {
            let mut config = ServerSideEncryptionConfiguration::builder();
            for rule in rules {
                let by_default = &rule["ServerSideEncryptionByDefault"];
                let algorithm = by_default["SSEAlgorithm"].as_str().unwrap_or_default();
                let mut d = ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::from(algorithm));
                if let Some(key) = by_default["KMSMasterKeyID"].as_str() {
                    d = d.kms_master_key_id(key);
                }
                let d = d.build().map_err(|e| sdk("encryption", e.to_string()))?;
                config = config.rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(d)
                        .bucket_key_enabled(flag(&rule["BucketKeyEnabled"], "BucketKeyEnabled")?)
                        .build(),
                );
            }
            let config = config
                .build()
                .map_err(|e| sdk("encryption", e.to_string()))?;
            s3.put_bucket_encryption()
                .bucket(&name)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .map_err(|e| sdk("put_bucket_encryption", format!("{e:?}")))?;
        }

        let pab = &props["PublicAccessBlockConfiguration"];
        if pab.is_object() {
            let config = PublicAccessBlockConfiguration::builder()
                .block_public_acls(flag(&pab["BlockPublicAcls"], "BlockPublicAcls")?)
                .ignore_public_acls(flag(&pab["IgnorePublicAcls"], "IgnorePublicAcls")?)
                .block_public_policy(flag(&pab["BlockPublicPolicy"], "BlockPublicPolicy")?)
                .restrict_public_buckets(flag(
                    &pab["RestrictPublicBuckets"],
                    "RestrictPublicBuckets",
                )?)
                .build();
            s3.put_public_access_block()
                .bucket(&name)
                .public_access_block_configuration(config)
                .send()
                .await
                .map_err(|e| sdk("put_public_access_block", format!("{e:?}")))?;
        }

        if let Some(rules) = props["OwnershipControls"]["Rules"].as_array() {
            let mut controls = OwnershipControls::builder();
            for rule in rules {
                let ownership = rule["ObjectOwnership"].as_str().unwrap_or_default();
                controls = controls.rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::from(ownership))
                        .build()
                        .map_err(|e| sdk("ownership controls", e.to_string()))?,
                );
            }
            let controls = controls
                .build()
                .map_err(|e| sdk("ownership controls", e.to_string()))?;
            s3.put_bucket_ownership_controls()
                .bucket(&name)
                .ownership_controls(controls)
                .send()
                .await
                .map_err(|e| sdk("put_bucket_ownership_controls", format!("{e:?}")))?;
        }

        if let Some(status) = props["VersioningConfiguration"]["Status"].as_str() {
            s3.put_bucket_versioning()
                .bucket(&name)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::from(status))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk("put_bucket_versioning", format!("{e:?}")))?;
        }

        Ok(Made {
            reference: Json::String(name.clone()),
            attrs: BTreeMap::from([
                ("Arn".to_string(), format!("arn:aws:s3:::{name}")),
                ("DomainName".into(), format!("{name}.s3.amazonaws.com")),
                (
                    "RegionalDomainName".into(),
                    format!("{name}.s3.{REGION}.amazonaws.com"),
                ),
            ]),
        })
    }
}

/// The test's value for a parameter the vendor gives each customer (so the template has no
/// Default for it).
fn test_value(name: &str, is_list: bool) -> Option<Vec<String>> {
    if name.contains("ExternalId") {
        return Some(vec![TEST_EXTERNAL_ID.to_string()]);
    }
    if name.contains("Principal") {
        let n = if is_list { TEST_PRINCIPALS.len() } else { 1 };
        return Some(TEST_PRINCIPALS[..n].iter().map(|p| p.to_string()).collect());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// AllowedPattern

/// Just enough of Java's regular expressions (what CloudFormation's AllowedPattern uses) to check
/// a value the way CloudFormation does, matching the whole value: literals, `.`, classes with
/// ranges and `\d \w \s`, groups, `|`, `^ $`, and greedy `* + ? {n} {n,} {n,m}`.
mod pattern {
    enum Node {
        Char(char),
        Any,
        Class {
            negated: bool,
            ranges: Vec<(char, char)>,
        },
        Group(Vec<Vec<Piece>>),
        Start,
        End,
    }

    struct Piece {
        node: Node,
        min: usize,
        max: usize,
    }

    pub fn full_match(pattern: &str, text: &str) -> Result<bool, String> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let alternatives = p.alternatives()?;
        if p.pos != p.chars.len() {
            return Err(format!("unexpected {:?} at {}", p.chars[p.pos], p.pos));
        }
        let text: Vec<char> = text.chars().collect();
        let group = Node::Group(alternatives);
        Ok(node(&group, &text, 0, &mut |end| end == text.len()))
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn next(&mut self) -> Result<char, String> {
            let c = self.peek().ok_or("unexpected end of pattern")?;
            self.pos += 1;
            Ok(c)
        }

        fn alternatives(&mut self) -> Result<Vec<Vec<Piece>>, String> {
            let mut out = vec![self.sequence()?];
            while self.peek() == Some('|') {
                self.pos += 1;
                out.push(self.sequence()?);
            }
            Ok(out)
        }

        fn sequence(&mut self) -> Result<Vec<Piece>, String> {
            let mut out = Vec::new();
            while let Some(c) = self.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                let node = self.atom()?;
                let (min, max) = self.quantifier()?;
                out.push(Piece { node, min, max });
            }
            Ok(out)
        }

        fn atom(&mut self) -> Result<Node, String> {
            Ok(match self.next()? {
                '(' => {
                    if self.chars[self.pos..].starts_with(&['?', ':']) {
                        self.pos += 2;
                    } else if self.peek() == Some('?') {
                        return Err("only (?:...) groups are supported".into());
                    }
                    let inner = self.alternatives()?;
                    if self.next()? != ')' {
                        return Err("unclosed group".into());
                    }
                    Node::Group(inner)
                }
                '[' => self.class()?,
                '\\' => {
                    let c = self.next()?;
                    match shorthand(c) {
                        Some((negated, ranges)) => Node::Class { negated, ranges },
                        None => Node::Char(escaped(c)?),
                    }
                }
                '.' => Node::Any,
                '^' => Node::Start,
                '$' => Node::End,
                c @ ('*' | '+' | '?' | '{') => return Err(format!("nothing to repeat with {c}")),
                c => Node::Char(c),
            })
        }

        fn class(&mut self) -> Result<Node, String> {
            let negated = self.peek() == Some('^');
            if negated {
                self.pos += 1;
            }
            let mut ranges = Vec::new();
            let mut first = true;
            loop {
                let c = self.next()?;
                if c == ']' && !first {
                    break;
                }
                first = false;
                let low = if c == '\\' {
                    let e = self.next()?;
                    if let Some((neg, r)) = shorthand(e) {
                        if neg {
                            return Err(format!("\\{e} inside [...] is not supported"));
                        }
                        ranges.extend(r);
                        continue;
                    }
                    escaped(e)?
                } else if c == '[' {
                    return Err("nested classes are not supported".into());
                } else {
                    c
                };
                let is_range =
                    self.peek() == Some('-') && self.chars.get(self.pos + 1) != Some(&']');
                if is_range {
                    self.pos += 1;
                    let mut high = self.next()?;
                    if high == '\\' {
                        high = escaped(self.next()?)?;
                    }
                    if high < low {
                        return Err(format!("bad range {low}-{high}"));
                    }
                    ranges.push((low, high));
                } else {
                    ranges.push((low, low));
                }
            }
            Ok(Node::Class { negated, ranges })
        }

        fn quantifier(&mut self) -> Result<(usize, usize), String> {
            let bounds = match self.peek() {
                Some('*') => (0, usize::MAX),
                Some('+') => (1, usize::MAX),
                Some('?') => (0, 1),
                Some('{') => {
                    let close = self.chars[self.pos..]
                        .iter()
                        .position(|c| *c == '}')
                        .ok_or("unclosed {")?;
                    let inside: String =
                        self.chars[self.pos + 1..self.pos + close].iter().collect();
                    self.pos += close;
                    let number = |s: &str| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("bad {{{inside}}}"))
                    };
                    match inside.split_once(',') {
                        None => {
                            let n = number(&inside)?;
                            (n, n)
                        }
                        Some((min, "")) => (number(min)?, usize::MAX),
                        Some((min, max)) => (number(min)?, number(max)?),
                    }
                }
                _ => return Ok((1, 1)),
            };
            self.pos += 1;
            if matches!(self.peek(), Some('?' | '+')) {
                return Err("lazy and possessive quantifiers are not supported".into());
            }
            Ok(bounds)
        }
    }

    fn shorthand(c: char) -> Option<(bool, Vec<(char, char)>)> {
        let word = vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
        let space = vec![(' ', ' '), ('\t', '\r')];
        Some(match c {
            'd' => (false, vec![('0', '9')]),
            'D' => (true, vec![('0', '9')]),
            'w' => (false, word),
            'W' => (true, word),
            's' => (false, space),
            'S' => (true, space),
            _ => return None,
        })
    }

    fn escaped(c: char) -> Result<char, String> {
        match c {
            'n' => Ok('\n'),
            't' => Ok('\t'),
            'r' => Ok('\r'),
            c if c.is_ascii_alphanumeric() => Err(format!("escape \\{c} is not supported")),
            c => Ok(c),
        }
    }

    /// Matches `n` at `pos`, then asks `k` whether the rest matches from where `n` ended.
    fn node(n: &Node, text: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let one = |ok: bool, k: &mut dyn FnMut(usize) -> bool| ok && k(pos + 1);
        match n {
            Node::Char(c) => one(text.get(pos) == Some(c), k),
            Node::Any => one(text.get(pos).is_some_and(|c| *c != '\n'), k),
            Node::Class { negated, ranges } => one(
                text.get(pos)
                    .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated),
                k,
            ),
            Node::Start => pos == 0 && k(pos),
            Node::End => pos == text.len() && k(pos),
            Node::Group(alternatives) => {
                for seq in alternatives {
                    if sequence(seq, text, pos, k) {
                        return true;
                    }
                }
                false
            }
        }
    }

    fn sequence(
        seq: &[Piece],
        text: &[char],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        match seq.split_first() {
            None => k(pos),
            Some((first, rest)) => repeat(first, 0, text, pos, &mut |p| sequence(rest, text, p, k)),
        }
    }

    /// Greedy: one more repetition first (never an empty one beyond `min`), then stop.
    fn repeat(
        piece: &Piece,
        count: usize,
        text: &[char],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        if count < piece.max
            && node(&piece.node, text, pos, &mut |p| {
                (p != pos || count < piece.min) && repeat(piece, count + 1, text, p, k)
            })
        {
            return true;
        }
        count >= piece.min && k(pos)
    }

    #[test]
    fn the_matcher_agrees_with_java_on_the_patterns_the_examples_use() {
        let cases = [
            (r"^[\w+=,.@:/-]+$", "test-external-id", true),
            (r"^[\w+=,.@:/-]+$", "has space", false),
            (r"^[A-Za-z0-9!_.()/=-]*$", "", true),
            (r"^[A-Za-z0-9!_.()/=-]*$", "data/*", false),
            (
                r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$",
                "arn:aws:iam::123456789012:role/vendor-role",
                true,
            ),
            (
                r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$",
                "arn:aws:iam::12345678901:role/x",
                false,
            ),
            (r"^(\d{12}|arn:aws:iam::\d{12}:root)$", "123456789012", true),
            (
                r"^(\d{12}|arn:aws:iam::\d{12}:root)$",
                "1234567890123",
                false,
            ),
            (r"[a-z]+", "abc", true),
            (r"[a-z]+", "abc1", false),
            (r"a{2,3}", "aaaa", false),
            (r"(?:ab)*c", "ababc", true),
            (r"^https://\S+$", "https://b.s3.amazonaws.com/t.yaml", true),
        ];
        for (p, text, expected) in cases {
            assert_eq!(full_match(p, text), Ok(expected), "{p} on {text:?}");
        }
    }
}
