//! Property tests of the owned-statement merge over generated policies: merge then remove gives
//! the original back, merge is idempotent, foreign statements never change, Sids stay unique, and
//! grants on one policy never disturb each other.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};
use vendor_grants::policy::{
    Claim, GrantId, PolicyDocument, Purpose, Statement, merge, ownership::remove,
};

const CASES: u32 = 512;

fn grant(n: u8) -> GrantId {
    GrantId::parse(&format!("{:016x}", 0x1234_5678_9abc_0000u64 + u64::from(n))).unwrap()
}

/// The principal every generated grant statement names.
const GRANTED: &str = "arn:aws:iam::475757276268:root";

/// What grant `g` can have written on bucket `b`: [`GRANTED`] under every purpose.
fn claim(g: &GrantId) -> Claim {
    let written: Vec<Statement> = Purpose::ALL
        .iter()
        .map(|p| {
            serde_json::from_value(json!({"Sid": g.sid(*p), "Effect": "Allow",
                "Principal": {"AWS": GRANTED}, "Action": "s3:GetObject", "Resource": "*"}))
            .unwrap()
        })
        .collect();
    Claim::new(g, Some("arn:aws:s3:::b".to_string())).with_statements(&written)
}

/// One foreign statement in any of the shapes AWS accepts.
fn foreign_statement() -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": "111122223333"})),
        Just(
            json!({"AWS": ["arn:aws:iam::444455556666:root", "arn:aws:iam::444455556666:role/R"]})
        ),
        Just(json!({"Service": "cloudtrail.amazonaws.com"})),
        Just(
            json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"})
        ),
    ];
    let actions = prop_oneof![
        Just(json!("s3:GetObject")),
        Just(json!(["s3:PutObject", "s3:GetObject"])),
        Just(json!("kms:*")),
        Just(json!(["s3:*"])),
    ];
    let condition = prop_oneof![
        Just(None),
        Just(Some(json!({"Bool": {"aws:SecureTransport": "false"}}))),
        Just(Some(
            json!({"StringEquals": {"s3:x-amz-acl": ["bucket-owner-full-control"]}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
        )),
        Just(Some(
            json!({"NumericLessThan": {"s3:TlsVersion": 1.2}, "Null": {"aws:PrincipalArn": true}})
        )),
    ];
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        prop_oneof![Just(true), Just(false)],
        principal,
        actions,
        prop_oneof![
            Just(json!("arn:aws:s3:::b/*")),
            Just(json!(["arn:aws:s3:::b", "arn:aws:s3:::b/*"])),
            Just(json!("*"))
        ],
        condition,
        prop_oneof![Just(false), Just(true)],
    )
        .prop_map(
            |(effect, use_not_principal, principal, actions, resource, condition, extra)| {
                let mut s = json!({"Effect": effect, "Action": actions, "Resource": resource});
                if use_not_principal && effect == "Deny" {
                    s["NotPrincipal"] = principal;
                } else {
                    s["Principal"] = principal;
                }
                if let Some(c) = condition {
                    s["Condition"] = c;
                }
                if extra {
                    s["Unknown"] = json!({"kept": [1, "two"]});
                }
                s
            },
        )
}

/// Sids for foreign statements: none, ordinary ones, another grant's, and ours on a statement
/// whose shape we never write (a Deny), which must be left alone.
fn foreign_sid(index: usize) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(format!("Foreign{index}"))),
        Just(Some(
            grant(9).sid(Purpose::BucketObjects) + &format!("X{index}")
        )),
        Just(Some(format!("VG{}Zz{index}", grant(1)))),
    ]
}

fn foreign_policy() -> impl Strategy<Value = (PolicyDocument, bool)> {
    (1usize..8, any::<bool>(), any::<bool>())
        .prop_flat_map(|(n, single, with_id)| {
            let statements: Vec<_> = (0..n)
                .map(|i| (foreign_statement(), foreign_sid(i)))
                .collect();
            (statements, Just(single && n == 1), Just(with_id))
        })
        .prop_map(|(statements, single, with_id)| {
            let statements: Vec<Value> = statements
                .into_iter()
                .map(|(mut s, sid)| {
                    if let Some(sid) = sid {
                        s["Sid"] = json!(sid);
                    }
                    // Our Sid on a statement of our shape would be ours; make the VG<grant 1>Zz
                    // statements always foreign-shaped.
                    if s["Sid"].as_str().is_some_and(|x| x.contains("Zz")) {
                        s["Effect"] = json!("Deny");
                    }
                    s
                })
                .collect();
            let mut doc = json!({"Version": "2012-10-17"});
            if with_id {
                doc["Id"] = json!("PolicyId");
            }
            doc["Statement"] = if single {
                statements[0].clone()
            } else {
                Value::Array(statements)
            };
            (
                PolicyDocument::from_value(doc, "generated").unwrap(),
                single,
            )
        })
}

/// A grant's own statements: some purposes, each with its actions and resources.
fn grant_statements(g: GrantId) -> impl Strategy<Value = Vec<Statement>> {
    let purposes = proptest::sample::subsequence(
        vec![
            Purpose::BucketList,
            Purpose::BucketObjects,
            Purpose::BucketUpload,
            Purpose::KeyUse,
        ],
        0..=4,
    );
    (
        purposes,
        proptest::sample::select(vec!["", "data/", "a/b/"]),
    )
        .prop_map(move |(purposes, prefix)| {
            purposes
                .into_iter()
                .map(|p| {
                    let (actions, resource) = match p {
                        Purpose::BucketList => (json!("s3:ListBucket"), json!("arn:aws:s3:::b")),
                        Purpose::KeyUse => (json!(["kms:Decrypt", "kms:DescribeKey"]), json!("*")),
                        _ => (
                            json!(["s3:GetObject"]),
                            json!(format!("arn:aws:s3:::b/{prefix}*")),
                        ),
                    };
                    serde_json::from_value::<Statement>(json!({
                    "Sid": g.sid(p), "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::475757276268:root"},
                    "Action": actions, "Resource": resource}))
                    .unwrap()
                })
                .collect()
        })
}

fn foreign_of(doc: &PolicyDocument, g: &GrantId) -> Vec<Statement> {
    doc.statements
        .iter()
        .filter(|s| !claim(g).owns(s))
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn merge_then_remove_returns_the_original(
        (original, _) in foreign_policy(),
        desired in grant_statements(grant(1)),
    ) {
        let g = grant(1);
        let merged = merge(Some(&original), &claim(&g), &desired, "bucket policy").unwrap();
        let removed = remove(merged.as_ref(), &claim(&g), "bucket policy").unwrap();
        prop_assert_eq!(removed.as_ref(), Some(&original));
        prop_assert_eq!(removed.unwrap().to_value(), original.to_value());
    }

    #[test]
    fn merge_is_idempotent(
        (original, _) in foreign_policy(),
        desired in grant_statements(grant(1)),
    ) {
        let g = grant(1);
        let once = merge(Some(&original), &claim(&g), &desired, "bucket policy").unwrap();
        let twice = merge(once.as_ref(), &claim(&g), &desired, "bucket policy").unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn foreign_statements_never_change(
        (original, _) in foreign_policy(),
        first in grant_statements(grant(1)),
        second in grant_statements(grant(1)),
    ) {
        let g = grant(1);
        // A Create, then an Update to other statements: the foreign ones stay, in order, exactly.
        let created = merge(Some(&original), &claim(&g), &first, "bucket policy").unwrap();
        let updated = merge(created.as_ref(), &claim(&g), &second, "bucket policy").unwrap();
        for doc in [created.as_ref(), updated.as_ref()] {
            let doc = doc.cloned().unwrap_or_default();
            prop_assert_eq!(foreign_of(&doc, &g), original.statements.clone());
            prop_assert_eq!(&doc.version, &original.version);
            prop_assert_eq!(&doc.id, &original.id);
        }
        let owned: Vec<_> = updated.unwrap().statements.into_iter().filter(|s| claim(&g).owns(s)).collect();
        prop_assert_eq!(owned, second);
    }

    #[test]
    fn the_result_never_has_duplicate_sids(
        (original, _) in foreign_policy(),
        desired in grant_statements(grant(1)),
        other in grant_statements(grant(2)),
    ) {
        let with_other = merge(Some(&original), &claim(&grant(2)), &other, "bucket policy").unwrap();
        let merged = merge(with_other.as_ref(), &claim(&grant(1)), &desired, "bucket policy").unwrap();
        let merged = merged.unwrap_or_default();
        let sids: Vec<&String> = merged.statements.iter().filter_map(|s| s.sid.as_ref()).collect();
        let unique: BTreeSet<&String> = sids.iter().copied().collect();
        prop_assert_eq!(sids.len(), unique.len());
    }

    #[test]
    fn grants_on_one_policy_do_not_disturb_each_other(
        (original, _) in foreign_policy(),
        a in grant_statements(grant(1)),
        b in grant_statements(grant(2)),
    ) {
        // Grant 1 and 2 both write; removing 1 (a replaced grant's Delete) leaves exactly 2.
        let with_a = merge(Some(&original), &claim(&grant(1)), &a, "bucket policy").unwrap();
        let with_both = merge(with_a.as_ref(), &claim(&grant(2)), &b, "bucket policy").unwrap();
        let without_a = remove(with_both.as_ref(), &claim(&grant(1)), "bucket policy").unwrap();
        let only_b = merge(Some(&original), &claim(&grant(2)), &b, "bucket policy").unwrap();
        prop_assert_eq!(without_a, only_b);
    }

    #[test]
    fn a_foreign_statement_using_our_sid_is_an_error_and_changes_nothing(
        (original, _) in foreign_policy(),
        desired in grant_statements(grant(1)),
        effect in prop_oneof![Just("Deny"), Just("Allow")],
    ) {
        prop_assume!(!desired.is_empty());
        let g = grant(1);
        let taken = desired[0].sid.clone().unwrap();
        // Someone else's statement carrying our Sid: a Deny, or an Allow to anyone.
        let mut squatter = json!({"Sid": taken, "Effect": effect, "Principal": "*",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"});
        if effect == "Deny" {
            squatter["Principal"] = json!({"AWS": "arn:aws:iam::111122223333:root"});
        }
        let mut doc = original.clone();
        doc.statements.push(serde_json::from_value(squatter).unwrap());
        let before = doc.clone();
        let err = merge(Some(&doc), &claim(&g), &desired, "bucket policy").unwrap_err();
        prop_assert!(err.to_string().contains(desired[0].sid.as_deref().unwrap()));
        prop_assert_eq!(doc, before);
    }
}

#[test]
fn removing_the_last_statement_means_delete() {
    let g = grant(1);
    let mine: Statement = serde_json::from_value(json!({"Sid": g.sid(Purpose::BucketList),
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::475757276268:root"},
        "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}))
    .unwrap();
    let merged = merge(
        None,
        &claim(&g),
        std::slice::from_ref(&mine),
        "bucket policy",
    )
    .unwrap()
    .unwrap();
    assert_eq!(merged.statements, vec![mine]);
    assert_eq!(merged.version.as_deref(), Some("2012-10-17"));
    assert_eq!(
        remove(Some(&merged), &claim(&g), "bucket policy").unwrap(),
        None
    );
    assert_eq!(remove(None, &claim(&g), "bucket policy").unwrap(), None);
}

#[test]
fn a_sid_differing_only_in_case_is_a_conflict() {
    let g = grant(1);
    let sid = g.sid(Purpose::BucketList);
    let foreign: Statement =
        serde_json::from_value(json!({"Sid": sid.to_lowercase(), "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::b"}))
        .unwrap();
    let mine: Statement = serde_json::from_value(json!({"Sid": sid, "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::475757276268:root"}, "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::b"}))
    .unwrap();
    let doc = PolicyDocument::with_statements(vec![foreign]);
    let err = merge(Some(&doc), &claim(&g), &[mine], "bucket policy").unwrap_err();
    assert!(err.to_string().contains("did not write"), "{err}");
}

#[test]
fn a_grant_id_that_is_a_prefix_of_another_does_not_own_its_statements() {
    let short = GrantId::parse("00000000000abc12").unwrap();
    let long = GrantId::parse("0000000000abc12f").unwrap();
    assert!(!short.owns_sid(&long.sid(Purpose::KeyUse)));
    assert!(long.owns_sid(&long.sid(Purpose::KeyUse)));
    assert!(!long.owns_sid("VG0000000000abc12f"));
    assert!(!long.owns_sid("VG0000000000abc12fkeyUse"));
    assert!(!long.owns_sid("VG0000000000abc12fKey-Use"));
}

#[test]
fn only_the_one_grant_id_format_and_the_fixed_purposes_own_sids() {
    // Anything but 16 lowercase hex digits (or the refused-Create marker x + 14) is not an id.
    for bad in [
        "corp",
        "abc1",
        "",
        "0123456789abcdeg",
        "0123456789ABCDEF",
        "0123456789abcdef0",
        "0123456789abcde",
        "x0123456789abcdef",
        "x123456789abcdef",
        "y123456789abcdef",
    ] {
        assert!(
            GrantId::parse(bad).is_none(),
            "{bad:?} must not parse as a grant id"
        );
    }
    assert!(GrantId::parse("x123456789abcde").is_some());
    let g = GrantId::parse("0123456789abcdef").unwrap();
    for p in Purpose::ALL {
        assert!(g.owns_sid(&g.sid(p)));
    }
    // A Sid in the grant's form with a purpose vendor-grants never writes is foreign.
    for foreign in [
        "VG0123456789abcdefReadOnly",
        "VG0123456789abcdefKeyUse2",
        "VG0123456789abcdefBucketListX",
        "VG0123456789abcdef",
        "vg0123456789abcdefKeyUse",
    ] {
        assert!(!g.owns_sid(foreign), "{foreign} must not be owned");
    }
}

/// A statement under one of grant 1's Sids, in any shape: random principals (the grant's among
/// them, alone or with others), effects, actions, resources, conditions and `Not*` elements.
fn statement_under_our_sid() -> impl Strategy<Value = Statement> {
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": GRANTED})),
        Just(json!({"AWS": "475757276268"})),
        Just(json!({"AWS": [GRANTED, "arn:aws:iam::444455556666:root"]})),
        Just(json!({"AWS": "arn:aws:iam::444455556666:role/Other"})),
        Just(json!({"AWS": "*"})),
        Just(json!({"AWS": GRANTED, "Service": "s3.amazonaws.com"})),
        Just(json!({"Service": "cloudtrail.amazonaws.com"})),
    ];
    let actions = prop_oneof![
        Just(json!("s3:GetObject")),
        Just(json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])),
        Just(json!("s3:*")),
        Just(json!("*")),
        Just(json!(["kms:Decrypt"])),
    ];
    let resource = prop_oneof![
        Just(json!("arn:aws:s3:::b")),
        Just(json!("arn:aws:s3:::b/*")),
        Just(json!(["arn:aws:s3:::b/data/*", "arn:aws:s3:::b"])),
        Just(json!("arn:aws:s3:::other/*")),
        Just(json!("arn:aws:s3:::bb/*")),
        Just(json!("*")),
    ];
    let condition = prop_oneof![
        Just(None),
        Just(Some(json!({"Bool": {"aws:SecureTransport": "false"}}))),
        Just(Some(json!({"StringLike": {"s3:prefix": ["data/*"]}}))),
    ];
    (
        proptest::sample::select(Purpose::ALL.to_vec()),
        prop_oneof![Just("Allow"), Just("Deny")],
        principal,
        actions,
        resource,
        condition,
        proptest::sample::select(vec!["", "NotPrincipal", "NotAction", "NotResource"]),
    )
        .prop_map(
            |(purpose, effect, principal, actions, resource, condition, not)| {
                let mut s = json!({"Sid": grant(1).sid(purpose), "Effect": effect,
                "Principal": principal, "Action": actions, "Resource": resource});
                if let Some(c) = condition {
                    s["Condition"] = c;
                }
                match not {
                    "NotPrincipal" => {
                        s["NotPrincipal"] = json!({"AWS": "arn:aws:iam::111122223333:root"});
                    }
                    "NotAction" => s["NotAction"] = json!("s3:DeleteObject"),
                    "NotResource" => s["NotResource"] = json!("arn:aws:s3:::b/secret/*"),
                    _ => {}
                }
                serde_json::from_value(s).unwrap()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The ownership line, both sides. A statement under the grant's Sid that the claim does not
    /// own is refused by a Create (check_new_grant) and an Update (merge) that would write that
    /// Sid, and left exactly as it is, in its place, by a Delete (remove) and by any merge that
    /// does not write its Sid. One the claim owns (the grant's principal, within its bucket or
    /// key, however widened) is taken out by a Delete.
    #[test]
    fn no_create_update_or_delete_touches_a_statement_it_does_not_own(
        (original, _) in foreign_policy(),
        squatter in statement_under_our_sid(),
        desired in grant_statements(grant(1)),
        at in any::<usize>(),
    ) {
        let g = grant(1);
        let claim = claim(&g);
        let mut doc = original.clone();
        let at = at % (doc.statements.len() + 1);
        doc.statements.insert(at, squatter.clone());
        let sid = squatter.sid.clone().unwrap();
        let removed = remove(Some(&doc), &claim, "bucket policy").unwrap();
        if claim.owns(&squatter) {
            // The other side of the line: the grant's own statement, however widened, goes.
            prop_assert_eq!(squatter.effect.as_str(), "Allow");
            prop_assert_eq!(removed.unwrap_or_default().statements, original.statements.clone());
            return Ok(());
        }
        // Delete: left exactly, in its place.
        let after = removed.unwrap();
        prop_assert_eq!(after.statements.iter().position(|s| s == &squatter), Some(at));
        prop_assert_eq!(after.to_value(), doc.to_value());
        let writes_its_sid = desired.iter().any(|d| d.sid.as_deref() == Some(sid.as_str()));
        // Create: refused whenever it is there at all.
        let created = vendor_grants::policy::ownership::check_new_grant(Some(&doc), &g, &desired, "bucket policy");
        prop_assert!(created.is_err());
        // Update: refused when it would write the Sid, and otherwise leaves it untouched.
        match merge(Some(&doc), &claim, &desired, "bucket policy") {
            Err(e) => {
                prop_assert!(writes_its_sid, "refused without writing its Sid: {}", e);
                prop_assert!(e.to_string().contains(&sid));
            }
            Ok(merged) => {
                prop_assert!(!writes_its_sid);
                let merged = merged.unwrap();
                prop_assert_eq!(merged.statements.iter().position(|s| s == &squatter), Some(at));
            }
        }
    }
}
