//! Every built-in vendor profile, planned from properties exactly as CloudFormation sends them
//! (every scalar a string), compared action by action with the vendor's own setup guide in
//! /work/shared/vendor-docs/ and with the Access levels of /work/shared/CONTRACT.md.
//!
//! The expected action lists are written out here from the guide text (line numbers cite the
//! guide files), not taken from the catalog, so a wrong catalog entry fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::path::PathBuf;

use serde_json::{Value, json};
use vendor_grants::catalog::Catalog;
use vendor_grants::grant::{self, GrantProperties, Plan, PlanInput};
use vendor_grants::policy::{GrantId, PolicyDocument, Statement};

type TestResult = Result<(), Box<dyn Error>>;

const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:111122223333:stack/data-platform/6d1e5a70-a1b2-11ef-8000-0a1b2c3d4e5f";
const LOGICAL_ID: &str = "DataVendorAccess";
const SERVICE_TOKEN: &str = "arn:aws:lambda:us-east-1:111122223333:function:vendor-grants";

const BUCKET: &str = "example-data-bucket";
const BUCKET_ARN: &str = "arn:aws:s3:::example-data-bucket";
const OBJECT_ARN: &str = "arn:aws:s3:::example-data-bucket/*";
const ACCOUNT: &str = "111122223333";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// telus-international-s3.md:9 "using AWS account ID `475757276268`", written as in lines 23-25.
const TELUS_ROOT: &str = "arn:aws:iam::475757276268:root";
/// scale-ai-s3.md:23 "Enter `307185671274` (Scale's Account ID)", written as in line 82.
const SCALE_ROOT: &str = "arn:aws:iam::307185671274:root";
/// vcc-interaction-export-s3.txt:125-126 "{primary-service}", "{secondary-service}": given per
/// customer (invented here, as in tests/fixtures/policies/vendor-vcc-trust-policy.json).
const VCC_PRIMARY: &str = "arn:aws:iam::777788889999:role/vcc-export-primary";
const VCC_SECONDARY: &str = "arn:aws:iam::777788889999:role/vcc-export-secondary";
/// alphasense-s3-cmk.txt:39 "arn:aws:iam::[AlphaSense-Account-ID]:role/[customer-facing-role-name]"
/// (invented account and name).
const ALPHASENSE_ROLE: &str = "arn:aws:iam::444455556666:role/alphasense-document-storage-role";
const CUSTOM_ACCOUNT: &str = "444455556666";
const CUSTOM_ROOT: &str = "arn:aws:iam::444455556666:root";

const EXTERNAL_ID: &str = "scale-ext-7f3c9a1b";

/// The ACL condition of vcc-interaction-export-s3.txt:63-67.
const VCC_ACL_KEY: &str = "s3:x-amz-acl";
const VCC_ACL_VALUE: &str = "bucket-owner-full-control";

// The Access levels of CONTRACT.md ("Properties" table, row `Access`):
// `read` = ListBucket, GetObject (+ kms:Decrypt, kms:DescribeKey); `write` = PutObject
// (+ kms:GenerateDataKey*, kms:Encrypt); `read-write`; `full` = read-write + DeleteObject (+ the
// full KMS set Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*, DescribeKey).

/// What a grant must give: the S3 actions on the bucket ARN, on the object ARN, and the KMS
/// actions.
#[derive(Debug, Clone, Copy)]
struct Expect {
    bucket: &'static [&'static str],
    object: &'static [&'static str],
    kms: &'static [&'static str],
}

const READ: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:GetObject"],
    kms: &["kms:Decrypt", "kms:DescribeKey"],
};
const WRITE: Expect = Expect {
    bucket: &[],
    object: &["s3:PutObject"],
    kms: &["kms:GenerateDataKey*", "kms:Encrypt"],
};
const READ_WRITE: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:GetObject", "s3:PutObject"],
    kms: &[
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKey*",
        "kms:Encrypt",
    ],
};
const FULL: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
    kms: &[
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ],
};

const LEVELS: [(&str, Expect); 4] = [
    ("read", READ),
    ("write", WRITE),
    ("read-write", READ_WRITE),
    ("full", FULL),
];

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn fixture(name: &str) -> Result<PolicyDocument, Box<dyn Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policies")
        .join(name);
    let text = std::fs::read_to_string(&path)?;
    Ok(PolicyDocument::parse(&text, "fixture")?)
}

/// The default key policy of a key in 111122223333: the account's IAM policies may grant use.
fn delegating_key_policy() -> PolicyDocument {
    PolicyDocument::from_value(
        json!({
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                "Action": "kms:*",
                "Resource": "*"
            }]
        }),
        "key policy",
    )
    .expect("the default key policy parses")
}

/// A key policy WITHOUT "Enable IAM User Permissions": only named administrators and users, so a
/// new role in the account gets no key access from its IAM policy alone.
fn non_delegating_key_policy() -> PolicyDocument {
    PolicyDocument::from_value(
        json!({
            "Version": "2012-10-17",
            "Id": "key-locked-down",
            "Statement": [
                {
                    "Sid": "KeyAdministrators",
                    "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/KMSKeyAdmin")},
                    "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*",
                               "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*",
                               "kms:Get*", "kms:Delete*", "kms:ScheduleKeyDeletion",
                               "kms:CancelKeyDeletion"],
                    "Resource": "*"
                },
                {
                    "Sid": "KeyUsers",
                    "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/DataPipeline")},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*"
                }
            ]
        }),
        "key policy",
    )
    .expect("the locked-down key policy parses")
}

/// A plan made as the function makes it: properties as CloudFormation sends them, the grant id
/// derived from stack and logical id, partition aws, the key resolved to KEY_ARN.
struct Planned {
    grant_id: GrantId,
    props: GrantProperties,
    plan: Plan,
    bucket_policy_in: Option<PolicyDocument>,
    key_policy_in: Option<PolicyDocument>,
}

fn plan_for(
    properties: Value,
    bucket_policy: Option<PolicyDocument>,
    key_policy: Option<PolicyDocument>,
) -> Result<Planned, Box<dyn Error>> {
    plan_as(properties, bucket_policy, key_policy, true)
}

/// `new_grant`: a Create (true) or an in-place Update (false) of the grant.
fn plan_as(
    properties: Value,
    bucket_policy: Option<PolicyDocument>,
    key_policy: Option<PolicyDocument>,
    new_grant: bool,
) -> Result<Planned, Box<dyn Error>> {
    let catalog = Catalog::builtin()?;
    let props = GrantProperties::from_json(&properties, catalog)?;
    let grant_id = grant::derive_grant_id(STACK_ID, LOGICAL_ID, &props);
    let kms_key_arn = props.kms_key.as_ref().map(|_| KEY_ARN);
    let plan = grant::plan(
        catalog,
        PlanInput {
            props: &props,
            grant_id: &grant_id,
            partition: "aws",
            account_id: None,
            kms_key_arn,
            bucket_policy: bucket_policy.as_ref(),
            key_policy: key_policy.as_ref(),
            new_grant,
        },
    )?;
    let planned = Planned {
        grant_id,
        props,
        plan,
        bucket_policy_in: bucket_policy,
        key_policy_in: key_policy,
    };
    planned.assert_sids();
    Ok(planned)
}

/// The error GrantProperties::from_json gives for these properties, as text.
fn properties_error(properties: Value) -> Result<String, Box<dyn Error>> {
    let catalog = Catalog::builtin()?;
    match GrantProperties::from_json(&properties, catalog) {
        Ok(props) => Err(format!("expected an error, got {props:?}").into()),
        Err(e) => Ok(e.to_string()),
    }
}

/// The actions of `statements` that apply to `resource`.
fn actions_on(statements: &[&Statement], resource: &str) -> BTreeSet<String> {
    statements
        .iter()
        .filter(|s| s.resources().iter().any(|r| r == resource))
        .flat_map(|s| s.actions().iter().cloned())
        .collect()
}

fn aws_principals(s: &Statement) -> BTreeSet<String> {
    s.principal
        .as_ref()
        .map(|p| p.aws_values().iter().cloned().collect())
        .unwrap_or_default()
}

fn condition(operator: &str, key: &str, value: Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    BTreeMap::from([(
        operator.to_string(),
        BTreeMap::from([(key.to_string(), value)]),
    )])
}

fn is_s3(s: &Statement) -> bool {
    s.actions().iter().any(|a| a.starts_with("s3:"))
}

fn is_kms(s: &Statement) -> bool {
    s.actions().iter().any(|a| a.starts_with("kms:"))
}

impl Planned {
    fn own_prefix(&self) -> String {
        format!("VG{}", self.grant_id)
    }

    fn owned<'a>(&self, doc: Option<&'a PolicyDocument>) -> Vec<&'a Statement> {
        let prefix = self.own_prefix();
        doc.map(|d| {
            d.statements
                .iter()
                .filter(|s| s.sid.as_deref().is_some_and(|sid| sid.starts_with(&prefix)))
                .collect()
        })
        .unwrap_or_default()
    }

    fn foreign<'a>(&self, doc: Option<&'a PolicyDocument>) -> Vec<&'a Statement> {
        let prefix = self.own_prefix();
        doc.map(|d| {
            d.statements
                .iter()
                .filter(|s| !s.sid.as_deref().is_some_and(|sid| sid.starts_with(&prefix)))
                .collect()
        })
        .unwrap_or_default()
    }

    fn bucket_statements(&self) -> Vec<&Statement> {
        self.owned(self.plan.bucket_policy.as_ref())
    }

    fn key_statements(&self) -> Vec<&Statement> {
        self.owned(self.plan.key_policy.as_ref())
    }

    fn role_statements(&self) -> Vec<&Statement> {
        self.plan
            .role
            .as_ref()
            .map(|r| r.permissions_policy.statements.iter().collect())
            .unwrap_or_default()
    }

    fn object_arn(&self) -> String {
        format!(
            "{BUCKET_ARN}/{}*",
            self.props.prefix.as_deref().unwrap_or("")
        )
    }

    /// Every Sid in StatementIds is `VG<grant-id>` then letters and digits, there is no
    /// duplicate, and StatementIds is exactly the Sids of the grant's own statements in the
    /// bucket policy, the key policy and the role's permissions policy.
    #[track_caller]
    fn assert_sids(&self) {
        let prefix = self.own_prefix();
        let ids = &self.plan.statement_ids;
        assert_eq!(self.plan.grant_id, self.grant_id.to_string());
        assert!(!ids.is_empty(), "a grant owns at least one statement");
        for sid in ids {
            assert!(
                sid.starts_with(&prefix) && sid.len() > prefix.len(),
                "Sid {sid} does not start with {prefix}"
            );
            assert!(
                sid.chars().all(|c| c.is_ascii_alphanumeric()),
                "Sid {sid} is not letters and digits only"
            );
        }
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate Sid in {ids:?}");
        let written: BTreeSet<String> = self
            .bucket_statements()
            .into_iter()
            .chain(self.key_statements())
            .chain(self.role_statements())
            .filter_map(|s| s.sid.clone())
            .collect();
        let listed: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            listed, written,
            "StatementIds must list exactly the Sids written"
        );
    }

    /// The grant's S3 statements name only the bucket ARN (bucket actions) or the object ARN
    /// (object actions), never both in one statement, and give exactly the expected actions.
    #[track_caller]
    fn assert_s3(&self, s3: &[&Statement], expect: Expect) {
        let object_arn = self.object_arn();
        for s in s3 {
            let resources = s.resources();
            assert_eq!(resources.len(), 1, "{:?}: one resource each", s.sid);
            assert!(
                resources[0] == BUCKET_ARN || resources[0] == object_arn,
                "{:?} names {}, expected {BUCKET_ARN} or {object_arn}",
                s.sid,
                resources[0]
            );
            assert!(!is_kms(s), "{:?} mixes S3 and KMS", s.sid);
        }
        assert_eq!(
            actions_on(s3, BUCKET_ARN),
            set(expect.bucket),
            "actions on the bucket ARN"
        );
        assert_eq!(
            actions_on(s3, &object_arn),
            set(expect.object),
            "actions on the object ARN {object_arn}"
        );
        match &self.props.prefix {
            None => {
                for s in s3 {
                    assert!(
                        !s.condition
                            .as_ref()
                            .is_some_and(|c| c.values().any(|keys| keys.contains_key("s3:prefix"))),
                        "{:?}: no s3:prefix condition without Prefix",
                        s.sid
                    );
                }
            }
            Some(prefix) => {
                for s in s3.iter().filter(|s| s.resources()[0] == BUCKET_ARN) {
                    assert_eq!(
                        s.condition.as_ref(),
                        Some(&condition(
                            "StringLike",
                            "s3:prefix",
                            json!([format!("{prefix}*")])
                        )),
                        "{:?}: ListBucket limited to the prefix",
                        s.sid
                    );
                }
            }
        }
    }

    /// Bucket-policy mode: the grant's statements in the bucket and key policies, for exactly
    /// `principals`, with exactly the expected actions; foreign statements kept; no role.
    #[track_caller]
    fn assert_bucket_policy_mode(&self, principals: &[&str], expect: Expect) {
        assert!(self.plan.role.is_none(), "bucket-policy mode makes no role");
        let bucket = self.bucket_statements();
        assert!(!bucket.is_empty(), "the grant writes bucket statements");
        assert!(self.plan.bucket_policy_changed);
        for s in &bucket {
            assert_eq!(s.effect, "Allow");
            assert_eq!(aws_principals(s), set(principals), "{:?} principal", s.sid);
            assert!(
                is_s3(s),
                "{:?}: only S3 actions in the bucket policy",
                s.sid
            );
        }
        self.assert_s3(&bucket, expect);
        // Foreign statements of the bucket policy stay exactly as they were.
        assert_eq!(
            self.foreign(self.plan.bucket_policy.as_ref()),
            self.foreign(self.bucket_policy_in.as_ref())
        );

        match &self.props.kms_key {
            None => {
                assert!(self.plan.key_policy.is_none(), "no key, no key policy");
                assert!(!self.plan.key_policy_changed);
            }
            Some(_) => {
                let key = self.key_statements();
                assert_eq!(key.len(), 1, "one key statement: {key:?}");
                let s = key[0];
                assert_eq!(
                    s.sid.as_deref(),
                    Some(&*format!("{}KeyUse", self.own_prefix()))
                );
                assert_eq!(s.effect, "Allow");
                assert_eq!(aws_principals(s), set(principals));
                assert_eq!(
                    s.resources(),
                    ["*"],
                    "a key policy statement names Resource *"
                );
                assert_eq!(set_of(s.actions()), set(expect.kms), "KMS actions");
                assert!(s.condition.is_none());
                assert!(self.plan.key_policy_changed);
                assert_eq!(
                    self.foreign(self.plan.key_policy.as_ref()),
                    self.foreign(self.key_policy_in.as_ref()),
                    "the key policy's own statements are kept"
                );
            }
        }
    }

    /// Role mode: the bucket policy is left alone; the role trusts exactly `principals` (with
    /// the ExternalId condition when given), and its permissions give exactly the expected
    /// actions. The key policy gets a RoleKeyUse statement only when it does not delegate to IAM.
    #[track_caller]
    fn assert_role_mode(
        &self,
        role_name: &str,
        principals: &[&str],
        external_id: Option<&str>,
        expect: Expect,
    ) {
        // The bucket policy is left alone.
        assert_eq!(self.plan.bucket_policy, self.bucket_policy_in);
        assert_eq!(
            self.plan
                .bucket_policy
                .as_ref()
                .map(PolicyDocument::to_value),
            self.bucket_policy_in.as_ref().map(PolicyDocument::to_value)
        );
        assert!(!self.plan.bucket_policy_changed);
        assert!(self.bucket_statements().is_empty());

        let role = self.plan.role.as_ref().expect("role mode plans a role");
        assert_eq!(role.role_name, role_name);
        assert_eq!(
            role.permissions_policy_name,
            format!("VendorGrant-{}", self.grant_id)
        );

        // The trust policy.
        let trust = &role.trust_policy.statements;
        assert_eq!(trust.len(), 1, "one trust statement: {trust:?}");
        let t = &trust[0];
        assert_eq!(t.effect, "Allow");
        assert_eq!(aws_principals(t), set(principals), "trusted principals");
        assert_eq!(t.actions(), ["sts:AssumeRole"]);
        assert!(t.resources().is_empty(), "a trust policy has no Resource");
        match external_id {
            Some(id) => assert_eq!(
                t.condition.as_ref(),
                Some(&condition("StringEquals", "sts:ExternalId", json!(id))),
                "the trust policy requires the external id"
            ),
            None => assert!(
                t.condition.as_ref().is_none_or(|c| c.is_empty()),
                "no external id condition: {:?}",
                t.condition
            ),
        }

        // The permissions: an identity policy, so no Principal.
        let perms = self.role_statements();
        for s in &perms {
            assert!(
                s.principal.is_none(),
                "{:?}: no Principal in a role policy",
                s.sid
            );
            assert_eq!(s.effect, "Allow");
        }
        let s3: Vec<&Statement> = perms.iter().copied().filter(|s| is_s3(s)).collect();
        self.assert_s3(&s3, expect);
        let kms: Vec<&Statement> = perms.iter().copied().filter(|s| is_kms(s)).collect();
        assert_eq!(s3.len() + kms.len(), perms.len());

        match &self.props.kms_key {
            None => {
                assert!(kms.is_empty(), "no key, no KMS permissions");
                assert!(self.plan.key_policy.is_none());
            }
            Some(_) => {
                assert_eq!(kms.len(), 1, "one KMS statement: {kms:?}");
                assert_eq!(
                    kms[0].resources(),
                    [KEY_ARN],
                    "KMS permissions name the key"
                );
                assert_eq!(set_of(kms[0].actions()), set(expect.kms), "KMS actions");
                let key_in = self.key_policy_in.as_ref().expect("a current key policy");
                let delegates = key_in.statements.iter().any(|s| {
                    s.sid.as_deref() == Some("Enable IAM User Permissions")
                        && aws_principals(s).contains(&format!("arn:aws:iam::{ACCOUNT}:root"))
                });
                let key = self.key_statements();
                if delegates {
                    assert!(key.is_empty(), "IAM delegation: no RoleKeyUse: {key:?}");
                    assert_eq!(self.plan.key_policy.as_ref(), Some(key_in));
                    assert!(!self.plan.key_policy_changed);
                } else {
                    assert_eq!(key.len(), 1, "one RoleKeyUse statement: {key:?}");
                    let s = key[0];
                    assert_eq!(
                        s.sid.as_deref(),
                        Some(&*format!("{}RoleKeyUse", self.own_prefix()))
                    );
                    assert_eq!(s.effect, "Allow");
                    assert_eq!(
                        aws_principals(s),
                        set(&[&format!(
                            "arn:aws:iam::{ACCOUNT}:role{}{role_name}",
                            // Scale's documented name at the path Scale assumes it at.
                            if role_name == "ScaleAI-Integration" {
                                "/"
                            } else {
                                "/vendor-grants/"
                            }
                        )]),
                        "the key policy names the role"
                    );
                    assert_eq!(s.resources(), ["*"]);
                    assert_eq!(set_of(s.actions()), set(expect.kms));
                    assert!(self.plan.key_policy_changed);
                    assert_eq!(
                        self.foreign(self.plan.key_policy.as_ref()),
                        self.foreign(Some(key_in)),
                        "the key policy's own statements are kept"
                    );
                }
            }
        }
    }

    /// vcc: PutObject and PutObjectAcl appear only in statements carrying exactly the
    /// bucket-owner-full-control condition, and together.
    #[track_caller]
    fn assert_vcc_upload_condition(&self, statements: &[&Statement], put_expected: bool) {
        let acl = condition("StringEquals", VCC_ACL_KEY, json!(VCC_ACL_VALUE));
        let puts: Vec<&&Statement> = statements
            .iter()
            .filter(|s| {
                s.actions()
                    .iter()
                    .any(|a| a == "s3:PutObject" || a == "s3:PutObjectAcl")
            })
            .collect();
        if !put_expected {
            assert!(puts.is_empty(), "no upload without PutObject: {puts:?}");
            return;
        }
        assert_eq!(puts.len(), 1, "one upload statement: {puts:?}");
        let s = puts[0];
        assert_eq!(
            s.sid.as_deref(),
            Some(&*format!("{}BucketUpload", self.own_prefix()))
        );
        assert_eq!(
            set_of(s.actions()),
            set(&["s3:PutObject", "s3:PutObjectAcl"])
        );
        assert_eq!(s.resources(), [self.object_arn()]);
        assert_eq!(s.condition.as_ref(), Some(&acl), "the ACL condition");
    }
}

fn set_of(actions: &[String]) -> BTreeSet<String> {
    actions.iter().cloned().collect()
}

fn with_acl(expect: Expect) -> Expect {
    // vcc: wherever PutObject is granted, PutObjectAcl comes with it under the ACL condition.
    if expect.object.contains(&"s3:PutObject") {
        let object: &'static [&'static str] = match expect.object.len() {
            1 => &["s3:PutObject", "s3:PutObjectAcl"],
            2 => &["s3:GetObject", "s3:PutObject", "s3:PutObjectAcl"],
            _ => &[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:PutObjectAcl",
            ],
        };
        Expect { object, ..expect }
    } else {
        expect
    }
}

// ---------------------------------------------------------------------------------------------
// TELUS International (telus-international-s3.md): bucket policy only.

/// Lines 27-28: "Action": "s3:ListBucket" on "arn:aws:s3:::YOUR_BUCKET_NAME".
/// Lines 38-45: "s3:PutObject", "s3:GetObject", "s3:DeleteObject" on the bucket and `/*` (object
/// actions only mean something on the object ARN). Lines 84-89: "kms:Encrypt", "kms:Decrypt",
/// "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" with "Resource": "*" (line 91).
const TELUS_GUIDE: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
    kms: &[
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ],
};

#[test]
fn telus_bucket_policy_matches_the_guide() -> TestResult {
    let p = plan_for(
        json!({
            "ServiceToken": SERVICE_TOKEN,
            "Vendor": "telus",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "Mode": "bucket-policy"
        }),
        None,
        Some(delegating_key_policy()),
    )?;
    p.assert_bucket_policy_mode(&[TELUS_ROOT], TELUS_GUIDE);
    // The guide's two statements: the listing and the objects.
    let sids: BTreeSet<String> = p
        .bucket_statements()
        .iter()
        .filter_map(|s| s.sid.clone())
        .collect();
    assert_eq!(
        sids,
        set(&[
            &format!("VG{}BucketList", p.grant_id),
            &format!("VG{}BucketObjects", p.grant_id)
        ])
    );
    let doc = p.plan.bucket_policy.as_ref().expect("a new bucket policy");
    assert_eq!(doc.version.as_deref(), Some("2012-10-17"));
    // Telus is TELUS_GUIDE exactly: the contract's `full` level.
    assert_eq!(set(TELUS_GUIDE.object), set(FULL.object));
    assert_eq!(set(TELUS_GUIDE.kms), set(FULL.kms));
    Ok(())
}

#[test]
fn telus_default_mode_is_bucket_policy_and_keeps_foreign_statements() -> TestResult {
    let current = fixture("deny-insecure-transport.json")?;
    let p = plan_for(
        json!({"Vendor": "telus", "BucketName": BUCKET}),
        Some(current.clone()),
        None,
    )?;
    assert_eq!(p.props.mode.as_str(), "bucket-policy");
    p.assert_bucket_policy_mode(&[TELUS_ROOT], TELUS_GUIDE);
    let doc = p.plan.bucket_policy.as_ref().expect("bucket policy");
    assert_eq!(
        serde_json::to_value(&doc.statements[0])?,
        serde_json::to_value(&current.statements[0])?,
        "the foreign Deny comes first, unchanged"
    );
    Ok(())
}

#[test]
fn telus_with_prefix_limits_objects_and_listing() -> TestResult {
    let p = plan_for(
        json!({
            "Vendor": "telus",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "Prefix": "exports/2024/"
        }),
        None,
        Some(delegating_key_policy()),
    )?;
    p.assert_bucket_policy_mode(&[TELUS_ROOT], TELUS_GUIDE);
    let objects = "arn:aws:s3:::example-data-bucket/exports/2024/*";
    assert_eq!(
        actions_on(&p.bucket_statements(), OBJECT_ARN),
        BTreeSet::new()
    );
    assert_eq!(
        actions_on(&p.bucket_statements(), objects),
        set(TELUS_GUIDE.object)
    );
    let list = p
        .bucket_statements()
        .into_iter()
        .find(|s| s.actions() == ["s3:ListBucket"])
        .expect("a ListBucket statement");
    assert_eq!(list.resources(), [BUCKET_ARN]);
    assert_eq!(
        list.condition.as_ref(),
        Some(&condition(
            "StringLike",
            "s3:prefix",
            json!(["exports/2024/*"])
        ))
    );
    Ok(())
}

#[test]
fn telus_explicit_access_levels_follow_the_contract() -> TestResult {
    for (level, expect) in LEVELS {
        let p = plan_for(
            json!({"Vendor": "telus", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN, "Access": level}),
            None,
            Some(delegating_key_policy()),
        )?;
        p.assert_bucket_policy_mode(&[TELUS_ROOT], expect);
    }
    Ok(())
}

#[test]
fn telus_refuses_role_mode_and_vendor_principal() -> TestResult {
    let e = properties_error(json!({"Vendor": "telus", "BucketName": BUCKET, "Mode": "role"}))?;
    assert!(e.contains("Mode") && e.contains("bucket-policy"), "{e}");
    let e = properties_error(json!({
        "Vendor": "telus", "BucketName": BUCKET, "VendorPrincipal": "111122223333"
    }))?;
    assert!(
        e.contains("VendorPrincipal") && e.contains("475757276268"),
        "{e}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scale AI (scale-ai-s3.md): role ScaleAI-Integration (preferred), or bucket policy.

/// Lines 41-48: "s3:GetObject", "s3:ListBucket" on "arn:aws:s3:::YOUR_BUCKET_NAME/*" and
/// "arn:aws:s3:::YOUR_BUCKET_NAME". The guide names no KMS actions; a key the bucket is encrypted
/// with needs the contract's `read` KMS set (kms:Decrypt, kms:DescribeKey) to GetObject.
const SCALE_ROLE_GUIDE: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:GetObject"],
    kms: &["kms:Decrypt", "kms:DescribeKey"],
};

/// Lines 76-85: "Action": ["s3:GetObject"] on "arn:aws:s3:::YOUR_BUCKET_NAME/*" only: no
/// ListBucket. KMS as for the role.
const SCALE_BUCKET_GUIDE: Expect = Expect {
    bucket: &[],
    object: &["s3:GetObject"],
    kms: &["kms:Decrypt", "kms:DescribeKey"],
};

/// Lines 15 and 28: "This role must be named `ScaleAI-Integration`".
const SCALE_ROLE_NAME: &str = "ScaleAI-Integration";

#[test]
fn scale_ai_role_matches_the_guide() -> TestResult {
    // Mode omitted: the guide's preferred IAM Delegated Access (line 11).
    let bucket_policy = fixture("deny-insecure-transport.json")?;
    let p = plan_for(
        json!({
            "ServiceToken": SERVICE_TOKEN,
            "Vendor": "scale-ai",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "ExternalId": EXTERNAL_ID
        }),
        Some(bucket_policy),
        Some(delegating_key_policy()),
    )?;
    assert_eq!(p.props.mode.as_str(), "role");
    // Lines 22-24: another AWS account 307185671274, "Require external ID".
    p.assert_role_mode(
        SCALE_ROLE_NAME,
        &[SCALE_ROOT],
        Some(EXTERNAL_ID),
        SCALE_ROLE_GUIDE,
    );
    Ok(())
}

#[test]
fn scale_ai_role_without_key_delegation_gets_role_key_use() -> TestResult {
    let p = plan_for(
        json!({
            "Vendor": "scale-ai",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "Mode": "role",
            "ExternalId": EXTERNAL_ID
        }),
        None,
        Some(non_delegating_key_policy()),
    )?;
    p.assert_role_mode(
        SCALE_ROLE_NAME,
        &[SCALE_ROOT],
        Some(EXTERNAL_ID),
        SCALE_ROLE_GUIDE,
    );
    assert!(
        p.plan
            .statement_ids
            .contains(&format!("VG{}RoleKeyUse", p.grant_id))
    );
    assert!(
        p.plan.bucket_policy.is_none(),
        "no bucket policy in, none out"
    );
    Ok(())
}

#[test]
fn scale_ai_role_name_is_honoured_and_changes_the_grant() -> TestResult {
    let base = json!({
        "Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
        "ExternalId": EXTERNAL_ID, "Prefix": "tasks/"
    });
    let mut named = base.clone();
    named["RoleName"] = json!("ScaleAI-Integration-Tasks");
    let p = plan_for(named, None, Some(non_delegating_key_policy()))?;
    p.assert_role_mode(
        "ScaleAI-Integration-Tasks",
        &[SCALE_ROOT],
        Some(EXTERNAL_ID),
        SCALE_ROLE_GUIDE,
    );
    let default = plan_for(base, None, Some(non_delegating_key_policy()))?;
    assert_eq!(
        default.plan.role.as_ref().map(|r| r.role_name.as_str()),
        Some(SCALE_ROLE_NAME)
    );
    assert_ne!(
        p.grant_id, default.grant_id,
        "RoleName is a replacement property"
    );
    Ok(())
}

#[test]
fn scale_ai_role_needs_a_valid_external_id_and_never_echoes_it() -> TestResult {
    let e = properties_error(json!({"Vendor": "scale-ai", "BucketName": BUCKET}))?;
    assert!(e.contains("ExternalId"), "{e}");
    let secret = "no spaces allowed!";
    let e = properties_error(json!({
        "Vendor": "scale-ai", "BucketName": BUCKET, "ExternalId": secret
    }))?;
    assert!(e.contains("ExternalId"), "{e}");
    assert!(
        !e.contains(secret) && !e.contains("no spaces"),
        "echoed: {e}"
    );
    let e = properties_error(json!({
        "Vendor": "scale-ai", "BucketName": BUCKET, "Mode": "bucket-policy",
        "ExternalId": EXTERNAL_ID
    }))?;
    assert!(e.contains("ExternalId") && !e.contains(EXTERNAL_ID), "{e}");
    Ok(())
}

#[test]
fn scale_ai_bucket_policy_matches_the_guide() -> TestResult {
    let p = plan_for(
        json!({
            "Vendor": "scale-ai",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "Mode": "bucket-policy"
        }),
        Some(fixture("cloudtrail-bucket-policy.json")?),
        Some(delegating_key_policy()),
    )?;
    // Lines 80-83: Principal AWS arn:aws:iam::307185671274:root.
    p.assert_bucket_policy_mode(&[SCALE_ROOT], SCALE_BUCKET_GUIDE);
    assert_eq!(
        p.bucket_statements().len(),
        1,
        "GetObject only: one statement"
    );
    Ok(())
}

#[test]
fn scale_ai_explicit_access_levels_follow_the_contract() -> TestResult {
    for (level, expect) in LEVELS {
        let p = plan_for(
            json!({"Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "Mode": "bucket-policy", "Access": level}),
            None,
            Some(delegating_key_policy()),
        )?;
        p.assert_bucket_policy_mode(&[SCALE_ROOT], expect);
        let p = plan_for(
            json!({"Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "Mode": "role", "ExternalId": EXTERNAL_ID, "Access": level}),
            None,
            Some(non_delegating_key_policy()),
        )?;
        p.assert_role_mode(SCALE_ROLE_NAME, &[SCALE_ROOT], Some(EXTERNAL_ID), expect);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// VCC Interaction Content Export (vcc-interaction-export-s3.txt): role (guide), or bucket policy.

/// Lines 59-67: "s3:PutObject", "s3:PutObjectAcl" on "{customer-bucket-arn}/*" only with
/// StringEquals "s3:x-amz-acl": "bucket-owner-full-control". Lines 72-78: "s3:ListBucket",
/// "s3:GetObject" on the bucket ARN and `/*`. Lines 84-92: the nine KMS actions on
/// "{customer-kms-arn}" (line 94).
const VCC_GUIDE: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &["s3:PutObject", "s3:PutObjectAcl", "s3:GetObject"],
    kms: &[
        "kms:GenerateDataKeyPair",
        "kms:ReEncryptFrom",
        "kms:Decrypt",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPairWithoutPlaintext",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptTo",
        "kms:DescribeKey",
    ],
};

fn vcc_props(extra: Value) -> Value {
    let mut props = json!({
        "ServiceToken": SERVICE_TOKEN,
        "Vendor": "vcc",
        "BucketName": BUCKET,
        "KmsKeyArn": KEY_ARN,
        "VendorPrincipal": [VCC_PRIMARY, VCC_SECONDARY]
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        props[k] = v.clone();
    }
    props
}

#[track_caller]
fn assert_generated_role_name(p: &Planned, vendor: &str) -> String {
    let name = p.plan.role.as_ref().expect("a role").role_name.clone();
    assert_eq!(name, format!("VendorGrant-{vendor}-{}", p.grant_id));
    assert!(name.len() <= 64, "IAM role names are at most 64 characters");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    );
    name
}

#[test]
fn vcc_role_matches_the_guide() -> TestResult {
    let bucket_policy = fixture("cloudtrail-bucket-policy.json")?;
    let p = plan_for(
        vcc_props(json!({})),
        Some(bucket_policy),
        Some(delegating_key_policy()),
    )?;
    assert_eq!(p.props.mode.as_str(), "role", "the guide sets up a role");
    let name = assert_generated_role_name(&p, "vcc");
    // Lines 122-130: both service principals, "sts:AssumeRole", "Condition": {}: no external id.
    p.assert_role_mode(&name, &[VCC_PRIMARY, VCC_SECONDARY], None, VCC_GUIDE);
    p.assert_vcc_upload_condition(&p.role_statements(), true);
    Ok(())
}

#[test]
fn vcc_role_without_key_delegation_gets_role_key_use() -> TestResult {
    let p = plan_for(
        vcc_props(json!({"Mode": "role", "RoleName": "VccInteractionExport"})),
        None,
        Some(non_delegating_key_policy()),
    )?;
    p.assert_role_mode(
        "VccInteractionExport",
        &[VCC_PRIMARY, VCC_SECONDARY],
        None,
        VCC_GUIDE,
    );
    p.assert_vcc_upload_condition(&p.role_statements(), true);
    Ok(())
}

#[test]
fn vcc_bucket_policy_matches_the_guide() -> TestResult {
    let p = plan_for(
        vcc_props(json!({"Mode": "bucket-policy", "Prefix": "exports/"})),
        Some(fixture("deny-insecure-transport.json")?),
        Some(delegating_key_policy()),
    )?;
    p.assert_bucket_policy_mode(&[VCC_PRIMARY, VCC_SECONDARY], VCC_GUIDE);
    p.assert_vcc_upload_condition(&p.bucket_statements(), true);
    Ok(())
}

#[test]
fn vcc_acl_condition_stays_whatever_access_says() -> TestResult {
    for (level, expect) in LEVELS {
        let expect = with_acl(expect);
        let puts = expect.object.contains(&"s3:PutObject");
        let p = plan_for(
            vcc_props(json!({"Mode": "bucket-policy", "Access": level})),
            None,
            Some(delegating_key_policy()),
        )?;
        p.assert_bucket_policy_mode(&[VCC_PRIMARY, VCC_SECONDARY], expect);
        p.assert_vcc_upload_condition(&p.bucket_statements(), puts);

        let p = plan_for(
            vcc_props(json!({"Access": level})),
            None,
            Some(non_delegating_key_policy()),
        )?;
        let name = assert_generated_role_name(&p, "vcc");
        p.assert_role_mode(&name, &[VCC_PRIMARY, VCC_SECONDARY], None, expect);
        p.assert_vcc_upload_condition(&p.role_statements(), puts);
    }
    Ok(())
}

#[test]
fn vcc_update_rewrites_exactly_its_own_statements() -> TestResult {
    // Create with Access: full, then Update in place to Access: read on the policies Create left.
    let full = plan_for(
        vcc_props(json!({"Mode": "bucket-policy", "Access": "full"})),
        Some(fixture("deny-insecure-transport.json")?),
        Some(delegating_key_policy()),
    )?;
    full.assert_vcc_upload_condition(&full.bucket_statements(), true);
    let read = plan_as(
        vcc_props(json!({"Mode": "bucket-policy", "Access": "read"})),
        full.plan.bucket_policy.clone(),
        full.plan.key_policy.clone(),
        false,
    )?;
    // As a Create, the same change is refused: the grant's Sids already hold other statements.
    let as_create = plan_as(
        vcc_props(json!({"Mode": "bucket-policy", "Access": "read"})),
        full.plan.bucket_policy.clone(),
        full.plan.key_policy.clone(),
        true,
    );
    assert!(as_create.is_err_and(|e| e.to_string().contains("did not write")));
    assert_eq!(read.grant_id, full.grant_id, "Access is updated in place");
    read.assert_bucket_policy_mode(&[VCC_PRIMARY, VCC_SECONDARY], READ);
    // The upload statement of Access: full is gone, not left behind.
    read.assert_vcc_upload_condition(&read.bucket_statements(), false);
    assert!(
        !read
            .plan
            .bucket_policy
            .iter()
            .flat_map(|d| &d.statements)
            .any(|s| s.sid.as_deref() == Some(&*format!("VG{}BucketUpload", read.grant_id)))
    );
    Ok(())
}

#[test]
fn vcc_refuses_an_external_id_and_needs_its_principals() -> TestResult {
    let e = properties_error(vcc_props(json!({"ExternalId": "vcc-external-1"})))?;
    assert!(
        e.contains("ExternalId") && !e.contains("vcc-external-1"),
        "{e}"
    );
    let mut props = vcc_props(json!({}));
    props.as_object_mut().map(|m| m.remove("VendorPrincipal"));
    let e = properties_error(props)?;
    assert!(e.contains("VendorPrincipal"), "{e}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AlphaSense (alphasense-s3-cmk.txt): bucket policy (Option A), or a client role (Option B).

/// Lines 41-45: "s3:GetObject", "s3:PutObject", "s3:RestoreObject", "s3:ListBucket",
/// "s3:DeleteObject" (the guide puts them all on "/*", line 47; ListBucket applies to the bucket
/// ARN). Lines 60-65, Option B, the same five. Lines 66-71: KMS Encrypt, Decrypt, ReEncrypt*,
/// GenerateDataKey*, DescribeKey.
const ALPHASENSE_GUIDE: Expect = Expect {
    bucket: &["s3:ListBucket"],
    object: &[
        "s3:GetObject",
        "s3:PutObject",
        "s3:RestoreObject",
        "s3:DeleteObject",
    ],
    kms: &[
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ],
};

#[test]
fn alphasense_bucket_policy_matches_the_guide() -> TestResult {
    let p = plan_for(
        json!({
            "Vendor": "alphasense",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "VendorPrincipal": ALPHASENSE_ROLE
        }),
        Some(fixture("deny-insecure-transport.json")?),
        Some(delegating_key_policy()),
    )?;
    assert_eq!(p.props.mode.as_str(), "bucket-policy", "Option A first");
    // Line 39: Principal AWS the vendor's role ARN.
    p.assert_bucket_policy_mode(&[ALPHASENSE_ROLE], ALPHASENSE_GUIDE);
    Ok(())
}

#[test]
fn alphasense_role_matches_the_guide() -> TestResult {
    let props = json!({
        "Vendor": "alphasense",
        "BucketName": BUCKET,
        "KmsKeyArn": KEY_ARN,
        "Mode": "role",
        "VendorPrincipal": ALPHASENSE_ROLE,
        "ExternalId": "alphasense-ext-42"
    });
    for key_policy in [delegating_key_policy(), non_delegating_key_policy()] {
        let p = plan_for(props.clone(), None, Some(key_policy))?;
        let name = assert_generated_role_name(&p, "alphasense");
        // Line 55: trust AlphaSense's document-storage-role; line 80: with the external id.
        p.assert_role_mode(
            &name,
            &[ALPHASENSE_ROLE],
            Some("alphasense-ext-42"),
            ALPHASENSE_GUIDE,
        );
    }
    let e = properties_error(json!({
        "Vendor": "alphasense", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN, "Mode": "role",
        "VendorPrincipal": ALPHASENSE_ROLE
    }))?;
    assert!(e.contains("ExternalId"), "{e}");
    Ok(())
}

#[test]
fn alphasense_requires_the_key_and_its_principal() -> TestResult {
    // Lines 3-4, 26-27: SSE-KMS with the customer's CMK.
    let e = properties_error(json!({
        "Vendor": "alphasense", "BucketName": BUCKET, "VendorPrincipal": ALPHASENSE_ROLE
    }))?;
    assert!(e.contains("KmsKeyArn"), "{e}");
    let e = properties_error(json!({
        "Vendor": "alphasense", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN
    }))?;
    assert!(e.contains("VendorPrincipal"), "{e}");
    Ok(())
}

#[test]
fn alphasense_explicit_access_levels_follow_the_contract() -> TestResult {
    for (level, expect) in LEVELS {
        let p = plan_for(
            json!({"Vendor": "alphasense", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "VendorPrincipal": ALPHASENSE_ROLE, "Access": level}),
            None,
            Some(delegating_key_policy()),
        )?;
        p.assert_bucket_policy_mode(&[ALPHASENSE_ROLE], expect);
        let p = plan_for(
            json!({"Vendor": "alphasense", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "Mode": "role", "VendorPrincipal": ALPHASENSE_ROLE,
                   "ExternalId": "alphasense-ext-42", "Access": level}),
            None,
            Some(non_delegating_key_policy()),
        )?;
        let name = assert_generated_role_name(&p, "alphasense");
        p.assert_role_mode(&name, &[ALPHASENSE_ROLE], Some("alphasense-ext-42"), expect);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// custom: no guide; Access is required and follows CONTRACT.md exactly.

fn custom_bucket_policy(level: &str, expect: Expect) -> TestResult {
    let p = plan_for(
        json!({
            "Vendor": "custom",
            "BucketName": BUCKET,
            "KmsKeyArn": KEY_ARN,
            "Access": level,
            // A bare account id, as a template may give it: written as its root ARN.
            "VendorPrincipal": CUSTOM_ACCOUNT
        }),
        Some(fixture("cloudtrail-bucket-policy.json")?),
        Some(delegating_key_policy()),
    )?;
    assert_eq!(p.props.mode.as_str(), "bucket-policy");
    p.assert_bucket_policy_mode(&[CUSTOM_ROOT], expect);
    // Without a key: no key policy, the same S3 actions.
    let p = plan_for(
        json!({"Vendor": "custom", "BucketName": BUCKET, "Access": level,
               "VendorPrincipal": CUSTOM_ACCOUNT, "Prefix": "shared/"}),
        None,
        None,
    )?;
    p.assert_bucket_policy_mode(&[CUSTOM_ROOT], expect);
    Ok(())
}

fn custom_role(level: &str, expect: Expect) -> TestResult {
    let props = json!({
        "Vendor": "custom",
        "BucketName": BUCKET,
        "KmsKeyArn": KEY_ARN,
        "Mode": "role",
        "Access": level,
        "VendorPrincipal": [CUSTOM_ACCOUNT],
        "ExternalId": "custom+ext=1,2.3@4:5/6-7_8"
    });
    let bucket_policy = fixture("deny-insecure-transport.json")?;
    for key_policy in [delegating_key_policy(), non_delegating_key_policy()] {
        let p = plan_for(props.clone(), Some(bucket_policy.clone()), Some(key_policy))?;
        let name = assert_generated_role_name(&p, "custom");
        p.assert_role_mode(
            &name,
            &[CUSTOM_ROOT],
            Some("custom+ext=1,2.3@4:5/6-7_8"),
            expect,
        );
    }
    Ok(())
}

#[test]
fn custom_read_bucket_policy() -> TestResult {
    custom_bucket_policy("read", READ)
}

#[test]
fn custom_write_bucket_policy() -> TestResult {
    custom_bucket_policy("write", WRITE)
}

#[test]
fn custom_read_write_bucket_policy() -> TestResult {
    custom_bucket_policy("read-write", READ_WRITE)
}

#[test]
fn custom_full_bucket_policy() -> TestResult {
    custom_bucket_policy("full", FULL)
}

#[test]
fn custom_read_role() -> TestResult {
    custom_role("read", READ)
}

#[test]
fn custom_write_role() -> TestResult {
    custom_role("write", WRITE)
}

#[test]
fn custom_read_write_role() -> TestResult {
    custom_role("read-write", READ_WRITE)
}

#[test]
fn custom_full_role() -> TestResult {
    custom_role("full", FULL)
}

#[test]
fn custom_requires_access_and_names_the_levels() -> TestResult {
    let e = properties_error(json!({
        "Vendor": "custom", "BucketName": BUCKET, "VendorPrincipal": CUSTOM_ACCOUNT
    }))?;
    assert!(e.contains("Access") && e.contains("read-write"), "{e}");
    let e = properties_error(json!({
        "Vendor": "custom", "BucketName": BUCKET, "Mode": "role",
        "VendorPrincipal": CUSTOM_ACCOUNT, "ExternalId": "custom-ext-1"
    }))?;
    assert!(e.contains("Access") && e.contains("read-write"), "{e}");
    let e = properties_error(json!({
        "Vendor": "custom", "BucketName": BUCKET, "Access": "admin",
        "VendorPrincipal": CUSTOM_ACCOUNT
    }))?;
    assert!(
        e.contains("Access") && e.contains("read, write, read-write, full"),
        "{e}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Across vendors.

#[test]
fn key_delegation_counts_only_for_the_keys_own_account() -> TestResult {
    let props = json!({
        "Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
        "ExternalId": EXTERNAL_ID
    });
    // The same delegation written with a bare account id still delegates.
    let bare = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ACCOUNT},
            "Action": ["kms:*"], "Resource": "*"
        }]}),
        "key policy",
    )?;
    let p = plan_for(props.clone(), None, Some(bare))?;
    assert!(p.key_statements().is_empty(), "bare account id delegates");
    assert!(!p.plan.key_policy_changed);
    // Another account's root does not let this account's role use the key.
    let other = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "Root", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": "kms:*", "Resource": "*"
        }]}),
        "key policy",
    )?;
    let p = plan_for(props.clone(), None, Some(other))?;
    assert_eq!(
        p.key_statements().len(),
        1,
        "another account: RoleKeyUse needed"
    );
    // A conditioned root statement is not a plain delegation either.
    let conditioned = PolicyDocument::from_value(
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "Root", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT,
                                           "kms:ViaService": "s3.us-east-1.amazonaws.com"}}
        }]}),
        "key policy",
    )?;
    let p = plan_for(props, None, Some(conditioned))?;
    assert_eq!(
        p.key_statements().len(),
        1,
        "conditioned: RoleKeyUse needed"
    );
    Ok(())
}

#[test]
fn grant_ids_are_stable_and_follow_the_replacement_properties() -> TestResult {
    let catalog = Catalog::builtin()?;
    let id = |v: Value| -> Result<GrantId, Box<dyn Error>> {
        let props = GrantProperties::from_json(&v, catalog)?;
        Ok(grant::derive_grant_id(STACK_ID, LOGICAL_ID, &props))
    };
    let base = json!({"Vendor": "telus", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN});
    let a = id(base.clone())?;
    assert_eq!(a, id(base.clone())?, "same properties, same id");
    assert_eq!(a.as_str().len(), 16);
    assert!(
        a.as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    // Mode given as the default mode: the same grant.
    let mut explicit = base.clone();
    explicit["Mode"] = json!("bucket-policy");
    assert_eq!(a, id(explicit)?);
    // In-place properties keep the id.
    let mut in_place = base.clone();
    in_place["Access"] = json!("read");
    in_place["Prefix"] = json!("p/");
    assert_eq!(a, id(in_place)?);
    // Replacement properties change it.
    let mut other_bucket = base.clone();
    other_bucket["BucketName"] = json!("another-data-bucket");
    assert_ne!(a, id(other_bucket)?);
    let mut no_key = base.clone();
    no_key.as_object_mut().map(|m| m.remove("KmsKeyArn"));
    assert_ne!(a, id(no_key)?);
    Ok(())
}

#[test]
fn planning_again_on_the_plans_own_output_changes_nothing() -> TestResult {
    let cases = [
        (
            json!({"Vendor": "telus", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN, "Prefix": "in/"}),
            delegating_key_policy(),
        ),
        (
            vcc_props(json!({"Mode": "bucket-policy", "Access": "full"})),
            delegating_key_policy(),
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "ExternalId": EXTERNAL_ID}),
            non_delegating_key_policy(),
        ),
        (
            json!({"Vendor": "custom", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                   "Mode": "role", "Access": "read-write", "VendorPrincipal": CUSTOM_ACCOUNT,
                   "ExternalId": "custom-ext-1"}),
            non_delegating_key_policy(),
        ),
    ];
    for (props, key_policy) in cases {
        let first = plan_for(
            props.clone(),
            Some(fixture("cloudtrail-bucket-policy.json")?),
            Some(key_policy),
        )?;
        let again = plan_for(
            props,
            first.plan.bucket_policy.clone(),
            first.plan.key_policy.clone(),
        )?;
        assert!(!again.plan.bucket_policy_changed, "{:?}", first.props);
        assert!(!again.plan.key_policy_changed, "{:?}", first.props);
        assert_eq!(again.plan.bucket_policy, first.plan.bucket_policy);
        assert_eq!(again.plan.key_policy, first.plan.key_policy);
        assert_eq!(again.plan.role, first.plan.role);
        assert_eq!(again.plan.statement_ids, first.plan.statement_ids);
    }
    Ok(())
}

/// The role's documents are known before any policy is read: `role_plan` with no current
/// policies gives exactly the role that the full plan (with the key policy) gives.
#[test]
fn the_role_plan_needs_no_current_policy() -> Result<(), Box<dyn Error>> {
    let catalog = Catalog::builtin()?;
    let raw = json!({"Vendor": "scale-ai", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
        "ExternalId": "scale-external-id", "Prefix": "datasets/"});
    let props = GrantProperties::from_json(&raw, catalog)?;
    let grant_id = grant::derive_grant_id(STACK_ID, LOGICAL_ID, &props);
    let key_policy = PolicyDocument::parse(
        &json!({"Version": "2012-10-17", "Statement": [{"Sid": "Admins", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/KeyAdmin")},
            "Action": "kms:*", "Resource": "*"}]})
        .to_string(),
        "key policy",
    )?;
    let input = |key_policy| PlanInput {
        props: &props,
        grant_id: &grant_id,
        partition: "aws",
        account_id: Some(ACCOUNT),
        kms_key_arn: Some(KEY_ARN),
        bucket_policy: None,
        key_policy,
        new_grant: true,
    };
    let role = grant::role_plan(catalog, input(None))?.ok_or("role mode has a role")?;
    let full = grant::plan(catalog, input(Some(&key_policy)))?;
    assert_eq!(Some(&role), full.role.as_ref());
    assert_eq!(role.role_name, "ScaleAI-Integration");
    // Without the key policy only the role is known; the full plan still needs it.
    assert!(grant::plan(catalog, input(None)).is_err());
    let bucket_mode = json!({"Vendor": "telus", "BucketName": BUCKET});
    let props = GrantProperties::from_json(&bucket_mode, catalog)?;
    let input = PlanInput {
        props: &props,
        kms_key_arn: None,
        ..input(None)
    };
    assert_eq!(grant::role_plan(catalog, input)?, None);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Issue 20: the kind of principal each guide names, the guide's URL, and the partition of the
// fixed accounts.

/// Where each guide is published (the files in /work/shared/vendor-docs/ are copies).
const GUIDE_URLS: &[(&str, &str)] = &[
    (
        "telus",
        "https://annotationdocs.telusinternational.com/secure-attachment-access/attachments",
    ),
    ("scale-ai", "https://scale.com/docs/aws-s3"),
    (
        "vcc",
        "https://docs-vcc.atlassian.net/wiki/pages/diffpages.action?originalId=4355227756&pageId=4356046859",
    ),
    (
        "alphasense",
        "https://dev-developer.alpha-sense.com/enterprise/how-to/client-data-encryption/bring-your-own-bucket",
    ),
];

#[test]
fn every_guide_has_its_url_beside_it() -> TestResult {
    let catalog = Catalog::builtin()?;
    for (id, url) in GUIDE_URLS {
        let vendor = catalog.vendor(id).ok_or(format!("no vendor {id}"))?;
        assert_eq!(&vendor.url, url, "{id}");
    }
    assert_eq!(
        catalog.vendors.len(),
        GUIDE_URLS.len() + 1,
        "a vendor without a URL here"
    );
    Ok(())
}

/// vcc-interaction-export-s3.txt:119-131, the trust policy: `"AWS": ["{primary-service}",
/// "{secondary-service}"]` with no external id (CONTRACT.md: "the vendor's service role ARNs,
/// never a bare account"). An account would let every user and role of it assume the role.
#[test]
fn vcc_takes_its_service_roles_never_an_account() -> TestResult {
    for mode in ["role", "bucket-policy"] {
        for principal in [
            CUSTOM_ACCOUNT,
            CUSTOM_ROOT,
            "arn:aws:iam::444455556666:user/vcc",
        ] {
            let e = properties_error(vcc_props(
                json!({"Mode": mode, "VendorPrincipal": principal}),
            ))?;
            assert!(
                e.starts_with(&format!("VendorPrincipal {principal:?} is a ")),
                "{e}"
            );
            assert!(
                e.contains("VCC Interaction Content Export's guide names roles: arn:aws:iam::ACCOUNT:role/NAME"),
                "{e}"
            );
        }
        let p = plan_for(
            vcc_props(json!({"Mode": mode})),
            None,
            Some(delegating_key_policy()),
        )?;
        assert!(p.plan.principals.iter().all(|p| p.contains(":role/")));
    }
    Ok(())
}

/// alphasense-s3-cmk.txt:39: `"Principal": {"AWS":
/// "arn:aws:iam::[AlphaSense-Account-ID]:role/[customer-facing-role-name]"}`: one role.
#[test]
fn alphasense_takes_its_role_never_an_account() -> TestResult {
    for mode in ["bucket-policy", "role"] {
        for principal in [CUSTOM_ACCOUNT, CUSTOM_ROOT] {
            let mut props = json!({"Vendor": "alphasense", "BucketName": BUCKET, "KmsKeyArn": KEY_ARN,
                "Mode": mode, "VendorPrincipal": principal});
            if mode == "role" {
                props["ExternalId"] = json!(EXTERNAL_ID);
            }
            let e = properties_error(props)?;
            assert!(
                e.contains("is a whole account, but AlphaSense's guide names a role: arn:aws:iam::ACCOUNT:role/NAME"),
                "{e}"
            );
        }
    }
    Ok(())
}

/// telus-international-s3.md:9 and scale-ai-s3.md:23 name accounts of the aws partition; in
/// another partition that account does not exist, so the grant is refused and names `custom`.
#[test]
fn fixed_accounts_are_refused_outside_the_aws_partition() -> TestResult {
    let catalog = Catalog::builtin()?;
    for (props, partition) in [
        (json!({"Vendor": "telus", "BucketName": BUCKET}), "aws-cn"),
        (
            json!({"Vendor": "telus", "BucketName": BUCKET}),
            "aws-us-gov",
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": BUCKET, "ExternalId": EXTERNAL_ID}),
            "aws-cn",
        ),
        (
            json!({"Vendor": "scale-ai", "BucketName": BUCKET, "Mode": "bucket-policy"}),
            "aws-us-gov",
        ),
    ] {
        let props = GrantProperties::from_json(&props, catalog)?;
        let grant_id = grant::derive_grant_id(STACK_ID, LOGICAL_ID, &props);
        let input = PlanInput {
            props: &props,
            grant_id: &grant_id,
            partition,
            account_id: None,
            kms_key_arn: None,
            bucket_policy: None,
            key_policy: None,
            new_grant: true,
        };
        for e in [
            grant::plan(catalog, input)
                .err()
                .ok_or("planned")?
                .to_string(),
            grant::role_plan(catalog, input)
                .err()
                .ok_or("role planned")?
                .to_string(),
        ] {
            assert!(e.contains(&format!("this grant is in {partition}")), "{e}");
            assert!(e.contains("aws partition only"), "{e}");
            assert!(e.contains("use Vendor: custom"), "{e}");
        }
    }
    // custom is the way, with the vendor's principal of that partition.
    let props = GrantProperties::from_json(
        &json!({"Vendor": "custom", "BucketName": BUCKET, "Access": "read",
            "VendorPrincipal": "arn:aws-cn:iam::444455556666:role/vendor"}),
        catalog,
    )?;
    let grant_id = grant::derive_grant_id(STACK_ID, LOGICAL_ID, &props);
    let plan = grant::plan(
        catalog,
        PlanInput {
            props: &props,
            grant_id: &grant_id,
            partition: "aws-cn",
            account_id: None,
            kms_key_arn: None,
            bucket_policy: None,
            key_policy: None,
            new_grant: true,
        },
    )?;
    assert_eq!(
        plan.principals,
        vec!["arn:aws-cn:iam::444455556666:role/vendor"]
    );
    Ok(())
}
